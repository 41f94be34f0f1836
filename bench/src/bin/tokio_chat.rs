//! The tokio peer of `chatter`, for side-by-side benchmarks: the same protocol, written as
//! a good tokio programmer would (`../tokio_room.rs`: a reader task per client, a
//! `broadcast` channel for the room, and one batching writer task per client). By default
//! on a current-thread runtime (the peer of `chatter`); with `--threads N` on tokio's work-stealing multi-thread runtime with N
//! workers (the peer of `chatter --threads N` in `scripts/scale.py`).
//!
//! ```text
//! cargo run --release -p fibra-bench --bin tokio_chat -- --addr 127.0.0.1:1970
//! cargo run --release -p fibra-bench --bin tokio_chat -- --addr 127.0.0.1:1970 --threads 4
//! ```

#[path = "../../../examples/shared/cli.rs"]
mod cli;
#[path = "../tokio_listen.rs"]
mod listen;
#[path = "../tokio_room.rs"]
mod room;

/// What `--help` prints.
const HELP: &str = "\
tokio_chat: the tokio peer of fibra's `chatter`, a benchmark tool (fibra-bench): the
chatter's line protocol (handles, /who, /msg, /join, /quit) for telnet clients.

usage: tokio_chat [--addr HOST:PORT] [--threads N]
  --addr HOST:PORT  where to listen (default 127.0.0.1:1970)
  --threads N       tokio's multi-thread runtime with N workers (default: current-thread)";

fn main() -> Result<(), cli::Failure> {
    let mut addr = "127.0.0.1:1970".to_owned();
    let mut threads = None;
    let mut args = cli::Args::new("tokio_chat", HELP);
    while let Some(flag) = args.next_flag() {
        let f = flag.as_str();
        match f {
            "--addr" => addr = args.value(f),
            "--threads" => threads = Some(args.number(f, 1, 1024) as usize),
            _ => args.unknown(f),
        }
    }
    let runtime = match threads {
        None => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::max(n, 1))
            .enable_all()
            .build()?,
    };
    runtime.block_on(async move {
        let listener = listen::bind(&addr).await?;
        eprintln!("tokio chat server listening on {}", listener.local_addr()?);
        let room = room::Room::new();
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    eprintln!("accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            let room = room.clone();
            tokio::spawn(async move {
                if stream.set_nodelay(true).is_ok() {
                    let (reader, writer) = stream.into_split();
                    let _ = room::client(reader, writer, room).await;
                }
            });
        }
    })
}
