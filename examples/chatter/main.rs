//! The chatter: the classic fibra demo, a line-based chat server.
//!
//! ```text
//! cargo run --release --example chatter              # listens on 127.0.0.1:1980
//! cargo run --release --example chatter -- --addr 127.0.0.1:4000 --max-line 1024
//! telnet 127.0.0.1 1980                              # or: nc 127.0.0.1 1980
//! ```
//!
//! Answer `What is your handle?`, then every line you type is said to everyone in your room.
//! Commands: `/who`, `/msg <handle> <text>`, `/join <room>` (everyone enters `lobby`; not
//! with `--redis` yet), `/quit`. With `--idle-members stackful`, one
//! tasklet per connection, written as plain sequential code (`session.rs`); by default a
//! silent connection holds no tasklet, and its lines run on pooled ones (`stackless.rs`,
//! ~1.2-1.7 KiB per idle connection instead of ~5-11); the rules are in `protocol.rs`. Ctrl-C stops it
//! cleanly (everyone is told, connections close gracefully). Logs: `RUST_LOG=debug`;
//! the room's and the network's counters every second: `RUST_LOG=chatter::stats=debug`
//! (with `--threads`, each thread's room counters).
//!
//! `--threads N` serves one room from N schedules on N threads (`relay.rs`, `hub.rs`):
//! handles are unique across threads, every line reaches every member on every thread in the
//! order it was said (crossing once to each other thread with a member in its room), `/who` lists everyone, `/msg`
//! reaches a member anywhere, and each thread cuts off its own slow members. New connections
//! go to the least-loaded thread (`--accept handoff`, the default) or to the kernel's choice
//! among one `SO_REUSEPORT` listener per thread (`--accept reuseport`). The web page is
//! served by thread 0.
//!
//! `--redis redis://HOST:PORT --node NAME` makes every chatter on that Redis one room
//! (`fed/`, `docs/federation.md`): the room's Redis Stream is the order of its lines, joins
//! and leaves; handles are claimed there with a TTL the node's heartbeat refreshes; a node
//! that loses Redis serves its own members alone until it is back; a dead node's members are
//! reaped by one of the others.
//!
//! `--tls-cert FILE --tls-key FILE` (PEM) serves the chat over TLS too (`tls.rs`): line
//! clients on `--tls-addr` (127.0.0.1:1983; `openssl s_client -connect 127.0.0.1:1983`),
//! the web page over HTTPS and WSS on `--tls-web-addr` (127.0.0.1:1993), in the same room
//! as plain members. With `--threads N`, the TLS port's connections go to the threads as
//! the telnet port's do (a hand-off by load, or a listener each with `--accept
//! reuseport`); the HTTPS page is served by thread 0.
//!
//! # The house
//!
//! Each schedule serves a `room::Chat`: its `room::Room` (the connections here, the
//! members among them, the fan-out to them) and the room's `reach::Reach` (how far the room
//! goes beyond this schedule). Sessions (`session.rs`) come in by doors: listeners and the
//! hand-off (`server.rs`), the web page (`web.rs`). A session asks the reach to claim a
//! handle, to say a line, to announce a join or a leave, to pass a whisper to someone not
//! here; the reach fans out to the members here through the room's calls (once per line,
//! never once per member) and carries the rest beyond with tasklets of its own, which
//! deliver what comes back through the room's inbound calls (`deliver`, `joined_elsewhere`,
//! `left_elsewhere`, `tell_here`). The room has no `if` about threads or nodes, and the
//! reach costs one trait call per line said, none per line delivered.
//!
//! - A new **reach** is a file that implements `Reach` and a `Chatter` constructor beside it
//!   (as `relay.rs` has `Chatter::start_threaded`). Federation through Redis fits: `claim`
//!   may park for a remote claim (the room is not borrowed then); `say`, `joined` and `left`
//!   publish to the shared log and leave the room alone, its tasklet fanning each entry out
//!   here (`Room::fan_out`/`announce`) when the log gives it back, in the log's order, and
//!   listing other nodes' members (`joined_elsewhere`), which `/who` then lists; `tell`
//!   routes a whisper to the node of a member the room lists as elsewhere; `pace` holds up
//!   speakers while its outbox is full; its tasklets go in `Room::tasklets` (ended by the
//!   stop; one that must still publish the stop's leaves stays out and ends itself), and its
//!   stop from a tasklet can be `shutdown::stop_here`. With `--threads`, each thread's room
//!   can have such a reach of its own.
//! - A new **door** (a TLS listener, HTTPS) is a file with a `Chatter` method that makes the
//!   listener and hands it to `Chatter::accept` (telnet sessions) or `Chatter::serve_page`
//!   (the web page): its connections are sessions of the same room.

// The room, its members and its doors.
mod config; // how the room treats its members: limits and timeouts
mod member; // membership: a claimed handle, the join, the leave announced exactly once
mod protocol; // the words: fixed lines, handle rules, commands (pure, fuzzed)
mod room; // the room here: connections, members, handles, the fan-out, counters
mod server; // `Chatter`, a running server, and its doors: listeners, the hand-off
mod session; // one connection: the login dialogue, then lines and /who /msg /quit
mod shutdown; // the stop: everyone told, connections closed gracefully
mod stackless; // `--idle-members stackless`: members without a tasklet while silent
mod tls; // the TLS doors: the chat over TLS, the web page over HTTPS and WSS
mod web; // the web page and its WebSocket members

// The room's reach beyond this schedule.
mod alone; // reach: this schedule alone (lines written in place)
mod fed; // reach: the chatters on one Redis (`--redis`), one room across machines
mod hub; // the threads' shared directory: handles, relay channels, loads
mod reach; // the `Reach` trait: claim, release, say, joined, left, tell, pace, charge
mod relay; // reach: the other threads' rooms, through the hub (forwarder, relay)

// How it runs: the process around the room.
#[path = "../shared/cli.rs"]
mod cli; // the flag reader the examples share
mod flags; // the command line: flags, defaults, help text
mod signal; // Ctrl-C and SIGTERM through the signals plugin
mod single; // one schedule on the main thread: host loop, stop, counters
mod threaded; // `--threads N`: N schedules (`Cores`), a hand-off or a listener each

use std::time::Duration;

/// How often `RUST_LOG=chatter::stats=debug` logs the counters.
const REPORT_EVERY: Duration = Duration::from_secs(1);

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let flags = flags::Flags::parse();
    let run = if flags.threads > 1 {
        threaded::run(flags)
    } else {
        single::run(flags)
    };
    if let Err(e) = run {
        log::error!(target: "chatter", "{e}");
        std::process::exit(1);
    }
}
