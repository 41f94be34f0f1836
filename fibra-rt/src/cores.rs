//! `Cores`: N schedules on N threads, one per core, each built by the same closure with its
//! own plugins, started and stopped together, a failure on any of them reported to the host.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::{Error, Remote, Schedule};

/// How a schedule's thread ended: `Err` says why (an error or a panic, as text).
type Outcome = Result<(), String>;

/// A schedule's thread builds its schedule with this: (the schedule's index, its schedule).
pub type Build =
    dyn Fn(usize, &mut Schedule) -> Result<(), Box<dyn std::error::Error>> + Send + Sync;

/// N schedules on N threads (thread-per-core): each thread makes a [`Schedule`], lets the
/// build closure add its plugins and tasklets, and runs it until it has no work left (no
/// tasklet, no plugin work) or [`stop`](Self::stop) is called. A schedule's tasklets stay on its thread; schedules talk
/// through [`Remote`]s and channels that cross threads.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use fibra_rt::Cores;
///
/// let started = Arc::new(AtomicUsize::new(0));
/// let counter = started.clone();
/// let cores = Cores::start(2, false, move |index, schedule| {
///     counter.fetch_add(1, Ordering::SeqCst);
///     schedule.spawn(move |h| h.park())?; // serves until stopped
///     let _ = index;
///     Ok(())
/// })?;
/// assert_eq!(started.load(Ordering::SeqCst), 2, "every schedule is built when start returns");
/// cores.stop()?;
/// # Ok::<(), fibra_rt::Error>(())
/// ```
#[derive(Debug)]
pub struct Cores {
    threads: Vec<Option<JoinHandle<Outcome>>>,
    remotes: Vec<Remote>,
    stop: Arc<AtomicBool>,
    /// How long each schedule drains once stopped, in milliseconds.
    drain: Arc<AtomicU64>,
}

impl Cores {
    /// How long [`stop`](Self::stop) lets each schedule drain (write what its connections
    /// queued, then close them).
    pub const DEFAULT_DRAIN: Duration = Duration::from_secs(5);

    /// How long [`stop`](Self::stop) waits for a schedule's thread past its drain. A
    /// schedule whose tasklet or plugin never yields cannot see the stop; after this long it
    /// is reported ([`Error::Core`], "did not stop") and its thread is left running, detached
    /// (the process's exit ends it), so the host's stop does not hang with it.
    pub const STOP_GRACE: Duration = Duration::from_secs(5);

    /// Starts `n` threads (named `fibra-0`, `fibra-1`...), each running a schedule that
    /// `build(index, &mut schedule)` set up; `pin` pins thread `i` to CPU `i` modulo the
    /// machine's (Linux; elsewhere it is ignored). Returns once every schedule is built.
    ///
    /// # Errors
    ///
    /// [`Error::Core`] naming the first schedule whose build failed (or panicked, or whose
    /// poller could not be made); the others are stopped then.
    pub fn start<F>(n: usize, pin: bool, build: F) -> Result<Cores, Error>
    where
        F: Fn(usize, &mut Schedule) -> Result<(), Box<dyn std::error::Error>>
            + Send
            + Sync
            + 'static,
    {
        if crate::time::is_simulated() {
            return Err(Error::Core {
                index: 0,
                reason: "schedules on threads of their own leave the simulation (fibra-sim): \
                         a simulated host is one schedule on the simulation's thread"
                    .into(),
            });
        }
        let build: Arc<Build> = Arc::new(build);
        let stop = Arc::new(AtomicBool::new(false));
        let drain = Arc::new(AtomicU64::new(millis(Cores::DEFAULT_DRAIN)));
        let (ready_tx, ready) = mpsc::channel::<(usize, Result<Remote, String>)>();
        let mut threads = Vec::with_capacity(n);
        for index in 0..n {
            let (build, flag, ready) = (build.clone(), stop.clone(), ready_tx.clone());
            let drains = drain.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("fibra-{index}"))
                .spawn(move || run(index, pin, &*build, (&flag, &drains), &ready));
            match spawned {
                Ok(thread) => threads.push(Some(thread)),
                Err(e) => {
                    let cores = Cores {
                        threads,
                        remotes: Vec::new(),
                        stop,
                        drain,
                    };
                    drop(cores);
                    return Err(Error::Core {
                        index,
                        reason: format!("no thread: {e}"),
                    });
                }
            }
        }
        drop(ready_tx);
        let mut remotes: Vec<Option<Remote>> = vec![None; n];
        let mut failed = None;
        for _ in 0..n {
            match ready.recv() {
                Ok((index, Ok(remote))) => remotes[index] = Some(remote),
                Ok((index, Err(reason))) => {
                    failed.get_or_insert(Error::Core { index, reason });
                }
                // A thread died before it said how its build went: its join says why.
                Err(_) => break,
            }
        }
        let mut cores = Cores {
            threads,
            remotes: remotes.iter().flatten().cloned().collect(),
            stop,
            drain,
        };
        if failed.is_none() && cores.remotes.len() < n {
            failed = cores.stop_all().err();
        }
        match failed {
            Some(e) => {
                let _ = cores.stop_all();
                Err(e)
            }
            None => Ok(cores),
        }
    }

    /// How many schedules run.
    pub fn len(&self) -> usize {
        self.threads.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.threads.is_empty()
    }

    /// The [`Remote`] of schedule `index`, to wake it or unpark its tasklets from anywhere.
    pub fn remote(&self, index: usize) -> Option<&Remote> {
        self.remotes.get(index)
    }

    /// Stops every schedule and waits for the threads. Each wakes at once, even blocked in
    /// its poller, and drains ([`Schedule::drain`], up to [`DEFAULT_DRAIN`](Self::DEFAULT_DRAIN)): its listeners
    /// stop accepting, and every connection's queued output is written before its FIN. Then
    /// it drops its tasklets, whose destructors run.
    ///
    /// Returns within the drain and [`STOP_GRACE`](Self::STOP_GRACE), whatever the schedules
    /// do.
    ///
    /// # Errors
    ///
    /// [`Error::Core`] for the first schedule that had failed: a plugin's error, or a panic
    /// that reached its thread (a tasklet's own panic ends that tasklet only), or a schedule
    /// that did not stop within the drain and the grace (stuck in code that never yields; its
    /// stall reports name the tasklet).
    pub fn stop(mut self) -> Result<(), Error> {
        self.stop_all()
    }

    /// Like [`stop`](Self::stop), draining each schedule for up to `drain` (zero: no
    /// drain, what is queued is dropped).
    ///
    /// # Errors
    ///
    /// As [`stop`](Self::stop).
    pub fn stop_within(mut self, drain: Duration) -> Result<(), Error> {
        self.drain.store(millis(drain), Ordering::Release);
        self.stop_all()
    }

    /// Waits until every schedule has ended by itself (no work left).
    ///
    /// # Errors
    ///
    /// As [`stop`](Self::stop).
    pub fn join(mut self) -> Result<(), Error> {
        self.join_all(None)
    }

    fn stop_all(&mut self) -> Result<(), Error> {
        self.stop.store(true, Ordering::Release);
        for remote in &self.remotes {
            remote.wake();
        }
        let drain = Duration::from_millis(self.drain.load(Ordering::Acquire));
        let limit = drain.saturating_add(Self::STOP_GRACE);
        self.join_all(std::time::Instant::now().checked_add(limit))
    }

    /// Joins every thread; with a deadline, a thread still running then is detached and
    /// reported.
    ///
    /// With a deadline each thread is joined on a helper thread of its own and the results
    /// are awaited until the deadline: a thread's function may have returned while its
    /// thread-local destructors still run (or block), and `join` waits for those, so
    /// polling `is_finished` and then joining is not bounded.
    fn join_all(&mut self, deadline: Option<std::time::Instant>) -> Result<(), Error> {
        let handles: Vec<(usize, JoinHandle<Outcome>)> = self
            .threads
            .iter_mut()
            .enumerate()
            .filter_map(|(index, thread)| thread.take().map(|handle| (index, handle)))
            .collect();
        let mut results: Vec<(usize, Option<std::thread::Result<Outcome>>)> = match deadline {
            None => handles
                .into_iter()
                .map(|(index, handle)| (index, Some(handle.join())))
                .collect(),
            Some(deadline) => {
                let (tx, rx) = mpsc::channel();
                let mut results: Vec<(usize, Option<std::thread::Result<Outcome>>)> =
                    handles.iter().map(|&(index, _)| (index, None)).collect();
                for (index, handle) in handles {
                    let tx = tx.clone();
                    // A joiner that cannot be made drops the handle: that thread is
                    // detached and reported as not stopped.
                    let _ = std::thread::Builder::new()
                        .name(format!("fibra-{index}-join"))
                        .spawn(move || {
                            let _ = tx.send((index, handle.join()));
                        });
                }
                drop(tx);
                let mut left = results.len();
                while left > 0 {
                    let wait = deadline.saturating_duration_since(std::time::Instant::now());
                    let Ok((index, joined)) = rx.recv_timeout(wait) else {
                        break;
                    };
                    if let Some(slot) = results.iter_mut().find(|(i, _)| *i == index) {
                        slot.1 = Some(joined);
                    }
                    left -= 1;
                }
                results
            }
        };
        let mut first = None;
        for (index, joined) in results.drain(..) {
            let outcome = match joined {
                None => {
                    let reason = "did not stop within its drain and Cores::STOP_GRACE: a \
                        tasklet or plugin on it does not yield (its stall reports say which); \
                        its thread is left running"
                        .to_owned();
                    log::error!(target: "fibra_rt::cores", "schedule {index} {reason}");
                    first.get_or_insert(Error::Core { index, reason });
                    continue;
                }
                Some(Ok(outcome)) => outcome,
                Some(Err(payload)) => {
                    Err(format!("panicked: {}", crate::Exit::from_panic(&*payload)))
                }
            };
            if let Err(reason) = outcome {
                log::error!(target: "fibra_rt::cores", "schedule {index} failed: {reason}");
                first.get_or_insert(Error::Core { index, reason });
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for Cores {
    fn drop(&mut self) {
        let _ = self.stop_all();
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// One schedule's thread; `stop` is the stop flag and the drain's length in milliseconds.
fn run(
    index: usize,
    pin: bool,
    build: &Build,
    (stop, drain): (&AtomicBool, &AtomicU64),
    ready: &mpsc::Sender<(usize, Result<Remote, String>)>,
) -> Outcome {
    if pin {
        pin_to_cpu(index);
    }
    let mut schedule = match Schedule::try_new() {
        Ok(schedule) => schedule,
        Err(e) => {
            let _ = ready.send((index, Err(e.to_string())));
            return Ok(());
        }
    };
    let built =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| build(index, &mut schedule)));
    match built {
        Ok(Ok(())) => {
            let _ = ready.send((index, Ok(schedule.remote())));
        }
        Ok(Err(e)) => {
            discard(schedule);
            let _ = ready.send((index, Err(e.to_string())));
            return Ok(());
        }
        Err(payload) => {
            discard(schedule);
            let reason = format!("its build panicked: {}", crate::Exit::from_panic(&*payload));
            let _ = ready.send((index, Err(reason)));
            return Ok(());
        }
    }
    // Sleeps in the poller; `stop` wakes it through its remote (the bound is a safety net).
    while !stop.load(Ordering::Acquire) {
        match schedule.tick_within(Duration::from_millis(500)) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(e.to_string()),
        }
    }
    // Stopped, or out of tasklets: what the connections queued still leaves.
    let drain = Duration::from_millis(drain.load(Ordering::Acquire));
    if !drain.is_zero() {
        match schedule.drain(drain) {
            Ok(true) => {}
            Ok(false) => log::warn!(target: "fibra_rt::cores",
                "schedule {index} did not drain within {drain:?}; what is left is dropped"),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

/// A schedule whose build failed is dropped without running: what the build spawned ends
/// quietly (the build's error is the news, not a warning that its tasklets never ran).
fn discard(mut schedule: Schedule) {
    let spawned: Vec<_> = schedule.tasklets().map(|t| t.id).collect();
    for id in spawned {
        schedule.kill(id);
    }
}

#[cfg(target_os = "linux")]
fn pin_to_cpu(index: usize) {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let cpu = index % cpus;
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET writes within it (cpu is below
    // the machine's count, far below CPU_SETSIZE), and sched_setaffinity only reads it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        log::warn!(target: "fibra_rt::cores", "could not pin schedule {index} to CPU {cpu}: {}",
            std::io::Error::last_os_error());
    }
}

#[cfg(not(target_os = "linux"))]
fn pin_to_cpu(index: usize) {
    log::debug!(target: "fibra_rt::cores", "schedule {index} not pinned: Linux only");
}
