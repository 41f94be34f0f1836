//! The stop: no new connection, no new member; everyone connected is told
//! [`protocol::SHUTTING_DOWN`](super::protocol::SHUTTING_DOWN) and their connections close
//! gracefully. From the host ([`Chatter::shutdown`]), or from a tasklet of the room's reach
//! ([`stop_here`], when the stop comes from another thread).

use std::time::{Duration, Instant};

use fibra::net::NetPlugin;
use fibra::tasks::TasksExt;
use fibra::{Handle, Schedule};

use super::room::{Chat, RoomStats, LOG};
use super::server::Chatter;

impl Chatter {
    /// Gives up before serving (a listener after the chat's own could not be made): the
    /// room's tasklets, which never ran, are ended, and nothing is said.
    pub(crate) fn abandon(self, schedule: &mut Schedule) {
        let tasklets = std::mem::take(&mut self.chat.room.borrow_mut().tasklets);
        for id in tasklets {
            schedule.kill(id);
        }
    }

    /// Stops: the room's tasklets end (acceptors, the web page, the reach's), everyone
    /// connected is told [`protocol::SHUTTING_DOWN`](super::protocol::SHUTTING_DOWN) and
    /// their connections close gracefully. Then ticks until every socket has closed or
    /// `grace` has passed.
    pub(crate) fn shutdown(self, schedule: &mut Schedule, grace: Duration) {
        log::info!(target: LOG, "shutting down");
        // Ended with the room free: a tasklet's destructors may want it.
        let tasklets = std::mem::take(&mut self.chat.room.borrow_mut().tasklets);
        for id in tasklets {
            schedule.kill(id);
        }
        self.chat.room.borrow_mut().begin_shutdown();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            let open = schedule
                .plugin::<NetPlugin>()
                .map_or(0, |n| n.stats().sockets);
            // A tick, to look at the sockets left after each round (stackless members hold
            // no tasklet; their armed watches keep a `run` going too).
            if open == 0 || schedule.tick_within(Duration::from_millis(2)).is_err() {
                break;
            }
        }
    }
}

/// The stop, from one of the room's tasklets (`h`'s, which goes on): the room's other
/// tasklets end, everyone here is told and closed, and after their goodbyes are written (or
/// 2 s) the room's counters are returned.
pub(crate) fn stop_here(h: &Handle, chat: &Chat) -> RoomStats {
    let tasklets = {
        let mut room = chat.room.borrow_mut();
        room.begin_shutdown();
        std::mem::take(&mut room.tasklets)
    };
    for id in tasklets {
        if id != h.id() {
            h.kill(id);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline && !chat.room.borrow().is_deserted() {
        h.sleep(Duration::from_millis(5));
    }
    // The last goodbyes are written by the closes the sessions started.
    h.sleep(Duration::from_millis(50));
    chat.room.borrow().stats()
}
