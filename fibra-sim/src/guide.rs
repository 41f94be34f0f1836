//! # Guide: testing your servers in simulation
//!
//! A simulation runs your tasklets — the same functions your binary spawns — on simulated
//! hosts that talk over an in-memory network, with a simulated clock, all on the test's
//! thread. Every choice (which host runs next, each segment's latency, which faults strike
//! and when) comes from one seed, so a seed that fails fails again, every time, and the test
//! prints the command that replays it.
//!
//! ## Set up
//!
//! ```toml
//! [dev-dependencies]
//! fibra = { version = "0.2", features = ["sim"] }   # fibra::sim
//! # or: fibra-sim = "0.2"
//! ```
//!
//! The `sim` feature turns on the seam in fibra-net and fibra-rt for that build (a
//! socket type that may be simulated, a clock that may be set). Your release builds don't
//! select it, and pay nothing for it.
//!
//! The test below names the crates (`fibra_sim`, `fibra_net`, `fibra_rt`, `fibra_tasks`);
//! with only `fibra` as a dependency the same items are `fibra::sim::Sim`,
//! `fibra::net::NetExt`, `fibra::rt::Handle` and `fibra::tasks::TasksExt`.
//!
//! ## A complete test
//!
//! A counter service (each line `add N` answered with the running total) and two clients,
//! under faults drawn from each of 100 seeds, one of which partitions the network while the
//! clients work. The invariant: every answer a client gets is the total it expects (the
//! service never loses or repeats an `add`), and every client ends.
//!
//! ```
//! use std::cell::{Cell, RefCell};
//! use std::rc::Rc;
//! use std::time::Duration;
//!
//! use fibra_net::NetExt;
//! use fibra_sim::{for_seeds, Sim};
//! use fibra_tasks::TasksExt;
//!
//! /// The service, as the binary spawns it: one tasklet per connection.
//! fn counter(h: &fibra_rt::Handle) {
//!     let listener = h.listen("0.0.0.0:4000").expect("listen");
//!     let total = Rc::new(Cell::new(0u64));
//!     while let Ok((conn, _peer)) = h.accept(&listener) {
//!         let total = total.clone();
//!         h.spawn_detached(move |h| {
//!             while let Ok(line) = h.receive_line(&conn) {
//!                 let n: u64 = line.strip_prefix("add ").and_then(|n| n.parse().ok()).unwrap_or(0);
//!                 total.set(total.get() + n);
//!                 if h.send_line(&conn, &total.get().to_string()).is_err() {
//!                     break;
//!                 }
//!             }
//!         })
//!         .expect("spawn");
//!     }
//! }
//!
//! fn one_run(seed: u64) {
//!     let mut sim = Sim::new(seed);
//!     let mut faults = sim.random_faults(); // short writes, split segments, small buffers...
//!     faults.reset = 0.0; // a reset loses an `add` in flight by design; not this test's point
//!     sim.set_faults(faults);
//!
//!     let server = sim.host("10.0.0.1");
//!     sim.on_boot(server, |schedule| {
//!         schedule.spawn_named("counter", counter).expect("spawn");
//!     });
//!
//!     let answers: Rc<RefCell<Vec<u64>>> = Rc::default();
//!     let done = Rc::new(Cell::new(0));
//!     for c in 0..2 {
//!         let client = sim.host(&format!("10.0.1.{c}"));
//!         let (answers, done) = (answers.clone(), done.clone());
//!         sim.spawn(client, "client", move |h| {
//!             let conn = h.connect("10.0.0.1:4000").expect("connect");
//!             for _ in 0..10 {
//!                 h.send_line(&conn, "add 1").expect("send");
//!                 let total: u64 = h.receive_line(&conn).expect("answer").parse().unwrap();
//!                 answers.borrow_mut().push(total);
//!                 h.sleep(Duration::from_millis(100));
//!             }
//!             done.set(done.get() + 1);
//!         });
//!     }
//!
//!     // Let the clients start, cut one off for a simulated second, repair, run to the end.
//!     sim.run_for(Duration::from_millis(250)).unwrap();
//!     let victim = fibra_sim::HostId(1 + sim.random(2) as usize);
//!     sim.partition(victim, server);
//!     sim.run_for(Duration::from_secs(1)).unwrap();
//!     sim.repair(victim, server);
//!     sim.run_until(|_| done.get() == 2, Duration::from_secs(60))
//!         .unwrap_or_else(|e| panic!("{e}"));
//!
//!     // Each `add` counted once: the answers are 1..=20, each once.
//!     let mut answers = answers.borrow().clone();
//!     answers.sort();
//!     assert_eq!(answers, (1..=20).collect::<Vec<u64>>());
//! }
//!
//! # fn main() {
//! for_seeds(100, one_run);
//! # }
//! ```
//!
//! When a seed fails, [`for_seeds`](crate::for_seeds) prints it with its replay command
//! before the panic goes on:
//!
//! ```text
//! fibra-sim: seed 61 failed; replay it with:
//!     FIBRA_SIM_SEED=61 cargo test -p my-service --test sim -- --exact my_test
//! ```
//!
//! A seed that hangs instead (a tasklet looping without a yield) is named the same way once
//! it has run 60 s of wall time (`FIBRA_SIM_WATCH=<seconds>` to change it).
//!
//! Replay it, with `RUST_LOG` if your code logs, and read the last entries of
//! [`Sim::trace`](crate::Sim::trace) (every round, system call, delivery and fault, with
//! its simulated time; [`Sim::keep_trace`](crate::Sim::keep_trace) keeps more of them).
//!
//! ## What you drive
//!
//! - **Hosts**: [`Sim::host`](crate::Sim::host)`("10.0.0.1")`. Each has its own schedule with
//!   the network and tasks plugins; `listen("0.0.0.0:port")` binds the host's address;
//!   `connect("10.0.0.1:port")` reaches the host with that address.
//! - **Tasklets**: [`Sim::spawn`](crate::Sim::spawn) once, or
//!   [`Sim::on_boot`](crate::Sim::on_boot) for a host's services, run again at each restart.
//!   [`Sim::schedule`](crate::Sim::schedule) gives the host's `Schedule` (its plugins' stats,
//!   `NetPlugin::listen` from the host).
//! - **Time**: [`Sim::run_until`](crate::Sim::run_until)`(condition, deadline)` and
//!   [`Sim::run_for`](crate::Sim::run_for). Time is simulated: a sleep of an hour costs
//!   nothing; the clock jumps to the next deadline whenever no host can run. A run that can
//!   never progress stops with [`SimError::Quiet`](crate::SimError) instead of hanging, and
//!   an assertion that fails in a tasklet spawned by `Sim::spawn` stops it with
//!   `SimError::Panicked` (a tasklet's panic ends that tasklet only, as in a real schedule:
//!   assert in `Sim::spawn`ed tasklets or join the others).
//! - **Faults on demand**: [`partition`](crate::Sim::partition),
//!   [`partition_one_way`](crate::Sim::partition_one_way), [`repair`](crate::Sim::repair),
//!   [`reset_one`](crate::Sim::reset_one), [`crash`](crate::Sim::crash),
//!   [`restart`](crate::Sim::restart), [`set_latency`](crate::Sim::set_latency).
//! - **Faults from the seed**: [`Faults`](crate::Faults) (short writes, segments split into
//!   short reads, small send buffers for slow readers, resets, partitions and their repair,
//!   a small accept queue, a descriptor limit for `EMFILE`), set with
//!   [`set_faults`](crate::Sim::set_faults) or drawn with
//!   [`random_faults`](crate::Sim::random_faults).
//!
//! ## The network, as modelled
//!
//! TCP, small: connects are SYN, SYN-ACK or a refusal (`ECONNREFUSED`; `EHOSTUNREACH` for an
//! address no host has; a loopback address, `127.0.0.1` or `::1`, is the host's own); a full
//! accept queue drops the SYN and the client retries after 1, 2, 4... s, six times, then
//! fails with `ETIMEDOUT` (as Linux), or with [`Faults::overflow_established`](crate::Faults) the client
//! is connected while the server's side waits outside the queue and is forgotten after
//! 31 s (Linux's other way); keepalive probes (`ConnOptions::with_keepalive`) are answered,
//! or get a RST from a host that no longer knows the connection; bytes arrive in order, after
//! the link's latency, counted against the send buffer until the reader reads them (a writer
//! whose peer's window stays shut probes it, as the kernel's persist timer does); bytes that
//! arrived before a reset are read before the reset is told; a close sends a FIN, or a RST
//! when unread input remains or the linger is zero; a segment for a socket that no longer exists (a restarted
//! host) is answered by a RST. A cut link holds its segments (TCP retransmits) until it is
//! repaired, or until [`Faults::give_up`](crate::Faults::give_up) passes and the sender fails
//! with `ETIMEDOUT`; a crashed host is a cut to everyone. As on a real network, a peer that
//! vanishes while the connection is idle is noticed only when something is sent (or a read
//! timeout passes): give idle connections a ping or a timeout, and the simulation will show
//! you whether you did.
//!
//! ## Keep the run deterministic
//!
//! The simulation decides everything it owns; your code must not bring in chance of its own:
//! - read time with [`fibra_rt::time::now`] (or a plugin's `cx.now()`), never
//!   `Instant::now()` or `SystemTime::now()` directly (the simulated clock runs ten years
//!   ahead of `Instant::now()`, so a deadline taken from it has passed at once, in every
//!   run: a test that sees timeouts fire at once has found one);
//! - don't let the order of a `HashMap`'s iteration (a random seed per map) decide what is
//!   sent; use a `BTreeMap`, or sort;
//! - no threads (`unblock`, `Remote` from another thread) and no real DNS: use address
//!   literals (`unblock`, a name's lookup, TLS, `adopt`, `NetPlugin::new`, `Cores` and
//!   `Schedule::run` refuse under a simulation with an error that says so; a wake through a
//!   `Remote`, a `remote_channel`'s send, from a thread outside the simulation stops the run
//!   with [`SimError::Host`](crate::SimError) saying so);
//! - nothing that goes real behind fibra's back, which no simulation can see or refuse:
//!   `std::net` sockets (real I/O), `std::thread::sleep` (real waiting, while simulated time
//!   stands still), `SystemTime::now()` (a different date each run; use
//!   [`fibra_rt::time::system_now`]);
//! - a host's tasklets run on the test's thread, so simulations of one thread take turns
//!   (the test harness runs each test on its own thread; two of one thread may be stepped in
//!   turn, each setting the thread's clock to its own as it runs).
//!
//! A run that cannot end says so rather than hanging: [`SimError::Quiet`](crate::SimError)
//! (nothing can happen any more), `Livelock` (rounds at one instant), `Budget` (a run of
//! [`Sim::MAX_ROUNDS`](crate::Sim::MAX_ROUNDS) rounds while time crawls: a tasklet that
//! sleeps a microsecond in a loop; [`Sim::set_max_rounds`](crate::Sim::set_max_rounds)
//! raises it). A tasklet that loops without yielding at all cannot be stopped from the
//! outside: [`for_seeds`](crate::for_seeds) names its seed after 60 s of wall time. A
//! tasklet's stack overflow aborts the process (as outside a simulation); its report ends
//! with the seed's replay command.
//!
//! The [`trace hash`](crate::Sim::trace_hash) tells you if you slipped: run the same seed
//! twice and compare.
