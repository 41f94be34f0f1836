//! A hostile review of connections without a tasklet while idle (`OnInput`,
//! `Server::stackless`), over real sockets on 127.0.0.1: the schedule keeps serving armed
//! input watches when no tasklet is left, an activation allocates nothing, and a read timer
//! set off is disarmed at once.

mod util;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::time::Duration;

use fibra::net::ops::{Connect, InputJob, OnInput, Tried, TryReceive};
use fibra::net::{Conn, ConnOptions, Ended, Factory, Protocol, Server, Transport};
use fibra::rt::Handle;
use fibra::tasks::TasksExt;
use util::recorder::{self, events, lost_count, Log};

/// Counts the allocations made on the current thread (the schedule's), not the peers'.
struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call goes to the system allocator unchanged; the count is a thread-local
// `Cell` with a const initializer, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: as the caller promised `System`.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as the caller promised `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: as the caller promised `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(Cell::get)
}

/// Does what each line says: `arm` sets an hour's read deadline, `off` clears it; anything
/// else is echoed. Counts its frames.
struct Scripted {
    frames: Rc<Cell<u64>>,
    lost: Rc<Cell<u32>>,
}

impl Protocol for Scripted {
    fn frame_received(&mut self, _h: &Handle, t: &Transport, frame: &[u8]) {
        self.frames.set(self.frames.get() + 1);
        match frame {
            b"arm" => t.set_read_deadline(Some(Duration::from_secs(3600))),
            b"off" => t.set_read_deadline(None),
            _ => {}
        }
        let _ = t.send(frame);
    }

    fn connection_lost(&mut self, _reason: &Ended) {
        self.lost.set(self.lost.get() + 1);
    }
}

struct Scripts {
    frames: Rc<Cell<u64>>,
    lost: Rc<Cell<u32>>,
}

impl Factory for Scripts {
    type Protocol = Scripted;
    fn build_protocol(&mut self, _peer: SocketAddr) -> Option<Scripted> {
        Some(Scripted {
            frames: self.frames.clone(),
            lost: self.lost.clone(),
        })
    }
}

fn client(addr: SocketAddr) -> (TcpStream, BufReader<TcpStream>) {
    let c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let r = BufReader::new(c.try_clone().unwrap());
    (c, r)
}

fn ask(c: &mut TcpStream, r: &mut BufReader<TcpStream>, line: &str) {
    c.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut back = String::new();
    r.read_line(&mut back).unwrap();
    assert_eq!(back, format!("{line}\n"));
}

/// A read deadline set off (a login done) disarms its timer at once: timers are at most
/// one per live connection and none when none is asked for.
#[test]
fn a_read_deadline_set_off_disarms_its_timer_at_once() {
    let mut s = util::net_schedule();
    let listener = util::listen(&s);
    let addr = listener.local_addr();
    let (frames, lost) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    let server = Server::stackless(
        listener,
        Scripts {
            frames: frames.clone(),
            lost: lost.clone(),
        },
    );
    server.start(&mut *s).unwrap();
    let peer = std::thread::spawn(move || {
        let (mut c, mut r) = client(addr);
        ask(&mut c, &mut r, "arm");
        ask(&mut c, &mut r, "off");
        c
    });
    util::run_until(&mut s, "two frames", || frames.get() == 2);
    let c = util::on_thread_within("the peer", 10, move || peer.join().unwrap());
    s.run_for(Duration::from_millis(20)).unwrap();
    assert_eq!(
        util::net_stats(&s).timers,
        0,
        "the read timer of a deadline set off is still armed"
    );
    drop(c);
    util::run_until(&mut s, "the loss", || lost.get() == 1);
}

/// Takes the line that came (arming the watch again while none did), then closes.
fn watch_job(conn: Conn, seen: Rc<RefCell<Option<Vec<u8>>>>) -> Box<dyn InputJob> {
    Box::new(move |h: &Handle| {
        match h.yield_op(TryReceive::into_buf(&conn, Vec::new())) {
            Tried::Frame(line) => *seen.borrow_mut() = Some(line),
            Tried::Nothing(_) => {
                let again = watch_job(conn.clone(), seen);
                if h.yield_op(OnInput::new(&conn, "watch", again)).is_ok() {
                    return;
                }
            }
            Tried::Failed(_) => {}
        }
        conn.close();
    })
}

/// A connection whose only life is its input watch is still served by `run_for` when no
/// tasklet is left: the schedule keeps running while a plugin has armed watches, and
/// returns once they are gone.
#[test]
fn run_serves_armed_input_watches_when_no_tasklet_is_left() {
    let peer_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = peer_listener.local_addr().unwrap();
    let peer = std::thread::spawn(move || {
        let (mut c, _) = peer_listener.accept().unwrap();
        // Long enough for the schedule to be left with the watch alone.
        std::thread::sleep(Duration::from_millis(100));
        c.write_all(b"late\n").unwrap();
        let mut rest = String::new();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = std::io::Read::read_to_string(&mut c, &mut rest);
    });
    let mut s = util::net_schedule();
    let got: Rc<RefCell<Option<Vec<u8>>>> = Rc::default();
    let seen = got.clone();
    s.spawn(move |h| {
        let conn = h
            .yield_op(Connect::new(addr, ConnOptions::new()))
            .expect("connect");
        h.yield_op(OnInput::new(&conn, "watch", watch_job(conn.clone(), seen)))
            .unwrap();
        // Ends: the connection is left to its watch.
    })
    .unwrap();
    let started = std::time::Instant::now();
    let left = s.run_for(Duration::from_secs(10)).unwrap();
    assert_eq!(
        got.borrow().as_deref(),
        Some(&b"late"[..]),
        "the watch never ran"
    );
    assert!(!left, "run_for returns once the watch is done");
    assert!(started.elapsed() < Duration::from_secs(10));
    drop(s);
    peer.join().unwrap();
}

/// An activation of a stackless session (a line comes to an idle connection, its callback
/// runs on a pooled stack, the watch is armed again) allocates nothing: the job and its
/// state are reused, not boxed anew each time.
#[test]
fn a_stackless_activation_allocates_nothing() {
    const WARM: u64 = 200;
    const LINES: u64 = 1000;
    let mut s = util::net_schedule();
    let listener = util::listen(&s);
    let addr = listener.local_addr();
    let (frames, lost) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    Server::stackless(
        listener,
        Scripts {
            frames: frames.clone(),
            lost: lost.clone(),
        },
    )
    .start(&mut *s)
    .unwrap();
    let peer = std::thread::spawn(move || {
        let (mut c, mut r) = client(addr);
        // One line at a time: each comes to an idle connection, one activation each.
        for _ in 0..WARM + LINES {
            ask(&mut c, &mut r, "ping");
        }
        c
    });
    util::run_until(&mut s, "the warm-up", || frames.get() >= WARM);
    let before = allocs();
    util::run_until(&mut s, "every line", || frames.get() == WARM + LINES);
    let made = allocs() - before;
    let c = util::on_thread_within("the peer", 20, move || peer.join().unwrap());
    assert!(
        made < LINES / 10,
        "{made} allocations for {LINES} activations"
    );
    drop(c);
    util::run_until(&mut s, "the loss", || lost.get() == 1);
}

/// What the hostile tests' sessions saw: per connection (1, 2, ... in accept order), the
/// callbacks in order.
type Seen = Log;

/// A hostile protocol: each frame names what to do.
struct Hostile {
    n: u64,
    seen: Seen,
    room: Rc<RefCell<Vec<Transport>>>,
    server: Rc<RefCell<Option<Server>>>,
}

impl Hostile {
    fn note(&self, what: impl Into<String>) {
        self.seen.borrow_mut().push((self.n, what.into()));
    }
}

impl Protocol for Hostile {
    fn connection_made(&mut self, _h: &Handle, t: &Transport) {
        self.room.borrow_mut().push(t.clone());
        self.note("made");
        if self.n == 1 && self.seen.borrow().iter().any(|(_, e)| e == "panic made") {
            panic!("connection_made");
        }
    }

    fn frame_received(&mut self, h: &Handle, t: &Transport, frame: &[u8]) {
        let text = String::from_utf8_lossy(frame).into_owned();
        self.note(format!("frame {text}"));
        let room = self.room.borrow().clone();
        match text.split_once(' ').unwrap_or((&text, "")) {
            ("park", _) => h.sleep(Duration::from_secs(3600)),
            ("panic", _) => panic!("frame_received"),
            ("stop", _) => {
                let server = self.server.borrow().clone();
                server.unwrap().stop();
                let _ = t.send(b"after stop");
            }
            ("close", i) => room[i.parse::<usize>().unwrap() - 1].close(),
            ("abort", i) => room[i.parse::<usize>().unwrap() - 1].abort(),
            ("to", i) => {
                // To another connection (idle, or this one, mid-activation), then close it.
                let other = &room[i.parse::<usize>().unwrap() - 1];
                let _ = other.send(b"from a neighbour");
                other.close();
                let _ = t.send(b"sent");
            }
            _ => {
                let _ = t.send(frame);
            }
        }
    }

    fn connection_lost(&mut self, reason: &Ended) {
        self.note(format!("lost {reason:?}"));
        if self.n == 2
            && self
                .seen
                .borrow()
                .iter()
                .any(|(_, e)| e == "frame lostpanic")
        {
            panic!("connection_lost");
        }
    }
}

struct Hostiles {
    next: u64,
    seen: Seen,
    room: Rc<RefCell<Vec<Transport>>>,
    server: Rc<RefCell<Option<Server>>>,
}

impl Factory for Hostiles {
    type Protocol = Hostile;
    fn build_protocol(&mut self, _peer: SocketAddr) -> Option<Hostile> {
        self.next += 1;
        Some(Hostile {
            n: self.next,
            seen: self.seen.clone(),
            room: self.room.clone(),
            server: self.server.clone(),
        })
    }
}

struct HostileSetup {
    s: util::TestSchedule,
    addr: SocketAddr,
    seen: Seen,
}

fn hostile() -> HostileSetup {
    let mut s = util::net_schedule();
    let listener = util::listen(&s);
    let addr = listener.local_addr();
    let seen = Seen::default();
    let server = Rc::new(RefCell::new(None));
    let started = Server::stackless(
        listener,
        Hostiles {
            next: 0,
            seen: seen.clone(),
            room: Rc::default(),
            server: server.clone(),
        },
    );
    started.start(&mut *s).unwrap();
    *server.borrow_mut() = Some(started);
    HostileSetup { s, addr, seen }
}

/// A callback that parks for an hour holds its own connection only: the others are served,
/// and a stop ends the parked one too, each told once.
#[test]
fn hostile_a_parked_callback_holds_up_only_its_connection_and_a_stop_ends_it() {
    let HostileSetup { mut s, addr, seen } = hostile();
    let mut a = recorder::client(addr);
    util::run_until(&mut s, "a", || events(&seen, 1).len() == 1);
    let mut b = recorder::client(addr);
    util::run_until(&mut s, "b", || events(&seen, 2).len() == 1);
    a.write_all(b"park\n").unwrap();
    util::run_until(&mut s, "a parks", || events(&seen, 1).len() == 2);
    let peer = std::thread::spawn(move || {
        let mut r = BufReader::new(b.try_clone().unwrap());
        b.write_all(b"hello\n").unwrap();
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        b.write_all(b"stop\n").unwrap();
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut r, &mut rest);
        (line, rest)
    });
    util::run_until(&mut s, "both lost", || {
        lost_count(&seen, 1) == 1 && lost_count(&seen, 2) == 1
    });
    let (line, rest) = util::on_thread_within("b", 10, move || peer.join().unwrap());
    assert_eq!(line, "hello\n");
    assert_eq!(rest, "after stop\n");
    s.run_for(Duration::from_millis(50)).unwrap();
    assert_eq!(lost_count(&seen, 1), 1, "{:?}", events(&seen, 1));
    assert_eq!(lost_count(&seen, 2), 1, "{:?}", events(&seen, 2));
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut a, &mut rest);
    drop(s);
    assert_eq!(lost_count(&seen, 1), 1);
}

/// A callback closes another idle stackless connection, and (`to 2` from 2) its own, mid-
/// activation: the output it queued leaves, each is told once.
#[test]
fn hostile_a_callback_closes_another_connection_and_its_own() {
    let HostileSetup { mut s, addr, seen } = hostile();
    let mut a = recorder::client(addr);
    util::run_until(&mut s, "a", || events(&seen, 1).len() == 1);
    let b = recorder::client(addr);
    util::run_until(&mut s, "b", || events(&seen, 2).len() == 1);
    let mut c = recorder::client(addr);
    util::run_until(&mut s, "c", || events(&seen, 3).len() == 1);
    a.write_all(b"to 2\n").unwrap();
    c.write_all(b"to 3\nafter\n").unwrap();
    util::run_until(&mut s, "b and c lost", || {
        lost_count(&seen, 2) == 1 && lost_count(&seen, 3) == 1
    });
    let read_all = |mut x: TcpStream| {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut x, &mut rest);
        rest
    };
    let rb = std::thread::spawn(move || read_all(b));
    let rc = std::thread::spawn(move || read_all(c));
    s.run_for(Duration::from_millis(50)).unwrap();
    assert_eq!(rb.join().unwrap(), "from a neighbour\n");
    // Its own close takes effect when the callback returns: what it sent before goes out.
    assert_eq!(rc.join().unwrap(), "from a neighbour\nsent\n");
    assert_eq!(lost_count(&seen, 2), 1, "{:?}", events(&seen, 2));
    assert_eq!(lost_count(&seen, 3), 1, "{:?}", events(&seen, 3));
    assert!(!events(&seen, 3).contains(&"frame after".to_string()));
    let mut line = [0u8; 4];
    std::io::Read::read_exact(&mut a, &mut line).unwrap();
    assert_eq!(&line, b"sent");
    assert_eq!(lost_count(&seen, 1), 0);
}

/// Panics in connection_made and connection_lost end only their own connection; the server
/// goes on.
#[test]
fn hostile_panics_in_made_and_lost_end_only_their_connection() {
    util::panics_expected();
    let HostileSetup { mut s, addr, seen } = hostile();
    seen.borrow_mut().push((0, "panic made".into()));
    let mut a = recorder::client(addr);
    util::run_until(&mut s, "a lost", || lost_count(&seen, 1) == 1);
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut a, &mut rest);
    let mut b = recorder::client(addr);
    b.write_all(b"lostpanic\n").unwrap();
    util::run_until(&mut s, "b's frame", || events(&seen, 2).len() == 2);
    drop(b);
    util::run_until(&mut s, "b lost", || lost_count(&seen, 2) == 1);
    let mut c = recorder::client(addr);
    c.write_all(b"still here\n").unwrap();
    let mut r = BufReader::new(c);
    let peer = std::thread::spawn(move || {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        line
    });
    util::run_until(&mut s, "c's echo", || events(&seen, 3).len() == 2);
    s.run_for(Duration::from_millis(20)).unwrap();
    assert_eq!(peer.join().unwrap(), "still here\n");
    assert!(
        events(&seen, 1)[1].starts_with("lost Panicked"),
        "{:?}",
        events(&seen, 1)
    );
}

/// A peer sends a line and resets at once, or half-closes: the line is served (or not), and
/// the loss is told once.
#[test]
fn hostile_a_frame_then_a_reset_or_a_half_close_is_told_once() {
    let HostileSetup { mut s, addr, seen } = hostile();
    let mut halves = Vec::new();
    for n in 1..=20 {
        let mut p = recorder::client(addr);
        p.write_all(b"x\ny\n").unwrap();
        if n % 2 == 0 {
            socket2::SockRef::from(&p)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            drop(p);
        } else {
            p.shutdown(std::net::Shutdown::Write).unwrap();
            halves.push(p);
        }
        util::run_until(&mut s, "the loss", || lost_count(&seen, n) == 1);
    }
    s.run_for(Duration::from_millis(50)).unwrap();
    for n in 1..=20 {
        assert_eq!(lost_count(&seen, n), 1, "{n}: {:?}", events(&seen, n));
    }
    assert_eq!(util::net_stats(&s).watching, 0);
    drop(halves);
}

/// Sends a line on a connection when dropped: a job's destructor that uses the network.
struct SaysBye(Conn);

impl Drop for SaysBye {
    fn drop(&mut self) {
        let _ = self.0.try_send_frame(b"bye from a dropped job");
    }
}

/// A watch armed again replaces the first, whose job is dropped: its destructor may use
/// the network (here: a send), so it is dropped off the table, not while the plugin holds it.
#[test]
fn a_replaced_watchs_job_may_use_the_network_when_dropped() {
    let peer_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = peer_listener.local_addr().unwrap();
    let peer = std::thread::spawn(move || {
        let (c, _) = peer_listener.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut line = String::new();
        let _ = BufReader::new(c).read_line(&mut line);
        line
    });
    let mut s = util::net_schedule();
    let armed = Rc::new(Cell::new(0));
    let count = armed.clone();
    s.spawn(move |h| {
        let a = h.yield_op(Connect::new(addr, ConnOptions::new())).unwrap();
        // Nothing to read: the watches below stay armed, not fired.
        assert!(matches!(
            h.yield_op(TryReceive::into_buf(&a, Vec::new())),
            Tried::Nothing(_)
        ));
        let bye = SaysBye(a.clone());
        h.yield_op(OnInput::new(
            &a,
            "first",
            Box::new(move |_: &Handle| drop(bye)),
        ))
        .unwrap();
        count.set(1);
        // Replaces the first: its job (and the send in its destructor) goes.
        let b = a.clone();
        h.yield_op(OnInput::new(
            &a,
            "second",
            Box::new(move |_: &Handle| b.close()),
        ))
        .unwrap();
        count.set(2);
        a.close();
    })
    .unwrap();
    let _ = s.run_for(Duration::from_secs(5));
    assert_eq!(armed.get(), 2, "the second watch was armed");
    drop(s);
    let line = util::on_thread_within("the peer", 10, move || peer.join().unwrap());
    assert_eq!(line, "bye from a dropped job\n");
}
