//! `HttpError`, the HTTP and WebSocket server's error enum.

use std::{fmt, io};

use fibra_net::NetError;

use crate::CloseCode;

/// What can go wrong serving HTTP or a WebSocket.
#[derive(Debug)]
#[non_exhaustive]
pub enum HttpError {
    /// The connection failed or was lost.
    Net(NetError),
    /// The WebSocket was closed, by the peer or by this side, with this code.
    Closed(CloseCode),
    /// A WebSocket send found the connection's output at its send limit (nothing was queued).
    Full,
    /// A deadline passed.
    TimedOut,
    /// Another I/O error.
    Io(io::Error),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Net(e) => write!(f, "{e}"),
            HttpError::Closed(code) => write!(f, "the WebSocket was closed ({code})"),
            HttpError::Full => f.write_str(
                "the WebSocket's output is at its send limit: the peer does not read fast enough",
            ),
            HttpError::TimedOut => f.write_str("timed out"),
            HttpError::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl std::error::Error for HttpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HttpError::Net(e) => Some(e),
            HttpError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for HttpError {
    fn from(e: io::Error) -> Self {
        HttpError::Io(e)
    }
}

impl From<NetError> for HttpError {
    fn from(e: NetError) -> Self {
        match e {
            NetError::Full { .. } => HttpError::Full,
            NetError::TimedOut => HttpError::TimedOut,
            other => HttpError::Net(other),
        }
    }
}
