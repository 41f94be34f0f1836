//! fibra: network servers as plain sequential code, running as thousands of cooperative
//! tasklets on one thread.
//!
//! This crate re-exports the runtime ([`rt`]), the tasks plugin ([`tasks`]) and the network
//! plugin ([`net`]).

pub use fibra_net as net;
pub use fibra_rt as rt;
pub use fibra_tasks as tasks;

pub use fibra_rt::{Error, Exit, Handle, Schedule, SpawnOptions, TaskletId};

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
