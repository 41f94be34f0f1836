//! gnet's WSGI sample on fibra: `/` answers `hello, world!`, `/ws` is a WebSocket echo.
//!
//! ```text
//! cargo run --release --example web_hello -- --addr 127.0.0.1:8080
//! curl http://127.0.0.1:8080/
//! ```

#[path = "shared/cli.rs"]
mod cli;
#[path = "shared/stop_signals.rs"]
mod stop_signals;

use std::rc::Rc;

use fibra::http::{Limits, Message, Response, Router};
use fibra::net::NetPlugin;
use fibra::signal::{Signal, SignalExt};

/// The help, its defaults read from [`Limits::default`].
fn help() -> String {
    let limits = Limits::default();
    format!(
        "web_hello: gnet's WSGI sample, an HTTP hello and a WebSocket echo

usage: web_hello [--addr HOST:PORT] [--max-frame BYTES] [--max-message BYTES]
  --addr         where to listen (default 127.0.0.1:8080)
  --max-frame    the largest WebSocket frame taken (default {})
  --max-message  the largest WebSocket message taken, its fragments together (default {})
  GET /     hello, world!
  GET /ws   a WebSocket that sends back every message",
        limits.max_frame, limits.max_message
    )
}

fn main() -> Result<(), cli::Failure> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut addr = "127.0.0.1:8080".to_owned();
    let mut limits = Limits::default();
    let mut args = cli::Args::new("web_hello", help());
    while let Some(flag) = args.next_flag() {
        let f = flag.as_str();
        match f {
            "--addr" => addr = args.value(f),
            // A control frame may carry 125 bytes whatever the limit.
            "--max-frame" => limits.max_frame = args.number(f, 125, 1 << 30) as usize,
            "--max-message" => limits.max_message = args.number(f, 1, 1 << 30) as usize,
            _ => args.unknown(f),
        }
    }
    let router = Rc::new(
        Router::new()
            .get("/", |_h, _req| Response::text("hello, world!"))
            .websocket("/ws", |h, _req, ws| {
                while let Ok(message) = ws.receive(h) {
                    let sent = match message {
                        Message::Text(text) => ws.send_text(&text),
                        Message::Binary(bytes) => ws.send_binary(&bytes),
                    };
                    if sent.is_err() {
                        break;
                    }
                }
            })
            .with_limits(limits),
    );
    let mut schedule = fibra::schedule()?;
    // Caught before the address is said: a stop signal from then on gets the clean stop.
    stop_signals::catch(&mut schedule, &[Signal::INT, Signal::TERM])?;
    let listener = schedule
        .plugin::<NetPlugin>()
        .ok_or("no network plugin")?
        .listen(addr.as_str())
        .map_err(|e| format!("cannot serve HTTP on `{addr}`: {e}"))?;
    log::info!(target: "web_hello", "serving http://{}/ and ws://{}/ws",
        listener.local_addr(), listener.local_addr());
    schedule.spawn_named("http", move |h| {
        if let Err(e) = fibra::http::serve(h, &listener, router) {
            log::error!(target: "web_hello", "{e}");
        }
    })?;
    let signal = schedule.block_on(|h| h.signals(&[Signal::INT, Signal::TERM]))??;
    log::info!(target: "web_hello", "{signal}: stopped");
    Ok(())
}
