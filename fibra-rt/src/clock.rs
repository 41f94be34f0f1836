//! `Clock`: the time of a poll round, read lazily.

use std::cell::Cell;
use std::time::Instant;

/// The time as read once per poll round, and only if somebody asks: with no timer pending, a
/// round reads no clock.
#[derive(Debug)]
pub(crate) struct Clock {
    now: Cell<Instant>,
    stale: Cell<bool>,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Clock {
            now: Cell::new(crate::time::now()),
            stale: Cell::new(false),
        }
    }

    /// The time of this round (read now if not yet read this round).
    pub(crate) fn now(&self) -> Instant {
        if self.stale.replace(false) {
            self.now.set(crate::time::now());
        }
        self.now.get()
    }

    /// The last reading, however old.
    pub(crate) fn last(&self) -> Instant {
        self.now.get()
    }

    /// Starts a new round: the next `now()` reads the clock.
    pub(crate) fn expire(&self) {
        self.stale.set(true);
    }
}
