//! Hostile input and faults against the raw echo server (the `echo` example), in-process on
//! an ephemeral port: every byte comes back, memory stays bounded, nothing is left behind.

#[path = "../examples/echo/server.rs"]
mod server;
mod util;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fibra::net::{NetExt, NetPlugin, NetStats};
use fibra::Schedule;

/// The echo server's acceptor, as a [`util::ServerThread`].
struct Echo;

impl util::Served for Echo {
    type Stats = NetStats;

    fn stats(&self, s: &Schedule) -> NetStats {
        s.plugin::<NetPlugin>().unwrap().stats()
    }

    fn stop(self, _: &mut Schedule) {}
}

/// The echo server on its own thread, with its network counters published each round.
struct EchoServer {
    addr: SocketAddr,
    thread: util::ServerThread<NetStats>,
}

impl EchoServer {
    fn start() -> EchoServer {
        let thread = util::ServerThread::start(|s| {
            let (tx, rx) = std::sync::mpsc::channel();
            s.spawn_named("acceptor", move |h| {
                let listener = h
                    .listen_with("127.0.0.1:0", server::listen_options(true))
                    .unwrap();
                tx.send(listener.local_addr()).unwrap();
                server::accept_loop(h, &listener);
            })
            .unwrap();
            s.tick().unwrap();
            (rx.try_recv().expect("listening after one tick"), Echo)
        });
        EchoServer {
            addr: thread.addr,
            thread,
        }
    }

    fn stats(&self) -> NetStats {
        self.thread.stats()
    }

    fn wait_for(&self, what: &str, f: impl Fn(&NetStats) -> bool) {
        self.thread.wait_for(what, f);
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
    }

    /// A fresh client gets its bytes back, and the server holds no other connection.
    fn assert_still_serves(&self) {
        let mut c = self.connect();
        c.write_all(b"are you there?").unwrap();
        let mut buf = [0u8; 14];
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"are you there?");
        drop(c);
        self.wait_for("no connection left", |s| s.connections == 0);
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// Every byte came back, in order (without printing megabytes when not).
fn assert_intact(back: &[u8], data: &[u8]) {
    let same = back.iter().zip(data).take_while(|(a, b)| a == b).count();
    assert!(
        back.len() == data.len() && same == data.len(),
        "{} bytes came back for {} sent; the first {same} intact",
        back.len(),
        data.len()
    );
}

/// Sends `data` from a thread while this one reads it all back.
fn echo_all(mut c: TcpStream, data: Vec<u8>) -> Vec<u8> {
    let mut writer = c.try_clone().unwrap();
    let len = data.len();
    let w = std::thread::spawn(move || {
        writer.write_all(&data).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut back = Vec::with_capacity(len);
    c.read_to_end(&mut back).unwrap();
    w.join().unwrap();
    back
}

#[test]
fn ten_mib_come_back_byte_for_byte_and_then_the_end() {
    let server = EchoServer::start();
    let data = pattern(10 << 20);
    let back = echo_all(server.connect(), data.clone());
    assert_intact(&back, &data);
    server.assert_still_serves();
}

#[test]
fn a_client_that_does_not_read_holds_bounded_memory_and_loses_nothing() {
    let server = EchoServer::start();
    let mut c = server.connect();
    let data = pattern(32 << 20);
    let mut writer = c.try_clone().unwrap();
    let written = Arc::new(Mutex::new(0usize));
    let w = {
        let (data, written) = (data.clone(), written.clone());
        std::thread::spawn(move || {
            for chunk in data.chunks(64 * 1024) {
                writer.write_all(chunk).unwrap();
                *written.lock().unwrap() += chunk.len();
            }
            writer.shutdown(Shutdown::Write).unwrap();
        })
    };
    // Not reading: the echo tasklet parks at its send limit, so the writer stalls too once
    // the kernel's buffers are full (no progress for 300 ms; how long that takes varies).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut stalled_at = *written.lock().unwrap();
    let mut still_since = Instant::now();
    while still_since.elapsed() < Duration::from_millis(300) {
        assert!(
            Instant::now() < deadline,
            "the writer never stalled: {stalled_at} bytes"
        );
        std::thread::sleep(Duration::from_millis(20));
        let now = *written.lock().unwrap();
        if now != stalled_at {
            stalled_at = now;
            still_since = Instant::now();
        }
    }
    assert!(stalled_at < data.len());
    let held = server.stats().queued;
    eprintln!(
        "echo non-reader: writer stalled after {stalled_at} bytes; server queued {held} bytes"
    );
    assert!(
        held <= 2 * 64 * 1024 + 64 * 1024,
        "{held} bytes queued for one client"
    );
    // Then read: everything arrives, in order.
    let mut back = Vec::with_capacity(data.len());
    c.read_to_end(&mut back).unwrap();
    w.join().unwrap();
    assert_intact(&back, &data);
    server.assert_still_serves();
}

#[test]
fn one_byte_per_write() {
    let server = EchoServer::start();
    let mut c = server.connect();
    c.set_nodelay(true).unwrap();
    let data = pattern(2000);
    let mut back = vec![0u8; data.len()];
    let mut reader = c.try_clone().unwrap();
    let r = std::thread::spawn(move || {
        reader.read_exact(&mut back).unwrap();
        back
    });
    for byte in &data {
        c.write_all(&[*byte]).unwrap();
    }
    assert_eq!(r.join().unwrap(), data);
    drop(c);
    server.assert_still_serves();
}

#[test]
fn thousands_of_connects_and_drops_leave_nothing_behind() {
    let server = EchoServer::start();
    let addr = server.addr;
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..750 {
                    let mut c = TcpStream::connect(addr).unwrap();
                    match (i + t) % 4 {
                        0 => {}
                        1 => c.write_all(b"bye").unwrap(),
                        2 => {
                            let s = socket2::SockRef::from(&c);
                            s.set_linger(Some(Duration::ZERO)).unwrap();
                            c.write_all(b"reset after this").unwrap();
                        }
                        _ => {
                            c.write_all(b"ping").unwrap();
                            let mut buf = [0u8; 4];
                            c.read_exact(&mut buf).unwrap();
                            assert_eq!(&buf, b"ping");
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    server.wait_for("every connection closed", |s| {
        s.connections == 0 && s.sockets == 1 && s.waiting == 1
    });
    server.assert_still_serves();
}

#[test]
fn half_close_gets_everything_back_then_the_end() {
    let server = EchoServer::start();
    for size in [0, 1, 100_000] {
        let data = pattern(size);
        assert_eq!(echo_all(server.connect(), data.clone()), data);
    }
    server.assert_still_serves();
}

#[test]
fn reset_while_output_is_queued_frees_it() {
    let server = EchoServer::start();
    for _ in 0..20 {
        let mut c = server.connect();
        // As much as the buffers take: the echo comes back unread.
        c.set_write_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let _ = c.write_all(&pattern(1 << 20));
        let s = socket2::SockRef::from(&c);
        s.set_linger(Some(Duration::ZERO)).unwrap();
        drop(c);
    }
    server.wait_for("every reset connection gone", |s| {
        s.connections == 0 && s.queued == 0
    });
    server.assert_still_serves();
}
