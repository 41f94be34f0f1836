//! `loadgen chat --rooms R` against `tokio_chat`'s `/join`: every client logs in, joins its
//! room, and hears its room's senders only (each line reaches the members of one room, not
//! everyone), with no line missing.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `tokio_chat` on a free port of 127.0.0.1, listening; killed when dropped.
struct Peer(Child, String);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill(); // our own child, by handle
        let _ = self.0.wait();
    }
}

fn start_peer() -> Peer {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_tokio_chat"))
        .args(["--addr", &addr])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let peer = Peer(child, addr);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(&peer.1).is_err() {
        assert!(Instant::now() < deadline, "tokio_chat did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    peer
}

/// A number field of loadgen's JSON line.
fn field(json: &str, name: &str) -> f64 {
    let at = json.find(&format!("\"{name}\":")).unwrap() + name.len() + 3;
    let end = json[at..].find([',', '}']).unwrap();
    json[at..at + end].parse().unwrap()
}

#[test]
fn clients_in_four_rooms_hear_their_rooms_senders_only() {
    let peer = start_peer();
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["chat", "--addr", &peer.1, "--clients", "20", "--rooms", "4"])
        .args(["--secs", "1", "--warmup", "0.2", "--drain", "0.5"])
        .args(["--login-timeout", "5"])
        .output()
        .unwrap();
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{json} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(field(&json, "logged_in"), 20.0, "{json}");
    assert_eq!(field(&json, "missing"), 0.0, "{json}");
    assert_eq!(field(&json, "out_of_order"), 0.0, "{json}");
    // A line reaches the 5 members of its room; in one room it would reach all 20.
    let (sent, delivered) = (field(&json, "lines_sent"), field(&json, "deliveries"));
    assert!(sent > 0.0, "{json}");
    assert!(
        delivered <= sent * 5.0 + 20.0 && delivered >= sent * 2.0,
        "{sent} lines, {delivered} deliveries: not 5 a line"
    );
}
