//! `Assembler`: a WebSocket's incoming frames turned into messages without I/O, one frame a
//! step (fragments joined within `max_message`, text checked as UTF-8 as it comes, control
//! frames passed up), and the close path's frame skipping. [`WebSocket`](crate::WebSocket)
//! drives both over its connection; the fuzz targets drive them over bytes.

use std::ops::Range;

use crate::frame::{self, MAX_HEADER};
use crate::{CloseCode, Limits, Message};

/// What one step found at the start of the pending bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// More bytes are needed: up to this many pending would hold the frame.
    More(usize),
    /// A ping, its payload at this range of the pending bytes (unmasked).
    Ping(Range<usize>),
    /// A pong.
    Pong,
    /// The peer's close, its payload at this range (unmasked).
    Close(Range<usize>),
    /// A fragment of a message that goes on.
    Fragment,
    /// A whole message.
    Message(Message),
}

/// One step: the event, and how many pending bytes it used (consume them after reading
/// any range the event names).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Step {
    pub(crate) used: usize,
    pub(crate) event: Event,
}

/// The message being joined from fragments.
#[derive(Debug, Default)]
pub(crate) struct Assembler {
    message: Vec<u8>,
    /// The message's kind (text or binary) while one is open.
    kind: Option<u8>,
    /// How much of a text message is known to be UTF-8.
    valid: usize,
}

impl Assembler {
    /// Takes the frame at the start of `pending` if it is whole, unmasking it in place.
    ///
    /// # Errors
    ///
    /// The code to close with: 1002 for a frame against the protocol (see
    /// [`Header::violation`](frame::Header::violation)) or a continuation out of place, 1007
    /// for text that is not UTF-8, 1009 for a frame or message over the [`Limits`].
    pub(crate) fn step(&mut self, pending: &mut [u8], limits: &Limits) -> Result<Step, CloseCode> {
        let more = |need: usize| Step {
            used: 0,
            event: Event::More(need),
        };
        let Some(frame) = frame::next(pending, limits.max_frame)? else {
            return Ok(more(MAX_HEADER));
        };
        if pending.len() < frame.total {
            return Ok(more(frame.total));
        }
        let (header, payload) = (frame.header, frame.payload());
        frame::unmask(
            &mut pending[payload.clone()],
            header.mask.unwrap_or_default(),
        );
        let event = match header.opcode {
            frame::PING => Event::Ping(payload),
            frame::PONG => Event::Pong,
            frame::CLOSE => Event::Close(payload),
            opcode => self.data(opcode, header.fin, &pending[payload], limits)?,
        };
        Ok(Step {
            used: frame.total,
            event,
        })
    }

    /// A data frame (text, binary or continuation) with its unmasked payload.
    fn data(
        &mut self,
        opcode: u8,
        fin: bool,
        payload: &[u8],
        limits: &Limits,
    ) -> Result<Event, CloseCode> {
        let starts = opcode != frame::CONTINUATION;
        if starts == self.kind.is_some() {
            // A new message inside one, or a continuation of none.
            return Err(CloseCode::PROTOCOL);
        }
        if payload.len() > limits.max_message.saturating_sub(self.message.len()) {
            return Err(CloseCode::TOO_BIG);
        }
        if starts {
            self.kind = Some(opcode);
        }
        self.message.extend_from_slice(payload);
        // Fails fast: bad UTF-8 in a fragment ends the message at once, not at its last
        // fragment (an incomplete character at the end may go on).
        if self.kind == Some(frame::TEXT) {
            match std::str::from_utf8(&self.message[self.valid..]) {
                Ok(_) => self.valid = self.message.len(),
                Err(e) if e.error_len().is_some() => return Err(CloseCode::INVALID_DATA),
                Err(e) => self.valid += e.valid_up_to(),
            }
        }
        if !fin {
            return Ok(Event::Fragment);
        }
        self.valid = 0;
        let bytes = std::mem::take(&mut self.message);
        match self.kind.take() {
            Some(frame::TEXT) => String::from_utf8(bytes)
                .map(Message::Text)
                .map_err(|_| CloseCode::INVALID_DATA),
            _ => Ok(Message::Binary(bytes)),
        }
        .map(Event::Message)
    }

    /// Drops any message being joined and its memory.
    pub(crate) fn clear(&mut self) {
        *self = Assembler::default();
    }
}

/// The code in a peer's close payload: `Ok` with it (1005 when there is none), or `Err`
/// with the code to fail with (1002 for a one-byte payload or a code a peer may not send,
/// 1007 for a reason that is not UTF-8).
pub(crate) fn close_code(payload: &[u8]) -> Result<CloseCode, CloseCode> {
    match payload {
        [] => Ok(CloseCode::NO_STATUS),
        [_] => Err(CloseCode::PROTOCOL),
        [hi, lo, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
            if !code.may_be_sent() {
                Err(CloseCode::PROTOCOL)
            } else if std::str::from_utf8(reason).is_err() {
                Err(CloseCode::INVALID_DATA)
            } else {
                Ok(code)
            }
        }
    }
}

/// What the close path does with the pending bytes while it waits for the peer's close.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Closing {
    /// Wait for more: up to this many pending would hold the frame.
    More(usize),
    /// Drop a frame of this many bytes (a message that arrived meanwhile).
    Skip(usize),
    /// The peer's close frame, of this many bytes: the handshake is done.
    PeerClosed(usize),
}

/// One step of the close path over `pending`.
///
/// # Errors
///
/// When the frame breaks a rule (its code): the close path stops waiting and ends the
/// connection, as nothing sane can follow.
pub(crate) fn closing_step(pending: &[u8], max_frame: usize) -> Result<Closing, CloseCode> {
    match frame::next(pending, max_frame)? {
        None => Ok(Closing::More(MAX_HEADER)),
        Some(frame) if pending.len() < frame.total => Ok(Closing::More(frame.total)),
        Some(frame) if frame.header.opcode == frame::CLOSE => Ok(Closing::PeerClosed(frame.total)),
        Some(frame) => Ok(Closing::Skip(frame.total)),
    }
}
