//! The table of sockets: readiness, buffers, waiting tasklets, and every state change of a
//! connection. Shared by the plugin and the handles (`Conn`, `Listener`) through [`Shared`].
//!
//! The rules it keeps:
//! - Each socket is registered once, edge-triggered, with its slab slot as key; readiness bits
//!   live in the entry. A system call is tried first; a tasklet parks only after it said
//!   `WouldBlock` (or a short read or write showed the kernel buffer drained or full).
//! - A short read clears `readable` without the read that would say `WouldBlock`, which
//!   saves a system call per message, where the reactor reports a peer's end of output
//!   (epoll's `EPOLLRDHUP`): a FIN that came in the same edge as the bytes is flagged in that
//!   edge's event (`read_closed`), and the connection reads on until `read() == 0`. On a
//!   backend without that hint (`polling`), a connection reads until `WouldBlock`.
//! - An entry is removed once: when its socket is closed and no handle refers to it.
//! - Every waiting tasklet is in `waiting`, so `forget` finds it, and every waiter is
//!   completed exactly once.

use std::cell::RefCell;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::rc::Weak;
use std::task::Poll;
use std::time::{Duration, Instant};

use fibra_rt::{Context, Event, Events, IdMap, Interest, Registry, TaskletId};
use slab::Slab;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::buffer::{BufPool, InBuf, OutBuf};
use crate::codec::{CodecState, FrameError};
use crate::conn::Conn;
use crate::error::{Lost, NetError};
use crate::ops;
use crate::options::{ConnOptions, ListenOptions};
use crate::timer::{TimerKind, Timers};

/// Bytes one connection may read from its socket per poll round: a flooding peer is read in
/// slices, and the other connections are served in between.
const READ_BUDGET: usize = 64 * 1024;
/// The smallest read worth a system call.
const MIN_READ: usize = 4 * 1024;
/// Room in an input buffer beyond the frame limit, for framing bytes.
const FRAMING_SLACK: usize = 64;
/// Input read and thrown away before closing, so the close is a FIN and not a RST.
const CLOSE_DRAIN: usize = 64 * 1024;
/// First and longest pause of `accept` after the process ran out of file descriptors.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// A table entry's address: its slab slot and the generation that tells reuses apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Key {
    pub(crate) slot: usize,
    pub(crate) gen: u64,
}

/// The state shared by the plugin and the handles.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) table: RefCell<Table>,
    /// Handles dropped while the table was borrowed; released at the next poll or flush.
    pub(crate) deferred: RefCell<Vec<Key>>,
    /// Connections [`Conn::abort`](crate::Conn::abort)ed without a handle; reset at the next
    /// poll or flush, where waiters can be told.
    pub(crate) aborts: RefCell<Vec<Key>>,
}

impl Shared {
    /// The last handle to `key` was dropped.
    pub(crate) fn release(&self, key: Key) {
        match self.table.try_borrow_mut() {
            Ok(mut table) => table.release(key),
            Err(_) => self.deferred.borrow_mut().push(key),
        }
    }
}

/// What a tasklet waits for, so that `forget` can withdraw it.
#[derive(Clone, Copy, Debug)]
enum Wait {
    Accept(usize),
    Connect(usize),
    Receive(usize),
    Drain(usize),
    Flush(usize),
    Close(usize),
    Lost(usize),
}

#[derive(Debug)]
enum Entry {
    Listener(ListenerEntry),
    Conn(Box<ConnEntry>),
}

impl Entry {
    fn gen(&self) -> u64 {
        match self {
            Entry::Listener(l) => l.gen,
            Entry::Conn(c) => c.gen,
        }
    }
}

#[derive(Debug)]
struct ListenerEntry {
    gen: u64,
    socket: Option<Socket>,
    addr: SocketAddr,
    conn: ConnOptions,
    readable: bool,
    acceptors: Vec<TaskletId>,
    /// Accepting is paused until then (out of file descriptors).
    backoff_until: Option<Instant>,
    backoff: Duration,
    released: bool,
}

#[derive(Debug)]
struct Reader {
    id: TaskletId,
    buf: Vec<u8>,
    /// `Some(n)`: a raw read of up to `n` bytes, past the codec.
    raw: Option<usize>,
}

#[derive(Debug)]
struct ConnEntry {
    gen: u64,
    /// `None` once closed; the entry stays (a tombstone) until its last handle is dropped.
    socket: Option<Socket>,
    peer: SocketAddr,
    readable: bool,
    writable: bool,
    /// The reactor said the peer ended its output: read until `read() == 0`.
    read_closed: bool,
    codec: CodecState,
    options: ConnOptions,
    input: InBuf,
    output: OutBuf,
    reader: Option<Reader>,
    connecting: Option<TaskletId>,
    /// No more bytes come from the socket, and why.
    read_end: Option<Lost>,
    /// No more bytes go to the socket, and why.
    write_end: Option<Lost>,
    /// The first loss, as told to watchers.
    lost: Option<Lost>,
    watchers: Vec<TaskletId>,
    drainers: Vec<TaskletId>,
    flushers: Vec<TaskletId>,
    closer: Option<TaskletId>,
    /// Close once the output is written.
    closing: bool,
    released: bool,
    /// In the list of connections to write at the end of the round.
    dirty: bool,
    /// Output held back by the flush delay: a `Flush` timer is armed.
    held: bool,
    /// When output was last written, for the flush delay.
    last_write: Option<Instant>,
    last_read: Instant,
    read_timer: Option<Instant>,
    linger_timer: Option<Instant>,
    read_round: u64,
    read_in_round: usize,
}

/// Connection counts and buffer use, for tests and monitoring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Connections in the table (open, closing, or closed with live handles).
    pub connections: usize,
    /// Listeners in the table.
    pub listeners: usize,
    /// Sockets open (registered with the poller).
    pub sockets: usize,
    /// Tasklets waiting on a network op.
    pub waiting: usize,
    /// Bytes queued to send, over all connections.
    pub queued: usize,
    /// Buffers kept for reuse.
    pub pooled_buffers: usize,
    /// Timers armed.
    pub timers: usize,
    /// Read system calls made, since the plugin was created.
    pub reads: u64,
    /// Write system calls made, since the plugin was created.
    pub writes: u64,
    /// Times accepting paused because the process or system was out of file descriptors.
    pub accept_pauses: u64,
}

/// The outcome of one attempt to read from a connection's socket.
enum ReadStep {
    Data,
    /// Nothing now: wait for readiness (or the next round, when `budget`).
    Wait {
        budget: bool,
    },
    /// The input buffer is full at its limit.
    Full,
    Ended,
}

/// What to do with a tasklet's receive.
enum Attempt {
    Done(Result<Vec<u8>, NetError>),
    Pending(Vec<u8>, bool),
}

/// Held output this large is written at the end of the round, whatever the flush delay.
const HOLD_LIMIT: usize = 16 * 1024;

/// Whether a send may queue now.
pub(crate) enum SendState {
    Queued,
    /// The output is at its limit: wait for it to drain, then try again.
    MustWait,
}

/// The socket table. See the module documentation.
#[derive(Debug)]
pub(crate) struct Table {
    /// The schedule's reactor, for this plugin; taken from the first context the table sees.
    registry: Option<Registry>,
    /// A short read means the socket is drained (the reactor reports a peer's FIN).
    short_read_drains: bool,
    entries: Slab<Entry>,
    next_gen: u64,
    pool: BufPool,
    dirty: Vec<usize>,
    dirty_spare: Vec<usize>,
    /// Connections whose reader stopped at the round's read budget.
    retry: Vec<usize>,
    timers: Timers,
    waiting: IdMap<Wait>,
    /// Waiters of entries closed without a context at hand: told `Closed` at the next poll.
    orphans: Vec<(TaskletId, Wait)>,
    round: u64,
    /// The origin of the flush delay's millisecond grain.
    epoch: Instant,
    /// The time of the last round that had work (the schedule's clock, read after its wait):
    /// the time of this round's timers and sends.
    round_time: Instant,
    sockets: usize,
    warned_fd_limit: bool,
    reads: u64,
    writes: u64,
    accept_pauses: u64,
    /// The `Shared` this table lives in, to make handles.
    me: Weak<Shared>,
}

fn conn_mut(entries: &mut Slab<Entry>, key: Key) -> Option<&mut ConnEntry> {
    match entries.get_mut(key.slot) {
        Some(Entry::Conn(c)) if c.gen == key.gen => Some(c),
        _ => None,
    }
}

fn listener_mut(entries: &mut Slab<Entry>, key: Key) -> Option<&mut ListenerEntry> {
    match entries.get_mut(key.slot) {
        Some(Entry::Listener(l)) if l.gen == key.gen => Some(l),
        _ => None,
    }
}

/// `at`, rounded down to a whole millisecond counted from `epoch`: held connections fall due
/// together, a round per grain at most, rather than a round each.
fn flush_grain(epoch: Instant, at: Instant) -> Instant {
    let since = at.saturating_duration_since(epoch);
    let millis = since
        .as_secs()
        .saturating_mul(1000)
        .saturating_add(u64::from(since.subsec_millis()));
    epoch + Duration::from_millis(millis)
}

fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

fn connect_error(e: io::Error, addr: SocketAddr) -> NetError {
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => NetError::Refused { addr },
        Some(libc::ENETUNREACH | libc::EHOSTUNREACH) => NetError::Unreachable { addr },
        Some(libc::ETIMEDOUT) => NetError::TimedOut,
        _ => NetError::Io(e),
    }
}

impl Table {
    pub(crate) fn new(me: Weak<Shared>) -> Table {
        Table {
            me,
            registry: None,
            short_read_drains: false,
            entries: Slab::new(),
            next_gen: 0,
            pool: BufPool::default(),
            dirty: Vec::new(),
            dirty_spare: Vec::new(),
            retry: Vec::new(),
            timers: Timers::default(),
            waiting: IdMap::new(),
            orphans: Vec::new(),
            round: 0,
            epoch: Instant::now(),
            round_time: Instant::now(),
            sockets: 0,
            warned_fd_limit: false,
            reads: 0,
            writes: 0,
            accept_pauses: 0,
        }
    }

    pub(crate) fn stats(&self) -> NetStats {
        let mut stats = NetStats {
            sockets: self.sockets,
            waiting: self.waiting.len(),
            pooled_buffers: self.pool.pooled(),
            timers: self.timers.len(),
            reads: self.reads,
            writes: self.writes,
            accept_pauses: self.accept_pauses,
            ..NetStats::default()
        };
        for (_, entry) in &self.entries {
            match entry {
                Entry::Listener(_) => stats.listeners += 1,
                Entry::Conn(c) => {
                    stats.connections += 1;
                    stats.queued += c.output.len();
                }
            }
        }
        stats
    }

    /// Takes the schedule's registry from the first context the table sees.
    pub(crate) fn attach(&mut self, cx: &Context<'_>) {
        if self.registry.is_none() {
            let registry = cx.registry();
            self.short_read_drains = registry.reports_read_closed();
            self.registry = Some(registry);
        }
    }

    /// Whether `poll` has work that must not wait for readiness.
    pub(crate) fn has_work_now(&self) -> bool {
        !self.orphans.is_empty() || !self.retry.is_empty()
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// When the table was made: earlier than any clock reading of its schedule, so a
    /// deadline of "already due".
    pub(crate) fn epoch(&self) -> Instant {
        self.epoch
    }

    fn next_key(&mut self, slot: usize) -> Key {
        self.next_gen += 1;
        Key {
            slot,
            gen: self.next_gen,
        }
    }

    fn register(&mut self, socket: &Socket, slot: usize) -> io::Result<()> {
        let Some(registry) = &self.registry else {
            return Err(io::Error::other(
                "the network plugin registered a socket before it saw its schedule",
            ));
        };
        // SAFETY: every registered socket is deregistered before it is dropped:
        // `close_socket` is the only place a registered socket is dropped, and `Drop for
        // Table` deregisters the ones still open.
        unsafe { registry.register(socket.as_fd(), slot, Interest::BOTH)? };
        self.sockets += 1;
        Ok(())
    }

    fn close_socket(&mut self, socket: Socket) {
        if let Some(registry) = &self.registry {
            if let Err(e) = registry.deregister(socket.as_fd()) {
                log::debug!(target: "fibra_net", "removing a socket from the poller: {e}");
            }
        }
        self.sockets -= 1;
        drop(socket);
    }

    // ----- listeners -------------------------------------------------------------------

    pub(crate) fn listen(
        &mut self,
        addr: SocketAddr,
        options: &ListenOptions,
    ) -> Result<(Key, SocketAddr), NetError> {
        let bind = |e: io::Error| NetError::Bind { addr, source: e };
        let socket = Socket::new(
            Domain::for_address(addr),
            Type::STREAM.nonblocking().cloexec(),
            Some(Protocol::TCP),
        )
        .map_err(bind)?;
        socket.set_reuse_address(true).map_err(bind)?;
        if options.reuse_port {
            socket.set_reuse_port(true).map_err(bind)?;
        }
        if addr.is_ipv6() {
            socket.set_only_v6(true).map_err(bind)?;
        }
        socket.bind(&addr.into()).map_err(bind)?;
        socket.listen(options.backlog).map_err(bind)?;
        let local = socket
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .unwrap_or(addr);
        let slot = self.entries.vacant_key();
        self.register(&socket, slot).map_err(bind)?;
        let key = self.next_key(slot);
        self.entries.insert(Entry::Listener(ListenerEntry {
            gen: key.gen,
            socket: Some(socket),
            addr: local,
            conn: options.conn.clone(),
            readable: true,
            acceptors: Vec::new(),
            backoff_until: None,
            backoff: BACKOFF_MIN,
            released: false,
        }));
        log::debug!(target: "fibra_net", "listening on {local}");
        Ok((key, local))
    }

    pub(crate) fn submit_accept(
        &mut self,
        key: Key,
        from: TaskletId,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(Key, SocketAddr), NetError>> {
        let Some(l) = listener_mut(&mut self.entries, key) else {
            return Poll::Ready(Err(NetError::Closed));
        };
        if l.socket.is_none() {
            return Poll::Ready(Err(NetError::Closed));
        }
        if l.acceptors.is_empty() && l.backoff_until.is_none() && l.readable {
            if let Some(result) = self.accept_one(key, cx.last_reading()) {
                return Poll::Ready(result);
            }
        }
        let Some(l) = listener_mut(&mut self.entries, key) else {
            return Poll::Ready(Err(NetError::Closed));
        };
        l.acceptors.push(from);
        self.waiting.insert(from, Wait::Accept(key.slot));
        Poll::Pending
    }

    /// Accepts one connection; `None` when none is ready (or accepting is paused).
    fn accept_one(
        &mut self,
        key: Key,
        now: Instant,
    ) -> Option<Result<(Key, SocketAddr), NetError>> {
        loop {
            let l = listener_mut(&mut self.entries, key)?;
            let socket = l.socket.as_ref()?;
            match socket.accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) {
                Ok((socket, addr)) => {
                    l.backoff = BACKOFF_MIN;
                    let options = l.conn.clone();
                    let peer = addr.as_socket().unwrap_or(l.addr);
                    return Some(
                        self.add_conn(socket, peer, options, None, now)
                            .map(|k| (k, peer)),
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    l.readable = false;
                    return None;
                }
                Err(e) if is_fd_exhaustion(&e) => {
                    let pause = l.backoff;
                    l.backoff = (pause * 2).min(BACKOFF_MAX);
                    let until = now + pause;
                    l.backoff_until = Some(until);
                    let addr = l.addr;
                    self.accept_pauses += 1;
                    self.timers.arm(until, TimerKind::Backoff, key);
                    if !std::mem::replace(&mut self.warned_fd_limit, true) {
                        log::warn!(target: "fibra_net",
                            "accept on {addr}: {e}; accepting pauses (from {pause:?} up to \
                             {BACKOFF_MAX:?}) until descriptors free up. Raise the limit with \
                             `ulimit -n` if this is normal load. (Logged once.)");
                    } else {
                        log::debug!(target: "fibra_net", "accept on {addr}: {e}; pausing {pause:?}");
                    }
                    return None;
                }
                // The peer gave up before we accepted, or a signal: try the next one.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ECONNABORTED | libc::EINTR | libc::EPROTO | libc::EPERM)
                    ) => {}
                Err(e) => return Some(Err(NetError::Io(e))),
            }
        }
    }

    /// Hands ready connections to the listener's waiting acceptors.
    fn serve_acceptors(&mut self, key: Key, cx: &mut Context<'_>) {
        loop {
            let Some(l) = listener_mut(&mut self.entries, key) else {
                return;
            };
            if l.acceptors.is_empty() || l.backoff_until.is_some() || !l.readable {
                return;
            }
            let Some(result) = self.accept_one(key, cx.last_reading()) else {
                return;
            };
            let Some(l) = listener_mut(&mut self.entries, key) else {
                return;
            };
            let id = l.acceptors.remove(0);
            self.waiting.remove(id);
            let result = result.map(|(k, addr)| (self.conn(k), addr));
            let _ = ops::complete_accept(cx, id, result);
        }
    }

    /// A handle to connection `key`.
    pub(crate) fn conn(&self, key: Key) -> Conn {
        Conn::new(self.me.upgrade().expect("the table is alive"), key)
    }

    // ----- connections: setup ------------------------------------------------------------

    fn add_conn(
        &mut self,
        socket: Socket,
        peer: SocketAddr,
        options: ConnOptions,
        connecting: Option<TaskletId>,
        now: Instant,
    ) -> Result<Key, NetError> {
        if options.nodelay {
            // A failure here costs latency, not correctness.
            let _ = socket.set_tcp_nodelay(true);
        }
        let slot = self.entries.vacant_key();
        self.register(&socket, slot)?;
        let key = self.next_key(slot);
        let read_timer = options.read_timeout.and_then(|t| now.checked_add(t));
        if let Some(at) = read_timer {
            self.timers.arm(at, TimerKind::Read, key);
        }
        self.entries.insert(Entry::Conn(Box::new(ConnEntry {
            gen: key.gen,
            socket: Some(socket),
            peer,
            readable: true,
            writable: connecting.is_none(),
            read_closed: false,
            codec: options.framing.codec(),
            options,
            input: InBuf::default(),
            output: OutBuf::default(),
            reader: None,
            connecting,
            read_end: None,
            write_end: None,
            lost: None,
            watchers: Vec::new(),
            drainers: Vec::new(),
            flushers: Vec::new(),
            closer: None,
            closing: false,
            released: false,
            dirty: false,
            held: false,
            last_write: None,
            last_read: now,
            read_timer,
            linger_timer: None,
            read_round: 0,
            read_in_round: 0,
        })));
        Ok(key)
    }

    pub(crate) fn submit_connect(
        &mut self,
        addr: SocketAddr,
        options: ConnOptions,
        from: TaskletId,
        now: Instant,
    ) -> Poll<Result<Key, NetError>> {
        let socket = match Socket::new(
            Domain::for_address(addr),
            Type::STREAM.nonblocking().cloexec(),
            Some(Protocol::TCP),
        ) {
            Ok(s) => s,
            Err(e) => return Poll::Ready(Err(NetError::Io(e))),
        };
        let in_progress = match socket.connect(&SockAddr::from(addr)) {
            Ok(()) => false,
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => true,
            Err(e) => return Poll::Ready(Err(connect_error(e, addr))),
        };
        let waiter = in_progress.then_some(from);
        let key = match self.add_conn(socket, addr, options, waiter, now) {
            Ok(key) => key,
            Err(e) => return Poll::Ready(Err(e)),
        };
        if !in_progress {
            return Poll::Ready(Ok(key));
        }
        self.waiting.insert(from, Wait::Connect(key.slot));
        Poll::Pending
    }

    /// A connecting socket became ready: connected, or failed.
    fn finish_connect(&mut self, key: Key, cx: &mut Context<'_>) {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return;
        };
        let (Some(id), Some(socket)) = (c.connecting, c.socket.as_ref()) else {
            return;
        };
        let error = match socket.take_error() {
            Ok(None) => match socket.peer_addr() {
                Ok(_) => None,
                // Not connected yet (a spurious wake-up): keep waiting.
                Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => return,
                Err(e) => Some(e),
            },
            Ok(Some(e)) | Err(e) => Some(e),
        };
        c.connecting = None;
        self.waiting.remove(id);
        match error {
            None => {
                c.writable = true;
                let conn = self.conn(key);
                let _ = ops::complete_connect(cx, id, Ok(conn));
            }
            Some(e) => {
                let peer = c.peer;
                let err = connect_error(e, peer);
                log::debug!(target: "fibra_net", "connect to {peer}: {err}");
                self.remove(key);
                let _ = ops::complete_connect(cx, id, Err(err));
            }
        }
    }

    pub(crate) fn peer_addr(&mut self, key: Key) -> Option<SocketAddr> {
        conn_mut(&mut self.entries, key).map(|c| c.peer)
    }

    pub(crate) fn local_addr(&mut self, key: Key) -> Option<SocketAddr> {
        let c = conn_mut(&mut self.entries, key)?;
        c.socket.as_ref()?.local_addr().ok()?.as_socket()
    }

    pub(crate) fn lost(&mut self, key: Key) -> Option<Lost> {
        match conn_mut(&mut self.entries, key) {
            Some(c) => c.lost,
            None => Some(Lost::Closed),
        }
    }

    pub(crate) fn queued(&mut self, key: Key) -> usize {
        conn_mut(&mut self.entries, key).map_or(0, |c| c.output.len())
    }

    pub(crate) fn update_options(&mut self, key: Key, f: impl FnOnce(&mut ConnOptions)) {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return;
        };
        let before = c.options.read_timeout;
        f(&mut c.options);
        c.options.max_frame = c.options.max_frame.max(1);
        c.options.send_limit = c.options.send_limit.max(1);
        if c.options.read_timeout != before {
            if let Some(t) = c.options.read_timeout {
                let now = Instant::now();
                c.last_read = now;
                if let Some(at) = now.checked_add(t) {
                    if c.read_timer.is_none_or(|armed| at < armed) {
                        c.read_timer = Some(at);
                        self.timers.arm(at, TimerKind::Read, key);
                    }
                }
            }
        }
    }

    pub(crate) fn set_framing(&mut self, key: Key, framing: &crate::Framing) {
        if let Some(c) = conn_mut(&mut self.entries, key) {
            c.codec = framing.codec();
            c.options.framing = framing.clone();
        }
    }

    // ----- receiving -------------------------------------------------------------------

    pub(crate) fn submit_receive(
        &mut self,
        key: Key,
        from: TaskletId,
        buf: Vec<u8>,
        raw: Option<usize>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Vec<u8>, NetError>> {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return Poll::Ready(Err(NetError::Closed));
        };
        if c.reader.is_some() {
            return Poll::Ready(Err(NetError::Busy));
        }
        match self.attempt_receive(key, buf, raw, cx) {
            Attempt::Done(result) => Poll::Ready(result),
            Attempt::Pending(buf, budget) => {
                let Some(c) = conn_mut(&mut self.entries, key) else {
                    return Poll::Ready(Err(NetError::Closed));
                };
                c.reader = Some(Reader { id: from, buf, raw });
                self.waiting.insert(from, Wait::Receive(key.slot));
                if budget {
                    self.retry.push(key.slot);
                }
                Poll::Pending
            }
        }
    }

    /// Serves the connection's waiting reader, if it has one and its frame is there.
    fn serve_reader(&mut self, key: Key, cx: &mut Context<'_>) {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return;
        };
        let Some(reader) = c.reader.take() else {
            return;
        };
        match self.attempt_receive(key, reader.buf, reader.raw, cx) {
            Attempt::Done(result) => {
                self.waiting.remove(reader.id);
                let _ = ops::complete_receive(cx, reader.id, result);
            }
            Attempt::Pending(buf, budget) => {
                if let Some(c) = conn_mut(&mut self.entries, key) {
                    c.reader = Some(Reader { buf, ..reader });
                    if budget {
                        self.retry.push(key.slot);
                    }
                }
            }
        }
    }

    /// Decodes the next frame into `buf`, reading from the socket as needed.
    fn attempt_receive(
        &mut self,
        key: Key,
        mut buf: Vec<u8>,
        raw: Option<usize>,
        cx: &mut Context<'_>,
    ) -> Attempt {
        loop {
            let Some(c) = conn_mut(&mut self.entries, key) else {
                return Attempt::Done(Err(NetError::Closed));
            };
            if !c.input.is_empty() {
                let decoded = match raw {
                    Some(max) => {
                        c.codec.reset();
                        let n = c.input.len().min(max);
                        buf.clear();
                        buf.extend_from_slice(&c.input.filled()[..n]);
                        c.input.consume(n);
                        Ok(true)
                    }
                    None => match c.codec.decode(c.input.filled(), c.options.max_frame) {
                        Ok(Some(d)) => {
                            buf.clear();
                            buf.extend_from_slice(&c.input.filled()[d.frame]);
                            c.input.consume(d.consumed);
                            Ok(true)
                        }
                        Ok(None) => Ok(false),
                        Err(e) => Err(e),
                    },
                };
                match decoded {
                    Ok(true) => {
                        c.input.release_if_empty(&mut self.pool);
                        return Attempt::Done(Ok(buf));
                    }
                    Ok(false) => {}
                    Err(e) => {
                        let lost = match e {
                            FrameError::TooLong => Lost::TooLong {
                                limit: c.options.max_frame,
                            },
                            FrameError::Invalid(reason) => Lost::Invalid { reason },
                        };
                        log::debug!(target: "fibra_net", "connection from {}: {lost}", c.peer);
                        c.input.clear(&mut self.pool);
                        self.lose(key, lost, cx);
                        return Attempt::Done(Err(lost.into()));
                    }
                }
            }
            let Some(c) = conn_mut(&mut self.entries, key) else {
                return Attempt::Done(Err(NetError::Closed));
            };
            if let Some(end) = c.read_end {
                // A partial frame at the end of the stream can never complete.
                c.input.clear(&mut self.pool);
                return Attempt::Done(Err(end.into()));
            }
            match self.read_step(key, cx) {
                ReadStep::Data => {}
                ReadStep::Wait { budget } => return Attempt::Pending(buf, budget),
                ReadStep::Full => {
                    // Only a user codec can leave a full buffer undecided.
                    let Some(c) = conn_mut(&mut self.entries, key) else {
                        return Attempt::Done(Err(NetError::Closed));
                    };
                    let lost = Lost::TooLong {
                        limit: c.options.max_frame,
                    };
                    c.input.clear(&mut self.pool);
                    self.lose(key, lost, cx);
                    return Attempt::Done(Err(lost.into()));
                }
                ReadStep::Ended => {}
            }
        }
    }

    /// One read from the socket into the connection's input buffer.
    fn read_step(&mut self, key: Key, cx: &mut Context<'_>) -> ReadStep {
        let round = self.round;
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return ReadStep::Ended;
        };
        let Some(socket) = c.socket.as_ref() else {
            return ReadStep::Ended;
        };
        if !c.readable || c.connecting.is_some() {
            return ReadStep::Wait { budget: false };
        }
        if c.read_round != round {
            c.read_round = round;
            c.read_in_round = 0;
        }
        if c.read_in_round >= READ_BUDGET {
            return ReadStep::Wait { budget: true };
        }
        let limit = c.options.max_frame.saturating_add(FRAMING_SLACK);
        let spare = c.input.spare(&mut self.pool, MIN_READ, limit);
        if spare.is_empty() {
            return ReadStep::Full;
        }
        self.reads += 1;
        let spare_len = spare.len();
        let result = loop {
            match (&*socket).read(spare) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => break other,
            }
        };
        match result {
            Ok(0) => {
                c.input.release_if_empty(&mut self.pool);
                self.lose(key, Lost::Eof, cx);
                ReadStep::Ended
            }
            Ok(n) => {
                c.input.commit(n);
                c.read_in_round += n;
                // The peer spoke: an answer to it is not held back by the flush delay.
                c.last_write = None;
                if c.options.read_timeout.is_some() {
                    // The schedule's clock, read after this round's wait.
                    c.last_read = cx.now();
                }
                // A short read drained the socket: wait for the next edge, unless the peer's
                // FIN came in the last one (or the backend cannot tell).
                if n < spare_len && self.short_read_drains && !c.read_closed {
                    c.readable = false;
                }
                ReadStep::Data
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                c.readable = false;
                c.input.release_if_empty(&mut self.pool);
                ReadStep::Wait { budget: false }
            }
            Err(e) => {
                c.input.release_if_empty(&mut self.pool);
                let lost = Lost::from_io(&e);
                log::debug!(target: "fibra_net", "receive from {}: {e}", c.peer);
                self.lose(key, lost, cx);
                ReadStep::Ended
            }
        }
    }

    /// Reads ahead on a connection nobody receives from, to notice the peer closing (for
    /// loss watchers and closing connections). Stops when the input buffer is full.
    fn read_ahead(&mut self, key: Key, cx: &mut Context<'_>) {
        loop {
            let Some(c) = conn_mut(&mut self.entries, key) else {
                return;
            };
            if c.read_end.is_some() || c.reader.is_some() {
                return;
            }
            if c.closing {
                // Nobody will read it: throw it away.
                c.input.clear(&mut self.pool);
            }
            match self.read_step(key, cx) {
                ReadStep::Data => {}
                ReadStep::Wait { budget } => {
                    if budget {
                        self.retry.push(key.slot);
                    }
                    return;
                }
                ReadStep::Full | ReadStep::Ended => return,
            }
        }
    }

    // ----- sending ---------------------------------------------------------------------

    /// Queues `bytes` (framed by the codec when `framed`), or says to wait for room.
    pub(crate) fn send(
        &mut self,
        key: Key,
        bytes: &[u8],
        framed: bool,
        must_fit: bool,
    ) -> Result<SendState, NetError> {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return Err(NetError::Closed);
        };
        if let Some(end) = c.write_end {
            return Err(end.into());
        }
        if c.closing {
            return Err(NetError::Closed);
        }
        let queued = c.output.len();
        let limit = c.options.send_limit;
        if queued >= limit {
            if must_fit {
                return Err(NetError::Full { queued, limit });
            }
            return Ok(SendState::MustWait);
        }
        let out = c.output.tail(&mut self.pool);
        if framed {
            let before = out.len();
            if let Err(e) = c.codec.encode(bytes, out) {
                out.truncate(before);
                c.output.release_if_empty(&mut self.pool);
                return Err(match e {
                    FrameError::TooLong => NetError::TooLong {
                        limit: u32::MAX as usize,
                    },
                    FrameError::Invalid(reason) => NetError::InvalidFrame { reason },
                });
            }
        } else {
            out.extend_from_slice(bytes);
        }
        if !c.dirty && c.connecting.is_none() {
            // With a flush delay, output waits until `delay` after the last write: at most
            // one write per delay; nothing waits when the connection was quiet or its peer
            // spoke since.
            let delay = c.options.flush_delay;
            let hold_limit = HOLD_LIMIT.min(c.options.send_limit / 2);
            if c.held {
                // A timer is armed: only a large output goes before it.
                if c.output.len() >= hold_limit {
                    c.dirty = true;
                    self.dirty.push(key.slot);
                }
                return Ok(SendState::Queued);
            }
            let due = c
                .last_write
                .and_then(|t| t.checked_add(delay))
                .map(|at| flush_grain(self.epoch, at));
            match due {
                Some(at) if at > self.round_time && c.output.len() < hold_limit => {
                    c.held = true;
                    self.timers.arm(at, TimerKind::Flush, key);
                }
                _ => {
                    c.dirty = true;
                    self.dirty.push(key.slot);
                }
            }
        }
        Ok(SendState::Queued)
    }

    pub(crate) fn submit_drain(&mut self, key: Key, from: TaskletId) -> Poll<Result<(), NetError>> {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return Poll::Ready(Err(NetError::Closed));
        };
        if let Some(end) = c.write_end {
            return Poll::Ready(Err(end.into()));
        }
        if c.output.len() < c.options.send_limit {
            return Poll::Ready(Ok(()));
        }
        c.drainers.push(from);
        self.waiting.insert(from, Wait::Drain(key.slot));
        Poll::Pending
    }

    pub(crate) fn submit_flush(&mut self, key: Key, from: TaskletId) -> Poll<Result<(), NetError>> {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return Poll::Ready(Err(NetError::Closed));
        };
        if let Some(end) = c.write_end {
            return Poll::Ready(Err(end.into()));
        }
        if c.output.is_empty() {
            return Poll::Ready(Ok(()));
        }
        // Held output goes now: someone waits for it.
        if !c.dirty && c.connecting.is_none() {
            c.dirty = true;
            self.dirty.push(key.slot);
        }
        c.flushers.push(from);
        self.waiting.insert(from, Wait::Flush(key.slot));
        Poll::Pending
    }

    /// Writes every connection that queued output this round.
    pub(crate) fn flush_all(&mut self, cx: &mut Context<'_>) {
        if self.dirty.is_empty() {
            return;
        }
        let mut dirty = std::mem::replace(&mut self.dirty, std::mem::take(&mut self.dirty_spare));
        for slot in dirty.drain(..) {
            let Some(Entry::Conn(c)) = self.entries.get_mut(slot) else {
                continue;
            };
            c.dirty = false;
            let key = Key { slot, gen: c.gen };
            self.write(key, cx);
        }
        self.dirty_spare = dirty;
    }

    /// Writes the connection's output until done or the socket is full, then tells waiters.
    fn write(&mut self, key: Key, cx: &mut Context<'_>) {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return;
        };
        let Some(socket) = c.socket.as_ref() else {
            return;
        };
        if c.write_end.is_some() || c.connecting.is_some() {
            return;
        }
        let mut failed = None;
        if !c.options.flush_delay.is_zero() {
            // The clock now, not the round's: connections written late in a long round are
            // due later, so the writes spread over the delay instead of bunching.
            c.last_write = Some(Instant::now());
        }
        while c.writable && !c.output.is_empty() {
            let pending = c.output.pending();
            let len = pending.len();
            self.writes += 1;
            match socket.send_with_flags(pending, libc::MSG_NOSIGNAL) {
                Ok(n) => {
                    c.output.advance(n);
                    // A short write filled the socket: the next edge says when it has room.
                    if n < len {
                        c.writable = false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => c.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::debug!(target: "fibra_net", "send to {}: {e}", c.peer);
                    failed = Some(Lost::from_io(&e));
                    break;
                }
            }
        }
        if let Some(lost) = failed {
            self.lose(key, lost, cx);
            self.end_output(key, lost, cx);
            return;
        }
        self.after_write(key, cx);
    }

    /// Wakes the tasklets a write may have made room for; finishes a pending close.
    fn after_write(&mut self, key: Key, cx: &mut Context<'_>) {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return;
        };
        if c.output.len() <= c.options.send_limit / 2 {
            for id in c.drainers.drain(..) {
                self.waiting.remove(id);
                let _ = ops::complete_drain(cx, id, Ok(()));
            }
        }
        if c.output.is_empty() {
            c.output.release_if_empty(&mut self.pool);
            for id in c.flushers.drain(..) {
                self.waiting.remove(id);
                let _ = ops::complete_flush(cx, id, Ok(()));
            }
            if c.closing {
                self.finish_close(key, Some(cx));
            }
        }
    }

    // ----- loss and close --------------------------------------------------------------

    /// The connection is lost (its input ended): tell the reader and the watchers, once.
    fn lose(&mut self, key: Key, lost: Lost, cx: &mut Context<'_>) {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return;
        };
        if c.read_end.is_none() {
            c.read_end = Some(lost);
        }
        if c.lost.is_some() {
            return;
        }
        c.lost = Some(lost);
        log::trace!(target: "fibra_net", "connection with {} lost: {lost}", c.peer);
        if let Some(reader) = c.reader.take() {
            // A waiting reader found no complete frame: nothing more will come.
            self.waiting.remove(reader.id);
            let _ = ops::complete_receive(cx, reader.id, Err(lost.into()));
        }
        for id in c.watchers.drain(..) {
            self.waiting.remove(id);
            let _ = ops::complete_lost(cx, id, lost);
        }
        if matches!(lost, Lost::Reset | Lost::Aborted | Lost::Os(_)) {
            self.end_output(key, lost, cx);
        }
    }

    /// No more output: drop what is queued, fail the writers, close the socket.
    fn end_output(&mut self, key: Key, lost: Lost, cx: &mut Context<'_>) {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return;
        };
        if c.write_end.is_none() {
            c.write_end = Some(lost);
        }
        let dropped = c.output.clear(&mut self.pool);
        if dropped > 0 {
            log::debug!(target: "fibra_net",
                "connection with {} ({lost}): {dropped} queued bytes were not sent", c.peer);
        }
        for id in c.drainers.drain(..) {
            self.waiting.remove(id);
            let _ = ops::complete_drain(cx, id, Err(lost.into()));
        }
        for id in c.flushers.drain(..) {
            self.waiting.remove(id);
            let _ = ops::complete_flush(cx, id, Err(lost.into()));
        }
        if let Some(id) = c.closer.take() {
            self.waiting.remove(id);
            let result = if lost == Lost::Closed {
                Ok(())
            } else {
                Err(lost.into())
            };
            let _ = ops::complete_close(cx, id, result);
        }
        self.close_now(key);
    }

    /// Closes gracefully: no more sends; once the output is written, FIN and close. The
    /// closer (if any) waits for that.
    pub(crate) fn submit_close(
        &mut self,
        key: Key,
        from: TaskletId,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), NetError>> {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return Poll::Ready(Ok(()));
        };
        if c.closer.is_some() {
            return Poll::Ready(Err(NetError::Busy));
        }
        if c.socket.is_none() {
            return Poll::Ready(match c.write_end {
                Some(end) if end != Lost::Closed && !end.can_send() => Err(end.into()),
                _ => Ok(()),
            });
        }
        self.lose(key, Lost::Closed, cx);
        self.begin_close(key, cx.last_reading());
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return Poll::Ready(Ok(()));
        };
        if c.socket.is_none() {
            return Poll::Ready(Ok(()));
        }
        c.closer = Some(from);
        self.waiting.insert(from, Wait::Close(key.slot));
        Poll::Pending
    }

    /// Marks the connection closing; closes it now if nothing is left to write, or arms the
    /// close timeout.
    fn begin_close(&mut self, key: Key, now: Instant) {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return;
        };
        c.closing = true;
        if c.output.is_empty() || c.write_end.is_some() {
            self.finish_close(key, None);
            return;
        }
        if c.linger_timer.is_none() {
            let at = now.checked_add(c.options.close_timeout);
            c.linger_timer = at;
            if let Some(at) = at {
                self.timers.arm(at, TimerKind::Linger, key);
            }
        }
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(key.slot);
        }
    }

    /// The output is written: FIN, then close the socket; the closer is told.
    fn finish_close(&mut self, key: Key, cx: Option<&mut Context<'_>>) {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return;
        };
        if let Some(socket) = c.socket.as_ref() {
            let _ = socket.shutdown(std::net::Shutdown::Write);
            // Unread input would turn the close into a reset that can destroy what we sent
            // before the peer reads it: read what is there, within a bound.
            let mut drained = 0;
            let mut scratch = [0u8; 4096];
            while drained < CLOSE_DRAIN {
                match (&*socket).read(&mut scratch) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => drained += n,
                }
            }
        }
        if c.write_end.is_none() {
            c.write_end = Some(Lost::Closed);
        }
        if let Some(id) = c.closer.take() {
            self.waiting.remove(id);
            match cx {
                Some(cx) => {
                    let _ = ops::complete_close(cx, id, Ok(()));
                }
                None => self.orphans.push((id, Wait::Close(key.slot))),
            }
        }
        self.close_now(key);
    }

    /// Closes the socket now, keeping the entry while handles refer to it.
    fn close_now(&mut self, key: Key) {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return;
        };
        if let Some(socket) = c.socket.take() {
            c.input.clear(&mut self.pool);
            c.output.clear(&mut self.pool);
            let released = c.released;
            self.close_socket(socket);
            if released {
                self.remove(key);
            }
        }
    }

    /// Ends the connection with a RST (a zero linger makes the close drop unsent data),
    /// telling every waiter `lost`.
    fn reset(&mut self, key: Key, lost: Lost, cx: &mut Context<'_>) {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return;
        };
        let Some(socket) = c.socket.as_ref() else {
            return;
        };
        let _ = socket.set_linger(Some(Duration::ZERO));
        self.lose(key, lost, cx);
        self.end_output(key, lost, cx);
    }

    pub(crate) fn abort(&mut self, key: Key, cx: &mut Context<'_>) {
        self.reset(key, Lost::Aborted, cx);
    }

    pub(crate) fn submit_lost(&mut self, key: Key, from: TaskletId) -> Poll<Lost> {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return Poll::Ready(Lost::Closed);
        };
        if let Some(lost) = c.lost {
            return Poll::Ready(lost);
        }
        c.watchers.push(from);
        self.waiting.insert(from, Wait::Lost(key.slot));
        Poll::Pending
    }

    /// The last handle to `key` is gone: close the connection (after its output is written)
    /// or the listener, and remove the entry once its socket is closed.
    pub(crate) fn release(&mut self, key: Key) {
        match self.entries.get_mut(key.slot) {
            Some(Entry::Conn(c)) if c.gen == key.gen => {
                c.released = true;
                if c.socket.is_none() {
                    self.remove(key);
                } else {
                    self.begin_close(key, Instant::now());
                }
            }
            Some(Entry::Listener(l)) if l.gen == key.gen => {
                l.released = true;
                log::debug!(target: "fibra_net", "no longer listening on {}", l.addr);
                self.remove(key);
            }
            _ => {}
        }
    }

    /// Removes an entry, closing its socket; its waiters (there should be none) are told
    /// `Closed` at the next poll.
    fn remove(&mut self, key: Key) {
        if self.entries.get(key.slot).map(Entry::gen) != Some(key.gen) {
            return;
        }
        let entry = self.entries.remove(key.slot);
        let (socket, waiters) = match entry {
            Entry::Listener(l) => (
                l.socket,
                l.acceptors
                    .into_iter()
                    .map(|id| (id, Wait::Accept(key.slot)))
                    .collect::<Vec<_>>(),
            ),
            Entry::Conn(mut c) => {
                c.input.clear(&mut self.pool);
                c.output.clear(&mut self.pool);
                let mut waiters = Vec::new();
                if let Some(r) = c.reader.take() {
                    waiters.push((r.id, Wait::Receive(key.slot)));
                }
                if let Some(id) = c.connecting {
                    waiters.push((id, Wait::Connect(key.slot)));
                }
                if let Some(id) = c.closer {
                    waiters.push((id, Wait::Close(key.slot)));
                }
                waiters.extend(c.watchers.iter().map(|&id| (id, Wait::Lost(key.slot))));
                waiters.extend(c.drainers.iter().map(|&id| (id, Wait::Drain(key.slot))));
                waiters.extend(c.flushers.iter().map(|&id| (id, Wait::Flush(key.slot))));
                (c.socket, waiters)
            }
        };
        if let Some(socket) = socket {
            self.close_socket(socket);
        }
        for (id, wait) in waiters {
            self.waiting.remove(id);
            self.orphans.push((id, wait));
        }
    }

    /// Withdraws whatever tasklet `id` waits for (it was killed, or its op timed out).
    pub(crate) fn forget(&mut self, id: TaskletId) {
        let Some(wait) = self.waiting.remove(id) else {
            return;
        };
        self.orphans.retain(|&(o, _)| o != id);
        match wait {
            Wait::Accept(slot) => {
                if let Some(Entry::Listener(l)) = self.entries.get_mut(slot) {
                    l.acceptors.retain(|&a| a != id);
                }
            }
            Wait::Connect(slot) => {
                if let Some(Entry::Conn(c)) = self.entries.get_mut(slot) {
                    if c.connecting == Some(id) {
                        c.connecting = None;
                        let key = Key { slot, gen: c.gen };
                        log::debug!(target: "fibra_net", "connect to {} withdrawn", c.peer);
                        self.remove(key);
                    }
                }
            }
            Wait::Receive(slot) => {
                if let Some(Entry::Conn(c)) = self.entries.get_mut(slot) {
                    if c.reader.as_ref().is_some_and(|r| r.id == id) {
                        c.reader = None;
                    }
                }
            }
            Wait::Drain(slot) | Wait::Flush(slot) | Wait::Close(slot) | Wait::Lost(slot) => {
                if let Some(Entry::Conn(c)) = self.entries.get_mut(slot) {
                    c.drainers.retain(|&w| w != id);
                    c.flushers.retain(|&w| w != id);
                    c.watchers.retain(|&w| w != id);
                    if c.closer == Some(id) {
                        c.closer = None;
                    }
                }
            }
        }
    }

    // ----- polling -----------------------------------------------------------------------

    /// Serves the round's readiness events and what fell due.
    pub(crate) fn poll(&mut self, events: Events<'_>, cx: &mut Context<'_>) {
        self.round += 1;
        let mut events = events.iter().peekable();
        if events.peek().is_some() || self.timers.next_deadline().is_some() {
            // The schedule's clock, read once per round after its wait.
            self.round_time = cx.now();
        }
        for event in events {
            self.on_event(event, cx);
        }
        self.expire_timers(cx);
        self.serve_retries(cx);
        self.tell_orphans(cx);
    }

    fn on_event(&mut self, event: Event, cx: &mut Context<'_>) {
        let slot = event.key();
        let Some(entry) = self.entries.get_mut(slot) else {
            return;
        };
        let key = Key {
            slot,
            gen: entry.gen(),
        };
        match entry {
            Entry::Listener(l) => {
                l.readable |= event.is_readable();
                self.serve_acceptors(key, cx);
            }
            Entry::Conn(c) => {
                let readable = event.is_readable() || event.is_read_closed();
                c.readable |= readable;
                c.read_closed |= event.is_read_closed();
                c.writable |= event.is_writable();
                if c.connecting.is_some() {
                    self.finish_connect(key, cx);
                    return;
                }
                // Held output waits for its timer, whatever the socket says.
                if event.is_writable() && !c.output.is_empty() && !c.dirty && !c.held {
                    c.dirty = true;
                    self.dirty.push(slot);
                }
                if readable {
                    if c.reader.is_some() {
                        self.serve_reader(key, cx);
                    } else if !c.watchers.is_empty() || c.closing {
                        self.read_ahead(key, cx);
                    }
                }
            }
        }
    }

    fn serve_retries(&mut self, cx: &mut Context<'_>) {
        if self.retry.is_empty() {
            return;
        }
        let retry = std::mem::take(&mut self.retry);
        for &slot in &retry {
            let Some(Entry::Conn(c)) = self.entries.get(slot) else {
                continue;
            };
            let key = Key { slot, gen: c.gen };
            if c.reader.is_some() {
                self.serve_reader(key, cx);
            } else {
                self.read_ahead(key, cx);
            }
        }
        if self.retry.is_empty() {
            // Keep the allocation.
            self.retry = retry;
            self.retry.clear();
        }
    }

    fn tell_orphans(&mut self, cx: &mut Context<'_>) {
        for (id, wait) in self.orphans.drain(..) {
            match wait {
                Wait::Accept(_) => {
                    let _ = ops::complete_accept(cx, id, Err(NetError::Closed));
                }
                Wait::Connect(_) => {
                    let _ = ops::complete_connect(cx, id, Err(NetError::Closed));
                }
                Wait::Receive(_) => {
                    let _ = ops::complete_receive(cx, id, Err(NetError::Closed));
                }
                Wait::Drain(_) => {
                    let _ = ops::complete_drain(cx, id, Err(NetError::Closed));
                }
                Wait::Flush(_) => {
                    let _ = ops::complete_flush(cx, id, Err(NetError::Closed));
                }
                Wait::Close(_) => {
                    let _ = ops::complete_close(cx, id, Ok(()));
                }
                Wait::Lost(_) => {
                    let _ = ops::complete_lost(cx, id, Lost::Closed);
                }
            }
        }
    }

    fn expire_timers(&mut self, cx: &mut Context<'_>) {
        if self.timers.next_deadline().is_none() {
            return;
        }
        let now = self.round_time;
        while let Some((at, kind, key)) = self.timers.pop_due(now) {
            match kind {
                TimerKind::Read => self.read_timer(key, at, now, cx),
                TimerKind::Linger => {
                    let Some(c) = conn_mut(&mut self.entries, key) else {
                        continue;
                    };
                    if c.linger_timer != Some(at) || c.socket.is_none() {
                        continue;
                    }
                    log::debug!(target: "fibra_net",
                        "close of connection with {}: output not written within {:?}; reset",
                        c.peer, c.options.close_timeout);
                    self.reset(key, Lost::TimedOut, cx);
                }
                TimerKind::Flush => {
                    let Some(c) = conn_mut(&mut self.entries, key) else {
                        continue;
                    };
                    c.held = false;
                    if !c.dirty && !c.output.is_empty() && c.connecting.is_none() {
                        c.dirty = true;
                        self.dirty.push(key.slot);
                    }
                }
                TimerKind::Backoff => {
                    let Some(l) = listener_mut(&mut self.entries, key) else {
                        continue;
                    };
                    if l.backoff_until == Some(at) {
                        l.backoff_until = None;
                        l.readable = true;
                        self.serve_acceptors(key, cx);
                    }
                }
            }
        }
    }

    fn read_timer(&mut self, key: Key, at: Instant, now: Instant, cx: &mut Context<'_>) {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return;
        };
        if c.read_timer != Some(at) {
            return;
        }
        c.read_timer = None;
        let Some(timeout) = c.options.read_timeout else {
            return;
        };
        if c.read_end.is_some() {
            return;
        }
        // Bytes waiting in the socket count as activity, read or not.
        if c.readable && c.reader.is_none() {
            c.last_read = now;
        }
        match c.last_read.checked_add(timeout) {
            Some(due) if due > now => {
                c.read_timer = Some(due);
                self.timers.arm(due, TimerKind::Read, key);
            }
            Some(_) => {
                log::debug!(target: "fibra_net",
                    "connection with {}: nothing received for {timeout:?}", c.peer);
                self.lose(key, Lost::TimedOut, cx);
            }
            None => {}
        }
    }

    /// Handles dropped while the table was borrowed.
    pub(crate) fn release_deferred(&mut self, deferred: &RefCell<Vec<Key>>) {
        loop {
            let Some(key) = deferred.borrow_mut().pop() else {
                return;
            };
            self.release(key);
        }
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        for entry in self.entries.drain() {
            let socket = match entry {
                Entry::Listener(l) => l.socket,
                Entry::Conn(c) => c.socket,
            };
            if let (Some(socket), Some(registry)) = (socket, &self.registry) {
                let _ = registry.deregister(socket.as_fd());
            }
        }
    }
}
