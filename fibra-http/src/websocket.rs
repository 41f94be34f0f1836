//! `WebSocket`: a server's side of one RFC 6455 connection, after the upgrade: messages in
//! (fragments joined, pings answered, the close handshake done), and `WsSender` for sending
//! from any tasklet without waiting.

use std::cell::RefCell;
use std::fmt;
use std::net::SocketAddr;
use std::time::Instant;

use fibra_net::{Conn, NetExt};
use fibra_rt::Handle;

use crate::assembler::{self, Assembler, Closing, Event};
use crate::frame;
use crate::reader::{is_past, ReadEnd, Reader};
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
    pub(crate) fn may_be_sent(self) -> bool {
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
    /// The message being joined from fragments.
    assembler: Assembler,
    /// The close handshake: the code this side sent, if any.
    sent_close: Option<CloseCode>,
    closed: Option<CloseCode>,
    /// Handed to a stackless session: this one is an empty shell.
    detached: bool,
}

impl WebSocket {
    pub(crate) fn new(conn: Conn, reader: Reader, limits: Limits) -> WebSocket {
        WebSocket {
            sender: WsSender { conn },
            reader,
            limits,
            assembler: Assembler::default(),
            sent_close: None,
            closed: None,
            detached: false,
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

    /// The code it closed with, once closed.
    pub fn closed_code(&self) -> Option<CloseCode> {
        self.closed
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
            if let Some(message) = self.next_message(h, Some(deadline))? {
                return Ok(message);
            }
        }
    }

    /// The next message if it is here now, without parking: `Ok(None)` when it is not (for a
    /// WebSocket served without a tasklet while idle, see [`serve_stackless`](Self::serve_stackless)).
    ///
    /// # Errors
    ///
    /// As [`receive`](Self::receive).
    pub fn try_receive(&mut self, h: &Handle) -> Result<Option<Message>, HttpError> {
        self.next_message(h, None)
    }

    /// The next message: waiting up to `wait`'s deadline, or (`None`) only what is here.
    fn next_message(
        &mut self,
        h: &Handle,
        wait: Option<Option<Instant>>,
    ) -> Result<Option<Message>, HttpError> {
        loop {
            if let Some(code) = self.closed {
                return Err(HttpError::Closed(code));
            }
            let step = match self.assembler.step(self.reader.pending_mut(), &self.limits) {
                Ok(step) => step,
                Err(code) => return Err(self.fail(h, code)),
            };
            match step.event {
                Event::More(need) => match wait {
                    // Past the deadline, no more reading: a peer that keeps sending pings or
                    // fragments (each read served at once) would otherwise hold it for good.
                    Some(deadline) if is_past(deadline) => return Err(HttpError::TimedOut),
                    Some(deadline) => self.fill(h, need, deadline)?,
                    None => {
                        if !self.try_fill(h, need)? {
                            return Ok(None);
                        }
                    }
                },
                Event::Ping(payload) => {
                    let _ = self
                        .sender
                        .send_frame(frame::PONG, &self.reader.pending()[payload]);
                    self.reader.consume(step.used);
                }
                Event::Pong | Event::Fragment => self.reader.consume(step.used),
                Event::Close(payload) => {
                    // At most 125 bytes (a control frame's limit).
                    let mut copy = [0u8; 125];
                    let len = payload.len();
                    copy[..len].copy_from_slice(&self.reader.pending()[payload]);
                    self.reader.consume(step.used);
                    return Err(self.on_close(h, &copy[..len]));
                }
                Event::Message(message) => {
                    self.reader.consume(step.used);
                    return Ok(Some(message));
                }
            }
        }
    }

    /// Closes: sends a close frame with `code` and `reason`, waits (up to the close timeout)
    /// for the peer's close, then closes the connection. Messages that arrive meanwhile are
    /// dropped; a frame that breaks the protocol or the frame limit ends the wait at once.
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
        // `None`: a close timeout too large for the clock waits for as long as it takes.
        let deadline = fibra_rt::time::now().checked_add(self.limits.close_timeout);
        // Until the peer's close frame (answered in `on_close`), the end, or the deadline;
        // every step uses a whole frame or reads, so the loop ends.
        while self.closed.is_none() {
            match assembler::closing_step(self.reader.pending(), self.limits.max_frame) {
                Ok(Closing::Skip(used)) => self.reader.consume(used),
                Ok(Closing::PeerClosed(used)) => {
                    self.reader.consume(used);
                    self.finish(h, code);
                }
                Ok(Closing::More(need)) => {
                    // Past the deadline, no more reading: a peer that keeps sending frames
                    // (each read served at once) would otherwise hold the close for good.
                    if is_past(deadline) || self.fill(h, need, deadline).is_err() {
                        self.finish(h, code);
                    }
                }
                Err(broken) => {
                    log::debug!(
                        target: "fibra_http::websocket",
                        "a frame broke the protocol ({broken}) while closing: closed at once"
                    );
                    self.finish(h, code);
                }
            }
        }
        sent
    }

    /// The peer's close frame arrived: answers it (unless this side closed first) and ends.
    fn on_close(&mut self, h: &Handle, payload: &[u8]) -> HttpError {
        let code = match assembler::close_code(payload) {
            Ok(code) => code,
            Err(broken) => return self.fail(h, broken),
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
        self.assembler.clear();
        // What was queued (the close frame) still leaves.
        let _ = h.close(&self.sender.conn);
    }

    /// Reads what is there now, without parking; `false` when nothing was.
    fn try_fill(&mut self, h: &Handle, need: usize) -> Result<bool, HttpError> {
        let max = need.max(self.limits.max_frame.saturating_add(frame::MAX_HEADER));
        match self.reader.try_fill(h, &self.sender.conn, max) {
            Ok(got) => Ok(got),
            Err(ReadEnd::TimedOut) => Err(HttpError::TimedOut),
            Err(ReadEnd::Lost) => {
                self.closed = Some(CloseCode::ABNORMAL);
                Err(HttpError::Closed(CloseCode::ABNORMAL))
            }
        }
    }

    /// An idle WebSocket gives its buffers' memory back.
    pub(crate) fn release_idle(&mut self) {
        self.reader.release_idle();
    }

    /// Moves this WebSocket out (to a stackless session), leaving one that is closed and
    /// detached: the route's end does not close the connection.
    pub(crate) fn detach(&mut self) -> WebSocket {
        let rest = WebSocket {
            sender: self.sender.clone(),
            reader: Reader::default(),
            limits: self.limits.clone(),
            assembler: Assembler::default(),
            sent_close: self.sent_close,
            closed: Some(self.closed.unwrap_or(CloseCode::NORMAL)),
            detached: true,
        };
        std::mem::replace(self, rest)
    }

    /// Whether [`serve_stackless`](Self::serve_stackless) took the connection.
    pub(crate) fn is_detached(&self) -> bool {
        self.detached
    }

    fn fill(
        &mut self,
        h: &Handle,
        need: usize,
        deadline: Option<Instant>,
    ) -> Result<(), HttpError> {
        let max = need.max(self.limits.max_frame.saturating_add(frame::MAX_HEADER));
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
