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
    server.start(&mut s).unwrap();
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
    .start(&mut s)
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
