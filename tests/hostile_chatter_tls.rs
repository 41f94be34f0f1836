//! Hostile input against the chatter's TLS port, as `hostile_chatter.rs` has for telnet:
//! plaintext, garbage before and inside a ClientHello, a handshake dripped byte by byte,
//! oversized records, a flood of tiny records, renegotiation attempts (TLS 1.2 and 1.3),
//! many half-open handshakes. Each ends (or, for the flood, serves) that connection alone,
//! within the handshake timeout where it is one, while a plain member and a TLS member keep
//! chatting; then the room has exactly those two sessions left. On one thread and on two.
#![cfg(feature = "tls")]

mod chat;
mod util;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use chat::tls::{
    client_config, client_hello, expect_ended_within, renegotiate, TlsClient, TlsDoors,
};
use chat::{protocol, Client, Config, TestServer};
use fibra::net::rustls;

/// The handshake timeout of these tests' servers.
const HANDSHAKE: Duration = Duration::from_millis(500);
/// How long a test waits for the server to end a connection before failing.
const END_WITHIN: Duration = Duration::from_secs(10);

/// A room with a TLS door and a short handshake timeout, a plain member (ann) and a TLS
/// member (tim) who hear each other.
struct Room {
    server: TestServer,
    tls: TlsDoors,
    ann: Client,
    tim: TlsClient,
    said: usize,
}

impl Room {
    fn start(threads: usize) -> Room {
        let (mut server, _, tls) =
            TestServer::start_tls(threads, Config::default(), HANDSHAKE, false);
        // TLS connections land by the kernel's hash, plain ones by the hand-off.
        server.members_may_be_anywhere();
        let ann = server.join("ann");
        let mut tim = tls.join("tim");
        let mut ann = ann;
        ann.expect("tim has joined the chat.");
        tim.send("/who");
        tim.expect("Online: ann, tim");
        Room {
            server,
            tls,
            ann,
            tim,
            said: 0,
        }
    }

    /// A line each way between ann and tim, skipping what the room said before it (joins
    /// and leaves of the attackers).
    fn still_chatting(&mut self) {
        self.said += 1;
        let n = self.said;
        self.ann.send(&format!("plain {n}"));
        self.tim.lines_until(&format!("ann says: plain {n}"));
        self.ann.lines_until(&format!("ann says: plain {n}"));
        self.tim.send(&format!("tls {n}"));
        self.ann.lines_until(&format!("tim says: tls {n}"));
        self.tim.lines_until(&format!("tim says: tls {n}"));
    }

    /// A raw TCP connection to the TLS port.
    fn raw(&self) -> TcpStream {
        let tcp = TcpStream::connect(self.tls.addr).unwrap();
        tcp.set_nodelay(true).unwrap();
        tcp
    }

    /// A real ClientHello for this server (one record).
    fn hello(&self) -> Vec<u8> {
        client_hello(&self.tls.client_config())
    }

    /// The attackers are gone: only ann's and tim's sessions and connections are left; and
    /// the two still chat. Then stops the server (which checks no socket is left).
    fn end(mut self) {
        self.still_chatting();
        self.server.wait_for("only ann and tim left", |room, net| {
            room.sessions == 2 && room.members == 2 && net.connections == 2
        });
        self.still_chatting();
        self.server.stop();
    }
}

/// Nothing of the chat came back in plaintext: at most TLS alerts (records of type 21).
fn assert_no_plaintext(got: &[u8], what: &str) {
    let prompt = protocol::PROMPT.as_bytes();
    assert!(
        !got.windows(prompt.len()).any(|w| w == prompt),
        "{what}: the prompt went out in plaintext: {got:?}"
    );
    assert!(
        got.is_empty() || got[0] == 0x15,
        "{what}: the server answered with more than an alert: {got:?}"
    );
}

fn plaintext_to_the_tls_port_ends_that_connection(threads: usize) {
    let mut room = Room::start(threads);
    for text in [
        &b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"[..],
        b"mallory\r\n",
        b"\x00",
    ] {
        let mut raw = room.raw();
        raw.write_all(text).unwrap();
        let (_, got) = expect_ended_within(&mut raw, END_WITHIN);
        assert_no_plaintext(&got, &String::from_utf8_lossy(text));
        room.still_chatting();
    }
    room.end();
}

fn garbage_before_or_inside_a_client_hello_ends_that_connection(threads: usize) {
    let mut room = Room::start(threads);
    let hello = room.hello();
    // Garbage first, then a good hello.
    let mut before = b"\x17\x42garbage".to_vec();
    before.extend_from_slice(&hello);
    // A hello whose body is garbage after its version and random: the session id's length
    // says 255 and the rest is noise.
    let mut inside = hello.clone();
    for (i, b) in inside.iter_mut().enumerate().skip(5 + 4 + 2 + 32) {
        *b = 0xff ^ (i as u8);
    }
    // A record of type handshake whose message says it is 16 MiB long.
    let mut huge_message = hello[..5].to_vec();
    huge_message.extend_from_slice(&[0x01, 0xff, 0xff, 0xff]);
    huge_message.extend_from_slice(&hello[9..]);
    for (what, bytes) in [
        ("garbage before", before),
        ("garbage inside", inside),
        ("a 16 MiB hello", huge_message),
    ] {
        let mut raw = room.raw();
        raw.write_all(&bytes).unwrap();
        let (_, got) = expect_ended_within(&mut raw, END_WITHIN);
        assert_no_plaintext(&got, what);
        room.still_chatting();
    }
    room.end();
}

fn a_dripped_handshake_ends_at_the_handshake_timeout(threads: usize) {
    let mut room = Room::start(threads);
    let hello = room.hello();
    let mut raw = room.raw();
    let mut writer = raw.try_clone().unwrap();
    let total = hello.len();
    // A byte every 20 ms: the whole hello would take over 4 s, eight handshake timeouts.
    let drip = std::thread::spawn(move || {
        let mut sent = 0;
        for byte in hello {
            if writer.write_all(&[byte]).is_err() {
                break;
            }
            sent += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
        sent
    });
    room.still_chatting();
    let (took, got) = expect_ended_within(&mut raw, END_WITHIN);
    assert_no_plaintext(&got, "a dripped hello");
    let sent = drip.join().unwrap();
    assert!(
        sent < total,
        "the drip sent its whole hello ({sent} bytes) before the server ended it"
    );
    eprintln!("dripped hello: ended after {took:?}, {sent} of {total} bytes sent");
    room.end();
}

fn oversized_records_end_that_connection(threads: usize) {
    let mut room = Room::start(threads);
    // Before the handshake: a handshake record of 65,535 bytes (TLS allows 16 KiB + 2,048).
    let mut raw = room.raw();
    let mut record = vec![0x16, 0x03, 0x01, 0xff, 0xff];
    record.extend(std::iter::repeat_n(0x01, 1024));
    raw.write_all(&record).unwrap();
    let (_, got) = expect_ended_within(&mut raw, END_WITHIN);
    assert_no_plaintext(&got, "an oversized hello record");
    room.still_chatting();
    // After the login: an application-data record of 18,433 bytes, one over the limit.
    let big = room.tls.join("big");
    room.ann.lines_until("big has joined the chat.");
    let mut tcp = big.into_tls().sock;
    let mut record = vec![0x17, 0x03, 0x03, 0x48, 0x01];
    record.extend(std::iter::repeat_n(0x5a, 4096));
    tcp.write_all(&record).unwrap();
    expect_ended_within(&mut tcp, END_WITHIN);
    room.ann.lines_until("big has left the chat.");
    room.end();
}

fn a_flood_of_tiny_records_is_served_in_turn_with_the_room(threads: usize) {
    const LINES: usize = 300;
    let mut room = Room::start(threads);
    // A member who only watches the flood (ann and tim's chat skips the lines around it).
    let mut watch = room.server.join("watch");
    room.ann.lines_until("watch has joined the chat.");
    let flood = room.tls.join("flood");
    watch.lines_until("flood has joined the chat.");
    room.ann.lines_until("flood has joined the chat.");
    room.tim.lines_until("flood has joined the chat.");
    let mut tls = flood.into_tls();
    // Each byte its own record: some 3,000 records of 23 bytes for 300 short lines.
    let flooder = std::thread::spawn(move || {
        let mut records = 0;
        for n in 0..LINES {
            for byte in format!("tiny {n}\n").bytes() {
                tls.conn.writer().write_all(&[byte]).unwrap();
                records += 1;
            }
            while tls.conn.wants_write() {
                tls.conn.write_tls(&mut tls.sock).unwrap();
            }
        }
        (tls, records)
    });
    // The room goes on meanwhile.
    for _ in 0..3 {
        room.still_chatting();
    }
    let (tls, records) = flooder.join().unwrap();
    // Every flooded line reached the room, in order.
    let mut next = 0;
    while next < LINES {
        let line = watch.line();
        if let Some(n) = line.strip_prefix("flood says: tiny ") {
            assert_eq!(n, next.to_string());
            next += 1;
        }
    }
    let (_, net) = room.server.stats();
    assert!(net.queued < 256 * 1024, "{net:?}");
    eprintln!("tiny records: {records} records, {LINES} lines relayed in order");
    drop(tls);
    room.ann.lines_until("flood has left the chat.");
    drop(watch);
    room.end();
}

fn renegotiation_attempts_end_that_connection(threads: usize) {
    let mut room = Room::start(threads);
    let versions: [(&str, &'static rustls::SupportedProtocolVersion); 2] = [
        ("tls12", &rustls::version::TLS12),
        ("tls13", &rustls::version::TLS13),
    ];
    for (name, version) in versions {
        let config = client_config(&room.tls.certs.ca, &[version]);
        let member = TlsClient::join(room.tls.addr, &config, name);
        room.ann
            .lines_until(&format!("{name} has joined the chat."));
        let hello = client_hello(&config);
        // TLS 1.2's first request is refused with a warning, the second ends it; TLS 1.3
        // has no renegotiation: the first ends it.
        let mut tcp = renegotiate(member.into_tls(), &hello, 3);
        expect_ended_within(&mut tcp, END_WITHIN);
        room.ann.lines_until(&format!("{name} has left the chat."));
        room.still_chatting();
    }
    room.end();
}

fn many_half_open_handshakes_end_at_the_handshake_timeout(threads: usize) {
    const HALF_OPEN: usize = 200;
    let mut room = Room::start(threads);
    let hello = room.hello();
    let started = Instant::now();
    let mut half: Vec<TcpStream> = (0..HALF_OPEN)
        .map(|i| {
            let mut raw = room.raw();
            // Some say nothing, the others part of a hello.
            if i % 2 == 1 {
                raw.write_all(&hello[..10 + i % 50]).unwrap();
            }
            raw
        })
        .collect();
    room.still_chatting();
    for raw in &mut half {
        let (_, got) = expect_ended_within(raw, END_WITHIN);
        assert_no_plaintext(&got, "a half-open handshake");
    }
    eprintln!(
        "{HALF_OPEN} half-open handshakes all ended {:?} after they began",
        started.elapsed()
    );
    room.end();
}

chat::on_one_and_two_threads!(
    plaintext_to_the_tls_port_ends_that_connection,
    garbage_before_or_inside_a_client_hello_ends_that_connection,
    a_dripped_handshake_ends_at_the_handshake_timeout,
    oversized_records_end_that_connection,
    a_flood_of_tiny_records_is_served_in_turn_with_the_room,
    renegotiation_attempts_end_that_connection,
    many_half_open_handshakes_end_at_the_handshake_timeout,
);
