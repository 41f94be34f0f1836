//! The plugin's timers: read timeouts, close timeouts, accept back-off, flush delays.
//!
//! Each entry has at most one timer of each kind armed: arming another replaces it, and the
//! entry's timers are removed with its socket, so the armed timers never outnumber the
//! table's entries (five per entry at most, one per connection in a quiet server with read
//! timeouts), and the queue holds at most twice as many plus a few (the entries of replaced
//! and removed timers are dropped in one pass past that). When a timer falls due, its owner
//! still checks that it applies (the deadline may have moved).

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Instant;

use fibra_rt::Context;

use super::Table;
use crate::engine::shared::Key;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum TimerKind {
    /// A connection's read timeout.
    Read = 0,
    /// A graceful close's wait for output to drain.
    Linger = 1,
    /// A listener's pause after running out of file descriptors.
    Backoff = 2,
    /// The end of a connection's flush delay: its held output is written.
    Flush = 3,
    /// A TLS connection's handshake deadline.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    Handshake = 4,
}

const KINDS: usize = 5;

/// Queue entries left behind by replaced or cancelled timers are dropped in one pass once
/// they outnumber the armed timers (and this many): the queue holds at most twice the
/// armed timers plus this, whatever the churn.
const SLACK: usize = 64;

/// One timer in the queue: due `at`, `seq` orders equal instants (and names it).
#[derive(Debug)]
struct Queued {
    at: Instant,
    seq: u64,
    kind: TimerKind,
    key: Key,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        self.seq == other.seq
    }
}

impl Eq for Queued {}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Queued {
    /// Reversed: the heap's top is the earliest.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// A binary heap (a push is a few instructions, as the flush delay arms one per member
/// per round) with each slot's armed timer of each kind recorded by sequence number:
/// an entry whose number is no longer recorded (replaced, cancelled) is skipped when it
/// comes up, and all such entries are dropped once they outnumber the armed ones.
#[derive(Debug, Default)]
pub(super) struct Timers {
    queue: BinaryHeap<Queued>,
    /// The timer each slot has armed of each kind (its sequence number).
    by_slot: Vec<[Option<u64>; KINDS]>,
    /// How many timers are armed (the recorded ones).
    armed: usize,
    seq: u64,
}

impl Timers {
    /// Arms `kind` for `key` at `at`, replacing the one of that kind `key`'s slot had.
    #[inline]
    pub(super) fn arm(&mut self, at: Instant, kind: TimerKind, key: Key) {
        self.seq += 1;
        let seq = self.seq;
        if self.by_slot.len() <= key.slot {
            self.by_slot.resize(key.slot + 1, [None; KINDS]);
        }
        if self.by_slot[key.slot][kind as usize].replace(seq).is_none() {
            self.armed += 1;
        }
        self.queue.push(Queued { at, seq, kind, key });
        self.compact_if_stale();
    }

    /// Removes `key`'s slot's timer of `kind`, if one is armed (what it waited for is done).
    pub(super) fn disarm(&mut self, kind: TimerKind, key: Key) {
        let armed = self
            .by_slot
            .get_mut(key.slot)
            .and_then(|a| a[kind as usize].take());
        if armed.is_some() {
            self.armed -= 1;
            self.compact_if_stale();
        }
    }

    /// Removes every timer of `slot` (its entry closed or left).
    pub(super) fn cancel_slot(&mut self, slot: usize) {
        let Some(armed) = self.by_slot.get_mut(slot) else {
            return;
        };
        for _ in armed.iter_mut().filter_map(Option::take) {
            self.armed -= 1;
        }
        self.compact_if_stale();
    }

    /// Drops the entries of replaced and cancelled timers once they outnumber the armed
    /// ones (amortised: each pass at least halves the queue).
    fn compact_if_stale(&mut self) {
        if self.queue.len() <= 2 * self.armed + SLACK {
            return;
        }
        let by_slot = &self.by_slot;
        self.queue.retain(|q| {
            by_slot
                .get(q.key.slot)
                .is_some_and(|armed| armed[q.kind as usize] == Some(q.seq))
        });
    }

    /// The earliest deadline in the queue (an entry left by a cancelled timer may wake
    /// the round early once; it is skipped then).
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.queue.peek().map(|q| q.at)
    }

    /// The next armed timer due at `now`.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<(Instant, TimerKind, Key)> {
        while self.queue.peek().is_some_and(|q| q.at <= now) {
            let q = self.queue.pop()?;
            let Some(armed) = self.by_slot.get_mut(q.key.slot) else {
                continue;
            };
            if armed[q.kind as usize] == Some(q.seq) {
                armed[q.kind as usize] = None;
                self.armed -= 1;
                return Some((q.at, q.kind, q.key));
            }
        }
        None
    }

    /// How many timers are armed.
    pub(super) fn len(&self) -> usize {
        self.armed
    }
}

impl Table {
    /// Runs the timers due at the round's time. Each checks that it still applies.
    pub(super) fn expire_timers(&mut self, cx: &mut Context<'_>) {
        if self.timers.next_deadline().is_none() {
            return;
        }
        let now = self.round_time;
        while let Some((at, kind, key)) = self.timers.pop_due(now) {
            match kind {
                TimerKind::Read => self.read_timer(key, at, now, cx),
                TimerKind::Linger => self.linger_timer(key, at, cx),
                TimerKind::Flush => self.end_hold(key),
                TimerKind::Backoff => self.end_backoff(key, at, cx),
                TimerKind::Handshake => self.handshake_timer(key, at, cx),
            }
        }
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        // A worker to start again counts as a timer.
        self.timers
            .next_deadline()
            .into_iter()
            .chain(self.worker_retry_at())
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn key(slot: usize) -> Key {
        Key { slot, gen: 0 }
    }

    #[test]
    fn replaced_and_cancelled_timers_leave_the_queue_bounded_and_are_never_due() {
        let mut timers = Timers::default();
        let start = fibra_rt::time::now();
        for i in 0..10_000u64 {
            let at = start + Duration::from_micros(i);
            timers.arm(at, TimerKind::Flush, key(0));
            timers.arm(at, TimerKind::Read, key(1 + (i % 100) as usize));
            if i % 3 == 0 {
                timers.cancel_slot(1 + (i % 100) as usize);
            }
            assert!(timers.queue.len() <= 2 * timers.len() + SLACK);
        }
        assert!(timers.len() <= 101);
        let mut due = 0;
        while let Some((_, kind, k)) = timers.pop_due(start + Duration::from_secs(1)) {
            assert!(kind != TimerKind::Flush || k.slot == 0);
            due += 1;
        }
        assert_eq!(due, 101 - (0..100).filter(|r| (9_900 + r) % 3 == 0).count());
        assert_eq!(timers.len(), 0);
    }

    #[test]
    fn a_disarmed_timer_is_never_due_and_no_longer_counted() {
        let mut timers = Timers::default();
        let start = fibra_rt::time::now();
        timers.arm(start, TimerKind::Handshake, key(3));
        timers.arm(start, TimerKind::Read, key(3));
        timers.disarm(TimerKind::Handshake, key(3));
        timers.disarm(TimerKind::Handshake, key(9)); // never armed: nothing happens
        assert_eq!(timers.len(), 1);
        let due = timers.pop_due(start + Duration::from_secs(1));
        assert!(matches!(due, Some((_, TimerKind::Read, k)) if k.slot == 3));
        assert!(timers.pop_due(start + Duration::from_secs(1)).is_none());
        assert_eq!(timers.len(), 0);
    }
}
