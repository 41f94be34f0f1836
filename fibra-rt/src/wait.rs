//! What a suspended tasklet waits on: the pointer into its stack through which the schedule
//! hands its op to a plugin and writes the answer. Every use of that pointer is in this file.
//!
//! # The invariant
//!
//! An [`OpSlot`] points at the [`Header`] of a [`Slot`] (or of a [`SelectSlot`]) that a tasklet
//! built on its own stack in [`Handle::yield_op`](crate::Handle::yield_op) (or
//! [`Handle::select`](crate::Handle::select)) and yielded. It is made only from the pointer
//! the tasklet's coroutine has just yielded, and it is only ever kept next to that coroutine,
//! suspended: on `run_tasklet`'s frame beside the coroutine it came from, then in
//! [`State::Suspended`](crate::tasklet::State) `{ co, wait }`, one value, so that whoever takes
//! the coroutine takes the pointer with it, and dropping one drops the other. While the
//! coroutine is suspended its stack is mapped and the tasklet is stopped inside the function
//! that built the slot, so the slot is alive and nothing else touches it for as long as the
//! `OpSlot` exists. The methods below rely on that and on nothing else.
//!
//! A wait ends in one place, [`Core::resume`]: after an op's completion, an unpark or an
//! expired deadline has written the answer into the slot, the tasklet becomes runnable and
//! the pointer is dropped with its wait.

use std::any::TypeId;
use std::ptr::NonNull;
use std::task::Poll;
use std::time::Instant;

use crate::handle::Park;
use crate::op::{Header, Op, Slot, Status};
use crate::route::Route;
use crate::schedule::Core;
use crate::select::{SelectMarker, SelectSlot, MAX_ARMS, PARK_ARM};
use crate::tasklet::State;
use crate::{Context, Plugin, Serves, TaskletId};

/// What a suspended tasklet waits for; each variant holds the pointer to its slot.
pub(crate) enum Wait {
    /// The op in `slot`, submitted to the plugin behind route `route`.
    Op { slot: OpSlot, route: usize },
    /// An unpark (the `Park` op in `slot`).
    Park { slot: OpSlot },
    /// The first of the ops of the select in `slot`.
    Select { slot: OpSlot },
}

impl Core {
    /// Resumes suspended tasklet `id`, whose wait was just answered (or timed out): it
    /// becomes runnable (the pointer into its stack is dropped), its op's deadline leaves the
    /// queue, and when it waited in a select, the arms that did not win are withdrawn from
    /// their plugins before it runs again. The one way a suspended tasklet becomes runnable:
    /// an op's completion ([`Context::complete`](crate::Context::complete)), an unpark, an
    /// expired deadline.
    pub(crate) fn resume(&mut self, id: TaskletId) {
        let Some(t) = self.tasklets.get_mut(id.slot()).filter(|t| t.id == id) else {
            return;
        };
        Resume {
            op_deadlines: &mut self.op_deadlines,
            withdrawals: &mut self.withdrawals,
            run_queue: &mut self.run_queue,
        }
        .tasklet(t);
    }
}

/// The parts of the [`Core`] that [`Core::resume`] touches besides the tasklet, so that a
/// caller that has found the tasklet already ([`Context::complete`](crate::Context::complete))
/// resumes it without a second lookup.
pub(crate) struct Resume<'a> {
    pub(crate) op_deadlines: &'a mut crate::DeadlineQueue,
    pub(crate) withdrawals: &'a mut Vec<(TaskletId, usize)>,
    pub(crate) run_queue: &'a mut std::collections::VecDeque<TaskletId>,
}

impl Resume<'_> {
    /// [`Core::resume`] for suspended tasklet `t`, found in the table.
    #[inline(always)]
    pub(crate) fn tasklet(self, t: &mut crate::tasklet::Tasklet) {
        let id = t.id;
        let State::Suspended { wait, .. } = &t.state else {
            return;
        };
        match wait {
            Wait::Op { slot, .. } | Wait::Park { slot } => {
                if slot.has_deadline() {
                    self.op_deadlines.remove(id);
                }
            }
            Wait::Select { slot } => {
                let won = slot.won();
                let (plugins, len) = slot.arm_plugins();
                let losers = plugins[..len].iter().enumerate();
                self.withdrawals.extend(
                    losers
                        .filter(|&(i, &plugin)| Some(i) != won && plugin != PARK_ARM)
                        .map(|(_, &plugin)| (id, plugin)),
                );
            }
        }
        t.end_wait();
        self.run_queue.push_back(id);
    }
}

/// The pointer to the op slot of a suspended tasklet (see the module's invariant).
///
/// Neither `Copy` nor `Clone`: there is one per suspension, and it lives beside the coroutine.
///
/// It keeps a copy of what the schedule asks of the header when the op completes (its type,
/// whether it has a deadline), read once while the tasklet's stack is hot from the yield: a
/// completion then only writes into the stack, and a write to a line out of the cache does
/// not stall the schedule as a read would (one such read was most of `Context::complete`'s
/// time at 1,000 connections).
pub(crate) struct OpSlot {
    header: NonNull<Header>,
    type_id: TypeId,
    has_deadline: bool,
}

impl OpSlot {
    /// Wraps the pointer a tasklet's coroutine has just yielded.
    ///
    /// # Safety
    ///
    /// `header` must be what the coroutine yielded at its last suspension, and the value
    /// returned must be kept beside that coroutine, while it stays suspended (the module's
    /// invariant).
    pub(crate) unsafe fn new(header: NonNull<Header>) -> OpSlot {
        // SAFETY: the caller guarantees `header` is the live slot just yielded (module
        // invariant).
        let (type_id, has_deadline) = unsafe {
            let h = header.as_ref();
            (h.type_id, h.deadline.is_some())
        };
        OpSlot {
            header,
            type_id,
            has_deadline,
        }
    }

    fn header(&self) -> &Header {
        // SAFETY: the slot is alive and untouched while this value exists (module invariant).
        unsafe { self.header.as_ref() }
    }

    fn set_status(&self, status: Status) {
        // SAFETY: as in `header`; the schedule is the only one writing to it now.
        unsafe { (*self.header.as_ptr()).status = status };
    }

    /// The type id of the op (`SelectMarker`'s for a select).
    pub(crate) fn type_id(&self) -> TypeId {
        self.type_id
    }

    /// Whether the op has a deadline (without reading the slot).
    pub(crate) fn has_deadline(&self) -> bool {
        self.has_deadline
    }

    /// The op's deadline, if it has one.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.header().deadline
    }

    /// Whether this is the slot of a select.
    pub(crate) fn is_select(&self) -> bool {
        self.type_id() == TypeId::of::<SelectMarker>()
    }

    /// Marks the op as served by no plugin: the tasklet panics saying so.
    pub(crate) fn refuse(&self) {
        self.set_status(Status::NoPlugin);
    }

    /// Marks the op as timed out: the tasklet gets [`TimedOut`](crate::TimedOut).
    pub(crate) fn time_out(&self) {
        self.set_status(Status::TimedOut);
    }

    /// Writes `out` as the op's answer, if the op is an `O`; gives `out` back otherwise.
    pub(crate) fn answer<O: Op>(&self, out: O::Output) -> Result<(), O::Output> {
        if self.type_id() != TypeId::of::<O>() {
            return Err(out);
        }
        // SAFETY: the slot is alive and untouched (module invariant), and its type id says it
        // is a `Slot<O>`.
        unsafe { Slot::<O>::answer(self.header, out) };
        prefetch_below(self.header.as_ptr().cast());
        Ok(())
    }

    /// Hands the op to `plugin` through `route`; returns whether it completed at once (its
    /// answer is then in the slot).
    ///
    /// # Panics
    ///
    /// If `route` is not the route of this op's type (a bug in the schedule), or if the
    /// plugin's `submit` panics.
    pub(crate) fn submit(
        &self,
        route: &Route,
        plugin: &mut dyn Plugin,
        from: TaskletId,
        cx: &mut Context<'_>,
    ) -> bool {
        assert!(
            route.type_id == self.type_id(),
            "an op routed by another type"
        );
        // SAFETY: the slot is alive and untouched (module invariant); the route was made for
        // this op type (just checked), and the schedule passes the plugin the route names.
        unsafe { (route.submit)(plugin, self.header, from, cx) }
    }

    /// The select behind this slot.
    fn select(&self) -> *mut SelectSlot {
        assert!(self.is_select(), "not the slot of a select");
        self.header.cast::<SelectSlot>().as_ptr()
    }

    /// How many ops the select waits on.
    pub(crate) fn arm_count(&self) -> usize {
        // SAFETY: a live `SelectSlot` (module invariant; `select` checked the type).
        unsafe { (*self.select()).len }
    }

    /// The slot of arm `i` of the select. It lives exactly as long as the select's slot: the
    /// tasklet built both on its stack, in the same frame.
    pub(crate) fn arm(&self, i: usize) -> Arm<'_> {
        assert!(i < self.arm_count().min(MAX_ARMS), "no such arm");
        // SAFETY: as in `arm_count`; the first `len` arms point at live slots.
        let header = unsafe { (*self.select()).arms[i] };
        Arm {
            // SAFETY: an arm's slot lives as long as the select's (same frame), which is the
            // slot just yielded.
            slot: unsafe { OpSlot::new(header) },
            _select: std::marker::PhantomData,
        }
    }

    /// Records the plugin serving arm `i` ([`PARK_ARM`] for a park), for withdrawals.
    pub(crate) fn set_arm_plugin(&self, i: usize, plugin: usize) {
        // SAFETY: as in `arm_count`.
        unsafe { (*self.select()).plugins[i] = plugin };
    }

    /// The plugins serving the select's arms, as recorded by `set_arm_plugin`.
    pub(crate) fn arm_plugins(&self) -> ([usize; MAX_ARMS], usize) {
        // SAFETY: as in `arm_count`.
        unsafe { ((*self.select()).plugins, (*self.select()).len) }
    }

    /// The arm that won, once one was answered.
    pub(crate) fn won(&self) -> Option<usize> {
        // SAFETY: as in `arm_count`.
        unsafe { (*self.select()).won }
    }

    /// Records that arm `i` won.
    pub(crate) fn set_won(&self, i: usize) {
        // SAFETY: as in `arm_count`.
        unsafe { (*self.select()).won = Some(i) };
    }

    /// Answers the arm whose op is an `O` and marks it as the winner; returns its index, or
    /// gives `out` back if no arm is an `O`.
    pub(crate) fn answer_arm<O: Op>(&self, out: O::Output) -> Result<usize, O::Output> {
        let len = self.arm_count();
        let Some(won) = (0..len).find(|&i| self.arm(i).slot.type_id() == TypeId::of::<O>()) else {
            return Err(out);
        };
        self.arm(won).slot.answer::<O>(out)?;
        self.set_won(won);
        Ok(won)
    }

    /// Answers the select's park arm, if it has one, and marks it as the winner.
    pub(crate) fn answer_park_arm(&self) -> Option<usize> {
        let (plugins, len) = self.arm_plugins();
        let arm = plugins[..len].iter().position(|&p| p == PARK_ARM)?;
        self.arm(arm).slot.answer::<Park>(()).ok()?;
        self.set_won(arm);
        Some(arm)
    }
}

/// Asks the CPU to bring the two cache lines below `at` into its cache: where the tasklet's
/// switch saved its registers, just below its op slot (the stack grows down). The tasklet
/// runs later in this tick; the first thing its resumption does is read them, and at 1,000
/// connections that read missed the cache every time. A hint only: it reads nothing and
/// cannot fault, whatever the address.
#[inline(always)]
fn prefetch_below(at: *const u8) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: `_mm_prefetch` needs SSE, which every x86_64 CPU has; a prefetch of any
        // address is a hint that neither reads memory into the program nor faults.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(at.wrapping_sub(64).cast());
            _mm_prefetch::<_MM_HINT_T0>(at.wrapping_sub(128).cast());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

/// One arm of a select: an op slot borrowed from the select's.
pub(crate) struct Arm<'a> {
    slot: OpSlot,
    _select: std::marker::PhantomData<&'a OpSlot>,
}

impl std::ops::Deref for Arm<'_> {
    type Target = OpSlot;

    fn deref(&self) -> &OpSlot {
        &self.slot
    }
}

/// Type-erased `Serves::<O>::submit` for one plugin type and op type: what a [`Route`] calls.
///
/// # Safety
///
/// `header` must point to the header of a live `Slot<O>` whose tasklet is suspended (the
/// module's invariant), and `plugin` must be a `P`.
pub(crate) type SubmitFn =
    unsafe fn(&mut dyn Plugin, NonNull<Header>, TaskletId, &mut Context<'_>) -> bool;

/// The [`SubmitFn`] of plugin `P` for op `O`.
pub(crate) unsafe fn submit_erased<P: Serves<O>, O: Op>(
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
