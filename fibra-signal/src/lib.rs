//! fibra's signals plugin: a tasklet waits for `SIGINT`, `SIGTERM`, `SIGHUP`... as an op,
//! on the schedule's reactor (a `signalfd` on Linux), beside its sockets and timers.
//!
//! Add [`SignalPlugin`] to a schedule, then use [`SignalExt`] on a tasklet's handle:
//!
//! ```no_run
//! use fibra_rt::Schedule;
//! use fibra_signal::{Signal, SignalExt, SignalPlugin};
//!
//! let mut schedule = Schedule::new();
//! schedule.add_plugin(SignalPlugin::catching(&[Signal::INT])?)?;
//! schedule.spawn(|h| {
//!     h.signal(Signal::INT).unwrap(); // parks until Ctrl-C
//!     log::info!("Ctrl-C: stopping");
//! })?;
//! schedule.run()?; // returns once Ctrl-C came and the tasklet ended
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! No handler runs in signal context: the signal is blocked and read from the descriptor, so
//! a tasklet may do anything when it comes. Only Linux is supported;
//! [`SignalPlugin::new`] says [`SignalError::Unsupported`] elsewhere.
#![warn(clippy::undocumented_unsafe_blocks)]
#![doc(test(attr(deny(warnings))))]

mod error;
mod ext;
pub mod ops;
mod plugin;
mod signal;
#[cfg(target_os = "linux")]
mod sys;
#[cfg(not(target_os = "linux"))]
#[path = "sys_unsupported.rs"]
mod sys;

pub use error::SignalError;
pub use ext::SignalExt;
pub use plugin::SignalPlugin;
pub use signal::Signal;
