//! Kills and drops from a hostile review of fibra-rt and fibra-tasks: a never-run tasklet's
//! closure dropped once though a capture's `Drop` panics, schedules nested in tasklets, and
//! channel waiters whose peers are killed.

mod util;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use fibra::rt::Schedule;

const CHILD: &str = "FIBRA_RT_REVIEW_CHILD";

/// Runs `scenario` in a child process (this test again, with `CHILD=case`), bounded to 30 s.
fn child(test: &str, case: &str, scenario: fn()) {
    if std::env::var(CHILD).as_deref() == Ok(case) {
        scenario();
        return;
    }
    let (ok, output) = util::run_in_child(test, (CHILD, case), Duration::from_secs(30));
    assert!(ok, "the child failed (or hung):\n{output}");
    assert!(output.contains("child: survived"), "{output}");
}

/// Counts its drops; panics on its first one.
struct PanicOnFirstDrop(Rc<Cell<u32>>);
impl Drop for PanicOnFirstDrop {
    fn drop(&mut self) {
        let n = self.0.get() + 1;
        self.0.set(n);
        if n == 1 {
            panic!("first drop of the closure's capture");
        }
    }
}

/// Killing a tasklet that never ran drops its closure; a capture whose `Drop` panics must
/// not make the closure (and its other captures) drop twice.
fn kill_unstarted_with_panicking_capture() {
    util::panics_expected();
    let drops = Rc::new(Cell::new(0));
    let other = Rc::new(());
    let mut s = Schedule::new();
    let bomb = PanicOnFirstDrop(Rc::clone(&drops));
    let held = Rc::clone(&other);
    let id = s
        .spawn(move |_h| {
            let _ = (&bomb, &held);
        })
        .unwrap();
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.kill(id)));
    assert_eq!(
        drops.get(),
        1,
        "the never-run tasklet's closure was dropped {} times",
        drops.get()
    );
    assert_eq!(Rc::strong_count(&other), 1);
    drop(s);
    eprintln!("child: survived");
}

#[test]
fn killing_an_unstarted_tasklet_whose_capture_panics_in_drop_drops_it_once() {
    child(
        "killing_an_unstarted_tasklet_whose_capture_panics_in_drop_drops_it_once",
        "kill-unstarted",
        kill_unstarted_with_panicking_capture,
    );
}

/// The same through the schedule's drop.
fn drop_schedule_with_unstarted_panicking_capture() {
    util::panics_expected();
    let drops = Rc::new(Cell::new(0));
    let mut s = Schedule::new();
    let bomb = PanicOnFirstDrop(Rc::clone(&drops));
    s.spawn(move |_h| {
        let _ = &bomb;
    })
    .unwrap();
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(s)));
    assert_eq!(
        drops.get(),
        1,
        "the never-run tasklet's closure was dropped {} times",
        drops.get()
    );
    eprintln!("child: survived");
}

#[test]
fn dropping_a_schedule_with_an_unstarted_tasklet_whose_capture_panics_drops_it_once() {
    child(
        "dropping_a_schedule_with_an_unstarted_tasklet_whose_capture_panics_drops_it_once",
        "drop-unstarted",
        drop_schedule_with_unstarted_panicking_capture,
    );
}

/// Parks; its drop sets a flag.
struct Flag(Rc<Cell<bool>>);
impl Drop for Flag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// A tasklet of schedule A owns schedule B and ticks it; the host kills that tasklet while
/// B's tasklet is parked: B is dropped inside A's kill unwind, and unwinds its own tasklet.
fn nested_schedule_killed() {
    let mut a = Schedule::new();
    let inner_dropped = Rc::new(Cell::new(false));
    let d = Rc::clone(&inner_dropped);
    let outer = a
        .spawn(move |h| {
            let mut b = Schedule::new();
            let flag = Flag(d);
            b.spawn(move |bh| {
                let _flag = flag;
                bh.park();
            })
            .unwrap();
            assert!(b.tick().unwrap());
            // A's tasklet parks while B's tasklet is parked inside B.
            loop {
                h.park();
                b.tick().unwrap();
            }
        })
        .unwrap();
    a.tick().unwrap();
    assert!(!inner_dropped.get());
    assert!(a.kill(outer));
    assert!(inner_dropped.get(), "B's tasklet unwound with B");
    // And the schedule goes on.
    a.spawn(|_| {}).unwrap();
    assert!(!a.tick().unwrap());
    eprintln!("child: survived");
}

#[test]
fn killing_a_tasklet_that_owns_a_nested_schedule() {
    child(
        "killing_a_tasklet_that_owns_a_nested_schedule",
        "nested-kill",
        nested_schedule_killed,
    );
}

/// Ticks B from inside A's tasklet while B's tasklet kills itself and panics.
fn nested_schedule_ticked_inside_a_tasklet() {
    let mut a = Schedule::new();
    let ran = Rc::new(Cell::new(0u32));
    let r = Rc::clone(&ran);
    a.spawn(move |h| {
        let mut b = Schedule::new();
        let r2 = Rc::clone(&r);
        let id = b
            .spawn(move |bh| {
                r2.set(r2.get() + 1);
                bh.unparker().kill();
                bh.park();
                unreachable!("killed at its yield");
            })
            .unwrap();
        b.watch_exit(id);
        let panicker = b.spawn(|_| panic!("inner panic")).unwrap();
        b.watch_exit(panicker);
        while b.tick().unwrap() {
            h.park_until(fibra::rt::time::now()).ok();
        }
        assert_eq!(b.take_exit(id), Some(fibra::rt::Exit::Killed));
        assert!(matches!(
            b.take_exit(panicker),
            Some(fibra::rt::Exit::Panicked(_))
        ));
        r.set(r.get() + 10);
    })
    .unwrap();
    a.run().unwrap();
    assert_eq!(ran.get(), 11);
    eprintln!("child: survived");
}

#[test]
fn a_schedule_ticked_inside_another_schedules_tasklet() {
    child(
        "a_schedule_ticked_inside_another_schedules_tasklet",
        "nested-tick",
        nested_schedule_ticked_inside_a_tasklet,
    );
}

/// Liveness: the only receiver is killed while a sender is parked on a full channel, and a
/// receiver woken for a value is killed before it runs: nobody hangs, no value is lost.
#[test]
fn channel_waiters_survive_their_peers_being_killed() {
    use fibra::tasks::bounded;
    let mut s = util::schedule();
    let (tx, rx) = bounded::<u32>(1);
    let got = Rc::new(Cell::new(None));
    let g = Rc::clone(&got);
    let sender = s
        .spawn(move |h| {
            tx.send(h, 1).unwrap();
            g.set(Some(tx.send(h, 2).is_err()));
        })
        .unwrap();
    let receiver = s
        .spawn(move |h| {
            let _rx = rx;
            h.park();
        })
        .unwrap();
    s.tick().unwrap();
    assert!(s.contains(sender), "the sender waits for room");
    assert!(s.kill(receiver));
    s.run().unwrap();
    assert_eq!(got.get(), Some(true), "the sender saw the channel close");

    // A receiver woken for a value, killed before it runs: the value goes to the next one.
    let (tx, rx) = bounded::<u32>(4);
    let out = Rc::new(Cell::new(0));
    let rx2 = rx.clone();
    let first = s
        .spawn(move |h| {
            let _ = rx.receive(h);
        })
        .unwrap();
    let o = Rc::clone(&out);
    s.spawn(move |h| o.set(rx2.receive(h).unwrap())).unwrap();
    s.tick().unwrap();
    tx.try_send(7).unwrap();
    assert!(s.kill(first));
    s.run().unwrap();
    assert_eq!(out.get(), 7);
}
