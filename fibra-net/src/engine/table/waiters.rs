//! The one place where tasklets are parked on the table, completed and withdrawn.
//!
//! A parked tasklet is a [`Parked`]: made only by [`Waiters::park`], neither `Clone` nor
//! `Copy`, and consumed by the one call that tells the tasklet ([`Waiters::complete`]) or
//! hands it to the next poll ([`Waiters::orphan`]). So a waiter is completed at most once by
//! construction, and `forget` (the tasklet was killed, or its op's deadline passed) finds
//! it through `waiting`, which knows where every parked tasklet sits.

use fibra_rt::{Context, IdMap, Op, TaskletId};

use crate::api::error::{Lost, NetError};
use crate::api::ops;

/// Where a parked tasklet sits: the op it waits for, and the slot of its entry.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Wait {
    Accept(usize),
    Connect(usize),
    Receive(usize),
    Drain(usize),
    Flush(usize),
    Close(usize),
    Lost(usize),
    /// The connection's close, both ways ([`OnClosed`](ops::OnClosed)).
    Closed,
}

/// A tasklet parked on the table, until it is completed or withdrawn.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a parked tasklet must be completed, orphaned or withdrawn"]
pub(crate) struct Parked(TaskletId);

impl Parked {
    pub(crate) fn id(&self) -> TaskletId {
        self.0
    }
}

/// Every parked tasklet, and those whose entry went away without a context at hand.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    waiting: IdMap<Wait>,
    /// Told `Closed` (or the op's equivalent) at the next poll.
    orphans: Vec<(TaskletId, Wait)>,
    /// Waiters for a connection's close, told at the next poll how its output ended.
    closed: Vec<(TaskletId, Lost)>,
}

impl Waiters {
    /// Parks `id` on `wait`.
    #[inline]
    pub(crate) fn park(&mut self, id: TaskletId, wait: Wait) -> Parked {
        self.waiting.insert(id, wait);
        Parked(id)
    }

    /// Resumes the parked tasklet with `out`, the output of op `O`.
    pub(crate) fn complete<O: Op>(&mut self, cx: &mut Context<'_>, parked: Parked, out: O::Output) {
        self.waiting.remove(parked.0);
        // A tasklet that is gone (killed meanwhile) cannot take it: nothing to do.
        let _ = cx.complete::<O>(parked.0, out);
    }

    /// The entry the tasklet waited on is gone; it is told at the next poll.
    pub(crate) fn orphan(&mut self, parked: Parked, wait: Wait) {
        self.waiting.remove(parked.0);
        self.orphans.push((parked.0, wait));
    }

    /// The connection the tasklet waited on closed, its output ended by `how` (the close
    /// happens where no context is at hand): it is told at the next poll.
    pub(crate) fn closed(&mut self, parked: Parked, how: Lost) {
        self.waiting.remove(parked.0);
        self.closed.push((parked.0, how));
    }

    /// Withdraws `id` (killed, or its deadline passed): where it sat, so that the caller can
    /// drop its [`Parked`] there.
    /// An answer already queued for the next poll (an orphan's, a close's) goes too: the op
    /// it answered is withdrawn, and the tasklet may wait in another op of the same kind by
    /// that poll (a select whose other arm won, then `on_closed` on another connection).
    pub(crate) fn withdraw(&mut self, id: TaskletId) -> Option<Wait> {
        if !self.orphans.is_empty() {
            self.orphans.retain(|&(o, _)| o != id);
        }
        if !self.closed.is_empty() {
            self.closed.retain(|&(o, _)| o != id);
        }
        self.waiting.remove(id)
    }

    pub(crate) fn len(&self) -> usize {
        self.waiting.len()
    }

    pub(crate) fn has_orphans(&self) -> bool {
        !self.orphans.is_empty() || !self.closed.is_empty()
    }

    /// Tells the orphans that their entry is gone.
    pub(crate) fn tell_orphans(&mut self, cx: &mut Context<'_>) {
        for (id, wait) in self.orphans.drain(..) {
            let _ = match wait {
                Wait::Accept(_) => cx
                    .complete::<ops::Accept>(id, Err(NetError::Closed))
                    .is_ok(),
                Wait::Connect(_) => cx
                    .complete::<ops::Connect>(id, Err(NetError::Closed))
                    .is_ok(),
                Wait::Receive(_) => cx
                    .complete::<ops::Receive>(id, Err(NetError::Closed))
                    .is_ok(),
                Wait::Drain(_) => cx.complete::<ops::Drain>(id, Err(NetError::Closed)).is_ok(),
                Wait::Flush(_) => cx.complete::<ops::Flush>(id, Err(NetError::Closed)).is_ok(),
                Wait::Close(_) => cx.complete::<ops::Close>(id, Ok(())).is_ok(),
                Wait::Lost(_) => cx.complete::<ops::OnLost>(id, Lost::Closed).is_ok(),
                Wait::Closed => cx.complete::<ops::OnClosed>(id, Lost::Closed).is_ok(),
            };
        }
        for (id, how) in self.closed.drain(..) {
            let _ = cx.complete::<ops::OnClosed>(id, how);
        }
    }
}
