//! A panic ends its tasklet only; joiners and watchers see it.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use fibra::rt::{Exit, Schedule};
use fibra::tasks::{TaskError, TasksExt, TasksPlugin};

#[test]
fn a_panicking_tasklet_does_not_stop_the_others_and_its_joiner_sees_it() {
    let mut s = Schedule::new();
    s.add_plugin(TasksPlugin::new()).unwrap();
    let survivors = Rc::new(Cell::new(0));
    let seen = Rc::new(Cell::new(false));
    for i in 0..20 {
        let survivors = survivors.clone();
        s.spawn(move |h| {
            h.sleep(Duration::from_millis(i % 3));
            h.yield_now();
            survivors.set(survivors.get() + 1);
        })
        .unwrap();
    }
    let seen2 = seen.clone();
    s.spawn(move |h| {
        let child = h
            .spawn(|h| -> u32 {
                h.yield_now();
                panic!("boom in the child");
            })
            .unwrap();
        match h.join(child) {
            Err(TaskError::Panicked(msg)) => {
                assert_eq!(msg, "boom in the child");
                seen2.set(true);
            }
            other => panic!("expected a panic, got {other:?}"),
        }
    })
    .unwrap();
    let bystander = s.spawn(|_| panic!("a panic with {} args", 2)).unwrap();
    s.run().unwrap();
    assert!(seen.get());
    assert_eq!(survivors.get(), 20);
    assert!(!s.contains(bystander));
}

#[test]
fn join_id_reports_a_panic_with_its_message() {
    let mut s = Schedule::new();
    s.add_plugin(TasksPlugin::new()).unwrap();
    let victim = s
        .spawn(|h| {
            h.sleep(Duration::from_millis(1));
            panic!("formatted {}", 7);
        })
        .unwrap();
    let got = Rc::new(Cell::new(false));
    let g = got.clone();
    s.spawn(move |h| {
        assert_eq!(
            h.join_id(victim).unwrap(),
            Exit::Panicked("formatted 7".into())
        );
        assert!(matches!(h.join_id(victim), Err(TaskError::NotFound(_))));
        assert!(matches!(h.join_id(h.id()), Err(TaskError::JoinSelf)));
        g.set(true);
    })
    .unwrap();
    s.run().unwrap();
    assert!(got.get());
}

#[test]
fn an_op_without_a_plugin_panics_that_tasklet_with_a_clear_message() {
    let mut s = Schedule::new(); // no TasksPlugin
    let other_ran = Rc::new(Cell::new(false));
    let o = other_ran.clone();
    let caught = Rc::new(Cell::new(false));
    let c = caught.clone();
    s.spawn(move |h| {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            h.sleep(Duration::from_millis(1))
        }));
        let err = r.unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(msg.contains("no plugin of this schedule serves"), "{msg}");
        assert!(msg.contains("Sleep"), "{msg}");
        assert!(
            msg.ends_with(
                "add `schedule.add_plugin(fibra_tasks::TasksPlugin::new())` or make the \
                 schedule with `fibra::schedule()`"
            ),
            "{msg}"
        );
        c.set(true);
    })
    .unwrap();
    s.spawn(move |_| o.set(true)).unwrap();
    s.run().unwrap();
    assert!(caught.get());
    assert!(other_ran.get());
}

#[test]
fn a_panic_while_another_tasklet_is_parked_leaves_it_wakeable() {
    let mut s = Schedule::new();
    s.add_plugin(TasksPlugin::new()).unwrap();
    let (tx, rx) = fibra::tasks::channel::<u32>();
    let got = Rc::new(Cell::new(0));
    let g = got.clone();
    s.spawn(move |h| g.set(rx.receive(h).unwrap())).unwrap();
    s.spawn(|_| panic!("unrelated")).unwrap();
    s.spawn(move |h| {
        h.yield_now();
        tx.send(h, 9).unwrap();
    })
    .unwrap();
    s.run().unwrap();
    assert_eq!(got.get(), 9);
}
