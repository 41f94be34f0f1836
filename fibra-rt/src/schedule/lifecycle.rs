//! The end of a tasklet: finishing, killing, the one way its stack is unwound, and telling
//! whoever watches.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use super::Schedule;
use crate::handle::Killing;
use crate::select::PARK_ARM;
use crate::stack::StackPool;
use crate::stall::Stall;
use crate::tasklet::{Label, State, Tasklet, TaskletCoroutine};
use crate::wait::Wait;
use crate::{overflow, Context, Exit, TaskletId};

/// Unwinds the stack of a tasklet whose function has not returned: a kill, a plugin's panic
/// while serving its op, the schedule's drop all end a tasklet through here.
///
/// The unwind runs under the tasklet's overflow guard and with the [`Killing`] mark, so that
/// [`Handle::catch_panic`](crate::Handle::catch_panic) lets it through instead of swallowing
/// it (the tasklet's code must not run on). A panic while the closure of a tasklet that never
/// ran is dropped is reported (a destructor's panic during a started tasklet's unwind aborts
/// the process: Rust's rule for a panic while unwinding). The stack goes back to the pool once
/// unwound.
///
/// The stall watchdog watches the unwind: tasklet code that catches it (a plain
/// `catch_unwind` around a yield) and runs on makes it never end.
pub(super) fn unwind_stack(
    pool: &mut StackPool,
    stall: &mut Stall,
    t: &Tasklet,
    co: TaskletCoroutine,
) {
    unwind_guarded(pool, stall, &t.guard, t.label(), co);
}

/// [`unwind_stack`] for a tasklet known by its guard and label only (its name already freed
/// if the label has none).
fn unwind_guarded(
    pool: &mut StackPool,
    stall: &mut Stall,
    guard: &overflow::Guard,
    label: Label<'_>,
    mut co: TaskletCoroutine,
) {
    let outer = stall.unwinding(guard, !label.name.is_empty());
    let entered = overflow::enter(guard);
    let killing = Killing::enter(guard.id);
    let unwound = catch_unwind(AssertUnwindSafe(|| co.force_unwind()));
    drop(killing);
    drop(entered);
    stall.unwound(outer);
    if let Err(payload) = unwound {
        let msg = format!("{} (while being killed)", Exit::from_panic(&*payload));
        report_panic(label, &msg);
    }
    if !co.done() {
        if co.started() {
            // Cannot happen (a started coroutine's unwind ends at its root, which catches
            // every panic); never dropped again, its stack is leaked rather than reused.
            std::mem::forget(co);
            return;
        }
        // A tasklet that never ran: corosensei dropped its closure in place, one of the
        // captures' `Drop` panicked, and the coroutine still counts as not started, so that
        // dropping it (or `into_stack`) would drop the closure a second time.
        // SAFETY: the closure was dropped in place (drop glue drops every field even when
        // one panics); nothing else on the coroutine's stack needs dropping.
        unsafe { co.force_reset() };
    }
    if co.done() {
        pool.give(co.into_stack(), guard.size);
    }
}

/// Takes the coroutine out of a tasklet that left the table; the pointer into its stack, if
/// it was suspended, goes with it (it is dropped here, before the coroutine can be).
fn take_coroutine(t: &mut Tasklet) -> Option<TaskletCoroutine> {
    match std::mem::replace(&mut t.state, State::Running) {
        State::Runnable(co) | State::Suspended { co, .. } => Some(co),
        State::Running => None,
    }
}

/// Drops a tasklet that left the table and whose coroutine is gone; an owned name is freed
/// where the stall watchdog cannot be reading it.
#[inline]
fn retire(stall: &Stall, t: Tasklet) {
    debug_assert!(matches!(t.state, State::Running));
    // Taken apart rather than moved whole (every spawn ends here): the name is all that
    // needs freeing, `Running` holds nothing.
    let Tasklet { state, name, .. } = t;
    if matches!(state, State::Running) {
        std::mem::forget(state);
    }
    stall.free_name(name);
}

/// Says which tasklet panicked: through `log` when a logger takes errors, else on stderr (the
/// panic hook has printed the message and place, but not the tasklet).
pub(super) fn report_panic(label: Label<'_>, msg: &str) {
    if log::log_enabled!(target: "fibra_rt::tasklet", log::Level::Error) {
        log::error!(target: "fibra_rt::tasklet", "tasklet {label} panicked: {msg}");
    } else {
        // A crash report, as the standard panic hook writes one: no logger is there to take it.
        eprintln!("fibra: tasklet {label} panicked: {msg}");
    }
}

impl Schedule {
    /// Removes a tasklet whose function returned (or panicked), recycles its stack and tells
    /// its watchers.
    pub(super) fn finish(&mut self, id: TaskletId, co: TaskletCoroutine, exit: Exit) {
        let Some(t) = self.core.remove(id) else {
            return;
        };
        match &exit {
            Exit::Panicked(msg) => report_panic(t.label(), msg),
            _ => log::trace!(target: "fibra_rt::tasklet", "tasklet {} finished", t.label()),
        }
        self.core.pool.give(co.into_stack(), t.stack_size);
        let watchers = t.watchers;
        retire(&self.core.stall, t);
        self.notify_exit(id, watchers, &exit);
    }

    /// Kills `id`: withdraws its op, and unwinds it now, or, if it is the tasklet running
    /// (a plugin killed it from inside its own op), marks it for `run_tasklet` to unwind.
    ///
    /// A plugin whose `cancel` panics does not stop the kill: the tasklet is out of the table
    /// first, and unwound before the panic goes on to the caller.
    pub(super) fn kill_now(&mut self, id: TaskletId) -> bool {
        let Some(t) = self.core.get_mut(id) else {
            return false;
        };
        if t.kill_requested {
            return true;
        }
        t.kill_requested = true;
        let running = matches!(t.state, State::Running);
        self.core.op_deadlines.remove(id);
        if running {
            // Its coroutine is on `run_tasklet`'s frame, which unwinds it.
            return true;
        }
        // Out of the table with its coroutine and the pointer into its stack, in one value.
        let Some(t) = self.core.remove(id) else {
            return false;
        };
        let withdrawn = catch_unwind(AssertUnwindSafe(|| self.withdraw(id, &t.state)));
        self.end_killed(t, None);
        if let Err(payload) = withdrawn {
            resume_unwind(payload);
        }
        true
    }

    /// Tells the plugins holding `id`'s pending op (or ops, in a select) to forget it.
    fn withdraw(&mut self, id: TaskletId, state: &State) {
        let State::Suspended { wait, .. } = state else {
            return;
        };
        match wait {
            Wait::Op { route, .. } => {
                let plugin = self.routes[*route].plugin;
                self.plugins[plugin].cancel(id);
            }
            Wait::Select { slot } => {
                // Every arm is withdrawn even if one plugin's `cancel` panics (the others
                // would keep a waiter that is gone); the first panic goes on after.
                let (plugins, len) = slot.arm_plugins();
                let mut panicked = None;
                for &plugin in &plugins[..len] {
                    if plugin != PARK_ARM {
                        let plugin = &mut self.plugins[plugin];
                        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| plugin.cancel(id))) {
                            panicked.get_or_insert(payload);
                        }
                    }
                }
                if let Some(payload) = panicked {
                    resume_unwind(payload);
                }
            }
            Wait::Park { .. } => {}
        }
    }

    /// Ends killed tasklet `t`, out of the table: unwinds its stack (its coroutine is in its
    /// state, or given as `co` by `run_tasklet`), and tells its watchers.
    pub(super) fn end_killed(&mut self, mut t: Tasklet, co: Option<TaskletCoroutine>) {
        if let Some(co) = co.or_else(|| take_coroutine(&mut t)) {
            unwind_stack(&mut self.core.pool, &mut self.core.stall, &t, co);
        }
        log::debug!(target: "fibra_rt::tasklet", "tasklet {} killed", t.label());
        let (id, watchers) = (t.id, t.watchers);
        retire(&self.core.stall, t);
        self.notify_exit(id, watchers, &Exit::Killed);
    }

    /// A plugin panicked while serving `id`'s op (or while carrying out the kills that op
    /// asked for): unwinds `id`'s stack now, as a kill's, so that its code runs no further
    /// (its coroutine is `co`, or in its state), and leaves it `Running`, without coroutine or
    /// pointer, for [`reap_after_plugin_panic`](Self::reap_after_plugin_panic) to end.
    pub(super) fn abandon(
        &mut self,
        id: TaskletId,
        guard: &overflow::Guard,
        co: Option<TaskletCoroutine>,
    ) {
        self.running = Some(id);
        let core = &mut self.core;
        match core.tasklets.get_mut(id.slot()).filter(|t| t.id == id) {
            Some(t) => {
                if let Some(co) = co.or_else(|| take_coroutine(t)) {
                    unwind_stack(&mut core.pool, &mut core.stall, t, co);
                }
            }
            None => {
                let label = Label { id, name: "" };
                if let Some(co) = co {
                    unwind_guarded(&mut core.pool, &mut core.stall, guard, label, co);
                }
            }
        }
    }

    /// Ends the tasklet a plugin's panic left behind (see the `running` field): its stack was
    /// unwound then; now its ops are withdrawn everywhere and its watchers told.
    #[inline]
    pub(super) fn reap_after_plugin_panic(&mut self) {
        if let Some(id) = self.running.take() {
            self.reap(id);
        }
    }

    /// [`reap_after_plugin_panic`](Self::reap_after_plugin_panic) when a tasklet was left.
    #[cold]
    fn reap(&mut self, id: TaskletId) {
        let Some(t) = self.core.remove(id) else {
            return;
        };
        log::error!(target: "fibra_rt::schedule",
            "tasklet {} ended: the plugin serving its op panicked", t.label());
        self.core.op_deadlines.remove(id);
        let (watchers, exit) = (t.watchers, Exit::Panicked(PLUGIN_PANICKED.to_owned()));
        retire(&self.core.stall, t);
        // Every plugin forgets it, and its watchers hear of its end, even if a `cancel`
        // panics too (a joiner would wait forever); the first such panic goes on after.
        let mut panicked = None;
        for plugin in &mut self.plugins {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| plugin.cancel(id))) {
                panicked.get_or_insert(payload);
            }
        }
        self.notify_exit(id, watchers, &exit);
        self.process_kills();
        if let Some(payload) = panicked {
            resume_unwind(payload);
        }
    }

    /// Carries out the withdrawals and kills that unparks and posted kills queued, before any
    /// tasklet runs again.
    #[inline]
    pub(super) fn settle(&mut self) {
        self.process_kills();
    }

    /// Withdraws the ops that lost a select, and kills the tasklets plugins asked to kill.
    /// Inline: most calls (after each plugin call, before each step) find nothing to do.
    #[inline]
    pub(super) fn process_kills(&mut self) {
        if !self.core.kills.is_empty() || !self.core.withdrawals.is_empty() {
            self.carry_out_kills();
        }
    }

    /// [`process_kills`](Self::process_kills) when there is something to do.
    #[inline(never)]
    fn carry_out_kills(&mut self) {
        loop {
            while let Some((id, plugin)) = self.core.withdrawals.pop() {
                if plugin != PARK_ARM {
                    self.plugins[plugin].cancel(id);
                }
            }
            let Some(id) = self.core.kills.pop() else {
                break;
            };
            self.kill_now(id);
        }
    }

    /// Tells the plugins in `watchers`, and the host if it watches, how `id` ended. Inline:
    /// most tasklets end unwatched.
    #[inline]
    pub(super) fn notify_exit(&mut self, id: TaskletId, watchers: u64, exit: &Exit) {
        if watchers != 0 || !self.host_exits.is_empty() {
            self.tell_watchers(id, watchers, exit);
        }
    }

    /// [`notify_exit`](Self::notify_exit) when someone watches.
    #[inline(never)]
    fn tell_watchers(&mut self, id: TaskletId, watchers: u64, exit: &Exit) {
        if !self.host_exits.is_empty() {
            if let Some(kept) = self.host_exits.get_mut(&id) {
                *kept = Some(exit.clone());
            }
        }
        // Every watcher hears, even after one's hook panicked (a joiner behind it would wait
        // forever); the first panic goes on after.
        let mut panicked = None;
        let mut bits = watchers;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let mut cx = Context {
                core: &mut self.core,
                plugin: i,
            };
            let plugin = &mut self.plugins[i];
            if let Err(payload) =
                catch_unwind(AssertUnwindSafe(|| plugin.exited(id, exit, &mut cx)))
            {
                panicked.get_or_insert(payload);
            }
        }
        if let Some(payload) = panicked {
            resume_unwind(payload);
        }
    }

    /// Unwinds every tasklet (the schedule is dropped), while the plugins still exist:
    /// destructors may wake others.
    pub(super) fn unwind_all(&mut self) {
        let ids: Vec<TaskletId> = self.core.tasklets.iter().map(|(_, t)| t.id).collect();
        for id in ids {
            if let Some(mut t) = self.core.remove(id) {
                if let Some(co) = take_coroutine(&mut t) {
                    unwind_stack(&mut self.core.pool, &mut self.core.stall, &t, co);
                }
                retire(&self.core.stall, t);
            }
        }
    }
}

/// How a tasklet ends when the plugin serving its op panics.
pub(super) const PLUGIN_PANICKED: &str = "the plugin serving its op panicked";
