//! fibra: network servers as plain sequential code, running as thousands of cooperative
//! tasklets on one thread.
//!
//! This crate re-exports the runtime ([`rt`]), the tasks plugin ([`tasks`]) and the network
//! plugin ([`net`]).
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

pub use fibra_net as net;
pub use fibra_rt as rt;
pub use fibra_tasks as tasks;

pub use fibra_rt::{Error, Exit, Handle, Schedule, SpawnOptions, TaskletId};

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
