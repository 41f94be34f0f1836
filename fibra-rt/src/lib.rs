//! fibra's runtime: thousands of stackful tasklets on one thread, driven by the host.
//!
//! A **tasklet** is a closure running on its own small stack. When it needs something that may
//! not be ready, it **yields an op** through the [`Handle`] it was given; the [`Schedule`]
//! routes the op to the [`Plugin`] registered for its type, which completes it at once or later,
//! and the tasklet resumes with the result. The host calls [`Schedule::tick`] from its own loop
//! (it never blocks) or [`Schedule::run`] (blocks when idle, returns when no work is left: no
//! tasklet, and no plugin [work](Plugin::has_work) such as a connection waiting without one).
//!
//! This crate holds the schedule, the stack pool, the yield handle, the plugin contract, the
//! [`reactor`] that waits for every plugin's file descriptors in one system call, and the
//! [`Remote`] through which other threads wake a schedule.
//! Spawning from tasklets, sleeping, joining and channels live in `fibra-tasks`; sockets in
//! `fibra-net`. A user-written plugin plugs in the same way:
//!
//! ```
//! use std::task::Poll;
//! use fibra_rt::{Context, Op, Plugin, Router, Schedule, Serves, TaskletId};
//!
//! /// An op: ask for the next ticket number.
//! struct NextTicket;
//! impl Op for NextTicket {
//!     type Output = u64;
//! }
//!
//! #[derive(Debug, Default)]
//! struct Tickets(u64);
//! impl Plugin for Tickets {
//!     fn register(router: &mut Router<Self>) {
//!         router.op::<NextTicket>();
//!     }
//! }
//! impl Serves<NextTicket> for Tickets {
//!     fn submit(&mut self, _: NextTicket, _: TaskletId, _: &mut Context<'_>) -> Poll<u64> {
//!         self.0 += 1;
//!         Poll::Ready(self.0)
//!     }
//! }
//!
//! let mut schedule = Schedule::new();
//! schedule.add_plugin(Tickets::default())?;
//! for _ in 0..3 {
//!     schedule.spawn(|h| {
//!         let ticket = h.yield_op(NextTicket); // a visible yield point
//!         assert!(ticket >= 1);
//!     })?;
//! }
//! schedule.run()?;
//! assert_eq!(schedule.plugin::<Tickets>().unwrap().0, 3);
//! # Ok::<(), fibra_rt::Error>(())
//! ```
#![warn(clippy::undocumented_unsafe_blocks)]
#![doc(test(attr(deny(warnings))))]

// The host's side: the schedule and its settings, and many of them on many threads.
mod builder;
mod cores;
mod schedule;

// The tasklet's side: its handle, what it yields, how it ends.
mod handle;
mod op;
mod select;
mod tasklet;

// The plugins' side: the contract, the routes to them, what they may do, their event source.
mod context;
pub mod plugin;
pub mod reactor;
mod route;

// The pointer into a suspended tasklet's stack, and every use of it.
mod wait;

// Parts: ids, time, stacks, cross-thread wakes, crash and stall reports, errors.
mod clock;
mod deadline;
mod error;
mod id;
mod overflow;
mod remote;
mod stack;
mod stall;

pub mod guide;
pub mod time;

pub use builder::Builder;
pub use cores::{Build, Cores};
pub use deadline::DeadlineQueue;
pub use error::Error;
pub use handle::{Handle, Park, Unparker};
pub use id::{IdMap, TaskletId};
pub use op::{Op, TimedOut};
#[doc(hidden)]
pub use overflow::set_overflow_note;
pub use plugin::{Context, Plugin, Router, Serves};
pub use reactor::{Event, Events, Interest, Registry};
pub use remote::Remote;
pub use schedule::Schedule;
pub use select::{Either, OneOf3};
pub use tasklet::{panic_message, Exit, SpawnOptions, TaskletInfo, TaskletState};
