//! `Backoff`: how long to wait between attempts: exponential, with full jitter (or none),
//! from a seedable generator; `Delays`, one run of attempts under it. The one back-off
//! policy of the crate: the reconnecting client's and the pool's waits between connects, and
//! a listener's pauses when the process is out of file descriptors.

use std::time::Duration;

/// A reconnecting client's waits: attempt `n` (from 0) waits a random time between zero and
/// `min(max, initial × factor^n)` ("full jitter", so that clients cut off together do not
/// come back together), or that whole ceiling [`without jitter`](Self::with_jitter). The count goes back to zero only after a connection stayed up for
/// [`stable_after`](Self::with_stable_after), not on connect alone: a server that accepts
/// and closes at once meets growing waits, never a hot loop.
///
/// ```
/// use std::time::Duration;
/// use fibra_net::Backoff;
///
/// let backoff = Backoff::new()
///     .with_initial(Duration::from_millis(100))
///     .with_max(Duration::from_secs(5))
///     .with_seed(7); // the same seed, the same waits
/// let waits: Vec<Duration> = backoff.delays().take(10).collect();
/// assert!(waits[0] <= Duration::from_millis(100));
/// assert!(waits.iter().all(|w| *w <= Duration::from_secs(5)));
/// assert_eq!(waits, backoff.delays().take(10).collect::<Vec<_>>());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Backoff {
    initial: Duration,
    factor: f64,
    max: Duration,
    max_attempts: Option<u32>,
    stable_after: Duration,
    seed: Option<u64>,
    jitter: bool,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

impl Backoff {
    /// 1 s initial, factor 2, at most 60 s, no attempt limit, reset after 10 s up, seeded
    /// from the clock.
    pub fn new() -> Backoff {
        Backoff {
            initial: Duration::from_secs(1),
            factor: 2.0,
            max: Duration::from_secs(60),
            max_attempts: None,
            stable_after: Duration::from_secs(10),
            seed: None,
            jitter: true,
        }
    }

    /// The ceiling of the first wait.
    pub fn with_initial(mut self, initial: Duration) -> Self {
        self.initial = initial;
        self
    }

    /// How much the ceiling grows per failed attempt (at least 1).
    pub fn with_factor(mut self, factor: f64) -> Self {
        self.factor = if factor.is_finite() {
            factor.max(1.0)
        } else {
            1.0
        };
        self
    }

    /// The largest ceiling.
    pub fn with_max(mut self, max: Duration) -> Self {
        self.max = max;
        self
    }

    /// Give up after this many failed attempts in a row (a connect that failed, or a
    /// connection that did not stay up); `None`: never.
    pub fn with_max_attempts(mut self, attempts: Option<u32>) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// How long a connection must stay up for the waits to start again from `initial`.
    pub fn with_stable_after(mut self, up: Duration) -> Self {
        self.stable_after = up;
        self
    }

    /// Full jitter (`true`, the default): each wait is drawn between zero and its ceiling.
    /// `false`: each wait is its whole ceiling, for a pause that one process takes alone
    /// (a listener out of file descriptors), where there is no crowd to spread.
    pub fn with_jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// Seeds the jitter, so that the waits repeat (tests).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The failed attempts in a row after which a client gives up.
    pub fn max_attempts(&self) -> Option<u32> {
        self.max_attempts
    }

    /// How long a connection must stay up to reset the waits.
    pub fn stable_after(&self) -> Duration {
        self.stable_after
    }

    /// The ceiling of wait `attempt` (from 0): `min(max, initial × factor^attempt)`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let grown = self.initial.as_secs_f64() * self.factor.powi(attempt.min(1024) as i32);
        // A huge `initial` or `max` (`Duration::MAX`: wait for good) saturates at `max`.
        match Duration::try_from_secs_f64(grown) {
            Ok(ceiling) if ceiling < self.max => ceiling,
            _ => self.max,
        }
    }

    /// The waits of failed attempts 0, 1, 2... with no reset in between: an endless
    /// iterator, which also counts the attempts and can [`reset`](Delays::reset).
    pub fn delays(&self) -> Delays {
        Delays::new(self.clone())
    }
}

/// One run of attempts under a [`Backoff`]: the count of failed attempts in a row, and the
/// jitter's generator. Each [`next`](Iterator::next) is the wait after one more failure
/// (it never ends; [`is_exhausted`](Self::is_exhausted) says when the attempt limit is
/// reached), and [`reset`](Self::reset) starts again from the first wait.
///
/// ```
/// use std::time::Duration;
/// use fibra_net::Backoff;
///
/// let mut delays = Backoff::new()
///     .with_initial(Duration::from_millis(50))
///     .with_max(Duration::from_secs(1))
///     .with_max_attempts(Some(3))
///     .with_jitter(false)
///     .delays();
/// assert_eq!(delays.next_wait(), Duration::from_millis(50));
/// assert_eq!(delays.next_wait(), Duration::from_millis(100));
/// assert!(!delays.is_exhausted());
/// assert_eq!(delays.next_wait(), Duration::from_millis(200));
/// assert!(delays.is_exhausted()); // three failures in a row
/// delays.reset(); // an attempt succeeded
/// assert_eq!(delays.next_wait(), Duration::from_millis(50));
/// ```
#[derive(Debug)]
pub struct Delays {
    backoff: Backoff,
    failures: u32,
    rng: SplitMix64,
}

impl Delays {
    fn new(backoff: Backoff) -> Delays {
        let seed = match backoff.seed {
            Some(seed) => seed,
            None if !backoff.jitter => 0,
            // The wall clock, or a simulation's seed (`fibra_rt::time::entropy`).
            None => fibra_rt::time::entropy(),
        };
        Delays {
            backoff,
            failures: 0,
            rng: SplitMix64(seed),
        }
    }

    /// The wait after one more failed attempt.
    pub fn next_wait(&mut self) -> Duration {
        let ceiling = self.backoff.ceiling(self.failures);
        self.failures = self.failures.saturating_add(1);
        if self.backoff.jitter {
            jittered(ceiling, self.rng.unit())
        } else {
            ceiling
        }
    }

    /// The failed attempts in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Whether the backoff's attempt limit is reached: give up.
    pub fn is_exhausted(&self) -> bool {
        self.backoff
            .max_attempts
            .is_some_and(|max| self.failures >= max)
    }

    /// An attempt succeeded (or stayed up long enough): the next wait is the first again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// The policy these waits follow.
    pub fn backoff(&self) -> &Backoff {
        &self.backoff
    }
}

impl Iterator for Delays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(self.next_wait())
    }
}

/// `ceiling × unit` (`unit` in [0, 1]), at most `ceiling`. Not `mul_f64`:
/// `Duration::MAX × 1.0` rounds past the largest duration and panics.
fn jittered(ceiling: Duration, unit: f64) -> Duration {
    let scaled = ceiling.as_secs_f64() * unit;
    Duration::try_from_secs_f64(scaled).map_or(ceiling, |wait| wait.min(ceiling))
}

/// Sebastiano Vigna's SplitMix64: small, fast, and good enough for jitter.
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1].
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / ((1u64 << 53) - 1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_of_duration_max_saturate_and_never_panic() {
        for seed in 0..256 {
            let backoff = Backoff::new()
                .with_initial(Duration::MAX)
                .with_max(Duration::MAX)
                .with_stable_after(Duration::MAX)
                .with_seed(seed);
            assert_eq!(backoff.ceiling(u32::MAX), Duration::MAX);
            assert_eq!(backoff.delays().take(8).count(), 8);
        }
        let small_max = Backoff::new()
            .with_initial(Duration::MAX)
            .with_max(Duration::from_secs(1));
        assert_eq!(small_max.ceiling(0), Duration::from_secs(1));
        // The jitter's top draw: the whole ceiling, not a panic past Duration::MAX.
        assert_eq!(jittered(Duration::MAX, 1.0), Duration::MAX);
        assert_eq!(
            jittered(Duration::from_secs(2), 0.5),
            Duration::from_secs(1)
        );
        assert_eq!(jittered(Duration::MAX, 0.0), Duration::ZERO);
    }

    #[test]
    fn without_jitter_the_waits_are_the_ceilings_and_a_reset_starts_again() {
        let mut delays = Backoff::new()
            .with_initial(Duration::from_millis(50))
            .with_max(Duration::from_secs(1))
            .with_jitter(false)
            .delays();
        let ms: Vec<u128> = delays.by_ref().take(7).map(|d| d.as_millis()).collect();
        assert_eq!(ms, [50, 100, 200, 400, 800, 1000, 1000]);
        assert_eq!(delays.failures(), 7);
        assert!(!delays.is_exhausted(), "no attempt limit");
        delays.reset();
        assert_eq!(delays.next_wait(), Duration::from_millis(50));
    }
}
