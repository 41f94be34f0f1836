//! A receive without framing, past the input buffer: on a connection without framing
//! (`Framing::Raw`, or a raw receive) whose input buffer holds nothing, the bytes are read
//! into the table's one scratch buffer and copied into the receive's own buffer, as a `read`
//! into a caller's buffer does. No pooled input buffer is lent, filled, cut by the codec,
//! consumed and given back for the message (about 250 instructions of the echo's 1,850 per
//! message). The scratch buffer serves every connection, so it stays in the cache, and the
//! receive's buffer grows only to the bytes it holds (a frame that `receive` returns has
//! no more capacity than before).
//!
//! A receive of fewer than `MIN_READ` bytes at most (small `io::Read` reads) goes the usual
//! way: one read into the pooled buffer serves many of them. What a receive returns is the
//! same either way: the bytes that arrived, at most the frame limit (or the raw receive's
//! `max`) and at most one pooled buffer's worth.

use fibra_rt::Context;

use super::input::{ReadStep, MIN_READ, READ_BUDGET};
use super::{conn_mut, Table};
use crate::api::error::{Lost, NetError};
use crate::api::ops::Tried;
use crate::engine::buffer::BUF_SIZE;
use crate::engine::codec_door::CodecState;
use crate::engine::shared::{Key, ReceiveMode};
use crate::engine::sys::socket;

impl Table {
    /// Reads the connection's next bytes into `buf` (cleared first), past the input buffer,
    /// when the receive allows it: `Some(ReadStep::Data)` when `buf` holds them. `None`: the usual
    /// path serves this receive (framing, buffered bytes, TLS, the end, the read budget,
    /// or a socket not known to be readable).
    pub(super) fn read_direct(
        &mut self,
        key: Key,
        buf: &mut Vec<u8>,
        mode: ReceiveMode,
        cx: &mut Context<'_>,
    ) -> Option<ReadStep> {
        self.read_past_buffer(key, buf, mode, Some(cx))
    }

    /// A [`TryReceive`](crate::ops::TryReceive) served at once, without a context (a
    /// tasklet's call, no yield): what a raw read past the input buffer finds, a frame or
    /// nothing (the socket drained), or the end, which the table takes up at its next poll
    /// or flush (the connection's other tasklets are told then). `Err` gives the buffer back:
    /// the op serves this receive (framing, buffered bytes, TLS, a reader, the read budget,
    /// a read timeout to restart, the table busy).
    pub(crate) fn try_receive_at_once(
        &mut self,
        key: Key,
        mut buf: Vec<u8>,
        mode: ReceiveMode,
    ) -> Result<Tried, Vec<u8>> {
        match self.read_past_buffer(key, &mut buf, mode, None) {
            Some(ReadStep::Data) => Ok(Tried::Frame(buf)),
            Some(ReadStep::Wait { .. }) => Ok(Tried::Nothing(buf)),
            Some(ReadStep::Ended) => {
                match conn_mut(&mut self.entries, key).and_then(|c| c.input.end) {
                    Some(end) => Ok(Tried::Failed(end.into())),
                    None => Ok(Tried::Failed(NetError::Closed)),
                }
            }
            Some(ReadStep::Full) | None => match conn_mut(&mut self.entries, key) {
                // Drained, nothing buffered, no end: what the op finds without reading.
                Some(c)
                    if !c.input.has_reader()
                        && !c.input.readable
                        && c.input.buf.is_empty()
                        && c.input.end.is_none()
                        && c.tls.is_none()
                        && c.state.connected_socket().is_some() =>
                {
                    Ok(Tried::Nothing(buf))
                }
                _ => Err(buf),
            },
        }
    }

    /// [`read_direct`](Self::read_direct)'s work. Without a context (`try_receive_at_once`)
    /// a connection with a read timeout goes the usual way (its last read is stamped with the
    /// schedule's clock), and an end read from the socket is kept as the input's end and
    /// taken up by the table at its next poll or flush (`ended_by_calls`).
    // Inlined into both callers: each keeps its own specialised copy (with a context or
    // without), as the receive's hot path was before the two shared it (+35 instructions a
    // message as a call).
    #[inline(always)]
    fn read_past_buffer(
        &mut self,
        key: Key,
        buf: &mut Vec<u8>,
        mode: ReceiveMode,
        cx: Option<&mut Context<'_>>,
    ) -> Option<ReadStep> {
        let (round, drains) = (self.round, self.short_read_drains);
        let c = conn_mut(&mut self.entries, key)?;
        // Without a context: a parked reader is the op's to answer (`Busy`).
        if cx.is_none() && c.input.has_reader() {
            return None;
        }
        let max = match mode {
            ReceiveMode::Raw(max) => max,
            ReceiveMode::Frame if matches!(c.input.codec, CodecState::Raw(_)) => {
                c.options.max_frame
            }
            ReceiveMode::Frame => return None,
        };
        if c.tls.is_some() {
            return None;
        }
        let stamp = c.options.read_timeout.is_some();
        if stamp && cx.is_none() {
            return None;
        }
        let input = &mut c.input;
        if !input.buf.is_empty() || input.end.is_some() || !input.readable {
            return None;
        }
        let sock = c.state.connected_socket()?;
        if input.round != round {
            input.round = round;
            input.in_round = 0;
        }
        if input.in_round >= READ_BUDGET {
            return None;
        }
        // As `attempt_receive`'s raw receive: bytes read past the codec.
        input.codec.reset();
        let want = max.min(BUF_SIZE);
        if want < MIN_READ {
            // Small reads (`io::Read` with a small buffer): one read into the pooled buffer
            // serves many of them.
            return None;
        }
        self.counters.reads += 1;
        let lost = match socket::read(sock, &mut self.scratch[..want]) {
            Ok(0) => Lost::Eof,
            Ok(n) => {
                buf.clear();
                buf.extend_from_slice(&self.scratch[..n]);
                input.in_round += n;
                // The peer spoke: an answer to it is not held back by the flush delay.
                c.output.last_write = None;
                if let Some(cx) = cx.filter(|_| stamp) {
                    input.last_read = cx.now();
                }
                // A short read drained the socket (as `read_step`).
                if n < want && drains && !input.read_closed {
                    input.readable = false;
                }
                return Some(ReadStep::Data);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                input.readable = false;
                return Some(ReadStep::Wait { budget: false });
            }
            Err(e) => {
                log::debug!(target: "fibra_net", "receive from {}: {e}", c.peer);
                Lost::from_io(&e)
            }
        };
        match cx {
            Some(cx) => self.lose(key, lost, cx),
            None => {
                input.end = Some(lost);
                self.ended_by_calls.push((key, lost));
            }
        }
        Some(ReadStep::Ended)
    }
}
