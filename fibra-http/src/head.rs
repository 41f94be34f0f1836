//! A request's head: parsed by `httparse` within the [`Limits`], then checked as RFC 9112
//! asks before anything is read after it: one `Host` (§3.2), a body length that can be
//! trusted (§6.1–6.3: `Transfer-Encoding` ending in `chunked`, or one `Content-Length` of
//! digits, never both), and each bound with its status.

use crate::{Limits, Request};

/// How the body that follows a head is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyLength {
    /// `Content-Length` bytes (0 without the header).
    Exactly(usize),
    /// The chunked coding.
    Chunked,
}

/// A parsed, checked head.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) request: Request,
    /// The head's length in bytes (the body starts there).
    pub(crate) len: usize,
    pub(crate) body: BodyLength,
}

/// The head at the start of `buf`: `Ok(None)` while it is incomplete and within the limit.
///
/// # Errors
///
/// The status to answer with before closing: 414 when the request line alone does not fit
/// in `max_head`, 431 when the head does not (or has too many headers), 413 when the body
/// announced is over `max_body`, 501 for a transfer coding other than `chunked`, 400 for
/// anything malformed or ambiguous.
pub(crate) fn parse(buf: &[u8], limits: &Limits) -> Result<Option<Head>, u16> {
    // No head within `max_head` holds more headers than this (a header line takes 3 bytes
    // or more), so a huge `max_headers` allocates no more than the head could use.
    let max_headers = limits.max_headers.min(limits.max_head / 3 + 1);
    // On the stack for the usual limit: a request's parse allocates nothing.
    let mut on_stack = [httparse::EMPTY_HEADER; 64];
    let mut on_heap;
    let headers = if max_headers <= on_stack.len() {
        &mut on_stack[..max_headers]
    } else {
        on_heap = vec![httparse::EMPTY_HEADER; max_headers];
        &mut on_heap[..]
    };
    let mut parsed = httparse::Request::new(headers);
    let len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n <= limits.max_head => n,
        Ok(httparse::Status::Complete(_)) => return Err(too_large(buf, limits.max_head)),
        Ok(httparse::Status::Partial) if buf.len() < limits.max_head => return Ok(None),
        Ok(httparse::Status::Partial) => return Err(too_large(buf, limits.max_head)),
        Err(httparse::Error::TooManyHeaders) => return Err(431),
        Err(_) => return Err(400),
    };
    let request = to_request(&parsed);
    let body = check(&request, limits)?;
    Ok(Some(Head { request, len, body }))
}

/// Finds a head in a connection's bytes as they come, parsing them only when a head may be
/// whole: on the first bytes (a peer that sends no HTTP at all is answered at once), after an
/// empty line, or at `max_head` bytes. A head dripped a byte at a time so costs a few parses,
/// not one of everything received per byte (8 KiB dripped used to be parsed 8,192 times).
#[derive(Debug, Default)]
pub(crate) struct HeadScanner {
    /// How many bytes the last look saw.
    seen: usize,
    /// How many times the bytes were parsed.
    parses: usize,
}

impl HeadScanner {
    /// [`parse`] of `buf` (all the bytes received since the head began), or `Ok(None)`
    /// without parsing while no head can have ended in it.
    ///
    /// # Errors
    ///
    /// As [`parse`].
    pub(crate) fn poll(&mut self, buf: &[u8], limits: &Limits) -> Result<Option<Head>, u16> {
        // Two bytes back: an empty line's end may straddle what came before.
        let from = self.seen.saturating_sub(2).min(buf.len());
        let first = self.seen == 0;
        self.seen = buf.len();
        if !first && buf.len() < limits.max_head && !has_empty_line(&buf[from..]) {
            return Ok(None);
        }
        self.parses += 1;
        parse(buf, limits)
    }
}

/// Whether `buf` holds an empty line's end (`\n\n` or `\n\r\n`), which ends a head.
fn has_empty_line(buf: &[u8]) -> bool {
    buf.windows(2).any(|w| w == b"\n\n") || buf.windows(3).any(|w| w == b"\n\r\n")
}

/// 414 when the request line does not end within `max_head` bytes, else 431.
fn too_large(buf: &[u8], max_head: usize) -> u16 {
    if buf[..buf.len().min(max_head)].contains(&b'\n') {
        431
    } else {
        414
    }
}

fn to_request(parsed: &httparse::Request<'_, '_>) -> Request {
    Request {
        method: parsed.method.unwrap_or("").to_owned(),
        target: parsed.path.unwrap_or("").to_owned(),
        minor_version: parsed.version.unwrap_or(1),
        headers: parsed
            .headers
            .iter()
            .map(|h| (h.name.to_owned(), h.value.to_vec()))
            .collect(),
        body: Vec::new(),
        tls: false,
    }
}

/// The RFC's rules on a head, and the length of the body that follows it.
fn check(request: &Request, limits: &Limits) -> Result<BodyLength, u16> {
    // RFC 9112 §3.2: exactly one Host in HTTP/1.1, never two.
    let hosts = request
        .headers()
        .filter(|(n, _)| n.eq_ignore_ascii_case("host"))
        .count();
    if hosts > 1 || (hosts == 0 && request.minor_version >= 1) {
        return Err(400);
    }
    // ... and never one that is not `uri-host [ ":" port ]` (RFC 3986 §3.2.2): a name,
    // an address, or empty.
    if request
        .headers()
        .any(|(n, v)| n.eq_ignore_ascii_case("host") && !is_host(v))
    {
        return Err(400);
    }
    let chunked = transfer_coding(request)?;
    let length = content_length(request)?;
    match (chunked, length) {
        (false, None) => Ok(BodyLength::Exactly(0)),
        (false, Some(n)) if n > limits.max_body => Err(413),
        (false, Some(n)) => Ok(BodyLength::Exactly(n)),
        // §6.1: both is a smuggling attempt, or a broken client: refused, closed.
        (true, Some(_)) => Err(400),
        (true, None) => Ok(BodyLength::Chunked),
    }
}

/// Whether `value` may be a `Host`: only the characters of RFC 3986's `reg-name` (unreserved,
/// percent-encoded, sub-delims), of an IP literal (`[`, `]`, `:`) and of a port.
fn is_host(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=:[]".contains(&b))
}

/// Whether the body is chunked; `Err` for a `Transfer-Encoding` the server cannot trust or
/// decode: 400 when `chunked` is not the last coding (or comes twice), or in HTTP/1.0
/// (RFC 9112 §6.1, §6.3); 501 for any coding other than `chunked` (§6.1).
fn transfer_coding(request: &Request) -> Result<bool, u16> {
    let mut codings = request
        .headers()
        .filter(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
        .peekable();
    if codings.peek().is_none() {
        return Ok(false);
    }
    if request.minor_version == 0 {
        return Err(400);
    }
    let (mut chunked, mut last_chunked, mut unknown) = (0, false, false);
    for (_, value) in codings {
        let value = std::str::from_utf8(value).map_err(|_| 400u16)?;
        for coding in value.split(',').map(|c| c.trim_matches([' ', '\t'])) {
            if coding.is_empty() {
                continue;
            }
            last_chunked = coding.eq_ignore_ascii_case("chunked");
            if last_chunked {
                chunked += 1;
            } else {
                unknown = true;
            }
        }
    }
    match (chunked, last_chunked, unknown) {
        (1, true, false) => Ok(true),
        (1, true, true) => Err(501),
        _ => Err(400),
    }
}

/// The `Content-Length`, if any: digits only (no sign, no blanks inside), every copy the
/// same. `Err(400)` otherwise; `Err(413)` for digits whose value overflows.
fn content_length(request: &Request) -> Result<Option<usize>, u16> {
    let mut length = None;
    for (name, value) in request.headers() {
        if !name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        let digits = value.trim_ascii();
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(400);
        }
        let n = digits.iter().try_fold(0usize, |n, d| {
            n.checked_mul(10)?.checked_add(usize::from(d - b'0'))
        });
        let n = n.ok_or(413u16)?;
        if length.is_some_and(|l| l != n) {
            return Err(400);
        }
        length = Some(n);
    }
    Ok(length)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dripped_head_is_parsed_a_few_times_not_once_a_byte() {
        let limits = Limits::default();
        let head = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
            "b".repeat(4000)
        );
        let mut scanner = HeadScanner::default();
        for end in 1..head.len() {
            assert!(matches!(
                scanner.poll(&head.as_bytes()[..end], &limits),
                Ok(None)
            ));
        }
        let whole = scanner.poll(head.as_bytes(), &limits).unwrap().unwrap();
        assert_eq!(whole.len, head.len());
        assert!(scanner.parses <= 3, "{} parses", scanner.parses);
        // Not HTTP at all: refused on the first bytes, as before.
        let mut scanner = HeadScanner::default();
        assert_eq!(
            scanner.poll(b"\x16\x03\x01\x02\x00", &limits).err(),
            Some(400)
        );
        // An empty line split across two reads, bare LFs, and the limit still end the wait.
        for (before, after) in [
            (&b"GET / HTTP/1.1\r\nHost: a\r\n\r"[..], &b"\n"[..]),
            (b"GET / HTTP/1.1\nHost: a\n", b"\n"),
        ] {
            let mut scanner = HeadScanner::default();
            let both = [before, after].concat();
            assert!(matches!(scanner.poll(&before[..3], &limits), Ok(None)));
            assert!(matches!(scanner.poll(before, &limits), Ok(None)));
            assert!(scanner.poll(&both, &limits).unwrap().is_some());
        }
        let big = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(9000));
        let mut scanner = HeadScanner::default();
        assert!(matches!(
            scanner.poll(&big.as_bytes()[..3], &limits),
            Ok(None)
        ));
        assert_eq!(scanner.poll(big.as_bytes(), &limits).err(), Some(431));
    }

    fn status(head: &str) -> Result<BodyLength, u16> {
        parse(head.as_bytes(), &Limits::default()).map(|h| h.unwrap().body)
    }

    #[test]
    fn rfc_9112s_rules_on_a_head() {
        assert_eq!(
            status("GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
            Ok(BodyLength::Exactly(0))
        );
        assert_eq!(status("GET / HTTP/1.0\r\n\r\n"), Ok(BodyLength::Exactly(0)));
        assert_eq!(status("GET / HTTP/1.1\r\n\r\n"), Err(400));
        assert_eq!(
            status("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"),
            Err(400)
        );
        let te = |v: &str| status(&format!("POST / HTTP/1.1\r\nHost: a\r\n{v}\r\n\r\n"));
        assert_eq!(te("Transfer-Encoding: chunked"), Ok(BodyLength::Chunked));
        assert_eq!(
            te("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked"),
            Err(501)
        );
        assert_eq!(te("Transfer-Encoding: chunked, gzip"), Err(400));
        assert_eq!(te("Transfer-Encoding: chunked, chunked"), Err(400));
        assert_eq!(te("Transfer-Encoding: gzip"), Err(400));
        assert_eq!(
            te("Transfer-Encoding: chunked\r\nContent-Length: 3"),
            Err(400)
        );
        assert_eq!(te("Content-Length: 12"), Ok(BodyLength::Exactly(12)));
        assert_eq!(te("Content-Length: +12"), Err(400));
        assert_eq!(te("Content-Length: 1 2"), Err(400));
        assert_eq!(te("Content-Length: 3\r\nContent-Length: 4"), Err(400));
        assert_eq!(te("Content-Length: 99999999999999999999999"), Err(413));
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(9000));
        assert_eq!(parse(long.as_bytes(), &Limits::default()).err(), Some(414));
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(9000));
        assert_eq!(parse(big.as_bytes(), &Limits::default()).err(), Some(431));
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\n", &Limits::default()),
            Ok(None)
        ));
    }
}
