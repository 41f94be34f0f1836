//! gnet's echo server (`EchoServerProtocol`, `EchoServerFactory`) on fibra's callbacks: every
//! byte received is sent back.
//!
//! ```text
//! cargo run --release --example gnet_echo -- --addr 127.0.0.1:7001
//! ```
//!
//! The same server as `examples/echo/` (one tasklet per connection), written as a
//! [`Protocol`] and a [`Factory`] the way gnet, Twisted and asyncio users write them. Ctrl-C
//! stops it.

#[path = "shared/cli.rs"]
mod cli;
#[path = "shared/stop_signals.rs"]
mod stop_signals;

use std::net::SocketAddr;

use fibra::net::{ConnOptions, Ended, Factory, Framing, ListenOptions, NetPlugin};
use fibra::net::{Protocol, Server, Transport};
use fibra::signal::{Signal, SignalExt};
use fibra::Handle;

const HELP: &str = "gnet_echo: gnet's echo server on fibra's callbacks (Protocol, Factory, \
Server)

usage: gnet_echo [--addr HOST:PORT] [--stackless]
  --addr       where to listen (default 127.0.0.1:7001)
  --stackless  connections hold no tasklet while idle (Server::stackless)";

/// One connection: sends back what it receives.
struct EchoServerProtocol {
    peer: SocketAddr,
}

impl Protocol for EchoServerProtocol {
    fn connection_made(&mut self, _h: &Handle, _transport: &Transport) {
        log::debug!(target: "gnet_echo", "{} connected", self.peer);
    }

    fn frame_received(&mut self, _h: &Handle, transport: &Transport, data: &[u8]) {
        // Never parks: at the send limit (a peer that does not read) the bytes are refused,
        // and this peer is cut off rather than buffered without bound.
        if transport.send(data).is_err() {
            transport.abort();
        }
    }

    fn connection_lost(&mut self, reason: &Ended) {
        log::debug!(target: "gnet_echo", "{} left: {reason}", self.peer);
    }
}

/// Makes one protocol per connection.
struct EchoServerFactory;

impl Factory for EchoServerFactory {
    type Protocol = EchoServerProtocol;

    fn build_protocol(&mut self, peer: SocketAddr) -> Option<EchoServerProtocol> {
        Some(EchoServerProtocol { peer })
    }
}

fn main() -> Result<(), cli::Failure> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut addr = "127.0.0.1:7001".to_owned();
    let mut stackless = false;
    let mut args = cli::Args::new("gnet_echo", HELP);
    while let Some(flag) = args.next_flag() {
        match flag.as_str() {
            "--addr" => addr = args.value(&flag),
            "--stackless" => stackless = true,
            other => args.unknown(other),
        }
    }
    let mut schedule = fibra::schedule()?;
    // Caught before the address is said: a stop signal from then on gets the clean stop.
    stop_signals::catch(&mut schedule, &[Signal::INT, Signal::TERM])?;
    // Written through, as `examples/echo`: a reply leaves in the callback's own send.
    let options = ListenOptions::new().with_conn(
        ConnOptions::new()
            .with_framing(Framing::Raw)
            .with_write_through(true),
    );
    let listener = schedule
        .plugin::<NetPlugin>()
        .ok_or("no network plugin")?
        .listen_with(addr.as_str(), options)
        .map_err(|e| format!("cannot serve echo on `{addr}`: {e}"))?;
    log::info!(target: "gnet_echo", "echo server listening on {}", listener.local_addr());
    let server = if stackless {
        Server::stackless(listener, EchoServerFactory)
    } else {
        Server::new(listener, EchoServerFactory)
    };
    server.start(&mut schedule)?;
    let signal = schedule.block_on(|h| h.signals(&[Signal::INT, Signal::TERM]))??;
    server.stop();
    log::info!(target: "gnet_echo", "{signal}: stopped");
    Ok(())
}
