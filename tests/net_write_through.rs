//! `ConnOptions::with_write_through`: a send of bytes as they are goes to the socket at once
//! when nothing is queued before it; what the socket does not take is queued as without the
//! option. Every byte arrives, in order, whether the socket takes all, part or nothing, and a
//! send to a peer that left fails as a queued one does.

mod util;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use fibra::net::{Conn, ConnOptions, Framing, Group, ListenOptions, Lost, NetError, NetExt};
use fibra::tasks::TasksExt;
use fibra::Handle;
use util::{net_schedule, peer, run_all};

fn options(write_through: bool) -> ListenOptions {
    ListenOptions::new().with_conn(
        ConnOptions::new()
            .with_framing(Framing::Raw)
            .with_write_through(write_through),
    )
}

/// A schedule whose tasklet listens on a free port of 127.0.0.1 with `options`, accepts one
/// connection and runs `body` on it; the schedule (ticked once) and the address to connect to.
fn serve(
    options: ListenOptions,
    body: impl FnOnce(&Handle, Conn) + 'static,
) -> (util::TestSchedule, SocketAddr) {
    let mut s = net_schedule();
    let addr = Rc::new(RefCell::new(None));
    let addr_out = addr.clone();
    s.spawn(move |h| {
        let listener = h.listen_with("127.0.0.1:0", options).unwrap();
        *addr_out.borrow_mut() = Some(listener.local_addr());
        let (conn, _) = h.accept(&listener).unwrap();
        body(h, conn);
    })
    .unwrap();
    s.tick().unwrap();
    let addr = addr.borrow().expect("listening after one tick");
    (s, addr)
}

/// 16 MiB in pieces of 1 byte to ~100 KiB: more than loopback's socket buffers hold, so the
/// sends meet a full socket, a short write and an empty output again, many times.
fn pieces() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let (mut total, mut size, mut k) = (0usize, 1usize, 0u32);
    while total < 16 * 1024 * 1024 {
        out.push((0..size).map(|i| (i as u32 * 31 + k) as u8).collect());
        total += size;
        size = (size * 7 + 13) % (100 * 1024) + 1;
        k += 1;
    }
    out
}

/// The server sends every piece, then closes; the client reads until the end, slowly at
/// first (the socket fills), and gives back what it read.
fn sent_and_read(write_through: bool) -> Vec<u8> {
    let (mut s, addr) = serve(options(write_through), move |h, conn| {
        for piece in pieces() {
            h.send(&conn, &piece).unwrap();
        }
        h.close(&conn).unwrap();
    });
    let client = peer(addr, |mut stream| {
        // Let the server's sends fill the socket first.
        std::thread::sleep(Duration::from_millis(200));
        let mut got = Vec::new();
        let mut buf = vec![0u8; 7 * 1024];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => return got,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => panic!("read: {e}"),
            }
        }
    });
    run_all(&mut s, 30);
    client.join().unwrap()
}

#[test]
fn every_byte_arrives_in_order_through_full_sockets_and_short_writes() {
    let want = pieces().concat();
    let got = sent_and_read(true);
    assert_eq!(got.len(), want.len());
    assert!(got == want, "the bytes arrived out of order");
}

#[test]
fn the_same_bytes_arrive_as_without_it() {
    assert!(sent_and_read(true) == sent_and_read(false));
}

/// An echo written through: each answer is the request, a thousand times, one at a time.
#[test]
fn an_echo_written_through_answers_every_request() {
    let (mut s, addr) = serve(options(true), move |h, conn| {
        let mut buf = Vec::new();
        while h.receive_into(&conn, &mut buf).is_ok() {
            h.send(&conn, &buf).unwrap();
        }
    });
    let client = peer(addr, |mut stream| {
        for i in 0..1000u32 {
            let request = format!("request {i} {}", "x".repeat(i as usize % 97));
            stream.write_all(request.as_bytes()).unwrap();
            let mut answer = vec![0u8; request.len()];
            stream.read_exact(&mut answer).unwrap();
            assert_eq!(answer, request.as_bytes(), "answer {i}");
        }
    });
    run_all(&mut s, 30);
    client.join().unwrap();
}

/// The peer resets the connection; the server goes on sending: each send is written through
/// (the output is empty) until one fails, and from then on sends fail with the loss, as
/// queued sends do. The tasklet ends; nothing hangs or panics.
fn sends_after_a_reset(write_through: bool) -> NetError {
    let failed = Rc::new(RefCell::new(None));
    let failed_out = failed.clone();
    let (mut s, addr) = serve(options(write_through), move |h, conn| {
        let mut buf = Vec::new();
        // The peer's one byte, then its reset.
        h.receive_into(&conn, &mut buf).unwrap();
        for _ in 0..10_000 {
            h.sleep(Duration::from_millis(1));
            if let Err(e) = h.send(&conn, b"still there?") {
                *failed_out.borrow_mut() = Some(e);
                return;
            }
        }
    });
    let client = peer(addr, |mut stream| {
        stream.write_all(b"!").unwrap();
        // SO_LINGER 0: the close sends a reset.
        socket2::SockRef::from(&stream)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
    });
    client.join().unwrap();
    run_all(&mut s, 30);
    failed.take().expect("a send failed after the reset")
}

#[test]
fn a_send_to_a_peer_that_reset_fails_as_a_queued_send_does() {
    let through = sends_after_a_reset(true);
    let queued = sends_after_a_reset(false);
    assert!(matches!(through, NetError::Lost(_)), "{through:?}");
    assert_eq!(
        std::mem::discriminant(&through),
        std::mem::discriminant(&queued)
    );
}

/// Framed sends and a group's bytes always go through the output buffer: a send as-is after
/// one of them in the same round must wait behind it, not overtake it through the socket.
#[test]
fn a_send_after_a_framed_or_group_one_waits_behind_it() {
    let lines = ConnOptions::new()
        .with_framing(Framing::Lines)
        .with_write_through(true);
    let (mut s, addr) = serve(ListenOptions::new().with_conn(lines), move |h, conn| {
        let room = Group::new();
        room.add(&conn).unwrap();
        for i in 0..100 {
            h.send_line(&conn, &format!("framed {i}")).unwrap();
            h.send(&conn, format!("as is {i}\n").as_bytes()).unwrap();
            room.send(format!("to the group {i}\n").as_bytes()).unwrap();
            h.send(&conn, format!("as is after the group {i}\n").as_bytes())
                .unwrap();
        }
        h.close(&conn).unwrap();
    });
    let client = peer(addr, |mut stream| {
        let mut got = String::new();
        stream.read_to_string(&mut got).unwrap();
        got
    });
    run_all(&mut s, 30);
    let want: String = (0..100)
        .map(|i| format!("framed {i}\nas is {i}\nto the group {i}\nas is after the group {i}\n"))
        .collect();
    assert_eq!(client.join().unwrap(), want);
}

/// What a tasklet learns when the peer resets the connection and its next send is written
/// through: that send, then a receive in the same run, then `on_lost_connection`.
type AfterReset = (Result<(), NetError>, Result<(), NetError>, Lost);

/// The peer sends a byte, then resets (once the server read the byte); the server, once the
/// reset has arrived, sends, receives and asks why the connection was lost.
fn send_then_receive_after_a_reset(write_through: bool) -> AfterReset {
    let seen = Rc::new(RefCell::new(None));
    let seen_out = seen.clone();
    let (read_tx, read_rx) = std::sync::mpsc::channel::<()>();
    let (mut s, addr) = serve(options(write_through), move |h, conn| {
        let mut buf = Vec::new();
        h.receive_into(&conn, &mut buf).unwrap();
        read_tx.send(()).unwrap();
        // Time for the reset to arrive (nobody reads: the socket keeps its error).
        h.sleep(Duration::from_millis(300));
        let sent = h.send(&conn, b"anyone there?");
        let received = h.receive_into(&conn, &mut buf);
        let lost = h.on_lost_connection(&conn);
        *seen_out.borrow_mut() = Some((sent, received, lost));
    });
    let client = peer(addr, move |mut stream| {
        stream.write_all(b"!").unwrap();
        read_rx.recv().unwrap();
        // SO_LINGER 0: the close sends a reset.
        socket2::SockRef::from(&stream)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
    });
    run_all(&mut s, 30);
    client.join().unwrap();
    seen.take().expect("the server tasklet finished")
}

/// A send written through to a socket the peer reset must not swallow the reset: the
/// receive that follows (and `on_lost_connection`) says `Reset`, as without the option,
/// not `Eof` (a peer that closed cleanly).
#[test]
fn a_reset_met_by_a_send_written_through_is_still_a_reset() {
    for write_through in [false, true] {
        let (_, received, lost) = send_then_receive_after_a_reset(write_through);
        assert!(
            matches!(received, Err(NetError::Lost(Lost::Reset))),
            "write_through {write_through}: the receive after the reset gave {received:?}"
        );
        assert_eq!(lost, Lost::Reset, "write_through {write_through}");
    }
}

/// What the peer reads when the server aborts the connection (`Conn::abort`, which takes
/// effect at the end of the tick and drops the queued output) and then sends to it in the
/// same tick: the bytes, then the reset.
fn read_after_an_abort_then_a_send(write_through: bool) -> Vec<u8> {
    let (mut s, addr) = serve(options(write_through), move |h, conn| {
        let mut buf = Vec::new();
        h.receive_into(&conn, &mut buf).unwrap();
        conn.abort();
        // Both queue (the abort has not happened yet); the abort drops them.
        conn.try_send(b"after the abort").unwrap();
        h.send(&conn, b", and again").unwrap();
        assert_eq!(h.on_lost_connection(&conn), Lost::Aborted);
    });
    let client = peer(addr, |mut stream| {
        stream.write_all(b"!").unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return got,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    });
    run_all(&mut s, 30);
    client.join().unwrap()
}

/// `Conn::abort` drops the output queued before the end of the tick: a send after it in
/// the same tick must not reach the peer by being written through.
#[test]
fn a_send_after_an_abort_in_the_same_tick_is_not_written_through() {
    for write_through in [false, true] {
        let got = read_after_an_abort_then_a_send(write_through);
        assert!(
            got.is_empty(),
            "write_through {write_through}: the peer read {:?} after the abort",
            String::from_utf8_lossy(&got)
        );
    }
}

/// The server's connection gives up with `ETIMEDOUT` (`TCP_USER_TIMEOUT`: a peer that
/// advertises no room for a while, with bytes waiting in the kernel), its output empty; the
/// tasklet then sends, written through, and asks why the connection was lost.
#[cfg(target_os = "linux")]
fn lost_after_a_user_timeout(write_through: bool) -> Lost {
    use socket2::{Domain, SockAddr, Socket, Type};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    // A tiny window, never read: the server's bytes wait in its kernel, probing.
    client.set_recv_buffer_size(1).unwrap();
    client
        .connect(&SockAddr::from(listener.local_addr().unwrap()))
        .unwrap();
    let (stream, _) = listener.accept().unwrap();
    socket2::SockRef::from(&stream)
        .set_tcp_user_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut s = net_schedule();
    let lost = Rc::new(RefCell::new(None));
    let lost_out = lost.clone();
    s.spawn(move |h| {
        let options = ConnOptions::new()
            .with_framing(Framing::Raw)
            .with_write_through(write_through);
        let conn = h.adopt(stream, options).unwrap();
        // Taken whole by the kernel (its send buffer), more than the peer's window.
        h.send(&conn, &[7u8; 8 * 1024]).unwrap();
        h.flush(&conn).unwrap();
        assert_eq!(conn.queued(), 0);
        // The user timeout ends the connection meanwhile; nobody reads or writes it.
        h.sleep(Duration::from_millis(2500));
        let _ = h.send(&conn, b"still there?");
        *lost_out.borrow_mut() = Some(h.on_lost_connection(&conn));
    })
    .unwrap();
    run_all(&mut s, 30);
    drop(client);
    lost.take().expect("the tasklet finished")
}

/// A timeout met by a send written through is still a timeout, not a reset.
#[cfg(target_os = "linux")]
#[test]
fn a_timeout_met_by_a_send_written_through_is_still_a_timeout() {
    for write_through in [false, true] {
        let lost = lost_after_a_user_timeout(write_through);
        assert_eq!(lost, Lost::TimedOut, "write_through {write_through}");
    }
}
