//! Op dispatch: a yielded op goes to the plugin registered for its type (or, for `Park` and
//! selects, is served by the schedule itself).

use std::any::TypeId;
use std::ptr::NonNull;

use super::Schedule;
use crate::handle::Park;
use crate::op::Header;
use crate::route::Route;
use crate::select::{MAX_ARMS, PARK_ARM};
use crate::wait::{OpSlot, Wait};
use crate::{Context, Plugin, TaskletId};

/// Route 0 is `Park`, which the schedule serves itself.
pub(super) const PARK_ROUTE: usize = 0;

pub(super) fn park_route() -> Route {
    Route {
        type_id: TypeId::of::<Park>(),
        name: "park",
        plugin: usize::MAX,
        submit: park_is_served_by_the_schedule,
    }
}

/// The route of `Park` is never submitted to a plugin; `dispatch` serves it first.
///
/// # Safety
/// Never called.
unsafe fn park_is_served_by_the_schedule(
    _: &mut dyn Plugin,
    _: NonNull<Header>,
    _: TaskletId,
    _: &mut Context<'_>,
) -> bool {
    unreachable!("park is served by the schedule")
}

/// What became of a yielded op.
pub(super) enum Dispatch {
    /// It completed (or was refused); the tasklet can go on.
    Ready,
    /// The tasklet waits: the wait goes into the table with its coroutine.
    Pending(Wait),
}

impl Schedule {
    /// Hands the op in `slot`, yielded by `id` (which is running), to its plugin.
    pub(super) fn dispatch(&mut self, id: TaskletId, slot: OpSlot) -> Dispatch {
        let type_id = slot.type_id();
        let (route, found) = match self.route_cache.find(&self.routes, type_id) {
            Some(i) => (i, self.routes[i]),
            None if slot.is_select() => return self.select(id, slot),
            None => {
                slot.refuse();
                return Dispatch::Ready;
            }
        };
        if route == PARK_ROUTE {
            return self.park(id, slot);
        }
        let plugin = found.plugin;
        let mut cx = Context {
            core: &mut self.core,
            plugin,
        };
        if slot.submit(&found, &mut *self.plugins[plugin], id, &mut cx) {
            return Dispatch::Ready;
        }
        if let Some(deadline) = slot.deadline() {
            self.core.op_deadlines.insert(id, deadline);
        }
        Dispatch::Pending(Wait::Op { slot, route })
    }

    /// Submits the ops of the select in `slot`, in order, until one is ready (the ones before
    /// it are withdrawn); if none is, `id` waits for the first to complete.
    fn select(&mut self, id: TaskletId, slot: OpSlot) -> Dispatch {
        let len = slot.arm_count();
        let mut routes = [PARK_ROUTE; MAX_ARMS];
        for i in 0..len {
            let arm = slot.arm(i);
            let Some(route) = self.route_cache.find(&self.routes, arm.type_id()) else {
                arm.refuse();
                return Dispatch::Ready;
            };
            let plugin = self.routes[route].plugin;
            if routes[..i].iter().any(|&r| self.routes[r].plugin == plugin) {
                // Refused: `won` stays `None` and the tasklet panics saying why.
                return Dispatch::Ready;
            }
            routes[i] = route;
        }
        for i in 0..len {
            let arm = slot.arm(i);
            if routes[i] == PARK_ROUTE {
                let woken = self
                    .core
                    .get_mut(id)
                    .is_some_and(|t| std::mem::take(&mut t.woken));
                if woken {
                    let _ = arm.answer::<Park>(());
                    return self.select_won_at_once(id, &slot, &routes[..i], i);
                }
                slot.set_arm_plugin(i, PARK_ARM);
                continue;
            }
            let route = self.routes[routes[i]];
            let mut cx = Context {
                core: &mut self.core,
                plugin: route.plugin,
            };
            let ready = arm.submit(&route, &mut *self.plugins[route.plugin], id, &mut cx);
            slot.set_arm_plugin(i, route.plugin);
            if ready {
                return self.select_won_at_once(id, &slot, &routes[..i], i);
            }
        }
        Dispatch::Pending(Wait::Select { slot })
    }

    /// Arm `won` of a select was ready at its submit: the arms submitted before it (`before`)
    /// are withdrawn from their plugins.
    fn select_won_at_once(
        &mut self,
        id: TaskletId,
        slot: &OpSlot,
        before: &[usize],
        won: usize,
    ) -> Dispatch {
        for &route in before {
            if route != PARK_ROUTE {
                self.plugins[self.routes[route].plugin].cancel(id);
            }
        }
        slot.set_won(won);
        Dispatch::Ready
    }

    fn park(&mut self, id: TaskletId, slot: OpSlot) -> Dispatch {
        let woken = self
            .core
            .get_mut(id)
            .is_some_and(|t| std::mem::take(&mut t.woken));
        if woken {
            let _ = slot.answer::<Park>(());
            return Dispatch::Ready;
        }
        if let Some(deadline) = slot.deadline() {
            self.core.op_deadlines.insert(id, deadline);
        }
        Dispatch::Pending(Wait::Park { slot })
    }
}
