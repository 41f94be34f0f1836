//! Two simulations alive on one thread (a test that builds both runs of a seed first, then
//! runs them, or steps them in turn) replay as if each were alone: each has its own clock
//! and its own stream of jitter, and dropping one leaves the other simulated.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use fibra_sim::Sim;
use fibra_tasks::TasksExt as _;

/// A tasklet that sleeps jittered spells (as a back-off does) and notes when it woke.
fn jittery(seed: u64) -> (Sim, Rc<RefCell<Vec<Duration>>>) {
    let mut sim = Sim::new(seed);
    let host = sim.host("10.0.0.1");
    let woke = Rc::new(RefCell::new(Vec::new()));
    let w = woke.clone();
    sim.spawn(host, "jitter", move |h| {
        let start = fibra_rt::time::now();
        for _ in 0..5 {
            h.sleep(Duration::from_millis(fibra_rt::time::entropy() % 1000));
            w.borrow_mut().push(fibra_rt::time::now() - start);
        }
    });
    (sim, woke)
}

#[test]
fn two_simulations_built_first_then_run_replay_alike() {
    let (alone, alone_woke) = {
        let (mut sim, woke) = jittery(7);
        sim.run_for(Duration::from_secs(10)).unwrap();
        let woke = woke.borrow().clone();
        (sim.trace_hash(), woke)
    };
    let (mut a, a_woke) = jittery(7);
    let (mut b, b_woke) = jittery(7);
    a.run_for(Duration::from_secs(10)).unwrap();
    b.run_for(Duration::from_secs(10)).unwrap();
    assert_eq!(*a_woke.borrow(), alone_woke);
    assert_eq!(*b_woke.borrow(), alone_woke);
    assert_eq!((a.trace_hash(), b.trace_hash()), (alone, alone));
}

#[test]
fn two_simulations_stepped_in_turn_replay_alike_and_one_outlives_the_other() {
    let (mut alone, alone_woke) = jittery(9);
    alone.run_for(Duration::from_secs(10)).unwrap();
    let alone_woke = alone_woke.borrow().clone();
    drop(alone);
    let (mut a, a_woke) = jittery(9);
    let (mut b, b_woke) = jittery(9);
    for _ in 0..20 {
        a.run_for(Duration::from_millis(200)).unwrap();
        b.run_for(Duration::from_millis(200)).unwrap();
    }
    assert_eq!(*a_woke.borrow(), alone_woke);
    assert_eq!(*b_woke.borrow(), alone_woke);
    drop(a);
    assert!(
        fibra_rt::time::is_simulated(),
        "b still lives: the thread is still simulated"
    );
    b.run_for(Duration::from_secs(1)).unwrap();
    drop(b);
    assert!(!fibra_rt::time::is_simulated());
}
