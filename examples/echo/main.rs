//! A raw echo server: every byte received is sent back.
//!
//! ```text
//! cargo run --release --example echo -- --addr 127.0.0.1:7000
//! ```
//!
//! One tasklet per connection, written as plain sequential code (`server.rs`). Logs go
//! through `env_logger` (`RUST_LOG=debug` for more).

mod server;

use fibra::net::{NetExt, NetPlugin};
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
    schedule.add_plugin(TasksPlugin::new())?;
    schedule.add_plugin(NetPlugin::new()?)?;
    schedule.spawn_named("acceptor", move |h| {
        let listener = match h.listen_with(addr.as_str(), server::listen_options()) {
            Ok(listener) => listener,
            Err(e) => {
                log::error!(target: "echo", "{e}");
                std::process::exit(1);
            }
        };
        log::info!(target: "echo", "echo server listening on {}", listener.local_addr());
        server::accept_loop(h, &listener);
    })?;
    schedule.run()?;
    Ok(())
}
