//! Stall reports: a watchdog thread names the tasklet or plugin that has been running for
//! longer than a threshold without yielding, while it still runs.
//!
//! A schedule is one thread: a tasklet that loops without yielding, or a plugin that blocks,
//! stops every other tasklet of it. The schedule publishes what it runs in a few atomics
//! (relaxed stores, no clock read) at the start and end of each tasklet run and each plugin
//! `poll`/`flush`; an epoch counter, odd while something runs, says whether that is still the
//! same run. The watchdog looks every quarter of the threshold (at most every 250 ms), and
//! when the same run has gone on past the threshold it logs it once, at `warn`, to target
//! `fibra_rt::stall` (and at `info` when it ends).
//!
//! The name of a running tasklet is read from the watchdog thread. It stays valid because the
//! schedule frees an owned name only under [`Shared::names`], after publishing that the run
//! ended: the watchdog holds that lock while it checks the run is still on and copies the name.

use std::borrow::Cow;
use std::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::overflow::Guard;
use crate::TaskletId;

/// What the schedule is doing in a run the watchdog watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Activity {
    /// Running a tasklet (its code, and the plugin code serving the ops it yields).
    Tasklet = 0,
    /// A plugin's `poll`.
    Poll = 1,
    /// A plugin's `flush`.
    Flush = 2,
}

/// What the schedule thread publishes and the watchdog reads.
#[derive(Debug)]
struct Shared {
    /// Odd while a run goes on; bumped at its start and at its end.
    epoch: AtomicU64,
    activity: AtomicUsize,
    key: AtomicU64,
    seq: AtomicU64,
    /// The name of the tasklet or plugin (a `'static` str, or an owned name freed only under
    /// `names`).
    name: AtomicPtr<u8>,
    name_len: AtomicUsize,
    /// Held by the schedule while it frees an owned tasklet name, and by the watchdog while it
    /// copies one.
    names: Mutex<()>,
    stop: AtomicBool,
}

/// The schedule's side of the stall watchdog; does nothing when reports are off.
#[derive(Debug)]
pub(crate) struct Stall {
    on: Option<On>,
}

#[derive(Debug)]
struct On {
    shared: Arc<Shared>,
    /// The schedule's copy of `Shared::epoch` (it is the only writer).
    epoch: u64,
    thread: Option<JoinHandle<()>>,
}

impl Stall {
    /// Starts a watchdog reporting runs longer than `threshold`; `None` (or a thread that
    /// cannot be started, which is logged) means no reports.
    pub(crate) fn new(threshold: Option<Duration>) -> Stall {
        let Some(threshold) = threshold else {
            return Stall { on: None };
        };
        let shared = Arc::new(Shared {
            epoch: AtomicU64::new(0),
            activity: AtomicUsize::new(0),
            key: AtomicU64::new(0),
            seq: AtomicU64::new(0),
            name: AtomicPtr::new(std::ptr::null_mut()),
            name_len: AtomicUsize::new(0),
            names: Mutex::new(()),
            stop: AtomicBool::new(false),
        });
        let watched = Arc::clone(&shared);
        // The watchdog must never take a signal meant for the process: a signal plugin blocks
        // the ones it catches on the schedule's thread (signalfd), and a thread with them
        // unblocked would get them, with their default action (SIGINT: exit). Started with
        // every signal blocked, it inherits that mask.
        let blocked = SignalsBlocked::new();
        let thread = std::thread::Builder::new()
            .name("fibra-stall".to_owned())
            .spawn(move || watch(&watched, threshold));
        drop(blocked);
        match thread {
            Ok(thread) => Stall {
                on: Some(On {
                    shared,
                    epoch: 0,
                    thread: Some(thread),
                }),
            },
            Err(e) => {
                log::warn!(target: "fibra_rt::stall",
                    "no stall reports for this schedule: its watchdog thread could not start: {e}");
                Stall { on: None }
            }
        }
    }

    /// A tasklet's run starts.
    #[inline]
    pub(crate) fn enter_tasklet(&mut self, guard: &Guard) {
        if let Some(on) = &mut self.on {
            on.publish(Activity::Tasklet, guard.id, guard.name, guard.name_len);
        }
    }

    /// A plugin's `poll` or `flush` starts.
    #[inline]
    pub(crate) fn enter_plugin(&mut self, activity: Activity, name: &'static str) {
        if let Some(on) = &mut self.on {
            let none = TaskletId { key: 0, seq: 0 };
            on.publish(activity, none, name.as_ptr(), name.len());
        }
    }

    /// The run that `enter_*` started ends.
    #[inline]
    pub(crate) fn leave(&mut self) {
        if let Some(on) = &mut self.on {
            on.epoch += 1;
            on.shared.epoch.store(on.epoch, Ordering::Release);
        }
    }

    /// Frees the name of a tasklet that left the table, where the watchdog cannot be reading
    /// it.
    pub(crate) fn free_name(&self, name: Cow<'static, str>) {
        match (&self.on, name) {
            (Some(on), Cow::Owned(name)) => {
                let lock = on
                    .shared
                    .names
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                drop(name);
                drop(lock);
            }
            (_, name) => drop(name),
        }
    }

    /// Stops the watchdog and waits for its thread to end.
    pub(crate) fn stop(&mut self) {
        if let Some(mut on) = self.on.take() {
            on.shared.stop.store(true, Ordering::Relaxed);
            if let Some(thread) = on.thread.take() {
                thread.thread().unpark();
                let _ = thread.join();
            }
        }
    }
}

impl Drop for Stall {
    fn drop(&mut self) {
        self.stop();
    }
}

impl On {
    #[inline]
    fn publish(&mut self, activity: Activity, id: TaskletId, name: *const u8, len: usize) {
        let s = &*self.shared;
        // The end of the previous run (its epoch store) before these fields change: a
        // watchdog that reads one of them afterwards sees that epoch too (a compiler barrier
        // on x86).
        fence(Ordering::Release);
        s.activity.store(activity as usize, Ordering::Relaxed);
        s.key.store(u64::from(id.key), Ordering::Relaxed);
        s.seq.store(id.seq, Ordering::Relaxed);
        s.name.store(name.cast_mut(), Ordering::Relaxed);
        s.name_len.store(len, Ordering::Relaxed);
        self.epoch += 1;
        s.epoch.store(self.epoch, Ordering::Release);
    }
}

/// Blocks every signal on this thread until dropped, which restores the previous mask.
struct SignalsBlocked {
    #[cfg(unix)]
    previous: Option<libc::sigset_t>,
}

impl SignalsBlocked {
    fn new() -> SignalsBlocked {
        #[cfg(unix)]
        {
            // SAFETY: `sigfillset` initializes `all`; `pthread_sigmask` reads it and writes the
            // previous mask into `previous`, both valid `sigset_t`s on this frame.
            unsafe {
                let mut all: libc::sigset_t = std::mem::zeroed();
                let mut previous: libc::sigset_t = std::mem::zeroed();
                libc::sigfillset(&mut all);
                let ok = libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut previous) == 0;
                SignalsBlocked {
                    previous: ok.then_some(previous),
                }
            }
        }
        #[cfg(not(unix))]
        SignalsBlocked {}
    }
}

impl Drop for SignalsBlocked {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(previous) = &self.previous {
            // SAFETY: restores the mask `new` saved, a valid `sigset_t`.
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, previous, std::ptr::null_mut()) };
        }
    }
}

/// The watchdog thread: looks at the epoch every quarter threshold until told to stop.
fn watch(shared: &Shared, threshold: Duration) {
    let interval = (threshold / 4).clamp(Duration::from_millis(1), Duration::from_millis(250));
    let mut last = shared.epoch.load(Ordering::Acquire);
    let mut since = Instant::now();
    let mut reported: Option<String> = None;
    while !shared.stop.load(Ordering::Relaxed) {
        std::thread::park_timeout(interval);
        let epoch = shared.epoch.load(Ordering::Acquire);
        if epoch != last {
            if let Some(what) = reported.take() {
                log::info!(target: "fibra_rt::stall",
                    "{what} yielded after running for about {:?}", since.elapsed());
            }
            last = epoch;
            since = Instant::now();
            continue;
        }
        let ran = since.elapsed();
        if epoch % 2 == 1 && reported.is_none() && ran >= threshold {
            let Some(what) = describe(shared, epoch) else {
                continue;
            };
            log::warn!(target: "fibra_rt::stall",
                "{what} has run for {ran:?} without yielding (stall threshold {threshold:?}): \
                 every other tasklet of its schedule waits meanwhile");
            reported = Some(what);
        }
    }
}

/// Says what run `epoch` runs, if it still runs.
fn describe(shared: &Shared, epoch: u64) -> Option<String> {
    let lock = shared.names.lock().unwrap_or_else(PoisonError::into_inner);
    let activity = shared.activity.load(Ordering::Relaxed);
    let key = shared.key.load(Ordering::Relaxed);
    let seq = shared.seq.load(Ordering::Relaxed);
    let name = shared.name.load(Ordering::Relaxed);
    let len = shared.name_len.load(Ordering::Relaxed).min(200);
    fence(Ordering::Acquire);
    if shared.epoch.load(Ordering::Relaxed) != epoch {
        return None;
    }
    let name = if name.is_null() || len == 0 {
        String::new()
    } else {
        // SAFETY: run `epoch` was still going on after these fields were read (they were
        // published before it started), so they describe it: a `'static` str, or the owned
        // name of a tasklet still in the table, which the schedule frees only under `names`,
        // held here.
        let bytes = unsafe { std::slice::from_raw_parts(name.cast_const(), len) };
        String::from_utf8_lossy(bytes).into_owned()
    };
    drop(lock);
    let what = match activity {
        a if a == Activity::Tasklet as usize => {
            let id = TaskletId {
                key: key as u32,
                seq,
            };
            let label = crate::tasklet::Label { id, name: &name };
            format!("tasklet {label}")
        }
        a if a == Activity::Poll as usize => format!("plugin `{name}` (in poll)"),
        _ => format!("plugin `{name}` (in flush)"),
    };
    Some(what)
}
