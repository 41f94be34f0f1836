//! A raw echo server: every byte received is sent back.
//!
//! ```text
//! cargo run --release --example echo -- --addr 127.0.0.1:7000
//! ```
//!
//! One tasklet per connection, written as plain sequential code (`server.rs`). Logs go
//! through `env_logger` (`RUST_LOG=debug` for more). `--threads N` serves from N schedules
//! on N threads (`Cores`, thread-per-core), each with its own `SO_REUSEPORT` listener on
//! the one port; `--pin` pins thread i to CPU i.

#[path = "../shared/cli.rs"]
mod cli;
mod server;
#[path = "../chatter/signal.rs"]
mod signal;

use fibra::net::NetPlugin;
use fibra::signal::SignalExt;
use fibra::tasks::TasksPlugin;
use fibra::Schedule;

const HELP: &str = "echo: a raw echo server, one tasklet per connection; sends back every byte

usage: echo [--addr HOST:PORT] [--threads N] [--pin] [--write-through yes|no]
  --addr     where to listen (default 127.0.0.1:7000)
  --threads  schedules (threads) serving, each with its own SO_REUSEPORT listener (default 1)
  --pin      with --threads: pin thread i to CPU i
  --write-through  each answer written at once while nothing is queued before it
             (default yes); no: answers leave at the end of the round, as fibra's sends do
             by default";

fn main() -> Result<(), cli::Failure> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut addr = "127.0.0.1:7000".to_owned();
    let (mut threads, mut pin, mut write_through) = (1usize, false, true);
    let mut args = cli::Args::new("echo", HELP);
    while let Some(flag) = args.next_flag() {
        let f = flag.as_str();
        match f {
            "--addr" => addr = args.value(f),
            "--threads" => threads = args.number(f, 1, 1024) as usize,
            "--pin" => pin = true,
            "--write-through" => {
                write_through = match args.value(f).as_str() {
                    "yes" => true,
                    "no" => false,
                    other => args.fail(format!("--write-through takes yes or no, not `{other}`")),
                }
            }
            _ => args.unknown(f),
        }
    }
    if threads > 1 {
        return Ok(on_threads(&addr, threads, pin, write_through)?);
    }

    let mut schedule = Schedule::new();
    let catches_signals = signal::catch_stop(&mut schedule)?;
    schedule.add_plugin(TasksPlugin::new())?;
    schedule.add_plugin(NetPlugin::new()?)?;
    // Bound by the host: a bad or busy address is an error here, and the process exits 1.
    let listener = schedule
        .plugin::<NetPlugin>()
        .ok_or("no network plugin")?
        .listen_with(addr.as_str(), server::listen_options(write_through))
        .map_err(|e| format!("cannot serve echo on `{addr}`: {e}"))?;
    log::info!(target: "echo", "echo server listening on {}", listener.local_addr());
    schedule.spawn_named("acceptor", move |h| server::accept_loop(h, &listener))?;
    if !catches_signals {
        schedule.run()?;
        return Ok(());
    }
    // Serves until Ctrl-C or SIGTERM; dropping the schedule then closes every connection.
    let signal = schedule.block_on(|h| h.signals(&signal::STOP))??;
    log::info!(target: "echo", "{signal}: stopped");
    Ok(())
}

/// `--threads N`: N schedules, each with its own `SO_REUSEPORT` listener on the one port.
fn on_threads(
    addr: &str,
    threads: usize,
    pin: bool,
    write_through: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    // Signals first, before any other thread starts.
    let mut host = Schedule::new();
    let catches_signals = signal::catch_stop(&mut host)?;
    // A port of 0 becomes a real one, for every thread to share.
    let want: std::net::SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(addr)?
        .next()
        .ok_or_else(|| format!("`{addr}` names no address"))?;
    let probe = socket2::Socket::new(
        socket2::Domain::for_address(want),
        socket2::Type::STREAM,
        None,
    )?;
    probe.set_reuse_port(true)?;
    probe
        .bind(&want.into())
        .map_err(|e| format!("cannot serve echo on `{addr}`: {e}"))?;
    let at = probe
        .local_addr()?
        .as_socket()
        .ok_or("not an internet address")?;
    let cores = fibra::rt::Cores::start(threads, pin, move |_, s| {
        s.add_plugin(TasksPlugin::new())?;
        s.add_plugin(NetPlugin::new()?)?;
        let listener = s
            .plugin::<NetPlugin>()
            .ok_or("no network plugin")?
            .listen_with(
                at,
                server::listen_options(write_through).with_reuse_port(true),
            )?;
        s.spawn_named("acceptor", move |h| server::accept_loop(h, &listener))?;
        Ok(())
    })?;
    drop(probe);
    log::info!(target: "echo", "echo server listening on {at}, {threads} threads");
    if !catches_signals {
        return Ok(cores.join()?);
    }
    let signal = host.block_on(|h| h.signals(&signal::STOP))??;
    cores.stop()?;
    log::info!(target: "echo", "{signal}: stopped");
    Ok(())
}
