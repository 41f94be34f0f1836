//! on_finish fires exactly once for each way of ending.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use fibra::rt::{Exit, Schedule};
use fibra::tasks::{TaskError, TasksExt, TasksPlugin};

#[test]
fn on_finish_fires_exactly_once_for_each_way_of_ending() {
    let mut s = Schedule::new();
    s.add_plugin(TasksPlugin::new()).unwrap();
    let log: Rc<RefCell<Vec<(&'static str, Exit)>>> = Rc::default();
    let l = log.clone();
    s.spawn(move |h| {
        let finishes = h.spawn(|h| h.yield_now()).unwrap();
        let panics = h
            .spawn(|h| {
                h.yield_now();
                panic!("on purpose")
            })
            .unwrap();
        let killed_by_peer = h.spawn(|h| h.sleep(Duration::from_secs(3600))).unwrap();
        let killed_before_start = h.spawn(|_| ()).unwrap();
        let kills_itself = h
            .spawn(|h| {
                h.kill(h.id());
            })
            .unwrap();
        for (what, id) in [
            ("finishes", finishes.id()),
            ("panics", panics.id()),
            ("killed_by_peer", killed_by_peer.id()),
            ("killed_before_start", killed_before_start.id()),
            ("kills_itself", kills_itself.id()),
        ] {
            let l = l.clone();
            h.on_finish(id, move |_h, exit| {
                l.borrow_mut().push((what, exit.clone()))
            })
            .unwrap();
        }
        assert!(h.kill(killed_before_start.id()));
        h.sleep(Duration::from_millis(2));
        assert!(h.kill(killed_by_peer.id()));
        // Too late: the target is gone, and the closure is dropped unrun.
        let finished_id = finishes.id();
        h.join(finishes).unwrap();
        let l2 = l.clone();
        let late = h.on_finish(finished_id, move |_, _| {
            l2.borrow_mut().push(("late", Exit::Finished))
        });
        assert!(matches!(late, Err(TaskError::NotFound(_))));
    })
    .unwrap();
    s.run().unwrap();
    let mut log = log.borrow().clone();
    log.sort_by_key(|(what, _)| *what);
    assert_eq!(
        log,
        vec![
            ("finishes", Exit::Finished),
            ("killed_before_start", Exit::Killed),
            ("killed_by_peer", Exit::Killed),
            ("kills_itself", Exit::Killed),
            ("panics", Exit::Panicked("on purpose".into())),
        ]
    );
    assert_eq!(s.plugin::<TasksPlugin>().unwrap().registrations(), 0);
}

#[test]
fn on_finish_also_fires_when_the_host_kills() {
    let mut s = Schedule::new();
    s.add_plugin(TasksPlugin::new()).unwrap();
    let fired = Rc::new(RefCell::new(Vec::new()));
    let target = s.spawn(|h| h.sleep(Duration::from_secs(3600))).unwrap();
    let f = fired.clone();
    s.spawn(move |h| {
        for _ in 0..2 {
            let f = f.clone();
            h.on_finish(target, move |_, exit| f.borrow_mut().push(exit.clone()))
                .unwrap();
        }
    })
    .unwrap();
    s.tick().unwrap();
    assert!(s.kill(target));
    s.run().unwrap();
    assert_eq!(*fired.borrow(), vec![Exit::Killed, Exit::Killed]);
}
