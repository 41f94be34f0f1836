//! The plugin contract: how ops reach the code that serves them.
//!
//! A plugin is a value the [`Schedule`](crate::Schedule) owns. It declares the op types it
//! serves in [`Plugin::register`], and for each one implements [`Serves<Op>`](Serves).
//!
//! The contract, which every plugin (ours or a user's) keeps:
//!
//! 1. **Submit.** [`Serves::submit`] gets the op by value and the id of the tasklet that
//!    yielded it. It either answers at once (`Poll::Ready`: the tasklet goes on without waiting)
//!    or keeps the id and answers later (`Poll::Pending`). Submit never blocks.
//! 2. **Complete.** A pending op is answered with [`Context::complete`], from `poll`, `exited`
//!    or a later `submit`. Each pending op is completed at most once; completing a tasklet that
//!    no longer waits for that op type gives the output back and changes nothing.
//! 3. **Poll.** [`Plugin::poll`] runs once per round, after the schedule's one wait in its
//!    reactor, with the [`Events`] of the sources this plugin registered through its
//!    [`Registry`]. It serves them and what else fell due (timers), completing the ops they
//!    finish. It never blocks: the schedule does the waiting, for every plugin at once, until
//!    the nearest deadline of all of them. A plugin fed by another thread has that thread call
//!    [`Remote::wake`](crate::Remote::wake) after handing data over.
//! 4. **Deadline.** [`Plugin::next_deadline`] is the earliest instant at which `poll` must run
//!    to keep a promise (a timer). The schedule never sleeps past it.
//! 5. **Cancel.** [`Plugin::cancel`] withdraws the pending op of a tasklet that was killed or
//!    whose op timed out: drop the op and every registration for that tasklet, and never
//!    complete it. The schedule never resumes a tasklet behind a plugin's back.
//! 6. **Flush.** [`Plugin::flush`] runs at the end of every round of tasklet steps (each
//!    `tick()`, each pass of `run()`), so that work the tasklets queued during the round (bytes
//!    to send, say) leaves in one batch instead of one system call per request.
//! 7. **Exits.** A plugin that called [`Context::watch_exit`] for a tasklet hears how it ended
//!    in [`Plugin::exited`], exactly once.
//!
//! 8. **Drain.** [`Schedule::drain`](crate::Schedule::drain) (and so
//!    [`Cores::stop`](crate::Cores::stop)) calls [`Plugin::drain`] once: stop taking new
//!    work, finish what is queued (write out queued output, close connections gracefully).
//!    The schedule then runs rounds until every plugin [`is_drained`](Plugin::is_drained)
//!    or the drain's deadline passes. Plugins with nothing to finish keep the defaults.
//!
//! 9. **Panics.** A plugin should not panic; if it does, the panic goes on to the host, out of
//!    the schedule call that ran the plugin (`tick`, `run`, `kill`...), and the schedule stays
//!    sound: a tasklet whose op the plugin was serving ends ([`Exit::Panicked`], its stack
//!    unwound as a kill's, even inside `catch_panic`), a tasklet being killed is killed
//!    all the same, and the host may go on calling the schedule.
//!
//! 10. **Work.** A plugin that holds work no tasklet waits for, but that its events will
//!     start tasklets for (the network plugin's input watches), says so in
//!     [`Plugin::has_work`]: `run` goes on while it does. It must end by itself.
//!
//! Time: [`Context::now`] is read at most once per round, after the wait; plugins use it
//! instead of reading the clock themselves.

use std::any::Any;
use std::io;
use std::task::Poll;
use std::time::Instant;

pub use crate::context::Context;
use crate::reactor::{Events, Registry};
pub use crate::route::Router;
use crate::{Exit, Op, TaskletId};

/// A plugin: serves some op types for the tasklets of a schedule.
///
/// See the [module documentation](crate::plugin) for the contract.
pub trait Plugin: Any {
    /// Declares the op types this plugin serves, with [`Router::op`].
    fn register(router: &mut Router<Self>)
    where
        Self: Sized;

    /// Called once, when the plugin is added to a schedule, with the registry that
    /// [`Context::registry`] gives: for sources the host sets up before any tasklet runs (a
    /// listener bound by the host).
    fn added(&mut self, registry: Registry) {
        let _ = registry;
    }

    /// Serves this round's `events` (readiness of the sources this plugin registered) and
    /// whatever fell due, completing the ops they finish. Runs once per round, after the
    /// schedule's wait; never blocks.
    ///
    /// # Errors
    ///
    /// An error here is fatal for the schedule: `tick()`/`run()` return it.
    fn poll(&mut self, cx: &mut Context<'_>, events: Events<'_>) -> io::Result<()> {
        let _ = (cx, events);
        Ok(())
    }

    /// The earliest instant at which [`poll`](Self::poll) must run (a timer falls due).
    fn next_deadline(&self) -> Option<Instant> {
        None
    }

    /// Called at the end of every round of tasklet steps: write out what the round's tasklets
    /// queued (coalesced sends, batched requests). It may complete ops; never blocks.
    ///
    /// # Errors
    ///
    /// An error here is fatal for the schedule, as in [`poll`](Self::poll).
    fn flush(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let _ = cx;
        Ok(())
    }

    /// Withdraws the pending op of tasklet `id` (it was killed, or its op timed out).
    fn cancel(&mut self, id: TaskletId) {
        let _ = id;
    }

    /// Begins a graceful stop ([`Schedule::drain`](crate::Schedule::drain)): take no new
    /// work (a listener stops accepting), and finish what is queued (write queued output,
    /// then close connections). Called once; it may complete ops. The default does nothing.
    fn drain(&mut self, cx: &mut Context<'_>) {
        let _ = cx;
    }

    /// Whether a drain begun by [`drain`](Self::drain) has finished (every connection
    /// closed, its output written or given up). The default: nothing to finish.
    fn is_drained(&self) -> bool {
        true
    }

    /// Whether this plugin holds work that no tasklet waits for, but that its events will
    /// start tasklets for: the network plugin's input watches (connections served without a
    /// tasklet while idle). [`Schedule::run`](crate::Schedule::run) and `run_until`/`run_for`
    /// go on while a plugin says so, as they do while a tasklet is alive, and `tick` counts
    /// it as work left. Keep it cheap (it is asked every round) and bounded: true only while
    /// such work exists, each piece ending by itself (with its connection), so that `run`
    /// still returns once everything is done. The default: none.
    fn has_work(&self) -> bool {
        false
    }

    /// Tasklet `id`, which this plugin watched with [`Context::watch_exit`], ended.
    fn exited(&mut self, id: TaskletId, exit: &Exit, cx: &mut Context<'_>) {
        let _ = (id, exit, cx);
    }
}

/// A plugin serves op `O`.
pub trait Serves<O: Op>: Plugin {
    /// Takes `op` from tasklet `from`: answer now with `Poll::Ready`, or keep `from` and answer
    /// later with [`Context::complete`].
    fn submit(&mut self, op: O, from: TaskletId, cx: &mut Context<'_>) -> Poll<O::Output>;
}
