//! `TaskletId` and `IdMap`, a dense table keyed by tasklet ids.

use std::fmt;

/// Names one tasklet of one [`Schedule`](crate::Schedule) for as long as it lives.
///
/// An id is a slot in the schedule's tasklet table plus a sequence number, so an id kept after
/// its tasklet ended never names the tasklet that later reuses the slot: every lookup with a
/// stale id fails.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskletId {
    pub(crate) key: u32,
    /// 64 bits: at a billion spawns a second it would take 584 years to come round, so a
    /// stale id never names a later tasklet.
    pub(crate) seq: u64,
}

impl TaskletId {
    /// The slot in the tasklet table. Live tasklets have distinct slots; a slot is reused after
    /// its tasklet ends. Useful to index a plugin's own dense tables (see [`IdMap`]).
    pub fn slot(self) -> usize {
        self.key as usize
    }
}

impl fmt::Debug for TaskletId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}.{}", self.key, self.seq)
    }
}

impl fmt::Display for TaskletId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A map from [`TaskletId`] to `V` stored densely by slot: O(1) without hashing.
///
/// Plugins use it for per-tasklet bookkeeping (a timer entry, a waiting connection). A lookup
/// with a stale id (its tasklet ended and the slot was reused) finds nothing. Memory is
/// proportional to the highest slot ever used, which is bounded by the peak number of live
/// tasklets.
#[derive(Debug)]
pub struct IdMap<V> {
    slots: Vec<Option<(u64, V)>>,
    len: usize,
}

impl<V> Default for IdMap<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> IdMap<V> {
    /// An empty map.
    pub const fn new() -> Self {
        Self {
            slots: Vec::new(),
            len: 0,
        }
    }

    /// Inserts `value` for `id`, returning the value `id` had before, if any. A value left by a
    /// stale id in the same slot is dropped.
    pub fn insert(&mut self, id: TaskletId, value: V) -> Option<V> {
        let slot = id.slot();
        if slot >= self.slots.len() {
            self.slots.resize_with(slot + 1, || None);
        }
        match self.slots[slot].replace((id.seq, value)) {
            Some((seq, old)) if seq == id.seq => Some(old),
            Some(_) => None,
            None => {
                self.len += 1;
                None
            }
        }
    }

    /// Like [`insert`](Self::insert), but also returns a value of an older tasklet that had
    /// the same slot (a stale entry), which `insert` drops.
    pub(crate) fn insert_displacing(&mut self, id: TaskletId, value: V) -> Option<V> {
        let slot = id.slot();
        if slot >= self.slots.len() {
            self.slots.resize_with(slot + 1, || None);
        }
        match self.slots[slot].replace((id.seq, value)) {
            Some((_, old)) => Some(old),
            None => {
                self.len += 1;
                None
            }
        }
    }

    /// The value for `id`.
    pub fn get(&self, id: TaskletId) -> Option<&V> {
        match self.slots.get(id.slot()) {
            Some(Some((seq, v))) if *seq == id.seq => Some(v),
            _ => None,
        }
    }

    /// The value for `id`, mutably.
    pub fn get_mut(&mut self, id: TaskletId) -> Option<&mut V> {
        match self.slots.get_mut(id.slot()) {
            Some(Some((seq, v))) if *seq == id.seq => Some(v),
            _ => None,
        }
    }

    /// Whether `id` has a value.
    pub fn contains(&self, id: TaskletId) -> bool {
        self.get(id).is_some()
    }

    /// Removes and returns the value for `id`.
    pub fn remove(&mut self, id: TaskletId) -> Option<V> {
        let entry = self.slots.get_mut(id.slot())?;
        match entry {
            Some((seq, _)) if *seq == id.seq => {
                self.len -= 1;
                entry.take().map(|(_, v)| v)
            }
            _ => None,
        }
    }

    /// How many ids have a value.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no id has a value.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(key: u32, seq: u64) -> TaskletId {
        TaskletId { key, seq }
    }

    #[test]
    fn a_stale_id_finds_nothing_and_removes_nothing() {
        let mut map = IdMap::new();
        assert_eq!(map.insert(id(3, 1), "old"), None);
        let reused = id(3, 2); // the same slot, a later tasklet
        assert_eq!(map.get(reused), None);
        assert_eq!(map.get_mut(reused), None);
        assert!(!map.contains(reused));
        assert_eq!(map.remove(reused), None);
        assert_eq!(map.len(), 1);
        assert_eq!(map.get(id(3, 1)), Some(&"old"));
    }

    #[test]
    fn inserting_over_a_stale_entry_replaces_it_without_counting_twice() {
        let mut map = IdMap::new();
        map.insert(id(0, 1), 10);
        assert_eq!(
            map.insert(id(0, 2), 20),
            None,
            "a stale value is not handed back"
        );
        assert_eq!(map.len(), 1);
        assert_eq!(map.get(id(0, 1)), None);
        assert_eq!(map.get(id(0, 2)), Some(&20));
        assert_eq!(map.insert_displacing(id(0, 3), 30), Some(20));
        assert_eq!(map.len(), 1);
        assert_eq!(
            map.insert(id(0, 3), 31),
            Some(30),
            "the same id hands back its value"
        );
        assert_eq!(map.remove(id(0, 3)), Some(31));
        assert!(map.is_empty());
        assert_eq!(map.remove(id(0, 3)), None);
    }

    #[test]
    fn sequences_2_pow_32_apart_are_different_tasklets() {
        let (old, new) = (id(7, 1), id(7, 1 + (1 << 32)));
        assert_ne!(old, new);
        let mut map = IdMap::new();
        map.insert(new, "new");
        assert_eq!(
            map.get(old),
            None,
            "a stale id finds the new tasklet's value"
        );
        assert_eq!(map.remove(old), None);
        assert_eq!(map.get(new), Some(&"new"));
    }

    #[test]
    fn far_slots_grow_the_table_and_near_ones_stay_empty() {
        let mut map = IdMap::new();
        map.insert(id(1000, 1), ());
        assert_eq!(map.len(), 1);
        assert!(!map.contains(id(999, 1)));
        assert!(!map.contains(id(5000, 1)), "past the end is just absent");
    }
}
