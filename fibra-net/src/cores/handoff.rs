//! `Handoff`: one acceptor thread handing each new connection to the least-loaded of N
//! schedules, the alternative to one `SO_REUSEPORT` listener per schedule.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use fibra_tasks::{RemoteSender, TrySendError};

use crate::api::error::NetError;
use crate::api::options::ListenOptions;

/// The longest the acceptor sleeps at a time while every schedule's channel is full, between
/// looks at its stop flag and at the channels.
const FULL_WAIT_MAX: Duration = Duration::from_millis(10);

/// The live connections handed to each schedule: a connection counts from its hand-off
/// until its [`Handed`] (or the [`LoadToken`] taken from it) is dropped.
#[derive(Clone, Debug)]
pub struct Loads {
    counts: Arc<[AtomicUsize]>,
}

impl Loads {
    /// `n` schedules, none loaded.
    pub fn new(n: usize) -> Loads {
        Loads {
            counts: (0..n).map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    /// Each schedule's live connections, now.
    pub fn snapshot(&self) -> Vec<usize> {
        self.counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    /// The schedules not `gone`, least-loaded first, into `order` as (load, schedule); ties
    /// go to the first one after `after`, so that equal loads take turns.
    fn by_load(&self, after: usize, gone: &[bool], order: &mut Vec<(usize, usize)>) {
        let n = self.counts.len();
        order.clear();
        // Each load read once, before the sort: read in the comparisons, a load the
        // schedules change meanwhile made the order inconsistent, and the sort (over 20
        // schedules) panicked, ending the acceptor thread.
        order.extend(
            (1..=n)
                .map(|k| (after + k) % n)
                .filter(|&i| !gone[i])
                .map(|i| (self.counts[i].load(Ordering::Relaxed), i)),
        );
        // Stable: equal loads keep their turn order.
        order.sort_by_key(|&(load, _)| load);
    }

    /// Counts one more connection on schedule `index` until the token is dropped: for
    /// connections a schedule serves that did not come through the hand-off (its own
    /// listener's, say), so that the hand-off sees its whole load.
    ///
    /// # Panics
    ///
    /// If `index` is not a schedule of these loads.
    pub fn charge(&self, index: usize) -> LoadToken {
        self.counts[index].fetch_add(1, Ordering::Relaxed);
        LoadToken {
            loads: self.clone(),
            index,
        }
    }
}

/// One connection's share of its schedule's load; given back when dropped. Keep it as long
/// as the connection is served.
#[derive(Debug)]
pub struct LoadToken {
    loads: Loads,
    index: usize,
}

impl LoadToken {
    /// The schedule it counts for.
    pub fn schedule(&self) -> usize {
        self.index
    }
}

impl Drop for LoadToken {
    fn drop(&mut self) {
        self.loads.counts[self.index].fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection handed to one schedule: adopt its stream there with
/// [`NetExt::adopt`](crate::NetExt::adopt), and keep its token while serving it.
#[derive(Debug)]
pub struct Handed {
    /// The accepted stream (blocking; `adopt` makes it non-blocking).
    pub stream: TcpStream,
    /// Who connected.
    pub peer: SocketAddr,
    /// Its share of the schedule's load.
    pub load: LoadToken,
}

/// One acceptor thread (`fibra-accept`) handing each connection to the least-loaded of N
/// schedules, through each schedule's [`RemoteSender`] (a [`remote_channel`] whose receiving
/// tasklet adopts what comes). Load is live connections, counted by [`LoadToken`]s.
///
/// Against `SO_REUSEPORT` listeners ([`ListenOptions::with_reuse_port`], one per
/// schedule): the kernel spreads those by a hash of the peer's address and port, which is
/// even only on average (and closing one of them drops the connections still in its accept
/// queue); the hand-off spreads exactly by load, at the cost of one thread and one
/// cross-thread message per connection.
///
/// A schedule whose channel is full (busy, or stuck in a tasklet that blocks its thread) is
/// passed over for the next least-loaded, so one slow schedule never holds the others'
/// connections up; only when every channel is full does the acceptor wait (a millisecond,
/// then up to 10 at a time, watching its stop flag), the kernel's backlog queueing the
/// rest. A schedule whose receiver is gone gets no more connections (the one that found it
/// gone goes to the next), and when all are gone each connection is closed at once.
/// [`stop`](Self::stop) returns promptly whatever the schedules do. Listen with
/// [`bind`](Self::bind) for the kernel's largest backlog (std's `TcpListener::bind` asks
/// for 128, which a burst of logins overflows).
///
/// [`RemoteSender`]: fibra_tasks::RemoteSender
/// [`remote_channel`]: fibra_tasks::remote_channel
/// [`ListenOptions::with_reuse_port`]: crate::ListenOptions::with_reuse_port
#[derive(Debug)]
pub struct Handoff {
    addr: SocketAddr,
    loads: Loads,
    handed: Arc<AtomicU64>,
    pauses: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    /// Shared with the acceptor thread, so that the stop can wake its blocking `accept`.
    listener: Arc<TcpListener>,
    thread: Option<JoinHandle<()>>,
}

impl Handoff {
    /// Starts accepting on `listener` for `targets` (schedule `i` is `targets[i]`).
    ///
    /// # Errors
    ///
    /// `InvalidInput` with no targets; the listener's or the thread's error.
    pub fn start(listener: TcpListener, targets: Vec<RemoteSender<Handed>>) -> io::Result<Handoff> {
        let loads = Loads::new(targets.len());
        Handoff::start_with(listener, targets, loads)
    }

    /// Listens on `addr` as `options` says (the backlog: by default the kernel's largest,
    /// so that a burst of connections waits in the kernel's queue instead of being dropped;
    /// `SO_REUSEPORT`) and starts handing its connections to `targets`, counting load in
    /// `loads` (see [`start_with`](Self::start_with)). The options' connection settings are
    /// not applied here: the schedules choose them when they adopt.
    ///
    /// # Errors
    ///
    /// [`NetError::Bind`] when the address cannot be listened on; otherwise as
    /// [`start_with`](Self::start_with).
    pub fn bind<A: ToSocketAddrs>(
        addr: A,
        options: &ListenOptions,
        targets: Vec<RemoteSender<Handed>>,
        loads: Loads,
    ) -> Result<Handoff, NetError> {
        let addr = crate::api::ext::resolve(addr)?;
        let (socket, _) =
            crate::engine::sys::socket::listener(addr, options.backlog, options.reuse_port)?;
        Ok(Handoff::start_with(
            TcpListener::from(socket),
            targets,
            loads,
        )?)
    }

    /// Like [`start`](Self::start), counting load in `loads` (shared with the schedules,
    /// which may [`charge`](Loads::charge) their other connections to it).
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start); `InvalidInput` also when `loads` counts another number of
    /// schedules than there are targets.
    pub fn start_with(
        listener: TcpListener,
        targets: Vec<RemoteSender<Handed>>,
        loads: Loads,
    ) -> io::Result<Handoff> {
        if fibra_rt::time::is_simulated() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a hand-off accepts on a real thread, outside the simulation (fibra-sim)",
            ));
        }
        if loads.counts.len() != targets.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the loads count another number of schedules than there are targets",
            ));
        }
        if targets.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a hand-off needs at least one schedule to hand connections to",
            ));
        }
        listener.set_nonblocking(false)?;
        let addr = listener.local_addr()?;
        let handed = Arc::new(AtomicU64::new(0));
        let pauses = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let listener = Arc::new(listener);
        let thread = {
            let counts = Counts {
                handed: Arc::clone(&handed),
                pauses: Arc::clone(&pauses),
            };
            let (loads, stop, listener) = (loads.clone(), Arc::clone(&stop), Arc::clone(&listener));
            std::thread::Builder::new()
                .name("fibra-accept".into())
                .spawn(move || accept_loop(&listener, &targets, &loads, &counts, &stop))?
        };
        Ok(Handoff {
            addr,
            loads,
            handed,
            pauses,
            stop,
            listener,
            thread: Some(thread),
        })
    }

    /// The address it accepts on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The schedules' loads.
    pub fn loads(&self) -> &Loads {
        &self.loads
    }

    /// Connections handed out so far.
    pub fn handed(&self) -> u64 {
        self.handed.load(Ordering::Relaxed)
    }

    /// Times accepting failed and paused (out of descriptors, say): it waits 10 ms, then
    /// tries again, instead of spinning on the error.
    pub fn accept_pauses(&self) -> u64 {
        self.pauses.load(Ordering::Relaxed)
    }

    /// Stops accepting and closes the listener (what is still in its queue is dropped, and
    /// so is a connection waiting for room in a full channel); connections already handed
    /// out are the schedules'. Returns within milliseconds, whatever the schedules do.
    pub fn stop(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept: shutting a listening socket down makes it return at once
        // (Linux); where that is refused, a connection of our own does it.
        let listening = socket2::SockRef::from(&*self.listener);
        if listening.shutdown(std::net::Shutdown::Both).is_err() {
            let mut wake = self.addr;
            if wake.ip().is_unspecified() {
                wake.set_ip(match wake {
                    SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        }
        let _ = thread.join();
    }
}

impl Drop for Handoff {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

/// The acceptor thread's counters.
struct Counts {
    handed: Arc<AtomicU64>,
    pauses: Arc<AtomicU64>,
}

fn accept_loop(
    listener: &TcpListener,
    targets: &[RemoteSender<Handed>],
    loads: &Loads,
    counts: &Counts,
    stop: &AtomicBool,
) {
    let mut hand = Hand {
        targets,
        loads,
        counts,
        stop,
        last: targets.len() - 1,
        gone: vec![false; targets.len()],
        order: Vec::with_capacity(targets.len()),
    };
    loop {
        let accepted = listener.accept();
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match accepted {
            Ok((stream, peer)) => hand.over(stream, peer),
            Err(e) => {
                // Out of descriptors, say: wait, instead of spinning on the error.
                if counts.pauses.fetch_add(1, Ordering::Relaxed) == 0 {
                    log::warn!(target: "fibra_net::handoff", "accept on {:?}: {e}; pausing 10 ms at a time (logged once)", listener.local_addr());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// The acceptor's hand-off state.
struct Hand<'a> {
    targets: &'a [RemoteSender<Handed>],
    loads: &'a Loads,
    counts: &'a Counts,
    stop: &'a AtomicBool,
    /// The schedule that got the last connection (ties go to the next).
    last: usize,
    /// Schedules whose receiver is gone.
    gone: Vec<bool>,
    /// The schedules in the order tried, with their loads (reused).
    order: Vec<(usize, usize)>,
}

impl Hand<'_> {
    /// Hands `stream` to the least-loaded schedule that has room, passing over full ones;
    /// while all are full, waits (watching `stop`) and tries again.
    fn over(&mut self, stream: TcpStream, peer: SocketAddr) {
        let mut stream = stream;
        let mut wait = Duration::from_millis(1);
        loop {
            self.loads.by_load(self.last, &self.gone, &mut self.order);
            if self.order.is_empty() {
                // No schedule takes connections any more: each one is closed at once.
                return;
            }
            for k in 0..self.order.len() {
                let (_, index) = self.order[k];
                let load = self.loads.charge(index);
                // Counted before it is seen, as its load is.
                self.counts.handed.fetch_add(1, Ordering::Relaxed);
                let refused = match self.targets[index].try_send(Handed { stream, peer, load }) {
                    Ok(()) => {
                        self.last = index;
                        return;
                    }
                    Err(refused) => refused,
                };
                self.counts.handed.fetch_sub(1, Ordering::Relaxed);
                match refused {
                    TrySendError::Full(handed) => {
                        // Busy: the next least-loaded schedule takes it.
                        let Handed {
                            stream: s, load, ..
                        } = handed;
                        drop(load);
                        stream = s;
                    }
                    TrySendError::Closed(handed) => {
                        // That schedule is gone (its receiver was dropped): it gets no more
                        // connections, and this one goes to the next.
                        self.gone[index] = true;
                        log::warn!(target: "fibra_net::handoff", "schedule {index} takes no connections (its receiver is gone); handing to the others");
                        let Handed {
                            stream: s, load, ..
                        } = handed;
                        drop(load);
                        stream = s;
                    }
                }
            }
            if self.gone.iter().all(|&g| g) {
                return;
            }
            // Every channel is full: wait a little, then look again (or stop).
            if self.stop.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(wait);
            wait = (wait * 2).min(FULL_WAIT_MAX);
        }
    }
}
