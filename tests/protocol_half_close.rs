//! A half-close a `Protocol` keeps (`eof_received` returns `true`), on both kinds of server:
//! the connection stays open for sending after the peer's end of stream, until the protocol
//! closes or aborts it, its output fails, or the server stops; `connection_lost` hears which.

mod util;

use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::rc::Rc;
use std::time::Duration;

use fibra::net::{Ended, Factory, Protocol, Server, Transport};
use fibra::rt::Handle;

/// What the protocols saw, and the transport of the last connection, kept by the test.
#[derive(Default)]
struct Seen {
    events: Vec<String>,
    transport: Option<Transport>,
}

type Shared = Rc<RefCell<Seen>>;

/// Keeps every half-close, says nothing until the test makes it.
struct Keeper(Shared);

impl Protocol for Keeper {
    fn connection_made(&mut self, _h: &Handle, t: &Transport) {
        self.0.borrow_mut().transport = Some(t.clone());
    }

    fn frame_received(&mut self, _h: &Handle, t: &Transport, frame: &[u8]) {
        let text = String::from_utf8_lossy(frame).into_owned();
        let _ = t.send_line(&format!("got {text}"));
        self.0.borrow_mut().events.push(format!("frame {text}"));
    }

    fn eof_received(&mut self, _h: &Handle, _t: &Transport) -> bool {
        self.0.borrow_mut().events.push("eof".into());
        true
    }

    fn connection_lost(&mut self, reason: &Ended) {
        let mut seen = self.0.borrow_mut();
        seen.events.push(format!("lost {reason:?}"));
        seen.transport = None;
    }
}

struct Keepers(Shared);

impl Factory for Keepers {
    type Protocol = Keeper;

    fn build_protocol(&mut self, _peer: SocketAddr) -> Option<Keeper> {
        Some(Keeper(self.0.clone()))
    }
}

struct Rig {
    s: util::TestSchedule,
    server: Server,
    addr: SocketAddr,
    seen: Shared,
}

fn rig(stackless: bool) -> Rig {
    let mut s = util::net_schedule();
    let listener = util::listen(&s);
    let addr = listener.local_addr();
    let seen = Shared::default();
    let factory = Keepers(seen.clone());
    let server = if stackless {
        Server::stackless(listener, factory)
    } else {
        Server::new(listener, factory)
    };
    server.start(&mut *s).unwrap();
    Rig {
        s,
        server,
        addr,
        seen,
    }
}

fn events(seen: &Shared) -> Vec<String> {
    seen.borrow().events.clone()
}

fn lost(seen: &Shared) -> Option<String> {
    events(seen).into_iter().find(|e| e.starts_with("lost"))
}

fn transport(seen: &Shared) -> Transport {
    seen.borrow()
        .transport
        .clone()
        .expect("the connection is open")
}

/// A peer that says `hi`, closes its side, and reads the answer to its line (on a thread).
fn half_closing_peer(addr: SocketAddr) -> std::thread::JoinHandle<TcpStream> {
    std::thread::spawn(move || half_close(addr))
}

fn half_close(addr: SocketAddr) -> TcpStream {
    let mut peer = TcpStream::connect(addr).unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    peer.write_all(b"hi\n").unwrap();
    peer.shutdown(Shutdown::Write).unwrap();
    let mut answer = [0u8; 7];
    peer.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"got hi\n");
    peer
}

/// Runs until the peer's end of stream reached `eof_received`, then a while more: the kept
/// half-close must still be open after it. Returns the peer.
fn until_kept(r: &mut Rig, peer: std::thread::JoinHandle<TcpStream>) -> TcpStream {
    let seen = r.seen.clone();
    util::run_until(&mut r.s, "eof_received", || {
        events(&seen).contains(&"eof".into()) && peer.is_finished()
    });
    let peer = peer.join().unwrap();
    r.s.run_for(Duration::from_millis(50)).unwrap();
    assert_eq!(
        lost(&r.seen),
        None,
        "the half-close was kept open: {:?}",
        events(&r.seen)
    );
    assert_eq!(r.server.connections(), 1);
    peer
}

fn answered_later_then_closed(stackless: bool) {
    let mut r = rig(stackless);
    let mut peer = {
        let peer = half_closing_peer(r.addr);
        until_kept(&mut r, peer)
    };
    let t = transport(&r.seen);
    t.send_line("later").unwrap();
    t.close();
    drop(t);
    let seen = r.seen.clone();
    util::run_until(&mut r.s, "the close", || lost(&seen).is_some());
    assert_eq!(lost(&r.seen).unwrap(), "lost Lost(Closed)");
    let mut rest = String::new();
    peer.read_to_string(&mut rest).unwrap();
    assert_eq!(
        rest, "later\n",
        "what was sent after the half-close, then the end"
    );
    assert_eq!(events(&r.seen), ["frame hi", "eof", "lost Lost(Closed)"]);
    util::run_until(&mut r.s, "the session's end", || {
        r.server.connections() == 0
    });
}

#[test]
fn a_kept_half_close_is_answered_later_then_closed() {
    answered_later_then_closed(false);
}

#[test]
fn a_kept_half_close_is_answered_later_then_closed_stackless() {
    answered_later_then_closed(true);
}

fn aborted_later(stackless: bool) {
    let mut r = rig(stackless);
    let mut peer = {
        let peer = half_closing_peer(r.addr);
        until_kept(&mut r, peer)
    };
    transport(&r.seen).abort();
    let seen = r.seen.clone();
    util::run_until(&mut r.s, "the abort", || lost(&seen).is_some());
    assert_eq!(lost(&r.seen).unwrap(), "lost Lost(Aborted)");
    let mut rest = Vec::new();
    let read = peer.read_to_end(&mut rest);
    assert_eq!(
        read.map_err(|e| e.kind()),
        Err(ErrorKind::ConnectionReset),
        "the peer gets a reset"
    );
    util::run_until(&mut r.s, "the session's end", || {
        r.server.connections() == 0
    });
}

#[test]
fn a_kept_half_close_aborted_later_is_told_aborted() {
    aborted_later(false);
}

#[test]
fn a_kept_half_close_aborted_later_is_told_aborted_stackless() {
    aborted_later(true);
}

fn peer_gone(stackless: bool) {
    let mut r = rig(stackless);
    let peer = {
        let peer = half_closing_peer(r.addr);
        until_kept(&mut r, peer)
    };
    // The peer leaves for good with a reset; the next write finds it.
    socket2::SockRef::from(&peer)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(peer);
    std::thread::sleep(Duration::from_millis(20));
    let t = transport(&r.seen);
    let _ = t.send_line("anyone?");
    drop(t);
    let seen = r.seen.clone();
    util::run_until(&mut r.s, "the failed write", || lost(&seen).is_some());
    assert_eq!(lost(&r.seen).unwrap(), "lost Lost(Reset)");
    util::run_until(&mut r.s, "the session's end", || {
        r.server.connections() == 0
    });
}

#[test]
fn a_kept_half_close_whose_peer_reset_ends_at_the_next_write() {
    peer_gone(false);
}

#[test]
fn a_kept_half_close_whose_peer_reset_ends_at_the_next_write_stackless() {
    peer_gone(true);
}

/// The peer resets its socket after its end of stream, and the protocol never writes
/// again: the reset alone ends the session (the kernel reports it), so no session waits for
/// a write that may never come.
fn peer_reset_unwritten(stackless: bool) {
    let mut r = rig(stackless);
    let peer = {
        let peer = half_closing_peer(r.addr);
        until_kept(&mut r, peer)
    };
    socket2::SockRef::from(&peer)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(peer);
    let seen = r.seen.clone();
    util::run_until(&mut r.s, "the reset, without a write", || {
        lost(&seen).is_some()
    });
    assert_eq!(lost(&r.seen).unwrap(), "lost Lost(Reset)");
    util::run_until(&mut r.s, "the session's end", || {
        r.server.connections() == 0
    });
}

#[test]
fn a_kept_half_close_whose_peer_reset_ends_without_a_write() {
    peer_reset_unwritten(false);
}

#[test]
fn a_kept_half_close_whose_peer_reset_ends_without_a_write_stackless() {
    peer_reset_unwritten(true);
}

fn stopped(stackless: bool) {
    let mut r = rig(stackless);
    let mut peer = {
        let peer = half_closing_peer(r.addr);
        until_kept(&mut r, peer)
    };
    r.server.stop();
    let seen = r.seen.clone();
    util::run_until(&mut r.s, "the stop", || lost(&seen).is_some());
    assert_eq!(lost(&r.seen).unwrap(), "lost Killed");
    let mut rest = Vec::new();
    let _ = peer.read_to_end(&mut rest);
    assert!(rest.is_empty());
    r.s.run_for(Duration::from_millis(50)).unwrap();
    assert!(
        r.s.tasklets().all(|t| util::is_idle_worker(&t)),
        "no tasklet is left: {:?}",
        r.s.tasklets().collect::<Vec<_>>()
    );
}

#[test]
fn a_kept_half_close_ends_with_its_server() {
    stopped(false);
}

#[test]
fn a_kept_half_close_ends_with_its_server_stackless() {
    stopped(true);
}

/// The tasklet API under the sessions: `on_closed` waits past the peer's end of stream
/// (which `on_lost_connection` reports at once) for the close, and says how it went.
#[test]
fn on_closed_waits_past_the_end_of_stream_for_the_close() {
    use fibra::net::{Lost, NetError, NetExt};
    use fibra::tasks::TasksExt;

    let mut s = util::net_schedule();
    let listener = util::listen(&s);
    let addr = listener.local_addr();
    let told = Rc::new(RefCell::new(Vec::<String>::new()));
    let log = told.clone();
    s.spawn(move |h| {
        let (conn, _) = h.accept(&listener).unwrap();
        let line = h.receive(&conn).unwrap();
        assert!(matches!(h.receive(&conn), Err(NetError::Lost(Lost::Eof))));
        assert_eq!(h.on_lost_connection(&conn), Lost::Eof);
        let watched = conn.clone();
        let watch_log = log.clone();
        let watcher = h
            .spawn(move |h| {
                let how = h.on_closed(&watched);
                watch_log.borrow_mut().push(format!("closed {how:?}"));
            })
            .unwrap();
        h.sleep(Duration::from_millis(20));
        log.borrow_mut().push("answered".into());
        h.send(&conn, &[&line[..], b" later\n"].concat()).unwrap();
        h.close(&conn).unwrap();
        h.join(watcher).unwrap();
        // Closed already: at once.
        assert_eq!(h.on_closed(&conn), Lost::Closed);
    })
    .unwrap();
    let peer = std::thread::spawn(move || half_close_and_read(addr));
    util::run_all(&mut s, 10);
    assert_eq!(peer.join().unwrap(), "hi later\n");
    assert_eq!(*told.borrow(), ["answered", "closed Closed"]);
}

fn half_close_and_read(addr: SocketAddr) -> String {
    let mut peer = TcpStream::connect(addr).unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    peer.write_all(b"hi\n").unwrap();
    peer.shutdown(Shutdown::Write).unwrap();
    let mut rest = String::new();
    peer.read_to_string(&mut rest).unwrap();
    rest
}
