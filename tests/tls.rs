//! TLS connections (fibra-net's `tls` feature) over real sockets on 127.0.0.1, with
//! certificates made in the test: handshake, lines both ways, SNI and ALPN, groups mixing
//! TLS and plain members, host-side sends, half-close and close_notify, timeouts, and each
//! kind of bad input ending its own connection with a reason that says TLS and why.
#![cfg(feature = "tls")]

mod util;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use fibra::net::{Conn, ConnOptions, Group, Lost, NetError, NetExt, TlsLost};
use fibra::tasks::TasksExt;
use util::certs::{tls_client, tls_peer, TestCerts};
use util::{net_schedule, net_stats, run_all};

#[test]
fn handshake_and_lines_both_ways() {
    let certs = TestCerts::localhost();
    let (server_config, client_config) = (certs.server_config(), certs.client_config());
    let mut s = net_schedule();
    let log = Rc::new(RefCell::new(Vec::new()));
    let out = log.clone();
    s.spawn(move |h| {
        let listener = h.listen_tls("127.0.0.1:0", server_config).unwrap();
        let addr = listener.local_addr();
        let server = h
            .spawn(move |h| {
                let (conn, _) = h.accept(&listener).unwrap();
                let line = h.receive(&conn).unwrap();
                h.send_frame(&conn, &[b"echo: ", &line[..]].concat())
                    .unwrap();
                let info = conn.tls().expect("a TLS connection");
                assert!(!info.handshaking);
                assert_eq!(info.server_name.as_deref(), Some("localhost"));
                assert_eq!(h.receive(&conn).unwrap(), b"second");
                h.close(&conn).unwrap();
            })
            .unwrap();
        let client = h.connect_tls(addr, "localhost", client_config).unwrap();
        let info = client.tls().unwrap();
        assert!(!info.handshaking);
        assert_eq!(info.version.as_deref(), Some("TLSv1_3"));
        h.send_line(&client, "ping").unwrap();
        out.borrow_mut().push(h.receive(&client).unwrap());
        h.send_line(&client, "second").unwrap();
        // The server's close: close_notify, then the end of stream.
        match h.receive(&client) {
            Err(NetError::Lost(Lost::Eof)) => {}
            other => panic!("expected a clean end, got {other:?}"),
        }
        h.join(server).unwrap();
    })
    .unwrap();
    run_all(&mut s, 10);
    assert_eq!(*log.borrow(), vec![b"echo: ping".to_vec()]);
    let stats = net_stats(&s);
    assert_eq!((stats.connections, stats.sockets), (0, 0));
}

/// A TLS listener and `n` pairs over it: (the server's end, the client's end).
fn tls_pairs(
    h: &fibra::rt::Handle,
    certs: &TestCerts,
    n: usize,
) -> (fibra::net::Listener, Vec<(Conn, Conn)>) {
    let listener = h.listen_tls("127.0.0.1:0", certs.server_config()).unwrap();
    let addr = listener.local_addr();
    let mut pairs = Vec::new();
    for _ in 0..n {
        // The client's connect waits for the handshake, which the server's side runs by
        // itself once accepted: accept first, in another tasklet.
        let l = listener.clone();
        let accepting = h.spawn(move |h| h.accept(&l).unwrap().0).unwrap();
        let client = h
            .connect_tls(addr, "localhost", certs.client_config())
            .unwrap();
        let server = h.join(accepting).unwrap();
        pairs.push((server, client));
    }
    (listener, pairs)
}

#[test]
fn sni_and_alpn_are_seen_on_both_ends() {
    let certs = TestCerts::localhost();
    let server_config = certs.server_config_alpn(&[b"chat/1", b"http/1.1"]);
    let client_config = certs.client_config_alpn(&[b"http/1.1"]);
    let mut s = net_schedule();
    let seen = Rc::new(RefCell::new(None));
    let out = seen.clone();
    s.spawn(move |h| {
        let listener = h.listen_tls("127.0.0.1:0", server_config).unwrap();
        let addr = listener.local_addr();
        let (server, _) = {
            let accepting = h.spawn(move |h| h.accept(&listener).unwrap()).unwrap();
            let client = h.connect_tls(addr, "localhost", client_config).unwrap();
            assert_eq!(
                client.tls().unwrap().alpn.as_deref(),
                Some(&b"http/1.1"[..])
            );
            h.send_line(&client, "hi").unwrap();
            let accepted = h.join(accepting).unwrap();
            assert_eq!(h.receive(&accepted.0).unwrap(), b"hi");
            drop(client);
            accepted
        };
        *out.borrow_mut() = server.tls();
        // A plain connection has no TLS.
        let plain = h.listen("127.0.0.1:0").unwrap();
        let c = h.connect(plain.local_addr()).unwrap();
        assert_eq!(c.tls(), None);
    })
    .unwrap();
    run_all(&mut s, 10);
    let info = seen.borrow().clone().expect("TLS info");
    assert_eq!(info.server_name.as_deref(), Some("localhost"));
    assert_eq!(info.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert!(info.cipher_suite.is_some());
}

#[test]
fn a_group_fans_out_to_tls_and_plain_members_in_one_room() {
    let certs = TestCerts::localhost();
    let mut s = net_schedule();
    let got = Rc::new(RefCell::new(Vec::new()));
    let out = got.clone();
    s.spawn(move |h| {
        let (_tls_listener, tls) = tls_pairs(h, &certs, 3);
        let plain_listener = h.listen("127.0.0.1:0").unwrap();
        let mut plain = Vec::new();
        for _ in 0..2 {
            let client = h.connect(plain_listener.local_addr()).unwrap();
            let (server, _) = h.accept(&plain_listener).unwrap();
            plain.push((server, client));
        }
        let room = Group::new();
        for (server, _) in tls.iter().chain(plain.iter()) {
            room.add(server).unwrap();
        }
        // Lines large enough to be shared segments, and small ones copied.
        let big = "b".repeat(2000);
        for i in 0..50 {
            room.send_line(&format!("line {i}")).unwrap();
            if i % 10 == 0 {
                room.send_line(&big).unwrap();
            }
            h.yield_now();
        }
        for (_, client) in tls.iter().chain(plain.iter()) {
            let mut lines = 0;
            loop {
                let line = h.receive(client).unwrap();
                lines += 1;
                if line == b"line 49" {
                    break;
                }
            }
            out.borrow_mut().push(lines);
        }
    })
    .unwrap();
    run_all(&mut s, 20);
    assert_eq!(
        *got.borrow(),
        vec![55; 5],
        "every member got every line, in order"
    );
}

#[test]
fn try_send_from_host_code_reaches_a_tls_peer() {
    let certs = TestCerts::localhost();
    let mut s = net_schedule();
    let server_end: Rc<RefCell<Option<Conn>>> = Rc::default();
    let got = Rc::new(RefCell::new(Vec::new()));
    let (slot, out) = (server_end.clone(), got.clone());
    s.spawn(move |h| {
        let (_listener, mut pairs) = tls_pairs(h, &certs, 1);
        let (server, client) = pairs.pop().unwrap();
        *slot.borrow_mut() = Some(server);
        for _ in 0..3 {
            out.borrow_mut().push(h.receive_line(&client).unwrap());
        }
    })
    .unwrap();
    util::run_until(&mut s, "the pair", || server_end.borrow().is_some());
    // The host, between ticks, with no tasklet: queued, encrypted and written by the round.
    let server = server_end.borrow().clone().unwrap();
    for i in 0..3 {
        server.try_send_line(&format!("from the host {i}")).unwrap();
        s.tick().unwrap();
    }
    drop(server);
    server_end.borrow_mut().take();
    run_all(&mut s, 10);
    assert_eq!(
        *got.borrow(),
        ["from the host 0", "from the host 1", "from the host 2"]
    );
}

#[test]
fn a_clean_close_sends_close_notify_and_output_still_flows_after_the_peers() {
    // Half-close: the client sends close_notify (its end of output); the server reads
    // Lost::Eof after the last line, answers, and closes with its own close_notify.
    let certs = TestCerts::localhost();
    let mut s = net_schedule();
    let log = Rc::new(RefCell::new(Vec::new()));
    let out = log.clone();
    let listener = certs.listen(&s, ConnOptions::new());
    let addr = listener.local_addr();
    let client = tls_peer(addr, certs.client_config(), move |mut c| {
        c.write_all(b"one\ntwo\n").unwrap();
        c.conn.send_close_notify();
        c.flush().unwrap();
        c.sock.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = String::new();
        // read_to_string fails on an end of stream without close_notify.
        c.read_to_string(&mut answer).unwrap();
        answer
    });
    s.spawn(move |h| {
        let (conn, _) = h.accept(&listener).unwrap();
        loop {
            match h.receive(&conn) {
                Ok(line) => out.borrow_mut().push(String::from_utf8(line).unwrap()),
                Err(e) => {
                    out.borrow_mut().push(format!("{e}"));
                    assert_eq!(e.lost(), Some(Lost::Eof));
                    break;
                }
            }
        }
        h.send_line(&conn, "goodbye").unwrap();
        h.close(&conn).unwrap();
    })
    .unwrap();
    run_all(&mut s, 10);
    assert_eq!(client.join().unwrap(), "goodbye\n");
    assert_eq!(
        *log.borrow(),
        [
            "one",
            "two",
            "connection lost: the peer closed the connection"
        ]
    );
}

#[test]
fn an_end_of_stream_without_close_notify_is_told_apart() {
    let certs = TestCerts::localhost();
    let mut s = net_schedule();
    let log = Rc::new(RefCell::new(Vec::new()));
    let out = log.clone();
    let listener = certs.listen(&s, ConnOptions::new());
    let addr = listener.local_addr();
    let client = tls_peer(addr, certs.client_config(), move |mut c| {
        c.write_all(b"one\n").unwrap();
        c.flush().unwrap();
        // The TCP stream ends with no close_notify (a truncation).
        c.sock.shutdown(std::net::Shutdown::Write).unwrap();
        // The server may still answer.
        let mut line = [0u8; 6];
        c.read_exact(&mut line).unwrap();
        line
    });
    s.spawn(move |h| {
        let (conn, _) = h.accept(&listener).unwrap();
        out.borrow_mut().push(Ok(h.receive(&conn).unwrap()));
        out.borrow_mut()
            .push(h.receive(&conn).map_err(|e| e.lost()));
        assert_eq!(conn.lost(), Some(Lost::Tls(TlsLost::NoCloseNotify)));
        h.send_line(&conn, "still").unwrap();
        h.close(&conn).unwrap();
    })
    .unwrap();
    run_all(&mut s, 10);
    assert_eq!(&client.join().unwrap(), b"still\n");
    assert_eq!(
        *log.borrow(),
        [
            Ok(b"one".to_vec()),
            Err(Some(Lost::Tls(TlsLost::NoCloseNotify)))
        ]
    );
}

#[test]
fn the_read_timeout_works_over_tls() {
    let certs = TestCerts::localhost();
    let mut s = net_schedule();
    let got = Rc::new(RefCell::new(None));
    let out = got.clone();
    s.spawn(move |h| {
        let listener = h
            .listen_with(
                "127.0.0.1:0",
                fibra::net::ListenOptions::new()
                    .with_tls(certs.server_config())
                    .with_conn(
                        ConnOptions::new().with_read_timeout(Some(Duration::from_millis(200))),
                    ),
            )
            .unwrap();
        let addr = listener.local_addr();
        let accepting = h.spawn(move |h| h.accept(&listener).unwrap().0).unwrap();
        let client = h
            .connect_tls(addr, "localhost", certs.client_config())
            .unwrap();
        let server = h.join(accepting).unwrap();
        h.send_line(&client, "one").unwrap();
        assert_eq!(h.receive(&server).unwrap(), b"one");
        let started = Instant::now();
        *out.borrow_mut() = Some((h.on_lost_connection(&server), started.elapsed()));
        drop(client);
    })
    .unwrap();
    run_all(&mut s, 10);
    let (lost, after) = got.borrow().unwrap();
    assert_eq!(lost, Lost::TimedOut);
    assert!(after >= Duration::from_millis(150), "{after:?}");
}

#[test]
fn a_client_refuses_a_certificate_for_another_name() {
    let certs = TestCerts::localhost();
    let mut s = net_schedule();
    let got = Rc::new(RefCell::new(Vec::new()));
    let out = got.clone();
    s.spawn(move |h| {
        let listener = h.listen_tls("127.0.0.1:0", certs.server_config()).unwrap();
        let addr = listener.local_addr();
        let watch = out.clone();
        let _server = h
            .spawn(move |h| {
                let (conn, _) = h.accept(&listener).unwrap();
                let lost = h.receive(&conn).map(|_| ()).map_err(|e| e.lost());
                watch.borrow_mut().push(format!("server: {lost:?}"));
            })
            .unwrap();
        let refused = h.connect_tls(addr, "example.com", certs.client_config());
        let e = refused.expect_err("a certificate for localhost, not example.com");
        out.borrow_mut().push(format!("client: {:?}", e.lost()));
        out.borrow_mut().push(format!("client: {e}"));
        assert!(matches!(
            h.connect_tls(addr, "not a name!", certs.client_config()),
            Err(NetError::InvalidServerName { .. })
        ));
    })
    .unwrap();
    run_all(&mut s, 10);
    assert_eq!(net_stats(&s).sockets, 0, "the refused connection is closed");
    let got = got.borrow();
    assert!(
        got.contains(&format!(
            "client: {:?}",
            Some(Lost::Tls(TlsLost::Certificate {
                reason: "not valid for the server name"
            }))
        )),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|l| l.contains("TLS certificate was refused")),
        "{got:?}"
    );
    assert!(
        got.contains(&format!(
            "server: {:?}",
            Err::<(), _>(Some(Lost::Tls(TlsLost::Alert {
                name: "bad_certificate"
            })))
        )),
        "{got:?}"
    );
}

// ----- a blocking rustls client, and raw bytes ------------------------------------------

/// A ClientHello record, as a rustls client's first flight.
fn client_hello(certs: &TestCerts) -> Vec<u8> {
    let name = fibra::net::rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = fibra::net::rustls::ClientConnection::new(certs.client_config(), name).unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    assert_eq!(hello[0], 0x16, "a handshake record");
    hello
}

/// Runs a TLS server whose first connection gets `bad` (a raw client on its own thread)
/// and whose second a well-behaved TLS client: what the first connection's receive ended
/// with, and the line the second one echoed (the bad peer ended its connection alone).
fn bad_peer(
    certs: &TestCerts,
    options: ConnOptions,
    bad: impl FnOnce(TcpStream) + Send + 'static,
) -> (Result<Vec<u8>, Option<Lost>>, Vec<u8>) {
    let mut s = net_schedule();
    let listener = certs.listen(&s, options);
    let addr = listener.local_addr();
    let peer = util::peer(addr, bad);
    let got = Rc::new(RefCell::new(None));
    let out = got.clone();
    let config = certs.client_config();
    s.spawn(move |h| {
        let (conn, _) = h.accept(&listener).unwrap();
        // The good client, while the bad one is served.
        let l = listener.clone();
        let echo = h
            .spawn(move |h| {
                let (conn, _) = h.accept(&l).unwrap();
                let line = h.receive(&conn).unwrap();
                h.send_frame(&conn, &line).unwrap();
                h.flush(&conn).unwrap();
            })
            .unwrap();
        let good = h.spawn(move |h| {
            let c = h.connect_tls(addr, "localhost", config).unwrap();
            h.send_line(&c, "alone").unwrap();
            h.receive(&c).unwrap()
        });
        let bad = h.receive(&conn).map_err(|e| e.lost());
        let good = h.join(good.unwrap()).unwrap();
        h.join(echo).unwrap();
        *out.borrow_mut() = Some((bad, good));
    })
    .unwrap();
    run_all(&mut s, 20);
    let _ = peer.join();
    let stats = net_stats(&s);
    assert_eq!(stats.sockets, 0, "{stats:?}");
    let outcome = got.borrow_mut().take().unwrap();
    outcome
}

fn lost_tls(why: TlsLost) -> Result<Vec<u8>, Option<Lost>> {
    Err(Some(Lost::Tls(why)))
}

#[test]
fn plaintext_to_a_tls_port_is_not_tls() {
    let certs = TestCerts::localhost();
    let (bad, good) = bad_peer(&certs, ConnOptions::new(), |mut c| {
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let _ = c.read_to_end(&mut Vec::new());
    });
    assert_eq!(bad, lost_tls(TlsLost::NotTls));
    assert_eq!(good, b"alone");
}

#[test]
fn garbage_before_a_client_hello_is_not_tls() {
    let certs = TestCerts::localhost();
    let hello = client_hello(&certs);
    let (bad, good) = bad_peer(&certs, ConnOptions::new(), move |mut c| {
        c.write_all(b"\x00\x01garbage").unwrap();
        c.write_all(&hello).unwrap();
        let _ = c.read_to_end(&mut Vec::new());
    });
    assert_eq!(bad, lost_tls(TlsLost::NotTls));
    assert_eq!(good, b"alone");
}

#[test]
fn garbage_inside_a_client_hello_fails_the_handshake() {
    let certs = TestCerts::localhost();
    let mut hello = client_hello(&certs);
    // Past the record header (5), the handshake header (4), the version (2) and the random
    // (32): the session id's length and what follows, overwritten.
    for b in &mut hello[43..80] {
        *b = 0xff;
    }
    let (bad, good) = bad_peer(&certs, ConnOptions::new(), move |mut c| {
        c.write_all(&hello).unwrap();
        let _ = c.read_to_end(&mut Vec::new());
    });
    assert!(
        matches!(bad, Err(Some(Lost::Tls(TlsLost::Handshake { .. })))),
        "{bad:?}"
    );
    assert_eq!(good, b"alone");
}

#[test]
fn a_dripped_handshake_ends_at_the_handshake_timeout() {
    let certs = TestCerts::localhost();
    let hello = client_hello(&certs);
    let timeout = Duration::from_millis(600);
    let started = Instant::now();
    let (bad, good) = bad_peer(
        &certs,
        ConnOptions::new().with_handshake_timeout(timeout),
        move |mut c| {
            // A byte every 100 ms: the hello would take minutes.
            for b in hello {
                if c.write_all(&[b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        },
    );
    assert_eq!(bad, lost_tls(TlsLost::HandshakeTimedOut { after: timeout }));
    assert!(started.elapsed() >= timeout);
    assert_eq!(good, b"alone");
}

#[test]
fn a_record_over_the_limit_ends_the_connection() {
    let certs = TestCerts::localhost();
    let (bad, good) = bad_peer(&certs, ConnOptions::new(), |mut c| {
        // A handshake record claiming 65,535 bytes (TLS allows 16 KiB + 2 KiB).
        c.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff]).unwrap();
        let _ = c.write_all(&[0u8; 20_000]);
        let _ = c.read_to_end(&mut Vec::new());
    });
    assert_eq!(bad, lost_tls(TlsLost::RecordTooLarge));
    assert_eq!(good, b"alone");
}

/// A TLS server on `s` (with `config`) whose one connection is `client`'s (on its own
/// thread): what the connection's receives gave, up to the first error.
fn receives(
    s: &mut fibra::rt::Schedule,
    config: std::sync::Arc<fibra::net::rustls::ServerConfig>,
    client: impl FnOnce(std::net::SocketAddr) + Send + 'static,
) -> Vec<Result<Vec<u8>, Option<Lost>>> {
    let listener = util::listen_with(s, fibra::net::ListenOptions::new().with_tls(config));
    let addr = listener.local_addr();
    let client = std::thread::spawn(move || client(addr));
    let got = Rc::new(RefCell::new(Vec::new()));
    let out = got.clone();
    s.spawn(move |h| {
        let (conn, _) = h.accept(&listener).unwrap();
        loop {
            let r = h.receive(&conn).map_err(|e| e.lost());
            let end = r.is_err();
            out.borrow_mut().push(r);
            if end {
                break;
            }
        }
    })
    .unwrap();
    run_all(s, 10);
    client.join().unwrap();
    let got = got.borrow().clone();
    got
}

#[test]
fn a_plaintext_hello_after_a_tls13_handshake_fails_to_decrypt() {
    let certs = TestCerts::localhost();
    let hello = client_hello(&certs);
    let config = certs.client_config();
    let mut s = net_schedule();
    let got = receives(&mut s, certs.server_config(), move |addr| {
        let mut c = tls_client(TcpStream::connect(addr).unwrap(), config);
        c.write_all(b"before\n").unwrap();
        c.flush().unwrap();
        // A second ClientHello in the clear (TLS 1.3 has no renegotiation).
        c.sock.write_all(&hello).unwrap();
        let _ = c.sock.read_to_end(&mut Vec::new());
    });
    assert_eq!(
        got,
        [
            Ok(b"before".to_vec()),
            lost_tls(TlsLost::Protocol {
                reason: "a record failed to decrypt"
            })
        ]
    );
}

#[test]
fn renegotiation_over_tls12_is_refused() {
    // rustls answers a first renegotiation ClientHello with a no_renegotiation warning, and
    // ends the connection at the second; the client here encrypts the hellos itself with
    // the session's keys (no TLS library sends them).
    use fibra::net::rustls::{self, ConnectionTrafficSecrets};
    use ring::aead;

    let certs = TestCerts::localhost();
    let hello = client_hello(&certs);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certs.ca.clone()).unwrap();
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.retain(|s| {
        s.version() == &rustls::version::TLS12 && format!("{:?}", s.suite()).contains("GCM")
    });
    let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.enable_secret_extraction = true;
    let config = std::sync::Arc::new(config);
    let mut s = net_schedule();
    let got = receives(&mut s, certs.server_config_tls12(), move |addr| {
        let mut c = tls_client(TcpStream::connect(addr).unwrap(), config);
        c.write_all(b"before\n").unwrap();
        c.flush().unwrap();
        let (conn, mut sock) = c.into_parts();
        let (mut seq, secrets) = conn.dangerous_extract_secrets().unwrap().tx;
        let (alg, key, iv) = match &secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (&aead::AES_128_GCM, key, iv),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (&aead::AES_256_GCM, key, iv),
            _ => panic!("an AES-GCM suite was asked for"),
        };
        let key = aead::LessSafeKey::new(aead::UnboundKey::new(alg, key.as_ref()).unwrap());
        let message = &hello[5..]; // the handshake message, past the record header
        for _ in 0..2 {
            let mut nonce = [0u8; 12];
            nonce.copy_from_slice(iv.as_ref());
            for (n, s) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
                *n ^= s;
            }
            let mut aad = seq.to_be_bytes().to_vec();
            aad.extend_from_slice(&[0x16, 0x03, 0x03]);
            aad.extend_from_slice(&(message.len() as u16).to_be_bytes());
            let mut payload = message.to_vec();
            let tag = key
                .seal_in_place_separate_tag(
                    aead::Nonce::assume_unique_for_key(nonce),
                    aead::Aad::from(aad),
                    &mut payload,
                )
                .unwrap();
            let len = 8 + payload.len() + tag.as_ref().len();
            let mut record = vec![0x16, 0x03, 0x03];
            record.extend_from_slice(&(len as u16).to_be_bytes());
            record.extend_from_slice(&nonce[4..]);
            record.extend_from_slice(&payload);
            record.extend_from_slice(tag.as_ref());
            if sock.write_all(&record).is_err() {
                break;
            }
            seq += 1;
        }
        let _ = sock.read_to_end(&mut Vec::new());
    });
    assert_eq!(
        got,
        [Ok(b"before".to_vec()), lost_tls(TlsLost::Renegotiation)]
    );
}

#[test]
fn a_flood_of_tiny_records_is_served_in_slices_and_cut_at_the_frame_limit() {
    // 1-byte records (23 bytes each on the wire) with no newline: the frame limit ends the
    // connection, and a second connection is served meanwhile.
    let certs = TestCerts::localhost();
    let config = certs.client_config();
    let (bad, good) = bad_peer(&certs, ConnOptions::new().with_max_frame(4096), move |c| {
        let mut c = tls_client(c, config);
        for _ in 0..100_000 {
            if c.write_all(b"x").is_err() {
                return;
            }
        }
    });
    assert_eq!(bad, Err(Some(Lost::TooLong { limit: 4096 })));
    assert_eq!(good, b"alone");
}

/// An echo server on a TLS listener: each connection's lines are sent back; `close_after`
/// lines end a connection from the server's side.
fn tls_echo(h: &fibra::rt::Handle, certs: &TestCerts, close_after: usize) -> std::net::SocketAddr {
    let listener = h.listen_tls("127.0.0.1:0", certs.server_config()).unwrap();
    let addr = listener.local_addr();
    h.spawn_detached(move |h| {
        while let Ok((conn, _)) = h.accept(&listener) {
            h.spawn_detached(move |h| {
                for _ in 0..close_after {
                    let Ok(line) = h.receive(&conn) else { return };
                    if h.send_frame(&conn, &line).is_err() {
                        return;
                    }
                }
                let _ = h.close(&conn);
            })
            .unwrap();
        }
    })
    .unwrap();
    addr
}

fn tls_options(certs: &TestCerts) -> ConnOptions {
    let name = fibra::net::rustls::pki_types::ServerName::try_from("localhost").unwrap();
    ConnOptions::new().with_tls(certs.client_config(), name)
}

#[test]
fn a_pool_connects_over_tls() {
    let certs = TestCerts::localhost();
    let mut s = net_schedule();
    let got = Rc::new(RefCell::new(Vec::new()));
    let out = got.clone();
    s.spawn(move |h| {
        let addr = tls_echo(h, &certs, usize::MAX);
        let pool = fibra::net::Pool::new(addr, tls_options(&certs), fibra::net::Backoff::new(), 2);
        pool.start(h).unwrap();
        for i in 0..5 {
            let reply = pool
                .request(h, format!("request {i}").as_bytes(), Duration::from_secs(5))
                .unwrap();
            out.borrow_mut().push(String::from_utf8(reply).unwrap());
        }
        pool.stop();
    })
    .unwrap();
    util::run_until(&mut s, "five replies", || got.borrow().len() == 5);
    assert_eq!(got.borrow()[4], "request 4");
}

#[test]
fn each_end_sees_the_peers_certificate_chain() {
    let certs = TestCerts::localhost();
    let server_config = certs.server_config_client_auth();
    let client_config = certs.client_config_with_cert();
    let plain_server = certs.server_config();
    let plain_client = certs.client_config();
    let mut s = net_schedule();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let out = seen.clone();
    s.spawn(move |h| {
        for (server_config, client_config) in
            [(server_config, client_config), (plain_server, plain_client)]
        {
            let listener = h.listen_tls("127.0.0.1:0", server_config).unwrap();
            let addr = listener.local_addr();
            let accepting = h.spawn(move |h| h.accept(&listener).unwrap()).unwrap();
            let client = h.connect_tls(addr, "localhost", client_config).unwrap();
            h.send_line(&client, "hi").unwrap();
            let (server, _) = h.join(accepting).unwrap();
            assert_eq!(h.receive(&server).unwrap(), b"hi");
            let (client_sees, server_sees) = (client.tls().unwrap(), server.tls().unwrap());
            out.borrow_mut()
                .push((client_sees.peer_certificates, server_sees.peer_certificates));
        }
    })
    .unwrap();
    run_all(&mut s, 10);
    let chain: Vec<Vec<u8>> = certs.chain.iter().map(|c| c.to_vec()).collect();
    let seen = seen.borrow();
    // With client authentication each end sees the other's chain (both show the leaf).
    assert_eq!(seen[0].0, chain, "the client sees the server's chain");
    assert_eq!(seen[0].1, chain, "the server sees the client's chain");
    // Without, the server sees no certificate; the client still sees the server's.
    assert_eq!(seen[1].0, chain);
    assert!(seen[1].1.is_empty());
}

#[test]
fn a_finished_handshake_leaves_no_timer_armed() {
    let certs = TestCerts::localhost();
    let mut s = net_schedule();
    let conns: Rc<RefCell<Vec<Conn>>> = Rc::default();
    let keep = Rc::clone(&conns);
    s.spawn(move |h| {
        let addr = tls_echo(h, &certs, usize::MAX);
        for i in 0..3 {
            let conn = h
                .connect_tls(addr, "localhost", certs.client_config())
                .unwrap();
            h.send_frame(&conn, format!("hello {i}").as_bytes())
                .unwrap();
            assert_eq!(h.receive(&conn).unwrap(), format!("hello {i}").as_bytes());
            keep.borrow_mut().push(conn);
        }
    })
    .unwrap();
    util::run_until(&mut s, "three echoes", || conns.borrow().len() == 3);
    let stats = net_stats(&s);
    // Three connections each end, none with a read timeout: the handshakes' deadlines went
    // with the handshakes (they stayed armed for their 10 s before).
    assert_eq!(stats.connections, 6, "{stats:?}");
    assert_eq!(stats.timers, 0, "{stats:?}");
}

#[test]
fn a_reconnecting_client_connects_again_over_tls() {
    use fibra::net::{Backoff, Factory, Protocol, ReconnectingClient, Transport};

    struct Hello(Rc<RefCell<Vec<String>>>);
    impl Protocol for Hello {
        fn connection_made(&mut self, _h: &fibra::rt::Handle, t: &Transport) {
            let _ = t.send(b"hello");
        }
        fn frame_received(&mut self, _h: &fibra::rt::Handle, _t: &Transport, frame: &[u8]) {
            self.0
                .borrow_mut()
                .push(String::from_utf8_lossy(frame).into_owned());
        }
    }
    struct Hellos(Rc<RefCell<Vec<String>>>);
    impl Factory for Hellos {
        type Protocol = Hello;
        fn build_protocol(&mut self, _peer: std::net::SocketAddr) -> Option<Hello> {
            Some(Hello(self.0.clone()))
        }
    }

    let certs = TestCerts::localhost();
    let mut s = net_schedule();
    let got = Rc::new(RefCell::new(Vec::new()));
    let client: Rc<RefCell<Option<ReconnectingClient>>> = Rc::default();
    let (out, keep) = (got.clone(), client.clone());
    s.spawn(move |h| {
        // The server ends each connection after one line: the client connects again.
        let addr = tls_echo(h, &certs, 1);
        let backoff = Backoff::new()
            .with_initial(Duration::from_millis(10))
            .with_max(Duration::from_millis(20))
            .with_stable_after(Duration::ZERO);
        let c = ReconnectingClient::new(addr, tls_options(&certs), backoff, Hellos(out));
        c.start(h).unwrap();
        *keep.borrow_mut() = Some(c);
    })
    .unwrap();
    util::run_until(&mut s, "three connections", || got.borrow().len() >= 3);
    let c = client.borrow_mut().take().unwrap();
    assert!(c.connections() >= 3);
    c.stop();
    assert_eq!(got.borrow()[..3], ["hello", "hello", "hello"]);
}

#[test]
fn the_flush_delay_holds_tls_output_as_it_holds_plain() {
    let certs = TestCerts::localhost();
    let mut s = net_schedule();
    let got = Rc::new(RefCell::new(Vec::new()));
    let out = got.clone();
    s.spawn(move |h| {
        let (_listener, mut pairs) = tls_pairs(h, &certs, 1);
        let (server, client) = pairs.pop().unwrap();
        server.set_flush_delay(Duration::from_millis(50));
        // The first line goes at once; those sent within the delay after it wait, and
        // leave together.
        for i in 0..5 {
            server.try_send_line(&format!("line {i}")).unwrap();
            h.sleep(Duration::from_millis(2));
        }
        let started = Instant::now();
        for _ in 0..5 {
            out.borrow_mut()
                .push((h.receive_line(&client).unwrap(), started.elapsed()));
        }
    })
    .unwrap();
    run_all(&mut s, 10);
    let got = got.borrow();
    assert_eq!(got.len(), 5);
    assert_eq!(got[4].0, "line 4");
    // Held until the delay after the first write (the round's clock, grouped to 1 ms).
    assert!(got[4].1 >= Duration::from_millis(25), "{got:?}");
}

#[test]
fn a_client_facing_a_silent_or_plaintext_server_fails_its_connect() {
    let certs = TestCerts::localhost();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let chatty = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (silent_addr, chatty_addr) = (silent.local_addr().unwrap(), chatty.local_addr().unwrap());
    let banner = std::thread::spawn(move || {
        let (mut c, _) = chatty.accept().unwrap();
        c.write_all(b"220 smtp.example ESMTP ready\r\n").unwrap();
        let _ = c.read_to_end(&mut Vec::new());
    });
    let mut s = net_schedule();
    let got = Rc::new(RefCell::new(Vec::new()));
    let out = got.clone();
    s.spawn(move |h| {
        let options = ConnOptions::new().with_handshake_timeout(Duration::from_millis(300));
        let config = certs.client_config();
        let started = Instant::now();
        let silent = h.connect_tls_with(silent_addr, "localhost", config.clone(), options.clone());
        out.borrow_mut()
            .push(silent.map(|_| ()).map_err(|e| e.lost()));
        assert!(started.elapsed() >= Duration::from_millis(300));
        let chatty = h.connect_tls_with(chatty_addr, "localhost", config, options);
        out.borrow_mut()
            .push(chatty.map(|_| ()).map_err(|e| e.lost()));
    })
    .unwrap();
    run_all(&mut s, 10);
    drop(silent);
    banner.join().unwrap();
    assert_eq!(
        *got.borrow(),
        [
            Err(Some(Lost::Tls(TlsLost::HandshakeTimedOut {
                after: Duration::from_millis(300)
            }))),
            Err(Some(Lost::Tls(TlsLost::NotTls))),
        ]
    );
    assert_eq!(net_stats(&s).sockets, 0);
}

#[test]
fn a_stream_accepted_elsewhere_is_adopted_as_a_tls_server_connection() {
    let certs = TestCerts::localhost();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = tls_peer(addr, certs.client_config(), move |mut c| {
        c.write_all(b"adopted?\n").unwrap();
        let mut answer = String::new();
        c.read_to_string(&mut answer).unwrap();
        answer
    });
    let (stream, _) = listener.accept().unwrap();
    let mut s = net_schedule();
    let server_config = certs.server_config();
    s.spawn(move |h| {
        let conn = h
            .adopt_tls(stream, ConnOptions::new(), server_config)
            .unwrap();
        let line = h.receive(&conn).unwrap();
        h.send_frame(&conn, &[&line[..], b" yes"].concat()).unwrap();
        h.close(&conn).unwrap();
    })
    .unwrap();
    run_all(&mut s, 10);
    assert_eq!(client.join().unwrap(), "adopted? yes\n");
}

#[test]
fn a_flooding_tls_peer_does_not_starve_another_connection() {
    // One peer sends empty lines as 1-byte records (23 bytes each on the wire) without
    // pause; another exchanges lines with the server meanwhile: its round trips are served
    // while the flood goes on (the flooder is read 64 KiB per round, as a plain one is).
    const RECORDS: usize = 400_000;
    let certs = TestCerts::localhost();
    let mut s = net_schedule();
    let listener = certs.listen(&s, ConnOptions::new());
    let addr = listener.local_addr();
    let flooder = tls_peer(addr, certs.client_config(), move |mut c| {
        for _ in 0..RECORDS {
            if c.write_all(b"\n").is_err() {
                return;
            }
        }
        let _ = c.flush();
    });
    let got = Rc::new(RefCell::new(None));
    let out = got.clone();
    let config = certs.client_config();
    s.spawn(move |h| {
        let (flood, _) = h.accept(&listener).unwrap();
        let frames = Rc::new(std::cell::Cell::new(0usize));
        let counted = frames.clone();
        let _reader = h
            .spawn(move |h| {
                while h.receive(&flood).is_ok() {
                    counted.set(counted.get() + 1);
                }
            })
            .unwrap();
        // Wait until the flood is under way.
        while frames.get() < 1000 {
            h.sleep(Duration::from_millis(1));
        }
        let l = listener.clone();
        let echo = h
            .spawn(move |h| {
                let (conn, _) = h.accept(&l).unwrap();
                while let Ok(line) = h.receive(&conn) {
                    h.send_frame(&conn, &line).unwrap();
                }
            })
            .unwrap();
        let client = h.connect_tls(addr, "localhost", config).unwrap();
        for i in 0..10 {
            h.send_line(&client, &format!("round trip {i}")).unwrap();
            assert_eq!(h.receive_line(&client).unwrap(), format!("round trip {i}"));
        }
        *out.borrow_mut() = Some(frames.get());
        drop(client);
        h.join(echo).unwrap();
    })
    .unwrap();
    run_all(&mut s, 60);
    flooder.join().unwrap();
    let frames = got.borrow().unwrap();
    assert!(
        frames < RECORDS,
        "the round trips waited for the whole flood ({frames} frames)"
    );
}

#[test]
fn configs_from_pem_serve_and_trust_the_test_certificates() {
    let certs = TestCerts::localhost();
    let server = fibra::net::tls::server_config_from_pem(
        certs.chain_pem.as_bytes(),
        certs.key_pem.as_bytes(),
    )
    .unwrap();
    let client = fibra::net::tls::client_config_from_pem(certs.ca_pem.as_bytes()).unwrap();
    let (server, client) = (std::sync::Arc::new(server), std::sync::Arc::new(client));
    let mut s = net_schedule();
    let got = Rc::new(RefCell::new(Vec::new()));
    let out = got.clone();
    s.spawn(move |h| {
        let listener = h.listen_tls("127.0.0.1:0", server).unwrap();
        let addr = listener.local_addr();
        let accepting = h.spawn(move |h| h.accept(&listener).unwrap().0).unwrap();
        // By IP address too: the leaf names 127.0.0.1.
        let c = h.connect_tls(addr, "127.0.0.1", client).unwrap();
        let conn = h.join(accepting).unwrap();
        h.send_line(&c, "pem").unwrap();
        out.borrow_mut().push(h.receive(&conn).unwrap());
    })
    .unwrap();
    run_all(&mut s, 10);
    assert_eq!(*got.borrow(), [b"pem".to_vec()]);
    // What is wrong is said.
    let e = fibra::net::tls::server_config_from_pem(b"", certs.key_pem.as_bytes()).unwrap_err();
    assert!(e.to_string().contains("no CERTIFICATE"), "{e}");
    let e =
        fibra::net::tls::server_config_from_pem(certs.chain_pem.as_bytes(), b"junk").unwrap_err();
    assert!(e.to_string().contains("private key"), "{e}");
}

/// A self-signed certificate made as a CA (`openssl req -x509` without
/// `basicConstraints=CA:FALSE`), trusted by the client and served as the server's own: webpki
/// refuses a CA used as an end entity. The error said only "invalid certificate"; it says why
/// now, and what such a certificate needs.
#[test]
fn a_ca_certificate_served_as_the_servers_own_is_refused_saying_why() {
    use fibra::net::rustls;
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    let server = rustls::ServerConfig::builder_with_provider(util::certs::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(util::certs::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let (server, client) = (std::sync::Arc::new(server), std::sync::Arc::new(client));
    let mut s = net_schedule();
    let got = Rc::new(RefCell::new(None));
    let out = got.clone();
    s.spawn(move |h| {
        let listener = h.listen_tls("127.0.0.1:0", server).unwrap();
        let addr = listener.local_addr();
        let _server = h
            .spawn(move |h| {
                let (conn, _) = h.accept(&listener).unwrap();
                let _ = h.receive(&conn);
            })
            .unwrap();
        let e = h
            .connect_tls(addr, "localhost", client)
            .expect_err("a CA's certificate as the server's own");
        *out.borrow_mut() = Some((e.lost(), e.to_string()));
    })
    .unwrap();
    run_all(&mut s, 10);
    let (lost, text) = got.borrow_mut().take().unwrap();
    assert!(
        matches!(lost, Some(Lost::Tls(TlsLost::Certificate { reason })) if reason.contains("a CA certificate presented")),
        "{lost:?}"
    );
    assert!(text.contains("CA:FALSE"), "{text}");
}
