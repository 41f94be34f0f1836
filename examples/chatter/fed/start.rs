//! A federated chatter starting: the room with its [`Federation`] reach, and the reach's
//! two tasklets, the reader (among the room's tasklets, ended by the stop) and the writer
//! (outside them: at the stop it says the node's goodbye, then ends by itself).

use std::rc::Rc;
use std::sync::Arc;

use super::redis::{Config as RedisConfig, DEFAULT_MAX_REPLY};
use fibra::net::Handed;
use fibra::tasks::{remote_channel, RemoteSender};
use fibra::Schedule;

use super::state::{Federation, Node};

/// How long a connection to Redis and each call may take (an `XREAD BLOCK` this long more).
const REDIS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);
/// An entry's bytes beside its line, at most: its id, field names, node, instance, handle,
/// a whisper's prefix and recipient, and RESP's headers.
const ENTRY_OVERHEAD: usize = 4096;
/// The longest line a federated chatter takes (`--max-line`): every node must read every
/// other's entries, one at a time at least, within its reply limit (`DEFAULT_MAX_REPLY` or
/// more), whatever `--max-line` the others run with.
pub(crate) const MAX_FEDERATED_LINE: usize = 16 * 1024 * 1024;
use super::{reader, writer, Options};
use crate::config::Config;
use crate::hub::{Event, Hub};
use crate::room::Chat;
use crate::server::{adopt_loop, listen, Chatter};
use crate::shutdown::stop_here;

impl Chatter {
    /// Listens on `addr` and serves the chat on `schedule` as the node `options.node`
    /// (default: the address listened on) of the room in Redis at `options.url`.
    pub(crate) fn start_federated(
        schedule: &mut Schedule,
        addr: &str,
        config: Config,
        options: &Options,
    ) -> Result<Chatter, Box<dyn std::error::Error>> {
        let listener = listen(schedule, addr, config.telnet_options(), false)?;
        let at = listener.local_addr();
        let name = options
            .node
            .clone()
            .unwrap_or_else(|| super::default_name(&at.to_string()));
        let mut chatter = federated(schedule, config, options, name, None)?;
        chatter.addr = at;
        chatter.accept(schedule, listener)?;
        Ok(chatter)
    }

    /// Thread `index`'s part of a federated room on `hub.threads()` threads: the node
    /// `NAME/index` (NAME: `options.node`, or `default_name`), serving its own listener
    /// (`listen_on`, `SO_REUSEPORT`) or the connections the hand-off sends (the returned
    /// sender). The hub carries only the stop and the loads; the rest goes through Redis.
    pub(crate) fn start_federated_thread(
        schedule: &mut Schedule,
        listen_on: Option<&str>,
        config: Config,
        options: &Options,
        default_name: &str,
        hub: Arc<Hub>,
        index: usize,
    ) -> Result<(Chatter, RemoteSender<Handed>), Box<dyn std::error::Error>> {
        let base = options.node.as_deref().unwrap_or(default_name);
        let load = Some((Arc::clone(&hub), index));
        let mut chatter = federated(schedule, config, options, format!("{base}/{index}"), load)?;
        let (handed_tx, handed) = remote_channel::<Handed>(&schedule.remote(), 1024);
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
        // The hub's stop reaches this thread's room through a relay channel of its own.
        let (events_tx, events) = remote_channel::<Event>(&schedule.remote(), 16);
        let (chat, h2) = (Rc::clone(&chatter.chat), Arc::clone(&hub));
        let stopper = schedule.spawn_named("chatter stop", move |h| {
            while let Some(event) = events.receive(h) {
                if let Event::Shutdown = event {
                    let stats = stop_here(h, &chat);
                    h2.mark_stopped(stats.deliveries, stats.cut_off);
                    return;
                }
            }
        })?;
        chatter.chat.room.borrow_mut().tasklets.push(stopper);
        hub.register(index, events_tx);
        Ok((chatter, handed_tx))
    }
}

/// A chatter whose room is the node `name` of the federated room.
fn federated(
    schedule: &mut Schedule,
    config: Config,
    options: &Options,
    name: String,
    load: Option<(Arc<Hub>, usize)>,
) -> Result<Chatter, Box<dyn std::error::Error>> {
    if config.max_line > MAX_FEDERATED_LINE {
        return Err(format!(
            "--max-line {} with --redis: at most {MAX_FEDERATED_LINE} bytes (every node must \
             read every other node's lines within its Redis reply limit)",
            config.max_line
        )
        .into());
    }
    // A chat notices a Redis that hangs within a second, not the client's default 5 s.
    let redis = RedisConfig::parse(&options.url)
        .map_err(|e| format!("--redis `{}`: {e}", options.url))?
        .with_connect_timeout(REDIS_TIMEOUT)
        .with_call_timeout(REDIS_TIMEOUT);
    let node = Node::new(name, options.clone());
    // The address only: the URL may hold a password.
    log::info!(target: crate::room::LOG, "node {}: the room is in the Redis at {}", node.name, redis.addr());
    let chat = Chat::new(Box::new(Federation {
        node: Rc::clone(&node),
        load,
    }));
    // The reader's replies hold up to `count` entries, each a line of up to --max-line:
    // they fit its reply limit. Another node's lines may be longer (its own --max-line, up
    // to MAX_FEDERATED_LINE): a read too large for the limit is asked again one entry at a
    // time (reader.rs), which always fits.
    let entry = config.max_line.saturating_add(ENTRY_OVERHEAD);
    let reading = redis
        .clone()
        .with_max_reply(DEFAULT_MAX_REPLY.max(entry.saturating_mul(2)));
    let count = (reading.max_reply() / entry).clamp(1, reader::COUNT);
    let (c, n) = (Rc::clone(&chat), Rc::clone(&node));
    let reader = schedule.spawn_named("chatter redis reader", move |h| {
        reader::run(h, &c, &n, &reading, count)
    })?;
    let (c, n) = (Rc::clone(&chat), Rc::clone(&node));
    let writer = schedule.spawn_named("chatter redis writer", move |h| {
        writer::run(h, &c, &n, &redis)
    })?;
    let _ = node.reader.set(schedule.unparker(reader));
    let _ = node.writer.set(schedule.unparker(writer));
    chat.room.borrow_mut().tasklets.push(reader);
    chat.room.borrow_mut().max_rate = config.max_rate;
    Ok(Chatter {
        chat,
        addr: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
        config,
    })
}
