//! `RedisError`: every way a Redis call can fail, each saying which command and why.

use std::fmt;
use std::io;
use std::time::Duration;

use fibra_net::NetError;

/// Why a Redis call failed. Each variant names the command (its first word, `"GET"`) where
/// one was running, and says what to do where something can be done.
#[derive(Debug)]
#[non_exhaustive]
pub enum RedisError {
    /// The URL given to [`Config::parse`](crate::Config::parse) is not a valid
    /// `redis://[user:pass@]host:port/db` URL. The URL is shown with its password hidden.
    Url {
        /// The URL, password replaced by `***`.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The server could not be reached (refused, unreachable, name not found, connect
    /// timeout).
    Connect {
        /// `host:port`.
        addr: String,
        /// Why.
        source: NetError,
    },
    /// The server refused the credentials or the handshake (`AUTH`, `HELLO`, `SELECT`).
    Handshake {
        /// The command of the handshake that failed.
        command: &'static str,
        /// The server's message (`WRONGPASS invalid username-password pair...`).
        message: String,
    },
    /// The server answered the command with an error reply (`-ERR ...`, `-WRONGTYPE ...`).
    /// The connection is fine.
    Server {
        /// The command.
        command: String,
        /// The server's message, with its code (`WRONGTYPE Operation against a key...`).
        message: String,
    },
    /// No reply within the call's timeout. The connection was closed (a late reply could
    /// otherwise be read as the next command's): the next call on a [`Client`](crate::Client)
    /// or [`Pool`](crate::Pool) opens a new one.
    Timeout {
        /// The command.
        command: String,
        /// The time the call was given.
        after: Duration,
    },
    /// The connection was lost during the command (the server closed it, a reset...). Whether
    /// the command ran is unknown.
    Lost {
        /// The command.
        command: String,
        /// Why, from the network layer.
        source: NetError,
    },
    /// The server sent bytes that are not RESP, or a reply nested too deep; the connection
    /// was closed.
    Protocol {
        /// The command whose reply was being read.
        command: String,
        /// What was wrong.
        reason: String,
    },
    /// The reply is larger than the configured limit
    /// ([`Config::with_max_reply`](crate::Config::with_max_reply)); the connection was
    /// closed (the rest of the reply was not read).
    TooLarge {
        /// The command.
        command: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// The connection broke earlier (a timeout, a protocol error, a loss) and is not used
    /// again: make a new one (a [`Client`](crate::Client) or [`Pool`](crate::Pool) does it).
    Broken {
        /// The command that was refused.
        command: String,
        /// What broke the connection.
        reason: String,
    },
    /// No connection to the server could be had within the call's timeout (a
    /// [`Client`](crate::Client) waiting out its backoff, a [`Pool`](crate::Pool) with all
    /// its connections down or busy).
    Unavailable {
        /// The command.
        command: String,
        /// `host:port`.
        addr: String,
        /// The last failure to connect or to use a connection, if any.
        last_error: Option<String>,
    },
    /// The reply was not of the type the typed helper expects (an integer for `INCR`...).
    UnexpectedReply {
        /// The command.
        command: String,
        /// What the helper expected.
        expected: &'static str,
        /// What came, shortened.
        got: String,
    },
    /// The call cannot be made as asked (a `SUBSCRIBE` on a plain connection, a stopped
    /// pool, keys and ids of different lengths...).
    Usage {
        /// The command.
        command: String,
        /// Why.
        reason: String,
    },
    /// A network error outside a command.
    Net(NetError),
    /// An I/O error.
    Io(io::Error),
}

impl RedisError {
    /// Whether the call failed because of the connection or the server's reachability (a
    /// retry on a new connection may work), not because of the command itself.
    pub fn is_connection_error(&self) -> bool {
        matches!(
            self,
            RedisError::Connect { .. }
                | RedisError::Timeout { .. }
                | RedisError::Lost { .. }
                | RedisError::Protocol { .. }
                | RedisError::Broken { .. }
                | RedisError::Unavailable { .. }
                | RedisError::Net(_)
                | RedisError::Io(_)
        )
    }

    /// Whether this is the server's error reply ([`RedisError::Server`]).
    pub fn is_server_error(&self) -> bool {
        matches!(self, RedisError::Server { .. })
    }

    /// Whether this is a [`RedisError::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, RedisError::Timeout { .. })
    }

    /// The server's error code (`"WRONGTYPE"`, `"NOSCRIPT"`, `"ERR"`) of a
    /// [`RedisError::Server`] or [`RedisError::Handshake`].
    pub fn server_code(&self) -> Option<&str> {
        match self {
            RedisError::Server { message, .. } | RedisError::Handshake { message, .. } => {
                message.split(' ').next()
            }
            _ => None,
        }
    }
}

impl fmt::Display for RedisError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisError::Url { url, reason } => write!(f, "bad Redis URL `{url}`: {reason}"),
            RedisError::Connect { addr, source } => {
                write!(f, "cannot connect to Redis at {addr}: {source}")
            }
            RedisError::Handshake { command, message } => {
                write!(f, "Redis refused {command} on connect: {message}")
            }
            RedisError::Server { command, message } => {
                write!(f, "Redis answered {command} with an error: {message}")
            }
            RedisError::Timeout { command, after } => write!(
                f,
                "no reply from Redis to {command} within {after:?}; the connection was closed"
            ),
            RedisError::Lost { command, source } => write!(
                f,
                "the connection to Redis was lost during {command} (it may or may not have \
                 run): {source}"
            ),
            RedisError::Protocol { command, reason } => write!(
                f,
                "Redis sent an invalid reply to {command}: {reason}; the connection was closed"
            ),
            RedisError::TooLarge { command, limit } => write!(
                f,
                "the reply to {command} is larger than the {limit}-byte limit \
                 (Config::with_max_reply); the connection was closed"
            ),
            RedisError::Broken { command, reason } => write!(
                f,
                "{command} not sent: this Redis connection broke earlier ({reason}); \
                 open a new one"
            ),
            RedisError::Unavailable {
                command,
                addr,
                last_error: Some(last),
            } => write!(
                f,
                "no connection to Redis at {addr} for {command} within its timeout \
                 (last error: {last})"
            ),
            RedisError::Unavailable {
                command,
                addr,
                last_error: None,
            } => write!(
                f,
                "no connection to Redis at {addr} for {command} within its timeout"
            ),
            RedisError::UnexpectedReply {
                command,
                expected,
                got,
            } => write!(
                f,
                "Redis answered {command} with {got}, expected {expected}"
            ),
            RedisError::Usage { command, reason } => write!(f, "{command}: {reason}"),
            RedisError::Net(e) => write!(f, "Redis connection: {e}"),
            RedisError::Io(e) => write!(f, "Redis connection: {e}"),
        }
    }
}

impl std::error::Error for RedisError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RedisError::Connect { source, .. } | RedisError::Lost { source, .. } => Some(source),
            RedisError::Net(e) => Some(e),
            RedisError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for RedisError {
    fn from(e: io::Error) -> Self {
        RedisError::Io(e)
    }
}

impl From<NetError> for RedisError {
    fn from(e: NetError) -> Self {
        RedisError::Net(e)
    }
}
