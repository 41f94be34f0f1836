//! `Schedule`: owns tasklets and plugins, routes yielded ops, and runs steps on `tick()`/`run()`.

use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;
use std::rc::Rc;
use std::time::{Duration, Instant};

use corosensei::stack::Stack;
use corosensei::{Coroutine, CoroutineResult};
use slab::Slab;

use crate::clock::Clock;
use crate::handle::{Killing, Park, TaskletYielder, Wakes};
use crate::op::{Header, Slot, Status};
use crate::plugin::Route;
use crate::reactor::{Event, Events, Reactor};
use crate::remote::Remote;
use crate::select::{SelectMarker, SelectSlot, MAX_ARMS, PARK_ARM};
use crate::stack::StackPool;
use crate::tasklet::{State, Tasklet, TaskletCoroutine};
use crate::{
    overflow, Builder, Context, DeadlineQueue, Error, Exit, Handle, Plugin, Router, SpawnOptions,
    TaskletId, TaskletInfo, Unparker,
};

/// Steps between two zero-timeout polls of the plugins while tasklets stay runnable.
const POLL_INTERVAL: usize = 61;
/// Ops a tasklet may complete in a row without going back to the end of the run queue.
const CHAIN_LIMIT: usize = 32;
/// At most this many plugins (exit watchers are a 64-bit mask).
const MAX_PLUGINS: usize = 64;
/// Route 0 is `Park`, which the schedule serves itself.
const PARK_ROUTE: usize = 0;
fn park_route() -> Route {
    Route {
        type_id: TypeId::of::<Park>(),
        name: "park",
        plugin: usize::MAX,
        submit: park_is_served_by_the_schedule,
    }
}

/// The route of `Park` is never submitted to a plugin; `dispatch` serves it first.
///
/// # Safety
/// Never called.
unsafe fn park_is_served_by_the_schedule(
    _: &mut dyn Plugin,
    _: NonNull<Header>,
    _: TaskletId,
    _: &mut Context<'_>,
) -> bool {
    unreachable!("park is served by the schedule")
}

/// The tasklet table and what plugins may touch through a [`Context`].
pub(crate) struct Core {
    pub(crate) tasklets: Slab<Tasklet>,
    pub(crate) run_queue: VecDeque<TaskletId>,
    pub(crate) pool: StackPool,
    pub(crate) wakes: Rc<Wakes>,
    spare_wakes: Vec<TaskletId>,
    pub(crate) reactor: Reactor,
    pub(crate) op_deadlines: DeadlineQueue,
    pub(crate) kills: Vec<TaskletId>,
    /// Ops of a select that lost: (tasklet, plugin) to withdraw, before the tasklet runs again.
    pub(crate) withdrawals: Vec<(TaskletId, usize)>,
    seq: u32,
    pub(crate) clock: Clock,
}

impl Core {
    pub(crate) fn get(&self, id: TaskletId) -> Option<&Tasklet> {
        self.tasklets.get(id.slot()).filter(|t| t.id == id)
    }

    pub(crate) fn get_mut(&mut self, id: TaskletId) -> Option<&mut Tasklet> {
        self.tasklets.get_mut(id.slot()).filter(|t| t.id == id)
    }

    pub(crate) fn spawn<F>(&mut self, options: SpawnOptions, f: F) -> Result<TaskletId, Error>
    where
        F: FnOnce(&Handle) + 'static,
    {
        let stack_size = options.stack_size.unwrap_or(self.pool.default_size());
        let stack = self.pool.take(stack_size)?;
        let limit = stack.limit().get();
        let entry = self.tasklets.vacant_entry();
        self.seq = self.seq.wrapping_add(1);
        let id = TaskletId {
            key: u32::try_from(entry.key()).expect("more than 2^32 live tasklets"),
            seq: self.seq,
        };
        let wakes = Rc::clone(&self.wakes);
        let co = Coroutine::with_stack(stack, move |yielder: &TaskletYielder, ()| {
            let handle = Handle::new(yielder, id, wakes);
            // Caught here, on the tasklet's stack, rather than around every resume. A forced
            // unwind (kill) is caught too; the kill path ignores the return value.
            match catch_unwind(AssertUnwindSafe(|| f(&handle))) {
                Ok(()) => Exit::Finished,
                Err(payload) => Exit::from_panic(&*payload),
            }
        });
        let name = options.name.unwrap_or(Cow::Borrowed(""));
        let guard = overflow::Guard {
            id,
            limit,
            size: stack_size,
            name: name.as_ptr(),
            name_len: name.len(),
        };
        entry.insert(Tasklet {
            co: Some(co),
            kill_requested: false,
            id,
            state: State::Runnable,
            watchers: 0,
            woken: false,
            stack_size,
            name,
            guard,
        });
        self.run_queue.push_back(id);
        log::trace!(target: "fibra_rt::schedule", "spawned tasklet {id}");
        Ok(id)
    }

    /// Turns unparks posted on this thread into runnable tasklets, and posted kills into
    /// kills for the schedule to carry out (with the withdrawals the unparks queued) before
    /// any tasklet runs.
    fn drain_wakes(&mut self) {
        if !self.wakes.kills.borrow().is_empty() {
            self.kills.append(&mut self.wakes.kills.borrow_mut());
        }
        if self.wakes.local.borrow().is_empty() {
            return;
        }
        let spare = std::mem::take(&mut self.spare_wakes);
        let wakes = std::mem::replace(&mut *self.wakes.local.borrow_mut(), spare);
        self.unpark_all(wakes);
    }

    /// Turns unparks posted by other threads into runnable tasklets.
    fn drain_remote(&mut self) {
        // One plain load per round when no other thread posted anything.
        if !self.wakes.remote.is_pending() {
            return;
        }
        let mut taken = std::mem::take(&mut self.spare_wakes);
        if self.wakes.remote.take(&mut taken) {
            self.unpark_all(taken);
        } else {
            self.spare_wakes = taken;
        }
    }

    /// Unparks each of `wakes`, then keeps the emptied vector for the next drain.
    fn unpark_all(&mut self, mut wakes: Vec<TaskletId>) {
        for id in wakes.drain(..) {
            let Some(t) = self.get_mut(id) else { continue };
            match t.state {
                State::Parked { header } => {
                    // SAFETY: a parked tasklet is suspended in `park`, on a live `Slot<Park>`.
                    let timed = unsafe { header.as_ref() }.deadline.is_some();
                    // SAFETY: as above.
                    unsafe { Slot::<Park>::answer(header, ()) };
                    t.state = State::Runnable;
                    self.run_queue.push_back(id);
                    if timed {
                        self.op_deadlines.remove(id);
                    }
                }
                State::Selecting { header } => {
                    // SAFETY: a selecting tasklet is suspended inside `select`, so its
                    // `SelectSlot` and the slots it points at are alive and untouched.
                    let select = unsafe { header.cast::<SelectSlot>().as_mut() };
                    let plugins = &select.plugins[..select.len];
                    let Some(arm) = plugins.iter().position(|&p| p == PARK_ARM) else {
                        t.woken = true;
                        continue;
                    };
                    // SAFETY: as above; the park arm is a `Slot<Park>`.
                    unsafe { Slot::<Park>::answer(select.arms[arm], ()) };
                    select.won = Some(arm);
                    t.state = State::Runnable;
                    let losers = plugins.iter().enumerate().filter(|&(i, _)| i != arm);
                    self.withdrawals
                        .extend(losers.map(|(_, &plugin)| (id, plugin)));
                    self.run_queue.push_back(id);
                }
                _ => t.woken = true,
            }
        }
        self.spare_wakes = wakes;
    }
}

/// Runs tasklets on one thread and routes the ops they yield to plugins.
///
/// The host drives it: [`tick`](Self::tick) from its own loop (never blocks), or
/// [`run`](Self::run) when it has nothing else to do (blocks while nothing is ready, returns
/// when no tasklet is left).
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
    /// The route found by the last dispatch, and its index.
    last_route: (usize, Route),
    /// The events of the last wait, for every plugin.
    events: Vec<Event>,
    /// The tasklet `run_tasklet` is running. Still set when a call returns only if a plugin
    /// panicked while serving that tasklet's op and the panic went on to the host: the
    /// tasklet's coroutine was dropped (its destructors ran) and the next call reaps it.
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

/// How a run of a tasklet ended.
enum RunEnd {
    /// It waits for an op.
    Waiting,
    /// It used its share of steps and goes to the back of the run queue.
    Requeue,
    /// Its function returned or panicked.
    Ended(Exit),
    /// It was killed from inside its own op.
    Killed,
}

enum Dispatch {
    /// The op completed; the tasklet can go on.
    Ready,
    /// The tasklet waits.
    Pending,
}

impl Schedule {
    pub(crate) fn from_builder(builder: Builder) -> Result<Schedule, Error> {
        overflow::install();
        let reactor = Reactor::new().map_err(Error::Reactor)?;
        let remote = Remote::new(reactor.notifier());
        Ok(Schedule {
            core: Core {
                tasklets: Slab::new(),
                run_queue: VecDeque::new(),
                pool: StackPool::new(builder.stack_size, builder.pool_cap),
                wakes: Rc::new(Wakes {
                    local: Default::default(),
                    kills: Default::default(),
                    remote,
                }),
                spare_wakes: Vec::new(),
                reactor,
                op_deadlines: DeadlineQueue::new(),
                kills: Vec::new(),
                withdrawals: Vec::new(),
                seq: 0,
                clock: Clock::new(),
            },
            plugins: Vec::new(),
            plugin_names: Vec::new(),
            routes: vec![park_route()],
            last_route: (PARK_ROUTE, park_route()),
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
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let mut schedule = Schedule::new();
    ///     let answer = schedule.block_on(|_h| -> Result<u32, std::num::ParseIntError> {
    ///         Ok("42".parse::<u32>()?)
    ///     })??;
    ///     assert_eq!(answer, 42);
    ///     Ok(())
    /// }
    /// # main().unwrap();
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
    /// A destructor must not yield; a tasklet that yields while being killed aborts the
    /// process.
    pub fn kill(&mut self, id: TaskletId) -> bool {
        self.reap_after_plugin_panic();
        let killed = self.kill_now(id);
        self.process_kills();
        killed
    }

    /// How many tasklets are alive.
    pub fn len(&self) -> usize {
        self.core.tasklets.len()
    }

    /// Whether no tasklet is alive.
    pub fn is_empty(&self) -> bool {
        self.core.tasklets.is_empty()
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
    /// connection's output once). Returns whether tasklets remain.
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
        self.reap_after_plugin_panic();
        self.poll_round(Some(Duration::ZERO))?;
        self.run_steps(self.step_budget)?;
        self.flush_plugins()?;
        Ok(!self.is_empty())
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
    /// Returns whether tasklets remain. With `max_wait` zero it is `tick`.
    ///
    /// # Errors
    ///
    /// As [`tick`](Self::tick).
    pub fn tick_within(&mut self, max_wait: Duration) -> Result<bool, Error> {
        self.reap_after_plugin_panic();
        self.core.drain_wakes();
        self.settle();
        match Instant::now().checked_add(max_wait) {
            Some(limit) if !max_wait.is_zero() && self.core.run_queue.is_empty() => {
                self.block(Some(limit))?;
            }
            _ => self.poll_round(Some(Duration::ZERO))?,
        }
        self.run_steps(self.step_budget)?;
        self.flush_plugins()?;
        Ok(!self.is_empty())
    }

    /// Runs until no tasklet is left, blocking in the poller until the next event, deadline
    /// or [`Remote`] wake whenever nothing is runnable.
    ///
    /// # Errors
    ///
    /// [`Error::Stalled`] when tasklets remain but nothing could ever wake them, and plugins'
    /// fatal errors.
    pub fn run(&mut self) -> Result<(), Error> {
        while !self.is_empty() {
            self.run_once(None)?;
        }
        Ok(())
    }

    /// Like [`run`](Self::run), but returns at `deadline` at the latest. Returns whether
    /// tasklets remain.
    ///
    /// # Errors
    ///
    /// As [`run`](Self::run).
    pub fn run_until(&mut self, deadline: Instant) -> Result<bool, Error> {
        while !self.is_empty() && Instant::now() < deadline {
            self.run_once(Some(deadline))?;
        }
        Ok(!self.is_empty())
    }

    /// Like [`run`](Self::run), but returns after `timeout` at the latest.
    ///
    /// # Errors
    ///
    /// As [`run`](Self::run).
    pub fn run_for(&mut self, timeout: Duration) -> Result<bool, Error> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.run_until(deadline),
            None => self.run().map(|()| false),
        }
    }

    fn run_once(&mut self, limit: Option<Instant>) -> Result<(), Error> {
        self.reap_after_plugin_panic();
        self.core.drain_wakes();
        self.settle();
        if self.core.run_queue.is_empty() {
            self.block(limit)?;
        }
        self.run_steps(self.step_budget)?;
        self.flush_plugins()
    }

    /// The end of a round: every plugin writes out what the round queued.
    fn flush_plugins(&mut self) -> Result<(), Error> {
        for i in 0..self.plugins.len() {
            let mut cx = Context {
                core: &mut self.core,
                plugin: i,
            };
            let result = self.plugins[i].flush(&mut cx);
            self.process_kills();
            result.map_err(|source| Error::Plugin {
                plugin: self.plugin_names[i],
                source,
            })?;
        }
        self.core.drain_wakes();
        self.settle();
        Ok(())
    }

    /// Nothing is runnable: wait for the next event, deadline or remote wake.
    fn block(&mut self, limit: Option<Instant>) -> Result<(), Error> {
        let deadline = match (self.next_deadline(), limit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // A deadline already passed at the last clock reading needs no new reading.
        let timeout = deadline.map(|d| {
            if d <= self.core.clock.last() {
                Duration::ZERO
            } else {
                d.saturating_duration_since(Instant::now())
            }
        });
        // Only the schedule's own remote (held by its unpark queue) is left: nobody else can
        // wake it.
        let wakeable = self.core.reactor.sources() > 0 || self.core.wakes.remote.count() > 1;
        if timeout.is_none() && !wakeable {
            self.poll_round(Some(Duration::ZERO))?;
            if self.core.run_queue.is_empty() && !self.is_empty() {
                return Err(Error::Stalled {
                    waiting: self.len(),
                });
            }
            return Ok(());
        }
        self.poll_round(timeout)
    }

    /// One round of outside events: one wait in the reactor (up to `timeout`), then remote
    /// unparks, op deadlines, and every plugin's poll with its events.
    fn poll_round(&mut self, timeout: Option<Duration>) -> Result<(), Error> {
        // The round's time is read after the wait, at the first `now()`.
        self.core.clock.expire();
        let wait = timeout != Some(Duration::ZERO)
            || self.core.reactor.sources() > 0
            || self.core.wakes.remote.is_pending();
        if wait {
            self.core
                .reactor
                .wait(&mut self.events, timeout)
                .map_err(Error::Reactor)?;
        } else {
            self.events.clear();
        }
        self.core.drain_remote();
        self.settle();
        self.expire_op_deadlines();
        for i in 0..self.plugins.len() {
            let mut cx = Context {
                core: &mut self.core,
                plugin: i,
            };
            let events = Events::new(&self.events, i);
            let result = self.plugins[i].poll(&mut cx, events);
            self.process_kills();
            result.map_err(|source| Error::Plugin {
                plugin: self.plugin_names[i],
                source,
            })?;
        }
        self.core.drain_wakes();
        self.settle();
        Ok(())
    }

    fn expire_op_deadlines(&mut self) {
        if self.core.op_deadlines.is_empty() {
            return;
        }
        let now = self.core.clock.now();
        while let Some(id) = self.core.op_deadlines.pop_expired(now) {
            let Some(t) = self.core.get_mut(id) else {
                continue;
            };
            match t.state {
                State::Waiting { header, route } => {
                    t.state = State::Runnable;
                    // SAFETY: a waiting tasklet is suspended inside `yield_op`; its slot is
                    // alive.
                    unsafe { (*header.as_ptr()).status = Status::TimedOut };
                    self.core.run_queue.push_back(id);
                    let plugin = self.routes[route].plugin;
                    self.plugins[plugin].cancel(id);
                }
                // A park with a deadline (`yield_op_until(Park, ..)`): nobody to withdraw it
                // from.
                State::Parked { header } => {
                    t.state = State::Runnable;
                    // SAFETY: a parked tasklet is suspended in `park`; its slot is alive.
                    unsafe { (*header.as_ptr()).status = Status::TimedOut };
                    self.core.run_queue.push_back(id);
                }
                _ => {}
            }
        }
    }

    /// Runs up to `budget` steps; returns how many ran.
    fn run_steps(&mut self, budget: usize) -> Result<usize, Error> {
        let mut steps = 0;
        let mut since_poll = 0;
        while steps < budget {
            self.core.drain_wakes();
            self.settle();
            self.settle();
            let Some(id) = self.core.run_queue.pop_front() else {
                break;
            };
            if !matches!(self.core.get(id).map(|t| t.state), Some(State::Runnable)) {
                continue;
            }
            let ran = self.run_tasklet(id, budget - steps);
            steps += ran;
            since_poll += ran;
            if since_poll >= POLL_INTERVAL && !self.core.run_queue.is_empty() {
                since_poll = 0;
                self.poll_round(Some(Duration::ZERO))?;
            }
        }
        Ok(steps)
    }

    /// Resumes `id` until it waits, ends, or has used its share; returns the steps it took.
    ///
    /// The coroutine is taken out of the table for the whole run, so that a chain of ops that
    /// complete at once costs no table lookup per resume; it goes back before this returns.
    fn run_tasklet(&mut self, id: TaskletId, budget: usize) -> usize {
        let Some(t) = self.core.get_mut(id) else {
            return 0;
        };
        let Some(mut co) = t.co.take() else {
            return 0;
        };
        t.state = State::Running;
        self.running = Some(id);
        // A copy on this frame: the table may move while plugins run, this never does.
        let guard = t.guard;
        let entered = overflow::enter(&guard);
        let limit = budget.min(CHAIN_LIMIT);
        let mut steps = 0;
        // Plugin code runs inside this loop (submit, and the forget/exited hooks of kills it
        // asks for). If it panics, the unwind would drop `co`, and with it the stack that
        // the table's `Waiting`/`Parked` state points into: clear that pointer first.
        let run = catch_unwind(AssertUnwindSafe(|| loop {
            steps += 1;
            match co.resume(()) {
                CoroutineResult::Yield(header) => {
                    let dispatch = self.dispatch(id, header);
                    if !self.core.kills.is_empty() || !self.core.withdrawals.is_empty() {
                        self.process_kills();
                        if self.core.get(id).is_none_or(|t| t.kill_requested) {
                            break RunEnd::Killed;
                        }
                    }
                    match dispatch {
                        Dispatch::Ready if steps < limit => {}
                        Dispatch::Ready => break RunEnd::Requeue,
                        Dispatch::Pending => break RunEnd::Waiting,
                    }
                }
                CoroutineResult::Return(exit) => break RunEnd::Ended(exit),
            }
        }));
        let end = match run {
            Ok(end) => end,
            Err(payload) => {
                // The tasklet stays in the table, pointer-free and without its coroutine,
                // until the next entry point reaps it (`running` names it; the reap also
                // withdraws its op and deadline).
                if let Some(t) = self.core.get_mut(id) {
                    t.state = State::Running;
                }
                // Its destructors run on its own stack: keep it guarded.
                let _ = catch_unwind(AssertUnwindSafe(|| drop(co)));
                drop(entered);
                std::panic::resume_unwind(payload);
            }
        };
        self.running = None;
        match end {
            RunEnd::Waiting | RunEnd::Requeue => {
                if let Some(t) = self.core.get_mut(id) {
                    t.co = Some(co);
                    if matches!(end, RunEnd::Requeue) {
                        t.state = State::Runnable;
                        self.core.run_queue.push_back(id);
                    }
                }
                drop(entered);
            }
            RunEnd::Ended(exit) => {
                drop(entered);
                self.finish(id, co, exit);
            }
            RunEnd::Killed => {
                drop(entered);
                if let Some(t) = self.core.tasklets.try_remove(id.slot()) {
                    self.unwind(t, co);
                }
            }
        }
        // Watchers told of this end may have asked for more kills.
        self.process_kills();
        steps
    }

    /// Hands the op behind `header`, yielded by `id`, to its plugin.
    fn dispatch(&mut self, id: TaskletId, header: NonNull<Header>) -> Dispatch {
        // SAFETY: `id` just suspended inside `yield_op` with a pointer to its live slot.
        let type_id = unsafe { header.as_ref() }.type_id;
        // Most yields repeat the op type of the previous one: check that route first.
        let (route, Route { plugin, submit, .. }) = if self.last_route.1.type_id == type_id {
            self.last_route
        } else {
            match self.routes.iter().position(|r| r.type_id == type_id) {
                Some(i) => {
                    self.last_route = (i, self.routes[i]);
                    self.last_route
                }
                None if type_id == TypeId::of::<SelectMarker>() => {
                    return self.select(id, header);
                }
                None => {
                    // SAFETY: as above.
                    unsafe { (*header.as_ptr()).status = Status::NoPlugin };
                    return Dispatch::Ready;
                }
            }
        };
        if route == PARK_ROUTE {
            return self.park(id, header);
        }
        let mut cx = Context {
            core: &mut self.core,
            plugin,
        };
        // SAFETY: the route matched the slot's type id, so the slot is a `Slot<O>` for the
        // `O` that `submit` was made for, and `plugins[plugin]` is the plugin it was made for.
        let ready = unsafe { submit(&mut *self.plugins[plugin], header, id, &mut cx) };
        if ready {
            return Dispatch::Ready;
        }
        if let Some(t) = self.core.get_mut(id) {
            t.state = State::Waiting { header, route };
            // SAFETY: as above.
            if let Some(deadline) = unsafe { header.as_ref() }.deadline {
                self.core.op_deadlines.insert(id, deadline);
            }
        }
        Dispatch::Pending
    }

    /// Submits the ops of the select behind `header`, in order, until one is ready (the ones
    /// before it are withdrawn); if none is, `id` waits for the first to complete.
    fn select(&mut self, id: TaskletId, header: NonNull<Header>) -> Dispatch {
        let select = header.cast::<SelectSlot>().as_ptr();
        // SAFETY: `id` just suspended inside `select` with a pointer to its live `SelectSlot`,
        // whose arms point at live slots; nothing else touches them while it is suspended.
        let (arms, len) = unsafe { ((*select).arms, (*select).len) };
        let mut routes = [PARK_ROUTE; MAX_ARMS];
        for i in 0..len {
            // SAFETY: as above.
            let type_id = unsafe { arms[i].as_ref() }.type_id;
            let Some(route) = self.routes.iter().position(|r| r.type_id == type_id) else {
                // SAFETY: as above.
                unsafe { (*arms[i].as_ptr()).status = Status::NoPlugin };
                return Dispatch::Ready;
            };
            let plugin = self.routes[route].plugin;
            if routes[..i].iter().any(|&r| self.routes[r].plugin == plugin) {
                // Refused: `won` stays `None` and the tasklet panics saying why.
                return Dispatch::Ready;
            }
            routes[i] = route;
        }
        for i in 0..len {
            if routes[i] == PARK_ROUTE {
                let woken = self
                    .core
                    .get_mut(id)
                    .is_some_and(|t| std::mem::take(&mut t.woken));
                if woken {
                    // SAFETY: as above; the arm's type id says it is a `Slot<Park>`.
                    unsafe { Slot::<Park>::answer(arms[i], ()) };
                    return self.select_won_at_once(id, select, &routes[..i], i);
                }
                // SAFETY: as above.
                unsafe { (*select).plugins[i] = PARK_ARM };
                continue;
            }
            let Route { plugin, submit, .. } = self.routes[routes[i]];
            let mut cx = Context {
                core: &mut self.core,
                plugin,
            };
            // SAFETY: the route matched the arm's type id, so the arm is a `Slot<O>` for the
            // `O` that `submit` was made for, and `plugins[plugin]` is its plugin.
            let ready = unsafe { submit(&mut *self.plugins[plugin], arms[i], id, &mut cx) };
            // SAFETY: as above (the plugin touched only the arm it was given).
            unsafe { (*select).plugins[i] = plugin };
            if ready {
                return self.select_won_at_once(id, select, &routes[..i], i);
            }
        }
        if let Some(t) = self.core.get_mut(id) {
            t.state = State::Selecting { header };
        }
        Dispatch::Pending
    }

    /// Arm `won` of a select was ready at its submit: the arms submitted before it (`before`)
    /// are withdrawn from their plugins.
    fn select_won_at_once(
        &mut self,
        id: TaskletId,
        select: *mut SelectSlot,
        before: &[usize],
        won: usize,
    ) -> Dispatch {
        for &route in before {
            if route != PARK_ROUTE {
                self.plugins[self.routes[route].plugin].cancel(id);
            }
        }
        // SAFETY: `select` is the live `SelectSlot` of `id`, which is suspended in `select`.
        unsafe { (*select).won = Some(won) };
        Dispatch::Ready
    }

    fn park(&mut self, id: TaskletId, header: NonNull<Header>) -> Dispatch {
        let Some(t) = self.core.get_mut(id) else {
            return Dispatch::Pending;
        };
        if std::mem::take(&mut t.woken) {
            // SAFETY: the slot is a live `Slot<Park>` (its type id said so).
            unsafe { Slot::<Park>::answer(header, ()) };
            return Dispatch::Ready;
        }
        t.state = State::Parked { header };
        // SAFETY: as above.
        if let Some(deadline) = unsafe { header.as_ref() }.deadline {
            self.core.op_deadlines.insert(id, deadline);
        }
        Dispatch::Pending
    }

    /// Removes an ended tasklet, recycles its stack and tells its watchers.
    fn finish(&mut self, id: TaskletId, co: TaskletCoroutine, exit: Exit) {
        let t = self.core.tasklets.remove(id.slot());
        match &exit {
            Exit::Panicked(msg) => report_panic(id, &t.name, msg),
            _ => log::trace!(target: "fibra_rt::tasklet", "tasklet {id} `{}` finished", t.name),
        }
        self.core.pool.give(co.into_stack(), t.stack_size);
        self.notify_exit(id, t.watchers, &exit);
    }

    /// Kills `id`: withdraws its op, and unwinds it now, or, if it is the tasklet running
    /// (a plugin killed it from inside its own op), marks it for `run_tasklet` to unwind.
    fn kill_now(&mut self, id: TaskletId) -> bool {
        let Some(t) = self.core.get_mut(id) else {
            return false;
        };
        if t.kill_requested {
            return true;
        }
        t.kill_requested = true;
        // No coroutine in the table: the tasklet is running, and `run_tasklet` unwinds it.
        let (state, co) = (t.state, t.co.take());
        match state {
            State::Waiting { route, .. } => {
                let plugin = self.routes[route].plugin;
                self.plugins[plugin].cancel(id);
            }
            State::Selecting { header } => {
                // SAFETY: a selecting tasklet is suspended inside `select`; its slot is alive.
                let select = unsafe { header.cast::<SelectSlot>().as_ref() };
                for &plugin in &select.plugins[..select.len] {
                    if plugin != PARK_ARM {
                        self.plugins[plugin].cancel(id);
                    }
                }
            }
            _ => {}
        }
        self.core.op_deadlines.remove(id);
        if let Some(co) = co {
            let t = self.core.tasklets.remove(id.slot());
            self.unwind(t, co);
        }
        true
    }

    /// Unwinds a killed tasklet's stack (its destructors run), recycles the stack and tells
    /// its watchers.
    fn unwind(&mut self, t: Tasklet, mut co: TaskletCoroutine) {
        let id = t.id;
        let entered = overflow::enter(&t.guard);
        let killing = Killing::enter(id);
        let unwound = catch_unwind(AssertUnwindSafe(|| co.force_unwind()));
        drop(killing);
        drop(entered);
        if let Err(payload) = unwound {
            let msg = format!("{} (while being killed)", Exit::from_panic(&*payload));
            report_panic(id, &t.name, &msg);
        }
        log::debug!(target: "fibra_rt::tasklet", "tasklet {id} `{}` killed", t.name);
        if co.done() {
            self.core.pool.give(co.into_stack(), t.stack_size);
        }
        self.notify_exit(id, t.watchers, &Exit::Killed);
    }

    /// Ends the tasklet a plugin's panic left behind (see the `running` field).
    fn reap_after_plugin_panic(&mut self) {
        let Some(id) = self.running.take() else {
            return;
        };
        let Some(t) = self.core.tasklets.try_remove(id.slot()) else {
            return;
        };
        log::error!(target: "fibra_rt::schedule",
            "tasklet {id} `{}` ended: the plugin serving its op panicked", t.name);
        self.core.op_deadlines.remove(id);
        for plugin in &mut self.plugins {
            plugin.cancel(id);
        }
        let exit = Exit::Panicked("the plugin serving its op panicked".to_owned());
        self.notify_exit(id, t.watchers, &exit);
        self.process_kills();
    }

    /// Carries out the withdrawals and kills that unparks and posted kills queued, before any
    /// tasklet runs again.
    fn settle(&mut self) {
        if !self.core.kills.is_empty() || !self.core.withdrawals.is_empty() {
            self.process_kills();
        }
    }

    /// Withdraws the ops that lost a select, and kills the tasklets plugins asked to kill.
    fn process_kills(&mut self) {
        loop {
            while let Some((id, plugin)) = self.core.withdrawals.pop() {
                if plugin != PARK_ARM {
                    self.plugins[plugin].cancel(id);
                }
            }
            let Some(id) = self.core.kills.pop() else {
                break;
            };
            self.kill_now(id);
        }
    }

    fn notify_exit(&mut self, id: TaskletId, watchers: u64, exit: &Exit) {
        if !self.host_exits.is_empty() {
            if let Some(kept) = self.host_exits.get_mut(&id) {
                *kept = Some(exit.clone());
            }
        }
        let mut bits = watchers;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let mut cx = Context {
                core: &mut self.core,
                plugin: i,
            };
            self.plugins[i].exited(id, exit, &mut cx);
        }
    }
}

/// Says which tasklet panicked: through `log` when a logger takes errors, else on stderr (the
/// panic hook has printed the message and place, but not the tasklet).
fn report_panic(id: TaskletId, name: &str, msg: &str) {
    if log::log_enabled!(target: "fibra_rt::tasklet", log::Level::Error) {
        log::error!(target: "fibra_rt::tasklet", "tasklet {id} `{name}` panicked: {msg}");
    } else {
        // A crash report, as the standard panic hook writes one: no logger is there to take it.
        eprintln!("fibra: tasklet {id} `{name}` panicked: {msg}");
    }
}

impl Drop for Schedule {
    fn drop(&mut self) {
        self.core.wakes.remote.close();
        // Unwind every tasklet while the plugins still exist (destructors may wake others).
        let ids: Vec<TaskletId> = self.core.tasklets.iter().map(|(_, t)| t.id).collect();
        for id in ids {
            if let Some(t) = self.core.tasklets.try_remove(id.slot()) {
                if let Some(mut co) = t.co {
                    let entered = overflow::enter(&t.guard);
                    let killing = Killing::enter(id);
                    let _ = catch_unwind(AssertUnwindSafe(|| co.force_unwind()));
                    drop(killing);
                    drop(entered);
                }
            }
        }
    }
}
