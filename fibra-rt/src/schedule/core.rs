//! `Core`: the tasklet table, the run queue, and what plugins may touch through a
//! [`Context`](crate::Context).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use corosensei::stack::{DefaultStack, Stack};
use corosensei::Coroutine;
use slab::Slab;

use crate::clock::Clock;
use crate::handle::{Park, TaskletYielder, Wakes};
use crate::reactor::Reactor;
use crate::stack::StackPool;
use crate::stall::Stall;
use crate::tasklet::{State, Tasklet};
use crate::wait::Wait;
use crate::{overflow, DeadlineQueue, Error, Exit, Handle, SpawnOptions, TaskletId};

/// The tasklet table and what plugins may touch through a [`Context`](crate::Context).
pub(crate) struct Core {
    pub(crate) tasklets: Slab<Tasklet>,
    pub(crate) run_queue: VecDeque<TaskletId>,
    pub(crate) pool: StackPool,
    pub(crate) wakes: Rc<Wakes>,
    spare_wakes: Vec<TaskletId>,
    pub(crate) reactor: Reactor,
    pub(crate) op_deadlines: DeadlineQueue,
    pub(crate) kills: Vec<TaskletId>,
    /// Ops of a select that lost: (tasklet, plugin) to withdraw, before the tasklet runs again.
    pub(crate) withdrawals: Vec<(TaskletId, usize)>,
    /// The sequence number of the last spawn: 64 bits, so an id is never reused.
    pub(crate) seq: u64,
    pub(crate) clock: Clock,
    /// What the stall watchdog reads.
    pub(crate) stall: Stall,
    /// Tasklet steps run so far (`Schedule::steps_run`).
    pub(crate) steps_run: u64,
}

impl Core {
    pub(crate) fn new(
        pool: StackPool,
        wakes: Rc<Wakes>,
        reactor: Reactor,
        first_seq: u64,
        stall: Stall,
    ) -> Core {
        Core {
            tasklets: Slab::new(),
            run_queue: VecDeque::new(),
            pool,
            wakes,
            steps_run: 0,
            spare_wakes: Vec::new(),
            reactor,
            op_deadlines: DeadlineQueue::new(),
            kills: Vec::new(),
            withdrawals: Vec::new(),
            seq: first_seq,
            clock: Clock::new(),
            stall,
        }
    }

    pub(crate) fn get(&self, id: TaskletId) -> Option<&Tasklet> {
        self.tasklets.get(id.slot()).filter(|t| t.id == id)
    }

    pub(crate) fn get_mut(&mut self, id: TaskletId) -> Option<&mut Tasklet> {
        self.tasklets.get_mut(id.slot()).filter(|t| t.id == id)
    }

    /// Takes tasklet `id` out of the table, if it is there.
    pub(crate) fn remove(&mut self, id: TaskletId) -> Option<Tasklet> {
        self.get(id)?;
        Some(self.tasklets.remove(id.slot()))
    }

    pub(crate) fn spawn<F>(&mut self, options: SpawnOptions, f: F) -> Result<TaskletId, Error>
    where
        F: FnOnce(&Handle) + 'static,
    {
        let stack_size = options.stack_size.unwrap_or(self.pool.default_size());
        let stack = self.pool.take(stack_size)?;
        Ok(self.spawn_on(stack, stack_size, options, f))
    }

    /// Spawns `f(arg, handle)`, giving `arg` back when no stack can be mapped.
    pub(crate) fn spawn_fn<A: 'static>(
        &mut self,
        options: SpawnOptions,
        arg: A,
        f: fn(A, &Handle),
    ) -> Result<TaskletId, (Error, A)> {
        let stack_size = options.stack_size.unwrap_or(self.pool.default_size());
        match self.pool.take(stack_size) {
            Ok(stack) => Ok(self.spawn_on(stack, stack_size, options, move |h| f(arg, h))),
            Err(e) => Err((e, arg)),
        }
    }

    fn spawn_on<F>(
        &mut self,
        stack: DefaultStack,
        stack_size: usize,
        options: SpawnOptions,
        f: F,
    ) -> TaskletId
    where
        F: FnOnce(&Handle) + 'static,
    {
        let limit = stack.limit().get();
        let entry = self.tasklets.vacant_entry();
        self.seq = self.seq.wrapping_add(1);
        let id = TaskletId {
            key: u32::try_from(entry.key()).expect("more than 2^32 live tasklets"),
            seq: self.seq,
        };
        let wakes = Rc::clone(&self.wakes);
        let co = Coroutine::with_stack(stack, move |yielder: &TaskletYielder, ()| {
            let handle = Handle::new(yielder, id, wakes);
            // Caught here, on the tasklet's stack, rather than around every resume. A forced
            // unwind (kill) is caught too; the kill path ignores the return value.
            match catch_unwind(AssertUnwindSafe(|| f(&handle))) {
                Ok(()) => Exit::Finished,
                Err(payload) => Exit::from_panic(&*payload),
            }
        });
        let name = options.name.unwrap_or(Cow::Borrowed(""));
        let guard = overflow::Guard {
            id,
            limit,
            size: stack_size,
            name: name.as_ptr(),
            name_len: name.len(),
        };
        entry.insert(Tasklet {
            state: State::Runnable(co),
            kill_requested: false,
            id,
            watchers: 0,
            woken: false,
            stack_size,
            name,
            guard,
        });
        self.run_queue.push_back(id);
        log::trace!(target: "fibra_rt::schedule", "spawned tasklet {id}");
        id
    }

    /// Turns unparks posted on this thread into runnable tasklets, and posted kills into
    /// kills for the schedule to carry out (with the withdrawals the unparks queued) before
    /// any tasklet runs.
    #[inline(always)]
    pub(crate) fn drain_wakes(&mut self) {
        if !self.wakes.kills.borrow().is_empty() || !self.wakes.local.borrow().is_empty() {
            self.drain_posted();
        }
    }

    /// Moves kills posted on this thread (by an [`Unparker`](crate::Unparker)) to those the
    /// schedule carries out; whether there were any. Unparks stay posted.
    #[inline(always)]
    pub(crate) fn take_posted_kills(&mut self) -> bool {
        if self.wakes.kills.borrow().is_empty() {
            return false;
        }
        self.kills.append(&mut self.wakes.kills.borrow_mut());
        true
    }

    /// [`drain_wakes`](Self::drain_wakes) when something was posted.
    #[inline(never)]
    fn drain_posted(&mut self) {
        self.take_posted_kills();
        if self.wakes.local.borrow().is_empty() {
            return;
        }
        let spare = std::mem::take(&mut self.spare_wakes);
        let wakes = std::mem::replace(&mut *self.wakes.local.borrow_mut(), spare);
        self.unpark_all(wakes);
    }

    /// Turns unparks posted by other threads into runnable tasklets.
    pub(crate) fn drain_remote(&mut self) {
        // One plain load per round when no other thread posted anything.
        if !self.wakes.remote.is_pending() {
            return;
        }
        let mut taken = std::mem::take(&mut self.spare_wakes);
        if self.wakes.remote.take(&mut taken) {
            self.unpark_all(taken);
        } else {
            self.spare_wakes = taken;
        }
    }

    /// Unparks each of `wakes`, then keeps the emptied vector for the next drain.
    fn unpark_all(&mut self, mut wakes: Vec<TaskletId>) {
        for id in wakes.drain(..) {
            let Some(t) = self.tasklets.get_mut(id.slot()).filter(|t| t.id == id) else {
                continue;
            };
            let State::Suspended { wait, .. } = &t.state else {
                t.woken = true;
                continue;
            };
            match wait {
                Wait::Park { slot } => {
                    let _ = slot.answer::<Park>(());
                }
                Wait::Select { slot } => {
                    if slot.answer_park_arm().is_none() {
                        t.woken = true;
                        continue;
                    }
                }
                Wait::Op { .. } => {
                    t.woken = true;
                    continue;
                }
            }
            self.resume(id);
        }
        self.spare_wakes = wakes;
    }
}
