//! `BlockingPool`: runs blocking or CPU-heavy closures on threads of their own while the
//! calling tasklet parks, so the schedule's other tasklets go on (smol's `unblock`, tokio's
//! `spawn_blocking`, gevent's threadpool). [`TasksExt::unblock`](crate::TasksExt::unblock) uses
//! the [global](BlockingPool::global) pool.
//!
//! The pool is bounded on both sides: at most `max_threads` threads, started one at a time as
//! work comes and no thread is free, each ending after `idle_timeout` without work; at most
//! `queue_capacity` closures wait for a thread, and a tasklet that finds the queue full parks
//! (its thread does not block) until there is room. A result comes back through a
//! [`remote_channel`](crate::remote_channel) that wakes the tasklet's own schedule.

use std::collections::VecDeque;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use fibra_rt::Handle;

use crate::{remote_channel, RemoteWaker, TaskError, WaitGuard, WaitList, Wake};

type Job = Box<dyn FnOnce() + Send>;

struct State {
    jobs: VecDeque<Job>,
    /// Tasklets (of any schedule) parked for room in `jobs`.
    room: WaitList<RemoteWaker>,
    threads: usize,
    /// Threads waiting for work.
    idle: usize,
    /// Idle threads signalled and not yet awake: each takes one queued job.
    signalled: usize,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when a job is queued and a thread is idle.
    work: Condvar,
    max_threads: usize,
    capacity: usize,
    idle_timeout: Duration,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Jobs run outside the lock; a panic under it leaves the queue consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Threads for blocking work, shared by every schedule of the process (or one's own, with
/// limits of its choosing). Cheap to clone: clones share the threads.
///
/// ```
/// use fibra_rt::Schedule;
/// use fibra_tasks::{TasksExt, TasksPlugin};
///
/// let mut schedule = Schedule::new();
/// schedule.add_plugin(TasksPlugin::new())?;
/// schedule.spawn(|h| {
///     // The schedule's other tasklets run while this one waits for the sum.
///     let sum = h.unblock(|| (1..=1_000_000u64).sum::<u64>()).unwrap();
///     assert_eq!(sum, 500_000_500_000);
///     // A panic comes back as an error, not as a crash.
///     let err = h.unblock(|| -> u32 { panic!("bad input") }).unwrap_err();
///     assert!(err.is_panicked());
/// })?;
/// schedule.run()?;
/// # Ok::<(), fibra_rt::Error>(())
/// ```
#[derive(Clone)]
pub struct BlockingPool {
    shared: Arc<Shared>,
}

impl BlockingPool {
    /// The default idle time after which a thread without work ends.
    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

    /// A pool of at most `max_threads` threads (at least 1) with at most `queue_capacity`
    /// closures waiting (at least 1). No thread starts until there is work.
    pub fn new(max_threads: usize, queue_capacity: usize) -> BlockingPool {
        BlockingPool::with_idle_timeout(max_threads, queue_capacity, Self::IDLE_TIMEOUT)
    }

    /// Like [`new`](Self::new); a thread ends after `idle_timeout` without work.
    pub fn with_idle_timeout(
        max_threads: usize,
        queue_capacity: usize,
        idle_timeout: Duration,
    ) -> BlockingPool {
        BlockingPool {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    jobs: VecDeque::new(),
                    room: WaitList::new(),
                    threads: 0,
                    idle: 0,
                    signalled: 0,
                }),
                work: Condvar::new(),
                max_threads: max_threads.max(1),
                capacity: queue_capacity.max(1),
                idle_timeout,
            }),
        }
    }

    /// The pool [`TasksExt::unblock`](crate::TasksExt::unblock) uses: as many threads as the
    /// machine has cores, within 4..=16, and 1,024 closures queued at most.
    pub fn global() -> &'static BlockingPool {
        static GLOBAL: OnceLock<BlockingPool> = OnceLock::new();
        GLOBAL.get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
            BlockingPool::new(cores.clamp(4, 16), 1024)
        })
    }

    /// Runs `f` on one of the pool's threads and parks the calling tasklet until it returns;
    /// the schedule's other tasklets run meanwhile. `f`'s value is returned.
    ///
    /// A tasklet killed while it waits leaves at once: `f`, if it started, still runs to its
    /// end (a thread cannot be stopped) and its value is dropped on the pool's thread; if it
    /// was still queued, it never runs.
    ///
    /// # Errors
    ///
    /// [`TaskError::UnblockPanicked`] with the message if `f` panicked (the pool's thread goes
    /// on); [`TaskError::Io`] if no thread could be started and none is running.
    pub fn run<T, F>(&self, h: &Handle, f: F) -> Result<T, TaskError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        self.call(h, None, f)
    }

    /// Like [`run`](Self::run), giving up at `deadline` (the wait for room in the queue
    /// included): `f` still runs to its end if it started, and its value is dropped on the
    /// pool's thread; if it had not started, it never does.
    ///
    /// # Errors
    ///
    /// As [`run`](Self::run), and [`TaskError::TimedOut`] at the deadline.
    pub fn run_until<T, F>(&self, h: &Handle, deadline: Instant, f: F) -> Result<T, TaskError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        self.call(h, Some(deadline), f)
    }

    fn call<T, F>(&self, h: &Handle, deadline: Option<Instant>, f: F) -> Result<T, TaskError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = remote_channel::<Result<T, String>>(&h.remote(), 1);
        self.submit(
            h,
            deadline,
            Box::new(move || {
                if tx.is_closed() {
                    // Its tasklet left (timed out, killed) before a thread was free: the work
                    // is not wanted. (Run, a queue of lookups whose callers gave up kept
                    // every thread busy for nobody.)
                    return;
                }
                let out = catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
                    let msg = fibra_rt::panic_message(&*payload);
                    // A payload whose drop panics must not end the pool's thread.
                    let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
                    msg
                });
                // The tasklet may be gone (killed, timed out): the value is dropped here.
                if let Err(back) = tx.send(out) {
                    let _ = catch_unwind(AssertUnwindSafe(move || drop(back)));
                }
            }),
        )?;
        let got = match deadline {
            Some(deadline) => rx
                .receive_until(h, deadline)
                .map_err(|_| TaskError::TimedOut)?,
            None => rx.receive(h),
        };
        match got {
            Some(Ok(value)) => Ok(value),
            Some(Err(msg)) => Err(TaskError::UnblockPanicked(msg)),
            // The job was dropped unrun: only if its thread could not run it.
            None => Err(TaskError::Closed),
        }
    }

    /// Queues `job`, parking while the queue is full; starts a thread if none is free.
    fn submit(&self, h: &Handle, deadline: Option<Instant>, job: Job) -> Result<(), TaskError> {
        if fibra_rt::time::is_simulated() {
            // A real thread would run the job at a wall-clock moment and its answer would
            // come back outside the simulated clock: refuse, the job unrun.
            return Err(TaskError::Io(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "unblock runs its work on a real thread, outside the simulation: \
                 not available under a simulated clock (fibra-sim)",
            )));
        }
        let shared = &self.shared;
        let mut job = Some(job);
        loop {
            let mut state = shared.lock();
            if state.jobs.len() < shared.capacity {
                if let Some(job) = job.take() {
                    state.jobs.push_back(job);
                }
                if state.idle > state.signalled {
                    state.signalled += 1;
                    shared.work.notify_one();
                } else if state.threads < shared.max_threads {
                    if let Err(e) = self.start_thread(&mut state) {
                        if state.threads == 0 {
                            state.jobs.clear();
                            return Err(TaskError::Io(e));
                        }
                        log::warn!(target: "fibra_tasks::unblock", "no new thread ({e}); the {} running take the work", state.threads);
                    }
                }
                return Ok(());
            }
            let key = state.room.push(RemoteWaker::of(h));
            drop(state);
            let mut leave = WaitGuard::new(|done| {
                shared.lock().room.leave(key, done);
            });
            match deadline {
                Some(deadline) => h.park_until(deadline).map_err(|_| TaskError::TimedOut)?,
                None => h.park(),
            }
            leave.done(true);
        }
    }

    fn start_thread(&self, state: &mut State) -> std::io::Result<()> {
        let shared = Arc::clone(&self.shared);
        std::thread::Builder::new()
            .name("fibra-unblock".into())
            .spawn(move || work(&shared))?;
        state.threads += 1;
        Ok(())
    }

    /// Threads running now.
    pub fn threads(&self) -> usize {
        self.shared.lock().threads
    }

    /// Closures waiting for a thread now.
    pub fn queued(&self) -> usize {
        self.shared.lock().jobs.len()
    }
}

/// A pool thread: runs jobs until none came for the idle timeout.
fn work(shared: &Shared) {
    let mut state = shared.lock();
    loop {
        if let Some(job) = state.jobs.pop_front() {
            let room = state.room.take_next().cloned();
            drop(state);
            if let Some(waker) = room {
                waker.wake();
            }
            // Jobs catch their own panics; this is the second line.
            let _ = catch_unwind(AssertUnwindSafe(job));
            state = shared.lock();
            continue;
        }
        state.idle += 1;
        let (next, timeout) = shared
            .work
            .wait_timeout(state, shared.idle_timeout)
            .unwrap_or_else(PoisonError::into_inner);
        state = next;
        state.idle -= 1;
        state.signalled = state.signalled.saturating_sub(1);
        if timeout.timed_out() && state.jobs.is_empty() {
            state.threads -= 1;
            return;
        }
    }
}

impl fmt::Debug for BlockingPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("BlockingPool")
            .field("threads", &state.threads)
            .field("idle", &state.idle)
            .field("queued", &state.jobs.len())
            .field("max_threads", &self.shared.max_threads)
            .field("capacity", &self.shared.capacity)
            .finish()
    }
}
