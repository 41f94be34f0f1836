//! `NetError`, what a network op can fail with, and `Lost`, why a connection was lost (with
//! `TlsLost`, why a TLS connection was: the `tls` module's reasons, kept beside the others).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::api::codec::{CodecFailure, FrameError};

/// Why a connection was lost: what [`on_lost_connection`](crate::NetExt::on_lost_connection)
/// returns, and what later receives fail with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Lost {
    /// The peer closed its side (end of stream, or a half-close). Frames received before it
    /// are still delivered first.
    Eof,
    /// The peer reset the connection (RST).
    Reset,
    /// This side closed it ([`close`](crate::NetExt::close), `send_and_close`, or the last
    /// [`Conn`](crate::Conn) was dropped).
    Closed,
    /// This side aborted it ([`abort`](crate::NetExt::abort)): queued output was dropped.
    Aborted,
    /// Nothing arrived within the connection's read timeout.
    TimedOut,
    /// The peer sent a frame longer than the connection's limit.
    TooLong {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The peer sent bytes the connection's codec cannot decode.
    Invalid {
        /// What the codec said.
        reason: &'static str,
    },
    /// The connection was cut off for not reading: a [`Group`](crate::Group) found its
    /// output at the send limit (the group's [`SlowPolicy::Disconnect`](crate::SlowPolicy)).
    Slow {
        /// The send limit, in bytes.
        limit: usize,
    },
    /// A system call failed with this OS error code.
    Os(i32),
    /// The connection's codec broke its contract (panicked, or returned a frame outside
    /// its buffer): the connection was ended, and the codec is not called again.
    Codec(CodecFailure),
    /// A TLS connection failed, or its peer ended it without `close_notify`: why.
    Tls(TlsLost),
}

impl Lost {
    /// Whether the connection can still send: after the peer's end of stream, a read timeout
    /// or a frame error, output still flows (to say goodbye, say); after a reset, an abort, a
    /// local close or an OS error it does not.
    pub fn can_send(self) -> bool {
        matches!(
            self,
            Lost::Eof
                | Lost::TimedOut
                | Lost::TooLong { .. }
                | Lost::Invalid { .. }
                | Lost::Tls(TlsLost::NoCloseNotify)
        )
    }

    /// What an I/O error on a connection says about its loss: a reset, an abort or a broken
    /// pipe is [`Lost::Reset`], a timeout [`Lost::TimedOut`], anything else
    /// [`Lost::Os`] with its OS error code (`EIO` when it has none).
    pub fn from_io(e: &io::Error) -> Lost {
        match e.kind() {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => Lost::Reset,
            io::ErrorKind::TimedOut => Lost::TimedOut,
            _ => Lost::Os(e.raw_os_error().unwrap_or(libc::EIO)),
        }
    }
}

impl fmt::Display for Lost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lost::Eof => f.write_str("the peer closed the connection"),
            Lost::Reset => f.write_str("the peer reset the connection"),
            Lost::Closed => f.write_str("the connection was closed by this side"),
            Lost::Aborted => f.write_str("the connection was aborted by this side"),
            Lost::TimedOut => f.write_str("nothing arrived within the connection's read timeout"),
            Lost::TooLong { limit } => {
                write!(
                    f,
                    "the peer sent a frame longer than the limit of {limit} bytes"
                )
            }
            Lost::Invalid { reason } => write!(f, "the peer sent an invalid frame: {reason}"),
            Lost::Slow { limit } => write!(
                f,
                "cut off for not reading: {limit} bytes were waiting to be sent to the peer"
            ),
            Lost::Os(code) => write!(f, "{}", io::Error::from_raw_os_error(*code)),
            Lost::Codec(failure) => write!(f, "the connection's codec failed: {failure}"),
            Lost::Tls(tls) => write!(f, "{tls}"),
        }
    }
}

/// What a network op can fail with.
///
/// A connection that was lost fails its later receives (and, when its output ended, its
/// sends) with [`NetError::Lost`], which says why: the peer's end of stream, a reset, a local
/// close or abort, a read timeout, a bad frame, a cut-off.
///
/// It is kept small (48 bytes on 64-bit targets; a large variant's payload is boxed, as
/// [`PoolTimeout`] is): every op's answer is a `Result<_, NetError>` written into and moved
/// across the tasklet's stack, and with a thousand connections served in turn each stack
/// line it spans is a cache miss (BENCHMARKS.md, "Echo: the cache footprint").
#[derive(Debug)]
#[non_exhaustive]
pub enum NetError {
    /// The connection was lost, for this reason.
    Lost(Lost),
    /// The connection or listener is closed here, and gone from the plugin.
    Closed,
    /// The peer reset the connection.
    Reset,
    /// A deadline passed: the connection's read timeout, or a connect or close timeout.
    TimedOut,
    /// A frame is longer than the connection's limit (received: the connection is lost;
    /// sent: nothing was queued).
    TooLong {
        /// The limit, in bytes.
        limit: usize,
    },
    /// A frame could not be decoded, or a payload cannot be encoded by the connection's codec.
    InvalidFrame {
        /// What the codec said.
        reason: &'static str,
    },
    /// Nothing listens at the address connected to.
    Refused {
        /// The address.
        addr: SocketAddr,
    },
    /// No route to the address connected to (network or host unreachable).
    Unreachable {
        /// The address.
        addr: SocketAddr,
    },
    /// The listening socket could not be set up at the address (in use, not allowed...).
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The system's error.
        source: io::Error,
    },
    /// A connection's source address ([`Connect::bind`](crate::ops::Connect::bind)) could
    /// not be bound (in use, not this host's...): nothing was connected.
    BindSource {
        /// The source address asked for.
        addr: SocketAddr,
        /// The system's error.
        source: io::Error,
    },
    /// `try_send` found the connection's output buffer at its limit: the peer does not read
    /// as fast as it is sent to. Nothing was queued.
    Full {
        /// Bytes queued and not yet written to the socket.
        queued: usize,
        /// The connection's send limit (high-water mark).
        limit: usize,
    },
    /// Another tasklet is already receiving on this connection.
    Busy,
    /// A [`Service`](crate::Service) already has a member of this name.
    NameTaken {
        /// The name.
        name: String,
    },
    /// A [`Service`](crate::Service) has no member of this name.
    UnknownName {
        /// The name.
        name: String,
    },
    /// A server was started twice, or after it was stopped (its listener is closed).
    NotStartable {
        /// Why.
        reason: &'static str,
    },
    /// A tasklet could not be spawned (no stack could be mapped).
    Spawn(fibra_rt::Error),
    /// A [`Pool`](crate::Pool) request got no free connection, or no reply, in time.
    PoolTimedOut(Box<PoolTimeout>),
    /// A [`Pool`](crate::Pool)'s connection broke during the request (it is dropped, and
    /// opened again in the background). The request may or may not have reached the back end.
    PoolBroken {
        /// The back end.
        addr: SocketAddr,
        /// What broke it.
        source: Box<NetError>,
    },
    /// The [`Pool`](crate::Pool) is not running (never started, or stopped).
    PoolStopped {
        /// The back end.
        addr: SocketAddr,
    },
    /// A codec broke its contract (panicked, say) while framing a payload for a group or a
    /// check; a connection's codec failing loses the connection instead
    /// ([`Lost::Codec`]).
    Codec(CodecFailure),
    /// The server name given to a TLS connect is neither a DNS name nor an IP address.
    InvalidServerName {
        /// The name.
        name: String,
    },
    /// A TLS connection could not be set up from its config (rustls said why).
    TlsConfig {
        /// rustls's error.
        reason: String,
    },
    /// Another I/O error.
    Io(io::Error),
}

// Held to its size: a variant that grows it (a `SocketAddr` beside another field, a
// `String` beside a `&str`) must box its payload.
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<NetError>() <= 48);

/// Why a [`Pool`](crate::Pool) request timed out ([`NetError::PoolTimedOut`]); boxed, so that
/// every `Result<_, NetError>` stays small.
#[derive(Debug)]
pub struct PoolTimeout {
    /// The back end.
    pub addr: SocketAddr,
    /// The request's timeout.
    pub waited: Duration,
    /// What it was waiting for: a free connection, or the reply.
    pub stage: &'static str,
    /// What last went wrong with the back end (a refused connect, a reset...), if anything
    /// did.
    pub last_error: Option<String>,
}

impl NetError {
    /// Whether the error means the connection is gone or can no longer receive.
    pub fn is_lost(&self) -> bool {
        matches!(self, NetError::Lost(_) | NetError::Closed | NetError::Reset)
    }

    /// A payload the codec could not frame.
    pub(crate) fn from_encode(e: FrameError) -> NetError {
        match e {
            FrameError::TooLong => NetError::TooLong {
                limit: u32::MAX as usize,
            },
            FrameError::Invalid(reason) => NetError::InvalidFrame { reason },
        }
    }

    /// Why the connection was lost, if that is what the error says.
    pub fn lost(&self) -> Option<Lost> {
        match self {
            NetError::Lost(lost) => Some(*lost),
            _ => None,
        }
    }
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::Lost(lost) => write!(f, "connection lost: {lost}"),
            NetError::Closed => f.write_str("the connection is closed"),
            NetError::Reset => f.write_str("the connection was reset by the peer"),
            NetError::TimedOut => f.write_str("timed out"),
            NetError::TooLong { limit } => write!(
                f,
                "frame longer than the limit of {limit} bytes (raise it with \
                 ConnOptions::max_frame)"
            ),
            NetError::InvalidFrame { reason } => write!(f, "invalid frame: {reason}"),
            NetError::Refused { addr } => {
                write!(f, "connection to {addr} refused: nothing listens there")
            }
            NetError::Unreachable { addr } => write!(f, "{addr} is unreachable from this host"),
            NetError::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            NetError::BindSource { addr, source } => write!(
                f,
                "cannot bind the connection's source address {addr}: {source}"
            ),
            NetError::Full { queued, limit } => write!(
                f,
                "send buffer full ({queued} bytes queued, limit {limit}): the peer does not \
                 read fast enough"
            ),
            NetError::Busy => f.write_str(
                "another tasklet is already receiving on this connection (one receiver at a time)",
            ),
            NetError::NameTaken { name } => {
                write!(f, "the service already has a member named `{name}`")
            }
            NetError::UnknownName { name } => {
                write!(f, "the service has no member named `{name}`")
            }
            NetError::NotStartable { reason } => write!(f, "cannot start: {reason}"),
            NetError::Spawn(e) => write!(f, "could not spawn a tasklet: {e}"),
            NetError::PoolTimedOut(timeout) => {
                let PoolTimeout {
                    addr,
                    waited,
                    stage,
                    last_error,
                } = &**timeout;
                write!(f, "back end {addr}: timed out after {waited:?} {stage}")?;
                match last_error {
                    Some(last) => write!(f, "; the last failure: {last}"),
                    None => f.write_str("; no failure seen (all its connections were busy)"),
                }
            }
            NetError::PoolBroken { addr, source } => {
                write!(
                    f,
                    "back end {addr}: the connection broke during the request: {source}"
                )
            }
            NetError::PoolStopped { addr } => {
                write!(
                    f,
                    "the pool of back end {addr} is not running (start it first)"
                )
            }
            NetError::Codec(failure) => write!(f, "codec failed: {failure}"),
            NetError::InvalidServerName { name } => write!(
                f,
                "`{name}` is not a server name for TLS (a DNS name or an IP address)"
            ),
            NetError::TlsConfig { reason } => write!(f, "TLS config refused: {reason}"),
            NetError::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl std::error::Error for NetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NetError::Bind { source, .. } | NetError::BindSource { source, .. } => Some(source),
            NetError::Spawn(e) => Some(e),
            NetError::PoolBroken { source, .. } => Some(source.as_ref()),
            NetError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for NetError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => NetError::Reset,
            io::ErrorKind::TimedOut => NetError::TimedOut,
            _ => NetError::Io(e),
        }
    }
}

impl From<Lost> for NetError {
    fn from(lost: Lost) -> Self {
        NetError::Lost(lost)
    }
}

impl From<fibra_rt::Error> for NetError {
    fn from(e: fibra_rt::Error) -> Self {
        NetError::Spawn(e)
    }
}

impl From<fibra_tasks::TaskError> for NetError {
    fn from(e: fibra_tasks::TaskError) -> Self {
        match e {
            fibra_tasks::TaskError::Spawn(e) => NetError::Spawn(e),
            fibra_tasks::TaskError::Io(e) => NetError::from(e),
            fibra_tasks::TaskError::TimedOut => NetError::TimedOut,
            other => NetError::Io(io::Error::other(other)),
        }
    }
}

impl From<fibra_rt::TimedOut> for NetError {
    fn from(_: fibra_rt::TimedOut) -> Self {
        NetError::TimedOut
    }
}

impl From<NetError> for io::Error {
    fn from(e: NetError) -> Self {
        let kind = match &e {
            NetError::Io(_) => match e {
                NetError::Io(inner) => return inner,
                _ => unreachable!(),
            },
            NetError::Lost(lost) => match lost {
                Lost::Eof | Lost::Closed | Lost::Aborted | Lost::Slow { .. } => {
                    io::ErrorKind::NotConnected
                }
                Lost::Reset => io::ErrorKind::ConnectionReset,
                Lost::TimedOut => io::ErrorKind::TimedOut,
                Lost::TooLong { .. } | Lost::Invalid { .. } | Lost::Codec(_) | Lost::Tls(_) => {
                    io::ErrorKind::InvalidData
                }
                Lost::Os(code) => return io::Error::from_raw_os_error(*code),
            },
            NetError::Closed => io::ErrorKind::NotConnected,
            NetError::Reset => io::ErrorKind::ConnectionReset,
            NetError::TimedOut => io::ErrorKind::TimedOut,
            NetError::TooLong { .. } | NetError::InvalidFrame { .. } | NetError::Codec(_) => {
                io::ErrorKind::InvalidData
            }
            NetError::Refused { .. } => io::ErrorKind::ConnectionRefused,
            NetError::Unreachable { .. } => io::ErrorKind::HostUnreachable,
            NetError::Bind { source, .. } | NetError::BindSource { source, .. } => source.kind(),
            NetError::Full { .. } => io::ErrorKind::WouldBlock,
            NetError::Busy => io::ErrorKind::ResourceBusy,
            NetError::NameTaken { .. } => io::ErrorKind::AlreadyExists,
            NetError::UnknownName { .. } => io::ErrorKind::NotFound,
            NetError::NotStartable { .. } => io::ErrorKind::InvalidInput,
            NetError::Spawn(_) => io::ErrorKind::OutOfMemory,
            NetError::PoolTimedOut(_) => io::ErrorKind::TimedOut,
            NetError::PoolBroken { .. } => io::ErrorKind::ConnectionAborted,
            NetError::PoolStopped { .. } => io::ErrorKind::NotConnected,
            NetError::InvalidServerName { .. } | NetError::TlsConfig { .. } => {
                io::ErrorKind::InvalidInput
            }
        };
        io::Error::new(kind, e)
    }
}

/// Why a TLS connection was lost: the reason of [`Lost::Tls`](crate::Lost::Tls).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsLost {
    /// The peer's first bytes were not a TLS record: plaintext (HTTP, telnet, a scanner)
    /// sent to a TLS port, or garbage before the hello.
    NotTls,
    /// The handshake did not finish within the connection's handshake timeout.
    HandshakeTimedOut {
        /// The timeout.
        after: Duration,
    },
    /// The handshake failed: a malformed or unexpected message, no version, cipher suite or
    /// application protocol (ALPN) in common.
    Handshake {
        /// What went wrong.
        reason: &'static str,
    },
    /// The peer's certificate was refused (or the peer refused ours: see
    /// [`Alert`](Self::Alert)).
    Certificate {
        /// Why.
        reason: &'static str,
    },
    /// The peer sent a fatal alert.
    Alert {
        /// The alert's name (`bad_certificate`, `handshake_failure`...).
        name: &'static str,
    },
    /// The peer sent a record longer than TLS allows (16 KiB of plaintext plus overhead).
    RecordTooLarge,
    /// The peer asked to renegotiate (a hello after a TLS 1.2 handshake): refused. rustls
    /// answers a first request with a `no_renegotiation` warning (the connection goes on, as
    /// RFC 5746 allows), and a second ends the connection with this. TLS 1.3 has no
    /// renegotiation: a hello sent after its handshake fails to decrypt
    /// ([`Protocol`](Self::Protocol)).
    Renegotiation,
    /// A record after the handshake was invalid: it failed to decrypt, or broke the
    /// protocol.
    Protocol {
        /// What went wrong.
        reason: &'static str,
    },
    /// The peer ended the TCP stream without a `close_notify`: what it sent last may have
    /// been cut off by someone in between. Output still flows, as after an end of stream.
    NoCloseNotify,
}

impl fmt::Display for TlsLost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsLost::NotTls => {
                f.write_str("the peer did not speak TLS (plaintext or garbage sent to a TLS port)")
            }
            TlsLost::HandshakeTimedOut { after } => {
                write!(f, "the TLS handshake did not finish within {after:?}")
            }
            TlsLost::Handshake { reason } => write!(f, "the TLS handshake failed: {reason}"),
            TlsLost::Certificate { reason } => {
                write!(f, "the peer's TLS certificate was refused: {reason}")
            }
            TlsLost::Alert { name } => write!(f, "the peer sent the TLS alert {name}"),
            TlsLost::RecordTooLarge => {
                f.write_str("the peer sent a TLS record longer than the protocol allows")
            }
            TlsLost::Renegotiation => {
                f.write_str("the peer tried to renegotiate TLS, which is refused")
            }
            TlsLost::Protocol { reason } => write!(f, "TLS protocol error: {reason}"),
            TlsLost::NoCloseNotify => f.write_str(
                "the peer ended the stream without a TLS close_notify (its data may be cut)",
            ),
        }
    }
}
