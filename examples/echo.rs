//! A raw echo server: every byte received is sent back.
//!
//! ```text
//! cargo run --release --example echo -- --addr 127.0.0.1:7000
//! ```
//!
//! One tasklet per connection, written as plain sequential code. Logs go through
//! `env_logger` (`RUST_LOG=debug` for more).

use fibra::net::{ConnOptions, Framing, ListenOptions, NetExt, NetPlugin};
use fibra::tasks::{TasksExt, TasksPlugin};
use fibra::{Schedule, SpawnOptions};

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
        let options = ListenOptions::new().conn(ConnOptions::new().framing(Framing::Raw));
        let listener = match h.listen_with(addr.as_str(), options) {
            Ok(listener) => listener,
            Err(e) => {
                log::error!("{e}");
                std::process::exit(1);
            }
        };
        log::info!("echo server listening on {}", listener.local_addr());
        loop {
            let (conn, peer) = match h.accept(&listener) {
                Ok(accepted) => accepted,
                Err(e) => {
                    log::warn!("accept: {e}");
                    continue;
                }
            };
            log::debug!("{peer} connected");
            let spawned = h.spawn_detached(SpawnOptions::new().name("echo"), move |h| {
                let mut buf = Vec::with_capacity(4096);
                while h.receive_into(&conn, &mut buf).is_ok() {
                    if h.send(&conn, &buf).is_err() {
                        break;
                    }
                }
                log::debug!("{peer} left");
            });
            if let Err(e) = spawned {
                log::warn!("no tasklet for {peer}: {e}");
            }
        }
    })?;
    schedule.run()?;
    Ok(())
}
