//! `Signal`: a signal number this plugin can catch, and `SignalSet`, a set of them.

use std::fmt;

use crate::SignalError;

/// A signal a tasklet can wait for.
///
/// The common ones are constants; [`Signal::from_raw`] takes any other number the system
/// lets a program catch.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signal(i32);

impl Signal {
    /// Interrupt from the terminal (Ctrl-C).
    pub const INT: Signal = Signal(libc::SIGINT);
    /// A polite request to end (`kill PID`, systemd's stop).
    pub const TERM: Signal = Signal(libc::SIGTERM);
    /// The terminal hung up; daemons take it as "reload the configuration".
    pub const HUP: Signal = Signal(libc::SIGHUP);
    /// Quit from the terminal (Ctrl-\).
    pub const QUIT: Signal = Signal(libc::SIGQUIT);
    /// User-defined signal 1.
    pub const USR1: Signal = Signal(libc::SIGUSR1);
    /// User-defined signal 2.
    pub const USR2: Signal = Signal(libc::SIGUSR2);
    /// The terminal window changed size.
    pub const WINCH: Signal = Signal(libc::SIGWINCH);
    /// A child process ended.
    pub const CHLD: Signal = Signal(libc::SIGCHLD);
    /// A timer set with `alarm` fell due.
    pub const ALRM: Signal = Signal(libc::SIGALRM);

    /// The signal with number `signal`.
    ///
    /// # Errors
    ///
    /// [`SignalError::Invalid`] for a number that is not a signal, for `SIGKILL` and `SIGSTOP`
    /// (which no program can catch), and for the signals of faults (`SIGSEGV`, `SIGBUS`,
    /// `SIGFPE`, `SIGILL`, `SIGTRAP`: they are sent to the thread that faulted, and fibra's
    /// stack-overflow report needs `SIGSEGV`).
    ///
    /// ```
    /// use fibra_signal::Signal;
    /// assert_eq!(Signal::from_raw(libc::SIGINT).unwrap(), Signal::INT);
    /// assert!(Signal::from_raw(libc::SIGKILL).is_err());
    /// assert!(Signal::from_raw(0).is_err());
    /// ```
    pub fn from_raw(signal: i32) -> Result<Signal, SignalError> {
        let reason = match signal {
            libc::SIGKILL | libc::SIGSTOP => "no program can catch it",
            libc::SIGSEGV | libc::SIGBUS | libc::SIGFPE | libc::SIGILL | libc::SIGTRAP => {
                "it reports a fault of the thread that caused it"
            }
            n if !(1..=MAX_SIGNAL).contains(&n) => "it is not a signal number",
            _ => return Ok(Signal(signal)),
        };
        Err(SignalError::Invalid { signal, reason })
    }

    /// The signal's number.
    pub fn as_raw(self) -> i32 {
        self.0
    }

    /// The signal's name, such as `SIGINT`, or `signal N` for the others.
    pub fn name(self) -> &'static str {
        match self.0 {
            libc::SIGINT => "SIGINT",
            libc::SIGTERM => "SIGTERM",
            libc::SIGHUP => "SIGHUP",
            libc::SIGQUIT => "SIGQUIT",
            libc::SIGUSR1 => "SIGUSR1",
            libc::SIGUSR2 => "SIGUSR2",
            libc::SIGWINCH => "SIGWINCH",
            libc::SIGCHLD => "SIGCHLD",
            libc::SIGALRM => "SIGALRM",
            libc::SIGPIPE => "SIGPIPE",
            _ => "signal",
        }
    }
}

/// Signals are numbered 1 to 64 on Linux (the real-time ones included).
const MAX_SIGNAL: i32 = 64;

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            "signal" => write!(f, "signal {}", self.0),
            name => f.write_str(name),
        }
    }
}

/// A set of signals, one bit each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SignalSet(u64);

impl SignalSet {
    pub(crate) fn of(signals: &[Signal]) -> SignalSet {
        SignalSet(signals.iter().fold(0, |bits, s| bits | bit(*s)))
    }

    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub(crate) fn contains(self, signal: Signal) -> bool {
        self.0 & bit(signal) != 0
    }

    pub(crate) fn insert(&mut self, signal: Signal) {
        self.0 |= bit(signal);
    }

    pub(crate) fn remove(&mut self, signal: Signal) {
        self.0 &= !bit(signal);
    }

    /// The signals in `self` and not in `other`.
    pub(crate) fn without(self, other: SignalSet) -> SignalSet {
        SignalSet(self.0 & !other.0)
    }

    /// The lowest-numbered signal in both sets.
    pub(crate) fn first_in(self, other: SignalSet) -> Option<Signal> {
        let both = self.0 & other.0;
        (both != 0).then(|| Signal(both.trailing_zeros() as i32 + 1))
    }

    pub(crate) fn iter(self) -> impl Iterator<Item = Signal> {
        (1..=MAX_SIGNAL)
            .map(Signal)
            .filter(move |s| self.contains(*s))
    }
}

fn bit(signal: Signal) -> u64 {
    1 << (signal.0 - 1)
}
