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
use crate::api::error::Lost;
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
        let (round, drains) = (self.round, self.short_read_drains);
        let c = conn_mut(&mut self.entries, key)?;
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
        match socket::read(sock, &mut self.scratch[..want]) {
            Ok(0) => {
                self.lose(key, Lost::Eof, cx);
                Some(ReadStep::Ended)
            }
            Ok(n) => {
                buf.clear();
                buf.extend_from_slice(&self.scratch[..n]);
                input.in_round += n;
                // The peer spoke: an answer to it is not held back by the flush delay.
                c.output.last_write = None;
                if c.options.read_timeout.is_some() {
                    input.last_read = cx.now();
                }
                // A short read drained the socket (as `read_step`).
                if n < want && drains && !input.read_closed {
                    input.readable = false;
                }
                Some(ReadStep::Data)
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                input.readable = false;
                Some(ReadStep::Wait { budget: false })
            }
            Err(e) => {
                let lost = Lost::from_io(&e);
                log::debug!(target: "fibra_net", "receive from {}: {e}", c.peer);
                self.lose(key, lost, cx);
                Some(ReadStep::Ended)
            }
        }
    }
}
