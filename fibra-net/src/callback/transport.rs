//! `Transport`: what a protocol's callbacks (and any other tasklet) use to talk to its
//! connection: send, close, abort, inner tasklets, the read deadline.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use fibra_rt::{Handle, TaskletId, Unparker};
use fibra_tasks::{JoinHandle, TasksExt};

use crate::{Conn, ConnId, NetError};

/// A protocol's connection, as its callbacks see it. Clones refer to the same connection, so
/// a room or a timer may keep one and send from its own tasklet; sends never park, and fail
/// with [`NetError::Full`] at the connection's send limit, so output stays bounded.
#[derive(Clone)]
pub struct Transport {
    inner: Rc<Inner>,
}

struct Inner {
    conn: Conn,
    peer: SocketAddr,
    /// Who runs the session's callbacks.
    session: Driver,
    close_requested: Cell<bool>,
    /// The protocol kept the peer's half-close: its session waits for the close.
    half_closed: Cell<bool>,
    /// Tasklets killed when the connection ends, with their unparkers; ended ones are pruned.
    inner: RefCell<Vec<(JoinHandle<()>, Unparker)>>,
}

/// Who runs a session's callbacks.
enum Driver {
    /// Its own tasklet, for its whole life: woken by a close request, killed by a stop.
    Tasklet(Unparker),
    /// A tasklet taken when input comes and given back when nothing is left (see
    /// `stackless.rs`): the one running now, if any (an id: set and cleared on every
    /// activation, for nothing), an unparker of the schedule's to kill it with, and whether
    /// a stop killed the session.
    Stackless {
        worker: Cell<Option<TaskletId>>,
        killer: Unparker,
        killed: Cell<bool>,
    },
}

impl Transport {
    pub(crate) fn new(conn: Conn, peer: SocketAddr, session: Unparker) -> Transport {
        Transport::with_driver(conn, peer, Driver::Tasklet(session))
    }

    /// The transport of a session served without a tasklet while it is idle; `killer`: any
    /// unparker of its schedule's (the starting tasklet's).
    pub(crate) fn new_stackless(conn: Conn, peer: SocketAddr, killer: Unparker) -> Transport {
        let driver = Driver::Stackless {
            worker: Cell::new(None),
            killer,
            killed: Cell::new(false),
        };
        Transport::with_driver(conn, peer, driver)
    }

    fn with_driver(conn: Conn, peer: SocketAddr, session: Driver) -> Transport {
        Transport {
            inner: Rc::new(Inner {
                conn,
                peer,
                session,
                close_requested: Cell::new(false),
                half_closed: Cell::new(false),
                inner: RefCell::new(Vec::new()),
            }),
        }
    }

    /// Queues `frame` for the peer, framed by the connection's codec (a line gets its
    /// `\n`); it leaves at the end of this tick. Never parks.
    ///
    /// # Errors
    ///
    /// [`NetError::Full`] at the send limit (nothing queued), [`NetError::Lost`] once the
    /// connection cannot send, and the codec's refusals.
    pub fn send(&self, frame: &[u8]) -> Result<(), NetError> {
        self.inner.conn.try_send_frame(frame)
    }

    /// [`send`](Self::send) for text.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub fn send_line(&self, text: &str) -> Result<(), NetError> {
        self.inner.conn.try_send_line(text)
    }

    /// Sends `frame`, then closes (gnet's `send_lose`): what was queued still leaves.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send); the connection is closed either way.
    pub fn send_and_close(&self, frame: &[u8]) -> Result<(), NetError> {
        let sent = self.send(frame);
        self.close();
        sent
    }

    /// Closes the connection gracefully: queued output still leaves (within the close
    /// timeout), then [`Protocol::connection_lost`](crate::Protocol::connection_lost) is told
    /// [`Lost::Closed`](crate::Lost::Closed). Never parks; from a callback, it takes effect
    /// when the callback returns.
    pub fn close(&self) {
        self.inner.close_requested.set(true);
        match &self.inner.session {
            Driver::Tasklet(session) => session.unpark(),
            // Idle, no tasklet to wake: the close wakes its input watch. A kept half-close
            // waits for the connection's close on its worker: the close is that.
            Driver::Stackless { worker, .. }
                if worker.get().is_none() || self.inner.half_closed.get() =>
            {
                self.inner.conn.close();
            }
            Driver::Stackless { .. } => {}
        }
    }

    /// Resets the connection: queued output is dropped, the peer gets a reset, and
    /// `connection_lost` is told [`Lost::Aborted`](crate::Lost::Aborted).
    pub fn abort(&self) {
        self.inner.conn.abort();
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.inner.peer
    }

    /// The session's id: the connection's, unique among this schedule's connections.
    pub fn id(&self) -> ConnId {
        self.inner.conn.id()
    }

    /// The connection, for what the transport does not offer (a parking `h.send`, say).
    pub fn conn(&self) -> &Conn {
        &self.inner.conn
    }

    /// Sets the read deadline (gnet's heartbeat `read_deadline`): when nothing arrives for
    /// `timeout`, the connection is lost with [`Lost::TimedOut`](crate::Lost::TimedOut).
    /// `None` turns it off.
    pub fn set_read_deadline(&self, timeout: Option<Duration>) {
        self.inner.conn.set_read_timeout(timeout);
    }

    /// Spawns `f` as an inner tasklet of this connection (gnet's `add_inner_glet`): it is
    /// killed, with its destructors run, when the connection ends, however it ends.
    ///
    /// # Errors
    ///
    /// [`NetError::Spawn`] when no stack can be mapped.
    pub fn spawn_inner<F>(&self, h: &Handle, f: F) -> Result<TaskletId, NetError>
    where
        F: FnOnce(&Handle) + 'static,
    {
        let tasklet = h.spawn(f)?;
        let id = tasklet.id();
        let mut inner = self.inner.inner.borrow_mut();
        inner.retain(|(t, _)| !t.is_finished());
        inner.push((tasklet, h.unparker_of(id)));
        Ok(id)
    }

    /// How many inner tasklets are alive.
    pub fn inner_tasklets(&self) -> usize {
        let inner = self.inner.inner.borrow();
        inner.iter().filter(|(t, _)| !t.is_finished()).count()
    }

    pub(crate) fn close_requested(&self) -> bool {
        self.inner.close_requested.get()
    }

    /// The protocol kept the peer's half-close: the session now waits for the connection's
    /// close ([`NetExt::on_closed`](crate::NetExt::on_closed)).
    pub(crate) fn keep_half_close(&self) {
        self.inner.half_closed.set(true);
    }

    /// The session ended: its inner tasklets are killed (without yielding: this may run in
    /// a destructor) and its connection closed (`abort`: reset it instead).
    pub(crate) fn end(&self, abort: bool) {
        for (_, unparker) in self.inner.inner.borrow_mut().drain(..) {
            unparker.kill();
        }
        if abort {
            self.inner.conn.abort();
        } else {
            self.inner.conn.close();
        }
    }

    /// Kills the session's tasklet (its server or client stops).
    pub(crate) fn kill_session(&self) {
        match &self.inner.session {
            Driver::Tasklet(session) => session.kill(),
            Driver::Stackless {
                worker,
                killer,
                killed,
            } => {
                killed.set(true);
                match worker.get() {
                    Some(worker) => killer.for_tasklet(worker).kill(),
                    // Idle: the close wakes its input watch, which ends it.
                    None => self.inner.conn.close(),
                }
            }
        }
    }

    /// Whether a stop killed this stackless session.
    pub(crate) fn was_killed(&self) -> bool {
        matches!(&self.inner.session, Driver::Stackless { killed, .. } if killed.get())
    }

    /// The tasklet running this stackless session's callbacks now (`None`: idle).
    pub(crate) fn set_worker(&self, running: Option<TaskletId>) {
        if let Driver::Stackless { worker, .. } = &self.inner.session {
            worker.set(running);
        }
    }
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("id", &self.id())
            .field("peer", &self.inner.peer)
            .finish_non_exhaustive()
    }
}
