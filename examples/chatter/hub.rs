//! The hub: what the threads of one room across threads (`--threads N`) share, each
//! thread's side being its [`Relay`](super::relay::Relay) reach. Handles are claimed here,
//! under one lock, so two clients racing for a handle on two threads cannot both win, and
//! `/msg` finds the thread of its target. Each thread's relay channel is registered here,
//! for the others to send it [`Event`]s: what is said in a room crosses once to each other
//! thread with a member in that room, and is fanned out there to its members by its own `Group`; the joins and
//! leaves keep each room's list of the other threads' members in step with what its members
//! have heard. The threads' loads (for the hand-off) and the stop's totals are here too.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use fibra::net::Loads;

use super::protocol;
use fibra::tasks::RemoteSender;

/// What one thread's room tells another's. Each line is made once, on the thread where it
/// happened, and shared by every thread it crosses to.
#[derive(Clone, Debug)]
pub(crate) enum Event {
    /// A line said in room `place`, for every member of that room there, without its end
    /// (sent only to the threads with a member in that room: [`Hub::room`]).
    Room {
        /// The room (`/join`'s name, or the lobby).
        place: Arc<str>,
        /// The line.
        line: Arc<str>,
    },
    /// A member joined room `place` on thread `from`: `line` announced there, and the member
    /// listed by that room's `/who`.
    Joined {
        /// The sending thread.
        from: usize,
        /// The room.
        place: Arc<str>,
        /// The member's handle.
        handle: Arc<str>,
        /// The announcement.
        line: Arc<str>,
    },
    /// A member left room `place` on thread `from`.
    Left {
        /// The sending thread.
        from: usize,
        /// The room.
        place: Arc<str>,
        /// The member's handle.
        handle: Arc<str>,
        /// The announcement.
        line: Arc<str>,
    },
    /// A line for one member there (a whisper).
    Tell {
        /// The member's handle.
        to: Arc<str>,
        /// The line.
        line: Arc<str>,
    },
    /// Stop: tell everyone there, and close.
    Shutdown,
}

/// The threads' shared directory of handles and their relay channels.
#[derive(Debug)]
pub(crate) struct Hub {
    threads: usize,
    /// Every member's handle, and the thread serving it; and the same handles in ASCII lower
    /// case ([`protocol::handle_key`]), which makes two handles one.
    names: Mutex<(HashMap<String, usize>, HashSet<String>)>,
    /// Each room with a member on some thread: which threads (bit `i`: thread `i`), shared
    /// by the threads that have a member in it (see [`Hub::room`]).
    rooms: Mutex<HashMap<Arc<str>, Arc<AtomicU64>>>,
    relays: Mutex<Vec<Option<RemoteSender<Event>>>>,
    shutting_down: AtomicBool,
    stopped: AtomicUsize,
    /// The stopped rooms' lines delivered and members cut off, summed.
    totals: Mutex<(u64, u64)>,
    /// Each thread's connections, for the hand-off to pick the least-loaded thread (the
    /// web page's connections on thread 0 count too).
    loads: Loads,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves the map whole: go on with it.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Hub {
    /// A hub for `threads` rooms.
    pub(crate) fn new(threads: usize) -> Arc<Hub> {
        Arc::new(Hub {
            threads,
            names: Mutex::new((HashMap::new(), HashSet::new())),
            rooms: Mutex::new(HashMap::new()),
            relays: Mutex::new((0..threads).map(|_| None).collect()),
            shutting_down: AtomicBool::new(false),
            stopped: AtomicUsize::new(0),
            totals: Mutex::new((0, 0)),
            loads: Loads::new(threads),
        })
    }

    /// The threads' loads, for the hand-off.
    pub(crate) fn loads(&self) -> &Loads {
        &self.loads
    }

    /// How many rooms it ties.
    pub(crate) fn threads(&self) -> usize {
        self.threads
    }

    /// Thread `index`'s relay channel.
    pub(crate) fn register(&self, index: usize, relay: RemoteSender<Event>) {
        lock(&self.relays)[index] = Some(relay);
    }

    /// Whether every thread registered its relay.
    pub(crate) fn is_complete(&self) -> bool {
        lock(&self.relays).iter().all(Option::is_some)
    }

    /// Every other thread's relay, by index (`None` at `index`).
    pub(crate) fn peers_of(&self, index: usize) -> Vec<Option<RemoteSender<Event>>> {
        let relays = lock(&self.relays);
        relays
            .iter()
            .enumerate()
            .map(|(i, r)| if i == index { None } else { r.clone() })
            .collect()
    }

    /// Takes `handle` for a member of thread `index`; `false` if it is taken (whatever its
    /// ASCII case).
    pub(crate) fn claim(&self, handle: &str, index: usize) -> bool {
        let mut names = lock(&self.names);
        let (threads, taken) = &mut *names;
        if !taken.insert(protocol::handle_key(handle)) {
            return false;
        }
        threads.insert(handle.to_owned(), index);
        true
    }

    /// Frees `handle`.
    pub(crate) fn release(&self, handle: &str) {
        let mut names = lock(&self.names);
        let (threads, taken) = &mut *names;
        if threads.remove(handle).is_some() {
            taken.remove(&protocol::handle_key(handle));
        }
    }

    /// The thread serving `handle`.
    pub(crate) fn thread_of(&self, handle: &str) -> Option<usize> {
        lock(&self.names).0.get(handle).copied()
    }

    /// The threads with a member in room `name`, as bits (made, empty, if new): a thread
    /// sets its bit when its first member enters the room, before it tells the others, and
    /// clears it when its last one leaves; a line said in the room goes to the threads whose
    /// bit is set when it is said. The same bits for every thread that holds them.
    pub(crate) fn room(&self, name: &str) -> Arc<AtomicU64> {
        let mut rooms = lock(&self.rooms);
        if let Some(bits) = rooms.get(name) {
            return Arc::clone(bits);
        }
        let bits = Arc::new(AtomicU64::new(0));
        rooms.insert(Arc::from(name), Arc::clone(&bits));
        bits
    }

    /// Forgets room `name` if no thread holds its bits any more.
    pub(crate) fn forget_room(&self, name: &str) {
        let mut rooms = lock(&self.rooms);
        if rooms
            .get(name)
            .is_some_and(|bits| Arc::strong_count(bits) == 1)
        {
            rooms.remove(name);
        }
    }

    /// From now on, no room announces leaves (everyone is being told the server stops).
    pub(crate) fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// A room finished its shutdown, having delivered `deliveries` lines and cut `cut_off`
    /// members off.
    pub(crate) fn mark_stopped(&self, deliveries: u64, cut_off: u64) {
        let mut totals = lock(&self.totals);
        totals.0 += deliveries;
        totals.1 += cut_off;
        drop(totals);
        self.stopped.fetch_add(1, Ordering::SeqCst);
    }

    /// The stopped rooms' lines delivered and members cut off, summed.
    pub(crate) fn totals(&self) -> (u64, u64) {
        *lock(&self.totals)
    }

    /// How many rooms finished their shutdown.
    pub(crate) fn stopped(&self) -> usize {
        self.stopped.load(Ordering::SeqCst)
    }
}
