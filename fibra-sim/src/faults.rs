//! `Faults` and `Latency`: what can go wrong, and how often, in a simulated network.

use std::time::Duration;

use crate::Rng;

/// How long a segment takes on a link: `min` to `max` uniformly, and with probability
/// `tail` a spike of up to `tail_max` more (a retransmission, a queue).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Latency {
    /// The shortest delay.
    pub min: Duration,
    /// The longest ordinary delay.
    pub max: Duration,
    /// The probability of a spike.
    pub tail: f64,
    /// The longest spike, added to the ordinary delay.
    pub tail_max: Duration,
}

impl Latency {
    /// Always `d`.
    pub fn fixed(d: Duration) -> Latency {
        Latency {
            min: d,
            max: d,
            tail: 0.0,
            tail_max: Duration::ZERO,
        }
    }

    /// A latency drawn from the seed: 50 µs to 2 ms base, jitter up to 4×, 1 % spikes of up
    /// to 200 ms.
    pub fn random(rng: &mut Rng) -> Latency {
        let min = rng.duration(Duration::from_micros(50), Duration::from_millis(2));
        Latency {
            min,
            max: min * rng.between(1, 4) as u32,
            tail: 0.01,
            tail_max: Duration::from_millis(200),
        }
    }

    pub(crate) fn sample(&self, rng: &mut Rng) -> Duration {
        let mut d = rng.duration(self.min, self.max);
        if rng.chance(self.tail) {
            d += rng.duration(Duration::ZERO, self.tail_max);
        }
        d
    }
}

/// The faults a simulation injects by itself, each from the seed. All off in
/// [`Faults::none`]; [`Faults::random`] turns on a seed-chosen mix.
///
/// Faults the test asks for at a moment of its choosing (a partition now, a crash now) are
/// methods of [`Sim`](crate::Sim) instead.
#[derive(Clone, Debug, PartialEq)]
pub struct Faults {
    /// Probability, per write, that the kernel takes only part of it (a short write; the
    /// rest is taken after the next writable edge).
    pub short_write: f64,
    /// Probability, per write, that its bytes arrive in several segments at different times
    /// (the reader sees them in short reads).
    pub split: f64,
    /// The send buffer of each connection, in bytes: a small one fills while the peer reads
    /// slowly (a full send buffer, `WouldBlock`).
    pub send_buffer: usize,
    /// Probability, per host round, that one open connection is reset (both ends get
    /// `ECONNRESET`).
    pub reset: f64,
    /// Probability, per host round, that a random link is cut (one way or both) for a
    /// random spell, then repaired.
    pub partition: f64,
    /// The longest such spell.
    pub partition_max: Duration,
    /// The accept queue of each listener (a full queue drops the SYN; the client retries).
    pub backlog: usize,
    /// Linux's other answer to a full accept queue: the handshake completes for the client
    /// (it is connected), the server drops its last ACK and tries to queue the connection
    /// again after 1, 2, 4, 8 and 16 s, then forgets it. A client that waits for the server
    /// to speak first may wait for good.
    pub overflow_established: bool,
    /// How long segments of a connection may be held (a partition, a host down) before the
    /// sender's socket fails with `ETIMEDOUT`, as TCP's retransmissions give up.
    pub give_up: Duration,
    /// How many sockets each host may have open; `accept` and `connect` fail with
    /// `EMFILE` beyond.
    pub fd_limit: usize,
}

impl Faults {
    /// No faults: a perfect network with room to spare.
    pub fn none() -> Faults {
        Faults {
            short_write: 0.0,
            split: 0.0,
            send_buffer: 256 * 1024,
            reset: 0.0,
            partition: 0.0,
            partition_max: Duration::from_secs(5),
            backlog: 128,
            overflow_established: false,
            give_up: Duration::from_secs(30),
            fd_limit: usize::MAX,
        }
    }

    /// A mix chosen by the seed: each fault is on or off, and its rate, by chance.
    pub fn random(rng: &mut Rng) -> Faults {
        let mut f = Faults::none();
        if rng.chance(0.5) {
            f.short_write = 0.3;
        }
        if rng.chance(0.5) {
            f.split = 0.3;
        }
        if rng.chance(0.5) {
            f.send_buffer = rng.between(64, 4096) as usize;
        }
        if rng.chance(0.3) {
            f.reset = 0.002;
        }
        if rng.chance(0.3) {
            f.partition = 0.002;
            f.partition_max = rng.duration(Duration::from_millis(100), Duration::from_secs(3));
        }
        if rng.chance(0.3) {
            f.backlog = rng.between(1, 4) as usize;
            f.overflow_established = rng.chance(0.5);
        }
        f
    }
}
