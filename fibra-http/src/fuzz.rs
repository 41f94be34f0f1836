//! Socket-free entry points into the parsers, for the fuzz targets in `fuzz/`: the very code
//! the server runs on a connection's bytes, without the connection. Not part of the API
//! (hidden from the docs, no stability promise).

use std::ops::Range;

use crate::assembler::{self, Assembler, Event};
use crate::chunked::ChunkedDecoder;
use crate::{head, Limits, Message, Request};

/// A request head parsed and checked as the server does it.
#[derive(Debug)]
pub struct Head {
    /// The request, without its body.
    pub request: Request,
    /// The head's length in bytes.
    pub len: usize,
    /// The body's length by `Content-Length` (0 when absent), or `None` when chunked.
    pub body: Option<usize>,
}

/// The head at the start of `buf`: `Ok(None)` while incomplete, `Err` with the status the
/// server answers.
///
/// # Errors
///
/// The status (400, 413, 414, 431, 501).
pub fn parse_head(buf: &[u8], limits: &Limits) -> Result<Option<Head>, u16> {
    Ok(head::parse(buf, limits)?.map(|h| Head {
        request: h.request,
        len: h.len,
        body: match h.body {
            head::BodyLength::Exactly(n) => Some(n),
            head::BodyLength::Chunked => None,
        },
    }))
}

/// The server's chunked-body decoder.
#[derive(Clone, Debug)]
pub struct Chunked(ChunkedDecoder);

impl Chunked {
    /// A decoder for a body of at most `max_body` bytes, size lines of at most `max_line`,
    /// trailers of at most `max_trailers`.
    pub fn new(max_body: usize, max_line: usize, max_trailers: usize) -> Chunked {
        Chunked(ChunkedDecoder::new(max_body, max_line, max_trailers))
    }

    /// Decodes from `input` into `body`; how many bytes were used.
    ///
    /// # Errors
    ///
    /// The status: 413 or 400.
    pub fn decode(&mut self, input: &[u8], body: &mut Vec<u8>) -> Result<usize, u16> {
        self.0.decode(input, body)
    }

    /// Whether the body ended.
    pub fn is_done(&self) -> bool {
        self.0.is_done()
    }
}

/// What one step of a WebSocket's frame reader found.
#[derive(Debug, PartialEq, Eq)]
pub enum WsEvent {
    /// Needs more bytes (up to this many pending would do).
    More(usize),
    /// A ping, its payload at this range.
    Ping(Range<usize>),
    /// A pong.
    Pong,
    /// The peer's close, its payload at this range.
    Close(Range<usize>),
    /// A fragment of a message that goes on.
    Fragment,
    /// A whole message.
    Message(Message),
}

/// A WebSocket's frame reader: frames to messages, as [`WebSocket::recv`](crate::WebSocket::recv)
/// reads them.
#[derive(Debug, Default)]
pub struct WsReader(Assembler);

impl WsReader {
    /// One step over `pending`: how many bytes it used, and what it found.
    ///
    /// # Errors
    ///
    /// The close code the server closes with.
    pub fn step(&mut self, pending: &mut [u8], limits: &Limits) -> Result<(usize, WsEvent), u16> {
        let step = self.0.step(pending, limits).map_err(|c| c.0)?;
        let event = match step.event {
            Event::More(n) => WsEvent::More(n),
            Event::Ping(r) => WsEvent::Ping(r),
            Event::Pong => WsEvent::Pong,
            Event::Close(r) => WsEvent::Close(r),
            Event::Fragment => WsEvent::Fragment,
            Event::Message(m) => WsEvent::Message(m),
        };
        Ok((step.used, event))
    }
}

/// The code in a peer's close payload (`Ok`), or the code the server fails with (`Err`).
///
/// # Errors
///
/// 1002 or 1007.
pub fn close_code(payload: &[u8]) -> Result<u16, u16> {
    assembler::close_code(payload).map(|c| c.0).map_err(|c| c.0)
}

/// What the close path does with its pending bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Closing {
    /// Waits for more (up to this many pending would do).
    More(usize),
    /// Drops a frame of this many bytes.
    Skip(usize),
    /// Takes the peer's close, of this many bytes, and ends.
    PeerClosed(usize),
}

/// One step of [`WebSocket::close`](crate::WebSocket::close)'s wait over `pending`.
///
/// # Errors
///
/// The code of the rule a frame broke: the server ends the connection at once.
pub fn closing_step(pending: &[u8], max_frame: usize) -> Result<Closing, u16> {
    Ok(
        match assembler::closing_step(pending, max_frame).map_err(|c| c.0)? {
            assembler::Closing::More(n) => Closing::More(n),
            assembler::Closing::Skip(n) => Closing::Skip(n),
            assembler::Closing::PeerClosed(n) => Closing::PeerClosed(n),
        },
    )
}
