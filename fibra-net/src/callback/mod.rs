//! A callback framework on top of tasklets (Twisted's, asyncio's and gnet's shape): a
//! [`Protocol`] per connection, made by a [`Factory`] and run by a [`Server`] or a
//! [`ReconnectingClient`], talking through a [`Transport`]; a [`Service`] of named servers and
//! clients; a [`Pool`] of connections to one back end. Clients and pools wait between
//! connects by the crate's one back-off policy, [`Backoff`](crate::Backoff).
//!
//! This layer is written on the crate's public API alone, as a user's framework would be:
//! its files name the rest of the crate only by the paths a user writes (`crate::Conn`,
//! `crate::NetExt`, `crate::ops::Receive`), never a crate-private item. `tests/net_layers.rs`
//! proves it: it compiles these files a second time inside a crate that sees nothing of
//! `fibra_net` but its public items.

mod client;
mod mailbox;
mod pool;
mod protocol;
mod server;
mod service;
mod session;
mod spawner;
mod stackless;
mod transport;

pub use client::{ClientEvent, ClientState, ReconnectingClient};
pub use pool::{Pool, PoolStats};
pub use protocol::{Ended, Factory, Protocol};
pub use server::Server;
pub use service::{Member, Service, Target};
pub use spawner::Spawner;
pub use transport::Transport;
