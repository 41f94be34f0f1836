//! eventlet's chat server example (23 lines of Python), on fibra: one tasklet per
//! participant, each line goes to everyone else, Ctrl-C stops it.
//!
//! ```text
//! cargo run --example eventlet_chat -- --addr 127.0.0.1:3000     # then: nc 127.0.0.1 3000
//! ```

#[path = "shared/cli.rs"]
mod cli;
#[path = "shared/stop_signals.rs"]
mod stop_signals;

use std::error::Error;

use fibra::net::{ops::Accept, Conn, ConnOptions, Group, ListenOptions, NetExt};
use fibra::signal::{ops::WaitSignal, Signal};
use fibra::{rt::Either, tasks::TasksExt, Handle};

fn read_chat_forever(h: &Handle, conn: Conn, participants: Group) {
    while let Ok(line) = h.receive_line(&conn) {
        stop_signals::say!("Chat: {}", line.trim());
        // Everyone but the writer, in the round's one batch; never parks.
        let _ = participants.send_line_except(&conn, &line);
    }
    participants.remove(&conn);
    stop_signals::say!("Participant left chat.");
}

const HELP: &str = "eventlet_chat: eventlet's chat server example, each line to everyone \
else (nc to it)

usage: eventlet_chat [--addr HOST:PORT]
  --addr  where to listen (default 127.0.0.1:3000)";

/// Every member's connection: up to 1 MiB of output it has not read yet (the chatter's
/// `--max-outbound`), so that a burst another member pastes (300 KB in one write, read by
/// the server within a millisecond) reaches a member that reads; past it, the member is slow.
fn member_options() -> ListenOptions {
    ListenOptions::new().with_conn(ConnOptions::new().with_send_limit(1024 * 1024))
}

fn main() -> Result<(), cli::Failure> {
    let mut addr = "127.0.0.1:3000".to_owned();
    let mut args = cli::Args::new("eventlet_chat", HELP);
    while let Some(flag) = args.next_flag() {
        match flag.as_str() {
            "--addr" => addr = args.value(&flag),
            other => args.unknown(other),
        }
    }
    let mut schedule = fibra::schedule()?;
    // Caught before the address is said: a stop signal from then on gets the clean stop.
    stop_signals::catch(&mut schedule, &[Signal::INT, Signal::TERM])?;
    schedule.block_on(move |h| -> Result<(), Box<dyn Error>> {
        let server = h.listen_with(addr.as_str(), member_options())?;
        stop_signals::say!("ChatServer starting up on {}", server.local_addr());
        let participants = Group::new();
        // The first of: a new participant, or Ctrl-C (eventlet's KeyboardInterrupt).
        let interrupt = || WaitSignal::new(&[Signal::INT, Signal::TERM]);
        while let Either::First(accepted) = h.select(Accept::new(&server), interrupt()) {
            let (conn, _) = accepted?;
            stop_signals::say!("Participant joined chat.");
            let _ = participants.add(&conn); // one already gone is not added, and leaves
            let participants = participants.clone();
            h.spawn_detached(move |h| read_chat_forever(h, conn, participants))?;
        }
        stop_signals::say!("ChatServer exiting.");
        Ok(())
    })??;
    Ok(())
}
