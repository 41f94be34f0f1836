//! The ops the tasks plugin serves. Most code uses them through [`TasksExt`](crate::TasksExt);
//! they are public so that other plugins and tests can yield them directly.

use std::fmt;
use std::rc::Rc;
use std::time::Instant;

use fibra_rt::{Exit, Handle, Op, SpawnOptions, TaskletId};

use crate::join::ExitSink;

pub(crate) type BoxedTasklet = Box<dyn FnOnce(&Handle)>;
pub(crate) type BoxedOnFinish = Box<dyn FnOnce(&Handle, &Exit)>;

/// Spawn a tasklet. Output: its id, or the runtime's error.
pub struct Spawn {
    pub(crate) f: BoxedTasklet,
    pub(crate) options: SpawnOptions,
    pub(crate) sink: Option<Rc<dyn ExitSink>>,
}

impl Spawn {
    /// Spawns `f` with `options`; nobody is told how it ends.
    pub fn new<F: FnOnce(&Handle) + 'static>(options: SpawnOptions, f: F) -> Self {
        Spawn {
            f: Box::new(f),
            options,
            sink: None,
        }
    }
}

impl fmt::Debug for Spawn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spawn")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Op for Spawn {
    type Output = Result<TaskletId, fibra_rt::Error>;
    const PLUGIN: Option<&'static str> = Some("fibra_tasks::TasksPlugin::new()");
}

/// Wait until a tasklet ends. Output: how it ended, or `None` if it was not alive.
#[derive(Debug, Clone, Copy)]
pub struct Join(pub TaskletId);

impl Op for Join {
    type Output = Option<Exit>;
    const PLUGIN: Option<&'static str> = Some("fibra_tasks::TasksPlugin::new()");
}

/// Run a closure, as a new tasklet, when another tasklet ends (however it ends). Output:
/// whether the target was alive (if not, the closure is dropped unrun).
pub struct OnFinish {
    pub(crate) target: TaskletId,
    pub(crate) f: BoxedOnFinish,
}

impl OnFinish {
    /// When `target` ends, spawn `f` with how it ended.
    pub fn new<F: FnOnce(&Handle, &Exit) + 'static>(target: TaskletId, f: F) -> Self {
        OnFinish {
            target,
            f: Box::new(f),
        }
    }
}

impl fmt::Debug for OnFinish {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnFinish")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Op for OnFinish {
    type Output = bool;
    const PLUGIN: Option<&'static str> = Some("fibra_tasks::TasksPlugin::new()");
}

/// Kill a tasklet at its yield point. Output: whether it was alive.
#[derive(Debug, Clone, Copy)]
pub struct Kill(pub TaskletId);

impl Op for Kill {
    type Output = bool;
    const PLUGIN: Option<&'static str> = Some("fibra_tasks::TasksPlugin::new()");
}

/// Sleep until an instant. Never wakes before it.
#[derive(Debug, Clone, Copy)]
pub struct Sleep(pub Instant);

impl Op for Sleep {
    type Output = ();
    const PLUGIN: Option<&'static str> = Some("fibra_tasks::TasksPlugin::new()");
}

/// Let every other runnable tasklet run; resume on the next tick.
#[derive(Debug, Clone, Copy)]
pub struct YieldNow;

impl Op for YieldNow {
    type Output = ();
    const PLUGIN: Option<&'static str> = Some("fibra_tasks::TasksPlugin::new()");
}
