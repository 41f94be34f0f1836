//! The input side of a connection: reading from the socket into the input buffer, cutting
//! frames with the codec for the one waiting receiver, reading ahead to notice a peer's
//! close, and the read timeout.
//!
//! A short read clears `readable` without the read that would say `WouldBlock`, which saves
//! a system call per message, where the reactor reports a peer's end of output (epoll's
//! `EPOLLRDHUP`): a FIN that came in the same edge as the bytes is flagged in that edge's
//! event (`read_closed`), and the connection reads on until `read() == 0`. On a backend
//! without that hint (`polling`), a connection reads until `WouldBlock`.

use std::net::SocketAddr;
use std::task::Poll;
use std::time::{Duration, Instant};

use fibra_rt::{Context, TaskletId};

use super::timers::TimerKind;
use super::waiters::{Parked, Wait};
use super::{conn_mut, Table};
use crate::api::codec::FrameError;
use crate::api::error::{Lost, NetError};
use crate::api::ops;
use crate::api::options::ConnOptions;
use crate::engine::buffer::{BufPool, InBuf};
use crate::engine::codec_door::{CodecState, DoorError, Site};
use crate::engine::shared::{Key, ReceiveMode};
use crate::engine::sys::socket;

/// Bytes one connection may read from its socket per poll round: a flooding peer is read in
/// slices, and the other connections are served in between.
pub(super) const READ_BUDGET: usize = 64 * 1024;
/// The smallest read worth a system call.
pub(super) const MIN_READ: usize = 4 * 1024;
/// Room in an input buffer beyond the frame limit, for framing bytes.
pub(super) const FRAMING_SLACK: usize = 64;

/// The tasklet receiving on a connection (one at a time), and the buffer it lent.
#[derive(Debug)]
struct Reader {
    parked: Parked,
    buf: Vec<u8>,
    mode: ReceiveMode,
}

/// The input side of a connection. Laid out in the order written (`repr(C)`): what a receive reads on every message comes
/// last, next to the fields of the [`ConnEntry`](super::ConnEntry) that follow it, so that
/// a message touches few cache lines of its connection (see `ConnEntry`).
#[derive(Debug)]
#[repr(C)]
pub(super) struct Input {
    /// The job to start when input comes, while no tasklet serves the connection.
    pub(super) watch: Option<super::watch::Watch>,
    /// The input deadline: lost with `TimedOut` then, whatever came before.
    pub(super) deadline: Option<Instant>,
    /// When a byte last came, for the read timeout.
    pub(super) last_read: Instant,
    /// The read timer armed, if any.
    pub(super) timer: Option<Instant>,
    reader: Option<Reader>,
    pub(super) codec: CodecState,
    /// No more bytes come from the socket, and why.
    pub(super) end: Option<Lost>,
    pub(super) buf: InBuf,
    /// The round `in_round` counts for, and the bytes read in it (the read budget).
    pub(super) round: u64,
    pub(super) in_round: usize,
    /// The socket may have bytes (or an end) to read.
    pub(super) readable: bool,
    /// The reactor said the peer ended its output: read until `read() == 0`.
    pub(super) read_closed: bool,
}

impl Input {
    pub(super) fn new(options: &ConnOptions, peer: SocketAddr, now: Instant) -> Input {
        Input {
            readable: true,
            read_closed: false,
            codec: CodecState::new(&options.framing, Site::Conn(peer)),
            buf: InBuf::default(),
            reader: None,
            watch: None,
            end: None,
            deadline: None,
            last_read: now,
            timer: options.read_timeout.and_then(|t| now.checked_add(t)),
            round: 0,
            in_round: 0,
        }
    }

    pub(super) fn has_reader(&self) -> bool {
        self.reader.is_some()
    }

    /// The reader's [`Parked`], for the table to hand on when the entry goes.
    pub(super) fn take_reader(&mut self) -> Option<Parked> {
        self.reader.take().map(|r| r.parked)
    }

    /// Drops the reader if it is `id` (withdrawn).
    pub(super) fn withdraw_reader(&mut self, id: TaskletId) {
        if self.reader.as_ref().is_some_and(|r| r.parked.id() == id) {
            self.reader = None;
        }
    }

    /// Bytes received from the socket and not yet taken by a receive.
    pub(super) fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Drops every byte received and not yet consumed; the buffer goes back to the pool.
    pub(super) fn clear(&mut self, pool: &mut BufPool) {
        self.buf.clear(pool);
    }

    /// Nothing to decode and nothing to read until the next readiness edge: a receive can
    /// only park (what `attempt_receive` finds on a connected plain socket).
    pub(super) fn nothing_yet(&self) -> bool {
        self.buf.is_empty() && !self.readable && self.end.is_none()
    }

    /// The reactor's news: readable, and whether the peer's FIN came with it.
    pub(super) fn on_readable(&mut self, read_closed: bool) {
        self.readable = true;
        self.read_closed |= read_closed;
    }
}

/// The outcome of one attempt to read from a connection's socket.
pub(super) enum ReadStep {
    Data,
    /// Nothing now: wait for readiness (or the next round, when `budget`).
    Wait {
        budget: bool,
    },
    /// The input buffer is full at its limit.
    Full,
    Ended,
}

/// What to do with a tasklet's receive.
pub(super) enum Attempt {
    Done(Result<Vec<u8>, NetError>),
    /// Park; `true` when the read budget stopped it (retry next round).
    Pending(Vec<u8>, bool),
}

impl Table {
    pub(crate) fn submit_receive(
        &mut self,
        key: Key,
        from: TaskletId,
        buf: Vec<u8>,
        mode: ReceiveMode,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Vec<u8>, NetError>> {
        let c = match conn_mut(&mut self.entries, key) {
            Some(c) if c.input.reader.is_some() => return Poll::Ready(Err(NetError::Busy)),
            Some(c) => c,
            None => return Poll::Ready(Err(NetError::Closed)),
        };
        if c.input.nothing_yet() && c.tls.is_none() && c.state.connected_socket().is_some() {
            // The common case of a loop of receives (the last read drained the socket): park
            // at once, as `attempt_receive` would, without its round of checks, and with the
            // entry in hand.
            let parked = self.waiters.park(from, Wait::Receive(key.slot));
            c.input.reader = Some(Reader { parked, buf, mode });
            return Poll::Pending;
        }
        let attempt = self.attempt_receive(key, buf, mode, cx);
        match attempt {
            Attempt::Done(result) => Poll::Ready(result),
            Attempt::Pending(buf, budget) => {
                let parked = self.waiters.park(from, Wait::Receive(key.slot));
                let Some(c) = conn_mut(&mut self.entries, key) else {
                    self.waiters.orphan(parked, Wait::Receive(key.slot));
                    return Poll::Pending;
                };
                c.input.reader = Some(Reader { parked, buf, mode });
                if budget {
                    self.retry.push(key.slot);
                }
                Poll::Pending
            }
        }
    }

    /// Serves the connection's waiting reader, if it has one and its frame is there.
    pub(super) fn serve_reader(&mut self, key: Key, cx: &mut Context<'_>) {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return;
        };
        let Some(reader) = c.input.reader.take() else {
            return;
        };
        match self.attempt_receive(key, reader.buf, reader.mode, cx) {
            Attempt::Done(result) => {
                self.waiters
                    .complete::<ops::Receive>(cx, reader.parked, result);
            }
            Attempt::Pending(buf, budget) => {
                let reader = Reader { buf, ..reader };
                match conn_mut(&mut self.entries, key) {
                    Some(c) => {
                        c.input.reader = Some(reader);
                        if budget {
                            self.retry.push(key.slot);
                        }
                    }
                    None => self.waiters.orphan(reader.parked, Wait::Receive(key.slot)),
                }
            }
        }
    }

    /// Tells the waiting reader, if any, that nothing more will come.
    pub(super) fn fail_reader(&mut self, key: Key, lost: Lost, cx: &mut Context<'_>) {
        if let Some(reader) = conn_mut(&mut self.entries, key).and_then(|c| c.input.reader.take()) {
            self.waiters
                .complete::<ops::Receive>(cx, reader.parked, Err(lost.into()));
        }
    }

    /// Decodes the next frame into `buf`, reading from the socket as needed.
    pub(super) fn attempt_receive(
        &mut self,
        key: Key,
        mut buf: Vec<u8>,
        mode: ReceiveMode,
        cx: &mut Context<'_>,
    ) -> Attempt {
        loop {
            // Without framing, the bytes go straight into the receive's buffer
            // (`direct.rs`); a step that ends the input goes round to say so below.
            match self.read_direct(key, &mut buf, mode, cx) {
                Some(ReadStep::Data) => return Attempt::Done(Ok(buf)),
                Some(ReadStep::Wait { budget }) => return Attempt::Pending(buf, budget),
                Some(ReadStep::Ended | ReadStep::Full) | None => {}
            }
            let Some(c) = conn_mut(&mut self.entries, key) else {
                return Attempt::Done(Err(NetError::Closed));
            };
            let input = &mut c.input;
            if !input.buf.is_empty() {
                let decoded = match mode {
                    ReceiveMode::Raw(max) => {
                        input.codec.reset();
                        let n = input.buf.len().min(max);
                        buf.clear();
                        buf.extend_from_slice(&input.buf.filled()[..n]);
                        input.buf.consume(n);
                        Ok(true)
                    }
                    ReceiveMode::Frame => {
                        let site = Site::Conn(c.peer);
                        match input
                            .codec
                            .decode(input.buf.filled(), c.options.max_frame, site)
                        {
                            Ok(Some(d)) => {
                                buf.clear();
                                buf.extend_from_slice(&input.buf.filled()[d.frame]);
                                input.buf.consume(d.consumed);
                                Ok(true)
                            }
                            Ok(None) => Ok(false),
                            Err(e) => Err(e),
                        }
                    }
                };
                match decoded {
                    Ok(true) => {
                        input.buf.release_if_empty(&mut self.pool);
                        return Attempt::Done(Ok(buf));
                    }
                    Ok(false) => {}
                    Err(e) => {
                        let lost = match e {
                            DoorError::Frame(FrameError::TooLong) => Lost::TooLong {
                                limit: c.options.max_frame,
                            },
                            DoorError::Frame(FrameError::Invalid(reason)) => {
                                Lost::Invalid { reason }
                            }
                            DoorError::Codec(failure) => Lost::Codec(failure),
                        };
                        log::debug!(target: "fibra_net", "connection from {}: {lost}", c.peer);
                        input.buf.clear(&mut self.pool);
                        self.lose(key, lost, cx);
                        return Attempt::Done(Err(lost.into()));
                    }
                }
            }
            if let Some(end) = input.end {
                // A partial frame at the end of the stream can never complete.
                input.buf.clear(&mut self.pool);
                return Attempt::Done(Err(end.into()));
            }
            match self.read_step(key, cx) {
                ReadStep::Data | ReadStep::Ended => {}
                ReadStep::Wait { budget } => return Attempt::Pending(buf, budget),
                ReadStep::Full => {
                    // Only a user codec can leave a full buffer undecided.
                    let Some(c) = conn_mut(&mut self.entries, key) else {
                        return Attempt::Done(Err(NetError::Closed));
                    };
                    let lost = Lost::TooLong {
                        limit: c.options.max_frame,
                    };
                    c.input.buf.clear(&mut self.pool);
                    self.lose(key, lost, cx);
                    return Attempt::Done(Err(lost.into()));
                }
            }
        }
    }

    /// One read from the socket into the connection's input buffer.
    fn read_step(&mut self, key: Key, cx: &mut Context<'_>) -> ReadStep {
        let round = self.round;
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return ReadStep::Ended;
        };
        if c.tls.is_some() {
            return self.tls_read_step(key, cx);
        }
        let Some(sock) = c.state.connected_socket() else {
            return match c.state.socket() {
                // Connecting: not readable yet.
                Some(_) => ReadStep::Wait { budget: false },
                None => ReadStep::Ended,
            };
        };
        let input = &mut c.input;
        if !input.readable {
            return ReadStep::Wait { budget: false };
        }
        if input.round != round {
            input.round = round;
            input.in_round = 0;
        }
        if input.in_round >= READ_BUDGET {
            return ReadStep::Wait { budget: true };
        }
        let limit = c.options.max_frame.saturating_add(FRAMING_SLACK);
        let spare = input.buf.spare(&mut self.pool, MIN_READ, limit);
        if spare.is_empty() {
            return ReadStep::Full;
        }
        self.counters.reads += 1;
        let spare_len = spare.len();
        match socket::read(sock, spare) {
            Ok(0) => {
                input.buf.release_if_empty(&mut self.pool);
                self.lose(key, Lost::Eof, cx);
                ReadStep::Ended
            }
            Ok(n) => {
                input.buf.commit(n);
                input.in_round += n;
                // The peer spoke: an answer to it is not held back by the flush delay.
                c.output.last_write = None;
                if c.options.read_timeout.is_some() {
                    // The schedule's clock, read after this round's wait.
                    input.last_read = cx.now();
                }
                // A short read drained the socket: wait for the next edge, unless the peer's
                // FIN came in the last one (or the backend cannot tell).
                if n < spare_len && self.short_read_drains && !input.read_closed {
                    input.readable = false;
                }
                ReadStep::Data
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                input.readable = false;
                input.buf.release_if_empty(&mut self.pool);
                ReadStep::Wait { budget: false }
            }
            Err(e) => {
                input.buf.release_if_empty(&mut self.pool);
                let lost = Lost::from_io(&e);
                log::debug!(target: "fibra_net", "receive from {}: {e}", c.peer);
                self.lose(key, lost, cx);
                ReadStep::Ended
            }
        }
    }

    /// Reads ahead on a connection nobody receives from, to notice the peer closing (for
    /// loss watchers and closing connections). Stops when the input buffer is full.
    pub(super) fn read_ahead(&mut self, key: Key, cx: &mut Context<'_>) {
        loop {
            let Some(c) = conn_mut(&mut self.entries, key) else {
                return;
            };
            // A TLS handshake goes on after a close on this side (`close` sets the input's
            // end): the output queued before the close goes once the handshake is done.
            let handshake =
                c.state.is_closing() && c.tls.as_ref().is_some_and(|t| t.is_handshaking());
            if (c.input.end.is_some() && !handshake) || c.input.reader.is_some() {
                return;
            }
            if c.state.is_closing() {
                // Nobody will read it: throw it away.
                c.input.buf.clear(&mut self.pool);
            }
            match self.read_step(key, cx) {
                ReadStep::Data => {}
                ReadStep::Wait { budget } => {
                    if budget {
                        self.retry.push(key.slot);
                    }
                    return;
                }
                ReadStep::Full | ReadStep::Ended => return,
            }
        }
    }

    /// The read timeout was set or changed: count from now.
    pub(super) fn restart_read_timer(&mut self, key: Key, timeout: Duration) {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return;
        };
        let now = fibra_rt::time::now();
        c.input.last_read = now;
        if let Some(at) = now.checked_add(timeout) {
            if c.input.timer.is_none_or(|armed| at < armed) {
                c.input.timer = Some(at);
                self.timers.arm(at, TimerKind::Read, key);
            }
        }
    }

    /// Sets `key`'s input deadline (see `Conn::set_input_deadline`); its read timer is armed
    /// for the earlier of the deadline and the read timeout's due time, or disarmed when
    /// neither is left.
    pub(crate) fn set_input_deadline(&mut self, key: Key, at: Option<Instant>) {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return;
        };
        c.input.deadline = at;
        match at {
            Some(at) if c.input.timer.is_none_or(|armed| at < armed) => {
                c.input.timer = Some(at);
                self.timers.arm(at, TimerKind::Read, key);
            }
            Some(_) => {}
            None if c.options.read_timeout.is_none() => {
                c.input.timer = None;
                self.timers.disarm(TimerKind::Read, key);
            }
            // The read timeout's timer stays; it finds no deadline when it fires.
            None => {}
        }
    }

    /// The read timer armed for `at` fell due at `now`.
    pub(super) fn read_timer(&mut self, key: Key, at: Instant, now: Instant, cx: &mut Context<'_>) {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return;
        };
        let input = &mut c.input;
        if input.timer != Some(at) {
            return;
        }
        input.timer = None;
        if input.end.is_some() {
            return;
        }
        if input.deadline.is_some_and(|d| d <= now) {
            log::debug!(target: "fibra_net",
                "connection with {}: its input deadline passed", c.peer);
            self.lose(key, Lost::TimedOut, cx);
            return;
        }
        let Some(timeout) = c.options.read_timeout else {
            // Fired early for a read timeout since set off: the deadline's time is next.
            if let Some(d) = input.deadline {
                input.timer = Some(d);
                self.timers.arm(d, TimerKind::Read, key);
            }
            return;
        };
        // Bytes waiting in the socket count as activity, read or not. Look rather than
        // assume: a backend that cannot tell a drained socket (`polling`) leaves `readable`
        // set after a short read, and a connection only watched then never timed out.
        if input.readable && input.reader.is_none() {
            self.read_ahead(key, cx);
            let Some(c) = conn_mut(&mut self.entries, key) else {
                return;
            };
            if c.input.end.is_some() {
                return;
            }
            if c.input.readable {
                // Still unread (the input buffer is full, or the round's budget is spent).
                c.input.last_read = now;
            }
        }
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return;
        };
        let input = &mut c.input;
        match input.last_read.checked_add(timeout) {
            Some(due) if due > now => {
                let due = input.deadline.map_or(due, |d| d.min(due));
                input.timer = Some(due);
                self.timers.arm(due, TimerKind::Read, key);
            }
            Some(_) => {
                log::debug!(target: "fibra_net",
                    "connection with {}: nothing received for {timeout:?}", c.peer);
                self.lose(key, Lost::TimedOut, cx);
            }
            None => {}
        }
    }
}
