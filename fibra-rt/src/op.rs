//! Operations: the values a tasklet yields, and the slot that carries them across the switch.
//!
//! A tasklet yields an op by building a [`Slot`] on its own stack and suspending with a pointer
//! to the slot's [`Header`] (8 bytes cross the switch, whatever the op's size). The schedule
//! reads the op's type from the header, hands the op to the plugin registered for that type,
//! and writes the result back into the slot before resuming the tasklet. The slot lives as long
//! as the tasklet is suspended in [`Handle::yield_op`](crate::Handle::yield_op), which is exactly
//! as long as the schedule may touch it.

use std::any::TypeId;
use std::fmt;
use std::ptr::NonNull;
use std::time::Instant;

/// An operation a tasklet can yield: the request a plugin serves, and the type of its answer.
///
/// Define an op as a plain struct, implement `Op` for it, and implement
/// [`Serves<YourOp>`](crate::Serves) for the plugin that serves it. An op type is served by
/// exactly one plugin of a schedule.
///
/// ```
/// use fibra_rt::Op;
///
/// /// Ask the clock plugin for the current frame number.
/// pub struct FrameNumber;
///
/// impl Op for FrameNumber {
///     type Output = u64;
/// }
/// # let _ = FrameNumber;
/// ```
pub trait Op: 'static {
    /// What the tasklet gets back when the op completes.
    type Output: 'static;

    /// The expression that makes the plugin serving this op, for the message a tasklet
    /// panics with when its schedule has no such plugin: with `Some("my_crate::Clock::new()")`
    /// it says "add `schedule.add_plugin(my_crate::Clock::new())`". `None` (the default)
    /// says to add the plugin that defines the op.
    const PLUGIN: Option<&'static str> = None;
}

/// The message a tasklet panics with when no plugin of its schedule serves op `O`: it names
/// the op and, when the op declares it ([`Op::PLUGIN`]), the line that adds its plugin.
pub(crate) fn no_plugin_message<O: Op>(context: &str) -> String {
    let op = std::any::type_name::<O>();
    match O::PLUGIN {
        // The plugins of fibra's own crates are all added by the façade's one-line setup.
        Some(plugin) if op.starts_with("fibra_") => format!(
            "no plugin of this schedule serves `{op}`{context}: add \
             `schedule.add_plugin({plugin})` or make the schedule with `fibra::schedule()`"
        ),
        Some(plugin) => format!(
            "no plugin of this schedule serves `{op}`{context}: add \
             `schedule.add_plugin({plugin})`"
        ),
        None => format!(
            "no plugin of this schedule serves `{op}`{context}: add the plugin that defines \
             it with `Schedule::add_plugin`"
        ),
    }
}

/// How a yielded op ended, written by the schedule before it resumes the tasklet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// Yielded; no answer yet.
    Submitted,
    /// The op's deadline passed first; the plugin forgot the op.
    TimedOut,
    /// No plugin of this schedule serves the op's type.
    NoPlugin,
}

/// The type-erased front of a [`Slot`]: what the schedule reads without knowing the op type.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Header {
    pub(crate) type_id: TypeId,
    pub(crate) deadline: Option<Instant>,
    pub(crate) status: Status,
}

/// An op and room for its answer, on the yielding tasklet's stack.
#[repr(C)]
pub(crate) struct Slot<O: Op> {
    pub(crate) header: Header,
    pub(crate) op: Option<O>,
    pub(crate) out: Option<O::Output>,
}

impl<O: Op> Slot<O> {
    pub(crate) fn new(op: O, deadline: Option<Instant>) -> Self {
        Slot {
            header: Header {
                type_id: TypeId::of::<O>(),
                deadline,
                status: Status::Submitted,
            },
            op: Some(op),
            out: None,
        }
    }

    /// Writes `out` as the answer to the op in the slot behind `header`.
    ///
    /// # Safety
    /// `header` must be the header of a live `Slot<O>` whose tasklet is suspended in
    /// `yield_op` (so nothing else touches the slot), not answered yet.
    pub(crate) unsafe fn answer(header: NonNull<Header>, out: O::Output) {
        // SAFETY: the caller guarantees the slot is a live `Slot<O>` nobody else touches.
        let slot = unsafe { header.cast::<Slot<O>>().as_mut() };
        // Written without reading the old value (a suspended op has none: a wait is answered
        // once, then ends), so that answering only writes into the stack.
        debug_assert!(slot.out.is_none(), "an op answered twice");
        // SAFETY: `slot.out` is valid for writes; it is `None`, so nothing is leaked.
        unsafe { std::ptr::addr_of_mut!(slot.out).write(Some(out)) };
    }

    /// The pointer that crosses the switch. It is derived from the whole slot so that the
    /// schedule may reach the op and output fields through it.
    pub(crate) fn header_ptr(&mut self) -> NonNull<Header> {
        NonNull::from(self).cast()
    }
}

/// Returned by [`Handle::yield_op_until`](crate::Handle::yield_op_until) and
/// [`Handle::yield_op_timeout`](crate::Handle::yield_op_timeout) when the deadline passed before
/// the op completed. The op was withdrawn from its plugin: it had no effect that the plugin
/// would report later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimedOut {
    pub(crate) op: &'static str,
}

impl TimedOut {
    /// The type name of the op that timed out.
    pub fn op(&self) -> &'static str {
        self.op
    }
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` timed out before it completed", self.op)
    }
}

impl std::error::Error for TimedOut {}

impl From<TimedOut> for std::io::Error {
    fn from(e: TimedOut) -> Self {
        std::io::Error::new(std::io::ErrorKind::TimedOut, e)
    }
}
