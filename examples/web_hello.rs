//! gnet's WSGI sample on fibra: `/` answers `hello, world!`, `/ws` is a WebSocket echo.
//!
//! ```text
//! cargo run --release --example web_hello -- --addr 127.0.0.1:8080
//! curl http://127.0.0.1:8080/
//! ```

use std::rc::Rc;

use fibra::http::{Limits, Message, Response, Router};
use fibra::net::NetPlugin;
use fibra::signal::{Signal, SignalExt};

const USAGE: &str = "usage: web_hello [--addr HOST:PORT] [--max-message BYTES]
  --addr         where to listen (default 127.0.0.1:8080)
  --max-message  the largest WebSocket frame and message taken (default 1048576)
  GET /     hello, world!
  GET /ws   a WebSocket that sends back every message";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut addr = "127.0.0.1:8080".to_owned();
    let mut limits = Limits::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = args.next().ok_or("--addr needs HOST:PORT")?,
            "--max-message" => {
                let bytes: usize = args.next().ok_or("--max-message needs BYTES")?.parse()?;
                limits.max_frame = bytes.max(125);
                limits.max_message = bytes;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument `{other}` (try --help)").into()),
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
