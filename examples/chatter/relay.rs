//! The reach of the rooms across threads (`--threads N`): every thread runs its own room for
//! the members it serves, and the [`Hub`] ties them into one. Handles are claimed at the hub,
//! under one lock; what is said here is fanned out here at once and crosses once to each other
//! thread with a member in its room (an [`Event`] through that thread's relay channel), where
//! that thread's room fans it out to its members by its own `Group`. Which threads have a
//! member in which room is in the hub ([`Hub::room`]), marked before the join is told, so
//! that a member who hears of a join and speaks reaches the joiner's thread; the joins and
//! leaves themselves cross to every thread, for `/who`.
//!
//! Two tasklets per thread carry it: the forwarder, the only sender of this thread's events
//! (so that their order holds), and the relay, which applies the other threads' events to
//! the room here. A session that speaks while the outbox is over [`OUTBOX_LIMIT`] waits
//! (a thread that does not take its events holds up the speakers, not its own members).

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fibra::net::{Handed, LoadToken};
use fibra::rt::Unparker;
use fibra::tasks::{remote_channel, RemoteReceiver, RemoteSender, TasksExt};
use fibra::{Handle, Schedule};

use super::config::Config;
use super::hub::{Event, Hub};
use super::protocol;
use super::reach::Reach;
use super::room::{Chat, Room};
use super::server::{adopt_loop, listen, Chatter};
use super::shutdown::stop_here;

/// Events waiting for the forwarder beyond which a speaking session waits.
const OUTBOX_LIMIT: usize = 64 * 1024;
/// Events the relay applies in one go.
const RELAY_BATCH: usize = 1024;
/// How long the relay gathers the other threads' events after applying a batch that came
/// within two of these of the one before (unless it was full): at most about one round of relayed
/// lines per grain, a tenth of the members' flush delay.
const RELAY_GRAIN: Duration = Duration::from_millis(1);

/// One thread's side of the room across threads.
#[derive(Debug)]
pub(crate) struct Relay {
    hub: Arc<Hub>,
    index: usize,
    outbox: Rc<Outbox>,
    /// The rooms with a member here, each with the threads that have one ([`Hub::room`]):
    /// where a line said in it goes. Empty past 64 threads: every line goes everywhere.
    rooms: RefCell<HashMap<Arc<str>, Arc<AtomicU64>>>,
}

/// What this thread's room posted for the others, until the forwarder takes it.
#[derive(Debug, Default)]
struct Outbox {
    /// Events for the other threads, in the order they happened.
    events: RefCell<Vec<(To, Event)>>,
    /// The forwarder, woken by each event.
    forwarder: OnceCell<Unparker>,
    /// Sessions waiting for the outbox to shrink.
    waiting: RefCell<Vec<Unparker>>,
}

/// The threads an event is for.
#[derive(Debug, Clone, Copy)]
enum To {
    /// Every other thread.
    All,
    /// Those whose bit is set (bit `j`: thread `j`; every bit: all, past 64 threads).
    Some(u64),
    /// Thread `j`.
    One(usize),
}

impl To {
    /// Whether thread `j` is among them.
    fn includes(self, j: usize) -> bool {
        match self {
            To::All => true,
            To::Some(bits) => bits == u64::MAX || (j < 64 && bits & (1 << j) != 0),
            To::One(to) => to == j,
        }
    }
}

impl Relay {
    /// Whether rooms keep the threads that have a member in them (up to 64 threads).
    fn tracks_rooms(&self) -> bool {
        self.hub.threads() <= 64
    }

    /// A member here entered room `place`: if it is the first here, this thread is marked
    /// in the room's bits (before the join is told beyond, so that whoever hears of it and
    /// speaks in the room reaches this thread).
    fn entered(&self, room: &Room, place: &str) {
        if !self.tracks_rooms() || room.members_here(place) != 1 {
            return;
        }
        let bits = self.hub.room(place);
        bits.fetch_or(1 << self.index, Ordering::SeqCst);
        self.rooms.borrow_mut().insert(Arc::from(place), bits);
    }

    /// A member here left room `place`: if it was the last here, this thread is no longer
    /// marked in the room's bits.
    fn exited(&self, room: &Room, place: &str) {
        if !self.tracks_rooms() || room.members_here(place) != 0 {
            return;
        }
        let Some(bits) = self.rooms.borrow_mut().remove(place) else {
            return;
        };
        bits.fetch_and(!(1 << self.index), Ordering::SeqCst);
        drop(bits);
        self.hub.forget_room(place);
    }

    /// The other threads a line said in room `place` goes to.
    fn audience(&self, place: &str) -> To {
        match self.rooms.borrow().get(place) {
            Some(bits) => To::Some(bits.load(Ordering::SeqCst) & !(1 << self.index)),
            None => To::All,
        }
    }

    /// `handle` joined (or left) room `place` here: told to its members here, and to the
    /// other threads, whose rooms of that name list it (or no longer do). Once the hub
    /// stops, everyone is being told the server stops: no joins, no leaves.
    fn announce_move(&self, room: &mut Room, handle: &str, place: &str, joined: bool) {
        if self.hub.is_shutting_down() {
            return;
        }
        let line: Arc<str> = if joined {
            protocol::joined_line(place, handle).into()
        } else {
            protocol::left_line(place, handle).into()
        };
        if !room.announce_in(place, &line) {
            return;
        }
        let (place, handle, from) = (Arc::from(place), Arc::from(handle), self.index);
        let event = if joined {
            Event::Joined {
                from,
                place,
                handle,
                line,
            }
        } else {
            Event::Left {
                from,
                place,
                handle,
                line,
            }
        };
        self.post(To::All, event);
    }

    /// Queues `event` for the other threads (all, some, or thread `to`) and wakes the
    /// forwarder.
    fn post(&self, to: To, event: Event) {
        self.outbox.events.borrow_mut().push((to, event));
        if let Some(forwarder) = self.outbox.forwarder.get() {
            forwarder.unpark();
        }
    }
}

impl Reach for Relay {
    fn claim(&self, _h: &Handle, handle: &str) -> bool {
        self.hub.claim(handle, self.index)
    }

    fn release(&self, handle: &str) {
        self.hub.release(handle);
    }

    fn say(&self, room: &mut Room, handle: &str, text: &str) {
        let Some(place) = room.place_of(handle) else {
            return;
        };
        // Made once: for the members of its room here and for every other thread.
        let line: Arc<str> = format!("{handle} says: {text}").into();
        room.fan_out_in(&place, &line);
        // Only to the threads with a member in the room: the others would fan it out to none.
        let to = self.audience(&place);
        if !matches!(to, To::Some(0)) {
            self.post(to, Event::Room { place, line });
        }
    }

    fn joined(&self, room: &mut Room, handle: &str) {
        self.entered(room, protocol::LOBBY);
        self.announce_move(room, handle, protocol::LOBBY, true);
    }

    fn left(&self, room: &mut Room, handle: &str) {
        self.exited(room, protocol::LOBBY);
        self.announce_move(room, handle, protocol::LOBBY, false);
    }

    fn left_room(&self, room: &mut Room, handle: &str, place: &str) {
        self.exited(room, place);
        self.announce_move(room, handle, place, false);
    }

    fn moved(&self, room: &mut Room, handle: &str, to: &str) -> bool {
        if let Some((from, to)) = room.move_member(handle, to) {
            self.exited(room, &from);
            self.announce_move(room, handle, &from, false);
            self.entered(room, &to);
            self.announce_move(room, handle, &to, true);
        }
        true
    }

    fn tell(&self, to: &str, line: &str) -> bool {
        let Some(there) = self.hub.thread_of(to) else {
            return false;
        };
        self.post(
            To::One(there),
            Event::Tell {
                to: to.into(),
                line: line.into(),
            },
        );
        true
    }

    fn pace(&self, h: &Handle) {
        loop {
            if self.outbox.events.borrow().len() <= OUTBOX_LIMIT {
                return;
            }
            self.outbox.waiting.borrow_mut().push(h.unparker());
            h.park();
        }
    }

    fn charge(&self) -> Option<LoadToken> {
        Some(self.hub.loads().charge(self.index))
    }
}

impl Chatter {
    /// Serves thread `index`'s part of a room across `hub.threads()` threads on `schedule`:
    /// with `listen_on`, on its own `SO_REUSEPORT` listener at that address; without, the
    /// connections a [`Handoff`](fibra::net::Handoff) hands to the returned sender. The hub
    /// learns this thread's relay here; start the hand-off once every thread is started.
    pub(crate) fn start_threaded(
        schedule: &mut Schedule,
        listen_on: Option<&str>,
        config: Config,
        hub: Arc<Hub>,
        index: usize,
    ) -> Result<(Chatter, RemoteSender<Handed>), Box<dyn std::error::Error>> {
        let outbox = Rc::new(Outbox::default());
        let reach = Relay {
            hub: Arc::clone(&hub),
            index,
            outbox: Rc::clone(&outbox),
            rooms: RefCell::new(HashMap::new()),
        };
        let (events_tx, events) = remote_channel::<Event>(&schedule.remote(), 4096);
        let (handed_tx, handed) = remote_channel::<Handed>(&schedule.remote(), 1024);
        let mut chatter = Chatter {
            chat: Chat::new(Box::new(reach)),
            addr: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
            config,
        };
        chatter.chat.room.borrow_mut().max_rooms = chatter.config.max_rooms;
        chatter.chat.room.borrow_mut().max_rate = chatter.config.max_rate;
        match listen_on {
            Some(on) => {
                let listener = listen(schedule, on, chatter.config.telnet_options(), true)?;
                chatter.addr = listener.local_addr();
                chatter.accept(schedule, listener)?;
            }
            None => {
                let (chat, config) = (Rc::clone(&chatter.chat), chatter.config.clone());
                let adopter = schedule.spawn_named("chatter adopter", move |h| {
                    adopt_loop(h, &chat, &handed, &config)
                })?;
                chatter.chat.room.borrow_mut().tasklets.push(adopter);
            }
        }
        let (chat, o, h2) = (
            Rc::clone(&chatter.chat),
            Rc::clone(&outbox),
            Arc::clone(&hub),
        );
        let forwarder = schedule.spawn_named("chatter forwarder", move |h| {
            forward(h, &chat, &o, &h2, index)
        })?;
        let _ = outbox.forwarder.set(schedule.unparker(forwarder));
        let (chat, h2) = (Rc::clone(&chatter.chat), Arc::clone(&hub));
        let relay_id =
            schedule.spawn_named("chatter relay", move |h| relay(h, &chat, &events, &h2))?;
        chatter
            .chat
            .room
            .borrow_mut()
            .tasklets
            .extend([forwarder, relay_id]);
        hub.register(index, events_tx);
        Ok((chatter, handed_tx))
    }
}

/// Takes the events this thread's room posted and sends each to the threads it is for, in
/// order; the only sender of this thread's events, so that their order holds.
fn forward(h: &Handle, chat: &Chat, outbox: &Outbox, hub: &Hub, index: usize) {
    let mut batch: Vec<(To, Event)> = Vec::new();
    let mut peers: Vec<Option<RemoteSender<Event>>> = Vec::new();
    loop {
        std::mem::swap(&mut batch, &mut *outbox.events.borrow_mut());
        for waiting in outbox.waiting.borrow_mut().drain(..) {
            waiting.unpark();
        }
        // Every thread registered before the first connection; fetched once.
        if peers.iter().flatten().count() + 1 < hub.threads() {
            peers = hub.peers_of(index);
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
                if to.includes(j) && peer.send_parking(h, event.clone()).is_ok() {
                    crossed += 1;
                }
            }
        }
        chat.room.borrow_mut().crossed += crossed;
    }
}

/// Applies what the other threads' rooms sent: lines for every member here, joins and
/// leaves, a whisper for one, the shutdown (after which the hub hears this room stopped).
fn relay(h: &Handle, chat: &Chat, events: &RemoteReceiver<Event>, hub: &Hub) {
    let mut batch = Vec::with_capacity(256);
    // When the last batch was applied.
    let mut last: Option<Instant> = None;
    while events.receive_many(h, &mut batch, RELAY_BATCH) > 0 {
        let full = batch.len() == RELAY_BATCH;
        for event in batch.drain(..) {
            match event {
                Event::Room { place, line } => chat.room.borrow_mut().deliver_in(&place, &line),
                Event::Joined {
                    from,
                    place,
                    handle,
                    line,
                } => chat
                    .room
                    .borrow_mut()
                    .joined_elsewhere_in(&place, handle, from, &line),
                Event::Left {
                    from,
                    place,
                    handle,
                    line,
                } => chat
                    .room
                    .borrow_mut()
                    .left_elsewhere_in(&place, &handle, from, &line),
                Event::Tell { to, line } => chat.room.borrow_mut().tell_here(&to, &line),
                Event::Shutdown => {
                    let stats = stop_here(h, chat);
                    hub.mark_stopped(stats.deliveries, stats.cut_off);
                    return;
                }
            }
        }
        chat.room.borrow_mut().relay_rounds += 1;
        // Gathers what the other threads say over the next grain into one batch: a round of
        // this room's fan-out for each of them costs a share of every member's output here,
        // and N - 1 threads each waking it per line make that a round per line. Only while
        // batches come within two grains of each other (a paced relay's next batch comes
        // one grain after the last): a quiet room's lines go at once, with no timer's round
        // after each.
        let now = Instant::now();
        let busy = last.is_some_and(|at| now.duration_since(at) < 2 * RELAY_GRAIN);
        last = Some(now);
        if busy && !full {
            h.sleep(RELAY_GRAIN);
        }
    }
}
