//! The HTTP/1.1 server over real sockets: keep-alive and pipelining in order, bodies by
//! Content-Length and chunked, every limit with its status (431, 413, 408, 400), the idle
//! keep-alive deadline, HTTP/1.0 and `Connection: close`, HEAD, 404/405, a panicking handler.

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::rc::Rc;
use std::time::Duration;

use fibra::http::{Limits, Response, Router};
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
        ..Limits::default()
    }
}

fn start() -> ServerThread<()> {
    ServerThread::start(|s| {
        let router = Rc::new(
            Router::new()
                .get("/a", |_h, _req| Response::text("A"))
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
                .get("/panic", |_h, _req| panic!("handler bug"))
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
    c.write_all(b"GET /a HTTP/1.1\r\n\r\n").unwrap();
    let (status, head, body) = response(&mut c);
    assert_eq!((status, body.as_slice()), (200, &b"A"[..]));
    assert!(!head.contains("Connection: close"), "{head}");
}

#[test]
fn a_chunked_body_is_read_whole_and_the_next_request_follows() {
    let server = start();
    let mut c = client(&server);
    c.write_all(
        b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let (status, _, _) = response(&mut c);
    assert_eq!(status, 100);
    c.write_all(
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\nGET /a HTTP/1.1\r\n\r\n",
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
    let big = format!("GET /a HTTP/1.1\r\nX-Big: {}\r\n\r\n", "y".repeat(2000));
    c.write_all(big.as_bytes()).unwrap();
    assert_eq!(response(&mut c).0, 431);
    assert!(closed(&mut c));
    // Too many headers: 431.
    let mut c = client(&server);
    let many: String = (0..100).map(|i| format!("H{i}: v\r\n")).collect();
    c.write_all(format!("GET /a HTTP/1.1\r\n{many}\r\n").as_bytes())
        .unwrap();
    assert_eq!(response(&mut c).0, 431);
    // A body over 4 KiB, announced or chunked: 413.
    let mut c = client(&server);
    c.write_all(b"POST /echo HTTP/1.1\r\nContent-Length: 5000\r\n\r\n")
        .unwrap();
    assert_eq!(response(&mut c).0, 413);
    assert!(closed(&mut c));
    let mut c = client(&server);
    c.write_all(b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
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
        b"GET /a HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        b"GET /a HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
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
    c.write_all(b"GET /a HTTP/1.1\r\n\r\n").unwrap();
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
    c.write_all(b"GET /a HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(response(&mut c).2, b"A");
    assert!(closed(&mut c));

    let mut c = client(&server);
    c.write_all(b"HEAD /a HTTP/1.1\r\n\r\nGET /nowhere HTTP/1.1\r\n\r\nDELETE /a HTTP/1.1\r\n\r\n")
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
    c.write_all(b"GET /panic HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(response(&mut c).0, 500);
    assert!(closed(&mut c));
    // The server goes on.
    let mut c = client(&server);
    c.write_all(b"GET /a HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(response(&mut c).2, b"A");
    server.stop();
}
