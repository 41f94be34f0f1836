//! `ConnOptions` and `ListenOptions`: a connection's limits and framing, a listener's socket
//! options; `GroupOptions`: a group's framing and what it does with slow members.

use std::time::Duration;

use crate::api::codec::{Framing, DEFAULT_MAX_FRAME};
use crate::tls::DEFAULT_HANDSHAKE_TIMEOUT;

/// A client connection's TLS: the config and the server's name.
#[cfg(feature = "tls")]
#[derive(Clone, Debug)]
pub(crate) struct ClientTls {
    pub(crate) config: std::sync::Arc<rustls::ClientConfig>,
    pub(crate) name: rustls::pki_types::ServerName<'static>,
}

/// The default send limit (high-water mark of the output buffer): 64 KiB.
pub const DEFAULT_SEND_LIMIT: usize = 64 * 1024;
/// The default time `close` waits for queued output to be written: 10 s.
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// How a connection frames, buffers and times out.
///
/// Set on a listener (every accepted connection gets a copy) or given to `connect`; the
/// limits can be changed later on the connection itself.
///
/// ```
/// use std::time::Duration;
/// use fibra_net::{ConnOptions, Framing};
///
/// let options = ConnOptions::new()
///     .with_framing(Framing::Lines)
///     .with_max_frame(8 * 1024)
///     .with_send_limit(1024 * 1024)
///     .with_read_timeout(Some(Duration::from_secs(60)));
/// assert_eq!(options.max_frame(), 8 * 1024);
/// ```
#[derive(Clone, Debug)]
// In the order written: the four that a send or a receive reads on every message first, in
// one cache line (see the table's `ConnEntry`).
#[repr(C)]
pub struct ConnOptions {
    pub(crate) max_frame: usize,
    pub(crate) send_limit: usize,
    pub(crate) read_timeout: Option<Duration>,
    pub(crate) write_through: bool,
    pub(crate) nodelay: bool,
    pub(crate) framing: Framing,
    pub(crate) close_timeout: Duration,
    pub(crate) keepalive: Option<Duration>,
    pub(crate) flush_delay: Duration,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) handshake_timeout: Duration,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<ClientTls>,
}

impl Default for ConnOptions {
    fn default() -> Self {
        ConnOptions {
            framing: Framing::Lines,
            max_frame: DEFAULT_MAX_FRAME,
            send_limit: DEFAULT_SEND_LIMIT,
            read_timeout: None,
            close_timeout: DEFAULT_CLOSE_TIMEOUT,
            nodelay: true,
            keepalive: None,
            flush_delay: Duration::ZERO,
            write_through: false,
            connect_timeout: None,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl ConnOptions {
    /// Lines, 64 KiB frames, 64 KiB send limit, no read timeout, 10 s close timeout,
    /// `TCP_NODELAY` on, no flush delay, no connect timeout (the system's, about two minutes).
    pub fn new() -> Self {
        Self::default()
    }

    /// The codec that cuts received bytes into frames (default: [`Framing::Lines`]).
    pub fn with_framing(mut self, framing: Framing) -> Self {
        self.framing = framing;
        self
    }

    /// The longest frame accepted, in bytes of payload (default 64 KiB). A longer frame
    /// loses the connection with [`Lost::TooLong`](crate::Lost::TooLong).
    pub fn with_max_frame(mut self, bytes: usize) -> Self {
        self.max_frame = bytes.max(1);
        self
    }

    /// The output buffer's high-water mark (default 64 KiB): at or above it, `send` parks
    /// until half of it was written and `try_send` fails with
    /// [`NetError::Full`](crate::NetError::Full). The buffer holds at most this plus one
    /// message.
    pub fn with_send_limit(mut self, bytes: usize) -> Self {
        self.send_limit = bytes.max(1);
        self
    }

    /// Loses the connection with [`Lost::TimedOut`](crate::Lost::TimedOut) when no byte
    /// arrives for this long (a heartbeat deadline); `None` (the default) never does.
    pub fn with_read_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// How long a graceful close waits for queued output to be written before it drops the
    /// rest and resets the connection (default 10 s).
    pub fn with_close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Whether to set `TCP_NODELAY` (default on: fibra already coalesces sends per tick).
    pub fn with_nodelay(mut self, nodelay: bool) -> Self {
        self.nodelay = nodelay;
        self
    }

    /// The shortest time between two writes of a connection's output (default zero: each
    /// round writes what it queued).
    ///
    /// A server that sends many small messages to many connections (a chat room's
    /// broadcast) spends most of its time in the kernel's send path, once per write. With a
    /// delay, output queued less than `delay` after the connection's last write waits until
    /// `delay` after it, and everything queued meanwhile leaves in one write; output for a
    /// connection that was quiet longer, or that received bytes since its last write, goes
    /// at once (a send to it then takes output already held with it; a
    /// [`Group`](crate::Group)'s batch does not, so a room whose members all talk is still
    /// written about once per delay). So a connection that is only sent to is written about
    /// once per delay (the timers are grouped to the millisecond), no byte waits longer than
    /// the delay, and a request–response exchange waits not at all. Output of 16 KiB or more
    /// (or half the send limit), a [`flush`](crate::NetExt::flush), a close, and a full
    /// socket draining are never held back. Like Nagle's algorithm, but bounded in time and
    /// under the program's control.
    ///
    /// ```
    /// use std::time::Duration;
    /// use fibra_net::ConnOptions;
    ///
    /// // A chat room's members: each written at most about every 10 ms while listening.
    /// let member = ConnOptions::new().with_flush_delay(Duration::from_millis(10));
    /// assert_eq!(member.flush_delay(), Duration::from_millis(10));
    /// ```
    pub fn with_flush_delay(mut self, delay: Duration) -> Self {
        self.flush_delay = delay;
        self
    }

    /// Whether bytes sent as they are ([`NetExt::send`](crate::NetExt::send),
    /// [`Conn::try_send`](crate::Conn::try_send)) go to the socket at once when nothing is
    /// queued before them (default off: they leave at the end of the round, coalesced with
    /// the round's other sends to the connection).
    ///
    /// For a request–response peer that answers each request with one send, as an echo or a
    /// proxy does: the answer is written from the sender's bytes while they are at hand, with
    /// no trip through the output buffer and the end-of-round write. A tasklet that sends
    /// several pieces per round makes a system call for each instead of one for all, so
    /// leave it off there. What the socket does not take at once (it is full) is queued as
    /// without it, and goes at the end of the round as usual; when the write fails, the
    /// bytes are queued and the connection is lost with the write's error at the end of the
    /// round, as a queued write's failure loses it (a receive meanwhile fails with it).
    /// Framed sends (`send_frame`, `send_line`, and so a [`Protocol`](crate::Protocol)'s
    /// `Transport::send`), TLS connections, connections with a
    /// [flush delay](Self::with_flush_delay), and sends after a
    /// [`Conn::abort`](crate::Conn::abort) or [`Conn::close`](crate::Conn::close) in the
    /// same tick always go through the output buffer.
    ///
    /// ```
    /// use fibra_net::{ConnOptions, Framing};
    ///
    /// let echo = ConnOptions::new().with_framing(Framing::Raw).with_write_through(true);
    /// assert!(echo.write_through());
    /// ```
    pub fn with_write_through(mut self, write_through: bool) -> Self {
        self.write_through = write_through;
        self
    }

    /// TCP keepalive: after `idle` without traffic the system probes the peer (every
    /// `idle / 4`, at least 1 s, 4 times), and the connection is lost with a reset or a
    /// timeout when the peer is gone: a peer whose host crashed or was cut off while the
    /// connection was quiet is found out, instead of being waited for forever. `None` (the
    /// default): no probes.
    pub fn with_keepalive(mut self, idle: Option<Duration>) -> Self {
        self.keepalive = idle;
        self
    }

    /// The keepalive idle time, if any.
    pub fn keepalive(&self) -> Option<Duration> {
        self.keepalive
    }

    /// How long [`connect_with`](crate::NetExt::connect_with) waits for the handshake before
    /// it gives up with [`NetError::TimedOut`](crate::NetError::TimedOut); `None`: the
    /// system's limit.
    pub fn with_connect_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The connect timeout, if any.
    pub fn connect_timeout(&self) -> Option<Duration> {
        self.connect_timeout
    }

    /// How long a TLS connection's handshake may take (default 10 s): past it, the
    /// connection is lost with [`TlsLost::HandshakeTimedOut`](crate::TlsLost). Plain
    /// connections ignore it.
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The TLS handshake timeout.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// Connects over TLS with `config`, checking the server's certificate against
    /// `server_name` (also sent as SNI): what [`NetExt::connect_tls`](crate::NetExt::connect_tls)
    /// does, and how a [`ReconnectingClient`](crate::ReconnectingClient) or a
    /// [`Pool`](crate::Pool) connects over TLS. The connect returns once the handshake is
    /// done.
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use fibra_net::{rustls, ConnOptions};
    /// # fn config() -> Arc<rustls::ClientConfig> { todo!() }
    /// let name = rustls::pki_types::ServerName::try_from("example.com").unwrap();
    /// let options = ConnOptions::new().with_tls(config(), name);
    /// assert!(options.is_tls());
    /// ```
    #[cfg(feature = "tls")]
    pub fn with_tls(
        mut self,
        config: std::sync::Arc<rustls::ClientConfig>,
        server_name: rustls::pki_types::ServerName<'static>,
    ) -> Self {
        self.tls = Some(ClientTls {
            config,
            name: server_name,
        });
        self
    }

    /// Connects in plain TCP again (drops a config set by `with_tls`).
    #[cfg(feature = "tls")]
    pub fn without_tls(mut self) -> Self {
        self.tls = None;
        self
    }

    /// Whether a connect with these options speaks TLS.
    pub fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }

    /// How frames are cut.
    pub fn framing(&self) -> &Framing {
        &self.framing
    }

    /// The frame limit, in bytes.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// The send limit, in bytes.
    pub fn send_limit(&self) -> usize {
        self.send_limit
    }

    /// How long the peer may stay silent before the connection is lost, if limited.
    pub fn read_timeout(&self) -> Option<Duration> {
        self.read_timeout
    }

    /// How long a close waits for the output to be written before it resets.
    pub fn close_timeout(&self) -> Duration {
        self.close_timeout
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> bool {
        self.nodelay
    }

    /// The flush delay.
    pub fn flush_delay(&self) -> Duration {
        self.flush_delay
    }

    /// Whether sends of bytes as they are write through an empty output at once.
    pub fn write_through(&self) -> bool {
        self.write_through
    }
}

/// How a listening socket is set up. `SO_REUSEADDR` is always on.
#[derive(Clone, Debug)]
pub struct ListenOptions {
    pub(crate) backlog: i32,
    pub(crate) reuse_port: bool,
    pub(crate) conn: ConnOptions,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<std::sync::Arc<rustls::ServerConfig>>,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            backlog: max_backlog(),
            reuse_port: false,
            conn: ConnOptions::default(),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl ListenOptions {
    /// The kernel's largest backlog (`net.core.somaxconn`, as Go listens), no
    /// `SO_REUSEPORT`, default connection options.
    pub fn new() -> Self {
        Self::default()
    }

    /// The accept backlog: connections the kernel completes and queues until they are
    /// accepted; more are dropped (the client retries its SYN a second later, then more).
    /// The default is the kernel's cap, `net.core.somaxconn` (read from `/proc`; 4096 where
    /// it cannot be read), which also cuts any larger value.
    pub fn with_backlog(mut self, backlog: i32) -> Self {
        self.backlog = backlog.max(1);
        self
    }

    /// Sets `SO_REUSEPORT`, so that several listeners (in several processes or schedules)
    /// can share one port: one listener per schedule of [`Cores`](fibra_rt::Cores), each
    /// accepting its own connections, with no thread in between.
    ///
    /// - The kernel (Linux) picks the listener of each new connection by a hash of its
    ///   addresses and ports: even on average, not exactly. 1,000 loopback connections over
    ///   four listeners landed 235, 272, 247 and 246 (`tests/net_spread.rs`); a schedule
    ///   that is busy gets its share all the same.
    /// - Closing one listener of the group resets the connections still in its accept
    ///   queue (completed by the kernel, not yet accepted): they are not moved to the
    ///   others, unless `net.ipv4.tcp_migrate_req` is 1 (Linux 5.14 and later). Stop a
    ///   schedule's accepting before closing its listener when that matters.
    /// - Every listener of the group must set it, under the same user.
    ///
    /// For an exact spread by load, see [`Handoff`](crate::Handoff).
    pub fn with_reuse_port(mut self, reuse: bool) -> Self {
        self.reuse_port = reuse;
        self
    }

    /// The options every accepted connection starts with.
    pub fn with_conn(mut self, options: ConnOptions) -> Self {
        self.conn = options;
        self
    }

    /// Serves TLS with `config` on every accepted connection (what
    /// [`NetExt::listen_tls`](crate::NetExt::listen_tls) does). The connection options'
    /// handshake timeout bounds each handshake.
    #[cfg(feature = "tls")]
    pub fn with_tls(mut self, config: std::sync::Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Whether accepted connections speak TLS.
    pub fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }

    /// The listen backlog.
    pub fn backlog(&self) -> i32 {
        self.backlog
    }

    /// Whether `SO_REUSEPORT` is set.
    pub fn reuse_port(&self) -> bool {
        self.reuse_port
    }

    /// The options of the connections accepted from this listener.
    pub fn conn(&self) -> &ConnOptions {
        &self.conn
    }
}

/// What a group does with a member whose output is at its send limit when a batch is ready
/// for it: the member does not read as fast as the group sends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlowPolicy {
    /// Cut the member off: its connection is reset, it leaves the group, and its tasklet's
    /// receive (and `on_lost_connection`) says [`Lost::Slow`](crate::Lost::Slow), once. The
    /// room never waits for its slowest member, and memory stays bounded.
    #[default]
    Disconnect,
    /// Skip the batch for that member (counted in [`GroupStats::dropped`](crate::GroupStats::dropped)); it stays in the
    /// group and gets later batches once it has room. For feeds where the latest value
    /// matters and a gap is acceptable.
    Drop,
}

/// How a group frames and what it does with slow members.
#[derive(Clone, Debug)]
pub struct GroupOptions {
    pub(crate) framing: Framing,
    pub(crate) slow: SlowPolicy,
}

impl Default for GroupOptions {
    fn default() -> Self {
        GroupOptions {
            framing: Framing::Lines,
            slow: SlowPolicy::Disconnect,
        }
    }
}

impl GroupOptions {
    /// Lines, and [`SlowPolicy::Disconnect`].
    pub fn new() -> Self {
        Self::default()
    }

    /// The framing of [`Group::send_frame`](crate::Group::send_frame) (its members' framing, usually).
    pub fn with_framing(mut self, framing: Framing) -> Self {
        self.framing = framing;
        self
    }

    /// What to do with a member that does not read.
    pub fn with_slow_policy(mut self, slow: SlowPolicy) -> Self {
        self.slow = slow;
        self
    }

    /// The framing of [`Group::send_frame`](crate::Group::send_frame).
    pub fn framing(&self) -> &Framing {
        &self.framing
    }

    /// What is done with a member that does not read.
    pub fn slow_policy(&self) -> SlowPolicy {
        self.slow
    }
}

/// Where the kernel's cap cannot be read: Linux's default since 5.4.
const FALLBACK_BACKLOG: i32 = 4096;

/// The kernel's cap on a listen backlog, `net.core.somaxconn`, read once (as Go's `net`
/// does): a larger backlog is cut to it, a smaller one drops connections in a burst that the
/// kernel would have queued. 4096 where it cannot be read (not Linux, no `/proc`).
fn max_backlog() -> i32 {
    static MAX: std::sync::OnceLock<i32> = std::sync::OnceLock::new();
    *MAX.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|text| text.trim().parse::<i32>().ok())
            .filter(|&n| n > 0)
            .unwrap_or(FALLBACK_BACKLOG)
    })
}
