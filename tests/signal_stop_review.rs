//! A hostile review of how the server examples stop on SIGINT and SIGTERM (rev-e).
//!
//! - A signal sent as soon as an example has said where it listens (what a supervisor or a
//!   test waits for) must stop it cleanly, exit status 0: the signals are caught before the
//!   address is said, not at the first wait.
//! - An example whose stdout is a pipe nobody reads any more (`| head`), or a full disk,
//!   goes on serving, and stops with status 0.
//! - `Group::close_all`'s goodbye comes after what another group sent the member this round
//!   (the chatter's side: `chatter_stop_review`).
//! - `eventlet_chat` and `unblock_hash` stop cleanly on SIGTERM as on Ctrl-C.
//!
//! Each test failed on the code before its fix. `cargo build --examples` first.

mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Sends `signal` to our own child, by its pid.
fn signal(child: &Child, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: `kill` with a pid we spawned and have not reaped; it only sends a signal.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

/// Waits up to `limit` for our child to exit; kills it (by handle) past that.
fn wait(mut child: Child, name: &str, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill(); // our own child, by handle
            let _ = child.wait();
            panic!("{name} kept running");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn connect_within(addr: &str, limit: Duration) -> TcpStream {
    let deadline = Instant::now() + limit;
    loop {
        match TcpStream::connect(addr) {
            Ok(stream) => return stream,
            Err(e) if Instant::now() > deadline => panic!("no server on {addr}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// The examples that wait for their stop signal with `h.signals`/`WaitSignal` (the chatter,
/// `echo` and `host_loop` catch theirs before listening already), and the signal each stops on.
const LAZY: [(&str, libc::c_int); 9] = [
    ("gnet_echo", libc::SIGINT),
    ("web_hello", libc::SIGINT),
    ("abchat", libc::SIGINT),
    ("timeserver", libc::SIGINT),
    ("gettime", libc::SIGINT),
    ("hertz", libc::SIGINT),
    ("service", libc::SIGINT),
    ("eventlet_chat", libc::SIGINT),
    ("unblock_hash", libc::SIGINT),
];

/// Starts `name --addr 127.0.0.1:0`, and sends `sig` the moment a line of its output names
/// the address: the signal must find it caught. Returns the exit status.
fn signal_when_listening(name: &str, sig: libc::c_int) -> ExitStatus {
    let mut child = Command::new(util::example(name))
        .args(["--addr", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, said) = mpsc::channel::<String>();
    let outs: [Box<dyn Read + Send>; 2] = [
        Box::new(child.stdout.take().unwrap()),
        Box::new(child.stderr.take().unwrap()),
    ];
    for out in outs {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    loop {
        match said.recv_timeout(Duration::from_secs(10)) {
            Ok(line) if line.contains("127.0.0.1:") => break,
            Ok(_) => {}
            Err(e) => {
                let _ = child.kill(); // our own child, by handle
                let _ = child.wait();
                panic!("{name} never said its address ({e})");
            }
        }
    }
    signal(&child, sig);
    wait(child, name, Duration::from_secs(20))
}

#[test]
fn a_stop_signal_right_after_the_address_is_said_stops_every_example_cleanly() {
    let mut killed = Vec::new();
    for (name, sig) in LAZY {
        // The window was a few hundred microseconds to a few hundred milliseconds wide
        // (service: until its client had connected); a few tries find it.
        for _ in 0..4 {
            let status = signal_when_listening(name, sig);
            if !status.success() {
                killed.push(format!("{name}: {status}"));
                break;
            }
        }
    }
    assert!(
        killed.is_empty(),
        "a stop signal sent once the address was said ended these without their clean stop: \
         {killed:?}"
    );
}

/// Starts `name` on a free port with its stdout a pipe whose reader is gone (`| head`
/// after head exited), or `/dev/full`.
fn start_with_dead_stdout(name: &str, more: &[&str], full: bool) -> (Child, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let stdout = if full {
        Stdio::from(
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap(),
        )
    } else {
        Stdio::piped()
    };
    let mut child = Command::new(util::example(name))
        .args(["--addr", &addr])
        .args(more)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // nobody reads it any more
    (child, addr)
}

#[test]
fn a_server_whose_stdout_is_gone_goes_on_serving_and_stops_cleanly() {
    // (example, its extra flags, how long it must outlive its own reports)
    let runs: [(&str, &[&str], u64); 5] = [
        ("eventlet_chat", &[], 0),
        ("unblock_hash", &[], 0),
        ("service", &[], 0),
        ("hertz", &[], 1500),
        ("host_loop", &["--report", "1"], 1500),
    ];
    let mut failed = Vec::new();
    for full in [false, true] {
        for (name, more, outlive) in runs {
            let (child, addr) = start_with_dead_stdout(name, more, full);
            let mut a = connect_within(&addr, Duration::from_secs(10));
            let b = connect_within(&addr, Duration::from_secs(10));
            a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            // A line said (the chats print it), a handle for the chatter of host_loop.
            let _ = a.write_all(b"ada\r\nhello\r\n");
            std::thread::sleep(Duration::from_millis(300 + outlive));
            let mut child = child;
            if let Some(status) = child.try_wait().unwrap() {
                failed.push(format!(
                    "{name} (stdout {}): exited {status} while serving",
                    if full { "/dev/full" } else { "a closed pipe" }
                ));
                continue;
            }
            signal(&child, libc::SIGINT);
            let status = wait(child, name, Duration::from_secs(20));
            if !status.success() {
                failed.push(format!(
                    "{name} (stdout {}): {status} on SIGINT",
                    if full { "/dev/full" } else { "a closed pipe" }
                ));
            }
            drop((a, b));
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}

#[test]
fn sigterm_stops_eventlet_chat_and_unblock_hash_cleanly() {
    for name in ["eventlet_chat", "unblock_hash"] {
        let server = util::Example::start(name);
        let mut member = TcpStream::connect(&server.addr).unwrap();
        member
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let (status, said) = server.terminate();
        assert!(
            status.success(),
            "{name} exited {status} on SIGTERM:\n{said}"
        );
        let mut rest = Vec::new();
        member
            .read_to_end(&mut rest)
            .unwrap_or_else(|e| panic!("{name}: the member's connection ended with {e}"));
    }
}

/// The library side of the chatter's lost order: a line sent to one group (a room), then
/// `close_all(Some(goodbye))` on another group with the same member (everyone), in one round.
/// `close_all` says "what was sent is written first": the line must come before the goodbye.
#[test]
fn close_all_writes_what_another_group_sent_this_round_before_the_goodbye() {
    use fibra::net::{Group, NetExt};
    use fibra::tasks::TasksExt;
    let mut s = util::net_schedule();
    let order = std::rc::Rc::new(std::cell::RefCell::new(Vec::<String>::new()));
    let out = order.clone();
    s.spawn(move |h| {
        let listener = h.listen("127.0.0.1:0").unwrap();
        let client = h.connect(listener.local_addr()).unwrap();
        let (server, _) = h.accept(&listener).unwrap();
        let (room, everyone) = (Group::new(), Group::new());
        room.add(&server).unwrap();
        everyone.add(&server).unwrap();
        h.yield_now();
        // One round: the room's line, then everyone's goodbye and close.
        room.send_frame(b"ann says: hi").unwrap();
        everyone
            .close_all(Some(b"The server is shutting down."))
            .unwrap();
        while let Ok(frame) = h.receive(&client) {
            out.borrow_mut().push(String::from_utf8(frame).unwrap());
        }
    })
    .unwrap();
    util::run_all(&mut s, 20);
    assert_eq!(
        *order.borrow(),
        ["ann says: hi", "The server is shutting down."],
        "the goodbye must be the last thing written"
    );
}
