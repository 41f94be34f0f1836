//! The 2007 chatter, fibra's first demo (47 lines of Python generators in a blog post),
//! written against today's public API, method for method: `listener`, `login`, `chat`,
//! `lost_conn`, `broadcast`. The full chatter is `examples/chatter/`.
//!
//! ```text
//! cargo run --example chatter_2007                # then: telnet 127.0.0.1 2007
//! cargo run --example chatter_2007 -- --addr 127.0.0.1:4000
//! ```
//!
//! It listens on port 2007 (the full chatter has 1980, the original's port), so that both
//! may run at once.

#[path = "shared/cli.rs"]
mod cli;

use std::{cell::RefCell, collections::HashMap, rc::Rc};

use fibra::net::{Conn, ConnOptions, ListenOptions, NetExt};
use fibra::tasks::TasksExt;
use fibra::Handle;

/// Logged-in members by handle. Never borrowed across a yield.
type Members = Rc<RefCell<HashMap<String, Conn>>>;

fn listener(h: &Handle, addr: &str) -> Result<(), Box<dyn std::error::Error>> {
    let listener = h.listen_with(addr, member_options())?;
    eprintln!("chatter_2007 listening on {}", listener.local_addr());
    let members = Members::default();
    loop {
        let (conn, _peer) = h.accept(&listener)?;
        let members = members.clone();
        h.spawn_detached(move |h| drop(login(h, conn, members)))?;
    }
}

fn login(h: &Handle, conn: Conn, members: Members) -> Result<(), Box<dyn std::error::Error>> {
    let handle = loop {
        h.send_line(&conn, "What is your handle?")?;
        let handle = h.receive_line(&conn)?;
        if !members.borrow().contains_key(&handle) {
            break handle;
        }
        h.send_line(&conn, "That handle is already taken.")?;
    };
    members.borrow_mut().insert(handle.clone(), conn.clone());
    let (who, room) = (handle.clone(), members.clone());
    let chat = h.spawn_detached(move |h| chat(h, &conn, &who, &room))?;
    // However the chat ends (/quit, lost connection, kill), `lost_conn` runs once.
    h.on_finish(chat, move |h, _exit| lost_conn(h, &handle, &members))?;
    Ok(())
}

fn lost_conn(h: &Handle, handle: &str, members: &Members) {
    if members.borrow_mut().remove(handle).is_some() {
        broadcast(h, members, &format!("{handle} has left the chat."));
    }
}

fn broadcast(_h: &Handle, members: &Members, text: &str) {
    // Never parks: a member who stopped reading misses lines once its output is full,
    // instead of stalling whoever speaks.
    for conn in members.borrow().values() {
        let _ = conn.try_send_line(text);
    }
}

fn chat(h: &Handle, conn: &Conn, handle: &str, members: &Members) {
    broadcast(h, members, &format!("{handle} has joined the chat."));
    while let Ok(line) = h.receive_line(conn) {
        if line == "/quit" {
            break;
        }
        broadcast(h, members, &format!("{handle} says: {line}"));
    }
    let _ = h.close(conn);
}

const HELP: &str = "chatter_2007: the 2007 chatter, fibra's first demo, a line chat server \
(telnet to it)

usage: chatter_2007 [--addr HOST:PORT]
  --addr  where to listen (default 127.0.0.1:2007)";

/// Every member's connection: up to 1 MiB of output it has not read yet (the chatter's
/// `--max-outbound`), so that a burst another member pastes (300 KB in one write, read by
/// the server within a millisecond) reaches a member that reads; past it, the member is slow.
fn member_options() -> ListenOptions {
    ListenOptions::new().with_conn(ConnOptions::new().with_send_limit(1024 * 1024))
}

fn main() -> Result<(), cli::Failure> {
    let mut addr = "127.0.0.1:2007".to_owned();
    let mut args = cli::Args::new("chatter_2007", HELP);
    while let Some(flag) = args.next_flag() {
        match flag.as_str() {
            "--addr" => addr = args.value(&flag),
            other => args.unknown(other),
        }
    }
    // Runs until the listener fails (its error reaches here, and the exit status is 1).
    fibra::schedule()?.block_on(move |h| listener(h, &addr))??;
    Ok(())
}
