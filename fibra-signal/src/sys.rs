//! The system side: a `signalfd` and the thread's signal mask (Linux; elsewhere, `new` says
//! the plugin is unsupported).

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::signal::SignalSet;
use crate::{Signal, SignalError};

/// A non-blocking `signalfd` whose mask is the set of caught signals.
#[derive(Debug)]
pub(crate) struct SignalFd {
    fd: OwnedFd,
    caught: SignalSet,
}

impl SignalFd {
    /// A signalfd that catches nothing yet.
    pub(crate) fn new() -> Result<SignalFd, SignalError> {
        let mask = sigset(SignalSet::default());
        // SAFETY: `mask` is an initialised sigset; -1 asks for a new descriptor.
        let fd = unsafe { libc::signalfd(-1, &mask, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error().into());
        }
        // SAFETY: `signalfd` just returned this descriptor, and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(SignalFd {
            fd,
            caught: SignalSet::default(),
        })
    }

    pub(crate) fn caught(&self) -> SignalSet {
        self.caught
    }

    /// Blocks `signals` in this thread, so that they queue for the descriptor instead of
    /// taking their default action, and adds them to its mask.
    pub(crate) fn catch(&mut self, signals: SignalSet) -> io::Result<()> {
        let new = signals.without(self.caught);
        if new.is_empty() {
            return Ok(());
        }
        set_mask(libc::SIG_BLOCK, new)?;
        let mut caught = self.caught;
        new.iter().for_each(|s| caught.insert(s));
        self.set_fd_mask(caught)?;
        self.caught = caught;
        Ok(())
    }

    /// Takes `signal` out of the mask and unblocks it: its default action applies again.
    pub(crate) fn release(&mut self, signal: Signal) -> io::Result<()> {
        if !self.caught.contains(signal) {
            return Ok(());
        }
        let mut caught = self.caught;
        caught.remove(signal);
        self.set_fd_mask(caught)?;
        self.caught = caught;
        set_mask(libc::SIG_UNBLOCK, SignalSet::of(&[signal]))
    }

    fn set_fd_mask(&self, caught: SignalSet) -> io::Result<()> {
        let mask = sigset(caught);
        // SAFETY: `self.fd` is a signalfd this struct owns; `mask` is initialised.
        let rc = unsafe { libc::signalfd(self.fd.as_raw_fd(), &mask, 0) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Reads every signal queued for the descriptor, calling `arrived` for each.
    pub(crate) fn drain(&self, mut arrived: impl FnMut(Signal)) -> io::Result<()> {
        const SIZE: usize = std::mem::size_of::<libc::signalfd_siginfo>();
        loop {
            let mut info = MaybeUninit::<libc::signalfd_siginfo>::uninit();
            // SAFETY: `info` has room for one siginfo, which is what a signalfd read writes.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), info.as_mut_ptr().cast(), SIZE) };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::WouldBlock => return Ok(()),
                    io::ErrorKind::Interrupted => continue,
                    _ => return Err(e),
                }
            }
            if n as usize != SIZE {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "a signalfd read returned a partial siginfo",
                ));
            }
            // SAFETY: the kernel filled the whole struct (`n == SIZE`).
            let info = unsafe { info.assume_init() };
            match i32::try_from(info.ssi_signo).map(Signal::from_raw) {
                Ok(Ok(signal)) => arrived(signal),
                _ => log::warn!(target: "fibra_signal", "ignored signal {}", info.ssi_signo),
            }
        }
    }
}

impl AsFd for SignalFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for SignalFd {
    fn drop(&mut self) {
        // The caught signals get their default action back, as before the plugin existed.
        if let Err(e) = set_mask(libc::SIG_UNBLOCK, self.caught) {
            log::warn!(target: "fibra_signal", "could not unblock the caught signals: {e}");
        }
    }
}

fn sigset(signals: SignalSet) -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: `sigemptyset` initialises the whole set; `sigaddset` takes valid numbers only
    // (every `Signal` is one).
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        for signal in signals.iter() {
            libc::sigaddset(set.as_mut_ptr(), signal.as_raw());
        }
        set.assume_init()
    }
}

/// Changes this thread's signal mask (`how`: block or unblock `signals`).
fn set_mask(how: libc::c_int, signals: SignalSet) -> io::Result<()> {
    let set = sigset(signals);
    // SAFETY: `set` is initialised; a null old-set pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(how, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}
