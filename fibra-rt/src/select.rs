//! Select: wait for the first of two or three ops; the others are withdrawn from their
//! plugins, exactly as a timeout withdraws an op.
//!
//! The tasklet builds one [`Slot`] per op on its stack and yields a [`SelectSlot`] that points
//! at them. The schedule submits the ops in order: the first that is ready at once wins and the
//! ones submitted before it are withdrawn; if none is, the tasklet waits in
//! `State::Selecting` until a plugin completes one of them ([`Context::complete`] finds the
//! op by its type), and the others are withdrawn before the tasklet runs again.
//!
//! Each op of a select must be served by a different plugin: a plugin withdraws a tasklet's
//! op by the tasklet's id (`Plugin::cancel`), so it may hold only one op per tasklet. One arm
//! may be [`Park`](crate::Park): an unpark then completes the select.
//!
//! [`Context::complete`]: crate::Context::complete

use std::any::{type_name, TypeId};
use std::ptr::NonNull;

use crate::op::{no_plugin_message, Header, Op, Slot, Status};
use crate::Handle;

/// The most ops one select waits on.
pub(crate) const MAX_ARMS: usize = 3;

/// In `SelectSlot::plugins`: the arm is [`Park`](crate::Park), served by the schedule, and has
/// no plugin to withdraw it from.
pub(crate) const PARK_ARM: usize = usize::MAX;

/// The type id in a [`SelectSlot`]'s header; never an op of any plugin.
pub(crate) struct SelectMarker;

/// What a select yields: the headers of its ops, and what the schedule records about them.
#[repr(C)]
pub(crate) struct SelectSlot {
    /// `type_id` is `SelectMarker`'s; `status` is `Refused` when the schedule would not submit
    /// the ops.
    pub(crate) header: Header,
    /// The ops' slots, the first `len` of them.
    pub(crate) arms: [NonNull<Header>; MAX_ARMS],
    pub(crate) len: usize,
    /// The plugin serving each op, written by the schedule as it submits them.
    pub(crate) plugins: [usize; MAX_ARMS],
    /// Which op completed.
    pub(crate) won: Option<usize>,
}

impl SelectSlot {
    fn new(arms: &[NonNull<Header>]) -> Self {
        let mut slot = SelectSlot {
            header: Header {
                type_id: TypeId::of::<SelectMarker>(),
                deadline: None,
                status: Status::Submitted,
            },
            arms: [arms[0]; MAX_ARMS],
            len: arms.len(),
            plugins: [usize::MAX; MAX_ARMS],
            won: None,
        };
        slot.arms[..arms.len()].copy_from_slice(arms);
        slot
    }
}

/// Which of two ops completed first, with its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Either<A, B> {
    /// The first op completed.
    First(A),
    /// The second op completed.
    Second(B),
}

/// Which of three ops completed first, with its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OneOf3<A, B, C> {
    /// The first op completed.
    First(A),
    /// The second op completed.
    Second(B),
    /// The third op completed.
    Third(C),
}

impl Handle {
    /// Yields two ops at once and returns the output of the first to complete; the other is
    /// withdrawn from its plugin (as a timeout withdraws an op: it has no effect that its
    /// plugin reports later). When both could complete at once, `a` wins.
    ///
    /// "Sleep 2 s unless the connection is lost" is
    /// `h.select(Sleep(deadline), OnLost::new(&conn))`; "the next frame, unless someone
    /// unparks me first" is `h.select(Receive::new(&conn), Park)`. Killing the tasklet
    /// withdraws both.
    ///
    /// ```
    /// use std::task::Poll;
    /// use fibra_rt::{Context, Either, Op, Plugin, Router, Schedule, Serves, TaskletId};
    ///
    /// /// Never completes.
    /// struct Never;
    /// impl Op for Never { type Output = (); }
    /// /// Completes at once.
    /// struct Now;
    /// impl Op for Now { type Output = u8; }
    ///
    /// #[derive(Debug)]
    /// struct Nothing;
    /// impl Plugin for Nothing {
    ///     fn register(router: &mut Router<Self>) { router.op::<Never>(); }
    /// }
    /// impl Serves<Never> for Nothing {
    ///     fn submit(&mut self, _: Never, _: TaskletId, _: &mut Context<'_>) -> Poll<()> {
    ///         Poll::Pending
    ///     }
    /// }
    /// #[derive(Debug)]
    /// struct Instant;
    /// impl Plugin for Instant {
    ///     fn register(router: &mut Router<Self>) { router.op::<Now>(); }
    /// }
    /// impl Serves<Now> for Instant {
    ///     fn submit(&mut self, _: Now, _: TaskletId, _: &mut Context<'_>) -> Poll<u8> {
    ///         Poll::Ready(7)
    ///     }
    /// }
    ///
    /// let mut schedule = Schedule::new();
    /// schedule.add_plugin(Nothing)?;
    /// schedule.add_plugin(Instant)?;
    /// schedule.spawn(|h| assert_eq!(h.select(Never, Now), Either::Second(7)))?;
    /// schedule.run()?;
    /// # Ok::<(), fibra_rt::Error>(())
    /// ```
    ///
    /// # Panics
    ///
    /// Panics (ending this tasklet only) if no plugin serves one of the ops, or if one plugin
    /// serves both (it could not withdraw one of them alone; two [`Park`](crate::Park)s
    /// likewise).
    pub fn select<A: Op, B: Op>(&self, a: A, b: B) -> Either<A::Output, B::Output> {
        let mut a = Slot::new(a, None);
        let mut b = Slot::new(b, None);
        let won = self.suspend_select(
            &[a.header_ptr(), b.header_ptr()],
            &[type_name::<A>(), type_name::<B>()],
            &[no_plugin_message::<A>, no_plugin_message::<B>],
        );
        match won {
            0 => Either::First(take(&mut a)),
            _ => Either::Second(take(&mut b)),
        }
    }

    /// Like [`select`](Self::select), over three ops.
    ///
    /// # Panics
    ///
    /// As [`select`](Self::select), when any two of the ops have the same plugin.
    pub fn select3<A: Op, B: Op, C: Op>(
        &self,
        a: A,
        b: B,
        c: C,
    ) -> OneOf3<A::Output, B::Output, C::Output> {
        let mut a = Slot::new(a, None);
        let mut b = Slot::new(b, None);
        let mut c = Slot::new(c, None);
        let won = self.suspend_select(
            &[a.header_ptr(), b.header_ptr(), c.header_ptr()],
            &[type_name::<A>(), type_name::<B>(), type_name::<C>()],
            &[
                no_plugin_message::<A>,
                no_plugin_message::<B>,
                no_plugin_message::<C>,
            ],
        );
        match won {
            0 => OneOf3::First(take(&mut a)),
            1 => OneOf3::Second(take(&mut b)),
            _ => OneOf3::Third(take(&mut c)),
        }
    }

    /// Suspends on the ops behind `arms` (named `names`, their missing-plugin messages made by
    /// `no_plugin`); returns which one completed.
    fn suspend_select(
        &self,
        arms: &[NonNull<Header>],
        names: &[&'static str],
        no_plugin: &[fn(&str) -> String],
    ) -> usize {
        let mut select = SelectSlot::new(arms);
        self.suspend(NonNull::from(&mut select).cast());
        if let Some(won) = select.won {
            return won;
        }
        for (arm, message) in arms.iter().zip(no_plugin) {
            // SAFETY: the arms are the caller's live slots; the schedule no longer holds them.
            if unsafe { arm.as_ref() }.status == Status::NoPlugin {
                panic!("{}", message(" (an op of a select)"));
            }
        }
        panic!(
            "a select's ops must be served by different plugins (and at most one be `Park`): {} \
             (a plugin withdraws a tasklet's op by the tasklet's id, so it holds only one)",
            names.join(", ")
        );
    }
}

/// The output of the op that won.
fn take<O: Op>(slot: &mut Slot<O>) -> O::Output {
    slot.out
        .take()
        .expect("the schedule answered the op it said had won")
}
