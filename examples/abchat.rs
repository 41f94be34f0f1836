//! ABChat, the abstract chat server on gevent, on fibra: length-prefixed frames, a name to
//! log in, broadcasts to everyone, private messages, a per-client rate limit, and a status
//! line; one tasklet per client.
//!
//! ```text
//! cargo run --release --example abchat -- --addr 127.0.0.1:8888 --interval 0 --status-secs 600
//! ```
//!
//! The protocol (every frame a 4-byte big-endian length, then UTF-8):
//! - The first frame is the client's name, 1–32 characters without whitespace or control
//!   characters; the answer is `ok <name>`, or `error <reason>` and the connection closes
//!   (also when no name comes within `--login-timeout`, 30 s).
//! - A name already online **replaces** the old connection (a client that reconnects keeps
//!   its name): the old one gets `error replaced` and is closed; its end never removes the
//!   new one.
//! - `@<name> <text>` goes to that client only, as `<from> (private): <text>`; an unknown or
//!   offline name gets back `error no such user <name>`. Any other frame goes to every
//!   client, the sender included, as `<from>: <text>`, in the order the server received them.
//! - `--interval MS`: a frame sooner than that after the sender's last accepted one is
//!   dropped and the sender gets `error too fast`; a dropped frame does not restart the
//!   interval, and neither does logging in again under the name. 0 (the default) is no
//!   limit.
//! - A frame over `--max-frame` (64 KiB) closes that connection (after `error frame longer
//!   than <limit> bytes`); a client that does not read is cut off at `--max-outbound` (1 MiB) queued; the
//!   others never wait for either.
//! - Every `--status-secs` (600) one log line: clients online, frames in and deliveries out
//!   per second since the last line.
//!
//! ABChat's own bugs are gone: frames split across reads in any way are put together (its
//! `recv(4)` broke on short reads), a replaced connection's end cannot log out its
//! successor (its stale worker did), and a dropped frame does not restart the interval (its
//! `check_interval` did). Ctrl-C stops it.

#[path = "shared/abchat_name.rs"]
mod abchat_name;
#[path = "shared/cli.rs"]
mod cli;
#[path = "shared/stop_signals.rs"]
mod stop_signals;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use fibra::net::{
    Conn, ConnOptions, Framing, Group, GroupOptions, ListenOptions, Listener, Lost, NetError,
    NetExt, NetPlugin, SlowPolicy,
};
use fibra::signal::{Signal, SignalExt};
use fibra::tasks::TasksExt;
use fibra::{Handle, SpawnOptions};

const LOG: &str = "abchat";

const HELP: &str =
    "abchat: ABChat's chat server: length-prefixed frames, log-in names, broadcasts, \
private messages

usage: abchat [--addr HOST:PORT] [--max-frame BYTES] [--interval MS]
              [--max-outbound BYTES] [--status-secs S] [--login-timeout S]
              [--flush-delay MS]
  --addr           where clients connect (default 127.0.0.1:8888)
  --max-frame      the longest frame a client may send (default 65536)
  --interval       the least time between a client's frames, ms; 0: no limit (default 0)
  --max-outbound   output queued to a client before it is cut off (default 1048576)
  --status-secs    seconds between status lines (default 600)
  --login-timeout  seconds a new connection has to send its name (default 30)
  --flush-delay    ms a client's output may wait to be gathered into one write (default 10)";

#[derive(Clone)]
struct Config {
    addr: String,
    max_frame: usize,
    interval: Duration,
    max_outbound: usize,
    status_every: Duration,
    login_timeout: Duration,
    flush_delay: Duration,
}

fn parse_args() -> Config {
    let mut c = Config {
        addr: "127.0.0.1:8888".to_owned(),
        max_frame: 64 * 1024,
        interval: Duration::ZERO,
        max_outbound: 1024 * 1024,
        status_every: Duration::from_secs(600),
        login_timeout: Duration::from_secs(30),
        flush_delay: Duration::from_millis(10),
    };
    let mut args = cli::Args::new("abchat", HELP);
    while let Some(flag) = args.next_flag() {
        let f = flag.as_str();
        match f {
            "--addr" => c.addr = args.value(f),
            "--max-frame" => c.max_frame = args.number(f, 1, 16 << 20) as usize,
            "--interval" => c.interval = Duration::from_millis(args.number(f, 0, 3_600_000)),
            "--max-outbound" => c.max_outbound = args.number(f, 1024, 1 << 30) as usize,
            "--status-secs" => c.status_every = Duration::from_secs(args.number(f, 1, 86_400)),
            "--login-timeout" => c.login_timeout = Duration::from_secs(args.number(f, 1, 3600)),
            "--flush-delay" => c.flush_delay = Duration::from_millis(args.number(f, 0, 1000)),
            _ => args.unknown(f),
        }
    }
    c
}

/// The clients online, by name, and the group that reaches them all.
struct Room {
    everyone: Group,
    by_name: RefCell<HashMap<String, Conn>>,
    /// The time of each name's last accepted frame, for `--interval`: by name, so that
    /// logging in again does not restart it; names idle for an interval are forgotten.
    last_accepted: RefCell<HashMap<String, Instant>>,
    /// The size of `last_accepted` past which it is pruned next.
    prune_at: Cell<usize>,
    frames_in: Cell<u64>,
    deliveries: Cell<u64>,
}

impl Room {
    /// Whether `name` may have a frame accepted at `now`: `interval` (0: no limit) since its
    /// last accepted one, whichever connection sent that.
    fn may_speak(&self, name: &str, now: Instant, interval: Duration) -> bool {
        interval.is_zero()
            || self
                .last_accepted
                .borrow()
                .get(name)
                .is_none_or(|&last| now.saturating_duration_since(last) >= interval)
    }

    /// `name`'s frame was accepted at `now`. The names whose interval is over are forgotten
    /// once they are many: the map holds about the names that spoke within an interval.
    fn accepted(&self, name: &str, now: Instant, interval: Duration) {
        if interval.is_zero() {
            return;
        }
        let mut last = self.last_accepted.borrow_mut();
        match last.get_mut(name) {
            Some(at) => *at = now,
            None => {
                last.insert(name.to_owned(), now);
                // Pruned when it doubled since the last pruning (or passed the names
                // online): a scan now and then, not one per frame.
                if last.len()
                    > self
                        .prune_at
                        .get()
                        .max(2 * self.by_name.borrow().len() + 64)
                {
                    last.retain(|_, &mut at| now.saturating_duration_since(at) < interval);
                    self.prune_at.set(2 * last.len());
                }
            }
        }
    }
}

fn main() -> Result<(), cli::Failure> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let config = parse_args();
    let mut schedule = fibra::schedule()?;
    // Caught before the address is said: a stop signal from then on gets the clean stop.
    stop_signals::catch(&mut schedule, &[Signal::INT, Signal::TERM])?;
    let conn = ConnOptions::new()
        .with_framing(Framing::LengthPrefixed)
        .with_max_frame(config.max_frame)
        .with_send_limit(config.max_outbound)
        .with_flush_delay(config.flush_delay);
    let listener = schedule
        .plugin::<NetPlugin>()
        .ok_or("no network plugin")?
        .listen_with(config.addr.as_str(), ListenOptions::new().with_conn(conn))
        .map_err(|e| format!("cannot serve abchat on `{}`: {e}", config.addr))?;
    log::info!(target: LOG, "abchat listening on {}", listener.local_addr());
    let room = Rc::new(Room {
        everyone: Group::with_options(
            GroupOptions::new()
                .with_framing(Framing::LengthPrefixed)
                .with_slow_policy(SlowPolicy::Disconnect),
        ),
        by_name: RefCell::new(HashMap::new()),
        last_accepted: RefCell::new(HashMap::new()),
        prune_at: Cell::new(0),
        frames_in: Cell::new(0),
        deliveries: Cell::new(0),
    });
    let (r, c) = (Rc::clone(&room), config.clone());
    schedule.spawn(move |h| accept_loop(h, &r, &listener, &c))?;
    let (r, every) = (Rc::clone(&room), config.status_every);
    schedule.spawn(move |h| status(h, &r, every))?;
    let signal = schedule.block_on(|h| h.signals(&[Signal::INT, Signal::TERM]))??;
    log::info!(target: LOG, "{signal}: stopping");
    let _ = room.everyone.close_all(Some(b"error server shutting down"));
    // Until every goodbye is written and every connection closed, at most 2 s (it waited the
    // whole 2 s, whatever was left).
    if !schedule.drain(Duration::from_secs(2))? {
        log::warn!(target: LOG, "not every connection closed within 2 s; the rest are dropped");
    }
    Ok(())
}

fn accept_loop(h: &Handle, room: &Rc<Room>, listener: &Listener, config: &Config) {
    loop {
        let (conn, peer) = match h.accept(listener) {
            Ok(accepted) => accepted,
            Err(NetError::Closed) => return,
            Err(e) => {
                log::warn!(target: LOG, "accept: {e}");
                continue;
            }
        };
        let (room, config) = (Rc::clone(room), config.clone());
        let options = SpawnOptions::new().name("abchat client");
        if let Err(e) = h.spawn_detached_with(options, move |h| client(h, &room, &conn, &config)) {
            log::warn!(target: LOG, "no tasklet for {peer}: {e}"); // the connection closes
        }
    }
}

/// One client, from its name to its end.
fn client(h: &Handle, room: &Rc<Room>, conn: &Conn, config: &Config) {
    let first = match h.receive_until(conn, Instant::now() + config.login_timeout) {
        Ok(frame) => frame,
        Err(e) => {
            refuse(conn, &e);
            return;
        }
    };
    let name = match std::str::from_utf8(&first) {
        Err(_) => Err("a name is UTF-8"),
        Ok(name) => abchat_name::bad_name(name).map_or(Ok(name), Err),
    };
    let name = match name {
        Ok(name) => name.to_owned(),
        Err(reason) => {
            let _ = conn.try_send_frame(format!("error {reason}").as_bytes());
            conn.close();
            return;
        }
    };
    let Some(member) = Member::join(room, &name, conn) else {
        return;
    };
    let mut frame = Vec::with_capacity(256);
    loop {
        if let Err(e) = h.receive_into(conn, &mut frame) {
            if let NetError::Lost(lost @ Lost::Slow { .. }) = e {
                log::info!(target: LOG, "{name} cut off: {lost}");
            }
            refuse(conn, &e);
            break;
        }
        room.frames_in.set(room.frames_in.get() + 1);
        let now = Instant::now();
        if !room.may_speak(&name, now, config.interval) {
            member.tell(b"error too fast"); // dropped; the interval runs from the last accepted
            continue;
        }
        let Ok(text) = std::str::from_utf8(&frame) else {
            member.tell(b"error a frame is UTF-8");
            continue;
        };
        room.accepted(&name, now, config.interval);
        match text.strip_prefix('@') {
            Some(private) => {
                let (to, words) = private.split_once(' ').unwrap_or((private, ""));
                member.whisper(to, words);
            }
            None => member.say(text),
        }
    }
}

/// Tells a connection whose receive failed why, where that helps.
fn refuse(conn: &Conn, e: &NetError) {
    let reason = match e {
        NetError::Lost(Lost::TooLong { limit }) => format!("error frame longer than {limit} bytes"),
        NetError::TimedOut => "error no name in time".to_owned(),
        _ => return,
    };
    let _ = conn.try_send_frame(reason.as_bytes());
    conn.close();
}

/// A client online under its name; dropping it (however its tasklet ends) takes it out,
/// unless a newer connection took the name over.
struct Member {
    room: Rc<Room>,
    name: String,
    conn: Conn,
}

impl Member {
    /// Takes `name`, replacing a connection online under it, and answers `ok <name>`.
    fn join(room: &Rc<Room>, name: &str, conn: &Conn) -> Option<Member> {
        let old = room
            .by_name
            .borrow_mut()
            .insert(name.to_owned(), conn.clone());
        if let Some(old) = old {
            log::info!(target: LOG, "{name} logged in again: the old connection is replaced");
            room.everyone.remove(&old);
            let _ = old.try_send_frame(b"error replaced");
            old.close();
        }
        let member = Member {
            room: Rc::clone(room),
            name: name.to_owned(),
            conn: conn.clone(),
        };
        // The answer goes before anything said to the group from now on.
        member.tell(format!("ok {name}").as_bytes());
        if room.everyone.add(conn).is_err() {
            return None; // lost already; the drop takes the name back out
        }
        log::debug!(target: LOG, "{name} online ({} clients)", room.everyone.len());
        Some(member)
    }

    /// `<name>: <text>` to every client, this one included.
    fn say(&self, text: &str) {
        let room = &self.room;
        room.everyone.send_with(|out| {
            let len = self.name.len() + 2 + text.len();
            out.extend_from_slice(&(len as u32).to_be_bytes());
            out.extend_from_slice(self.name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(text.as_bytes());
        });
        room.deliveries
            .set(room.deliveries.get() + room.everyone.len() as u64);
    }

    /// `<name> (private): <text>` to `to` alone.
    fn whisper(&self, to: &str, text: &str) {
        let target = self.room.by_name.borrow().get(to).cloned();
        match target {
            Some(target) => {
                let line = format!("{} (private): {text}", self.name);
                send_or_cut(&self.room, &target, line.as_bytes());
            }
            None => self.tell(format!("error no such user {to}").as_bytes()),
        }
    }

    /// A frame to this client alone, after what the group sent it before.
    fn tell(&self, payload: &[u8]) {
        send_or_cut(&self.room, &self.conn, payload);
    }
}

/// Sends `payload` to `conn` without waiting; a client whose output is full is cut off.
fn send_or_cut(room: &Room, conn: &Conn, payload: &[u8]) {
    room.deliveries.set(room.deliveries.get() + 1);
    if let Err(NetError::Full { .. }) = conn.try_send_frame(payload) {
        log::info!(target: LOG, "a client that does not read is cut off");
        conn.abort();
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.room.everyone.remove(&self.conn);
        let mut by_name = self.room.by_name.borrow_mut();
        // A newer connection under this name stays.
        if by_name
            .get(&self.name)
            .is_some_and(|c| c.id() == self.conn.id())
        {
            by_name.remove(&self.name);
            log::debug!(target: LOG, "{} offline", self.name);
        }
    }
}

/// One log line every `every`: clients online, frames in and deliveries out per second.
fn status(h: &Handle, room: &Room, every: Duration) {
    let (mut frames, mut deliveries, mut since) = (0, 0, Instant::now());
    loop {
        h.sleep(every);
        let secs = since.elapsed().as_secs_f64().max(1e-9);
        let (f, d) = (room.frames_in.get(), room.deliveries.get());
        log::info!(
            target: LOG,
            "status: {} clients online, {:.1} frames in/s, {:.1} deliveries out/s",
            room.by_name.borrow().len(),
            (f - frames) as f64 / secs,
            (d - deliveries) as f64 / secs
        );
        (frames, deliveries, since) = (f, d, Instant::now());
    }
}
