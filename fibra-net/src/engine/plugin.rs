//! `NetPlugin`: serves the network ops, polls readiness, writes coalesced output.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::rc::Rc;
use std::task::Poll;
use std::time::Instant;

use std::net::ToSocketAddrs;

use fibra_rt::{Context, Events, Plugin, Registry, Router, Serves, TaskletId};

use crate::api::conn::{Conn, Listener};
use crate::api::error::{Lost, NetError};
use crate::api::ops::{
    Abort, Accept, Adopt, Close, Connect, Drain, Flush, Listen, OnClosed, OnInput, OnLost, Receive,
    Tried, TryReceive,
};
use crate::api::options::ListenOptions;
use crate::api::stats::NetStats;
use crate::engine::shared::{Key, Shared};
use crate::engine::sys::Sys;
use crate::engine::table::{Job, NextJob, Table};

/// The network plugin. Add it to a schedule to use [`NetExt`](crate::NetExt).
///
/// ```no_run
/// use fibra_net::{NetExt, NetPlugin};
/// use fibra_rt::{Schedule, SpawnOptions};
///
/// let mut schedule = Schedule::new();
/// schedule.add_plugin(NetPlugin::new()?)?;
/// schedule.spawn_named("echo", |h| {
///     let listener = h.listen("127.0.0.1:7000").expect("listen");
///     while let Ok((conn, _peer)) = h.accept(&listener) {
///         // One tasklet per connection would be spawned here (see fibra-tasks).
///         while let Ok(line) = h.receive(&conn) {
///             let _ = h.send_frame(&conn, &line);
///         }
///     }
/// })?;
/// schedule.run()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct NetPlugin {
    shared: Rc<Shared>,
}

impl fmt::Debug for NetPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetPlugin")
            .field("stats", &self.stats())
            .finish()
    }
}

impl NetPlugin {
    /// A network plugin. Its sockets are watched by the reactor of the schedule it is added
    /// to.
    ///
    /// # Errors
    ///
    /// None today; the `Result` is kept so that setting up may fail later without breaking
    /// callers.
    pub fn new() -> io::Result<NetPlugin> {
        if fibra_rt::time::is_simulated() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a real network plugin on a thread a simulation drives (fibra-sim): its \
                 sockets would leave the simulation; the simulation's hosts have theirs",
            ));
        }
        Ok(NetPlugin::with_sys(Sys::default()))
    }

    /// A network plugin whose sockets live in a simulated network (`sim` feature): its
    /// table, the same code as [`new`](Self::new)'s, makes its system calls through `net`
    /// and takes its readiness from it. Used by the simulator, fibra-sim; drive its schedule
    /// with `tick` on a simulated clock ([`fibra_rt::time`]).
    #[cfg(feature = "sim")]
    pub fn simulated(net: Rc<dyn crate::sim::SimNet>) -> NetPlugin {
        NetPlugin::with_sys(Sys { sim: Some(net) })
    }

    fn with_sys(sys: Sys) -> NetPlugin {
        let shared = Rc::new_cyclic(|me| Shared {
            table: RefCell::new(Table::new(me.clone(), sys)),
            deferred: RefCell::new(Vec::new()),
        });
        NetPlugin { shared }
    }

    /// Listens on `addr` from the host, before (or between) ticks: no tasklet needed to bind,
    /// so a bad address is an error at once. Tasklets then accept from the listener.
    ///
    /// ```
    /// use fibra_net::{NetExt, NetPlugin};
    /// use fibra_rt::Schedule;
    ///
    /// let mut schedule = Schedule::new();
    /// schedule.add_plugin(NetPlugin::new()?)?;
    /// let net = schedule.plugin::<NetPlugin>().unwrap();
    /// let listener = net.listen("127.0.0.1:0")?;
    /// println!("listening on {}", listener.local_addr());
    /// schedule.spawn(move |h| {
    ///     let client = h.connect(listener.local_addr()).unwrap();
    ///     let (conn, _peer) = h.accept(&listener).unwrap();
    ///     h.send_frame(&client, b"hi").unwrap();
    ///     assert_eq!(h.receive(&conn).unwrap(), b"hi");
    /// })?;
    /// schedule.run()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`NetError::Bind`] (address in use, not allowed...), or an error if the plugin was not
    /// added to a schedule yet.
    pub fn listen<A: ToSocketAddrs>(&self, addr: A) -> Result<Listener, NetError> {
        self.listen_with(addr, ListenOptions::default())
    }

    /// Like [`listen`](Self::listen), with options.
    ///
    /// # Errors
    ///
    /// As [`listen`](Self::listen).
    pub fn listen_with<A: ToSocketAddrs>(
        &self,
        addr: A,
        options: ListenOptions,
    ) -> Result<Listener, NetError> {
        let addr = crate::api::ext::resolve(addr)?;
        let (key, local) = self.shared.table.borrow_mut().listen(addr, &options)?;
        Ok(Listener::new(Rc::clone(&self.shared), key, local))
    }

    /// Connections, sockets, waiting tasklets and buffered bytes, now.
    pub fn stats(&self) -> NetStats {
        self.shared.table.borrow().stats()
    }

    #[inline]
    fn owns(&self, shared: &Rc<Shared>) -> Result<(), NetError> {
        if Rc::ptr_eq(&self.shared, shared) {
            Ok(())
        } else {
            Err(not_ours())
        }
    }

    /// Runs `f` on the table for `conn`, if `conn` is this plugin's.
    fn serve<T>(
        &self,
        conn: &Conn,
        f: impl FnOnce(&mut Table, Key) -> Poll<Result<T, NetError>>,
    ) -> Poll<Result<T, NetError>> {
        match self.owns(conn.shared()) {
            Ok(()) => f(&mut self.shared.table.borrow_mut(), conn.key()),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn release_deferred(&self) {
        if !self.shared.deferred.borrow().is_empty() {
            self.shared
                .table
                .borrow_mut()
                .release_deferred(&self.shared.deferred);
        }
        // Input jobs taken off the table (replaced, or their connection removed): dropped
        // with the table free, since their destructors may use connections.
        let unwatched = self.shared.table.borrow_mut().take_unwatched();
        drop(unwatched);
    }
}

/// The error of an op on a connection of another schedule's plugin (kept out of line: the
/// check is on every op's path).
#[cold]
#[inline(never)]
fn not_ours() -> NetError {
    NetError::Io(io::Error::other(
        "this connection belongs to another schedule's network plugin",
    ))
}

impl Plugin for NetPlugin {
    fn added(&mut self, registry: Registry) {
        self.shared.table.borrow_mut().attach(registry);
    }

    fn register(router: &mut Router<Self>) {
        router
            .op::<Listen>()
            .op::<Accept>()
            .op::<Connect>()
            .op::<Adopt>()
            .op::<Receive>()
            .op::<Drain>()
            .op::<Flush>()
            .op::<Close>()
            .op::<Abort>()
            .op::<OnLost>()
            .op::<OnClosed>()
            .op::<TryReceive>()
            .op::<OnInput>()
            .op::<NextJob>();
    }

    fn poll(&mut self, cx: &mut Context<'_>, events: Events<'_>) -> io::Result<()> {
        self.release_deferred();
        self.shared.table.borrow_mut().poll(events, cx);
        self.release_deferred();
        Ok(())
    }

    fn flush(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        self.release_deferred();
        {
            let mut table = self.shared.table.borrow_mut();
            // Aborts first (a connection aborted this round gets no batch), then the round's
            // group batches, then the members a seal cut off, then the writes.
            table.run_deferred(cx);
            table.seal_all();
            table.run_deferred(cx);
            table.flush_all(cx);
        }
        self.release_deferred();
        Ok(())
    }

    fn next_deadline(&self) -> Option<Instant> {
        let table = self.shared.table.borrow();
        if table.has_work_now() {
            // Due already: the schedule's last clock reading is early enough.
            return Some(table.epoch());
        }
        table.next_deadline()
    }

    fn cancel(&mut self, id: TaskletId) {
        self.shared.table.borrow_mut().forget(id);
    }

    /// Stops accepting (listeners close), and closes every connection gracefully: queued
    /// output (its groups' too) is written, within each connection's close timeout, then
    /// FIN. No connection is made or taken afterwards.
    fn drain(&mut self, cx: &mut Context<'_>) {
        self.release_deferred();
        let mut table = self.shared.table.borrow_mut();
        table.run_deferred(cx);
        table.seal_all();
        table.drain(cx);
    }

    fn is_drained(&self) -> bool {
        self.shared.table.borrow().is_drained()
    }

    /// Armed input watches ([`OnInput`]): connections served without a tasklet while idle
    /// keep the schedule's `run` going, as a parked receiver's tasklet would. Each ends with
    /// its connection (a loss, a close, the schedule dropped).
    fn has_work(&self) -> bool {
        self.shared
            .table
            .try_borrow()
            .is_ok_and(|table| table.watch_work() > 0)
    }
}

impl Serves<Listen> for NetPlugin {
    fn submit(
        &mut self,
        op: Listen,
        _: TaskletId,
        _: &mut Context<'_>,
    ) -> Poll<Result<Listener, NetError>> {
        let result = self.shared.table.borrow_mut().listen(op.addr, &op.options);
        Poll::Ready(result.map(|(key, addr)| Listener::new(Rc::clone(&self.shared), key, addr)))
    }
}

impl Serves<Accept> for NetPlugin {
    fn submit(
        &mut self,
        op: Accept,
        from: TaskletId,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(Conn, std::net::SocketAddr), NetError>> {
        if let Err(e) = self.owns(op.listener.shared()) {
            return Poll::Ready(Err(e));
        }
        let mut table = self.shared.table.borrow_mut();
        match table.submit_accept(op.listener.key(), from, cx.now()) {
            Poll::Ready(result) => Poll::Ready(result.map(|(key, addr)| (table.conn(key), addr))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Serves<Connect> for NetPlugin {
    fn submit(
        &mut self,
        op: Connect,
        from: TaskletId,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Conn, NetError>> {
        let mut table = self.shared.table.borrow_mut();
        match table.submit_connect(op.addr, op.local, op.options, from, cx.now()) {
            Poll::Ready(result) => Poll::Ready(result.map(|key| table.conn(key))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Serves<Adopt> for NetPlugin {
    fn submit(
        &mut self,
        op: Adopt,
        _: TaskletId,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Conn, NetError>> {
        let mut table = self.shared.table.borrow_mut();
        let adopted = table.adopt(
            op.stream,
            op.options,
            #[cfg(feature = "tls")]
            op.tls.as_ref(),
            cx.now(),
        );
        Poll::Ready(adopted.map(|key| table.conn(key)))
    }
}

impl Serves<Receive> for NetPlugin {
    fn submit(
        &mut self,
        op: Receive,
        from: TaskletId,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Vec<u8>, NetError>> {
        self.serve(&op.conn, |t, key| {
            t.submit_receive(key, from, op.buf, op.mode, cx)
        })
    }
}

impl Serves<TryReceive> for NetPlugin {
    fn submit(&mut self, op: TryReceive, _: TaskletId, cx: &mut Context<'_>) -> Poll<Tried> {
        if let Err(e) = self.owns(op.conn.shared()) {
            return Poll::Ready(Tried::Failed(e));
        }
        let mut table = self.shared.table.borrow_mut();
        Poll::Ready(table.submit_try_receive(op.conn.key(), op.buf, op.mode, cx))
    }
}

impl Serves<NextJob> for NetPlugin {
    fn submit(&mut self, _: NextJob, from: TaskletId, _: &mut Context<'_>) -> Poll<Option<Job>> {
        self.shared.table.borrow_mut().next_job(from)
    }
}

impl Serves<OnInput> for NetPlugin {
    fn submit(
        &mut self,
        op: OnInput,
        _: TaskletId,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), NetError>> {
        let OnInput { conn, job, name } = op;
        if let Err(e) = self.owns(conn.shared()) {
            return Poll::Ready(Err(e));
        }
        let armed = self
            .shared
            .table
            .borrow_mut()
            .submit_watch(conn.key(), job, name, cx);
        // A refused or replaced job is dropped here, off the table.
        self.release_deferred();
        Poll::Ready(armed.map_err(|(e, _job)| e))
    }
}

impl Drop for NetPlugin {
    fn drop(&mut self) {
        // Armed jobs hold their connections (a cycle through the table): dropped here, once
        // the table is free, so that their destructors (a protocol's `connection_lost`) run
        // and the connections are released.
        let jobs = match self.shared.table.try_borrow_mut() {
            Ok(mut table) => table.take_watches(),
            Err(_) => return,
        };
        drop(jobs);
    }
}

impl Serves<Drain> for NetPlugin {
    fn submit(
        &mut self,
        op: Drain,
        from: TaskletId,
        _: &mut Context<'_>,
    ) -> Poll<Result<(), NetError>> {
        self.serve(&op.conn, |t, key| t.submit_drain(key, from))
    }
}

impl Serves<Flush> for NetPlugin {
    fn submit(
        &mut self,
        op: Flush,
        from: TaskletId,
        _: &mut Context<'_>,
    ) -> Poll<Result<(), NetError>> {
        self.serve(&op.conn, |t, key| t.submit_flush(key, from))
    }
}

impl Serves<Close> for NetPlugin {
    fn submit(
        &mut self,
        op: Close,
        from: TaskletId,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), NetError>> {
        self.serve(&op.conn, |t, key| t.submit_close(key, from, cx))
    }
}

impl Serves<Abort> for NetPlugin {
    fn submit(&mut self, op: Abort, _: TaskletId, cx: &mut Context<'_>) -> Poll<()> {
        if self.owns(op.conn.shared()).is_ok() {
            self.shared.table.borrow_mut().abort(op.conn.key(), cx);
        }
        Poll::Ready(())
    }
}

impl Serves<OnClosed> for NetPlugin {
    fn submit(&mut self, op: OnClosed, from: TaskletId, _: &mut Context<'_>) -> Poll<Lost> {
        if self.owns(op.conn.shared()).is_err() {
            return Poll::Ready(Lost::Closed);
        }
        self.shared
            .table
            .borrow_mut()
            .submit_closed(op.conn.key(), from)
    }
}

impl Serves<OnLost> for NetPlugin {
    fn submit(&mut self, op: OnLost, from: TaskletId, _: &mut Context<'_>) -> Poll<Lost> {
        if self.owns(op.conn.shared()).is_err() {
            return Poll::Ready(Lost::Closed);
        }
        self.shared
            .table
            .borrow_mut()
            .submit_lost(op.conn.key(), from)
    }
}
