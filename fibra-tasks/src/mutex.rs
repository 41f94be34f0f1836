//! `Mutex`: one tasklet at a time holds the value, waiters served first come, first served.

use std::cell::{RefCell, RefMut};
use std::fmt;
use std::ops::{Deref, DerefMut};

use fibra_rt::Handle;

use crate::{Semaphore, SemaphorePermit};

/// A value that one tasklet at a time may use across yields: [`lock`](Self::lock) parks until
/// the value is free and gives a [`MutexGuard`]; dropping the guard frees it.
///
/// A `RefCell` is enough for a value used between two yields; this is for one held while the
/// tasklet waits (a connection's turn to write, a file being rewritten). Fair: the lock goes
/// to waiters in the order they came. Kill-safe: a tasklet killed while waiting leaves the
/// line, and one killed while holding the lock frees it as its stack unwinds.
///
/// ```
/// use std::rc::Rc;
/// use std::time::Duration;
/// use fibra_rt::Schedule;
/// use fibra_tasks::{Mutex, TasksExt, TasksPlugin};
///
/// let mut schedule = Schedule::new();
/// schedule.add_plugin(TasksPlugin::new())?;
/// let log = Rc::new(Mutex::new(Vec::new()));
/// for who in ["a", "b"] {
///     let log = log.clone();
///     schedule.spawn(move |h| {
///         let mut log = log.lock(h);
///         log.push(format!("{who} in"));
///         h.sleep(Duration::from_millis(1)); // the other waits
///         log.push(format!("{who} out"));
///     })?;
/// }
/// schedule.run()?;
/// assert_eq!(*log.try_lock().unwrap(), ["a in", "a out", "b in", "b out"]);
/// # Ok::<(), fibra_rt::Error>(())
/// ```
pub struct Mutex<T> {
    turn: Semaphore,
    value: RefCell<T>,
}

impl<T> Mutex<T> {
    /// A mutex holding `value`, free.
    pub const fn new(value: T) -> Mutex<T> {
        Mutex {
            turn: Semaphore::new(1),
            value: RefCell::new(value),
        }
    }

    /// Locks, parking (behind the tasklets already waiting) until the value is free.
    pub fn lock(&self, h: &Handle) -> MutexGuard<'_, T> {
        let permit = self.turn.acquire(h);
        self.guard(permit)
    }

    /// Locks if the value is free and no tasklet waits; never parks.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        let permit = self.turn.try_acquire()?;
        Some(self.guard(permit))
    }

    fn guard<'a>(&'a self, permit: SemaphorePermit<'a>) -> MutexGuard<'a, T> {
        MutexGuard {
            // The permit is the only way to the value: no other borrow exists.
            value: self.value.borrow_mut(),
            _permit: permit,
        }
    }

    /// Whether a tasklet holds the lock.
    pub fn is_locked(&self) -> bool {
        self.value.try_borrow_mut().is_err()
    }

    /// The value, to change without locking (no guard can exist while `self` is borrowed
    /// mutably).
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    /// The value, the mutex gone.
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T: fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.value.try_borrow() {
            Ok(value) => d.field("value", &*value),
            Err(_) => d.field("value", &format_args!("<locked>")),
        };
        d.field("waiting", &self.turn.waiting()).finish()
    }
}

/// The lock of a [`Mutex`], and access to its value; dropping it frees the lock (to the first
/// waiter).
#[must_use = "the lock is freed when the guard is dropped"]
pub struct MutexGuard<'a, T> {
    // Dropped before the permit: the value is free before the next holder is woken.
    value: RefMut<'a, T>,
    _permit: SemaphorePermit<'a>,
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

impl<T: fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.value, f)
    }
}
