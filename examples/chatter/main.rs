//! The chatter: the classic fibra demo, a line-based chat server.
//!
//! ```text
//! cargo run --release --example chatter              # listens on 127.0.0.1:1980
//! cargo run --release --example chatter -- --addr 127.0.0.1:4000 --max-line 1024
//! telnet 127.0.0.1 1980                              # or: nc 127.0.0.1 1980
//! ```
//!
//! Answer `What is your handle?`, then every line you type is said to everyone.
//! Commands: `/who`, `/msg <handle> <text>`, `/quit`. One tasklet per connection, written
//! as plain sequential code (`server.rs`); the rules are in `protocol.rs`. Ctrl-C stops it
//! cleanly (everyone is told, connections close gracefully). Logs: `RUST_LOG=debug`;
//! the room's and the network's counters every second: `RUST_LOG=chatter::stats=debug`
//! (with `--threads`, each thread's room counters).
//!
//! `--threads N` serves one room from N schedules on N threads (`hub.rs`): handles are
//! unique across threads, every line reaches every member on every thread in the order it
//! was said (crossing to each other thread once), `/who` lists everyone, `/msg` reaches a
//! member anywhere, and each thread cuts off its own slow members. New connections go to
//! the least-loaded thread (`--accept handoff`, the default) or to the kernel's choice
//! among one `SO_REUSEPORT` listener per thread (`--accept reuseport`). The web page is
//! served by thread 0.

#[path = "../shared/cli.rs"]
mod cli;
mod hub;
mod protocol;
mod server;
mod signal;
mod threaded;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How often `RUST_LOG=chatter::stats=debug` logs the counters.
const REPORT_EVERY: Duration = Duration::from_secs(1);

use fibra::net::NetPlugin;
use fibra::signal::SignalExt;
use fibra::tasks::TasksPlugin;
use fibra::Schedule;

const HELP: &str = "chatter: fibra's classic demo, a chat server for telnet and browsers, one \
tasklet per member

usage: chatter [--addr HOST:PORT] [--web-addr HOST:PORT | --no-web] [--max-line BYTES]
               [--max-outbound BYTES] [--login-timeout SECS] [--flush-delay MS]
               [--threads N] [--accept handoff|reuseport] [--pin]
  --addr           where to listen for telnet (default 127.0.0.1:1980)
  --web-addr       where to serve the web page and its WebSocket (default 127.0.0.1:1990)
  --no-web         no web page
  --max-line       longest line accepted; a longer one ends that connection (default 8192)
  --max-outbound   output queued to a member that does not read before it is cut off
                   (default 1048576)
  --login-timeout  seconds a new connection has to choose a handle, 0 for no limit (default 60)
  --flush-delay    milliseconds a member's output may wait to be gathered into one write,
                   0 to write every round (default 10; fractions allowed)
  --threads        schedules (threads) serving the one room (default 1)
  --accept         with --threads: `handoff` (one acceptor, the least-loaded thread;
                   the default) or `reuseport` (a listener per thread, the kernel's spread)
  --pin            with --threads: pin thread i to CPU i";

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    if let Err(e) = run() {
        log::error!(target: "chatter", "{e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut addr = "127.0.0.1:1980".to_owned();
    let mut web_addr = Some("127.0.0.1:1990".to_owned());
    let mut config = server::Config::default();
    let (mut threads, mut reuseport, mut pin) = (1usize, false, false);
    let mut args = cli::Args::new("chatter", HELP);
    while let Some(flag) = args.next_flag() {
        let f = flag.as_str();
        match f {
            "--addr" => addr = args.value(f),
            "--max-line" => config.max_line = args.number(f, 1, 1 << 30) as usize,
            "--max-outbound" => config.max_outbound = args.number(f, 1, 1 << 40) as usize,
            "--login-timeout" => {
                let secs = args.number(f, 0, 86_400);
                config.login_timeout = (secs > 0).then(|| Duration::from_secs(secs));
            }
            "--flush-delay" => {
                let ms: f64 = args.parse(f);
                if !(0.0..=1000.0).contains(&ms) {
                    args.fail("--flush-delay must be between 0 and 1000 ms");
                }
                config.flush_delay = Duration::from_secs_f64(ms / 1000.0);
            }
            "--threads" => threads = args.number(f, 1, 1024) as usize,
            "--accept" => {
                reuseport = match args.value(f).as_str() {
                    "handoff" => false,
                    "reuseport" => true,
                    other => args.fail(format!("--accept `{other}`: handoff or reuseport")),
                }
            }
            "--pin" => pin = true,
            "--web-addr" => web_addr = Some(args.value(f)),
            "--no-web" => web_addr = None,
            _ => args.unknown(f),
        }
    }

    if threads > 1 {
        return threaded::run(threads, reuseport, pin, &addr, web_addr.as_deref(), config);
    }
    let mut schedule = Schedule::new();
    let catches_signals = signal::catch_stop(&mut schedule)?;
    schedule.add_plugin(TasksPlugin::new())?;
    schedule.add_plugin(NetPlugin::new()?)?;
    let mut chatter = server::Chatter::start(&mut schedule, &addr, config)
        .map_err(|e| format!("cannot serve the chat on `{addr}`: {e}"))?;
    log::info!(target: "chatter", "listening on {} (telnet or nc to chat; Ctrl-C stops)",
        chatter.local_addr());
    if let Some(web_addr) = web_addr {
        let served = chatter
            .serve_web(&mut schedule, &web_addr)
            .map_err(|e| format!("cannot serve the web page on `{web_addr}`: {e}"))?;
        log::info!(target: "chatter", "web page on http://{served}/");
    }
    // A tasklet parks until Ctrl-C or SIGTERM; the host loop then stops the room.
    let stop = Rc::new(Cell::new(false));
    if catches_signals {
        let stop = Rc::clone(&stop);
        schedule.spawn_named("signals", move |h| {
            if let Ok(signal) = h.signals(&signal::STOP) {
                log::info!(target: "chatter", "{signal}: stopping (once more to force)");
                stop.set(true);
                for signal in signal::STOP {
                    let _ = h.stop_catching(signal);
                }
            }
        })?;
    }
    // Sleeps in the poller while idle; returns after each round, so the stop is seen at once.
    let mut next_report = Instant::now() + REPORT_EVERY;
    while !stop.get() {
        schedule.tick_within(REPORT_EVERY)?;
        if log::log_enabled!(target: "chatter::stats", log::Level::Debug)
            && Instant::now() >= next_report
        {
            next_report += REPORT_EVERY;
            let room = chatter.stats();
            let net = schedule
                .plugin::<NetPlugin>()
                .map(NetPlugin::stats)
                .unwrap_or_default();
            log::debug!(target: "chatter::stats",
                "members {}, lines delivered {}, cut off {}, bytes queued {}, writes {}, reads {}",
                room.members, room.deliveries, room.cut_off, net.queued, net.writes, net.reads);
        }
    }
    let stats = chatter.stats();
    chatter.shutdown(&mut schedule, Duration::from_secs(2));
    log::info!(target: "chatter", "stopped: {} lines delivered, {} members cut off for not reading",
        stats.deliveries, stats.cut_off);
    Ok(())
}
