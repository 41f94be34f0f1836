//! The table of sockets: every listener and connection the plugin serves, their buffers,
//! readiness, parked tasklets and timers. Shared by the plugin and the handles through
//! [`Shared`](crate::engine::shared::Shared).
//!
//! One file per concern, each an `impl Table` block:
//! - [`waiters`]: parking, completing and withdrawing tasklets (exactly once, by a type);
//! - [`listener`]: listening, accepting, the back-off when descriptors run out;
//! - [`connect`]: connecting without blocking;
//! - [`input`]: reading and decoding frames for the one receiver;
//! - [`output`]: queueing, the flush delay, writing at the end of the round;
//! - [`groups`]: fan-out: a group's batch, sealed into one segment shared by its members;
//! - [`lifecycle`]: a connection's states ([`ConnState`]), loss, close, reset, removal;
//! - [`timers`]: read timeouts, close timeouts, accept back-off, flush delays;
//! - [`tls`]: the TLS filter between a connection's socket and its buffers (the rustls
//!   session, and the table's TLS steps);
//! - [`watch`]: input watches, a job spawned when input comes to a connection that no
//!   tasklet serves while it is idle;
//! - [`round`]: one poll round: events, timers, retries, orphans.
//!
//! The rules it keeps:
//! - Each socket is registered once, edge-triggered, with its slab slot as key; readiness bits
//!   live in the entry. A system call is tried first; a tasklet parks only after it said
//!   `WouldBlock` (or a short read or write showed the kernel buffer drained or full).
//! - An entry is removed once: when its socket is closed and no handle refers to it.
//! - Every parked tasklet is a [`Parked`](waiters::Parked), completed exactly once.

mod connect;
mod direct;
mod groups;
mod input;
mod lifecycle;
mod listener;
mod output;
mod round;
mod timers;
mod tls;
mod waiters;
mod watch;

use std::net::SocketAddr;
use std::rc::Weak;
use std::time::Instant;

use fibra_rt::{Context, Registry};
use slab::Slab;

use self::timers::TimerKind;
use crate::api::conn::Conn;
use crate::api::error::{Lost, NetError};
use crate::api::options::ConnOptions;
use crate::api::stats::{Counters, NetStats};
use crate::engine::buffer::BufPool;
use crate::engine::codec_door::{CodecState, Site};
use crate::engine::shared::{Key, Shared};
use crate::engine::sys::{socket, Socket, Sys};

pub(crate) use lifecycle::ConnState;
pub(crate) use watch::{Job, NextJob};

use groups::{GroupEntry, Membership};
use input::Input;
use listener::ListenerEntry;
use output::Output;
use timers::Timers;
use waiters::{Parked, Waiters};

#[derive(Debug)]
enum Entry {
    Listener(Box<ListenerEntry>),
    Conn(Box<ConnEntry>),
    /// A group has no socket; it shares the table for its key and its handle's release.
    Group(Box<GroupEntry>),
}

impl Entry {
    fn gen(&self) -> u64 {
        match self {
            Entry::Listener(l) => l.gen,
            Entry::Conn(c) => c.gen,
            Entry::Group(g) => g.gen,
        }
    }
}

/// Work a handle asked for where no context was at hand (`Conn::abort`, a group cutting a
/// member off or closing its members): done at the start of the next poll or flush.
#[derive(Clone, Copy, Debug)]
enum Deferred {
    /// Reset the connection, telling its tasklets this loss.
    Reset(Lost),
    /// Close the connection gracefully, as `close` does (without a closer).
    Close,
}

/// A connection: where it is in its life, and its input and output sides, kept apart so
/// that a helper can borrow one side while the other is in use.
///
/// Laid out in the order written (`repr(C)`, as are `Input`, `Output` and `ConnOptions`),
/// so that what a receive and a send read on every message sits together: the input's hot
/// fields (at its end), the generation, TLS, groups and socket, then the output's hot fields
/// (at its start), and the options' (at theirs). With a thousand connections served in turn
/// their entries do not stay in the cache between two messages, so each line a message
/// touches is a miss (BENCHMARKS.md, "Echo: the cache footprint").
#[derive(Debug)]
#[repr(C)]
struct ConnEntry {
    input: Input,
    gen: u64,
    /// The TLS filter, on a TLS connection.
    tls: Option<Box<tls::Tls>>,
    /// The groups it is a member of.
    groups: Vec<Membership>,
    /// Connecting, open, closing or closed; holds the socket while there is one.
    state: ConnState,
    output: Output,
    options: ConnOptions,
    peer: SocketAddr,
    /// No handle refers to it: removed once its socket is closed.
    released: bool,
    /// The first loss, as told to watchers.
    lost: Option<Lost>,
    /// Tasklets waiting for the loss.
    watchers: Vec<Parked>,
}

impl ConnEntry {
    /// Input has news for a watch: the socket is not known to be drained, or the stream
    /// ended, or the connection was lost. What fires an armed watch (`watch.rs`).
    fn input_has_news(&self) -> bool {
        self.input.readable || self.input.end.is_some() || self.lost.is_some()
    }

    /// Nothing is left to write: the queue is empty, and rustls holds no record.
    fn output_idle(&self) -> bool {
        self.output.is_empty() && self.tls.as_ref().is_none_or(|t| !t.wants_write())
    }
}

/// The socket table. See the module documentation.
#[derive(Debug)]
pub(crate) struct Table {
    /// The schedule's reactor, for this plugin; taken from the first context the table sees.
    registry: Option<Registry>,
    /// Where sockets come from: the kernel, or a simulated network.
    sys: Sys,
    /// A short read means the socket is drained (the reactor reports a peer's FIN).
    short_read_drains: bool,
    entries: Slab<Entry>,
    next_gen: u64,
    pool: BufPool,
    /// Where a receive without framing reads before its bytes go to the tasklet's buffer
    /// (`direct.rs`): one buffer for every connection, so it stays in the cache.
    scratch: Box<[u8]>,
    /// Connections with output to write at the end of the round.
    dirty: Vec<usize>,
    dirty_spare: Vec<usize>,
    /// Connections whose reader stopped at the round's read budget.
    retry: Vec<usize>,
    timers: Timers,
    waiters: Waiters,
    /// Groups sent to this round, to seal at its end.
    sealing: Vec<Key>,
    /// Members found over their send limit during a seal (reused).
    cut: Vec<(Key, usize, usize)>,
    deferred: Vec<(Key, Deferred)>,
    /// Ends of input read by a receive served without a context (`try_receive_at_once`):
    /// told at the next poll or flush, before anything deferred after them (a close the
    /// ended session asks for must not be told in their place).
    ended_by_calls: Vec<(Key, Lost)>,
    /// Tasklets waiting for a connection's close, both ways ([`ops::OnClosed`]): few (a
    /// half-close kept open), so kept here rather than in every entry.
    closing_watchers: Vec<(Key, Parked)>,
    round: u64,
    /// The origin of the flush delay's millisecond grain.
    epoch: Instant,
    /// The time of the last round that had work (the schedule's clock, read after its wait):
    /// the time of this round's timers and sends.
    round_time: Instant,
    warned_fd_limit: bool,
    /// A graceful stop began: no new listener or connection.
    draining: bool,
    counters: Counters,
    /// Armed input watches, and jobs to drop off the table.
    watches: watch::Watches,
    /// The `Shared` this table lives in, to make handles.
    me: Weak<Shared>,
}

fn conn_mut(entries: &mut Slab<Entry>, key: Key) -> Option<&mut ConnEntry> {
    match entries.get_mut(key.slot) {
        Some(Entry::Conn(c)) if c.gen == key.gen => Some(c),
        _ => None,
    }
}

impl Table {
    pub(crate) fn new(me: Weak<Shared>, sys: Sys) -> Table {
        Table {
            me,
            registry: None,
            sys,
            short_read_drains: false,
            entries: Slab::new(),
            next_gen: 0,
            pool: BufPool::default(),
            scratch: vec![0; crate::engine::buffer::BUF_SIZE].into_boxed_slice(),
            dirty: Vec::new(),
            dirty_spare: Vec::new(),
            retry: Vec::new(),
            timers: Timers::default(),
            waiters: Waiters::default(),
            sealing: Vec::new(),
            cut: Vec::new(),
            deferred: Vec::new(),
            ended_by_calls: Vec::new(),
            closing_watchers: Vec::new(),
            round: 0,
            epoch: fibra_rt::time::now(),
            round_time: fibra_rt::time::now(),
            warned_fd_limit: false,
            draining: false,
            counters: Counters::default(),
            watches: watch::Watches::default(),
        }
    }

    pub(crate) fn stats(&self) -> NetStats {
        let mut stats = NetStats {
            sockets: self.counters.sockets,
            waiting: self.waiters.len(),
            pooled_buffers: self.pool.pooled(),
            timers: self.timers.len(),
            reads: self.counters.reads,
            writes: self.counters.writes,
            accept_pauses: self.counters.accept_pauses,
            watching: self.watching(),
            idle_workers: self.idle_workers(),
            ..NetStats::default()
        };
        for (_, entry) in &self.entries {
            match entry {
                Entry::Listener(_) => stats.listeners += 1,
                Entry::Conn(c) => {
                    stats.connections += 1;
                    stats.queued += c.output.queued();
                }
                Entry::Group(_) => stats.groups += 1,
            }
        }
        stats
    }

    /// Takes the schedule's registry, when the plugin is added to a schedule.
    pub(crate) fn attach(&mut self, registry: Registry) {
        if self.registry.is_none() {
            self.short_read_drains = registry.reports_read_closed();
            self.registry = Some(registry);
        }
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

    /// A handle to connection `key`.
    pub(crate) fn conn(&self, key: Key) -> Conn {
        Conn::new(self.me.upgrade().expect("the table is alive"), key)
    }

    fn register(&mut self, socket: &Socket, slot: usize) -> std::io::Result<()> {
        let Some(registry) = &self.registry else {
            return Err(std::io::Error::other(
                "the network plugin is not in a schedule yet: add it with Schedule::add_plugin",
            ));
        };
        socket::register(socket, registry, slot)?;
        self.counters.sockets += 1;
        Ok(())
    }

    fn close_socket(&mut self, socket: Socket) {
        if let Some(registry) = &self.registry {
            if let Err(e) = socket::deregister(&socket, registry) {
                log::debug!(target: "fibra_net", "removing a socket from the poller: {e}");
            }
        }
        self.counters.sockets -= 1;
        drop(socket);
    }

    // ----- what a handle asks ---------------------------------------------------------

    pub(crate) fn peer_addr(&mut self, key: Key) -> Option<SocketAddr> {
        conn_mut(&mut self.entries, key).map(|c| c.peer)
    }

    pub(crate) fn local_addr(&mut self, key: Key) -> Option<SocketAddr> {
        let c = conn_mut(&mut self.entries, key)?;
        socket::local_addr(c.state.socket()?)
    }

    pub(crate) fn lost(&mut self, key: Key) -> Option<Lost> {
        let pending = &self.ended_by_calls;
        match conn_mut(&mut self.entries, key) {
            // An end read by a call is the loss already, though not told yet.
            Some(c) => c.lost.or_else(|| {
                pending
                    .iter()
                    .find(|&&(k, _)| k == key)
                    .map(|&(_, lost)| lost)
            }),
            None => Some(Lost::Closed),
        }
    }

    pub(crate) fn queued(&mut self, key: Key) -> usize {
        conn_mut(&mut self.entries, key).map_or(0, |c| c.output.queued())
    }

    /// `Conn::shutdown_write`: FIN now, input still read; `false` when it cannot be done now
    /// (output still queued, TLS, not open).
    pub(crate) fn shutdown_write(&mut self, key: Key) -> bool {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return false;
        };
        if !c.output_idle() || c.output.end.is_some() {
            return false;
        }
        let ConnState::Open { socket } = &c.state else {
            return false;
        };
        // Over TLS the half-close is `close_notify` first (without it the peer sees a
        // truncation), then FIN.
        if let Some(tls) = c.tls.as_mut() {
            match tls.shutdown_write(socket) {
                None => return false,
                Some(true) => {}
                Some(false) => {
                    // Queued, not all written: it goes with the output, as a close's does.
                    self.mark_dirty(key);
                    return false;
                }
            }
        }
        crate::engine::sys::socket::shutdown_write(socket);
        true
    }

    pub(crate) fn received(&mut self, key: Key) -> usize {
        conn_mut(&mut self.entries, key).map_or(0, |c| c.input.buffered())
    }

    pub(crate) fn update_options(&mut self, key: Key, f: impl FnOnce(&mut ConnOptions)) {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return;
        };
        let before = c.options.read_timeout;
        let (delay, limit) = (c.options.flush_delay, c.options.send_limit);
        f(&mut c.options);
        c.options.max_frame = c.options.max_frame.max(1);
        c.options.send_limit = c.options.send_limit.max(1);
        if c.options.flush_delay != delay || c.options.send_limit != limit {
            // Output held by the old delay or limit may not be held under the new ones.
            let shorter = c.options.flush_delay < delay;
            self.options_changed(key, shorter);
        }
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return;
        };
        if c.options.read_timeout != before {
            match c.options.read_timeout {
                Some(t) => self.restart_read_timer(key, t),
                // Set off (a login done): its timer goes now, not when it would have fired.
                None => match c.input.deadline {
                    // An input deadline keeps its own time.
                    Some(d) => {
                        c.input.timer = Some(d);
                        self.timers.arm(d, TimerKind::Read, key);
                    }
                    None => {
                        c.input.timer = None;
                        self.timers.disarm(TimerKind::Read, key);
                    }
                },
            }
        }
    }

    pub(crate) fn set_framing(&mut self, key: Key, framing: &crate::Framing) {
        if let Some(c) = conn_mut(&mut self.entries, key) {
            c.input.codec = CodecState::new(framing, Site::Conn(c.peer));
            c.options.framing = framing.clone();
            if let Some(failure) = c.input.codec.failure() {
                // The codec's factory panicked: the connection ends at the next poll.
                self.deferred
                    .push((key, Deferred::Reset(Lost::Codec(failure))));
            }
        }
    }

    /// Resets the connection at the next poll or flush, where its waiters can be told
    /// [`Lost::Aborted`] (`Conn::abort`, which has no context).
    pub(crate) fn defer_abort(&mut self, key: Key) {
        self.deferred.push((key, Deferred::Reset(Lost::Aborted)));
    }

    /// Closes the connection gracefully at the next poll or flush (`Conn::close`).
    pub(crate) fn defer_close(&mut self, key: Key) {
        self.deferred.push((key, Deferred::Close));
    }

    /// Does what handles asked for without a context.
    pub(crate) fn run_deferred(&mut self, cx: &mut Context<'_>) {
        // Oldest first, and before the closes and resets asked since: the op path tells such
        // an end at once, inside the read.
        if !self.ended_by_calls.is_empty() {
            for (key, lost) in std::mem::take(&mut self.ended_by_calls) {
                self.lose(key, lost, cx);
                self.fire_watch(key, cx);
            }
        }
        while let Some((key, work)) = self.deferred.pop() {
            match work {
                Deferred::Reset(lost) => self.reset(key, lost, cx),
                Deferred::Close => {
                    self.lose(key, Lost::Closed, cx);
                    // The round's clock, read after the wait: the close was asked between
                    // ticks, maybe after a long quiet spell that the last reading predates.
                    self.begin_close(key, cx.now());
                }
            }
            // A watched connection hears of it (after an earlier loss, `lose` did not tell).
            self.fire_watch(key, cx);
        }
    }

    /// Fails with `Closed` unless `key` is a connection.
    fn conn_entry(&mut self, key: Key) -> Result<&mut ConnEntry, NetError> {
        conn_mut(&mut self.entries, key).ok_or_else(closed)
    }
}

/// `NetError::Closed`, made only when needed: `ok_or(NetError::Closed)` builds the error and
/// drops it (a call into its drop glue) on every success, twice per echoed message.
pub(super) fn closed() -> NetError {
    NetError::Closed
}

impl Drop for Table {
    fn drop(&mut self) {
        for entry in self.entries.drain() {
            let socket = match entry {
                Entry::Listener(l) => l.socket,
                Entry::Conn(c) => c.state.into_socket(),
                Entry::Group(_) => None,
            };
            if let (Some(socket), Some(registry)) = (socket, &self.registry) {
                let _ = socket::deregister(&socket, registry);
            }
        }
    }
}
