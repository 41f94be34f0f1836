//! Finding where a reply ends before decoding it: every length and count the server sends is
//! checked against the reply limit before any arithmetic or allocation, nesting is bounded
//! (the decoder recurses on a tasklet's small stack), and a partial reply is scanned once,
//! resuming where the last bytes ended. Only a complete reply reaches `redis-protocol`.

use std::fmt;

/// The deepest nesting of aggregates accepted (Redis's own replies nest 4 deep at most:
/// `XREAD`'s streams, entries, fields; a Lua script's tables may go deeper).
pub(crate) const MAX_DEPTH: usize = 32;

/// Why the bytes cannot be a reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ScanError {
    /// The reply would pass the limit.
    TooLarge,
    /// Not RESP, or nested deeper than [`MAX_DEPTH`].
    Invalid(String),
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScanError::TooLarge => f.write_str("reply larger than the limit"),
            ScanError::Invalid(why) => f.write_str(why),
        }
    }
}

/// A resumable scan of the reply at the start of a buffer.
#[derive(Debug)]
pub(crate) struct Scanner {
    /// Bytes of the reply already scanned (whole elements and headers).
    pos: usize,
    /// The open aggregates: `left[d]` elements still due at depth `d`; `left[0]` is the
    /// reply itself.
    left: [u64; MAX_DEPTH + 1],
    depth: usize,
    /// Bytes from `pos` already searched for the end of the line there, in vain: a long
    /// line arriving in pieces is searched once, not again from its start each time.
    seek: usize,
}

impl Default for Scanner {
    fn default() -> Self {
        let mut left = [0; MAX_DEPTH + 1];
        left[0] = 1;
        Scanner {
            pos: 0,
            left,
            depth: 0,
            seek: 0,
        }
    }
}

impl Scanner {
    /// The length of the reply at the start of `buf` once it is all there (`Ok(None)`: more
    /// bytes are needed). Between calls `buf` may only grow at its end; after `Some`, the
    /// next call scans the next reply (its buffer starting where this one ended).
    pub(crate) fn scan(&mut self, buf: &[u8], max: usize) -> Result<Option<usize>, ScanError> {
        loop {
            while self.left[self.depth] == 0 {
                if self.depth == 0 {
                    let len = self.pos;
                    *self = Scanner::default();
                    return Ok(Some(len));
                }
                self.depth -= 1;
                self.left[self.depth] -= 1;
            }
            let start = self.pos;
            let rest = &buf[start..];
            // The type byte first: bytes that are not RESP fail at once, not after a line
            // end that may never come.
            match rest.first() {
                None => return Ok(None),
                Some(b'+' | b'-' | b':' | b',' | b'#' | b'_' | b'(' | b'$' | b'!' | b'=')
                | Some(b'*' | b'~' | b'>' | b'%') => {}
                Some(b'|') => {
                    return Err(ScanError::Invalid(
                        "RESP3 attributes are not supported".into(),
                    ))
                }
                Some(other) => {
                    return Err(ScanError::Invalid(format!(
                        "unknown RESP type byte 0x{other:02x}"
                    )))
                }
            }
            // A `\r` last searched may be followed by its `\n` now: one byte back.
            let from = self.seek.saturating_sub(1).min(rest.len());
            let found = rest[from..].windows(2).position(|w| w == b"\r\n");
            let Some(cr) = found.map(|at| from + at) else {
                self.seek = rest.len();
                if start.saturating_add(rest.len()) > max {
                    return Err(ScanError::TooLarge);
                }
                return Ok(None);
            };
            self.seek = 0;
            let after = start + cr + 2;
            if after > max {
                return Err(ScanError::TooLarge);
            }
            let line = &rest[1..cr.max(1)];
            match rest[0] {
                // Simple types: the line is the whole element.
                b'+' | b'-' | b':' | b',' | b'#' | b'_' | b'(' => {
                    self.pos = after;
                    self.left[self.depth] -= 1;
                }
                // Blob types: a length, then that many bytes and CRLF.
                kind @ (b'$' | b'!' | b'=') => {
                    let len = length(line, kind == b'$')?;
                    let Some(len) = len else {
                        // `$-1`: RESP2's nil.
                        self.pos = after;
                        self.left[self.depth] -= 1;
                        continue;
                    };
                    let end = usize::try_from(len)
                        .ok()
                        .and_then(|n| after.checked_add(n))
                        .and_then(|n| n.checked_add(2))
                        .ok_or(ScanError::TooLarge)?;
                    if end > max {
                        return Err(ScanError::TooLarge);
                    }
                    if buf.len() < end {
                        // The header is scanned again with the body: cheap, and keeps `pos`
                        // at element boundaries.
                        return Ok(None);
                    }
                    if &buf[end - 2..end] != b"\r\n" {
                        return Err(ScanError::Invalid(
                            "a bulk string is not followed by CRLF".into(),
                        ));
                    }
                    self.pos = end;
                    self.left[self.depth] -= 1;
                }
                // Aggregates: a count of elements (pairs for maps) that follow.
                kind @ (b'*' | b'~' | b'>' | b'%') => {
                    let count = length(line, kind == b'*')?;
                    self.pos = after;
                    let count = match count {
                        // `*-1`: RESP2's nil array.
                        None => 0,
                        Some(n) if kind == b'%' => n.checked_mul(2).ok_or(ScanError::TooLarge)?,
                        Some(n) => n,
                    };
                    // Each element takes 3 bytes at least: a count past the limit is a lie
                    // or too large, whatever follows.
                    if count > (max / 3) as u64 {
                        return Err(ScanError::TooLarge);
                    }
                    if count == 0 {
                        self.left[self.depth] -= 1;
                        continue;
                    }
                    if self.depth == MAX_DEPTH {
                        return Err(ScanError::Invalid(format!(
                            "the reply nests deeper than {MAX_DEPTH} levels"
                        )));
                    }
                    self.depth += 1;
                    self.left[self.depth] = count;
                }
                // Checked above.
                other => {
                    return Err(ScanError::Invalid(format!(
                        "unknown RESP type byte 0x{other:02x}"
                    )))
                }
            }
        }
    }
}

/// A length or count: digits, or `-1` where `nil_allowed` (then `None`).
fn length(line: &[u8], nil_allowed: bool) -> Result<Option<u64>, ScanError> {
    if nil_allowed && line == b"-1" {
        return Ok(None);
    }
    if line == b"?" {
        return Err(ScanError::Invalid(
            "RESP3 streamed strings and aggregates are not supported".into(),
        ));
    }
    if line.is_empty() || line.len() > 19 || !line.iter().all(u8::is_ascii_digit) {
        return Err(ScanError::Invalid(format!(
            "bad length `{}`",
            String::from_utf8_lossy(&line[..line.len().min(24)])
        )));
    }
    // At most 19 digits: fits in a u64 without overflow.
    Ok(Some(
        line.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(bytes: &[u8], max: usize) -> Result<Option<usize>, ScanError> {
        Scanner::default().scan(bytes, max)
    }

    #[test]
    fn finds_the_end_of_each_reply() {
        assert_eq!(whole(b"+OK\r\n", 100), Ok(Some(5)));
        assert_eq!(whole(b"+OK\r\n:1\r\n", 100), Ok(Some(5)));
        assert_eq!(whole(b"$3\r\nabc\r\n", 100), Ok(Some(9)));
        assert_eq!(whole(b"$-1\r\n", 100), Ok(Some(5)));
        assert_eq!(whole(b"*-1\r\n", 100), Ok(Some(5)));
        assert_eq!(whole(b"*0\r\n", 100), Ok(Some(4)));
        let nested = b"*2\r\n*2\r\n:1\r\n$1\r\nx\r\n%1\r\n+k\r\n_\r\n";
        assert_eq!(whole(nested, 100), Ok(Some(nested.len())));
        assert_eq!(whole(b"*2\r\n:1\r\n", 100), Ok(None));
        assert_eq!(whole(b"$3\r\nab", 100), Ok(None));
    }

    #[test]
    fn resumes_byte_by_byte() {
        let reply = b"*3\r\n$5\r\nhello\r\n*1\r\n:42\r\n>2\r\n+a\r\n+b\r\n";
        let mut s = Scanner::default();
        for n in 0..reply.len() {
            assert_eq!(s.scan(&reply[..n], 1000), Ok(None), "at {n}");
        }
        assert_eq!(s.scan(reply, 1000), Ok(Some(reply.len())));
        // Ready for the next reply.
        assert_eq!(s.scan(b":1\r\n", 1000), Ok(Some(4)));
    }

    #[test]
    fn lengths_are_checked_before_use() {
        assert_eq!(whole(b"$99999999999\r\n", 1000), Err(ScanError::TooLarge));
        assert_eq!(
            whole(b"$9999999999999999999\r\n", 1000),
            Err(ScanError::TooLarge)
        );
        assert_eq!(whole(b"*9999999\r\n", 1000), Err(ScanError::TooLarge));
        assert_eq!(
            whole(b"%9999999999999999999\r\n", 1000),
            Err(ScanError::TooLarge)
        );
        assert!(matches!(
            whole(b"$-2\r\n", 1000),
            Err(ScanError::Invalid(_))
        ));
        assert!(matches!(
            whole(b"$99999999999999999999\r\n", 1000),
            Err(ScanError::Invalid(_))
        ));
        assert!(matches!(
            whole(b"$3\r\nabcde\r\n", 1000),
            Err(ScanError::Invalid(_))
        ));
        assert!(matches!(whole(b"?3\r\n", 1000), Err(ScanError::Invalid(_))));
        assert!(matches!(whole(b"$?\r\n", 1000), Err(ScanError::Invalid(_))));
        // A line with no end, past the limit.
        assert_eq!(whole(&[b'+'; 50], 20), Err(ScanError::TooLarge));
        // A reply longer than the limit, even one whose parts each fit.
        assert_eq!(
            whole(b"*3\r\n:1\r\n:2\r\n:3\r\n", 12),
            Err(ScanError::TooLarge)
        );
    }

    #[test]
    fn not_resp_fails_at_the_first_byte() {
        assert!(matches!(
            whole(b"\x16\x03\x01", 1000),
            Err(ScanError::Invalid(_))
        ));
        assert!(matches!(whole(b"|", 1000), Err(ScanError::Invalid(_))));
    }

    #[test]
    fn a_line_split_at_its_crlf_is_found() {
        let mut s = Scanner::default();
        assert_eq!(s.scan(b"+abc\r", 100), Ok(None));
        assert_eq!(s.scan(b"+abc\r\n", 100), Ok(Some(6)));
    }

    #[test]
    fn nesting_is_bounded() {
        let deep: Vec<u8> = b"*1\r\n".repeat(MAX_DEPTH + 1);
        assert!(matches!(whole(&deep, 1000), Err(ScanError::Invalid(_))));
        let mut ok = b"*1\r\n".repeat(MAX_DEPTH);
        ok.extend_from_slice(b":1\r\n");
        assert_eq!(whole(&ok, 1000), Ok(Some(ok.len())));
    }
}
