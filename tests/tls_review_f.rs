//! A hostile review of TLS (rev-f): HTTPS behaviour that differs from plain HTTP for no
//! reason. Each test here failed when written.
#![cfg(feature = "tls")]

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use fibra::http::{Limits, Response, Router};
use fibra::net::rustls;
use fibra::rt::Schedule;
use util::certs::TestCerts;
use util::{Served, ServerThread};

struct Https;

impl Served for Https {
    type Stats = ();
    fn stats(&self, _: &Schedule) {}
    fn stop(self, _: &mut Schedule) {}
}

/// An HTTPS server with `/a` (GET) and `/echo` (POST, bodies of 4 KiB at most).
fn start(config: Arc<rustls::ServerConfig>) -> ServerThread<()> {
    ServerThread::start(move |s| {
        let router = Rc::new(
            Router::new()
                .get("/a", |_h, _req| Response::text("A"))
                .post("/echo", |_h, req| Response::new(200).body(req.body().to_vec()))
                .with_limits(Limits {
                    max_body: 4096,
                    ..Limits::default()
                }),
        );
        let (tx, rx) = std::sync::mpsc::channel();
        s.spawn(move |h| {
            let listener = fibra::http::listen_tls(h, "127.0.0.1:0", config).unwrap();
            tx.send(listener.local_addr()).unwrap();
            let _ = fibra::http::serve(h, &listener, router);
        })
        .unwrap();
        s.tick().unwrap();
        (rx.recv().unwrap(), Https)
    })
}

/// `plain` encrypted by `conn` into records (as many rounds as rustls's buffer limit asks).
fn encrypt(conn: &mut rustls::ClientConnection, mut plain: &[u8]) -> Vec<u8> {
    let mut wire = Vec::new();
    while !plain.is_empty() || conn.wants_write() {
        let n = conn.writer().write(plain).unwrap();
        plain = &plain[n..];
        while conn.wants_write() {
            conn.write_tls(&mut wire).unwrap();
        }
    }
    wire
}

#[test]
fn https_answers_before_a_refusal_are_not_destroyed_by_a_reset_while_the_peer_still_sends() {
    // As `http::answers_queued_before_a_refusal_are_not_destroyed_by_a_reset_while_the_peer_
    // still_sends`, over TLS: 3,000 pipelined GETs, then an upload over the limit that goes
    // on after the 413. Plain HTTP lingers (answers, FIN, the upload read and dropped);
    // over TLS `Conn::shutdown_write` said `false` and the server closed at once with the
    // upload unread: the kernel reset the connection and the client lost the answers it
    // had not read yet, the 413 among them.
    let certs = TestCerts::localhost();
    let server = start(certs.server_config_alpn(&[b"http/1.1"]));
    let mut tcp = TcpStream::connect(server.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn =
        rustls::ClientConnection::new(certs.client_config_alpn(&[b"http/1.1"]), name).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).unwrap();
    }
    let mut request = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n".repeat(3000);
    request
        .extend_from_slice(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n");
    let head = encrypt(&mut conn, &request);
    let upload = encrypt(&mut conn, &[b'u'; 1024 * 1024]);
    let mut up = tcp.try_clone().unwrap();
    let uploader = std::thread::spawn(move || {
        // The server may end the connection while this is being sent: not this test's point.
        let _ = up.write_all(&head);
        let _ = up.write_all(&upload);
        let _ = up.shutdown(std::net::Shutdown::Write);
    });
    // Read only once the server has answered and closed (or tried to).
    std::thread::sleep(Duration::from_millis(700));
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let end = 'read: loop {
        match conn.read_tls(&mut tcp) {
            Ok(0) => break "EOF".to_owned(),
            Ok(_) => {}
            Err(e) => break format!("{e}"),
        }
        if let Err(e) = conn.process_new_packets() {
            break format!("{e}");
        }
        loop {
            match conn.reader().read(&mut buf) {
                Ok(0) => break 'read "close_notify".to_owned(),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => break 'read format!("{e}"),
            }
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
        (3000, 1, "close_notify"),
        "answers read before the connection ended"
    );
}
