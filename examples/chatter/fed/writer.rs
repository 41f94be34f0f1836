//! The writer: the node's one tasklet that changes Redis, on a connection of its own, so
//! that what it writes keeps its order: the sessions' claims, the entries made here
//! (`XADD`, pipelined, from the outbox), the handles freed after their members' leaves, the
//! heartbeat (the node's key, its members' handles) and the reaper; at the stop, the
//! node's goodbye. When Redis is out of reach it tries again (100 ms, doubling to 1 s), and
//! when it is back it publishes the outbox.

use std::rc::Rc;
use std::time::{Duration, Instant};

use super::redis::{Cmd, Config, Connection, Value};
use fibra::tasks::TasksExt;
use fibra::Handle;

use super::entry::Kind;
use super::keys;
use super::state::{Claim, Node};
use super::{call, pipeline, Trouble};
use crate::room::{Chat, LOG};

/// Entries written in one pipeline at most.
const BATCH: usize = 512;
/// Bytes of text written in one pipeline, about (at least one entry).
const BATCH_BYTES: usize = 4 << 20;
/// The first wait before connecting again; it doubles up to [`MAX_BACKOFF`].
pub(crate) const MIN_BACKOFF: Duration = Duration::from_millis(100);
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Runs the writer until the room stops (and the goodbye is said, if Redis is in reach).
pub(crate) fn run(h: &Handle, chat: &Rc<Chat>, node: &Rc<Node>, config: &Config) {
    let mut epoch: Option<String> = None;
    // Each connection offers an epoch of its own: one set again by the node that set the
    // first (a Redis restarted empty) differs from it.
    let mut offers: u64 = 0;
    let mut backoff = MIN_BACKOFF;
    loop {
        // Nothing before the reader's hello (the node registered, its leftovers gone).
        loop {
            let state = node.state.borrow();
            if state.stopping {
                return;
            }
            if state.ready {
                break;
            }
            drop(state);
            let _ = h.park_until(Instant::now() + MIN_BACKOFF);
        }
        let generation = node.state.borrow().generation;
        let result = Connection::connect(h, config)
            .map_err(Trouble::from)
            .and_then(|mut conn| {
                offers += 1;
                let offer = format!("{}/{offers}", node.instance);
                let fresh = check_epoch(h, &mut conn, &offer, &mut epoch)?;
                beat(h, &mut conn, chat, node)?;
                if !node.state.borrow().up || fresh {
                    node.found(fresh);
                    if let Some(reader) = node.reader.get() {
                        reader.unpark();
                    }
                }
                backoff = MIN_BACKOFF;
                serve(h, &mut conn, chat, node, generation)
            });
        match result {
            Ok(()) => return, // stopped, goodbye said
            Err(e) => {
                node.lost(&mut chat.room.borrow_mut(), &e);
                if node.state.borrow().stopping {
                    return;
                }
                let _ = h.park_until(Instant::now() + backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Whether this Redis lost its data since this node last saw it (the epoch key changed).
/// `offer` is set if the key is missing; it must differ from every offer before it, or a
/// node that set the epoch, finding Redis empty, would set the same again and see no loss.
fn check_epoch(
    h: &Handle,
    conn: &mut Connection,
    offer: &str,
    epoch: &mut Option<String>,
) -> Result<bool, Trouble> {
    let replies = pipeline(
        h,
        conn,
        &[
            Cmd::new("SET").arg(keys::EPOCH).arg(offer).arg("NX"),
            Cmd::new("GET").arg(keys::EPOCH),
        ],
    )?;
    let now = replies.last().and_then(text).unwrap_or_default();
    let fresh = epoch.as_ref().is_some_and(|e| *e != now);
    *epoch = Some(now);
    Ok(fresh)
}

/// Writes what the node has for Redis until the stop, or until the connection fails or
/// another connection of the node found Redis out of reach.
fn serve(
    h: &Handle,
    conn: &mut Connection,
    chat: &Chat,
    node: &Rc<Node>,
    generation: u64,
) -> Result<(), Trouble> {
    let mut next_beat = Instant::now() + node.options.refresh;
    let ttl = node.options.ttl.as_millis().to_string();
    let maxlen = node.options.history.to_string();
    loop {
        if node.state.borrow().generation != generation {
            return Err(Trouble::Other("the reader lost Redis".into()));
        }
        let beat_due = Instant::now() >= next_beat;
        let (claims, releases, rejoins, stopping) = {
            let mut state = node.state.borrow_mut();
            (
                std::mem::take(&mut state.claims),
                std::mem::take(&mut state.releases),
                std::mem::take(&mut state.rejoins),
                state.stopping,
            )
        };
        let mut cmds: Vec<Cmd> = Vec::new();
        for claim in &claims {
            cmds.push(
                keys::script(keys::CLAIM)
                    .arg(&node.name)
                    .arg(&ttl)
                    .arg(&*claim.handle),
            );
        }
        let first_entry = cmds.len();
        // The joins again of a node declared dead, before anything its members said while
        // away; with no sequence number (they are not this instance's order).
        for handle in &rejoins {
            let mut cmd = Cmd::new("XADD")
                .arg(keys::LOG)
                .arg("MAXLEN")
                .arg("~")
                .arg(&maxlen)
                .arg("*");
            for (name, value) in [
                ("k", Kind::Join.word()),
                ("n", node.name.as_str()),
                ("i", node.instance.as_str()),
                ("s", "0"),
                ("h", &**handle),
            ] {
                cmd = cmd.arg(name).arg(value);
            }
            cmds.push(cmd);
        }
        let last_written = {
            let state = node.state.borrow();
            let mut last = state.written;
            let mut bytes = 0;
            for own in state
                .outbox
                .iter()
                .filter(|o| o.seq > state.written)
                .take(BATCH)
            {
                // Long lines: a pipeline of a few MiB, not one that outlasts its timeout.
                if bytes > BATCH_BYTES {
                    break;
                }
                bytes += own.text.len();
                let seq = own.seq.to_string();
                let mut cmd = Cmd::new("XADD")
                    .arg(keys::LOG)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(&maxlen)
                    .arg("*");
                for (name, value) in own.fields(&node.name, &node.instance, &seq) {
                    cmd = cmd.arg(name).arg(value);
                }
                cmds.push(cmd);
                last = own.seq;
            }
            last
        };
        let entries = cmds.len() - first_entry;
        if !releases.is_empty() {
            // A handle released while Redis was away (or in a pipeline that failed) and
            // taken again here since, in any case, keeps the claim it has now: only its old
            // name leaves the node's members.
            // (A member's, or one being claimed: in this pipeline, its claim goes first.)
            let state = node.state.borrow();
            let held: Vec<&str> = (state.members.iter().chain(&state.claiming))
                .map(|h| &**h)
                .chain(claims.iter().map(|c| &*c.handle))
                .collect();
            let mut cmd = keys::script(keys::RELEASE).arg(&node.name);
            let mut freed = 0;
            for handle in &releases {
                if held.contains(&&**handle) {
                    continue;
                }
                let key = crate::protocol::handle_key(handle);
                if held.iter().any(|h| crate::protocol::handle_key(h) == key) {
                    let members = format!("{}members:{}", keys::PREFIX, node.name);
                    cmds.push(Cmd::new("SREM").arg(members).arg(&**handle));
                    continue;
                }
                cmd = cmd.arg(&**handle);
                freed += 1;
            }
            if freed > 0 {
                cmds.push(cmd);
            }
        }
        let beat_at = cmds.len();
        if beat_due {
            cmds.push(heartbeat(node, &ttl));
            cmds.push(
                keys::script(keys::REAP)
                    .arg(&maxlen)
                    .arg(&node.name)
                    .arg(&node.instance),
            );
            next_beat = Instant::now() + node.options.refresh;
            let late = node.state.borrow_mut().late_reap_due();
            for (dead, instance, handles) in late.unwrap_or_default() {
                let mut cmd = keys::script(keys::REAP_LOST)
                    .arg(&maxlen)
                    .arg(&node.name)
                    .arg(&node.instance)
                    .arg(&*dead)
                    .arg(&instance);
                for handle in &handles {
                    cmd = cmd.arg(&**handle);
                }
                cmds.push(cmd);
            }
        }
        if cmds.is_empty() {
            if stopping {
                bye(h, conn, node, &maxlen)?;
                return Ok(());
            }
            let _ = h.park_until(next_beat);
            continue;
        }
        let replies = match pipeline(h, conn, &cmds) {
            Ok(replies) => replies,
            Err(e) => {
                // Unanswered claims wait for the next connection (or the node's loss); so
                // do the releases (the leaves before them are published again from the
                // outbox), or the handles stay claimed and listed as this node's members.
                let mut state = node.state.borrow_mut();
                state.claims.extend(claims);
                state.releases.extend(releases);
                state.rejoins.extend(rejoins);
                drop(state);
                return Err(e.into());
            }
        };
        // A claim refused (`-OOM`...) is no answer: it waits for the next connection, or
        // the node's loss takes the handle here alone (it was told "taken").
        let refused = answer_claims(claims, &replies);
        if let Some(claim) = refused.first() {
            let why = format!("the claim of {} refused", claim.handle);
            let mut state = node.state.borrow_mut();
            state.claims.extend(refused);
            state.releases.extend(releases);
            state.rejoins.extend(rejoins);
            return Err(Trouble::Other(why));
        }
        if entries > 0 {
            // An entry refused (`-OOM` at `maxmemory`, a read-only replica) never comes
            // back: Redis is out of reach for this node until it takes them, or they are
            // lost in silence and, the outbox full, its members frozen.
            if let Some(bad) = replies[first_entry..first_entry + entries]
                .iter()
                .find_map(error_of)
            {
                let mut state = node.state.borrow_mut();
                state.releases.extend(releases);
                state.rejoins.extend(rejoins);
                drop(state);
                return Err(Trouble::Other(format!("XADD refused: {bad}")));
            }
            let mut state = node.state.borrow_mut();
            state.written = state.written.max(last_written);
            drop(state);
        }
        if beat_due {
            after_beat(chat, node, &replies[beat_at], &replies[beat_at + 1]);
            for reply in &replies[beat_at + 2..] {
                match (error_of(reply), int(reply)) {
                    (Some(bad), _) => log::error!(target: LOG, "late reaper: {bad}"),
                    (None, Some(1)) => {
                        log::info!(target: LOG, "a node gone while Redis lost its data did not come back: its members' leaves published")
                    }
                    _ => {}
                }
            }
        }
        // Lines said here while the batch was out are next; the room's own turn first.
        h.yield_now();
    }
}

/// The heartbeat's command: the node's key and its members' handles refreshed.
fn heartbeat(node: &Node, ttl: &str) -> Cmd {
    let mut cmd = keys::script(keys::HEARTBEAT)
        .arg(&node.name)
        .arg(&node.instance)
        .arg(ttl);
    for handle in &node.state.borrow().members {
        cmd = cmd.arg(&**handle);
    }
    cmd
}

/// The heartbeat at once (after a connection): the node and its members' claims back in
/// Redis, should it have lost them.
fn beat(h: &Handle, conn: &mut Connection, chat: &Chat, node: &Node) -> Result<(), Trouble> {
    let ttl = node.options.ttl.as_millis().to_string();
    let reply = call(h, conn, &heartbeat(node, &ttl))?;
    after_beat(chat, node, &reply, &Value::Nil);
    Ok(())
}

/// What the heartbeat and the reaper answered: handles another node took while this one was
/// away (their members here are let go), a rejoin after this node was declared dead, nodes
/// reaped.
fn after_beat(chat: &Chat, node: &Node, beat: &Value, reap: &Value) {
    if let Some(bad) = error_of(beat).or_else(|| error_of(reap)) {
        log::error!(target: LOG, "heartbeat: {bad}");
        return;
    }
    if let Some(other) = items(beat).and_then(|v| v.get(2)).and_then(text) {
        if !other.is_empty() {
            log::error!(target: LOG, "another chatter runs as node {} (instance {other}; this is {}): give each its own --node", node.name, node.instance);
        }
    }
    if let Some([lost, rejoin]) = items(beat)
        .and_then(|v| v.get(..2))
        .and_then(|v| <&[Value; 2]>::try_from(v).ok())
    {
        for handle in items(lost).unwrap_or_default().iter().filter_map(text) {
            log::warn!(target: LOG, "{handle}'s handle was taken on another node while this one was away from Redis: its member here is let go");
            node.evict(&mut chat.room.borrow_mut(), &handle);
        }
        if int(rejoin) == Some(1) {
            let members: Vec<_> = node.state.borrow().members.iter().cloned().collect();
            log::warn!(target: LOG, "this node was declared dead while away: its {} members join again", members.len());
            node.state.borrow_mut().rejoins.extend(members);
            node.wake_writer();
        }
    }
    for dead in items(reap).unwrap_or_default().iter().filter_map(text) {
        log::info!(target: LOG, "node {dead} is gone (no heartbeat for {:?}): its members' leaves published", node.options.ttl);
    }
}

/// Each claim's answer: won (1) or not; returns the claims refused (an error reply), not
/// answered.
fn answer_claims(claims: Vec<Claim>, replies: &[Value]) -> Vec<Claim> {
    let mut refused = Vec::new();
    for (claim, reply) in claims.into_iter().zip(replies) {
        if let Some(bad) = error_of(reply) {
            log::error!(target: LOG, "claim of {}: {bad}", claim.handle);
            refused.push(claim);
            continue;
        }
        claim.answer.set(Some(int(reply) == Some(1)));
        claim.session.unpark();
    }
    refused
}

/// The stop: the entries made here published, then the goodbye (the members here leave).
fn bye(h: &Handle, conn: &mut Connection, node: &Node, maxlen: &str) -> Result<(), Trouble> {
    let reply = call(
        h,
        conn,
        &keys::script(keys::BYE)
            .arg(maxlen)
            .arg(&node.name)
            .arg(&node.instance),
    )?;
    if let Some(bad) = error_of(&reply) {
        log::error!(target: LOG, "goodbye: {bad}");
    } else {
        log::info!(target: LOG, "node {} said goodbye to the room", node.name);
    }
    Ok(())
}

// What the replies hold.

pub(crate) fn error_of(value: &Value) -> Option<String> {
    match value {
        Value::Error(e) => Some(e.to_string()),
        _ => None,
    }
}

pub(crate) fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

pub(crate) fn text(value: &Value) -> Option<String> {
    match value {
        Value::Bulk(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::Simple(s) => Some(s.to_string()),
        _ => None,
    }
}

pub(crate) fn items(value: &Value) -> Option<&[Value]> {
    match value {
        Value::Array(items) => Some(items),
        _ => None,
    }
}
