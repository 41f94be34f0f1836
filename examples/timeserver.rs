//! IceServer's time back end: answers each line `gettime` with the current time, in UTC
//! RFC 3339 (`2026-12-01T18:45:03.123Z`); any other line gets `command wrong`. Lines end with
//! `\r\n` or `\n`; answers end with `\r\n`. The back end of `examples/gettime.rs`.
//!
//! ```text
//! cargo run --release --example timeserver -- --addr 127.0.0.1:10000
//! ```
//!
//! Ctrl-C stops it.

#[path = "shared/cli.rs"]
mod cli;
#[path = "shared/rfc3339.rs"]
mod rfc3339;
#[path = "shared/stop_signals.rs"]
mod stop_signals;

use fibra::net::{Conn, Listener, NetExt, NetPlugin};
use fibra::signal::{Signal, SignalExt};
use fibra::tasks::TasksExt;
use fibra::Handle;

const HELP: &str = "timeserver: IceServer's time back end; answers each line `gettime` with \
the UTC time

usage: timeserver [--addr HOST:PORT]
  --addr  where to listen (default 127.0.0.1:10000)";

fn main() -> Result<(), cli::Failure> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut addr = "127.0.0.1:10000".to_owned();
    let mut args = cli::Args::new("timeserver", HELP);
    while let Some(flag) = args.next_flag() {
        match flag.as_str() {
            "--addr" => addr = args.value(&flag),
            other => args.unknown(other),
        }
    }
    let mut schedule = fibra::schedule()?;
    // Caught before the address is said: a stop signal from then on gets the clean stop.
    stop_signals::catch(&mut schedule, &[Signal::INT, Signal::TERM])?;
    let listener = schedule
        .plugin::<NetPlugin>()
        .ok_or("no network plugin")?
        .listen(addr.as_str())
        .map_err(|e| format!("cannot serve the time on `{addr}`: {e}"))?;
    log::info!(target: "timeserver", "time server listening on {}", listener.local_addr());
    schedule.spawn(move |h| accept_loop(h, &listener))?;
    let signal = schedule.block_on(|h| h.signals(&[Signal::INT, Signal::TERM]))??;
    log::info!(target: "timeserver", "{signal}: stopped");
    Ok(())
}

fn accept_loop(h: &Handle, listener: &Listener) {
    loop {
        match h.accept(listener) {
            Ok((conn, peer)) => {
                log::debug!(target: "timeserver", "{peer} connected");
                if let Err(e) = h.spawn_detached(move |h| answer(h, &conn)) {
                    log::warn!(target: "timeserver", "cannot serve {peer}: {e}");
                }
            }
            Err(e) => log::warn!(target: "timeserver", "accept failed: {e}"),
        }
    }
}

/// One connection: a line in, a line out, until the peer leaves.
fn answer(h: &Handle, conn: &Conn) {
    while let Ok(line) = h.receive_line(conn) {
        let reply = match line.trim() {
            "gettime" => rfc3339::utc_now(),
            _ => "command wrong".to_owned(),
        };
        if h.send(conn, format!("{reply}\r\n").as_bytes()).is_err() {
            return;
        }
    }
}
