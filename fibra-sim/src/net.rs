//! `Net`: the network in memory. Sockets of every host, the segments on the wire (each due
//! at a simulated instant), the links' latencies and cuts, and the faults.
//!
//! A TCP model small enough to read: a connect sends a SYN, a listener's host answers with a
//! SYN-ACK (or a refusal, or drops it when its accept queue is full and the client tries
//! again); a write puts its bytes on the wire (in one segment or several) and counts them
//! against the send buffer until the reader reads them and a window update comes back; a
//! shutdown or close sends a FIN after them; a close with unread input, a zero linger, or
//! a segment for a socket that no longer exists, a RST. Segments of one connection arrive
//! in order. A cut link holds its segments (TCP retransmits) until it is repaired, or until
//! [`Faults::give_up`] passes and the sender fails with `ETIMEDOUT`. A segment that arrives
//! while the way back is cut (a one-way partition) gets no ACK: its sender fails the same
//! way unless the way back is repaired in time.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{self, IoSlice};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use fibra_net::sim::SimFd;
use fibra_rt::Event;

use crate::trace::{Entry, Trace, What};
use crate::{Faults, Latency, Rng};

/// SYNs a connect sends to a full accept queue before it gives up: Linux's
/// `tcp_syn_retries` (the waits 1, 2, 4 ... 32 s, then 64 s: about 127 s in all).
const SYN_RETRIES: u32 = 6;

/// The first wait before a zero-window probe, and the longest: a writer whose peer's window
/// is shut probes it (as the kernel's persist timer does), so that a peer whose host crashed
/// or was cut off is found (the probe is held, and the writer fails with `ETIMEDOUT` after
/// [`Faults::give_up`](crate::Faults::give_up)) where nothing else would be on the wire.
const PERSIST_MIN: Duration = Duration::from_millis(200);
const PERSIST_MAX: Duration = Duration::from_secs(60);

/// One host's network side.
#[derive(Debug)]
pub(crate) struct HostNet {
    pub(crate) ip: IpAddr,
    pub(crate) up: bool,
    /// Bumped at each crash: sockets of an older life are gone.
    pub(crate) life: u32,
    pub(crate) events: VecDeque<Event>,
    next_port: u16,
    open: usize,
}

#[derive(Debug)]
enum Kind {
    Listener {
        backlog: usize,
        queue: VecDeque<SimFd>,
    },
    Stream(Box<Stream>),
}

#[derive(Debug, PartialEq)]
enum Phase {
    Connecting,
    Established,
    /// The connect failed, or the connection died: errno for the next call.
    Failed(i32),
}

#[derive(Debug)]
struct Stream {
    peer_addr: SocketAddr,
    peer: Option<SimFd>,
    phase: Phase,
    /// An error the next read or write reports once (then reads say 0, writes `EPIPE`).
    error: Option<i32>,
    dead: bool,
    rx: VecDeque<u8>,
    rx_fin: bool,
    /// Bytes written and not yet read by the peer (on the wire or in its buffer).
    in_flight: usize,
    send_buffer: usize,
    wr_shut: bool,
    linger0: bool,
    /// The last write was refused or short: the next room is announced with an event.
    want_write: bool,
    /// When this socket's last segment arrives: the next arrives no earlier.
    last_arrival: Duration,
    /// TCP keepalive: probe after this long without traffic.
    keepalive: Option<Duration>,
    /// The wait before the next zero-window probe while the peer's window is shut (a
    /// writer that filled it): doubled after each, from [`PERSIST_MIN`] to [`PERSIST_MAX`].
    persist: Duration,
    /// When traffic last went either way.
    last_activity: Duration,
}

#[derive(Debug)]
struct Sock {
    host: usize,
    life: u32,
    local: SocketAddr,
    key: Option<usize>,
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Seg {
    Syn {
        client: SimFd,
        dst: SocketAddr,
        tries: u32,
    },
    SynAck {
        server: SimFd,
    },
    Refused {
        errno: i32,
    },
    Data(Vec<u8>),
    Fin,
    Rst,
    Window(usize),
    /// A handshake that found the accept queue full tries to join it (to the server itself).
    Join {
        listener: SimFd,
        tries: u32,
    },
    /// A keepalive probe, and its answer.
    Probe,
    ProbeAck,
}

impl Seg {
    fn name(&self) -> &'static str {
        match self {
            Seg::Syn { .. } => "SYN",
            Seg::SynAck { .. } => "SYN-ACK",
            Seg::Refused { .. } => "REFUSED",
            Seg::Data(_) => "DATA",
            Seg::Fin => "FIN",
            Seg::Rst => "RST",
            Seg::Window(_) => "WINDOW",
            Seg::Join { .. } => "JOIN",
            Seg::Probe => "PROBE",
            Seg::ProbeAck => "PROBE-ACK",
        }
    }
}

/// A segment on the wire: from `src` (host, fd) to `to` (an fd of `dst`, or for a SYN the
/// listener found at arrival).
#[derive(Clone, Debug)]
struct Segment {
    src_host: usize,
    /// The sender's life (a crash ends one): a life that is over retransmits nothing.
    src_life: u32,
    src: SimFd,
    dst_host: Option<usize>,
    to: SimFd,
    sent: Duration,
    seg: Seg,
}

/// The network: see the module documentation.
#[derive(Debug)]
pub(crate) struct Net {
    pub(crate) now: Duration,
    pub(crate) rng: Rng,
    pub(crate) trace: Trace,
    pub(crate) faults: Faults,
    pub(crate) hosts: Vec<HostNet>,
    socks: BTreeMap<SimFd, Sock>,
    next_fd: SimFd,
    wire: BTreeMap<(Duration, u64), Segment>,
    seq: u64,
    /// Segments held on cut links, in the order they were sent.
    held: Vec<Segment>,
    /// Cut links, (from, to).
    cut: BTreeSet<(usize, usize)>,
    /// Streams whose data or FIN arrived while the way back was cut (its ACKs are lost, so
    /// TCP retransmits until it gives up): stream -> (its host, its peer's host, since).
    unacked: BTreeMap<SimFd, (usize, usize, Duration)>,
    latency: BTreeMap<(usize, usize), Latency>,
    default_latency: Latency,
}

fn err(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

fn would_block() -> io::Error {
    io::Error::from(io::ErrorKind::WouldBlock)
}

fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EAGAIN)
}

impl Net {
    pub(crate) fn new(seed: u64, keep: usize) -> Net {
        let mut rng = Rng::new(seed);
        let default_latency = Latency::random(&mut rng);
        Net {
            now: Duration::ZERO,
            rng,
            trace: Trace::new(keep),
            faults: Faults::none(),
            hosts: Vec::new(),
            socks: BTreeMap::new(),
            next_fd: 3,
            wire: BTreeMap::new(),
            seq: 0,
            held: Vec::new(),
            cut: BTreeSet::new(),
            unacked: BTreeMap::new(),
            latency: BTreeMap::new(),
            default_latency,
        }
    }

    pub(crate) fn add_host(&mut self, ip: IpAddr) -> usize {
        self.hosts.push(HostNet {
            ip,
            up: true,
            life: 0,
            events: VecDeque::new(),
            next_port: 49152,
            open: 0,
        });
        self.hosts.len() - 1
    }

    pub(crate) fn log(&mut self, host: usize, what: What) {
        let at = self.now;
        self.trace.push(Entry { at, host, what });
    }

    pub(crate) fn set_latency(&mut self, from: usize, to: usize, latency: Latency) {
        self.latency.insert((from, to), latency);
    }

    pub(crate) fn set_default_latency(&mut self, latency: Latency) {
        self.default_latency = latency;
    }

    fn host_of_ip(&self, ip: IpAddr) -> Option<usize> {
        self.hosts.iter().position(|h| h.ip == ip)
    }

    /// A socket of `host`'s current life.
    fn sock(&mut self, host: usize, life: u32, fd: SimFd) -> Option<&mut Sock> {
        self.socks
            .get_mut(&fd)
            .filter(|s| s.host == host && s.life == life)
    }

    fn emit(&mut self, fd: SimFd, readable: bool, writable: bool, closed: bool, error: bool) {
        let Some(s) = self.socks.get(&fd) else {
            return;
        };
        if let Some(key) = s.key {
            let host = s.host;
            self.hosts[host]
                .events
                .push_back(Event::new(key, readable, writable, closed, error));
        }
    }

    fn alloc_fd(&mut self) -> SimFd {
        self.next_fd += 1;
        self.next_fd
    }

    fn open_fd(&mut self, host: usize) -> io::Result<()> {
        if self.hosts[host].open >= self.faults.fd_limit {
            return Err(err(libc::EMFILE));
        }
        self.hosts[host].open += 1;
        Ok(())
    }

    fn ephemeral(&mut self, host: usize) -> u16 {
        let h = &mut self.hosts[host];
        let port = h.next_port;
        h.next_port = if port == u16::MAX { 49152 } else { port + 1 };
        port
    }

    // ----- the wire ----------------------------------------------------------------

    fn latency(&mut self, from: usize, to: usize) -> Duration {
        let l = *self
            .latency
            .get(&(from, to))
            .unwrap_or(&self.default_latency);
        l.sample(&mut self.rng)
    }

    fn put(&mut self, at: Duration, segment: Segment) {
        self.seq += 1;
        self.wire.insert((at, self.seq), segment);
    }

    /// Puts `seg`, sent now from (`src_host`, `src`) to `to` on `dst_host`, on the wire, to
    /// arrive `at`.
    fn send_at(
        &mut self,
        at: Duration,
        (src_host, src): (usize, SimFd),
        (dst_host, to): (usize, SimFd),
        seg: Seg,
    ) {
        let segment = Segment {
            src_host,
            src_life: self.hosts[src_host].life,
            src,
            dst_host: Some(dst_host),
            to,
            sent: self.now,
            seg,
        };
        self.put(at, segment);
    }

    /// Sends `seg` from socket `src` to its peer `to` on `dst_host`, after what `src` sent
    /// before (in order).
    fn send_ordered(&mut self, src: SimFd, to: SimFd, dst_host: usize, seg: Seg) {
        let Some(s) = self.socks.get(&src) else {
            return;
        };
        let src_host = s.host;
        let lat = self.latency(src_host, dst_host);
        let mut at = self.now + lat;
        if let Some(Sock {
            kind: Kind::Stream(st),
            ..
        }) = self.socks.get_mut(&src)
        {
            at = at.max(st.last_arrival);
            st.last_arrival = at;
        }
        self.send_at(at, (src_host, src), (dst_host, to), seg);
    }

    /// Sends `seg` from (`src_host`, `src`) to `to` on `dst_host` without an order (a RST
    /// answering a stray segment, a refusal).
    fn send_loose(&mut self, src_host: usize, src: SimFd, dst_host: usize, to: SimFd, seg: Seg) {
        let at = self.now + self.latency(src_host, dst_host);
        self.send_at(at, (src_host, src), (dst_host, to), seg);
    }

    /// The peer of stream `fd`, if it is known: (its fd, its host).
    fn peer_of(&self, fd: SimFd) -> Option<(SimFd, usize)> {
        let Some(Sock {
            kind: Kind::Stream(st),
            host,
            ..
        }) = self.socks.get(&fd)
        else {
            return None;
        };
        let peer = st.peer?;
        Some((peer, self.peer_host(*host, st.peer_addr.ip())?))
    }

    /// Whether a peer at `ip` cannot be reached from `host`: its host is down, or the way
    /// there is cut.
    fn unreachable(&self, host: usize, ip: IpAddr) -> bool {
        self.peer_host(host, ip)
            .is_none_or(|peer| !self.hosts[peer].up || self.cut.contains(&(host, peer)))
    }

    /// The host of a peer at `ip`, seen from `host`: `host` itself for a loopback address.
    fn peer_host(&self, host: usize, ip: IpAddr) -> Option<usize> {
        if ip.is_loopback() {
            Some(host)
        } else {
            self.host_of_ip(ip)
        }
    }

    /// When the next thing on the wire happens: a segment's arrival, or a held segment's
    /// give-up.
    pub(crate) fn next_due(&self) -> Option<Duration> {
        let wire = self.wire.first_key_value().map(|((at, _), _)| *at);
        let held = self.held.iter().map(|s| s.sent + self.faults.give_up).min();
        let unacked = self
            .unacked
            .values()
            .filter(|(host, peer, _)| self.cut.contains(&(*peer, *host)))
            .map(|(_, _, since)| *since + self.faults.give_up)
            .min();
        [wire, held, unacked, self.next_probe()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Streams with a keepalive or a shut window, and when their next probe is due.
    fn probes(&self) -> impl Iterator<Item = (SimFd, Duration)> + '_ {
        self.socks.iter().filter_map(|(&fd, s)| match &s.kind {
            Kind::Stream(st)
                if st.phase == Phase::Established
                    && !st.dead
                    && st.error.is_none()
                    && st.peer.is_some() =>
            {
                let keepalive = st.keepalive.map(|idle| st.last_activity + idle);
                // A probe only where it can find something: the peer's host down or the way
                // to it cut (one answered changes nothing, and would keep a run that waits
                // for good from going quiet).
                // (Or the peer's socket gone: its host restarted, a probe gets a RST.)
                let gone = st.peer.is_some_and(|peer| !self.socks.contains_key(&peer));
                let persist = (st.window_shut()
                    && (gone || self.unreachable(s.host, st.peer_addr.ip())))
                .then(|| st.last_activity + st.persist);
                keepalive
                    .into_iter()
                    .chain(persist)
                    .min()
                    .map(|at| (fd, at))
            }
            _ => None,
        })
    }

    fn next_probe(&self) -> Option<Duration> {
        self.probes().map(|(_, at)| at).min()
    }

    /// Sends the keepalive probes that are due: a peer gone from a host that is up answers
    /// with a RST; one cut off (or whose host is down) holds it until the sender gives up.
    fn send_probes(&mut self) {
        let now = self.now;
        let due: Vec<SimFd> = self
            .probes()
            .filter(|&(_, at)| at <= now)
            .map(|(fd, _)| fd)
            .collect();
        for fd in due {
            self.active(fd);
            if let Some(Sock {
                kind: Kind::Stream(st),
                ..
            }) = self.socks.get_mut(&fd)
            {
                if st.window_shut() {
                    st.persist = (st.persist * 2).min(PERSIST_MAX);
                }
            }
            if let Some((peer, peer_host)) = self.peer_of(fd) {
                self.send_ordered(fd, peer, peer_host, Seg::Probe);
            }
        }
    }

    /// Traffic on stream `fd`: its keepalive waits again.
    fn active(&mut self, fd: SimFd) {
        let now = self.now;
        if let Some(Sock {
            kind: Kind::Stream(st),
            ..
        }) = self.socks.get_mut(&fd)
        {
            st.last_activity = now;
        }
    }

    /// Delivers every segment due by `now`, and gives up on held ones that waited too long.
    pub(crate) fn deliver_due(&mut self) {
        self.give_up_held();
        self.send_probes();
        while let Some(entry) = self.wire.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            let segment = entry.remove();
            self.arrive(segment);
        }
    }

    fn give_up_held(&mut self) {
        self.give_up_unacked();
        if self.held.is_empty() {
            return;
        }
        let now = self.now;
        let give_up = self.faults.give_up;
        let (late, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|s| s.sent + give_up <= now);
        self.held = kept;
        for s in late {
            if matches!(
                s.seg,
                Seg::Syn { .. } | Seg::Data(_) | Seg::Fin | Seg::Probe
            ) {
                self.fail(s.src, libc::ETIMEDOUT);
            }
        }
    }

    /// Streams whose segments arrived but whose ACKs cannot come back (a one-way partition
    /// the other way): acknowledged once the way back is whole, failed with `ETIMEDOUT`
    /// when it stays cut past the give-up, as a sender retransmitting unanswered does.
    fn give_up_unacked(&mut self) {
        if self.unacked.is_empty() {
            return;
        }
        let (now, give_up) = (self.now, self.faults.give_up);
        let cut = &self.cut;
        self.unacked
            .retain(|_, (host, peer, _)| cut.contains(&(*peer, *host)));
        let late: Vec<SimFd> = self
            .unacked
            .iter()
            .filter(|(_, (_, _, since))| *since + give_up <= now)
            .map(|(fd, _)| *fd)
            .collect();
        for fd in late {
            self.unacked.remove(&fd);
            self.fail(fd, libc::ETIMEDOUT);
        }
    }

    /// Stream `fd` fails with `errno` (a reset, a timeout): it is readable and writable with
    /// an error, and its buffers are gone.
    fn fail(&mut self, fd: SimFd, errno: i32) {
        let Some(Sock {
            kind: Kind::Stream(st),
            host,
            ..
        }) = self.socks.get_mut(&fd)
        else {
            return;
        };
        let host = *host;
        if st.dead || matches!(st.phase, Phase::Failed(_)) {
            return;
        }
        if st.phase == Phase::Connecting {
            st.phase = Phase::Failed(if errno == libc::ECONNRESET {
                libc::ECONNREFUSED
            } else {
                errno
            });
        } else {
            st.error = Some(errno);
        }
        // What arrived before the failure stays readable, the error told after it (Linux
        // reads the receive queue before `sk_err`).
        st.in_flight = 0;
        self.log(host, What::Deliver(fd, "FAIL", errno as usize));
        self.emit(fd, true, true, true, true);
    }

    fn arrive(&mut self, segment: Segment) {
        let Some(dst) = segment.dst_host else {
            return;
        };
        // Held (TCP retransmits) until the link is repaired or the sender gives up; and
        // behind a held segment of the same socket, so that none overtakes another.
        let behind = segment.src != 0 && self.held.iter().any(|h| h.src == segment.src);
        if behind || self.cut.contains(&(segment.src_host, dst)) || !self.hosts[dst].up {
            // Unless its sender crashed since: nobody is left to retransmit it.
            if segment.src_life == self.hosts[segment.src_host].life {
                self.held.push(segment);
            }
            return;
        }
        // Its ACK cannot come back: the sender retransmits until the way back is whole.
        if matches!(segment.seg, Seg::Data(_) | Seg::Fin)
            && segment.src != 0
            && self.cut.contains(&(dst, segment.src_host))
        {
            self.unacked
                .entry(segment.src)
                .or_insert((segment.src_host, dst, segment.sent));
        }
        let to = segment.to;
        self.log(
            dst,
            What::Deliver(to, segment.seg.name(), seg_len(&segment.seg)),
        );
        if self.sock(dst, self.hosts[dst].life, to).is_some() {
            self.active(to);
        }
        match segment.seg {
            Seg::Syn {
                client,
                dst: addr,
                tries,
            } => self.arrive_syn(segment.src_host, client, dst, addr, tries),
            Seg::SynAck { server } => {
                let life = self.hosts[dst].life;
                match self.sock(dst, life, to) {
                    Some(Sock {
                        kind: Kind::Stream(st),
                        ..
                    }) if st.phase == Phase::Connecting => {
                        st.phase = Phase::Established;
                        st.peer = Some(server);
                        self.emit(to, false, true, false, false);
                    }
                    _ => self.send_loose(dst, to, segment.src_host, server, Seg::Rst),
                }
            }
            Seg::Refused { errno } => {
                if let Some(Sock {
                    kind: Kind::Stream(st),
                    ..
                }) = self.socks.get_mut(&to)
                {
                    if st.phase == Phase::Connecting {
                        st.phase = Phase::Failed(errno);
                        self.emit(to, true, true, true, true);
                    }
                }
            }
            Seg::Data(bytes) => {
                let life = self.hosts[dst].life;
                match self.sock(dst, life, to) {
                    Some(Sock {
                        kind: Kind::Stream(st),
                        ..
                    }) if !st.dead && st.error.is_none() => {
                        st.rx.extend(bytes.iter());
                        self.emit(to, true, false, false, false);
                    }
                    Some(_) => {}
                    // Data for a socket closed (or a host restarted since): a RST answers.
                    None => self.send_loose(dst, to, segment.src_host, segment.src, Seg::Rst),
                }
            }
            Seg::Fin => {
                if let Some(Sock {
                    kind: Kind::Stream(st),
                    ..
                }) = self.socks.get_mut(&to)
                {
                    st.rx_fin = true;
                    self.emit(to, true, false, true, false);
                }
            }
            Seg::Rst => {
                let life = self.hosts[dst].life;
                if self.sock(dst, life, to).is_some() {
                    self.fail(to, libc::ECONNRESET);
                }
            }
            Seg::Probe => {
                let life = self.hosts[dst].life;
                // A probe for a socket a restarted host no longer has: a RST answers.
                let answer = match self.sock(dst, life, to) {
                    Some(_) => Seg::ProbeAck,
                    None => Seg::Rst,
                };
                self.send_loose(dst, to, segment.src_host, segment.src, answer);
            }
            Seg::ProbeAck => {}
            Seg::Join { listener, tries } => self.arrive_join(to, listener, tries),
            Seg::Window(n) => {
                if let Some(Sock {
                    kind: Kind::Stream(st),
                    ..
                }) = self.socks.get_mut(&to)
                {
                    st.in_flight = st.in_flight.saturating_sub(n);
                    st.persist = PERSIST_MIN;
                    if std::mem::take(&mut st.want_write) {
                        self.emit(to, false, true, false, false);
                    }
                }
            }
        }
    }

    fn arrive_syn(
        &mut self,
        src_host: usize,
        client: SimFd,
        host: usize,
        addr: SocketAddr,
        tries: u32,
    ) {
        let life = self.hosts[host].life;
        let listener = self.socks.iter().find_map(|(&fd, s)| {
            let matches = s.host == host
                && s.life == life
                && s.local.port() == addr.port()
                && (s.local.ip() == addr.ip() || s.local.ip().is_unspecified());
            match &s.kind {
                Kind::Listener { backlog, queue } if matches => Some((fd, queue.len() >= *backlog)),
                _ => None,
            }
        });
        let Some((lfd, full)) = listener else {
            let errno = libc::ECONNREFUSED;
            self.send_loose(host, 0, src_host, client, Seg::Refused { errno });
            return;
        };
        if full && !self.faults.overflow_established {
            // Linux drops the SYN of a full accept queue; the client retries (1 s, 2 s...)
            // `tcp_syn_retries` (6) times, then gives up (about 127 s in all). A client
            // socket that is gone is not retried for.
            if !self.socks.contains_key(&client) {
                return;
            }
            if tries >= SYN_RETRIES {
                // The client's own timer, on its host: its last wait, then `ETIMEDOUT`.
                let at = self.now + Duration::from_secs(1 << tries.min(6));
                let timeout = Seg::Refused {
                    errno: libc::ETIMEDOUT,
                };
                self.send_at(at, (src_host, client), (src_host, client), timeout);
                return;
            }
            let at = self.now + Duration::from_secs(1 << tries.min(5));
            let seg = Seg::Syn {
                client,
                dst: addr,
                tries: tries + 1,
            };
            self.send_at(at, (src_host, client), (host, 0), seg);
            return;
        }
        let client_addr = match self.socks.get(&client) {
            Some(s) => s.local,
            None => return,
        };
        let fd = self.alloc_fd();
        let send_buffer = self.faults.send_buffer;
        self.socks.insert(
            fd,
            Sock {
                host,
                life,
                local: addr,
                key: None,
                kind: Kind::Stream(Box::new(Stream::new(
                    client_addr,
                    Some(client),
                    Phase::Established,
                    send_buffer,
                ))),
            },
        );
        if full {
            // The handshake completes for the client, but its last ACK finds the queue full
            // and is dropped: the connection waits outside the queue, and the server tries
            // again (1 s, 2 s... five times) before it forgets it.
            self.arrive_join(fd, lfd, 0);
        } else {
            if let Some(Sock {
                kind: Kind::Listener { queue, .. },
                ..
            }) = self.socks.get_mut(&lfd)
            {
                queue.push_back(fd);
            }
            self.emit(lfd, true, false, false, false);
        }
        self.send_ordered(fd, client, src_host, Seg::SynAck { server: fd });
    }

    /// A connection whose handshake ended on a full accept queue tries to join it again.
    fn arrive_join(&mut self, fd: SimFd, listener: SimFd, tries: u32) {
        let room = match self.socks.get(&listener) {
            Some(Sock {
                kind: Kind::Listener { backlog, queue },
                ..
            }) => queue.len() < *backlog,
            // The listener closed: the connection is forgotten.
            _ => false,
        };
        if room {
            if let Some(Sock {
                kind: Kind::Listener { queue, .. },
                ..
            }) = self.socks.get_mut(&listener)
            {
                queue.push_back(fd);
            }
            self.emit(listener, true, false, false, false);
            return;
        }
        let Some(host) = self.socks.get(&fd).map(|s| s.host) else {
            return;
        };
        if tries < 5 && self.socks.contains_key(&listener) {
            let at = self.now + Duration::from_secs(1 << tries);
            let seg = Seg::Join {
                listener,
                tries: tries + 1,
            };
            self.send_at(at, (host, listener), (host, fd), seg);
        } else {
            // Forgotten without a word: the client's next segment is answered with a RST; a
            // client that waits for the server to speak first waits for good.
            self.socks.remove(&fd);
        }
    }

    // ----- faults ------------------------------------------------------------------

    pub(crate) fn cut(&mut self, from: usize, to: usize) {
        self.cut.insert((from, to));
    }

    pub(crate) fn repair(&mut self, from: usize, to: usize) {
        if !self.cut.remove(&(from, to)) {
            return;
        }
        self.release_held();
    }

    /// Puts held segments whose link is whole again back on the wire, in their order, and
    /// the segments their sockets sent since (still on the wire) after them.
    pub(crate) fn release_held(&mut self) {
        let held = std::mem::take(&mut self.held);
        let mut released = Vec::new();
        for s in held {
            let whole = s
                .dst_host
                .is_some_and(|dst| !self.cut.contains(&(s.src_host, dst)) && self.hosts[dst].up);
            if whole {
                released.push(s);
            } else {
                self.held.push(s);
            }
        }
        if released.is_empty() {
            return;
        }
        let srcs: BTreeSet<SimFd> = released.iter().map(|s| s.src).filter(|&s| s != 0).collect();
        let later: Vec<(Duration, u64)> = self
            .wire
            .iter()
            .filter(|(_, s)| srcs.contains(&s.src))
            .map(|(k, _)| *k)
            .collect();
        let mut queue: Vec<(Option<Duration>, Segment)> =
            released.into_iter().map(|s| (None, s)).collect();
        for k in later {
            if let Some(s) = self.wire.remove(&k) {
                queue.push((Some(k.0), s));
            }
        }
        let mut last: BTreeMap<SimFd, Duration> = BTreeMap::new();
        for (due, s) in queue {
            let dst = s.dst_host.unwrap_or(s.src_host);
            let at = match due {
                Some(at) => at,
                None => self.now + self.latency(s.src_host, dst),
            };
            let at = match last.get(&s.src) {
                Some(&prev) if s.src != 0 => at.max(prev),
                _ => at,
            };
            last.insert(s.src, at);
            if let Some(Sock {
                kind: Kind::Stream(st),
                ..
            }) = self.socks.get_mut(&s.src)
            {
                st.last_arrival = st.last_arrival.max(at);
            }
            self.put(at, s);
        }
    }

    pub(crate) fn is_cut(&self, from: usize, to: usize) -> bool {
        self.cut.contains(&(from, to))
    }

    /// Resets one random open connection (both ends); returns whether there was one.
    pub(crate) fn reset_random(&mut self) -> Option<String> {
        let open: Vec<SimFd> = self
            .socks
            .iter()
            .filter(|(_, s)| {
                matches!(&s.kind, Kind::Stream(st) if st.phase == Phase::Established && !st.dead)
            })
            .map(|(&fd, _)| fd)
            .collect();
        if open.is_empty() {
            return None;
        }
        let fd = open[self.rng.below(open.len() as u64) as usize];
        let peer = self.peer_of(fd);
        self.fail(fd, libc::ECONNRESET);
        if let Some((peer, _)) = peer {
            self.fail(peer, libc::ECONNRESET);
        }
        Some(format!("reset fd {fd}"))
    }

    /// `host` goes down: its sockets vanish without a FIN, segments to it are held.
    pub(crate) fn crash(&mut self, host: usize) {
        self.hosts[host].up = false;
        self.hosts[host].life += 1;
        self.hosts[host].events.clear();
        self.hosts[host].open = 0;
        self.socks.retain(|_, s| s.host != host);
        // Its kernel's retransmission queue dies with it: what it sent into a cut link
        // never arrives. (Segments already on the wire left it, and still do.)
        self.held.retain(|s| s.src_host != host);
        self.unacked.retain(|_, (from, _, _)| *from != host);
    }

    pub(crate) fn restart(&mut self, host: usize) {
        self.hosts[host].up = true;
        self.release_held();
    }

    // ----- the system calls --------------------------------------------------------

    pub(crate) fn listen(
        &mut self,
        host: usize,
        life: u32,
        addr: SocketAddr,
        backlog: i32,
    ) -> io::Result<(SimFd, SocketAddr)> {
        let ip = self.hosts[host].ip;
        if !addr.ip().is_unspecified() && !addr.ip().is_loopback() && addr.ip() != ip {
            return Err(err(libc::EADDRNOTAVAIL));
        }
        let port = if addr.port() == 0 {
            self.ephemeral(host)
        } else {
            addr.port()
        };
        let taken = self.socks.values().any(|s| {
            s.host == host
                && s.life == life
                && s.local.port() == port
                && matches!(s.kind, Kind::Listener { .. })
        });
        if taken {
            return Err(err(libc::EADDRINUSE));
        }
        self.open_fd(host)?;
        let fd = self.alloc_fd();
        let local = SocketAddr::new(addr.ip(), port);
        let backlog = (backlog.max(1) as usize).min(self.faults.backlog);
        self.socks.insert(
            fd,
            Sock {
                host,
                life,
                local,
                key: None,
                kind: Kind::Listener {
                    backlog,
                    queue: VecDeque::new(),
                },
            },
        );
        Ok((fd, local))
    }

    pub(crate) fn accept(
        &mut self,
        host: usize,
        life: u32,
        listener: SimFd,
    ) -> io::Result<(SimFd, SocketAddr)> {
        let Some(Sock {
            kind: Kind::Listener { queue, .. },
            ..
        }) = self.sock(host, life, listener)
        else {
            return Err(err(libc::EBADF));
        };
        let Some(&fd) = queue.front() else {
            return Err(would_block());
        };
        if self.hosts[host].open >= self.faults.fd_limit {
            return Err(err(libc::EMFILE));
        }
        if let Some(Sock {
            kind: Kind::Listener { queue, .. },
            ..
        }) = self.socks.get_mut(&listener)
        {
            queue.pop_front();
        }
        self.hosts[host].open += 1;
        let peer = match self.socks.get(&fd) {
            Some(Sock {
                kind: Kind::Stream(st),
                ..
            }) => st.peer_addr,
            _ => return Err(err(libc::ECONNABORTED)),
        };
        Ok((fd, peer))
    }

    pub(crate) fn connect(
        &mut self,
        host: usize,
        life: u32,
        addr: SocketAddr,
    ) -> io::Result<SimFd> {
        self.open_fd(host)?;
        // To a loopback address, from one: the host's own, as on a real one.
        let ip = match addr.ip() {
            IpAddr::V4(v4) if v4.is_loopback() => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            IpAddr::V6(v6) if v6.is_loopback() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            _ => self.hosts[host].ip,
        };
        let port = self.ephemeral(host);
        let fd = self.alloc_fd();
        let send_buffer = self.faults.send_buffer;
        self.socks.insert(
            fd,
            Sock {
                host,
                life,
                local: SocketAddr::new(ip, port),
                key: None,
                kind: Kind::Stream(Box::new(Stream::new(
                    addr,
                    None,
                    Phase::Connecting,
                    send_buffer,
                ))),
            },
        );
        match self.peer_host(host, addr.ip()) {
            Some(dst) => self.send_ordered(
                fd,
                0,
                dst,
                Seg::Syn {
                    client: fd,
                    dst: addr,
                    tries: 0,
                },
            ),
            None => {
                let errno = libc::EHOSTUNREACH;
                self.send_loose(host, 0, host, fd, Seg::Refused { errno });
            }
        }
        Ok(fd)
    }

    fn stream(&mut self, host: usize, life: u32, fd: SimFd) -> io::Result<&mut Stream> {
        match self.sock(host, life, fd) {
            Some(Sock {
                kind: Kind::Stream(st),
                ..
            }) => Ok(st),
            _ => Err(err(libc::EBADF)),
        }
    }

    pub(crate) fn handshake(&mut self, host: usize, life: u32, fd: SimFd) -> io::Result<bool> {
        let st = self.stream(host, life, fd)?;
        match st.phase {
            Phase::Connecting => Ok(false),
            Phase::Established => match st.error.take() {
                Some(e) => {
                    st.dead = true;
                    Err(err(e))
                }
                None => Ok(true),
            },
            Phase::Failed(e) => Err(err(e)),
        }
    }

    pub(crate) fn read(
        &mut self,
        host: usize,
        life: u32,
        fd: SimFd,
        buf: &mut [u8],
    ) -> io::Result<usize> {
        let st = self.stream(host, life, fd)?;
        if st.rx.is_empty() || matches!(st.phase, Phase::Failed(_)) {
            // The bytes that arrived come first, a failure after them.
            if let Some(e) = st.error.take() {
                st.dead = true;
                return Err(err(e));
            }
            if st.dead {
                return Ok(0);
            }
            if let Phase::Failed(e) = st.phase {
                return Err(err(e));
            }
            return if st.rx_fin { Ok(0) } else { Err(would_block()) };
        }
        let n = buf.len().min(st.rx.len());
        for (dst, src) in buf[..n].iter_mut().zip(st.rx.drain(..n)) {
            *dst = src;
        }
        // The window update goes back to the writer.
        if let Some((peer, peer_host)) = self.peer_of(fd) {
            self.send_ordered(fd, peer, peer_host, Seg::Window(n));
        }
        Ok(n)
    }

    pub(crate) fn write(
        &mut self,
        host: usize,
        life: u32,
        fd: SimFd,
        bufs: &[IoSlice<'_>],
    ) -> io::Result<usize> {
        let short_write = self.faults.short_write;
        let split = self.faults.split;
        let st = self.stream(host, life, fd)?;
        if let Some(e) = st.error.take() {
            st.dead = true;
            return Err(err(e));
        }
        if st.dead || st.wr_shut {
            return Err(err(libc::EPIPE));
        }
        match st.phase {
            Phase::Connecting => return Err(would_block()),
            Phase::Failed(e) => return Err(err(e)),
            Phase::Established => {}
        }
        let room = st.send_buffer.saturating_sub(st.in_flight);
        if room == 0 {
            st.want_write = true;
            return Err(would_block());
        }
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let mut n = total.min(room);
        if n == 0 {
            return Ok(0);
        }
        let mut forced_short = false;
        if n > 1 && self.rng.chance(short_write) {
            n = self.rng.between(1, n as u64 - 1) as usize;
            forced_short = true;
        }
        let mut bytes = Vec::with_capacity(n);
        for b in bufs {
            let take = (n - bytes.len()).min(b.len());
            bytes.extend_from_slice(&b[..take]);
            if bytes.len() == n {
                break;
            }
        }
        // What is said, not only how much: two runs that say other bytes hash apart.
        self.trace.mix(&bytes);
        let now = self.now;
        let st = self.stream(host, life, fd)?;
        st.in_flight += n;
        st.last_activity = now;
        if n < total {
            st.want_write = true;
        }
        let Some((peer, peer_host)) = self.peer_of(fd) else {
            return Ok(n);
        };
        // The bytes travel in one segment, or (by chance) in several that arrive apart.
        let mut pieces = 1;
        if bytes.len() > 1 && self.rng.chance(split) {
            pieces = self.rng.between(2, 4.min(bytes.len() as u64)) as usize;
        }
        let mut rest = bytes;
        for i in (1..=pieces).rev() {
            let cut = if i == 1 {
                rest.len()
            } else {
                self.rng.between(1, (rest.len() - (i - 1)) as u64) as usize
            };
            let tail = rest.split_off(cut);
            self.send_ordered(fd, peer, peer_host, Seg::Data(rest));
            rest = tail;
        }
        if forced_short {
            // Room is left: the kernel would say writable again at once.
            if let Ok(st) = self.stream(host, life, fd) {
                st.want_write = false;
            }
            self.emit(fd, false, true, false, false);
        }
        Ok(n)
    }

    pub(crate) fn shutdown_write(&mut self, host: usize, life: u32, fd: SimFd) {
        let Ok(st) = self.stream(host, life, fd) else {
            return;
        };
        if st.wr_shut || st.dead || st.phase != Phase::Established {
            return;
        }
        st.wr_shut = true;
        if let Some((peer, peer_host)) = self.peer_of(fd) {
            self.send_ordered(fd, peer, peer_host, Seg::Fin);
        }
    }

    pub(crate) fn set_keepalive(&mut self, host: usize, life: u32, fd: SimFd, idle: Duration) {
        let now = self.now;
        if let Ok(st) = self.stream(host, life, fd) {
            st.keepalive = Some(idle);
            st.last_activity = now;
        }
    }

    pub(crate) fn set_linger_zero(&mut self, host: usize, life: u32, fd: SimFd) {
        if let Ok(st) = self.stream(host, life, fd) {
            st.linger0 = true;
        }
    }

    pub(crate) fn close(&mut self, host: usize, life: u32, fd: SimFd) {
        if self.sock(host, life, fd).is_none() {
            return;
        }
        let Some(sock) = self.socks.remove(&fd) else {
            return;
        };
        self.hosts[host].open = self.hosts[host].open.saturating_sub(1);
        match sock.kind {
            Kind::Listener { queue, .. } => {
                // Connections never accepted are reset.
                for child in queue {
                    if let Some((peer, peer_host)) = self.peer_of(child) {
                        self.send_ordered(child, peer, peer_host, Seg::Rst);
                    }
                    self.socks.remove(&child);
                }
            }
            Kind::Stream(st) => {
                let Some(peer) = st.peer else { return };
                let Some(peer_host) = self.peer_host(host, st.peer_addr.ip()) else {
                    return;
                };
                if st.dead || st.error.is_some() || matches!(st.phase, Phase::Failed(_)) {
                    return;
                }
                // Put it back for the ordered send, then take it out for good.
                let reset = st.linger0 || !st.rx.is_empty();
                let wr_shut = st.wr_shut;
                self.socks.insert(
                    fd,
                    Sock {
                        kind: Kind::Stream(st),
                        ..sock
                    },
                );
                if reset {
                    self.send_ordered(fd, peer, peer_host, Seg::Rst);
                } else if !wr_shut {
                    self.send_ordered(fd, peer, peer_host, Seg::Fin);
                }
                self.socks.remove(&fd);
            }
        }
    }

    pub(crate) fn local_addr(&mut self, host: usize, life: u32, fd: SimFd) -> Option<SocketAddr> {
        self.sock(host, life, fd).map(|s| s.local)
    }

    pub(crate) fn watch(&mut self, host: usize, life: u32, fd: SimFd, key: usize) {
        let Some(s) = self.sock(host, life, fd) else {
            return;
        };
        s.key = Some(key);
        // Edge-triggered registration reports the readiness there is now.
        let (r, w, c, e) = match &s.kind {
            Kind::Listener { queue, .. } => (!queue.is_empty(), false, false, false),
            Kind::Stream(st) => match st.phase {
                Phase::Connecting => (false, false, false, false),
                Phase::Established => (
                    !st.rx.is_empty() || st.rx_fin || st.error.is_some(),
                    true,
                    st.rx_fin,
                    st.error.is_some(),
                ),
                Phase::Failed(_) => (true, true, true, true),
            },
        };
        if r || w || e {
            self.emit(fd, r, w, c, e);
        }
    }

    pub(crate) fn next_event(&mut self, host: usize) -> Option<Event> {
        self.hosts[host].events.pop_front()
    }

    /// Open connections (both ends counted), for tests' bookkeeping.
    pub(crate) fn open_streams(&self) -> usize {
        self.socks
            .values()
            .filter(|s| matches!(&s.kind, Kind::Stream(st) if st.phase == Phase::Established && !st.dead))
            .count()
    }

    pub(crate) fn record(&mut self, host: usize, what: What) {
        self.log(host, what);
    }

    pub(crate) fn errno(e: &io::Error) -> i32 {
        errno_of(e)
    }
}

fn seg_len(seg: &Seg) -> usize {
    match seg {
        Seg::Data(b) => b.len(),
        Seg::Window(n) => *n,
        _ => 0,
    }
}

impl Stream {
    /// The writer filled the peer's window and waits for it to open.
    fn window_shut(&self) -> bool {
        self.want_write && self.in_flight >= self.send_buffer
    }

    fn new(peer_addr: SocketAddr, peer: Option<SimFd>, phase: Phase, send_buffer: usize) -> Stream {
        Stream {
            peer_addr,
            peer,
            phase,
            error: None,
            dead: false,
            rx: VecDeque::new(),
            rx_fin: false,
            in_flight: 0,
            send_buffer: send_buffer.max(1),
            wr_shut: false,
            linger0: false,
            want_write: false,
            last_arrival: Duration::ZERO,
            keepalive: None,
            persist: PERSIST_MIN,
            last_activity: Duration::ZERO,
        }
    }
}
