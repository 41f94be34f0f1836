//! fibra: network servers as plain sequential code, running as thousands of cooperative
//! tasklets on one thread.
//!
//! This crate re-exports the runtime ([`rt`]), the tasks plugin ([`tasks`]), the network
//! plugin ([`net`]), the signals plugin ([`signal`]), the HTTP and WebSocket servers
//! ([`http`]) and a Redis client ([`redis`]).
//!
//! ```
//! use std::time::Duration;
//! use fibra::tasks::{TasksExt, TasksPlugin};
//!
//! let mut schedule = fibra::Schedule::new();
//! schedule.add_plugin(TasksPlugin::new())?;
//! schedule.spawn_named("ticker", |h| {
//!     for _ in 0..3 {
//!         h.sleep(Duration::from_millis(1)); // a visible yield point
//!     }
//! })?;
//! schedule.run()?; // returns when the ticker ends
//! # Ok::<(), fibra::Error>(())
//! ```

/// The runtime: [`Schedule`], tasklets, [`Handle`], the plugin API and the reactor (the
/// `fibra-rt` crate).
pub mod rt {
    #[doc(inline)]
    pub use fibra_rt::*;
}

/// The tasks plugin: spawn, join, sleep, channels (the `fibra-tasks` crate).
pub mod tasks {
    #[doc(inline)]
    pub use fibra_tasks::*;
}

/// The network plugin: listen, accept, connect, receive, send, groups (the `fibra-net`
/// crate).
pub mod net {
    #[doc(inline)]
    pub use fibra_net::*;
}

/// HTTP/1.1 and WebSocket servers for tasklets (the `fibra-http` crate).
pub mod http {
    #[doc(inline)]
    pub use fibra_http::*;
}

/// A Redis client for tasklets: commands, pipelines, pub/sub, streams, a pool (the
/// `fibra-redis` crate).
pub mod redis {
    #[doc(inline)]
    pub use fibra_redis::*;
}

/// Deterministic simulation: the same tasklet code on simulated hosts, network and clock,
/// from one seed (the `fibra-sim` crate; `sim` feature, for tests).
#[cfg(feature = "sim")]
pub mod sim {
    #[doc(inline)]
    pub use fibra_sim::*;
}

/// The signals plugin: wait for Ctrl-C, `SIGTERM`, `SIGHUP`... as an op (the `fibra-signal`
/// crate).
pub mod signal {
    #[doc(inline)]
    pub use fibra_signal::*;
}

/// A schedule with the standard plugins: tasks, network and (on Linux) signals, so that a
/// program starts in one line.
///
/// ```
/// use fibra::net::NetExt;
///
/// let mut schedule = fibra::schedule()?;
/// let addr = schedule.block_on(|h| -> Result<_, fibra::net::NetError> {
///     let listener = h.listen("127.0.0.1:0")?; // an error here reaches the host
///     Ok(listener.local_addr())
/// })??;
/// assert!(addr.ip().is_loopback());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// [`Error::Reactor`] or [`Error::Io`] when the poller or the network plugin cannot be made
/// (out of file descriptors).
pub fn schedule() -> Result<Schedule, Error> {
    schedule_with(Schedule::builder())
}

/// [`schedule`], from a [`Builder`](fibra_rt::Builder) of one's own settings: its tasklets'
/// stack size (a tasklet that overflowed its stack says to raise it), its step budget, its
/// stall threshold.
///
/// ```
/// let mut schedule = fibra::schedule_with(fibra::Schedule::builder().stack_size(256 * 1024))?;
/// let sum = schedule.block_on(|_h| {
///     let big = [1u8; 100 * 1024]; // more than the default 64 KiB stack holds
///     big.iter().map(|&b| u32::from(b)).sum::<u32>()
/// })?;
/// assert_eq!(sum, 100 * 1024);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// As [`schedule`].
pub fn schedule_with(builder: fibra_rt::Builder) -> Result<Schedule, Error> {
    let mut schedule = builder.try_build()?;
    schedule.add_plugin(tasks::TasksPlugin::new())?;
    schedule.add_plugin(net::NetPlugin::new()?)?;
    match signal::SignalPlugin::new() {
        Ok(plugin) => schedule.add_plugin(plugin)?,
        Err(signal::SignalError::Unsupported) => {}
        Err(e) => return Err(Error::Io(e.into())),
    }
    Ok(schedule)
}

pub use fibra_rt::{Error, Exit, Handle, Schedule, SpawnOptions, TaskletId};

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
