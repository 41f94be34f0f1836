//! `tick()` never blocks, `run()` returns when the last tasklet ends, the step budget bounds a
//! tick, and a deadlock is reported instead of hanging.

mod util;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use fibra::rt::{Schedule, TaskletState};
use fibra::tasks::{TasksExt, TasksPlugin};
use util::*;

#[test]
fn tick_with_only_sleepers_returns_at_once() {
    let mut s = schedule();
    for _ in 0..100 {
        s.spawn(|h| h.sleep(Duration::from_secs(60))).unwrap();
    }
    assert!(s.tick().unwrap(), "the sleepers are still alive");
    let started = Instant::now();
    for _ in 0..1000 {
        assert!(s.tick().unwrap());
    }
    // 1000 ticks with every tasklet asleep for a minute: if a tick ever waited for a timer it
    // would take a minute, not this.
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(s.len(), 100);
    assert!(s
        .tasklets()
        .all(|t| t.state == TaskletState::Waiting && t.waiting_on.unwrap().ends_with("Sleep")));
    let deadline = s.next_deadline().expect("the sleepers' deadline");
    assert!(deadline > Instant::now() + Duration::from_secs(50));
}

#[test]
fn tick_with_parked_tasklets_and_no_plugin_returns() {
    let mut s = Schedule::new();
    s.spawn(|h| h.park()).unwrap();
    assert!(s.tick().unwrap());
    assert!(s.tick().unwrap());
    assert_eq!(s.next_deadline(), None);
}

#[test]
fn run_returns_when_the_last_tasklet_ends() {
    let mut s = schedule();
    let done = Rc::new(Cell::new(0));
    for i in 0..50u64 {
        let done = done.clone();
        s.spawn(move |h| {
            h.sleep(Duration::from_millis(i % 7));
            h.yield_now();
            done.set(done.get() + 1);
        })
        .unwrap();
    }
    s.run().unwrap();
    assert_eq!(done.get(), 50);
    assert!(s.is_empty());
    // Running an empty schedule returns at once.
    s.run().unwrap();
}

#[test]
fn run_until_stops_at_its_deadline() {
    let mut s = schedule();
    s.spawn(|h| h.sleep(Duration::from_secs(3600))).unwrap();
    let limit = Instant::now() + Duration::from_millis(30);
    assert!(s.run_until(limit).unwrap(), "the sleeper remains");
    assert!(Instant::now() >= limit);
    assert_eq!(s.len(), 1);
}

#[test]
fn a_deadlock_is_reported_not_hung() {
    let mut s = schedule();
    s.spawn(|h| h.park()).unwrap();
    let (_tx, rx) = fibra::tasks::channel::<u8>();
    s.spawn(move |h| {
        rx.receive(h);
    })
    .unwrap();
    let err = s.run().unwrap_err();
    assert!(err.is_stalled(), "{err}");
    assert!(
        err.to_string().contains("2 tasklet(s) are waiting"),
        "{err}"
    );
}

#[test]
fn a_tick_runs_at_most_its_step_budget() {
    let mut s = Schedule::builder().step_budget(10).build();
    s.add_plugin(TasksPlugin::new()).unwrap();
    let steps = Rc::new(Cell::new(0u32));
    for _ in 0..5 {
        let steps = steps.clone();
        s.spawn(move |h| loop {
            steps.set(steps.get() + 1);
            h.yield_now();
        })
        .unwrap();
    }
    s.tick().unwrap();
    assert_eq!(
        steps.get(),
        5,
        "each tasklet ran once; yield_now resumes next tick"
    );
    s.tick().unwrap();
    assert_eq!(steps.get(), 10);
    // A budget smaller than the runnable set: the rest wait for the next tick, in order.
    let mut small = Schedule::builder().step_budget(3).build();
    let ran = Rc::new(Cell::new(0u32));
    for _ in 0..7 {
        let ran = ran.clone();
        small.spawn(move |_| ran.set(ran.get() + 1)).unwrap();
    }
    small.tick().unwrap();
    assert_eq!(ran.get(), 3);
    small.tick().unwrap();
    assert_eq!(ran.get(), 6);
    assert!(!small.tick().unwrap());
    assert_eq!(ran.get(), 7);
}

#[test]
fn introspection_lists_names_states_and_ops() {
    let mut s = schedule();
    s.spawn_named("sleeper", |h| h.sleep(Duration::from_secs(60)))
        .unwrap();
    s.spawn_named(String::from("parker"), |h| h.park()).unwrap();
    s.spawn_named("fresh", |_| {}).unwrap();
    let before: Vec<_> = s.tasklets().map(|t| (t.name.to_owned(), t.state)).collect();
    assert!(before.iter().all(|(_, st)| *st == TaskletState::Runnable));
    s.tick().unwrap();
    let mut after: Vec<_> = s
        .tasklets()
        .map(|t| (t.name.to_owned(), t.state, t.waiting_on))
        .collect();
    after.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(after.len(), 2);
    assert_eq!(after[0].0, "parker");
    assert_eq!(after[0].1, TaskletState::Parked);
    assert_eq!(after[1].0, "sleeper");
    assert_eq!(after[1].1, TaskletState::Waiting);
    assert_eq!(after[1].2, Some("fibra_tasks::ops::Sleep"));
}

#[test]
fn a_wake_before_park_is_kept() {
    let mut s = Schedule::new();
    let order = Rc::new(Cell::new(0));
    let o = order.clone();
    s.spawn(move |h| {
        h.unparker().unpark();
        h.park(); // returns at once: the wake came first
        o.set(1);
    })
    .unwrap();
    s.run().unwrap();
    assert_eq!(order.get(), 1);
}

#[test]
fn a_park_with_a_deadline_times_out_or_is_unparked_and_leaves_no_stale_deadline() {
    let mut s = schedule();
    let log = Rc::new(std::cell::RefCell::new(Vec::new()));
    let l = Rc::clone(&log);
    s.spawn(move |h| {
        // Nobody unparks: it times out, not before its deadline.
        let start = Instant::now();
        let out = h.park_until(start + Duration::from_millis(30));
        l.borrow_mut()
            .push(format!("{:?}", out.map_err(|_| "timed out")));
        assert!(start.elapsed() >= Duration::from_millis(30));
        // Unparked before the deadline: it returns then, and that deadline never fires
        // later, on the sleep below.
        let me = h.unparker();
        h.spawn_detached(move |h| {
            h.sleep(Duration::from_millis(10));
            me.unpark();
        })
        .unwrap();
        let out = h.park_until(Instant::now() + Duration::from_millis(40));
        l.borrow_mut()
            .push(format!("{:?}", out.map_err(|_| "timed out")));
        let slept = Instant::now();
        h.sleep(Duration::from_millis(80));
        assert!(
            slept.elapsed() >= Duration::from_millis(80),
            "the sleep was not cut short"
        );
        // A wake kept from before returns at once, even with a deadline in the past.
        h.unparker().unpark();
        let out = h.park_until(Instant::now() - Duration::from_millis(1));
        l.borrow_mut()
            .push(format!("{:?}", out.map_err(|_| "timed out")));
    })
    .unwrap();
    s.run().unwrap();
    assert_eq!(*log.borrow(), ["Err(\"timed out\")", "Ok(())", "Ok(())"]);
}

/// `tick_within` sleeps while idle instead of spinning: with a listener and nothing to do,
/// 300 ms of calls with a 50 ms bound are a handful of calls, not the millions `tick()` makes.
#[test]
fn tick_within_sleeps_while_idle() {
    let mut s = net_schedule();
    let listener = s
        .plugin::<fibra::net::NetPlugin>()
        .unwrap()
        .listen("127.0.0.1:0")
        .unwrap();
    s.spawn(move |h| {
        use fibra::net::NetExt;
        let _ = h.accept(&listener);
    })
    .unwrap();
    let started = Instant::now();
    let mut calls = 0;
    while started.elapsed() < Duration::from_millis(300) {
        assert!(s.tick_within(Duration::from_millis(50)).unwrap());
        calls += 1;
    }
    // 300 ms / 50 ms, plus the first round and slack for an early wake-up.
    assert!(
        calls <= 12,
        "{calls} calls: tick_within spun instead of waiting"
    );
}

/// `tick_within` returns as soon as something happens, not at its bound: a sleeper's timer,
/// then its tasklet's end, within two calls of a 30 s bound each.
#[test]
fn tick_within_returns_when_a_deadline_falls_due() {
    let mut s = schedule();
    let done = Rc::new(Cell::new(false));
    let d = done.clone();
    s.spawn(move |h| {
        h.sleep(Duration::from_millis(20));
        d.set(true);
    })
    .unwrap();
    let started = Instant::now();
    let mut calls = 0;
    while s.tick_within(Duration::from_secs(30)).unwrap() {
        calls += 1;
        assert!(calls <= 3, "the sleeper should have ended");
    }
    assert!(done.get());
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "it waited for its bound, not for the timer"
    );
}
