//! Membership: a handle claimed, the join announced; and the leave, announced exactly once
//! however the session ends (`/quit`, a lost connection, a kill, a panic).

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use fibra::net::Conn;
use fibra::tasks::TasksExt;
use fibra::Handle;

use super::protocol;
use super::room::{Chat, LOG};

/// A member of the room here, from its join until it is dropped.
pub(crate) struct Member {
    chat: Rc<Chat>,
    handle: String,
    conn: Conn,
    web: bool,
    allowance: Allowance,
}

/// How much a member may say before it is held up (a token bucket): `--max-rate` bytes a
/// second, saved up to [`BURST`] of them; a member that says more waits (its input waits in
/// its socket, and TCP holds its sender back), so that one member cannot flood the room
/// faster than its readers take it and get them cut off at `--max-outbound`.
#[derive(Debug)]
struct Allowance {
    /// Bytes it may say now, as of `at`.
    left: Cell<u64>,
    at: Cell<Instant>,
}

/// The bytes a member may save up: this many seconds of its rate.
const BURST: u64 = 4;

impl Member {
    /// Takes `handle` if it is free, here and beyond, and announces the newcomer to
    /// everyone, itself included.
    pub(crate) fn join(
        h: &Handle,
        chat: &Rc<Chat>,
        handle: &str,
        conn: &Conn,
        web: bool,
    ) -> Option<Member> {
        let taken = Taken::new(chat, handle)?;
        // Across threads or nodes, the reach decides: one of two racing for a handle wins.
        if !chat.reach.claim(h, handle) {
            return None;
        }
        let mut room = chat.room.borrow_mut();
        if !room.add_member(handle, conn, web) {
            chat.reach.release(handle);
            return None;
        }
        taken.keep();
        let online = room.online();
        log::info!(target: LOG, "{handle} joined ({online} online)");
        chat.reach.joined(&mut room, handle);
        drop(room);
        let max_rate = chat.room.borrow().max_rate;
        Some(Member {
            chat: Rc::clone(chat),
            handle: handle.to_owned(),
            conn: conn.clone(),
            web,
            allowance: Allowance {
                left: Cell::new(max_rate.saturating_mul(BURST)),
                at: Cell::new(fibra::rt::time::now()),
            },
        })
    }

    /// Its handle.
    pub(crate) fn handle(&self) -> &str {
        &self.handle
    }

    /// The member said `bytes` (a line or a command, its line end counted): holds it up
    /// while it has said more than the room's `max_rate` allows (0: no limit).
    pub(crate) fn pace(&self, h: &Handle, bytes: usize) {
        let rate = self.chat.room.borrow().max_rate;
        if rate == 0 {
            return;
        }
        let a = &self.allowance;
        let now = fibra::rt::time::now();
        let since = now.saturating_duration_since(a.at.get());
        let earned = since.as_nanos().saturating_mul(u128::from(rate)) / 1_000_000_000;
        let earned = u64::try_from(earned).unwrap_or(u64::MAX);
        let left = a
            .left
            .get()
            .saturating_add(earned)
            .min(rate.saturating_mul(BURST));
        let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
        if bytes <= left {
            a.left.set(left - bytes);
            a.at.set(now);
            return;
        }
        // In debt: it waits until the debt is earned back, and starts from nothing then.
        let debt = bytes - left;
        let wait = Duration::from_nanos(
            u64::try_from(u128::from(debt) * 1_000_000_000 / u128::from(rate)).unwrap_or(u64::MAX),
        );
        let until = now.checked_add(wait).unwrap_or(now);
        a.left.set(0);
        a.at.set(until);
        log::debug!(target: LOG, "{} is held up {wait:?} (--max-rate {rate} bytes a second)", self.handle);
        h.sleep_until(until);
    }
}

/// A handle taken in the room here for a newcomer while the reach claims it: given back
/// unless the newcomer became the member, whatever ends the claim (a refusal, a kill).
struct Taken<'a> {
    chat: &'a Chat,
    handle: &'a str,
    kept: bool,
}

impl<'a> Taken<'a> {
    fn new(chat: &'a Chat, handle: &'a str) -> Option<Taken<'a>> {
        chat.room.borrow_mut().take(handle).then_some(Taken {
            chat,
            handle,
            kept: false,
        })
    }

    /// The newcomer is the member: the handle is its own until it leaves.
    fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        if let Ok(mut room) = self.chat.room.try_borrow_mut() {
            room.give_back(self.handle);
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let Ok(mut room) = self.chat.room.try_borrow_mut() else {
            log::error!(target: LOG, "{}'s session ended while the room was busy", self.handle);
            return;
        };
        // Lines said before the leave still reach the leaver; the rest hear it.
        let place = room.remove_member(&self.handle, &self.conn, self.web);
        self.chat.reach.release(&self.handle);
        let online = room.online();
        log::info!(target: LOG, "{} left ({online} online)", self.handle);
        if &*place == protocol::LOBBY {
            self.chat.reach.left(&mut room, &self.handle);
        } else {
            self.chat.reach.left_room(&mut room, &self.handle, &place);
        }
    }
}
