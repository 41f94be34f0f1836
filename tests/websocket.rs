//! The WebSocket server over real sockets, driven by a small client written here: the
//! handshake and its refusals, echo of text and binary, fragments joined, ping answered, the
//! close handshake, and every rule broken closed with its code (1002, 1007, 1009); an abrupt
//! end seen as 1006; a sender used by another tasklet; a hostile frame after the server's
//! close; HTTP/1.0 refused; a close timeout of `Duration::MAX`.

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fibra::http::{CloseCode, HttpError, Limits, Message, Response, Router};
use fibra::rt::Schedule;
use fibra::tasks::TasksExt;
use util::ws::Client;
use util::{Served, ServerThread};

/// How each WebSocket's handler loop ended, by close code.
type Ends = Arc<Mutex<Vec<u16>>>;

struct Ws;
impl Served for Ws {
    type Stats = ();
    fn stats(&self, _: &Schedule) {}
    fn stop(self, _: &mut Schedule) {}
}

fn start(ends: Ends) -> ServerThread<()> {
    ServerThread::start(move |s| {
        let quit_ends = ends.clone();
        let limits = Limits {
            max_frame: 1024,
            max_message: 4096,
            close_timeout: Duration::from_millis(500),
            ..Limits::default()
        };
        let router = Rc::new(
            Router::new()
                .get("/", |_h, _req| Response::text("hello, world!"))
                .websocket("/ws", move |h, _req, ws| loop {
                    match ws.receive(h) {
                        Ok(Message::Text(text)) => ws.send_text(&text).unwrap(),
                        Ok(Message::Binary(bytes)) => ws.send_binary(&bytes).unwrap(),
                        Err(HttpError::Closed(code)) => {
                            ends.lock().unwrap().push(code.0);
                            return;
                        }
                        Err(e) => panic!("{e}"),
                    }
                })
                .websocket("/old-names", old_names_echo)
                .websocket("/quit", move |h, _req, ws| {
                    // A chat's `/quit`: the server closes first (and says when that ended,
                    // as 4000 + 0 for Ok, + 1 for an error).
                    while let Ok(Message::Text(text)) = ws.receive(h) {
                        if text == "/quit" {
                            let closed = ws.close(h, CloseCode::NORMAL, "bye");
                            quit_ends
                                .lock()
                                .unwrap()
                                .push(4000 + u16::from(closed.is_err()));
                            return;
                        }
                    }
                })
                .websocket("/ticks", |h, _req, ws| {
                    // Another tasklet sends through the sender, without waiting.
                    let sender = ws.sender();
                    let ticker = h
                        .spawn(move |h| {
                            for i in 0..3 {
                                h.sleep(Duration::from_millis(5));
                                sender.send_text(&format!("tick {i}")).unwrap();
                            }
                        })
                        .unwrap();
                    let _ = h.join(ticker);
                    let _ = ws.close(h, CloseCode::GOING_AWAY, "done");
                })
                .with_limits(limits),
        );
        let listener = util::listen(s);
        let addr = listener.local_addr();
        s.spawn(move |h| {
            let _ = fibra::http::serve(h, &listener, router);
        })
        .unwrap();
        (addr, Ws)
    })
}

/// Echoes one message through each of the names `receive` and `receive_until` had before
/// the rename, then closes.
#[allow(deprecated)]
fn old_names_echo(h: &fibra::Handle, _req: &fibra::http::Request, ws: &mut fibra::http::WebSocket) {
    if let Ok(Message::Text(text)) = ws.recv(h) {
        ws.send_text(&text).unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    if let Ok(Message::Text(text)) = ws.recv_until(h, Some(deadline)) {
        ws.send_text(&text).unwrap();
    }
    let _ = ws.close(h, CloseCode::NORMAL, "done");
}

fn wait_for_end(ends: &Ends, code: u16) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !ends.lock().unwrap().contains(&code) {
        assert!(
            std::time::Instant::now() < deadline,
            "no end with {code}: {:?}",
            ends.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn messages_echo_fragments_join_pings_are_answered_and_the_close_handshake_completes() {
    let ends = Ends::default();
    let server = start(ends.clone());
    let mut ws = Client::open(server.addr, "/ws");
    ws.send(1, "héllo".as_bytes());
    assert_eq!(ws.next(), (1, "héllo".as_bytes().to_vec()));
    ws.send(2, &[0, 1, 2, 255]);
    assert_eq!(ws.next(), (2, vec![0, 1, 2, 255]));
    // A text message in three fragments, with a ping between them.
    ws.raw(0x01, b"frag", true);
    ws.raw(0x89, b"are you there", true);
    ws.raw(0x00, b"men", true);
    ws.raw(0x80, b"ted", true);
    assert_eq!(
        ws.next(),
        (10, b"are you there".to_vec()),
        "the pong comes first"
    );
    assert_eq!(ws.next(), (1, b"fragmented".to_vec()));
    // A 1,000-byte frame (16-bit length).
    let long = vec![b'x'; 1000];
    ws.send(1, &long);
    assert_eq!(ws.next(), (1, long));
    // The close handshake: our 1000 is answered with 1000, then the connection ends.
    ws.send(8, &[0x03, 0xE8, b'b', b'y', b'e']);
    ws.expect_close(1000);
    wait_for_end(&ends, 1000);
}

#[test]
fn every_broken_rule_is_closed_with_its_code() {
    let ends = Ends::default();
    let server = start(ends.clone());
    /// (what the client does wrong, what it does, the code it must be closed with)
    type Case = (&'static str, Box<dyn Fn(&mut Client)>, u16);
    let cases: Vec<Case> = vec![
        ("unmasked", Box::new(|ws| ws.raw(0x81, b"hi", false)), 1002),
        (
            "reserved bit",
            Box::new(|ws| ws.raw(0xC1, b"hi", true)),
            1002,
        ),
        (
            "unknown opcode",
            Box::new(|ws| ws.raw(0x83, b"hi", true)),
            1002,
        ),
        (
            "continuation of nothing",
            Box::new(|ws| ws.raw(0x80, b"hi", true)),
            1002,
        ),
        (
            "a new message inside one",
            Box::new(|ws| {
                ws.raw(0x01, b"a", true);
                ws.raw(0x81, b"b", true);
            }),
            1002,
        ),
        (
            "fragmented ping",
            Box::new(|ws| ws.raw(0x09, b"p", true)),
            1002,
        ),
        (
            "ping over 125 bytes",
            Box::new(|ws| ws.send(9, &[0; 126])),
            1002,
        ),
        ("close with one byte", Box::new(|ws| ws.send(8, &[3])), 1002),
        (
            "close code 999",
            Box::new(|ws| ws.send(8, &999u16.to_be_bytes())),
            1002,
        ),
        (
            "text not UTF-8",
            Box::new(|ws| ws.send(1, &[0xC3, 0x28])),
            1007,
        ),
        (
            "bad UTF-8 in a first fragment (failed at once, not at the last)",
            Box::new(|ws| ws.raw(0x01, &[b'o', b'k', 0xFF], true)),
            1007,
        ),
        (
            "frame over 1 KiB",
            Box::new(|ws| ws.send(2, &[0; 2000])),
            1009,
        ),
        (
            "message over 4 KiB",
            Box::new(|ws| {
                ws.raw(0x02, &[0; 1000], true);
                for _ in 0..5 {
                    ws.raw(0x00, &[0; 1000], true);
                }
            }),
            1009,
        ),
    ];
    for (what, act, code) in cases {
        let mut ws = Client::open(server.addr, "/ws");
        act(&mut ws);
        let (opcode, payload) = ws.next();
        assert_eq!(opcode, 8, "{what}: {payload:?}");
        assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), code, "{what}");
    }
}

#[test]
fn an_abrupt_end_is_1006_and_bad_handshakes_are_refused() {
    let ends = Ends::default();
    let server = start(ends.clone());
    let mut ws = Client::open(server.addr, "/ws");
    ws.raw(0x81, &[0; 3], true); // then the connection drops mid-frame
    ws.c.write_all(&[0x81, 0x85, 1]).unwrap();
    drop(ws);
    wait_for_end(&ends, 1006);

    let (_, head) = Client::handshake(server.addr, "/ws", "8", "dGhlIHNhbXBsZSBub25jZQ==");
    assert!(head.starts_with("HTTP/1.1 426"), "{head}");
    assert!(head.contains("Sec-WebSocket-Version: 13"), "{head}");
    let (_, head) = Client::handshake(server.addr, "/ws", "13", "short");
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    // A plain GET of a WebSocket path: 426.
    let mut c = TcpStream::connect(server.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = c.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 426"), "{answer}");
}

#[test]
fn another_tasklet_sends_through_a_sender_and_the_server_closes_first() {
    let server = start(Ends::default());
    let mut ws = Client::open(server.addr, "/ticks");
    for i in 0..3 {
        assert_eq!(ws.next(), (1, format!("tick {i}").into_bytes()));
    }
    let (opcode, payload) = ws.next();
    assert_eq!(opcode, 8);
    assert_eq!(&payload[..2], &1001u16.to_be_bytes());
    assert_eq!(&payload[2..], b"done");
    // Our answer completes the handshake; the server then closes the connection.
    ws.send(8, &1001u16.to_be_bytes());
    let mut rest = Vec::new();
    match ws.c.read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty(), "{rest:?}"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
    }
}

#[test]
fn the_old_recv_names_still_receive() {
    let server = start(Ends::default());
    let mut ws = Client::open(server.addr, "/old-names");
    ws.send(1, b"one");
    assert_eq!(ws.next(), (1, b"one".to_vec()));
    ws.send(1, b"two");
    assert_eq!(ws.next(), (1, b"two".to_vec()));
    ws.expect_close(1000);
}

#[test]
fn a_frame_with_a_wrapping_length_after_the_servers_close_is_refused_and_the_server_goes_on() {
    let ends = Ends::default();
    let server = start(ends.clone());
    let mut ws = Client::open(server.addr, "/quit");
    ws.say("/quit");
    let (opcode, payload) = ws.next();
    assert_eq!((opcode, &payload[..2]), (8, &1000u16.to_be_bytes()[..]));
    // A 64-bit length with its top bit set (a protocol error), whose sum with the header's
    // 14 bytes wraps to 0: the close path used to skip 0 bytes for ever, the whole server at
    // 100% CPU.
    let evil = [
        0x82, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xF2, 1, 2, 3, 4,
    ];
    ws.c.write_all(&evil).unwrap();
    ws.c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut rest = Vec::new();
    let closed = match ws.c.read_to_end(&mut rest) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(()),
        Err(e) => Err(format!("the connection was not closed within 3 s: {e}")),
    };
    // Another client is still served.
    let other = (|| {
        let mut c = TcpStream::connect(server.addr).map_err(|e| e.to_string())?;
        c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .map_err(|e| e.to_string())?;
        let mut answer = String::new();
        c.read_to_string(&mut answer).map_err(|e| e.to_string())?;
        Ok::<_, String>(answer)
    })();
    if closed.is_err() || !other.as_ref().is_ok_and(|a| a.starts_with("HTTP/1.1 200")) {
        // The server's thread may be spinning: leave it (the process ends it), fail.
        std::mem::forget(server);
        panic!("closed: {closed:?}; another client got: {other:?}");
    }
    // The close returned (the handler's tasklet did not die on an overflow).
    wait_for_end(&ends, 4000);
}

#[test]
fn an_upgrade_over_http_1_0_is_refused() {
    let server = start(Ends::default());
    let mut c = TcpStream::connect(server.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(
        b"GET /ws HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .unwrap();
    let mut answer = String::new();
    let _ = c.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
}

#[test]
fn a_close_timeout_of_duration_max_waits_for_the_peers_close() {
    let ends = Ends::default();
    let server = {
        let ends = ends.clone();
        ServerThread::start(move |s| {
            let limits = Limits {
                close_timeout: Duration::MAX,
                ..Limits::default()
            };
            let router = Rc::new(
                Router::new()
                    .websocket("/bye", move |h, _req, ws| {
                        let _ = ws.close(h, CloseCode::GOING_AWAY, "");
                        ends.lock().unwrap().push(1001);
                    })
                    .with_limits(limits),
            );
            let listener = util::listen(s);
            let addr = listener.local_addr();
            s.spawn(move |h| {
                let _ = fibra::http::serve(h, &listener, router);
            })
            .unwrap();
            (addr, Ws)
        })
    };
    let mut ws = Client::open(server.addr, "/bye");
    let (opcode, payload) = ws.next();
    assert_eq!((opcode, &payload[..2]), (8, &1001u16.to_be_bytes()[..]));
    ws.send(1, b"meanwhile"); // dropped
    ws.send(8, &1001u16.to_be_bytes());
    let mut rest = Vec::new();
    match ws.c.read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty(), "{rest:?}"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
    }
    wait_for_end(&ends, 1001);
}

/// The answer to a raw handshake request for `/ws` with `extra` header lines.
fn raw_upgrade(server: &ServerThread<()>, method: &str, extra: &str) -> String {
    let mut c = TcpStream::connect(server.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let request = format!(
        "{method} /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
         Connection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    );
    c.write_all(request.as_bytes()).unwrap();
    let mut answer = [0u8; 12];
    c.read_exact(&mut answer).unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn a_handshake_by_head_or_with_two_keys_is_refused() {
    let server = start(Ends::default());
    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    // `Connection: keep-alive, Upgrade` holds the token: upgraded.
    assert_eq!(raw_upgrade(&server, "GET", key), "HTTP/1.1 101");
    // RFC 6455 §4.1: the handshake is a GET (HEAD used to be served by the GET route: 101).
    assert_ne!(raw_upgrade(&server, "HEAD", key), "HTTP/1.1 101");
    assert_eq!(raw_upgrade(&server, "POST", key), "HTTP/1.1 405");
    // §11.3.1: Sec-WebSocket-Key must not appear more than once (the first was taken).
    let two = format!("{key}Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n");
    assert_eq!(raw_upgrade(&server, "GET", &two), "HTTP/1.1 400");
    assert_eq!(raw_upgrade(&server, "GET", ""), "HTTP/1.1 400");
}

#[test]
fn close_codes_a_peer_may_not_send_and_bad_reasons_are_refused() {
    let server = start(Ends::default());
    let close = |payload: &[u8]| {
        let mut ws = Client::open(server.addr, "/ws");
        ws.send(8, payload);
        let (opcode, payload) = ws.next();
        assert_eq!(opcode, 8, "{payload:?}");
        u16::from_be_bytes([payload[0], payload[1]])
    };
    // RFC 6455 §7.4.1: 1004-1006 and 1015 are reserved, below 1000 and 1016-2999 unassigned.
    for code in [
        0u16,
        999,
        1004,
        1005,
        1006,
        1015,
        1016,
        2999,
        5000,
        u16::MAX,
    ] {
        assert_eq!(close(&code.to_be_bytes()), 1002, "code {code}");
    }
    // §8.1: a reason that is not UTF-8 is 1007.
    assert_eq!(close(&[0x03, 0xE8, 0xFF, 0xFE]), 1007);
    // The longest close (a 123-byte reason) and private codes are answered with their code.
    let mut longest = 4999u16.to_be_bytes().to_vec();
    longest.extend_from_slice(&[b'r'; 123]);
    assert_eq!(close(&longest), 4999);
    assert_eq!(close(&3000u16.to_be_bytes()), 3000);
    assert_eq!(close(&1000u16.to_be_bytes()), 1000);
}

#[test]
fn a_peer_that_floods_frames_instead_of_closing_is_cut_at_the_close_timeout() {
    // The server closes first (`/quit`) and waits up to its close timeout (500 ms) for the
    // peer's close. A peer that answers with an endless stream of frames, never a close,
    // must not hold the close (and its tasklet and connection) past that timeout: the
    // stream always has a frame ready, but the deadline still applies.
    let ends = Ends::default();
    let server = start(ends.clone());
    let mut ws = Client::open(server.addr, "/quit");
    ws.say("/quit");
    let flooder = ws.c.try_clone().unwrap();
    let flood = std::thread::spawn(move || {
        let mut flooder = Client { c: flooder };
        flooder
            .c
            .set_write_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        let started = std::time::Instant::now();
        // Bounded: 8 s of frames at most (16 close timeouts).
        while started.elapsed() < Duration::from_secs(8) {
            // 256 KiB of 1000-byte binary frames per write, so that one is always there.
            let mut frame = vec![0x82, 0x80 | 126, 0x03, 0xE8, 0, 0, 0, 0];
            frame.extend_from_slice(&[0u8; 1000]);
            let batch = frame.repeat(256);
            if flooder.c.write_all(&batch).is_err() {
                return true; // the server closed (or reset) the connection
            }
        }
        false
    });
    let cut = flood.join().unwrap();
    assert!(
        cut,
        "the server still took frames 16 close timeouts after its close: {:?}",
        ends.lock().unwrap()
    );
    wait_for_end(&ends, 4000);
}

/// The handshake's head, with `headers` (each `Name: value\r\n`) after a `Host` of `host`.
fn handshake_from(addr: std::net::SocketAddr, host: &str, headers: &str) -> String {
    util::ws::handshake_head(addr, host.as_bytes(), headers.as_bytes())
}

/// Cross-site WebSocket hijacking: a page from another site, open in a user's browser,
/// opens a WebSocket to a server the user reaches (a chat on 127.0.0.1) and speaks as them.
/// By default a handshake whose `Origin` is not the server's own is refused (403); one
/// without an `Origin` (not a browser) or from the page's own server is taken; a router's
/// own check decides otherwise. Before: every origin was taken.
#[test]
fn a_websocket_handshake_from_another_origin_is_refused() {
    let server = start(Ends::default());
    let host = server.addr.to_string();
    let evil = handshake_from(server.addr, &host, "Origin: http://evil.example\r\n");
    assert!(evil.starts_with("HTTP/1.1 403"), "{evil}");
    let null = handshake_from(server.addr, &host, "Origin: null\r\n");
    assert!(null.starts_with("HTTP/1.1 403"), "{null}");
    let own = format!("Origin: http://{host}\r\n");
    let same = handshake_from(server.addr, &host, &own);
    assert!(same.starts_with("HTTP/1.1 101"), "{same}");
    let tls_page = format!("Origin: https://{}\r\n", host.to_uppercase());
    let same = handshake_from(server.addr, &host, &tls_page);
    assert!(same.starts_with("HTTP/1.1 101"), "{same}");
    let none = handshake_from(server.addr, &host, "");
    assert!(none.starts_with("HTTP/1.1 101"), "{none}");

    // A router that names the origins it takes.
    let open = ServerThread::start(|s| {
        let router = Rc::new(
            Router::new()
                .websocket("/ws", |_h, _req, _ws| {})
                .check_origin(|req| {
                    req.header("origin")
                        .is_none_or(|o| o == b"https://chat.example.com")
                }),
        );
        let listener = util::listen(s);
        let addr = listener.local_addr();
        s.spawn(move |h| {
            let _ = fibra::http::serve(h, &listener, router);
        })
        .unwrap();
        (addr, Ws)
    });
    let host = open.addr.to_string();
    let named = handshake_from(open.addr, &host, "Origin: https://chat.example.com\r\n");
    assert!(named.starts_with("HTTP/1.1 101"), "{named}");
    let own = format!("Origin: http://{host}\r\n");
    let other = handshake_from(open.addr, &host, &own);
    assert!(other.starts_with("HTTP/1.1 403"), "{other}");
}

#[test]
fn a_handshake_with_two_versions_is_refused() {
    let server = start(Ends::default());
    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    // RFC 6455 §11.3.5: Sec-WebSocket-Version must not appear more than once in a request
    // (as the key, §11.3.1). The first was taken: 101, whatever the second said.
    for second in ["8", "13"] {
        let extra = format!("{key}Sec-WebSocket-Version: {second}\r\n");
        assert_eq!(
            raw_upgrade(&server, "GET", &extra),
            "HTTP/1.1 400",
            "a second version {second}"
        );
    }
    assert_eq!(raw_upgrade(&server, "GET", key), "HTTP/1.1 101");
}
