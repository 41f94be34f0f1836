//! The chat room: one tasklet per connection, written as plain sequential code, and a room
//! shared by them on one thread.
//!
//! The fan-out is the network plugin's [`Group`]: what is said during a round is stored
//! once and written to each member with one write; a line for one member (a whisper,
//! `/who`) comes after the lines said before it; a member that does not read is cut off.
//!
//! Browsers join the same room through the web page's WebSocket (`serve_web`): the same
//! session code reads their lines from the WebSocket, and the room keeps a second pair of
//! groups for them whose framing makes each line one WebSocket text frame, so a line said to
//! the room is encoded once per kind of member, not once per member.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fibra::http::{text_frames, HttpError, Limits, Message, Response, Router, WebSocket};
use fibra::net::{
    Conn, ConnOptions, Framing, Group, GroupOptions, Handed, ListenOptions, Listener, LoadToken,
    Lost, NetError, NetExt, NetPlugin,
};
use fibra::rt::Unparker;
use fibra::tasks::{remote_channel, RemoteReceiver, RemoteSender, TasksExt};
use fibra::{Handle, Schedule, SpawnOptions, TaskletId};

use super::hub::{Event, Hub};
use super::protocol::{self, parse_command, parse_handle, Command};

const LOG: &str = "chatter";

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
    /// `ConnOptions::with_flush_delay`): the broadcast's cost per line against its latency.
    /// An answer to a connection that just spoke (the login dialogue, `/who`) is not delayed.
    pub(crate) flush_delay: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_line: 8 * 1024,
            max_outbound: 1024 * 1024,
            login_timeout: Some(Duration::from_secs(60)),
            close_timeout: Duration::from_secs(5),
            flush_delay: Duration::from_millis(10),
        }
    }
}

impl Config {
    /// What every member's connection gets: its send limit, close timeout and flush delay.
    fn conn_options(&self) -> ConnOptions {
        ConnOptions::new()
            .with_send_limit(self.max_outbound)
            .with_close_timeout(self.close_timeout)
            .with_flush_delay(self.flush_delay)
    }
}

/// Listens on `addr` from the host, its connections with `conn` (and `SO_REUSEPORT` with
/// `reuse_port`): a bad address is an error at once.
fn listen(
    schedule: &Schedule,
    addr: &str,
    conn: ConnOptions,
    reuse_port: bool,
) -> Result<Listener, Box<dyn std::error::Error>> {
    let net = schedule
        .plugin::<NetPlugin>()
        .ok_or("the chatter needs the NetPlugin")?;
    let options = ListenOptions::new()
        .with_conn(conn)
        .with_reuse_port(reuse_port);
    Ok(net.listen_with(addr, options)?)
}

/// What a telnet member's connection gets.
fn telnet_options(config: &Config) -> ConnOptions {
    config
        .conn_options()
        .with_framing(Framing::Lines)
        .with_max_frame(config.max_line)
}

/// Events waiting for the forwarder beyond which a speaking session waits (a thread that
/// does not take its events holds up the speakers, not its own members).
const OUTBOX_LIMIT: usize = 64 * 1024;

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
}

/// The web page: HTML, CSS and JavaScript in one file, in the binary.
const PAGE: &str = include_str!("page.html");

/// Who is here: every connection (for the shutdown's goodbye), the members, their handles;
/// telnet connections and browsers apart, each in groups of their own framing.
#[derive(Debug)]
struct Room {
    everyone: Group,
    members: Group,
    web_everyone: Group,
    web_members: Group,
    by_handle: HashMap<String, Conn>,
    deliveries: u64,
    /// Members cut off by a line for them alone (the group counts its own).
    cut_off: u64,
    joined: u64,
    served: u64,
    shutting_down: bool,
    /// With `--threads N`: this thread's part in the room across threads.
    threads: Option<Threads>,
}

/// One thread's side of the room across threads.
#[derive(Debug)]
struct Threads {
    hub: Arc<Hub>,
    index: usize,
    /// Events for the other threads (`None`: all of them; `Some(j)`: thread `j`), in the
    /// order they happened, until the forwarder takes them.
    outbox: Vec<(Option<usize>, Event)>,
    forwarder: Unparker,
    /// Sessions waiting for the outbox to shrink.
    waiting: Vec<Unparker>,
    /// This thread's tasklets that serve the room (ended by a shutdown).
    tasklets: Vec<TaskletId>,
    /// The members of the other threads, as the events that came here say: what `/who`
    /// lists, in step with the joins and leaves this thread's members have heard.
    elsewhere: std::collections::HashSet<Arc<str>>,
    crossed: u64,
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
            deliveries: 0,
            cut_off: 0,
            joined: 0,
            served: 0,
            shutting_down: false,
            threads: None,
        }
    }
}

type Shared = Rc<RefCell<Room>>;

/// A member's side of its connection: telnet lines, or a browser's WebSocket.
enum Peer<'a> {
    Telnet,
    Web(&'a mut WebSocket),
}

impl Peer<'_> {
    fn is_web(&self) -> bool {
        matches!(self, Peer::Web(_))
    }
}

/// A running chat server: the acceptor tasklet and the room its sessions share.
#[derive(Debug)]
pub(crate) struct Chatter {
    room: Shared,
    acceptor: TaskletId,
    addr: SocketAddr,
    config: Config,
    /// The web page's server, once `serve_web` started it.
    web: Option<(TaskletId, SocketAddr)>,
}

impl Chatter {
    /// Listens on `addr` and serves the chat on `schedule` (which needs the tasks and network
    /// plugins). A bad address is an error here.
    pub(crate) fn start(
        schedule: &mut Schedule,
        addr: &str,
        config: Config,
    ) -> Result<Chatter, Box<dyn std::error::Error>> {
        let listener = listen(schedule, addr, telnet_options(&config), false)?;
        let addr = listener.local_addr();
        let room = Shared::default();
        let r = room.clone();
        let c = config.clone();
        let acceptor = schedule.spawn_named("chatter acceptor", move |h| {
            accept_loop(h, &r, &listener, &c)
        })?;
        Ok(Chatter {
            room,
            acceptor,
            addr,
            config,
            web: None,
        })
    }

    /// Serves thread `index`'s part of a room across `hub.threads()` threads on `schedule`:
    /// with `listen`, on its own `SO_REUSEPORT` listener at that address; without, the
    /// connections a [`Handoff`](fibra::net::Handoff) hands to the returned sender. The hub
    /// learns this thread's relay here; start the hand-off once every thread is started.
    pub(crate) fn start_threaded(
        schedule: &mut Schedule,
        listen_on: Option<&str>,
        config: Config,
        hub: Arc<Hub>,
        index: usize,
    ) -> Result<(Chatter, RemoteSender<Handed>), Box<dyn std::error::Error>> {
        let room = Shared::default();
        let (events_tx, events) = remote_channel::<Event>(&schedule.remote(), 4096);
        let (handed_tx, handed) = remote_channel::<Handed>(&schedule.remote(), 1024);
        let mut addr = SocketAddr::from(([0, 0, 0, 0], 0));
        let r = room.clone();
        let c = config.clone();
        let acceptor = match listen_on {
            Some(on) => {
                let listener = listen(schedule, on, telnet_options(&config), true)?;
                addr = listener.local_addr();
                schedule.spawn_named("chatter acceptor", move |h| {
                    accept_loop(h, &r, &listener, &c)
                })?
            }
            None => {
                schedule.spawn_named("chatter adopter", move |h| adopt_loop(h, &r, &handed, &c))?
            }
        };
        let r = room.clone();
        let forwarder = schedule.spawn_named("chatter forwarder", move |h| forward(h, &r))?;
        let r = room.clone();
        let relay_id = schedule.spawn_named("chatter relay", move |h| relay(h, &r, &events))?;
        room.borrow_mut().threads = Some(Threads {
            hub: Arc::clone(&hub),
            index,
            outbox: Vec::new(),
            forwarder: schedule.unparker(forwarder),
            waiting: Vec::new(),
            tasklets: vec![acceptor, forwarder, relay_id],
            elsewhere: std::collections::HashSet::new(),
            crossed: 0,
        });
        hub.register(index, events_tx);
        let chatter = Chatter {
            room,
            acceptor,
            addr,
            config,
            web: None,
        };
        Ok((chatter, handed_tx))
    }

    /// Serves the web page on `addr`: `GET /` is the page, `/ws` its WebSocket, whose members
    /// are in the same room, under the same rules. Returns the address.
    pub(crate) fn serve_web(
        &mut self,
        schedule: &mut Schedule,
        addr: &str,
    ) -> Result<SocketAddr, Box<dyn std::error::Error>> {
        let config = self.config.clone();
        let listener = listen(schedule, addr, config.conn_options(), false)?;
        let web_addr = listener.local_addr();
        let limits = Limits {
            max_frame: config.max_line.max(125),
            max_message: config.max_line,
            ..Limits::default()
        };
        let room = self.room.clone();
        let router = Rc::new(
            Router::new()
                .get("/", |_h, _req| Response::html(PAGE))
                .websocket("/ws", move |h, _req, ws| {
                    // Across threads, a browser is this thread's load too.
                    let _load = room
                        .borrow()
                        .threads
                        .as_ref()
                        .map(|t| t.hub.loads().charge(t.index));
                    let conn = ws.conn().clone();
                    // Lines sent to it (the prompt, /who, a whisper) become text messages.
                    conn.set_framing(text_frames());
                    let by = config.login_timeout.map(|t| Instant::now() + t);
                    session(h, &room, &conn, Peer::Web(ws), by);
                })
                .with_limits(limits),
        );
        let server = schedule.spawn_named("chatter web", move |h| {
            let _ = fibra::http::serve(h, &listener, router);
        })?;
        if let Some(t) = self.room.borrow_mut().threads.as_mut() {
            t.tasklets.push(server);
        }
        self.web = Some((server, web_addr));
        Ok(web_addr)
    }

    /// The address it listens on.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The room's counters.
    pub(crate) fn stats(&self) -> RoomStats {
        self.room.borrow().stats()
    }

    /// The room's counters, read by a tasklet or anything else that outlives this value.
    pub(crate) fn counters(&self) -> impl Fn() -> RoomStats + 'static {
        let room = self.room.clone();
        move || room.borrow().stats()
    }

    /// Stops: no new connections; everyone connected is told [`protocol::SHUTTING_DOWN`]
    /// and their connections close gracefully. Then ticks until every socket has closed or
    /// `grace` has passed.
    pub(crate) fn shutdown(self, schedule: &mut Schedule, grace: Duration) {
        log::info!(target: LOG, "shutting down");
        schedule.kill(self.acceptor);
        if let Some((web, _)) = self.web {
            schedule.kill(web);
        }
        {
            let mut room = self.room.borrow_mut();
            room.begin_shutdown();
            if let Some(t) = room.threads.as_mut() {
                for id in t.tasklets.drain(..) {
                    schedule.kill(id);
                }
            }
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            let open = schedule
                .plugin::<NetPlugin>()
                .map_or(0, |n| n.stats().sockets);
            if open == 0 || schedule.run_for(Duration::from_millis(2)).is_err() {
                break;
            }
        }
    }
}

fn accept_loop(h: &Handle, room: &Shared, listener: &Listener, config: &Config) {
    loop {
        let (conn, peer) = match h.accept(listener) {
            Ok(accepted) => accepted,
            Err(NetError::Closed) => return,
            Err(e) => {
                log::warn!(target: LOG, "accept: {e}");
                continue;
            }
        };
        serve_conn(h, room, conn, peer, config, None);
    }
}

/// Serves `conn` on a session tasklet of its own; `load` (a hand-off's share) goes with it.
fn serve_conn(
    h: &Handle,
    room: &Shared,
    conn: Conn,
    peer: SocketAddr,
    config: &Config,
    load: Option<LoadToken>,
) {
    log::debug!(target: LOG, "{peer} connected");
    let (room, login_timeout) = (room.clone(), config.login_timeout);
    let options = SpawnOptions::new().name("chatter session");
    if let Err(e) = h.spawn_detached_with(options, move |h| {
        let _load = load;
        session(
            h,
            &room,
            &conn,
            Peer::Telnet,
            login_timeout.map(|t| Instant::now() + t),
        );
        log::debug!(target: LOG, "{peer} left");
    }) {
        log::warn!(target: LOG, "no tasklet for {peer}: {e}"); // the connection closes
    }
}

/// With a hand-off: adopts the connections handed to this thread and serves each.
fn adopt_loop(h: &Handle, room: &Shared, handed: &RemoteReceiver<Handed>, config: &Config) {
    let options = telnet_options(config);
    while let Some(Handed { stream, peer, load }) = handed.receive(h) {
        match h.adopt(stream, options.clone()) {
            Ok(conn) => serve_conn(h, room, conn, peer, config, Some(load)),
            Err(e) => log::warn!(target: LOG, "cannot serve {peer}: {e}"),
        }
    }
}

/// Takes the events this thread's room posted and sends each to the threads it is for, in
/// order; the only sender of this thread's events, so that their order holds.
fn forward(h: &Handle, room: &Shared) {
    let mut batch: Vec<(Option<usize>, Event)> = Vec::new();
    let mut peers: Vec<Option<RemoteSender<Event>>> = Vec::new();
    loop {
        {
            let mut r = room.borrow_mut();
            let Some(t) = r.threads.as_mut() else { return };
            std::mem::swap(&mut batch, &mut t.outbox);
            for waiting in t.waiting.drain(..) {
                waiting.unpark();
            }
            // Every thread registered before the first connection; fetched once.
            if peers.iter().flatten().count() + 1 < t.hub.threads() {
                peers = t.hub.peers_of(t.index);
            }
        }
        if batch.is_empty() {
            h.park();
            continue;
        }
        let mut crossed = 0;
        for (to, event) in batch.drain(..) {
            for (j, peer) in peers.iter().enumerate() {
                let Some(peer) = peer else { continue };
                // A thread that is gone (stopping) takes nothing: dropped.
                if to.is_none_or(|to| to == j) && peer.send_parking(h, event.clone()).is_ok() {
                    crossed += 1;
                }
            }
        }
        if let Some(t) = room.borrow_mut().threads.as_mut() {
            t.crossed += crossed;
        }
    }
}

/// Applies what the other threads' rooms sent: lines for every member here, a whisper for
/// one, the shutdown.
fn relay(h: &Handle, room: &Shared, events: &RemoteReceiver<Event>) {
    let mut batch = Vec::with_capacity(256);
    while events.receive_many(h, &mut batch, 1024) > 0 {
        for event in batch.drain(..) {
            match event {
                Event::Room(line) => room.borrow_mut().say_here(&line),
                Event::Joined(handle) => {
                    let mut r = room.borrow_mut();
                    r.say_here(&format!("{handle} has joined the chat."));
                    if let Some(t) = r.threads.as_mut() {
                        t.elsewhere.insert(handle);
                    }
                }
                Event::Left(handle) => {
                    let mut r = room.borrow_mut();
                    if let Some(t) = r.threads.as_mut() {
                        t.elsewhere.remove(&handle);
                    }
                    r.say_here(&format!("{handle} has left the chat."));
                }
                Event::Tell { to, line } => {
                    let mut r = room.borrow_mut();
                    if let Some(conn) = r.by_handle.get(&*to).cloned() {
                        r.tell(&conn, &line);
                    }
                }
                Event::Shutdown => {
                    shutdown_here(h, room);
                    return;
                }
            }
        }
    }
}

/// A thread's shutdown from its relay: its tasklets end, everyone here is told and closed;
/// then the hub hears it is done.
fn shutdown_here(h: &Handle, room: &Shared) {
    let (tasklets, hub) = {
        let mut r = room.borrow_mut();
        r.begin_shutdown();
        let Some(t) = r.threads.as_mut() else { return };
        (std::mem::take(&mut t.tasklets), Arc::clone(&t.hub))
    };
    for id in tasklets {
        if id != h.id() {
            h.kill(id);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let r = room.borrow();
        if r.everyone.is_empty() && r.web_everyone.is_empty() {
            break;
        }
        drop(r);
        h.sleep(Duration::from_millis(5));
    }
    // The last goodbyes are written by the closes the sessions started.
    h.sleep(Duration::from_millis(50));
    let stats = room.borrow().stats();
    hub.mark_stopped(stats.deliveries, stats.cut_off);
}

/// Parks a session while its thread's outbox is over its limit.
fn wait_for_outbox(h: &Handle, room: &Shared) {
    loop {
        {
            let mut r = room.borrow_mut();
            match r.threads.as_mut() {
                Some(t) if t.outbox.len() > OUTBOX_LIMIT => t.waiting.push(h.unparker()),
                _ => return,
            }
        }
        h.park();
    }
}

/// One connection, from the prompt to its end.
fn session(h: &Handle, room: &Shared, conn: &Conn, mut peer: Peer<'_>, login_by: Option<Instant>) {
    {
        let r = room.borrow();
        let everyone = if peer.is_web() {
            &r.web_everyone
        } else {
            &r.everyone
        };
        if r.shutting_down || everyone.add(conn).is_err() {
            return;
        }
    }
    room.borrow_mut().served += 1;
    let Some(member) = login(h, room, conn, &mut peer, login_by) else {
        return;
    };
    let mut line = Vec::with_capacity(256);
    while receive(h, conn, &mut peer, &mut line, None) {
        let text = String::from_utf8_lossy(&line);
        let mut room = room.borrow_mut();
        match parse_command(&text) {
            Command::Say(text) => room.say(&member.handle, text),
            Command::Who => {
                let mut handles: Vec<&str> = room.by_handle.keys().map(String::as_str).collect();
                if let Some(t) = &room.threads {
                    handles.extend(t.elsewhere.iter().map(|h| &**h));
                }
                handles.sort_unstable();
                let who = format!("Online: {}", handles.join(", "));
                room.tell(conn, &who);
            }
            Command::Msg { to, text } => {
                let whisper = format!("{} whispers: {text}", member.handle);
                match room.by_handle.get(to).cloned() {
                    Some(to) => room.tell(&to, &whisper),
                    None => match room
                        .threads
                        .as_ref()
                        .filter(|t| t.elsewhere.contains(to))
                        .and_then(|t| t.hub.thread_of(to))
                    {
                        Some(there) => room.post(
                            Some(there),
                            Event::Tell {
                                to: to.into(),
                                line: whisper.into(),
                            },
                        ),
                        None => room.tell(conn, &format!("No such handle: {to}")),
                    },
                }
            }
            Command::MsgUsage => room.tell(conn, protocol::MSG_USAGE),
            Command::Unknown(word) => room.tell(conn, &format!("Unknown command: /{word}")),
            Command::Quit => break,
        }
        drop(room);
        wait_for_outbox(h, &member.room);
    }
    // `member` drops here: the room hears the leave; then the connection closes gracefully.
}

/// Receives a line into `line`; on an error, tells the peer why when it helps.
fn receive(
    h: &Handle,
    conn: &Conn,
    peer: &mut Peer<'_>,
    line: &mut Vec<u8>,
    by: Option<Instant>,
) -> bool {
    let Peer::Web(ws) = peer else {
        return receive_line(h, conn, line, by);
    };
    match ws.receive_until(h, by) {
        Ok(message) => {
            let bytes = match message {
                Message::Text(text) => text.into_bytes(),
                Message::Binary(bytes) => bytes,
            };
            // One message is one line: its line breaks would split it for telnet members.
            line.clear();
            line.extend(
                bytes
                    .into_iter()
                    .map(|b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
            );
            true
        }
        Err(HttpError::TimedOut) => {
            let _ = conn.try_send_frame(protocol::LOGIN_TIMED_OUT.as_bytes());
            let _ = ws.close(h, fibra::http::CloseCode::POLICY, "login timed out");
            false
        }
        Err(_) => false,
    }
}

/// Receives a telnet line.
fn receive_line(h: &Handle, conn: &Conn, line: &mut Vec<u8>, by: Option<Instant>) -> bool {
    let received = match by {
        Some(deadline) => h.receive_until(conn, deadline).map(|got| *line = got),
        None => h.receive_into(conn, line),
    };
    match received {
        Ok(()) => true,
        Err(NetError::Lost(Lost::TooLong { limit })) => {
            let reason = format!("Line too long (the limit is {limit} bytes); goodbye.");
            let _ = conn.try_send_frame(reason.as_bytes());
            false
        }
        Err(NetError::TimedOut) => {
            let _ = conn.try_send_frame(protocol::LOGIN_TIMED_OUT.as_bytes());
            false
        }
        Err(_) => false,
    }
}

/// Prompts until the connection names a free handle; then it is a member.
fn login(
    h: &Handle,
    room: &Shared,
    conn: &Conn,
    peer: &mut Peer<'_>,
    by: Option<Instant>,
) -> Option<Member> {
    let mut line = Vec::new();
    let web = peer.is_web();
    loop {
        conn.try_send_frame(protocol::PROMPT.as_bytes()).ok()?;
        if !receive(h, conn, peer, &mut line, by) {
            return None;
        }
        match parse_handle(&String::from_utf8_lossy(&line)) {
            Ok(handle) => match Member::join(room, handle, conn, web) {
                Some(member) => return Some(member),
                None => conn.try_send_frame(protocol::TAKEN.as_bytes()).ok()?,
            },
            Err(bad) => conn.try_send_frame(bad.message().as_bytes()).ok()?,
        }
    }
}

impl Room {
    /// Its counters.
    fn stats(&self) -> RoomStats {
        RoomStats {
            sessions: self.everyone.len() + self.web_everyone.len(),
            members: self.members.len() + self.web_members.len(),
            deliveries: self.deliveries,
            cut_off: self.cut_off + self.members.stats().cut_off + self.web_members.stats().cut_off,
            joined: self.joined,
            served: self.served,
            crossed: self.threads.as_ref().map_or(0, |t| t.crossed),
        }
    }

    /// Says `text` to every member, as `handle`: here, and once to each other thread.
    fn say(&mut self, handle: &str, text: &str) {
        log::trace!(target: LOG, "{handle}: {text}");
        if self.threads.is_some() {
            // Made once: for the members here and for every other thread.
            let line: Arc<str> = format!("{handle} says: {text}").into();
            self.fan_out(&line);
            self.post(None, Event::Room(line));
            return;
        }
        // One thread: telnet members' bytes are written in place, with no line of our own.
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

    /// A line from another thread for every member here.
    fn say_here(&mut self, line: &str) {
        if !self.shutting_down {
            self.fan_out(line);
        }
    }

    /// `line` to every member here, telnet and web.
    fn fan_out(&mut self, line: &str) {
        self.members.send_with(|out| {
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        });
        if !self.web_members.is_empty() {
            let _ = self.web_members.send_line(line);
        }
        self.deliveries += (self.members.len() + self.web_members.len()) as u64;
    }

    /// Queues `event` for the other threads (all, or thread `to`) and wakes the forwarder.
    fn post(&mut self, to: Option<usize>, event: Event) {
        if let Some(t) = self.threads.as_mut() {
            t.outbox.push((to, event));
            t.forwarder.unpark();
        }
    }

    /// No new member; everyone connected is told [`protocol::SHUTTING_DOWN`] and closed.
    fn begin_shutdown(&mut self) {
        self.shutting_down = true;
        let goodbye = protocol::SHUTTING_DOWN.as_bytes();
        let _ = self.everyone.close_all(Some(goodbye));
        let _ = self.web_everyone.close_all(Some(goodbye));
    }

    /// Tells one connection a line, after the lines said before it; cuts it off if it does
    /// not read.
    fn tell(&mut self, conn: &Conn, line: &str) {
        self.deliveries += 1;
        if let Err(NetError::Full { .. }) = conn.try_send_frame(line.as_bytes()) {
            self.cut_off += 1;
            conn.abort(); // its session sees the loss and leaves
        }
    }

    /// Tells every member here `event`, and the other threads `cross` (what happened, so
    /// that their rooms keep their list of members in step with the lines they send).
    fn announce(&mut self, event: std::fmt::Arguments<'_>, cross: Event) {
        let hub_stopping = self
            .threads
            .as_ref()
            .is_some_and(|t| t.hub.is_shutting_down());
        if !self.shutting_down && !hub_stopping {
            self.members.send_with(|out| {
                let _ = out.write_fmt(event);
                out.push(b'\n');
            });
            if !self.web_members.is_empty() {
                let _ = self.web_members.send_line(&event.to_string());
            }
            self.deliveries += (self.members.len() + self.web_members.len()) as u64;
            if self.threads.is_some() {
                self.post(None, cross);
            }
        }
    }

    /// Members in the room: here, and (across threads) on the other threads as this
    /// thread has heard.
    fn online(&self) -> usize {
        let elsewhere = self.threads.as_ref().map_or(0, |t| t.elsewhere.len());
        self.members.len() + self.web_members.len() + elsewhere
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

/// Membership: joining announces it; dropping it (however the session ends: `/quit`, a
/// lost connection, a kill, a panic) announces the leave, exactly once.
struct Member {
    room: Shared,
    handle: String,
    conn: Conn,
    web: bool,
}

impl Member {
    /// Takes `handle` if it is free and announces the newcomer to everyone, itself included.
    fn join(room: &Shared, handle: &str, conn: &Conn, web: bool) -> Option<Member> {
        let mut r = room.borrow_mut();
        if r.by_handle.contains_key(handle) || r.shutting_down {
            return None;
        }
        // Across threads, the hub decides: one of two racing for a handle wins.
        if let Some(t) = &r.threads {
            if !t.hub.claim(handle, t.index) {
                return None;
            }
        }
        if r.members_of(web).add(conn).is_err() {
            if let Some(t) = &r.threads {
                t.hub.release(handle);
            }
            return None;
        }
        r.by_handle.insert(handle.to_owned(), conn.clone());
        r.joined += 1;
        let online = r.online();
        log::info!(target: LOG, "{handle} joined ({online} online)");
        r.announce(
            format_args!("{handle} has joined the chat."),
            Event::Joined(handle.into()),
        );
        let (room, handle, conn) = (room.clone(), handle.to_owned(), conn.clone());
        Some(Member {
            room,
            handle,
            conn,
            web,
        })
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let Ok(mut room) = self.room.try_borrow_mut() else {
            log::error!(target: LOG, "{}'s session ended while the room was busy", self.handle);
            return;
        };
        // Lines said before the leave still reach the leaver; the rest hear it.
        room.members_of(self.web).remove(&self.conn);
        room.by_handle.remove(&self.handle);
        if let Some(t) = &room.threads {
            t.hub.release(&self.handle);
        }
        let online = room.online();
        log::info!(target: LOG, "{} left ({online} online)", self.handle);
        room.announce(
            format_args!("{} has left the chat.", self.handle),
            Event::Left(self.handle.as_str().into()),
        );
    }
}
