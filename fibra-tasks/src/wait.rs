//! The wait list every parking structure shares: [`WaitList`] keeps parked tasklets first come,
//! first woken, and [`WaitGuard`] takes a tasklet off it when its wait ends in any way (woken,
//! timed out, or killed while parked), so a dead tasklet never holds a place or eats a wake-up
//! meant for a live one.
//!
//! Channels, [`Mutex`](crate::Mutex), [`Semaphore`](crate::Semaphore),
//! [`Notify`](crate::Notify), [`oneshot`](crate::oneshot), [`remote_channel`](crate::remote_channel)
//! and `fibra_net::Pool` are built on these two.

use std::collections::VecDeque;
use std::fmt;

use fibra_rt::{Remote, TaskletId, Unparker};

/// How a [`WaitList`] wakes one of its waiters.
pub trait Wake {
    /// Wakes the waiter (unparks its tasklet). Must not yield.
    fn wake(&self);
}

impl Wake for Unparker {
    fn wake(&self) {
        self.unpark();
    }
}

/// A tasklet of any schedule, woken from any thread: its schedule's [`Remote`] and its id
/// (ids are per schedule, so the pair names the tasklet).
#[derive(Clone, Debug)]
pub struct RemoteWaker {
    remote: Remote,
    id: TaskletId,
}

impl RemoteWaker {
    /// The tasklet `id` of the schedule behind `remote`.
    pub fn new(remote: Remote, id: TaskletId) -> RemoteWaker {
        RemoteWaker { remote, id }
    }

    /// The tasklet of `h`, reached through its own schedule's remote.
    pub fn of(h: &fibra_rt::Handle) -> RemoteWaker {
        RemoteWaker::new(h.remote(), h.id())
    }
}

impl Wake for RemoteWaker {
    fn wake(&self) {
        self.remote.unpark(self.id);
    }
}

/// A waiter's place in a [`WaitList`], from [`WaitList::push`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WaitKey(u64);

/// Parked tasklets, woken first come, first woken.
///
/// A waiter [pushes](Self::push) itself and parks; [`wake_one`](Self::wake_one) wakes the
/// longest waiting one not yet woken. A woken waiter keeps its place until it
/// [leaves](Self::leave) (from a [`WaitGuard`]), so a wake-up that its tasklet never used (it
/// was killed first, say) can be passed on to the next. Leaving costs `O(log n)` to find the
/// place and is `O(1)` for the waiter at the front, the usual case.
pub struct WaitList<W = Unparker> {
    /// Ordered by key: pushes take increasing keys, removals keep the order.
    entries: VecDeque<(WaitKey, W)>,
    /// The first `woken` entries have been woken; the rest wait.
    woken: usize,
    next_key: u64,
}

impl<W> Default for WaitList<W> {
    fn default() -> Self {
        WaitList::new()
    }
}

impl<W> fmt::Debug for WaitList<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitList")
            .field("waiting", &self.waiting())
            .field("woken", &self.woken)
            .finish()
    }
}

impl<W> WaitList<W> {
    /// An empty list (allocates nothing until the first push).
    pub const fn new() -> WaitList<W> {
        WaitList {
            entries: VecDeque::new(),
            woken: 0,
            next_key: 0,
        }
    }

    /// Adds a waiter at the back; give its key to a [`WaitGuard`] that leaves when the wait
    /// ends.
    pub fn push(&mut self, waker: W) -> WaitKey {
        let key = WaitKey(self.next_key);
        self.next_key += 1;
        self.entries.push_back((key, waker));
        key
    }

    /// Waiters not yet woken.
    pub fn waiting(&self) -> usize {
        self.entries.len() - self.woken
    }

    /// Waiters woken that have not left the list yet (they have not run since).
    pub fn woken(&self) -> usize {
        self.woken
    }

    /// Whether no waiter waits to be woken.
    pub fn is_empty(&self) -> bool {
        self.waiting() == 0
    }

    /// Whether the waiter `key` was woken (and has not left).
    pub fn is_woken(&self, key: WaitKey) -> bool {
        self.position(key).is_some_and(|at| at < self.woken)
    }

    /// Takes waiter `key` off the list; returns whether it had been woken (`None`: it was not
    /// on the list).
    pub fn remove(&mut self, key: WaitKey) -> Option<bool> {
        let at = self.position(key)?;
        self.entries.remove(at);
        let woken = at < self.woken;
        if woken {
            self.woken -= 1;
        }
        Some(woken)
    }

    /// The waker of waiter `key` (woken or not), while it is on the list.
    pub fn get(&self, key: WaitKey) -> Option<&W> {
        self.position(key).map(|at| &self.entries[at].1)
    }

    /// Marks the longest waiting waiter not yet woken as woken and returns its waker,
    /// without waking it: for a caller that wakes it after releasing a lock.
    pub fn take_next(&mut self) -> Option<&W> {
        let (_, waker) = self.entries.get(self.woken)?;
        self.woken += 1;
        Some(waker)
    }

    fn position(&self, key: WaitKey) -> Option<usize> {
        self.entries.binary_search_by_key(&key, |(k, _)| *k).ok()
    }
}

impl<W: Wake> WaitList<W> {
    /// Wakes the longest waiting waiter not yet woken; returns whether there was one.
    pub fn wake_one(&mut self) -> bool {
        match self.take_next() {
            Some(waker) => {
                waker.wake();
                true
            }
            None => false,
        }
    }

    /// Wakes every waiter not yet woken.
    pub fn wake_all(&mut self) {
        while self.wake_one() {}
    }

    /// Takes waiter `key` off the list as [`remove`](Self::remove) does; if it had been woken
    /// and did not `use` the wake-up, the next waiter is woken in its place. Returns whether
    /// it had been woken.
    pub fn leave(&mut self, key: WaitKey, used: bool) -> bool {
        let woken = self.remove(key) == Some(true);
        if woken && !used {
            self.wake_one();
        }
        woken
    }
}

/// Runs its `leave` closure when dropped, however the wait it guards ends: the tasklet was
/// woken, it timed out, or it was killed while parked (a kill unwinds the tasklet's stack, and
/// this runs on the way). `leave` is told whether the wait was [done](Self::done): whether the
/// waiter got, and will use, what it waited for; a wait not done passes its wake-up (or its
/// grant) on.
///
/// ```
/// use std::cell::RefCell;
/// use fibra_rt::Schedule;
/// use fibra_tasks::{WaitGuard, WaitList};
///
/// // A flag tasklets wait for.
/// let waiters = RefCell::new(WaitList::new());
/// let up = std::cell::Cell::new(false);
/// let mut schedule = Schedule::new();
/// let (waiters, up) = (std::rc::Rc::new(waiters), std::rc::Rc::new(up));
/// let (w, u) = (waiters.clone(), up.clone());
/// schedule.spawn(move |h| {
///     while !u.get() {
///         let key = w.borrow_mut().push(h.unparker());
///         let mut guard = WaitGuard::new(|done| {
///             w.borrow_mut().leave(key, done);
///         });
///         h.park();
///         guard.done(u.get());
///     }
/// })?;
/// schedule.spawn(move |_h| {
///     up.set(true);
///     waiters.borrow_mut().wake_all();
/// })?;
/// schedule.run()?;
/// # Ok::<(), fibra_rt::Error>(())
/// ```
#[must_use = "the guard leaves the wait list when dropped: bind it to a variable"]
pub struct WaitGuard<F: FnOnce(bool)> {
    leave: Option<F>,
    done: bool,
}

impl<F: FnOnce(bool)> WaitGuard<F> {
    /// A guard that calls `leave(done)` when dropped.
    pub fn new(leave: F) -> WaitGuard<F> {
        WaitGuard {
            leave: Some(leave),
            done: false,
        }
    }

    /// Records whether the wait is done (false until called): `leave` gets this value.
    pub fn done(&mut self, done: bool) {
        self.done = done;
    }
}

impl<F: FnOnce(bool)> Drop for WaitGuard<F> {
    fn drop(&mut self) {
        if let Some(leave) = self.leave.take() {
            leave(self.done);
        }
    }
}

impl<F: FnOnce(bool)> fmt::Debug for WaitGuard<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitGuard")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
