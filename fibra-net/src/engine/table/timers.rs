//! The plugin's timers: read timeouts, close timeouts, accept back-off, flush delays.
//!
//! Each entry has at most one timer of each kind armed: arming another replaces it, and the
//! entry's timers are removed with its socket, so the queue never holds more than the table
//! (five per entry at most, one per connection in a quiet server with read timeouts). When a
//! timer falls due, its owner still checks that it applies (the deadline may have moved).

use std::collections::BTreeMap;
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

/// When, and in which order among equal instants: a timer's place in the queue.
type TimerId = (Instant, u64);

#[derive(Debug, Default)]
pub(super) struct Timers {
    queue: BTreeMap<TimerId, (TimerKind, Key)>,
    /// The timer each slot has armed of each kind, to replace or remove it.
    by_slot: Vec<[Option<TimerId>; KINDS]>,
    seq: u64,
}

impl Timers {
    /// Arms `kind` for `key` at `at`, replacing the one of that kind `key`'s slot had.
    pub(super) fn arm(&mut self, at: Instant, kind: TimerKind, key: Key) {
        self.seq += 1;
        let id = (at, self.seq);
        if self.by_slot.len() <= key.slot {
            self.by_slot.resize(key.slot + 1, [None; KINDS]);
        }
        if let Some(old) = self.by_slot[key.slot][kind as usize].replace(id) {
            self.queue.remove(&old);
        }
        self.queue.insert(id, (kind, key));
    }

    /// Removes every timer of `slot` (its entry closed or left).
    pub(super) fn cancel_slot(&mut self, slot: usize) {
        let Some(armed) = self.by_slot.get_mut(slot) else {
            return;
        };
        for id in armed.iter_mut().filter_map(Option::take) {
            self.queue.remove(&id);
        }
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.queue.first_key_value().map(|((at, _), _)| *at)
    }

    /// The next timer due at `now`.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<(Instant, TimerKind, Key)> {
        let (&(at, _), _) = self
            .queue
            .first_key_value()
            .filter(|((at, _), _)| *at <= now)?;
        let (id, (kind, key)) = self.queue.pop_first()?;
        if let Some(armed) = self.by_slot.get_mut(key.slot) {
            if armed[kind as usize] == Some(id) {
                armed[kind as usize] = None;
            }
        }
        Some((at, kind, key))
    }

    pub(super) fn len(&self) -> usize {
        self.queue.len()
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
        self.timers.next_deadline()
    }
}
