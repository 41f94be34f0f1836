//! `Request`: one parsed HTTP/1.1 request, its head and its whole body.

use std::fmt;

/// A request as the server read it: method, target, headers and the whole body (read by
/// `Content-Length` or chunked, within the server's [`Limits`](crate::Limits)).
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) minor_version: u8,
    pub(crate) headers: Vec<(String, Vec<u8>)>,
    pub(crate) body: Vec<u8>,
    /// It came over TLS.
    pub(crate) tls: bool,
}

impl Request {
    /// The method (`GET`, `POST`...).
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The request target as sent (`/chat?room=1`).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Whether the request came over TLS (HTTPS; WSS for a WebSocket upgrade): the scheme
    /// a link back to this server should use. The connection's details (SNI, ALPN) are in
    /// fibra-net's `Conn::tls` for a handler that holds the connection.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The target's path, without its query (of a target in absolute form,
    /// `http://host/path`, the path alone: RFC 9112 §3.2.2).
    pub fn path(&self) -> &str {
        let path = self.target.split('?').next().unwrap_or("");
        for scheme in ["http://", "https://"] {
            let prefix = path.as_bytes().get(..scheme.len());
            if prefix.is_some_and(|p| p.eq_ignore_ascii_case(scheme.as_bytes())) {
                // The prefix is ASCII: `scheme.len()` is a char boundary.
                let rest = &path[scheme.len()..];
                return rest.find('/').map_or("/", |slash| &rest[slash..]);
            }
        }
        path
    }

    /// The target's query, after `?`.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// The first header called `name`, as text (`None` if it is not valid UTF-8).
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Whether header `name` is a comma-separated list holding `token` (case-insensitive),
    /// as `Connection: keep-alive, Upgrade` holds `upgrade`.
    pub fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .filter_map(|(_, v)| std::str::from_utf8(v).ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// Every header, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// `HTTP/1.0` or `HTTP/1.1`'s minor version.
    pub fn minor_version(&self) -> u8 {
        self.minor_version
    }

    /// Whether the connection stays open after the answer: HTTP/1.1 unless `Connection:
    /// close`, HTTP/1.0 only with `Connection: keep-alive`.
    pub fn keep_alive(&self) -> bool {
        if self.minor_version == 0 {
            self.header_has_token("connection", "keep-alive")
        } else {
            !self.header_has_token("connection", "close")
        }
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("target", &self.target)
            .field("headers", &self.headers.len())
            .field("body", &self.body.len())
            .field("tls", &self.tls)
            .finish()
    }
}
