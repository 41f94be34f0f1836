//! The output side of a connection: queueing into the bounded output buffer, the flush
//! delay, the one write per connection at the end of the round, and the tasklets waiting for
//! room (`Drain`) or for everything to be written (`Flush`).

use std::io::IoSlice;
use std::net::SocketAddr;
use std::task::Poll;
use std::time::{Duration, Instant};

use fibra_rt::{Context, TaskletId};

use super::timers::TimerKind;
use super::waiters::{Parked, Wait};
use super::{closed, conn_mut, ConnEntry, Deferred, Entry, Table};
use crate::api::error::{Lost, NetError};
use crate::api::ops;
use crate::engine::buffer::{BufPool, OutQueue, Segment, MAX_SLICES};
use crate::engine::codec_door::{CodecState, DoorError, Site};
use crate::engine::shared::{Encoding, Key, SendState, WhenFull};
use crate::engine::sys::socket;

/// Held output this large is written at the end of the round, whatever the flush delay.
const HOLD_LIMIT: usize = 16 * 1024;

/// The output side of a connection. Laid out in the order written (`repr(C)`): what a send
/// reads on every message comes first, next to the fields of the
/// [`ConnEntry`](super::ConnEntry) before it.
#[derive(Debug)]
#[repr(C)]
pub(super) struct Output {
    /// The socket may take bytes.
    pub(super) writable: bool,
    /// In the table's list of connections to write at the end of the round.
    dirty: bool,
    /// Held back by the flush delay, until its `Flush` timer (if one is armed: not under a
    /// delay past the clock's reach) or a write that goes before it (a large output, a
    /// flush, a close).
    held: bool,
    /// No more bytes go to the socket, and why.
    pub(super) end: Option<Lost>,
    /// When output was last written, for the flush delay; `None` once the peer spoke.
    pub(super) last_write: Option<Instant>,
    /// A write through the output (`write_through`) failed, and why: the round's write
    /// reports it. The socket's error was taken by that write: writing again would say
    /// `EPIPE`, whatever the error was, and a read would say end of stream.
    failed: Option<Lost>,
    /// Its length first (`repr(C)`), read by every send, then its chunks.
    pub(super) buf: OutQueue,
    /// Waiting for the output to fall to half the send limit.
    drainers: Vec<Parked>,
    /// Waiting for the output to be empty.
    flushers: Vec<Parked>,
}

impl Output {
    pub(super) fn new(writable: bool) -> Output {
        Output {
            writable,
            buf: OutQueue::default(),
            end: None,
            drainers: Vec::new(),
            flushers: Vec::new(),
            dirty: false,
            held: false,
            last_write: None,
            failed: None,
        }
    }

    pub(super) fn queued(&self) -> usize {
        self.buf.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The parked drainers and flushers, for the table to hand on when the entry goes.
    pub(super) fn take_waiters(
        &mut self,
        slot: usize,
    ) -> impl Iterator<Item = (Parked, Wait)> + '_ {
        let drainers = self.drainers.drain(..).map(move |p| (p, Wait::Drain(slot)));
        let flushers = self.flushers.drain(..).map(move |p| (p, Wait::Flush(slot)));
        drainers.chain(flushers)
    }

    /// Appends a group's shared segment.
    #[inline(always)]
    pub(super) fn push_shared(&mut self, segment: &Segment, pool: &mut BufPool) {
        self.buf.push_shared(segment, pool);
    }

    /// Appends bytes `start..end` of a group's shared segment.
    pub(super) fn push_shared_range(
        &mut self,
        segment: &Segment,
        start: usize,
        end: usize,
        pool: &mut BufPool,
    ) {
        self.buf.push_shared_range(segment, start, end, pool);
    }

    /// Drops everything queued; returns how many bytes that was.
    pub(super) fn clear(&mut self, pool: &mut BufPool) -> usize {
        self.buf.clear(pool)
    }

    /// Drops the waiter `id` (withdrawn).
    pub(super) fn withdraw(&mut self, id: TaskletId) {
        self.drainers.retain(|p| p.id() != id);
        self.flushers.retain(|p| p.id() != id);
    }
}

/// `at`, rounded down to a whole millisecond counted from `epoch`: held connections fall due
/// together, a round per grain at most, rather than a round each.
fn flush_grain(epoch: Instant, at: Instant) -> Instant {
    let since = at.saturating_duration_since(epoch);
    let millis = since
        .as_secs()
        .saturating_mul(1000)
        .saturating_add(u64::from(since.subsec_millis()));
    epoch + Duration::from_millis(millis)
}

/// Writes `bytes` to the socket at once, for a send on a connection whose output is empty
/// (`ConnOptions::with_write_through`): the bytes not written, or `None` when this
/// connection's output cannot be written now (TLS, a flush delay, not connected, the socket
/// full, a write failed). What is left is queued by the caller as any send. A failed write
/// leaves all of it there; the socket's error, which the failed write took from the socket,
/// is kept: the input ends with it at once (a read would now say end of stream, not the
/// reset), and the round's write ends the output with it as usual.
fn write_through(c: &mut ConnEntry, bytes: &[u8], writes: &mut u64) -> Option<usize> {
    let output = &mut c.output;
    if !output.writable
        || output.held
        || output.failed.is_some()
        || c.tls.is_some()
        || !c.options.flush_delay.is_zero()
    {
        return None;
    }
    let sock = c.state.connected_socket()?;
    *writes += 1;
    match socket::send(sock, bytes) {
        Ok(written) if written >= bytes.len() => Some(0),
        Ok(written) => {
            // A short write filled the socket: the next edge says when it has room.
            output.writable = false;
            Some(bytes.len() - written)
        }
        Err(e) => {
            if let Some(lost) = write_failure(output, c.peer, &e) {
                output.failed = Some(lost);
                c.input.end.get_or_insert(lost);
            }
            None
        }
    }
}

/// What a write's error means: `None` when the socket is only full (`writable` is cleared:
/// the next edge says when it has room) or the call was interrupted; else the loss, logged.
fn write_failure(output: &mut Output, peer: SocketAddr, e: &std::io::Error) -> Option<Lost> {
    match e.kind() {
        std::io::ErrorKind::WouldBlock => {
            output.writable = false;
            None
        }
        std::io::ErrorKind::Interrupted => None,
        _ => {
            log::debug!(target: "fibra_net", "send to {peer}: {e}");
            Some(Lost::from_io(e))
        }
    }
}

/// Output this large or larger is never held by the flush delay.
fn hold_limit(c: &ConnEntry) -> usize {
    HOLD_LIMIT.min(c.options.send_limit / 2)
}

/// When output held by the flush delay is due: `delay` after the last write, to the
/// timers' grain; `None` when nothing was written since the peer spoke, or past what the
/// clock can count.
fn hold_due(c: &ConnEntry, epoch: Instant) -> Option<Instant> {
    c.output
        .last_write
        .and_then(|t| t.checked_add(c.options.flush_delay))
        .map(|at| flush_grain(epoch, at))
}

/// The socket of `c` (in slot `slot`, connected) has room: its queued output is written this
/// round (`dirty`), unless held back by the flush delay, whose timer says when.
pub(super) fn on_writable(c: &mut ConnEntry, slot: usize, dirty: &mut Vec<usize>) {
    c.output.writable = true;
    let tls_records = c.tls.as_ref().is_some_and(|t| t.wants_write());
    if ((!c.output.buf.is_empty() && !c.output.held) || tls_records) && !c.output.dirty {
        c.output.dirty = true;
        dirty.push(slot);
    }
}

impl Table {
    /// Queues `bytes`, or says to wait for room.
    pub(crate) fn send(
        &mut self,
        key: Key,
        bytes: &[u8],
        encoding: Encoding,
        when_full: WhenFull,
    ) -> Result<SendState, NetError> {
        let mut c = conn_mut(&mut self.entries, key).ok_or_else(closed)?;
        if !c.groups.is_empty() {
            // The groups' bytes sent before this go first.
            self.seal_groups_of(key);
            c = conn_mut(&mut self.entries, key).ok_or_else(closed)?;
        }
        if let Some(end) = c.output.end {
            return Err(end.into());
        }
        if c.state.is_closing() {
            return Err(NetError::Closed);
        }
        let queued = c.output.buf.len();
        let mut bytes = bytes;
        // A frame without framing is its bytes as they are: it takes the same path (written
        // through, no codec call), as a `Protocol`'s `Transport::send` on a raw connection.
        let encoding = match (encoding, &c.input.codec) {
            (Encoding::Frame, CodecState::Raw(_)) => Encoding::AsIs,
            (encoding, _) => encoding,
        };
        // Not while a reset or close asked outside a tasklet (`Conn::abort`) waits for the
        // end of the tick: an abort drops what was sent before it took effect.
        if queued == 0
            && encoding == Encoding::AsIs
            && c.options.write_through
            && !self.deferred.iter().any(|&(k, _)| k == key)
        {
            match write_through(c, bytes, &mut self.counters.writes) {
                Some(0) => return Ok(SendState::Queued),
                Some(rest) => bytes = &bytes[bytes.len() - rest..],
                None => {}
            }
        }
        let limit = c.options.send_limit;
        if queued >= limit {
            return match when_full {
                WhenFull::Fail => Err(NetError::Full { queued, limit }),
                WhenFull::Wait => Ok(SendState::MustWait),
            };
        }
        let codec = &mut c.input.codec;
        let site = Site::Conn(c.peer);
        let appended = c.output.buf.append(&mut self.pool, |out| match encoding {
            Encoding::AsIs => {
                out.extend_from_slice(bytes);
                Ok(())
            }
            Encoding::Frame => codec.encode(bytes, out, site),
        });
        match appended {
            Ok(()) => {}
            Err(DoorError::Frame(e)) => return Err(NetError::from_encode(e)),
            Err(DoorError::Codec(failure)) => {
                // The codec is poisoned: the connection ends at the next poll.
                let lost = Lost::Codec(failure);
                self.deferred.push((key, Deferred::Reset(lost)));
                return Err(lost.into());
            }
        }
        self.schedule_write(key);
        Ok(SendState::Queued)
    }

    /// New output was queued: write it at the end of the round, or hold it for the flush
    /// delay.
    pub(super) fn schedule_write(&mut self, key: Key) {
        self.schedule_write_as(key, true);
    }

    /// [`schedule_write`](Self::schedule_write); `answer_releases`: a send made since the
    /// peer spoke takes held output with it (a direct send; not a group's batch, which a
    /// talking member would otherwise get in a write of its own per line it says).
    pub(super) fn schedule_write_as(&mut self, key: Key, answer_releases: bool) {
        let (epoch, round_time) = (self.epoch, self.round_time);
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return;
        };
        if c.output.dirty || c.state.is_connecting() {
            return;
        }
        if !c.output.held && !c.output.writable {
            // The socket is full with output written before: its room edge (`on_writable`)
            // writes this with the rest. Holding it would hold back that rest too, which a
            // full socket draining never is.
            return;
        }
        if !c.output.held && c.output.last_write.is_none() {
            // Nothing written since the peer spoke (an answer): it goes this round, as the
            // match below would say, without its clock arithmetic and a second lookup.
            c.output.dirty = true;
            self.dirty.push(key.slot);
            return;
        }
        // With a flush delay, output waits until `delay` after the last write: at most one
        // write per delay; nothing waits when the connection was quiet or its peer spoke
        // since.
        let hold_limit = hold_limit(c);
        if c.output.held {
            // Held (by a timer, or for good under a delay past the clock): only a large
            // output goes before it, or any once the delay was turned off, or an answer
            // (the peer spoke since the last write), which takes the held output with it.
            if c.output.buf.len() >= hold_limit
                || c.options.flush_delay.is_zero()
                || (answer_releases && c.output.last_write.is_none())
            {
                self.mark_dirty(key);
            }
            return;
        }
        let due = hold_due(c, epoch);
        let small = c.output.buf.len() < hold_limit;
        match (c.output.last_write, due) {
            (_, Some(at)) if at > round_time && small => {
                c.output.held = true;
                self.timers.arm(at, TimerKind::Flush, key);
            }
            // A delay past what the clock can count: held with no timer, until the output
            // grows large or a flush asks for it.
            (Some(_), None) if small => c.output.held = true,
            _ => self.mark_dirty(key),
        }
    }

    /// Puts the connection in the list written at the end of the round (once).
    pub(super) fn mark_dirty(&mut self, key: Key) {
        if let Some(c) = conn_mut(&mut self.entries, key) {
            if !c.output.dirty && !c.state.is_connecting() {
                c.output.dirty = true;
                self.dirty.push(key.slot);
            }
        }
    }

    /// The connection's send limit or flush delay changed (`Conn::set_*`): held output goes
    /// this round if it would not be held now (the delay turned off or past due, the output
    /// large for the new limit); under a shorter delay its timer is armed sooner.
    pub(super) fn options_changed(&mut self, key: Key, shorter_delay: bool) {
        let epoch = self.epoch;
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return;
        };
        if !c.output.held {
            return;
        }
        let due = hold_due(c, epoch);
        if c.output.buf.len() >= hold_limit(c)
            || c.options.flush_delay.is_zero()
            || due.is_some_and(|at| at <= fibra_rt::time::now())
        {
            c.output.held = false;
            self.timers.disarm(TimerKind::Flush, key);
            self.mark_dirty(key);
        } else if let (true, Some(at)) = (shorter_delay, due) {
            self.timers.arm(at, TimerKind::Flush, key);
        }
    }

    /// The flush delay's timer fell due: the held output goes this round.
    pub(super) fn end_hold(&mut self, key: Key) {
        if let Some(c) = conn_mut(&mut self.entries, key) {
            c.output.held = false;
            if !c.output.buf.is_empty() {
                self.mark_dirty(key);
            }
        }
    }

    pub(crate) fn submit_drain(&mut self, key: Key, from: TaskletId) -> Poll<Result<(), NetError>> {
        let c = match self.conn_entry(key) {
            Ok(c) => c,
            Err(e) => return Poll::Ready(Err(e)),
        };
        if let Some(end) = c.output.end {
            return Poll::Ready(Err(end.into()));
        }
        if c.output.buf.len() < c.options.send_limit {
            return Poll::Ready(Ok(()));
        }
        let parked = self.waiters.park(from, Wait::Drain(key.slot));
        if let Some(c) = conn_mut(&mut self.entries, key) {
            c.output.drainers.push(parked);
        }
        Poll::Pending
    }

    pub(crate) fn submit_flush(&mut self, key: Key, from: TaskletId) -> Poll<Result<(), NetError>> {
        let c = match self.conn_entry(key) {
            Ok(c) => c,
            Err(e) => return Poll::Ready(Err(e)),
        };
        if let Some(end) = c.output.end {
            return Poll::Ready(Err(end.into()));
        }
        if c.output_idle() {
            return Poll::Ready(Ok(()));
        }
        // Held output goes now: someone waits for it.
        self.mark_dirty(key);
        let parked = self.waiters.park(from, Wait::Flush(key.slot));
        if let Some(c) = conn_mut(&mut self.entries, key) {
            c.output.flushers.push(parked);
        }
        Poll::Pending
    }

    /// Writes every connection that queued output this round.
    pub(crate) fn flush_all(&mut self, cx: &mut Context<'_>) {
        if self.dirty.is_empty() {
            return;
        }
        let mut dirty = std::mem::replace(&mut self.dirty, std::mem::take(&mut self.dirty_spare));
        for slot in dirty.drain(..) {
            let Some(Entry::Conn(c)) = self.entries.get_mut(slot) else {
                continue;
            };
            c.output.dirty = false;
            // Written now, held no longer: what the socket does not take goes at its next
            // room edge (`on_writable`), not when the delay's timer falls due, or never
            // under a delay past the clock's reach.
            c.output.held = false;
            let key = Key { slot, gen: c.gen };
            self.write(key, cx);
        }
        self.dirty_spare = dirty;
    }

    /// Writes the connection's output until done or the socket is full, then tells waiters.
    fn write(&mut self, key: Key, cx: &mut Context<'_>) {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return;
        };
        let ConnEntry {
            state,
            output,
            options,
            peer,
            tls,
            ..
        } = c;
        let Some(sock) = state.connected_socket() else {
            return;
        };
        if output.end.is_some() {
            return;
        }
        if !options.flush_delay.is_zero() {
            // The clock now, not the round's: connections written late in a long round are
            // due later, so the writes spread over the delay instead of bunching.
            output.last_write = Some(fibra_rt::time::now());
        }
        if tls.is_some() {
            match self.tls_write(key) {
                Ok(()) => self.after_write(key, cx),
                Err(lost) => {
                    self.lose(key, lost, cx);
                    self.end_output(key, lost, cx);
                }
            }
            return;
        }
        // A write through the output that failed took the socket's error: it is the loss.
        let mut failed = output.failed.take();
        while failed.is_none() && output.writable && !output.buf.is_empty() {
            self.counters.writes += 1;
            let (written, len) = match output.buf.single() {
                Some(bytes) => (socket::send(sock, bytes), bytes.len()),
                None => {
                    let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                    let (n, len) = output.buf.slices(&mut slices);
                    (socket::write(sock, &slices[..n]), len)
                }
            };
            match written {
                Ok(written) => {
                    output.buf.advance(written, &mut self.pool);
                    // A short write filled the socket: the next edge says when it has room.
                    if written < len {
                        output.writable = false;
                    }
                }
                Err(e) => failed = write_failure(output, *peer, &e),
            }
        }
        if let Some(lost) = failed {
            self.lose(key, lost, cx);
            self.end_output(key, lost, cx);
            return;
        }
        self.after_write(key, cx);
    }

    /// Wakes the tasklets a write may have made room for; finishes a pending close.
    fn after_write(&mut self, key: Key, cx: &mut Context<'_>) {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return;
        };
        let output = &mut c.output;
        if output.buf.len() <= c.options.send_limit / 2 {
            for parked in output.drainers.drain(..) {
                self.waiters.complete::<ops::Drain>(cx, parked, Ok(()));
            }
        }
        let idle = output.buf.is_empty() && c.tls.as_ref().is_none_or(|t| !t.wants_write());
        if idle {
            for parked in output.flushers.drain(..) {
                self.waiters.complete::<ops::Flush>(cx, parked, Ok(()));
            }
            if c.state.is_closing() {
                self.finish_close(key, Some(cx));
            }
        }
    }

    /// No more output: drops what is queued and fails the tasklets waiting on it with `lost`.
    /// Returns how many bytes were dropped.
    pub(super) fn fail_output(&mut self, key: Key, lost: Lost, cx: &mut Context<'_>) -> usize {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return 0;
        };
        let output = &mut c.output;
        if output.end.is_none() {
            output.end = Some(lost);
        }
        let dropped = output.buf.clear(&mut self.pool);
        for parked in output.drainers.drain(..) {
            self.waiters
                .complete::<ops::Drain>(cx, parked, Err(lost.into()));
        }
        for parked in output.flushers.drain(..) {
            self.waiters
                .complete::<ops::Flush>(cx, parked, Err(lost.into()));
        }
        dropped
    }
}
