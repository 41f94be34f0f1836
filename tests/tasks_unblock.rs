//! Blocking work off the schedule's thread: `unblock` returns the closure's value while the
//! schedule's other tasklets run, reports a panic as an error, drops the value of a killed
//! waiter on the pool's thread, and keeps its threads and its queue within bounds.

mod util;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use fibra::tasks::{BlockingPool, TaskError, TasksExt};
use util::checked::{all_ended, checked};
use util::*;

#[test]
fn the_schedule_runs_while_a_closure_blocks() {
    let mut s = schedule();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let ticks = Rc::new(Cell::new(0u32));
    let t = ticks.clone();
    // The closure blocks until the other tasklet has ticked 20 times: only possible if the
    // schedule's thread is free meanwhile.
    s.spawn(checked(move |h| {
        let got = h
            .unblock(move || go_rx.recv_timeout(Duration::from_secs(10)).map(|()| 42))
            .unwrap();
        assert_eq!(
            got,
            Ok(42),
            "the ticker never ran while the closure blocked"
        );
    }))
    .unwrap();
    s.spawn(checked(move |h| {
        for _ in 0..20 {
            h.sleep(Duration::from_millis(1));
            t.set(t.get() + 1);
        }
        go_tx.send(()).unwrap();
    }))
    .unwrap();
    run_all(&mut s, 20);
    all_ended(0);
    assert_eq!(ticks.get(), 20);
}

#[test]
fn a_panic_comes_back_as_an_error_and_the_pool_goes_on() {
    let mut s = schedule();
    let pool = BlockingPool::new(1, 4);
    s.spawn(checked(move |h| {
        let err = pool.run(h, || -> u32 { panic!("bad input") }).unwrap_err();
        assert!(
            matches!(&err, TaskError::UnblockPanicked(m) if m == "bad input"),
            "{err}"
        );
        assert!(err.is_panicked());
        assert_eq!(pool.run(h, || 7).unwrap(), 7, "the same thread goes on");
        assert_eq!(pool.threads(), 1);
    }))
    .unwrap();
    run_all(&mut s, 20);
    all_ended(0);
}

struct Counted(Arc<AtomicUsize>);
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_killed_waiters_value_is_dropped_on_the_pools_thread() {
    let mut s = schedule();
    let drops = Arc::new(AtomicUsize::new(0));
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (d, pool) = (drops.clone(), BlockingPool::new(1, 4));
    let waiter = s
        .spawn(move |h| {
            let _value = pool.run(h, move || {
                let _ = go_rx.recv_timeout(Duration::from_secs(10));
                Counted(d)
            });
            unreachable!("killed while waiting");
        })
        .unwrap();
    s.spawn(checked(move |h| {
        h.sleep(Duration::from_millis(5));
        h.kill(waiter);
        go_tx.send(()).unwrap(); // the closure returns after its tasklet died
    }))
    .unwrap();
    run_all(&mut s, 20);
    all_ended(0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while drops.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the value was never dropped");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

/// A closure still queued when its tasklet gives up (times out, is killed) never runs: the
/// pool's threads go to work someone waits for (a queue of name lookups whose connects had
/// timed out kept every thread busy for nobody).
#[test]
fn a_closure_whose_tasklet_left_before_it_started_never_runs() {
    let mut s = schedule();
    let pool = BlockingPool::new(1, 8);
    let ran = Arc::new(AtomicUsize::new(0));
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let p = pool.clone();
    s.spawn(checked(move |h| {
        // Holds the only thread until told.
        p.run(h, move || go_rx.recv_timeout(Duration::from_secs(10)))
            .unwrap()
            .unwrap();
    }))
    .unwrap();
    let (p, r) = (pool.clone(), ran.clone());
    s.spawn(checked(move |h| {
        h.yield_now();
        let deadline = Instant::now() + Duration::from_millis(20);
        let got = p.run_until(h, deadline, move || r.fetch_add(1, Ordering::SeqCst));
        assert!(matches!(got, Err(TaskError::TimedOut)), "{got:?}");
    }))
    .unwrap();
    let (p, r) = (pool.clone(), ran.clone());
    let killed = s
        .spawn(move |h| {
            h.yield_now();
            let _ = p.run(h, move || r.fetch_add(1, Ordering::SeqCst));
            unreachable!("killed while waiting");
        })
        .unwrap();
    let (p, r) = (pool.clone(), ran.clone());
    s.spawn(checked(move |h| {
        h.sleep(Duration::from_millis(40)); // the run_until gave up
        h.kill(killed);
        go_tx.send(()).unwrap();
        // One thread, first come first served: this one runs after the two left behind.
        assert_eq!(p.run(h, move || r.load(Ordering::SeqCst)).unwrap(), 0);
    }))
    .unwrap();
    run_all(&mut s, 20);
    all_ended(0);
    assert_eq!(
        ran.load(Ordering::SeqCst),
        0,
        "closures nobody waited for ran"
    );
}

#[test]
fn threads_and_queue_stay_within_bounds_and_idle_threads_end() {
    let mut s = schedule();
    let pool = BlockingPool::with_idle_timeout(2, 1, Duration::from_millis(20));
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let done = Rc::new(Cell::new(0));
    for i in 0..6u64 {
        let (pool, running, most, done) =
            (pool.clone(), running.clone(), most.clone(), done.clone());
        s.spawn(checked(move |h| {
            let v = pool
                .run(h, move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(5));
                    running.fetch_sub(1, Ordering::SeqCst);
                    i * 2
                })
                .unwrap();
            assert_eq!(v, i * 2);
            done.set(done.get() + 1);
        }))
        .unwrap();
    }
    let (p, d) = (pool.clone(), done.clone());
    s.spawn(checked(move |h| {
        // Two run, one waits in the queue, three tasklets are parked for room.
        while d.get() < 6 {
            assert!(p.threads() <= 2 && p.queued() <= 1, "{p:?}");
            h.sleep(Duration::from_millis(1));
        }
    }))
    .unwrap();
    run_all(&mut s, 20);
    all_ended(0);
    assert_eq!(done.get(), 6);
    assert!(most.load(Ordering::SeqCst) <= 2);
    let deadline = Instant::now() + Duration::from_secs(10);
    while pool.threads() > 0 {
        assert!(Instant::now() < deadline, "idle threads stayed: {pool:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}
