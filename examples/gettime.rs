//! IceServer's gettime server, step by step from its README: a telnet server whose line
//! `gettime` is answered with the time fetched from a back end (`examples/timeserver.rs`)
//! through a [`Pool`] of connections, passed on verbatim; when the back end cannot answer
//! within `--backend-timeout`, the answer is this machine's local time in RFC 3339
//! (`2026-12-01T19:45:03.123+01:00`) instead. Any other line gets `command wrong`. Lines end
//! with `\r\n` or `\n`; answers end with `\r\n` (IceServer's `TelnetProtocol`).
//!
//! ```text
//! cargo run --release --example timeserver &
//! cargo run --release --example gettime -- --addr 127.0.0.1:9999 --backend 127.0.0.1:10000 \
//!     --pool 3 --backend-timeout 1s
//! telnet 127.0.0.1 9999      # then type: gettime
//! ```
//!
//! The pool connects in the background and repairs itself: start the back end before or
//! after this server, stop it and start it again; answers come from it whenever it is up.
//! Ctrl-C stops it.

#[path = "shared/cli.rs"]
mod cli;
#[path = "shared/rfc3339.rs"]
mod rfc3339;
#[path = "shared/stop_signals.rs"]
mod stop_signals;

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use fibra::net::{Backoff, Conn, ConnOptions, Listener, NetExt, NetPlugin, Pool};
use fibra::signal::{Signal, SignalExt};
use fibra::tasks::TasksExt;
use fibra::Handle;

const HELP: &str = "gettime: IceServer's telnet server; `gettime` is answered by a back end \
(timeserver) via a pool

usage: gettime [--addr HOST:PORT] [--backend HOST:PORT] [--pool N]
               [--backend-timeout DURATION]
  --addr             where telnet clients connect (default 127.0.0.1:9999)
  --backend          the time server (default 127.0.0.1:10000, timeserver's)
  --pool             connections kept to it (default 3)
  --backend-timeout  how long an answer may take before the local time is given
                     instead: 1s, 250ms, 1.5 (seconds) (default 1s)";

struct Config {
    addr: String,
    backend: SocketAddr,
    pool: usize,
    timeout: Duration,
}

fn parse_args() -> Config {
    let mut config = Config {
        addr: "127.0.0.1:9999".to_owned(),
        backend: "127.0.0.1:10000".parse().unwrap(),
        pool: 3,
        timeout: Duration::from_secs(1),
    };
    let mut args = cli::Args::new("gettime", HELP);
    while let Some(flag) = args.next_flag() {
        let f = flag.as_str();
        match f {
            "--addr" => config.addr = args.value(f),
            "--backend" => {
                let v = args.value(f);
                config.backend = match v.to_socket_addrs().ok().and_then(|mut a| a.next()) {
                    Some(addr) => addr,
                    None => args.fail(format!("--backend `{v}` is not a HOST:PORT")),
                };
            }
            "--pool" => config.pool = args.number(f, 1, 1024) as usize,
            "--backend-timeout" => {
                let v = args.value(f);
                config.timeout = parse_duration(&v).unwrap_or_else(|| {
                    args.fail(format!("--backend-timeout `{v}`: give 1s, 250ms or 1.5"))
                });
            }
            _ => args.unknown(f),
        }
    }
    config
}

/// `250ms`, `1s`, `1.5` (seconds); at most an hour, more than zero.
fn parse_duration(text: &str) -> Option<Duration> {
    let d = if let Some(ms) = text.strip_suffix("ms") {
        Duration::from_millis(ms.parse().ok()?)
    } else {
        let secs: f64 = text.strip_suffix('s').unwrap_or(text).parse().ok()?;
        Duration::try_from_secs_f64(secs).ok()?
    };
    (d > Duration::ZERO && d <= Duration::from_secs(3600)).then_some(d)
}

fn main() -> Result<(), cli::Failure> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let config = parse_args();
    let mut schedule = fibra::schedule()?;
    // Caught before the address is said: a stop signal from then on gets the clean stop.
    stop_signals::catch(&mut schedule, &[Signal::INT, Signal::TERM])?;
    let listener = schedule
        .plugin::<NetPlugin>()
        .ok_or("no network plugin")?
        .listen(config.addr.as_str())
        .map_err(|e| format!("cannot serve gettime on `{}`: {e}", config.addr))?;
    // Quick repairs: a restarted back end is used again within a fraction of a second.
    let backoff = Backoff::new()
        .with_initial(Duration::from_millis(100))
        .with_max(Duration::from_secs(2))
        .with_stable_after(Duration::from_secs(1));
    let pool = Pool::new(config.backend, ConnOptions::new(), backoff, config.pool);
    pool.start(&mut schedule)?;
    log::info!(
        target: "gettime",
        "gettime listening on {}, back end {} ({} connections, answers within {:?})",
        listener.local_addr(),
        config.backend,
        config.pool,
        config.timeout
    );
    let timeout = config.timeout;
    let p = pool.clone();
    schedule.spawn(move |h| accept_loop(h, &listener, &p, timeout))?;
    let signal = schedule.block_on(|h| h.signals(&[Signal::INT, Signal::TERM]))??;
    pool.stop();
    log::info!(target: "gettime", "{signal}: stopped");
    Ok(())
}

fn accept_loop(h: &Handle, listener: &Listener, pool: &Pool, timeout: Duration) {
    loop {
        match h.accept(listener) {
            Ok((conn, peer)) => {
                let pool = pool.clone();
                if let Err(e) = h.spawn_detached(move |h| session(h, &conn, &pool, timeout)) {
                    log::warn!(target: "gettime", "cannot serve {peer}: {e}");
                }
            }
            Err(e) => log::warn!(target: "gettime", "accept failed: {e}"),
        }
    }
}

/// One telnet client: a command in, an answer out, until it leaves.
fn session(h: &Handle, conn: &Conn, pool: &Pool, timeout: Duration) {
    while let Ok(line) = h.receive_line(conn) {
        let answer = match line.trim() {
            "gettime" => match pool.request(h, b"gettime", timeout) {
                Ok(reply) => String::from_utf8_lossy(&reply).into_owned(),
                Err(e) => {
                    log::warn!(target: "gettime", "answering the local time: {e}");
                    rfc3339::local_now()
                }
            },
            _ => "command wrong".to_owned(),
        };
        if h.send(conn, format!("{answer}\r\n").as_bytes()).is_err() {
            return;
        }
    }
}
