//! `DeadlineQueue`: tasklets ordered by the instant they are due.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::{IdMap, TaskletId};

/// Tasklets waiting for an instant, in deadline order; ties leave in insertion order.
///
/// Each tasklet is in the queue at most once (a tasklet waits for one thing at a time).
/// [`pop_expired`](Self::pop_expired) never returns a tasklet before its deadline, so a timer
/// built on it never fires early. Used by the schedule for op deadlines and by plugins for
/// their own timers (sleeps, read deadlines).
#[derive(Debug, Default)]
pub struct DeadlineQueue {
    order: BTreeMap<(Instant, u64), TaskletId>,
    keys: IdMap<(Instant, u64)>,
    seq: u64,
}

impl DeadlineQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts `id` in the queue, due at `deadline`; replaces an earlier entry for `id`.
    pub fn insert(&mut self, id: TaskletId, deadline: Instant) {
        self.seq += 1;
        let key = (deadline, self.seq);
        if let Some(old) = self.keys.insert(id, key) {
            self.order.remove(&old);
        }
        self.order.insert(key, id);
    }

    /// Takes `id` out of the queue; returns whether it was there.
    pub fn remove(&mut self, id: TaskletId) -> bool {
        match self.keys.remove(id) {
            Some(key) => self.order.remove(&key).is_some(),
            None => false,
        }
    }

    /// The earliest deadline in the queue.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.order.first_key_value().map(|((at, _), _)| *at)
    }

    /// Takes out and returns the earliest tasklet whose deadline is at or before `now`.
    pub fn pop_expired(&mut self, now: Instant) -> Option<TaskletId> {
        let entry = self.order.first_entry()?;
        if entry.key().0 > now {
            return None;
        }
        let id = entry.remove();
        self.keys.remove(id);
        Some(id)
    }

    /// Whether `id` is in the queue.
    pub fn contains(&self, id: TaskletId) -> bool {
        self.keys.contains(id)
    }

    /// How many tasklets are in the queue.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether the queue is empty.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}
