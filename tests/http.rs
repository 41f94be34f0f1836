//! The HTTP/1.1 server over real sockets: keep-alive and pipelining in order, bodies by
//! Content-Length and chunked, every limit with its status (414, 431, 413, 408, 400), the idle
//! keep-alive deadline, HTTP/1.0 and `Connection: close`, HEAD, 404/405, a panicking handler;
//! hostile chunk sizes refused before their data, RFC 9112's Host and framing rules, `Date`,
//! and timeouts of `Duration::MAX`.

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::rc::Rc;
use std::time::Duration;

use fibra::http::{Limits, Message, Response, Router};
use fibra::rt::Schedule;
use fibra::tasks::TasksExt;
use util::{Served, ServerThread};

struct Http;

impl Served for Http {
    type Stats = ();
    fn stats(&self, _: &Schedule) {}
    fn stop(self, _: &mut Schedule) {}
}

fn limits() -> Limits {
    Limits {
        max_head: 1024,
        max_body: 4096,
        head_timeout: Duration::from_millis(300),
        keep_alive_timeout: Duration::from_millis(300),
        send_timeout: Duration::from_millis(300),
        ..Limits::default()
    }
}

fn start() -> ServerThread<()> {
    ServerThread::start(|s| {
        let router = Rc::new(
            Router::new()
                .get("/a", |_h, req| {
                    // A plain connection: the request says so (`A` is asserted below).
                    Response::text(if req.is_tls() { "A over TLS" } else { "A" })
                })
                .get("/b", |_h, req| {
                    Response::text(format!("B {}", req.query().unwrap_or("")))
                })
                .post("/echo", |_h, req| {
                    Response::new(200).body(req.body().to_vec())
                })
                .get("/slow", |h, _req| {
                    h.sleep(Duration::from_millis(50)); // a handler may park
                    Response::text("slow")
                })
                .get("/panic", |_h, _req| {
                    // On the server's thread, on purpose.
                    util::panics_expected();
                    panic!("handler bug")
                })
                .get("/big", |_h, _req| {
                    Response::new(200).body(vec![b'x'; 256 * 1024])
                })
                .websocket("/ws", |h, _req, ws| {
                    while let Ok(Message::Text(text)) = ws.receive(h) {
                        let _ = ws.send_text(&text);
                    }
                })
                .with_limits(limits()),
        );
        let listener = util::listen(s);
        let addr = listener.local_addr();
        s.spawn(move |h| {
            let _ = fibra::http::serve(h, &listener, router);
        })
        .unwrap();
        (addr, Http)
    })
}

fn client(server: &ServerThread<()>) -> TcpStream {
    let c = TcpStream::connect(server.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c
}

/// Reads one response: (status, headers, body), by its Content-Length.
fn response(c: &mut TcpStream) -> (u16, String, Vec<u8>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            c.read(&mut byte).unwrap(),
            1,
            "closed inside a head: {head:?}"
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let status = head[9..12].parse().unwrap();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .map_or(0, |n| n.trim().parse().unwrap());
    let mut body = vec![0u8; length];
    c.read_exact(&mut body).unwrap();
    (status, head, body)
}

/// Whether the server closed the connection (EOF, not a timeout).
fn closed(c: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    match c.read_to_end(&mut rest) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

#[test]
fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let server = start();
    let mut c = client(&server);
    c.write_all(
        b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n\
          POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
          GET /b?n=3 HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    assert_eq!(response(&mut c).2, b"slow");
    assert_eq!(response(&mut c).2, b"hello");
    assert_eq!(response(&mut c).2, b"B n=3");
    // Still open: one more.
    c.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (status, head, body) = response(&mut c);
    assert_eq!((status, body.as_slice()), (200, &b"A"[..]));
    assert!(!head.contains("Connection: close"), "{head}");
}

#[test]
fn a_chunked_body_is_read_whole_and_the_next_request_follows() {
    let server = start();
    let mut c = client(&server);
    c.write_all(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let (status, _, _) = response(&mut c);
    assert_eq!(status, 100);
    c.write_all(
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    assert_eq!(response(&mut c).2, b"hello world");
    assert_eq!(response(&mut c).2, b"A");
}

#[test]
fn every_limit_has_its_answer_and_closes() {
    let server = start();
    // A head over 1 KiB: 431, and memory never holds more than the limit.
    let mut c = client(&server);
    let big = format!(
        "GET /a HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "y".repeat(2000)
    );
    c.write_all(big.as_bytes()).unwrap();
    assert_eq!(response(&mut c).0, 431);
    assert!(closed(&mut c));
    // Too many headers: 431.
    let mut c = client(&server);
    let many: String = (0..100).map(|i| format!("H{i}: v\r\n")).collect();
    c.write_all(format!("GET /a HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes())
        .unwrap();
    assert_eq!(response(&mut c).0, 431);
    // A body over 4 KiB, announced or chunked: 413.
    let mut c = client(&server);
    c.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
        .unwrap();
    assert_eq!(response(&mut c).0, 413);
    assert!(closed(&mut c));
    let mut c = client(&server);
    c.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    for _ in 0..5 {
        let _ = c.write_all(b"400\r\n");
        let _ = c.write_all(&[b'z'; 0x400]);
        let _ = c.write_all(b"\r\n");
    }
    assert_eq!(response(&mut c).0, 413);
    // Malformed: 400.
    for bad in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ] {
        let mut c = client(&server);
        c.write_all(bad).unwrap();
        assert_eq!(response(&mut c).0, 400, "{}", String::from_utf8_lossy(bad));
        assert!(closed(&mut c));
    }
    // A head that does not finish in time: 408.
    let mut c = client(&server);
    c.write_all(b"GET /a HT").unwrap();
    assert_eq!(response(&mut c).0, 408);
    assert!(closed(&mut c));
}

#[test]
fn an_idle_kept_alive_connection_is_closed_after_its_deadline() {
    let server = start();
    let mut c = client(&server);
    c.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(response(&mut c).2, b"A");
    // Silence past the keep-alive deadline (300 ms): closed without a word.
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
}

#[test]
fn http_1_0_connection_close_head_and_the_error_statuses() {
    let server = start();
    let mut c = client(&server);
    c.write_all(b"GET /a HTTP/1.0\r\n\r\n").unwrap();
    let (_, head, _) = response(&mut c);
    assert!(head.contains("Connection: close"), "{head}");
    assert!(closed(&mut c));

    let mut c = client(&server);
    c.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(response(&mut c).2, b"A");
    assert!(closed(&mut c));

    let mut c = client(&server);
    c.write_all(b"HEAD /a HTTP/1.1\r\nHost: x\r\n\r\nGET /nowhere HTTP/1.1\r\nHost: x\r\n\r\nDELETE /a HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut head = [0u8; 1];
    // HEAD: the length of the body it would have, and no body.
    let mut text = Vec::new();
    while !text.ends_with(b"\r\n\r\n") {
        c.read_exact(&mut head).unwrap();
        text.push(head[0]);
    }
    assert!(String::from_utf8_lossy(&text).contains("Content-Length: 1"));
    assert_eq!(response(&mut c).0, 404);
    let (status, head, _) = response(&mut c);
    assert_eq!(status, 405);
    assert!(head.contains("Allow: GET"), "{head}");

    let mut c = client(&server);
    c.write_all(b"GET /panic HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(response(&mut c).0, 500);
    assert!(closed(&mut c));
    // The server goes on.
    let mut c = client(&server);
    c.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(response(&mut c).2, b"A");
    server.stop();
}

/// Sends `request` on a fresh connection; the status of the answer, and whether the server
/// then closed the connection.
fn status_of(server: &ServerThread<()>, request: &[u8]) -> (u16, bool) {
    let mut c = client(server);
    c.write_all(request).unwrap();
    let status = response(&mut c).0;
    c.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    (status, closed(&mut c))
}

#[test]
fn a_chunk_size_that_would_wrap_the_body_limit_is_refused_before_its_data() {
    let server = start();
    // 5 bytes, then a size that wrapped `body.len() + size` to 0: 413 at once, before any
    // of its data (which the server used to take, past the 4 KiB limit, as long as it came).
    let (status, closed) = status_of(
        &server,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\nFFFFFFFFFFFFFFFB\r\n",
    );
    assert_eq!((status, closed), (413, true));
    // A size that is not 1-16 hex digits, or a size line over the head limit: 400.
    for bad in [
        &b"+5\r\nhello\r\n0\r\n\r\n"[..],
        b"00000000000000005\r\nhello\r\n0\r\n\r\n",
        b"5 \r\nhello\r\n0\r\n\r\n",
        b"0x5\r\nhello\r\n0\r\n\r\n",
    ] {
        let mut request =
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        request.extend_from_slice(bad);
        let answer = status_of(&server, &request);
        assert_eq!(answer, (400, true), "{}", String::from_utf8_lossy(bad));
    }
    let mut request =
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;".to_vec();
    request.extend_from_slice(&[b'e'; 2000]);
    assert_eq!(status_of(&server, &request), (400, true));
    // The server goes on.
    let mut c = client(&server);
    c.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(response(&mut c).2, b"A");
}

#[test]
fn rfc_9112s_host_and_framing_rules_are_kept() {
    let server = start();
    // §3.2: an HTTP/1.1 request needs one Host, no request may have two.
    assert_eq!(status_of(&server, b"GET /a HTTP/1.1\r\n\r\n"), (400, true));
    assert_eq!(
        status_of(&server, b"GET /a HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"),
        (400, true)
    );
    assert_eq!(
        status_of(&server, b"GET /a HTTP/1.0\r\nHost: x\r\nHost: y\r\n\r\n"),
        (400, true)
    );
    assert_eq!(status_of(&server, b"GET /a HTTP/1.0\r\n\r\n").0, 200);
    // §6.3: chunked must be the last coding; a coding the server does not know is 501; a
    // Transfer-Encoding beside a Content-Length is refused.
    let post =
        |te: &str| format!("POST /echo HTTP/1.1\r\nHost: x\r\n{te}\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    for (te, want) in [
        ("Transfer-Encoding: chunked, gzip", 400),
        ("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip", 400),
        ("Transfer-Encoding: chunked, chunked", 400),
        ("Transfer-Encoding: gzip, chunked", 501),
        ("Transfer-Encoding: chunked\r\nContent-Length: 5", 400),
    ] {
        assert_eq!(
            status_of(&server, post(te).as_bytes()),
            (want, true),
            "{te}"
        );
    }
    let mut c = client(&server);
    c.write_all(post("Transfer-Encoding: Chunked").as_bytes())
        .unwrap();
    assert_eq!(response(&mut c).2, b"hello");
}

#[test]
fn a_request_target_over_the_head_limit_is_414_and_every_response_has_a_date() {
    let server = start();
    // A 16 KiB target: 414 URI Too Long (431 is for the header fields).
    let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "t".repeat(16 * 1024));
    assert_eq!(status_of(&server, long.as_bytes()), (414, true));
    let big = format!(
        "GET /a HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "y".repeat(2000)
    );
    assert_eq!(status_of(&server, big.as_bytes()), (431, true));
    // RFC 9110 §6.6.1: a Date in IMF-fixdate form, on answers and refusals alike.
    let mut c = client(&server);
    c.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    for want in [200, 404] {
        let (status, head, _) = response(&mut c);
        assert_eq!(status, want);
        let date = head
            .lines()
            .find_map(|l| l.strip_prefix("Date: "))
            .unwrap_or_else(|| panic!("no Date: {head}"));
        // `Sun, 06 Nov 1994 08:49:37 GMT`
        let b = date.as_bytes();
        assert_eq!(b.len(), 29, "{date}");
        let days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
        assert!(days.contains(&&date[..3]), "{date}");
        assert_eq!(
            (&date[3..5], b[7], b[11], &date[25..]),
            (", ", b' ', b' ', " GMT")
        );
        assert_eq!((b[19], b[22]), (b':', b':'), "{date}");
        let digits = [5, 6, 12, 13, 14, 15, 17, 18, 20, 21, 23, 24];
        assert!(digits.iter().all(|&i| b[i].is_ascii_digit()), "{date}");
    }
}

#[test]
fn timeouts_of_duration_max_mean_no_timeout() {
    let server = ServerThread::start(|s| {
        let router = Rc::new(
            Router::new()
                .get("/a", |_h, _req| Response::text("A"))
                .with_limits(Limits {
                    head_timeout: Duration::MAX,
                    keep_alive_timeout: Duration::MAX,
                    close_timeout: Duration::MAX,
                    ..Limits::default()
                }),
        );
        let listener = util::listen(s);
        let addr = listener.local_addr();
        s.spawn(move |h| {
            let _ = fibra::http::serve(h, &listener, router);
        })
        .unwrap();
        (addr, Http)
    });
    let mut c = client(&server);
    for _ in 0..2 {
        c.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(response(&mut c).2, b"A");
    }
    c.write_all(
        b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n",
    )
    .unwrap();
    assert_eq!(response(&mut c).0, 405);
}

#[test]
fn smuggling_shaped_heads_are_400_and_close() {
    let server = start();
    for bad in [
        &b"GET /a HTTP/1.1\r\nHost : x\r\n\r\n"[..],
        b"GET /a HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: x\rX: a\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5,5\r\n\r\nhello",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
    ] {
        assert_eq!(status_of(&server, bad), (400, true), "{}", String::from_utf8_lossy(bad));
    }
    // Blanks around a Content-Length, a quoted chunk extension, trailers and a pipelined
    // request after a chunked body are fine.
    let mut c = client(&server);
    c.write_all(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length:   5  \r\n\r\nhello\
          POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked , \r\n\r\n\
          2;name=\"a;b\\\"c\"\r\nhi\r\n0\r\nT: 1\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    assert_eq!(response(&mut c).2, b"hello");
    assert_eq!(response(&mut c).2, b"hi");
    assert_eq!(response(&mut c).2, b"A");
}

#[test]
fn an_http_1_0_expectation_of_100_continue_is_ignored() {
    let server = start();
    let mut c = client(&server);
    c.write_all(b"POST /echo HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello")
        .unwrap();
    // RFC 9110 §10.1.1: an HTTP/1.0 client is sent no 100 (it used to get one first).
    let (status, _, body) = response(&mut c);
    assert_eq!((status, &body[..]), (200, &b"hello"[..]));
}

#[test]
fn a_peer_that_never_reads_its_answers_is_cut_off() {
    let server = start();
    let mut c = client(&server);
    // 64 answers of 256 KiB, never read: the server's sends fill its send limit and the
    // socket buffers, and it used to wait for room for ever (a tasklet and its buffers held
    // by a peer that sends 2 KiB).
    let request = b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n".repeat(64);
    c.write_all(&request).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    c.set_read_timeout(Some(Duration::from_millis(1000)))
        .unwrap();
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    let ended = loop {
        match c.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => got += n,
            Err(e) => break e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    };
    assert!(ended, "the connection was still open after {got} bytes");
    assert!(got < 64 * 256 * 1024, "every answer was sent: {got} bytes");
}

#[test]
fn an_http_1_0_keep_alive_is_answered_with_keep_alive() {
    let server = start();
    let mut c = client(&server);
    let request = b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    c.write_all(request).unwrap();
    // RFC 9112 §9.3: without `Connection: keep-alive` in the answer (it had none), an
    // HTTP/1.0 client takes the connection as closing.
    let (_, head, body) = response(&mut c);
    assert!(head.contains("Connection: keep-alive\r\n"), "{head}");
    assert_eq!(body, b"A");
    c.write_all(request).unwrap();
    assert_eq!(response(&mut c).2, b"A");
}

/// Sends `request` on a fresh connection and reads all it gives until the server closes it.
fn exchange(server: &ServerThread<()>, request: &[u8]) -> String {
    let mut c = client(server);
    c.write_all(request).unwrap();
    let mut all = Vec::new();
    let _ = c.read_to_end(&mut all);
    String::from_utf8_lossy(&all).into_owned()
}

/// RFC 9110 §9.3.2: an answer to HEAD carries no content, the refusals and the 500 of a
/// panicking handler included (they carried their status text).
#[test]
fn a_head_request_is_never_answered_with_a_body() {
    let server = start();
    for request in [
        &b"HEAD /panic HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"HEAD /ws HTTP/1.0\r\n\r\n",
        b"HEAD /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhel",
    ] {
        let text = exchange(&server, request);
        let end = text
            .find("\r\n\r\n")
            .unwrap_or_else(|| panic!("no head: {text}"))
            + 4;
        assert_eq!(&text[end..], "", "a body after a HEAD's answer: {text}");
    }
    server.stop();
}

/// RFC 9112 §3.2.2: a server accepts a target in absolute form, routed by its path.
#[test]
fn an_absolute_form_target_is_routed_by_its_path() {
    let server = start();
    for request in [
        "GET http://x/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET HTTP://x\u{e9}/a?q HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ] {
        let text = exchange(&server, request.as_bytes());
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.ends_with("\r\n\r\nA"), "{text}");
    }
    server.stop();
}

/// A server with the default limits but a small body limit: answers are not cut off for
/// want of room (10 s), so only the close can lose them.
fn start_default_limits() -> ServerThread<()> {
    ServerThread::start(|s| {
        let router = Rc::new(
            Router::new()
                .get("/a", |_h, _req| Response::text("A"))
                .post("/echo", |_h, req| {
                    Response::new(200).body(req.body().to_vec())
                })
                .with_limits(Limits {
                    max_body: 4096,
                    ..Limits::default()
                }),
        );
        let listener = util::listen(s);
        let addr = listener.local_addr();
        s.spawn(move |h| {
            let _ = fibra::http::serve(h, &listener, router);
        })
        .unwrap();
        (addr, Http)
    })
}

#[test]
fn answers_queued_before_a_refusal_are_not_destroyed_by_a_reset_while_the_peer_still_sends() {
    // RFC 9112 §9.6: a server that closes while the client's bytes still come must not make
    // the kernel reset the connection: the reset drops every answer not yet read. A
    // pipelining client (3,000 GETs) then uploads a body over the limit: the 413 is sent at
    // the head, the upload goes on. The server used to close with the upload unread: a
    // reset, and the client read only the ~870 answers already in its receive buffer, no 413.
    let server = start_default_limits();
    let mut c = client(&server);
    let mut up = c.try_clone().unwrap();
    let uploader = std::thread::spawn(move || {
        let mut request = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n".repeat(3000);
        request.extend_from_slice(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n",
        );
        // The server may end the connection while this is being sent: not this test's point.
        let _ = up.write_all(&request);
        for _ in 0..16 {
            if up.write_all(&[b'u'; 64 * 1024]).is_err() {
                break;
            }
        }
        let _ = up.shutdown(std::net::Shutdown::Write);
    });
    // Read only once the server has answered and closed (or tried to).
    std::thread::sleep(Duration::from_millis(700));
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let end = loop {
        match c.read(&mut buf) {
            Ok(0) => break "EOF".to_owned(),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => break format!("{e}"),
        }
    };
    uploader.join().unwrap();
    let count = |needle: &[u8]| got.windows(needle.len()).filter(|w| w == &needle).count();
    assert_eq!(
        (
            count(b"HTTP/1.1 200 OK"),
            count(b"HTTP/1.1 413 "),
            end.as_str()
        ),
        (3000, 1, "EOF"),
        "answers read before the connection ended"
    );
}

#[test]
fn a_host_that_is_not_a_host_is_400() {
    // RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code to any
    // HTTP/1.1 request message that [...] contains [...] a Host header field with an invalid
    // field value." Host = uri-host [ ":" port ] (RFC 3986 §3.2.2); these were answered 200.
    let server = start();
    for host in [
        &b"a b"[..],
        b"a/b",
        b"user@evil.example",
        b"x?y",
        b"x#y",
        b"x\\y",
        b"<x>",
        b"x\"y",
        b"\xc3\xa9.example",
        b"\xff",
    ] {
        let mut request = b"GET /a HTTP/1.1\r\nHost: ".to_vec();
        request.extend_from_slice(host);
        request.extend_from_slice(b"\r\n\r\n");
        assert_eq!(
            status_of(&server, &request),
            (400, true),
            "Host: {}",
            String::from_utf8_lossy(host)
        );
    }
    // Names, ports, addresses, percent-encoding, sub-delims and an empty Host are hosts.
    for host in [
        "x",
        "example.com:8080",
        "127.0.0.1:80",
        "[::1]:8080",
        "[v1.fe]",
        "xn--bcher-kva.example",
        "a%20b",
        "a!$&'()*+,;=b",
        "",
    ] {
        let request = format!("GET /a HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        assert_eq!(
            exchange(&server, request.as_bytes())[9..12],
            *"200",
            "Host: {host}"
        );
    }
}
