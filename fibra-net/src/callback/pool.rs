//! `Pool`: N connections to one back end, shared by every tasklet of a schedule (IceServer's
//! `TcpClientAction`, r2d2's and bb8's shape): a tasklet borrows a free connection for one
//! request and its reply, and gives it back.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use fibra_rt::{Handle, Unparker};
use fibra_tasks::WaitGuard;
use slab::Slab;

use crate::{Backoff, Conn, ConnOptions, Lost, NetError, NetExt, Spawner};

/// A pool's counters, from [`Pool::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Connections the pool keeps (up or not).
    pub size: usize,
    /// Connections up and free.
    pub idle: usize,
    /// Connections lent to a request.
    pub busy: usize,
    /// Requests waiting for a free connection.
    pub waiting: usize,
    /// Connections lost so far: broken by the back end, or dropped by the pool after a
    /// request timed out or its tasklet was killed mid-request, or because the back end sent
    /// bytes nobody asked for.
    pub broken: u64,
    /// Connections opened again after one was lost.
    pub repaired: u64,
}

/// N connections to one back end, opened and repaired in the background, shared by every
/// tasklet of a schedule: [`request`](Self::request) borrows a free one (waiters are served
/// first come, first served), sends one frame, receives one reply frame by the connections'
/// [framing](ConnOptions::with_framing), and gives it back. Clones refer to the same pool.
///
/// - Building and starting never block, and never fail because the back end is down: each
///   connection has a keeper tasklet that connects, and after a failed connect waits as the
///   [`Backoff`] says and tries again; a connection that was lost is opened again at once if
///   it had been up for the backoff's `stable_after`, after a wait if not.
/// - A connection that broke mid-request is dropped, never lent again. So is a connection
///   whose request timed out or whose tasklet was killed after sending: its late reply can
///   never reach the next request. So is one holding bytes nobody asked for (sent while it
///   was idle, or after a reply's frame), when it is next lent or given back; bytes that
///   arrive in the same instant as a request cannot be told from its reply. A tasklet
///   killed while waiting, or before it sent, gives its connection back as it was.
/// - Errors say what last went wrong: [`NetError::PoolTimedOut`] carries the last failure
///   (refused, reset, timed out), and [`NetError::PoolBroken`] what broke the connection.
///
/// ```
/// use std::time::Duration;
/// use fibra_net::{Backoff, ConnOptions, NetExt, Pool};
///
/// let mut schedule = fibra_rt::Schedule::new();
/// schedule.add_plugin(fibra_net::NetPlugin::new()?)?;
/// schedule.add_plugin(fibra_tasks::TasksPlugin::new())?;
/// schedule.spawn(|h| {
///     // A back end that answers each line with its length.
///     let listener = h.listen("127.0.0.1:0").unwrap();
///     let pool = Pool::new(listener.local_addr(), ConnOptions::new(), Backoff::new(), 2);
///     pool.start(h).unwrap();
///     fibra_tasks::TasksExt::spawn_detached(h, move |h| {
///         let (conn, _) = h.accept(&listener).unwrap();
///         while let Ok(line) = h.receive(&conn) {
///             h.send_line(&conn, &line.len().to_string()).unwrap();
///         }
///     })
///     .unwrap();
///     let reply = pool.request(h, b"hello", Duration::from_secs(5)).unwrap();
///     assert_eq!(reply, b"5");
///     pool.stop(); // closes its connection: the back end's tasklet ends
/// })?;
/// schedule.run()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Pool {
    inner: Rc<Inner>,
    /// Shared by the clones only (not by the keepers or leases): the last clone dropped
    /// stops the pool, so that its keepers end and its connections close.
    _owner: Rc<Owner>,
}

/// Stops the pool when the last [`Pool`] clone is dropped.
struct Owner(Rc<Inner>);

impl Drop for Owner {
    fn drop(&mut self) {
        stop(&self.0);
    }
}

struct Inner {
    addr: SocketAddr,
    options: ConnOptions,
    backoff: Backoff,
    size: usize,
    state: RefCell<State>,
    keepers: RefCell<Vec<Unparker>>,
    running: Cell<bool>,
}

#[derive(Default)]
struct State {
    slots: Vec<Slot>,
    /// Free slots, oldest first.
    idle: VecDeque<usize>,
    /// Requests waiting for a slot, first come first served: keys into `waiters`.
    queue: VecDeque<usize>,
    waiters: Slab<Waiter>,
    broken: u64,
    repaired: u64,
    last_error: Option<String>,
}

enum Slot {
    /// Not connected: connecting, or waiting to try again.
    Down,
    Idle(Conn),
    Busy(Conn),
    /// Dropped by the pool (a request timed out or was killed mid-request); its keeper has
    /// not yet seen the loss.
    Dropped,
}

struct Waiter {
    unparker: Unparker,
    granted: Option<usize>,
}

impl Pool {
    /// A pool of `size` connections (at least one) to `addr`, made with `options` (their
    /// framing, limits, connect timeout), repaired with `backoff`; it connects once
    /// [started](Self::start).
    pub fn new(addr: SocketAddr, options: ConnOptions, backoff: Backoff, size: usize) -> Pool {
        let size = size.max(1);
        let state = State {
            slots: (0..size).map(|_| Slot::Down).collect(),
            ..State::default()
        };
        let inner = Rc::new(Inner {
            addr,
            options,
            backoff,
            size,
            state: RefCell::new(state),
            keepers: RefCell::new(Vec::new()),
            running: Cell::new(false),
        });
        Pool {
            _owner: Rc::new(Owner(Rc::clone(&inner))),
            inner,
        }
    }

    /// Starts one keeper tasklet per connection, which connects in the background. Starting
    /// a running pool does nothing.
    ///
    /// # Errors
    ///
    /// [`NetError::Spawn`] (then no keeper runs).
    pub fn start<'a>(&self, spawner: impl Into<Spawner<'a>>) -> Result<(), NetError> {
        if self.inner.running.get() {
            return Ok(());
        }
        let mut spawner = spawner.into();
        let mut keepers = Vec::with_capacity(self.inner.size);
        for slot in 0..self.inner.size {
            let inner = Rc::clone(&self.inner);
            match spawner.spawn("pool", move |h| keep(h, &inner, slot)) {
                Ok(keeper) => keepers.push(keeper),
                Err(e) => {
                    keepers.iter().for_each(Unparker::kill);
                    return Err(e);
                }
            }
        }
        *self.inner.keepers.borrow_mut() = keepers;
        self.inner.running.set(true);
        Ok(())
    }

    /// Stops: closes every connection, ends the keepers, and fails the waiting requests (and
    /// later ones) with [`NetError::PoolStopped`]. A request holding a connection finishes.
    /// Never parks; a stopped pool can start again. Dropping the last clone stops it.
    pub fn stop(&self) {
        stop(&self.inner);
    }

    /// Whether it was started and not stopped.
    pub fn is_running(&self) -> bool {
        self.inner.running.get()
    }

    /// The back end's address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// Its counters now.
    pub fn stats(&self) -> PoolStats {
        let state = self.inner.state.borrow();
        PoolStats {
            size: self.inner.size,
            idle: state.idle.len(),
            busy: state
                .slots
                .iter()
                .filter(|s| matches!(s, Slot::Busy(_)))
                .count(),
            waiting: state.queue.len(),
            broken: state.broken,
            repaired: state.repaired,
        }
    }

    /// What last went wrong with the back end: a failed connect, a lost connection, a reply
    /// that did not come in time.
    pub fn last_error(&self) -> Option<String> {
        self.inner.state.borrow().last_error.clone()
    }

    /// Sends `frame` on a free connection and returns the one reply frame, within `timeout`
    /// (waiting for a free connection included). Parks the tasklet while all connections are
    /// busy or down.
    ///
    /// # Errors
    ///
    /// - [`NetError::PoolTimedOut`] when no connection came free, or no reply came, within
    ///   `timeout`, with the pool's last failure (say, "connection to … refused").
    /// - [`NetError::PoolBroken`] when the connection broke during the request (it is
    ///   dropped and opened again in the background).
    /// - [`NetError::PoolStopped`] when the pool is not running.
    /// - A frame the connection's codec cannot encode (nothing was sent; the connection stays).
    pub fn request(
        &self,
        h: &Handle,
        frame: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, NetError> {
        // A timeout past what the clock can count means no deadline.
        let deadline = fibra_rt::time::now().checked_add(timeout);
        let mut lease = self.acquire(h, deadline, timeout)?;
        match h.send_frame(&lease.conn, frame) {
            Ok(()) => {}
            Err(e @ (NetError::TooLong { .. } | NetError::InvalidFrame { .. })) => return Err(e),
            Err(e) => return Err(lease.broken(e)),
        }
        lease.in_flight = true;
        let reply = match deadline {
            Some(deadline) => h.receive_until(&lease.conn, deadline),
            None => h.receive(&lease.conn),
        };
        match reply {
            Ok(reply) => {
                lease.in_flight = false;
                Ok(reply)
            }
            Err(NetError::TimedOut) => {
                let why = format!("no reply from {} within {timeout:?}", self.inner.addr);
                self.inner.state.borrow_mut().last_error = Some(why);
                Err(self.timed_out(timeout, "waiting for the reply"))
            }
            Err(e) => Err(lease.broken(e)),
        }
    }

    fn timed_out(&self, waited: Duration, stage: &'static str) -> NetError {
        NetError::PoolTimedOut(Box::new(crate::PoolTimeout {
            addr: self.inner.addr,
            waited,
            stage,
            last_error: self.last_error(),
        }))
    }

    /// Takes a free connection, waiting in line until `deadline` (`None`: for good).
    fn acquire(
        &self,
        h: &Handle,
        deadline: Option<Instant>,
        timeout: Duration,
    ) -> Result<Lease, NetError> {
        if !self.is_running() {
            return Err(NetError::PoolStopped {
                addr: self.inner.addr,
            });
        }
        let free = {
            let mut state = self.inner.state.borrow_mut();
            if state.queue.is_empty() {
                state.take_idle()
            } else {
                None
            }
        };
        if let Some((slot, conn)) = free {
            return Ok(self.lease(slot, conn));
        }
        let key = {
            let mut state = self.inner.state.borrow_mut();
            let key = state.waiters.insert(Waiter {
                unparker: h.unparker(),
                granted: None,
            });
            state.queue.push_back(key);
            key
        };
        // Leaves the line however the wait ends (a kill included), giving back a grant it
        // did not use.
        let _leave = WaitGuard::new(|_| self.inner.state.borrow_mut().leave_line(key));
        loop {
            if let Some((slot, conn)) = self.inner.state.borrow_mut().take_grant(key) {
                return Ok(self.lease(slot, conn));
            }
            if !self.is_running() {
                return Err(NetError::PoolStopped {
                    addr: self.inner.addr,
                });
            }
            let Some(deadline) = deadline else {
                h.park();
                continue;
            };
            if h.park_until(deadline).is_err() {
                if let Some((slot, conn)) = self.inner.state.borrow_mut().take_grant(key) {
                    return Ok(self.lease(slot, conn));
                }
                return Err(self.timed_out(timeout, "waiting for a free connection"));
            }
        }
    }

    fn lease(&self, slot: usize, conn: Conn) -> Lease {
        Lease {
            inner: Rc::clone(&self.inner),
            slot,
            conn,
            in_flight: false,
        }
    }
}

/// [`Pool::stop`], for the pool's state: by a clone, or by the last one's drop.
fn stop(inner: &Inner) {
    if !inner.running.replace(false) {
        return;
    }
    for keeper in inner.keepers.borrow_mut().drain(..) {
        keeper.kill();
    }
    // Busy (a drop during a pool call): the keepers are ended, and the connections close
    // with the pool's state once its leases are gone.
    let Ok(mut state) = inner.state.try_borrow_mut() else {
        return;
    };
    state.idle.clear();
    for slot in &mut state.slots {
        if let Slot::Idle(conn) = slot {
            conn.close();
        }
        if !matches!(slot, Slot::Busy(_)) {
            *slot = Slot::Down;
        }
    }
    for &key in &state.queue {
        state.waiters[key].unparker.unpark();
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("addr", &self.inner.addr)
            .field("running", &self.is_running())
            .field("stats", &self.stats())
            .finish()
    }
}

impl State {
    /// A free slot whose connection is still up; lost ones are left to their keepers.
    fn take_idle(&mut self) -> Option<(usize, Conn)> {
        while let Some(slot) = self.idle.pop_front() {
            let conn = match &self.slots[slot] {
                Slot::Idle(conn) if conn.lost().is_none() => conn.clone(),
                _ => continue,
            };
            if conn.received() > 0 {
                self.drop_unasked(slot, &conn, "while it was idle");
                continue;
            }
            self.slots[slot] = Slot::Busy(conn.clone());
            return Some((slot, conn));
        }
        None
    }

    /// `conn` holds bytes nobody asked for, received `when`: the next request would read
    /// them as its reply, so it is dropped, and its keeper opens a new one.
    fn drop_unasked(&mut self, slot: usize, conn: &Conn, when: &str) {
        let why = format!(
            "the back end sent {} bytes nobody asked for {when}; the connection was dropped",
            conn.received()
        );
        log::warn!(target: "fibra_net::pool", "connection {slot}: {why}");
        self.last_error = Some(why);
        conn.abort();
        self.slots[slot] = Slot::Dropped;
    }

    /// The slot granted to waiter `key`, if any, with its connection. A grant whose
    /// connection was lost since puts the waiter back at the head of the line.
    fn take_grant(&mut self, key: usize) -> Option<(usize, Conn)> {
        let slot = self.waiters[key].granted.take()?;
        let conn = match &self.slots[slot] {
            Slot::Busy(conn) if conn.lost().is_none() => conn.clone(),
            _ => {
                self.queue.push_front(key);
                return None;
            }
        };
        if conn.received() > 0 {
            self.drop_unasked(slot, &conn, "while it was idle");
            self.queue.push_front(key);
            return None;
        }
        Some((slot, conn))
    }

    /// Waiter `key` leaves the line (however its wait ended), giving back a grant it did not
    /// take.
    fn leave_line(&mut self, key: usize) {
        let waiter = self.waiters.remove(key);
        if let Some(at) = self.queue.iter().position(|&k| k == key) {
            self.queue.remove(at);
        }
        if let Some(slot) = waiter.granted {
            if let Slot::Busy(conn) = &self.slots[slot] {
                let conn = conn.clone();
                self.free(slot, conn);
            }
        }
    }

    /// `slot` (up, `conn`) is free: to the first waiter, or to the idle list.
    fn free(&mut self, slot: usize, conn: Conn) {
        if let Some(key) = self.queue.pop_front() {
            self.slots[slot] = Slot::Busy(conn);
            let waiter = &mut self.waiters[key];
            waiter.granted = Some(slot);
            waiter.unparker.unpark();
        } else {
            self.slots[slot] = Slot::Idle(conn);
            self.idle.push_back(slot);
        }
    }
}

/// A connection lent to one request; given back (or dropped, when a reply may still come)
/// when it goes.
struct Lease {
    inner: Rc<Inner>,
    slot: usize,
    conn: Conn,
    /// A frame was sent and its reply not read: the connection cannot be lent again.
    in_flight: bool,
}

impl Lease {
    /// The connection broke with `e`: dropped, and `e` said as the request's error.
    fn broken(&mut self, e: NetError) -> NetError {
        self.in_flight = true;
        self.inner.state.borrow_mut().last_error = Some(e.to_string());
        NetError::PoolBroken {
            addr: self.inner.addr,
            source: Box::new(e),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut state = self.inner.state.borrow_mut();
        let ours = matches!(&state.slots[self.slot], Slot::Busy(c) if c.id() == self.conn.id());
        if !ours {
            return;
        }
        if self.in_flight || self.conn.lost().is_some() || !self.inner.running.get() {
            // Its keeper sees the loss and opens a new one.
            self.conn.abort();
            state.slots[self.slot] = Slot::Dropped;
        } else if self.conn.received() > 0 {
            state.drop_unasked(self.slot, &self.conn, "after the reply");
        } else {
            let conn = self.conn.clone();
            state.free(self.slot, conn);
        }
    }
}

/// One slot's keeper: connects, lends the connection to the pool, waits for its loss, and
/// connects again.
fn keep(h: &Handle, inner: &Rc<Inner>, slot: usize) {
    let mut waits = inner.backoff.delays();
    let mut was_up = false;
    loop {
        let again_at_once = match h.connect_with(inner.addr, inner.options.clone()) {
            Ok(conn) => {
                let since = fibra_rt::time::now();
                {
                    let mut state = inner.state.borrow_mut();
                    if was_up {
                        state.repaired += 1;
                    }
                    state.free(slot, conn.clone());
                }
                was_up = true;
                log::debug!(target: "fibra_net::pool", "connection {slot} to {} is up", inner.addr);
                let lost = h.on_lost_connection(&conn);
                let mut state = inner.state.borrow_mut();
                let dropped = matches!(state.slots[slot], Slot::Dropped);
                state.slots[slot] = Slot::Down;
                if let Some(at) = state.idle.iter().position(|&s| s == slot) {
                    state.idle.remove(at);
                }
                state.broken += 1;
                if !dropped && lost != Lost::Aborted {
                    state.last_error = Some(format!("connection to {} lost: {lost}", inner.addr));
                }
                log::debug!(target: "fibra_net::pool", "connection {slot} to {} lost: {lost}", inner.addr);
                // A connection the pool dropped itself, or one that stayed up, is opened
                // again at once; one the back end keeps closing meets growing waits.
                let stable = since.elapsed() >= waits.backoff().stable_after();
                if stable {
                    waits.reset();
                }
                dropped || stable
            }
            Err(e) => {
                log::debug!(target: "fibra_net::pool", "connect to {} failed: {e}", inner.addr);
                inner.state.borrow_mut().last_error =
                    Some(super::client::connect_failure(inner.addr, &e));
                false
            }
        };
        if again_at_once {
            continue;
        }
        let wait = waits.next_wait();
        if waits.is_exhausted() {
            log::warn!(target: "fibra_net::pool", "connection {slot} to {} gave up after {} attempts", inner.addr, waits.failures());
            return;
        }
        fibra_tasks::TasksExt::sleep(h, wait);
    }
}
