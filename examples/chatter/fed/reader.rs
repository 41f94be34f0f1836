//! The reader: the node's tasklet that reads the room's stream back (`XREAD BLOCK` from the
//! last id it delivered, on a connection of its own) and delivers each entry to the members
//! here, in the stream's order. It says the node's hello first (the node registered, the
//! room's members learned, the stream read from its end), and after a loss it reads on from
//! where it was: what the other nodes said meanwhile, within the stream's history.

use std::rc::Rc;
use std::time::{Duration, Instant};

use super::redis::{Cmd, Config, Connection, RedisError, Value};
use super::Trouble;
use fibra::Handle;

use super::entry::Read;
use super::keys;
use super::state::Node;
use super::writer::{items, text, MAX_BACKOFF, MIN_BACKOFF};
use crate::room::{Chat, LOG};

/// How long one `XREAD` blocks in Redis.
pub(crate) const BLOCK: Duration = Duration::from_millis(1000);
/// Entries read at once at most (fewer for long lines: as many as fit the reply limit).
pub(crate) const COUNT: usize = 64;

/// At the room's stop (the reader is ended with the room's tasklets): the writer says the
/// node's goodbye.
struct Stop(Rc<Node>);

impl Drop for Stop {
    fn drop(&mut self) {
        if let Ok(mut state) = self.0.state.try_borrow_mut() {
            state.stopping = true;
        }
        self.0.wake_writer();
    }
}

/// Where the reader is in the stream, and how it reads.
struct Cursor {
    /// The id of the entry delivered last.
    last_id: String,
    /// Entries asked for at once.
    count: usize,
    /// Reads left to ask one entry at a time: after a reply too large for the limit (other
    /// nodes' lines may be longer than this node's), the entries of that read come one by
    /// one, then the reads are whole again.
    one_by_one: usize,
    /// The wait before the next connect; back to the least once a read is answered.
    backoff: Duration,
}

/// Runs the reader until the room stops, reading up to `count` entries at once.
pub(crate) fn run(h: &Handle, chat: &Rc<Chat>, node: &Rc<Node>, config: &Config, count: usize) {
    let _stop = Stop(Rc::clone(node));
    let mut at = Cursor {
        last_id: String::new(),
        count,
        one_by_one: 0,
        backoff: MIN_BACKOFF,
    };
    loop {
        let result = Connection::connect(h, config)
            .map_err(Trouble::from)
            .and_then(|mut conn| {
                if !node.state.borrow().ready {
                    at.last_id = hello(h, &mut conn, chat, node)?;
                } else {
                    check_gap(h, &mut conn, &at.last_id)?;
                }
                read(h, &mut conn, chat, node, &mut at)
            });
        let Err(e) = result;
        if let Trouble::Redis(RedisError::TooLarge { limit, .. }) = &e {
            log::warn!(target: LOG, "node {}: {count} entries of the room's stream were larger than \
                the {limit}-byte reply limit (another node takes longer lines): reading them one \
                at a time", node.name);
            at.one_by_one = count;
        }
        node.lost(&mut chat.room.borrow_mut(), &e);
        let _ = h.park_until(Instant::now() + at.backoff);
        at.backoff = (at.backoff * 2).min(MAX_BACKOFF);
    }
}

/// The node's hello: registered, its leftovers gone, the other nodes' members listed here;
/// returns the stream's last id, where the reading starts.
fn hello(h: &Handle, conn: &mut Connection, chat: &Chat, node: &Node) -> Result<String, Trouble> {
    let reply = conn.call(
        h,
        &keys::script(keys::HELLO)
            .arg(node.options.history.to_string())
            .arg(&node.name)
            .arg(&node.instance)
            .arg(node.options.ttl.as_millis().to_string()),
    )?;
    let parts = items(&reply).ok_or_else(|| unexpected("the hello", &reply))?;
    let last_id = parts.first().and_then(text).unwrap_or_else(|| "0-0".into());
    let mut room = chat.room.borrow_mut();
    let mut others = 0;
    let mut state = node.state.borrow_mut();
    for known in parts.get(1..).unwrap_or_default().chunks(3) {
        let [home, instance, handles] = known else {
            break;
        };
        let home: std::sync::Arc<str> = text(home).unwrap_or_default().into();
        let instance = text(instance).unwrap_or_default();
        state
            .instances
            .insert(std::sync::Arc::clone(&home), instance);
        for handle in items(handles).unwrap_or_default().iter().filter_map(text) {
            state
                .homes
                .insert(handle.as_str().into(), std::sync::Arc::clone(&home));
            if room.member(&handle).is_none() && !room.is_elsewhere(&handle) {
                room.joined_elsewhere(handle.into());
                others += 1;
            }
        }
    }
    drop(room);
    drop(state);
    log::info!(target: LOG, "node {} joined the room in Redis: {others} members on {} other nodes; reading from {last_id}",
        node.name, parts.len() / 3);
    node.state.borrow_mut().ready = true;
    node.wake_writer();
    Ok(last_id)
}

/// Reads the stream from `last_id` on, delivering each entry here, until the connection
/// fails.
fn read(
    h: &Handle,
    conn: &mut Connection,
    chat: &Chat,
    node: &Node,
    at: &mut Cursor,
) -> Result<std::convert::Infallible, Trouble> {
    let block = BLOCK.as_millis().to_string();
    let whole = at.count.to_string();
    loop {
        let count = if at.one_by_one > 0 { "1" } else { &whole };
        let reply = conn.call_blocking(
            h,
            &Cmd::new("XREAD")
                .arg("COUNT")
                .arg(count)
                .arg("BLOCK")
                .arg(&block)
                .arg("STREAMS")
                .arg(keys::LOG)
                .arg(&at.last_id),
            BLOCK,
        )?;
        // A read answered, not a connect made: a failure that comes back at every connect
        // keeps backing off.
        at.backoff = MIN_BACKOFF;
        // Nil: nothing new in BLOCK; else [[stream, [[id, [field, value, ...]], ...]]].
        let Some(streams) = items(&reply) else {
            continue;
        };
        let Some(entries) = streams
            .first()
            .and_then(items)
            .and_then(|s| s.get(1))
            .and_then(items)
        else {
            continue;
        };
        at.one_by_one = at.one_by_one.saturating_sub(entries.len());
        let mut room = chat.room.borrow_mut();
        for entry in entries {
            let Some([id, fields]) = items(entry).and_then(|e| <&[Value; 2]>::try_from(e).ok())
            else {
                continue;
            };
            let fields = items(fields).unwrap_or_default();
            let read = Read::from_fields(fields.chunks(2).filter_map(|pair| match pair {
                [name, value] => Some((bytes(name)?, bytes(value)?)),
                _ => None,
            }));
            node.deliver(&mut room, &read);
            if let Some(id) = text(id) {
                at.last_id = id;
            }
        }
    }
}

/// After a loss: says so if the stream's history no longer holds the entries after
/// `last_id` (trimmed by `MAXLEN` while this node was away, they are lost to it): the
/// entry it delivered last is gone, and the stream now starts after it.
fn check_gap(h: &Handle, conn: &mut Connection, last_id: &str) -> Result<(), Trouble> {
    let replies = super::pipeline(
        h,
        conn,
        &[
            Cmd::new("XRANGE").arg(keys::LOG).arg(last_id).arg(last_id),
            Cmd::new("XRANGE")
                .arg(keys::LOG)
                .arg("-")
                .arg("+")
                .arg("COUNT")
                .arg("1"),
        ],
    )?;
    let [ours, first] = &replies[..] else {
        return Ok(());
    };
    let first = items(first)
        .and_then(|f| f.first())
        .and_then(items)
        .and_then(|e| e.first())
        .and_then(text);
    let ours_gone = items(ours).is_some_and(<[Value]>::is_empty);
    if let Some(first) = first {
        if ours_gone && stream_id(&first) > stream_id(last_id) && last_id != "0-0" {
            log::warn!(target: LOG, "back in Redis after its history moved on: entries after {last_id} before {first} were trimmed (--redis-history) and are lost here");
        }
    }
    Ok(())
}

/// A stream id (`ms-seq`) as a number pair, for comparing.
fn stream_id(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

fn bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::Bulk(b) => Some(b),
        _ => None,
    }
}

fn unexpected(what: &str, reply: &Value) -> Trouble {
    Trouble::Other(format!("{what}: unexpected reply {reply:?}"))
}
