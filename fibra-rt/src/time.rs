//! The time every part of fibra reads: [`now`], and, with the `sim` feature, a simulated
//! clock that a simulator (`fibra-sim`) sets.
//!
//! Without the `sim` feature, [`now`] is `Instant::now()` and nothing else: the real path
//! pays nothing for the simulation. With it, [`now`] first looks at a thread-local virtual
//! instant; a simulator that drives its schedules on one thread sets that instant before each
//! of their rounds, so that sleeps, read timeouts, op deadlines and back-offs run on
//! simulated time, and jump to the next deadline when nothing can run.

use std::time::Instant;

#[cfg(feature = "sim")]
thread_local! {
    static VIRTUAL_NOW: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
    static ENTROPY: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
    static VIRTUAL_WALL: std::cell::Cell<Option<(Instant, std::time::SystemTime)>> =
        const { std::cell::Cell::new(None) };
}

/// The current instant: `Instant::now()`, or the simulated clock while a simulation on this
/// thread has set one (`set_virtual_now`, `sim` feature).
#[inline]
pub fn now() -> Instant {
    #[cfg(feature = "sim")]
    if let Some(at) = VIRTUAL_NOW.with(|v| v.get()) {
        return at;
    }
    Instant::now()
}

/// The calendar time (an HTTP `Date`, a log's stamp): `SystemTime::now()`, or under a
/// simulation that set one (`set_virtual_wall`, `sim` feature) a simulated date that moves
/// with [`now`], the same in every run.
#[inline]
pub fn system_now() -> std::time::SystemTime {
    #[cfg(feature = "sim")]
    if let Some((at, wall)) = VIRTUAL_WALL.with(|v| v.get()) {
        return wall + now().saturating_duration_since(at);
    }
    std::time::SystemTime::now()
}

/// Sets (or with `None` clears) this thread's simulated calendar: [`system_now`] is `wall`
/// at the simulated instant `at`, and moves with [`now`]. For simulators.
#[cfg(feature = "sim")]
pub fn set_virtual_wall(anchor: Option<(Instant, std::time::SystemTime)>) {
    VIRTUAL_WALL.with(|v| v.set(anchor));
}

/// Whether a simulation drives this thread (`set_virtual_now` set a clock; `sim` feature).
/// Parts of fibra that would leave the simulation (real threads, real sockets, real name
/// lookups) ask it to refuse clearly rather than go real. Always `false` without the feature.
#[inline]
pub fn is_simulated() -> bool {
    #[cfg(feature = "sim")]
    if VIRTUAL_NOW.with(|v| v.get()).is_some() {
        return true;
    }
    false
}

/// A seed for jitter (back-off delays): the wall clock's nanoseconds, or in a simulation a
/// number drawn from its seed (`set_entropy`, `sim` feature), so that runs repeat.
pub fn entropy() -> u64 {
    #[cfg(feature = "sim")]
    if let Some(state) = ENTROPY.with(|e| e.get()) {
        // splitmix64: each call gives the next number of the simulation's stream.
        let next = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        ENTROPY.with(|e| e.set(Some(next)));
        let mut z = next;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        return z ^ (z >> 31);
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0x9e37_79b9, |d| d.as_nanos() as u64)
}

/// Sets (or with `None` clears) this thread's simulated clock: [`now`] returns `at` until the
/// next call. For simulators; a schedule driven with a simulated clock must be driven with
/// [`Schedule::tick`](crate::Schedule::tick) only (`run` would wait on the real poller).
#[cfg(feature = "sim")]
pub fn set_virtual_now(at: Option<Instant>) {
    VIRTUAL_NOW.with(|v| v.set(at));
}

/// Where this thread's [`entropy`] stream stands (`None`: the wall clock's), for a
/// simulator that keeps one stream per simulation and sets it back with `set_entropy`.
#[cfg(feature = "sim")]
pub fn entropy_state() -> Option<u64> {
    ENTROPY.with(|e| e.get())
}

/// Sets (or with `None` clears) the seed of this thread's [`entropy`] stream. For simulators.
#[cfg(feature = "sim")]
pub fn set_entropy(seed: Option<u64>) {
    ENTROPY.with(|e| e.set(seed));
}
