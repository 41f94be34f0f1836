//! Input watches: a connection served without a tasklet while it is idle. Instead of a
//! parked receiver, its entry holds a job; when input comes (a readable edge, the end of the
//! stream, a loss, a close or abort asked by a handle), the job is spawned on a new tasklet,
//! whose stack comes from the schedule's pool. The job takes what is there with
//! [`TryReceive`](crate::ops::TryReceive), which never parks, and arms the watch again
//! (with [`OnInput`](crate::ops::OnInput)) when nothing is left, ending its tasklet.
//!
//! A connection has at most one job at a time, armed here or running: its frames are taken
//! in order by one tasklet.

use std::borrow::Cow;
use std::fmt;

use fibra_rt::{Context, SpawnOptions};

use super::input::{Attempt, READ_BUDGET};
use super::{conn_mut, Entry, Table};
use crate::api::error::NetError;
use crate::api::ops::{InputJob, Tried};

/// An armed job.
pub(crate) type Job = Box<dyn InputJob>;
use crate::engine::shared::{Key, ReceiveMode};

/// An armed watch: the job to spawn, and its tasklet's name.
pub(super) struct Watch {
    job: Job,
    name: &'static str,
}

/// The table's count of armed watches (what [`NetPlugin`](crate::NetPlugin) reports as
/// work left to the schedule: `run` goes on while one is armed), and the jobs taken off the
/// table while it was borrowed, dropped once it is free (their destructors may use their
/// connections: a protocol's `connection_lost`).
#[derive(Default)]
pub(super) struct Watches {
    armed: usize,
    unwatched: Vec<Job>,
}

impl fmt::Debug for Watches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watches")
            .field("armed", &self.armed)
            .field("unwatched", &self.unwatched.len())
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
        } else if input.readable || input.end.is_some() || c.lost.is_some() {
            self.fire_watch(key, cx);
        }
        Ok(())
    }

    /// Spawns the connection's armed job, if any. When no stack can be mapped, the job stays
    /// armed and is tried again next round.
    pub(super) fn fire_watch(&mut self, key: Key, cx: &mut Context<'_>) {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return;
        };
        let Some(Watch { job, name }) = c.input.watch.take() else {
            return;
        };
        self.watches.armed -= 1;
        let options = SpawnOptions::new().name(Cow::Borrowed(name));
        // The job goes onto the new tasklet's stack (no allocation); it comes back when no
        // stack can be mapped, and stays armed for the next round.
        let spawned = cx.spawn_fn(options, job, |job: Job, h| job.run(h));
        if let Err((e, job)) = spawned {
            log::warn!(target: "fibra_net",
                "no tasklet for a connection's input ({e}); trying again next round");
            if let Some(c) = conn_mut(&mut self.entries, key) {
                c.input.watch = Some(Watch { job, name });
                self.watches.armed += 1;
                self.retry.push(key.slot);
            }
        }
    }

    /// Takes every armed job out (the plugin is going away): the caller drops them once the
    /// table is no longer borrowed, since their destructors use the connections.
    pub(crate) fn take_watches(&mut self) -> Vec<Job> {
        let mut jobs = std::mem::take(&mut self.watches.unwatched);
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

    /// Armed watches: for the stats, and work left to the schedule (O(1)).
    pub(crate) fn watching(&self) -> usize {
        self.watches.armed
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
