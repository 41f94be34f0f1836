//! `SignalError`, the signals plugin's error enum.

use std::{fmt, io};

/// What can go wrong when waiting for signals.
#[derive(Debug)]
#[non_exhaustive]
pub enum SignalError {
    /// The number cannot be waited for.
    Invalid {
        /// The number that was given.
        signal: i32,
        /// Why it cannot.
        reason: &'static str,
    },
    /// A wait named no signal at all.
    Empty,
    /// The signals a tasklet waited for stopped being caught
    /// ([`StopCatching`](crate::ops::StopCatching)) while it waited.
    Released(crate::Signal),
    /// This system has no signal plugin (it needs Linux's `signalfd`).
    Unsupported,
    /// The system refused to block a signal or to read one.
    Io(io::Error),
}

impl fmt::Display for SignalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignalError::Invalid { signal, reason } => {
                write!(f, "cannot wait for signal {signal}: {reason}")
            }
            SignalError::Empty => f.write_str("a wait for signals named none: name at least one"),
            SignalError::Released(signal) => write!(
                f,
                "{signal} stopped being caught while this tasklet waited for it; it has its \
                 default action again"
            ),
            SignalError::Unsupported => f.write_str(
                "signals as ops need Linux's signalfd; on this system, handle them outside the \
                 schedule",
            ),
            SignalError::Io(e) => write!(f, "signal handling failed: {e}"),
        }
    }
}

impl std::error::Error for SignalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SignalError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for SignalError {
    fn from(e: io::Error) -> Self {
        SignalError::Io(e)
    }
}

impl From<SignalError> for io::Error {
    fn from(e: SignalError) -> Self {
        match e {
            SignalError::Io(e) => e,
            SignalError::Unsupported => io::Error::new(io::ErrorKind::Unsupported, e),
            other => io::Error::new(io::ErrorKind::InvalidInput, other),
        }
    }
}
