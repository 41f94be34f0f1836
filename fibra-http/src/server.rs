//! The HTTP/1.1 server: one tasklet per connection reading requests in order (keep-alive,
//! pipelining), bodies by `Content-Length` or chunked, every limit answered with its status,
//! and the upgrade to a WebSocket.

use std::rc::Rc;
use std::time::Instant;

use fibra_net::{Conn, Listener, NetError, NetExt};
use fibra_rt::{Handle, SpawnOptions};
use fibra_tasks::TasksExt;

use crate::accept_key::{accept_key, is_valid_client_key};
use crate::reader::{ReadEnd, Reader};
use crate::router::Route;
use crate::{CloseCode, Request, Response, Router, WebSocket};

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

/// What became of one request.
enum Next {
    /// Answered; read the next one.
    KeepAlive,
    /// Answered (or not answerable); the connection ends.
    Close,
}

/// Serves requests on `conn` until it closes (its own tasklet's loop; [`serve`] runs it).
pub fn serve_connection(h: &Handle, conn: &Conn, router: &Router) {
    let mut reader = Reader::default();
    let mut out = Vec::new();
    let mut first = true;
    loop {
        let next = one_request(h, conn, router, &mut reader, &mut out, first);
        first = false;
        if matches!(next, Next::Close) {
            let _ = h.close(conn);
            return;
        }
    }
}

fn answer(
    h: &Handle,
    conn: &Conn,
    out: &mut Vec<u8>,
    response: &Response,
    close: bool,
    head: bool,
) {
    out.clear();
    response.write(out, close, head);
    let _ = h.send(conn, out);
    if out.capacity() > 64 * 1024 {
        *out = Vec::new();
    }
}

fn refuse(h: &Handle, conn: &Conn, out: &mut Vec<u8>, status: u16) -> Next {
    log::debug!(target: "fibra_http", "answered {status} to {:?}", conn.peer_addr());
    answer(h, conn, out, &Response::error(status), true, false);
    Next::Close
}

fn one_request(
    h: &Handle,
    conn: &Conn,
    router: &Router,
    reader: &mut Reader,
    out: &mut Vec<u8>,
    first: bool,
) -> Next {
    let limits = &router.limits;
    let wait = if first {
        limits.head_timeout
    } else {
        limits.keep_alive_timeout
    };
    let deadline = Instant::now() + wait;
    // The head.
    let (mut request, head_len) = loop {
        // On the stack for the usual limit: a request's parse allocates nothing.
        let mut on_stack = [httparse::EMPTY_HEADER; 64];
        let mut on_heap;
        let headers = if limits.max_headers <= on_stack.len() {
            &mut on_stack[..limits.max_headers]
        } else {
            on_heap = vec![httparse::EMPTY_HEADER; limits.max_headers];
            &mut on_heap[..]
        };
        let mut parsed = httparse::Request::new(headers);
        match parsed.parse(reader.pending()) {
            Ok(httparse::Status::Complete(n)) => {
                if n > limits.max_head {
                    return refuse(h, conn, out, 431);
                }
                break (to_request(&parsed), n);
            }
            Ok(httparse::Status::Partial) => {
                if reader.pending().len() >= limits.max_head {
                    return refuse(h, conn, out, 431);
                }
                match reader.fill(h, conn, limits.max_head, Some(deadline)) {
                    Ok(()) => {}
                    Err(ReadEnd::TimedOut) if first || !reader.pending().is_empty() => {
                        return refuse(h, conn, out, 408);
                    }
                    Err(_) => return Next::Close,
                }
            }
            Err(httparse::Error::TooManyHeaders) => return refuse(h, conn, out, 431),
            Err(_) => return refuse(h, conn, out, 400),
        }
    };
    reader.consume(head_len);
    // The body.
    let body_deadline = Instant::now() + limits.head_timeout;
    let chunked = request.header_has_token("transfer-encoding", "chunked");
    if request.header("transfer-encoding").is_some() && !chunked {
        return refuse(h, conn, out, 501);
    }
    let length = match content_length(&request) {
        Ok(length) => length,
        Err(()) => return refuse(h, conn, out, 400),
    };
    if chunked && length.is_some() {
        return refuse(h, conn, out, 400);
    }
    if length.is_some_and(|n| n > limits.max_body) {
        return refuse(h, conn, out, 413);
    }
    let expects_body = chunked || length.is_some_and(|n| n > 0);
    if expects_body && request.header_has_token("expect", "100-continue") {
        let _ = h.send(conn, b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    let body = if chunked {
        read_chunked(
            h,
            conn,
            reader,
            limits.max_body,
            limits.max_head,
            body_deadline,
        )
    } else {
        read_exact(h, conn, reader, length.unwrap_or(0), body_deadline)
    };
    request.body = match body {
        Ok(body) => body,
        Err(status) => return refuse(h, conn, out, status),
    };
    // The answer.
    let keep_alive = request.keep_alive();
    let head = request.method == "HEAD";
    match router.find(&request.method, request.path()) {
        Ok(Route::Http(handler)) => {
            let response = match h.catch_panic(|| handler(h, &request)) {
                Ok(response) => response,
                Err(_) => {
                    log::error!(target: "fibra_http", "the handler of {} panicked", request.target);
                    return refuse(h, conn, out, 500);
                }
            };
            answer(h, conn, out, &response, !keep_alive, head);
            if keep_alive {
                Next::KeepAlive
            } else {
                Next::Close
            }
        }
        Ok(Route::WebSocket(handler)) => {
            upgrade(
                h,
                conn,
                out,
                &request,
                std::mem::take(reader),
                router,
                handler.as_ref(),
            );
            Next::Close
        }
        Err((405, allow)) => {
            let response = Response::error(405).header("Allow", allow);
            answer(h, conn, out, &response, !keep_alive, head);
            if keep_alive {
                Next::KeepAlive
            } else {
                Next::Close
            }
        }
        Err((status, _)) => {
            answer(h, conn, out, &Response::error(status), !keep_alive, head);
            if keep_alive {
                Next::KeepAlive
            } else {
                Next::Close
            }
        }
    }
}

fn upgrade(
    h: &Handle,
    conn: &Conn,
    out: &mut Vec<u8>,
    request: &Request,
    reader: Reader,
    router: &Router,
    handler: &dyn Fn(&Handle, &Request, &mut WebSocket),
) {
    if !request.header_has_token("upgrade", "websocket")
        || !request.header_has_token("connection", "upgrade")
    {
        answer(
            h,
            conn,
            out,
            &Response::error(426).header("Upgrade", "websocket"),
            true,
            false,
        );
        return;
    }
    if request.header("sec-websocket-version") != Some(b"13") {
        let response = Response::error(426).header("Sec-WebSocket-Version", "13");
        answer(h, conn, out, &response, true, false);
        return;
    }
    let key = match request.header("sec-websocket-key") {
        Some(key) if is_valid_client_key(key) => key,
        _ => {
            answer(h, conn, out, &Response::error(400), true, false);
            return;
        }
    };
    let response = Response::new(101)
        .header("Upgrade", "websocket")
        .header("Connection", "Upgrade")
        .header("Sec-WebSocket-Accept", accept_key(key));
    answer(h, conn, out, &response, false, false);
    *out = Vec::new();
    let mut ws = WebSocket::new(conn.clone(), reader, router.limits.clone());
    match h.catch_panic(|| handler(h, request, &mut ws)) {
        Ok(()) => {
            let _ = ws.close(h, CloseCode::NORMAL, "");
        }
        Err(_) => {
            log::error!(target: "fibra_http", "the WebSocket handler of {} panicked", request.target);
            let _ = ws.close(h, CloseCode::INTERNAL, "");
        }
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
    }
}

/// The `Content-Length`, if any; `Err` when it is not a number or two of them differ.
fn content_length(request: &Request) -> Result<Option<usize>, ()> {
    let mut length = None;
    for (name, value) in request.headers() {
        if !name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        let text = std::str::from_utf8(value).map_err(|_| ())?.trim();
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(());
        }
        let n: usize = text.parse().map_err(|_| ())?;
        if length.is_some_and(|l| l != n) {
            return Err(());
        }
        length = Some(n);
    }
    Ok(length)
}

fn fill(
    h: &Handle,
    conn: &Conn,
    reader: &mut Reader,
    max: usize,
    deadline: Instant,
) -> Result<(), u16> {
    match reader.fill(h, conn, max, Some(deadline)) {
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
    deadline: Instant,
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

/// Reads a chunked body (RFC 9112 §7.1), trailers skipped; at most `max_body` bytes of data,
/// chunk-size lines and trailers within `max_line`.
fn read_chunked(
    h: &Handle,
    conn: &Conn,
    reader: &mut Reader,
    max_body: usize,
    max_line: usize,
    deadline: Instant,
) -> Result<Vec<u8>, u16> {
    let mut body = Vec::new();
    loop {
        let line = read_line(h, conn, reader, max_line, deadline)?;
        let size_text = line.split(|&b| b == b';').next().unwrap_or(&[]);
        let size_text = std::str::from_utf8(size_text).map_err(|_| 400u16)?.trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| 400u16)?;
        if size == 0 {
            // Trailers, up to the empty line.
            while !read_line(h, conn, reader, max_line, deadline)?.is_empty() {}
            return Ok(body);
        }
        if body.len() + size > max_body {
            return Err(413);
        }
        let chunk = read_exact(h, conn, reader, size, deadline)?;
        body.extend_from_slice(&chunk);
        if !read_line(h, conn, reader, max_line, deadline)?.is_empty() {
            return Err(400);
        }
    }
}

/// One line ending with CRLF, without it.
fn read_line(
    h: &Handle,
    conn: &Conn,
    reader: &mut Reader,
    max: usize,
    deadline: Instant,
) -> Result<Vec<u8>, u16> {
    loop {
        if let Some(at) = reader.pending().windows(2).position(|w| w == b"\r\n") {
            let line = reader.pending()[..at].to_vec();
            reader.consume(at + 2);
            return Ok(line);
        }
        if reader.pending().len() >= max {
            return Err(400);
        }
        fill(h, conn, reader, max, deadline)?;
    }
}
