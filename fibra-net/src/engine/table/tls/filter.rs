//! The table's TLS steps: a connection's handshake started and bounded, ciphertext read and
//! decrypted into the input buffer, the output queue encrypted as it is written, and what
//! ends a TLS connection.

use std::time::Instant;

use fibra_rt::Context;

use super::super::input::ReadStep;
use super::super::timers::TimerKind;
use super::super::waiters::{Parked, Wait};
use super::super::{conn_mut, Table};
use super::session::ReadFailure;
use crate::api::error::Lost;
use crate::engine::shared::Key;
use crate::tls::TlsLost;

impl Table {
    /// A TLS connection is connected (accepted, or a client's TCP handshake done): its TLS
    /// handshake has `timeout` to finish; a client's first flight goes out this round.
    /// `connecting`: the client's connect, told at the end of the handshake.
    pub(in crate::engine::table) fn tls_started(
        &mut self,
        key: Key,
        connecting: Option<Parked>,
        now: Instant,
    ) {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            if let Some(p) = connecting {
                self.waiters.orphan(p, Wait::Connect(key.slot));
            }
            return;
        };
        let timeout = c.options.handshake_timeout;
        let Some(tls) = c.tls.as_mut() else {
            if let Some(p) = connecting {
                self.waiters.orphan(p, Wait::Connect(key.slot));
            }
            return;
        };
        tls.connecting = connecting;
        tls.deadline = now.checked_add(timeout);
        if let Some(at) = tls.deadline {
            self.timers.arm(at, TimerKind::Handshake, key);
        }
        let writes = tls.wants_write();
        if writes {
            self.mark_dirty(key);
        }
    }

    /// The handshake timer armed for `at` fell due.
    pub(in crate::engine::table) fn handshake_timer(
        &mut self,
        key: Key,
        at: Instant,
        cx: &mut Context<'_>,
    ) {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return;
        };
        let timeout = c.options.handshake_timeout;
        let Some(tls) = c.tls.as_mut() else {
            return;
        };
        if tls.deadline != Some(at) || !tls.is_handshaking() {
            return;
        }
        tls.deadline = None;
        log::debug!(target: "fibra_net",
            "TLS handshake with {} not done within {timeout:?}", c.peer);
        self.tls_failed(
            key,
            Lost::Tls(TlsLost::HandshakeTimedOut { after: timeout }),
            cx,
        );
    }

    /// The TLS filter's input ended with `lost` (a TLS failure, the handshake's timeout,
    /// a reset): the connection is lost, and its output ends where `lost` says nothing
    /// more can be sent, even where the connection was lost before (a close on this
    /// side waiting for the handshake to carry its output: its closer is told why now,
    /// not at the close timeout).
    fn tls_failed(&mut self, key: Key, lost: Lost, cx: &mut Context<'_>) {
        self.lose(key, lost, cx);
        if !lost.can_send() {
            self.end_output(key, lost, cx);
        }
    }

    /// One step of a TLS connection's input: decrypted bytes into the input buffer, or
    /// ciphertext from the socket into rustls.
    pub(in crate::engine::table) fn tls_read_step(
        &mut self,
        key: Key,
        cx: &mut Context<'_>,
    ) -> ReadStep {
        use std::io::ErrorKind;

        let round = self.round;
        let short_read_drains = self.short_read_drains;
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return ReadStep::Ended;
        };
        let Some(sock) = c.state.connected_socket() else {
            return match c.state.socket() {
                Some(_) => ReadStep::Wait { budget: false },
                None => ReadStep::Ended,
            };
        };
        let Some(tls) = c.tls.as_mut() else {
            return ReadStep::Ended;
        };
        let input = &mut c.input;
        // Decrypted bytes first.
        let limit = c
            .options
            .max_frame
            .saturating_add(super::super::input::FRAMING_SLACK);
        let spare = input
            .buf
            .spare(&mut self.pool, super::super::input::MIN_READ, limit);
        if spare.is_empty() {
            return ReadStep::Full;
        }
        let end = match tls.read_plain(spare) {
            Ok(0) => Some(Lost::Eof),
            Ok(n) => {
                input.buf.commit(n);
                // The peer spoke: an answer to it is not held back by the flush delay.
                c.output.last_write = None;
                return ReadStep::Data;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => None,
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => Some(if tls.is_handshaking() {
                Lost::Tls(TlsLost::Handshake {
                    reason: "the peer closed the connection during the handshake",
                })
            } else {
                Lost::Tls(TlsLost::NoCloseNotify)
            }),
            Err(_) => Some(Lost::Tls(TlsLost::Protocol {
                reason: "the connection failed earlier",
            })),
        };
        if let Some(lost) = end {
            input.buf.release_if_empty(&mut self.pool);
            if lost != Lost::Eof {
                log::debug!(target: "fibra_net", "connection from {}: {lost}", c.peer);
            }
            self.tls_failed(key, lost, cx);
            return ReadStep::Ended;
        }
        input.buf.release_if_empty(&mut self.pool);
        // Then ciphertext from the socket (rustls holds no decrypted byte now, so its
        // `read_tls` never refuses for a full plaintext buffer).
        if !input.readable {
            return ReadStep::Wait { budget: false };
        }
        if input.round != round {
            input.round = round;
            input.in_round = 0;
        }
        if input.in_round >= super::super::input::READ_BUDGET {
            return ReadStep::Wait { budget: true };
        }
        self.counters.reads += 1;
        let lost = match tls.read_socket(sock) {
            // The end of the stream: the reader says whether a close_notify came first.
            Ok((0, _)) => return ReadStep::Data,
            Ok((n, short)) => {
                input.in_round += n;
                if c.options.read_timeout.is_some() {
                    input.last_read = cx.now();
                }
                if short && short_read_drains && !input.read_closed {
                    input.readable = false;
                }
                match tls.process() {
                    Ok(done) => {
                        let writes = tls.wants_write();
                        if done {
                            tls.deadline = None;
                            self.timers.disarm(TimerKind::Handshake, key);
                            self.tls_handshake_done(key, cx);
                        }
                        if writes {
                            self.mark_dirty(key);
                        }
                        return ReadStep::Data;
                    }
                    Err(why) => {
                        // The alert rustls queued goes now, if the socket takes it.
                        tls.send_alert(sock);
                        // Records decrypted before the bad one were genuine: their frames
                        // are still delivered, as a plain connection's are before its end.
                        loop {
                            let spare = input.buf.spare(&mut self.pool, 1, limit);
                            match tls.read_plain(spare) {
                                Ok(n) if n > 0 => input.buf.commit(n),
                                _ => break,
                            }
                        }
                        input.buf.release_if_empty(&mut self.pool);
                        Lost::Tls(why)
                    }
                }
            }
            Err(ReadFailure::Io(e)) if e.kind() == ErrorKind::WouldBlock => {
                input.readable = false;
                return ReadStep::Wait { budget: false };
            }
            // rustls's buffer is full: during the handshake, a handshake message over the
            // 64 KiB rustls holds (its records may each be lawful); after it, a record
            // over the limit.
            Err(ReadFailure::Io(e)) if e.kind() == ErrorKind::InvalidData => {
                Lost::Tls(if tls.is_handshaking() {
                    TlsLost::Handshake {
                        reason: "a handshake message over the 64 KiB limit",
                    }
                } else {
                    TlsLost::RecordTooLarge
                })
            }
            Err(ReadFailure::Io(e)) => {
                log::debug!(target: "fibra_net", "receive from {}: {e}", c.peer);
                Lost::from_io(&e)
            }
            Err(ReadFailure::Tls(why)) => Lost::Tls(why),
        };
        log::debug!(target: "fibra_net", "connection from {}: {lost}", c.peer);
        self.tls_failed(key, lost, cx);
        ReadStep::Ended
    }

    /// The handshake is done: a client's connect returns; output queued meanwhile goes.
    fn tls_handshake_done(&mut self, key: Key, cx: &mut Context<'_>) {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return;
        };
        log::trace!(target: "fibra_net", "TLS handshake with {} done", c.peer);
        let connecting = c.tls.as_mut().and_then(|t| t.connecting.take());
        if !c.output.is_empty() {
            self.mark_dirty(key);
        }
        if let Some(parked) = connecting {
            let conn = self.conn(key);
            self.waiters
                .complete::<crate::ops::Connect>(cx, parked, Ok(conn));
        }
    }

    /// A TLS connection is lost: a connect still waiting for the handshake fails with `lost`
    /// (and the connection, which nobody holds, goes).
    pub(in crate::engine::table) fn tls_lost(
        &mut self,
        key: Key,
        lost: Lost,
        cx: &mut Context<'_>,
    ) {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return;
        };
        let Some(parked) = c.tls.as_mut().and_then(|t| t.connecting.take()) else {
            return;
        };
        c.released = true;
        self.waiters
            .complete::<crate::ops::Connect>(cx, parked, Err(lost.into()));
        self.end_output(key, lost, cx);
    }

    /// Writes a TLS connection's output: encrypts the queue's bytes as the socket takes the
    /// records; `close_notify` after the last byte of a closing connection. `Err` with the
    /// loss when the socket failed.
    pub(in crate::engine::table) fn tls_write(&mut self, key: Key) -> Result<(), Lost> {
        use crate::engine::buffer::MAX_SLICES;
        use std::io::IoSlice;

        let Some(c) = conn_mut(&mut self.entries, key) else {
            return Ok(());
        };
        let closing = c.state.is_closing();
        let (Some(sock), Some(tls)) = (c.state.connected_socket(), c.tls.as_mut()) else {
            return Ok(());
        };
        let output = &mut c.output;
        loop {
            if output.writable {
                self.counters.writes += u64::from(tls.wants_write());
                match tls.write_records(sock) {
                    Ok(true) => {}
                    Ok(false) => output.writable = false,
                    Err(e) => {
                        log::debug!(target: "fibra_net", "send to {}: {e}", c.peer);
                        return Err(Lost::from_io(&e));
                    }
                }
            }
            if !output.writable || tls.is_handshaking() {
                return Ok(());
            }
            if output.buf.is_empty() {
                if closing && !tls.notified {
                    tls.close_notify();
                    continue;
                }
                return Ok(());
            }
            let taken = match output.buf.single() {
                Some(bytes) => tls.encrypt(&[IoSlice::new(bytes)]),
                None => {
                    let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                    let (n, _) = output.buf.slices(&mut slices);
                    tls.encrypt(&slices[..n])
                }
            };
            match taken {
                Ok(0) if !tls.wants_write() => return Ok(()),
                Ok(n) => output.buf.advance(n, &mut self.pool),
                Err(e) => {
                    log::debug!(target: "fibra_net", "TLS to {}: {e}", c.peer);
                    return Err(Lost::Tls(TlsLost::Protocol {
                        reason: "the connection failed earlier",
                    }));
                }
            }
        }
    }
}
