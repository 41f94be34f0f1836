//! `Schedule`: owns tasklets and plugins, routes yielded ops, and runs steps on `tick()`/`run()`.

//!
//! Split by idea: this file is the façade (the public API); [`core`] holds the tasklet table,
//! [`driver`] the rounds behind `tick`/`run`, [`dispatch`] the routing of yielded ops, and
//! [`lifecycle`] how tasklets end (finish, kill, the one unwind).

mod core;
mod dispatch;
mod driver;
mod lifecycle;

use std::any::Any;
use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::rc::Rc;
use std::time::{Duration, Instant};

pub(crate) use self::core::Core;
use self::dispatch::{park_route, PARK_ROUTE};
use crate::handle::Wakes;
use crate::reactor::{Event, Reactor};
use crate::remote::Remote;
use crate::route::{Route, RouteCache};
use crate::stack::StackPool;
use crate::stall::Stall;
use crate::{
    overflow, Builder, Error, Exit, Handle, Plugin, Router, SpawnOptions, TaskletId, TaskletInfo,
    Unparker,
};

/// At most this many plugins (exit watchers are a 64-bit mask).
const MAX_PLUGINS: usize = 64;

/// Runs tasklets on one thread and routes the ops they yield to plugins.
///
/// The host drives it: [`tick`](Self::tick) from its own loop (never blocks), or
/// [`run`](Self::run) when it has nothing else to do (blocks while nothing is ready, returns
/// when no tasklet is left and no plugin [has work](Self::has_work)).
///
/// ```
/// use fibra_rt::Schedule;
///
/// let mut schedule = Schedule::new();
/// schedule.spawn(|h| {
///     h.park(); // nobody wakes it yet...
/// })?;
/// schedule.spawn(|_h| println!("hello from a tasklet"))?;
/// assert!(schedule.tick()?); // one tasklet is still parked
/// assert_eq!(schedule.len(), 1);
/// # Ok::<(), fibra_rt::Error>(())
/// ```
///
/// A schedule is bound to its thread:
///
/// ```compile_fail
/// fn must_be_send<T: Send>() {}
/// must_be_send::<fibra_rt::Schedule>();
/// ```
pub struct Schedule {
    core: Core,
    plugins: Vec<Box<dyn Plugin>>,
    plugin_names: Vec<&'static str>,
    routes: Vec<Route>,
    /// The routes recently found, by op type.
    route_cache: RouteCache,
    /// The events of the last wait, for every plugin.
    events: Vec<Event>,
    /// The tasklet `run_tasklet` is running. Still set when a call returns only if a plugin
    /// panicked while serving that tasklet's op and the panic went on to the host: the
    /// tasklet's stack was unwound then (as a kill's: its destructors ran, its code stopped)
    /// and the next call reaps it.
    running: Option<TaskletId>,
    /// Tasklets whose end the host asked to hear of ([`Schedule::watch_exit`]): `None` while
    /// they live, then how they ended, until [`Schedule::take_exit`] takes it.
    host_exits: HashMap<TaskletId, Option<Exit>>,
    step_budget: usize,
    _not_send: PhantomData<Rc<()>>,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schedule")
            .field("tasklets", &self.core.tasklets.len())
            .field("runnable", &self.core.run_queue.len())
            .field("routes", &self.routes)
            .finish_non_exhaustive()
    }
}

impl Default for Schedule {
    fn default() -> Self {
        Self::new()
    }
}

impl Schedule {
    pub(crate) fn from_builder(builder: Builder) -> Result<Schedule, Error> {
        overflow::install();
        let reactor = Reactor::new().map_err(Error::Reactor)?;
        let remote = Remote::new(reactor.notifier());
        let wakes = Rc::new(Wakes {
            local: Default::default(),
            kills: Default::default(),
            remote,
        });
        let pool = StackPool::new(builder.stack_size, builder.pool_cap);
        let stall = Stall::new(builder.stall_threshold, builder.first_seq);
        Ok(Schedule {
            core: Core::new(pool, wakes, reactor, builder.first_seq, stall),
            plugins: Vec::new(),
            plugin_names: Vec::new(),
            routes: vec![park_route()],
            route_cache: RouteCache::new(park_route().type_id, PARK_ROUTE),
            events: Vec::new(),
            running: None,
            host_exits: HashMap::new(),
            step_budget: builder.step_budget,
            _not_send: PhantomData,
        })
    }

    /// A schedule with default settings and no plugins.
    ///
    /// # Panics
    ///
    /// When its poller cannot be created (out of file descriptors); see
    /// [`try_new`](Self::try_new).
    pub fn new() -> Self {
        Builder::default().build()
    }

    /// A schedule with default settings, or the reason it could not be created.
    ///
    /// # Errors
    ///
    /// [`Error::Reactor`] when the poller cannot be created.
    pub fn try_new() -> Result<Self, Error> {
        Builder::default().try_build()
    }

    /// A [`Remote`] for this schedule: other threads unpark its tasklets and wake its plugins
    /// through it, even while it blocks in [`run`](Self::run).
    pub fn remote(&self) -> Remote {
        self.core.wakes.remote.clone()
    }

    /// An [`Unparker`] for tasklet `id`: the host (or anything it hands it to) wakes or
    /// [kills](Unparker::kill) that tasklet through it without holding the schedule.
    pub fn unparker(&self, id: TaskletId) -> Unparker {
        Unparker::new(id, Rc::clone(&self.core.wakes))
    }

    /// A [`Builder`] for non-default settings.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Adds a plugin; the op types it registers are routed to it from now on.
    ///
    /// # Errors
    ///
    /// [`Error::OpTaken`] if another plugin already serves one of its op types (nothing is
    /// added then).
    pub fn add_plugin<P: Plugin>(&mut self, plugin: P) -> Result<(), Error> {
        let index = self.plugins.len();
        if index >= MAX_PLUGINS {
            return Err(Error::TooManyPlugins { max: MAX_PLUGINS });
        }
        let mut router = Router::<P>::new(index);
        P::register(&mut router);
        for (i, route) in router.routes.iter().enumerate() {
            let taken = self.routes.iter().any(|r| r.type_id == route.type_id)
                || router.routes[..i]
                    .iter()
                    .any(|r| r.type_id == route.type_id);
            if taken {
                return Err(Error::OpTaken { op: route.name });
            }
        }
        self.routes.extend(router.routes);
        let mut plugin = plugin;
        plugin.added(self.core.reactor.registry(index));
        self.plugins.push(Box::new(plugin));
        self.plugin_names.push(std::any::type_name::<P>());
        self.core.stall.add_plugin(std::any::type_name::<P>());
        Ok(())
    }

    /// The plugin of type `P`, to read its state.
    pub fn plugin<P: Plugin>(&self) -> Option<&P> {
        self.plugins
            .iter()
            .find_map(|p| (&**p as &dyn Any).downcast_ref::<P>())
    }

    /// The plugin of type `P`, to change its settings.
    pub fn plugin_mut<P: Plugin>(&mut self) -> Option<&mut P> {
        self.plugins
            .iter_mut()
            .find_map(|p| (&mut **p as &mut dyn Any).downcast_mut::<P>())
    }

    /// Spawns a tasklet running `f`; it first runs on the next tick.
    ///
    /// # Errors
    ///
    /// [`Error::StackAlloc`] when no stack can be mapped; its message says what to change.
    pub fn spawn<F>(&mut self, f: F) -> Result<TaskletId, Error>
    where
        F: FnOnce(&Handle) + 'static,
    {
        self.spawn_with(SpawnOptions::default(), f)
    }

    /// Spawns a tasklet with a name (shown in logs, [`tasklets`](Self::tasklets) and crash
    /// reports).
    ///
    /// # Errors
    ///
    /// As [`spawn`](Self::spawn).
    pub fn spawn_named<F>(
        &mut self,
        name: impl Into<Cow<'static, str>>,
        f: F,
    ) -> Result<TaskletId, Error>
    where
        F: FnOnce(&Handle) + 'static,
    {
        self.spawn_with(SpawnOptions::new().name(name), f)
    }

    /// Spawns a tasklet with [`SpawnOptions`].
    ///
    /// # Errors
    ///
    /// As [`spawn`](Self::spawn).
    pub fn spawn_with<F>(&mut self, options: SpawnOptions, f: F) -> Result<TaskletId, Error>
    where
        F: FnOnce(&Handle) + 'static,
    {
        self.reap_after_plugin_panic();
        self.core.spawn(options, f)
    }

    /// Keeps how tasklet `id` ends, for [`take_exit`](Self::take_exit) to give to the host.
    /// Returns whether `id` is alive (nothing is kept for a tasklet that already ended).
    pub fn watch_exit(&mut self, id: TaskletId) -> bool {
        if !self.contains(id) {
            return false;
        }
        self.host_exits.entry(id).or_insert(None);
        true
    }

    /// How watched tasklet `id` ended ([`watch_exit`](Self::watch_exit)), once it has: the
    /// exit is given once and then forgotten. `None` while it lives, or if it was not watched.
    ///
    /// ```
    /// use fibra_rt::{Exit, Schedule};
    ///
    /// let mut schedule = Schedule::new();
    /// let id = schedule.spawn(|_h| panic!("no config file"))?;
    /// schedule.watch_exit(id);
    /// schedule.run()?;
    /// assert_eq!(schedule.take_exit(id), Some(Exit::Panicked("no config file".into())));
    /// assert_eq!(schedule.take_exit(id), None);
    /// # Ok::<(), fibra_rt::Error>(())
    /// ```
    pub fn take_exit(&mut self, id: TaskletId) -> Option<Exit> {
        match self.host_exits.get(&id) {
            Some(Some(_)) => self.host_exits.remove(&id).flatten(),
            _ => None,
        }
    }

    /// Spawns `f` as a tasklet named `main` and runs the schedule (as [`run`](Self::run)
    /// does) until that tasklet ends; returns what `f` returned. Other tasklets still alive
    /// then stay in the schedule, for a later `tick` or `run`.
    ///
    /// A `main` that returns a `Result` hands its error to the host, so the process can exit
    /// non-zero with the reason:
    ///
    /// ```
    /// use fibra_rt::Schedule;
    ///
    /// let mut schedule = Schedule::new();
    /// let answer = schedule.block_on(|_h| -> Result<u32, std::num::ParseIntError> {
    ///     Ok("42".parse::<u32>()?)
    /// })??;
    /// assert_eq!(answer, 42);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Ended`] when `main` panicked or was killed instead of returning; the errors of
    /// [`run`](Self::run) ([`Error::Stalled`] if `main` waits for something that can never
    /// come).
    pub fn block_on<F, T>(&mut self, f: F) -> Result<T, Error>
    where
        F: FnOnce(&Handle) -> T + 'static,
        T: 'static,
    {
        let value = Rc::new(Cell::new(None));
        let slot = Rc::clone(&value);
        let id = self.spawn_named("main", move |h| slot.set(Some(f(h))))?;
        self.host_exits.insert(id, None);
        let mut ran = Ok(());
        while ran.is_ok() && self.contains(id) {
            ran = self.run_once(None);
        }
        let exit = self.host_exits.remove(&id).flatten();
        ran?;
        match value.take() {
            Some(v) => Ok(v),
            None => Err(Error::Ended {
                exit: exit.unwrap_or(Exit::Killed),
            }),
        }
    }

    /// Maps stacks until the pool holds `n` free ones (bounded by the pool's cap), so that the
    /// next `n` spawns cost no `mmap`.
    ///
    /// # Errors
    ///
    /// [`Error::StackAlloc`] when a stack cannot be mapped.
    pub fn prewarm(&mut self, n: usize) -> Result<(), Error> {
        self.core.pool.prewarm(n)
    }

    /// How many free stacks the pool holds.
    pub fn pooled_stacks(&self) -> usize {
        self.core.pool.free_len()
    }

    /// Kills tasklet `id` now: it ends at its yield point (a tasklet that never ran just
    /// drops its closure), its destructors run, its pending op is withdrawn from its plugin,
    /// and watchers hear [`Exit::Killed`]. Returns whether `id` was alive.
    ///
    /// A destructor must not yield: one that yields while its tasklet is killed aborts the
    /// process. Nor may it panic: the kill unwinds the tasklet's stack, and a panic during an
    /// unwind aborts the process (Rust's rule; wrap a destructor's fallible work in
    /// [`Handle::catch_panic`]). A tasklet that never ran is not unwound: a panic while its
    /// closure is dropped is reported, and the closure is dropped once. Nor may tasklet code swallow the kill's unwind (a `catch_unwind` that does not
    /// resume it; [`Handle::catch_panic`] does): a tasklet that swallows it and yields again
    /// is unwound again from that yield, and one that does so in a loop keeps the kill, and
    /// its schedule, from ever returning.
    pub fn kill(&mut self, id: TaskletId) -> bool {
        self.reap_after_plugin_panic();
        let killed = self.kill_now(id);
        self.process_kills();
        killed
    }

    /// How many tasklet steps this schedule has run: each resume of a tasklet, to its next
    /// yield or its end. An op answered at once costs a step (the tasklet switches out and
    /// back in); a count that grows faster than the work done tells of yields that could be
    /// calls.
    pub fn steps_run(&self) -> u64 {
        self.core.steps_run
    }

    /// How many tasklets are alive.
    pub fn len(&self) -> usize {
        self.core.tasklets.len()
    }

    /// Whether no tasklet is alive.
    pub fn is_empty(&self) -> bool {
        self.core.tasklets.is_empty()
    }

    /// Whether work is left: a tasklet alive, or a plugin's work that its events will start
    /// tasklets for ([`Plugin::has_work`](crate::Plugin::has_work): the network plugin's
    /// connections waiting without a tasklet). `run` runs while this holds.
    pub fn has_work(&self) -> bool {
        !self.is_empty() || self.plugins.iter().any(|p| p.has_work())
    }

    /// Whether tasklet `id` is alive.
    pub fn contains(&self, id: TaskletId) -> bool {
        self.core.get(id).is_some()
    }

    /// The live tasklets: id, name, state, and what each waits on.
    pub fn tasklets(&self) -> impl Iterator<Item = TaskletInfo<'_>> + '_ {
        let routes = &self.routes;
        self.core
            .tasklets
            .iter()
            .map(move |(_, t)| t.info(|route| routes[route].name))
    }

    /// The earliest instant at which a timer or op deadline falls due: how long a host loop
    /// may sleep before its next `tick()` if it has no other events. `Some(now)` or earlier
    /// when tasklets are runnable right now.
    pub fn next_deadline(&self) -> Option<Instant> {
        if !self.core.run_queue.is_empty()
            || !self.core.wakes.local.borrow().is_empty()
            || !self.core.wakes.kills.borrow().is_empty()
            || self.core.wakes.remote.is_pending()
        {
            return Some(self.core.clock.last());
        }
        let plugins = self.plugins.iter().filter_map(|p| p.next_deadline());
        plugins.chain(self.core.op_deadlines.next_deadline()).min()
    }

    /// Runs one round without ever blocking: polls the reactor with a zero timeout and every
    /// plugin with the events it got, runs
    /// runnable tasklets (at most the step budget of steps), then lets every plugin
    /// [flush](crate::Plugin::flush) what the round queued (the network plugin writes each
    /// connection's output once). Returns whether work remains ([`has_work`](Self::has_work):
    /// tasklets, or connections waiting without one).
    ///
    /// Which to call:
    /// - `tick()` in a loop that has its own pace (a game or GUI frame, a simulation step):
    ///   one call per frame, never waiting.
    /// - [`tick_within(max)`](Self::tick_within) in a loop that has nothing else to wait
    ///   for but must look at something of its own at least every `max` (a stop flag, a
    ///   queue): it sleeps in the reactor while there is nothing to do. `while
    ///   schedule.tick()? {}` instead burns a whole core while idle.
    /// - [`run()`](Self::run) (or `run_for`, `run_until`) when the schedule is all the
    ///   thread does.
    ///
    /// # Errors
    ///
    /// A plugin's fatal poll error ([`Error::Plugin`]).
    pub fn tick(&mut self) -> Result<bool, Error> {
        #[cfg(feature = "sim")]
        if self
            .core
            .wakes
            .remote
            .shared
            .foreign
            .load(std::sync::atomic::Ordering::Acquire)
        {
            // Real timing would decide when, in simulated time, that wake lands.
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "a thread outside the simulation woke this simulated schedule through a \
                 Remote (a remote_channel's sender, Remote::unpark or wake): when it lands \
                 would be chosen by real timing, not the seed; under fibra-sim keep every \
                 sender on a simulated host (fibra_tasks::channel)",
            )));
        }
        self.reap_after_plugin_panic();
        self.poll_round(Some(Duration::ZERO))?;
        self.run_steps(self.step_budget)?;
        self.flush_plugins()?;
        Ok(self.has_work())
    }

    /// Like [`tick`](Self::tick), but when no tasklet is runnable it first waits in the
    /// reactor, up to `max_wait`, for the next event, deadline or [`Remote`] wake; it returns
    /// as soon as that round ran. The host loop that must not spin:
    ///
    /// ```
    /// use std::time::Duration;
    /// # let mut schedule = fibra_rt::Schedule::new();
    /// # let stop = std::sync::atomic::AtomicBool::new(true);
    /// // Sleeps while idle; looks at `stop` at least every 100 ms.
    /// while schedule.tick_within(Duration::from_millis(100))? {
    ///     if stop.load(std::sync::atomic::Ordering::Relaxed) {
    ///         break;
    ///     }
    /// }
    /// # Ok::<(), fibra_rt::Error>(())
    /// ```
    ///
    /// Returns whether work remains, as `tick`. With `max_wait` zero it is `tick`; a `max_wait` too
    /// large to add to the clock (`Duration::MAX`) waits without limit.
    ///
    /// # Errors
    ///
    /// As [`tick`](Self::tick); [`Error::Stalled`] when it would wait without limit and
    /// nothing could ever wake the tasklets.
    pub fn tick_within(&mut self, max_wait: Duration) -> Result<bool, Error> {
        self.reap_after_plugin_panic();
        self.core.drain_wakes();
        self.settle();
        // A wait too long to add to now has no limit (a huge `max_wait` means "until
        // something happens"), as `run` has none.
        let limit = crate::time::now().checked_add(max_wait);
        if !max_wait.is_zero() && self.core.run_queue.is_empty() {
            self.block(limit)?;
        } else {
            self.poll_round(Some(Duration::ZERO))?;
        }
        self.run_steps(self.step_budget)?;
        self.flush_plugins()?;
        Ok(self.has_work())
    }

    /// Runs until no work is left ([`has_work`](Self::has_work): no tasklet, and no plugin's
    /// work such as a connection waiting for input without a tasklet), blocking in the
    /// poller until the next event, deadline or [`Remote`] wake whenever nothing is runnable.
    ///
    /// # Errors
    ///
    /// [`Error::Stalled`] when tasklets remain but nothing could ever wake them, and plugins'
    /// fatal errors.
    pub fn run(&mut self) -> Result<(), Error> {
        while self.has_work() {
            self.run_once(None)?;
        }
        Ok(())
    }

    /// Like [`run`](Self::run), but returns at `deadline` at the latest. Returns whether
    /// work remains ([`has_work`](Self::has_work)).
    ///
    /// # Errors
    ///
    /// As [`run`](Self::run).
    pub fn run_until(&mut self, deadline: Instant) -> Result<bool, Error> {
        while self.has_work() && crate::time::now() < deadline {
            self.run_once(Some(deadline))?;
        }
        Ok(self.has_work())
    }

    /// Stops gracefully within `timeout`: each plugin stops taking new work and finishes
    /// what is queued ([`Plugin::drain`]; the network plugin stops accepting, writes every
    /// connection's queued output and closes it with a FIN), and rounds run (tasklets too:
    /// they see their connections closed) until every plugin is drained or `timeout`
    /// passes. Returns whether everything drained in time. Tasklets still alive stay; drop
    /// the schedule to end them.
    ///
    /// # Errors
    ///
    /// As [`tick`](Self::tick).
    pub fn drain(&mut self, timeout: Duration) -> Result<bool, Error> {
        let deadline = crate::time::now().checked_add(timeout);
        for i in 0..self.plugins.len() {
            self.call_plugin_drain(i)?;
        }
        self.flush_plugins()?;
        loop {
            if self.plugins.iter().all(|p| p.is_drained()) {
                return Ok(true);
            }
            let left = match deadline {
                Some(d) => d.saturating_duration_since(crate::time::now()),
                None => Duration::from_millis(10),
            };
            if left.is_zero() {
                return Ok(false);
            }
            self.tick_within(left.min(Duration::from_millis(10)))?;
        }
    }

    /// Like [`run`](Self::run), but returns after `timeout` at the latest; a timeout too large
    /// to add to the clock (`Duration::MAX`) means none.
    ///
    /// # Errors
    ///
    /// As [`run`](Self::run).
    pub fn run_for(&mut self, timeout: Duration) -> Result<bool, Error> {
        match crate::time::now().checked_add(timeout) {
            Some(deadline) => self.run_until(deadline),
            None => self.run().map(|()| false),
        }
    }
}

impl Drop for Schedule {
    fn drop(&mut self) {
        if self.core.steps_run == 0 && !self.core.tasklets.is_empty() {
            // A program that spawned and forgot to run: say so, rather than end in silence.
            log::warn!(target: "fibra_rt",
                "a schedule was dropped with {} tasklets that never ran: run it (`run`, \
                 `block_on` or `tick` in a loop)", self.core.tasklets.len());
        }
        self.core.wakes.remote.close();
        // The watchdog last: it reports an unwind that tasklet code keeps from ending.
        self.unwind_all();
        self.core.stall.stop();
    }
}
