//! `Client`: a connection that is opened again, with backoff, on the next call after it
//! broke; and `Redial`, the reconnect bookkeeping it shares with the pool and the
//! subscriber.

use std::fmt;
use std::time::{Duration, Instant};

use fibra_net::{Backoff, Delays};
use fibra_rt::Handle;
use fibra_tasks::TasksExt;

use crate::cmd::Cmd;
use crate::commands::Commands;
use crate::config::Config;
use crate::connection::{deadline_after, Connection};
use crate::error::RedisError;
use crate::value::Value;

/// The backoff of a [`Client`], [`Pool`](crate::Pool) and [`Subscriber`](crate::Subscriber)
/// unless told otherwise: waits up to 100 ms, 200 ms, 400 ms... at most 5 s, with full
/// jitter; back to the shortest after a connection stayed up 10 s.
pub(crate) fn default_backoff() -> Backoff {
    Backoff::new()
        .with_initial(Duration::from_millis(100))
        .with_max(Duration::from_secs(5))
}

/// When to try connecting again, and what went wrong last.
#[derive(Debug)]
pub(crate) struct Redial {
    pub(crate) config: Config,
    delays: Delays,
    next_try: Option<Instant>,
    up_since: Option<Instant>,
    pub(crate) last_error: Option<String>,
}

impl Redial {
    pub(crate) fn new(config: Config, backoff: Backoff) -> Redial {
        Redial {
            config,
            delays: backoff.delays(),
            next_try: None,
            up_since: None,
            last_error: None,
        }
    }

    /// A connection was lost or broke for `reason`: the next attempt is at once if it had
    /// been up long enough, else after the next wait.
    pub(crate) fn lost(&mut self, reason: String) {
        let stable = self.delays.backoff().stable_after();
        let now = fibra_rt::time::now();
        if self.up_since.take().is_some_and(|up| now - up >= stable) {
            self.delays.reset();
            self.next_try = None;
        } else {
            self.next_try = Some(now + self.delays.next_wait());
        }
        self.last_error = Some(reason);
    }

    /// Whether the backoff's attempt limit is reached: no more attempts.
    pub(crate) fn is_exhausted(&self) -> bool {
        self.delays.is_exhausted()
    }

    /// The time of the next attempt (`None`: now).
    pub(crate) fn next_try(&self) -> Option<Instant> {
        self.next_try
    }

    /// Connects, waiting out the backoff and trying again until `deadline`.
    ///
    /// # Errors
    ///
    /// [`RedisError::Handshake`] at once (a wrong password does not heal by waiting);
    /// [`RedisError::Unavailable`] naming `command` and the last failure when `deadline`
    /// comes first, or the backoff's attempt limit is reached.
    pub(crate) fn connect(
        &mut self,
        h: &Handle,
        deadline: Instant,
        command: &dyn Fn() -> String,
    ) -> Result<Connection, RedisError> {
        loop {
            let now = fibra_rt::time::now();
            if let Some(at) = self.next_try {
                if at >= deadline || self.delays.is_exhausted() {
                    return Err(self.unavailable(command()));
                }
                if at > now {
                    h.sleep_until(at);
                }
            }
            let until = deadline.min(deadline_after(self.config.connect_timeout()));
            match Connection::connect_until(h, &self.config, until) {
                Ok(conn) => {
                    self.next_try = None;
                    self.up_since = Some(fibra_rt::time::now());
                    if self.last_error.is_some() {
                        log::info!(target: "fibra_redis", "connected to {} again", self.config.addr());
                    }
                    return Ok(conn);
                }
                Err(e) => {
                    log::debug!(target: "fibra_redis", "connect to {}: {e}", self.config.addr());
                    self.last_error = Some(e.to_string());
                    self.next_try = Some(fibra_rt::time::now() + self.delays.next_wait());
                    if matches!(e, RedisError::Handshake { .. }) {
                        return Err(e);
                    }
                    if fibra_rt::time::now() >= deadline {
                        return Err(self.unavailable(command()));
                    }
                }
            }
        }
    }

    pub(crate) fn unavailable(&self, command: String) -> RedisError {
        RedisError::Unavailable {
            command,
            addr: self.config.addr(),
            last_error: self.last_error.clone(),
        }
    }
}

/// A Redis connection that mends itself: it connects on the first call, and after the
/// connection broke (a timeout, a loss, the server restarted) it connects again on the next
/// call, waiting as its [`Backoff`] says, never past that call's timeout. A connection the
/// server closed while it was idle (a restart) is noticed before the next call is sent, so
/// that call goes through on a new connection. A call that failed is not sent again (it may
/// have run): the caller decides.
///
/// ```no_run
/// use fibra_redis::{Client, Commands, Config};
/// # fn demo(h: &fibra_rt::Handle) -> Result<(), fibra_redis::RedisError> {
/// let mut client = Client::new(Config::parse("redis://127.0.0.1:6379")?);
/// let n = client.incr(h, "visits")?; // connects here
/// # Ok(()) }
/// ```
pub struct Client {
    redial: Redial,
    conn: Option<Connection>,
}

impl Client {
    /// A client for the server of `config`, with the default backoff (100 ms doubling up to
    /// 5 s, with jitter). It connects on the first call.
    pub fn new(config: Config) -> Client {
        Client::with_backoff(config, default_backoff())
    }

    /// A client with its own backoff.
    pub fn with_backoff(config: Config, backoff: Backoff) -> Client {
        Client {
            redial: Redial::new(config, backoff),
            conn: None,
        }
    }

    /// The connection, opened (again) if needed within the call timeout.
    ///
    /// # Errors
    ///
    /// [`RedisError::Unavailable`] when no connection could be made in time (it says the
    /// last failure); [`RedisError::Handshake`] when the server refused the login.
    pub fn connection(&mut self, h: &Handle) -> Result<&mut Connection, RedisError> {
        let deadline = deadline_after(self.redial.config.call_timeout());
        self.ensure(h, deadline, &|| "the connection".to_owned())
    }

    fn ensure(
        &mut self,
        h: &Handle,
        deadline: Instant,
        command: &dyn Fn() -> String,
    ) -> Result<&mut Connection, RedisError> {
        if let Some(conn) = &mut self.conn {
            conn.probe_idle(h);
            if !conn.is_usable() {
                let reason = conn
                    .broken()
                    .map_or_else(|| "the connection was lost".to_owned(), str::to_owned);
                self.conn = None;
                self.redial.lost(reason);
            }
        }
        if self.conn.is_none() {
            self.conn = Some(self.redial.connect(h, deadline, command)?);
        }
        Ok(self.conn.as_mut().expect("just connected"))
    }

    /// Sends `cmd` and returns its reply, connecting first if needed, all within the call
    /// timeout.
    ///
    /// # Errors
    ///
    /// As [`Connection::call`], and [`RedisError::Unavailable`] when no connection could be
    /// had in time.
    pub fn call(&mut self, h: &Handle, cmd: &Cmd) -> Result<Value, RedisError> {
        self.call_blocking(h, cmd, Duration::ZERO)
    }

    /// Like [`call`](Self::call), for a command blocking up to `block` on the server.
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
        let timeout = self.redial.config.call_timeout().saturating_add(block);
        let deadline = deadline_after(timeout);
        let conn = self.ensure(h, deadline, &|| cmd.name().into_owned())?;
        conn.call_until(h, cmd, deadline, timeout)
    }

    /// Sends `cmds` in one write and returns their replies in order, connecting first if
    /// needed, all within the call timeout.
    ///
    /// # Errors
    ///
    /// As [`Connection::pipeline`], and [`RedisError::Unavailable`].
    pub fn pipeline(
        &mut self,
        h: &Handle,
        cmds: &[Cmd],
    ) -> Result<Vec<Result<Value, RedisError>>, RedisError> {
        let timeout = self.redial.config.call_timeout();
        let deadline = deadline_after(timeout);
        let conn = self.ensure(h, deadline, &|| Cmd::first_name(cmds))?;
        conn.pipeline_until(h, cmds, deadline, timeout)
    }

    /// Whether a usable connection is open now.
    pub fn is_connected(&self) -> bool {
        self.conn.as_ref().is_some_and(Connection::is_usable)
    }

    /// What went wrong last (a failed connect, a broken connection), if anything.
    pub fn last_error(&self) -> Option<&str> {
        self.redial.last_error.as_deref()
    }

    /// The config.
    pub fn config(&self) -> &Config {
        &self.redial.config
    }
}

impl Commands for Client {
    fn call_blocking(
        &mut self,
        h: &Handle,
        cmd: &Cmd,
        block: Duration,
    ) -> Result<Value, RedisError> {
        Client::call_blocking(self, h, cmd, block)
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.redial.config.addr())
            .field("connected", &self.is_connected())
            .field("last_error", &self.redial.last_error)
            .finish()
    }
}
