//! The HTTP/1.1 server: one tasklet per connection reading requests in order (keep-alive,
//! pipelining), bodies by `Content-Length` or chunked, every limit answered with its status,
//! and the upgrade to a WebSocket.

use std::rc::Rc;
use std::time::{Duration, Instant};

use fibra_net::ops::{Drain, Flush};
use fibra_net::{Conn, Listener, NetError, NetExt};
use fibra_rt::{Handle, SpawnOptions};
use fibra_tasks::TasksExt;

use crate::accept_key::{accept_key, is_valid_client_key};
use crate::chunked::ChunkedDecoder;
use crate::head::{BodyLength, Head, HeadScanner};
use crate::reader::{ReadEnd, Reader};
use crate::router::Route;
use crate::{CloseCode, Limits, Request, Response, Router, WebSocket};

/// Serves `router` on `listener` for ever: one tasklet per connection (needs the tasks and
/// network plugins).
///
/// # Errors
///
/// Only when the listener is gone ([`NetError::Closed`]); a failed accept is logged and the
/// loop goes on.
pub fn serve(h: &Handle, listener: &Listener, router: Rc<Router>) -> Result<(), NetError> {
    loop {
        let (conn, peer) = match h.accept(listener) {
            Ok(accepted) => accepted,
            Err(NetError::Closed) => return Err(NetError::Closed),
            Err(e) => {
                log::warn!(target: "fibra_http", "accept: {e}");
                continue;
            }
        };
        let router = Rc::clone(&router);
        let spawned = h.spawn_detached_with(SpawnOptions::new().name("http"), move |h| {
            serve_connection(h, &conn, &router);
        });
        if let Err(e) = spawned {
            log::warn!(target: "fibra_http", "no tasklet for {peer}: {e}");
        }
    }
}

/// Listens on `addr` for HTTPS (and WSS) with `config`, offering the one application
/// protocol this server speaks by ALPN, `http/1.1` (the config's own ALPN list, if any, is
/// replaced in a copy); [`serve`] then serves it as it serves a plain listener. The
/// connections' handshake timeout is fibra-net's default (10 s).
///
/// ```no_run
/// use std::rc::Rc;
/// use std::sync::Arc;
/// use fibra_http::{Response, Router};
/// use fibra_net::rustls;
/// # fn config() -> Arc<rustls::ServerConfig> { todo!() }
/// # fn demo(h: &fibra_rt::Handle) -> Result<(), fibra_net::NetError> {
/// let router = Rc::new(Router::new().get("/", |_h, _req| Response::text("hello over TLS")));
/// let listener = fibra_http::listen_tls(h, "127.0.0.1:8443", config())?;
/// fibra_http::serve(h, &listener, router)
/// # }
/// # let _ = demo;
/// ```
///
/// # Errors
///
/// As [`NetExt::listen`](fibra_net::NetExt::listen).
#[cfg(feature = "tls")]
pub fn listen_tls<A: fibra_net::ToAddrs>(
    h: &Handle,
    addr: A,
    config: std::sync::Arc<fibra_net::rustls::ServerConfig>,
) -> Result<Listener, NetError> {
    h.listen_tls(addr, https_config(config))
}

/// `config` offering `http/1.1` alone by ALPN (a copy, if it offered anything else).
#[cfg(feature = "tls")]
pub fn https_config(
    config: std::sync::Arc<fibra_net::rustls::ServerConfig>,
) -> std::sync::Arc<fibra_net::rustls::ServerConfig> {
    const HTTP11: &[u8] = b"http/1.1";
    if config.alpn_protocols.len() == 1 && config.alpn_protocols[0] == HTTP11 {
        return config;
    }
    let mut copy = (*config).clone();
    copy.alpn_protocols = vec![HTTP11.to_vec()];
    std::sync::Arc::new(copy)
}

/// What became of one request.
enum Next {
    /// Answered; read the next one.
    KeepAlive,
    /// Answered (or not answerable); the connection ends.
    Close,
    /// A WebSocket handed to a stackless session, which owns the connection now.
    Detached,
}

impl Next {
    /// `KeepAlive` when the connection may carry another request.
    fn after(keep_alive: bool) -> Next {
        if keep_alive {
            Next::KeepAlive
        } else {
            Next::Close
        }
    }
}

/// Serves requests on `conn` until it closes (its own tasklet's loop; [`serve`] runs it).
pub fn serve_connection(h: &Handle, conn: &Conn, router: &Router) {
    let mut reader = Reader::default();
    let mut out = Vec::new();
    let mut first = true;
    let tls = conn.tls().is_some();
    loop {
        let next = one_request(h, conn, router, &mut reader, &mut out, first, tls);
        first = false;
        if matches!(next, Next::Detached) {
            return;
        }
        if matches!(next, Next::Close) {
            linger(h, conn, &mut reader, &router.limits);
            let _ = h.close(conn);
            return;
        }
    }
}

/// Before a close while the peer's bytes still come (a refused upload, requests pipelined
/// after a refusal): closing with unread input, or input arriving after the close, makes the
/// kernel reset the connection, and the reset destroys every answer the peer has not read
/// yet (RFC 9112 §9.6). So the answers are written, FIN is sent after them, and what the
/// peer sends is read and dropped until its end of stream, for at most
/// `Limits::close_timeout`. A peer that sent nothing more is closed at once, as before.
fn linger(h: &Handle, conn: &Conn, reader: &mut Reader, limits: &Limits) {
    let more =
        !reader.pending().is_empty() || matches!(reader.try_fill(h, conn, 64 * 1024), Ok(true));
    if !more {
        return;
    }
    let deadline = fibra_rt::time::now().checked_add(limits.close_timeout);
    let flushed = match deadline {
        Some(deadline) => h.yield_op_until(Flush::new(conn), deadline).ok(),
        None => Some(h.yield_op(Flush::new(conn))),
    };
    if !matches!(flushed, Some(Ok(()))) || !conn.shutdown_write() {
        return;
    }
    loop {
        let used = reader.pending().len();
        reader.consume(used);
        // Past the deadline nothing more is read: a peer that keeps sending would hold the
        // linger for good.
        if crate::reader::is_past(deadline) {
            return;
        }
        if reader.fill(h, conn, 64 * 1024, deadline).is_err() {
            return;
        }
    }
}

/// The `Connection` header of a response after which the server closes.
const CLOSE: Option<&str> = Some("close");

/// Sends `response`; `false` when it could not be queued: the connection ended, or its
/// output stayed full for `send_timeout` (a peer that does not read: the connection is
/// aborted).
fn answer(
    h: &Handle,
    conn: &Conn,
    out: &mut Vec<u8>,
    response: &Response,
    connection: Option<&str>,
    head: bool,
    send_timeout: Duration,
) -> bool {
    out.clear();
    response.write(out, connection, head);
    let sent = send(h, conn, out, send_timeout);
    if out.capacity() > 64 * 1024 {
        *out = Vec::new();
    }
    sent
}

/// Queues `bytes` whole, waiting for room in the output for at most `timeout` (a timeout
/// too large for the clock waits for as long as it takes); aborts the connection when the
/// wait times out.
fn send(h: &Handle, conn: &Conn, bytes: &[u8], timeout: Duration) -> bool {
    let deadline = fibra_rt::time::now().checked_add(timeout);
    loop {
        match conn.try_send(bytes) {
            Ok(()) => return true,
            Err(NetError::Full { .. }) => {}
            Err(_) => return false,
        }
        let room = match deadline {
            Some(deadline) => h
                .yield_op_until(Drain::new(conn), deadline)
                .unwrap_or(Err(NetError::TimedOut)),
            None => h.yield_op(Drain::new(conn)),
        };
        if let Err(e) = room {
            log::debug!(
                target: "fibra_http",
                "cut off {:?}: its answer could not be sent ({e})",
                conn.peer_addr()
            );
            h.abort(conn);
            return false;
        }
    }
}

/// Answers `status` and closes; `head`: the request was a `HEAD` (no body, RFC 9110 §9.3.2).
fn refuse(
    h: &Handle,
    conn: &Conn,
    out: &mut Vec<u8>,
    status: u16,
    limits: &Limits,
    head: bool,
) -> Next {
    log::debug!(target: "fibra_http", "answered {status} to {:?}", conn.peer_addr());
    answer(
        h,
        conn,
        out,
        &Response::error(status),
        CLOSE,
        head,
        limits.send_timeout,
    );
    Next::Close
}

fn one_request(
    h: &Handle,
    conn: &Conn,
    router: &Router,
    reader: &mut Reader,
    out: &mut Vec<u8>,
    first: bool,
    tls: bool,
) -> Next {
    let limits = &router.limits;
    let wait = if first {
        limits.head_timeout
    } else {
        limits.keep_alive_timeout
    };
    // `None`: a timeout too large for the clock (`Duration::MAX`) never passes.
    let deadline = fibra_rt::time::now().checked_add(wait);
    // The head.
    let mut scanner = HeadScanner::default();
    let Head {
        mut request,
        len,
        body,
    } = loop {
        match scanner.poll(reader.pending(), limits) {
            Ok(Some(head)) => break head,
            Ok(None) => match reader.fill(h, conn, limits.max_head, deadline) {
                Ok(()) => {}
                Err(ReadEnd::TimedOut) if first || !reader.pending().is_empty() => {
                    return refuse(h, conn, out, 408, limits, false);
                }
                Err(_) => return Next::Close,
            },
            Err(status) => return refuse(h, conn, out, status, limits, false),
        }
    };
    reader.consume(len);
    request.tls = tls;
    let head = request.method == "HEAD";
    // The body.
    let body_deadline = fibra_rt::time::now().checked_add(limits.head_timeout);
    let expects_body = body != BodyLength::Exactly(0);
    // RFC 9110 §10.1.1: an HTTP/1.0 request's expectation is ignored.
    let continue_first = expects_body
        && request.minor_version >= 1
        && request.header_has_token("expect", "100-continue");
    if continue_first
        && !send(
            h,
            conn,
            b"HTTP/1.1 100 Continue\r\n\r\n",
            limits.send_timeout,
        )
    {
        return Next::Close;
    }
    let body = match body {
        BodyLength::Chunked => read_chunked(h, conn, reader, limits, body_deadline),
        BodyLength::Exactly(length) => read_exact(h, conn, reader, length, body_deadline),
    };
    request.body = match body {
        Ok(body) => body,
        Err(status) => return refuse(h, conn, out, status, limits, head),
    };
    // The answer.
    let keep_alive = request.keep_alive();
    // RFC 9112 §9.3: an HTTP/1.0 client keeps its connection only when told so.
    let connection = match (keep_alive, request.minor_version) {
        (false, _) => CLOSE,
        (true, 0) => Some("keep-alive"),
        (true, _) => None,
    };
    let response = match router.find(&request.method, request.path()) {
        Ok(Route::Http(handler)) => match h.catch_panic(|| handler(h, &request)) {
            Ok(response) => response,
            Err(_) => {
                log::error!(target: "fibra_http", "the handler of {} panicked", request.target);
                return refuse(h, conn, out, 500, limits, head);
            }
        },
        Ok(Route::WebSocket(handler)) => {
            let detached = upgrade(
                h,
                conn,
                out,
                &request,
                std::mem::take(reader),
                router,
                handler.as_ref(),
            );
            return if detached {
                Next::Detached
            } else {
                Next::Close
            };
        }
        Err((405, allow)) => Response::error(405).header("Allow", allow),
        Err((status, _)) => Response::error(status),
    };
    let sent = answer(
        h,
        conn,
        out,
        &response,
        connection,
        head,
        limits.send_timeout,
    );
    Next::after(keep_alive && sent)
}

fn upgrade(
    h: &Handle,
    conn: &Conn,
    out: &mut Vec<u8>,
    request: &Request,
    reader: Reader,
    router: &Router,
    handler: &dyn Fn(&Handle, &Request, &mut WebSocket),
) -> bool {
    let timeout = router.limits.send_timeout;
    // RFC 6455 §4.1: the opening handshake is an HTTP/1.1 request (an HTTP/1.0 client
    // could not take the 101).
    let head = request.method == "HEAD";
    if request.minor_version == 0 {
        answer(h, conn, out, &Response::error(400), CLOSE, head, timeout);
        return false;
    }
    // §4.1: the handshake is a GET (the router serves HEAD by a GET route).
    if request.method != "GET" {
        let response = Response::error(405).header("Allow", "GET");
        answer(h, conn, out, &response, CLOSE, head, timeout);
        return false;
    }
    if !request.header_has_token("upgrade", "websocket")
        || !request.header_has_token("connection", "upgrade")
    {
        answer(
            h,
            conn,
            out,
            &Response::error(426).header("Upgrade", "websocket"),
            CLOSE,
            false,
            timeout,
        );
        return false;
    }
    // §11.3.5: the version must not appear more than once either.
    let versions = request
        .headers()
        .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-version"))
        .count();
    if versions > 1 {
        answer(h, conn, out, &Response::error(400), CLOSE, false, timeout);
        return false;
    }
    if request.header("sec-websocket-version") != Some(b"13") {
        let response = Response::error(426).header("Sec-WebSocket-Version", "13");
        answer(h, conn, out, &response, CLOSE, false, timeout);
        return false;
    }
    // §11.3.1: the key must not appear more than once.
    let keys = request
        .headers()
        .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-key"))
        .count();
    let key = match request.header("sec-websocket-key") {
        Some(key) if keys == 1 && is_valid_client_key(key) => key,
        _ => {
            answer(h, conn, out, &Response::error(400), CLOSE, false, timeout);
            return false;
        }
    };
    // §10.2: a browser names the page's origin; a page from elsewhere is refused (by
    // default: `Router::check_origin`).
    if !router.origin_allowed(request, conn.local_addr()) {
        log::info!(target: "fibra_http", "WebSocket handshake to {} refused: origin {:?}",
            request.target, String::from_utf8_lossy(request.header("origin").unwrap_or_default()));
        answer(h, conn, out, &Response::error(403), CLOSE, false, timeout);
        return false;
    }
    let response = Response::new(101)
        .header("Upgrade", "websocket")
        .header("Connection", "Upgrade")
        .header("Sec-WebSocket-Accept", accept_key(key));
    if !answer(h, conn, out, &response, None, false, timeout) {
        return false;
    }
    *out = Vec::new();
    let mut ws = WebSocket::new(conn.clone(), reader, router.limits.clone());
    match h.catch_panic(|| handler(h, request, &mut ws)) {
        Ok(()) if ws.is_detached() => return true,
        Ok(()) => {
            let _ = ws.close(h, CloseCode::NORMAL, "");
        }
        Err(_) => {
            log::error!(target: "fibra_http", "the WebSocket handler of {} panicked", request.target);
            let _ = ws.close(h, CloseCode::INTERNAL, "");
        }
    }
    false
}

fn fill(
    h: &Handle,
    conn: &Conn,
    reader: &mut Reader,
    max: usize,
    deadline: Option<Instant>,
) -> Result<(), u16> {
    match reader.fill(h, conn, max, deadline) {
        Ok(()) => Ok(()),
        Err(ReadEnd::TimedOut) => Err(408),
        // The peer is gone; the status will not be read.
        Err(ReadEnd::Lost) => Err(400),
    }
}

fn read_exact(
    h: &Handle,
    conn: &Conn,
    reader: &mut Reader,
    length: usize,
    deadline: Option<Instant>,
) -> Result<Vec<u8>, u16> {
    let mut body = Vec::with_capacity(length.min(64 * 1024));
    while body.len() < length {
        if reader.pending().is_empty() {
            fill(h, conn, reader, length - body.len(), deadline)?;
        }
        let take = reader.pending().len().min(length - body.len());
        body.extend_from_slice(&reader.pending()[..take]);
        reader.consume(take);
    }
    Ok(body)
}

/// Reads a chunked body (RFC 9112 §7.1), trailers skipped: at most `max_body` bytes of
/// data, each size line and the trailers within `max_head` (see [`ChunkedDecoder`]).
fn read_chunked(
    h: &Handle,
    conn: &Conn,
    reader: &mut Reader,
    limits: &Limits,
    deadline: Option<Instant>,
) -> Result<Vec<u8>, u16> {
    let mut decoder = ChunkedDecoder::new(limits.max_body, limits.max_head, limits.max_head);
    let mut body = Vec::new();
    loop {
        let used = decoder.decode(reader.pending(), &mut body)?;
        reader.consume(used);
        if decoder.is_done() {
            return Ok(body);
        }
        fill(h, conn, reader, 64 * 1024, deadline)?;
    }
}
