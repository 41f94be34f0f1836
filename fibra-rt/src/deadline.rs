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
        // A stale entry of an older tasklet in the same slot goes too: it must not pop later.
        if let Some(old) = self.keys.insert_displacing(id, key) {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn id(key: u32, seq: u64) -> TaskletId {
        TaskletId { key, seq }
    }

    #[test]
    fn ties_leave_in_insertion_order() {
        let mut q = DeadlineQueue::new();
        let at = Instant::now();
        for key in [5, 1, 9, 3] {
            q.insert(id(key, 1), at);
        }
        let order: Vec<u32> = std::iter::from_fn(|| q.pop_expired(at).map(|i| i.key)).collect();
        assert_eq!(order, [5, 1, 9, 3]);
    }

    #[test]
    fn earlier_deadlines_leave_first_and_nothing_leaves_early() {
        let mut q = DeadlineQueue::new();
        let t0 = Instant::now();
        q.insert(id(0, 1), t0 + Duration::from_millis(20));
        q.insert(id(1, 1), t0 + Duration::from_millis(10));
        assert_eq!(q.next_deadline(), Some(t0 + Duration::from_millis(10)));
        assert_eq!(q.pop_expired(t0 + Duration::from_millis(9)), None);
        assert_eq!(
            q.pop_expired(t0 + Duration::from_millis(10)),
            Some(id(1, 1))
        );
        assert_eq!(q.pop_expired(t0 + Duration::from_millis(10)), None);
        assert_eq!(
            q.pop_expired(t0 + Duration::from_millis(30)),
            Some(id(0, 1))
        );
        assert!(q.is_empty());
    }

    #[test]
    fn reinserting_moves_the_deadline_and_removing_forgets_it() {
        let mut q = DeadlineQueue::new();
        let t0 = Instant::now();
        q.insert(id(0, 1), t0 + Duration::from_secs(10));
        q.insert(id(0, 1), t0);
        assert_eq!(q.len(), 1);
        assert_eq!(q.next_deadline(), Some(t0));
        assert!(q.remove(id(0, 1)));
        assert!(!q.remove(id(0, 1)));
        assert_eq!(q.next_deadline(), None);
    }

    #[test]
    fn a_stale_id_neither_removes_nor_outlives_its_successor() {
        let mut q = DeadlineQueue::new();
        let t0 = Instant::now();
        q.insert(id(4, 1), t0);
        // Tasklet 4.1 ended without removing its deadline; 4.2 reuses the slot.
        assert!(!q.remove(id(4, 2)), "a stale id removes nothing");
        q.insert(id(4, 2), t0 + Duration::from_secs(1));
        assert_eq!(q.len(), 1, "the stale entry is gone");
        assert!(!q.contains(id(4, 1)));
        assert_eq!(q.pop_expired(t0), None, "the stale deadline does not pop");
        assert_eq!(q.pop_expired(t0 + Duration::from_secs(1)), Some(id(4, 2)));
    }
}
