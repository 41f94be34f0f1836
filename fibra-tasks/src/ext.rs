//! `TasksExt`: the tasks plugin's ops as methods on [`Handle`].

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use fibra_rt::{Exit, Handle, SpawnOptions, TaskletId};

use crate::join::{JoinCell, JoinHandle};
use crate::ops::{Join, Kill, OnFinish, Sleep, Spawn, YieldNow};
use crate::TaskError;

/// Spawning, joining, killing and sleeping, as calls on a tasklet's [`Handle`]. (A timeout on
/// any op is [`Handle::yield_op_timeout`].)
///
/// Every method that can suspend takes the handle, so yield points stay visible. They need the
/// [`TasksPlugin`](crate::TasksPlugin) in the schedule; without it they panic with a message
/// saying so (ending the calling tasklet only).
pub trait TasksExt {
    /// Spawns `f` as a new tasklet and returns a handle to its result.
    ///
    /// `f` may return anything, and [`join`](Self::join) gives it back; a tasklet that can
    /// fail returns a `Result`, and its joiner gets the error:
    ///
    /// ```
    /// use fibra_rt::Schedule;
    /// use fibra_tasks::{TasksExt, TasksPlugin};
    ///
    /// let mut schedule = Schedule::new();
    /// schedule.add_plugin(TasksPlugin::new())?;
    /// let port = schedule.block_on(|h| -> Result<u16, Box<dyn std::error::Error>> {
    ///     let child = h.spawn(|_h| "8080".parse::<u16>())?;
    ///     let port = h.join(child)??; // the join's TaskError, then the child's own error
    ///     Ok(port)
    /// })?;
    /// assert_eq!(port.unwrap(), 8080);
    /// # Ok::<(), fibra_rt::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`TaskError::Spawn`] when no stack can be mapped.
    fn spawn<T, F>(&self, f: F) -> Result<JoinHandle<T>, TaskError>
    where
        T: 'static,
        F: FnOnce(&Handle) -> T + 'static;

    /// Like [`spawn`](Self::spawn), with a name or stack size.
    ///
    /// # Errors
    ///
    /// As [`spawn`](Self::spawn).
    fn spawn_with<T, F>(&self, options: SpawnOptions, f: F) -> Result<JoinHandle<T>, TaskError>
    where
        T: 'static,
        F: FnOnce(&Handle) -> T + 'static;

    /// Spawns `f`, fire-and-forget: no result handle (cheaper: nothing is kept for a
    /// joiner). Its id is returned, for `kill` or `join_id`.
    ///
    /// # Errors
    ///
    /// As [`spawn`](Self::spawn).
    fn spawn_detached<F>(&self, f: F) -> Result<TaskletId, TaskError>
    where
        F: FnOnce(&Handle) + 'static;

    /// Like [`spawn_detached`](Self::spawn_detached), with options (a name, a stack size).
    ///
    /// # Errors
    ///
    /// As [`spawn`](Self::spawn).
    fn spawn_detached_with<F>(&self, options: SpawnOptions, f: F) -> Result<TaskletId, TaskError>
    where
        F: FnOnce(&Handle) + 'static;

    /// Runs `f` on a thread of the [global blocking pool](crate::BlockingPool::global) and
    /// parks until it returns its value: for blocking calls (a file, a name lookup, a
    /// library without a non-blocking API) and CPU-heavy work, which would otherwise stop
    /// every tasklet of the schedule. Does not need the tasks plugin.
    ///
    /// ```
    /// use fibra_rt::Schedule;
    /// use fibra_tasks::TasksExt;
    ///
    /// let mut schedule = Schedule::new();
    /// schedule.spawn(|h| {
    ///     let listing = h.unblock(|| std::fs::read_dir(".").map(|d| d.count())).unwrap();
    ///     assert!(listing.unwrap() > 0);
    /// })?;
    /// schedule.run()?;
    /// # Ok::<(), fibra_rt::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`BlockingPool::run`](crate::BlockingPool::run): [`TaskError::UnblockPanicked`]
    /// when `f` panicked.
    fn unblock<T, F>(&self, f: F) -> Result<T, TaskError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static;

    /// Waits until the tasklet ends and returns its value.
    ///
    /// # Errors
    ///
    /// [`TaskError::Panicked`] or [`TaskError::Killed`] when it did not finish normally.
    fn join<T>(&self, handle: JoinHandle<T>) -> Result<T, TaskError>;

    /// Waits until tasklet `id` ends and says how.
    ///
    /// # Errors
    ///
    /// [`TaskError::NotFound`] if `id` is not alive, [`TaskError::JoinSelf`] for one's own id.
    fn join_id(&self, id: TaskletId) -> Result<Exit, TaskError>;

    /// Runs `f` as a new tasklet when `target` ends, however it ends (finished, panicked,
    /// killed); `f` receives how.
    ///
    /// # Errors
    ///
    /// [`TaskError::NotFound`] if `target` is not alive (`f` is dropped unrun).
    fn on_finish<F>(&self, target: TaskletId, f: F) -> Result<(), TaskError>
    where
        F: FnOnce(&Handle, &Exit) + 'static;

    /// Kills `target` at its yield point (its destructors run). Returns whether it was alive.
    /// A tasklet may kill itself; the call then does not return.
    fn kill(&self, target: TaskletId) -> bool;

    /// Suspends for at least `duration`.
    fn sleep(&self, duration: Duration);

    /// Suspends until `deadline` (never wakes before it).
    fn sleep_until(&self, deadline: Instant);

    /// Lets every other runnable tasklet run; resumes on the next tick.
    fn yield_now(&self);
}

impl TasksExt for Handle {
    fn unblock<T, F>(&self, f: F) -> Result<T, TaskError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        crate::BlockingPool::global().run(self, f)
    }

    fn spawn<T, F>(&self, f: F) -> Result<JoinHandle<T>, TaskError>
    where
        T: 'static,
        F: FnOnce(&Handle) -> T + 'static,
    {
        self.spawn_with(SpawnOptions::default(), f)
    }

    fn spawn_with<T, F>(&self, options: SpawnOptions, f: F) -> Result<JoinHandle<T>, TaskError>
    where
        T: 'static,
        F: FnOnce(&Handle) -> T + 'static,
    {
        let cell = Rc::new(JoinCell {
            value: Cell::new(None),
            exit: RefCell::new(None),
        });
        let result = Rc::clone(&cell);
        let op = Spawn {
            f: Box::new(move |h: &Handle| result.value.set(Some(f(h)))),
            options,
            sink: Some(cell.clone()),
        };
        let id = self.yield_op(op)?;
        Ok(JoinHandle { id, cell })
    }

    fn spawn_detached<F>(&self, f: F) -> Result<TaskletId, TaskError>
    where
        F: FnOnce(&Handle) + 'static,
    {
        self.spawn_detached_with(SpawnOptions::new(), f)
    }

    fn spawn_detached_with<F>(&self, options: SpawnOptions, f: F) -> Result<TaskletId, TaskError>
    where
        F: FnOnce(&Handle) + 'static,
    {
        Ok(self.yield_op(Spawn::new(options, f))?)
    }

    fn join<T>(&self, handle: JoinHandle<T>) -> Result<T, TaskError> {
        if let Some(result) = handle.take_result() {
            return result;
        }
        if handle.id == self.id() {
            return Err(TaskError::JoinSelf);
        }
        self.yield_op(Join(handle.id));
        handle
            .take_result()
            .unwrap_or(Err(TaskError::NotFound(handle.id)))
    }

    fn join_id(&self, id: TaskletId) -> Result<Exit, TaskError> {
        if id == self.id() {
            return Err(TaskError::JoinSelf);
        }
        self.yield_op(Join(id)).ok_or(TaskError::NotFound(id))
    }

    fn on_finish<F>(&self, target: TaskletId, f: F) -> Result<(), TaskError>
    where
        F: FnOnce(&Handle, &Exit) + 'static,
    {
        if self.yield_op(OnFinish::new(target, f)) {
            Ok(())
        } else {
            Err(TaskError::NotFound(target))
        }
    }

    fn kill(&self, target: TaskletId) -> bool {
        self.yield_op(Kill(target))
    }

    fn sleep(&self, duration: Duration) {
        match fibra_rt::time::now().checked_add(duration) {
            Some(deadline) => self.sleep_until(deadline),
            // Further away than the clock can count: park for good.
            None => loop {
                self.park();
            },
        }
    }

    fn sleep_until(&self, deadline: Instant) {
        self.yield_op(Sleep(deadline));
    }

    fn yield_now(&self) {
        self.yield_op(YieldNow);
    }
}
