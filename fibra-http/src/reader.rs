//! `Reader`: one connection's bytes not yet used, read raw and bounded, so that a parser can
//! look at as much as it needs and leave the rest (a pipelined request, a WebSocket frame
//! sent right after the handshake) where the next parse finds it.

use std::time::Instant;

use fibra_net::ops::{Receive, Tried, TryReceive};
use fibra_net::{Conn, Lost, NetError, NetExt};
use fibra_rt::Handle;

/// Why no more bytes came.
#[derive(Debug)]
pub(crate) enum ReadEnd {
    /// The deadline passed.
    TimedOut,
    /// The connection ended (the peer closed it, or it was lost).
    Lost,
}

/// The most buffer memory a reader keeps between frames, each of its two buffers.
const KEEP: usize = 16 * 1024;

#[derive(Debug, Default)]
pub(crate) struct Reader {
    buf: Vec<u8>,
    /// Bytes of `buf` already used.
    start: usize,
    scratch: Vec<u8>,
}

impl Reader {
    /// The bytes not yet used.
    pub(crate) fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Mutable access to the bytes not yet used (to unmask a frame in place).
    pub(crate) fn pending_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..]
    }

    /// Marks `n` bytes as used.
    pub(crate) fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
            // Between frames a connection keeps no large buffer: one large message must not
            // cost it a large buffer for the rest of its life (a thousand idle WebSockets that
            // each once took a 64 KiB frame would hold 128 MiB).
            if self.buf.capacity() > KEEP {
                self.buf = Vec::new();
            }
            if self.scratch.capacity() > KEEP {
                self.scratch = Vec::new();
            }
        }
    }

    /// Reads more, so that at most `max` bytes are pending; waits until some come, up to
    /// `deadline`.
    pub(crate) fn fill(
        &mut self,
        h: &Handle,
        conn: &Conn,
        max: usize,
        deadline: Option<Instant>,
    ) -> Result<(), ReadEnd> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let room = max.saturating_sub(self.buf.len()).max(1);
        let op = Receive::raw(conn, std::mem::take(&mut self.scratch), room.min(64 * 1024));
        let got = match deadline {
            Some(deadline) => match h.yield_op_until(op, deadline) {
                Ok(got) => got,
                Err(_) => return Err(ReadEnd::TimedOut),
            },
            None => h.yield_op(op),
        };
        match got {
            Ok(bytes) => {
                self.buf.extend_from_slice(&bytes);
                self.scratch = bytes;
                Ok(())
            }
            Err(NetError::Lost(Lost::TimedOut) | NetError::TimedOut) => Err(ReadEnd::TimedOut),
            Err(e) => {
                log::trace!(target: "fibra_http", "connection ended: {e}");
                Err(ReadEnd::Lost)
            }
        }
    }

    /// Like [`fill`](Self::fill), but only what is there now: `Ok(false)` when nothing is.
    pub(crate) fn try_fill(
        &mut self,
        h: &Handle,
        conn: &Conn,
        max: usize,
    ) -> Result<bool, ReadEnd> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let room = max.saturating_sub(self.buf.len()).max(1);
        let op = TryReceive::raw(conn, std::mem::take(&mut self.scratch), room.min(64 * 1024));
        match h.try_receive(op) {
            Tried::Frame(bytes) => {
                self.buf.extend_from_slice(&bytes);
                self.scratch = bytes;
                Ok(true)
            }
            Tried::Nothing(scratch) => {
                self.scratch = scratch;
                Ok(false)
            }
            Tried::Failed(NetError::Lost(Lost::TimedOut) | NetError::TimedOut) => {
                Err(ReadEnd::TimedOut)
            }
            Tried::Failed(e) => {
                log::trace!(target: "fibra_http", "connection ended: {e}");
                Err(ReadEnd::Lost)
            }
        }
    }

    /// Gives back the buffers' memory when nothing is pending (an idle connection).
    pub(crate) fn release_idle(&mut self) {
        if self.pending().is_empty() {
            self.buf = Vec::new();
            self.start = 0;
            self.scratch = Vec::new();
        }
    }
}

/// Whether `deadline` has passed. A read that is ready at once completes whatever its
/// deadline, so a loop of reads against a peer that keeps sending checks this itself (the
/// WebSocket close, `receive_until`, the HTTP linger).
pub(crate) fn is_past(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| fibra_rt::time::now() >= d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_frame_leaves_no_large_buffer_once_used() {
        let mut r = Reader {
            buf: vec![7; 64 * 1024],
            start: 0,
            scratch: Vec::with_capacity(64 * 1024),
        };
        r.consume(1000);
        assert_eq!(r.pending().len(), 63 * 1024 + 24, "part used: kept");
        assert!(r.scratch.capacity() >= 64 * 1024, "mid-frame: kept");
        r.consume(r.pending().len());
        assert_eq!(r.buf.capacity(), 0);
        assert_eq!(r.scratch.capacity(), 0);
        // Small buffers are kept, to be reused.
        let mut r = Reader {
            buf: vec![7; 100],
            start: 0,
            scratch: Vec::with_capacity(4096),
        };
        r.consume(100);
        assert!(r.buf.capacity() >= 100 && r.scratch.capacity() >= 4096);
    }
}
