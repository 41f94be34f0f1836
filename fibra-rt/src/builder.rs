//! `Builder`: a `Schedule`'s settings.

use std::time::Duration;

use crate::{Error, Schedule};

/// Builds a [`Schedule`] with non-default settings.
///
/// ```
/// use std::time::Duration;
///
/// let schedule = fibra_rt::Schedule::builder()
///     .stack_size(128 * 1024)
///     .stack_pool_cap(4096)
///     .step_budget(1000)
///     .stall_threshold(Duration::from_millis(200))
///     .build();
/// # drop(schedule);
/// ```
#[derive(Clone, Debug)]
pub struct Builder {
    pub(crate) stack_size: usize,
    pub(crate) pool_cap: usize,
    pub(crate) step_budget: usize,
    pub(crate) stall_threshold: Option<Duration>,
    pub(crate) first_seq: u64,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            stack_size: 64 * 1024,
            pool_cap: 1024,
            step_budget: 4096,
            stall_threshold: Some(Duration::from_secs(1)),
            first_seq: 0,
        }
    }
}

impl Builder {
    /// Default stack size of tasklets, in bytes (64 KiB unless set). Only pages a tasklet
    /// touches take memory, so a generous size costs address space, not RAM.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = bytes.max(4096);
        self
    }

    /// How many free stacks the pool keeps for reuse (1024 unless set).
    pub fn stack_pool_cap(mut self, stacks: usize) -> Self {
        self.pool_cap = stacks;
        self
    }

    /// The most tasklet steps one `tick()` runs (4096 unless set), so that a tick's cost is
    /// bounded however much work is ready.
    pub fn step_budget(mut self, steps: usize) -> Self {
        self.step_budget = steps.max(1);
        self
    }

    /// How long a tasklet (or a plugin's `poll`/`flush`) may run without yielding before it
    /// is reported (1 s unless set): a watchdog thread logs it once, at `warn` on target
    /// `fibra_rt::stall`, with the tasklet's id and name, while it still runs, since every
    /// other tasklet of the schedule waits meanwhile. The schedule's hot path pays a few
    /// relaxed atomic stores per tasklet run for it, never a clock read.
    pub fn stall_threshold(mut self, threshold: Duration) -> Self {
        self.stall_threshold = Some(threshold);
        self
    }

    /// Turns stall reports (see [`stall_threshold`](Self::stall_threshold)) on or off; they
    /// are on unless set. Off, the schedule neither starts nor uses the process's watchdog
    /// thread.
    pub fn stall_reports(mut self, on: bool) -> Self {
        self.stall_threshold = match (on, self.stall_threshold) {
            (false, _) => None,
            (true, Some(threshold)) => Some(threshold),
            (true, None) => Some(Duration::from_secs(1)),
        };
        self
    }

    /// Starts the tasklet id sequence as if `spawns` tasklets had been spawned already, for
    /// tests of id reuse (a stale id after 2^32 spawns).
    #[doc(hidden)]
    pub fn first_sequence(mut self, spawns: u64) -> Self {
        self.first_seq = spawns;
        self
    }

    /// Creates the schedule.
    ///
    /// # Panics
    ///
    /// When the schedule's poller cannot be created (the process is out of file
    /// descriptors); [`try_build`](Self::try_build) returns that as an error instead.
    pub fn build(self) -> Schedule {
        match self.try_build() {
            Ok(schedule) => schedule,
            Err(e) => panic!("{e}"),
        }
    }

    /// Creates the schedule, or says why it could not.
    ///
    /// # Errors
    ///
    /// [`Error::Reactor`] when the poller (an epoll instance and an eventfd on Linux) cannot
    /// be created.
    pub fn try_build(self) -> Result<Schedule, Error> {
        Schedule::from_builder(self)
    }
}
