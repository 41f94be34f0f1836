//! `Subscriber`: pub/sub on a connection of its own that comes back by itself. After a lost
//! connection it reconnects with backoff, subscribes again to every channel and pattern, and
//! tells the caller of the gap, since pub/sub does not keep what was published meanwhile.

use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use fibra_net::Backoff;
use fibra_rt::Handle;
use fibra_tasks::TasksExt;

use crate::client::{default_backoff, Redial};
use crate::cmd::Cmd;
use crate::config::Config;
use crate::connection::{deadline_after, Connection, ReadError};
use crate::error::RedisError;
use crate::value::Value;

/// What [`Subscriber::next_message`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message {
    /// A message published to a subscribed channel.
    Message {
        /// The channel.
        channel: Vec<u8>,
        /// The message.
        payload: Vec<u8>,
    },
    /// A message published to a channel matching a subscribed pattern.
    PMessage {
        /// The pattern it matched.
        pattern: Vec<u8>,
        /// The channel.
        channel: Vec<u8>,
        /// The message.
        payload: Vec<u8>,
    },
    /// The connection was lost: messages published from now until
    /// [`Reconnected`](Message::Reconnected) are not received.
    Disconnected {
        /// Why.
        error: String,
    },
    /// The connection is back and every subscription is in force again. Messages published
    /// while it was down were lost: read what matters from a stream or a key.
    Reconnected {
        /// How long it was down.
        down_for: Duration,
    },
}

/// A pub/sub connection: [`subscribe`](Self::subscribe) and
/// [`psubscribe`](Self::psubscribe), then [`next_message`](Self::next_message) in a loop.
/// The subscriptions are remembered: after a lost connection the next `next_message`
/// reconnects (waiting as its [`Backoff`] says, within its timeout) and subscribes again,
/// and returns [`Message::Disconnected`] then [`Message::Reconnected`] around the gap.
///
/// ```no_run
/// use std::time::Duration;
/// use fibra_redis::{Config, Message, Subscriber};
/// # fn demo(h: &fibra_rt::Handle) -> Result<(), fibra_redis::RedisError> {
/// let mut sub = Subscriber::new(Config::parse("redis://127.0.0.1:6379")?);
/// sub.subscribe(h, &["room"])?;
/// loop {
///     match sub.next_message(h, Duration::from_secs(1))? {
///         Some(Message::Message { payload, .. }) => println!("{payload:?}"),
///         Some(Message::Reconnected { down_for }) => println!("missed up to {down_for:?}"),
///         _ => {}
///     }
/// }
/// # }
/// ```
pub struct Subscriber {
    redial: Redial,
    conn: Option<Connection>,
    channels: BTreeSet<Vec<u8>>,
    patterns: BTreeSet<Vec<u8>>,
    pending: VecDeque<Message>,
    /// Since when the connection is down (`None`: up, or never connected).
    down_since: Option<Instant>,
    /// How long the connection may stay quiet before a `PING` checks it.
    keepalive: Option<Duration>,
    /// When the server was last heard from.
    last_heard: Instant,
    /// When the unanswered keepalive `PING` was sent.
    ping_sent: Option<Instant>,
}

/// How long a subscriber's connection may stay quiet before a `PING` checks that the server
/// is still there: 10 s.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(10);

/// A change to the subscriptions, named by its command.
#[derive(Clone, Copy, Debug)]
enum Change {
    Subscribe,
    Psubscribe,
    Unsubscribe,
    Punsubscribe,
}

/// The kinds of pushes a subscribed connection gets.
enum Push {
    Message(Message),
    /// A subscribe or unsubscribe confirmation.
    Confirm,
    Other,
}

impl Subscriber {
    /// A subscriber for the server of `config`, with the default backoff; it connects on
    /// its first subscription or `next_message`.
    pub fn new(config: Config) -> Subscriber {
        Subscriber::with_backoff(config, default_backoff())
    }

    /// A subscriber with its own backoff.
    pub fn with_backoff(config: Config, backoff: Backoff) -> Subscriber {
        Subscriber {
            redial: Redial::new(config, backoff),
            conn: None,
            channels: BTreeSet::new(),
            patterns: BTreeSet::new(),
            pending: VecDeque::new(),
            down_since: None,
            keepalive: Some(DEFAULT_KEEPALIVE),
            last_heard: fibra_rt::time::now(),
            ping_sent: None,
        }
    }

    /// After `quiet` without a frame from the server, `next_message` sends a `PING`; no
    /// answer within the call timeout counts as a lost connection (a server that hangs, or
    /// a network that drops everything without a reset, is noticed). `None`: never.
    /// [`DEFAULT_KEEPALIVE`] by default.
    #[must_use = "with_keepalive returns the changed subscriber"]
    pub fn with_keepalive(mut self, quiet: Option<Duration>) -> Subscriber {
        self.keepalive = quiet;
        self
    }

    /// Subscribes to `channels`, waiting (within the call timeout) until the server
    /// confirmed them. Messages that come meanwhile are kept for `next_message`.
    ///
    /// The channels are remembered whatever happens, and subscribed to again on every
    /// reconnect: an error says only that they are not in force yet.
    ///
    /// # Errors
    ///
    /// [`RedisError::Unavailable`] when no connection could be had in time; a timeout or a
    /// loss while waiting for the confirmation.
    pub fn subscribe<C: AsRef<[u8]>>(
        &mut self,
        h: &Handle,
        channels: &[C],
    ) -> Result<(), RedisError> {
        self.update(h, Change::Subscribe, channels)
    }

    /// Subscribes to the channels matching `patterns` (`room:*`).
    ///
    /// # Errors
    ///
    /// As [`subscribe`](Self::subscribe).
    pub fn psubscribe<C: AsRef<[u8]>>(
        &mut self,
        h: &Handle,
        patterns: &[C],
    ) -> Result<(), RedisError> {
        self.update(h, Change::Psubscribe, patterns)
    }

    /// Unsubscribes from `channels`.
    ///
    /// # Errors
    ///
    /// As [`subscribe`](Self::subscribe); they are forgotten anyway.
    pub fn unsubscribe<C: AsRef<[u8]>>(
        &mut self,
        h: &Handle,
        channels: &[C],
    ) -> Result<(), RedisError> {
        self.update(h, Change::Unsubscribe, channels)
    }

    /// Unsubscribes from `patterns`.
    ///
    /// # Errors
    ///
    /// As [`unsubscribe`](Self::unsubscribe).
    pub fn punsubscribe<C: AsRef<[u8]>>(
        &mut self,
        h: &Handle,
        patterns: &[C],
    ) -> Result<(), RedisError> {
        self.update(h, Change::Punsubscribe, patterns)
    }

    /// The channels subscribed to.
    pub fn channels(&self) -> impl Iterator<Item = &[u8]> {
        self.channels.iter().map(Vec::as_slice)
    }

    /// The patterns subscribed to.
    pub fn patterns(&self) -> impl Iterator<Item = &[u8]> {
        self.patterns.iter().map(Vec::as_slice)
    }

    /// Whether the connection is up now.
    pub fn is_connected(&self) -> bool {
        self.conn.as_ref().is_some_and(Connection::is_usable)
    }

    /// The next message, waiting up to `timeout`; `None` when none came in time (also
    /// while the server is down: the attempts to reconnect go on at the next call).
    /// [`Message::Disconnected`] and [`Message::Reconnected`] tell of a gap.
    ///
    /// # Errors
    ///
    /// [`RedisError::Handshake`] when the server refuses the login on a reconnect (waiting
    /// does not heal that).
    pub fn next_message(
        &mut self,
        h: &Handle,
        timeout: Duration,
    ) -> Result<Option<Message>, RedisError> {
        let deadline = deadline_after(timeout);
        loop {
            if let Some(m) = self.pending.pop_front() {
                return Ok(Some(m));
            }
            if self.conn.is_none() {
                match self.reconnect(h, deadline) {
                    Ok(()) => continue,
                    Err(e @ RedisError::Handshake { .. }) => return Err(e),
                    // The next attempt is due within this wait: `reconnect` waits for it.
                    Err(_) if self.redial.next_try().is_none_or(|at| at < deadline) => continue,
                    Err(_) => {
                        h.sleep_until(deadline);
                        return Ok(None);
                    }
                }
            }
            let call_timeout = self.redial.config.call_timeout();
            let check_at = self.keepalive.map(|quiet| match self.ping_sent {
                None => self.last_heard + quiet,
                Some(sent) => sent + call_timeout,
            });
            let until = check_at.map_or(deadline, |at| at.min(deadline));
            let conn = self.conn.as_mut().expect("connected above");
            match conn.next_frame(h, until) {
                Ok(value) => {
                    self.last_heard = fibra_rt::time::now();
                    self.ping_sent = None;
                    if let Push::Message(m) = classify(value) {
                        return Ok(Some(m));
                    }
                }
                Err(ReadError::TimedOut)
                    if check_at.is_some_and(|at| fibra_rt::time::now() >= at) =>
                {
                    if self.ping_sent.is_some() {
                        let e =
                            conn.fail(ReadError::TimedOut, "PING (keepalive)".into(), call_timeout);
                        self.lose(e.to_string());
                        continue;
                    }
                    let ping = Cmd::new("PING");
                    let sent = conn.send_only(h, &ping, deadline_after(call_timeout), call_timeout);
                    match sent {
                        Ok(()) => self.ping_sent = Some(fibra_rt::time::now()),
                        Err(e) => self.lose(e.to_string()),
                    }
                }
                Err(ReadError::TimedOut) => return Ok(None),
                Err(e) => {
                    let error = conn.fail(e, "pub/sub".into(), call_timeout).to_string();
                    self.lose(error);
                }
            }
        }
    }

    /// The connection is gone: remember since when, and tell the caller.
    fn lose(&mut self, error: String) {
        log::warn!(target: "fibra_redis", "pub/sub connection to {} lost: {error}", self.redial.config.addr());
        self.conn = None;
        self.redial.lost(error.clone());
        if self.down_since.is_none() {
            self.down_since = Some(fibra_rt::time::now());
            self.pending.push_back(Message::Disconnected { error });
        }
    }

    /// Connects (within `deadline`) and subscribes to everything again.
    fn reconnect(&mut self, h: &Handle, deadline: Instant) -> Result<(), RedisError> {
        let mut conn = self
            .redial
            .connect(h, deadline, &|| "SUBSCRIBE".to_owned())?;
        conn.subscribed = true;
        self.conn = Some(conn);
        let channels: Vec<Vec<u8>> = self.channels.iter().cloned().collect();
        let patterns: Vec<Vec<u8>> = self.patterns.iter().cloned().collect();
        let resubscribed = self
            .send_and_confirm(h, "SUBSCRIBE", &channels)
            .and_then(|()| self.send_and_confirm(h, "PSUBSCRIBE", &patterns));
        if let Err(e) = resubscribed {
            self.lose(e.to_string());
            return Err(e);
        }
        if let Some(since) = self.down_since.take() {
            let down_for = since.elapsed();
            log::info!(target: "fibra_redis", "pub/sub connection to {} back after {down_for:?}", self.redial.config.addr());
            self.pending.push_back(Message::Reconnected { down_for });
        }
        Ok(())
    }

    /// Remembers or forgets `names` as `change` says, then sends it. Forgetting needs no
    /// connection: a reconnect subscribes to what is remembered, and nothing else.
    fn update<C: AsRef<[u8]>>(
        &mut self,
        h: &Handle,
        change: Change,
        names: &[C],
    ) -> Result<(), RedisError> {
        let list: Vec<Vec<u8>> = names.iter().map(|c| c.as_ref().to_vec()).collect();
        let (command, set, adds) = match change {
            Change::Subscribe => ("SUBSCRIBE", &mut self.channels, true),
            Change::Psubscribe => ("PSUBSCRIBE", &mut self.patterns, true),
            Change::Unsubscribe => ("UNSUBSCRIBE", &mut self.channels, false),
            Change::Punsubscribe => ("PUNSUBSCRIBE", &mut self.patterns, false),
        };
        if adds {
            set.extend(list.iter().cloned());
        } else {
            for name in &list {
                set.remove(name);
            }
            if self.conn.is_none() {
                return Ok(());
            }
        }
        self.change(h, command, &list)
    }

    /// Sends `command` for `list` on the current connection (connecting first if there is
    /// none) and waits for its confirmations.
    fn change(
        &mut self,
        h: &Handle,
        command: &'static str,
        list: &[Vec<u8>],
    ) -> Result<(), RedisError> {
        if list.is_empty() {
            return Ok(());
        }
        if self.conn.is_none() {
            // Connecting subscribes to everything remembered, `list` included.
            let deadline = deadline_after(self.redial.config.call_timeout());
            return self.reconnect(h, deadline);
        }
        let result = self.send_and_confirm(h, command, list);
        if let Err(e) = &result {
            if self.conn.as_ref().is_some_and(|c| c.broken().is_some()) {
                self.lose(e.to_string());
            }
        }
        result
    }

    fn send_and_confirm(
        &mut self,
        h: &Handle,
        command: &'static str,
        list: &[Vec<u8>],
    ) -> Result<(), RedisError> {
        if list.is_empty() {
            return Ok(());
        }
        let timeout = self.redial.config.call_timeout();
        let deadline = deadline_after(timeout);
        let conn = self.conn.as_mut().expect("connected");
        let cmd = Cmd::new(command).args(list.iter().map(Vec::as_slice));
        conn.send_only(h, &cmd, deadline, timeout)?;
        let mut due = list.len();
        while due > 0 {
            match conn.next_frame(h, deadline) {
                Ok(Value::Error(message)) => {
                    return Err(RedisError::Server {
                        command: command.into(),
                        message,
                    })
                }
                Ok(value) => match classify(value) {
                    Push::Confirm => due -= 1,
                    Push::Message(m) => self.pending.push_back(m),
                    Push::Other => {}
                },
                Err(e) => return Err(conn.fail(e, command.into(), timeout)),
            }
        }
        Ok(())
    }
}

/// What a frame on a subscribed connection is.
fn classify(value: Value) -> Push {
    let parts = match value {
        Value::Array(parts) | Value::Push(parts) => parts,
        other => {
            log::debug!(target: "fibra_redis", "pub/sub: ignored {other:?}");
            return Push::Other;
        }
    };
    let kind = parts.first().and_then(Value::as_bytes).unwrap_or_default();
    let mut it = parts
        .iter()
        .skip(1)
        .map(|v| v.as_bytes().map(<[u8]>::to_vec));
    match kind {
        b"message" => match (it.next(), it.next()) {
            (Some(Some(channel)), Some(Some(payload))) => {
                Push::Message(Message::Message { channel, payload })
            }
            _ => Push::Other,
        },
        b"pmessage" => match (it.next(), it.next(), it.next()) {
            (Some(Some(pattern)), Some(Some(channel)), Some(Some(payload))) => {
                Push::Message(Message::PMessage {
                    pattern,
                    channel,
                    payload,
                })
            }
            _ => Push::Other,
        },
        b"subscribe" | b"psubscribe" | b"unsubscribe" | b"punsubscribe" => Push::Confirm,
        _ => Push::Other,
    }
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("addr", &self.redial.config.addr())
            .field("connected", &self.is_connected())
            .field("channels", &self.channels.len())
            .field("patterns", &self.patterns.len())
            .finish()
    }
}
