//! `WebSocket`: a server's side of one RFC 6455 connection, after the upgrade: messages in
//! (fragments joined, pings answered, the close handshake done), and `WsSender` for sending
//! from any tasklet without waiting.

use std::cell::RefCell;
use std::fmt;
use std::net::SocketAddr;
use std::time::Instant;

use fibra_net::{Conn, NetExt};
use fibra_rt::Handle;

use crate::frame::{self, Header};
use crate::reader::{ReadEnd, Reader};
use crate::{HttpError, Limits};

/// A close code (RFC 6455 §7.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection was fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the server is going away.
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL: CloseCode = CloseCode(1002);
    /// 1003: a kind of message the endpoint cannot take.
    pub const UNSUPPORTED: CloseCode = CloseCode(1003);
    /// 1005: the peer's close carried no code (never sent).
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: the connection ended without a close frame (never sent).
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: a text message was not UTF-8.
    pub const INVALID_DATA: CloseCode = CloseCode(1007);
    /// 1008: a message broke the endpoint's policy.
    pub const POLICY: CloseCode = CloseCode(1008);
    /// 1009: a frame or message was too big.
    pub const TOO_BIG: CloseCode = CloseCode(1009);
    /// 1011: the server met an unexpected condition.
    pub const INTERNAL: CloseCode = CloseCode(1011);

    /// Whether a peer may send this code in a close frame.
    fn may_be_sent(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1011 | 3000..=4999)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            1000 => "normal",
            1001 => "going away",
            1002 => "protocol error",
            1003 => "unsupported data",
            1005 => "no status",
            1006 => "abnormal closure",
            1007 => "invalid data",
            1008 => "policy violation",
            1009 => "message too big",
            1011 => "internal error",
            _ => "code",
        };
        write!(f, "{} {name}", self.0)
    }
}

/// A whole message: its fragments joined, text checked as UTF-8.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
}

thread_local! {
    /// One frame being built, reused by every send on this thread.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Sends to one WebSocket from any tasklet (or the host) without waiting: a message is queued
/// whole, or refused with [`HttpError::Full`] at the connection's send limit. Clones refer to
/// the same connection.
#[derive(Clone)]
pub struct WsSender {
    conn: Conn,
}

impl WsSender {
    /// Queues a text message.
    ///
    /// # Errors
    ///
    /// [`HttpError::Full`] at the send limit; [`HttpError::Net`] once the connection ended.
    pub fn send_text(&self, text: &str) -> Result<(), HttpError> {
        self.send_frame(frame::TEXT, text.as_bytes())
    }

    /// Queues a binary message.
    ///
    /// # Errors
    ///
    /// As [`send_text`](Self::send_text).
    pub fn send_binary(&self, bytes: &[u8]) -> Result<(), HttpError> {
        self.send_frame(frame::BINARY, bytes)
    }

    /// Queues a ping.
    ///
    /// # Errors
    ///
    /// As [`send_text`](Self::send_text).
    pub fn ping(&self, payload: &[u8]) -> Result<(), HttpError> {
        self.send_frame(frame::PING, &payload[..payload.len().min(125)])
    }

    /// The connection.
    pub fn conn(&self) -> &Conn {
        &self.conn
    }

    fn send_frame(&self, opcode: u8, payload: &[u8]) -> Result<(), HttpError> {
        SCRATCH.with(|scratch| {
            let mut out = scratch.borrow_mut();
            out.clear();
            frame::write(&mut out, opcode, payload);
            let sent = self.conn.try_send(&out);
            if out.capacity() > 64 * 1024 {
                *out = Vec::new();
            }
            sent.map_err(HttpError::from)
        })
    }

    fn send_close(&self, code: CloseCode, reason: &str) -> Result<(), HttpError> {
        let mut payload = Vec::with_capacity(2 + reason.len());
        payload.extend_from_slice(&code.0.to_be_bytes());
        // A close frame's payload is at most 125 bytes; cut the reason at a char boundary.
        let mut end = reason.len().min(123);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        payload.extend_from_slice(&reason.as_bytes()[..end]);
        self.send_frame(frame::CLOSE, &payload)
    }
}

impl fmt::Debug for WsSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("WsSender").field(&self.conn).finish()
    }
}

/// The server's side of a WebSocket, handed to a route's handler after the upgrade. Its
/// tasklet receives with [`receive`](Self::receive), which parks like a line's receive; other
/// tasklets send through a [`WsSender`].
pub struct WebSocket {
    sender: WsSender,
    reader: Reader,
    limits: Limits,
    /// The message being joined from fragments, and its kind.
    message: Vec<u8>,
    kind: Option<u8>,
    /// How much of a text message is known to be UTF-8.
    valid: usize,
    /// The close handshake: the code this side sent, if any.
    sent_close: Option<CloseCode>,
    closed: Option<CloseCode>,
}

impl WebSocket {
    pub(crate) fn new(conn: Conn, reader: Reader, limits: Limits) -> WebSocket {
        WebSocket {
            sender: WsSender { conn },
            reader,
            limits,
            message: Vec::new(),
            kind: None,
            valid: 0,
            sent_close: None,
            closed: None,
        }
    }

    /// A sender for other tasklets.
    pub fn sender(&self) -> WsSender {
        self.sender.clone()
    }

    /// The connection (to add it to a [`Group`](fibra_net::Group), set its framing...).
    pub fn conn(&self) -> &fibra_net::Conn {
        &self.sender.conn
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.sender.conn.peer_addr()
    }

    /// Queues a text message (see [`WsSender::send_text`]).
    ///
    /// # Errors
    ///
    /// As [`WsSender::send_text`].
    pub fn send_text(&self, text: &str) -> Result<(), HttpError> {
        self.sender.send_text(text)
    }

    /// Queues a binary message.
    ///
    /// # Errors
    ///
    /// As [`WsSender::send_text`].
    pub fn send_binary(&self, bytes: &[u8]) -> Result<(), HttpError> {
        self.sender.send_binary(bytes)
    }

    /// Whether the close handshake has ended (or the connection was lost).
    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// Waits for the next message. Pings are answered and pongs taken on the way; a close
    /// from the peer is answered and ends the connection.
    ///
    /// # Errors
    ///
    /// [`HttpError::Closed`] with the peer's code when it closed, with 1006 when the
    /// connection ended without a close, or with the code this side closed with when the
    /// peer broke a rule: 1002 (protocol: an unmasked frame, reserved bits, a bad opcode, a
    /// fragmented or oversized control frame, a continuation out of place), 1007 (text not
    /// UTF-8) or 1009 (a frame or message over the [`Limits`]).
    pub fn receive(&mut self, h: &Handle) -> Result<Message, HttpError> {
        self.receive_until(h, None)
    }

    /// The old name of [`receive`](Self::receive).
    ///
    /// # Errors
    ///
    /// As [`receive`](Self::receive).
    #[deprecated(since = "0.2.0", note = "renamed to `receive`")]
    pub fn recv(&mut self, h: &Handle) -> Result<Message, HttpError> {
        self.receive(h)
    }

    /// The old name of [`receive_until`](Self::receive_until).
    ///
    /// # Errors
    ///
    /// As [`receive_until`](Self::receive_until).
    #[deprecated(since = "0.2.0", note = "renamed to `receive_until`")]
    pub fn recv_until(
        &mut self,
        h: &Handle,
        deadline: Option<Instant>,
    ) -> Result<Message, HttpError> {
        self.receive_until(h, deadline)
    }

    /// Like [`receive`](Self::receive), giving up at `deadline` with [`HttpError::TimedOut`]
    /// (the WebSocket stays usable; a partly received message is kept).
    ///
    /// # Errors
    ///
    /// As [`receive`](Self::receive), and [`HttpError::TimedOut`].
    pub fn receive_until(
        &mut self,
        h: &Handle,
        deadline: Option<Instant>,
    ) -> Result<Message, HttpError> {
        loop {
            if let Some(code) = self.closed {
                return Err(HttpError::Closed(code));
            }
            let header = match Header::parse(self.reader.pending()) {
                Some(header) => header,
                None => {
                    self.fill(h, 14, deadline)?;
                    continue;
                }
            };
            if let Some(code) = self.check(&header) {
                return Err(self.fail(h, code));
            }
            let total = header.size + header.len as usize;
            if self.reader.pending().len() < total {
                self.fill(h, total, deadline)?;
                continue;
            }
            let mask = header.mask.unwrap_or_default();
            frame::unmask(&mut self.reader.pending_mut()[header.size..total], mask);
            let payload_range = header.size..total;
            match header.opcode {
                frame::PING => {
                    let payload = self.reader.pending()[payload_range].to_vec();
                    self.reader.consume(total);
                    let _ = self.sender.send_frame(frame::PONG, &payload);
                }
                frame::PONG => self.reader.consume(total),
                frame::CLOSE => {
                    let payload = self.reader.pending()[payload_range].to_vec();
                    self.reader.consume(total);
                    return Err(self.on_close(h, &payload));
                }
                opcode => {
                    let starts = opcode != frame::CONTINUATION;
                    if starts == self.kind.is_some() {
                        // A new message inside one, or a continuation of none.
                        return Err(self.fail(h, crate::CloseCode::PROTOCOL));
                    }
                    if self.message.len() + (total - header.size) > self.limits.max_message {
                        return Err(self.fail(h, crate::CloseCode::TOO_BIG));
                    }
                    if starts {
                        self.kind = Some(opcode);
                    }
                    self.message
                        .extend_from_slice(&self.reader.pending()[payload_range]);
                    self.reader.consume(total);
                    // Fails fast: bad UTF-8 in a fragment ends the message at once, not at
                    // its last fragment (an incomplete character at the end may go on).
                    if self.kind == Some(frame::TEXT) {
                        match std::str::from_utf8(&self.message[self.valid..]) {
                            Ok(_) => self.valid = self.message.len(),
                            Err(e) if e.error_len().is_some() => {
                                return Err(self.fail(h, CloseCode::INVALID_DATA));
                            }
                            Err(e) => self.valid += e.valid_up_to(),
                        }
                    }
                    if header.fin {
                        self.valid = 0;
                        let bytes = std::mem::take(&mut self.message);
                        return match self.kind.take() {
                            Some(frame::TEXT) => match String::from_utf8(bytes) {
                                Ok(text) => Ok(Message::Text(text)),
                                Err(_) => Err(self.fail(h, CloseCode::INVALID_DATA)),
                            },
                            _ => Ok(Message::Binary(bytes)),
                        };
                    }
                }
            }
        }
    }

    /// Closes: sends a close frame with `code` and `reason`, waits (up to the close timeout)
    /// for the peer's close, then closes the connection. Messages that arrive meanwhile are
    /// dropped.
    ///
    /// # Errors
    ///
    /// None that matter: the connection is closed either way; a failure to send is returned.
    pub fn close(&mut self, h: &Handle, code: CloseCode, reason: &str) -> Result<(), HttpError> {
        if self.closed.is_some() {
            return Ok(());
        }
        let sent = self.sender.send_close(code, reason);
        self.sent_close = Some(code);
        let deadline = Instant::now() + self.limits.close_timeout;
        // Until the peer's close frame (answered in `on_close`), the end, or the deadline.
        while self.closed.is_none() {
            match Header::parse(self.reader.pending()) {
                Some(header)
                    if self.reader.pending().len() >= header.size + header.len as usize =>
                {
                    let total = header.size + header.len as usize;
                    if header.opcode == frame::CLOSE {
                        self.reader.consume(total);
                        self.finish(h, code);
                    } else {
                        self.reader.consume(total);
                    }
                }
                Some(header) if header.len as usize > self.limits.max_frame => self.finish(h, code),
                _ => {
                    let need = self.limits.max_frame + 14;
                    if self.fill(h, need, Some(deadline)).is_err() {
                        self.finish(h, code);
                    }
                }
            }
        }
        sent
    }

    /// The rule `header` breaks, if any.
    fn check(&self, header: &Header) -> Option<CloseCode> {
        let known = matches!(
            header.opcode,
            frame::CONTINUATION
                | frame::TEXT
                | frame::BINARY
                | frame::CLOSE
                | frame::PING
                | frame::PONG
        );
        if header.rsv != 0 || !known || header.mask.is_none() {
            return Some(CloseCode::PROTOCOL);
        }
        if header.is_control() && (!header.fin || header.len > 125) {
            return Some(CloseCode::PROTOCOL);
        }
        if header.len > self.limits.max_frame as u64 {
            return Some(CloseCode::TOO_BIG);
        }
        None
    }

    /// The peer's close frame arrived: answers it (unless this side closed first) and ends.
    fn on_close(&mut self, h: &Handle, payload: &[u8]) -> HttpError {
        let code = match payload.len() {
            0 => CloseCode::NO_STATUS,
            1 => return self.fail(h, CloseCode::PROTOCOL),
            _ => {
                let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
                if !code.may_be_sent() {
                    return self.fail(h, CloseCode::PROTOCOL);
                }
                if std::str::from_utf8(&payload[2..]).is_err() {
                    return self.fail(h, CloseCode::INVALID_DATA);
                }
                code
            }
        };
        if self.sent_close.is_none() {
            let answer = if code == CloseCode::NO_STATUS {
                CloseCode::NORMAL
            } else {
                code
            };
            let _ = self.sender.send_close(answer, "");
            self.sent_close = Some(answer);
        }
        self.finish(h, code);
        HttpError::Closed(code)
    }

    /// The peer broke a rule: closes with `code` (without waiting for its answer).
    fn fail(&mut self, h: &Handle, code: CloseCode) -> HttpError {
        log::debug!(target: "fibra_http::websocket", "closing a WebSocket: {code}");
        if self.sent_close.is_none() {
            let _ = self.sender.send_close(code, "");
            self.sent_close = Some(code);
        }
        self.finish(h, code);
        HttpError::Closed(code)
    }

    fn finish(&mut self, h: &Handle, code: CloseCode) {
        self.closed = Some(code);
        self.message = Vec::new();
        // What was queued (the close frame) still leaves.
        let _ = h.close(&self.sender.conn);
    }

    fn fill(
        &mut self,
        h: &Handle,
        need: usize,
        deadline: Option<Instant>,
    ) -> Result<(), HttpError> {
        let max = need.max(self.limits.max_frame + 14);
        match self.reader.fill(h, &self.sender.conn, max, deadline) {
            Ok(()) => Ok(()),
            Err(ReadEnd::TimedOut) => Err(HttpError::TimedOut),
            Err(ReadEnd::Lost) => {
                self.closed = Some(CloseCode::ABNORMAL);
                Err(HttpError::Closed(CloseCode::ABNORMAL))
            }
        }
    }
}

impl fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocket")
            .field("conn", &self.sender.conn)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}
