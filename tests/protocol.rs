//! `Protocol`/`Factory` on a `Server`, over real sockets: `connection_lost` exactly once for
//! each way a connection ends, inner tasklets killed with their connection, the heartbeat
//! deadline, a callback that parks, half-close, refusal, and a transport used by another
//! tasklet.

mod util;

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::rc::Rc;
use std::time::Duration;

use fibra::net::{ConnOptions, Ended, Factory, ListenOptions, Protocol, Server, Transport};
use fibra::rt::Handle;
use fibra::tasks::TasksExt;
use util::recorder::{client, end_each, endings, events, lost_count, setup, Log, Recorders, Setup};

#[test]
fn connection_lost_is_told_exactly_once_whatever_ends_the_connection() {
    let mut rig = setup(64, false);
    end_each(&mut rig, endings());
    let Setup {
        mut s,
        server,
        addr,
        log,
        drops,
    } = rig;

    // The kill of a connection's tasklet: the server stops.
    let n = 8;
    let mut peer = client(addr);
    util::run_until(&mut s, "the last connection", || {
        events(&log, n).contains(&"made".into())
    });
    let reader = std::thread::spawn(move || {
        let mut rest = Vec::new();
        peer.read_to_end(&mut rest).map(|_| rest)
    });
    server.stop();
    util::run_until(&mut s, "the stop", || lost_count(&log, n) == 1);
    assert_eq!(events(&log, n).last().unwrap(), "lost Killed");
    s.run_for(Duration::from_millis(50)).unwrap();
    assert_eq!(
        reader.join().unwrap().unwrap(),
        b"",
        "closed, not left open"
    );
    assert_eq!(drops.get(), 8);
    assert_eq!(server.connections(), 0);
    s.run_for(Duration::from_millis(20)).unwrap();
    assert!(
        s.is_empty(),
        "no tasklet is left: {:?}",
        s.tasklets().collect::<Vec<_>>()
    );
    assert!(TcpStream::connect(addr).is_err(), "the listener is closed");
}

#[test]
fn a_peers_end_of_stream_reaches_eof_received_and_the_connection_can_still_answer() {
    let Setup {
        mut s, addr, log, ..
    } = setup(1024, false);
    let mut peer = client(addr);
    peer.write_all(b"hello\n").unwrap();
    peer.shutdown(Shutdown::Write).unwrap();
    let reader = std::thread::spawn(move || {
        let mut got = String::new();
        let _ = peer.read_to_string(&mut got);
        got
    });
    util::run_until(&mut s, "the end", || lost_count(&log, 1) == 1);
    assert_eq!(
        events(&log, 1),
        ["made", "frame hello", "eof", "lost Lost(Closed)"]
    );
    assert_eq!(reader.join().unwrap(), "hello\nafter eof\n");
}

#[test]
fn a_callback_that_parks_pauses_only_its_own_connection() {
    let Setup {
        mut s, addr, log, ..
    } = setup(1024, false);
    let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let slow_order = order.clone();
    let slow = std::thread::spawn(move || {
        let mut c = client(addr);
        // Parks in `slow`; "after" waits behind it, in order.
        c.write_all(b"slow\nafter\n").unwrap();
        let mut buf = [0u8; 16];
        let mut got = Vec::new();
        while !got.ends_with(b"after\n") {
            let n = c.read(&mut buf).unwrap();
            assert!(n > 0, "closed early");
            got.extend_from_slice(&buf[..n]);
        }
        slow_order.lock().unwrap().push("slow");
        String::from_utf8(got).unwrap()
    });
    util::run_until(&mut s, "the slow frame", || {
        events(&log, 1).contains(&"frame slow".into())
    });
    let fast_order = order.clone();
    let fast = std::thread::spawn(move || {
        let mut c = client(addr);
        c.write_all(b"quick\n").unwrap();
        let mut buf = [0u8; 6];
        c.read_exact(&mut buf).unwrap();
        fast_order.lock().unwrap().push("fast");
    });
    util::run_until(&mut s, "both answers", || order.lock().unwrap().len() == 2);
    assert_eq!(slow.join().unwrap(), "slow done\nafter\n");
    fast.join().unwrap();
    assert_eq!(
        *order.lock().unwrap(),
        ["fast", "slow"],
        "the other connection was served while one callback parked"
    );
    assert_eq!(events(&log, 1)[..3], ["made", "frame slow", "frame after"]);
}

#[test]
fn a_refused_connection_is_closed_and_gets_no_protocol() {
    let mut s = util::net_schedule();
    let listener = util::listen(&s);
    let addr = listener.local_addr();
    let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let local = refused.local_addr().unwrap();
    drop(refused);
    let log = Log::default();
    let factory = Recorders {
        next: 0,
        log: log.clone(),
        drops: Rc::new(Cell::new(0)),
        refuse: Some(local),
    };
    let server = Server::new(listener, factory);
    server.start(&mut *s).unwrap();
    // A client bound to the refused address.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&local.into()).unwrap();
    socket.connect(&addr.into()).unwrap();
    let mut peer: TcpStream = socket.into();
    peer.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let done = Rc::new(Cell::new(false));
    let flag = done.clone();
    let reader = std::thread::spawn(move || {
        let mut rest = Vec::new();
        peer.read_to_end(&mut rest).map(|_| rest)
    });
    s.spawn(move |h| {
        h.sleep(Duration::from_millis(50));
        flag.set(true);
    })
    .unwrap();
    util::run_until(&mut s, "the refusal", || done.get());
    assert_eq!(
        reader.join().unwrap().unwrap(),
        b"",
        "closed without a word"
    );
    assert!(
        log.borrow().is_empty(),
        "no protocol was made: {:?}",
        log.borrow()
    );
    assert_eq!(server.connections(), 0);
}

#[test]
fn another_tasklet_sends_through_a_kept_transport_within_the_send_limit() {
    /// Keeps each connection's transport in a room.
    struct Member(Rc<RefCell<Vec<Transport>>>);
    impl Protocol for Member {
        fn connection_made(&mut self, _h: &Handle, t: &Transport) {
            self.0.borrow_mut().push(t.clone());
        }
        fn frame_received(&mut self, _h: &Handle, _t: &Transport, _frame: &[u8]) {}
    }
    struct Members(Rc<RefCell<Vec<Transport>>>);
    impl Factory for Members {
        type Protocol = Member;
        fn build_protocol(&mut self, _peer: SocketAddr) -> Option<Member> {
            Some(Member(self.0.clone()))
        }
    }
    let mut s = util::net_schedule();
    let options = ListenOptions::new().with_conn(ConnOptions::new().with_send_limit(4096));
    let listener = util::listen_with(&s, options);
    let addr = listener.local_addr();
    let room = Rc::new(RefCell::new(Vec::new()));
    Server::new(listener, Members(room.clone()))
        .start(&mut *s)
        .unwrap();
    let mut peer = client(addr);
    util::run_until(&mut s, "the member", || !room.borrow().is_empty());
    let transport = room.borrow()[0].clone();
    // A timer tasklet speaks to the member; it never parks, and stops at the send limit.
    let full = Rc::new(Cell::new(None));
    let seen = full.clone();
    s.spawn(move |h| {
        h.sleep(Duration::from_millis(5));
        transport.send_line("tick").unwrap();
        for i in 0..10_000 {
            if let Err(e) = transport.send(&[b'z'; 100]) {
                seen.set(Some((i, e.to_string())));
                break;
            }
        }
    })
    .unwrap();
    util::run_until(&mut s, "the full buffer", || {
        full.take().inspect(|f| full.set(Some(f.clone()))).is_some()
    });
    let (sent, error) = full.take().unwrap();
    assert!(
        sent < 100,
        "output is bounded by the send limit ({sent} frames queued)"
    );
    assert!(error.contains("send buffer full"), "{error}");
    let mut line = [0u8; 5];
    peer.read_exact(&mut line).unwrap();
    assert_eq!(&line, b"tick\n");
}

#[test]
fn the_heartbeat_deadline_spares_a_peer_that_keeps_talking() {
    let Setup {
        mut s, addr, log, ..
    } = setup(1024, false);
    let peer = std::thread::spawn(move || {
        let mut c = client(addr);
        c.write_all(b"deadline\n").unwrap(); // 100 ms from now on
                                             // Talks every 20 ms for 400 ms: never 100 ms of silence.
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(20));
            c.write_all(b"ping\n").unwrap();
        }
        // Then falls silent: the deadline ends the connection.
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).map(|_| rest)
    });
    util::run_until(&mut s, "the deadline", || lost_count(&log, 1) == 1);
    let seen = events(&log, 1);
    let pings = seen.iter().filter(|e| *e == "frame ping").count();
    assert_eq!(pings, 20, "every ping came before the deadline: {seen:?}");
    assert_eq!(seen.last().unwrap(), "lost Lost(TimedOut)");
    let echoed = peer.join().unwrap().unwrap();
    assert_eq!(echoed.len(), 20 * 5, "each ping was answered");
}

/// A protocol whose `connection_lost` panics.
struct Careless;
impl Protocol for Careless {
    fn frame_received(&mut self, _: &Handle, _: &Transport, _: &[u8]) {}

    fn connection_lost(&mut self, _: &Ended) {
        panic!("connection_lost panics");
    }
}

struct Carelesses(Rc<Cell<u32>>);
impl Factory for Carelesses {
    type Protocol = Careless;
    fn build_protocol(&mut self, _: SocketAddr) -> Option<Careless> {
        self.0.set(self.0.get() + 1);
        Some(Careless)
    }
}

/// Sessions killed (their schedule dropped) whose `connection_lost` panics: each panic is
/// caught and logged, and the process goes on (it aborted: the panic was resumed out of the
/// session's destructor, mid-unwind). In a child process, since the failure is an abort.
#[test]
fn a_panicking_connection_lost_in_a_killed_session_does_not_abort() {
    const CHILD: &str = "FIBRA_PROTOCOL_CHILD";
    if std::env::var(CHILD).is_ok() {
        let mut s = util::net_schedule();
        let listener = util::listen_with(&s, ListenOptions::new());
        let addr = listener.local_addr();
        let made = Rc::new(Cell::new(0));
        let server = Server::new(listener, Carelesses(made.clone()));
        server.start(&mut *s).unwrap();
        let _clients: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
        util::run_until(&mut s, "two sessions", || made.get() == 2);
        drop(s);
        eprintln!("child: survived");
        return;
    }
    let (ok, output) = util::run_in_child(
        "a_panicking_connection_lost_in_a_killed_session_does_not_abort",
        (CHILD, "1"),
        Duration::from_secs(30),
    );
    assert!(ok && output.contains("child: survived"), "{output}");
}
