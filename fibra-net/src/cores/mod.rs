//! Many schedules on many cores: [`Cores`](fibra_rt::Cores) (from `fibra-rt`) starts one schedule per thread;
//! a [`Handoff`] accepts on one thread and hands each connection to the least-loaded of them
//! ([`Loads`]), the alternative to one `SO_REUSEPORT` listener per schedule.
//!
//! `Handoff` lives here rather than beside `Cores` in `fibra-rt` because it hands connections
//! over `fibra-tasks`' remote channels, which `fibra-rt` cannot depend on.

mod handoff;

pub use handoff::{Handed, Handoff, LoadToken, Loads};
