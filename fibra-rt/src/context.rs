//! `Context`: what a plugin may do to the schedule while it runs.

use std::fmt;
use std::time::Instant;

use crate::reactor::Registry;
use crate::schedule::Core;
use crate::tasklet::State;
use crate::wait::{Resume, Wait};
use crate::{Error, Handle, Op, Remote, SpawnOptions, TaskletId};

/// What a plugin may do to the schedule while it runs: complete ops, spawn and kill tasklets,
/// watch exits.
pub struct Context<'a> {
    pub(crate) core: &'a mut Core,
    pub(crate) plugin: usize,
}

impl fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("plugin", &self.plugin)
            .finish_non_exhaustive()
    }
}

impl Context<'_> {
    /// The time of this round, read at most once per round (after the schedule's wait, at the
    /// first call): use it instead of reading the clock again.
    pub fn now(&self) -> Instant {
        self.core.clock.now()
    }

    /// The last clock reading, without reading the clock: never later than now, possibly a
    /// little earlier. Good for "already due" marks; use [`now`](Self::now) for timers.
    pub fn last_reading(&self) -> Instant {
        self.core.clock.last()
    }

    /// Completes the pending op of tasklet `id` with `out` and makes the tasklet runnable.
    /// When the tasklet waits in a select, the select's other ops are withdrawn from their
    /// plugins before it runs again.
    ///
    /// # Errors
    ///
    /// Gives `out` back, changing nothing, if `id` has ended or is not waiting for an op of
    /// type `O` (it was completed already, or timed out).
    pub fn complete<O: Op>(&mut self, id: TaskletId, out: O::Output) -> Result<(), O::Output> {
        let core = &mut *self.core;
        let Some(t) = core.tasklets.get_mut(id.slot()).filter(|t| t.id == id) else {
            return Err(out);
        };
        let State::Suspended { wait, .. } = &t.state else {
            return Err(out);
        };
        match wait {
            Wait::Op { slot, .. } => slot.answer::<O>(out)?,
            Wait::Select { slot } => {
                slot.answer_arm::<O>(out)?;
            }
            Wait::Park { .. } => return Err(out),
        }
        // `core.resume(id)` without looking the tasklet up again.
        Resume {
            op_deadlines: &mut core.op_deadlines,
            withdrawals: &mut core.withdrawals,
            run_queue: &mut core.run_queue,
        }
        .tasklet(t);
        Ok(())
    }

    /// Spawns a tasklet; it runs on a later step of this tick.
    ///
    /// # Errors
    ///
    /// [`Error::StackAlloc`] when no stack can be mapped.
    pub fn spawn<F>(&mut self, options: SpawnOptions, f: F) -> Result<TaskletId, Error>
    where
        F: FnOnce(&Handle) + 'static,
    {
        self.core.spawn(options, f)
    }

    /// Spawns a tasklet that runs `f(arg, handle)`, and gives `arg` back when no stack can
    /// be mapped, so that a plugin can keep the work and try again. Allocates nothing:
    /// `arg` goes onto the tasklet's stack.
    ///
    /// # Errors
    ///
    /// [`Error::StackAlloc`], with `arg`, when no stack can be mapped.
    pub fn spawn_fn<A: 'static>(
        &mut self,
        options: SpawnOptions,
        arg: A,
        f: fn(A, &Handle),
    ) -> Result<TaskletId, (Error, A)> {
        self.core.spawn_fn(options, arg, f)
    }

    /// Kills tasklet `id` at its yield point, once this plugin call returns. Returns whether
    /// `id` was alive.
    pub fn kill(&mut self, id: TaskletId) -> bool {
        let alive = self.core.get(id).is_some();
        if alive {
            self.core.kills.push(id);
        }
        alive
    }

    /// Asks to hear, in [`Plugin::exited`](crate::Plugin::exited), how tasklet `id` ends.
    /// Returns whether `id` is alive (a dead tasklet is never reported).
    pub fn watch_exit(&mut self, id: TaskletId) -> bool {
        let bit = 1u64 << self.plugin;
        match self.core.get_mut(id) {
            Some(t) => {
                t.watchers |= bit;
                true
            }
            None => false,
        }
    }

    /// The registry through which this plugin watches its file descriptors; their events
    /// come back in [`Plugin::poll`](crate::Plugin::poll).
    pub fn registry(&self) -> Registry {
        self.core.reactor.registry(self.plugin)
    }

    /// The schedule's [`Remote`], for threads that feed this plugin.
    pub fn remote(&self) -> Remote {
        self.core.wakes.remote.clone()
    }

    /// Whether tasklet `id` is alive.
    pub fn is_alive(&self, id: TaskletId) -> bool {
        self.core.get(id).is_some()
    }

    /// The name of tasklet `id`, if it is alive.
    pub fn name(&self, id: TaskletId) -> Option<&str> {
        self.core.get(id).map(|t| &*t.name)
    }
}
