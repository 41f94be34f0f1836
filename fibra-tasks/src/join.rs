//! `JoinHandle`: the result of a spawned tasklet.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;

use fibra_rt::{Exit, TaskletId};

use crate::TaskError;

/// Where the tasks plugin reports how a joinable tasklet ended.
pub(crate) trait ExitSink {
    fn set_exit(&self, exit: &Exit);
}

pub(crate) struct JoinCell<T> {
    pub(crate) value: Cell<Option<T>>,
    pub(crate) exit: RefCell<Option<Exit>>,
}

impl<T> ExitSink for JoinCell<T> {
    fn set_exit(&self, exit: &Exit) {
        *self.exit.borrow_mut() = Some(exit.clone());
    }
}

/// The result of a tasklet spawned with [`TasksExt::spawn`](crate::TasksExt::spawn).
///
/// Join it with [`TasksExt::join`](crate::TasksExt::join) to get the tasklet's return value,
/// or learn that it panicked or was killed. Dropping the handle detaches the tasklet: it keeps
/// running and its value is dropped when it ends.
#[must_use = "dropping a JoinHandle detaches its tasklet: join it to get its result, or spawn with `spawn_detached` for fire-and-forget"]
pub struct JoinHandle<T> {
    pub(crate) id: TaskletId,
    pub(crate) cell: Rc<JoinCell<T>>,
}

impl<T> JoinHandle<T> {
    /// The id of the tasklet.
    pub fn id(&self) -> TaskletId {
        self.id
    }

    /// Whether the tasklet has ended.
    pub fn is_finished(&self) -> bool {
        self.cell.exit.borrow().is_some()
    }

    /// How the tasklet ended, once it has.
    pub fn exit(&self) -> Option<Exit> {
        self.cell.exit.borrow().clone()
    }

    /// The tasklet's result, if it has ended (does not wait).
    pub(crate) fn take_result(&self) -> Option<Result<T, TaskError>> {
        let exit = self.cell.exit.borrow().clone()?;
        Some(match exit {
            Exit::Finished => match self.cell.value.take() {
                Some(v) => Ok(v),
                None => Err(TaskError::NotFound(self.id)),
            },
            Exit::Panicked(msg) => Err(TaskError::Panicked(msg)),
            _ => Err(TaskError::Killed),
        })
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("id", &self.id)
            .field("exit", &*self.cell.exit.borrow())
            .finish()
    }
}
