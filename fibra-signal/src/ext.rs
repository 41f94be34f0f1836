//! `SignalExt`: the signals plugin's ops as methods on [`Handle`].

use fibra_rt::Handle;

use crate::ops::{StopCatching, WaitSignal};
use crate::{Signal, SignalError};

/// Waiting for signals, as calls on a tasklet's [`Handle`]. They need the
/// [`SignalPlugin`](crate::SignalPlugin) in the schedule.
pub trait SignalExt {
    /// Parks until `signal` arrives. One that arrived since the signal was first caught, while
    /// no tasklet waited for it, is kept and returns at once.
    ///
    /// # Errors
    ///
    /// [`SignalError::Io`] when the signal cannot be blocked or read.
    fn signal(&self, signal: Signal) -> Result<(), SignalError>;

    /// Parks until the first of `signals` arrives, and says which.
    ///
    /// # Errors
    ///
    /// [`SignalError::Empty`] for an empty list, and as [`signal`](Self::signal).
    fn signals(&self, signals: &[Signal]) -> Result<Signal, SignalError>;

    /// Stops catching `signal`: its default action applies again (a second Ctrl-C ends the
    /// process while the first one's clean stop runs).
    ///
    /// # Errors
    ///
    /// [`SignalError::Io`] when the signal cannot be unblocked.
    fn stop_catching(&self, signal: Signal) -> Result<(), SignalError>;
}

impl SignalExt for Handle {
    fn signal(&self, signal: Signal) -> Result<(), SignalError> {
        self.yield_op(WaitSignal::new(&[signal])).map(drop)
    }

    fn signals(&self, signals: &[Signal]) -> Result<Signal, SignalError> {
        self.yield_op(WaitSignal::new(signals))
    }

    fn stop_catching(&self, signal: Signal) -> Result<(), SignalError> {
        self.yield_op(StopCatching(signal))
    }
}
