//! `ConnOptions::flush_delay`: output soon after a write held back to be written in one go,
//! and everything that must not wait for it (a quiet connection, a flush, a close, a large
//! output), over real sockets on 127.0.0.1.

mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::time::Duration;

use fibra::net::{Conn, ConnOptions, Framing, ListenOptions, NetExt};
use fibra::tasks::TasksExt;
use fibra::Handle;
use util::{net_schedule, net_stats, peer, run_all};

/// Longer than any test may take: output held this long would fail the test by timing out.
const FOREVER: Duration = Duration::from_secs(60);

fn listen_with_delay(h: &Handle, delay: Duration) -> fibra::net::Listener {
    let conn = ConnOptions::new().with_flush_delay(delay);
    h.listen_with("127.0.0.1:0", ListenOptions::new().with_conn(conn))
        .unwrap()
}

/// Sends `first` and lets the round write it: what is sent next falls within the delay.
fn write_first(h: &Handle, conn: &Conn) {
    h.send_frame(conn, b"first").unwrap();
    h.yield_now();
}

/// Reads `n` lines, then says `done`.
fn read_lines(stream: std::net::TcpStream, n: usize) -> Vec<String> {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut lines = Vec::new();
    for _ in 0..n {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        lines.push(line);
    }
    writer.write_all(b"done\n").unwrap();
    lines
}

#[test]
fn output_soon_after_a_write_waits_and_leaves_in_one_write() {
    let mut s = net_schedule();
    let (tx, rx) = std::sync::mpsc::channel();
    s.spawn(move |h| {
        let listener = listen_with_delay(h, Duration::from_secs(1));
        tx.send(listener.local_addr()).unwrap();
        let (conn, _) = h.accept(&listener).unwrap();
        // A quiet connection: written at once.
        h.send_frame(&conn, b"zero").unwrap();
        h.yield_now();
        // Within the delay of that write: held, gathered over several rounds.
        for word in ["one", "two", "three"] {
            h.send_frame(&conn, word.as_bytes()).unwrap();
            h.yield_now();
        }
        assert_eq!(h.receive(&conn).unwrap(), b"done");
    })
    .unwrap();
    s.tick().unwrap();
    let addr = rx.recv().unwrap();
    let client = peer(addr, |stream| read_lines(stream, 4));
    // Accept and queue the lines: a few rounds, far less than the delay.
    while net_stats(&s).queued < "one\ntwo\nthree\n".len() {
        s.tick().unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    s.tick().unwrap();
    assert_eq!(net_stats(&s).writes, 1, "held output was written early");
    run_all(&mut s, 20);
    assert_eq!(
        client.join().unwrap(),
        ["zero\n", "one\n", "two\n", "three\n"]
    );
    assert_eq!(net_stats(&s).writes, 2);
}

#[test]
fn output_to_a_quiet_connection_is_not_delayed() {
    let mut s = net_schedule();
    s.spawn(|h| {
        let listener = listen_with_delay(h, FOREVER);
        let client = peer(listener.local_addr(), |stream| {
            let mut writer = stream.try_clone().unwrap();
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            writer.write_all(b"ack\n").unwrap();
            line
        });
        let (conn, _) = h.accept(&listener).unwrap();
        // A request-response exchange: the reply is not held, though the delay is long.
        h.send_frame(&conn, b"hello").unwrap();
        assert_eq!(h.receive(&conn).unwrap(), b"ack");
        assert_eq!(client.join().unwrap(), "hello\n");
    })
    .unwrap();
    run_all(&mut s, 20);
}

#[test]
fn answers_to_the_peer_are_not_delayed() {
    let mut s = net_schedule();
    s.spawn(|h| {
        let listener = listen_with_delay(h, FOREVER);
        let client = peer(listener.local_addr(), |stream| {
            let mut writer = stream.try_clone().unwrap();
            let mut reader = BufReader::new(stream);
            let mut got = Vec::new();
            for i in 0..3 {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                got.push(line);
                writer.write_all(format!("ping {i}\n").as_bytes()).unwrap();
            }
            got
        });
        let (conn, _) = h.accept(&listener).unwrap();
        // Each answer follows the last write by far less than the delay, but the peer
        // spoke in between: none is held.
        h.send_frame(&conn, b"hello").unwrap();
        for i in 0..3 {
            let ping = h.receive(&conn).unwrap();
            assert_eq!(ping, format!("ping {i}").as_bytes());
            if i < 2 {
                h.send_frame(&conn, format!("pong {i}").as_bytes()).unwrap();
            }
        }
        assert_eq!(client.join().unwrap(), ["hello\n", "pong 0\n", "pong 1\n"]);
    })
    .unwrap();
    run_all(&mut s, 20);
}

/// A peer that reads `n` lines; the server writes `first` (so what `then` sends falls within
/// a delay that never ends during the test), runs `then`, and waits for the peer's `done`.
/// Returns the lines the peer read.
fn after_a_write(n: usize, then: impl FnOnce(&Handle, &Conn) + 'static) -> Vec<String> {
    let mut s = net_schedule();
    let lines = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let out = lines.clone();
    s.spawn(move |h| {
        let listener = listen_with_delay(h, FOREVER);
        let client = peer(listener.local_addr(), move |stream| read_lines(stream, n));
        let (conn, _) = h.accept(&listener).unwrap();
        write_first(h, &conn);
        then(h, &conn);
        assert_eq!(h.receive(&conn).unwrap(), b"done");
        *out.borrow_mut() = client.join().unwrap();
    })
    .unwrap();
    run_all(&mut s, 20);
    lines.take()
}

#[test]
fn flush_does_not_wait_for_the_delay() {
    let lines = after_a_write(2, |h, conn| {
        h.send_frame(conn, b"now").unwrap();
        h.flush(conn).unwrap();
    });
    assert_eq!(lines, ["first\n", "now\n"]);
}

#[test]
fn large_output_does_not_wait_for_the_delay() {
    let lines = after_a_write(2, |h, conn| {
        h.send_frame(conn, &vec![b'x'; 20 * 1024]).unwrap();
    });
    assert_eq!(lines[1].len(), 20 * 1024 + 1);
}

#[test]
fn close_writes_held_output_first() {
    let mut s = net_schedule();
    s.spawn(|h| {
        let listener = listen_with_delay(h, FOREVER);
        let client = peer(listener.local_addr(), |mut stream| {
            let mut all = String::new();
            stream.read_to_string(&mut all).unwrap();
            all
        });
        let (conn, _) = h.accept(&listener).unwrap();
        write_first(h, &conn);
        h.send_frame(&conn, b"last words").unwrap();
        h.close(&conn).unwrap();
        assert_eq!(client.join().unwrap(), "first\nlast words\n");
    })
    .unwrap();
    run_all(&mut s, 20);
}

#[test]
fn a_delay_set_on_the_connection_applies_to_what_is_sent_next() {
    let mut s = net_schedule();
    s.spawn(|h| {
        let listener = h.listen("127.0.0.1:0").unwrap();
        let client = peer(listener.local_addr(), |stream| read_lines(stream, 2));
        let (conn, _) = h.accept(&listener).unwrap();
        conn.set_flush_delay(Duration::from_millis(20));
        h.send_frame(&conn, b"a").unwrap();
        h.yield_now(); // written at once: the connection was quiet
        h.send_frame(&conn, b"b").unwrap();
        // Both reach the peer: the held output is written when its delay ends, with no
        // other event to wake the schedule.
        assert_eq!(h.receive(&conn).unwrap(), b"done");
        assert_eq!(client.join().unwrap(), ["a\n", "b\n"]);
    })
    .unwrap();
    run_all(&mut s, 20);
}

/// Held output forced out (a large send) into a socket that fills: the rest goes as the socket
/// takes it, not when the delay ends (before, it waited for the delay's timer, and under a
/// delay past what the clock can count, for good: the flush hung).
fn held_output_forced_into_a_full_socket(delay: Duration) {
    const BIG: usize = 32 * 1024 * 1024;
    let mut s = net_schedule();
    let (tx, rx) = std::sync::mpsc::channel();
    s.spawn(move |h| {
        let conn = ConnOptions::new()
            .with_framing(Framing::Raw)
            .with_send_limit(2 * BIG)
            .with_flush_delay(delay);
        let listener = h
            .listen_with("127.0.0.1:0", ListenOptions::new().with_conn(conn))
            .unwrap();
        tx.send(listener.local_addr()).unwrap();
        let (conn, _) = h.accept(&listener).unwrap();
        h.send(&conn, b"first").unwrap();
        h.yield_now();
        // Within the delay: held.
        h.send(&conn, b"a").unwrap();
        // Large: forced out at once, more than the socket takes while the peer sleeps.
        h.send(&conn, &vec![b'z'; BIG]).unwrap();
        h.flush(&conn).unwrap();
        h.close(&conn).unwrap();
    })
    .unwrap();
    s.tick().unwrap();
    let addr = rx.recv().unwrap();
    let client = peer(addr, |mut stream| {
        std::thread::sleep(Duration::from_millis(300));
        let mut all = Vec::new();
        stream.read_to_end(&mut all).unwrap();
        all.len()
    });
    run_all(&mut s, 20);
    assert_eq!(client.join().unwrap(), 5 + 1 + BIG);
}

#[test]
fn held_output_forced_into_a_full_socket_goes_as_the_socket_takes_it() {
    held_output_forced_into_a_full_socket(FOREVER);
}

#[test]
fn output_held_for_good_forced_into_a_full_socket_goes_as_the_socket_takes_it() {
    held_output_forced_into_a_full_socket(Duration::MAX);
}

/// A peer that reads until it has `want` bytes (or its 3 s read timeout), then says `done`;
/// returns how many bytes it read.
fn reading_peer(
    stream: std::net::TcpStream,
    want: usize,
    pause: Duration,
    chunk: usize,
    between: Duration,
) -> usize {
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    std::thread::sleep(pause);
    let mut stream = stream;
    let mut buf = vec![0u8; chunk];
    let mut total = 0;
    while total < want {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
        if !between.is_zero() {
            std::thread::sleep(between);
        }
    }
    let _ = stream.write_all(b"done");
    total
}

/// The rest of a forced write waits in a full socket (no longer held); a small send then must
/// not hold it again: a full socket draining is never held back (before, the room edges left
/// the rest and the send to the delay's timer, or for good).
fn remnant_of_a_full_socket(delay: Duration) {
    use socket2::{Domain, SockAddr, Socket, Type};
    const BIG: usize = 256 * 1024;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    // Small buffers on both ends: each write moves a few KiB, so the queue passes through
    // every size on its way down.
    client.set_recv_buffer_size(4096).unwrap();
    client
        .connect(&SockAddr::from(listener.local_addr().unwrap()))
        .unwrap();
    let (stream, _) = listener.accept().unwrap();
    socket2::SockRef::from(&stream)
        .set_send_buffer_size(4096)
        .unwrap();
    let client: std::net::TcpStream = client.into();
    let peer = std::thread::spawn(move || {
        reading_peer(
            client,
            BIG + 1,
            Duration::from_millis(200),
            1024,
            Duration::from_millis(1),
        )
    });
    let mut s = net_schedule();
    s.spawn(move |h| {
        let options = ConnOptions::new()
            .with_framing(Framing::Raw)
            .with_send_limit(1024 * 1024)
            .with_flush_delay(delay);
        let conn = h.adopt(stream, options).unwrap();
        // A quiet connection: written at once, more than the socket takes.
        h.send(&conn, &vec![b'z'; BIG]).unwrap();
        loop {
            let q = conn.queued();
            assert!(q > 0, "the queue emptied before the window was seen");
            if q < 16 * 1024 {
                break;
            }
            h.yield_now();
        }
        // A small send while the socket drains the rest.
        h.send(&conn, b"!").unwrap();
        assert_eq!(h.receive(&conn).unwrap(), b"done");
    })
    .unwrap();
    run_all(&mut s, 20);
    assert_eq!(peer.join().unwrap(), BIG + 1);
}

#[test]
fn a_small_send_does_not_hold_back_the_rest_of_a_full_socket() {
    remnant_of_a_full_socket(FOREVER);
}

#[test]
fn a_small_send_does_not_hold_back_the_rest_of_a_full_socket_for_good() {
    remnant_of_a_full_socket(Duration::MAX);
}

/// Sends `first` (written), then `held` bytes (held by the delay), runs `then`; the peer must
/// get everything.
fn held_then(
    delay: Duration,
    held: usize,
    then: impl FnOnce(&fibra::Handle, &fibra::net::Conn) + 'static,
    extra: usize,
) {
    let mut s = net_schedule();
    let (tx, rx) = std::sync::mpsc::channel();
    s.spawn(move |h| {
        let conn = ConnOptions::new()
            .with_framing(Framing::Raw)
            .with_flush_delay(delay);
        let listener = h
            .listen_with("127.0.0.1:0", ListenOptions::new().with_conn(conn))
            .unwrap();
        tx.send(listener.local_addr()).unwrap();
        let (conn, _) = h.accept(&listener).unwrap();
        h.send(&conn, b"first").unwrap();
        h.yield_now();
        h.send(&conn, &vec![b'x'; held]).unwrap();
        h.yield_now();
        then(h, &conn);
        assert_eq!(h.receive(&conn).unwrap(), b"done");
    })
    .unwrap();
    s.tick().unwrap();
    let addr = rx.recv().unwrap();
    let want = 5 + held + extra;
    let peer = std::thread::spawn(move || {
        let stream = std::net::TcpStream::connect(addr).unwrap();
        reading_peer(stream, want, Duration::ZERO, 64 * 1024, Duration::ZERO)
    });
    run_all(&mut s, 10);
    assert_eq!(peer.join().unwrap(), want);
}

/// Held output and a send limit lowered under it: the output is no longer small for the
/// limit and goes, so the next send's wait for room (`Drain`) ends (before, it waited for
/// the delay's timer, or for good).
#[test]
fn a_send_limit_lowered_under_held_output_does_not_hang_the_next_send() {
    for delay in [FOREVER, Duration::MAX] {
        held_then(
            delay,
            1000,
            |h, conn| {
                conn.set_send_limit(500);
                h.send(conn, b"y").unwrap();
                // "y" itself is held by the delay, as it should be.
                h.flush(conn).unwrap();
            },
            1,
        );
    }
}

/// The delay turned off on a connection whose output is held: the held output goes (before,
/// it waited for the old delay, or for good under a delay past the clock's reach).
#[test]
fn turning_the_delay_off_releases_held_output() {
    for delay in [FOREVER, Duration::MAX] {
        held_then(
            delay,
            100,
            |_, conn| conn.set_flush_delay(Duration::ZERO),
            0,
        );
    }
}

/// A shorter delay set on a connection whose output is held: the held output waits no longer
/// than the new delay (before, it waited for the old one).
#[test]
fn a_shorter_delay_shortens_the_hold() {
    for delay in [FOREVER, Duration::MAX] {
        held_then(
            delay,
            100,
            |_, conn| conn.set_flush_delay(Duration::from_millis(20)),
            0,
        );
    }
}

/// Output held when the peer speaks goes with the answer: the peer spoke since the last
/// write, so the answer waits not at all, nor what was held before it (before, both waited
/// for the delay's timer).
#[test]
fn an_answer_takes_the_held_output_with_it() {
    let mut s = net_schedule();
    s.spawn(|h| {
        let listener = listen_with_delay(h, FOREVER);
        let client = peer(listener.local_addr(), |stream| {
            let mut writer = stream.try_clone().unwrap();
            let mut reader = BufReader::new(stream);
            let mut got = Vec::new();
            for _ in 0..3 {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                got.push(line);
                if got.len() == 1 {
                    writer.write_all(b"ping\n").unwrap();
                }
            }
            writer.write_all(b"done\n").unwrap();
            got
        });
        let (conn, _) = h.accept(&listener).unwrap();
        write_first(h, &conn);
        // Within the delay: held.
        h.send_frame(&conn, b"news").unwrap();
        assert_eq!(h.receive(&conn).unwrap(), b"ping");
        h.send_frame(&conn, b"pong").unwrap();
        assert_eq!(h.receive(&conn).unwrap(), b"done");
        assert_eq!(client.join().unwrap(), ["first\n", "news\n", "pong\n"]);
    })
    .unwrap();
    run_all(&mut s, 20);
}

/// A room (a `Group`) whose members all talk, under a delay that does not end during the
/// test: a member's held output is not released by a room's batch, though the member spoke
/// since its last write (only a direct send, an answer, does). Before, every line a member
/// said got it a write of its own: the delay's batching undone for talkers.
#[test]
fn a_talking_members_room_output_stays_held() {
    const MEMBERS: usize = 4;
    const LINES: usize = 50;
    let mut s = net_schedule();
    let said = std::rc::Rc::new(std::cell::Cell::new(0));
    let welcomed = std::rc::Rc::new(std::cell::Cell::new(false));
    let (counted, all_held) = (said.clone(), welcomed.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    s.spawn(move |h| {
        let listener = listen_with_delay(h, FOREVER);
        tx.send(listener.local_addr()).unwrap();
        let room = fibra::net::Group::new();
        let mut members = Vec::new();
        for _ in 0..MEMBERS {
            let (conn, _) = h.accept(&listener).unwrap();
            room.add(&conn).unwrap();
            members.push(conn);
        }
        for conn in &members {
            write_first(h, conn);
        }
        // Within the delay of each member's last write: held, every member.
        room.send_frame(b"welcome").unwrap();
        h.yield_now();
        all_held.set(true);
        for conn in members {
            let (room, said) = (room.clone(), counted.clone());
            h.spawn_detached(move |h| loop {
                let line = h.receive(&conn).unwrap();
                if line == b"bye" {
                    h.flush(&conn).unwrap();
                    h.close(&conn).unwrap();
                    return;
                }
                room.send_frame(&line).unwrap();
                said.set(said.get() + 1);
            })
            .unwrap();
        }
    })
    .unwrap();
    s.tick().unwrap();
    let addr = rx.recv().unwrap();
    let (mut talk, mut bye) = (Vec::new(), Vec::new());
    let clients: Vec<_> = (0..MEMBERS)
        .map(|i| {
            let (talk_tx, talk_rx) = std::sync::mpsc::channel::<()>();
            let (bye_tx, bye_rx) = std::sync::mpsc::channel::<()>();
            talk.push(talk_tx);
            bye.push(bye_tx);
            peer(addr, move |mut stream| {
                talk_rx.recv().unwrap();
                for k in 0..LINES {
                    stream.write_all(format!("{i} {k}\n").as_bytes()).unwrap();
                    std::thread::sleep(Duration::from_micros(200));
                }
                bye_rx.recv().unwrap();
                stream.write_all(b"bye\n").unwrap();
                let mut all = String::new();
                stream.read_to_string(&mut all).unwrap();
                all.lines().count()
            })
        })
        .collect();
    util::run_until(&mut s, "every member held", || welcomed.get());
    let before = net_stats(&s).writes;
    for t in talk {
        t.send(()).unwrap();
    }
    util::run_until(&mut s, "the lines said", || said.get() == MEMBERS * LINES);
    let writes = net_stats(&s).writes - before;
    assert_eq!(
        writes,
        0,
        "{writes} writes for {} lines said in a room of {MEMBERS}, all held",
        MEMBERS * LINES
    );
    for b in bye {
        b.send(()).unwrap();
    }
    run_all(&mut s, 20);
    for client in clients {
        // first, welcome, and every line said.
        assert_eq!(client.join().unwrap(), 2 + MEMBERS * LINES);
    }
}
