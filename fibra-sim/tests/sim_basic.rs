//! The simulation runs plain tasklet code: echo, timeouts, sleeps; one seed replays a run.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use fibra_net::{Lost, NetError, NetExt};
use fibra_sim::{for_seeds, Faults, Sim};
use fibra_tasks::TasksExt;

/// The echoes each client got, in order.
type Echoes = Rc<RefCell<Vec<Vec<Vec<u8>>>>>;

/// An echo server and `clients` clients each sending `lines` lines; returns the sim and the
/// echoes each client got.
fn echo(seed: u64, clients: usize, lines: usize, faults: Option<Faults>) -> (Sim, Echoes) {
    let mut sim = Sim::new(seed);
    if let Some(f) = faults {
        sim.set_faults(f);
    }
    let server = sim.host("10.0.0.1");
    sim.spawn(server, "server", |h| {
        let listener = h.listen("0.0.0.0:7000").unwrap();
        while let Ok((conn, _)) = h.accept(&listener) {
            h.spawn_detached(move |h| {
                while let Ok(line) = h.receive(&conn) {
                    if h.send_frame(&conn, &line).is_err() {
                        break;
                    }
                }
            })
            .unwrap();
        }
    });
    let got = Rc::new(RefCell::new(vec![Vec::new(); clients]));
    for c in 0..clients {
        let host = sim.host(&format!("10.0.1.{}", c + 1));
        let got = got.clone();
        sim.spawn(host, "client", move |h| {
            let conn = h.connect("10.0.0.1:7000").unwrap();
            for i in 0..lines {
                let line = format!("client {c} line {i}");
                h.send_frame(&conn, line.as_bytes()).unwrap();
                let echo = h.receive(&conn).unwrap();
                got.borrow_mut()[c].push(echo);
            }
            h.close(&conn).unwrap();
        });
    }
    (sim, got)
}

#[test]
fn echo_runs_on_the_simulated_network() {
    let (mut sim, got) = echo(1, 3, 20, None);
    let done = got.clone();
    sim.run_until(
        move |_| done.borrow().iter().all(|g| g.len() == 20),
        Duration::from_secs(60),
    )
    .unwrap();
    for (c, lines) in got.borrow().iter().enumerate() {
        for (i, line) in lines.iter().enumerate() {
            assert_eq!(line, format!("client {c} line {i}").as_bytes());
        }
    }
    assert!(
        sim.now() > Duration::ZERO,
        "time went by on the simulated clock"
    );
    assert!(sim.now() < Duration::from_secs(5), "{:?}", sim.now());
}

fn run_hash(seed: u64, faults: bool) -> u64 {
    let f = faults.then(|| {
        let mut f = Faults::none();
        f.short_write = 0.3;
        f.split = 0.3;
        f.send_buffer = 16;
        f
    });
    let (mut sim, got) = echo(seed, 3, 10, f);
    let done = got.clone();
    sim.run_until(
        move |_| done.borrow().iter().all(|g| g.len() == 10),
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    sim.trace_hash()
}

#[test]
fn one_seed_gives_one_trace_and_seeds_differ() {
    for faults in [false, true] {
        let a = run_hash(42, faults);
        assert_eq!(a, run_hash(42, faults), "the same seed twice");
        let others: Vec<u64> = (43..48).map(|s| run_hash(s, faults)).collect();
        for h in &others {
            assert_ne!(a, *h, "another seed, another run");
        }
    }
}

#[test]
fn short_writes_split_segments_and_a_full_send_buffer_lose_nothing() {
    for_seeds(20, |seed| {
        let _ = run_hash(seed, true);
    });
}

#[test]
fn sleeps_and_read_timeouts_run_on_simulated_time() {
    let mut sim = Sim::new(3);
    let a = sim.host("10.0.0.1");
    let b = sim.host("10.0.0.2");
    sim.spawn(a, "silent", |h| {
        let listener = h.listen("0.0.0.0:80").unwrap();
        let (_conn, _) = h.accept(&listener).unwrap();
        h.sleep(Duration::from_secs(3600));
    });
    let outcome = Rc::new(RefCell::new(None));
    let out = outcome.clone();
    sim.spawn(b, "waiter", move |h| {
        h.sleep(Duration::from_secs(10));
        let conn = h.connect("10.0.0.2:80".replace(".2:", ".1:")).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(30)));
        let r = h.receive(&conn);
        *out.borrow_mut() = Some((r.map(|_| ()), ()));
    });
    let started = std::time::Instant::now();
    sim.run_until(|_| outcome.borrow().is_some(), Duration::from_secs(7200))
        .unwrap();
    let (r, _) = outcome.borrow_mut().take().unwrap();
    assert!(matches!(r, Err(NetError::Lost(Lost::TimedOut))), "{r:?}");
    let at = sim.now();
    assert!(
        at >= Duration::from_secs(40) && at < Duration::from_secs(41),
        "{at:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no real waiting"
    );
}

#[test]
fn a_refused_connect_and_an_unknown_host_fail() {
    let mut sim = Sim::new(5);
    let a = sim.host("10.0.0.1");
    let _b = sim.host("10.0.0.2");
    let out = Rc::new(RefCell::new(Vec::new()));
    let o = out.clone();
    sim.spawn(a, "c", move |h| {
        let refused = format!("{:?}", h.connect("10.0.0.2:1").err());
        o.borrow_mut().push(refused);
        let unreachable = format!("{:?}", h.connect("10.9.9.9:1").err());
        o.borrow_mut().push(unreachable);
    });
    sim.run_until(|_| out.borrow().len() == 2, Duration::from_secs(60))
        .unwrap();
    let out = out.borrow();
    assert!(out[0].contains("Refused"), "{out:?}");
    assert!(out[1].contains("Unreachable"), "{out:?}");
}

#[test]
fn a_failed_assertion_in_a_simulated_tasklet_stops_the_run() {
    let mut sim = Sim::new(8);
    let a = sim.host("10.0.0.1");
    sim.spawn(a, "checker", |h| {
        h.sleep(Duration::from_secs(5));
        assert_eq!(1 + 1, 3, "arithmetic");
    });
    let r = sim.run_until(|_| false, Duration::from_secs(60));
    match r {
        Err(fibra_sim::SimError::Panicked { name, message, .. }) => {
            assert_eq!(name, "checker");
            assert!(message.contains("arithmetic"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sim.now(), Duration::from_secs(5));
}
