//! Sleeps never wake early and wake in deadline order; timeouts withdraw the op.

mod util;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use fibra::tasks::{ops::Sleep, TasksExt, TasksPlugin};
use util::*;

#[test]
fn sleep_never_wakes_early_and_wakes_in_deadline_order() {
    let mut s = schedule();
    let woke: Rc<RefCell<Vec<(u64, Instant, Instant)>>> = Rc::default();
    // Spawned longest first: a queue keyed on duration or spawn order would get this wrong.
    // (Every sleep here really waits; a sleep already due returns at once, see below.)
    let start = Instant::now();
    for (i, ms) in [40u64, 5, 30, 1, 20, 10, 2, 25, 15, 35]
        .into_iter()
        .enumerate()
    {
        let woke = woke.clone();
        s.spawn(move |h| {
            // Stagger the start so durations and deadlines disagree in order.
            h.sleep(Duration::from_millis(i as u64));
            let deadline = Instant::now() + Duration::from_millis(ms);
            h.sleep_until(deadline);
            woke.borrow_mut().push((ms, deadline, Instant::now()));
        })
        .unwrap();
    }
    s.run().unwrap();
    let woke = woke.borrow();
    assert_eq!(woke.len(), 10);
    for (ms, deadline, at) in woke.iter() {
        assert!(at >= deadline, "the {ms} ms sleep woke early");
    }
    for pair in woke.windows(2) {
        assert!(
            pair[0].1 <= pair[1].1,
            "woke out of deadline order: {woke:?}"
        );
    }
    assert!(start.elapsed() >= Duration::from_millis(40));
}

#[test]
fn a_sleep_already_due_returns_without_waiting_and_zero_is_fine() {
    let mut s = schedule();
    s.spawn(|h| {
        h.sleep(Duration::ZERO);
        h.sleep_until(Instant::now() - Duration::from_millis(5));
    })
    .unwrap();
    assert!(!s.tick().unwrap(), "finished within one tick");
}

#[test]
fn sleep_under_tick_driving_also_never_wakes_early() {
    let mut s = schedule();
    let woke: Rc<RefCell<Option<Instant>>> = Rc::default();
    let w = woke.clone();
    let deadline = Instant::now() + Duration::from_millis(20);
    s.spawn(move |h| {
        h.sleep_until(deadline);
        *w.borrow_mut() = Some(Instant::now());
    })
    .unwrap();
    while s.tick().unwrap() {
        std::thread::sleep(Duration::from_micros(200));
    }
    assert!(woke.borrow().unwrap() >= deadline);
}

#[test]
fn timeout_withdraws_the_op_and_leaves_no_registration() {
    let mut s = schedule();
    s.spawn(|h| {
        let far = Instant::now() + Duration::from_secs(3600);
        let started = Instant::now();
        let r = h.yield_op_timeout(Sleep(far), Duration::from_millis(10));
        assert!(started.elapsed() >= Duration::from_millis(10));
        let err = r.unwrap_err();
        assert!(err.op().ends_with("Sleep"));
        assert!(err.to_string().contains("timed out"), "{err}");
        // An op that completes at once never times out.
        assert_eq!(
            h.yield_op_timeout(Sleep(Instant::now()), Duration::ZERO),
            Ok(())
        );
        // One that completes in time returns its output.
        let soon = Instant::now() + Duration::from_millis(1);
        assert_eq!(
            h.yield_op_timeout(Sleep(soon), Duration::from_secs(5)),
            Ok(())
        );
    })
    .unwrap();
    s.run().unwrap();
    assert_eq!(s.plugin::<TasksPlugin>().unwrap().registrations(), 0);
    assert_eq!(s.next_deadline(), None, "no timer left behind");
}
