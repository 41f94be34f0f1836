//! `Connection`: one connection to Redis; calls and pipelines with a deadline each, and the
//! rule that keeps replies in step: a connection that timed out, was lost or read bytes that
//! are not RESP is broken for good, never used again.

use std::fmt;
use std::time::{Duration, Instant};

use fibra_net::{ops, Conn, ConnOptions, Framing, NetError, NetExt};
use fibra_rt::Handle;

use crate::cmd::Cmd;
use crate::config::{Config, Protocol};
use crate::error::RedisError;
use crate::scan::{ScanError, Scanner};
use crate::value::Value;

/// How many bytes one receive takes at most.
const CHUNK: usize = 64 * 1024;

/// One connection to a Redis server, made by [`Connection::connect`]: it logs in and selects
/// the database of its [`Config`] on connect.
///
/// Every call has a deadline (the config's call timeout). A call that times out, a lost
/// connection and an invalid reply each close the connection and mark it broken: a late
/// reply can never be read as the answer to the next command. Later calls fail at once with
/// [`RedisError::Broken`]; a [`Client`](crate::Client) or [`Pool`](crate::Pool) opens a new
/// connection instead.
pub struct Connection {
    conn: Conn,
    config: Config,
    /// Bytes received; the unread ones from `start`.
    input: Vec<u8>,
    start: usize,
    /// The receive buffer, handed to each receive and back.
    chunk: Vec<u8>,
    scanner: Scanner,
    /// The commands of the current call, encoded.
    output: Vec<u8>,
    broken: Option<String>,
    /// Sent and not every reply read (a tasklet killed mid-call leaves it set).
    in_flight: bool,
    /// In pub/sub mode: pushes are kept, not skipped (a `Subscriber`'s).
    pub(crate) subscribed: bool,
}

/// Why reading the next reply failed, before it is told as a [`RedisError`].
pub(crate) enum ReadError {
    TimedOut,
    Lost(NetError),
    Protocol(String),
    TooLarge,
}

impl Connection {
    /// Connects to the server of `config`, within its connect timeout, then logs in
    /// (`AUTH`, or `HELLO 3 AUTH` for RESP3), names the connection and selects the database,
    /// all in one round trip.
    ///
    /// # Errors
    ///
    /// [`RedisError::Connect`] when the server cannot be reached; [`RedisError::Handshake`]
    /// when it refuses the password, the protocol or the database;
    /// [`RedisError::Timeout`] or [`RedisError::Lost`] during the handshake.
    pub fn connect(h: &Handle, config: &Config) -> Result<Connection, RedisError> {
        let deadline = deadline_after(config.connect_timeout());
        Connection::connect_until(h, config, deadline)
    }

    pub(crate) fn connect_until(
        h: &Handle,
        config: &Config,
        deadline: Instant,
    ) -> Result<Connection, RedisError> {
        let left = deadline.saturating_duration_since(fibra_rt::time::now());
        let options = ConnOptions::new()
            .with_framing(Framing::Raw)
            .with_max_frame(CHUNK)
            .with_connect_timeout(Some(left.max(Duration::from_millis(1))));
        let addr = config.addr();
        let conn =
            h.connect_with(addr.as_str(), options)
                .map_err(|source| RedisError::Connect {
                    addr: addr.clone(),
                    source,
                })?;
        let mut c = Connection {
            conn,
            config: config.clone(),
            input: Vec::new(),
            start: 0,
            chunk: Vec::new(),
            scanner: Scanner::default(),
            output: Vec::new(),
            broken: None,
            in_flight: false,
            subscribed: false,
        };
        c.handshake(h, deadline)?;
        log::debug!(target: "fibra_redis", "connected to {addr}");
        Ok(c)
    }

    fn handshake(&mut self, h: &Handle, deadline: Instant) -> Result<(), RedisError> {
        let config = self.config.clone();
        let mut cmds: Vec<(&'static str, Cmd)> = Vec::new();
        match config.protocol() {
            Protocol::Resp3 => {
                let mut hello = Cmd::new("HELLO").arg(3);
                if let Some(pass) = config.password() {
                    hello = hello
                        .arg("AUTH")
                        .arg(config.username().unwrap_or("default"))
                        .arg(pass);
                }
                if let Some(name) = config.client_name() {
                    hello = hello.arg("SETNAME").arg(name);
                }
                cmds.push(("HELLO", hello));
            }
            Protocol::Resp2 => {
                if let Some(pass) = config.password() {
                    let mut auth = Cmd::new("AUTH");
                    if let Some(user) = config.username() {
                        auth = auth.arg(user);
                    }
                    cmds.push(("AUTH", auth.arg(pass)));
                }
                if let Some(name) = config.client_name() {
                    let cmd = Cmd::new("CLIENT").arg("SETNAME").arg(name);
                    cmds.push(("CLIENT SETNAME", cmd));
                }
            }
        }
        if config.db() != 0 {
            cmds.push(("SELECT", Cmd::new("SELECT").arg(config.db())));
        }
        if cmds.is_empty() {
            return Ok(());
        }
        let plain: Vec<Cmd> = cmds.iter().map(|(_, c)| c.clone()).collect();
        let timeout = config.connect_timeout();
        let replies = self.pipeline_until(h, &plain, deadline, timeout)?;
        for ((command, _), reply) in cmds.iter().zip(replies) {
            match reply {
                Ok(_) => {}
                Err(RedisError::Server { message, .. }) => {
                    self.break_with(format!("{command} refused: {message}"));
                    return Err(RedisError::Handshake { command, message });
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Sends `cmd` and waits for its reply, within the config's call timeout.
    ///
    /// # Errors
    ///
    /// [`RedisError::Server`] for an error reply (the connection stays usable);
    /// [`RedisError::Timeout`], [`RedisError::Lost`], [`RedisError::Protocol`],
    /// [`RedisError::TooLarge`] (the connection is then broken); [`RedisError::Broken`] on a
    /// connection broken before; [`RedisError::Usage`] for `SUBSCRIBE`, `PSUBSCRIBE` or
    /// `MONITOR` (use a [`Subscriber`](crate::Subscriber)).
    pub fn call(&mut self, h: &Handle, cmd: &Cmd) -> Result<Value, RedisError> {
        self.call_blocking(h, cmd, Duration::ZERO)
    }

    /// Like [`call`](Self::call) for a command that blocks on the server for up to `block`
    /// (`XREAD BLOCK`, `BLPOP`): its timeout is `block` plus the call timeout.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    pub fn call_blocking(
        &mut self,
        h: &Handle,
        cmd: &Cmd,
        block: Duration,
    ) -> Result<Value, RedisError> {
        let timeout = self.config.call_timeout().saturating_add(block);
        self.call_until(h, cmd, deadline_after(timeout), timeout)
    }

    pub(crate) fn call_until(
        &mut self,
        h: &Handle,
        cmd: &Cmd,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Value, RedisError> {
        if cmd.is_subscription() && !self.subscribed {
            return Err(RedisError::Usage {
                command: cmd.name().into_owned(),
                reason: "a plain connection cannot enter pub/sub or monitor mode; \
                         use a Subscriber"
                    .into(),
            });
        }
        self.check_usable(h, || cmd.name().into_owned())?;
        self.output.clear();
        cmd.write_to(&mut self.output);
        self.send_output(h, deadline, timeout, || cmd.name().into_owned())?;
        let reply = self.read_reply(h, deadline, timeout, || cmd.name().into_owned());
        self.in_flight = false;
        match reply? {
            Value::Error(message) => Err(RedisError::Server {
                command: cmd.name().into_owned(),
                message,
            }),
            value => Ok(value),
        }
    }

    /// Sends every command of `cmds` in one write, then reads their replies, in order,
    /// within one call timeout for them all. Each command's own error reply is its entry's
    /// [`RedisError::Server`]; the others still run.
    ///
    /// ```no_run
    /// use fibra_redis::{Cmd, Config, Connection};
    /// # fn demo(h: &fibra_rt::Handle) -> Result<(), fibra_redis::RedisError> {
    /// let mut conn = Connection::connect(h, &Config::parse("redis://127.0.0.1:6379")?)?;
    /// let cmds: Vec<Cmd> = (0..100).map(|i| Cmd::new("INCRBY").arg("n").arg(i)).collect();
    /// for reply in conn.pipeline(h, &cmds)? {
    ///     println!("{:?}", reply?.as_int());
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// The whole pipeline fails, the connection broken, on a timeout, a loss or an invalid
    /// or too large reply; the error names the command whose reply was awaited and its
    /// place in the pipeline. [`RedisError::Broken`] and [`RedisError::Usage`] as for
    /// [`call`](Self::call).
    pub fn pipeline(
        &mut self,
        h: &Handle,
        cmds: &[Cmd],
    ) -> Result<Vec<Result<Value, RedisError>>, RedisError> {
        let timeout = self.config.call_timeout();
        self.pipeline_until(h, cmds, deadline_after(timeout), timeout)
    }

    pub(crate) fn pipeline_until(
        &mut self,
        h: &Handle,
        cmds: &[Cmd],
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Vec<Result<Value, RedisError>>, RedisError> {
        if cmds.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(cmd) = cmds.iter().find(|c| c.is_subscription()) {
            if !self.subscribed {
                return Err(RedisError::Usage {
                    command: cmd.name().into_owned(),
                    reason: "a plain connection cannot enter pub/sub or monitor mode; \
                             use a Subscriber"
                        .into(),
                });
            }
        }
        let n = cmds.len();
        let name = |i: usize| {
            format!(
                "{} (command {} of {n} in a pipeline)",
                cmds[i].name(),
                i + 1
            )
        };
        self.check_usable(h, || name(0))?;
        self.output.clear();
        for cmd in cmds {
            cmd.write_to(&mut self.output);
        }
        self.send_output(h, deadline, timeout, || name(0))?;
        let mut replies = Vec::with_capacity(n);
        for (i, cmd) in cmds.iter().enumerate() {
            let reply = self.read_reply(h, deadline, timeout, || name(i))?;
            replies.push(match reply {
                Value::Error(message) => Err(RedisError::Server {
                    command: cmd.name().into_owned(),
                    message,
                }),
                value => Ok(value),
            });
        }
        self.in_flight = false;
        Ok(replies)
    }

    /// Whether the connection broke (and why).
    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// Looks, without waiting, whether the server closed the connection while it was idle
    /// (a restart, an idle timeout) or said something nobody asked for (its goodbye before
    /// it closes, a stray reply): a receive that gives up at once finds the bytes, the close
    /// or the reset the kernel holds, and the connection is marked broken, so that a
    /// [`Client`](crate::Client) or [`Pool`](crate::Pool) opens a new one before sending
    /// instead of failing the call. A RESP3 push is skipped.
    pub(crate) fn probe_idle(&mut self, h: &Handle) {
        if self.broken.is_some() || self.in_flight || self.conn.lost().is_some() {
            return;
        }
        let chunk = std::mem::take(&mut self.chunk);
        match h.yield_op_until(
            ops::Receive::into_buf(&self.conn, chunk),
            fibra_rt::time::now(),
        ) {
            Ok(Ok(bytes)) => {
                self.input.extend_from_slice(&bytes);
                self.chunk = bytes;
            }
            Ok(Err(e)) => self.break_with(format!("the server closed it while idle: {e}")),
            Err(_) => {}
        }
        self.judge_unasked();
    }

    /// Judges the bytes that came while no call waited (not subscribed): a RESP3 push is
    /// skipped; anything else (a reply nobody asked for, the server's goodbye before it
    /// closes, bytes of neither) breaks the connection, saying what the server said, so that
    /// no call takes it for its answer. A RESP3 push not yet whole is kept.
    fn judge_unasked(&mut self) {
        if self.subscribed || self.broken.is_some() || self.in_flight {
            return;
        }
        let protocol = self.config.protocol();
        let max = self.config.max_reply();
        while self.start < self.input.len() {
            let said = match self.scanner.scan(&self.input[self.start..], max) {
                Ok(Some(len)) => {
                    let frame = &self.input[self.start..self.start + len];
                    match decode(frame, protocol) {
                        Ok(Value::Push(push)) => {
                            log::debug!(target: "fibra_redis", "skipped a push: {:?}", Value::Push(push));
                            self.start += len;
                            continue;
                        }
                        Ok(value) => value.describe(),
                        Err(_) => "bytes that are not RESP".to_owned(),
                    }
                }
                // The start of a push, maybe: kept for the next read to finish.
                Ok(None) if protocol == Protocol::Resp3 && self.input[self.start] == b'>' => break,
                Ok(None) => "part of a reply".to_owned(),
                Err(_) => "bytes that are not RESP".to_owned(),
            };
            self.break_with(format!(
                "the server sent, unasked while it was idle: {said}"
            ));
            return;
        }
        if self.start == self.input.len() {
            self.input.clear();
            self.start = 0;
        }
    }

    /// Whether a call may be made: not broken, not known to be lost, no call half done.
    pub fn is_usable(&self) -> bool {
        self.broken.is_none() && self.conn.lost().is_none() && !self.in_flight
    }

    /// The config it was made with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Closes the connection gracefully (`QUIT` is not needed: Redis sees the close).
    pub fn close(self, h: &Handle) {
        let _ = h.close(&self.conn);
    }

    /// Marks the connection broken with `reason` and resets it (at the end of the tick); a
    /// second reason is ignored.
    pub(crate) fn break_with(&mut self, reason: String) {
        if self.broken.is_none() {
            log::debug!(target: "fibra_redis", "connection to {} broken: {reason}", self.config.addr());
            self.broken = Some(reason);
            self.conn.abort();
        }
    }

    fn check_usable(&mut self, h: &Handle, command: impl Fn() -> String) -> Result<(), RedisError> {
        if self.in_flight {
            // A call was cut off (its tasklet killed) after it sent: its reply would be read
            // as the next one's.
            self.break_with("a call was abandoned before its reply came".into());
        }
        // What came unasked, read now if it may be there (without waiting), and what was
        // read already: a reply nobody asked for must not be the next call's answer
        // (RESP3's pushes are skipped).
        if !self.subscribed && (self.conn.received() > 0 || self.conn.may_have_input()) {
            self.probe_idle(h);
        }
        self.judge_unasked();
        if !self.subscribed
            && self.config.protocol() == Protocol::Resp2
            && (self.start < self.input.len() || self.conn.received() > 0)
        {
            let unasked = self.input.len() - self.start + self.conn.received();
            self.break_with(format!("the server sent {unasked} bytes nobody asked for"));
        }
        match &self.broken {
            Some(reason) => Err(RedisError::Broken {
                command: command(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Queues the output, waiting for room until `deadline`.
    fn send_output(
        &mut self,
        h: &Handle,
        deadline: Instant,
        timeout: Duration,
        command: impl Fn() -> String,
    ) -> Result<(), RedisError> {
        self.in_flight = true;
        loop {
            match self.conn.try_send(&self.output) {
                Ok(()) => return Ok(()),
                Err(NetError::Full { .. }) => {
                    match h.yield_op_until(ops::Drain::new(&self.conn), deadline) {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            return Err(self.fail(ReadError::Lost(e), command(), timeout))
                        }
                        Err(_) => return Err(self.fail(ReadError::TimedOut, command(), timeout)),
                    }
                }
                Err(e) => return Err(self.fail(ReadError::Lost(e), command(), timeout)),
            }
        }
    }

    /// The next reply that is not a RESP3 push (pushes are skipped unless subscribed).
    fn read_reply(
        &mut self,
        h: &Handle,
        deadline: Instant,
        timeout: Duration,
        command: impl Fn() -> String,
    ) -> Result<Value, RedisError> {
        loop {
            match self.next_frame(h, deadline) {
                Ok(Value::Push(push)) if !self.subscribed => {
                    log::debug!(target: "fibra_redis", "skipped a push: {:?}", Value::Push(push));
                }
                Ok(value) => return Ok(value),
                Err(e) => return Err(self.fail(e, command(), timeout)),
            }
        }
    }

    /// Tells a read failure as an error naming `command`, breaking the connection.
    pub(crate) fn fail(&mut self, e: ReadError, command: String, timeout: Duration) -> RedisError {
        match e {
            ReadError::TimedOut => {
                self.break_with(format!("{command} timed out after {timeout:?}"));
                RedisError::Timeout {
                    command,
                    after: timeout,
                }
            }
            ReadError::Lost(source) => {
                self.break_with(format!("lost during {command}: {source}"));
                RedisError::Lost { command, source }
            }
            ReadError::Protocol(reason) => {
                self.break_with(format!("invalid reply to {command}: {reason}"));
                RedisError::Protocol { command, reason }
            }
            ReadError::TooLarge => {
                let limit = self.config.max_reply();
                self.break_with(format!("the reply to {command} passed {limit} bytes"));
                RedisError::TooLarge { command, limit }
            }
        }
    }

    /// Sends `cmd` without waiting for a reply (a `Subscriber`'s subscriptions).
    pub(crate) fn send_only(
        &mut self,
        h: &Handle,
        cmd: &Cmd,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(), RedisError> {
        self.check_usable(h, || cmd.name().into_owned())?;
        self.output.clear();
        cmd.write_to(&mut self.output);
        self.send_output(h, deadline, timeout, || cmd.name().into_owned())?;
        self.in_flight = false;
        Ok(())
    }

    /// The next frame, whatever it is, waiting until `deadline`. A timeout here breaks
    /// nothing: the bytes of a partial frame stay, and the scan resumes.
    pub(crate) fn next_frame(&mut self, h: &Handle, deadline: Instant) -> Result<Value, ReadError> {
        let max = self.config.max_reply();
        loop {
            if self.start < self.input.len() {
                match self.scanner.scan(&self.input[self.start..], max) {
                    Ok(Some(len)) => {
                        let frame = &self.input[self.start..self.start + len];
                        let value = decode(frame, self.config.protocol())?;
                        self.start += len;
                        if self.start == self.input.len() {
                            self.input.clear();
                            self.start = 0;
                        }
                        return Ok(value);
                    }
                    Ok(None) => {}
                    Err(ScanError::TooLarge) => return Err(ReadError::TooLarge),
                    Err(ScanError::Invalid(why)) => return Err(ReadError::Protocol(why)),
                }
            }
            if self.start > 0 {
                // The scan's position is relative to `start`: moving the bytes keeps it.
                self.input.drain(..self.start);
                self.start = 0;
            }
            let chunk = std::mem::take(&mut self.chunk);
            match h.yield_op_until(ops::Receive::into_buf(&self.conn, chunk), deadline) {
                Ok(Ok(bytes)) => {
                    self.input.extend_from_slice(&bytes);
                    self.chunk = bytes;
                }
                Ok(Err(e)) => return Err(ReadError::Lost(e)),
                Err(_) => return Err(ReadError::TimedOut),
            }
        }
    }
}

/// An aggregate being assembled by [`decode`].
struct Open {
    kind: u8,
    want: usize,
    items: Vec<Value>,
}

/// Decodes one whole frame (the scanner found its end and checked its counts and depth).
///
/// Every scalar element is parsed by `redis-protocol`; aggregates are assembled here, with
/// a stack on the heap. `redis-protocol`'s decoder recurses into aggregates, and in a debug
/// build its RESP3 parser takes about 18 KiB of stack per level, which a tasklet's 64 KiB
/// stack cannot give to a reply nested three deep (`XREAD`'s); fed one scalar at a time it
/// needs about 5 KiB.
pub(crate) fn decode(frame: &[u8], protocol: Protocol) -> Result<Value, ReadError> {
    let mut stack: Vec<Open> = Vec::new();
    let mut pos = 0;
    loop {
        let rest = &frame[pos..];
        let mut value = match rest.first() {
            Some(&kind @ (b'*' | b'~' | b'>' | b'%')) => {
                let Some(cr) = rest.windows(2).position(|w| w == b"\r\n") else {
                    return Err(ReadError::Protocol("a truncated aggregate header".into()));
                };
                let line = &rest[1..cr];
                pos += cr + 2;
                if line == b"-1" {
                    Value::Nil
                } else {
                    // Checked by the scanner: digits, and at most a third of the reply limit.
                    let n: usize = std::str::from_utf8(line)
                        .ok()
                        .and_then(|t| t.parse().ok())
                        .ok_or_else(|| ReadError::Protocol("a bad aggregate count".into()))?;
                    let want = if kind == b'%' { n.saturating_mul(2) } else { n };
                    let open = Open {
                        kind,
                        want,
                        items: Vec::with_capacity(want.min(1024)),
                    };
                    if want > 0 {
                        stack.push(open);
                        continue;
                    }
                    finish(open)
                }
            }
            Some(_) => {
                let (value, used) = decode_scalar(rest, protocol)?;
                pos += used;
                value
            }
            None => return Err(ReadError::Protocol("a truncated reply".into())),
        };
        loop {
            let Some(open) = stack.last_mut() else {
                if pos != frame.len() {
                    return Err(ReadError::Protocol(format!(
                        "the reply ended at byte {pos} of {}",
                        frame.len()
                    )));
                }
                return Ok(value);
            };
            open.items.push(value);
            if open.items.len() < open.want {
                break;
            }
            value = finish(stack.pop().expect("just seen"));
        }
    }
}

/// The value of a complete aggregate.
fn finish(open: Open) -> Value {
    match open.kind {
        b'>' => Value::Push(open.items),
        b'%' => {
            let mut pairs = Vec::with_capacity(open.items.len() / 2);
            let mut it = open.items.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                pairs.push((k, v));
            }
            Value::Map(pairs)
        }
        _ => Value::Array(open.items),
    }
}

/// The scalar at the start of `bytes`, by `redis-protocol`, and the bytes it took.
fn decode_scalar(bytes: &[u8], protocol: Protocol) -> Result<(Value, usize), ReadError> {
    let bad = |e: &dyn fmt::Display| ReadError::Protocol(format!("redis-protocol: {e}"));
    let incomplete = || ReadError::Protocol("an incomplete element".into());
    match protocol {
        Protocol::Resp2 => match redis_protocol::resp2::decode::decode(bytes) {
            Ok(Some((f, used))) => Ok((Value::from_resp2(f), used)),
            Ok(None) => Err(incomplete()),
            Err(e) => Err(bad(&e)),
        },
        Protocol::Resp3 => match redis_protocol::resp3::decode::complete::decode(bytes) {
            Ok(Some((f, used))) => Ok((Value::from_resp3(f), used)),
            Ok(None) => Err(incomplete()),
            Err(e) => Err(bad(&e)),
        },
    }
}

/// `timeout` from now (far in the future if that overflows).
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    let now = fibra_rt::time::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600))
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.config.addr())
            .field("conn", &self.conn)
            .field("broken", &self.broken)
            .field("subscribed", &self.subscribed)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_both_protocols() {
        let v = decode(b"*2\r\n$1\r\na\r\n:5\r\n", Protocol::Resp2)
            .ok()
            .unwrap();
        assert_eq!(
            v,
            Value::Array(vec![Value::Bulk(b"a".to_vec()), Value::Int(5)])
        );
        assert_eq!(decode(b"$-1\r\n", Protocol::Resp2).ok(), Some(Value::Nil));
        assert_eq!(decode(b"*-1\r\n", Protocol::Resp2).ok(), Some(Value::Nil));
        let v = decode(b"%1\r\n+k\r\n#t\r\n", Protocol::Resp3).ok().unwrap();
        assert_eq!(
            v,
            Value::Map(vec![(Value::Simple("k".into()), Value::Bool(true))])
        );
        assert_eq!(decode(b"_\r\n", Protocol::Resp3).ok(), Some(Value::Nil));
        let v = decode(
            b"*3\r\n*0\r\n>2\r\n+a\r\n*1\r\n:1\r\n$1\r\nz\r\n",
            Protocol::Resp3,
        );
        assert_eq!(
            v.ok(),
            Some(Value::Array(vec![
                Value::Array(vec![]),
                Value::Push(vec![
                    Value::Simple("a".into()),
                    Value::Array(vec![Value::Int(1)])
                ]),
                Value::Bulk(b"z".to_vec()),
            ]))
        );
        assert!(decode(b":1\r\n:2\r\n", Protocol::Resp2).is_err());
        assert_eq!(
            decode(b"-ERR x\r\n", Protocol::Resp3).ok(),
            Some(Value::Error("ERR x".into()))
        );
    }
}
