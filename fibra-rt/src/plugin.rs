//! The plugin contract: how ops reach the code that serves them.
//!
//! A plugin is a value the [`Schedule`](crate::Schedule) owns. It declares the op types it
//! serves in [`Plugin::register`], and for each one implements [`Serves<Op>`](Serves).
//!
//! The contract, which every plugin (ours or a user's) keeps:
//!
//! 1. **Submit.** [`Serves::submit`] gets the op by value and the id of the tasklet that
//!    yielded it. It either answers at once (`Poll::Ready`: the tasklet goes on without waiting)
//!    or keeps the id and answers later (`Poll::Pending`). Submit never blocks.
//! 2. **Complete.** A pending op is answered with [`Context::complete`], from `poll`, `exited`
//!    or a later `submit`. Each pending op is completed at most once; completing a tasklet that
//!    no longer waits for that op type gives the output back and changes nothing.
//! 3. **Poll.** [`Plugin::poll`] runs once per round, after the schedule's one wait in its
//!    reactor, with the [`Events`] of the sources this plugin registered through its
//!    [`Registry`]. It serves them and what else fell due (timers), completing the ops they
//!    finish. It never blocks: the schedule does the waiting, for every plugin at once, until
//!    the nearest deadline of all of them. A plugin fed by another thread has that thread call
//!    [`Remote::wake`](crate::Remote::wake) after handing data over.
//! 4. **Deadline.** [`Plugin::next_deadline`] is the earliest instant at which `poll` must run
//!    to keep a promise (a timer). The schedule never sleeps past it.
//! 5. **Cancel.** [`Plugin::cancel`] withdraws the pending op of a tasklet that was killed or
//!    whose op timed out: drop the op and every registration for that tasklet, and never
//!    complete it. The schedule never resumes a tasklet behind a plugin's back.
//! 6. **Flush.** [`Plugin::flush`] runs at the end of every round of tasklet steps (each
//!    `tick()`, each pass of `run()`), so that work the tasklets queued during the round (bytes
//!    to send, say) leaves in one batch instead of one system call per request.
//! 7. **Exits.** A plugin that called [`Context::watch_exit`] for a tasklet hears how it ended
//!    in [`Plugin::exited`], exactly once.
//!
//! Time: [`Context::now`] is read at most once per round, after the wait; plugins use it
//! instead of reading the clock themselves.

use std::any::{Any, TypeId};

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::task::Poll;
use std::time::Instant;

use crate::op::{Header, Op, Slot};
use crate::reactor::{Events, Registry};
use crate::schedule::Core;
use crate::select::{SelectSlot, PARK_ARM};
use crate::tasklet::State;
use crate::{Error, Exit, Handle, Remote, SpawnOptions, TaskletId};

/// A plugin: serves some op types for the tasklets of a schedule.
///
/// See the [module documentation](crate::plugin) for the contract.
pub trait Plugin: Any {
    /// Declares the op types this plugin serves, with [`Router::op`].
    fn register(router: &mut Router<Self>)
    where
        Self: Sized;

    /// Called once, when the plugin is added to a schedule, with the registry that
    /// [`Context::registry`] gives: for sources the host sets up before any tasklet runs (a
    /// listener bound by the host).
    fn added(&mut self, registry: Registry) {
        let _ = registry;
    }

    /// Serves this round's `events` (readiness of the sources this plugin registered) and
    /// whatever fell due, completing the ops they finish. Runs once per round, after the
    /// schedule's wait; never blocks.
    ///
    /// # Errors
    ///
    /// An error here is fatal for the schedule: `tick()`/`run()` return it.
    fn poll(&mut self, cx: &mut Context<'_>, events: Events<'_>) -> io::Result<()> {
        let _ = (cx, events);
        Ok(())
    }

    /// The earliest instant at which [`poll`](Self::poll) must run (a timer falls due).
    fn next_deadline(&self) -> Option<Instant> {
        None
    }

    /// Called at the end of every round of tasklet steps: write out what the round's tasklets
    /// queued (coalesced sends, batched requests). It may complete ops; never blocks.
    ///
    /// # Errors
    ///
    /// An error here is fatal for the schedule, as in [`poll`](Self::poll).
    fn flush(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let _ = cx;
        Ok(())
    }

    /// Withdraws the pending op of tasklet `id` (it was killed, or its op timed out).
    fn cancel(&mut self, id: TaskletId) {
        let _ = id;
    }

    /// Tasklet `id`, which this plugin watched with [`Context::watch_exit`], ended.
    fn exited(&mut self, id: TaskletId, exit: &Exit, cx: &mut Context<'_>) {
        let _ = (id, exit, cx);
    }
}

/// A plugin serves op `O`.
pub trait Serves<O: Op>: Plugin {
    /// Takes `op` from tasklet `from`: answer now with `Poll::Ready`, or keep `from` and answer
    /// later with [`Context::complete`].
    fn submit(&mut self, op: O, from: TaskletId, cx: &mut Context<'_>) -> Poll<O::Output>;
}

/// Type-erased `Serves::<O>::submit` for one plugin type and op type.
///
/// # Safety
/// `header` must point to the header of a live `Slot<O>` whose tasklet is suspended, and
/// `plugin` must be a `P`.
pub(crate) type SubmitFn =
    unsafe fn(&mut dyn Plugin, NonNull<Header>, TaskletId, &mut Context<'_>) -> bool;

unsafe fn submit_erased<P: Serves<O>, O: Op>(
    plugin: &mut dyn Plugin,
    header: NonNull<Header>,
    from: TaskletId,
    cx: &mut Context<'_>,
) -> bool {
    // SAFETY: the caller guarantees `plugin` is a `P` (the route was made for it), so the
    // data pointer of the trait object points to a `P`.
    let plugin = unsafe { &mut *(plugin as *mut dyn Plugin).cast::<P>() };
    // SAFETY: the caller guarantees `header` starts a live `Slot<O>` of a suspended tasklet;
    // nothing else touches it while the schedule holds it.
    let slot = unsafe { header.cast::<Slot<O>>().as_mut() };
    let Some(op) = slot.op.take() else {
        return true;
    };
    match plugin.submit(op, from, cx) {
        Poll::Ready(out) => {
            slot.out = Some(out);
            true
        }
        Poll::Pending => false,
    }
}

/// One op type's way to its plugin.
#[derive(Clone, Copy)]
pub(crate) struct Route {
    pub(crate) type_id: TypeId,
    pub(crate) name: &'static str,
    pub(crate) plugin: usize,
    pub(crate) submit: SubmitFn,
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route")
            .field("op", &self.name)
            .field("plugin", &self.plugin)
            .finish()
    }
}

/// Collects the op types a plugin serves; passed to [`Plugin::register`].
pub struct Router<P> {
    pub(crate) routes: Vec<Route>,
    pub(crate) plugin: usize,
    _plugin: PhantomData<fn(P)>,
}

impl<P> fmt::Debug for Router<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("routes", &self.routes)
            .finish()
    }
}

impl<P: Plugin> Router<P> {
    pub(crate) fn new(plugin: usize) -> Self {
        Router {
            routes: Vec::new(),
            plugin,
            _plugin: PhantomData,
        }
    }

    /// Routes op type `O` to this plugin.
    pub fn op<O: Op>(&mut self) -> &mut Self
    where
        P: Serves<O>,
    {
        self.routes.push(Route {
            type_id: TypeId::of::<O>(),
            name: std::any::type_name::<O>(),
            plugin: self.plugin,
            submit: submit_erased::<P, O>,
        });
        self
    }
}

/// What a plugin may do to the schedule while it runs: complete ops, spawn and kill tasklets,
/// watch exits.
pub struct Context<'a> {
    pub(crate) core: &'a mut Core,
    pub(crate) plugin: usize,
}

impl fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("plugin", &self.plugin)
            .finish_non_exhaustive()
    }
}

impl Context<'_> {
    /// The time of this round, read at most once per round (after the schedule's wait, at the
    /// first call): use it instead of reading the clock again.
    pub fn now(&self) -> Instant {
        self.core.clock.now()
    }

    /// The last clock reading, without reading the clock: never later than now, possibly a
    /// little earlier. Good for "already due" marks; use [`now`](Self::now) for timers.
    pub fn last_reading(&self) -> Instant {
        self.core.clock.last()
    }

    /// Completes the pending op of tasklet `id` with `out` and makes the tasklet runnable.
    ///
    /// # Errors
    ///
    /// Gives `out` back, changing nothing, if `id` has ended or is not waiting for an op of
    /// type `O` (it was completed already, or timed out).
    pub fn complete<O: Op>(&mut self, id: TaskletId, out: O::Output) -> Result<(), O::Output> {
        let Some(t) = self.core.get_mut(id) else {
            return Err(out);
        };
        let header = match t.state {
            State::Waiting { header, .. } => header,
            State::Selecting { header } => return self.complete_selected::<O>(id, header, out),
            _ => return Err(out),
        };
        // SAFETY: a waiting tasklet is suspended inside `yield_op`, so its slot is alive.
        let slot_header = unsafe { header.as_ref() };
        if slot_header.type_id != TypeId::of::<O>() {
            return Err(out);
        }
        let had_deadline = slot_header.deadline.is_some();
        // SAFETY: as above, and the type id says the slot is a `Slot<O>`.
        unsafe { Slot::<O>::answer(header, out) };
        t.state = State::Runnable;
        if had_deadline {
            self.core.op_deadlines.remove(id);
        }
        self.core.run_queue.push_back(id);
        Ok(())
    }

    /// Completes the op of type `O` among those of a select, and queues the withdrawal of the
    /// others (the schedule tells their plugins before the tasklet runs again).
    fn complete_selected<O: Op>(
        &mut self,
        id: TaskletId,
        header: NonNull<Header>,
        out: O::Output,
    ) -> Result<(), O::Output> {
        // SAFETY: a selecting tasklet is suspended inside `select`, so its `SelectSlot` and the
        // slots it points at are alive, and nothing else touches them.
        let select = unsafe { header.cast::<SelectSlot>().as_mut() };
        let arms = &select.arms[..select.len];
        // SAFETY: as above.
        let Some(won) = arms
            .iter()
            .position(|arm| unsafe { arm.as_ref() }.type_id == TypeId::of::<O>())
        else {
            return Err(out);
        };
        // SAFETY: as above, and the type id says the arm is a `Slot<O>`.
        unsafe { Slot::<O>::answer(select.arms[won], out) };
        select.won = Some(won);
        for (arm, &plugin) in select.plugins[..select.len].iter().enumerate() {
            if arm != won && plugin != PARK_ARM {
                self.core.withdrawals.push((id, plugin));
            }
        }
        if let Some(t) = self.core.get_mut(id) {
            t.state = State::Runnable;
        }
        self.core.run_queue.push_back(id);
        Ok(())
    }

    /// Spawns a tasklet; it runs on a later step of this tick.
    ///
    /// # Errors
    ///
    /// [`Error::StackAlloc`] when no stack can be mapped.
    pub fn spawn<F>(&mut self, options: SpawnOptions, f: F) -> Result<TaskletId, Error>
    where
        F: FnOnce(&Handle) + 'static,
    {
        self.core.spawn(options, f)
    }

    /// Kills tasklet `id` at its yield point, once this plugin call returns. Returns whether
    /// `id` was alive.
    pub fn kill(&mut self, id: TaskletId) -> bool {
        let alive = self.core.get(id).is_some();
        if alive {
            self.core.kills.push(id);
        }
        alive
    }

    /// Asks to hear, in [`Plugin::exited`], how tasklet `id` ends. Returns whether `id` is
    /// alive (a dead tasklet is never reported).
    pub fn watch_exit(&mut self, id: TaskletId) -> bool {
        let bit = 1u64 << self.plugin;
        match self.core.get_mut(id) {
            Some(t) => {
                t.watchers |= bit;
                true
            }
            None => false,
        }
    }

    /// The registry through which this plugin watches its file descriptors; their events
    /// come back in [`Plugin::poll`].
    pub fn registry(&self) -> Registry {
        self.core.reactor.registry(self.plugin)
    }

    /// The schedule's [`Remote`], for threads that feed this plugin.
    pub fn remote(&self) -> Remote {
        self.core.wakes.remote.clone()
    }

    /// Whether tasklet `id` is alive.
    pub fn is_alive(&self, id: TaskletId) -> bool {
        self.core.get(id).is_some()
    }

    /// The name of tasklet `id`, if it is alive.
    pub fn name(&self, id: TaskletId) -> Option<&str> {
        self.core.get(id).map(|t| &*t.name)
    }
}
