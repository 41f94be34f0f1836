//! A tasklet: a coroutine with its bookkeeping, how it ended, and what introspection shows.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::ptr::NonNull;

use corosensei::stack::DefaultStack;
use corosensei::Coroutine;

use crate::op::Header;
use crate::overflow;
use crate::wait::Wait;
use crate::TaskletId;

/// A tasklet's coroutine: resumed with nothing, yields a pointer to an op slot, returns how
/// its function ended (returned, returned an error, panicked).
pub(crate) type TaskletCoroutine = Coroutine<(), NonNull<Header>, Exit, DefaultStack>;

/// Where a tasklet is in its life. A tasklet that is not running holds its coroutine here;
/// a suspended one holds, in the same value, the pointer to the op slot on that coroutine's
/// stack (see [`crate::wait`]), so the two are only ever taken together.
pub(crate) enum State {
    /// In the run queue (or about to be): never ran, or its op was answered.
    Runnable(TaskletCoroutine),
    /// Being resumed right now: its coroutine is on `run_tasklet`'s frame. Also the state of
    /// a tasklet whose plugin panicked, until the schedule reaps it.
    Running,
    /// Suspended until `wait` is answered.
    Suspended { co: TaskletCoroutine, wait: Wait },
}

pub(crate) struct Tasklet {
    pub(crate) state: State,
    /// Killed while running; `run_tasklet` unwinds it.
    pub(crate) kill_requested: bool,
    pub(crate) id: TaskletId,
    /// Bit `i` set: plugin `i` wants to hear how this tasklet ends.
    pub(crate) watchers: u64,
    /// A wake arrived while the tasklet was not parked.
    pub(crate) woken: bool,
    pub(crate) stack_size: usize,
    pub(crate) name: Cow<'static, str>,
    pub(crate) guard: overflow::Guard,
}

impl Tasklet {
    /// Ends the wait of a suspended tasklet (after its answer was written): it becomes
    /// runnable, and the pointer into its stack is dropped.
    #[inline]
    pub(crate) fn end_wait(&mut self) {
        if let State::Suspended { .. } = self.state {
            if let State::Suspended { co, .. } = std::mem::replace(&mut self.state, State::Running)
            {
                self.set_state(State::Runnable(co));
            }
        }
    }

    /// Replaces the state, dropping the old one; the usual case, replacing `Running` (which
    /// holds nothing), costs no call to drop it (a hot path: every step ends here).
    #[inline]
    pub(crate) fn set_state(&mut self, new: State) {
        let old = std::mem::replace(&mut self.state, new);
        if matches!(old, State::Running) {
            std::mem::forget(old);
        }
    }

    /// How logs and crash reports name it: `#3.1 `name`` or, unnamed, `#3.1`.
    pub(crate) fn label(&self) -> Label<'_> {
        Label {
            id: self.id,
            name: &self.name,
        }
    }
}

/// A tasklet as logs name it: its id, then its name if it has one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Label<'a> {
    pub(crate) id: TaskletId,
    pub(crate) name: &'a str,
}

impl fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name.is_empty() {
            write!(f, "{}", self.id)
        } else {
            write!(f, "{} `{}`", self.id, self.name)
        }
    }
}

/// How a tasklet ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exit {
    /// Its function returned.
    Finished,
    /// It panicked; the panic's message (or a note that the payload was not a string).
    Panicked(String),
    /// It was killed at a yield point; its destructors ran.
    Killed,
}

impl Exit {
    pub(crate) fn from_panic(payload: &(dyn Any + Send)) -> Exit {
        Exit::Panicked(panic_message(payload))
    }

    /// Whether the function returned normally.
    pub fn is_finished(&self) -> bool {
        matches!(self, Exit::Finished)
    }

    /// Whether the tasklet panicked.
    pub fn is_panicked(&self) -> bool {
        matches!(self, Exit::Panicked(_))
    }

    /// Whether the tasklet was killed.
    pub fn is_killed(&self) -> bool {
        matches!(self, Exit::Killed)
    }
}

/// A panic payload's message (a `&str` or `String` payload), or a note that it was not a
/// string: what fibra reports for a tasklet's panic, and what a crate of the family reports
/// for a panic it caught.
///
/// ```
/// let payload = std::panic::catch_unwind(|| panic!("out of {}", "tea")).unwrap_err();
/// assert_eq!(fibra_rt::panic_message(&*payload), "out of tea");
/// ```
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Finished => f.write_str("finished"),
            Exit::Panicked(msg) => write!(f, "panicked: {msg}"),
            Exit::Killed => f.write_str("killed"),
        }
    }
}

/// Options for one spawn: a name (shown in logs, introspection and crash messages) and a
/// stack size.
///
/// ```
/// use fibra_rt::SpawnOptions;
/// let options = SpawnOptions::new().name("listener").stack_size(256 * 1024);
/// # let _ = options;
/// ```
#[derive(Clone, Debug, Default)]
pub struct SpawnOptions {
    pub(crate) name: Option<Cow<'static, str>>,
    pub(crate) stack_size: Option<usize>,
}

impl SpawnOptions {
    /// Default options: no name, the schedule's default stack size.
    pub fn new() -> Self {
        Self::default()
    }

    /// Names the tasklet.
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Gives the tasklet a stack of `bytes` (at least 4 KiB; rounded up to whole pages).
    /// Stacks of the schedule's default size come from its pool; others are mapped per spawn.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }
}

/// What a tasklet is doing, as [`Schedule::tasklets`](crate::Schedule::tasklets) reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskletState {
    /// Ready to run on the next step.
    Runnable,
    /// Running now (only seen from inside a plugin call).
    Running,
    /// Waiting for a plugin to complete an op.
    Waiting,
    /// Parked until woken.
    Parked,
}

/// One live tasklet, for introspection.
#[derive(Clone, Copy, Debug)]
pub struct TaskletInfo<'a> {
    /// Its id.
    pub id: TaskletId,
    /// Its name, or `""`.
    pub name: &'a str,
    /// What it is doing.
    pub state: TaskletState,
    /// The type name of the op it waits on, when waiting or parked.
    pub waiting_on: Option<&'static str>,
    /// Its stack size in bytes.
    pub stack_size: usize,
}

impl Tasklet {
    /// `op_name` names the op of a route: what a waiting tasklet waits on.
    pub(crate) fn info(&self, op_name: impl Fn(usize) -> &'static str) -> TaskletInfo<'_> {
        let (state, waiting_on) = match &self.state {
            State::Runnable(_) => (TaskletState::Runnable, None),
            State::Running => (TaskletState::Running, None),
            State::Suspended { wait, .. } => match wait {
                Wait::Op { route, .. } => (TaskletState::Waiting, Some(op_name(*route))),
                Wait::Park { .. } => (TaskletState::Parked, Some("park")),
                Wait::Select { .. } => (TaskletState::Waiting, Some("select")),
            },
        };
        TaskletInfo {
            id: self.id,
            name: &self.name,
            state,
            waiting_on,
            stack_size: self.stack_size,
        }
    }
}
