//! `Ticker` (fibra's `hertz`): ticks on a fixed grid, never early, and each policy for missed
//! ticks (skip, burst, delay) after a stall of the thread.

use std::time::{Duration, Instant};

use fibra::rt::Schedule;
use fibra::tasks::{MissedTicks, TasksPlugin, Tick, Ticker};

const PERIOD: Duration = Duration::from_millis(10);

/// Runs `f` as the only tasklet of a schedule with the tasks plugin.
fn in_tasklet(f: impl FnOnce(&fibra::rt::Handle) + 'static) {
    let mut s = Schedule::new();
    s.add_plugin(TasksPlugin::new()).unwrap();
    s.spawn(f).unwrap();
    s.run().unwrap();
}

/// Ticks once and checks that it was not early.
fn tick(ticker: &mut Ticker, h: &fibra::rt::Handle) -> (Tick, Instant) {
    let tick = ticker.tick(h);
    let at = Instant::now();
    assert!(at >= tick.deadline, "tick {} came early", tick.index);
    (tick, at)
}

#[test]
fn ticks_fall_on_the_grid_and_are_never_early() {
    in_tasklet(|h| {
        let start = Instant::now() + PERIOD;
        let mut ticker = Ticker::new(PERIOD).unwrap().starting_at(start);
        for n in 0..20u32 {
            let (t, _) = tick(&mut ticker, h);
            assert_eq!(t.index, u64::from(n));
            assert_eq!(t.deadline, start + PERIOD * n, "on the grid");
            assert_eq!(t.skipped, 0);
        }
        assert!(
            start.elapsed() >= PERIOD * 19,
            "twenty ticks take nineteen periods"
        );
    });
    let t = Ticker::hertz(30.0).unwrap();
    assert_eq!(t.period(), Duration::from_nanos(33_333_333));
    assert_eq!(t.missed(), MissedTicks::Skip, "the stated default");
}

#[test]
fn skip_gives_the_late_tick_once_and_keeps_the_grid() {
    in_tasklet(|h| {
        let mut ticker = Ticker::new(PERIOD).unwrap();
        let (first, _) = tick(&mut ticker, h);
        std::thread::sleep(PERIOD * 5 + PERIOD / 2); // the thread stalls
        let (late, given) = tick(&mut ticker, h);
        assert_eq!(late.deadline, first.deadline + PERIOD);
        assert!(late.late >= PERIOD * 4, "{late:?}");
        assert!(late.skipped >= 4, "the deadlines it stalled over: {late:?}");
        let (next, _) = tick(&mut ticker, h);
        let k = u32::try_from(late.skipped).unwrap() + 2;
        assert_eq!(
            next.deadline,
            first.deadline + PERIOD * k,
            "still on the grid"
        );
        assert!(
            next.deadline > given,
            "the next tick is after now: no burst"
        );
        assert_eq!(next.skipped, 0);
    });
}

#[test]
fn burst_fires_every_missed_tick_back_to_back() {
    in_tasklet(|h| {
        let mut ticker = Ticker::new(PERIOD).unwrap().with_missed(MissedTicks::Burst);
        let (first, _) = tick(&mut ticker, h);
        std::thread::sleep(PERIOD * 5 + PERIOD / 2);
        for n in 1..=5u32 {
            let (t, _) = tick(&mut ticker, h);
            assert_eq!(t.deadline, first.deadline + PERIOD * n);
            assert!(
                t.late > Duration::ZERO,
                "caught up late, not skipped: {t:?}"
            );
            assert_eq!(t.skipped, 0);
        }
        let (t, _) = tick(&mut ticker, h);
        assert_eq!(t.deadline, first.deadline + PERIOD * 6);
    });
}

#[test]
fn delay_starts_a_new_grid_from_the_late_tick() {
    in_tasklet(|h| {
        let mut ticker = Ticker::new(PERIOD).unwrap().with_missed(MissedTicks::Delay);
        let (first, _) = tick(&mut ticker, h);
        std::thread::sleep(PERIOD * 5 + PERIOD / 2);
        let (late, given) = tick(&mut ticker, h);
        assert_eq!(late.deadline, first.deadline + PERIOD);
        let (next, _) = tick(&mut ticker, h);
        assert!(
            next.deadline >= given + PERIOD,
            "a full period after the late tick"
        );
        let (after, _) = tick(&mut ticker, h);
        assert_eq!(
            after.deadline,
            next.deadline + PERIOD,
            "then on the new grid"
        );
    });
}

#[test]
fn bad_rates_are_refused_with_the_reason() {
    for hz in [0.0, -1.0, f64::NAN, f64::INFINITY, 2e9] {
        let err = Ticker::hertz(hz).unwrap_err();
        assert!(
            err.to_string().contains("give a rate above 0"),
            "{hz}: {err}"
        );
    }
    let err = Ticker::new(Duration::ZERO).unwrap_err();
    assert!(err.to_string().contains("the period is zero"), "{err}");
}

#[test]
fn a_period_of_duration_max_ticks_once_then_never() {
    let mut s = Schedule::new();
    s.add_plugin(TasksPlugin::new()).unwrap();
    let ticks = std::rc::Rc::new(std::cell::Cell::new(0u32));
    let count = ticks.clone();
    let ticker = s
        .spawn(move |h| {
            // The grid's next deadline, first + Duration::MAX, panicked here.
            let mut ticker = Ticker::new(Duration::MAX).unwrap();
            for missed in [MissedTicks::Skip, MissedTicks::Burst, MissedTicks::Delay] {
                let mut t = Ticker::new(Duration::MAX).unwrap().with_missed(missed);
                assert_eq!(t.tick(h).index, 0);
                assert_eq!(t.next_deadline(), None, "never ({missed:?})");
            }
            let first = ticker.tick(h);
            assert_eq!(first.index, 0);
            assert_eq!(ticker.next_deadline(), None, "the next tick is never");
            count.set(1);
            // Parks for good: only the kill below ends it.
            ticker.tick(h);
            count.set(2);
        })
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ticks.get() == 0 {
        assert!(Instant::now() < deadline, "the first tick came");
        s.tick_within(Duration::from_millis(5)).unwrap();
    }
    for _ in 0..10 {
        s.tick_within(Duration::from_millis(5)).unwrap();
    }
    assert_eq!(ticks.get(), 1, "no second tick");
    s.kill(ticker);
    s.run_for(Duration::from_secs(5)).unwrap();
    assert_eq!(ticks.get(), 1);
}
