//! A raw echo server: every byte received is sent back.
//!
//! ```text
//! cargo run --release --example echo -- --addr 127.0.0.1:7000
//! ```
//!
//! One tasklet per connection, written as plain sequential code (`server.rs`). Logs go
//! through `env_logger` (`RUST_LOG=debug` for more).

mod server;
#[path = "../chatter/signal.rs"]
mod signal;

use fibra::net::NetPlugin;
use fibra::signal::SignalExt;
use fibra::tasks::TasksPlugin;
use fibra::Schedule;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut addr = "127.0.0.1:7000".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = args.next().ok_or("--addr needs HOST:PORT")?,
            "-h" | "--help" => {
                println!("usage: echo [--addr HOST:PORT]   (default 127.0.0.1:7000)");
                return Ok(());
            }
            other => return Err(format!("unknown argument `{other}` (try --help)").into()),
        }
    }

    let mut schedule = Schedule::new();
    let catches_signals = signal::catch_stop(&mut schedule)?;
    schedule.add_plugin(TasksPlugin::new())?;
    schedule.add_plugin(NetPlugin::new()?)?;
    // Bound by the host: a bad or busy address is an error here, and the process exits 1.
    let listener = schedule
        .plugin::<NetPlugin>()
        .ok_or("no network plugin")?
        .listen_with(addr.as_str(), server::listen_options())
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
