//! Ctrl-C (SIGINT) and SIGTERM as a flag the host loop looks at.
//!
//! The handler only stores to an atomic, which is async-signal-safe. It is installed with
//! `SA_RESETHAND`, so a second Ctrl-C ends the process at once if the clean stop hangs.

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_signal: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Installs the handler for SIGINT and SIGTERM; the returned flag turns true on either.
pub(crate) fn stop_on_ctrl_c() -> std::io::Result<&'static AtomicBool> {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; we fill in a
        // handler that only touches an atomic, and pass pointers to locals that outlive
        // the call.
        let rc = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESETHAND;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(&STOP)
}
