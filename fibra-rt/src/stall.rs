//! Stall reports: a watchdog thread names the tasklet or plugin that has been running for
//! longer than a threshold without yielding, while it still runs.
//!
//! A schedule is one thread: a tasklet that loops without yielding, or a plugin that blocks,
//! stops every other tasklet of it. The schedule publishes what it runs in one word (a store,
//! no clock read) at the start and at the end of each tasklet run and each plugin
//! `poll`/`flush`: a run counter, what runs (a tasklet's slab key, or a plugin's index in the
//! table of names fixed when it was added) and whether something runs. The id and name of a
//! tasklet go in three more fields, written only when another tasklet runs than the last one
//! published. When the same run has gone on past the threshold the watchdog logs it once, at
//! `warn`, to target `fibra_rt::stall` (and at `info` when it ends).
//!
//! One watchdog thread serves every schedule of the process with reports on, each with its own
//! threshold: the first such schedule starts it, each registers its [`Shared`] in [`REGISTRY`]
//! as it is built and leaves it as it drops, and the last to leave ends the thread (and waits
//! for it), so a later schedule starts a new one. The thread looks every quarter of the
//! smallest threshold (at most every 250 ms) while some schedule may run something. It sleeps
//! with no timeout while every schedule is blocked in its reactor's wait (their `asleep`
//! flags), since nothing can run there before that wait returns, and a schedule coming out of
//! a blocking wait wakes it if it sleeps. That costs a blocking wait two stores and a load
//! next to its system call, and the run path nothing: a schedule that is merely between runs
//! (between two `tick`s of its host, say) counts as awake, because its next run starts
//! without any wait, so with such a schedule the watchdog keeps looking every interval.
//!
//! The unwind of a killed tasklet's stack is a run too (`Unwinding`): tasklet code that
//! catches the kill's unwind with a plain `catch_unwind` around a yield and yields again makes
//! it start over, so the kill (or the schedule's drop) never ends, and the report says so. Such
//! an unwind may start inside another run (a kill that a tasklet's op or a plugin's `poll`
//! asked for), which goes on as the same run, its fields published again, when it ends.
//!
//! The name of a running tasklet is read from the watchdog thread. It stays valid because the
//! schedule frees an owned name only under [`Shared::names`], after publishing that the run
//! ended: the watchdog holds that lock while it checks the run is still on and copies the name.

use std::borrow::Cow;
use std::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{JoinHandle, Thread};
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
    /// Unwinding a killed tasklet's stack (a kill, a plugin's panic, the schedule's drop).
    Unwinding = 3,
}

/// Bit 0 of the run word: something runs.
const RUNNING: u64 = 1;
/// Bits 1–2: the [`Activity`].
const ACTIVITY_SHIFT: u32 = 1;
/// Bits 3–34: the tasklet's slab key, or the plugin's index.
const WHAT_SHIFT: u32 = 3;
/// Bits 35–63: the run counter (wrapping: the watchdog only compares words for equality, at
/// most 250 ms apart, and 2^29 runs take far longer).
const COUNT_SHIFT: u32 = 35;

/// What the schedule thread publishes and the watchdog reads.
#[derive(Debug)]
struct Shared {
    /// The run word (see the `*_SHIFT` constants): changes at the start and at the end of
    /// every run; its `RUNNING` bit is set while one goes on.
    run: AtomicU64,
    /// The id of the tasklet last published, and its name (a `'static` str, or an owned name
    /// freed only under `names`).
    key: AtomicU64,
    seq: AtomicU64,
    name: AtomicPtr<u8>,
    name_len: AtomicUsize,
    /// Held by the schedule while it frees an owned tasklet name, and by the watchdog while it
    /// copies one.
    names: Mutex<()>,
    /// The plugins' names, by index: a plugin's run publishes its index only.
    plugins: Mutex<Vec<&'static str>>,
    /// Set while the schedule blocks in its reactor's wait, where nothing of it runs.
    asleep: AtomicBool,
    /// Runs longer than this are reported.
    threshold: Duration,
    /// The watchdog thread serving this schedule (to wake it after a blocking wait).
    watchdog: Thread,
    /// What the watchdog saw of this schedule (only the watchdog locks it).
    watch: Mutex<Watch>,
}

/// The watchdog's view of one schedule.
#[derive(Debug)]
struct Watch {
    /// The run word at its last look, and since when it has been that word.
    last: u64,
    since: Instant,
    /// What it reported as running on, and whether as unwinding, until that run ends.
    reported: Option<(String, bool)>,
}

/// The schedules the watchdog watches, and its thread.
struct Registry {
    schedules: Vec<Arc<Shared>>,
    /// The thread, while some schedule is registered.
    thread: Option<JoinHandle<()>>,
    /// Which thread is the current one: one started before the registry last went empty ends
    /// at its next look even if a schedule registered since.
    epoch: u64,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    schedules: Vec::new(),
    thread: None,
    epoch: 0,
});

/// Set while the watchdog sleeps with no timeout (every schedule asleep).
static PARKED: AtomicBool = AtomicBool::new(false);

/// The watchdog's stack: it formats a report and calls the logger, nothing deep.
const WATCHDOG_STACK: usize = 128 * 1024;

/// The schedule's side of the stall watchdog; does nothing when reports are off.
#[derive(Debug)]
pub(crate) struct Stall {
    on: Option<On>,
}

/// The published run and tasklet fields an unwind interrupted, to go back to.
#[derive(Debug)]
pub(crate) struct Outer {
    word: u64,
    key: u64,
    seq: u64,
    name: *mut u8,
    name_len: usize,
    named: u64,
}

#[derive(Debug)]
struct On {
    shared: Arc<Shared>,
    /// The run counter (the schedule is the only writer of the run word).
    count: u64,
    /// The sequence number of the tasklet whose id and name are published (at first the
    /// schedule's first sequence number, which no tasklet has).
    named: u64,
}

impl Stall {
    /// Starts a watchdog reporting runs longer than `threshold`; `None` (or a thread that
    /// cannot be started, which is logged) means no reports. `first_seq` is the schedule's
    /// (its tasklets' sequence numbers come after it).
    pub(crate) fn new(threshold: Option<Duration>, first_seq: u64) -> Stall {
        let Some(threshold) = threshold else {
            return Stall { on: None };
        };
        match register(threshold) {
            Ok(shared) => Stall {
                on: Some(On {
                    shared,
                    count: 0,
                    named: first_seq,
                }),
            },
            Err(e) => {
                log::warn!(target: "fibra_rt::stall",
                    "no stall reports for this schedule: the watchdog thread could not start: {e}");
                Stall { on: None }
            }
        }
    }

    /// Plugin `name` was added, with the next index.
    pub(crate) fn add_plugin(&self, name: &'static str) {
        if let Some(on) = &self.on {
            let mut plugins = on
                .shared
                .plugins
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            plugins.push(name);
        }
    }

    /// A tasklet's run starts.
    #[inline]
    pub(crate) fn enter_tasklet(&mut self, guard: &Guard) {
        if let Some(on) = &mut self.on {
            if on.named != guard.id.seq {
                on.name_tasklet(guard);
            }
            on.start(Activity::Tasklet, guard.id.key);
        }
    }

    /// The `poll` or `flush` of plugin `index` starts.
    #[inline]
    pub(crate) fn enter_plugin(&mut self, activity: Activity, index: usize) {
        if let Some(on) = &mut self.on {
            on.start(activity, index as u32);
        }
    }

    /// The unwind of the stack of the tasklet `guard` guards starts (publishing its name if
    /// `named`: the name is still allocated); it may start inside a run (a kill that a tasklet
    /// or a plugin asked for), which [`unwound`](Self::unwound) goes back to.
    #[cold]
    pub(crate) fn unwinding(&mut self, guard: &Guard, named: bool) -> Option<Outer> {
        let on = self.on.as_mut()?;
        let s = &*on.shared;
        let outer = Outer {
            word: s.run.load(Ordering::Relaxed),
            key: s.key.load(Ordering::Relaxed),
            seq: s.seq.load(Ordering::Relaxed),
            name: s.name.load(Ordering::Relaxed),
            name_len: s.name_len.load(Ordering::Relaxed),
            named: on.named,
        };
        // Off first, so that no word says both the outer run and these fields.
        s.run.store(outer.word & !RUNNING, Ordering::Release);
        fence(Ordering::Release);
        s.key.store(u64::from(guard.id.key), Ordering::Relaxed);
        s.seq.store(guard.id.seq, Ordering::Relaxed);
        let name = if named { guard.name } else { std::ptr::null() };
        s.name.store(name.cast_mut(), Ordering::Relaxed);
        s.name_len
            .store(if named { guard.name_len } else { 0 }, Ordering::Relaxed);
        on.named = guard.id.seq;
        on.start(Activity::Unwinding, guard.id.key);
        Some(outer)
    }

    /// The unwind that [`unwinding`](Self::unwinding) started ended: the run it interrupted
    /// (if any) goes on, as the same run.
    #[cold]
    pub(crate) fn unwound(&mut self, outer: Option<Outer>) {
        let (Some(on), Some(outer)) = (self.on.as_mut(), outer) else {
            return;
        };
        let s = &*on.shared;
        s.run.store(on.count << COUNT_SHIFT, Ordering::Release);
        fence(Ordering::Release);
        s.key.store(outer.key, Ordering::Relaxed);
        s.seq.store(outer.seq, Ordering::Relaxed);
        s.name.store(outer.name, Ordering::Relaxed);
        s.name_len.store(outer.name_len, Ordering::Relaxed);
        on.named = outer.named;
        s.run.store(outer.word, Ordering::Release);
    }

    /// The run that `enter_*` started ends.
    #[inline]
    pub(crate) fn leave(&mut self) {
        if let Some(on) = &mut self.on {
            on.shared
                .run
                .store(on.count << COUNT_SHIFT, Ordering::Release);
        }
    }

    /// Frees the name of a tasklet that left the table, where the watchdog cannot be reading
    /// it.
    #[inline]
    pub(crate) fn free_name(&self, name: Cow<'static, str>) {
        if let Cow::Owned(_) = name {
            self.free_owned_name(name);
        }
    }

    /// [`free_name`](Self::free_name) for an owned name.
    #[inline(never)]
    fn free_owned_name(&self, name: Cow<'static, str>) {
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

    /// The schedule is about to block in its reactor's wait: nothing of it runs until
    /// [`awake`](Self::awake).
    #[inline]
    pub(crate) fn asleep(&self) {
        if let Some(on) = &self.on {
            on.shared.asleep.store(true, Ordering::SeqCst);
        }
    }

    /// The schedule's blocking wait returned: wakes the watchdog if it sleeps.
    #[inline]
    pub(crate) fn awake(&self) {
        if let Some(on) = &self.on {
            // Against the watchdog's `PARKED` store then `asleep` loads (all SeqCst): either
            // it sees this schedule awake and does not sleep, or this sees it going to sleep
            // and wakes it (an unpark before its park makes that park return at once).
            on.shared.asleep.store(false, Ordering::SeqCst);
            if PARKED.load(Ordering::SeqCst) && PARKED.swap(false, Ordering::SeqCst) {
                on.shared.watchdog.unpark();
            }
        }
    }

    /// Leaves the watchdog (which ends if no schedule is left); no more reports.
    pub(crate) fn stop(&mut self) {
        if let Some(on) = self.on.take() {
            // Nothing runs now (the word says so even if a run unwound without `leave`), and
            // the watchdog is done copying a name (it holds `names` while it does): names
            // are freed without that lock from here on.
            let s = &*on.shared;
            s.run
                .store(on.count.wrapping_add(1) << COUNT_SHIFT, Ordering::Release);
            drop(s.names.lock().unwrap_or_else(PoisonError::into_inner));
            unregister(&on.shared);
        }
    }
}

impl Drop for Stall {
    fn drop(&mut self) {
        self.stop();
    }
}

impl On {
    /// A run of `activity` on `what` (a slab key or a plugin index) starts.
    #[inline]
    fn start(&mut self, activity: Activity, what: u32) {
        self.count = self.count.wrapping_add(1);
        let word = self.count << COUNT_SHIFT
            | u64::from(what) << WHAT_SHIFT
            | (activity as u64) << ACTIVITY_SHIFT
            | RUNNING;
        self.shared.run.store(word, Ordering::Release);
    }

    /// Publishes the id and name of the tasklet about to run (not the last one published).
    #[cold]
    fn name_tasklet(&mut self, guard: &Guard) {
        let s = &*self.shared;
        // The end of the previous run (its word store) before these fields change: a watchdog
        // that reads one of them afterwards sees that word too (a compiler barrier on x86).
        fence(Ordering::Release);
        s.key.store(u64::from(guard.id.key), Ordering::Relaxed);
        s.seq.store(guard.id.seq, Ordering::Relaxed);
        s.name.store(guard.name.cast_mut(), Ordering::Relaxed);
        s.name_len.store(guard.name_len, Ordering::Relaxed);
        self.named = guard.id.seq;
    }
}

/// Registers a schedule reporting runs longer than `threshold`, starting the watchdog thread
/// if it does not run.
fn register(threshold: Duration) -> std::io::Result<Arc<Shared>> {
    let mut registry = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    let watchdog = match &registry.thread {
        Some(thread) => thread.thread().clone(),
        None => {
            let epoch = registry.epoch.wrapping_add(1);
            // The watchdog must never take a signal meant for the process: a signal plugin
            // blocks the ones it catches on the schedule's thread (signalfd), and a thread
            // with them unblocked would get them, with their default action (SIGINT: exit).
            // Started with every signal blocked, it inherits that mask.
            let blocked = SignalsBlocked::new();
            // The new thread maps its own memory as it starts (std's signal stack for its
            // overflow report): waiting for it to be running means that a process that
            // limits its memory right after building a schedule (`RLIMIT_AS`) cannot make
            // the watchdog abort the process later, when it starts.
            let (started, running) = std::sync::mpsc::sync_channel::<()>(1);
            let thread = std::thread::Builder::new()
                .name("fibra-stall".to_owned())
                .stack_size(WATCHDOG_STACK)
                .spawn(move || {
                    let _ = started.send(());
                    watch(epoch)
                });
            drop(blocked);
            let thread = thread?;
            // An error here means the thread ended before it said so: nothing to wait for.
            let _ = running.recv();
            registry.epoch = epoch;
            let handle = thread.thread().clone();
            registry.thread = Some(thread);
            handle
        }
    };
    let shared = Arc::new(Shared {
        run: AtomicU64::new(0),
        key: AtomicU64::new(0),
        seq: AtomicU64::new(0),
        name: AtomicPtr::new(std::ptr::null_mut()),
        name_len: AtomicUsize::new(0),
        names: Mutex::new(()),
        plugins: Mutex::new(Vec::new()),
        asleep: AtomicBool::new(false),
        threshold,
        watchdog,
        watch: Mutex::new(Watch {
            last: 0,
            since: Instant::now(),
            reported: None,
        }),
    });
    registry.schedules.push(Arc::clone(&shared));
    // It may sleep with no timeout: it looks at the new schedule now.
    shared.watchdog.unpark();
    Ok(shared)
}

/// Takes a schedule out of the watchdog's; the last one out ends its thread and waits for it.
fn unregister(shared: &Arc<Shared>) {
    let mut registry = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    registry.schedules.retain(|s| !Arc::ptr_eq(s, shared));
    let last = if registry.schedules.is_empty() {
        registry.thread.take()
    } else {
        None
    };
    drop(registry);
    if let Some(thread) = last {
        thread.thread().unpark();
        // Joined without the registry's lock, which the thread takes to see that it ends.
        let _ = thread.join();
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

/// The watchdog thread (started as `epoch`): looks at every registered schedule's run word
/// every quarter of the smallest threshold, and sleeps while all of them are asleep; ends when
/// none is left, or another thread took over.
fn watch(epoch: u64) {
    let mut schedules: Vec<Arc<Shared>> = Vec::new();
    loop {
        schedules.clear();
        {
            let registry = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
            if registry.epoch != epoch || registry.schedules.is_empty() {
                return;
            }
            schedules.extend(registry.schedules.iter().cloned());
        }
        let now = Instant::now();
        for shared in &schedules {
            look(shared, now);
        }
        PARKED.store(true, Ordering::SeqCst);
        if schedules.iter().all(|s| s.asleep.load(Ordering::SeqCst)) {
            // Dropped first: a schedule that drops meanwhile must not wait for this one.
            schedules.clear();
            std::thread::park();
        } else {
            PARKED.store(false, Ordering::SeqCst);
            let threshold = schedules.iter().map(|s| s.threshold).min();
            let threshold = threshold.unwrap_or(Duration::from_secs(1));
            schedules.clear();
            let interval =
                (threshold / 4).clamp(Duration::from_millis(1), Duration::from_millis(250));
            std::thread::park_timeout(interval);
        }
        PARKED.store(false, Ordering::SeqCst);
    }
}

/// One look at a schedule at `now`: a new run word restarts its clock (and ends a reported
/// run, saying so); the same running word past its threshold is reported once.
fn look(shared: &Shared, now: Instant) {
    let mut watch = shared.watch.lock().unwrap_or_else(PoisonError::into_inner);
    let word = shared.run.load(Ordering::Acquire);
    if word != watch.last {
        match watch.reported.take() {
            Some((what, false)) => log::info!(target: "fibra_rt::stall",
                "{what} yielded after running for about {:?}", now - watch.since),
            Some((what, true)) => log::info!(target: "fibra_rt::stall",
                "{what} finished unwinding after about {:?}", now - watch.since),
            None => {}
        }
        watch.last = word;
        watch.since = now;
        return;
    }
    let ran = now - watch.since;
    let threshold = shared.threshold;
    if word & RUNNING != 0 && watch.reported.is_none() && ran >= threshold {
        let Some(what) = describe(shared, word) else {
            return;
        };
        let unwinding = (word >> ACTIVITY_SHIFT) & 3 == Activity::Unwinding as u64;
        if unwinding {
            log::warn!(target: "fibra_rt::stall",
                "{what} is being killed and has not finished unwinding after {ran:?}: its code \
                 catches the kill's unwind (`std::panic::catch_unwind` around a yield?) and runs \
                 on, so the kill (or the schedule's drop) cannot end; catch panics with \
                 `Handle::catch_panic`, which lets a kill through");
        } else {
            log::warn!(target: "fibra_rt::stall",
                "{what} has run for {ran:?} without yielding (stall threshold {threshold:?}): \
                 every other tasklet of its schedule waits meanwhile");
        }
        watch.reported = Some((what, unwinding));
    }
}

/// Says what run `word` (a run word with `RUNNING` set) runs, if it still runs.
fn describe(shared: &Shared, word: u64) -> Option<String> {
    let activity = (word >> ACTIVITY_SHIFT) & 3;
    let what = (word >> WHAT_SHIFT) as u32;
    if activity == Activity::Poll as u64 || activity == Activity::Flush as u64 {
        let plugins = shared
            .plugins
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let name = plugins.get(what as usize).copied().unwrap_or("?");
        return Some(if activity == Activity::Poll as u64 {
            format!("plugin `{name}` (in poll)")
        } else {
            format!("plugin `{name}` (in flush)")
        });
    }
    let lock = shared.names.lock().unwrap_or_else(PoisonError::into_inner);
    let key = shared.key.load(Ordering::Relaxed);
    let seq = shared.seq.load(Ordering::Relaxed);
    let name = shared.name.load(Ordering::Relaxed);
    let len = shared.name_len.load(Ordering::Relaxed).min(200);
    fence(Ordering::Acquire);
    // The fields are the running tasklet's if its run still goes on (they were published
    // before it started, and are only changed after a run ends) and they name its slab key.
    if shared.run.load(Ordering::Relaxed) != word || key != u64::from(what) {
        return None;
    }
    let name = if name.is_null() || len == 0 {
        String::new()
    } else {
        // SAFETY: run `word` was still going on after these fields were read, and they were
        // published for its tasklet, so they describe it: a `'static` str, or the owned name
        // of a tasklet still in the table, which the schedule frees only under `names`, held
        // here.
        let bytes = unsafe { std::slice::from_raw_parts(name.cast_const(), len) };
        String::from_utf8_lossy(bytes).into_owned()
    };
    drop(lock);
    let id = TaskletId {
        key: key as u32,
        seq,
    };
    let label = crate::tasklet::Label { id, name: &name };
    Some(format!("tasklet {label}"))
}
