//! Findings of review G: a thread outside the simulation that wakes a simulated host (a
//! `remote_channel`'s sender) decided, by real timing, when its values landed in simulated
//! time; a run of tiny sleeps had no budget of rounds and ran on for minutes of wall time.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use fibra_sim::{Sim, SimError};

/// A tasklet on a simulated host reads a `remote_channel` fed by a real thread, beside a
/// tasklet that keeps simulated time moving. Before: no error, and the values arrived at a
/// different simulated time in each run of one seed (410 ms, then 1.465 s; 583 ms, then
/// 1.336 s): silent nondeterminism. After: the host stops with an error that says why.
#[test]
fn a_real_thread_waking_a_simulated_host_is_refused_not_silently_nondeterministic() {
    let mut sim = Sim::new(1);
    let host = sim.host("10.0.0.1");
    let got: Rc<RefCell<Vec<Duration>>> = Rc::default();
    let g = got.clone();
    let remote = sim.schedule(host).unwrap().remote();
    let (tx, rx) = fibra_tasks::remote_channel::<u32>(&remote, 8);
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let sender = std::thread::spawn(move || {
        // Once the receiver has parked: a wake, not a value found on the way.
        go_rx.recv().unwrap();
        let _ = tx.send(1);
    });
    let t0 = fibra_rt::time::now();
    sim.spawn(host, "clock", |h| loop {
        fibra_tasks::TasksExt::sleep(h, Duration::from_millis(1));
    });
    sim.spawn(host, "rx", move |h| {
        while let Some(_v) = rx.receive(h) {
            g.borrow_mut().push(fibra_rt::time::now() - t0);
        }
    });
    sim.run_for(Duration::from_millis(10)).unwrap();
    go_tx.send(()).unwrap();
    sender.join().unwrap();
    let r = sim.run_until(|_| !got.borrow().is_empty(), Duration::from_secs(3600));
    match r {
        Err(SimError::Host { error, .. }) => {
            let message = error.to_string();
            assert!(message.contains("outside the simulation"), "{message}");
        }
        other => panic!(
            "a real thread's wake was taken in simulated time ({:?}), not refused: {other:?}",
            got.borrow()
        ),
    }
}

/// A tasklet that sleeps a microsecond in a loop, run until a simulated hour: time moves
/// (no livelock) but crawls, 3.6 billion rounds. Before: no budget of rounds, so the run
/// went on for hours of wall time (200,000 rounds a second, debug) and only the watch of
/// `for_seeds` named it after 60 s. After: it stops with `SimError::Budget`.
#[test]
fn simulated_time_that_crawls_stops_with_a_report_within_a_budget_of_rounds() {
    let (done_tx, done_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut sim = Sim::new(3);
        let host = sim.host("10.0.0.1");
        sim.spawn(host, "poll", |h| loop {
            fibra_tasks::TasksExt::sleep(h, Duration::from_micros(1));
        });
        let r = sim.run_until(|_| false, Duration::from_secs(3600));
        let _ = done_tx.send(format!("{r:?}"));
    });
    match done_rx.recv_timeout(Duration::from_secs(150)) {
        Ok(r) => assert!(r.starts_with("Err(Budget"), "{r}"),
        Err(_) => panic!("a run of 1 µs sleeps to a simulated hour still running after 150 s"),
    }
}

fn deep(n: u64) -> u64 {
    let a = [n; 512];
    if n == 0 {
        0
    } else {
        deep(n - 1) + a[(n % 512) as usize]
    }
}

/// Not a test on its own: seed 4 of 6 overflows a tasklet's stack, for the test below.
#[test]
#[ignore = "run by a_stack_overflow_in_a_simulated_host_names_its_seed"]
fn a_seed_that_overflows() {
    fibra_sim::for_seeds(6, |seed| {
        let mut sim = Sim::new(seed);
        let host = sim.host("10.0.0.1");
        sim.spawn(host, "deep", move |_h| {
            if seed == 4 {
                std::hint::black_box(deep(std::hint::black_box(1_000_000)));
            }
        });
        sim.run_for(Duration::from_secs(1)).unwrap();
    });
}

/// A stack overflow in a simulated tasklet aborts the process (fibra reports the tasklet),
/// past `for_seeds`'s catch: before, nothing said which of the seeds it was, so it could
/// not be replayed. After: the report ends with the seed's replay command.
#[test]
fn a_stack_overflow_in_a_simulated_host_names_its_seed() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "a_seed_that_overflows",
            "--nocapture",
        ])
        .env_remove(fibra_sim::SEED_VAR)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("overflowed its stack"), "{stderr}");
    assert!(
        stderr.contains(
            "FIBRA_SIM_SEED=4 cargo test -p fibra-sim --test sim_review_budget -- --exact a_seed_that_overflows"
        ),
        "the overflow's report does not name the seed: {stderr}"
    );
}
