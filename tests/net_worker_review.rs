//! A hostile review of the input-job worker pool (`engine/table/watch.rs`): workers shared
//! by every stackless connection of a schedule, whatever server or job armed them.

mod util;

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::time::{Duration, Instant};

use fibra::net::{Ended, Factory, Protocol, Server, Transport};
use fibra::rt::{Handle, Schedule};
use fibra::tasks::TasksExt;
use util::recorder::{events, Log};

/// Per connection (numbered by server: `x1`, `y1`...), what its callbacks saw.
type Servers = Rc<RefCell<HashMap<&'static str, Server>>>;

struct Cmd {
    tag: String,
    n: u64,
    log: Log,
    servers: Servers,
}

impl Cmd {
    fn note(&self, what: String) {
        self.log
            .borrow_mut()
            .push((self.n, format!("{} {what}", self.tag)));
    }
}

impl Protocol for Cmd {
    fn connection_made(&mut self, _h: &Handle, _t: &Transport) {
        self.note("made".into());
    }

    fn frame_received(&mut self, h: &Handle, t: &Transport, frame: &[u8]) {
        let text = String::from_utf8_lossy(frame).into_owned();
        self.note(format!("frame {text}"));
        match text.split_once(' ').unwrap_or((&text, "")) {
            ("stop", which) => {
                let server = self.servers.borrow().get(which).cloned().unwrap();
                server.stop();
            }
            ("slow", _) => {
                h.sleep(Duration::from_millis(300));
                let _ = t.send_line("slow done");
            }
            _ => {
                let _ = t.send_line(&text);
            }
        }
    }

    fn connection_lost(&mut self, reason: &Ended) {
        self.note(format!("lost {reason:?}"));
    }
}

struct Cmds {
    tag: &'static str,
    base: u64,
    next: u64,
    log: Log,
    servers: Servers,
}

impl Factory for Cmds {
    type Protocol = Cmd;
    fn build_protocol(&mut self, _peer: SocketAddr) -> Option<Cmd> {
        self.next += 1;
        Some(Cmd {
            tag: format!("{}{}", self.tag, self.next),
            n: self.base + self.next,
            log: self.log.clone(),
            servers: self.servers.clone(),
        })
    }
}

fn start(
    s: &mut Schedule,
    tag: &'static str,
    base: u64,
    log: &Log,
    servers: &Servers,
) -> SocketAddr {
    let listener = util::listen(s);
    let addr = listener.local_addr();
    let server = Server::stackless(
        listener,
        Cmds {
            tag,
            base,
            next: 0,
            log: log.clone(),
            servers: servers.clone(),
        },
    );
    server.start(&mut *s).unwrap();
    servers.borrow_mut().insert(tag, server);
    addr
}

/// How many times connection `n` was told `connection_lost`.
fn lost_count(log: &Log, n: u64) -> usize {
    events(log, n)
        .iter()
        .filter(|e| e.contains(" lost "))
        .count()
}

fn client(addr: SocketAddr) -> TcpStream {
    let c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c
}

/// Ticks for `d` (the listeners keep `run_for` from returning early anyway).
fn tick_for(s: &mut Schedule, d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        s.tick_within(Duration::from_millis(2)).unwrap();
    }
}

/// An admin connection of server X stops X from its own callback; in the same round, a
/// connection of server Y (not stopped) asked for something that parks. The stop kills the
/// worker running the admin's job (`Transport::kill_session` → `Unparker::kill`), a kill
/// carried out only once that worker's run ends: by then the worker has taken Y's job from
/// the ready queue, and Y's session dies with it.
#[test]
fn stopping_one_server_from_its_callback_kills_no_session_of_another_server() {
    let mut s = util::net_schedule();
    let log = Log::default();
    let servers = Servers::default();
    let x = start(&mut s, "x", 0, &log, &servers);
    let y = start(&mut s, "y", 100, &log, &servers);
    let mut admin = client(x);
    util::run_until(&mut s, "x1 made", || events(&log, 1).len() == 1);
    let mut user = client(y);
    util::run_until(&mut s, "y1 made", || events(&log, 101).len() == 1);
    // Both idle, watches armed.
    tick_for(&mut s, Duration::from_millis(30));
    // Both lines come in one poll round, the admin's first.
    admin.write_all(b"stop x\n").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    user.write_all(b"slow\n").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    tick_for(&mut s, Duration::from_millis(600));
    assert_eq!(
        lost_count(&log, 1),
        1,
        "x1 not told: {:?}; tasklets {:?}",
        log.borrow(),
        s.tasklets()
            .map(|t| format!("{} {:?}", t.name, t.waiting_on))
            .collect::<Vec<_>>()
    );
    let y1 = events(&log, 101);
    assert!(
        !y1.iter().any(|e| e.contains("lost")),
        "server Y was not stopped, yet its session ended: {y1:?} (all: {:?})",
        log.borrow()
    );
    let mut r = BufReader::new(user.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "slow done\n");
}

/// A worker killed before its first step (the host kills a runnable "session" tasklet, as it
/// may kill any tasklet) never asks for a job, so the table counts it as starting for ever:
/// no worker is started again while jobs wait, and the connection whose job fired (and
/// every later one that finds no idle worker) is never served nor closed. Before, the kill
/// dropped that activation's job: `connection_lost(Killed)`, connection closed.
#[test]
fn a_worker_killed_before_its_first_step_leaves_no_job_waiting_for_ever() {
    let mut s = Schedule::builder().step_budget(1).build();
    s.add_plugin(fibra::tasks::TasksPlugin::new()).unwrap();
    s.add_plugin(fibra::net::NetPlugin::new().unwrap()).unwrap();
    let log = Log::default();
    let servers = Servers::default();
    let y = start(&mut s, "y", 0, &log, &servers);
    // Something else runnable, so that a tick's one step is not the new worker's.
    let busy = Rc::new(std::cell::Cell::new(true));
    let going = busy.clone();
    s.spawn_named("busy", move |h| {
        while going.get() {
            h.yield_now();
        }
    })
    .unwrap();
    let mut c1 = client(y);
    util::run_until(&mut s, "y1 made", || events(&log, 1).len() == 1);
    tick_for(&mut s, Duration::from_millis(30));
    c1.write_all(b"hello\n").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let deadline = Instant::now() + Duration::from_secs(5);
    let killed = loop {
        assert!(Instant::now() < deadline, "no worker seen");
        s.tick().unwrap();
        let starting = s
            .tasklets()
            .find(|t| t.name == "session" && t.waiting_on.is_none())
            .map(|t| t.id);
        if let Some(id) = starting {
            break id;
        }
        if !events(&log, 1).iter().all(|e| e.contains("made")) {
            panic!("the job ran before the host could look: {:?}", log.borrow());
        }
    };
    assert!(s.kill(killed));
    busy.set(false);
    tick_for(&mut s, Duration::from_millis(500));
    let y1 = events(&log, 1);
    assert!(
        y1.len() > 1,
        "y1's line was neither served nor its connection ended: {y1:?}; {:?}",
        util::net_stats(&s)
    );
    // And a later connection is served.
    let mut c2 = client(y);
    util::run_until(&mut s, "y2 made", || events(&log, 2).len() == 1);
    c2.write_all(b"ping\n").unwrap();
    let mut r = BufReader::new(c2.try_clone().unwrap());
    let reader = std::thread::spawn(move || {
        let mut line = String::new();
        let _ = r.read_line(&mut line);
        line
    });
    tick_for(&mut s, Duration::from_millis(500));
    assert_eq!(
        events(&log, 2),
        ["y2 made", "y2 frame ping"],
        "a later connection is not served"
    );
    drop(c2.shutdown(std::net::Shutdown::Both));
    assert_eq!(reader.join().unwrap(), "ping\n");
}

const CHILD: &str = "FIBRA_WORKER_REVIEW_CHILD";

/// Limits this process's address space to what it maps now and a little more (`tight`), so
/// that no tasklet stack can be mapped, or lifts the limit.
fn limit_address_space(tight: bool) {
    let cur = match tight {
        true => {
            let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
            let pages: u64 = statm.split_whitespace().next().unwrap().parse().unwrap();
            pages * 4096 + 64 * 1024
        }
        false => libc::RLIM_INFINITY,
    };
    let rlim = libc::rlimit {
        rlim_cur: cur,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit with a valid struct.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &rlim) }, 0);
}

/// For a child process (it limits its memory): a connection watched by a job, no tasklet
/// left, then no stack can be mapped, then the peer's line comes: the job fires with no
/// worker to start. Returns the schedule, whether the job ran, and the peer's thread (to
/// keep while the schedule runs).
fn a_job_fired_without_a_stack() -> (
    Schedule,
    Rc<std::cell::Cell<bool>>,
    std::thread::JoinHandle<()>,
) {
    use fibra::net::ops::{Connect, InputJob, OnInput, Tried, TryReceive};
    use fibra::net::{Conn, ConnOptions};
    let _ = env_logger::Builder::new()
        .filter_module("fibra_net", log::LevelFilter::Warn)
        .try_init();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let peer = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        go_rx.recv().unwrap();
        c.write_all(b"late\n").unwrap();
        std::thread::sleep(Duration::from_secs(5));
    });
    let mut s = Schedule::builder()
        .stack_size(256 * 1024)
        .stack_pool_cap(0)
        .build();
    s.add_plugin(fibra::tasks::TasksPlugin::new()).unwrap();
    s.add_plugin(fibra::net::NetPlugin::new().unwrap()).unwrap();
    let seen = Rc::new(std::cell::Cell::new(false));
    fn job(conn: Conn, seen: Rc<std::cell::Cell<bool>>) -> Box<dyn InputJob> {
        Box::new(move |h: &Handle| {
            if let Tried::Frame(_) = h.yield_op(TryReceive::into_buf(&conn, Vec::new())) {
                seen.set(true);
            }
        })
    }
    let s2 = seen.clone();
    s.spawn(move |h| {
        let conn = h.yield_op(Connect::new(addr, ConnOptions::new())).unwrap();
        // Drained first (nothing came yet): the watch is armed without firing.
        let _ = h.yield_op(TryReceive::into_buf(&conn, Vec::new()));
        h.yield_op(OnInput::new(&conn, "watch", job(conn.clone(), s2)))
            .unwrap();
    })
    .unwrap();
    // The connect, then the watch alone (no tasklet left).
    let deadline = Instant::now() + Duration::from_secs(5);
    while !s.is_empty() {
        assert!(Instant::now() < deadline);
        s.tick_within(Duration::from_millis(5)).unwrap();
    }
    assert_eq!(util::net_stats(&s).watching, 1);
    limit_address_space(true);
    go_tx.send(()).unwrap();
    (s, seen, peer)
}

/// No stack can be mapped when a watch fires: the job goes to the ready queue, and the
/// watch count (`NetPlugin::has_work`) no longer counts it. With no tasklet left, `run_for`
/// returns "no work left" at once while the job waits, never run nor dropped (its
/// connection neither served nor closed). Before, the watch stayed armed and `run` kept
/// trying to start it.
#[test]
fn run_does_not_end_while_a_fired_job_waits_for_a_worker() {
    if std::env::var(CHILD).as_deref() == Ok("enomem") {
        let (mut s, seen, peer) = a_job_fired_without_a_stack();
        let started = Instant::now();
        let left = s.run_for(Duration::from_secs(2)).unwrap();
        println!(
            "run_for returned after {:?}: work left {left}, job ran {}, stats {:?}",
            started.elapsed(),
            seen.get(),
            util::net_stats(&s)
        );
        if !left && !seen.get() {
            println!("STRANDED");
        }
        drop(peer);
        std::process::exit(0);
    }
    let (ok, out) = util::run_in_child(
        "run_does_not_end_while_a_fired_job_waits_for_a_worker",
        (CHILD, "enomem"),
        Duration::from_secs(30),
    );
    assert!(ok, "{out}");
    assert!(
        !out.contains("STRANDED"),
        "run_for ended with a fired job never run: {out}"
    );
}

/// The job's worker could not be started, and no other event is coming: the schedule keeps a
/// deadline to try again, and the job runs once stacks can be mapped (before, a quiet
/// schedule slept in its poller for good: `run` never ran it).
#[test]
fn a_job_whose_worker_could_not_start_runs_once_stacks_are_back() {
    if std::env::var(CHILD).as_deref() == Ok("retry") {
        let (mut s, seen, peer) = a_job_fired_without_a_stack();
        // The job fires; its worker cannot be started.
        let until = Instant::now() + Duration::from_millis(300);
        while Instant::now() < until {
            s.tick_within(Duration::from_millis(5)).unwrap();
        }
        let failed_start = !seen.get();
        limit_address_space(false);
        // Nothing else will happen on this schedule: it must know when to try again.
        let retry = s.next_deadline();
        let until = Instant::now() + Duration::from_secs(10);
        while !seen.get() && Instant::now() < until {
            s.tick_within(Duration::from_secs(1)).unwrap();
        }
        println!(
            "failed start {failed_start}; a deadline to retry {}; the job ran {}",
            retry.is_some(),
            seen.get()
        );
        if !failed_start {
            println!("NO FAILED START");
        } else if retry.is_none() || !seen.get() {
            println!("STRANDED");
        }
        drop(peer);
        std::process::exit(0);
    }
    let (ok, out) = util::run_in_child(
        "a_job_whose_worker_could_not_start_runs_once_stacks_are_back",
        (CHILD, "retry"),
        Duration::from_secs(30),
    );
    assert!(ok, "{out}");
    assert!(
        !out.contains("NO FAILED START"),
        "the worker's start did not fail: the scenario did not happen: {out}"
    );
    assert!(
        !out.contains("STRANDED") && out.contains("the job ran true"),
        "a quiet schedule had no deadline to start the job's worker again: {out}"
    );
}
