//! Deterministic simulation for fibra: the same tasklet code, run on simulated hosts, an
//! in-memory network and a simulated clock, every choice drawn from one seed.
//!
//! # The seam
//!
//! fibra's tasklets yield ops that plugins serve; the network plugin serves them from its
//! connection table, which makes its system calls through one small layer (`sys`). With the
//! `sim` feature, fibra-net's socket type is an enum (a kernel socket, or a simulated one)
//! and [`NetPlugin::simulated`](fibra_net::NetPlugin::simulated) builds a plugin whose
//! table calls a [`SimNet`](fibra_net::sim::SimNet) instead of the kernel, and takes its
//! readiness from it: the table (buffers, edge-triggered readiness, read timeouts, loss,
//! close, groups) is the real code under test. Time is [`fibra_rt::time::now`], which the
//! simulation sets (a thread-local instant) before each round, so sleeps, timeouts and
//! back-offs run on simulated time, which jumps to the next deadline when no host can run.
//! Without the feature, the enum has one variant and `now` is `Instant::now()`: the real
//! path costs nothing. Measured with callgrind (release, fat LTO, 5,000 loopback echoes in
//! one schedule): 35,074,454 and 35,075,086 instructions before the seam, 35,075,091 and
//! 35,074,274 after it; with the feature on (a test build that selects fibra-sim), 35,305,182
//! (+0.7 %). fibra-sim is not a default member of the workspace, so `cargo build` and the
//! benchmarks never turn the feature on.
//!
//! Why this seam rather than turmoil's (its own socket types, swapped in at compile time)
//! or madsim's (libc overridden): the code under test is fibra-net's own connection table,
//! not a stand-in; the user's code is unchanged, down to the types it names; and the clock
//! is simulated everywhere fibra reads it, not only where a runtime's timer does.
//!
//! # Use
//!
//! [`Sim::new(seed)`](Sim::new), [`Sim::host`] for each host, [`Sim::spawn`] or
//! [`Sim::on_boot`] for their tasklets, faults on demand ([`Sim::partition`],
//! [`Sim::crash`]...) or drawn from the seed ([`Sim::set_faults`], [`Faults::random`]),
//! then [`Sim::run_until`] a condition or a simulated deadline; [`Sim::trace_hash`] tells
//! two runs apart. [`for_seeds`] runs a test over many seeds and prints the command that
//! replays a failing one (`FIBRA_SIM_SEED=… cargo test …`). The guide, with a complete
//! test to copy: [`guide`].
//!
//! A simulation sets its thread's clock (and its stream of jitter) to its own whenever it
//! runs, so several may live on one thread (two runs of one seed built first, then run or
//! stepped in turn); the last to go gives the thread back its real clock.

mod faults;
mod host;
mod net;
mod rng;
mod seeds;
mod sim;
mod trace;

pub mod guide;

pub use faults::{Faults, Latency};
pub use rng::Rng;
pub use seeds::{for_seeds, replay_line, SEED_VAR, WATCH_VAR};
pub use sim::{HostId, Sim, SimError};
pub use trace::{Entry, Trace, What};
