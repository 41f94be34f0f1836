//! Listen, accept, connect, codecs, and the io adapters, over real sockets on 127.0.0.1.

mod util;

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Read, Write};
use std::rc::Rc;
use std::time::Duration;

use fibra::net::{ConnOptions, Framing, ListenOptions, NetError, NetExt};
use fibra::tasks::TasksExt;
use util::{net_schedule, net_stats, peer, run_all};

#[test]
fn listen_accept_connect_round_trip() {
    let mut s = net_schedule();
    let log = Rc::new(RefCell::new(Vec::new()));
    let out = log.clone();
    s.spawn(move |h| {
        let listener = h.listen("127.0.0.1:0").unwrap();
        let addr = listener.local_addr();
        assert_ne!(addr.port(), 0);
        let server = h
            .spawn(move |h| {
                let (conn, peer) = h.accept(&listener).unwrap();
                assert_eq!(Some(peer), conn.peer_addr());
                let line = h.receive(&conn).unwrap();
                h.send_frame(&conn, &[b"echo: ", &line[..]].concat())
                    .unwrap();
                h.flush(&conn).unwrap();
            })
            .unwrap();
        let client = h.connect(addr).unwrap();
        assert_eq!(client.peer_addr(), Some(addr));
        h.send(&client, b"ping\n").unwrap();
        out.borrow_mut().push(h.receive(&client).unwrap());
        h.join(server).unwrap();
    })
    .unwrap();
    run_all(&mut s, 10);
    assert_eq!(*log.borrow(), vec![b"echo: ping".to_vec()]);
    let stats = net_stats(&s);
    assert_eq!(
        (stats.connections, stats.listeners, stats.sockets),
        (0, 0, 0)
    );
}

#[test]
fn connect_refused_is_its_own_error() {
    // A port that was just free: bind, read the port, close.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut s = net_schedule();
    let got = Rc::new(RefCell::new(None));
    let out = got.clone();
    s.spawn(move |h| {
        *out.borrow_mut() = Some(h.connect(addr).map(|_| ()));
    })
    .unwrap();
    run_all(&mut s, 10);
    let got = got.borrow_mut().take().unwrap();
    match got {
        Err(NetError::Refused { addr: a }) => assert_eq!(a, addr),
        other => panic!("expected Refused, got {other:?}"),
    }
    assert_eq!(net_stats(&s).sockets, 0);
}

#[test]
fn connect_timeout_withdraws_the_socket() {
    // A listener with a backlog of 1 that never accepts: once its queue is full, further
    // SYNs are dropped and connects hang until our timeout.
    let blocker = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    blocker
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    blocker.listen(0).unwrap();
    let addr = blocker.local_addr().unwrap().as_socket().unwrap();
    let mut s = net_schedule();
    let results = Rc::new(RefCell::new(Vec::new()));
    let out = results.clone();
    s.spawn(move |h| {
        let mut held = Vec::new();
        for _ in 0..8 {
            let r = h.connect_with(
                addr,
                ConnOptions::new().with_connect_timeout(Some(Duration::from_millis(300))),
            );
            match r {
                Ok(c) => held.push(c),
                Err(e) => out.borrow_mut().push(e),
            }
        }
    })
    .unwrap();
    run_all(&mut s, 20);
    let results = results.borrow();
    assert!(
        results.iter().any(|e| matches!(e, NetError::TimedOut)),
        "no connect timed out: {results:?}"
    );
    assert!(
        results.iter().all(|e| matches!(e, NetError::TimedOut)),
        "{results:?}"
    );
    let stats = net_stats(&s);
    assert_eq!((stats.sockets, stats.waiting), (0, 0));
}

/// Sends `chunks` from a std client with a pause between writes (so they arrive apart),
/// and returns the frames a tasklet received with `framing`.
fn frames_received(framing: Framing, chunks: Vec<Vec<u8>>, expect: usize) -> Vec<Vec<u8>> {
    let mut s = net_schedule();
    let got = Rc::new(RefCell::new(Vec::new()));
    let out = got.clone();
    let addr = Rc::new(RefCell::new(None));
    let addr_out = addr.clone();
    s.spawn(move |h| {
        let options = ListenOptions::new().with_conn(ConnOptions::new().with_framing(framing));
        let listener = h.listen_with("127.0.0.1:0", options).unwrap();
        *addr_out.borrow_mut() = Some(listener.local_addr());
        let (conn, _) = h.accept(&listener).unwrap();
        for _ in 0..expect {
            out.borrow_mut().push(h.receive(&conn).unwrap());
        }
        h.send(&conn, b"done").unwrap();
        h.flush(&conn).unwrap();
    })
    .unwrap();
    s.tick().unwrap();
    let addr = addr.borrow().unwrap();
    let client = peer(addr, move |mut stream| {
        for chunk in chunks {
            stream.write_all(&chunk).unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut done = [0; 4];
        stream.read_exact(&mut done).unwrap();
    });
    run_all(&mut s, 10);
    client.join().unwrap();
    let got = got.borrow().clone();
    got
}

#[test]
fn lines_split_across_writes_and_many_in_one() {
    let chunks = vec![
        b"hel".to_vec(),
        b"lo\r".to_vec(),
        b"\nwor".to_vec(),
        b"ld\none\ntwo\r\nthree\n".to_vec(),
        b"\n".to_vec(),
    ];
    let got = frames_received(Framing::Lines, chunks, 6);
    let want: Vec<&[u8]> = vec![b"hello", b"world", b"one", b"two", b"three", b""];
    assert_eq!(got, want);
}

#[test]
fn length_prefixed_split_and_batched() {
    let mut wire = Vec::new();
    for payload in [&b"alpha"[..], b"", b"gamma\n\0binary"] {
        wire.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        wire.extend_from_slice(payload);
    }
    // Split inside the first prefix, inside a payload, then the rest in one write.
    let chunks = vec![wire[..2].to_vec(), wire[2..7].to_vec(), wire[7..].to_vec()];
    let got = frames_received(Framing::LengthPrefixed, chunks, 3);
    let want: Vec<&[u8]> = vec![b"alpha", b"", b"gamma\n\0binary"];
    assert_eq!(got, want);
}

#[test]
fn raw_frames_carry_every_byte() {
    let chunks = vec![b"ab".to_vec(), b"cde".to_vec()];
    let got = frames_received(Framing::Raw, chunks, 2);
    assert_eq!(got.concat(), b"abcde");
}

#[test]
fn custom_codec_is_used() {
    #[derive(Debug)]
    struct Nul;
    impl fibra::net::Codec for Nul {
        fn decode(
            &mut self,
            buf: &[u8],
            max: usize,
        ) -> Result<Option<fibra::net::Decoded>, fibra::net::FrameError> {
            match buf.iter().position(|&b| b == 0) {
                Some(end) if end > max => Err(fibra::net::FrameError::TooLong),
                Some(end) => Ok(Some(fibra::net::Decoded {
                    frame: 0..end,
                    consumed: end + 1,
                })),
                None => Ok(None),
            }
        }
        fn encode(&self, p: &[u8], out: &mut Vec<u8>) -> Result<(), fibra::net::FrameError> {
            out.extend_from_slice(p);
            out.push(0);
            Ok(())
        }
    }
    let chunks = vec![b"a\nb\0c".to_vec(), b"d\0".to_vec()];
    let got = frames_received(Framing::custom(|| Nul), chunks, 2);
    let want: Vec<&[u8]> = vec![b"a\nb", b"cd"];
    assert_eq!(got, want);
}

#[test]
fn io_adapters_work_with_bufread() {
    let mut s = net_schedule();
    let addr = Rc::new(RefCell::new(None));
    let addr_out = addr.clone();
    s.spawn(move |h| {
        let listener = h.listen("127.0.0.1:0").unwrap();
        *addr_out.borrow_mut() = Some(listener.local_addr());
        let (conn, _) = h.accept(&listener).unwrap();
        let mut reader = BufReader::new(h.io(&conn));
        let mut writer = h.io(&conn);
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap() == 0 {
                break;
            }
            write!(writer, "{} chars: {}", line.trim_end().len(), line).unwrap();
        }
        writer.flush().unwrap();
    })
    .unwrap();
    s.tick().unwrap();
    let addr = addr.borrow().unwrap();
    let client = peer(addr, |mut stream| {
        stream.write_all(b"first line\nsec").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        stream.write_all(b"ond\n").unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let mut all = String::new();
        stream.read_to_string(&mut all).unwrap();
        all
    });
    run_all(&mut s, 10);
    assert_eq!(
        client.join().unwrap(),
        "10 chars: first line\n6 chars: second\n"
    );
}

/// `receive_until` gives up at its deadline with `TimedOut`, withdraws the receive, and the
/// connection goes on: a frame that comes later is received whole.
#[test]
fn receive_until_times_out_and_the_connection_goes_on() {
    let mut s = net_schedule();
    let outcome = Rc::new(RefCell::new(Vec::new()));
    let out = outcome.clone();
    let listener = s
        .plugin::<fibra::net::NetPlugin>()
        .unwrap()
        .listen("127.0.0.1:0")
        .expect("the host binds the listener");
    let addr = listener.local_addr();
    s.spawn(move |h| {
        let (conn, _) = h.accept(&listener).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_millis(50);
        let first = h.receive_until(&conn, deadline);
        out.borrow_mut().push(format!("{first:?}"));
        let later = h.receive_until(&conn, std::time::Instant::now() + Duration::from_secs(10));
        out.borrow_mut()
            .push(format!("{:?}", later.map(String::from_utf8)));
    })
    .unwrap();
    let client = peer(addr, |mut stream| {
        std::thread::sleep(Duration::from_millis(300));
        stream.write_all(b"late but whole\n").unwrap();
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
    });
    run_all(&mut s, 10);
    client.join().unwrap();
    assert_eq!(
        *outcome.borrow(),
        ["Err(TimedOut)", "Ok(Ok(\"late but whole\"))"]
    );
    assert_eq!(net_stats(&s).waiting, 0);
}

/// Text lines without `as_bytes` and `from_utf8_lossy` at every call: `send_line`,
/// `try_send_line`, `Group::send_line`, and `receive_line`, which replaces invalid UTF-8.
#[test]
fn lines_of_text_go_both_ways() {
    let mut s = net_schedule();
    let got = Rc::new(RefCell::new(Vec::new()));
    let out = got.clone();
    s.spawn(move |h| {
        let listener = h.listen("127.0.0.1:0").unwrap();
        let client = h.connect(listener.local_addr()).unwrap();
        let (server, _) = h.accept(&listener).unwrap();
        h.send_line(&client, "héllo").unwrap();
        h.send(&client, b"bad \xff byte\n").unwrap();
        server.try_send_line("from the server").unwrap();
        let room = fibra::net::Group::new();
        room.add(&server).unwrap();
        room.send_line("to the room").unwrap();
        for _ in 0..2 {
            out.borrow_mut().push(h.receive_line(&server).unwrap());
        }
        for _ in 0..2 {
            out.borrow_mut().push(h.receive_line(&client).unwrap());
        }
        assert!(matches!(
            h.send_line(&client, "two\nlines"),
            Err(NetError::InvalidFrame { .. })
        ));
    })
    .unwrap();
    run_all(&mut s, 10);
    assert_eq!(
        *got.borrow(),
        [
            "héllo",
            "bad \u{fffd} byte",
            "from the server",
            "to the room"
        ]
    );
}

#[test]
fn received_counts_bytes_read_and_not_yet_taken() {
    let mut s = net_schedule();
    let counts = Rc::new(RefCell::new(Vec::new()));
    let out = counts.clone();
    s.spawn(move |h| {
        let listener = h.listen("127.0.0.1:0").unwrap();
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let peer = peer(listener.local_addr(), move |mut stream| {
            stream.write_all(b"one\ntwo\n").unwrap();
            wait.recv().unwrap();
            stream.write_all(b"three\n").unwrap();
            wait.recv().unwrap();
        });
        let (conn, _) = h.accept(&listener).unwrap();
        assert_eq!(h.receive(&conn).unwrap(), b"one");
        out.borrow_mut().push(conn.received());
        assert_eq!(h.receive(&conn).unwrap(), b"two");
        out.borrow_mut().push(conn.received());
        // Nobody receives: a loss watcher reads ahead, and the bytes wait in the buffer.
        let watcher = {
            let conn = conn.clone();
            h.spawn(move |h| h.on_lost_connection(&conn)).unwrap()
        };
        go.send(()).unwrap();
        let mut waited = 0;
        while conn.received() == 0 && waited < 500 {
            h.sleep(Duration::from_millis(10));
            waited += 1;
        }
        out.borrow_mut().push(conn.received());
        assert_eq!(h.receive(&conn).unwrap(), b"three");
        out.borrow_mut().push(conn.received());
        go.send(()).unwrap();
        h.join(watcher).unwrap();
        peer.join().unwrap();
    })
    .unwrap();
    run_all(&mut s, 10);
    assert_eq!(*counts.borrow(), vec![4, 0, 6, 0]);
}
