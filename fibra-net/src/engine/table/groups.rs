//! Groups on the table side: members, the round's batch, and sealing it into one shared
//! segment queued to every member.
//!
//! A group's batch is sealed (stored once as a [`Segment`] and queued to each member's
//! output) at the end of every round, and earlier whenever exactness needs it: before a
//! member joins or leaves, before a direct send to a member, and when the batch reaches
//! [`MAX_BATCH`]. So a member sees the group's bytes and its own in the order they were
//! sent, and only those sent while it was a member.

use std::collections::VecDeque;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::rc::{Rc, Weak};

use slab::Slab;

use super::{conn_mut, ConnState, Deferred, Entry, Table};
use crate::api::conn::{self, Conn};
use crate::api::error::{Lost, NetError};
use crate::api::options::{GroupOptions, SlowPolicy};
use crate::api::stats::GroupStats;
use crate::engine::buffer::Segment;
use crate::engine::codec_door::{CodecState, Site};
use crate::engine::shared::{Encoding, Key};

/// A batch this large is sealed at once rather than at the end of the round.
const MAX_BATCH: usize = 64 * 1024;
/// Sealed segments a group keeps to reuse once every member has written them.
const RECENT: usize = 4;

/// A member: its connection, by key and by a reference that does not keep it open.
#[derive(Debug)]
struct Member {
    key: Key,
    conn: Weak<conn::Inner>,
}

/// A connection's place in a group: the group's key, and its slot among the members.
#[derive(Clone, Copy, Debug)]
pub(super) struct Membership {
    group: Key,
    member: usize,
}

pub(super) struct GroupEntry {
    pub(super) gen: u64,
    members: Slab<Member>,
    /// Bytes sent during this round, not yet sealed.
    pending: Vec<u8>,
    /// Byte ranges of `pending` that one member does not get (`send_except`): (its
    /// connection, start, end), in the order sent; emptied at each seal, its room kept.
    skips: Vec<(Key, usize, usize)>,
    /// In the table's list of groups to seal at the end of the round.
    listed: bool,
    codec: CodecState,
    slow: SlowPolicy,
    /// Segments sealed lately, reused once nobody else holds them.
    recent: VecDeque<Segment>,
    stats: GroupStats,
}

impl std::fmt::Debug for GroupEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupEntry")
            .field("members", &self.members.len())
            .field("pending", &self.pending.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl GroupEntry {
    fn new(gen: u64, options: &GroupOptions) -> GroupEntry {
        GroupEntry {
            gen,
            members: Slab::new(),
            pending: Vec::new(),
            skips: Vec::new(),
            listed: false,
            codec: CodecState::new(&options.framing, Site::Group),
            slow: options.slow,
            recent: VecDeque::new(),
            stats: GroupStats::default(),
        }
    }

    /// The pending bytes as a segment; `pending` takes a spare buffer in exchange.
    fn take_segment(&mut self) -> Segment {
        let reusable = self
            .recent
            .front()
            .is_some_and(|s| Rc::strong_count(s) == 1);
        let mut segment = match reusable {
            true => self.recent.pop_front().unwrap_or_default(),
            false => Segment::default(),
        };
        match Rc::get_mut(&mut segment) {
            Some(buf) => {
                buf.clear();
                std::mem::swap(buf, &mut self.pending);
            }
            None => segment = Rc::new(std::mem::take(&mut self.pending)),
        }
        self.recent.push_back(Rc::clone(&segment));
        if self.recent.len() > RECENT {
            self.recent.pop_front();
        }
        segment
    }
}

fn group_mut(entries: &mut Slab<Entry>, key: Key) -> Option<&mut GroupEntry> {
    match entries.get_mut(key.slot) {
        Some(Entry::Group(g)) if g.gen == key.gen => Some(g),
        _ => None,
    }
}

impl Table {
    pub(crate) fn new_group(&mut self, options: &GroupOptions) -> Key {
        let slot = self.entries.vacant_key();
        let key = self.next_key(slot);
        self.entries
            .insert(Entry::Group(Box::new(GroupEntry::new(key.gen, options))));
        key
    }

    pub(crate) fn group_add(&mut self, g: Key, conn: &Conn) -> Result<bool, NetError> {
        let key = conn.key();
        let c = self.conn_entry(key)?;
        if let Some(end) = c.output.end {
            return Err(end.into());
        }
        if !matches!(c.state, ConnState::Open { .. }) {
            return Err(NetError::Closed);
        }
        if c.groups.iter().any(|m| m.group == g) {
            return Ok(false);
        }
        // What was sent before the join is not the newcomer's.
        self.seal(g);
        let Some(group) = group_mut(&mut self.entries, g) else {
            return Err(NetError::Closed);
        };
        let member = group.members.insert(Member {
            key,
            conn: conn.downgrade(),
        });
        if let Some(c) = conn_mut(&mut self.entries, key) {
            c.groups.push(Membership { group: g, member });
        }
        Ok(true)
    }

    pub(crate) fn group_remove(&mut self, g: Key, key: Key) -> bool {
        if !self.group_contains(g, key) {
            return false;
        }
        // What was sent before the leave is still the leaver's.
        self.seal(g);
        self.drop_membership(g, key)
    }

    /// Takes `key` out of group `g`, without sealing.
    fn drop_membership(&mut self, g: Key, key: Key) -> bool {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return false;
        };
        let Some(i) = c.groups.iter().position(|m| m.group == g) else {
            return false;
        };
        let membership = c.groups.swap_remove(i);
        if let Some(group) = group_mut(&mut self.entries, g) {
            group.members.try_remove(membership.member);
        }
        true
    }

    /// The connection leaves every group. With `seal`, each group's batch is sealed first,
    /// so that what was sent before reaches it (a graceful close); without, it is not (the
    /// output is being dropped).
    pub(super) fn leave_groups(&mut self, key: Key, seal: bool) {
        loop {
            let Some(g) = conn_mut(&mut self.entries, key).and_then(|c| c.groups.last()) else {
                return;
            };
            let g = g.group;
            if seal {
                self.seal(g);
            }
            self.drop_membership(g, key);
        }
    }

    pub(crate) fn group_contains(&mut self, g: Key, key: Key) -> bool {
        conn_mut(&mut self.entries, key).is_some_and(|c| c.groups.iter().any(|m| m.group == g))
    }

    pub(crate) fn group_len(&mut self, g: Key) -> usize {
        group_mut(&mut self.entries, g).map_or(0, |group| group.members.len())
    }

    pub(crate) fn group_members(&mut self, g: Key) -> Vec<Conn> {
        group_mut(&mut self.entries, g).map_or_else(Vec::new, |group| {
            group
                .members
                .iter()
                .filter_map(|(_, m)| Conn::upgrade(&m.conn))
                .collect()
        })
    }

    pub(crate) fn group_stats(&mut self, g: Key) -> GroupStats {
        group_mut(&mut self.entries, g).map_or_else(GroupStats::default, |group| GroupStats {
            members: group.members.len(),
            ..group.stats
        })
    }

    pub(crate) fn group_send(
        &mut self,
        g: Key,
        bytes: &[u8],
        encoding: Encoding,
    ) -> Result<(), NetError> {
        self.group_send_except(g, None, bytes, encoding)
    }

    /// Sends to every member but `except` (when it is one): the bytes join the batch, and
    /// the range they take in it is left out of `except`'s share at the seal.
    pub(crate) fn group_send_except(
        &mut self,
        g: Key,
        except: Option<Key>,
        bytes: &[u8],
        encoding: Encoding,
    ) -> Result<(), NetError> {
        let except = except.filter(|&key| self.group_contains(g, key));
        let Some(group) = group_mut(&mut self.entries, g) else {
            return Ok(());
        };
        let before = group.pending.len();
        match encoding {
            Encoding::AsIs => group.pending.extend_from_slice(bytes),
            Encoding::Frame => {
                if let Err(e) = group.codec.encode(bytes, &mut group.pending, Site::Group) {
                    group.pending.truncate(before);
                    return Err(NetError::from_door(e));
                }
            }
        }
        if let Some(key) = except {
            let after = group.pending.len();
            if after > before {
                group.skips.push((key, before, after));
            }
        }
        self.after_group_send(g);
        Ok(())
    }

    /// Runs the caller's `f` on the group's batch. If it panics, what it wrote goes (the
    /// members' next frame would be torn), and its panic goes on to the caller's tasklet.
    pub(crate) fn group_send_with(&mut self, g: Key, f: impl FnOnce(&mut Vec<u8>)) {
        if let Some(group) = group_mut(&mut self.entries, g) {
            let before = group.pending.len();
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| f(&mut group.pending))) {
                group.pending.truncate(before);
                resume_unwind(payload);
            }
            self.after_group_send(g);
        }
    }

    fn after_group_send(&mut self, g: Key) {
        let Some(group) = group_mut(&mut self.entries, g) else {
            return;
        };
        if group.pending.len() >= MAX_BATCH {
            self.seal(g);
        } else if !group.listed && !group.pending.is_empty() {
            group.listed = true;
            self.sealing.push(g);
        }
    }

    pub(crate) fn group_close_all(
        &mut self,
        g: Key,
        goodbye: Option<&[u8]>,
    ) -> Result<(), NetError> {
        let result = match goodbye {
            Some(payload) => self.group_send(g, payload, Encoding::Frame),
            None => Ok(()),
        };
        // Every batch of this round, in the order first sent to, not this group's alone:
        // a member of another group that was sent to earlier this round (a room's lines
        // before the goodbye) gets that batch before the goodbye.
        self.seal_all();
        let Some(group) = group_mut(&mut self.entries, g) else {
            return result;
        };
        let members = std::mem::take(&mut group.members);
        for (_, m) in members {
            if let Some(c) = conn_mut(&mut self.entries, m.key) {
                c.groups.retain(|ms| ms.group != g);
            }
            self.deferred.push((m.key, Deferred::Close));
        }
        result
    }

    /// The group's handle is gone: its last batch goes out, and the entry leaves.
    pub(super) fn remove_group(&mut self, g: Key) {
        self.seal(g);
        let Some(Entry::Group(group)) = self.entries.try_remove(g.slot) else {
            return;
        };
        for (_, m) in group.members {
            if let Some(c) = conn_mut(&mut self.entries, m.key) {
                c.groups.retain(|ms| ms.group != g);
            }
        }
    }

    /// Seals the batch of every group that was sent to this round, in the order they were
    /// first sent to: a member of two groups gets the first one's batch first.
    pub(crate) fn seal_all(&mut self) {
        let mut i = 0;
        while let Some(&g) = self.sealing.get(i) {
            self.seal(g);
            i += 1;
        }
        self.sealing.clear();
    }

    /// Seals the batches of the groups `key` is in (before a direct send to it).
    pub(super) fn seal_groups_of(&mut self, key: Key) {
        let mut i = 0;
        loop {
            let Some(m) = conn_mut(&mut self.entries, key).and_then(|c| c.groups.get(i).copied())
            else {
                return;
            };
            let pending = matches!(self.entries.get(m.group.slot),
                Some(Entry::Group(g)) if g.gen == m.group.gen && !g.pending.is_empty());
            if pending {
                self.seal(m.group);
                // Sealing may have cut this connection off (its groups changed): look again.
                i = 0;
            } else {
                i += 1;
            }
        }
    }

    /// Stores the group's pending bytes once and queues them to every member.
    fn seal(&mut self, g: Key) {
        let Some(group) = group_mut(&mut self.entries, g) else {
            return;
        };
        group.listed = false;
        if group.pending.is_empty() {
            return;
        }
        let segment = group.take_segment();
        let slow = group.slow;
        let members = std::mem::take(&mut group.members);
        let mut skips = std::mem::take(&mut group.skips);
        // By member, then in the order sent: each member finds its own with a search.
        skips.sort_unstable();
        let mut cut = std::mem::take(&mut self.cut);
        let (mut delivered, mut dropped) = (0, 0);
        for (_, m) in &members {
            let Some(c) = conn_mut(&mut self.entries, m.key) else {
                continue;
            };
            // A member whose output ended (reset, lost mid-batch) gets nothing more; it
            // leaves when its connection closes.
            if c.output.end.is_some() || !matches!(c.state, ConnState::Open { .. }) {
                continue;
            }
            let (queued, limit) = (c.output.queued(), c.options.send_limit);
            if queued >= limit {
                match slow {
                    SlowPolicy::Disconnect => cut.push((m.key, queued, limit)),
                    SlowPolicy::Drop => dropped += 1,
                }
                continue;
            }
            if skips.is_empty() {
                // No `send_except` in this batch: the whole segment (every round's path;
                // the segment is not empty, so the member gets something).
                c.output.push_shared(&segment, &mut self.pool);
                delivered += 1;
                self.schedule_write_as(m.key, false);
                continue;
            }
            let before = c.output.queued();
            let first = skips.partition_point(|&(key, ..)| key < m.key);
            let own = skips[first..].iter().take_while(|&&(key, ..)| key == m.key);
            let mut from = 0;
            for &(_, start, end) in own {
                c.output
                    .push_shared_range(&segment, from, start, &mut self.pool);
                from = end;
            }
            if from == 0 {
                c.output.push_shared(&segment, &mut self.pool);
            } else {
                c.output
                    .push_shared_range(&segment, from, segment.len(), &mut self.pool);
            }
            if c.output.queued() > before {
                delivered += 1;
                self.schedule_write_as(m.key, false);
            }
        }
        skips.clear();
        if let Some(group) = group_mut(&mut self.entries, g) {
            group.skips = skips;
            group.members = members;
            group.stats.batches += 1;
            group.stats.bytes += segment.len() as u64;
            group.stats.deliveries += delivered;
            group.stats.dropped += dropped;
            group.stats.cut_off += cut.len() as u64;
        }
        for (key, queued, limit) in cut.drain(..) {
            if let Some(c) = conn_mut(&mut self.entries, key) {
                log::info!(target: "fibra_net",
                    "connection with {} cut off: {queued} bytes unread (limit {limit})", c.peer);
            }
            self.drop_membership(g, key);
            self.deferred
                .push((key, Deferred::Reset(Lost::Slow { limit })));
        }
        self.cut = cut;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_is_reused_once_written_and_never_while_held() {
        let mut group = GroupEntry::new(1, &GroupOptions::new());
        group.pending.extend_from_slice(b"one");
        let first = group.take_segment();
        let first_at = Rc::as_ptr(&first);
        assert!(group.pending.is_empty());
        drop(first); // every member wrote it
        group.pending.extend_from_slice(b"two");
        let second = group.take_segment();
        assert_eq!(
            Rc::as_ptr(&second),
            first_at,
            "the written segment is reused"
        );
        assert_eq!(&**second, b"two");
        // `second` is still held (a slow member): the next batch gets a segment of its own.
        group.pending.extend_from_slice(b"three");
        let third = group.take_segment();
        assert_ne!(Rc::as_ptr(&third), Rc::as_ptr(&second));
        assert_eq!((&**second, &**third), (&b"two"[..], &b"three"[..]));
        // The group keeps a bounded number of segments for reuse.
        for _ in 0..10 {
            group.pending.push(b'x');
            drop(group.take_segment());
        }
        assert!(group.recent.len() <= RECENT);
    }
}
