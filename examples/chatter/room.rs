//! The room here: the connections this schedule serves, the members among them, and the
//! fan-out that tells them what is said.
//!
//! The fan-out is the network plugin's [`Group`]: what is said during a round is stored
//! once and written to each member with one write; a line for one member (a whisper,
//! `/who`) comes after the lines said before it; a member that does not read is cut off.
//! Browsers are in a second pair of groups whose framing makes each line one WebSocket
//! text frame, so a line said to the room is encoded once per kind of member, not once per
//! member.
//!
//! The room knows nothing of threads or nodes. What happens here goes beyond through the
//! [`Reach`] beside it in [`Chat`]; what comes from beyond is delivered here by the reach
//! through [`Room::deliver`], [`Room::joined_elsewhere`], [`Room::left_elsewhere`] and
//! [`Room::tell_here`].

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::rc::Rc;
use std::sync::Arc;

use fibra::http::text_frames;
use fibra::net::{Conn, Group, GroupOptions, NetError};
use fibra::TaskletId;

use super::protocol;
use super::reach::Reach;

/// The log target of the room and its sessions.
pub(crate) const LOG: &str = "chatter";

/// The chat as one schedule serves it, shared by its tasklets: the room here, and its reach
/// beyond. The reach is not in the room's `RefCell`, so that a claim may park (a remote
/// one) while the room is free.
#[derive(Debug)]
pub(crate) struct Chat {
    /// Who is here.
    pub(crate) room: RefCell<Room>,
    /// How far the room goes beyond this schedule.
    pub(crate) reach: Box<dyn Reach>,
}

impl Chat {
    /// An empty room with `reach`.
    pub(crate) fn new(reach: Box<dyn Reach>) -> Rc<Chat> {
        Rc::new(Chat {
            room: RefCell::new(Room::default()),
            reach,
        })
    }
}

/// Counters for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RoomStats {
    /// Connections being served (logging in or members).
    pub(crate) sessions: usize,
    /// Members.
    pub(crate) members: usize,
    /// Lines queued to members, since the start.
    pub(crate) deliveries: u64,
    /// Members cut off for not reading, since the start.
    pub(crate) cut_off: u64,
    /// Members who joined here, since the start.
    pub(crate) joined: u64,
    /// Connections served here (sessions started), since the start.
    pub(crate) served: u64,
    /// Events sent from here to another thread, since the start (a line said here crosses
    /// to each other thread once, whatever the number of members there).
    pub(crate) crossed: u64,
    /// Batches of the other threads' events applied here (each a round of fan-out).
    pub(crate) relay_rounds: u64,
}

/// Who is here: every connection (for the shutdown's goodbye), the members, their handles;
/// telnet connections and browsers apart, each in groups of their own framing.
#[derive(Debug)]
pub(crate) struct Room {
    everyone: Group,
    members: Group,
    web_everyone: Group,
    web_members: Group,
    by_handle: HashMap<String, Conn>,
    /// The members elsewhere (other threads, other nodes), as the reach has told: what
    /// `/who` lists, in step with the joins and leaves the members here have heard.
    elsewhere: HashSet<Arc<str>>,
    deliveries: u64,
    /// Members cut off by a line for them alone (the group counts its own).
    cut_off: u64,
    joined: u64,
    served: u64,
    /// Events the reach sent beyond this schedule (it counts them here).
    pub(crate) crossed: u64,
    /// Batches of events from beyond this schedule the reach applied (it counts them here).
    pub(crate) relay_rounds: u64,
    shutting_down: bool,
    /// The tasklets that serve the room here (acceptors, the web server, the reach's own),
    /// ended by its shutdown.
    pub(crate) tasklets: Vec<TaskletId>,
}

impl Default for Room {
    fn default() -> Self {
        let web = || Group::with_options(GroupOptions::new().with_framing(text_frames()));
        Room {
            everyone: Group::new(),
            members: Group::new(),
            web_everyone: web(),
            web_members: web(),
            by_handle: HashMap::new(),
            elsewhere: HashSet::new(),
            deliveries: 0,
            cut_off: 0,
            joined: 0,
            served: 0,
            crossed: 0,
            relay_rounds: 0,
            shutting_down: false,
            tasklets: Vec::new(),
        }
    }
}

impl Room {
    /// Its counters.
    pub(crate) fn stats(&self) -> RoomStats {
        RoomStats {
            sessions: self.everyone.len() + self.web_everyone.len(),
            members: self.members.len() + self.web_members.len(),
            deliveries: self.deliveries,
            cut_off: self.cut_off + self.members.stats().cut_off + self.web_members.stats().cut_off,
            joined: self.joined,
            served: self.served,
            crossed: self.crossed,
            relay_rounds: self.relay_rounds,
        }
    }

    /// A new connection (`web`: a browser's): counted, and told the shutdown's goodbye if it
    /// comes; `false` if the room is shutting down or the connection is gone.
    pub(crate) fn enter(&mut self, conn: &Conn, web: bool) -> bool {
        let everyone = if web {
            &self.web_everyone
        } else {
            &self.everyone
        };
        if self.shutting_down || everyone.add(conn).is_err() {
            return false;
        }
        self.served += 1;
        true
    }

    /// Whether `handle` is free here (and the room takes members).
    pub(crate) fn is_free(&self, handle: &str) -> bool {
        !self.by_handle.contains_key(handle) && !self.shutting_down
    }

    /// Makes `conn` the member `handle` (a handle [`is_free`](Self::is_free) found free and
    /// the reach claimed); `false` if the room has begun its shutdown or `conn` is gone.
    pub(crate) fn add_member(&mut self, handle: &str, conn: &Conn, web: bool) -> bool {
        if self.shutting_down || self.members_of(web).add(conn).is_err() {
            return false;
        }
        self.by_handle.insert(handle.to_owned(), conn.clone());
        self.joined += 1;
        true
    }

    /// `handle` leaves: lines said before still reach it; the rest it no longer hears.
    pub(crate) fn remove_member(&mut self, handle: &str, conn: &Conn, web: bool) {
        self.members_of(web).remove(conn);
        self.by_handle.remove(handle);
    }

    /// The connection of the member `handle` here.
    pub(crate) fn member(&self, handle: &str) -> Option<Conn> {
        self.by_handle.get(handle).cloned()
    }

    /// Whether the member `handle` is elsewhere, as the reach has told.
    pub(crate) fn is_elsewhere(&self, handle: &str) -> bool {
        self.elsewhere.contains(handle)
    }

    /// Members in the room: here, and elsewhere as the reach has told.
    pub(crate) fn online(&self) -> usize {
        self.members.len() + self.web_members.len() + self.elsewhere.len()
    }

    /// The answer to `/who`: every member, here and elsewhere, sorted.
    pub(crate) fn who(&self) -> String {
        let mut handles: Vec<&str> = self.by_handle.keys().map(String::as_str).collect();
        handles.extend(self.elsewhere.iter().map(|h| &**h));
        handles.sort_unstable();
        format!("Online: {}", handles.join(", "))
    }

    /// `handle` says `text` to every member here, the telnet members' bytes written in place
    /// with no line of our own.
    pub(crate) fn say_as(&mut self, handle: &str, text: &str) {
        self.members.send_with(|out| {
            let _ = writeln!(out, "{handle} says: {text}");
        });
        if !self.web_members.is_empty() {
            let _ = self
                .web_members
                .send_line(&format!("{handle} says: {text}"));
        }
        self.deliveries += (self.members.len() + self.web_members.len()) as u64;
    }

    /// `line` (without its end) to every member here, telnet and web.
    pub(crate) fn fan_out(&mut self, line: &str) {
        self.members.send_with(|out| {
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        });
        if !self.web_members.is_empty() {
            let _ = self.web_members.send_line(line);
        }
        self.deliveries += (self.members.len() + self.web_members.len()) as u64;
    }

    /// A line from beyond for every member here (none once the room is shutting down).
    pub(crate) fn deliver(&mut self, line: &str) {
        if !self.shutting_down {
            self.fan_out(line);
        }
    }

    /// Tells every member here `event` (a join or a leave), unless the room is shutting
    /// down; whether it did.
    pub(crate) fn announce(&mut self, event: std::fmt::Arguments<'_>) -> bool {
        if self.shutting_down {
            return false;
        }
        self.members.send_with(|out| {
            let _ = out.write_fmt(event);
            out.push(b'\n');
        });
        if !self.web_members.is_empty() {
            let _ = self.web_members.send_line(&event.to_string());
        }
        self.deliveries += (self.members.len() + self.web_members.len()) as u64;
        true
    }

    /// A member elsewhere joined: told here, and listed by `/who`.
    pub(crate) fn joined_elsewhere(&mut self, handle: Arc<str>) {
        self.deliver(&format!("{handle} has joined the chat."));
        self.elsewhere.insert(handle);
    }

    /// A member elsewhere left.
    pub(crate) fn left_elsewhere(&mut self, handle: &str) {
        self.elsewhere.remove(handle);
        self.deliver(&format!("{handle} has left the chat."));
    }

    /// A whisper from elsewhere for the member `to` here, if it is still here.
    pub(crate) fn tell_here(&mut self, to: &str, line: &str) {
        if let Some(conn) = self.member(to) {
            self.tell(&conn, line);
        }
    }

    /// Tells one connection a line, after the lines said before it; cuts it off if it does
    /// not read.
    pub(crate) fn tell(&mut self, conn: &Conn, line: &str) {
        self.deliveries += 1;
        if let Err(NetError::Full { .. }) = conn.try_send_frame(line.as_bytes()) {
            self.cut_off += 1;
            conn.abort(); // its session sees the loss and leaves
        }
    }

    /// Whether the room has begun its shutdown.
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// The member `handle` here stops hearing the room (a join waiting for its turn in a
    /// shared log): its connection and whether it is a browser's, for [`Room::hear`].
    pub(crate) fn hold(&mut self, handle: &str) -> Option<(Conn, bool)> {
        let conn = self.by_handle.get(handle)?.clone();
        let web = self.web_members.contains(&conn);
        self.members_of(web).remove(&conn).then_some((conn, web))
    }

    /// A member [`Room::hold`] held hears the room again, if it is still the member `handle`.
    pub(crate) fn hear(&mut self, handle: &str, conn: &Conn, web: bool) {
        if self.by_handle.get(handle) == Some(conn) && !self.shutting_down {
            let _ = self.members_of(web).add(conn);
        }
    }

    /// No new member; everyone connected is told [`protocol::SHUTTING_DOWN`] and closed.
    pub(crate) fn begin_shutdown(&mut self) {
        self.shutting_down = true;
        let goodbye = protocol::SHUTTING_DOWN.as_bytes();
        let _ = self.everyone.close_all(Some(goodbye));
        // Browsers: the goodbye, then a WebSocket close frame, 1001 (going away).
        let _ = self.web_everyone.send_frame(goodbye);
        let _ = self.web_everyone.send(&[0x88, 0x02, 0x03, 0xE9]);
        let _ = self.web_everyone.close_all(None);
    }

    /// Whether no connection is left (after a shutdown: every goodbye written).
    pub(crate) fn is_deserted(&self) -> bool {
        self.everyone.is_empty() && self.web_everyone.is_empty()
    }

    /// The group of members of a kind.
    fn members_of(&self, web: bool) -> &Group {
        if web {
            &self.web_members
        } else {
            &self.members
        }
    }
}
