//! A Redis client for fibra's tasklets: commands with typed replies, pipelines (one write
//! for many commands), pub/sub with reconnection, streams, a pool, and a timeout on every
//! call. RESP2 and RESP3 are decoded by the sans-IO `redis-protocol` crate (6.0) over
//! fibra-net connections.
//!
//! ```
//! use std::time::Duration;
//! use fibra_redis::{Cmd, Commands, Config, Connection, RedisError};
//! # // A redis-server of its own, on a free port, killed at the end (also on panic).
//! # struct Server(std::process::Child);
//! # impl Drop for Server {
//! #     fn drop(&mut self) { let _ = self.0.kill(); let _ = self.0.wait(); }
//! # }
//! # let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
//! # let _server = Server(std::process::Command::new("redis-server")
//! #     .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
//! #     .args(["--appendonly", "no"])
//! #     .stdout(std::process::Stdio::null())
//! #     .spawn()
//! #     .expect("this example needs redis-server (apt-get install redis-server)"));
//! # for _ in 0..500 {
//! #     if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() { break; }
//! #     std::thread::sleep(Duration::from_millis(10));
//! # }
//!
//! let mut schedule = fibra_rt::Schedule::new();
//! schedule.add_plugin(fibra_net::NetPlugin::new()?)?;
//! schedule.add_plugin(fibra_tasks::TasksPlugin::new())?;
//! schedule.block_on(move |h| -> Result<(), RedisError> {
//!     let config = Config::parse(&format!("redis://127.0.0.1:{port}/0"))?;
//!     let mut conn = Connection::connect(h, &config)?;
//!     conn.set(h, "greeting", "hello")?;
//!     assert_eq!(conn.get(h, "greeting")?, Some(b"hello".to_vec()));
//!     // Any command, built without an allocation per argument.
//!     let id = conn.call(h, &Cmd::new("XADD").arg("room").arg("*").arg("line").arg("hi"))?;
//!     // A typed helper; the call's timeout is the block time plus the call timeout.
//!     let new = conn.xread_block(h, &["room"], &["0"], Some(10), Duration::from_millis(100))?;
//!     assert_eq!(new[0].entries[0].id, id.as_str().unwrap());
//!     // Many commands, one write, the replies in order.
//!     let cmds: Vec<Cmd> = (1..=3).map(|_| Cmd::new("INCR").arg("n")).collect();
//!     let replies = conn.pipeline(h, &cmds)?;
//!     assert_eq!(replies[2].as_ref().unwrap().as_int(), Some(3));
//!     Ok(())
//! })??;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The parts:
//! - [`Config`]: `redis://[user:pass@]host:port/db` URLs, the connect and call timeouts,
//!   the largest reply accepted, RESP2 or RESP3.
//! - [`Cmd`]: a command, encoded as its arguments are added; [`Value`]: a reply.
//! - [`Connection`]: one connection; [`call`](Connection::call) and
//!   [`pipeline`](Connection::pipeline). A timeout, a loss or an invalid reply breaks it for
//!   good, so that replies never get out of step with their commands.
//! - [`Client`]: a connection that reconnects on the next call after it broke, with
//!   fibra-net's [`Backoff`](fibra_net::Backoff).
//! - [`Pool`]: N connections lent one call at a time, repaired in the background; a call
//!   never waits past its timeout, even with the server down.
//! - [`Subscriber`]: pub/sub on a connection of its own, which reconnects and subscribes
//!   again by itself and tells the caller of the gap ([`Message::Reconnected`]).
//! - [`Commands`]: typed helpers (`SET NX EX`, `EXPIRE`, hashes, `XADD`, `XREAD BLOCK`,
//!   `XRANGE`, `PUBLISH`, `EVAL`...) for all three.
//!
//! Every length and count a server sends is checked against the reply limit before it is
//! used, nesting is bounded, and a reply over the limit fails its call with
//! [`RedisError::TooLarge`]: memory stays bounded whatever the server sends.
//!
//! Logging target: `fibra_redis`.

mod client;
mod cmd;
mod commands;
mod config;
mod connection;
mod error;
// The reply reader without a socket, for the fuzzer only.
#[doc(hidden)]
pub mod fuzzing;
mod pool;
mod pubsub;
mod scan;
mod value;

pub use client::Client;
pub use cmd::{Arg, Cmd};
pub use commands::{Commands, Fields, StreamEntry, StreamRead};
pub use config::{
    Config, Protocol, DEFAULT_CALL_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_REPLY,
};
pub use connection::Connection;
pub use error::RedisError;
pub use pool::{Pool, PoolStats};
pub use pubsub::{Message, Subscriber, DEFAULT_KEEPALIVE};
pub use value::Value;
