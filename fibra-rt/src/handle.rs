//! `Handle`, the explicit yield handle a tasklet receives, and `Unparker`, which unparks it.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::rc::Rc;
use std::time::{Duration, Instant};

use corosensei::Yielder;

use crate::op::{Header, Op, Slot, Status, TimedOut};
use crate::{Remote, TaskletId};

pub(crate) type TaskletYielder = Yielder<(), NonNull<Header>>;

/// The op behind [`Handle::park`], served by the schedule itself: it completes when an
/// [`Unparker`] unparks the tasklet. Yield it through [`Handle::select`] beside another op to
/// wait for whichever comes first, an unpark or that op (a frame, or a message posted to the
/// tasklet's mailbox, say), or with a deadline ([`Handle::park_until`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Park;

impl Op for Park {
    type Output = ();
}

thread_local! {
    /// The tasklet whose stack is being unwound by a kill on this thread, if any.
    static KILLING: Cell<Option<TaskletId>> = const { Cell::new(None) };
}

/// Marks `id` as being killed until dropped (kills nest: a destructor may kill another).
pub(crate) struct Killing(Option<TaskletId>);

impl Killing {
    pub(crate) fn enter(id: TaskletId) -> Killing {
        Killing(KILLING.with(|k| k.replace(Some(id))))
    }
}

impl Drop for Killing {
    fn drop(&mut self) {
        KILLING.with(|k| k.set(self.0));
    }
}

/// Unparks posted by [`Unparker::unpark`], drained by the schedule between tasklet steps, and
/// the schedule's remote, for [`Handle::remote`].
pub(crate) struct Wakes {
    pub(crate) local: RefCell<Vec<TaskletId>>,
    /// Kills posted by [`Unparker::kill`], drained with the unparks.
    pub(crate) kills: RefCell<Vec<TaskletId>>,
    pub(crate) remote: Remote,
}

/// The handle a tasklet receives: the only way for it to yield.
///
/// Every suspension point in tasklet code is a call on a `Handle` (or on a function that takes
/// one), so yield points are visible where they happen. There is no "current tasklet" hidden in
/// thread-local state.
///
/// A `Handle` is neither `Send` nor `Clone`, and tasklets only ever see it by reference: it
/// cannot outlive the tasklet it belongs to.
pub struct Handle {
    /// # Invariant
    /// Points to the yielder of the coroutine this handle was created in; the handle lives on
    /// that coroutine's stack, inside the coroutine's function, so the yielder outlives it.
    yielder: NonNull<TaskletYielder>,
    id: TaskletId,
    wakes: Rc<Wakes>,
    _not_send: PhantomData<*mut ()>,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").field("id", &self.id).finish()
    }
}

impl Handle {
    pub(crate) fn new(yielder: &TaskletYielder, id: TaskletId, wakes: Rc<Wakes>) -> Self {
        Handle {
            yielder: NonNull::from(yielder),
            id,
            wakes,
            _not_send: PhantomData,
        }
    }

    /// The id of the tasklet this handle belongs to.
    pub fn id(&self) -> TaskletId {
        self.id
    }

    /// Yields `op` to the schedule and returns its result.
    ///
    /// The schedule hands `op` to the plugin registered for its type; the tasklet resumes when
    /// that plugin completes it (at once, or after other tasklets ran).
    ///
    /// # Panics
    ///
    /// Panics (ending this tasklet only; the host sees [`Exit::Panicked`](crate::Exit) in
    /// [`Schedule::take_exit`](crate::Schedule::take_exit)) if no plugin of the schedule
    /// serves `O`. The message names the op and, when the op declares it
    /// ([`Op::PLUGIN`](crate::Op::PLUGIN)), the line that adds its plugin with
    /// [`Schedule::add_plugin`](crate::Schedule::add_plugin).
    ///
    /// # Examples
    ///
    /// ```
    /// use fibra_rt::{Context, Serves, Op, Plugin, Router, Schedule, TaskletId};
    /// use std::task::Poll;
    ///
    /// struct Double(u32);
    /// impl Op for Double {
    ///     type Output = u32;
    /// }
    ///
    /// #[derive(Debug)]
    /// struct Doubler;
    /// impl Plugin for Doubler {
    ///     fn register(router: &mut Router<Self>) {
    ///         router.op::<Double>();
    ///     }
    /// }
    /// impl Serves<Double> for Doubler {
    ///     fn submit(&mut self, op: Double, _: TaskletId, _: &mut Context<'_>) -> Poll<u32> {
    ///         Poll::Ready(op.0 * 2)
    ///     }
    /// }
    ///
    /// let mut schedule = Schedule::new();
    /// schedule.add_plugin(Doubler)?;
    /// schedule.spawn(|h| assert_eq!(h.yield_op(Double(21)), 42))?;
    /// schedule.run()?;
    /// # Ok::<(), fibra_rt::Error>(())
    /// ```
    pub fn yield_op<O: Op>(&self, op: O) -> O::Output {
        match self.submit(op, None) {
            Ok(out) => out,
            // Without a deadline the schedule never times the op out.
            Err(timed_out) => panic!("{timed_out} although it had no deadline"),
        }
    }

    /// Yields `op` like [`yield_op`](Self::yield_op), but gives up at `deadline`: the op is
    /// withdrawn from its plugin and [`TimedOut`] is returned. An op that completes at once
    /// never times out, even with a deadline in the past.
    ///
    /// # Panics
    ///
    /// As [`yield_op`](Self::yield_op).
    pub fn yield_op_until<O: Op>(&self, op: O, deadline: Instant) -> Result<O::Output, TimedOut> {
        self.submit(op, Some(deadline))
    }

    /// Yields `op` like [`yield_op`](Self::yield_op), giving up after `timeout`; a timeout too
    /// large to add to the clock (`Duration::MAX`) means none.
    ///
    /// # Panics
    ///
    /// As [`yield_op`](Self::yield_op).
    pub fn yield_op_timeout<O: Op>(&self, op: O, timeout: Duration) -> Result<O::Output, TimedOut> {
        let deadline = crate::time::now().checked_add(timeout);
        self.submit(op, deadline)
    }

    /// Whether this tasklet is being killed: its stack unwinds from the yield point where the
    /// kill found it, and its destructors run. Code that catches panics
    /// ([`std::panic::catch_unwind`]) must let this unwind go on (`resume_unwind`), and a
    /// destructor that sees it must not yield.
    pub fn is_being_killed(&self) -> bool {
        KILLING.with(|k| k.get()) == Some(self.id)
    }

    /// Runs `f`; a panic in it comes back as its message, and the tasklet goes on. A kill's
    /// unwind is not a panic: it goes on through (see
    /// [`is_being_killed`](Self::is_being_killed)). For code that runs callbacks it does not
    /// trust (a protocol's, a request handler's). In a destructor running while its tasklet is
    /// killed, `f`'s own panic is caught like any other: the kill's unwind goes on around it.
    ///
    /// ```
    /// # let mut schedule = fibra_rt::Schedule::new();
    /// schedule.spawn(|h| {
    ///     let caught = h.catch_panic(|| -> u32 { panic!("bad callback") });
    ///     assert_eq!(caught, Err("bad callback".to_owned()));
    ///     assert_eq!(h.catch_panic(|| 7), Ok(7));
    /// })?;
    /// schedule.run()?;
    /// # Ok::<(), fibra_rt::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The panic's message (or a note that its payload was not a string).
    pub fn catch_panic<T>(&self, f: impl FnOnce() -> T) -> Result<T, String> {
        // Called from a destructor while the kill unwinds (a connection's `connection_lost`,
        // say): what `f` raises is its own panic, not the kill's unwind, which is already on
        // its way past this frame. Resumed, it would escape that destructor: an abort.
        let killed_before = self.is_being_killed();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(value) => Ok(value),
            Err(payload) if !killed_before && self.is_being_killed() => {
                std::panic::resume_unwind(payload)
            }
            Err(payload) => Err(crate::tasklet::panic_message(&*payload)),
        }
    }

    /// Parks this tasklet until an [`Unparker`] (or a [`Remote`]) unparks it.
    ///
    /// A wake that arrives while the tasklet is not parked is remembered, and the next `park`
    /// returns at once (like [`std::thread::park`]). Wake-ups may be spurious: park in a loop
    /// that re-checks the condition it waits for. This is the building block for channels and
    /// other structures shared between tasklets.
    pub fn park(&self) {
        self.yield_op(Park);
    }

    /// Like [`park`](Self::park), giving up at `deadline` (what `yield_op_until(Park, ..)`
    /// does): [`TimedOut`] if no unpark came by then. A wake kept from before returns at
    /// once, deadline or not.
    ///
    /// # Errors
    ///
    /// [`TimedOut`] at the deadline.
    pub fn park_until(&self, deadline: Instant) -> Result<(), TimedOut> {
        self.yield_op_until(Park, deadline)
    }

    /// Whether a kill posted by an [`Unparker`] (for this tasklet or another) waits for the
    /// schedule, which carries it out at this tasklet's next yield. Code that takes one
    /// piece of work after another without yielding (a worker taking queued jobs) yields
    /// first when this holds, so that a kill meant for the work just done does not land in
    /// the middle of the next.
    pub fn has_posted_kills(&self) -> bool {
        !self.wakes.kills.borrow().is_empty()
    }

    /// An unparker for this tasklet; it may be cloned and kept anywhere on this thread.
    pub fn unparker(&self) -> Unparker {
        Unparker {
            id: self.id,
            wakes: Rc::clone(&self.wakes),
        }
    }

    /// An unparker for tasklet `id` (another tasklet's, say, to wake it or
    /// [kill](Unparker::kill) it without yielding). An id that has ended makes an unparker that
    /// does nothing.
    pub fn unparker_of(&self, id: TaskletId) -> Unparker {
        Unparker {
            id,
            wakes: Rc::clone(&self.wakes),
        }
    }

    /// The schedule's [`Remote`]: give it to another thread to unpark this tasklet (or any
    /// other of the schedule) from there.
    pub fn remote(&self) -> Remote {
        self.wakes.remote.clone()
    }

    /// Suspends this tasklet with `header` for the schedule to serve.
    pub(crate) fn suspend(&self, header: NonNull<Header>) {
        // SAFETY: the yielder outlives this handle (see the field's invariant).
        let yielder = unsafe { self.yielder.as_ref() };
        yielder.suspend(header);
    }

    fn submit<O: Op>(&self, op: O, deadline: Option<Instant>) -> Result<O::Output, TimedOut> {
        let mut slot = Slot::new(op, deadline);
        self.suspend(slot.header_ptr());
        match (slot.out.take(), slot.header.status) {
            (Some(out), _) => Ok(out),
            (None, Status::NoPlugin) => panic!("{}", crate::op::no_plugin_message::<O>("")),
            (None, _) => Err(TimedOut {
                op: std::any::type_name::<O>(),
            }),
        }
    }
}

/// Unparks (or kills) one tasklet; obtained from [`Handle::unparker`],
/// [`Handle::unparker_of`] or [`Schedule::unparker`](crate::Schedule::unparker).
///
/// Unparking a tasklet that has ended does nothing. Unparkers are cheap to clone (a reference
/// count and an id) and can be used anywhere on the schedule's thread, destructors and the
/// host included: neither call yields. From another thread, use a [`Remote`].
#[derive(Clone)]
pub struct Unparker {
    id: TaskletId,
    wakes: Rc<Wakes>,
}

impl Unparker {
    pub(crate) fn new(id: TaskletId, wakes: Rc<Wakes>) -> Unparker {
        Unparker { id, wakes }
    }

    /// Makes the tasklet runnable if it is parked, or makes its next park return at once.
    pub fn unpark(&self) {
        self.wakes.local.borrow_mut().push(self.id);
    }

    /// Kills the tasklet before the schedule's next step (its destructors run, its op is
    /// withdrawn; see [`Schedule::kill`](crate::Schedule::kill)). Never yields, so a
    /// destructor may call it (to end the helpers of a connection that is being torn down,
    /// say). Killing a tasklet that has ended does nothing; a tasklet that kills itself this
    /// way ends at its next yield.
    pub fn kill(&self) {
        self.wakes.kills.borrow_mut().push(self.id);
    }

    /// An unparker for tasklet `id` of the same schedule (as
    /// [`Handle::unparker_of`] makes): for code that keeps one unparker and learns which
    /// tasklet to wake or kill later, from an id it stores for nothing (a `Copy` value).
    pub fn for_tasklet(&self, id: TaskletId) -> Unparker {
        Unparker {
            id,
            wakes: Rc::clone(&self.wakes),
        }
    }

    /// The tasklet this unparker unparks.
    pub fn id(&self) -> TaskletId {
        self.id
    }

    /// Whether both unpark the same tasklet.
    pub fn will_unpark(&self, other: &Unparker) -> bool {
        self.id == other.id
    }
}

impl fmt::Debug for Unparker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Unparker").field(&self.id).finish()
    }
}
