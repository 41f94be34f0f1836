//! The driver loop: rounds of outside events (the reactor's wait, deadlines, plugins' polls)
//! and of tasklet steps, as `tick`, `tick_within` and `run` ask for them.

use std::io;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use corosensei::CoroutineResult;

use super::dispatch::Dispatch;
use super::Schedule;
use crate::reactor::{Event, Events};
use crate::stall::Activity;
use crate::tasklet::State;
use crate::wait::{OpSlot, Wait};
use crate::{overflow, Context, Error, Exit, Plugin, TaskletId};

/// Steps between two zero-timeout polls of the plugins while tasklets stay runnable.
const POLL_INTERVAL: usize = 61;
/// Ops a tasklet may complete in a row without going back to the end of the run queue.
const CHAIN_LIMIT: usize = 32;

/// How a run of a tasklet ended.
enum RunEnd {
    /// It waits for `Wait`.
    Waiting(Wait),
    /// It used its share of steps and goes to the back of the run queue.
    Requeue,
    /// Its function returned or panicked.
    Ended(Exit),
    /// It was killed from inside its own op.
    Killed,
}

impl Schedule {
    pub(super) fn run_once(&mut self, limit: Option<Instant>) -> Result<(), Error> {
        if crate::time::is_simulated() {
            // The poller would wait in real time while the simulated clock stands still.
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "run, run_until and drain wait on the real poller: under a simulation \
                 (fibra-sim) a schedule is driven by tick, as the simulation does",
            )));
        }
        self.reap_after_plugin_panic();
        self.core.drain_wakes();
        self.settle();
        if self.core.run_queue.is_empty() {
            self.block(limit)?;
        }
        self.run_steps(self.step_budget)?;
        self.flush_plugins()
    }

    /// The end of a round: every plugin writes out what the round queued.
    pub(super) fn flush_plugins(&mut self) -> Result<(), Error> {
        for i in 0..self.plugins.len() {
            self.call_plugin(i, Activity::Flush, |plugin, cx, _| plugin.flush(cx))?;
        }
        self.core.drain_wakes();
        self.settle();
        Ok(())
    }

    /// Plugin `i`'s [`Plugin::drain`], run as its flush is.
    pub(super) fn call_plugin_drain(&mut self, i: usize) -> Result<(), Error> {
        self.call_plugin(i, Activity::Flush, |plugin, cx, _| {
            plugin.drain(cx);
            Ok(())
        })
    }

    /// Runs plugin `i`'s `poll` or `flush` (`call`) as a run the stall watchdog sees, ended
    /// for it even if the plugin panics (else the schedule, idle after the host caught the
    /// panic, would be reported as this plugin running on); then the kills it asked for.
    /// `call` is given the round's events too.
    #[inline]
    fn call_plugin(
        &mut self,
        i: usize,
        activity: Activity,
        call: impl FnOnce(&mut dyn Plugin, &mut Context<'_>, &[Event]) -> io::Result<()>,
    ) -> Result<(), Error> {
        let mut cx = Context {
            core: &mut self.core,
            plugin: i,
        };
        cx.core.stall.enter_plugin(activity, i);
        let plugin = &mut *self.plugins[i];
        let events = &self.events;
        let result = catch_unwind(AssertUnwindSafe(|| call(plugin, &mut cx, events)));
        self.core.stall.leave();
        let result = result.unwrap_or_else(|payload| resume_unwind(payload));
        self.process_kills();
        result.map_err(|source| Error::Plugin {
            plugin: self.plugin_names[i],
            source,
        })
    }

    /// Nothing is runnable: wait for the next event, deadline or remote wake.
    pub(super) fn block(&mut self, limit: Option<Instant>) -> Result<(), Error> {
        let deadline = match (self.next_deadline(), limit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // A deadline already passed at the last clock reading needs no new reading.
        let timeout = deadline.map(|d| {
            if d <= self.core.clock.last() {
                Duration::ZERO
            } else {
                d.saturating_duration_since(crate::time::now())
            }
        });
        // Only the schedule's own remote (held by its unpark queue) is left: nobody else can
        // wake it.
        let wakeable = self.core.reactor.sources() > 0 || self.core.wakes.remote.count() > 1;
        if timeout.is_none() && !wakeable {
            self.poll_round(Some(Duration::ZERO))?;
            // Work left (tasklets, or a plugin's) that nothing can ever wake.
            if self.core.run_queue.is_empty() && self.has_work() {
                return Err(Error::Stalled {
                    waiting: self.len(),
                });
            }
            return Ok(());
        }
        self.poll_round(timeout)
    }

    /// One round of outside events: one wait in the reactor (up to `timeout`), then remote
    /// unparks, op deadlines, and every plugin's poll with its events.
    pub(super) fn poll_round(&mut self, timeout: Option<Duration>) -> Result<(), Error> {
        // The round's time is read after the wait, at the first `now()`.
        self.core.clock.expire();
        let wait = timeout != Some(Duration::ZERO)
            || self.core.reactor.sources() > 0
            || self.core.wakes.remote.is_pending();
        if wait {
            // Asleep for the stall watchdog only in a wait that may block (it may sleep too).
            let blocks = timeout != Some(Duration::ZERO);
            if blocks {
                self.core.stall.asleep();
            }
            let waited = self.core.reactor.wait(&mut self.events, timeout);
            if blocks {
                self.core.stall.awake();
            }
            waited.map_err(Error::Reactor)?;
        } else {
            self.events.clear();
        }
        self.core.drain_remote();
        self.settle();
        self.expire_op_deadlines();
        for i in 0..self.plugins.len() {
            self.call_plugin(i, Activity::Poll, |plugin, cx, events| {
                plugin.poll(cx, Events::new(events, i))
            })?;
        }
        self.core.drain_wakes();
        self.settle();
        Ok(())
    }

    fn expire_op_deadlines(&mut self) {
        if self.core.op_deadlines.is_empty() {
            return;
        }
        let now = self.core.clock.now();
        while let Some(id) = self.core.op_deadlines.pop_expired(now) {
            let Some(t) = self.core.get_mut(id) else {
                continue;
            };
            let State::Suspended { wait, .. } = &t.state else {
                continue;
            };
            // A park with a deadline (`yield_op_until(Park, ..)`) has nobody to withdraw it
            // from; a select has no deadline.
            let plugin = match wait {
                Wait::Op { slot, route } => {
                    slot.time_out();
                    Some(self.routes[*route].plugin)
                }
                Wait::Park { slot } => {
                    slot.time_out();
                    None
                }
                Wait::Select { .. } => continue,
            };
            self.core.resume(id);
            if let Some(plugin) = plugin {
                self.plugins[plugin].cancel(id);
            }
        }
    }

    /// Runs up to `budget` steps; returns how many ran.
    pub(super) fn run_steps(&mut self, budget: usize) -> Result<usize, Error> {
        let mut steps = 0;
        let mut since_poll = 0;
        while steps < budget {
            self.core.drain_wakes();
            self.settle();
            let Some(id) = self.core.run_queue.pop_front() else {
                break;
            };
            // A tasklet that is gone or not runnable (killed, or queued twice) takes no step:
            // `run_tasklet` checks, with the one lookup it makes anyway.
            let ran = self.run_tasklet(id, budget - steps);
            steps += ran;
            self.core.steps_run += ran as u64;
            since_poll += ran;
            if since_poll >= POLL_INTERVAL && !self.core.run_queue.is_empty() {
                since_poll = 0;
                self.poll_round(Some(Duration::ZERO))?;
            }
        }
        Ok(steps)
    }

    /// Resumes `id` until it waits, ends, or has used its share; returns the steps it took.
    ///
    /// The coroutine is taken out of the table for the whole run, so that a chain of ops that
    /// complete at once costs no table lookup per resume; it goes back (with the op slot it
    /// waits on, when it waits) before this returns.
    fn run_tasklet(&mut self, id: TaskletId, budget: usize) -> usize {
        let Some(t) = self.core.get_mut(id) else {
            return 0;
        };
        let mut co = match std::mem::replace(&mut t.state, State::Running) {
            State::Runnable(co) => co,
            other => {
                t.state = other;
                return 0;
            }
        };
        self.running = Some(id);
        // A copy on this frame: the table may move while plugins run, this never does.
        let guard = t.guard;
        self.core.stall.enter_tasklet(&guard);
        let entered = overflow::enter(&guard);
        let limit = budget.min(CHAIN_LIMIT);
        let mut steps = 0;
        // Plugin code runs inside this loop (submit, and the cancel/exited hooks of kills it
        // asks for). If it panics, the tasklet's stack is unwound below, as a kill's is.
        let run = catch_unwind(AssertUnwindSafe(|| loop {
            steps += 1;
            match co.resume(()) {
                CoroutineResult::Yield(header) => {
                    // SAFETY: `header` is what `co` just yielded; the `OpSlot` stays beside
                    // `co`, suspended: on this frame, then with it in the table (`Waiting`).
                    let slot = unsafe { OpSlot::new(header) };
                    // A kill posted while it ran (an `Unparker::kill` from its own code: a
                    // server stopping the session it serves) ends it here, at this yield,
                    // before its op is dispatched: a tasklet that goes on to other work (a
                    // worker taking the next job) must not carry the kill into it.
                    if self.core.take_posted_kills() {
                        self.process_kills();
                        if self.core.get(id).is_none_or(|t| t.kill_requested) {
                            break RunEnd::Killed;
                        }
                    }
                    if let Dispatch::Pending(wait) = self.dispatch(id, slot) {
                        break RunEnd::Waiting(wait);
                    }
                    if !self.core.kills.is_empty() || !self.core.withdrawals.is_empty() {
                        self.process_kills();
                        if self.core.get(id).is_none_or(|t| t.kill_requested) {
                            break RunEnd::Killed;
                        }
                    }
                    if steps >= limit {
                        break RunEnd::Requeue;
                    }
                }
                CoroutineResult::Return(exit) => break RunEnd::Ended(exit),
            }
        }));
        drop(entered);
        self.core.stall.leave();
        let end = match run {
            Ok(end) => end,
            Err(payload) => {
                // A plugin panicked while serving this tasklet's op: the tasklet ends with it
                // (see `abandon`) and the panic goes on to the host.
                self.abandon(id, &guard, Some(co));
                std::panic::resume_unwind(payload);
            }
        };
        self.running = None;
        let Some(t) = self.core.get_mut(id) else {
            // Cannot happen: a running tasklet leaves the table only below. Ended as a kill.
            self.abandon(id, &guard, Some(co));
            self.running = None;
            return steps;
        };
        match end {
            RunEnd::Waiting(wait) => {
                t.set_state(State::Suspended { co, wait });
                // The plugin may have asked for kills while taking the op; carried out now that
                // the tasklet waits (their exit hooks may complete its op). A panic there ends
                // this tasklet as one in the op's own submit does.
                if !self.core.kills.is_empty() || !self.core.withdrawals.is_empty() {
                    let killed = catch_unwind(AssertUnwindSafe(|| self.process_kills()));
                    if let Err(payload) = killed {
                        if self.core.get(id).is_some_and(|t| !t.kill_requested) {
                            self.abandon(id, &guard, None);
                        }
                        std::panic::resume_unwind(payload);
                    }
                }
            }
            RunEnd::Requeue => {
                t.set_state(State::Runnable(co));
                self.core.run_queue.push_back(id);
            }
            RunEnd::Ended(exit) => self.finish(id, co, exit),
            RunEnd::Killed => {
                if let Some(t) = self.core.remove(id) {
                    self.end_killed(t, Some(co));
                }
            }
        }
        // Watchers told of this end, and kills asked for by the plugin of a pending op, may
        // have queued more kills.
        self.process_kills();
        steps
    }
}
