//! `Remote`: wakes a schedule, and unparks its tasklets, from any thread.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::reactor::Notifier;
use crate::TaskletId;

/// What the remotes of one schedule share with it.
pub(crate) struct RemoteShared {
    /// Tasklets to unpark, posted from other threads.
    unparks: Mutex<Vec<TaskletId>>,
    /// A notification is on its way, or the schedule has not yet looked: others need not
    /// notify again. Cleared by the schedule before it takes the queue.
    pending: AtomicBool,
    /// The schedule was dropped: unparks go nowhere, and are not queued.
    closed: AtomicBool,
    notifier: Arc<Notifier>,
    /// The schedule was made under a simulation (`sim` feature): its clock is simulated,
    /// so a wake from a thread the simulation does not drive would land at a simulated
    /// instant that real timing chose.
    #[cfg(feature = "sim")]
    simulated: bool,
    /// A thread the simulation does not drive unparked or woke the schedule: its next
    /// [`tick`](crate::Schedule::tick) fails, saying so.
    #[cfg(feature = "sim")]
    pub(crate) foreign: AtomicBool,
}

/// A handle to a schedule that other threads may hold: it [unparks](Self::unpark) the
/// schedule's tasklets and [wakes](Self::wake) its plugins, even while the schedule blocks
/// in [`run`](crate::Schedule::run). It is `Send + Sync` and cheap to clone.
///
/// Get one from [`Schedule::remote`](crate::Schedule::remote),
/// [`Handle::remote`](crate::Handle::remote) or [`Context::remote`](crate::Context::remote).
/// While a remote other than the schedule's own is alive, a schedule whose tasklets all wait
/// is not stalled: the remote may still wake them.
///
/// ```
/// use fibra_rt::Schedule;
///
/// let mut schedule = Schedule::new();
/// let remote = schedule.remote();
/// let id = schedule.spawn(|h| h.park())?;
/// let waker = std::thread::spawn(move || remote.unpark(id));
/// schedule.run()?; // blocks until the other thread unparks the tasklet
/// waker.join().unwrap();
/// # Ok::<(), fibra_rt::Error>(())
/// ```
#[derive(Clone)]
pub struct Remote {
    pub(crate) shared: Arc<RemoteShared>,
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote").finish_non_exhaustive()
    }
}

impl Remote {
    pub(crate) fn new(notifier: Arc<Notifier>) -> Remote {
        Remote {
            shared: Arc::new(RemoteShared {
                unparks: Mutex::new(Vec::new()),
                pending: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                notifier,
                #[cfg(feature = "sim")]
                simulated: crate::time::is_simulated(),
                #[cfg(feature = "sim")]
                foreign: AtomicBool::new(false),
            }),
        }
    }

    /// Unparks tasklet `id` of this remote's schedule, as
    /// [`Unparker::unpark`](crate::Unparker::unpark) does on the schedule's own thread: a
    /// parked tasklet becomes runnable, any other's next park returns at once, and an ended
    /// one is left alone. The schedule wakes at once if it is blocked. Once the schedule is
    /// dropped this does nothing.
    ///
    /// Each call queues `id` until the schedule's next round: a thread that unparks in a loop
    /// while the host does not run the schedule grows that queue. Unpark when there is
    /// something new for the tasklet, as `fibra_tasks::remote_channel` does (once per park).
    pub fn unpark(&self, id: TaskletId) {
        if !self.is_alive() {
            return;
        }
        self.note_thread();
        self.shared
            .unparks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(id);
        self.wake();
    }

    /// Wakes the schedule: if it is blocked in its poller it returns, and every plugin is
    /// [polled](crate::Plugin::poll). A plugin fed by another thread calls this after it
    /// handed over data. Wakes that come before the schedule looked are merged into one.
    pub fn wake(&self) {
        if !self.is_alive() {
            return;
        }
        self.note_thread();
        if !self.shared.pending.swap(true, Ordering::AcqRel) {
            if let Err(e) = self.shared.notifier.notify() {
                log::error!(target: "fibra_rt::remote", "could not wake the schedule: {e}");
            }
        }
    }

    /// Under a simulation, notes a wake from a thread that no simulation drives (a real
    /// thread's): the simulated schedule then refuses to go on rather than let real timing
    /// decide when, in simulated time, the wake lands.
    #[inline]
    fn note_thread(&self) {
        #[cfg(feature = "sim")]
        if self.shared.simulated && !crate::time::is_simulated() {
            self.shared.foreign.store(true, Ordering::Release);
        }
    }

    /// Whether both reach the same schedule. Tasklet ids are per schedule: two schedules'
    /// tasklets may have equal ids, so code that keeps tasklets of several schedules keys
    /// them by (schedule, id).
    pub fn same_schedule(&self, other: &Remote) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Whether the schedule still exists (it has not been dropped).
    pub fn is_alive(&self) -> bool {
        !self.shared.closed.load(Ordering::Acquire)
    }

    /// The schedule is being dropped: later unparks and wakes do nothing.
    pub(crate) fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared
            .unparks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Whether a wake is pending (posted, not yet seen by the schedule).
    pub(crate) fn is_pending(&self) -> bool {
        self.shared.pending.load(Ordering::Acquire)
    }

    /// Takes the pending unparks into `into` (its old contents are swapped out); returns
    /// whether a wake was pending at all.
    pub(crate) fn take(&self, into: &mut Vec<TaskletId>) -> bool {
        if !self.shared.pending.swap(false, Ordering::AcqRel) {
            return false;
        }
        let mut unparks = self
            .shared
            .unparks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        std::mem::swap(&mut *unparks, into);
        true
    }

    /// How many remotes share this one's schedule, this one included.
    pub(crate) fn count(&self) -> usize {
        Arc::strong_count(&self.shared)
    }
}
