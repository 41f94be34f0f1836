//! The reply reader without a socket, for the fuzzer (`fuzz/fuzz_targets/redis_reply.rs`):
//! bytes arrive in pieces, the scanner finds where each reply ends, and the decoder builds
//! it, exactly as [`Connection`](crate::Connection) reads a server's replies.

use crate::config::Protocol;
use crate::connection::{decode, ReadError};
use crate::scan::{ScanError, Scanner};
use crate::value::Value;

/// One reply read: its length in bytes, and the value (or why it could not be decoded).
pub type Read = (usize, Result<Value, String>);

/// What reading `pieces`, in order, as one server's replies gave: every reply decoded (or
/// why it could not be), then `Err` with the reason the stream was given up, if it was.
pub fn read_replies(
    pieces: &[&[u8]],
    max_reply: usize,
    resp3: bool,
) -> (Vec<Read>, Option<String>) {
    let protocol = if resp3 {
        Protocol::Resp3
    } else {
        Protocol::Resp2
    };
    let mut input: Vec<u8> = Vec::new();
    let mut start = 0;
    let mut scanner = Scanner::default();
    let mut replies = Vec::new();
    for piece in pieces {
        input.extend_from_slice(piece);
        while start < input.len() {
            match scanner.scan(&input[start..], max_reply) {
                Ok(Some(len)) => {
                    let frame = &input[start..start + len];
                    let value = decode(frame, protocol).map_err(|e| match e {
                        ReadError::Protocol(why) => why,
                        ReadError::TooLarge => "too large".into(),
                        ReadError::TimedOut | ReadError::Lost(_) => "no bytes".into(),
                    });
                    replies.push((len, value));
                    start += len;
                }
                Ok(None) => break,
                Err(ScanError::TooLarge) => return (replies, Some("too large".into())),
                Err(ScanError::Invalid(why)) => return (replies, Some(why)),
            }
        }
    }
    (replies, None)
}
