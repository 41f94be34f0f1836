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
//! Members are in rooms: every member enters the lobby ([`protocol::LOBBY`]) and moves with
//! `/join`; what is said, the joins and the leaves reach the members of the speaker's room
//! only, and `/who` lists one room. The shutdown's goodbye goes to every connection.
//!
//! The room knows nothing of threads or nodes. What happens here goes beyond through the
//! [`Reach`] beside it in [`Chat`]; what comes from beyond is delivered here by the reach
//! through [`Room::deliver_in`], [`Room::joined_elsewhere`], [`Room::left_elsewhere`] and
//! [`Room::tell_here`].

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// once to each other thread with a member in its room, whatever the number there).
    pub(crate) crossed: u64,
    /// Batches of the other threads' events applied here (each a round of fan-out).
    pub(crate) relay_rounds: u64,
}

/// The seconds of `--max-rate` an address may save up.
pub(crate) const BURST: u64 = 1;

/// Who is here: every connection (for the shutdown's goodbye), the members, their handles
/// and rooms; telnet connections and browsers apart, each in groups of their own framing.
#[derive(Debug)]
pub(crate) struct Room {
    everyone: Group,
    web_everyone: Group,
    /// The rooms with a member here or elsewhere, by name; the lobby always.
    places: HashMap<Arc<str>, Place>,
    by_handle: HashMap<String, Here>,
    /// The handles taken here, members' and those being claimed, in ASCII lower case
    /// ([`protocol::handle_key`]): `Ann` is taken while `ann` is.
    taken: HashSet<String>,
    /// How many rooms list each handle elsewhere, by its key: a join looks for a stale
    /// listing of its handle ([`Room::forget_elsewhere`]) without a scan of every room.
    elsewhere_keys: HashMap<String, usize>,
    deliveries: u64,
    /// Members cut off by a line for them alone, or by a room's group that is gone (the
    /// groups count their own).
    cut_off: u64,
    joined: u64,
    served: u64,
    /// Events the reach sent beyond this schedule (it counts them here).
    pub(crate) crossed: u64,
    /// Batches of events from beyond this schedule the reach applied (it counts them here).
    pub(crate) relay_rounds: u64,
    shutting_down: bool,
    /// The most rooms besides the lobby: `/join` of a new one past it is refused.
    pub(crate) max_rooms: usize,
    /// The bytes a second a member may say before it is held up (0: no limit).
    pub(crate) max_rate: u64,
    /// What each member may say now, and as of when, by address and handle key (see
    /// [`Room::charge`]).
    allowances: HashMap<(IpAddr, String), (u64, Instant)>,
    /// The size of `allowances` past which it is pruned next.
    allowances_prune_at: usize,
    /// The tasklets that serve the room here (acceptors, the web server, the reach's own),
    /// ended by its shutdown.
    pub(crate) tasklets: Vec<TaskletId>,
}

/// One room (named by `/join`, or the lobby everyone enters): its members here, telnet and
/// web, each kind in a group of its own framing, and its members elsewhere.
#[derive(Debug)]
struct Place {
    members: Group,
    web_members: Group,
    /// The members elsewhere (other threads, other nodes), as the reach has told, each with
    /// where it is (the reach's number: a thread's index): what `/who` lists, in step with
    /// the joins and leaves the members here have heard.
    elsewhere: HashMap<Arc<str>, usize>,
}

impl Place {
    fn new() -> Place {
        Place {
            members: Group::new(),
            web_members: Group::with_options(GroupOptions::new().with_framing(text_frames())),
            elsewhere: HashMap::new(),
        }
    }

    /// No longer lists `handle` as elsewhere, if it is listed at `origin`: a leave from a
    /// place it is no longer at (it left there, and a join from another came first) is not
    /// its last word.
    fn remove_elsewhere(&mut self, handle: &str, origin: usize) -> bool {
        if self.elsewhere.get(handle) == Some(&origin) {
            self.elsewhere.remove(handle);
            return true;
        }
        false
    }

    /// Members here.
    fn len(&self) -> usize {
        self.members.len() + self.web_members.len()
    }

    /// The group of members of a kind.
    fn members_of(&self, web: bool) -> &Group {
        if web {
            &self.web_members
        } else {
            &self.members
        }
    }

    /// `line` (without its end) to every member here; how many.
    fn fan_out(&self, line: &str) -> u64 {
        self.members.send_with(|out| {
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        });
        if !self.web_members.is_empty() {
            let _ = self.web_members.send_line(line);
        }
        self.len() as u64
    }
}

/// A member here: its connection and the room it is in.
#[derive(Debug)]
struct Here {
    conn: Conn,
    place: Arc<str>,
}

impl Default for Room {
    fn default() -> Self {
        let web = || Group::with_options(GroupOptions::new().with_framing(text_frames()));
        Room {
            everyone: Group::new(),
            web_everyone: web(),
            places: HashMap::from([(Arc::from(protocol::LOBBY), Place::new())]),
            by_handle: HashMap::new(),
            taken: HashSet::new(),
            elsewhere_keys: HashMap::new(),
            deliveries: 0,
            cut_off: 0,
            joined: 0,
            served: 0,
            crossed: 0,
            relay_rounds: 0,
            shutting_down: false,
            max_rooms: protocol::MAX_ROOMS,
            max_rate: 0,
            allowances: HashMap::new(),
            allowances_prune_at: 0,
            tasklets: Vec::new(),
        }
    }
}

impl Room {
    /// Its counters.
    pub(crate) fn stats(&self) -> RoomStats {
        let groups_cut_off: u64 = self
            .places
            .values()
            .map(|p| p.members.stats().cut_off + p.web_members.stats().cut_off)
            .sum();
        RoomStats {
            sessions: self.everyone.len() + self.web_everyone.len(),
            members: self.places.values().map(Place::len).sum(),
            deliveries: self.deliveries,
            cut_off: self.cut_off + groups_cut_off,
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

    /// `bytes` said at `now` by the member of `allowance` (its address and handle key):
    /// `None` if it may say them, else until when it is held up. A member may say
    /// `max_rate` bytes a second, saved up to [`BURST`] seconds' worth (a token bucket),
    /// kept by address and handle past its leave, so that neither a member nor its logging
    /// in again floods the room faster than its readers take it (and gets them cut off at
    /// `--max-outbound`). 0: no limit.
    pub(crate) fn charge(
        &mut self,
        allowance: &(IpAddr, String),
        bytes: usize,
        now: Instant,
    ) -> Option<Instant> {
        let rate = self.max_rate;
        if rate == 0 {
            return None;
        }
        let burst = rate.saturating_mul(BURST);
        let earned = |left: u64, at: Instant| {
            let since = now.saturating_duration_since(at).as_nanos();
            let earned = since.saturating_mul(u128::from(rate)) / 1_000_000_000;
            left.saturating_add(u64::try_from(earned).unwrap_or(u64::MAX))
                .min(burst)
        };
        if !self.allowances.contains_key(allowance) {
            // Pruned when it doubled since the last pruning (or passed the members): the
            // allowances whole again say nothing any longer. A scan now and then, not one per
            // line.
            let at_most = self.allowances_prune_at.max(2 * self.by_handle.len() + 64);
            if self.allowances.len() >= at_most {
                self.allowances
                    .retain(|_, &mut (left, at)| earned(left, at) < burst);
                self.allowances_prune_at = 2 * self.allowances.len();
            }
            self.allowances.insert(allowance.clone(), (burst, now));
        }
        let (left, at) = self.allowances.get_mut(allowance)?;
        let have = earned(*left, *at);
        let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
        if bytes <= have {
            (*left, *at) = (have - bytes, now);
            return None;
        }
        // In debt: held up until it is earned back, from nothing then.
        let debt = u128::from(bytes - have) * 1_000_000_000 / u128::from(rate);
        let until = now
            .checked_add(Duration::from_nanos(
                u64::try_from(debt).unwrap_or(u64::MAX),
            ))
            .unwrap_or(now);
        (*left, *at) = (0, until);
        Some(until)
    }

    /// The member `handle` is here or elsewhere under, whatever its ASCII case: the handle as
    /// it was taken (`/msg ANN` reaches `ann`).
    pub(crate) fn find_handle(&self, handle: &str) -> Option<String> {
        if self.by_handle.contains_key(handle) || self.is_elsewhere(handle) {
            return Some(handle.to_owned());
        }
        let here = self.by_handle.keys().map(String::as_str);
        let elsewhere = self
            .places
            .values()
            .flat_map(|p| p.elsewhere.keys().map(|h| &**h));
        here.chain(elsewhere)
            .find(|h| h.eq_ignore_ascii_case(handle))
            .map(str::to_owned)
    }

    /// Takes `handle` here for a newcomer while the reach claims it beyond: `false` if it is
    /// taken (by a member or another newcomer, whatever the ASCII case) or the room takes no
    /// members. The newcomer becomes the member ([`add_member`](Self::add_member)) or gives
    /// the handle back ([`give_back`](Self::give_back)).
    pub(crate) fn take(&mut self, handle: &str) -> bool {
        !self.shutting_down && self.taken.insert(protocol::handle_key(handle))
    }

    /// A handle [`take`](Self::take)n for a newcomer who did not become a member.
    pub(crate) fn give_back(&mut self, handle: &str) {
        self.taken.remove(&protocol::handle_key(handle));
    }

    /// Makes `conn` the member `handle` (a handle [`take`](Self::take)n here and claimed by
    /// the reach), in the lobby; `false` if the room has begun its shutdown or
    /// `conn` is gone.
    pub(crate) fn add_member(&mut self, handle: &str, conn: &Conn, web: bool) -> bool {
        let lobby = self.lobby_name();
        if self.shutting_down {
            return false;
        }
        // The reach gave `handle` to this newcomer: whoever is still listed under it
        // elsewhere is gone (told before the newcomer hears the room).
        self.forget_elsewhere(handle);
        if self.lobby().members_of(web).add(conn).is_err() {
            return false;
        }
        let here = Here {
            conn: conn.clone(),
            place: lobby,
        };
        self.by_handle.insert(handle.to_owned(), here);
        self.joined += 1;
        true
    }

    /// `handle` (whatever its ASCII case) joined here or elsewhere, so whoever the room
    /// still lists elsewhere under it is gone, its leave not yet come (a handle freed on one
    /// thread is taken again at once on another, ahead of the leave crossing): the leave is
    /// told now, before the join, and the late one is not told again
    /// ([`left_elsewhere_in`](Self::left_elsewhere_in) tells only of members it lists).
    fn forget_elsewhere(&mut self, handle: &str) {
        let key = protocol::handle_key(handle);
        if self.elsewhere_keys.remove(&key).is_none() {
            return; // listed nowhere: the usual join
        }
        let mut gone: Vec<(Arc<str>, Arc<str>)> = Vec::new();
        for (name, place) in &mut self.places {
            place.elsewhere.retain(|listed, _| {
                let stale = listed.eq_ignore_ascii_case(handle);
                if stale {
                    gone.push((Arc::clone(name), Arc::clone(listed)));
                }
                !stale
            });
        }
        for (name, listed) in gone {
            if !self.shutting_down {
                self.fan_out_in(&name, &protocol::left_line(&name, &listed));
            }
            self.forget_if_empty(&name);
        }
    }

    /// `handle` leaves: lines said before still reach it; the rest it no longer hears. The
    /// room it was in.
    pub(crate) fn remove_member(&mut self, handle: &str, conn: &Conn, web: bool) -> Arc<str> {
        self.give_back(handle);
        let Some(here) = self.by_handle.remove(handle) else {
            self.lobby().members_of(web).remove(conn);
            return self.lobby_name();
        };
        if let Some(place) = self.places.get(&here.place) {
            place.members_of(web).remove(conn);
        }
        self.forget_if_empty(&here.place);
        here.place
    }

    /// Moves the member `handle` here to the room `to` (made if new): the room it left, or
    /// `None` if it is in `to` already, or not a member here. The caller announces the move.
    pub(crate) fn move_member(&mut self, handle: &str, to: &str) -> Option<(Arc<str>, Arc<str>)> {
        if self.shutting_down {
            return None;
        }
        let here = self.by_handle.get(handle)?;
        if &*here.place == to {
            return None;
        }
        let (conn, from) = (here.conn.clone(), Arc::clone(&here.place));
        let web = self.places.get(&from)?.web_members.contains(&conn);
        self.places.get(&from)?.members_of(web).remove(&conn);
        let to = self.place_named(to);
        let added = self.places.get(&to)?.members_of(web).add(&conn).is_ok();
        if let Some(here) = self.by_handle.get_mut(handle) {
            here.place = Arc::clone(&to);
        }
        self.forget_if_empty(&from);
        added.then_some((from, to))
    }

    /// Whether a member may join room `name`: it exists, or there are fewer rooms than
    /// `max_rooms` (the rooms this thread knows of: its own and, as the reach has told, the
    /// other threads'; two threads opening the last one at once may both get it).
    pub(crate) fn may_join(&self, name: &str) -> bool {
        self.places.contains_key(name) || self.places.len() <= self.max_rooms
    }

    /// The room the member `handle` here is in.
    pub(crate) fn place_of(&self, handle: &str) -> Option<Arc<str>> {
        self.by_handle.get(handle).map(|h| Arc::clone(&h.place))
    }

    /// The connection of the member `handle` here.
    pub(crate) fn member(&self, handle: &str) -> Option<Conn> {
        self.by_handle.get(handle).map(|h| h.conn.clone())
    }

    /// Whether the member `handle` is elsewhere, as the reach has told.
    pub(crate) fn is_elsewhere(&self, handle: &str) -> bool {
        self.places
            .values()
            .any(|p| p.elsewhere.contains_key(handle))
    }

    /// Members in every room: here, and elsewhere as the reach has told.
    pub(crate) fn online(&self) -> usize {
        self.places
            .values()
            .map(|p| p.len() + p.elsewhere.len())
            .sum()
    }

    /// How many members of room `name` are here.
    pub(crate) fn members_here(&self, name: &str) -> usize {
        self.places.get(name).map_or(0, Place::len)
    }

    /// The answer to `/who` in room `name`: its members, here and elsewhere, sorted.
    pub(crate) fn who_in(&self, name: &str) -> String {
        let mut handles: Vec<&str> = self
            .by_handle
            .iter()
            .filter(|(_, here)| &*here.place == name)
            .map(|(handle, _)| handle.as_str())
            .collect();
        if let Some(place) = self.places.get(name) {
            handles.extend(place.elsewhere.keys().map(|h| &**h));
        }
        handles.sort_unstable();
        if name == protocol::LOBBY {
            format!("Online: {}", handles.join(", "))
        } else {
            format!("Online in {name}: {}", handles.join(", "))
        }
    }

    /// `handle` says `text` to every member of its room here, the telnet members' bytes
    /// written in place with no line of our own.
    pub(crate) fn say_as(&mut self, handle: &str, text: &str) {
        // Once everyone was told goodbye, nothing more is said (a member's lines read in
        // the round of the stop would follow the goodbye).
        if self.shutting_down {
            return;
        }
        let place = match self.by_handle.get(handle) {
            Some(here) => self.places.get(&here.place),
            None => self.places.get(protocol::LOBBY),
        };
        let Some(place) = place else { return };
        place.members.send_with(|out| {
            let _ = writeln!(out, "{handle} says: {text}");
        });
        if !place.web_members.is_empty() {
            let _ = place
                .web_members
                .send_line(&format!("{handle} says: {text}"));
        }
        self.deliveries += place.len() as u64;
    }

    /// `line` (without its end) to every member of the lobby here, telnet and web.
    pub(crate) fn fan_out(&mut self, line: &str) {
        self.fan_out_in(protocol::LOBBY, line);
    }

    /// `line` (without its end) to every member of room `name` here, telnet and web.
    pub(crate) fn fan_out_in(&mut self, name: &str, line: &str) {
        if self.shutting_down {
            return; // as `say_as`: the goodbye is the last line
        }
        if let Some(place) = self.places.get(name) {
            self.deliveries += place.fan_out(line);
        }
    }

    /// A line from beyond for every member of room `name` here (none once the room is
    /// shutting down).
    pub(crate) fn deliver_in(&mut self, name: &str, line: &str) {
        if !self.shutting_down {
            self.fan_out_in(name, line);
        }
    }

    /// Tells every member of the lobby here `event` (a join or a leave), unless the room is
    /// shutting down; whether it did.
    pub(crate) fn announce(&mut self, event: std::fmt::Arguments<'_>) -> bool {
        if self.shutting_down {
            return false;
        }
        self.fan_out(&event.to_string());
        true
    }

    /// Tells every member of room `name` here `line` (a join or a leave), unless the room
    /// is shutting down; whether it did.
    pub(crate) fn announce_in(&mut self, name: &str, line: &str) -> bool {
        if self.shutting_down {
            return false;
        }
        self.fan_out_in(name, line);
        true
    }

    /// A member elsewhere joined the lobby: told here, and listed by `/who`.
    pub(crate) fn joined_elsewhere(&mut self, handle: Arc<str>) {
        let line = protocol::joined_line(protocol::LOBBY, &handle);
        self.joined_elsewhere_in(protocol::LOBBY, handle, 0, &line);
    }

    /// A member at `origin` (the reach's number for where it is: a thread's index) joined
    /// room `name` (`line` says so): told here, and listed by that room's `/who`.
    pub(crate) fn joined_elsewhere_in(
        &mut self,
        name: &str,
        handle: Arc<str>,
        origin: usize,
        line: &str,
    ) {
        self.forget_elsewhere(&handle);
        self.deliver_in(name, line);
        let name = self.place_named(name);
        if let Some(place) = self.places.get_mut(&name) {
            let key = protocol::handle_key(&handle);
            if place.elsewhere.insert(handle, origin).is_none() {
                *self.elsewhere_keys.entry(key).or_default() += 1;
            }
        }
    }

    /// A member elsewhere left the lobby.
    pub(crate) fn left_elsewhere(&mut self, handle: &str) {
        let line = protocol::left_line(protocol::LOBBY, handle);
        self.left_elsewhere_in(protocol::LOBBY, handle, 0, &line);
    }

    /// A member at `origin` left room `name` (`line` says so).
    pub(crate) fn left_elsewhere_in(
        &mut self,
        name: &str,
        handle: &str,
        origin: usize,
        line: &str,
    ) {
        // Only of a member it lists there: one no longer listed was told gone when its
        // handle joined again (`forget_elsewhere`), and its leave, late, is not its last word.
        let listed = self
            .places
            .get_mut(name)
            .is_some_and(|place| place.remove_elsewhere(handle, origin));
        if listed {
            let key = protocol::handle_key(handle);
            if let Some(n) = self.elsewhere_keys.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    self.elsewhere_keys.remove(&key);
                }
            }
            self.deliver_in(name, line);
        }
        self.forget_if_empty(name);
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

    /// The member `handle` here (in the lobby) stops hearing the room (a join waiting for
    /// its turn in a shared log): its connection and whether it is a browser's, for
    /// [`Room::hear`].
    pub(crate) fn hold(&mut self, handle: &str) -> Option<(Conn, bool)> {
        let conn = self.by_handle.get(handle)?.conn.clone();
        let lobby = self.lobby();
        let web = lobby.web_members.contains(&conn);
        lobby.members_of(web).remove(&conn).then_some((conn, web))
    }

    /// A member [`Room::hold`] held hears the room again, if it is still the member `handle`.
    pub(crate) fn hear(&mut self, handle: &str, conn: &Conn, web: bool) {
        if self.by_handle.get(handle).map(|h| &h.conn) == Some(conn) && !self.shutting_down {
            let _ = self.lobby().members_of(web).add(conn);
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

    /// The lobby.
    fn lobby(&self) -> &Place {
        &self.places[protocol::LOBBY]
    }

    /// The lobby's name, shared.
    fn lobby_name(&self) -> Arc<str> {
        self.place_key(protocol::LOBBY)
            .unwrap_or_else(|| Arc::from(protocol::LOBBY))
    }

    /// The shared name of room `name`, if it is here.
    fn place_key(&self, name: &str) -> Option<Arc<str>> {
        self.places.get_key_value(name).map(|(k, _)| Arc::clone(k))
    }

    /// The shared name of room `name`, made (with the room) if new.
    fn place_named(&mut self, name: &str) -> Arc<str> {
        if let Some(key) = self.place_key(name) {
            return key;
        }
        let key: Arc<str> = Arc::from(name);
        self.places.insert(Arc::clone(&key), Place::new());
        key
    }

    /// Forgets room `name` if nobody is in it, here or elsewhere (never the lobby), keeping
    /// the count of members its groups cut off.
    fn forget_if_empty(&mut self, name: &str) {
        if name == protocol::LOBBY {
            return;
        }
        let empty = self
            .places
            .get(name)
            .is_some_and(|p| p.len() == 0 && p.elsewhere.is_empty());
        if empty {
            if let Some(place) = self.places.remove(name) {
                self.cut_off += place.members.stats().cut_off + place.web_members.stats().cut_off;
            }
        }
    }
}
