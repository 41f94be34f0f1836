//! A node's side of the federated room, shared by its sessions (through the [`Reach`]) and
//! its two tasklets (the writer and the reader): the outbox of entries made here and not yet
//! read back from the stream, the joins held until theirs comes back, the claims waiting for
//! Redis, the members to keep claimed, and whether Redis is in reach.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fibra::net::{Conn, LoadToken};
use fibra::rt::Unparker;
use fibra::Handle;

use super::entry::{Kind, Own, Read};
use super::Options;
use crate::reach::Reach;
use crate::room::{Room, LOG};

/// How long a session's claim waits for Redis before the handle is taken here alone.
const CLAIM_WAIT: Duration = Duration::from_secs(3);

/// How long a session waits for its member's join to come back before serving it anyway.
const SETTLE_WAIT: Duration = Duration::from_secs(3);

/// How long an entry read back is kept, to be published again if Redis loses its data
/// (the other nodes may not have read it yet).
const KEEP_READ: Duration = Duration::from_secs(10);

/// A node's side of the federated room.
#[derive(Debug)]
pub(crate) struct Node {
    /// This node's name among the others.
    pub(crate) name: String,
    /// This run of the process, as entries name it: they are skipped by their instance and
    /// sequence number, and a restarted node is a new instance.
    pub(crate) instance: String,
    pub(crate) options: Options,
    pub(crate) state: RefCell<State>,
    /// The writer and the reader, woken when there is work.
    pub(crate) writer: OnceCell<Unparker>,
    pub(crate) reader: OnceCell<Unparker>,
}

/// What a member is told when another node took its handle while this node was away.
const TAKEN_ELSEWHERE: &str =
    "That handle was taken on another server while this one was away from the room; goodbye.";

/// A session's claim, waiting for the writer.
#[derive(Debug)]
pub(crate) struct Claim {
    pub(crate) handle: Arc<str>,
    pub(crate) session: Unparker,
    /// The answer: `Some(won)`.
    pub(crate) answer: Rc<Cell<Option<bool>>>,
}

/// What changes as the node runs.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Whether Redis is in reach (lines go through the stream) or not (delivered here).
    pub(crate) up: bool,
    /// Bumped each time Redis is lost: the writer and the reader start a new connection.
    pub(crate) generation: u64,
    /// Whether the reader said hello (the node is registered, knows the room): the writer
    /// claims and publishes only then.
    pub(crate) ready: bool,
    /// The last sequence number given.
    pub(crate) seq: u64,
    /// Entries made here and not yet read back, in order.
    pub(crate) outbox: VecDeque<Own>,
    /// The highest sequence number the writer has written on its current connection.
    pub(crate) written: u64,
    /// Entries read back in the last [`KEEP_READ`], in case Redis loses them.
    pub(crate) read_back: VecDeque<(Instant, Own)>,
    /// The highest own sequence number delivered here (from the stream, or at once while
    /// Redis was out of reach).
    pub(crate) delivered: u64,
    /// Every instance's highest sequence number delivered here.
    pub(crate) seen: HashMap<String, u64>,
    /// Members who joined here and do not hear the room until their join comes back.
    pub(crate) held: HashMap<Arc<str>, (Conn, bool)>,
    /// Members let go because another node holds their handle (taken here while Redis was
    /// out of reach): their leave is said here only.
    pub(crate) evicted: HashSet<Arc<str>>,
    /// Members who left before their join came back: the members here, who did not hear
    /// the join, do not hear the leave either.
    pub(crate) unheard: HashSet<Arc<str>>,
    /// Claims waiting for the writer.
    pub(crate) claims: Vec<Claim>,
    /// The handles of the sessions here waiting for their claim's answer: a second session
    /// asking for one of them meanwhile is refused (Redis would say yes to both, the node
    /// holding the handle).
    pub(crate) claiming: HashSet<Arc<str>>,
    /// The handles of the members here, kept claimed by the heartbeat.
    pub(crate) members: BTreeSet<Arc<str>>,
    /// Handles to free in Redis (after the entries before them are written).
    pub(crate) releases: Vec<Arc<str>>,
    /// Sessions waiting for the outbox to shrink.
    pub(crate) pacing: Vec<Unparker>,
    /// The members here to join again, the node having been declared dead while away.
    pub(crate) rejoins: Vec<Arc<str>>,
    /// Sessions waiting for their member's join to come back (`settle`).
    pub(crate) settling: Vec<Unparker>,
    /// Lines said here while Redis was out of reach that the full outbox could not keep.
    pub(crate) dropped: u64,
    /// The room is stopping: the writer says goodbye and ends.
    pub(crate) stopping: bool,
    /// Each member of another node, as this node has heard: its node.
    pub(crate) homes: HashMap<Arc<str>, Arc<str>>,
    /// Each other node's instance, as its last join here said.
    pub(crate) instances: HashMap<Arc<str>, String>,
    /// After Redis lost its data: when the nodes known here that did not come back to it
    /// are declared dead (the late reaper).
    pub(crate) late_reap: Option<Instant>,
}

/// Another node as known here: its name, its instance (as its last join said; empty if
/// none did) and its members.
pub(crate) type Known = (Arc<str>, String, Vec<Arc<str>>);

impl State {
    /// Where the members of the other nodes are (for the late reaper): `entry`, of another
    /// node, said `kind`.
    fn heard_of(&mut self, kind: Kind, entry: &Read) {
        match kind {
            Kind::Join => {
                let node: Arc<str> = entry.node.as_str().into();
                if entry.seq > 0 {
                    self.instances
                        .insert(Arc::clone(&node), entry.instance.clone());
                }
                self.homes.insert(entry.handle.as_str().into(), node);
            }
            Kind::Leave => {
                if self
                    .homes
                    .get(entry.handle.as_str())
                    .is_some_and(|n| **n == *entry.node)
                {
                    self.homes.remove(entry.handle.as_str());
                }
            }
            Kind::Say | Kind::Msg => {}
        }
    }

    /// The late reaper's work, when due: each other node known here, its instance and
    /// its members.
    pub(crate) fn late_reap_due(&mut self) -> Option<Vec<Known>> {
        if self.late_reap.is_none_or(|at| Instant::now() < at) {
            return None;
        }
        self.late_reap = None;
        let mut nodes: HashMap<Arc<str>, Vec<Arc<str>>> = HashMap::new();
        for (handle, node) in &self.homes {
            nodes
                .entry(Arc::clone(node))
                .or_default()
                .push(Arc::clone(handle));
        }
        Some(
            nodes
                .into_iter()
                .map(|(node, handles)| {
                    let instance = self.instances.get(&node).cloned().unwrap_or_default();
                    (node, instance, handles)
                })
                .collect(),
        )
    }
}

impl Node {
    /// A node named `name`.
    pub(crate) fn new(name: String, options: Options) -> Rc<Node> {
        Rc::new(Node {
            name,
            instance: instance_id(),
            options,
            // Redis is taken to be in reach until a connection says otherwise.
            state: RefCell::new(State {
                up: true,
                ..State::default()
            }),
            writer: OnceCell::new(),
            reader: OnceCell::new(),
        })
    }

    pub(crate) fn wake_writer(&self) {
        if let Some(w) = self.writer.get() {
            w.unpark();
        }
    }

    /// Queues an entry made here: for the stream while Redis is in reach; while it is not,
    /// delivered here at once by the caller (`local` true) and kept for later if the outbox
    /// has room. Returns whether the caller delivers it here now.
    fn post(&self, kind: Kind, handle: &str, text: &str, to: &str) -> bool {
        let mut state = self.state.borrow_mut();
        let local = !state.up;
        // Joins and leaves may go past the bound by as much again: a leave dropped would
        // leave its member in the other nodes' `/who` for ever.
        let bound = match kind {
            Kind::Join | Kind::Leave => self.options.outbox.saturating_mul(2),
            Kind::Say | Kind::Msg => self.options.outbox,
        };
        if local && state.outbox.len() >= bound {
            state.dropped += 1;
            if state.dropped.is_power_of_two() {
                log::warn!(target: LOG, "outbox full ({} entries) while Redis is out of reach: {} lines said here will not reach the other nodes", self.options.outbox, state.dropped);
            }
            return true;
        }
        state.seq += 1;
        let seq = state.seq;
        if local {
            state.delivered = seq;
        }
        state.outbox.push_back(Own {
            seq,
            kind,
            handle: handle.into(),
            text: text.into(),
            to: to.into(),
        });
        drop(state);
        self.wake_writer();
        local
    }

    /// Redis is out of reach (`why`): what was made here and not read back is delivered here
    /// now, in order, and from now on what is said here is delivered at once. The writer
    /// and the reader start over.
    pub(crate) fn lost(&self, room: &mut Room, why: &dyn std::fmt::Display) {
        let mut state = self.state.borrow_mut();
        if !state.up {
            return;
        }
        state.up = false;
        state.generation += 1;
        let delivered = state.delivered;
        let late: Vec<Own> = state
            .outbox
            .iter()
            .filter(|o| o.seq > delivered)
            .cloned()
            .collect();
        if let Some(last) = late.last() {
            state.delivered = last.seq;
        }
        let held = std::mem::take(&mut state.held);
        let members = state.members.len();
        // Claims waiting for Redis: taken here alone, claimed when it is back.
        let claims = std::mem::take(&mut state.claims);
        // Members held back by a full outbox: served alone now, like the rest.
        let pacing = std::mem::take(&mut state.pacing);
        let settling = std::mem::take(&mut state.settling);
        drop(state);
        for w in pacing.into_iter().chain(settling) {
            w.unpark();
        }
        for claim in claims {
            claim.answer.set(Some(true));
            claim.session.unpark();
        }
        log::warn!(target: LOG, "lost Redis ({why}): serving the {members} members here alone, holding their lines for the other nodes (outbox up to {})", self.options.outbox);
        // A member held until its join comes back hears the room from its join on.
        let mut held = held;
        for own in late {
            if own.kind == Kind::Join {
                if let Some((conn, web)) = held.remove(&own.handle) {
                    room.hear(&own.handle, &conn, web);
                }
            }
            self.deliver_own(room, &own);
        }
        for (handle, (conn, web)) in held {
            room.hear(&handle, &conn, web);
        }
        for w in [self.writer.get(), self.reader.get()].into_iter().flatten() {
            w.unpark();
        }
    }

    /// Redis is in reach again (`fresh`: it lost its data, so what was read back lately is
    /// published again too): the outbox goes out from its start.
    pub(crate) fn found(&self, fresh: bool) {
        let mut state = self.state.borrow_mut();
        state.up = true;
        state.written = 0;
        if fresh {
            let now = Instant::now();
            let again: Vec<Own> = state
                .read_back
                .drain(..)
                .filter(|(at, _)| now.duration_since(*at) < KEEP_READ)
                .map(|(_, own)| own)
                .collect();
            for own in again.into_iter().rev() {
                state.outbox.push_front(own);
            }
        }
        if fresh {
            // A node known here has a heartbeat's TTL and one refresh to come back to it.
            state.late_reap = Some(Instant::now() + self.options.ttl + self.options.refresh);
        }
        let held = state.outbox.len();
        drop(state);
        log::info!(target: LOG, "Redis is in reach: publishing {held} entries made here meanwhile{}", if fresh { " (Redis lost its data: the room's state goes back)" } else { "" });
    }

    /// Another node holds `handle`, taken here while Redis was out of reach: what its member
    /// said meanwhile stays here (nothing of it is published), and the member is told and
    /// let go (its leave is said here only).
    pub(crate) fn evict(&self, room: &mut Room, handle: &str) {
        let mut state = self.state.borrow_mut();
        state.members.remove(handle);
        state.outbox.retain(|own| &*own.handle != handle);
        state.evicted.insert(handle.into());
        drop(state);
        if let Some(conn) = room.member(handle) {
            let _ = conn.try_send_frame(TAKEN_ELSEWHERE.as_bytes());
            conn.close(); // its session sees the end and leaves
        }
    }

    /// An entry read back from the stream: delivered here unless it was already.
    pub(crate) fn deliver(&self, room: &mut Room, entry: &Read) {
        let Some(kind) = entry.kind else { return };
        let mut state = self.state.borrow_mut();
        if entry.seq > 0 {
            let seen = state.seen.entry(entry.instance.clone()).or_default();
            if entry.seq <= *seen {
                return; // published twice (a reconnection): delivered already
            }
            *seen = entry.seq;
        }
        let mine = entry.instance == self.instance && entry.seq > 0;
        if mine {
            let now = Instant::now();
            while state.outbox.front().is_some_and(|o| o.seq <= entry.seq) {
                let own = state.outbox.pop_front().expect("checked");
                state.read_back.push_back((now, own));
            }
            while state
                .read_back
                .front()
                .is_some_and(|(at, _)| now.duration_since(*at) > KEEP_READ)
                || state.read_back.len() > self.options.outbox
            {
                state.read_back.pop_front();
            }
            for w in state.pacing.drain(..) {
                w.unpark();
            }
            if entry.seq <= state.delivered {
                return; // delivered here while Redis was out of reach
            }
            state.delivered = entry.seq;
        }
        let held = if mine && kind == Kind::Join {
            state.held.remove(entry.handle.as_str())
        } else {
            None
        };
        if held.is_some() {
            for w in state.settling.drain(..) {
                w.unpark();
            }
        }
        let unheard = mine && kind == Kind::Leave && state.unheard.remove(entry.handle.as_str());
        // A leave from a node that no longer holds the handle as heard here (a node back
        // from away publishing its outbox, after the handle was freed and taken on another
        // node): about the former holder, not the member listed now.
        let stale = kind == Kind::Leave
            && entry.node != self.name
            && state
                .homes
                .get(entry.handle.as_str())
                .is_some_and(|home| **home != *entry.node);
        if entry.node != self.name {
            state.heard_of(kind, entry);
        }
        drop(state);
        let handle = entry.handle.as_str();
        match kind {
            // Written into the members' output in place, no line of its own made.
            Kind::Say if !room.is_shutting_down() => room.say_as(handle, &entry.text),
            Kind::Say => {}
            Kind::Join if mine => {
                // Not held: published again after Redis lost its data (heard here already).
                if let Some((conn, web)) = held {
                    room.hear(handle, &conn, web);
                    room.announce(format_args!("{handle} has joined the chat."));
                }
            }
            // A member of another node (one here may hold the handle only until it is let
            // go, having taken it while Redis was out of reach).
            Kind::Join if entry.node != self.name => {
                if !room.is_elsewhere(handle) {
                    room.joined_elsewhere(handle.into());
                }
            }
            // A former instance's, or this one's join again after it was declared dead (its
            // members here heard it when they joined).
            Kind::Join => {}
            Kind::Leave if mine => {
                if !unheard {
                    room.announce(format_args!("{handle} has left the chat."));
                }
            }
            Kind::Leave if entry.node != self.name => {
                if !stale && room.is_elsewhere(handle) {
                    room.left_elsewhere(handle);
                }
            }
            // A leave of this node's, not by this instance: a former instance's, or a
            // reaper's for a member still here (this node was only away): not so.
            Kind::Leave => {}
            Kind::Msg => room.tell_here(&entry.to, &entry.text),
        }
    }

    /// An entry made here, delivered here at once (Redis out of reach).
    fn deliver_own(&self, room: &mut Room, own: &Own) {
        let handle = &*own.handle;
        match own.kind {
            Kind::Say => room.say_as(handle, &own.text),
            Kind::Join => {
                room.announce(format_args!("{handle} has joined the chat."));
            }
            Kind::Leave => {
                room.announce(format_args!("{handle} has left the chat."));
            }
            Kind::Msg => {} // for a member elsewhere: it waits for Redis
        }
    }
}

/// A session's claim in flight: its handle is refused to the other sessions here until the
/// answer (or the session's end, a kill included).
struct Claiming {
    node: Rc<Node>,
    handle: Arc<str>,
}

impl Drop for Claiming {
    fn drop(&mut self) {
        if let Ok(mut state) = self.node.state.try_borrow_mut() {
            state.claiming.remove(&self.handle);
        }
    }
}

/// The federated room's reach: what happens here goes to the stream, and comes back.
#[derive(Debug)]
pub(crate) struct Federation {
    pub(crate) node: Rc<Node>,
    /// With `--threads`: the threads' loads and this thread's index, for the hand-off to
    /// count the browsers of this thread's web page.
    pub(crate) load: Option<(Arc<crate::hub::Hub>, usize)>,
}

impl Reach for Federation {
    fn claim(&self, h: &Handle, handle: &str) -> bool {
        let node = &self.node;
        let answer = Rc::new(Cell::new(None));
        let _claiming = {
            let mut state = node.state.borrow_mut();
            if state.stopping || state.members.contains(handle) {
                return false;
            }
            let shared: Arc<str> = handle.into();
            if !state.claiming.insert(Arc::clone(&shared)) {
                return false; // another session here is claiming it
            }
            let claiming = Claiming {
                node: Rc::clone(node),
                handle: Arc::clone(&shared),
            };
            if state.up {
                state.claims.push(Claim {
                    handle: shared,
                    session: h.unparker(),
                    answer: Rc::clone(&answer),
                });
            } else {
                // Redis is out of reach: taken here alone, claimed when it is back.
                answer.set(Some(true));
            }
            claiming
        };
        node.wake_writer();
        let deadline = Instant::now() + CLAIM_WAIT;
        let won = loop {
            if let Some(won) = answer.get() {
                break won;
            }
            if h.park_until(deadline).is_err() && answer.get().is_none() {
                // Redis is slow: taken here, claimed by the heartbeat.
                log::warn!(target: LOG, "no answer from Redis for {handle}'s claim in {CLAIM_WAIT:?}: taken here");
                let mut state = node.state.borrow_mut();
                state.claims.retain(|c| !Rc::ptr_eq(&c.answer, &answer));
                break true;
            }
        };
        if won {
            node.state.borrow_mut().members.insert(handle.into());
        }
        won
    }

    fn release(&self, handle: &str) {
        let mut state = self.node.state.borrow_mut();
        state.members.remove(handle);
        state.releases.push(handle.into());
        drop(state);
        self.node.wake_writer();
    }

    fn say(&self, room: &mut Room, handle: &str, text: &str) {
        if self.node.post(Kind::Say, handle, text, "") {
            room.say_as(handle, text);
        }
    }

    fn joined(&self, room: &mut Room, handle: &str) {
        if room.is_shutting_down() {
            return;
        }
        if self.node.state.borrow().up {
            // Hears the room from its own join on, in the stream's order.
            if let Some(held) = room.hold(handle) {
                self.node
                    .state
                    .borrow_mut()
                    .held
                    .insert(handle.into(), held);
            }
        }
        if self.node.post(Kind::Join, handle, "", "") {
            room.announce(format_args!("{handle} has joined the chat."));
        }
    }

    fn left(&self, room: &mut Room, handle: &str) {
        // At the stop, the writer's goodbye says every member here left.
        if room.is_shutting_down() {
            return;
        }
        {
            let mut state = self.node.state.borrow_mut();
            if state.evicted.remove(handle) {
                drop(state);
                room.announce(format_args!("{handle} has left the chat."));
                return;
            }
            if state.held.remove(handle).is_some() {
                state.unheard.insert(handle.into());
            }
        }
        if self.node.post(Kind::Leave, handle, "", "") {
            room.announce(format_args!("{handle} has left the chat."));
        }
    }

    fn tell(&self, to: &str, line: &str) -> bool {
        let handle = line.split(' ').next().unwrap_or("");
        self.node.post(Kind::Msg, handle, line, to);
        true
    }

    fn charge(&self) -> Option<LoadToken> {
        let (hub, index) = self.load.as_ref()?;
        Some(hub.loads().charge(*index))
    }

    fn settle(&self, h: &Handle, handle: &str) {
        let deadline = Instant::now() + SETTLE_WAIT;
        loop {
            let mut state = self.node.state.borrow_mut();
            if !state.up || !state.held.contains_key(handle) {
                return;
            }
            state.settling.push(h.unparker());
            drop(state);
            if h.park_until(deadline).is_err() {
                return; // its join is late: the member is served anyway
            }
        }
    }

    fn pace(&self, h: &Handle) {
        loop {
            let mut state = self.node.state.borrow_mut();
            if !state.up || state.outbox.len() < self.node.options.outbox {
                return;
            }
            state.pacing.push(h.unparker());
            drop(state);
            h.park();
        }
    }
}

/// A name for this run of the process, unlike any other's: the clock's nanoseconds and the
/// process id.
fn instance_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!("{:x}-{:x}", nanos, std::process::id())
}
