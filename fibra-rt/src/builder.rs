//! `Builder`: a `Schedule`'s settings.

use crate::{Error, Schedule};

/// Builds a [`Schedule`] with non-default settings.
///
/// ```
/// let schedule = fibra_rt::Schedule::builder()
///     .stack_size(128 * 1024)
///     .stack_pool_cap(4096)
///     .step_budget(1000)
///     .build();
/// # drop(schedule);
/// ```
#[derive(Clone, Debug)]
pub struct Builder {
    pub(crate) stack_size: usize,
    pub(crate) pool_cap: usize,
    pub(crate) step_budget: usize,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            stack_size: 64 * 1024,
            pool_cap: 1024,
            step_budget: 4096,
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
