//! The tokio peer of `echo`, for side-by-side benchmarks: a current-thread runtime, one task
//! per connection, as a good tokio programmer would write it.
//!
//! ```text
//! cargo run --release -p fibra-bench --bin tokio_echo -- --addr 127.0.0.1:7070
//! cargo run --release -p fibra-bench --bin tokio_echo -- --threads 4   # the multi-thread runtime
//! ```

#[path = "../../../examples/shared/cli.rs"]
mod cli;
#[path = "../tokio_listen.rs"]
mod listen;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What `--help` prints.
const HELP: &str = "\
tokio_echo: the tokio peer of fibra's `echo` server, a benchmark tool (fibra-bench):
it echoes every byte back, one task per connection.

usage: tokio_echo [--addr HOST:PORT] [--threads N]
  --addr HOST:PORT  where to listen (default 127.0.0.1:7070)
  --threads N       1: a current-thread runtime (default); more: the multi-thread one
                    with N workers";

fn main() -> Result<(), cli::Failure> {
    let mut addr = "127.0.0.1:7070".to_owned();
    let mut threads = 1usize;
    let mut args = cli::Args::new("tokio_echo", HELP);
    while let Some(flag) = args.next_flag() {
        let f = flag.as_str();
        match f {
            "--addr" => addr = args.value(f),
            "--threads" => threads = args.number(f, 1, 1024) as usize,
            _ => args.unknown(f),
        }
    }
    // One thread: the current-thread runtime; more: tokio's work-stealing multi-thread one.
    let runtime = if threads > 1 {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    };
    runtime.block_on(async move {
        let listener = listen::bind(&addr).await?;
        eprintln!("tokio echo server listening on {}", listener.local_addr()?);
        loop {
            let (mut stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    })
}
