//! The ops the signals plugin serves. Most code uses them through
//! [`SignalExt`](crate::SignalExt); they are public so that a tasklet can
//! [`select`](fibra_rt::Handle::select) a signal against another plugin's op.

use fibra_rt::Op;

use crate::signal::SignalSet;
use crate::{Signal, SignalError};

/// Wait until one of a set of signals arrives. Output: which one.
#[derive(Clone, Copy, Debug)]
pub struct WaitSignal {
    pub(crate) set: SignalSet,
}

impl WaitSignal {
    /// Wait for the first of `signals`.
    pub fn new(signals: &[Signal]) -> Self {
        WaitSignal {
            set: SignalSet::of(signals),
        }
    }
}

impl Op for WaitSignal {
    type Output = Result<Signal, SignalError>;
    const PLUGIN: Option<&'static str> = Some("fibra_signal::SignalPlugin::new()?");
}

/// Stop catching a signal: its default action (for `SIGINT` and `SIGTERM`, ending the
/// process) applies again, to an arrival already pending too. A tasklet left waiting for no
/// caught signal gets [`SignalError::Released`].
#[derive(Clone, Copy, Debug)]
pub struct StopCatching(pub Signal);

impl Op for StopCatching {
    type Output = Result<(), SignalError>;
    const PLUGIN: Option<&'static str> = Some("fibra_signal::SignalPlugin::new()?");
}
