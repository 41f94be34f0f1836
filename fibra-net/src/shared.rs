//! What the plugin and the handles (`Conn`, `Listener`, `Group`) share: the table, and the
//! work a handle leaves for the next poll when the table is busy.
//!
//! This module sits below everything else in the crate, so the handles and the table never
//! import each other.

use std::cell::RefCell;

use crate::table::Table;

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
    /// Connections [`Conn::abort`](crate::Conn::abort)ed without a handle; reset at the next
    /// poll or flush, where waiters can be told.
    pub(crate) aborts: RefCell<Vec<Key>>,
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
