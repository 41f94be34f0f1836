//! Network faults over real sockets on 127.0.0.1: frame limits, peer FIN/RST/half-close,
//! kills, slow readers, timeouts, closes, and many connections.

mod util;

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fibra::net::{Conn, ConnOptions, ListenOptions, Lost, NetError, NetExt};
use fibra::rt::{Handle, Schedule, SpawnOptions};
use fibra::tasks::TasksExt;
use util::{net_schedule, net_stats, peer};

thread_local! {
    /// The message of a handler's panic (its assertion failed), for `run_all` to report.
    static HANDLER_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs the schedule to the end (failing after `secs`), then fails the test if a handler
/// spawned by `serve` panicked: an assertion inside a tasklet counts.
fn run_all(s: &mut Schedule, secs: u64) {
    util::run_all(s, secs);
    if let Some(message) = HANDLER_PANIC.with(|p| p.borrow_mut().take()) {
        panic!("a connection handler panicked: {message}");
    }
}

/// Spawns a tasklet that listens with `options`, accepts `n` connections and runs
/// `handler` for each in its own tasklet. Returns the address, after one tick.
fn serve<F>(s: &mut Schedule, options: ListenOptions, n: usize, handler: F) -> SocketAddr
where
    F: Fn(&Handle, Conn) + Clone + 'static,
{
    let addr = Rc::new(Cell::new(None));
    let addr_out = addr.clone();
    s.spawn_named("acceptor", move |h| {
        let listener = h.listen_with("127.0.0.1:0", options).unwrap();
        addr_out.set(Some(listener.local_addr()));
        for _ in 0..n {
            let (conn, _) = h.accept(&listener).unwrap();
            let handler = handler.clone();
            h.spawn_detached_with(SpawnOptions::new().name("conn"), move |h| {
                let ran =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(h, conn)));
                if let Err(payload) = ran {
                    // A kill unwinds too, with a payload of the runtime's: not a failure.
                    let message = payload
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()));
                    if let Some(message) = message {
                        HANDLER_PANIC.with(|p| *p.borrow_mut() = Some(message));
                    }
                    std::panic::resume_unwind(payload);
                }
            })
            .unwrap();
        }
    })
    .unwrap();
    s.tick().unwrap();
    addr.get().expect("listening after one tick")
}

/// Reads until the stream ends: `"eof"`, or the error's kind (`"ConnectionReset"`).
fn how_it_ends(stream: &mut TcpStream) -> String {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return "eof".to_owned(),
            Ok(_) => continue,
            Err(e) => return format!("{:?}", e.kind()),
        }
    }
}

/// Every frame received, then the error that ended the stream (as text).
fn receive_to_the_end(h: &Handle, conn: &Conn) -> Vec<Result<Vec<u8>, String>> {
    let mut got = Vec::new();
    loop {
        let frame = h.receive(conn).map_err(|e| e.to_string());
        let done = frame.is_err();
        got.push(frame);
        if done {
            return got;
        }
    }
}

fn read_all(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    stream.read_to_end(&mut all).unwrap();
    all
}

#[test]
fn too_long_frame_loses_that_connection_only() {
    let mut s = net_schedule();
    let errors = Rc::new(RefCell::new(Vec::new()));
    let out = errors.clone();
    let options = ListenOptions::new().with_conn(ConnOptions::new().with_max_frame(16));
    let addr = serve(&mut s, options, 2, move |h, conn| loop {
        match h.receive(&conn) {
            Ok(line) => h.send_frame(&conn, &line).unwrap(),
            Err(e) => {
                let lost = conn.lost();
                out.borrow_mut().push((format!("{e}"), lost));
                // Output still flows after a frame error: explain, then close.
                h.send_and_close(&conn, b"line too long\n").unwrap();
                return;
            }
        }
    });
    let flooder = peer(addr, |mut stream| {
        stream.write_all(&[b'x'; 100]).unwrap();
        read_all(&mut stream)
    });
    let good = peer(addr, |mut stream| {
        std::thread::sleep(Duration::from_millis(50));
        stream.write_all(b"exactly sixteen!\nshort\n").unwrap();
        let mut buf = [0u8; 23];
        stream.read_exact(&mut buf).unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let rest = read_all(&mut stream);
        (buf.to_vec(), rest)
    });
    run_all(&mut s, 10);
    assert_eq!(flooder.join().unwrap(), b"line too long\n");
    let (echoed, rest) = good.join().unwrap();
    assert_eq!(echoed, b"exactly sixteen!\nshort\n");
    assert_eq!(
        rest, b"line too long\n",
        "the good client's EOF ends it normally"
    );
    let errors = errors.borrow();
    assert!(errors
        .iter()
        .any(|(msg, lost)| msg.contains("limit of 16 bytes")
            && *lost == Some(Lost::TooLong { limit: 16 })));
    assert!(errors.iter().any(|(_, lost)| *lost == Some(Lost::Eof)));
    assert_eq!(net_stats(&s).sockets, 0);
}

#[derive(Clone, Copy, Debug)]
enum PeerEnd {
    Fin,
    Reset,
    HalfClose,
}

/// Two watchers and a receiver on one connection; the peer sends a line, then ends `how`.
fn loss_is_reported_once(how: PeerEnd) {
    let mut s = net_schedule();
    let fired = Rc::new(RefCell::new(Vec::new()));
    let received = Rc::new(RefCell::new(Vec::new()));
    let (f, r) = (fired.clone(), received.clone());
    let addr = serve(&mut s, ListenOptions::new(), 1, move |h, conn| {
        for _ in 0..2 {
            let (conn, f) = (conn.clone(), f.clone());
            h.spawn_detached(move |h| {
                let lost = h.on_lost_connection(&conn);
                f.borrow_mut().push(lost);
            })
            .unwrap();
        }
        r.borrow_mut().extend(receive_to_the_end(h, &conn));
        // Watching a lost connection returns at once.
        let lost = h.on_lost_connection(&conn);
        f.borrow_mut().push(lost);
        if matches!(how, PeerEnd::HalfClose) {
            h.send_and_close(&conn, b"bye\n").unwrap();
        }
    });
    let client = peer(addr, move |mut stream| {
        stream.write_all(b"last line\n").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        match how {
            PeerEnd::Fin => Vec::new(),
            PeerEnd::Reset => {
                socket2::SockRef::from(&stream)
                    .set_linger(Some(Duration::ZERO))
                    .unwrap();
                Vec::new()
            }
            PeerEnd::HalfClose => {
                stream.shutdown(std::net::Shutdown::Write).unwrap();
                read_all(&mut stream)
            }
        }
    });
    run_all(&mut s, 10);
    let reply = client.join().unwrap();
    let fired = fired.borrow();
    let want = match how {
        PeerEnd::Fin | PeerEnd::HalfClose => Lost::Eof,
        PeerEnd::Reset => Lost::Reset,
    };
    assert_eq!(*fired, vec![want; 3], "{how:?}: each watcher fires once");
    let received = received.borrow();
    assert_eq!(received.len(), 2, "{how:?}: {received:?}");
    assert_eq!(received[0], Ok(b"last line".to_vec()), "{how:?}");
    assert!(received[1].is_err(), "{how:?}: {received:?}");
    if matches!(how, PeerEnd::HalfClose) {
        assert_eq!(reply, b"bye\n", "output still flows after a half-close");
    }
    assert_eq!(net_stats(&s).sockets, 0);
    assert_eq!(net_stats(&s).waiting, 0);
}

#[test]
fn peer_fin_is_reported_once() {
    loss_is_reported_once(PeerEnd::Fin);
}

#[test]
fn peer_reset_is_reported_once() {
    loss_is_reported_once(PeerEnd::Reset);
}

#[test]
fn half_close_is_reported_once_and_output_still_flows() {
    loss_is_reported_once(PeerEnd::HalfClose);
}

/// The bytes and the FIN are both in before the server reads: one edge for both. The read
/// of the bytes is short, and the FIN must still be seen (epoll flags it with `EPOLLRDHUP` in
/// that edge; the portable backend reads until `WouldBlock`).
#[test]
fn fin_that_came_with_the_bytes_is_seen() {
    let mut s = net_schedule();
    let received = Rc::new(RefCell::new(Vec::new()));
    let r = received.clone();
    let (sent_tx, sent_rx) = std::sync::mpsc::channel::<()>();
    let sent_rx = Rc::new(sent_rx);
    let addr = serve(&mut s, ListenOptions::new(), 1, move |h, conn| {
        // Wait until the peer has written and shut down, so both are queued.
        while sent_rx.try_recv().is_err() {
            h.sleep(Duration::from_millis(5));
        }
        h.sleep(Duration::from_millis(20));
        r.borrow_mut().extend(receive_to_the_end(h, &conn));
    });
    let client = peer(addr, move |mut stream| {
        stream.write_all(b"one\ntwo\n").unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        sent_tx.send(()).unwrap();
        read_all(&mut stream)
    });
    run_all(&mut s, 10);
    assert_eq!(client.join().unwrap(), b"");
    let received = received.borrow();
    assert_eq!(received.len(), 3, "{received:?}");
    assert_eq!(received[0], Ok(b"one".to_vec()));
    assert_eq!(received[1], Ok(b"two".to_vec()));
    assert!(received[2].is_err(), "{received:?}");
    assert_eq!(net_stats(&s).sockets, 0);
}

/// Request and response, one message at a time: on the epoll backend a short read drains
/// the socket (EPOLLRDHUP would flag a FIN in the same edge), so each message costs one read;
/// the portable backend reads until `EAGAIN`, two. The end of the stream is still seen.
#[test]
fn a_message_at_a_time_costs_one_read_on_epoll() {
    const MESSAGES: u64 = 50;
    let mut s = net_schedule();
    let addr = serve(&mut s, ListenOptions::new(), 1, |h, conn| {
        while let Ok(line) = h.receive(&conn) {
            h.send_frame(&conn, &line).unwrap();
        }
    });
    let client = peer(addr, |mut stream| {
        let mut echo = [0u8; 4];
        for _ in 0..MESSAGES {
            stream.write_all(b"msg\n").unwrap();
            stream.read_exact(&mut echo).unwrap();
            assert_eq!(&echo, b"msg\n");
        }
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        read_all(&mut stream)
    });
    run_all(&mut s, 10);
    assert_eq!(
        client.join().unwrap(),
        b"",
        "the server saw the end and closed"
    );
    let reads = net_stats(&s).reads;
    eprintln!("reads: {reads}");
    if cfg!(all(target_os = "linux", not(feature = "portable-poller"))) {
        // One per message, plus the one that reads the end (and a spare for a spurious edge).
        assert!(
            reads <= MESSAGES + 2,
            "{reads} reads for {MESSAGES} messages"
        );
    } else {
        assert!(reads > MESSAGES, "{reads} reads for {MESSAGES} messages");
    }
}

#[test]
fn killed_receiver_leaves_no_registration() {
    let mut s = net_schedule();
    let handlers = Rc::new(RefCell::new(Vec::new()));
    let ids = handlers.clone();
    let addr = serve(&mut s, ListenOptions::new(), 2, move |h, conn| {
        ids.borrow_mut().push(h.id());
        while let Ok(line) = h.receive(&conn) {
            h.send_frame(&conn, &line).unwrap();
        }
    });
    let first = peer(addr, |mut stream| {
        stream.write_all(b"one\n").unwrap();
        let mut echo = [0u8; 4];
        stream.read_exact(&mut echo).unwrap();
        // The server kills its tasklet now: the connection must close.
        (echo, read_all(&mut stream))
    });
    // Run until the first handler is parked in receive after its echo.
    for _ in 0..1000 {
        s.run_for(Duration::from_millis(5)).unwrap();
        if first.is_finished() || net_stats(&s).writes > 0 {
            break;
        }
    }
    let victim = handlers.borrow()[0];
    s.run_for(Duration::from_millis(20)).unwrap();
    assert!(s.kill(victim));
    s.run_for(Duration::from_millis(20)).unwrap();
    let (echo, rest) = first.join().unwrap();
    assert_eq!(&echo, b"one\n");
    assert!(rest.is_empty(), "the killed tasklet's connection closes");
    let stats = net_stats(&s);
    assert_eq!(
        (stats.connections, stats.sockets, stats.waiting),
        (0, 1, 1),
        "only the listener and its acceptor remain"
    );
    // A new connection reuses the slot, and nothing of the old one leaks into it.
    let second = peer(addr, |mut stream| {
        stream.write_all(b"two\n").unwrap();
        let mut echo = [0u8; 4];
        stream.read_exact(&mut echo).unwrap();
        echo
    });
    for _ in 0..1000 {
        s.run_for(Duration::from_millis(5)).unwrap();
        if second.is_finished() {
            break;
        }
    }
    assert_eq!(&second.join().unwrap(), b"two\n");
    run_all(&mut s, 10);
}

#[test]
fn slow_reader_parks_the_sender_and_bounds_memory() {
    const LIMIT: usize = 64 * 1024;
    const CHUNK: usize = 1024;
    const TOTAL: usize = 8 * 1024 * 1024;
    let mut s = net_schedule();
    let start_reading = Arc::new(AtomicBool::new(false));
    let checks = Rc::new(RefCell::new(Vec::new()));
    let out = checks.clone();
    let go = start_reading.clone();
    let options = ListenOptions::new().with_conn(ConnOptions::new().with_send_limit(LIMIT));
    let addr = serve(&mut s, options, 1, move |h, conn| {
        let sent = Rc::new(Cell::new(0usize));
        let (progress, out, go, checked) = (sent.clone(), out.clone(), go.clone(), conn.clone());
        h.spawn_detached(move |h| {
            h.sleep(Duration::from_millis(300));
            let before = progress.get();
            h.sleep(Duration::from_millis(100));
            let queued = checked.queued();
            // The kernel may have taken more since the sender parked (its buffers grow):
            // fill the output up to its limit, a byte at a time, until try_send says Full.
            let mut extra = 0;
            let refused = loop {
                match checked.try_send(b"x") {
                    Ok(()) => extra += 1,
                    Err(e) => break format!("{e:?}"),
                }
            };
            out.borrow_mut()
                .push((queued, before, progress.get(), refused, extra));
            go.store(true, Ordering::SeqCst);
        })
        .unwrap();
        let chunk = vec![7u8; CHUNK];
        while sent.get() < TOTAL {
            h.send(&conn, &chunk).unwrap();
            sent.set(sent.get() + CHUNK);
        }
        h.flush(&conn).unwrap();
    });
    let go = start_reading.clone();
    let client = peer(addr, move |mut stream| {
        while !go.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        read_all(&mut stream).len()
    });
    run_all(&mut s, 30);
    let checks = checks.borrow();
    let (queued, before, after, try_send, extra) = &checks[0];
    assert_eq!(client.join().unwrap(), TOTAL + extra, "every byte arrives");
    assert!(
        *extra <= LIMIT,
        "try_send stops at the limit: {extra} bytes taken"
    );
    assert!(
        *queued <= LIMIT + CHUNK,
        "output bounded: {queued} bytes queued"
    );
    assert_eq!(
        before, after,
        "the sender is parked while the peer does not read"
    );
    assert!(*after < TOTAL);
    assert!(
        try_send.contains("Full"),
        "try_send reports full: {try_send}"
    );
}

#[test]
fn send_and_close_delivers_everything_before_fin() {
    const TOTAL: usize = 2 * 1024 * 1024 + 17;
    let mut s = net_schedule();
    let addr = serve(&mut s, ListenOptions::new(), 1, |h, conn| {
        let data: Vec<u8> = (0..TOTAL).map(|i| (i % 251) as u8).collect();
        h.send_and_close(&conn, &data).unwrap();
    });
    let client = peer(addr, |mut stream| {
        std::thread::sleep(Duration::from_millis(100));
        read_all(&mut stream)
    });
    run_all(&mut s, 20);
    let got = client.join().unwrap();
    assert_eq!(got.len(), TOTAL);
    assert!(got.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
    assert_eq!(net_stats(&s).sockets, 0);
}

#[test]
fn read_timeout_loses_a_silent_connection_and_allows_goodbye() {
    let mut s = net_schedule();
    let seen = Rc::new(RefCell::new(None));
    let out = seen.clone();
    let options = ListenOptions::new()
        .with_conn(ConnOptions::new().with_read_timeout(Some(Duration::from_millis(150))));
    let addr = serve(&mut s, options, 1, move |h, conn| {
        let first = h.receive(&conn).map(|l| String::from_utf8(l).unwrap());
        let second = h.receive(&conn);
        *out.borrow_mut() = Some((first, format!("{second:?}"), conn.lost()));
        h.send_and_close(&conn, b"timed out\n").unwrap();
    });
    let client = peer(addr, |mut stream| {
        // Activity keeps it alive past the timeout...
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(100));
            stream.write_all(b"a").unwrap();
        }
        stream.write_all(b"\n").unwrap();
        // ...silence ends it.
        read_all(&mut stream)
    });
    run_all(&mut s, 10);
    assert_eq!(client.join().unwrap(), b"timed out\n");
    let (first, second, lost) = seen.borrow_mut().take().unwrap();
    assert_eq!(first.unwrap(), "aaa");
    assert!(second.contains("TimedOut"), "{second}");
    assert_eq!(lost, Some(Lost::TimedOut));
}

#[test]
fn read_timeout_loses_a_connection_that_is_only_watched_after_a_receive() {
    // A frame received with a short read, then only a watcher: on the `polling` backend
    // (`--features fibra/portable-poller`), which cannot report a drained socket, the read
    // timer took the stale `readable` for bytes waiting and re-armed for ever.
    let mut s = net_schedule();
    let got = Rc::new(RefCell::new(None));
    let out = got.clone();
    s.spawn(move |h| {
        let options = ListenOptions::new()
            .with_conn(ConnOptions::new().with_read_timeout(Some(Duration::from_millis(150))));
        let listener = h.listen_with("127.0.0.1:0", options).unwrap();
        let addr = listener.local_addr();
        let accepting = h.spawn(move |h| h.accept(&listener).unwrap().0).unwrap();
        let client = h.connect(addr).unwrap();
        let server = h.join(accepting).unwrap();
        h.send_line(&client, "one").unwrap();
        assert_eq!(h.receive(&server).unwrap(), b"one");
        *out.borrow_mut() = Some(h.on_lost_connection(&server));
        drop(client);
    })
    .unwrap();
    run_all(&mut s, 10);
    assert_eq!(*got.borrow(), Some(Lost::TimedOut));
}

#[test]
fn local_close_tells_receivers_and_watchers() {
    let mut s = net_schedule();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let out = seen.clone();
    let addr = serve(&mut s, ListenOptions::new(), 1, move |h, conn| {
        let (c, o) = (conn.clone(), out.clone());
        h.spawn_detached(move |h| {
            let lost = h.on_lost_connection(&c);
            o.borrow_mut().push(format!("watcher: {lost:?}"));
        })
        .unwrap();
        let (c, o) = (conn.clone(), out.clone());
        h.spawn_detached(move |h| {
            let got = h.receive(&c).map(|_| ());
            o.borrow_mut().push(format!("receiver: {got:?}"));
        })
        .unwrap();
        h.yield_now();
        h.send(&conn, b"closing\n").unwrap();
        h.close(&conn).unwrap();
        let failed = h.send(&conn, b"x").is_err();
        out.borrow_mut()
            .push(format!("send after close: {failed:?}"));
    });
    let client = peer(addr, |mut stream| read_all(&mut stream));
    run_all(&mut s, 10);
    assert_eq!(client.join().unwrap(), b"closing\n");
    let mut seen = seen.borrow().clone();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            "receiver: Err(Lost(Closed))".to_owned(),
            "send after close: true".to_owned(),
            "watcher: Closed".to_owned(),
        ]
    );
}

#[test]
fn abort_resets_the_peer() {
    let mut s = net_schedule();
    let addr = serve(&mut s, ListenOptions::new(), 1, |h, conn| {
        h.receive(&conn).unwrap();
        h.send(&conn, b"never flushed").unwrap();
        h.abort(&conn);
        assert!(matches!(
            h.send(&conn, b"x"),
            Err(NetError::Lost(Lost::Aborted))
        ));
    });
    let client = peer(addr, |mut stream| {
        stream.write_all(b"go\n").unwrap();
        how_it_ends(&mut stream)
    });
    run_all(&mut s, 10);
    assert_eq!(client.join().unwrap(), "ConnectionReset");
}

/// `Conn::abort` (no handle, as a chat room cutting off a member does) resets at the end
/// of the tick and tells the tasklet parked on the connection.
#[test]
fn abort_without_a_handle_wakes_the_receiver_and_resets_the_peer() {
    let mut s = net_schedule();
    let outcome = Rc::new(Cell::new(None));
    let seen = outcome.clone();
    let addr = serve(&mut s, ListenOptions::new(), 1, move |h, conn| {
        h.receive(&conn).unwrap();
        let other = conn.clone();
        let seen = seen.clone();
        // A second tasklet parks on the connection; this one aborts it, handle-free.
        let receiver = h
            .spawn(move |h| seen.set(Some(h.receive(&other).map(|_| ()))))
            .unwrap();
        h.yield_now();
        conn.try_send(b"dropped by the abort\n").unwrap();
        conn.abort();
        h.join(receiver).unwrap();
        assert_eq!(conn.lost(), Some(Lost::Aborted));
    });
    let client = peer(addr, |mut stream| {
        stream.write_all(b"go\n").unwrap();
        let mut buf = [0u8; 64];
        match stream.read(&mut buf) {
            Ok(0) => "eof".to_owned(),
            Ok(_) => "data".to_owned(),
            Err(e) => format!("{:?}", e.kind()),
        }
    });
    run_all(&mut s, 10);
    assert_eq!(client.join().unwrap(), "ConnectionReset");
    assert!(matches!(
        outcome.take(),
        Some(Err(NetError::Lost(Lost::Aborted)))
    ));
    assert_eq!(net_stats(&s).connections, 0);
}

#[test]
fn sends_during_one_tick_leave_in_one_write() {
    let mut s = net_schedule();
    let addr = serve(&mut s, ListenOptions::new(), 1, |h, conn| {
        h.receive(&conn).unwrap();
        for i in 0..100 {
            conn.try_send(format!("line {i}\n").as_bytes()).unwrap();
        }
        h.flush(&conn).unwrap();
    });
    let client = peer(addr, |mut stream| {
        stream.write_all(b"go\n").unwrap();
        String::from_utf8(read_all(&mut stream)).unwrap()
    });
    run_all(&mut s, 10);
    let text = client.join().unwrap();
    assert_eq!(text.lines().count(), 100);
    assert_eq!(net_stats(&s).writes, 1, "100 sends in one tick, one write");
}

#[test]
fn two_thousand_connections_echo() {
    const CONNS: usize = 2000;
    const LINES: usize = 3;
    // Both ends live in this process: two descriptors per connection.
    let fds = util::raise_fd_limit(2 * CONNS as u64 + 256);
    assert!(
        fds >= 2 * CONNS as u64 + 64,
        "this test needs {} open files; the hard limit allows {fds}",
        2 * CONNS + 64
    );
    let mut s = net_schedule();
    let options = ListenOptions::new().with_backlog(4096);
    let addr = serve(&mut s, options, CONNS, |h, conn| {
        let mut buf = Vec::new();
        while h.receive_into(&conn, &mut buf).is_ok() {
            if h.send_frame(&conn, &buf).is_err() {
                break;
            }
        }
    });
    let ok = Rc::new(Cell::new(0));
    for c in 0..CONNS {
        let ok = ok.clone();
        s.spawn(move |h| {
            let conn = h.connect(addr).unwrap();
            for l in 0..LINES {
                h.send_frame(&conn, format!("client {c} line {l}").as_bytes())
                    .unwrap();
            }
            let mut buf = Vec::new();
            for l in 0..LINES {
                h.receive_into(&conn, &mut buf).unwrap();
                assert_eq!(buf, format!("client {c} line {l}").as_bytes());
            }
            ok.set(ok.get() + 1);
        })
        .unwrap();
    }
    run_all(&mut s, 60);
    assert_eq!(ok.get(), CONNS);
    let stats = net_stats(&s);
    assert_eq!((stats.connections, stats.sockets, stats.waiting), (0, 0, 0));
}

/// The child's side of `accept_backs_off_when_out_of_descriptors`.
fn out_of_descriptors_child() {
    const CLIENTS: usize = 5;
    let mut s = net_schedule();
    let accepted = Rc::new(RefCell::new(Vec::new()));
    let held = accepted.clone();
    let addr = serve(&mut s, ListenOptions::new(), CLIENTS, move |h, conn| {
        held.borrow_mut().push(conn);
        h.park();
    });
    // Connections wait in the backlog, then every free descriptor is taken.
    let clients: Vec<TcpStream> = (0..CLIENTS)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    let mut hogs = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => hogs.push(f),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
                break;
            }
        }
    }
    s.run_for(Duration::from_millis(500)).unwrap();
    let paused = net_stats(&s).accept_pauses;
    assert_eq!(accepted.borrow().len(), 0, "no descriptor, no accept");
    // 50, 100, 200 ms pauses fit in 500 ms: a handful of tries, not a spin.
    assert!((1..=6).contains(&paused), "{paused} pauses in 500 ms");
    drop(hogs);
    for _ in 0..400 {
        s.run_for(Duration::from_millis(5)).unwrap();
        if accepted.borrow().len() == CLIENTS {
            break;
        }
    }
    assert_eq!(
        accepted.borrow().len(),
        CLIENTS,
        "service recovers once descriptors free up"
    );
    drop(clients);
}

#[test]
fn accept_backs_off_when_out_of_descriptors() {
    const CHILD: &str = "FIBRA_NET_FD_CHILD";
    const NAME: &str = "accept_backs_off_when_out_of_descriptors";
    if std::env::var_os(CHILD).is_some() {
        let limit = libc::rlimit {
            rlim_cur: 64,
            rlim_max: 64,
        };
        // SAFETY: setrlimit reads the struct we own; this is a child process of the test.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
        out_of_descriptors_child();
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child failed:\n{text}");
    assert!(text.contains("1 passed"), "the child ran the test:\n{text}");
}

#[test]
fn close_timeout_resets_a_peer_that_never_reads() {
    let mut s = net_schedule();
    let result = Rc::new(RefCell::new(None));
    let out = result.clone();
    let options = ListenOptions::new().with_conn(
        ConnOptions::new()
            .with_send_limit(16 * 1024 * 1024)
            .with_close_timeout(Duration::from_millis(200)),
    );
    let addr = serve(&mut s, options, 1, move |h, conn| {
        h.send(&conn, &vec![1u8; 8 * 1024 * 1024]).unwrap();
        let closed = h.close(&conn);
        *out.borrow_mut() = Some(format!("{closed:?}"));
    });
    let client = peer(addr, |mut stream| {
        std::thread::sleep(Duration::from_millis(600));
        how_it_ends(&mut stream)
    });
    run_all(&mut s, 10);
    assert_eq!(result.borrow().as_deref(), Some("Err(TimedOut)"));
    assert_eq!(client.join().unwrap(), "ConnectionReset");
    assert_eq!(net_stats(&s).sockets, 0);
}

/// The child's side of `a_send_to_a_peer_that_left_fails_without_sigpipe`.
fn send_to_a_gone_peer_child() {
    let mut s = net_schedule();
    let failed = Rc::new(RefCell::new(None));
    let out = failed.clone();
    let addr = serve(&mut s, ListenOptions::new(), 1, move |h, conn| {
        // The peer closes at once: its end comes first.
        assert!(h.receive(&conn).is_err(), "the peer sent nothing");
        // Then writes until the system says the peer is gone (a reset, then `EPIPE`).
        for _ in 0..200 {
            let sent = h.send(&conn, &[7u8; 1024]).and_then(|()| h.flush(&conn));
            if let Err(e) = sent {
                *out.borrow_mut() = Some(e.to_string());
                return;
            }
            h.sleep(Duration::from_millis(5));
        }
    });
    drop(TcpStream::connect(addr).unwrap());
    run_all(&mut s, 10);
    assert!(
        failed.borrow().is_some(),
        "a send to a peer that left failed"
    );
}

/// fibra-net makes its writes itself (`syscall`, on Linux): they must say `MSG_NOSIGNAL`, or a
/// write to a peer that left kills a process that has not ignored `SIGPIPE` (a Rust program
/// ignores it; a host that embeds fibra may not).
#[test]
fn a_send_to_a_peer_that_left_fails_without_sigpipe() {
    const CHILD: &str = "FIBRA_NET_SIGPIPE_CHILD";
    const NAME: &str = "a_send_to_a_peer_that_left_fails_without_sigpipe";
    if std::env::var_os(CHILD).is_some() {
        // SAFETY: `signal` with the default action; this is a child process of the test, and
        // no other thread of it handles signals.
        let previous = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        assert_ne!(previous, libc::SIG_ERR);
        send_to_a_gone_peer_child();
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "child failed ({}):\n{text}",
        out.status
    );
    assert!(text.contains("1 passed"), "the child ran the test:\n{text}");
}
