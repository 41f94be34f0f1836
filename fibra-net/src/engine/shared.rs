//! What the plugin and the handles (`Conn`, `Listener`, `Group`) share: the table, the work
//! a handle leaves for the next poll when the table is busy, and the words they speak (keys,
//! how a send encodes and what it does when the output is full, what a receive returns).
//!
//! The handles, the ops and `NetExt` import this module and never the table; the table
//! points back at its `Shared` only to make handles.

use std::cell::RefCell;

use crate::engine::table::Table;

/// A table entry's address: its slab slot and the generation that tells reuses apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Key {
    pub(crate) slot: usize,
    pub(crate) gen: u64,
}

/// The state shared by the plugin and the handles.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) table: RefCell<Table>,
    /// Handles dropped while the table was borrowed; released at the next poll or flush.
    pub(crate) deferred: RefCell<Vec<Key>>,
}

impl Shared {
    /// The last handle to `key` was dropped.
    pub(crate) fn release(&self, key: Key) {
        match self.table.try_borrow_mut() {
            Ok(mut table) => table.release(key),
            Err(_) => self.deferred.borrow_mut().push(key),
        }
    }
}

/// How a send's bytes go into the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// As they are.
    AsIs,
    /// Framed by the connection's codec (a line gets its `\n`).
    Frame,
}

/// What a send does when the output is at its send limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WhenFull {
    /// Fail with [`NetError::Full`] (`try_send`).
    Fail,
    /// Say [`SendState::MustWait`]: the caller parks on `Drain` and tries again.
    Wait,
}

/// Whether a send queued.
#[derive(Debug)]
pub(crate) enum SendState {
    Queued,
    /// The output is at its limit: wait for it to drain, then try again.
    MustWait,
}

/// What a receive returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReceiveMode {
    /// The next frame, by the connection's codec.
    Frame,
    /// Up to this many bytes as they arrived, past the codec (what `Read` does).
    Raw(usize),
}
