//! `Spawner`: where a server or client starts its tasklets, the host's schedule or a
//! tasklet's handle.

use std::borrow::Cow;

use fibra_rt::{Handle, Schedule, SpawnOptions, TaskletId, Unparker};
use fibra_tasks::TasksExt;

use crate::NetError;

/// Where to start tasklets: `&mut Schedule` from the host, or `&Handle` from a tasklet. Made
/// with `into()`, so `server.start(&mut schedule)` and `server.start(h)` both work.
#[derive(Debug)]
pub enum Spawner<'a> {
    /// The host's schedule.
    Host(&'a mut Schedule),
    /// A tasklet's handle (needs the tasks plugin).
    Tasklet(&'a Handle),
}

impl Spawner<'_> {
    /// Spawns `f` named `name`; returns an unparker for it (to wake or kill it).
    pub(crate) fn spawn<F>(&mut self, name: &'static str, f: F) -> Result<Unparker, NetError>
    where
        F: FnOnce(&Handle) + 'static,
    {
        let options = SpawnOptions::new().name(Cow::Borrowed(name));
        match self {
            Spawner::Host(schedule) => {
                let id: TaskletId = schedule.spawn_with(options, f)?;
                Ok(schedule.unparker(id))
            }
            Spawner::Tasklet(h) => {
                let id = h.spawn_detached_with(options, f)?;
                Ok(h.unparker_of(id))
            }
        }
    }
}

impl<'a> From<&'a mut Schedule> for Spawner<'a> {
    fn from(schedule: &'a mut Schedule) -> Self {
        Spawner::Host(schedule)
    }
}

impl<'a> From<&'a Handle> for Spawner<'a> {
    fn from(h: &'a Handle) -> Self {
        Spawner::Tasklet(h)
    }
}
