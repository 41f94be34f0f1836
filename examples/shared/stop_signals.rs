//! The stop signals caught from the start, and output to stdout that never ends a server.

use fibra::signal::{Signal, SignalError, SignalPlugin};
use fibra::Schedule;

/// Catches `signals` from now on, on the schedule's signals plugin (the one
/// `fibra::schedule()` adds, which catches a signal only from the first wait for it): one that
/// comes before that wait is kept for it, instead of taking its default action (ending the
/// process, without the clean stop). Call it before the example says where it listens, and
/// catch only signals it waits for (a caught signal nobody waits for is ignored). Off Linux
/// there is no plugin: nothing to do.
#[allow(dead_code)] // host_loop uses `say!` alone
pub(crate) fn catch(schedule: &mut Schedule, signals: &[Signal]) -> Result<(), SignalError> {
    match schedule.plugin_mut::<SignalPlugin>() {
        Some(plugin) => plugin.catch(signals),
        None => Ok(()),
    }
}

/// `println!`, except that a stdout nobody reads any more (`| head` after head exited) or a
/// full disk loses the line instead of panicking: a server's report is not worth the server.
#[allow(unused_macros)]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}
#[allow(unused_imports)]
pub(crate) use say;
