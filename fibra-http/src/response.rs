//! `Response`: a status, headers and a body, written with the framing headers it needs.

use std::io::Write as _;

/// An answer: `Response::new(200).header("Content-Type", "text/plain").body("hello")`.
/// `Content-Length`, `Date` (unless set) and `Connection: close` when the server closes are
/// added when it is written; do not set the others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Response {
    /// An empty response with `status`.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// 200 with a `text/plain; charset=utf-8` body.
    pub fn text(body: impl Into<String>) -> Response {
        Response::new(200)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(body.into())
    }

    /// 200 with a `text/html; charset=utf-8` body.
    pub fn html(body: impl Into<String>) -> Response {
        Response::new(200)
            .header("Content-Type", "text/html; charset=utf-8")
            .body(body.into())
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = body.into();
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// A short error answer: `status` with its reason as a text body.
    pub(crate) fn error(status: u16) -> Response {
        Response::new(status)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(format!("{status} {}\n", reason(status)))
    }

    /// Appends the response to `out`; `connection` is the `Connection` header's value to add
    /// (`close` when the server closes, `keep-alive` for an HTTP/1.0 client whose connection
    /// stays open), `head` leaves the body out (a `HEAD` request). `Date` is added unless the
    /// handler set one (RFC 9110 §6.6.1). Writes straight into `out`: nothing is allocated
    /// but `out`'s growth.
    pub(crate) fn write(&self, out: &mut Vec<u8>, connection: Option<&str>, head: bool) {
        let _ = write!(out, "HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        // A header may not carry a line break (response splitting).
        let clean = |out: &mut Vec<u8>, s: &str| {
            out.extend(
                s.bytes()
                    .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
            );
        };
        let mut dated = false;
        for (name, value) in &self.headers {
            dated |= name.eq_ignore_ascii_case("date");
            clean(out, name);
            out.extend_from_slice(b": ");
            clean(out, value);
            out.extend_from_slice(b"\r\n");
        }
        if !dated {
            out.extend_from_slice(b"Date: ");
            out.extend_from_slice(&crate::date::now());
            out.extend_from_slice(b"\r\n");
        }
        let bodiless = self.status < 200 || self.status == 204 || self.status == 304;
        if !bodiless {
            let _ = write!(out, "Content-Length: {}\r\n", self.body.len());
        }
        if let Some(connection) = connection {
            out.extend_from_slice(b"Connection: ");
            out.extend_from_slice(connection.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if !head && !bodiless {
            out.extend_from_slice(&self.body);
        }
    }
}

/// The reason phrase of a status code.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}
