//! gnet's reconnecting echo client: on connect it sends `ooxx`; whatever it receives it sends
//! back after a pause. Started before any server exists, it connects once one starts; when
//! the server goes away it reconnects, waiting longer each time (exponential backoff with
//! jitter), and starts the waits over after a connection that stayed up.
//!
//! ```text
//! cargo run --release --example echo_client -- --addr 127.0.0.1:7001
//! cargo run --release --example gnet_echo -- --addr 127.0.0.1:7001      # in another terminal
//! ```

#[path = "shared/cli.rs"]
mod cli;

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use fibra::net::Transport;
use fibra::net::{Backoff, ConnOptions, Ended, Factory, Framing, Protocol, ReconnectingClient};
use fibra::signal::{Signal, SignalExt};
use fibra::tasks::TasksExt;
use fibra::Handle;

const HELP: &str = "echo_client: gnet's reconnecting echo client; sends `ooxx`, then sends \
back what comes

usage: echo_client [--addr HOST:PORT] [--pause SECS] [--reconnect-delay SECS]
                   [--max-delay SECS]
  --addr             the echo server to connect to (default 127.0.0.1:7001, gnet_echo's)
  --pause            seconds to wait before sending back what came (default 2)
  --reconnect-delay  seconds of the first wait before reconnecting (default 1)
  --max-delay        seconds of the longest wait (default 60)";

struct EchoClientProtocol {
    pause: Duration,
}

impl Protocol for EchoClientProtocol {
    fn connection_made(&mut self, _h: &Handle, transport: &Transport) {
        println!("connected to {}", transport.peer_addr());
        let _ = transport.send(b"ooxx");
    }

    fn frame_received(&mut self, h: &Handle, transport: &Transport, data: &[u8]) {
        println!("received {}", String::from_utf8_lossy(data));
        // gnet's `sleep(2)`: parks this connection's tasklet only.
        h.sleep(self.pause);
        let _ = transport.send(data);
    }

    fn connection_lost(&mut self, reason: &Ended) {
        println!("connection lost: {reason}");
    }
}

struct EchoClientFactory {
    pause: Duration,
}

impl Factory for EchoClientFactory {
    type Protocol = EchoClientProtocol;

    fn build_protocol(&mut self, _peer: SocketAddr) -> Option<EchoClientProtocol> {
        Some(EchoClientProtocol { pause: self.pause })
    }
}

fn seconds(args: &mut cli::Args, flag: &str) -> Duration {
    let value = args.value(flag);
    match value.parse::<f64>().map(Duration::try_from_secs_f64) {
        Ok(Ok(secs)) => secs,
        _ => args.fail(format!("{flag} `{value}`: not a number of seconds")),
    }
}

fn main() -> Result<(), cli::Failure> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut addr = "127.0.0.1:7001".to_owned();
    let (mut pause, mut initial, mut max) = (
        Duration::from_secs(2),
        Duration::from_secs(1),
        Duration::from_secs(60),
    );
    let mut args = cli::Args::new("echo_client", HELP);
    while let Some(flag) = args.next_flag() {
        let f = flag.as_str();
        match f {
            "--addr" => addr = args.value(f),
            "--pause" => pause = seconds(&mut args, f),
            "--reconnect-delay" => initial = seconds(&mut args, f),
            "--max-delay" => max = seconds(&mut args, f),
            _ => args.unknown(f),
        }
    }
    // A host name is looked up once, here (the client reconnects to that address).
    let server: SocketAddr = match addr.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(server)) => server,
        Ok(None) => args.fail(format!("--addr `{addr}`: the name has no address")),
        Err(e) => args.fail(format!("--addr `{addr}`: {e} (give HOST:PORT)")),
    };
    let backoff = Backoff::new()
        .with_initial(initial)
        .with_max(max.max(initial));
    let options = ConnOptions::new().with_framing(Framing::Raw);
    let client = ReconnectingClient::new(server, options, backoff, EchoClientFactory { pause });
    let mut schedule = fibra::schedule()?;
    client.start(&mut schedule)?;
    println!("echo client of {server} (Ctrl-C stops)");
    let signal = schedule.block_on(|h| h.signals(&[Signal::INT, Signal::TERM]))??;
    client.stop();
    println!(
        "{signal}: stopped after {} connections",
        client.connections()
    );
    Ok(())
}
