//! gnet's service example: the echo server and the reconnecting echo client in one process,
//! under one `Service`; then `notify("*", "hello")` reaches both, and each prints it.
//!
//! ```text
//! cargo run --example service -- --addr 127.0.0.1:7002
//! ```

#[path = "shared/cli.rs"]
mod cli;
#[path = "shared/stop_signals.rs"]
mod stop_signals;

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use fibra::net::{Backoff, ClientState, ConnOptions, Factory, NetPlugin, Protocol};
use fibra::net::{ReconnectingClient, Server, Service, Transport};
use fibra::signal::{ops::WaitSignal, Signal};
use fibra::tasks::{ops::Sleep, TasksExt};
use fibra::{rt::Either, Handle};

const HELP: &str = "service: gnet's service example, an echo server and its client under one \
Service

usage: service [--addr HOST:PORT] [--secs N]
  --addr  where the echo server listens, and the client connects (default 127.0.0.1:7002)
  --secs  stop after this many seconds (default: run until Ctrl-C)";

/// Both sides: the server sends back what comes, the client sends `ooxx` once.
struct Echo {
    side: &'static str,
}

impl Protocol for Echo {
    fn connection_made(&mut self, _h: &Handle, transport: &Transport) {
        stop_signals::say!("{}: connected to {}", self.side, transport.peer_addr());
        if self.side == "client" {
            let _ = transport.send_line("ooxx");
        }
    }

    fn frame_received(&mut self, _h: &Handle, transport: &Transport, frame: &[u8]) {
        stop_signals::say!("{}: received {}", self.side, String::from_utf8_lossy(frame));
        if self.side == "server" {
            let _ = transport.send(frame);
        }
    }

    fn on_notify(&mut self, _h: &Handle, _transport: &Transport, message: &str) {
        stop_signals::say!("{}: notified {message}", self.side);
    }
}

struct EchoFactory {
    side: &'static str,
}

impl Factory for EchoFactory {
    type Protocol = Echo;

    fn build_protocol(&mut self, _peer: SocketAddr) -> Option<Echo> {
        Some(Echo { side: self.side })
    }

    fn on_notify(&mut self, _h: &Handle, message: &str, connections: &[Transport]) {
        stop_signals::say!(
            "{}: notified {message} ({} connections)",
            self.side,
            connections.len()
        );
    }
}

fn main() -> Result<(), cli::Failure> {
    let mut addr = "127.0.0.1:7002".to_owned();
    let mut secs = None;
    let mut args = cli::Args::new("service", HELP);
    while let Some(flag) = args.next_flag() {
        let f = flag.as_str();
        match f {
            "--addr" => addr = args.value(f),
            "--secs" => secs = Some(args.number(f, 1, 31_536_000)),
            _ => args.unknown(f),
        }
    }
    let mut schedule = fibra::schedule()?;
    // Caught before the address is said: a stop signal from then on gets the clean stop.
    stop_signals::catch(&mut schedule, &[Signal::INT, Signal::TERM])?;
    let listener = schedule
        .plugin::<NetPlugin>()
        .ok_or("no network plugin")?
        .listen(addr.as_str())
        .map_err(|e| format!("cannot listen on `{addr}`: {e}"))?;
    let server_addr = listener.local_addr();
    stop_signals::say!("service: echo server on {server_addr}");
    let backoff = Backoff::new().with_initial(Duration::from_millis(100));
    let client = ReconnectingClient::new(
        server_addr,
        ConnOptions::new(),
        backoff,
        EchoFactory { side: "client" },
    );
    let mut service = Service::new();
    service.add(
        "echo-server",
        Server::new(listener, EchoFactory { side: "server" }),
    )?;
    service.add("echo-client", client.clone())?;
    service.start_all(&mut schedule)?;
    let service = Rc::new(service);

    let run = Rc::clone(&service);
    schedule.block_on(move |h| -> Result<(), Box<dyn std::error::Error>> {
        // Once the client is connected, tell everyone.
        while !matches!(client.state(), ClientState::Connected { .. }) {
            h.sleep(Duration::from_millis(10));
        }
        let told = run.notify("*", "hello")?;
        stop_signals::say!("service: notified {told} members");
        // Then serve until `--secs` or Ctrl-C.
        let stop = WaitSignal::new(&[Signal::INT, Signal::TERM]);
        let deadline = secs.and_then(|s| Instant::now().checked_add(Duration::from_secs(s)));
        let signal = match deadline {
            Some(deadline) => match h.select(Sleep(deadline), stop) {
                Either::First(()) => None,
                Either::Second(signal) => Some(signal?),
            },
            None => Some(h.yield_op(stop)?),
        };
        if let Some(signal) = signal {
            stop_signals::say!("service: {signal}");
        }
        Ok(())
    })??;
    service.stop_all();
    stop_signals::say!("service: stopped");
    Ok(())
}
