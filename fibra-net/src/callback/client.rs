//! `ReconnectingClient`: connects, runs a protocol, and when the connection ends or a connect
//! fails (the first one too) waits, with [`Backoff`], and tries again, until stopped.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use fibra_rt::{Either, Handle, Park, Unparker};
use fibra_tasks::ops::Sleep;

use super::mailbox::Mailbox;
use super::session::run_session;
use crate::{Backoff, ConnOptions, Ended, Factory, NetError, NetExt, Spawner};

/// How far ahead [`ClientState::Waiting`]'s `until` is put for a wait past what the clock
/// can count (about a hundred years): that wait never ends.
const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// What a [`ReconnectingClient`] tells the callback set with
/// [`on_event`](ReconnectingClient::on_event), as it happens: every failed connect with its
/// error, and every wait before the next try with its length (polling
/// [`state`](ReconnectingClient::state) misses short waits).
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientEvent<'a> {
    /// A connect starts; `attempt` failed attempts came before it.
    Connecting {
        /// Failed attempts in a row before this one.
        attempt: u32,
    },
    /// A connect failed (refused, unreachable, timed out...).
    ConnectFailed {
        /// Why.
        error: &'a NetError,
        /// Failed attempts in a row, this one included.
        attempt: u32,
    },
    /// Connected to `peer`; its protocol runs.
    Connected {
        /// The server's address.
        peer: SocketAddr,
    },
    /// The connection ended (its protocol was told the same).
    Disconnected {
        /// Why.
        ended: &'a Ended,
    },
    /// The client waits `wait` before the next attempt (`Duration::MAX`: for good, until
    /// stopped).
    Waiting {
        /// How long.
        wait: Duration,
        /// Failed attempts in a row so far.
        attempt: u32,
    },
    /// The attempt limit was reached: no more tries.
    GaveUp {
        /// Failed attempts in a row.
        attempts: u32,
    },
}

/// Where a [`ReconnectingClient`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientState {
    /// Not started.
    Idle,
    /// A connect is in flight; `attempt` failed attempts came before it.
    Connecting {
        /// Failed attempts in a row before this one.
        attempt: u32,
    },
    /// Connected, and running a protocol, since `since`.
    Connected {
        /// When the connection came up.
        since: Instant,
    },
    /// Waiting `wait` (until `until`) before the next attempt, after `attempt` failed ones.
    Waiting {
        /// When the next attempt starts (a century ahead for a wait past what the clock can
        /// count, such as `Duration::MAX`: that wait ends only with a stop).
        until: Instant,
        /// How long this wait is.
        wait: Duration,
        /// Failed attempts in a row so far.
        attempt: u32,
    },
    /// The attempt limit was reached; it tries no more.
    GaveUp,
    /// Stopped.
    Stopped,
}

/// A client that keeps a connection to `addr`: it connects, runs a protocol of its
/// [`Factory`] (one per connection, [`Protocol::connection_lost`](crate::Protocol) always
/// told), and when the connection ends or a connect fails, the first one included, waits as
/// its [`Backoff`] says and tries again. [`stop`](Self::stop) works in every state. Clones
/// refer to the same client.
///
/// Notifications from a [`Service`](crate::Service) go to the protocol's `on_notify` while
/// connected, and to the factory's while it waits. [`on_event`](Self::on_event) hears about
/// every failed connect and every wait.
///
/// ```no_run
/// use std::net::SocketAddr;
/// use std::time::Duration;
/// use fibra_net::{
///     Backoff, ClientEvent, ConnOptions, Factory, NetPlugin, Protocol, ReconnectingClient,
///     Transport,
/// };
/// use fibra_rt::{Handle, Schedule};
///
/// /// Says hello on each connection and prints what comes back.
/// struct Hello;
///
/// impl Protocol for Hello {
///     fn connection_made(&mut self, _h: &Handle, t: &Transport) {
///         let _ = t.send_line("hello");
///     }
///     fn frame_received(&mut self, _h: &Handle, _t: &Transport, frame: &[u8]) {
///         println!("got {}", String::from_utf8_lossy(frame));
///     }
/// }
///
/// struct Hellos;
///
/// impl Factory for Hellos {
///     type Protocol = Hello;
///     fn build_protocol(&mut self, _peer: SocketAddr) -> Option<Hello> {
///         Some(Hello)
///     }
/// }
///
/// let mut schedule = Schedule::new();
/// schedule.add_plugin(fibra_tasks::TasksPlugin::new())?;
/// schedule.add_plugin(NetPlugin::new()?)?;
/// let backoff = Backoff::new()
///     .with_initial(Duration::from_millis(100))
///     .with_max(Duration::from_secs(5));
/// let addr: SocketAddr = "127.0.0.1:7000".parse()?;
/// let client = ReconnectingClient::new(addr, ConnOptions::new(), backoff, Hellos);
/// client.on_event(|event| match event {
///     ClientEvent::ConnectFailed { error, attempt } => {
///         eprintln!("connect #{attempt} failed: {error}")
///     }
///     ClientEvent::Waiting { wait, .. } => eprintln!("next try in {wait:?}"),
///     ClientEvent::Connected { peer } => eprintln!("connected to {peer}"),
///     _ => {}
/// });
/// client.start(&mut schedule)?;
/// schedule.run()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct ReconnectingClient {
    inner: Rc<Inner>,
}

struct Inner {
    addr: SocketAddr,
    options: ConnOptions,
    backoff: Backoff,
    run: Run,
    state: Cell<ClientState>,
    running: RefCell<Option<Unparker>>,
    mailbox: Mailbox,
    connections: Cell<u64>,
    failures: Cell<u32>,
    last_error: RefCell<Option<String>>,
    events: RefCell<Option<EventSink>>,
}

/// The callback of [`ReconnectingClient::on_event`].
type EventSink = Box<dyn FnMut(&ClientEvent<'_>)>;

/// The client's loop with its factory: kept, so that a stopped client can start again.
type Run = Rc<dyn Fn(&Handle, &Rc<Inner>)>;

impl ReconnectingClient {
    /// A client of `addr` running `factory`'s protocols, with `options` for its connections
    /// (their framing, limits, connect timeout); it starts with [`start`](Self::start).
    pub fn new<F: Factory>(
        addr: SocketAddr,
        options: ConnOptions,
        backoff: Backoff,
        factory: F,
    ) -> ReconnectingClient {
        let factory = Rc::new(RefCell::new(factory));
        let run: Run =
            Rc::new(move |h: &Handle, inner: &Rc<Inner>| client_loop(h, inner, &factory));
        ReconnectingClient {
            inner: Rc::new(Inner {
                addr,
                options,
                backoff,
                run,
                state: Cell::new(ClientState::Idle),
                running: RefCell::new(None),
                mailbox: Mailbox::default(),
                connections: Cell::new(0),
                failures: Cell::new(0),
                last_error: RefCell::new(None),
                events: RefCell::new(None),
            }),
        }
    }

    /// Starts connecting, on a tasklet of its own. Starting a running client does nothing;
    /// a stopped one starts again with fresh waits.
    ///
    /// # Errors
    ///
    /// [`NetError::Spawn`].
    pub fn start<'a>(&self, spawner: impl Into<Spawner<'a>>) -> Result<(), NetError> {
        if self.is_running() {
            return Ok(());
        }
        let inner = Rc::clone(&self.inner);
        let unparker = spawner.into().spawn("client", move |h| {
            let run = Rc::clone(&inner.run);
            run(h, &inner);
        })?;
        self.inner.mailbox.set_reader(Some(unparker.clone()));
        *self.inner.running.borrow_mut() = Some(unparker);
        self.inner.failures.set(0);
        self.inner.state.set(ClientState::Connecting { attempt: 0 });
        Ok(())
    }

    /// Stops, whatever it is doing: a connect in flight is withdrawn (no connection comes of
    /// it), a connection is closed (its protocol told [`Ended::Killed`](crate::Ended)), a
    /// wait ends. Never parks; it takes effect before the schedule's next step.
    pub fn stop(&self) {
        if let Some(tasklet) = self.inner.running.borrow_mut().take() {
            tasklet.kill();
        }
        self.inner.mailbox.set_reader(None);
        self.inner.state.set(ClientState::Stopped);
    }

    /// Whether it was started and has neither stopped nor given up.
    pub fn is_running(&self) -> bool {
        self.inner.running.borrow().is_some()
    }

    /// Where it is now.
    pub fn state(&self) -> ClientState {
        self.inner.state.get()
    }

    /// How many connections it made.
    pub fn connections(&self) -> u64 {
        self.inner.connections.get()
    }

    /// Failed attempts in a row: connects that failed and connections that did not stay up
    /// for the backoff's `stable_after`. Back to zero after a stable connection.
    pub fn failures(&self) -> u32 {
        self.inner.failures.get()
    }

    /// Calls `f` with each [`ClientEvent`], on the client's tasklet, as it happens: a failed
    /// connect with its error, the wait before the next try, a connection made or ended, the
    /// attempt limit reached. Replaces the callback set before. A panic in `f` is logged and
    /// does not stop the client; `f` may call this client's methods (`stop` included).
    pub fn on_event(&self, f: impl FnMut(&ClientEvent<'_>) + 'static) {
        *self.inner.events.borrow_mut() = Some(Box::new(f));
    }

    /// What ended the last connection, or why the last connect failed.
    pub fn last_error(&self) -> Option<String> {
        self.inner.last_error.borrow().clone()
    }

    /// The address it connects to.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// Queues `message` for `on_notify`; `false` if it is not running or its mailbox is
    /// full.
    pub(crate) fn notify(&self, message: Rc<str>) -> bool {
        self.inner.mailbox.post(message)
    }
}

impl fmt::Debug for ReconnectingClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReconnectingClient")
            .field("addr", &self.inner.addr)
            .field("state", &self.state())
            .field("connections", &self.connections())
            .finish()
    }
}

impl Inner {
    /// Sets where the client is, unless it was stopped meanwhile: a stop from an event
    /// callback kills the loop at its next yield, and it must not say `Waiting` after.
    fn set_state(&self, state: ClientState) {
        if self.running.borrow().is_some() {
            self.state.set(state);
        }
    }

    /// Tells the event callback, if any. The callback is taken out while it runs, so that it
    /// may set another or stop the client.
    fn tell(&self, h: &Handle, event: ClientEvent<'_>) {
        let Some(mut f) = self.events.borrow_mut().take() else {
            return;
        };
        if let Err(msg) = h.catch_panic(|| f(&event)) {
            log::error!(target: "fibra_net::client", "the on_event callback panicked: {msg}");
        }
        let mut slot = self.events.borrow_mut();
        if slot.is_none() {
            *slot = Some(f);
        }
    }
}

fn client_loop<F: Factory>(h: &Handle, inner: &Rc<Inner>, factory: &RefCell<F>) {
    let mut waits = inner.backoff.delays();
    loop {
        inner.set_state(ClientState::Connecting {
            attempt: waits.failures(),
        });
        inner.tell(
            h,
            ClientEvent::Connecting {
                attempt: waits.failures(),
            },
        );
        let stable = match h.connect_with(inner.addr, inner.options.clone()) {
            Ok(conn) => {
                inner.connections.set(inner.connections.get() + 1);
                let peer = conn.peer_addr().unwrap_or(inner.addr);
                match h.catch_panic(|| factory.borrow_mut().build_protocol(peer)) {
                    Ok(Some(protocol)) => {
                        let since = fibra_rt::time::now();
                        inner.set_state(ClientState::Connected { since });
                        inner.tell(h, ClientEvent::Connected { peer });
                        let ended =
                            run_session(h, protocol, conn, peer, Some(&inner.mailbox), None);
                        inner.tell(h, ClientEvent::Disconnected { ended: &ended });
                        log::debug!(target: "fibra_net::client", "connection to {} ended: {ended}", inner.addr);
                        *inner.last_error.borrow_mut() = Some(ended.to_string());
                        since.elapsed() >= waits.backoff().stable_after()
                    }
                    Ok(None) => {
                        conn.close();
                        false
                    }
                    Err(msg) => {
                        log::error!(target: "fibra_net::client", "build_protocol panicked: {msg}");
                        conn.abort();
                        false
                    }
                }
            }
            Err(e) => {
                log::debug!(target: "fibra_net::client", "connect to {} failed: {e}", inner.addr);
                *inner.last_error.borrow_mut() = Some(connect_failure(inner.addr, &e));
                inner.tell(
                    h,
                    ClientEvent::ConnectFailed {
                        error: &e,
                        attempt: waits.failures().saturating_add(1),
                    },
                );
                false
            }
        };
        if inner.running.borrow().is_none() {
            // Stopped from an event callback (the kill takes effect at the next yield): no
            // more state or events from this loop (`Waiting`, `GaveUp`).
            return;
        }
        if stable {
            waits.reset();
        }
        let wait = waits.next_wait();
        inner.failures.set(waits.failures());
        if waits.is_exhausted() {
            log::info!(target: "fibra_net::client", "gave up on {} after {} attempts", inner.addr, waits.failures());
            inner.set_state(ClientState::GaveUp);
            inner.running.borrow_mut().take();
            inner.mailbox.set_reader(None);
            inner.tell(
                h,
                ClientEvent::GaveUp {
                    attempts: waits.failures(),
                },
            );
            return;
        }
        // A wait past what the clock can count (`Duration::MAX`) never ends.
        let now = fibra_rt::time::now();
        let until = now.checked_add(wait);
        inner.set_state(ClientState::Waiting {
            until: until.unwrap_or_else(|| now.checked_add(FAR).unwrap_or(now)),
            wait,
            attempt: waits.failures(),
        });
        inner.tell(
            h,
            ClientEvent::Waiting {
                wait,
                attempt: waits.failures(),
            },
        );
        loop {
            while let Some(message) = inner.mailbox.take() {
                if let Err(msg) = h.catch_panic(|| factory.borrow_mut().on_notify(h, &message, &[]))
                {
                    log::error!(target: "fibra_net::client", "on_notify panicked: {msg}");
                }
            }
            let Some(until) = until else {
                h.park();
                continue;
            };
            match h.select(Sleep(until), Park) {
                Either::First(()) => break,
                Either::Second(()) => {}
            }
        }
    }
}

/// What a failed connect to `addr` says, for a client's or a pool's last failure: the
/// error's own words, which name the address but for a timeout's.
pub(crate) fn connect_failure(addr: std::net::SocketAddr, e: &NetError) -> String {
    match e {
        NetError::TimedOut => format!("connect to {addr} timed out"),
        e => e.to_string(),
    }
}
