//! Hostile review: one `Schedule::tick()` runs at most the step budget (4,096 steps by
//! default) of tasklet steps, so a host loop's frame is never held for good. Calls that look
//! like waits but never yield when their answer is already there escape that budget.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fibra::rt::Schedule;
use fibra::tasks::{remote_channel, MissedTicks, TasksPlugin, Ticker};

/// The default step budget of a tick (fibra-rt's `Builder`).
const STEP_BUDGET: u64 = 4096;

/// A ticker whose period is shorter than the work done per tick (1 ns) is always due: its
/// `tick` never yields, so one tasklet runs its whole loop inside one `Schedule::tick()`,
/// however long (forever for a `loop`). `sleep(Duration::ZERO)` in the same loop is bounded
/// by the budget (the op answered at once still costs a step); a ticker must be too.
#[test]
fn a_ticker_that_is_always_due_still_yields_to_the_tick() {
    const TICKS: u64 = 50_000;
    let mut s = Schedule::new();
    s.add_plugin(TasksPlugin::new()).unwrap();
    let count = Rc::new(Cell::new(0u64));
    let c = Rc::clone(&count);
    s.spawn(move |h| {
        let mut ticker = Ticker::new(Duration::from_nanos(1)).unwrap();
        for _ in 0..TICKS {
            ticker.tick(h);
            c.set(c.get() + 1);
        }
    })
    .unwrap();
    s.tick().unwrap();
    let first = count.get();
    // Let it finish (bounded: the loop ends on its own).
    let watchdog = Instant::now() + Duration::from_secs(60);
    while s.tick().unwrap() && Instant::now() < watchdog {}
    assert_eq!(count.get(), TICKS, "the loop finished");
    assert!(
        first <= STEP_BUDGET,
        "one tick() ran {first} ticker ticks of one tasklet without a yield (step budget \
         {STEP_BUDGET})"
    );
}

/// The same with `MissedTicks::Burst` after a stall of the thread: every missed tick is
/// given at once, without a yield, so a 1 kHz ticker after a 10 s pause runs 10,000
/// rounds of its work in one step.
#[test]
fn a_bursting_ticker_after_a_stall_still_yields_to_the_tick() {
    let mut s = Schedule::new();
    s.add_plugin(TasksPlugin::new()).unwrap();
    let count = Rc::new(Cell::new(0u64));
    let c = Rc::clone(&count);
    let period = Duration::from_micros(10);
    // A grid that started 200 ms ago: 20,000 ticks are due.
    let start = Instant::now() - Duration::from_millis(200);
    s.spawn(move |h| {
        let mut ticker = Ticker::new(period)
            .unwrap()
            .with_missed(MissedTicks::Burst)
            .starting_at(start);
        loop {
            let t = ticker.tick(h);
            c.set(c.get() + 1);
            if t.late < period * 10 {
                break; // caught up
            }
        }
    })
    .unwrap();
    s.tick().unwrap();
    let first = count.get();
    let watchdog = Instant::now() + Duration::from_secs(60);
    while s.tick().unwrap() && Instant::now() < watchdog {}
    assert!(
        first <= STEP_BUDGET,
        "one tick() ran {first} bursting ticker ticks without a yield (step budget \
         {STEP_BUDGET})"
    );
}

/// A remote channel fed by another thread as fast as its receiver takes values: `receive`
/// takes what is queued without ever parking, so the receiving tasklet never yields and
/// `tick()` does not return for as long as the other thread keeps sending. Here the thread
/// sends each value as soon as the previous one was taken (it is told so), and the receiver
/// waits (bounded) until that value is queued before it asks for it: a producer that is always
/// a little ahead. 20,000 values, so a budget of 4,096 steps cannot take them all in one tick.
#[test]
fn a_remote_channel_that_is_never_empty_does_not_hold_the_tick() {
    const N: u64 = 20_000;
    let mut s = Schedule::new();
    s.add_plugin(TasksPlugin::new()).unwrap();
    let (tx, rx) = remote_channel::<u64>(&s.remote(), 1);
    let taken = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (t2, stop2) = (Arc::clone(&taken), Arc::clone(&stop));
    let sender = std::thread::spawn(move || {
        for i in 0..N {
            if tx.send(i).is_err() {
                return;
            }
            // Wait until the receiver took it (bounded by `stop`).
            while t2.load(Ordering::Acquire) <= i && !stop2.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        }
    });
    let received = Rc::new(Cell::new(0u64));
    let r = Rc::clone(&received);
    let t1 = Arc::clone(&taken);
    s.spawn(move |h| {
        for _ in 0..N {
            // The producer is a little ahead: the next value is there before we ask.
            let until = Instant::now() + Duration::from_secs(5);
            while rx.is_empty() && Instant::now() < until {
                std::hint::spin_loop();
            }
            if rx.receive(h).is_none() {
                break;
            }
            r.set(r.get() + 1);
            t1.fetch_add(1, Ordering::Release);
        }
    })
    .unwrap();
    s.tick().unwrap();
    let first = received.get();
    let watchdog = Instant::now() + Duration::from_secs(60);
    while s.tick().unwrap() && Instant::now() < watchdog {}
    stop.store(true, Ordering::Relaxed);
    drop(s);
    sender.join().unwrap();
    assert_eq!(received.get(), N);
    assert!(
        first <= STEP_BUDGET,
        "one tick() received {first} of {N} values fed by another thread, in one step of one \
         tasklet (step budget {STEP_BUDGET})"
    );
}
