//! A chat (each line to everyone else) where `/hash NAME` reads a file and hashes it on a
//! thread of the blocking pool (`h.unblock`): reading and hashing a big file takes a while,
//! and the chat goes on meanwhile, since the schedule's thread never blocks on the disk. One
//! `/hash` at a time per member; a member whose output is full (64 KiB it has not read)
//! misses lines (`try_send_line` never parks).
//!
//! ```text
//! cargo run --example unblock_hash -- --dir /var/log     # then, in two terminals:
//! nc 127.0.0.1 3001                                      # type `/hash syslog`, and chat
//! ```

#[path = "shared/cli.rs"]
mod cli;
#[path = "shared/stop_signals.rs"]
mod stop_signals;

use std::cell::{Cell, RefCell};
use std::error::Error;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use fibra::net::{ops::Accept, Conn, ConnOptions, ListenOptions, NetExt};
use fibra::signal::{ops::WaitSignal, Signal};
use fibra::{rt::Either, tasks::TasksExt, Handle};

const HELP: &str = "unblock_hash: a chat where `/hash NAME` hashes a file off the schedule's \
thread while the chat goes on (nc to it)

usage: unblock_hash [--addr HOST:PORT] [--dir DIR]
  --addr  where to listen (default 127.0.0.1:3001)
  --dir   the folder whose files `/hash NAME` reads (default .)";

/// The 64-bit FNV-1a hash of what `reader` gives, and how many bytes it gave; read 64 KiB at
/// a time, so a file of any size takes the same memory.
fn fnv1a(mut reader: impl Read) -> std::io::Result<(u64, u64)> {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut len = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok((hash, len)),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        for &byte in &buf[..n] {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        len += n as u64;
    }
}

/// `name` inside `dir`, if it stays inside: no absolute path, no `..`.
fn inside(dir: &Path, name: &str) -> Option<PathBuf> {
    let name = Path::new(name);
    let plain = name
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    (plain && !name.as_os_str().is_empty()).then(|| dir.join(name))
}

/// Hashes `name` on the blocking pool and tells `conn` the result; this tasklet parks
/// meanwhile, and the schedule's others (the chat) run.
fn hash_file(h: &Handle, conn: &Conn, dir: &Path, name: &str) {
    let Some(path) = inside(dir, name) else {
        let _ = conn.try_send_line(&format!(
            "/hash: `{name}` is not a file name inside the folder"
        ));
        return;
    };
    let dir = dir.to_owned();
    let reply = match h.unblock(move || {
        // A link inside the folder may lead out of it: what it leads to must be inside.
        let (real, folder) = (path.canonicalize()?, dir.canonicalize()?);
        if !real.starts_with(&folder) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "it leads out of the folder",
            ));
        }
        std::fs::File::open(&real).and_then(fnv1a)
    }) {
        Ok(Ok((hash, len))) => format!("/hash {name}: fnv1a64 {hash:016x}, {len} bytes"),
        Ok(Err(e)) => format!("/hash {name}: {e}"),
        Err(e) => format!("/hash {name}: {e}"),
    };
    stop_signals::say!("{reply}");
    let _ = conn.try_send_line(&reply);
}

/// Marks a member's `/hash` in flight until its tasklet ends, however it ends.
struct Hashing(Rc<Cell<bool>>);

impl Drop for Hashing {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

fn chat(h: &Handle, conn: Conn, members: Rc<RefCell<Vec<Conn>>>, dir: Rc<PathBuf>) {
    // One `/hash` in flight per member: a member sending thousands would otherwise hold a
    // tasklet (a stack) and a place in the blocking pool's line for each.
    let hashing = Rc::new(Cell::new(false));
    while let Ok(line) = h.receive_line(&conn) {
        let line = line.trim_end();
        if let Some(name) = line.strip_prefix("/hash ") {
            if hashing.get() {
                let _ = conn.try_send_line("/hash: one at a time: wait for the last one's answer");
                continue;
            }
            // A tasklet of its own, so that this member's next lines are read meanwhile.
            let (asker, dir, name) = (conn.clone(), dir.clone(), name.trim().to_owned());
            hashing.set(true);
            let busy = Hashing(Rc::clone(&hashing));
            if h.spawn_detached(move |h| {
                let _busy = busy;
                hash_file(h, &asker, &dir, &name);
            })
            .is_err()
            {
                let _ = conn.try_send_line("/hash: busy, try again");
            }
            continue;
        }
        for m in members.borrow().iter().filter(|m| **m != conn) {
            let _ = m.try_send_line(line); // never parks: no borrow is held across a yield
        }
    }
    members.borrow_mut().retain(|m| *m != conn);
}

/// Every member's connection: up to 1 MiB of output it has not read yet (the chatter's
/// `--max-outbound`), so that a burst another member pastes (300 KB in one write, read by
/// the server within a millisecond) reaches a member that reads; past it, the member is slow.
fn member_options() -> ListenOptions {
    ListenOptions::new().with_conn(ConnOptions::new().with_send_limit(1024 * 1024))
}

fn main() -> Result<(), cli::Failure> {
    let mut addr = "127.0.0.1:3001".to_owned();
    let mut dir = PathBuf::from(".");
    let mut args = cli::Args::new("unblock_hash", HELP);
    while let Some(flag) = args.next_flag() {
        match flag.as_str() {
            "--addr" => addr = args.value(&flag),
            "--dir" => dir = PathBuf::from(args.value(&flag)),
            other => args.unknown(other),
        }
    }
    if !dir.is_dir() {
        args.fail(format!("--dir `{}`: not a folder", dir.display()));
    }
    let mut schedule = fibra::schedule()?;
    // Caught before the address is said: a stop signal from then on gets the clean stop.
    stop_signals::catch(&mut schedule, &[Signal::INT, Signal::TERM])?;
    schedule.block_on(move |h| -> Result<(), Box<dyn Error>> {
        let server = h.listen_with(addr.as_str(), member_options())?;
        stop_signals::say!(
            "unblock_hash: chat on {}, `/hash NAME` reads files under {}",
            server.local_addr(),
            dir.display()
        );
        let (members, dir) = (Rc::new(RefCell::new(Vec::new())), Rc::new(dir));
        let interrupt = || WaitSignal::new(&[Signal::INT, Signal::TERM]);
        while let Either::First(accepted) = h.select(Accept::new(&server), interrupt()) {
            let (conn, _) = accepted?;
            members.borrow_mut().push(conn.clone());
            let (members, dir) = (members.clone(), dir.clone());
            h.spawn_detached(move |h| chat(h, conn, members, dir))?;
        }
        stop_signals::say!("unblock_hash: stopped");
        Ok(())
    })??;
    Ok(())
}
