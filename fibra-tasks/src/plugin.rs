//! `TasksPlugin`: serves spawn, join, on_finish, kill, sleep and yield_now.

use std::io;
use std::rc::Rc;
use std::task::Poll;
use std::time::Instant;

use fibra_rt::{
    Context, DeadlineQueue, Events, Exit, IdMap, Plugin, Router, Serves, SpawnOptions, TaskletId,
};

use crate::join::ExitSink;
use crate::ops::{BoxedOnFinish, Join, Kill, OnFinish, Sleep, Spawn, YieldNow};

/// Who wants to hear that a tasklet ended.
#[derive(Default)]
struct Watch {
    sink: Option<Rc<dyn ExitSink>>,
    joiners: Vec<TaskletId>,
    on_finish: Vec<BoxedOnFinish>,
}

/// The tasks plugin. Add it to a schedule to use [`TasksExt`](crate::TasksExt) and channels'
/// blocking calls' companions (sleep, spawn, join, kill...).
///
/// ```
/// use fibra_rt::Schedule;
/// use fibra_tasks::{TasksExt, TasksPlugin};
///
/// let mut schedule = Schedule::new();
/// schedule.add_plugin(TasksPlugin::new())?;
/// schedule.spawn(|h| {
///     let child = h.spawn(|_| 6 * 7).unwrap();
///     assert_eq!(h.join(child).unwrap(), 42);
/// })?;
/// schedule.run()?;
/// # Ok::<(), fibra_rt::Error>(())
/// ```
#[derive(Default)]
pub struct TasksPlugin {
    sleepers: DeadlineQueue,
    yielded: Vec<TaskletId>,
    yielded_spare: Vec<TaskletId>,
    /// When the first of `yielded` yielded: already due, so `run()` does not sleep.
    yielded_at: Option<Instant>,
    watches: IdMap<Watch>,
    /// Joiner → the tasklet it joins, so a killed joiner can be withdrawn.
    joining: IdMap<TaskletId>,
}

impl std::fmt::Debug for TasksPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TasksPlugin")
            .field("sleepers", &self.sleepers.len())
            .field("yielded", &self.yielded.len())
            .field("watched", &self.watches.len())
            .field("joining", &self.joining.len())
            .finish()
    }
}

impl TasksPlugin {
    /// A new plugin.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many registrations the plugin holds for tasklets: sleeping, yielded, joining, and
    /// tasklets whose end someone watches. Zero when nothing waits on this plugin.
    pub fn registrations(&self) -> usize {
        self.sleepers.len() + self.yielded.len() + self.watches.len() + self.joining.len()
    }

    fn watch(&mut self, target: TaskletId, cx: &mut Context<'_>) -> Option<&mut Watch> {
        if !cx.watch_exit(target) {
            return None;
        }
        if !self.watches.contains(target) {
            self.watches.insert(target, Watch::default());
        }
        self.watches.get_mut(target)
    }
}

impl Plugin for TasksPlugin {
    fn register(router: &mut Router<Self>) {
        router
            .op::<Spawn>()
            .op::<Join>()
            .op::<OnFinish>()
            .op::<Kill>()
            .op::<Sleep>()
            .op::<YieldNow>();
    }

    fn poll(&mut self, cx: &mut Context<'_>, _: Events<'_>) -> io::Result<()> {
        if !self.sleepers.is_empty() {
            let now = cx.now();
            while let Some(id) = self.sleepers.pop_expired(now) {
                let _ = cx.complete::<Sleep>(id, ());
            }
        }
        if !self.yielded.is_empty() {
            self.yielded_at = None;
            std::mem::swap(&mut self.yielded, &mut self.yielded_spare);
            for id in self.yielded_spare.drain(..) {
                let _ = cx.complete::<YieldNow>(id, ());
            }
        }
        Ok(())
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.yielded_at.or_else(|| self.sleepers.next_deadline())
    }

    fn cancel(&mut self, id: TaskletId) {
        self.sleepers.remove(id);
        self.yielded.retain(|&y| y != id);
        if self.yielded.is_empty() {
            self.yielded_at = None;
        }
        if let Some(target) = self.joining.remove(id) {
            if let Some(watch) = self.watches.get_mut(target) {
                watch.joiners.retain(|&j| j != id);
            }
        }
    }

    fn exited(&mut self, id: TaskletId, exit: &Exit, cx: &mut Context<'_>) {
        let Some(watch) = self.watches.remove(id) else {
            return;
        };
        if let Some(sink) = watch.sink {
            sink.set_exit(exit);
        }
        for joiner in watch.joiners {
            self.joining.remove(joiner);
            let _ = cx.complete::<Join>(joiner, Some(exit.clone()));
        }
        for f in watch.on_finish {
            let exit = exit.clone();
            let options = SpawnOptions::new().name("on_finish");
            if let Err(e) = cx.spawn(options, move |h| f(h, &exit)) {
                log::error!(target: "fibra_tasks", "on_finish for tasklet {id} could not run: {e}");
            }
        }
    }
}

impl Serves<Spawn> for TasksPlugin {
    fn submit(
        &mut self,
        op: Spawn,
        _: TaskletId,
        cx: &mut Context<'_>,
    ) -> Poll<Result<TaskletId, fibra_rt::Error>> {
        let id = match cx.spawn(op.options, op.f) {
            Ok(id) => id,
            Err(e) => return Poll::Ready(Err(e)),
        };
        if let Some(sink) = op.sink {
            if let Some(watch) = self.watch(id, cx) {
                watch.sink = Some(sink);
            }
        }
        Poll::Ready(Ok(id))
    }
}

impl Serves<Join> for TasksPlugin {
    fn submit(&mut self, op: Join, from: TaskletId, cx: &mut Context<'_>) -> Poll<Option<Exit>> {
        if op.0 == from {
            return Poll::Ready(None);
        }
        match self.watch(op.0, cx) {
            Some(watch) => {
                watch.joiners.push(from);
                self.joining.insert(from, op.0);
                Poll::Pending
            }
            None => Poll::Ready(None),
        }
    }
}

impl Serves<OnFinish> for TasksPlugin {
    fn submit(&mut self, op: OnFinish, _: TaskletId, cx: &mut Context<'_>) -> Poll<bool> {
        match self.watch(op.target, cx) {
            Some(watch) => {
                watch.on_finish.push(op.f);
                Poll::Ready(true)
            }
            None => Poll::Ready(false),
        }
    }
}

impl Serves<Kill> for TasksPlugin {
    fn submit(&mut self, op: Kill, _: TaskletId, cx: &mut Context<'_>) -> Poll<bool> {
        Poll::Ready(cx.kill(op.0))
    }
}

impl Serves<Sleep> for TasksPlugin {
    fn submit(&mut self, op: Sleep, from: TaskletId, _: &mut Context<'_>) -> Poll<()> {
        if op.0 <= fibra_rt::time::now() {
            return Poll::Ready(());
        }
        self.sleepers.insert(from, op.0);
        Poll::Pending
    }
}

impl Serves<YieldNow> for TasksPlugin {
    fn submit(&mut self, _: YieldNow, from: TaskletId, cx: &mut Context<'_>) -> Poll<()> {
        self.yielded_at.get_or_insert(cx.last_reading());
        self.yielded.push(from);
        Poll::Pending
    }
}
