//! Input watches: a connection served without a tasklet while it is idle. Instead of a
//! parked receiver, its entry holds a job; when input comes (a readable edge, the end of the
//! stream, a loss, a close or abort asked by a handle), the job is handed to a worker: a
//! tasklet of the table's that runs fired jobs one after another. The job takes what is
//! there with [`TryReceive`](crate::ops::TryReceive), which never parks, and arms the watch
//! again (with [`OnInput`](crate::ops::OnInput)) when nothing is left; its worker goes on to
//! the next job.
//!
//! Calls, not yields, on the common path: a job's receive that a raw read serves
//! ([`NetExt::try_receive`](crate::NetExt::try_receive)), its watch armed again while nothing
//! waits to fire it ([`NetExt::on_input`](crate::NetExt::on_input)), and the next job taken
//! from the line by its worker are done on the table from the tasklet, without switching out
//! (each yield answered at once is two stack switches and a dispatch). A worker yields
//! between jobs when a kill is posted (it must not carry a stop meant for the last job's
//! session into the next) and after [`AT_ONCE`] jobs in a row.
//!
//! Workers, not a tasklet spawned per activation: with a thousand connections served in
//! turn, a few workers' stacks stay in the cache where a thousand tasklets' stacks could not,
//! and a job costs no spawn. A worker waits for its next job in [`NextJob`]; at most
//! [`IDLE_WORKERS`] wait, and none once no watch is armed (so that `Schedule::run` ends).
//!
//! How many: a fired job goes to an idle worker, else waits in line for a busy one, which
//! takes it when its job returns (within the tick, as a rule). A worker is started when
//! there is none, or when jobs waited through a whole round with none taken: their workers
//! are parked in jobs (a callback waiting on a back end, say), and one more serves the line.
//! A round of a thousand activations then runs on one or two workers, and a job that parks
//! costs the others at most a round's delay.
//!
//! A connection has at most one job at a time, armed here, waiting for a worker or running:
//! its frames are taken in order by one tasklet.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::rc::{Rc, Weak};
use std::task::Poll;

use fibra_rt::{Context, Handle, Op, SpawnOptions, TaskletId};

use super::input::{Attempt, READ_BUDGET};
use super::{conn_mut, Entry, Table};
use crate::api::error::NetError;
use crate::api::ops::{InputJob, Tried};
use crate::engine::shared::Shared;

/// The most workers that wait for a job; a worker that finds none and this many waiting ends.
pub(crate) const IDLE_WORKERS: usize = 4;

/// How soon a worker that could not be started (no stack) is tried again while jobs wait in
/// line: their input edges are spent, so nothing else may end the schedule's wait.
const WORKER_RETRY: std::time::Duration = std::time::Duration::from_millis(10);

/// The most jobs a worker takes from the line in a row without yielding.
const AT_ONCE: usize = 64;

/// A worker's wait for its next job (the table's own op): `None` tells it to end.
pub(crate) struct NextJob;

impl Op for NextJob {
    type Output = Option<Job>;
    const PLUGIN: Option<&'static str> = Some("fibra_net::NetPlugin::new()?");
}

/// The table's count of its workers.
#[derive(Debug, Default)]
struct WorkerCount {
    /// Alive: starting, idle or running a job.
    alive: Cell<usize>,
    /// Spawned, not yet run.
    starting: Cell<usize>,
}

/// One worker, counted from its spawn to its end, whatever ends it: a return, the unwind of
/// a kill, or a kill before its first step (its closure, which owns this, is dropped then).
struct Counted {
    count: Rc<WorkerCount>,
    started: bool,
}

impl Counted {
    fn new(count: &Rc<WorkerCount>) -> Counted {
        count.alive.set(count.alive.get() + 1);
        count.starting.set(count.starting.get() + 1);
        Counted {
            count: Rc::clone(count),
            started: false,
        }
    }

    fn start(&mut self) {
        if !std::mem::replace(&mut self.started, true) {
            let starting = &self.count.starting;
            starting.set(starting.get().saturating_sub(1));
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.start();
        let alive = &self.count.alive;
        alive.set(alive.get().saturating_sub(1));
    }
}

/// A worker's body: fired jobs, one after another, until the table has none for it. While
/// jobs wait in line it takes them without yielding ([`AT_ONCE`] in a row at most, and none
/// while a kill is posted); else it waits in [`NextJob`].
fn worker(h: &Handle, mut counted: Counted, shared: Weak<Shared>) {
    counted.start();
    let shared = shared.upgrade();
    let mut in_a_row = 0;
    loop {
        let at_once = (in_a_row < AT_ONCE && !h.has_posted_kills())
            .then(|| {
                shared
                    .as_ref()?
                    .table
                    .try_borrow_mut()
                    .ok()?
                    .take_ready_job()
            })
            .flatten();
        let job = match at_once {
            Some(job) => {
                in_a_row += 1;
                job
            }
            None => match h.yield_op(NextJob) {
                Some(job) => {
                    in_a_row = 0;
                    job
                }
                None => break,
            },
        };
        // A job's panic ends that job (its state is dropped), not the worker.
        if let Err(msg) = h.catch_panic(|| job.run(h)) {
            log::error!(target: "fibra_net", "an input job panicked: {msg}");
        }
    }
}

/// An armed job.
pub(crate) type Job = Box<dyn InputJob>;
use crate::engine::shared::{Key, ReceiveMode};

/// An armed watch: the job to spawn, and its tasklet's name.
pub(super) struct Watch {
    job: Job,
    name: &'static str,
}

/// The table's count of armed watches (what [`NetPlugin`](crate::NetPlugin) reports as
/// work left to the schedule: `run` goes on while one is armed), the jobs taken off the
/// table while it was borrowed, dropped once it is free (their destructors may use their
/// connections: a protocol's `connection_lost`), and the workers.
#[derive(Default)]
pub(super) struct Watches {
    armed: usize,
    unwatched: Vec<Job>,
    /// Fired jobs waiting for a worker, in the order they fired.
    ready: VecDeque<Watch>,
    /// Workers waiting for a job (kept out of the table's waiters: they wait on no
    /// connection, and are not counted as tasklets waiting on a network op).
    idle: Vec<TaskletId>,
    /// Workers alive and starting; each worker keeps the count itself ([`Counted`]).
    count: Rc<WorkerCount>,
    /// Jobs waited in line at the end of the last round.
    waited: bool,
    /// A worker took a job from the line since the last round's end.
    taken: bool,
    /// When the last worker could not be started (no stack): a round tries again
    /// [`WORKER_RETRY`] later (`Table::next_deadline`), not at once, which would spin.
    start_failed: Option<std::time::Instant>,
}

impl Watches {
    /// No watch is armed and no job waits: a worker has nothing to wait for.
    fn nothing_to_wait_for(&self) -> bool {
        self.armed == 0 && self.ready.is_empty()
    }
}

impl fmt::Debug for Watches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watches")
            .field("armed", &self.armed)
            .field("unwatched", &self.unwatched.len())
            .field("ready", &self.ready.len())
            .field("idle", &self.idle.len())
            .field("count", &self.count)
            .finish()
    }
}

impl fmt::Debug for Watch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watch")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Table {
    /// Whether a [`TryReceive`](crate::ops::TryReceive) on `key` could find anything now:
    /// buffered bytes, a socket not known to be drained, the end or a loss (or a TLS
    /// connection, whose filter may hold plaintext; or an entry gone, which the receive
    /// reports). `false` lets a job arm its watch without a receive that would find nothing.
    pub(crate) fn input_may_be_pending(&self, key: Key) -> bool {
        match self.entries.get(key.slot) {
            Some(Entry::Conn(c)) if c.gen == key.gen => {
                !c.input.buf.is_empty() || c.input_has_news() || c.tls.is_some()
            }
            _ => true,
        }
    }

    /// A receive that never parks.
    pub(crate) fn submit_try_receive(
        &mut self,
        key: Key,
        buf: Vec<u8>,
        mode: ReceiveMode,
        cx: &mut Context<'_>,
    ) -> Tried {
        match self.conn_entry(key) {
            Ok(c) if c.input.has_reader() => return Tried::Failed(NetError::Busy),
            Ok(_) => {}
            Err(e) => return Tried::Failed(e),
        }
        match self.attempt_receive(key, buf, mode, cx) {
            Attempt::Done(Ok(frame)) => Tried::Frame(frame),
            Attempt::Done(Err(e)) => Tried::Failed(e),
            // Stopped by the read budget: `OnInput` then waits for the next round.
            Attempt::Pending(buf, _) => Tried::Nothing(buf),
        }
    }

    /// Arms the input watch of `key` with `job`; spawns it at once when input is there. A
    /// refused job comes back, for the caller to drop off the table (its destructor may use
    /// its connection).
    pub(crate) fn submit_watch(
        &mut self,
        key: Key,
        job: Job,
        name: &'static str,
        cx: &mut Context<'_>,
    ) -> Result<(), (NetError, Job)> {
        let round = self.round;
        let c = match self.conn_entry(key) {
            Ok(c) => c,
            Err(e) => return Err((e, job)),
        };
        match c.input.watch.replace(Watch { job, name }) {
            None => self.watches.armed += 1,
            // Replaced: the first is dropped off the table.
            Some(old) => self.watches.unwatched.push(old.job),
        }
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return Ok(());
        };
        let input = &c.input;

        if input.round == round && input.in_round >= READ_BUDGET {
            // Read its share this round: the next round serves it.
            self.retry.push(key.slot);
        } else if c.input_has_news() {
            self.fire_watch(key, cx);
        }
        Ok(())
    }

    /// [`submit_watch`](Self::submit_watch) without a context (a tasklet's call, no
    /// yield), for the common case: nothing is there to fire the watch at once (the socket
    /// drained, no end, no loss), nor is the connection at its read budget, nor is a job
    /// armed already. `Err` gives the job back: the op arms it (and fires it, or refuses it).
    pub(crate) fn arm_at_once(
        &mut self,
        key: Key,
        job: Job,
        name: &'static str,
    ) -> Result<(), Job> {
        let round = self.round;
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return Err(job);
        };
        let input = &c.input;
        if input.watch.is_some()
            || c.input_has_news()
            || (input.round == round && input.in_round >= READ_BUDGET)
        {
            return Err(job);
        }
        c.input.watch = Some(Watch { job, name });
        self.watches.armed += 1;
        Ok(())
    }

    /// Hands the connection's armed job, if any, to a worker: an idle one, or the next to
    /// ask (one is started when none is idle or starting).
    pub(super) fn fire_watch(&mut self, key: Key, cx: &mut Context<'_>) {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return;
        };
        let Some(watch) = c.input.watch.take() else {
            return;
        };
        self.watches.armed -= 1;
        let Watch { job, name } = watch;
        match self.watches.idle.pop() {
            None => self.watches.ready.push_back(Watch { job, name }),
            // A worker killed leaves the list as it goes (`forget_worker`); one not waiting
            // after all gives the job back, and it goes first in line.
            Some(worker) => match cx.complete::<NextJob>(worker, Some(job)) {
                Ok(()) => return,
                Err(back) => self
                    .watches
                    .ready
                    .extend(back.map(|job| Watch { job, name })),
            },
        }
        if self.watches.count.alive.get() == 0 {
            self.start_worker(cx);
        }
    }

    /// Starts a worker for the jobs in line, unless one is starting already. When no stack
    /// can be mapped, the next round tries again ([`tend_workers`](Self::tend_workers)).
    fn start_worker(&mut self, cx: &mut Context<'_>) {
        let w = &mut self.watches;
        let Some(next) = w.ready.front() else {
            return;
        };
        if w.count.starting.get() > 0 {
            return;
        }
        let options = SpawnOptions::new().name(Cow::Borrowed(next.name));
        let counted = Counted::new(&w.count);
        let shared = self.me.clone();
        let started = cx.spawn(options, move |h| worker(h, counted, shared));
        w.start_failed = started.is_err().then(|| cx.now());
        if let Err(e) = started {
            log::warn!(target: "fibra_net",
                "no tasklet for connections' input ({e}); trying again next round");
        }
    }

    /// Whether the jobs in line need a worker started: there is none, or they waited
    /// through a whole round and no worker took one (the busy ones are parked in jobs).
    fn line_is_stuck(&self) -> bool {
        let w = &self.watches;
        !w.ready.is_empty() && (w.count.alive.get() == 0 || (w.waited && !w.taken))
    }

    /// Once a round, at its end: a worker for a line of jobs that is stuck, and the idle
    /// workers told to end once no watch is armed.
    pub(super) fn tend_workers(&mut self, cx: &mut Context<'_>) {
        if self.line_is_stuck() {
            self.start_worker(cx);
        }
        let w = &mut self.watches;
        w.waited = !w.ready.is_empty();
        w.taken = false;
        if w.nothing_to_wait_for() {
            // Popped, not taken: the list keeps its room (no allocation per round).
            while let Some(worker) = w.idle.pop() {
                let _ = cx.complete::<NextJob>(worker, None);
            }
        }
    }

    /// Whether [`tend_workers`](Self::tend_workers) has something to do now. Asked when
    /// nothing is runnable (the schedule is about to wait): jobs still in line then mean
    /// every worker is parked in a job, and the next round must not wait for readiness or a
    /// timer, or each job in line would cost the others one such wait (a storm of closes
    /// parked for their peers' answers: seconds).
    pub(super) fn workers_need_tending(&self) -> bool {
        let w = &self.watches;
        (!w.ready.is_empty() && w.count.starting.get() == 0 && w.start_failed.is_none())
            || (w.nothing_to_wait_for() && !w.idle.is_empty())
    }

    /// When a round must come to retry a worker that could not be started while jobs wait in
    /// line (nothing else may end the wait: their input edges are spent).
    pub(super) fn worker_retry_at(&self) -> Option<std::time::Instant> {
        let w = &self.watches;
        if w.ready.is_empty() {
            return None;
        }
        w.start_failed.and_then(|at| at.checked_add(WORKER_RETRY))
    }

    /// A worker asks for its next job: the first waiting, or it waits (at most
    /// [`IDLE_WORKERS`] do, and none while no watch is armed: the others end).
    pub(crate) fn next_job(&mut self, from: TaskletId) -> Poll<Option<Job>> {
        if let Some(job) = self.take_ready_job() {
            return Poll::Ready(Some(job));
        }
        let w = &mut self.watches;
        if w.nothing_to_wait_for() || w.idle.len() >= IDLE_WORKERS {
            return Poll::Ready(None);
        }
        w.idle.push(from);
        Poll::Pending
    }

    /// The first job waiting in line, for a worker that asks (a call or [`NextJob`]).
    pub(crate) fn take_ready_job(&mut self) -> Option<Job> {
        let w = &mut self.watches;
        let watch = w.ready.pop_front()?;
        w.taken = true;
        Some(watch.job)
    }

    /// A tasklet was withdrawn (killed): if it is an idle worker, it waits no more (it
    /// lowers the count of workers alive as it unwinds). At most [`IDLE_WORKERS`] to look at.
    pub(super) fn forget_worker(&mut self, id: TaskletId) {
        self.watches.idle.retain(|&w| w != id);
    }

    /// Workers waiting for a job, for the stats.
    pub(crate) fn idle_workers(&self) -> usize {
        self.watches.idle.len()
    }

    /// Takes every armed job out (the plugin is going away): the caller drops them once the
    /// table is no longer borrowed, since their destructors use the connections.
    pub(crate) fn take_watches(&mut self) -> Vec<Job> {
        let mut jobs = std::mem::take(&mut self.watches.unwatched);
        jobs.extend(self.watches.ready.drain(..).map(|w| w.job));
        self.watches.armed = 0;
        for (_, entry) in &mut self.entries {
            if let Entry::Conn(c) = entry {
                if let Some(watch) = c.input.watch.take() {
                    jobs.push(watch.job);
                }
            }
        }
        jobs
    }

    /// Armed watches, for the stats (O(1)).
    pub(crate) fn watching(&self) -> usize {
        self.watches.armed
    }

    /// Work left to the schedule: armed watches, and fired jobs waiting for a worker (when
    /// none could be started, `run` goes on and the next round tries again).
    pub(crate) fn watch_work(&self) -> usize {
        self.watches.armed + self.watches.ready.len()
    }

    /// A connection's entry is going away with its watch armed (its handles are gone, and
    /// its job did not keep one): the job is dropped once the table is free.
    pub(super) fn unwatch(&mut self, watch: Option<Watch>) {
        if let Some(watch) = watch {
            self.watches.armed -= 1;
            self.watches.unwatched.push(watch.job);
        }
    }

    /// The jobs taken off the table (replaced, or their connection removed), to drop once
    /// it is no longer borrowed. `None` when there are none (no allocation).
    pub(crate) fn take_unwatched(&mut self) -> Option<Vec<Job>> {
        if self.watches.unwatched.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.watches.unwatched))
        }
    }
}
