//! `Limits`: what one HTTP or WebSocket connection may send and how long it may take.

use std::time::Duration;

/// Bounds on what a client may send, so that nothing it sends makes memory unbounded or a
/// tasklet wait for ever. Each bound has its answer: a request line too long gets 414, a head
/// too large 431, a body too large 413, a head too slow 408, a peer that does not read its answers is cut off; on a WebSocket, a frame or
/// message too large is closed with 1009. A timeout too large for the clock (such as
/// `Duration::MAX`) means no timeout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The request line and headers together, in bytes (default 8 KiB); also the bound of a
    /// chunk-size line and of a chunked body's trailers.
    pub max_head: usize,
    /// At most this many headers (default 64).
    pub max_headers: usize,
    /// A request body, in bytes (default 1 MiB).
    pub max_body: usize,
    /// How long the first request's head may take to arrive (default 10 s).
    pub head_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request (default 5 s).
    pub keep_alive_timeout: Duration,
    /// A WebSocket frame's payload, in bytes (default 64 KiB).
    pub max_frame: usize,
    /// A WebSocket message, all its fragments together, in bytes (default 1 MiB).
    pub max_message: usize,
    /// How long an answer may wait for room in the connection's output (default 10 s): a
    /// peer that does not read its answers is cut off then.
    pub send_timeout: Duration,
    /// How long a WebSocket close handshake may wait for the peer's close (default 2 s); also
    /// how long an HTTP connection closed while the peer still sends reads and drops its
    /// bytes, waiting for its end, so that the close does not reset away the last answers.
    pub close_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 8 * 1024,
            max_headers: 64,
            max_body: 1024 * 1024,
            head_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(5),
            max_frame: 64 * 1024,
            max_message: 1024 * 1024,
            send_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(2),
        }
    }
}
