//! `Notify`: tasklets wait for a signal that another tasklet (or the host) gives.

use std::cell::{Cell, RefCell};
use std::fmt;

use fibra_rt::{Handle, Unparker};

use crate::{WaitGuard, WaitList, Wake};

/// A waiting tasklet, and whether a `notify_all` woke it (a wake-up not to pass on).
struct Waiter {
    unparker: Unparker,
    by_all: Cell<bool>,
}

impl Wake for Waiter {
    fn wake(&self) {
        self.unparker.unpark();
    }
}

struct State {
    /// A `notify_one` came while nobody waited: the next `wait` returns at once.
    permit: bool,
    waiters: WaitList<Waiter>,
}

impl State {
    fn notify_one(&mut self) {
        if !self.waiters.wake_one() {
            self.permit = true;
        }
    }
}

/// A signal for the tasklets of one schedule: [`wait`](Self::wait) parks until
/// [`notify_one`](Self::notify_one) or [`notify_all`](Self::notify_all).
///
/// `notify_one` wakes the longest waiting tasklet; with none waiting it leaves a permit, and
/// the next `wait` returns at once (so a signal given just before the wait is not lost; at
/// most one is kept). `notify_all` wakes every tasklet waiting now and keeps nothing.
/// Kill-safe: a tasklet killed while waiting leaves the line, and a `notify_one` meant for it
/// goes to the next waiter (or back to the permit). Neither call yields: destructors and the
/// host may notify. Share it with an `Rc`.
///
/// ```
/// use std::rc::Rc;
/// use fibra_rt::Schedule;
/// use fibra_tasks::{Notify, TasksExt, TasksPlugin};
///
/// let mut schedule = Schedule::new();
/// schedule.add_plugin(TasksPlugin::new())?;
/// let ready = Rc::new(Notify::new());
/// let woken = Rc::new(std::cell::Cell::new(0));
/// for _ in 0..3 {
///     let (ready, woken) = (ready.clone(), woken.clone());
///     schedule.spawn(move |h| {
///         ready.wait(h);
///         woken.set(woken.get() + 1);
///     })?;
/// }
/// schedule.spawn(move |h| {
///     h.yield_now(); // the three wait
///     ready.notify_all();
/// })?;
/// schedule.run()?;
/// assert_eq!(woken.get(), 3);
/// # Ok::<(), fibra_rt::Error>(())
/// ```
pub struct Notify {
    state: RefCell<State>,
}

impl Notify {
    /// A signal with no permit and no waiter.
    pub const fn new() -> Notify {
        Notify {
            state: RefCell::new(State {
                permit: false,
                waiters: WaitList::new(),
            }),
        }
    }

    /// Parks until notified; returns at once, using it, if a permit is kept.
    pub fn wait(&self, h: &Handle) {
        let key = {
            let mut state = self.state.borrow_mut();
            if state.permit {
                state.permit = false;
                return;
            }
            state.waiters.push(Waiter {
                unparker: h.unparker(),
                by_all: Cell::new(false),
            })
        };
        let mut guard = WaitGuard::new(|done| {
            let mut state = self.state.borrow_mut();
            // Woken by a `notify_one` (whatever `notify_all` came after it), and killed
            // before it went on: pass it on.
            let by_all = state.waiters.get(key).is_some_and(|w| w.by_all.get());
            if state.waiters.remove(key) == Some(true) && !done && !by_all {
                state.notify_one();
            }
        });
        loop {
            h.park();
            if self.state.borrow().waiters.is_woken(key) {
                guard.done(true);
                return;
            }
        }
    }

    /// Wakes the longest waiting tasklet, or keeps a permit for the next `wait`.
    pub fn notify_one(&self) {
        self.state.borrow_mut().notify_one();
    }

    /// Wakes every tasklet waiting now; keeps no permit.
    pub fn notify_all(&self) {
        let mut state = self.state.borrow_mut();
        while let Some(waiter) = state.waiters.take_next() {
            waiter.by_all.set(true);
            waiter.wake();
        }
    }

    /// Tasklets waiting now (not yet woken).
    pub fn waiting(&self) -> usize {
        self.state.borrow().waiters.waiting()
    }
}

impl Default for Notify {
    fn default() -> Self {
        Notify::new()
    }
}

impl fmt::Debug for Notify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.borrow();
        f.debug_struct("Notify")
            .field("permit", &state.permit)
            .field("waiting", &state.waiters.waiting())
            .finish()
    }
}
