//! The chat room: one tasklet per connection, written as plain sequential code, and a room
//! shared by them on one thread.
//!
//! Every member's output goes through `Conn::try_send`, which never waits. Lines said to
//! the room during a round are gathered into one batch; the broadcaster tasklet, woken by
//! the first of them, runs after the round's sessions and queues the whole batch into each
//! member's output buffer with one call, so the room's work per round is one copy per
//! member, not one per line per member. The network plugin then writes each member's
//! output once (after the flush delay, if one is set). A line for one member (a whisper,
//! `/who`) first sends the pending batch, so every member sees lines in the order they
//! were said, and a join or leave sends it too, so membership is exact. A member whose
//! queued output reaches its cap is cut off, so the room never waits for its slowest
//! member and memory stays bounded.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use fibra::net::{
    ops, Conn, ConnOptions, Framing, ListenOptions, Listener, Lost, NetError, NetExt,
};
use fibra::tasks::{self, Sender, TasksExt};
use fibra::{Handle, Schedule, SpawnOptions, TaskletId};
use slab::Slab;

use super::protocol::{self, parse_command, parse_handle, Command};

const LOG: &str = "chatter";

/// A batch this large is sent at once rather than at the end of the round.
const MAX_BATCH: usize = 64 * 1024;

/// The default flush delay: see `Config::flush_delay` and BENCHMARKS.md.
pub(crate) const DEFAULT_FLUSH_DELAY: Duration = Duration::from_millis(10);

/// How the room treats its members.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The longest line (bytes, without its line end); a longer one ends the connection.
    pub(crate) max_line: usize,
    /// The most output queued to one member; a member that does not read past it is cut off.
    pub(crate) max_outbound: usize,
    /// How long a new connection has to choose a handle; `None`: forever.
    pub(crate) login_timeout: Option<Duration>,
    /// How long a closing connection may take to write its last output.
    pub(crate) close_timeout: Duration,
    /// How long a member's output may wait to be gathered into one write (see
    /// `ConnOptions::flush_delay`): the broadcast's cost per line against its latency. An
    /// answer to a connection that just spoke (the login dialogue, `/who`) is not delayed.
    pub(crate) flush_delay: Duration,
    /// Fault injection for tests: a member's line equal to this panics its session tasklet
    /// (while it holds the room), to show that a bug in one session harms no other.
    pub(crate) panic_line: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_line: 8 * 1024,
            max_outbound: 1024 * 1024,
            login_timeout: Some(Duration::from_secs(60)),
            close_timeout: Duration::from_secs(5),
            flush_delay: DEFAULT_FLUSH_DELAY,
            panic_line: None,
        }
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
}

/// A running chat server: the acceptor tasklet and the room its sessions share.
#[derive(Debug)]
pub(crate) struct Chatter {
    room: Rc<RefCell<Room>>,
    acceptor: TaskletId,
    broadcaster: TaskletId,
    addr: SocketAddr,
}

impl Chatter {
    /// Listens on `addr` and serves the chat on `schedule` (which needs the tasks and network
    /// plugins). Returns once listening, so a bad address is an error here.
    pub(crate) fn start(
        schedule: &mut Schedule,
        addr: &str,
        config: Config,
    ) -> Result<Chatter, Box<dyn std::error::Error>> {
        let (wake, woken) = tasks::bounded(1);
        let room = Rc::new(RefCell::new(Room::new(config, wake)));
        let broadcaster = {
            let room = room.clone();
            schedule.spawn_named("chatter broadcaster", move |h| {
                while woken.recv(h).is_some() {
                    room.borrow_mut().send_batch();
                }
            })?
        };
        let bound: Rc<RefCell<Option<Result<SocketAddr, NetError>>>> = Rc::default();
        let addr = addr.to_owned();
        let acceptor = {
            let (room, bound) = (room.clone(), bound.clone());
            schedule.spawn_named("chatter acceptor", move |h| {
                let conn = room.borrow().conn_options();
                match h.listen_with(addr.as_str(), ListenOptions::new().with_conn(conn)) {
                    Ok(listener) => {
                        *bound.borrow_mut() = Some(Ok(listener.local_addr()));
                        accept_loop(h, &room, &listener);
                    }
                    Err(e) => *bound.borrow_mut() = Some(Err(e)),
                }
            })?
        };
        // Listening completes at once: a few ticks at most.
        for _ in 0..100 {
            if bound.borrow().is_some() {
                break;
            }
            schedule.tick()?;
        }
        let result = bound.borrow_mut().take();
        match result {
            Some(Ok(addr)) => Ok(Chatter {
                room,
                acceptor,
                broadcaster,
                addr,
            }),
            Some(Err(e)) => Err(e.into()),
            None => Err("the chatter's listener did not start".into()),
        }
    }

    /// The address it listens on.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The room's counters.
    pub(crate) fn stats(&self) -> RoomStats {
        let room = self.room.borrow();
        RoomStats {
            sessions: room.sessions.len(),
            members: room.members.len(),
            ..room.stats
        }
    }

    /// Stops: no new connections; everyone connected is told [`protocol::SHUTTING_DOWN`]
    /// and their connections close gracefully. Then ticks until every socket has closed or
    /// `grace` has passed.
    pub(crate) fn shutdown(self, schedule: &mut Schedule, grace: Duration) {
        log::info!(target: LOG, "shutting down");
        schedule.kill(self.acceptor);
        let sessions: Vec<TaskletId> = {
            let mut room = self.room.borrow_mut();
            room.send_batch();
            room.shutting_down = true;
            room.sessions
                .iter()
                .map(|(_, s)| {
                    let _ = s.conn.try_send_frame(protocol::SHUTTING_DOWN.as_bytes());
                    s.tasklet
                })
                .collect()
        };
        // A killed session drops its connection: a graceful close in the background.
        for id in sessions {
            schedule.kill(id);
        }
        schedule.kill(self.broadcaster);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            let open = schedule
                .plugin::<fibra::net::NetPlugin>()
                .map_or(0, |net| net.stats().sockets);
            if open == 0 {
                break;
            }
            if schedule.tick().is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

fn accept_loop(h: &Handle, room: &Rc<RefCell<Room>>, listener: &Listener) {
    loop {
        let (conn, peer) = match h.accept(listener) {
            Ok(accepted) => accepted,
            Err(NetError::Closed) => return,
            Err(e) => {
                log::warn!(target: LOG, "accept: {e}");
                continue;
            }
        };
        log::debug!(target: LOG, "{peer} connected");
        let room = room.clone();
        let options = SpawnOptions::new().name("chatter session");
        if let Err(e) = h.spawn_detached(options, move |h| session(h, &room, conn, peer)) {
            // The connection is dropped, so it closes.
            log::warn!(target: LOG, "no tasklet for {peer}: {e}");
        }
    }
}

/// One connection, from the prompt to its end.
fn session(h: &Handle, room: &Rc<RefCell<Room>>, conn: Conn, peer: SocketAddr) {
    let Some(_session) = Session::enter(room, h.id(), &conn) else {
        return; // shutting down
    };
    let mut line = Vec::with_capacity(256);
    let Some(member) = login(h, room, &conn, &mut line) else {
        log::debug!(target: LOG, "{peer} left before choosing a handle");
        return;
    };
    loop {
        match h.receive_into(&conn, &mut line) {
            Ok(()) => {}
            Err(NetError::Lost(Lost::TooLong { limit })) => {
                explain_too_long(&conn, limit);
                break;
            }
            Err(e) => {
                log::debug!(target: LOG, "{peer}: {e}");
                break;
            }
        }
        let text = String::from_utf8_lossy(&line);
        let mut room = room.borrow_mut();
        if room.config.panic_line.as_deref() == Some(&*text) {
            panic!("fault injected: session panics on {text:?}");
        }
        match parse_command(&text) {
            Command::Say(text) => room.say(&member, text),
            Command::Who => room.who(&member),
            Command::Msg { to, text } => room.whisper(&member, to, text),
            Command::MsgUsage => room.tell(member.slot, protocol::MSG_USAGE),
            Command::Unknown(word) => {
                room.line.clear();
                let _ = write!(room.line, "Unknown command: /{word}");
                room.tell_line(member.slot);
            }
            Command::Quit => break,
        }
        if !room.is_member(&member) {
            break; // cut off for not reading its own output
        }
    }
    // `member` drops here: the room hears the leave; then `conn` drops: a graceful close.
    drop(member);
}

/// Prompts until the connection names a free handle; then it is a member.
fn login(h: &Handle, room: &Rc<RefCell<Room>>, conn: &Conn, line: &mut Vec<u8>) -> Option<Member> {
    let deadline = room
        .borrow()
        .config
        .login_timeout
        .map(|t| Instant::now() + t);
    loop {
        conn.try_send_frame(protocol::PROMPT.as_bytes()).ok()?;
        let op = ops::Receive::into_buf(conn, std::mem::take(line));
        let received = match deadline {
            Some(deadline) => h.yield_op_until(op, deadline),
            None => Ok(h.yield_op(op)),
        };
        match received {
            Ok(Ok(bytes)) => *line = bytes,
            Ok(Err(NetError::Lost(Lost::TooLong { limit }))) => {
                explain_too_long(conn, limit);
                return None;
            }
            Ok(Err(_)) => return None,
            Err(_timed_out) => {
                let _ = conn.try_send_frame(protocol::LOGIN_TIMED_OUT.as_bytes());
                return None;
            }
        }
        let answer = String::from_utf8_lossy(line);
        let handle = match parse_handle(&answer) {
            Ok(handle) => handle,
            Err(bad) => {
                conn.try_send_frame(bad.message().as_bytes()).ok()?;
                continue;
            }
        };
        match Member::join(room, handle, conn) {
            Some(member) => return Some(member),
            None => conn.try_send_frame(protocol::TAKEN.as_bytes()).ok()?,
        }
    }
}

fn explain_too_long(conn: &Conn, limit: usize) {
    let reason = format!("Line too long (the limit is {limit} bytes); goodbye.");
    let _ = conn.try_send_frame(reason.as_bytes());
}

/// The shared state: who is connected, who is a member, and reused buffers.
#[derive(Debug)]
struct Room {
    config: Config,
    /// Every connection being served, for shutdown.
    sessions: Slab<SessionEntry>,
    members: Slab<MemberEntry>,
    by_handle: HashMap<String, usize>,
    next_serial: u64,
    /// The line being built; reused, so saying something allocates nothing.
    line: String,
    /// Lines said to everyone this round, each with its `\n`, not yet sent.
    batch: Vec<u8>,
    /// The previous batch's buffer, reused.
    batch_spare: Vec<u8>,
    batch_lines: u64,
    /// Wakes the broadcaster to send the batch.
    wake: Sender<()>,
    /// Members found over their output cap during a delivery, cut off after it.
    cut: Vec<usize>,
    shutting_down: bool,
    stats: RoomStats,
}

#[derive(Debug)]
struct SessionEntry {
    tasklet: TaskletId,
    conn: Conn,
}

#[derive(Debug)]
struct MemberEntry {
    handle: String,
    conn: Conn,
    serial: u64,
}

impl Room {
    fn new(config: Config, wake: Sender<()>) -> Room {
        Room {
            config,
            sessions: Slab::new(),
            members: Slab::new(),
            by_handle: HashMap::new(),
            next_serial: 0,
            line: String::with_capacity(1024),
            batch: Vec::with_capacity(MAX_BATCH),
            batch_spare: Vec::with_capacity(MAX_BATCH),
            batch_lines: 0,
            wake,
            cut: Vec::new(),
            shutting_down: false,
            stats: RoomStats::default(),
        }
    }

    fn conn_options(&self) -> ConnOptions {
        ConnOptions::new()
            .with_framing(Framing::Lines)
            .with_max_frame(self.config.max_line)
            .with_send_limit(self.config.max_outbound)
            .with_close_timeout(self.config.close_timeout)
            .with_flush_delay(self.config.flush_delay)
    }

    fn is_member(&self, member: &Member) -> bool {
        self.members
            .get(member.slot)
            .is_some_and(|m| m.serial == member.serial)
    }

    fn say(&mut self, member: &Member, text: &str) {
        self.line.clear();
        let handle = &self.members[member.slot].handle;
        let _ = write!(self.line, "{handle} says: {text}");
        self.tell_all();
    }

    fn who(&mut self, member: &Member) {
        let mut handles: Vec<&str> = self.by_handle.keys().map(String::as_str).collect();
        handles.sort_unstable();
        self.line.clear();
        self.line.push_str("Online: ");
        for (i, handle) in handles.iter().enumerate() {
            if i > 0 {
                self.line.push_str(", ");
            }
            self.line.push_str(handle);
        }
        self.tell_line(member.slot);
    }

    fn whisper(&mut self, member: &Member, to: &str, text: &str) {
        self.line.clear();
        match self.by_handle.get(to) {
            Some(&slot) => {
                let from = &self.members[member.slot].handle;
                let _ = write!(self.line, "{from} whispers: {text}");
                self.tell_line(slot);
            }
            None => {
                let _ = write!(self.line, "No such handle: {to}");
                self.tell_line(member.slot);
            }
        }
    }

    /// Sends `text` to one member.
    fn tell(&mut self, slot: usize, text: &str) {
        self.line.clear();
        self.line.push_str(text);
        self.tell_line(slot);
    }

    /// Sends the built line to one member, after the lines said before it.
    fn tell_line(&mut self, slot: usize) {
        self.send_batch();
        if let Some(m) = self.members.get(slot) {
            self.stats.deliveries += 1;
            if let Err(NetError::Full { .. }) = m.conn.try_send_frame(self.line.as_bytes()) {
                self.cut.push(slot);
            }
        }
        // Leaves go out with the round's batch.
        self.cut_off_slow();
    }

    /// Adds the built line to the round's batch for everyone.
    fn tell_all(&mut self) {
        debug_assert!(!self.line.contains('\n'), "a line cannot hold a line end");
        if self.batch.is_empty() {
            // Full: already woken.
            let _ = self.wake.try_send(());
        }
        self.batch.extend_from_slice(self.line.as_bytes());
        self.batch.push(b'\n');
        self.batch_lines += 1;
        if self.batch.len() >= MAX_BATCH {
            self.send_batch();
        }
    }

    /// Queues the batch to every member, one call each; cuts off those over their cap
    /// (their leaves make the next batch, sent too).
    fn send_batch(&mut self) {
        while !self.batch.is_empty() {
            let batch = std::mem::replace(&mut self.batch, std::mem::take(&mut self.batch_spare));
            for (slot, m) in &self.members {
                // Other errors mean the connection is lost: its own tasklet sees that and
                // leaves.
                if let Err(NetError::Full { .. }) = m.conn.try_send(&batch) {
                    self.cut.push(slot);
                }
            }
            self.stats.deliveries += self.batch_lines * self.members.len() as u64;
            self.batch_lines = 0;
            self.batch_spare = batch;
            self.batch_spare.clear();
            self.cut_off_slow();
        }
    }

    /// Removes the members found over their output cap: a reset for them, a leave for the
    /// others (which may find more).
    fn cut_off_slow(&mut self) {
        while let Some(slot) = self.cut.pop() {
            let Some(m) = self.members.try_remove(slot) else {
                continue; // found twice
            };
            self.by_handle.remove(&m.handle);
            self.stats.cut_off += 1;
            log::info!(
                target: LOG,
                "{} cut off: {} bytes unread",
                m.handle,
                m.conn.queued()
            );
            m.conn.abort();
            self.announce_leave(&m.handle);
        }
    }

    fn announce_leave(&mut self, handle: &str) {
        if self.shutting_down {
            return;
        }
        self.line.clear();
        let _ = write!(self.line, "{handle} has left the chat.");
        self.tell_all();
    }
}

/// A connection's place in the room's session table, for its whole life.
struct Session {
    room: Rc<RefCell<Room>>,
    slot: usize,
}

impl Session {
    fn enter(room: &Rc<RefCell<Room>>, tasklet: TaskletId, conn: &Conn) -> Option<Session> {
        let mut r = room.borrow_mut();
        if r.shutting_down {
            return None;
        }
        let slot = r.sessions.insert(SessionEntry {
            tasklet,
            conn: conn.clone(),
        });
        Some(Session {
            room: room.clone(),
            slot,
        })
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Ok(mut room) = self.room.try_borrow_mut() {
            room.sessions.try_remove(self.slot);
        }
    }
}

/// Membership: joining announces it; dropping it (however the session ends: `/quit`, a
/// lost connection, a kill, a panic) announces the leave, exactly once.
struct Member {
    room: Rc<RefCell<Room>>,
    slot: usize,
    serial: u64,
}

impl Member {
    /// Takes `handle` if it is free and announces the newcomer to everyone, itself included.
    fn join(room: &Rc<RefCell<Room>>, handle: &str, conn: &Conn) -> Option<Member> {
        let mut r = room.borrow_mut();
        if r.by_handle.contains_key(handle) || r.shutting_down {
            return None;
        }
        // Lines said before the join are not the newcomer's.
        r.send_batch();
        let serial = r.next_serial;
        r.next_serial += 1;
        let slot = r.members.insert(MemberEntry {
            handle: handle.to_owned(),
            conn: conn.clone(),
            serial,
        });
        r.by_handle.insert(handle.to_owned(), slot);
        log::info!(target: LOG, "{handle} joined ({} online)", r.members.len());
        r.line.clear();
        let _ = write!(r.line, "{handle} has joined the chat.");
        r.tell_all();
        Some(Member {
            room: room.clone(),
            slot,
            serial,
        })
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        // A panic while the room was borrowed leaves it borrowed during unwinding; the
        // member then stays listed rather than aborting the process.
        let Ok(mut room) = self.room.try_borrow_mut() else {
            log::error!(target: LOG, "a member's session ended while the room was busy");
            return;
        };
        let current = room.members.get(self.slot).map(|m| m.serial);
        if current != Some(self.serial) {
            return; // already cut off
        }
        // Lines said before the leave still reach the leaver.
        room.send_batch();
        let m = room.members.remove(self.slot);
        room.by_handle.remove(&m.handle);
        log::info!(target: LOG, "{} left ({} online)", m.handle, room.members.len());
        room.announce_leave(&m.handle);
        room.cut_off_slow();
    }
}
