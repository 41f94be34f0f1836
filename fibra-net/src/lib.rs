//! fibra's network plugin: TCP servers and clients as sequential tasklet code.
//!
//! Add a [`NetPlugin`] to a [`Schedule`](fibra_rt::Schedule); tasklets then call the ops of
//! [`NetExt`] on their handle: [`listen`](NetExt::listen), [`accept`](NetExt::accept),
//! [`connect`](NetExt::connect), [`receive`](NetExt::receive) (one frame, by the connection's
//! [codec](Framing)), [`send`](NetExt::send), [`close`](NetExt::close),
//! [`on_lost_connection`](NetExt::on_lost_connection), and a [`std::io`] adapter
//! ([`NetExt::io`]).
//!
//! ```
//! use fibra_net::{NetExt, NetPlugin};
//! use fibra_rt::Schedule;
//!
//! let mut schedule = Schedule::new();
//! schedule.add_plugin(NetPlugin::new()?)?;
//! schedule.spawn(|h| {
//!     let listener = h.listen("127.0.0.1:0").unwrap();
//!     let addr = listener.local_addr();
//!     let client = h.connect(addr).unwrap();
//!     let (server, _) = h.accept(&listener).unwrap();
//!     h.send(&client, b"hello\r\nworld\n").unwrap();
//!     assert_eq!(h.receive(&server).unwrap(), b"hello");
//!     assert_eq!(h.receive(&server).unwrap(), b"world");
//! })?;
//! schedule.run()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! How it works, and what it promises:
//! - Each socket is registered once with the poller (edge-triggered); readiness is kept per
//!   socket, a system call is tried first, and a tasklet parks only when the kernel has
//!   nothing for it.
//! - Sends are queued into the connection's bounded output buffer; everything sent to one
//!   connection during a tick leaves in one write at the end of the tick (unless the
//!   connection writes through: [`ConnOptions::with_write_through`]). A slow reader makes
//!   `send` park (or `try_send` fail with [`NetError::Full`]); memory stays bounded.
//! - A [`Group`] sends to many connections with one call: a round's bytes are stored once
//!   and shared by every member's output, written with one gathering write each; members
//!   that do not read are cut off (or skipped), by the group's [`SlowPolicy`].
//! - Frames are bounded ([`ConnOptions::max_frame`], 64 KiB by default); a longer one loses
//!   the connection with [`Lost::TooLong`], and no other connection notices.
//! - A user [`Codec`] is called through one checked door: a panic in it, or a frame it
//!   returns outside its buffer, ends its own connection with [`Lost::Codec`]; the
//!   schedule and the other connections go on.
//! - A flooding peer is read in slices (64 KiB per connection per poll round), so the other
//!   connections are served in between.
//! - Every connection is closed exactly once; every `on_lost_connection` returns exactly
//!   once. Killing a tasklet drops its [`Conn`]s, which closes them.
//! - Buffers are lent from a pool only while they hold bytes: idle connections cost no
//!   buffer memory, and steady traffic allocates nothing.
//!
//! TLS (the `tls` feature, on by default): [`NetExt::listen_tls`] and
//! [`NetExt::connect_tls`] (or [`ListenOptions::with_tls`] and [`ConnOptions::with_tls`]);
//! the [`tls`] module says how it works.
//!
//! For code written as callbacks (gnet's, Twisted's, asyncio's shape), on top of the same
//! tasklets: a [`Protocol`] per connection, made by a [`Factory`] and run by a [`Server`] or a
//! [`ReconnectingClient`] (exponential [`Backoff`] with full jitter), talking through a
//! [`Transport`]; a [`Service`] holds named servers and clients and [notifies](Service::notify)
//! them. `connection_lost` is called exactly once, whatever ends the connection. A [`Pool`]
//! lends N connections to one back end to any tasklet, one request at a time, and repairs
//! them in the background.
//!
//! [`guide`] follows one `receive` through the files of this crate and of `fibra-rt`, from
//! the call to the resume.
//!
//! Logging targets: `fibra_net`, `fibra_net::protocol`, `fibra_net::client`,
//! `fibra_net::service`, `fibra_net::pool`.

// The crate in three layers, and the multi-core parts beside them:
// 1. `api`: what a tasklet holds and calls (its handles, `NetExt`, the ops, settings, errors);
mod api;
// 2. `engine`: what serves it (the plugin, the socket table, buffers, the codec door, syscalls);
mod engine;
// 3. `callback`: protocols, servers, clients, services and pools, built on layer 1 alone;
mod callback;
// and `cores`: one acceptor handing connections to many schedules, by load.
mod cores;
// TLS, a transport filter inside the engine's table; its settings and reasons are public.
pub mod tls;

// Documentation only: how a receive travels through the layers.
pub mod guide;

/// The simulation's seam (`sim` feature): the system calls a simulated network implements
/// for [`NetPlugin::simulated`]. See fibra-sim.
#[cfg(feature = "sim")]
pub mod sim {
    pub use crate::engine::sys::sim::{SimFd, SimNet};
}

// 1. The tasklet-facing API.
pub use api::backoff::{Backoff, Delays};
pub use api::codec::{
    Codec, CodecCall, CodecFailure, Decoded, FrameError, Framing, LengthCodec, LineCodec, RawCodec,
    DEFAULT_MAX_FRAME,
};
pub use api::conn::{Conn, ConnId, Listener};
pub use api::error::{Lost, NetError, PoolTimeout};
pub use api::ext::NetExt;
pub use api::group::Group;
pub use api::io::ConnIo;
pub use api::ops;
pub use api::options::{
    ConnOptions, GroupOptions, ListenOptions, SlowPolicy, DEFAULT_CLOSE_TIMEOUT, DEFAULT_SEND_LIMIT,
};
#[doc(hidden)]
pub use api::resolve::set_test_resolver;
pub use api::resolve::{Addrs, ToAddrs};
pub use api::stats::{GroupStats, NetStats};

// 2. The engine: the plugin to add to a schedule (and, hidden, the codec door for the fuzzer).
#[doc(hidden)]
pub use engine::codec_door::{feed_through_door, DoorError, Fed};
pub use engine::plugin::NetPlugin;

// 3. The callback framework.
pub use callback::{
    ClientEvent, ClientState, Ended, Factory, Member, Pool, PoolStats, Protocol,
    ReconnectingClient, Server, Service, Spawner, Target, Transport,
};

// Many cores.
pub use cores::{Handed, Handoff, LoadToken, Loads};

// TLS.
pub use tls::{TlsInfo, TlsLost, DEFAULT_HANDSHAKE_TIMEOUT};

// The rustls crate fibra-net's TLS is built on (the `tls` feature), to build the server and
// client configs with: `fibra_net::rustls` (and `fibra::net::rustls`). A hidden module rather
// than `pub use rustls`: the façade's inlined glob would copy all of rustls's docs, whose
// links are broken where `cargo doc --no-deps` did not document rustls (a hidden `use` is
// still copied across crates, a hidden module is not). The `tls` module's docs name it.
#[cfg(feature = "tls")]
#[doc(hidden)]
pub mod rustls {
    pub use ::rustls::*;
}
