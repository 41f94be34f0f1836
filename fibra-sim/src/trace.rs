//! `Trace`: what a simulation did, in order, and its hash.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// One thing a simulation did: a host's round, a system call and its answer, a segment's
/// delivery, a fault.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum What {
    /// The host ran one round (`tick`).
    Tick,
    /// `listen` and the fd (or errno) it gave.
    Listen(SocketAddr, Result<u64, i32>),
    /// `accept` on a listener fd.
    Accept(u64, Result<u64, i32>),
    /// `connect` to an address.
    Connect(SocketAddr, Result<u64, i32>),
    /// `read` of an fd: bytes, or errno (`EAGAIN` when it would block).
    Read(u64, Result<usize, i32>),
    /// `write` of an fd: bytes taken, or errno.
    Write(u64, Result<usize, i32>),
    /// `shutdown(SHUT_WR)`.
    Shutdown(u64),
    /// `close`.
    Close(u64),
    /// A segment arrived at an fd: `kind` and its length.
    Deliver(u64, &'static str, usize),
    /// A fault was injected.
    Fault(String),
}

/// One entry of the trace: when, on which host, what.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    /// Simulated time since the start.
    pub at: Duration,
    /// The host's index (the order of [`Sim::host`](crate::Sim::host) calls).
    pub host: usize,
    /// What happened.
    pub what: What,
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>12.6}s h{} {:?}",
            self.at.as_secs_f64(),
            self.host,
            self.what
        )
    }
}

/// The trace of a run: a hash of every entry (FNV-1a over their fields) and of every byte
/// written, and the last entries kept for printing.
#[derive(Debug)]
pub struct Trace {
    hash: u64,
    len: u64,
    faults: u64,
    kept: VecDeque<Entry>,
    keep: usize,
}

impl Trace {
    pub(crate) fn new(keep: usize) -> Trace {
        Trace {
            hash: 0xcbf2_9ce4_8422_2325,
            len: 0,
            faults: 0,
            kept: VecDeque::new(),
            keep,
        }
    }

    pub(crate) fn set_keep(&mut self, keep: usize) {
        self.keep = keep;
        while self.kept.len() > keep {
            self.kept.pop_front();
        }
    }

    pub(crate) fn push(&mut self, entry: Entry) {
        use std::hash::{Hash, Hasher};
        let mut h = Fnv(self.hash);
        entry.hash(&mut h);
        self.hash = h.finish();
        self.len += 1;
        if matches!(entry.what, What::Fault(_)) {
            self.faults += 1;
        }
        if self.keep > 0 {
            if self.kept.len() == self.keep {
                self.kept.pop_front();
            }
            self.kept.push_back(entry);
        }
    }

    /// Mixes the bytes a write took into the hash (the entries hold only their length).
    pub(crate) fn mix(&mut self, bytes: &[u8]) {
        use std::hash::Hasher;
        let mut h = Fnv(self.hash);
        h.write(bytes);
        self.hash = h.finish();
    }

    /// The hash of every entry so far, and of every byte written: equal for two runs of one
    /// seed.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// How many entries were traced.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// How many faults were injected (on demand and from the seed).
    pub fn faults(&self) -> u64 {
        self.faults
    }

    /// Whether nothing was traced.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The last entries kept (see [`Sim::keep_trace`](crate::Sim::keep_trace)).
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.kept.iter()
    }
}

/// FNV-1a, 64 bits: stable across Rust versions, unlike `DefaultHasher`.
struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}
