//! The plugin's timers: read timeouts, close timeouts, accept back-off, flush delays.
//!
//! A timer is never removed early: when it falls due, its owner checks whether it still
//! applies (the entry may be gone, or the deadline moved). Each entry arms at most one timer
//! of each kind at a time, so the heap stays as small as the table.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use fibra_rt::Context;

use super::Table;
use crate::shared::Key;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum TimerKind {
    /// A connection's read timeout.
    Read,
    /// A graceful close's wait for output to drain.
    Linger,
    /// A listener's pause after running out of file descriptors.
    Backoff,
    /// The end of a connection's flush delay: its held output is written.
    Flush,
    /// A TLS connection's handshake deadline.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    Handshake,
}

/// When, in which order among equal instants, what, and for which entry (slot, generation).
type Timer = (Instant, u64, TimerKind, usize, u64);

#[derive(Debug, Default)]
pub(super) struct Timers {
    heap: BinaryHeap<Reverse<Timer>>,
    seq: u64,
}

impl Timers {
    pub(super) fn arm(&mut self, at: Instant, kind: TimerKind, key: Key) {
        self.seq += 1;
        self.heap
            .push(Reverse((at, self.seq, kind, key.slot, key.gen)));
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, ..))| *at)
    }

    /// The next timer due at `now`.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<(Instant, TimerKind, Key)> {
        match self.heap.peek() {
            Some(Reverse((at, ..))) if *at <= now => {
                let Reverse((at, _, kind, slot, gen)) = self.heap.pop()?;
                Some((at, kind, Key { slot, gen }))
            }
            _ => None,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.heap.len()
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
