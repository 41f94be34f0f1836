//! A hostile review of TLS: HTTPS behaviour that differs from plain HTTP for no
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
                .post("/echo", |_h, req| {
                    Response::new(200).body(req.body().to_vec())
                })
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
    request.extend_from_slice(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n");
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

/// A real ClientHello (rustls's) with an unknown extension of `pad` zero bytes added, cut
/// into records of 16 KiB (each within TLS's limit).
fn padded_hello(config: Arc<rustls::ClientConfig>, pad: usize) -> Vec<u8> {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut c = rustls::ClientConnection::new(config, name).unwrap();
    let mut rec = Vec::new();
    c.write_tls(&mut rec).unwrap();
    let body = &rec[9..]; // record header (5), handshake header (4)
    let mut i = 34; // version, random
    i += 1 + body[i] as usize; // session id
    i += 2 + u16::from_be_bytes([body[i], body[i + 1]]) as usize; // cipher suites
    i += 1 + body[i] as usize; // compression methods
    let ext_len = u16::from_be_bytes([body[i], body[i + 1]]) as usize;
    let mut ext = body[i + 2..i + 2 + ext_len].to_vec();
    ext.extend_from_slice(&0xffaau16.to_be_bytes());
    ext.extend_from_slice(&(pad as u16).to_be_bytes());
    ext.resize(ext.len() + pad, 0);
    let mut msg = vec![1u8];
    let len = i + 2 + ext.len();
    msg.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    msg.extend_from_slice(&body[..i]);
    msg.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    msg.extend_from_slice(&ext);
    let mut wire = Vec::new();
    for chunk in msg.chunks(16384) {
        wire.extend_from_slice(&[0x16, 3, 1]);
        wire.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        wire.extend_from_slice(chunk);
    }
    wire
}

#[test]
fn a_hello_over_the_handshake_buffer_in_lawful_records_is_not_called_an_oversized_record() {
    // A ClientHello of ~64 KiB (a large unknown extension), in records of 16 KiB: no
    // record is over TLS's limit, but rustls holds a handshake message of 64 KiB at most.
    // The connection was lost with `RecordTooLarge` ("the peer sent a TLS record longer
    // than the protocol allows"), which it did not: a handshake failure says what it was.
    use fibra::net::{ConnOptions, Lost, NetExt, TlsLost};
    let certs = TestCerts::localhost();
    let mut s = util::net_schedule();
    let listener = certs.listen(&s, ConnOptions::new());
    let addr = listener.local_addr();
    // A handshake message of 65,525 bytes (under the 65,535 its 24-bit length and rustls
    // allow), so its records and their headers are 65,545 bytes.
    let base = padded_hello(certs.client_config(), 0).len() - 5;
    let wire = padded_hello(certs.client_config(), 65_525 - base);
    assert_eq!(wire.len(), 65_525 + 4 * 5);
    let client = std::thread::spawn(move || {
        let mut tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = tcp.write_all(&wire);
        let mut rest = Vec::new();
        let _ = tcp.read_to_end(&mut rest);
    });
    let got = Rc::new(std::cell::RefCell::new(None));
    let out = got.clone();
    s.spawn(move |h| {
        let (conn, _) = h.accept(&listener).unwrap();
        *out.borrow_mut() = Some(h.receive(&conn).map_err(|e| e.lost()));
    })
    .unwrap();
    util::run_all(&mut s, 10);
    client.join().unwrap();
    let got = got.borrow_mut().take().unwrap();
    assert!(
        matches!(got, Err(Some(Lost::Tls(TlsLost::Handshake { .. })))),
        "{got:?}"
    );
}
