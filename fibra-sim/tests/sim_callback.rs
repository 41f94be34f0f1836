//! fibra-net's callback layer in simulation: the `Pool` and the `ReconnectingClient` under
//! partitions, resets, a back end's crash and restart, and their repair. No request is lost
//! silently (each gets its own reply or an error, within its timeout), and the back-off
//! waits stay within their bounds.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use fibra_net::{
    Backoff, ClientEvent, ConnOptions, Factory, NetError, NetExt, Pool, Protocol,
    ReconnectingClient, Transport,
};
use fibra_rt::Handle;
use fibra_sim::{for_seeds, HostId, Sim};
use fibra_tasks::TasksExt;

/// A back end on 10.0.0.1:9 answering each line `x` with `re:x`.
fn back_end(sim: &mut Sim) -> HostId {
    back_end_after(sim, Rc::default())
}

/// A back end that listens `late` after each boot (connects are refused meanwhile).
fn back_end_after(sim: &mut Sim, late: Rc<std::cell::Cell<Duration>>) -> HostId {
    let server = sim.host("10.0.0.1");
    sim.on_boot(server, move |schedule| {
        let late = late.get();
        schedule
            .spawn_named("back end", move |h| {
                h.sleep(late);
                let listener = h.listen("0.0.0.0:9").unwrap();
                while let Ok((conn, _)) = h.accept(&listener) {
                    h.spawn_detached(move |h| {
                        while let Ok(line) = h.receive_line(&conn) {
                            if h.send_line(&conn, &format!("re:{line}")).is_err() {
                                break;
                            }
                        }
                    })
                    .unwrap();
                }
            })
            .unwrap();
    });
    server
}

fn backoff() -> Backoff {
    Backoff::new()
        .with_initial(Duration::from_millis(50))
        .with_max(Duration::from_secs(2))
        .with_jitter(true)
}

/// What each request got: (its number, when it started, when it ended, the outcome).
type Outcomes = Rc<RefCell<Vec<(usize, Duration, Duration, Result<Vec<u8>, String>)>>>;

fn pool_under_faults(seed: u64) {
    let mut sim = Sim::new(seed);
    let mut faults = sim.random_faults();
    faults.partition_max = faults.partition_max.min(Duration::from_secs(3));
    sim.set_faults(faults);
    let server = back_end(&mut sim);
    let client = sim.host("10.0.0.2");
    let outcomes: Outcomes = Rc::default();
    let timeout = Duration::from_secs(2);
    let requesters = 3;
    let per = 15;
    let o = outcomes.clone();
    let stats = Rc::new(RefCell::new(None));
    let s = stats.clone();
    sim.spawn(client, "requests", move |h| {
        let addr: SocketAddr = "10.0.0.1:9".parse().unwrap();
        let pool = Pool::new(addr, ConnOptions::new(), backoff(), 2);
        pool.start(h).unwrap();
        let mut joins = Vec::new();
        for r in 0..requesters {
            let (pool, o) = (pool.clone(), o.clone());
            joins.push(
                h.spawn(move |h| {
                    for i in 0..per {
                        let n = r * per + i;
                        let start = fibra_rt::time::now();
                        let got = pool
                            .request(h, format!("{n}").as_bytes(), timeout)
                            .map_err(|e| format!("{e}"));
                        let end = fibra_rt::time::now();
                        o.borrow_mut()
                            .push((n, Duration::ZERO, end - start, got.clone()));
                        h.sleep(Duration::from_millis(if got.is_ok() { 50 } else { 300 }));
                    }
                })
                .unwrap(),
            );
        }
        for j in joins {
            h.join(j).unwrap();
        }
        *s.borrow_mut() = Some(pool.stats());
        pool.stop();
    });
    // A crash of the back end on some seeds, and its restart.
    if sim.random(3) == 0 {
        let at = Duration::from_millis(200 + sim.random(1000));
        let _ = sim.run_until(|s| s.now() >= at, at);
        sim.crash(server);
        let down = Duration::from_millis(sim.random(2000));
        sim.run_for(down).unwrap();
        sim.restart(server);
    }
    sim.run_until(|_| stats.borrow().is_some(), Duration::from_secs(600))
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    let outcomes = outcomes.borrow();
    assert_eq!(outcomes.len(), requesters * per, "every request ended");
    for (n, _, took, got) in outcomes.iter() {
        // Never longer than its timeout (a simulated instant's rounding aside).
        assert!(
            *took <= timeout + Duration::from_millis(1),
            "request {n} took {took:?}"
        );
        if let Ok(reply) = got {
            assert_eq!(
                String::from_utf8_lossy(reply),
                format!("re:{n}"),
                "request {n} got another's reply"
            );
        }
    }
    // The last requests, after every fault healed or the back end came back, mostly work.
    let ok = outcomes.iter().filter(|o| o.3.is_ok()).count();
    assert!(ok > 0, "seed {seed}: no request ever worked: {outcomes:?}");
}

#[test]
fn the_pool_loses_no_request_silently_under_faults() {
    for_seeds(200, pool_under_faults);
}

/// Counts what its connections hear.
struct Greeter {
    heard: Rc<RefCell<Vec<String>>>,
}

impl Protocol for Greeter {
    fn connection_made(&mut self, h: &Handle, t: &Transport) {
        let _ = t.send_line("hello");
        // A ping each second: a connection to a host that crashed is found out when the
        // restarted host answers a ping with a RST (without traffic, nobody would know).
        let conn = t.conn().clone();
        let _ = t.spawn_inner(h, move |h| loop {
            h.sleep(Duration::from_secs(1));
            if h.send_line(&conn, "ping").is_err() {
                break;
            }
        });
    }
    fn frame_received(&mut self, _h: &Handle, _t: &Transport, frame: &[u8]) {
        self.heard
            .borrow_mut()
            .push(String::from_utf8_lossy(frame).into_owned());
    }
}

struct Greeters {
    heard: Rc<RefCell<Vec<String>>>,
}

impl Factory for Greeters {
    type Protocol = Greeter;
    fn build_protocol(&mut self, _peer: SocketAddr) -> Option<Greeter> {
        Some(Greeter {
            heard: self.heard.clone(),
        })
    }
}

#[test]
fn the_reconnecting_client_backs_off_within_bounds_and_comes_back_after_repairs() {
    for_seeds(100, |seed| {
        let mut sim = Sim::new(seed);
        let late = Rc::new(std::cell::Cell::new(Duration::ZERO));
        let server = back_end_after(&mut sim, late.clone());
        let client = sim.host("10.0.0.2");
        let heard = Rc::new(RefCell::new(Vec::new()));
        // (simulated time, event) for every event.
        let events: Rc<RefCell<Vec<(Duration, String)>>> = Rc::default();
        let base = fibra_rt::time::now();
        let (hd, ev) = (heard.clone(), events.clone());
        let waits: Rc<RefCell<HashMap<(Duration, String), Duration>>> = Rc::default();
        let w = waits.clone();
        let backoff = backoff();
        let bounds = backoff.clone();
        sim.spawn(client, "client", move |h| {
            let addr: SocketAddr = "10.0.0.1:9".parse().unwrap();
            let client =
                ReconnectingClient::new(addr, ConnOptions::new(), backoff, Greeters { heard: hd });
            client.on_event(move |e| {
                let at = fibra_rt::time::now() - base;
                let line = match e {
                    ClientEvent::Waiting { wait, attempt } => {
                        let ceiling = bounds.ceiling(attempt.saturating_sub(1));
                        assert!(*wait <= ceiling, "{wait:?} past its ceiling {ceiling:?}");
                        assert!(*wait <= Duration::from_secs(2), "{wait:?} past the max");
                        let key = format!("{wait:?} after {attempt}");
                        w.borrow_mut().insert((at, key.clone()), *wait);
                        format!("wait {key}")
                    }
                    ClientEvent::Connecting { attempt } => format!("connecting after {attempt}"),
                    ClientEvent::Connected { .. } => "connected".into(),
                    ClientEvent::ConnectFailed { error, .. } => format!("failed {error}"),
                    ClientEvent::Disconnected { .. } => "disconnected".into(),
                    other => format!("{other:?}"),
                };
                ev.borrow_mut().push((at, line));
            });
            client.start(h).unwrap();
            h.sleep(Duration::from_secs(3600));
        });
        // Up; then the back end crashes (the connection is lost, connects are refused or
        // time out), a partition cuts the way, and both heal.
        sim.run_until(|_| !heard.borrow().is_empty(), Duration::from_secs(10))
            .unwrap();
        sim.crash(server);
        sim.partition(client, server);
        let down = Duration::from_secs(2 + sim.random(5));
        sim.run_for(down).unwrap();
        // Back, but its service listens only seconds later: connects are refused, and the
        // waits grow to the backoff's max.
        late.set(Duration::from_secs(2 + sim.random(6)));
        sim.restart(server);
        let cut = Duration::from_secs(sim.random(3));
        sim.run_for(cut).unwrap();
        sim.repair(client, server);
        let hellos = |heard: &Rc<RefCell<Vec<String>>>| {
            heard.borrow().iter().filter(|l| *l == "re:hello").count()
        };
        sim.run_until(|_| hellos(&heard) == 2, Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("seed {seed}: {e}: {:?}", events.borrow()));
        // Each attempt after a wait starts when the wait ends, not before.
        let events = events.borrow();
        if std::env::var("FIBRA_SIM_VERBOSE").is_ok() {
            eprintln!("seed {seed}: {events:?}");
        }
        for pair in events.windows(2) {
            let ((at, what), (next, then)) = (&pair[0], &pair[1]);
            if let Some(wait) = what.strip_prefix("wait ") {
                let wait: Duration = waits.borrow()[&(*at, wait.to_string())];
                assert!(then.starts_with("connecting"), "{events:?}");
                assert!(
                    *next >= *at + wait,
                    "an attempt before its wait ended: {events:?}"
                );
            }
        }
        assert!(heard
            .borrow()
            .iter()
            .all(|l| l == "re:hello" || l == "re:ping"));
    });
}

/// What each request got.
type Replies = Rc<RefCell<Vec<Result<Vec<u8>, NetError>>>>;

#[test]
fn a_request_during_a_partition_times_out_and_the_next_after_the_repair_works() {
    let mut sim = Sim::new(9);
    let server = back_end(&mut sim);
    let client = sim.host("10.0.0.2");
    let got: Replies = Rc::default();
    let g = got.clone();
    sim.spawn(client, "requests", move |h| {
        let pool = Pool::new(
            "10.0.0.1:9".parse().unwrap(),
            ConnOptions::new(),
            backoff(),
            1,
        );
        pool.start(h).unwrap();
        for i in 0..3 {
            let r = pool.request(h, format!("{i}").as_bytes(), Duration::from_secs(1));
            g.borrow_mut().push(r);
            h.sleep(Duration::from_secs(2));
        }
    });
    sim.run_until(|_| got.borrow().len() == 1, Duration::from_secs(10))
        .unwrap();
    sim.partition(client, server);
    sim.run_until(|_| got.borrow().len() == 2, Duration::from_secs(10))
        .unwrap();
    sim.repair(client, server);
    sim.run_until(|_| got.borrow().len() == 3, Duration::from_secs(30))
        .unwrap();
    let got = got.borrow();
    assert_eq!(got[0].as_deref().unwrap(), b"re:0");
    assert!(
        matches!(got[1], Err(NetError::PoolTimedOut(_))),
        "{:?}",
        got[1]
    );
    // The timed-out connection was dropped (its late reply can never be taken for the next
    // request's): the next request gets its own reply.
    assert_eq!(got[2].as_deref().unwrap(), b"re:2");
}
