//! Ctrl-C and SIGTERM for the examples, through the signals plugin (no handler code).

use fibra::signal::{Signal, SignalError, SignalPlugin};
use fibra::Schedule;

/// The signals that stop an example cleanly. A second one ends the process at once.
pub(crate) const STOP: [Signal; 2] = [Signal::INT, Signal::TERM];

/// Adds the signals plugin, catching [`STOP`] from now on (before any other thread starts, so
/// that none of them takes Ctrl-C's default action). Returns `false` on a system without the
/// plugin: there Ctrl-C ends the process without a clean stop.
pub(crate) fn catch_stop(schedule: &mut Schedule) -> Result<bool, Box<dyn std::error::Error>> {
    match SignalPlugin::catching(&STOP) {
        Ok(plugin) => {
            schedule.add_plugin(plugin)?;
            Ok(true)
        }
        Err(SignalError::Unsupported) => {
            log::warn!("{}", SignalError::Unsupported);
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}
