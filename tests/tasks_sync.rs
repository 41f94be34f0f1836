//! Mutex, Semaphore, Notify and oneshot between tasklets of a real schedule: exclusive and
//! fair, and kill-safe (a tasklet killed while waiting leaves the line and takes no permit,
//! lock or notification with it).

mod util;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use fibra::tasks::{oneshot, Mutex, Notify, Semaphore, TasksExt};
use util::checked::{all_ended, checked};
use util::*;

#[test]
fn a_mutex_is_held_by_one_tasklet_at_a_time_in_the_order_they_came() {
    let mut s = schedule();
    let m = Rc::new(Mutex::new(Vec::new()));
    let inside = Rc::new(Cell::new(0));
    for who in 0..5 {
        let (m, inside) = (m.clone(), inside.clone());
        s.spawn(checked(move |h| {
            let mut order = m.lock(h);
            inside.set(inside.get() + 1);
            assert_eq!(inside.get(), 1, "two tasklets inside");
            h.sleep(Duration::from_millis(2));
            order.push(who);
            inside.set(inside.get() - 1);
        }))
        .unwrap();
    }
    run_all(&mut s, 10);
    all_ended(0);
    assert_eq!(*m.try_lock().unwrap(), [0, 1, 2, 3, 4]);
}

#[test]
fn a_tasklet_killed_holding_or_awaiting_a_mutex_frees_it() {
    let mut s = schedule();
    let m = Rc::new(Mutex::new(0u32));
    let m1 = m.clone();
    let holder = s
        .spawn(move |h| {
            let _g = m1.lock(h);
            h.sleep(Duration::from_secs(3600));
        })
        .unwrap();
    let m2 = m.clone();
    let waiter = s.spawn(move |h| *m2.lock(h) += 100).unwrap();
    let m3 = m.clone();
    s.spawn(move |h| *m3.lock(h) += 1).unwrap();
    let m4 = m.clone();
    s.spawn(checked(move |h| {
        h.yield_now(); // everyone is in place
        assert!(m4.is_locked());
        h.kill(waiter); // the second in line leaves
        h.kill(holder); // the holder frees it as it unwinds
    }))
    .unwrap();
    run_all(&mut s, 10);
    all_ended(0);
    assert!(!m.is_locked());
    assert_eq!(
        *m.try_lock().unwrap(),
        1,
        "the third got the lock, the second never did"
    );
}

#[test]
fn a_semaphore_bounds_how_many_run_at_once() {
    let mut s = schedule();
    let sem = Rc::new(Semaphore::new(3));
    let (now, most) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    for _ in 0..10 {
        let (sem, now, most) = (sem.clone(), now.clone(), most.clone());
        s.spawn(checked(move |h| {
            let _p = sem.acquire(h);
            now.set(now.get() + 1);
            most.set(most.get().max(now.get()));
            h.sleep(Duration::from_millis(1));
            now.set(now.get() - 1);
        }))
        .unwrap();
    }
    run_all(&mut s, 10);
    all_ended(0);
    assert_eq!(most.get(), 3);
    assert_eq!(sem.permits(), 3);
    assert!(sem.try_acquire().is_some());
}

#[test]
fn a_killed_semaphore_waiter_hands_its_permit_on() {
    let mut s = schedule();
    let sem = Rc::new(Semaphore::new(0));
    let got = Rc::new(RefCell::new(Vec::new()));
    let mut ids = Vec::new();
    for who in 0..3 {
        let (sem, got) = (sem.clone(), got.clone());
        ids.push(
            s.spawn(checked(move |h| {
                let _p = sem.acquire(h);
                got.borrow_mut().push(who);
            }))
            .unwrap(),
        );
    }
    let sem2 = sem.clone();
    s.spawn(checked(move |h| {
        h.yield_now();
        assert_eq!(sem2.waiting(), 3);
        // Tasklet 0 is handed the permit, then killed before it runs: the permit goes on.
        sem2.add_permits(1);
        h.unparker_of(ids[0]).kill();
        // Tasklet 1 is killed while it waits: it leaves the line.
        h.unparker_of(ids[1]).kill();
    }))
    .unwrap();
    run_all(&mut s, 10);
    all_ended(2);
    assert_eq!(*got.borrow(), [2]);
    assert_eq!(sem.permits(), 1, "no permit lost");
    assert_eq!(sem.waiting(), 0);
}

#[test]
fn notify_one_keeps_a_permit_and_notify_all_wakes_every_waiter() {
    let mut s = schedule();
    let n = Rc::new(Notify::new());
    let woken = Rc::new(Cell::new(0));
    n.notify_one(); // nobody waits: kept
    n.notify_one(); // at most one kept
    for _ in 0..3 {
        let (n, woken) = (n.clone(), woken.clone());
        s.spawn(checked(move |h| {
            n.wait(h);
            woken.set(woken.get() + 1);
        }))
        .unwrap();
    }
    let (n2, w2) = (n.clone(), woken.clone());
    s.spawn(checked(move |h| {
        h.yield_now();
        assert_eq!(w2.get(), 1, "the kept permit let one through");
        assert_eq!(n2.waiting(), 2);
        n2.notify_all();
    }))
    .unwrap();
    run_all(&mut s, 10);
    all_ended(0);
    assert_eq!(woken.get(), 3);
    assert_eq!(n.waiting(), 0);
}

#[test]
fn a_notification_meant_for_a_killed_waiter_goes_to_the_next() {
    let mut s = schedule();
    let n = Rc::new(Notify::new());
    let woken = Rc::new(RefCell::new(Vec::new()));
    let mut ids = Vec::new();
    for who in 0..2 {
        let (n, woken) = (n.clone(), woken.clone());
        ids.push(
            s.spawn(checked(move |h| {
                n.wait(h);
                woken.borrow_mut().push(who);
            }))
            .unwrap(),
        );
    }
    let n2 = n.clone();
    s.spawn(checked(move |h| {
        h.yield_now();
        n2.notify_one(); // to tasklet 0...
        h.unparker_of(ids[0]).kill(); // ...killed before it runs
    }))
    .unwrap();
    run_all(&mut s, 10);
    all_ended(1);
    assert_eq!(*woken.borrow(), [1]);
}

/// `add_permits(usize::MAX)` (the gate opened for good) wakes the waiters and returns: it
/// looped once per permit, forever as far as the caller could tell.
#[test]
fn add_permits_of_usize_max_opens_the_gate_and_returns() {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut s = schedule();
        let gate = Rc::new(Semaphore::new(0));
        let passed = Rc::new(Cell::new(0));
        for _ in 0..3 {
            let (gate, passed) = (gate.clone(), passed.clone());
            s.spawn(move |h| {
                let _permit = gate.acquire(h);
                passed.set(passed.get() + 1);
            })
            .unwrap();
        }
        s.tick().unwrap();
        gate.add_permits(usize::MAX);
        s.run_for(Duration::from_secs(10)).unwrap();
        let _ = done.send((passed.get(), gate.permits()));
    });
    let (passed, permits) = finished
        .recv_timeout(Duration::from_secs(20))
        .expect("add_permits(usize::MAX) did not return");
    assert_eq!(passed, 3);
    assert_eq!(permits, usize::MAX);
}

/// A `notify_all` that comes after a `notify_one` does not make the `notify_one` disappear
/// when the tasklet it woke is killed before it runs: it goes to the next `wait`.
#[test]
fn a_notify_one_for_a_killed_waiter_survives_a_later_notify_all() {
    let mut s = schedule();
    let n = Rc::new(Notify::new());
    let n1 = n.clone();
    let first = s.spawn(move |h| n1.wait(h)).unwrap();
    let (n2, woken) = (n.clone(), Rc::new(Cell::new(false)));
    let w = woken.clone();
    s.spawn(checked(move |h| {
        h.yield_now(); // the first waits
        n2.notify_one(); // to the first...
        n2.notify_all(); // (nobody else waits)
        h.unparker_of(first).kill(); // ...killed before it runs
        h.yield_now();
        n2.wait(h); // the notify_one was for a waiter: it comes here
        w.set(true);
    }))
    .unwrap();
    run_all(&mut s, 10);
    all_ended(0);
    assert!(woken.get());
}

#[test]
fn oneshot_delivers_once_and_either_side_dropped_closes_it() {
    let mut s = schedule();
    let out = Rc::new(RefCell::new(Vec::new()));
    let o = out.clone();
    s.spawn(checked(move |h| {
        let (tx, rx) = oneshot::channel();
        h.spawn_detached(move |h| {
            h.sleep(Duration::from_millis(2));
            tx.send("reply").unwrap();
        })
        .unwrap();
        o.borrow_mut().push(rx.receive(h));

        let (tx, rx) = oneshot::channel::<&str>();
        h.spawn_detached(move |h| {
            h.sleep(Duration::from_millis(2));
            drop(tx); // unsent
        })
        .unwrap();
        o.borrow_mut().push(rx.receive(h));

        let (tx, rx) = oneshot::channel::<&str>();
        drop(rx);
        assert!(tx.is_closed());
        assert_eq!(tx.send("late").unwrap_err().0, "late");
    }))
    .unwrap();
    run_all(&mut s, 10);
    all_ended(0);
    assert_eq!(*out.borrow(), [Some("reply"), None]);
}

#[test]
fn a_killed_oneshot_receiver_closes_it_for_the_sender() {
    let mut s = schedule();
    let (tx, rx) = oneshot::channel::<u32>();
    let drops = Rc::new(Cell::new(0));
    let d = DropCounter(drops.clone());
    let receiver = s
        .spawn(move |h| {
            let _d = d;
            rx.receive(h);
            unreachable!("killed while receiving");
        })
        .unwrap();
    s.spawn(checked(move |h| {
        h.yield_now();
        h.kill(receiver);
        h.yield_now();
        assert!(tx.is_closed());
        assert!(tx.send(1).is_err());
    }))
    .unwrap();
    run_all(&mut s, 10);
    all_ended(0);
    assert_eq!(drops.get(), 1);
}
