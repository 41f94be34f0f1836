//! A bounded load generator for chat and echo servers (fibra's and the tokio peers alike), a
//! benchmark tool: `--help` says how to run it, `scripts/bench.py` runs it.
//!
//! ```text
//! cargo build --release -p fibra-bench
//! target/release/loadgen echo --addr 127.0.0.1:7000 --conns 100 --secs 5
//! target/release/loadgen chat --addr 127.0.0.1:1980 --clients 1000 --rate 1
//! ```
//!
//! Every run has `--warmup` unmeasured seconds, then `--secs` measured seconds (at most
//! 3600), then stops by itself and prints one JSON line. Every wait is bounded: a connect or
//! a login (prompt, handle, join) that has not completed within `--login-timeout` seconds
//! counts as failed (`failed`, `login_timeouts` in the JSON, and a line on stderr), and the
//! run goes on with the others. With `--pid P` it reads the server
//! process's CPU time, memory and open descriptors from `/proc/P`.
//!
//! - `echo`: C connections (`--conns`), each sending `--size` bytes and waiting for them to
//!   come back. Reports messages/s and round-trip p50/p99 (µs).
//! - `chat`: C clients (`--clients`) log in to a chatter-protocol server (read the prompt,
//!   send a unique handle), then each says `--rate` lines a second carrying its id, a
//!   sequence number and the send time, while every client reads everything. Reports lines
//!   sent/s, deliveries/s (`says:` lines received), delivery latency p50/p99, and deliveries
//!   missing (lines sent minus lines received, per sender and receiver: 0 when nobody was
//!   cut off). `--churn N` adds N clients a second that log in and drop; `--report S`
//!   prints a progress line with the server's RSS and descriptors every S seconds.
//!   `--ws yes` speaks the chatter's WebSocket; `--abchat yes` speaks ABChat's protocol
//!   (length-prefixed frames, the name, `ok <name>`, `<from>: <text>` to everyone).
//!   `--prefix P --id-base B` let several generators share one room (handles `P<i>`,
//!   sender ids from B); each counts only its own senders' lines.
//! - `idle` (`idle.rs`): C connections (`--conns`, up to a million) that read the prompt
//!   (`--prompt yes`, for chat servers), or log in (`--login yes`), over telnet or the
//!   chatter's WebSocket (`--ws yes`), then say nothing for `--secs`. Spread over
//!   `--procs` generator processes and `--sources` source addresses (127.0.0.2 on) past
//!   the per-process descriptor limit and the ports of one address pair. Reports the
//!   server's RSS before and with them, per connection, and the kernel's TCP buffer pages
//!   (`/proc/net/sockstat`).
//! - `accept`: C clients at a time (`--conns`), each in a loop: connect, read the prompt,
//!   send a fresh handle, read its join line, drop. Reports logins/s and login time p50/p99.
//!
//! - TLS (`tls.rs`): `--tls-ca FILE` (PEM) or `--tls-insecure yes` makes every scenario's
//!   connections TLS (full handshakes unless `--tls-resume yes`); `accept` over TLS is the
//!   rate of new TLS logins (handshake and login).
//!
//! The generator itself runs on fibra (tasklets, one thread).

mod chat;
#[path = "../../../../examples/shared/cli.rs"]
mod cli;
mod conns;
mod echo;
mod idle;
mod measure;
mod tls;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fibra::net::{ops, Conn, NetError, NetPlugin};
use fibra::tasks::TasksPlugin;
use fibra::{Handle, Schedule};

/// The generator's schedule: the tasks and network plugins, 32 KiB stacks (thousands of
/// clients).
pub(crate) fn new_schedule() -> Result<Schedule, Box<dyn std::error::Error>> {
    let mut schedule = Schedule::builder().stack_size(32 * 1024).build();
    schedule.add_plugin(TasksPlugin::new())?;
    schedule.add_plugin(NetPlugin::new()?)?;
    Ok(schedule)
}

/// Flags every scenario has.
pub(crate) struct Common {
    pub(crate) addr: SocketAddr,
    pub(crate) secs: f64,
    pub(crate) warmup: f64,
    pub(crate) pid: Option<u32>,
    /// How long a connect and login may take before it counts as failed.
    pub(crate) login_timeout: Duration,
}

/// Why a login did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LoginFailed {
    /// Not within `--login-timeout`.
    TimedOut,
    /// Refused, reset, or an unexpected answer.
    Failed,
}

impl From<NetError> for LoginFailed {
    fn from(e: NetError) -> Self {
        match e {
            NetError::TimedOut => LoginFailed::TimedOut,
            _ => LoginFailed::Failed,
        }
    }
}

/// The next frame of `conn` into `buf`, waiting until `deadline` at most.
pub(crate) fn receive_by(
    h: &Handle,
    conn: &Conn,
    buf: &mut Vec<u8>,
    deadline: Instant,
) -> Result<(), LoginFailed> {
    let op = ops::Receive::into_buf(conn, std::mem::take(buf));
    *buf = h.yield_op_until(op, deadline).map_err(NetError::from)??;
    Ok(())
}

/// Up to `max` bytes of `conn` as they come, waiting until `deadline` at most.
pub(crate) fn receive_raw_by(
    h: &Handle,
    conn: &Conn,
    max: usize,
    deadline: Instant,
) -> Result<Vec<u8>, LoginFailed> {
    let op = ops::Receive::raw(conn, Vec::new(), max);
    Ok(h.yield_op_until(op, deadline).map_err(NetError::from)??)
}

/// What `--help` prints: what the program is, then [`USAGE`].
const ABOUT: &str = "\
loadgen: a bounded load generator for fibra's servers and their tokio peers, a benchmark tool
(fibra-bench). Each run warms up, measures for --secs, stops by itself and prints one JSON
line (messages or deliveries per second, latency p50/p99; the server's CPU and memory with
--pid). scripts/bench.py and scripts/scale.py drive it.

  echo    C connections each sending --size bytes and waiting for their echo
  chat    C chatter-protocol clients each saying --rate lines a second to everyone
          (--ws yes: over WebSocket; --abchat yes: ABChat's protocol)
  idle    C connections that say nothing: the server's memory per connection (over
          several generator processes and source addresses: --procs, --sources)
  accept  C clients at a time that connect, log in and leave: logins per second
          (over TLS: new TLS logins per second, a full handshake each)

Over TLS (every scenario): --tls-ca FILE (the server's CA, PEM) or --tls-insecure yes (any
certificate); --tls-name NAME (checked and sent as SNI; default localhost); --tls-resume yes
(resume sessions instead of full handshakes).
";

const USAGE: &str = "usage:
  loadgen echo --addr A [--conns C] [--size B] [--secs S] [--warmup S] [--pid P]
  loadgen chat --addr A [--clients C] [--rate R] [--churn N] [--drain S] [--report S]
               [--ws yes|no] [--abchat yes|no] [--prefix P] [--id-base B] [--rooms R]
               [--also-addr A2]... [--also-pid P2]... [--secs S] [--warmup S] [--pid P]
          (--rooms R: after its login, client i says `/join room<(B + i) % R>` and hears its
          room's senders only)
          (--also-addr: client i goes to the i % n-th of --addr and the --also-addr list,
          and latency between clients of different addresses is measured apart, cross_*;
          --also-pid: more processes whose CPU is measured in the window, also_cpu)
  loadgen idle --addr A [--conns C] [--prompt yes|no] [--login yes|no] [--ws yes|no]
               [--procs P] [--sources N] [--secs S] [--warmup S] [--pid P]
  loadgen accept --addr A [--conns C] [--secs S] [--warmup S] [--pid P]
  (chat, idle and accept also take --login-timeout S)
  TLS, any scenario: [--tls-ca FILE | --tls-insecure yes] [--tls-name NAME] [--tls-resume yes|no]

defaults: --addr 127.0.0.1:7000 (echo's), --secs 5, --warmup 1, --login-timeout 10,
  --conns 100, --size 64,
  --clients 1000, --rate 1, --churn 0, --drain 2, --report 0 (none), --prompt no, --ws no,
  --abchat no, --prefix c, --id-base 0, --rooms 1 (no /join), --login no, --procs and --sources: as the
  connections need (18,000 per process, 25,000 per source address; one process and the
  system's source address up to 18,000)";

fn main() {
    if let Err(e) = run() {
        eprintln!("loadgen: {e}");
        std::process::exit(1);
    }
}

/// Every flag; each takes a value.
const FLAGS: [&str; 31] = [
    "--addr",
    "--login-timeout",
    "--secs",
    "--warmup",
    "--pid",
    "--conns",
    "--size",
    "--prompt",
    "--clients",
    "--rate",
    "--churn",
    "--drain",
    "--report",
    "--prefix",
    "--id-base",
    "--rooms",
    "--also-addr",
    "--also-pid",
    "--abchat",
    "--ws",
    "--tls",
    "--tls-ca",
    "--tls-insecure",
    "--tls-name",
    "--tls-resume",
    "--login",
    "--procs",
    "--sources",
    "--child",
    "--source",
    "--hold",
];

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = cli::Args::new("loadgen", format!("{ABOUT}\n{USAGE}"));
    let scenario = match args.next_flag() {
        Some(s) if ["echo", "chat", "idle", "accept"].contains(&s.as_str()) => s,
        Some(other) => args.fail(format!(
            "`{other}`: give a scenario, echo, chat, idle or accept"
        )),
        None => args.fail("give a scenario: echo, chat, idle or accept"),
    };
    let mut common = Common {
        addr: "127.0.0.1:7000".parse()?,
        secs: 5.0,
        warmup: 1.0,
        pid: None,
        login_timeout: Duration::from_secs(10),
    };
    let (mut conns, mut size, mut prompt) = (100usize, 64usize, false);
    let mut chat = chat::ChatArgs {
        clients: 1000,
        rate: 1.0,
        churn: 0.0,
        drain: 2.0,
        report: 0.0,
        ws: false,
        abchat: false,
        prefix: "c".to_owned(),
        id_base: 0,
        also: Vec::new(),
        also_pids: Vec::new(),
        rooms: 1,
    };
    let mut tls = tls::TlsArgs::default();
    let mut idle = idle::IdleArgs {
        conns: 0,
        prompt: false,
        login: false,
        ws: false,
        procs: 0,
        sources: 0,
        child: false,
        source: None,
        hold: 0.0,
        prefix: "i".to_owned(),
    };
    while let Some(flag) = args.next_flag() {
        let f = flag.as_str();
        if !FLAGS.contains(&f) {
            args.unknown(f);
        }
        let value = args.value(f);
        let bad = |e: &dyn std::fmt::Display| -> ! { args.fail(format!("{f} `{value}`: {e}")) };
        let yes_no = || match value.as_str() {
            "yes" => true,
            "no" => false,
            _ => bad(&"give yes or no"),
        };
        match f {
            "--addr" => common.addr = value.parse().unwrap_or_else(|e| bad(&e)),
            "--secs" => common.secs = value.parse().unwrap_or_else(|e| bad(&e)),
            "--warmup" => common.warmup = value.parse().unwrap_or_else(|e| bad(&e)),
            "--pid" => common.pid = Some(value.parse().unwrap_or_else(|e| bad(&e))),
            "--login-timeout" => match value.parse::<f64>() {
                Ok(t) if t > 0.0 && t <= 600.0 => {
                    common.login_timeout = Duration::from_secs_f64(t);
                }
                Ok(_) => bad(&"give a number of seconds in (0, 600]"),
                Err(e) => bad(&e),
            },
            "--conns" => conns = value.parse().unwrap_or_else(|e| bad(&e)),
            "--size" => size = value.parse().unwrap_or_else(|e| bad(&e)),
            "--prompt" => prompt = yes_no(),
            "--clients" => chat.clients = value.parse().unwrap_or_else(|e| bad(&e)),
            "--rate" => chat.rate = value.parse().unwrap_or_else(|e| bad(&e)),
            "--churn" => chat.churn = value.parse().unwrap_or_else(|e| bad(&e)),
            "--drain" => chat.drain = value.parse().unwrap_or_else(|e| bad(&e)),
            "--report" => chat.report = value.parse().unwrap_or_else(|e| bad(&e)),
            "--prefix" => {
                chat.prefix = value.clone();
                idle.prefix = value.clone();
            }
            "--login" => idle.login = yes_no(),
            "--procs" => idle.procs = value.parse().unwrap_or_else(|e| bad(&e)),
            "--sources" => idle.sources = value.parse().unwrap_or_else(|e| bad(&e)),
            "--child" => idle.child = yes_no(),
            "--source" => idle.source = Some(value.parse().unwrap_or_else(|e| bad(&e))),
            "--hold" => idle.hold = value.parse().unwrap_or_else(|e| bad(&e)),
            "--id-base" => chat.id_base = value.parse().unwrap_or_else(|e| bad(&e)),
            "--rooms" => chat.rooms = value.parse().unwrap_or_else(|e| bad(&e)),
            "--also-addr" => chat.also.push(value.parse().unwrap_or_else(|e| bad(&e))),
            "--also-pid" => chat
                .also_pids
                .push(value.parse().unwrap_or_else(|e| bad(&e))),
            "--abchat" => chat.abchat = yes_no(),
            "--ws" => chat.ws = yes_no(),
            "--tls" => tls.on = yes_no(),
            "--tls-ca" => tls.ca = Some(value.clone()),
            "--tls-insecure" => tls.insecure = yes_no(),
            "--tls-name" => tls.name = Some(value.clone()),
            "--tls-resume" => tls.resume = yes_no(),
            _ => args.unknown(f),
        }
    }
    if let Err(e) = tls.install() {
        args.fail(e);
    }
    let secs_ok = common.secs > 0.0 && common.secs <= 3600.0;
    if !secs_ok || !(0.0..=600.0).contains(&common.warmup) {
        args.fail("--secs must be in (0, 3600], --warmup in [0, 600]");
    }
    match scenario.as_str() {
        "echo" => {
            if conns == 0 || size == 0 {
                args.fail("--conns and --size must be > 0");
            }
            echo::run(&common, conns, size)
        }
        "chat" => {
            if chat.clients == 0 || !(chat.rate > 0.0 && chat.rate <= 1000.0) {
                args.fail("--clients must be > 0, --rate in (0, 1000]");
            }
            if !(0.0..=10_000.0).contains(&chat.churn) || !(0.0..=60.0).contains(&chat.drain) {
                args.fail("--churn must be in [0, 10000], --drain in [0, 60]");
            }
            chat::run(&common, &chat)
        }
        "idle" => {
            if conns == 0 || conns > 1_000_000 || idle.sources > 250 || idle.procs > 1000 {
                args.fail("--conns must be in [1, 1000000], --sources at most 250, --procs 1000");
            }
            idle.conns = conns;
            idle.prompt = prompt;
            idle.ws = chat.ws;
            idle::run(&common, &idle)
        }
        "accept" if conns == 0 || conns > 100_000 => args.fail("--conns must be in [1, 100000]"),
        "accept" => conns::accept(&common, conns),
        _ => args.unknown(&scenario),
    }
}
