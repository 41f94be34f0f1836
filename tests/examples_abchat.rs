//! `examples/abchat.rs` (ABChat's protocol) run as a process and driven over loopback:
//! login and refusals, broadcasts in order to everyone (the sender included), private
//! messages and unknown names, a name logged in again replacing the old connection, frames
//! split across reads, a frame too long, the rate limit (a dropped frame does not restart
//! it), a client that does not read cut off while the others go on, the status line.

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use util::Example;

/// An ABChat client: frames of a 4-byte big-endian length, then UTF-8.
struct Client {
    stream: TcpStream,
}

impl Client {
    fn connect(addr: &str) -> Client {
        Client::from_stream(TcpStream::connect(addr).unwrap())
    }

    fn from_stream(stream: TcpStream) -> Client {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Client { stream }
    }

    /// Connects and logs in as `name`.
    fn login(addr: &str, name: &str) -> Client {
        let mut c = Client::connect(addr);
        c.send(name);
        assert_eq!(c.recv(), format!("ok {name}"));
        c
    }

    fn send(&mut self, text: &str) {
        self.send_bytes(text.as_bytes());
    }

    fn send_bytes(&mut self, payload: &[u8]) {
        let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(payload);
        self.stream.write_all(&frame).unwrap();
    }

    fn recv(&mut self) -> String {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).unwrap();
        let mut payload = vec![0; u32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut payload).unwrap();
        String::from_utf8(payload).unwrap()
    }

    /// Whether the server closed the connection (EOF or reset; not a timeout).
    fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        match self.stream.read_to_end(&mut rest) {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

fn abchat(args: &[&str]) -> Example {
    Example::start_with("abchat", args)
}

#[test]
fn names_broadcasts_and_private_messages() {
    let server = abchat(&[]);
    for (name, reason) in [
        ("", "error a name is 1 to 32 characters"),
        (&"x".repeat(33), "error a name is 1 to 32 characters"),
        (
            "two words",
            "error a name has no spaces or control characters",
        ),
        (
            "tab\there",
            "error a name has no spaces or control characters",
        ),
    ] {
        let mut c = Client::connect(&server.addr);
        c.send(name);
        assert_eq!(c.recv(), reason, "{name:?}");
        assert!(c.closed(), "{name:?}: refused and closed");
    }
    let mut bad = Client::connect(&server.addr);
    bad.send_bytes(&[0xff, 0xfe]);
    assert_eq!(bad.recv(), "error a name is UTF-8");
    assert!(bad.closed());

    let name32 = "é".repeat(32); // 32 characters, 64 bytes
    let mut ada = Client::login(&server.addr, "ada");
    let mut bob = Client::login(&server.addr, &name32);
    ada.send("hello");
    assert_eq!(ada.recv(), "ada: hello", "the sender hears its own line");
    assert_eq!(bob.recv(), "ada: hello");
    ada.send(&format!("@{name32} psst, a secret"));
    assert_eq!(bob.recv(), "ada (private): psst, a secret");
    ada.send("@nobody hi");
    assert_eq!(ada.recv(), "error no such user nobody");
    // Order: bob's 200 lines reach both in the order he said them; ada's private reply
    // comes after the ones said before it.
    for i in 0..200 {
        bob.send(&format!("line {i}"));
    }
    for i in 0..200 {
        let want = format!("{name32}: line {i}");
        assert_eq!(ada.recv(), want);
        assert_eq!(bob.recv(), want);
    }
    // A frame that only looks private to an offline name, and a bare `@`.
    ada.send("@");
    assert_eq!(ada.recv(), "error no such user ");
    bob.send("@ada");
    assert_eq!(ada.recv(), format!("{name32} (private): "));
}

#[test]
fn a_name_logged_in_again_replaces_the_old_connection() {
    let server = abchat(&[]);
    let mut old = Client::login(&server.addr, "ada");
    let mut bob = Client::login(&server.addr, "bob");
    let mut new = Client::login(&server.addr, "ada");
    assert_eq!(old.recv(), "error replaced");
    assert!(old.closed(), "the old connection is closed");
    // The old connection's end did not log the new one out.
    std::thread::sleep(Duration::from_millis(100));
    bob.send("@ada are you there?");
    assert_eq!(new.recv(), "bob (private): are you there?");
    bob.send("all");
    assert_eq!(new.recv(), "bob: all");
    assert_eq!(bob.recv(), "bob: all");
    new.send("@bob yes");
    assert_eq!(bob.recv(), "ada (private): yes");
}

#[test]
fn frames_split_anywhere_are_put_together_and_a_long_one_ends_only_its_sender() {
    let server = abchat(&["--max-frame", "100"]);
    let mut ada = Client::login(&server.addr, "ada");
    // Byte by byte, the length prefix too.
    let mut drip = Client::connect(&server.addr);
    let mut frame = 4u32.to_be_bytes().to_vec();
    frame.extend_from_slice(b"drip");
    frame.extend_from_slice(&11u32.to_be_bytes());
    frame.extend_from_slice(b"hello, drip");
    for byte in &frame {
        drip.stream.write_all(&[*byte]).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(drip.recv(), "ok drip");
    assert_eq!(drip.recv(), "drip: hello, drip");
    assert_eq!(ada.recv(), "drip: hello, drip");
    // Two frames in one write.
    let mut two = Vec::new();
    for text in ["one", "two"] {
        two.extend_from_slice(&(text.len() as u32).to_be_bytes());
        two.extend_from_slice(text.as_bytes());
    }
    ada.stream.write_all(&two).unwrap();
    assert_eq!(ada.recv(), "ada: one");
    assert_eq!(ada.recv(), "ada: two");
    assert_eq!(drip.recv(), "ada: one");
    assert_eq!(drip.recv(), "ada: two");
    // Over the limit: only the sender goes.
    drip.send(&"x".repeat(101));
    assert_eq!(drip.recv(), "error frame longer than 100 bytes");
    assert!(drip.closed());
    ada.send("still here");
    assert_eq!(ada.recv(), "ada: still here");
    let mut cat = Client::login(&server.addr, "cat");
    cat.send(&"y".repeat(100));
    assert_eq!(
        ada.recv(),
        format!("cat: {}", "y".repeat(100)),
        "100 bytes is allowed"
    );
}

#[test]
fn the_interval_drops_frames_too_soon_and_a_dropped_one_does_not_restart_it() {
    let server = abchat(&["--interval", "1000"]);
    let mut ada = Client::login(&server.addr, "ada");
    ada.send("first");
    assert_eq!(ada.recv(), "ada: first");
    // The server took "first" before now: from here, its interval has at most 1 s left.
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    ada.send("too soon");
    assert_eq!(ada.recv(), "error too fast");
    // Over 1.2 s after the accepted frame, 0.7 s after the dropped one: accepted.
    std::thread::sleep(
        (t0 + Duration::from_millis(1200)).saturating_duration_since(Instant::now()),
    );
    ada.send("third");
    assert_eq!(ada.recv(), "ada: third");
    ada.send("@ada fourth, at once");
    assert_eq!(ada.recv(), "error too fast", "private frames count too");
}

#[test]
fn a_client_that_does_not_read_is_cut_off_and_the_others_go_on() {
    let server = abchat(&["--max-outbound", "65536", "--status-secs", "1"]);
    let mut talker = Client::login(&server.addr, "talker");
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let addr: std::net::SocketAddr = server.addr.parse().unwrap();
    socket.connect(&addr.into()).unwrap();
    let mut sleeper = Client::from_stream(socket.into());
    sleeper.send("sleeper");
    assert_eq!(sleeper.recv(), "ok sleeper");
    server.wait_for("status: 2 clients online");
    let line = "q".repeat(4000);
    let mut said = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            Instant::now() < deadline && said < 5000,
            "not cut off after {said}"
        );
        talker.send(&line);
        said += 1;
        assert_eq!(
            talker.recv(),
            format!("talker: {line}"),
            "the talker never waits"
        );
        if said % 50 == 0 && server_says_cut(&server) {
            break;
        }
    }
    // The sleeper is gone from the room: a private message to it finds nobody.
    talker.send("@sleeper hello?");
    assert_eq!(talker.recv(), "error no such user sleeper");
    let mut newcomer = Client::login(&server.addr, "new");
    talker.send("welcome");
    assert_eq!(newcomer.recv(), "talker: welcome");
    server.wait_for("status: 2 clients online");
    drop(sleeper);
}

/// Whether the server logged a cut-off since the last look (it may take a poll round).
fn server_says_cut(server: &Example) -> bool {
    server.try_wait_for("cut off", Duration::from_millis(200))
}

/// Ctrl-C: every member is told `error server shutting down`, then the connection ends
/// with a FIN (not a reset), and the server exits 0.
#[test]
fn ctrl_c_tells_every_member_then_closes() {
    let server = abchat(&[]);
    let mut members: Vec<Client> = ["ann", "bob"]
        .iter()
        .map(|name| Client::login(&server.addr, name))
        .collect();
    let (status, said) = server.interrupt();
    assert!(status.success(), "abchat exited {status}:\n{said}");
    for m in &mut members {
        assert_eq!(m.recv(), "error server shutting down");
        let mut rest = Vec::new();
        m.stream
            .read_to_end(&mut rest)
            .expect("the connection ends with a FIN");
        assert!(rest.is_empty());
    }
}
