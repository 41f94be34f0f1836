//! `Pool`: N connections to one server, lent one call at a time to any tasklet, and opened
//! again in the background (with backoff) when they break. A call never waits past its
//! timeout: not for a free connection, not for the server to come back.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use fibra_net::Backoff;
use fibra_rt::{Handle, SpawnOptions, Unparker};
use fibra_tasks::TasksExt;

use crate::client::{default_backoff, Redial};
use crate::cmd::Cmd;
use crate::commands::Commands;
use crate::config::Config;
use crate::connection::{deadline_after, Connection};
use crate::error::RedisError;
use crate::value::Value;

/// A pool's counters, from [`Pool::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Connections the pool keeps (up or not).
    pub size: usize,
    /// Connections up and free.
    pub idle: usize,
    /// Connections lent to a call.
    pub busy: usize,
    /// Calls waiting for a free connection.
    pub waiting: usize,
    /// Connections that broke (a timeout, a loss, the server gone) so far.
    pub broken: u64,
    /// Connections opened again after one broke.
    pub repaired: u64,
}

/// N connections to one Redis server, shared by the tasklets of a schedule. Clones refer to
/// the same pool.
///
/// - [`start`](Self::start) spawns one keeper tasklet per connection; it connects, and
///   after its connection broke connects again, waiting as the [`Backoff`] says. Starting
///   never fails because the server is down.
/// - A call borrows a free connection (first come, first served), makes its call and gives
///   it back; a connection that broke during the call (a timeout, a loss, an invalid reply)
///   or whose tasklet was killed mid-call is never lent again: its keeper replaces it. One
///   the server closed while it was idle is noticed before it is lent.
/// - A call fails within its timeout when no connection is free or up:
///   [`RedisError::Unavailable`], with the last failure ("connection refused").
/// - Dropping the last clone stops it, as [`stop`](Self::stop) does.
///
/// ```no_run
/// use fibra_redis::{Commands, Config, Pool};
/// # fn demo(h: &fibra_rt::Handle) -> Result<(), fibra_redis::RedisError> {
/// let pool = Pool::new(Config::parse("redis://127.0.0.1:6379")?, 4);
/// pool.start(h)?;
/// let mut p = pool.clone(); // helpers take `&mut self`: a clone per tasklet
/// p.set(h, "k", "v")?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Pool {
    inner: Rc<Inner>,
    /// Shared by the clones only (not by the keepers): the last clone dropped stops the pool.
    _owner: Rc<Owner>,
}

/// Stops the pool when the last [`Pool`] clone is dropped, so that its keepers end.
struct Owner(Rc<Inner>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.stop();
    }
}

struct Inner {
    config: Config,
    backoff: Backoff,
    size: usize,
    state: RefCell<State>,
    running: Cell<bool>,
}

#[derive(Default)]
struct State {
    slots: Vec<Slot>,
    idle: VecDeque<usize>,
    /// Calls waiting for a free connection, first come first served.
    waiters: VecDeque<(u64, Unparker)>,
    next_waiter: u64,
    keepers: Vec<Option<Unparker>>,
    last_error: Option<String>,
    broken: u64,
    repaired: u64,
}

enum Slot {
    /// Not connected; why it went down, for its keeper's log and backoff.
    Down(Option<String>),
    Idle(Box<Connection>),
    Busy,
}

impl Pool {
    /// A pool of `size` connections (at least one) to the server of `config`, repaired with
    /// the default backoff (100 ms doubling up to 5 s, with jitter); it connects once
    /// [started](Self::start).
    pub fn new(config: Config, size: usize) -> Pool {
        Pool::with_backoff(config, size, default_backoff())
    }

    /// A pool with its own backoff.
    pub fn with_backoff(config: Config, size: usize, backoff: Backoff) -> Pool {
        let size = size.max(1);
        let state = State {
            slots: (0..size).map(|_| Slot::Down(None)).collect(),
            keepers: (0..size).map(|_| None).collect(),
            ..State::default()
        };
        let inner = Rc::new(Inner {
            config,
            backoff,
            size,
            state: RefCell::new(state),
            running: Cell::new(false),
        });
        Pool {
            _owner: Rc::new(Owner(Rc::clone(&inner))),
            inner,
        }
    }

    /// Starts the keepers (one tasklet per connection), which connect in the background.
    /// Starting a running pool does nothing.
    ///
    /// # Errors
    ///
    /// [`RedisError::Usage`] when the keepers cannot be spawned (no tasks plugin).
    pub fn start(&self, h: &Handle) -> Result<(), RedisError> {
        if self.inner.running.replace(true) {
            return Ok(());
        }
        for slot in 0..self.inner.size {
            let inner = Rc::clone(&self.inner);
            let options = SpawnOptions::new().name("redis-pool-keeper");
            if let Err(e) = h.spawn_detached_with(options, move |h| keep(h, &inner, slot)) {
                self.stop();
                return Err(RedisError::Usage {
                    command: "Pool::start".into(),
                    reason: format!("cannot spawn the pool's keepers: {e}"),
                });
            }
        }
        Ok(())
    }

    /// Stops: ends the keepers, closes the free connections, and fails the waiting calls
    /// (and later ones) with [`RedisError::Usage`]. A call holding a connection finishes.
    pub fn stop(&self) {
        self.inner.stop();
    }

    /// Whether it runs.
    pub fn is_running(&self) -> bool {
        self.inner.running.get()
    }

    /// Its counters.
    pub fn stats(&self) -> PoolStats {
        let state = self.inner.state.borrow();
        PoolStats {
            size: self.inner.size,
            idle: state.idle.len(),
            busy: state
                .slots
                .iter()
                .filter(|s| matches!(s, Slot::Busy))
                .count(),
            waiting: state.waiters.len(),
            broken: state.broken,
            repaired: state.repaired,
        }
    }

    /// What went wrong last (a failed connect, a broken connection), if anything.
    pub fn last_error(&self) -> Option<String> {
        self.inner.state.borrow().last_error.clone()
    }

    /// The config.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Borrows a connection and calls `cmd` on it, all within the call timeout.
    ///
    /// # Errors
    ///
    /// As [`Connection::call`]; [`RedisError::Unavailable`] when no connection was free
    /// and up in time; [`RedisError::Usage`] when the pool is not running.
    pub fn call(&self, h: &Handle, cmd: &Cmd) -> Result<Value, RedisError> {
        self.call_blocking_shared(h, cmd, Duration::ZERO)
    }

    fn call_blocking_shared(
        &self,
        h: &Handle,
        cmd: &Cmd,
        block: Duration,
    ) -> Result<Value, RedisError> {
        let timeout = self.inner.config.call_timeout().saturating_add(block);
        let deadline = deadline_after(timeout);
        let mut lease = self.lend(h, deadline, &|| cmd.name().into_owned())?;
        lease.conn().call_until(h, cmd, deadline, timeout)
    }

    /// Borrows a connection and sends `cmds` on it in one write; the replies in order, all
    /// within the call timeout.
    ///
    /// # Errors
    ///
    /// As [`Connection::pipeline`], and as [`call`](Self::call).
    pub fn pipeline(
        &self,
        h: &Handle,
        cmds: &[Cmd],
    ) -> Result<Vec<Result<Value, RedisError>>, RedisError> {
        let timeout = self.inner.config.call_timeout();
        let deadline = deadline_after(timeout);
        let mut lease = self.lend(h, deadline, &|| Cmd::first_name(cmds))?;
        lease.conn().pipeline_until(h, cmds, deadline, timeout)
    }

    /// A connection for one call: a free one that the server did not close while it was
    /// idle (one it closed goes down for its keeper, and the next is tried).
    fn lend(
        &self,
        h: &Handle,
        deadline: Instant,
        command: &dyn Fn() -> String,
    ) -> Result<Lease, RedisError> {
        loop {
            let mut lease = self.acquire(h, deadline, command)?;
            lease.conn().probe_idle(h);
            if lease.conn().is_usable() {
                return Ok(lease);
            }
            // Dropped unusable: its slot goes down, its keeper opens a new one.
        }
    }

    /// Takes a free, usable connection, waiting in line until `deadline`.
    fn acquire(
        &self,
        h: &Handle,
        deadline: Instant,
        command: &dyn Fn() -> String,
    ) -> Result<Lease, RedisError> {
        let mut waiting: Option<Waiting<'_>> = None;
        loop {
            if !self.is_running() {
                return Err(RedisError::Usage {
                    command: command(),
                    reason: "the pool is not running (Pool::start)".into(),
                });
            }
            let first_in_line = {
                let state = self.inner.state.borrow();
                match &waiting {
                    None => state.waiters.is_empty(),
                    Some(w) => state.waiters.front().is_some_and(|(id, _)| *id == w.id),
                }
            };
            if first_in_line {
                if let Some((slot, conn)) = self.take_idle() {
                    drop(waiting);
                    // The next in line may find another free connection.
                    self.wake_first();
                    return Ok(Lease {
                        inner: Rc::clone(&self.inner),
                        slot,
                        conn: Some(conn),
                    });
                }
            }
            if waiting.is_none() {
                let mut state = self.inner.state.borrow_mut();
                let id = state.next_waiter;
                state.next_waiter += 1;
                state.waiters.push_back((id, h.unparker()));
                waiting = Some(Waiting { pool: self, id });
            }
            if h.park_until(deadline).is_err() {
                drop(waiting);
                // Whatever was meant for this call goes to the next in line.
                self.wake_first();
                let state = self.inner.state.borrow();
                return Err(RedisError::Unavailable {
                    command: command(),
                    addr: self.inner.config.addr(),
                    last_error: state.last_error.clone(),
                });
            }
        }
    }

    /// A free connection that is still usable; others go down for their keepers.
    fn take_idle(&self) -> Option<(usize, Connection)> {
        let mut state = self.inner.state.borrow_mut();
        while let Some(slot) = state.idle.pop_front() {
            match std::mem::replace(&mut state.slots[slot], Slot::Busy) {
                Slot::Idle(conn) if conn.is_usable() => return Some((slot, *conn)),
                Slot::Idle(conn) => {
                    let reason = conn.broken().map_or_else(
                        || "the connection was lost while idle".into(),
                        str::to_owned,
                    );
                    state.mark_down(slot, reason);
                }
                other => state.slots[slot] = other,
            }
        }
        None
    }

    fn wake_first(&self) {
        if let Some((_, waiter)) = self.inner.state.borrow().waiters.front() {
            waiter.unpark();
        }
    }
}

/// A place in the line of waiting calls, left however the wait ends (a kill included).
struct Waiting<'a> {
    pool: &'a Pool,
    id: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut state = self.pool.inner.state.borrow_mut();
        if let Some(at) = state.waiters.iter().position(|(id, _)| *id == self.id) {
            state.waiters.remove(at);
            // The first in line may have been woken for a free connection and left (killed)
            // before it took it: the next in line is woken instead, or it would sleep until
            // its timeout beside an idle connection.
            if at == 0 {
                if let Some((_, next)) = state.waiters.front() {
                    next.unpark();
                }
            }
        }
    }
}

impl Inner {
    fn stop(&self) {
        if !self.running.replace(false) {
            return;
        }
        let idle: Vec<Slot> = {
            let mut state = self.state.borrow_mut();
            for keeper in state.keepers.iter_mut().filter_map(Option::take) {
                keeper.kill();
            }
            state.idle.clear();
            for (_, waiter) in &state.waiters {
                waiter.unpark();
            }
            state
                .slots
                .iter_mut()
                .filter(|slot| matches!(slot, Slot::Idle(_)))
                .map(|slot| std::mem::replace(slot, Slot::Down(None)))
                .collect()
        };
        // The free connections close here, outside the borrow.
        drop(idle);
    }
}

impl State {
    /// Slot `slot` is down for `reason`: its keeper is woken to replace it.
    fn mark_down(&mut self, slot: usize, reason: String) {
        log::debug!(target: "fibra_redis", "pool connection {slot} down: {reason}");
        self.broken += 1;
        self.last_error = Some(reason.clone());
        self.slots[slot] = Slot::Down(Some(reason));
        if let Some(keeper) = &self.keepers[slot] {
            keeper.unpark();
        }
    }
}

/// A connection lent to one call; given back (or marked down) when dropped, also when the
/// call's tasklet is killed.
struct Lease {
    inner: Rc<Inner>,
    slot: usize,
    conn: Option<Connection>,
}

impl Lease {
    fn conn(&mut self) -> &mut Connection {
        self.conn.as_mut().expect("held until dropped")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let mut state = self.inner.state.borrow_mut();
        if !self.inner.running.get() {
            state.slots[self.slot] = Slot::Down(None);
            return;
        }
        if conn.is_usable() {
            state.slots[self.slot] = Slot::Idle(Box::new(conn));
            state.idle.push_back(self.slot);
            if let Some((_, waiter)) = state.waiters.front() {
                waiter.unpark();
            }
        } else {
            let reason = conn.broken().map_or_else(
                || "a call was cut off mid-reply (its tasklet was killed)".into(),
                str::to_owned,
            );
            state.mark_down(self.slot, reason);
        }
    }
}

/// A keeper: keeps slot `slot` connected while the pool runs.
fn keep(h: &Handle, inner: &Rc<Inner>, slot: usize) {
    inner.state.borrow_mut().keepers[slot] = Some(h.unparker());
    let mut redial = Redial::new(inner.config.clone(), inner.backoff.clone());
    let mut connected_before = false;
    while inner.running.get() {
        let down = match &mut inner.state.borrow_mut().slots[slot] {
            Slot::Down(reason) => Some(reason.take()),
            _ => None,
        };
        let Some(reason) = down else {
            h.park();
            continue;
        };
        if let Some(reason) = reason {
            redial.lost(reason);
        }
        // One attempt (after the backoff's wait), then look again: the pool may have stopped.
        let deadline = redial
            .next_try()
            .unwrap_or_else(fibra_rt::time::now)
            .max(fibra_rt::time::now())
            + inner.config.connect_timeout();
        match redial.connect(h, deadline, &|| "connect".to_owned()) {
            Ok(conn) => {
                let mut state = inner.state.borrow_mut();
                if !inner.running.get() {
                    return;
                }
                if connected_before {
                    state.repaired += 1;
                }
                connected_before = true;
                state.slots[slot] = Slot::Idle(Box::new(conn));
                state.idle.push_back(slot);
                if let Some((_, waiter)) = state.waiters.front() {
                    waiter.unpark();
                }
            }
            Err(e) => {
                {
                    let mut state = inner.state.borrow_mut();
                    state.last_error = redial.last_error.clone().or_else(|| Some(e.to_string()));
                    state.slots[slot] = Slot::Down(None);
                }
                if redial.is_exhausted() {
                    // The backoff's attempt limit: this connection stays down (calls fail
                    // with the last error) until the pool is stopped.
                    log::warn!(target: "fibra_redis", "pool connection {slot} to {}: giving up: {e}", inner.config.addr());
                    while inner.running.get() {
                        h.park();
                    }
                    return;
                }
            }
        }
    }
}

impl Commands for Pool {
    fn call_blocking(
        &mut self,
        h: &Handle,
        cmd: &Cmd,
        block: Duration,
    ) -> Result<Value, RedisError> {
        self.call_blocking_shared(h, cmd, block)
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("addr", &self.inner.config.addr())
            .field("running", &self.is_running())
            .field("stats", &self.stats())
            .finish()
    }
}
