//! Hostile TLS peers against fibra-net's TLS filter, over 127.0.0.1: what a peer that
//! plays with close_notify, sends before or during the handshake, or never reads can make
//! the server do.
#![cfg(feature = "tls")]

mod util;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::rc::Rc;
use std::time::Duration;

use fibra::net::{rustls, ConnOptions, Group, Lost, NetExt};
use fibra::tasks::TasksExt;
use util::certs::{tls_client, tls_peer, TestCerts};
use util::{net_schedule, run_all};

#[test]
fn output_queued_before_the_handshake_goes_out_encrypted_after_it() {
    // The server's session greets (a send, a try_send from the host, a group's broadcast)
    // before the client has said anything: nothing may leave before the handshake, and all
    // of it arrives, in order, once the handshake is done.
    let certs = TestCerts::localhost();
    let mut s = net_schedule();
    let listener = certs.listen(&s, ConnOptions::new());
    let addr = listener.local_addr();
    let config = certs.client_config();
    let client = std::thread::spawn(move || {
        let mut tcp = TcpStream::connect(addr).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        tcp.set_nonblocking(true).unwrap();
        let mut early = [0u8; 64];
        let before = match tcp.read(&mut early) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
            Err(e) => panic!("{e}"),
        };
        tcp.set_nonblocking(false).unwrap();
        let mut c = tls_client(tcp, config);
        let mut got = String::new();
        c.read_to_string(&mut got).unwrap();
        (before, got)
    });
    s.spawn(move |h| {
        let (conn, _) = h.accept(&listener).unwrap();
        let group = Group::new();
        group.add(&conn).unwrap();
        h.send_line(&conn, "hello").unwrap();
        conn.try_send_line("from the host").unwrap();
        group.send_line("to the room").unwrap();
        h.sleep(Duration::from_millis(100));
        h.send_line(&conn, "bye").unwrap();
        h.close(&conn).unwrap();
    })
    .unwrap();
    run_all(&mut s, 10);
    let (before, got) = client.join().unwrap();
    assert_eq!(before, 0, "bytes left before the handshake");
    assert_eq!(got, "hello\nfrom the host\nto the room\nbye\n");
}

#[test]
fn data_after_a_close_notify_is_ignored() {
    // A line, close_notify, then more records in the same write: the line, then the end.
    let certs = TestCerts::localhost();
    let mut s = net_schedule();
    let listener = certs.listen(&s, ConnOptions::new());
    let addr = listener.local_addr();
    let client = tls_peer(addr, certs.client_config(), move |mut c| {
        c.conn.writer().write_all(b"one\ntw").unwrap();
        c.conn.send_close_notify();
        let mut wire = Vec::new();
        while c.conn.wants_write() {
            c.conn.write_tls(&mut wire).unwrap();
        }
        // Records after the close_notify: a forged one (garbage) and more garbage.
        wire.extend_from_slice(&[0x17, 0x03, 0x03, 0x00, 0x20]);
        wire.extend_from_slice(&[0xAA; 32]);
        c.sock.write_all(&wire).unwrap();
        let mut rest = Vec::new();
        let _ = c.sock.read_to_end(&mut rest);
    });
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
        h.send_line(&conn, "after").unwrap();
        h.close(&conn).unwrap();
    })
    .unwrap();
    run_all(&mut s, 10);
    client.join().unwrap();
    assert_eq!(*got.borrow(), [Ok(b"one".to_vec()), Err(Some(Lost::Eof))]);
}

#[test]
fn a_peer_that_sends_close_notify_and_never_closes_tcp_is_closed_by_the_server() {
    let certs = TestCerts::localhost();
    let mut s = net_schedule();
    let listener = certs.listen(
        &s,
        ConnOptions::new().with_close_timeout(Duration::from_secs(2)),
    );
    let addr = listener.local_addr();
    let client = tls_peer(addr, certs.client_config(), move |mut c| {
        c.write_all(b"q\n").unwrap();
        c.conn.send_close_notify();
        c.flush().unwrap();
        // Never reads until the server is done.
        std::thread::sleep(Duration::from_millis(500));
        let mut rest = String::new();
        c.read_to_string(&mut rest).map(|_| rest)
    });
    let got = Rc::new(RefCell::new(None));
    let out = got.clone();
    s.spawn(move |h| {
        let (conn, _) = h.accept(&listener).unwrap();
        assert_eq!(h.receive(&conn).unwrap(), b"q");
        assert_eq!(h.receive(&conn).map_err(|e| e.lost()), Err(Some(Lost::Eof)));
        h.send_line(&conn, "answer").unwrap();
        *out.borrow_mut() = Some(h.close(&conn).map_err(|e| e.to_string()));
    })
    .unwrap();
    run_all(&mut s, 10);
    assert_eq!(*got.borrow(), Some(Ok(())));
    assert_eq!(client.join().unwrap().unwrap(), "answer\n");
    assert_eq!(util::net_stats(&s).sockets, 0);
}

#[test]
fn a_peer_that_never_reads_is_bounded_by_the_send_limit() {
    // The server sends as fast as it can to a TLS peer that never reads: try_send fails
    // with Full at the send limit, as over plain TCP.
    let certs = TestCerts::localhost();
    let mut s = net_schedule();
    let listener = certs.listen(&s, ConnOptions::new().with_send_limit(64 * 1024));
    let addr = listener.local_addr();
    let config = certs.client_config();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let client = std::thread::spawn(move || {
        let c = tls_client(TcpStream::connect(addr).unwrap(), config);
        let _ = stop_rx.recv();
        drop(c);
    });
    let got = Rc::new(RefCell::new(None));
    let out = got.clone();
    s.spawn(move |h| {
        let (conn, _) = h.accept(&listener).unwrap();
        let chunk = vec![b'x'; 1000];
        let mut sent = 0usize;
        let mut fulls = 0;
        for _ in 0..20_000 {
            match conn.try_send(&chunk) {
                Ok(()) => sent += chunk.len(),
                Err(_) => {
                    fulls += 1;
                    if fulls > 50 {
                        break;
                    }
                }
            }
            h.sleep(Duration::from_millis(1));
        }
        *out.borrow_mut() = Some((sent, conn.queued()));
        let _ = stop_tx.send(());
        conn.abort();
    })
    .unwrap();
    run_all(&mut s, 60);
    client.join().unwrap();
    let (sent, queued) = got.borrow().unwrap();
    eprintln!("sent {sent} queued {queued}");
    assert!(queued <= 64 * 1024 + 1000, "{queued}");
    // Socket buffers on loopback hold a few MiB at most.
    assert!(sent < 16 * 1024 * 1024, "{sent}");
}

/// A TLS server that greets each connection and closes it at once, before the peer's
/// hello, with `options`; `peer` plays the client on a raw TCP stream. What the close
/// returned.
fn greet_and_close(
    certs: &TestCerts,
    options: ConnOptions,
    peer: impl FnOnce(TcpStream) + Send + 'static,
) -> Result<(), Option<Lost>> {
    let mut s = net_schedule();
    let listener = certs.listen(&s, options);
    let client = util::peer(listener.local_addr(), peer);
    let got = Rc::new(RefCell::new(None));
    let out = got.clone();
    s.spawn(move |h| {
        let (conn, _) = h.accept(&listener).unwrap();
        h.send_line(&conn, "hello").unwrap();
        *out.borrow_mut() = Some(h.close(&conn).map_err(|e| e.lost()));
    })
    .unwrap();
    run_all(&mut s, 20);
    client.join().unwrap();
    assert_eq!(util::net_stats(&s).sockets, 0);
    let closed = got.borrow_mut().take().unwrap();
    closed
}

#[test]
fn a_close_before_the_peers_hello_still_sends_the_greeting_after_the_handshake() {
    let certs = TestCerts::localhost();
    let config = certs.client_config();
    let closed = greet_and_close(&certs, ConnOptions::new(), move |tcp| {
        // The hello comes after the server's close.
        std::thread::sleep(Duration::from_millis(200));
        let mut c = tls_client(tcp, config);
        let mut got = String::new();
        c.read_to_string(&mut got).unwrap();
        assert_eq!(got, "hello\n");
    });
    assert_eq!(closed, Ok(()));
}

#[test]
fn a_close_before_a_silent_peers_hello_ends_at_the_handshake_timeout() {
    let timeout = Duration::from_millis(300);
    let options = ConnOptions::new()
        .with_handshake_timeout(timeout)
        .with_close_timeout(Duration::from_secs(8));
    let closed = greet_and_close(&TestCerts::localhost(), options, |mut tcp| {
        let _ = tcp.read_to_end(&mut Vec::new());
    });
    assert_eq!(
        closed,
        Err(Some(Lost::Tls(fibra::net::TlsLost::HandshakeTimedOut {
            after: timeout
        })))
    );
}

#[test]
fn a_close_before_a_plaintext_hello_ends_as_not_tls() {
    let options = ConnOptions::new().with_close_timeout(Duration::from_secs(8));
    let closed = greet_and_close(&TestCerts::localhost(), options, |mut tcp| {
        std::thread::sleep(Duration::from_millis(100));
        tcp.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let _ = tcp.read_to_end(&mut Vec::new());
    });
    assert_eq!(closed, Err(Some(Lost::Tls(fibra::net::TlsLost::NotTls))));
}

/// A TLS server on `s` whose one connection is `client`'s (on its own thread): what the
/// connection's receives gave, up to the first error; each line received is echoed.
fn echo_receives(
    certs: &TestCerts,
    client: impl FnOnce(std::net::SocketAddr) + Send + 'static,
) -> Vec<Result<Vec<u8>, Option<Lost>>> {
    let mut s = net_schedule();
    let listener = certs.listen(&s, ConnOptions::new());
    let addr = listener.local_addr();
    let client = std::thread::spawn(move || client(addr));
    let got = Rc::new(RefCell::new(Vec::new()));
    let out = got.clone();
    s.spawn(move |h| {
        let (conn, _) = h.accept(&listener).unwrap();
        loop {
            let r = h.receive(&conn).map_err(|e| e.lost());
            if let Ok(line) = &r {
                let _ = h.send_frame(&conn, line);
            }
            let end = r.is_err();
            out.borrow_mut().push(r);
            if end {
                break;
            }
        }
    })
    .unwrap();
    run_all(&mut s, 20);
    client.join().unwrap();
    let got = got.borrow().clone();
    got
}

#[test]
fn close_notify_in_the_middle_of_a_line_drops_the_partial_line() {
    let certs = TestCerts::localhost();
    let config = certs.client_config();
    let got = echo_receives(&certs, move |addr| {
        let mut c = tls_client(TcpStream::connect(addr).unwrap(), config);
        c.write_all(b"whole\npart").unwrap();
        c.conn.send_close_notify();
        c.flush().unwrap();
        let mut rest = Vec::new();
        let _ = c.read_to_end(&mut rest);
    });
    assert_eq!(got, [Ok(b"whole".to_vec()), Err(Some(Lost::Eof))]);
}

#[test]
fn key_updates_between_lines_are_answered() {
    let certs = TestCerts::localhost();
    let config = certs.client_config();
    let got = echo_receives(&certs, move |addr| {
        let mut c = tls_client(TcpStream::connect(addr).unwrap(), config);
        for i in 0..50 {
            c.conn.refresh_traffic_keys().unwrap();
            c.write_all(format!("line {i}\n").as_bytes()).unwrap();
            c.flush().unwrap();
            let mut line = vec![0u8; format!("line {i}\n").len()];
            c.read_exact(&mut line).unwrap();
        }
        c.conn.send_close_notify();
        c.flush().unwrap();
        let _ = c.read_to_end(&mut Vec::new());
    });
    assert_eq!(got.len(), 51, "{got:?}");
    assert_eq!(got[50], Err(Some(Lost::Eof)));
}

#[test]
fn a_key_update_flood_from_a_peer_that_never_reads_is_cut() {
    let certs = TestCerts::localhost();
    let config = certs.client_config();
    let got = echo_receives(&certs, move |addr| {
        let mut c = tls_client(TcpStream::connect(addr).unwrap(), config);
        for _ in 0..100 {
            if c.conn.refresh_traffic_keys().is_err() {
                break;
            }
            if c.flush().is_err() {
                break;
            }
        }
        let _ = c.sock.read_to_end(&mut Vec::new());
    });
    assert_eq!(
        got,
        [Err(Some(Lost::Tls(fibra::net::TlsLost::Protocol {
            reason: "too many key updates"
        })))]
    );
}

#[test]
fn a_tls_member_that_never_reads_is_cut_off_at_its_send_limit() {
    // A room's fan-out to a TLS member that completed its handshake and never reads: its
    // queue fills to the send limit (rustls holds at most its own cap beyond it) and the
    // group cuts it off, as a plain member.
    let certs = TestCerts::localhost();
    let mut s = net_schedule();
    let limit = 64 * 1024;
    let listener = certs.listen(&s, ConnOptions::new().with_send_limit(limit));
    let addr = listener.local_addr();
    let config = certs.client_config();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let client = std::thread::spawn(move || {
        let c = tls_client(TcpStream::connect(addr).unwrap(), config);
        let _ = stop_rx.recv_timeout(Duration::from_secs(20));
        drop(c);
    });
    let got = Rc::new(RefCell::new(None));
    let out = got.clone();
    s.spawn(move |h| {
        let (conn, _) = h.accept(&listener).unwrap();
        let group = Group::with_options(
            fibra::net::GroupOptions::new().with_slow_policy(fibra::net::SlowPolicy::Disconnect),
        );
        group.add(&conn).unwrap();
        let line = "y".repeat(999);
        let mut sent = 0usize;
        while conn.lost().is_none() && sent < 256 * 1024 * 1024 {
            group.send_line(&line).unwrap();
            sent += 1000;
            h.sleep(Duration::from_micros(100));
        }
        *out.borrow_mut() = Some((conn.lost(), sent));
        let _ = stop_tx.send(());
    })
    .unwrap();
    run_all(&mut s, 60);
    client.join().unwrap();
    let (lost, sent) = got.borrow().unwrap();
    eprintln!("cut off after {sent} bytes");
    assert_eq!(lost, Some(Lost::Slow { limit }));
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One mangling client: a real rustls client whose bytes are cut at random places, flipped
/// now and then, and whose end is chosen at random (FIN, RST, close_notify, silence).
fn mangler(addr: std::net::SocketAddr, config: std::sync::Arc<rustls::ClientConfig>, seed: u64) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let Ok(mut tcp) = TcpStream::connect(addr) else {
        return;
    };
    tcp.set_nodelay(true).unwrap();
    tcp.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(config, name).unwrap();
    let flip = rng.below(4) == 0;
    let steps = 1 + rng.below(40);
    for step in 0..steps {
        if !conn.is_handshaking() && rng.below(3) == 0 {
            let _ = conn.writer().write_all(format!("line {step}\n").as_bytes());
        }
        if !conn.is_handshaking() && rng.below(30) == 0 {
            let _ = conn.refresh_traffic_keys();
        }
        let mut out = Vec::new();
        while conn.wants_write() {
            if conn.write_tls(&mut out).is_err() {
                break;
            }
        }
        if flip && !out.is_empty() && rng.below(3) == 0 {
            let i = rng.below(out.len() as u64) as usize;
            out[i] ^= 1 << rng.below(8);
        }
        let mut at = 0;
        while at < out.len() {
            let n = (1 + rng.below(out.len() as u64 - at as u64 + 1)) as usize;
            let n = n.min(out.len() - at);
            if tcp.write_all(&out[at..at + n]).is_err() {
                return;
            }
            at += n;
            if rng.below(8) == 0 {
                std::thread::sleep(Duration::from_millis(rng.below(5)));
            }
        }
        let mut buf = [0u8; 16 * 1024];
        match tcp.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                let _ = conn.read_tls(&mut &buf[..n]);
                if conn.process_new_packets().is_err() {
                    // Go on sending garbage-ish bytes now and then.
                    if rng.below(2) == 0 {
                        return;
                    }
                }
                let mut sink = Vec::new();
                let _ = conn.reader().read_to_end(&mut sink);
            }
            Err(_) => {}
        }
    }
    match rng.below(4) {
        0 => {
            conn.send_close_notify();
            let mut out = Vec::new();
            while conn.wants_write() && conn.write_tls(&mut out).is_ok() {}
            let _ = tcp.write_all(&out);
            let _ = tcp.shutdown(std::net::Shutdown::Write);
        }
        1 => {
            let _ = tcp.shutdown(std::net::Shutdown::Write);
        }
        2 => {
            // A reset.
            let _ = socket2::SockRef::from(&tcp).set_linger(Some(Duration::ZERO));
        }
        _ => std::thread::sleep(Duration::from_millis(rng.below(50))),
    }
    drop(tcp);
}

#[test]
fn mangled_clients_each_end_their_own_connection() {
    const CLIENTS: u64 = 96;
    let certs = TestCerts::localhost();
    let mut s = net_schedule();
    let listener = certs.listen(
        &s,
        ConnOptions::new()
            .with_handshake_timeout(Duration::from_millis(500))
            .with_close_timeout(Duration::from_millis(500)),
    );
    let addr = listener.local_addr();
    let config = certs.client_config();
    let clients = std::thread::spawn(move || {
        let mut threads = Vec::new();
        for seed in 0..CLIENTS {
            let config = config.clone();
            threads.push(std::thread::spawn(move || mangler(addr, config, seed + 1)));
            if threads.len() >= 16 {
                for t in threads.drain(..) {
                    t.join().unwrap();
                }
            }
        }
        for t in threads {
            t.join().unwrap();
        }
    });
    let ends = Rc::new(RefCell::new(
        std::collections::BTreeMap::<String, usize>::new(),
    ));
    let out = ends.clone();
    let accepted = Rc::new(std::cell::Cell::new(0u64));
    let count = accepted.clone();
    s.spawn(move |h| {
        while count.get() < CLIENTS {
            let (conn, _) = h.accept(&listener).unwrap();
            count.set(count.get() + 1);
            let out = out.clone();
            h.spawn_detached(move |h| {
                let why = loop {
                    match h.receive(&conn) {
                        Ok(line) => {
                            let _ = h.send_frame(&conn, &line);
                        }
                        Err(e) => break format!("{:?}", e.lost()),
                    }
                };
                let _ = h.close(&conn);
                *out.borrow_mut().entry(why).or_default() += 1;
            })
            .unwrap();
        }
    })
    .unwrap();
    util::run_until(&mut s, "every mangled connection ended", || {
        ends.borrow().values().sum::<usize>() as u64 == CLIENTS
    });
    clients.join().unwrap();
    run_all(&mut s, 5);
    assert_eq!(util::net_stats(&s).sockets, 0);
}

#[test]
fn a_host_close_and_a_dropped_conn_each_send_close_notify_then_fin() {
    // Conn::close from the host (no tasklet) and the last handle dropped: the peer reads the
    // last line, then a clean end (read_to_string fails on an end without close_notify).
    for how in ["host close", "drop"] {
        let certs = TestCerts::localhost();
        let mut s = net_schedule();
        let listener = certs.listen(&s, ConnOptions::new());
        let addr = listener.local_addr();
        let client = tls_peer(addr, certs.client_config(), move |mut c| {
            c.write_all(b"hi\n").unwrap();
            let mut got = String::new();
            c.read_to_string(&mut got).map(|_| got)
        });
        let held: Rc<RefCell<Option<fibra::net::Conn>>> = Rc::default();
        let slot = held.clone();
        s.spawn(move |h| {
            let (conn, _) = h.accept(&listener).unwrap();
            assert_eq!(h.receive(&conn).unwrap(), b"hi");
            *slot.borrow_mut() = Some(conn);
        })
        .unwrap();
        util::run_until(&mut s, "the line", || held.borrow().is_some());
        let conn = held.borrow_mut().take().unwrap();
        conn.try_send_line("last").unwrap();
        if how == "host close" {
            conn.close();
            s.tick().unwrap();
        }
        drop(conn);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while util::net_stats(&s).sockets > 0 && std::time::Instant::now() < deadline {
            s.tick_within(Duration::from_millis(2)).unwrap();
        }
        assert_eq!(client.join().unwrap().unwrap(), "last\n", "{how}");
    }
}

#[test]
fn a_graceful_stop_before_the_peers_hello_still_delivers_the_greeting() {
    // The schedule drains (stops gracefully) while a TLS connection's handshake has not
    // begun: the handshake goes on, the greeting is written, then close_notify and FIN.
    let certs = TestCerts::localhost();
    let mut s = net_schedule();
    let listener = certs.listen(
        &s,
        ConnOptions::new().with_close_timeout(Duration::from_secs(8)),
    );
    let addr = listener.local_addr();
    let config = certs.client_config();
    let client = util::peer(addr, move |tcp| {
        std::thread::sleep(Duration::from_millis(200));
        let mut c = tls_client(tcp, config);
        let mut got = String::new();
        c.read_to_string(&mut got).map(|_| got)
    });
    let held: Rc<RefCell<Option<fibra::net::Conn>>> = Rc::default();
    let slot = held.clone();
    s.spawn(move |h| {
        let (conn, _) = h.accept(&listener).unwrap();
        h.send_line(&conn, "hello").unwrap();
        *slot.borrow_mut() = Some(conn);
    })
    .unwrap();
    util::run_until(&mut s, "the accept", || held.borrow().is_some());
    let drained = s.drain(Duration::from_secs(5)).unwrap();
    assert!(drained, "the stop waited for the close timeout");
    assert_eq!(client.join().unwrap().unwrap(), "hello\n");
}

#[test]
fn a_connect_timeout_during_the_handshake_leaves_nothing_behind() {
    let certs = TestCerts::localhost();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let mut s = net_schedule();
    let got = Rc::new(RefCell::new(None));
    let out = got.clone();
    s.spawn(move |h| {
        let options = ConnOptions::new().with_connect_timeout(Some(Duration::from_millis(200)));
        let r = h.connect_tls_with(addr, "localhost", certs.client_config(), options);
        *out.borrow_mut() = Some(r.map(|_| ()).map_err(|e| e.to_string()));
        h.sleep(Duration::from_millis(50));
    })
    .unwrap();
    run_all(&mut s, 10);
    drop(silent);
    let stats = util::net_stats(&s);
    assert_eq!(
        (stats.connections, stats.sockets, stats.timers),
        (0, 0, 0),
        "{stats:?}"
    );
    assert!(got.borrow().as_ref().unwrap().is_err());
}

#[test]
fn a_handshake_still_ends_at_its_timeout_after_a_read_timeout_fired() {
    // The read timeout fires first (the connection is lost with TimedOut, its output still
    // open), and the host keeps the connection: the handshake timeout must still end it.
    use std::sync::atomic::{AtomicBool, Ordering};
    let certs = TestCerts::localhost();
    let mut s = net_schedule();
    let handshake = Duration::from_millis(400);
    let listener = certs.listen(
        &s,
        ConnOptions::new()
            .with_read_timeout(Some(Duration::from_millis(100)))
            .with_handshake_timeout(handshake),
    );
    let ended = std::sync::Arc::new(AtomicBool::new(false));
    let flag = ended.clone();
    let client = util::peer(listener.local_addr(), move |mut tcp| {
        // Silent: never a hello. The server's end of the stream is what this waits for.
        let r = tcp.read_to_end(&mut Vec::new());
        flag.store(true, Ordering::SeqCst);
        r.map(|_| ())
    });
    let got = Rc::new(RefCell::new(None));
    let out = got.clone();
    s.spawn(move |h| {
        let (conn, _) = h.accept(&listener).unwrap();
        let first = h.on_lost_connection(&conn);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !ended.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
            h.sleep(Duration::from_millis(10));
        }
        *out.borrow_mut() = Some((first, ended.load(Ordering::SeqCst)));
    })
    .unwrap();
    run_all(&mut s, 20);
    client.join().unwrap().unwrap();
    assert_eq!(
        *got.borrow(),
        Some((Lost::TimedOut, true)),
        "the connection outlived its handshake timeout"
    );
}
