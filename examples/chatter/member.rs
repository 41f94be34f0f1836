//! Membership: a handle claimed, the join announced; and the leave, announced exactly once
//! however the session ends (`/quit`, a lost connection, a kill, a panic).

use std::net::IpAddr;
use std::rc::Rc;

use fibra::net::ops::OnLost;
use fibra::net::{Conn, Lost};
use fibra::rt::Either;
use fibra::tasks::ops::Sleep;
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
    /// Whose allowance it says from (see `Room::charge`): where it connects from, and its
    /// handle's key (a member that logs in again under it goes on from where it was).
    allowance: (IpAddr, String),
}

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
        Some(Member {
            chat: Rc::clone(chat),
            handle: handle.to_owned(),
            conn: conn.clone(),
            web,
            allowance: (
                conn.peer_addr()
                    .map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip()),
                protocol::handle_key(handle),
            ),
        })
    }

    /// Its handle.
    pub(crate) fn handle(&self) -> &str {
        &self.handle
    }

    /// The member said `line` (a line or a command): holds it up while its address has said
    /// more than the room's `max_rate` allows (`Room::charge`), or until its connection
    /// closes (a member gone is not kept in the room for its debt).
    pub(crate) fn pace(&self, h: &Handle, line: &[u8]) {
        // What the room writes for it: `<handle> says: <line>`, not the bytes read (an
        // empty line from a long handle is most of a line to every member).
        let bytes = line
            .len()
            .saturating_add(self.handle.len())
            .saturating_add(8);
        let now = fibra::rt::time::now();
        let until = self
            .chat
            .room
            .borrow_mut()
            .charge(&self.allowance, bytes, now);
        let Some(until) = until else {
            return;
        };
        log::debug!(target: LOG, "{} is held up {:?} (--max-rate)", self.handle, until - now);
        // Until then, or until the connection is lost (a reset, a timeout: the member leaves
        // at once, not after its debt). Its end of stream is no loss: what it sent before
        // still waits its turn.
        if let Either::Second(Lost::Eof) = h.select(Sleep(until), OnLost::new(&self.conn)) {
            h.sleep_until(until);
        }
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
