//! fibra's tasks plugin: spawn, join, on_finish, kill, sleep, yield_now; channels between
//! tasklets ([`channel`], [`bounded`], [`oneshot`]) and from other threads to a tasklet
//! ([`remote_channel`]); [`Mutex`], [`Semaphore`] and [`Notify`] for tasklets, all on one
//! kill-safe [`WaitList`]; blocking work off the schedule's thread
//! ([`TasksExt::unblock`], [`BlockingPool`]).
//!
//! Add [`TasksPlugin`] to a schedule, then use [`TasksExt`] on a tasklet's handle:
//!
//! ```
//! use std::time::Duration;
//! use fibra_rt::Schedule;
//! use fibra_tasks::{TasksExt, TasksPlugin};
//!
//! let mut schedule = Schedule::new();
//! schedule.add_plugin(TasksPlugin::new())?;
//! schedule.spawn(|h| {
//!     let worker = h.spawn(|h| {
//!         h.sleep(Duration::from_millis(5));
//!         "done"
//!     }).unwrap();
//!     h.on_finish(worker.id(), |_h, exit| log::info!("worker {exit}")).unwrap();
//!     assert_eq!(h.join(worker).unwrap(), "done");
//! })?;
//! schedule.run()?;
//! # Ok::<(), fibra_rt::Error>(())
//! ```
#![warn(clippy::undocumented_unsafe_blocks)]
#![doc(test(attr(deny(warnings))))]
#![forbid(unsafe_code)]

mod channel;
mod error;
mod ext;
mod join;
mod mutex;
mod notify;
pub mod oneshot;
pub mod ops;
mod plugin;
mod remote_channel;
mod semaphore;
mod ticker;
mod unblock;
mod wait;

pub use channel::{bounded, channel, Receiver, Sender};
#[allow(deprecated)]
pub use error::TryRecvError;
pub use error::{SendError, TaskError, TryReceiveError, TrySendError};
pub use ext::TasksExt;
pub use join::JoinHandle;
pub use mutex::{Mutex, MutexGuard};
pub use notify::Notify;
pub use plugin::TasksPlugin;
pub use remote_channel::{remote_channel, RemoteReceiver, RemoteSender};
pub use semaphore::{Semaphore, SemaphorePermit};
pub use ticker::{MissedTicks, Tick, Ticker};
pub use unblock::BlockingPool;
pub use wait::{RemoteWaker, WaitGuard, WaitKey, WaitList, Wake};
