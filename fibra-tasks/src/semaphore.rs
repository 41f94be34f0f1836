//! `Semaphore`: a count of permits that tasklets take and give back, waiters served first
//! come, first served.

use std::cell::RefCell;
use std::fmt;

use fibra_rt::Handle;

use crate::{WaitGuard, WaitList};

struct State {
    /// Permits free now (none while a tasklet waits: a freed permit goes to the first waiter).
    permits: usize,
    /// Tasklets waiting for a permit; a woken one has been handed one.
    waiters: WaitList,
}

impl State {
    /// One permit comes back: to the first waiter (woken, it owns it now), or to the count.
    fn release(&mut self) {
        if !self.waiters.wake_one() {
            self.permits = self.permits.saturating_add(1);
        }
    }
}

/// A count of permits for the tasklets of one schedule: [`acquire`](Self::acquire) takes one,
/// parking while none is free, and the [`SemaphorePermit`] gives it back when dropped.
///
/// Fair: permits go to waiters in the order they came, and a new tasklet never overtakes one
/// that waits. Kill-safe: a tasklet killed while waiting leaves the line, and a permit handed
/// to it that it never took goes to the next in line. Share it between tasklets with an `Rc`.
///
/// ```
/// use std::rc::Rc;
/// use std::time::Duration;
/// use fibra_rt::Schedule;
/// use fibra_tasks::{Semaphore, TasksExt, TasksPlugin};
///
/// // At most two of five workers at a time.
/// let mut schedule = Schedule::new();
/// schedule.add_plugin(TasksPlugin::new())?;
/// let slots = Rc::new(Semaphore::new(2));
/// let busy = Rc::new(std::cell::Cell::new(0));
/// for _ in 0..5 {
///     let (slots, busy) = (slots.clone(), busy.clone());
///     schedule.spawn(move |h| {
///         let _permit = slots.acquire(h);
///         busy.set(busy.get() + 1);
///         assert!(busy.get() <= 2);
///         h.sleep(Duration::from_millis(1));
///         busy.set(busy.get() - 1);
///     })?;
/// }
/// schedule.run()?;
/// assert_eq!(slots.permits(), 2);
/// # Ok::<(), fibra_rt::Error>(())
/// ```
pub struct Semaphore {
    state: RefCell<State>,
}

impl Semaphore {
    /// A semaphore with `permits` free permits.
    pub const fn new(permits: usize) -> Semaphore {
        Semaphore {
            state: RefCell::new(State {
                permits,
                waiters: WaitList::new(),
            }),
        }
    }

    /// Takes a permit, parking (behind the tasklets already waiting) until one is free.
    pub fn acquire(&self, h: &Handle) -> SemaphorePermit<'_> {
        if let Some(permit) = self.try_acquire() {
            return permit;
        }
        let key = self.state.borrow_mut().waiters.push(h.unparker());
        let mut guard = WaitGuard::new(|taken| {
            let mut state = self.state.borrow_mut();
            // Woken means handed a permit: give it back if it was not taken.
            if state.waiters.remove(key) == Some(true) && !taken {
                state.release();
            }
        });
        loop {
            h.park();
            if self.state.borrow().waiters.is_woken(key) {
                guard.done(true);
                return SemaphorePermit { semaphore: self };
            }
        }
    }

    /// Takes a permit if one is free now and no tasklet waits; never parks.
    pub fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        let mut state = self.state.borrow_mut();
        if state.permits == 0 || !state.waiters.is_empty() {
            return None;
        }
        state.permits -= 1;
        Some(SemaphorePermit { semaphore: self })
    }

    /// Permits free now.
    pub fn permits(&self) -> usize {
        self.state.borrow().permits
    }

    /// Tasklets waiting for a permit.
    pub fn waiting(&self) -> usize {
        self.state.borrow().waiters.waiting()
    }

    /// Adds `n` permits (waking up to `n` waiters); the count stops at `usize::MAX` (as good
    /// as no limit), so `add_permits(usize::MAX)` opens the gate for good.
    pub fn add_permits(&self, n: usize) {
        let mut state = self.state.borrow_mut();
        // One step per waiter woken, not per permit: `usize::MAX` permits cost no more.
        let mut left = n;
        while left > 0 && state.waiters.wake_one() {
            left -= 1;
        }
        state.permits = state.permits.saturating_add(left);
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("permits", &self.permits())
            .field("waiting", &self.waiting())
            .finish()
    }
}

/// A permit of a [`Semaphore`], given back when dropped.
#[must_use = "the permit is given back when dropped"]
pub struct SemaphorePermit<'a> {
    semaphore: &'a Semaphore,
}

impl SemaphorePermit<'_> {
    /// Keeps the permit taken for good (the semaphore has one fewer).
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        self.semaphore.state.borrow_mut().release();
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit").finish_non_exhaustive()
    }
}
