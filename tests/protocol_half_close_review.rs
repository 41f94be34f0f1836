//! Hostile review of `NetExt::on_closed` / kept half-closes (commit 02227ea).

mod util;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::time::Duration;

use fibra::net::NetExt;
use fibra::rt::{Either, Park};
use fibra::tasks::TasksExt;

/// A peer that connects and keeps its socket until the test's end (bounded by a timeout).
fn idle_peer(addr: SocketAddr) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut peer = TcpStream::connect(addr).unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut rest = Vec::new();
        let _ = peer.read_to_end(&mut rest);
    })
}

/// A watcher whose `on_closed` arm lost a select to its `Park` arm after the connection
/// closed (told, not yet completed) must not get that answer later, in another op: here
/// its next `on_closed`, on a second connection still open.
#[test]
fn a_close_told_to_a_select_that_the_park_arm_won_is_not_answered_later() {
    let mut s = util::net_schedule();
    let listener = util::listen(&s);
    let addr = listener.local_addr();
    let log = Rc::new(RefCell::new(Vec::<String>::new()));
    let log2 = log.clone();
    s.spawn(move |h| {
        let (a, _) = h.accept(&listener).unwrap();
        let (b, _) = h.accept(&listener).unwrap();
        let (wa, wb, wlog) = (a.clone(), b.clone(), log2.clone());
        let watcher = h
            .spawn(move |h| {
                match h.select(fibra::net::ops::OnClosed::new(&wa), Park) {
                    Either::First(how) => wlog.borrow_mut().push(format!("a closed {how:?}")),
                    Either::Second(()) => wlog.borrow_mut().push("unparked".into()),
                }
                // `a` is closed now: at once.
                wlog.borrow_mut().push(format!("a: {:?}", h.on_closed(&wa)));
                // `b` is open: this must wait for b's close.
                let how = h.on_closed(&wb);
                wlog.borrow_mut().push(format!("b closed {how:?}"));
            })
            .unwrap();
        h.sleep(Duration::from_millis(20));
        // `a` closes (its watcher told at the next poll), and the watcher is unparked
        // before that poll.
        h.abort(&a);
        h.unparker_of(watcher.id()).unpark();
        h.sleep(Duration::from_millis(100));
        log2.borrow_mut().push("closing b".into());
        h.close(&b).unwrap();
        h.join(watcher).unwrap();
    })
    .unwrap();
    let p1 = idle_peer(addr);
    std::thread::sleep(Duration::from_millis(50));
    let p2 = idle_peer(addr);
    util::run_all(&mut s, 10);
    p1.join().unwrap();
    p2.join().unwrap();
    assert_eq!(
        *log.borrow(),
        ["unparked", "a: Aborted", "closing b", "b closed Closed"],
        "b's watcher must wait for b's close and hear b's answer"
    );
}

/// Many watchers on one connection, one of them killed while it waits; the host closes the
/// connection between ticks: every live watcher hears `Closed` once, the dead one nothing,
/// and the schedule's run ends.
#[test]
fn many_watchers_one_killed_host_close_between_ticks() {
    let mut s = util::net_schedule();
    let listener = util::listen(&s);
    let addr = listener.local_addr();
    let log = Rc::new(RefCell::new(Vec::<String>::new()));
    let conn_out: Rc<RefCell<Option<fibra::net::Conn>>> = Rc::default();
    let (log2, out2) = (log.clone(), conn_out.clone());
    s.spawn(move |h| {
        let (a, _) = h.accept(&listener).unwrap();
        let mut ws = Vec::new();
        for i in 0..5 {
            let (wa, wlog) = (a.clone(), log2.clone());
            ws.push(
                h.spawn(move |h| {
                    let how = h.on_closed(&wa);
                    wlog.borrow_mut().push(format!("{i} {how:?}"));
                })
                .unwrap(),
            );
        }
        h.sleep(Duration::from_millis(10));
        let dead = ws.remove(2);
        assert!(h.kill(dead.id()));
        *out2.borrow_mut() = Some(a);
        for w in ws {
            h.join(w).unwrap();
        }
    })
    .unwrap();
    let p = idle_peer(addr);
    let out3 = conn_out.clone();
    util::run_until(&mut s, "the watchers", || out3.borrow().is_some());
    s.run_for(Duration::from_millis(20)).unwrap();
    assert!(log.borrow().is_empty(), "{:?}", log.borrow());
    // The host closes, between ticks, and drops its handle.
    conn_out.borrow_mut().take().unwrap().close();
    util::run_all(&mut s, 10);
    p.join().unwrap();
    let mut got = log.borrow().clone();
    got.sort();
    assert_eq!(got, ["0 Closed", "1 Closed", "3 Closed", "4 Closed"]);
}

/// A watcher killed after its connection's close was told, before the poll that completes
/// it: a tasklet spawned next (its slot reused) and waiting on another connection is not
/// woken by it.
#[test]
fn a_watcher_killed_after_the_close_was_told_leaves_nothing_to_its_slot() {
    let mut s = util::net_schedule();
    let listener = util::listen(&s);
    let addr = listener.local_addr();
    let log = Rc::new(RefCell::new(Vec::<String>::new()));
    let log2 = log.clone();
    s.spawn(move |h| {
        let (a, _) = h.accept(&listener).unwrap();
        let (b, _) = h.accept(&listener).unwrap();
        let (wa, wlog) = (a.clone(), log2.clone());
        let watcher = h
            .spawn(move |h| {
                let how = h.on_closed(&wa);
                wlog.borrow_mut().push(format!("dead one woke {how:?}"));
            })
            .unwrap();
        h.sleep(Duration::from_millis(20));
        let old = watcher.id();
        h.abort(&a);
        assert!(h.kill(watcher.id()));
        h.yield_now();
        let (wb, wlog) = (b.clone(), log2.clone());
        let next = h
            .spawn(move |h| {
                let how = h.on_closed(&wb);
                wlog.borrow_mut().push(format!("b closed {how:?}"));
            })
            .unwrap();
        log2.borrow_mut()
            .push(format!("slot reused: {}", next.id().slot() == old.slot()));
        h.sleep(Duration::from_millis(60));
        log2.borrow_mut().push("closing b".into());
        h.close(&b).unwrap();
        h.join(next).unwrap();
    })
    .unwrap();
    let p1 = idle_peer(addr);
    std::thread::sleep(Duration::from_millis(50));
    let p2 = idle_peer(addr);
    util::run_all(&mut s, 10);
    p1.join().unwrap();
    p2.join().unwrap();
    let got = log.borrow().clone();
    assert_eq!(&got[1..], ["closing b", "b closed Closed"], "{got:?}");
}

/// TLS: the peer sends close_notify (its half-close) and keeps reading; the server's side
/// sees the end of stream, goes on sending, and its close watcher waits for the close.
#[test]
fn tls_close_notify_then_the_server_keeps_sending() {
    use util::certs::{tls_peer, TestCerts};
    let certs = TestCerts::localhost();
    let (server_config, client_config) = (certs.server_config(), certs.client_config());
    let mut s = util::net_schedule();
    let log = Rc::new(RefCell::new(Vec::<String>::new()));
    let log2 = log.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    s.spawn(move |h| {
        let listener = h.listen_tls("127.0.0.1:0", server_config).unwrap();
        tx.send(listener.local_addr()).unwrap();
        let (conn, _) = h.accept(&listener).unwrap();
        let line = h.receive(&conn).unwrap();
        let end = h.receive(&conn);
        log2.borrow_mut().push(format!("end {:?}", end.err()));
        let (w, wlog) = (conn.clone(), log2.clone());
        let watcher = h
            .spawn(move |h| {
                let how = h.on_closed(&w);
                wlog.borrow_mut().push(format!("closed {how:?}"));
            })
            .unwrap();
        h.sleep(Duration::from_millis(30));
        log2.borrow_mut().push("answering".into());
        h.send(&conn, &[&line[..], b" later\n"].concat()).unwrap();
        h.close(&conn).unwrap();
        h.join(watcher).unwrap();
    })
    .unwrap();
    s.tick_within(Duration::from_millis(5)).unwrap();
    let addr = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let peer = tls_peer(addr, client_config, |mut tls| {
        tls.write_all(b"hi\n").unwrap();
        tls.conn.send_close_notify();
        tls.flush().unwrap();
        while tls.conn.wants_write() {
            tls.conn.write_tls(&mut tls.sock).unwrap();
        }
        let mut rest = String::new();
        let r = tls.read_to_string(&mut rest);
        (rest, r.map_err(|e| e.to_string()))
    });
    util::run_all(&mut s, 10);
    let (rest, r) = peer.join().unwrap();
    assert_eq!(rest, "hi later\n", "{r:?}");
    assert_eq!(
        *log.borrow(),
        ["end Some(Lost(Eof))", "answering", "closed Closed"]
    );
}

use fibra::net::{Ended, Factory, Protocol, Server, Transport};
use fibra::rt::Handle;

#[derive(Default)]
struct Seen {
    events: Vec<String>,
    transport: Option<Transport>,
}
type Shared = Rc<RefCell<Seen>>;

struct Keeper(Shared);
impl Protocol for Keeper {
    fn connection_made(&mut self, _h: &Handle, t: &Transport) {
        self.0.borrow_mut().transport = Some(t.clone());
    }
    fn frame_received(&mut self, _h: &Handle, _t: &Transport, frame: &[u8]) {
        self.0
            .borrow_mut()
            .events
            .push(format!("frame {}", String::from_utf8_lossy(frame)));
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

fn count(seen: &Shared, what: &str) -> usize {
    seen.borrow()
        .events
        .iter()
        .filter(|e| e.starts_with(what))
        .count()
}

/// A peer that closes its side at once and reads to the end (bounded).
fn fin_peer(addr: SocketAddr) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut peer = TcpStream::connect(addr).unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        peer.shutdown(std::net::Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        let _ = peer.read_to_end(&mut rest);
        rest
    })
}

fn schedule_dropped(stackless: bool) {
    let mut s = util::net_schedule();
    let listener = util::listen(&s);
    let addr = listener.local_addr();
    let seen = Shared::default();
    let server = if stackless {
        Server::stackless(listener, Keepers(seen.clone()))
    } else {
        Server::new(listener, Keepers(seen.clone()))
    };
    server.start(&mut *s).unwrap();
    let peer = fin_peer(addr);
    let seen2 = seen.clone();
    util::run_until(&mut s, "eof", || count(&seen2, "eof") == 1);
    s.run_for(Duration::from_millis(30)).unwrap();
    assert_eq!(count(&seen, "lost"), 0);
    drop(s);
    assert_eq!(
        seen.borrow().events,
        ["eof", "lost Killed"],
        "told once, as the schedule went"
    );
    assert!(peer.join().unwrap().is_empty());
    drop(server);
}

#[test]
fn a_kept_half_close_ends_with_its_schedule() {
    schedule_dropped(false);
}

#[test]
fn a_kept_half_close_ends_with_its_schedule_stackless() {
    schedule_dropped(true);
}

/// A reconnecting client whose protocol keeps the server's half-close: it answers later,
/// closes, and the client connects again.
#[test]
fn a_client_keeps_a_half_close_then_closes_and_reconnects() {
    use fibra::net::{Backoff, ConnOptions, ReconnectingClient};
    let mut s = util::net_schedule();
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let srv = std::thread::spawn(move || {
        let mut got = Vec::new();
        for _ in 0..2 {
            let (mut c, _) = server.accept().unwrap();
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            c.shutdown(std::net::Shutdown::Write).unwrap();
            let mut rest = Vec::new();
            let _ = c.read_to_end(&mut rest);
            got.push(String::from_utf8_lossy(&rest).into_owned());
        }
        got
    });
    let seen = Shared::default();
    let backoff = Backoff::new()
        .with_initial(Duration::from_millis(10))
        .with_max(Duration::from_millis(40))
        .with_seed(7);
    let client = ReconnectingClient::new(addr, ConnOptions::new(), backoff, Keepers(seen.clone()));
    client.start(&mut *s).unwrap();
    let seen2 = seen.clone();
    util::run_until(&mut s, "the first eof", || count(&seen2, "eof") == 1);
    s.run_for(Duration::from_millis(30)).unwrap();
    assert_eq!(count(&seen, "lost"), 0, "kept");
    let t = seen.borrow().transport.clone().unwrap();
    t.send_line("bye").unwrap();
    t.close();
    drop(t);
    let seen2 = seen.clone();
    util::run_until(&mut s, "the second eof", || count(&seen2, "eof") == 2);
    assert_eq!(client.connections(), 2);
    client.stop();
    let seen2 = seen.clone();
    util::run_until(&mut s, "the stop", || count(&seen2, "lost") == 2);
    assert_eq!(
        seen.borrow().events,
        ["eof", "lost Lost(Closed)", "eof", "lost Killed"]
    );
    assert_eq!(srv.join().unwrap(), ["bye\n", ""]);
}
