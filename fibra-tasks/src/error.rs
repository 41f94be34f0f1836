//! `TaskError` and the channel errors.

use std::{fmt, io};

use fibra_rt::TaskletId;

/// What can go wrong with tasks: spawning, joining, waiting on channels.
#[derive(Debug)]
#[non_exhaustive]
pub enum TaskError {
    /// The joined tasklet panicked; its panic message.
    Panicked(String),
    /// The joined tasklet was killed.
    Killed,
    /// No live tasklet has this id (it ended before it could be joined or watched).
    NotFound(TaskletId),
    /// A tasklet tried to join itself, which could never return.
    JoinSelf,
    /// The channel is closed.
    Closed,
    /// The runtime could not spawn (no stack could be mapped).
    Spawn(fibra_rt::Error),
    /// A [`Ticker`](crate::Ticker)'s period or rate cannot be used.
    InvalidPeriod {
        /// Why.
        reason: String,
    },
    /// A closure run off the schedule's thread ([`unblock`](crate::TasksExt::unblock))
    /// panicked; its panic message. The pool's thread goes on.
    UnblockPanicked(String),
    /// A wait with a deadline ([`BlockingPool::run_until`](crate::BlockingPool::run_until))
    /// reached it.
    TimedOut,
    /// An I/O error (for [`unblock`](crate::TasksExt::unblock): no thread could be started).
    Io(io::Error),
}

impl TaskError {
    /// Whether the tasklet (or a closure given to [`unblock`](crate::TasksExt::unblock))
    /// panicked.
    pub fn is_panicked(&self) -> bool {
        matches!(self, TaskError::Panicked(_) | TaskError::UnblockPanicked(_))
    }

    /// Whether the tasklet was killed.
    pub fn is_killed(&self) -> bool {
        matches!(self, TaskError::Killed)
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Panicked(msg) => write!(f, "the tasklet panicked: {msg}"),
            TaskError::Killed => f.write_str("the tasklet was killed before it finished"),
            TaskError::NotFound(id) => write!(f, "no live tasklet {id}: it has already ended"),
            TaskError::JoinSelf => {
                f.write_str("a tasklet cannot join itself: it would wait forever")
            }
            TaskError::Closed => f.write_str("the channel is closed"),
            TaskError::Spawn(e) => write!(f, "could not spawn a tasklet: {e}"),
            TaskError::InvalidPeriod { reason } => write!(f, "invalid ticker period: {reason}"),
            TaskError::UnblockPanicked(msg) => {
                write!(
                    f,
                    "the closure run off the schedule's thread panicked: {msg}"
                )
            }
            TaskError::TimedOut => f.write_str("the deadline passed before the result came"),
            TaskError::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl std::error::Error for TaskError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TaskError::Spawn(e) => Some(e),
            TaskError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for TaskError {
    fn from(e: io::Error) -> Self {
        TaskError::Io(e)
    }
}

impl From<fibra_rt::Error> for TaskError {
    fn from(e: fibra_rt::Error) -> Self {
        TaskError::Spawn(e)
    }
}

/// A send on a closed channel; the value is handed back.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SendError<T>(pub T);

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sending on a closed channel")
    }
}

impl<T> std::error::Error for SendError<T> {}

impl<T> From<SendError<T>> for TaskError {
    fn from(_: SendError<T>) -> Self {
        TaskError::Closed
    }
}

/// Why [`Sender::try_send`](crate::Sender::try_send) failed; the value is handed back.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The channel is at capacity.
    Full(T),
    /// The channel is closed.
    Closed(T),
}

impl<T> TrySendError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(v) | TrySendError::Closed(v) => v,
        }
    }

    /// Whether the channel was full.
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full(_))
    }
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("the channel is full"),
            TrySendError::Closed(_) => f.write_str("sending on a closed channel"),
        }
    }
}

impl<T> std::error::Error for TrySendError<T> {}

impl<T> From<TrySendError<T>> for TaskError {
    fn from(e: TrySendError<T>) -> Self {
        match e {
            TrySendError::Full(_) => TaskError::Io(io::Error::new(
                io::ErrorKind::WouldBlock,
                "the channel is full",
            )),
            TrySendError::Closed(_) => TaskError::Closed,
        }
    }
}

/// Why [`Receiver::try_receive`](crate::Receiver::try_receive) (or
/// [`RemoteReceiver::try_receive`](crate::RemoteReceiver::try_receive)) got nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryReceiveError {
    /// Nothing queued yet.
    Empty,
    /// Nothing queued and the channel is closed: nothing will ever come.
    Closed,
}

impl fmt::Display for TryReceiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryReceiveError::Empty => f.write_str("the channel is empty"),
            TryReceiveError::Closed => f.write_str("the channel is empty and closed"),
        }
    }
}

impl std::error::Error for TryReceiveError {}

/// The old name of [`TryReceiveError`].
#[deprecated(since = "0.2.0", note = "renamed to `TryReceiveError`")]
pub type TryRecvError = TryReceiveError;
