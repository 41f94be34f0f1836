//! `Server`: a [`Factory`] serving a listener, one protocol (and tasklet) per connection.

use std::cell::RefCell;
use std::fmt;
use std::net::SocketAddr;
use std::rc::Rc;

use fibra_rt::{Either, Handle, Park, Unparker};
use fibra_tasks::TasksExt;

use super::mailbox::Mailbox;
use super::session::{run_session, Sessions};
use crate::ops::Accept;
use crate::{Factory, Listener, NetError, Spawner, Transport};

/// A listener served by a [`Factory`]: each accepted connection gets its protocol and a
/// tasklet of its own. Clones refer to the same server (a [`Service`](crate::Service) keeps
/// one).
///
/// ```
/// use fibra_net::{Factory, NetPlugin, Protocol, Server, Transport};
/// use fibra_rt::{Handle, Schedule};
/// use std::net::SocketAddr;
///
/// struct Echo;
/// impl Protocol for Echo {
///     fn frame_received(&mut self, _h: &Handle, t: &Transport, frame: &[u8]) {
///         let _ = t.send(frame);
///     }
/// }
/// struct EchoFactory;
/// impl Factory for EchoFactory {
///     type Protocol = Echo;
///     fn build_protocol(&mut self, _peer: SocketAddr) -> Option<Echo> {
///         Some(Echo)
///     }
/// }
///
/// let mut schedule = Schedule::new();
/// schedule.add_plugin(fibra_tasks::TasksPlugin::new())?;
/// schedule.add_plugin(NetPlugin::new()?)?;
/// let listener = schedule.plugin::<NetPlugin>().unwrap().listen("127.0.0.1:0")?;
/// let server = Server::new(listener, EchoFactory);
/// server.start(&mut schedule)?;
/// assert!(server.is_running());
/// server.stop();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Server {
    inner: Rc<Inner>,
}

struct Inner {
    addr: SocketAddr,
    /// The acceptor's body, until `start` runs it.
    acceptor: RefCell<Option<Acceptor>>,
    running: RefCell<Option<Unparker>>,
    sessions: Sessions,
    mailbox: Mailbox,
}

type Acceptor = Box<dyn FnOnce(&Handle, &Sessions, &Mailbox)>;

impl Server {
    /// A server that will accept on `listener` and run `factory`'s protocols; it starts
    /// with [`start`](Self::start).
    pub fn new<F: Factory>(listener: Listener, factory: F) -> Server {
        Server::with_sessions(listener, factory, false)
    }

    /// A server whose connections hold no tasklet while they wait for input: each frame's
    /// callbacks run on one of the network plugin's worker tasklets when it arrives, which
    /// goes on to other connections when they return (a callback that parks keeps it until
    /// it returns; the connection's later frames wait; see [`OnInput`](crate::ops::OnInput)). A million idle connections then need no stack each (no
    /// `vm.max_map_count` raise). Callbacks, their order and `connection_lost` exactly once
    /// are as with [`new`](Self::new); [`Transport::close`] takes effect when the running
    /// callback returns, and at once on an idle connection (closing it gracefully).
    pub fn stackless<F: Factory>(listener: Listener, factory: F) -> Server {
        Server::with_sessions(listener, factory, true)
    }

    fn with_sessions<F: Factory>(listener: Listener, factory: F, stackless: bool) -> Server {
        let addr = listener.local_addr();
        let acceptor: Acceptor =
            Box::new(move |h: &Handle, sessions: &Sessions, mailbox: &Mailbox| {
                accept_loop(h, &listener, factory, sessions, mailbox, stackless);
            });
        Server {
            inner: Rc::new(Inner {
                addr,
                acceptor: RefCell::new(Some(acceptor)),
                running: RefCell::new(None),
                sessions: Sessions::default(),
                mailbox: Mailbox::default(),
            }),
        }
    }

    /// Starts accepting, on a tasklet of its own.
    ///
    /// # Errors
    ///
    /// [`NetError::NotStartable`] when it was started before (a stopped server's listener is
    /// closed: make a new one); [`NetError::Spawn`].
    pub fn start<'a>(&self, spawner: impl Into<Spawner<'a>>) -> Result<(), NetError> {
        let acceptor = self.inner.acceptor.borrow_mut().take();
        let Some(acceptor) = acceptor else {
            return Err(NetError::NotStartable {
                reason: "the server was started before; a stopped server's listener is closed",
            });
        };
        let inner = Rc::clone(&self.inner);
        let unparker = spawner.into().spawn("server", move |h| {
            acceptor(h, &inner.sessions, &inner.mailbox);
        })?;
        self.inner.mailbox.set_reader(Some(unparker.clone()));
        *self.inner.running.borrow_mut() = Some(unparker);
        log::debug!(target: "fibra_net::protocol", "server on {} started", self.inner.addr);
        Ok(())
    }

    /// Stops: the listener closes, and every connection's tasklet is killed (each protocol
    /// is told [`Ended::Killed`](crate::Ended::Killed), and its connection closes). Never
    /// parks; it takes effect before the schedule's next step.
    pub fn stop(&self) {
        if let Some(acceptor) = self.inner.running.borrow_mut().take() {
            acceptor.kill();
        }
        self.inner.mailbox.set_reader(None);
        for transport in self.inner.sessions.borrow().values() {
            transport.kill_session();
        }
    }

    /// Whether it was started and not stopped.
    pub fn is_running(&self) -> bool {
        self.inner.running.borrow().is_some()
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// How many connections it serves now.
    pub fn connections(&self) -> usize {
        self.inner.sessions.borrow().len()
    }

    /// Queues `message` for the factory's `on_notify`; `false` if it is not running or its
    /// mailbox is full.
    pub(crate) fn notify(&self, message: Rc<str>) -> bool {
        self.inner.mailbox.post(message)
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.inner.addr)
            .field("running", &self.is_running())
            .field("connections", &self.connections())
            .finish()
    }
}

fn accept_loop<F: Factory>(
    h: &Handle,
    listener: &Listener,
    mut factory: F,
    sessions: &Sessions,
    mailbox: &Mailbox,
    stackless: bool,
) {
    loop {
        while let Some(message) = mailbox.take() {
            let connections: Vec<Transport> = sessions.borrow().values().cloned().collect();
            if let Err(msg) = h.catch_panic(|| factory.on_notify(h, &message, &connections)) {
                log::error!(target: "fibra_net::protocol", "on_notify panicked: {msg}");
            }
        }
        let (conn, peer) = match h.select(Accept::new(listener), Park) {
            Either::First(Ok(accepted)) => accepted,
            Either::First(Err(NetError::Closed)) => return,
            Either::First(Err(e)) => {
                log::warn!(target: "fibra_net::protocol", "accept failed: {e}");
                continue;
            }
            Either::Second(()) => continue,
        };
        let protocol = match h.catch_panic(|| factory.build_protocol(peer)) {
            Ok(Some(protocol)) => protocol,
            Ok(None) => {
                log::debug!(target: "fibra_net::protocol", "refused a connection from {peer}");
                conn.close();
                continue;
            }
            Err(msg) => {
                log::error!(target: "fibra_net::protocol", "build_protocol panicked: {msg}");
                conn.abort();
                continue;
            }
        };
        if stackless {
            if let Err(e) = super::stackless::start(h, protocol, conn, peer, Some(sessions)) {
                log::error!(target: "fibra_net::protocol", "no tasklet for a connection from {peer}: {e}");
            }
            continue;
        }
        let sessions = Rc::clone(sessions);
        let spawned =
            h.spawn_detached_with(fibra_rt::SpawnOptions::new().name("session"), move |h| {
                run_session(h, protocol, conn, peer, None, Some(&sessions));
            });
        if let Err(e) = spawned {
            log::error!(target: "fibra_net::protocol", "no tasklet for a connection from {peer}: {e}");
        }
    }
}
