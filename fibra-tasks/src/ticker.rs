//! `Ticker`: a periodic timer for tasklets (fibra's `hertz`), ticking at a fixed rate by
//! deadline, never early, with a stated policy for the ticks it missed.

use std::time::{Duration, Instant};

use fibra_rt::Handle;

use crate::{TaskError, TasksExt};

/// What a [`Ticker`] does with the ticks it missed, when a tick came so late (the tasklet
/// was busy, or the thread stalled) that later deadlines already passed: tokio's
/// `MissedTickBehavior`, under the same names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum MissedTicks {
    /// Give the late tick once, drop the missed ones after it and keep the original grid:
    /// the next tick is the first grid deadline after now. The late [`Tick`] says how many
    /// it dropped. The default: a 30 Hz game
    /// or simulation step that stalled for a second should not then run 30 steps at once.
    #[default]
    Skip,
    /// Fire every missed tick, back to back, until caught up with the original grid: the
    /// count of ticks over a long run is exact.
    Burst,
    /// Start a new grid from the late tick: the next one is a full period after it.
    Delay,
}

/// One tick of a [`Ticker`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tick {
    /// Its deadline. The tick is never given before it.
    pub deadline: Instant,
    /// How long after its deadline it was given.
    pub late: Duration,
    /// How many later grid deadlines were dropped because this tick came so late (always
    /// 0 unless the policy is [`MissedTicks::Skip`]).
    pub skipped: u64,
    /// Ticks given before this one.
    pub index: u64,
}

/// A periodic timer for tasklets: [`tick`](Self::tick) sleeps until the next deadline of a
/// fixed grid (start + n × period) and returns it, never before it. Ticks missed while the
/// tasklet was busy are handled as its [`MissedTicks`] says.
///
/// ```
/// use std::time::Duration;
/// use fibra_tasks::{Ticker, TasksPlugin};
///
/// let mut schedule = fibra_rt::Schedule::new();
/// schedule.add_plugin(TasksPlugin::new())?;
/// schedule.spawn(|h| {
///     let mut ticker = Ticker::hertz(200.0).unwrap();
///     for n in 0..5 {
///         let tick = ticker.tick(h);
///         assert_eq!(tick.index, n);
///         assert!(std::time::Instant::now() >= tick.deadline, "never early");
///     }
///     assert_eq!(ticker.period(), Duration::from_millis(5));
/// })?;
/// schedule.run()?;
/// # Ok::<(), fibra_rt::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Ticker {
    period: Duration,
    next: Option<Instant>,
    /// The next deadline lies past what the clock can count (a huge period): no more ticks.
    never: bool,
    missed: MissedTicks,
    given: u64,
}

impl Ticker {
    /// A ticker of `period`, whose first tick is due at once (at the first
    /// [`tick`](Self::tick)), then every `period` after it. A period past what the clock
    /// can count (`Duration::MAX`) ticks once, then never again.
    ///
    /// # Errors
    ///
    /// [`TaskError::InvalidPeriod`] for a zero period.
    pub fn new(period: Duration) -> Result<Ticker, TaskError> {
        if period.is_zero() {
            return Err(TaskError::InvalidPeriod {
                reason: "the period is zero".into(),
            });
        }
        Ok(Ticker {
            period,
            next: None,
            never: false,
            missed: MissedTicks::default(),
            given: 0,
        })
    }

    /// A ticker of `hz` ticks a second (fibra's `hertz(Hz, gen)`): period 1/`hz`, to the
    /// nanosecond.
    ///
    /// # Errors
    ///
    /// [`TaskError::InvalidPeriod`] unless `hz` is finite and in (0, 10⁹].
    pub fn hertz(hz: f64) -> Result<Ticker, TaskError> {
        if !(hz.is_finite() && hz > 0.0 && hz <= 1e9) {
            return Err(TaskError::InvalidPeriod {
                reason: format!("{hz} Hz: give a rate above 0 and at most 1e9"),
            });
        }
        Ticker::new(Duration::from_secs_f64(1.0 / hz))
    }

    /// The same ticker with `missed` as its policy.
    pub fn with_missed(mut self, missed: MissedTicks) -> Ticker {
        self.missed = missed;
        self
    }

    /// Starts the grid at `first` (the first tick's deadline) instead of at the first call.
    pub fn starting_at(mut self, first: Instant) -> Ticker {
        self.next = Some(first);
        self
    }

    /// Its period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Its policy for missed ticks.
    pub fn missed(&self) -> MissedTicks {
        self.missed
    }

    /// The next tick's deadline (`None` before the first tick of a ticker with no start,
    /// and when the next deadline lies past what the clock can count: never).
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.never {
            return None;
        }
        self.next
    }

    /// Sleeps until the next deadline and returns that tick. A tick already due returns at
    /// once, after one yield that the schedule answers at once (a step of its budget, as a
    /// `sleep(Duration::ZERO)`). When the next deadline is never (a period
    /// past what the clock can count), parks for good: only a kill ends the wait.
    pub fn tick(&mut self, h: &Handle) -> Tick {
        if self.never {
            h.sleep(Duration::MAX);
        }
        let deadline = *self.next.get_or_insert_with(fibra_rt::time::now);
        // At least one yield, even for a tick already due: the sleep is answered at once
        // then, and costs a step of the schedule's budget, so that a ticker always due (a
        // period shorter than the work per tick, a burst after a stall) cannot hold one
        // `Schedule::tick()` for good.
        let mut now;
        loop {
            h.sleep_until(deadline);
            now = fibra_rt::time::now();
            if now >= deadline {
                break;
            }
        }
        Tick {
            deadline,
            late: now - deadline,
            skipped: self.advance(deadline, now),
            index: self.take_index(),
        }
    }

    fn take_index(&mut self) -> u64 {
        let index = self.given;
        self.given += 1;
        index
    }

    /// Sets the deadline after `deadline`, given at `now`; returns the grid deadlines
    /// skipped.
    fn advance(&mut self, deadline: Instant, now: Instant) -> u64 {
        // Every sum is checked: a deadline past what the clock can count means never.
        let Some(on_grid) = deadline.checked_add(self.period) else {
            self.never = true;
            return 0;
        };
        let (next, skipped) = match self.missed {
            MissedTicks::Burst => (Some(on_grid), 0),
            MissedTicks::Delay if now >= on_grid => (now.checked_add(self.period), 0),
            MissedTicks::Delay => (Some(on_grid), 0),
            MissedTicks::Skip if now >= on_grid => {
                // The first grid deadline after now; those in between are skipped.
                let behind = (now - on_grid).as_nanos() / self.period.as_nanos();
                let skipped = u64::try_from(behind).unwrap_or(u64::MAX).saturating_add(1);
                let ahead = self.period.as_nanos().saturating_mul(u128::from(skipped));
                (on_grid.checked_add(nanos(ahead)), skipped)
            }
            MissedTicks::Skip => (Some(on_grid), 0),
        };
        match next {
            Some(next) => self.next = Some(next),
            None => self.never = true,
        }
        skipped
    }
}

/// `n` nanoseconds as a duration (saturating at about 584 years).
fn nanos(n: u128) -> Duration {
    Duration::from_nanos(u64::try_from(n).unwrap_or(u64::MAX))
}
