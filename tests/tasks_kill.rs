//! Killing runs destructors exactly once and leaves no plugin registration.

mod util;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use fibra::rt::Exit;
use fibra::tasks::{TaskError, TasksExt, TasksPlugin};
use util::*;

#[test]
fn kill_runs_destructors_exactly_once_wherever_the_tasklet_waits() {
    let mut s = schedule();
    let drops = Rc::new(Cell::new(0));
    let (tx, rx) = fibra::tasks::channel::<u32>();
    let (btx, _brx) = fibra::tasks::bounded::<u32>(1);
    btx.try_send(0).unwrap();
    let mut victims = Vec::new();

    // Sleeping.
    let d = DropCounter(drops.clone());
    victims.push(s.spawn(move |h| {
        let _d = d;
        h.sleep(Duration::from_secs(3600));
        unreachable!("killed while asleep");
    }));
    // Parked in a channel receive.
    let d = DropCounter(drops.clone());
    victims.push(s.spawn(move |h| {
        let _d = d;
        rx.receive(h);
        unreachable!("killed while receiving");
    }));
    // Parked in a send to a full channel.
    let d = DropCounter(drops.clone());
    let btx2 = btx.clone();
    victims.push(s.spawn(move |h| {
        let _d = d;
        let _ = btx2.send(h, 1);
        unreachable!("killed while sending");
    }));
    // Joining a tasklet that never ends.
    let forever = s.spawn(|h| h.sleep(Duration::from_secs(3600))).unwrap();
    let d = DropCounter(drops.clone());
    victims.push(s.spawn(move |h| {
        let _d = d;
        let _ = h.join_id(forever);
        unreachable!("killed while joining");
    }));
    // Yielded until the next tick.
    let d = DropCounter(drops.clone());
    victims.push(s.spawn(move |h| {
        let _d = d;
        loop {
            h.yield_now();
        }
    }));
    // Timed op.
    let d = DropCounter(drops.clone());
    victims.push(s.spawn(move |h| {
        let _d = d;
        let _ = h.yield_op_timeout(
            fibra::tasks::ops::Sleep(std::time::Instant::now() + Duration::from_secs(7200)),
            Duration::from_secs(3600),
        );
    }));
    let victims: Vec<_> = victims.into_iter().map(Result::unwrap).collect();

    s.tick().unwrap();
    s.tick().unwrap();
    assert_eq!(drops.get(), 0);
    for &v in &victims {
        assert!(s.kill(v));
        assert!(!s.kill(v), "a dead tasklet cannot be killed twice");
    }
    assert_eq!(drops.get(), victims.len() as u32);
    assert!(s.kill(forever));
    assert_eq!(s.len(), 0);
    assert_eq!(s.plugin::<TasksPlugin>().unwrap().registrations(), 0);
    assert_eq!(s.next_deadline(), None);
    s.run().unwrap();
    assert_eq!(drops.get(), victims.len() as u32, "no destructor ran twice");
    // The killed receiver's destructor ran: its channel is closed, the value comes back.
    assert!(matches!(
        tx.try_send(5),
        Err(fibra::tasks::TrySendError::Closed(5))
    ));
}

#[test]
fn killing_a_tasklet_that_never_ran_drops_its_closure_once() {
    let mut s = schedule();
    let drops = Rc::new(Cell::new(0));
    let d = DropCounter(drops.clone());
    let id = s
        .spawn(move |_| {
            let _d = d;
            unreachable!("never runs");
        })
        .unwrap();
    assert!(s.kill(id));
    assert_eq!(drops.get(), 1);
    s.run().unwrap();
    assert_eq!(drops.get(), 1);
}

#[test]
fn a_tasklet_can_kill_another_and_itself() {
    let mut s = schedule();
    let drops = Rc::new(Cell::new(0));
    let d = DropCounter(drops.clone());
    let sleeper = s
        .spawn(move |h| {
            let _d = d;
            h.sleep(Duration::from_secs(3600));
        })
        .unwrap();
    let d = DropCounter(drops.clone());
    let after_self_kill = Rc::new(Cell::new(false));
    let a = after_self_kill.clone();
    let killer = s
        .spawn(move |h| {
            let _d = d;
            h.yield_now();
            assert!(h.kill(sleeper));
            assert!(!h.kill(sleeper));
            let me = h.id();
            h.kill(me);
            a.set(true);
        })
        .unwrap();
    let watcher_saw = Rc::new(Cell::new(0));
    let w = watcher_saw.clone();
    s.spawn(move |h| {
        assert_eq!(h.join_id(killer).unwrap(), Exit::Killed);
        w.set(w.get() + 1);
    })
    .unwrap();
    s.run().unwrap();
    assert_eq!(drops.get(), 2);
    assert!(!after_self_kill.get(), "a self-kill does not return");
    assert_eq!(watcher_saw.get(), 1);
    assert_eq!(s.plugin::<TasksPlugin>().unwrap().registrations(), 0);
}

#[test]
fn a_joiner_of_a_killed_tasklet_gets_killed_error() {
    let mut s = schedule();
    let got = Rc::new(Cell::new(false));
    let g = got.clone();
    s.spawn(move |h| {
        let child = h
            .spawn(|h| {
                h.sleep(Duration::from_secs(3600));
                1
            })
            .unwrap();
        let id = child.id();
        h.spawn_detached(move |h| {
            h.yield_now();
            h.kill(id);
        })
        .unwrap();
        assert!(matches!(h.join(child), Err(TaskError::Killed)));
        g.set(true);
    })
    .unwrap();
    s.run().unwrap();
    assert!(got.get());
}

#[test]
fn dropping_a_schedule_runs_the_destructors_of_its_live_tasklets() {
    let drops = Rc::new(Cell::new(0));
    let mut s = util::net_schedule();
    let (tx, rx) = fibra::tasks::channel::<u32>();
    // Parked in a channel, asleep, waiting for a connection, runnable, and never started.
    for i in 0..5 {
        let d = DropCounter(drops.clone());
        let rx = rx.clone();
        s.spawn(move |h| {
            let _d = d;
            match i {
                0 => drop(rx.receive(h)),
                1 => h.sleep(Duration::from_secs(3600)),
                2 => {
                    let listener = fibra::net::NetExt::listen(h, "127.0.0.1:0").unwrap();
                    let _ = fibra::net::NetExt::accept(h, &listener);
                }
                _ => loop {
                    h.yield_now();
                },
            }
        })
        .unwrap();
    }
    s.tick().unwrap();
    let d = DropCounter(drops.clone());
    s.spawn(move |_| drop(d)).unwrap(); // spawned, never run: its closure drops
    assert_eq!(s.len(), 6);
    assert_eq!(drops.get(), 0);
    drop(s);
    assert_eq!(drops.get(), 6, "every live tasklet's destructors ran, once");
    drop(tx);
}
