//! The federation: one room across chatter processes ("nodes") on any machines, tied by a
//! Redis (`--redis redis://HOST:PORT --node NAME`); `docs/federation.md` has the picture,
//! the failures and the guarantees.
//!
//! - **One order.** A line said here is not fanned out here at once: it goes to the room's
//!   Redis Stream (`XADD`), and every node, this one included, delivers the stream's entries
//!   to its members as its reader tasklet reads them back (`XREAD BLOCK` from the last id it
//!   delivered). Joins, leaves and whispers are entries too. The stream's ids are the order.
//! - **Handles** are claimed in Redis (`SET NX PX` in a script), refreshed by the heartbeat
//!   and freed after the member's leave is in the stream.
//! - **Redis out of reach:** the node serves its members alone at once (its log says so):
//!   what they say is delivered here and kept in the outbox (`--redis-outbox`); when Redis
//!   is back the outbox is published, each entry marked with its node's instance and
//!   sequence number so that no node delivers one twice, and the node backfills from the
//!   last id it delivered.
//! - **A dead node** (its heartbeat key expired): one surviving node's reaper (a script,
//!   so exactly one) writes its members' leaves into the stream.
//!
//! Files: `entry.rs` (the stream's entries), `keys.rs` (keys and scripts), `state.rs` (the
//! node's side: outbox, dedup, the `Reach`), `writer.rs` (the tasklet that talks to Redis:
//! claims, `XADD`, heartbeat, reaper), `reader.rs` (the tasklet that reads the stream back
//! and delivers), `start.rs` (`Chatter::start_federated`, and per thread).

mod entry;
mod keys;
mod reader;
mod start;
mod state;
mod writer;

use fibra::redis;

use std::time::Duration;

use redis::{Connection, RedisError, Value};

/// What `--redis` and its flags asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Options {
    /// `redis://[user:pass@]host:port[/db]`.
    pub(crate) url: String,
    /// This node's name; `None`: its telnet address.
    pub(crate) node: Option<String>,
    /// Entries the stream keeps (`MAXLEN ~`).
    pub(crate) history: usize,
    /// Lines said here kept while Redis is out of reach (and while it is slow: speakers wait
    /// beyond it).
    pub(crate) outbox: usize,
    /// How long a handle's claim and the node's heartbeat live unrefreshed: a node silent
    /// this long is dead.
    pub(crate) ttl: Duration,
    /// How often the heartbeat refreshes them (and looks for dead nodes).
    pub(crate) refresh: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            url: String::new(),
            node: None,
            history: 10_000,
            outbox: 10_000,
            ttl: Duration::from_secs(10),
            refresh: Duration::from_secs(2),
        }
    }
}

/// A node's name when `--node` is not given: the address listened on, `addr`, with the
/// machine's host name for a wildcard or loopback host (`0.0.0.0:1980` is the same text on
/// every machine, and two nodes of one name take each other's members for a former
/// instance's).
pub(crate) fn default_name(addr: &str) -> String {
    let Ok(at) = addr.parse::<std::net::SocketAddr>() else {
        return addr.to_owned(); // a host name already
    };
    if !(at.ip().is_unspecified() || at.ip().is_loopback()) {
        return addr.to_owned();
    }
    let host = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|file| {
            let name = std::fs::read_to_string(file).ok()?;
            let name = name.trim();
            (!name.is_empty()).then(|| name.to_owned())
        })
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|n| !n.is_empty()));
    match host {
        Some(host) => format!("{host}:{}", at.port()),
        None => addr.to_owned(),
    }
}

/// Why a connection to Redis was given up.
#[derive(Debug)]
pub(crate) enum Trouble {
    /// The client's error: a loss, a timeout, a refused connection.
    Redis(RedisError),
    /// Something else: the other connection of the node lost Redis, a reply not understood.
    Other(String),
}

impl std::fmt::Display for Trouble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trouble::Redis(e) => e.fmt(f),
            Trouble::Other(why) => f.write_str(why),
        }
    }
}

impl From<RedisError> for Trouble {
    fn from(e: RedisError) -> Self {
        Trouble::Redis(e)
    }
}

/// `cmds` in one write; each reply, an error reply as [`Value::Error`].
fn pipeline(
    h: &fibra::Handle,
    conn: &mut Connection,
    cmds: &[redis::Cmd],
) -> Result<Vec<Value>, RedisError> {
    Ok(conn
        .pipeline(h, cmds)?
        .into_iter()
        .map(|reply| reply.unwrap_or_else(|e| Value::Error(e.to_string())))
        .collect())
}

/// One command; an error reply as [`Value::Error`] (the connection is fine).
fn call(h: &fibra::Handle, conn: &mut Connection, cmd: &redis::Cmd) -> Result<Value, RedisError> {
    match conn.call(h, cmd) {
        Err(e) if e.is_server_error() => Ok(Value::Error(e.to_string())),
        reply => reply,
    }
}
