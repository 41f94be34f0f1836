//! fibra-http over TLS: an HTTPS GET and a WSS echo, with ALPN `http/1.1`, from a blocking
//! rustls client in the test thread (certificates made in the test).
#![cfg(feature = "tls")]

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use fibra::http::{Message, Response, Router};
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

fn start(config: Arc<rustls::ServerConfig>) -> ServerThread<()> {
    ServerThread::start(move |s| {
        let router = Rc::new(
            Router::new()
                .get("/hello", |_h, req| {
                    Response::text(if req.is_tls() {
                        "hello over TLS"
                    } else {
                        "hello, said the server that thinks it is plaintext"
                    })
                })
                .websocket("/ws", |h, _req, ws| {
                    while let Ok(Message::Text(text)) = ws.receive(h) {
                        let _ = ws.send_text(&format!("echo {text}"));
                    }
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

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A blocking TLS client of `addr`, offering `alpn`.
fn connect(certs: &TestCerts, addr: std::net::SocketAddr, alpn: &[&[u8]]) -> Tls {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(certs.client_config_alpn(alpn), name).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

/// Reads a response head (up to the empty line).
fn head(c: &mut Tls) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(c.read(&mut byte).unwrap(), 1, "closed inside a head");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

#[test]
fn https_get_with_alpn_http11() {
    let certs = TestCerts::localhost();
    // The config's own ALPN list (h2 first) is replaced: only http/1.1 is served.
    let server = start(certs.server_config_alpn(&[b"h2", b"http/1.1"]));
    let mut c = connect(&certs, server.addr, &[b"h2", b"http/1.1"]);
    c.write_all(b"GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let head = head(&mut c);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(c.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    let mut body = Vec::new();
    // The server closes after the answer, with close_notify: a clean end of stream.
    c.read_to_end(&mut body).unwrap();
    assert_eq!(body, b"hello over TLS");
}

#[test]
fn https_refuses_a_client_that_speaks_only_h2() {
    let certs = TestCerts::localhost();
    let server = start(certs.server_config());
    let mut c = connect(&certs, server.addr, &[b"h2"]);
    let err = c
        .write_all(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .and_then(|()| c.flush())
        .and_then(|()| c.read(&mut [0u8; 16]).map(|_| ()))
        .expect_err("no application protocol in common");
    assert!(
        err.to_string().contains("no_application_protocol")
            || err.to_string().contains("NoApplicationProtocol"),
        "{err}"
    );
}

/// A masked client frame.
fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut f = vec![0x80 | opcode, 0x80 | payload.len() as u8];
    let key = [0x12, 0x34, 0x56, 0x78];
    f.extend_from_slice(&key);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    f
}

#[test]
fn wss_echo() {
    let certs = TestCerts::localhost();
    let server = start(certs.server_config());
    let mut c = connect(&certs, server.addr, &[b"http/1.1"]);
    c.write_all(
        b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
          Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .unwrap();
    let head = head(&mut c);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    for word in ["one", "two"] {
        c.write_all(&frame(0x1, word.as_bytes())).unwrap();
        let mut got = [0u8; 2];
        c.read_exact(&mut got).unwrap();
        assert_eq!(got[0], 0x81, "a final text frame");
        let mut payload = vec![0u8; usize::from(got[1])];
        c.read_exact(&mut payload).unwrap();
        assert_eq!(payload, format!("echo {word}").as_bytes());
    }
    // A close: answered with a close, then the end of the stream.
    c.write_all(&frame(0x8, &1000u16.to_be_bytes())).unwrap();
    let mut got = [0u8; 4];
    c.read_exact(&mut got).unwrap();
    assert_eq!(got[0], 0x88);
}
