//! A short guide to fibra's runtime model (documentation only).
//!
//! # Steps and ticks
//!
//! A *step* resumes one tasklet until it yields an op that is not ready, ends, or has chained
//! 32 ready ops in a row (then it goes to the back of the run queue so others get a turn).
//! `tick()` makes one zero-timeout wait in the reactor, polls every plugin with its events,
//! and runs at most the step budget of steps; between steps it polls again every 61 steps
//! while work is runnable. `run()` does the same, but when nothing is runnable its wait
//! blocks until the nearest deadline of all plugins, a readiness event, or a
//! [`Remote`](crate::Remote) wake.
//!
//! # One reactor
//!
//! Every plugin's file descriptors are watched by the schedule's one poller (see
//! [`reactor`](crate::reactor)): on Linux, epoll called directly, one `epoll_wait` per round;
//! elsewhere, or with the `portable-poller` feature, the `polling` crate. So any number of
//! plugins may wait for outside events side by side, and another thread reaches the schedule
//! through a [`Remote`](crate::Remote).
//!
//! # Never early, never lost
//!
//! Deadlines are compared with [`std::time::Instant`] and only ever fire at or after their
//! instant. An op answered by its plugin is delivered into the yielding tasklet's own stack
//! slot; an answer for a tasklet that stopped waiting is handed back to the plugin.
//!
//! # Killing and panics
//!
//! A panic ends its tasklet only: it is caught at the resume, logged (target
//! `fibra_rt::tasklet`; with no logger installed, one line on stderr names the tasklet) and
//! reported to watchers as [`Exit::Panicked`](crate::Exit::Panicked).
//! A killed tasklet is unwound from its yield point, so its destructors run exactly once.
//! A plugin that panics while serving a tasklet's op ends that tasklet the same way (even
//! inside [`Handle::catch_panic`](crate::Handle::catch_panic), which lets a kill's unwind
//! through); the panic goes on to the host, and the schedule stays usable.
//!
//! # Stalls
//!
//! A tasklet that runs without yielding holds up every other tasklet of its schedule. A
//! watchdog thread names it, once, at `warn` on target `fibra_rt::stall`, with its id, name
//! and how long it has run, while it still runs (so also a plugin stuck in `poll` or
//! `flush`): after 1 s unless [`Builder::stall_threshold`](crate::Builder::stall_threshold) says
//! otherwise, never with `Builder::stall_reports(false)`. Unnamed tasklets show as their id,
//! `#3.1`. One such thread (`fibra-stall`) serves every schedule of the process: the first
//! schedule with reports on starts it and the last one to drop ends it. It sleeps while every
//! schedule waits for events in its reactor, and otherwise looks every quarter of the smallest
//! threshold (at most every 250 ms). A kill that does not end because the tasklet's code
//! catches the kill's unwind (a plain `std::panic::catch_unwind` around a yield, where
//! [`Handle::catch_panic`](crate::Handle::catch_panic) would let it through) is reported the
//! same way, naming the tasklet.
//!
//! # The first of several ops
//!
//! [`Handle::select`](crate::Handle::select) (and `select3`) yields two (three) ops at once and
//! resumes with the first to complete, as an [`Either`](crate::Either); the others are
//! withdrawn from their plugins before the tasklet runs again, as a timeout withdraws an op,
//! and a kill withdraws them all. Each op must come from a different plugin ("sleep unless
//! the connection is lost": the tasks plugin's `Sleep` and the network plugin's `OnLost`).
//!
//! # Errors that reach the host
//!
//! [`Schedule::block_on`](crate::Schedule::block_on) runs a `main` tasklet and gives back what
//! it returns, so a `main` that returns a `Result` can use `?` and the host can exit non-zero
//! with the reason. A tasklet spawned from another returns any value, `Result` included, and
//! `join` gives it back (see `fibra-tasks`). For any other tasklet the host calls
//! [`watch_exit`](crate::Schedule::watch_exit) and later
//! [`take_exit`](crate::Schedule::take_exit) to learn how it ended.
//!
//! # Sharing state between tasklets
//!
//! Tasklets of one schedule share state with `Rc<RefCell<_>>` (or `Cell`): they run one at a
//! time, on one thread, and switch only where they yield. The one rule: **never hold a
//! borrow across a yield** (an op that may park: a receive, a parking send, a sleep, a join).
//! The borrow would stay taken while other tasklets run, and the first of them to borrow the
//! same cell panics (`already borrowed`), typically only under load, when a peer stops
//! reading and a send parks. Take what you need, end the borrow, then yield:
//!
//! ```
//! use std::cell::RefCell;
//! use std::rc::Rc;
//! use fibra_rt::Schedule;
//!
//! let mut schedule = Schedule::new();
//! let log = Rc::new(RefCell::new(Vec::new()));
//! let ann_waits = Rc::new(RefCell::new(None));
//! let (l, w) = (log.clone(), ann_waits.clone());
//! schedule.spawn(move |h| {
//!     *w.borrow_mut() = Some(h.unparker());
//!     l.borrow_mut().push("ann waits"); // the borrow ends at the `;`...
//!     h.park(); // ...before the yield: bob runs here, and borrows `log` too
//!     l.borrow_mut().push("ann goes on");
//! })?;
//! let (l, w) = (log.clone(), ann_waits.clone());
//! schedule.spawn(move |_| {
//!     l.borrow_mut().push("bob speaks");
//!     if let Some(ann) = w.borrow_mut().take() {
//!         ann.unpark();
//!     }
//! })?;
//! schedule.run()?;
//! assert_eq!(*log.borrow(), ["ann waits", "bob speaks", "ann goes on"]);
//! # Ok::<(), fibra_rt::Error>(())
//! ```
//!
//! For a broadcast, send without parking while the room is borrowed (`Conn::try_send` in
//! fibra-net, which fails with `Full` rather than waiting), or let fibra-net's `Group` do
//! the fan-out; see `NetExt::send`'s documentation for the network side of this.
//!
//! # Stack size
//!
//! Tasklet stacks have a guard page. An overflow is reported on stderr with the tasklet's id,
//! name and stack size, and the process aborts: memory is never silently corrupted. Each stack
//! is two kernel memory maps, so Linux's default `vm.max_map_count` (65530) allows about
//! 32,000 live tasklets; [`Error::StackAlloc`](crate::Error::StackAlloc) says how to raise it.
//!
//! # Logging
//!
//! Through the `log` facade, with these targets:
//!
//! | target | what |
//! |---|---|
//! | `fibra_rt::tasklet` | panics (error), kills (debug), spawns and ends (trace) |
//! | `fibra_rt::schedule` | a plugin that panicked while serving an op (error) |
//! | `fibra_rt::stall` | a tasklet or plugin running too long without yielding (warn), and when it yields (info) |
//! | `fibra_rt::overflow` | the stack-overflow handler could not be installed (warn) |
//! | `fibra_rt::remote` | a remote wake could not reach the schedule's poller (error) |
//! | `fibra_tasks` | an `on_finish` closure that could not be spawned (error) |
