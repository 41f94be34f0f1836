//! Helpers shared by the test files.
#![allow(dead_code)] // each test file uses some of them

use std::cell::Cell;
use std::rc::Rc;

use fibra::rt::Schedule;
use fibra::tasks::TasksPlugin;

/// A schedule with the tasks plugin.
pub(crate) fn schedule() -> Schedule {
    let mut s = Schedule::new();
    s.add_plugin(TasksPlugin::new()).unwrap();
    s
}

/// Counts its drops in a shared cell: proves destructors ran, and ran once.
pub(crate) struct DropCounter(pub(crate) Rc<Cell<u32>>);

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}
