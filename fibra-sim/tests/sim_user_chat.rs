//! A newcomer's test of their own chat server under simulation, written from the guide
//! alone: two clients, latency, a partition, a crash and restart, drawn faults; and the
//! promise that a seed replays exactly (a full event log of what every tasklet saw and
//! when, timers, select, spawns, kills, the tasks plugin's ticker, channels, the clock).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use fibra_net::ops::Receive;
use fibra_net::NetExt;
use fibra_rt::Either;
use fibra_sim::{for_seeds, Latency, Sim};
use fibra_tasks::ops::Sleep;
use fibra_tasks::{TasksExt, Ticker};

type Log = Rc<RefCell<Vec<String>>>;

fn log(log: &Log, t0: Instant, who: &str, what: impl std::fmt::Display) {
    let t = fibra_rt::time::now().saturating_duration_since(t0);
    log.borrow_mut().push(format!("{:>12?} {who}: {what}", t));
}

/// The chat server: members in a BTreeMap; a broadcaster fed by a channel; a ticker that
/// announces the time; a janitor spawned and killed at each new member.
fn chat(h: &fibra_rt::Handle, lg: Log, t0: Instant) {
    let listener = h.listen("0.0.0.0:5000").expect("listen");
    let members: Rc<RefCell<BTreeMap<u64, fibra_net::Conn>>> = Rc::default();
    let (tx, rx) = fibra_tasks::channel::<String>();
    {
        let members = members.clone();
        h.spawn_detached(move |h| {
            while let Some(line) = rx.receive(h) {
                let list: Vec<_> = members.borrow().values().cloned().collect();
                for c in list {
                    let _ = h.send_line(&c, &line);
                }
            }
        })
        .expect("spawn");
    }
    {
        let (tx, lg) = (tx.clone(), lg.clone());
        h.spawn_detached(move |h| {
            let mut ticker = Ticker::new(Duration::from_millis(700)).unwrap();
            for n in 0.. {
                ticker.tick(h);
                log(&lg, t0, "server", format!("tick {n}"));
                if tx.send(h, format!("tick {n}")).is_err() {
                    break;
                }
            }
        })
        .expect("spawn");
    }
    let mut janitor: Option<fibra_rt::TaskletId> = None;
    let mut next = 0u64;
    while let Ok((conn, peer)) = h.accept(&listener) {
        next += 1;
        let id = next;
        log(&lg, t0, "server", format!("accept {id} from {peer}"));
        if let Some(j) = janitor.take() {
            log(&lg, t0, "server", format!("kill janitor: {}", h.kill(j)));
        }
        let lg2 = lg.clone();
        janitor = Some(
            h.spawn_detached(move |h| loop {
                h.sleep(Duration::from_millis(333));
                log(&lg2, t0, "janitor", "sweep");
            })
            .expect("spawn"),
        );
        members.borrow_mut().insert(id, conn.clone());
        let (members, tx, lg) = (members.clone(), tx.clone(), lg.clone());
        h.spawn_detached(move |h| {
            loop {
                match h.receive_line(&conn) {
                    Ok(line) => {
                        log(&lg, t0, "server", format!("{id} says {line}"));
                        let _ = tx.send(h, format!("{id}: {line}"));
                    }
                    Err(e) => {
                        log(&lg, t0, "server", format!("{id} gone: {e}"));
                        break;
                    }
                }
            }
            members.borrow_mut().remove(&id);
        })
        .expect("spawn");
    }
}

/// A client: says `lines` lines, one per 300 ms, reading what the room says between them
/// (a select of a receive and a sleep); reconnects when the connection fails.
fn client(h: &fibra_rt::Handle, name: &str, lg: Log, t0: Instant, said: Rc<Cell<u32>>, lines: u32) {
    'outer: while said.get() < lines {
        let conn = match h.connect("10.0.0.1:5000") {
            Ok(c) => c,
            Err(e) => {
                log(&lg, t0, name, format!("connect failed: {e}"));
                h.sleep(Duration::from_millis(500));
                continue;
            }
        };
        log(&lg, t0, name, "connected");
        while said.get() < lines {
            if let Err(e) = h.send_line(&conn, &format!("{name} line {}", said.get())) {
                log(&lg, t0, name, format!("send failed: {e}"));
                continue 'outer;
            }
            said.set(said.get() + 1);
            let until = fibra_rt::time::now() + Duration::from_millis(300);
            loop {
                match h.select(Receive::new(&conn), Sleep(until)) {
                    Either::First(Ok(bytes)) => {
                        log(
                            &lg,
                            t0,
                            name,
                            format!("heard {:?}", String::from_utf8_lossy(&bytes)),
                        );
                    }
                    Either::First(Err(e)) => {
                        log(&lg, t0, name, format!("receive failed: {e}"));
                        h.sleep(Duration::from_millis(200));
                        continue 'outer;
                    }
                    Either::Second(()) => break,
                }
            }
        }
    }
    log(&lg, t0, name, "done");
    said.set(u32::MAX);
}

/// One scenario: (event log, full trace entries, trace hash).
fn scenario(seed: u64) -> (Vec<String>, Vec<String>, u64) {
    let mut sim = Sim::new(seed);
    sim.keep_trace(usize::MAX);
    let t0 = fibra_rt::time::now();
    let mut faults = sim.random_faults();
    faults.give_up = Duration::from_secs(4);
    sim.set_faults(faults);
    let lg: Log = Rc::default();

    let server = sim.host("10.0.0.1");
    let (lg2, t) = (lg.clone(), t0);
    sim.on_boot(server, move |schedule| {
        let lg = lg2.clone();
        schedule
            .spawn_named("chat", move |h| chat(h, lg, t))
            .expect("spawn");
    });
    let a = sim.host("10.0.1.1");
    let b = sim.host("10.0.1.2");
    sim.set_latency(server, b, Latency::fixed(Duration::from_millis(50)));
    let done: Vec<Rc<Cell<u32>>> = vec![Rc::default(), Rc::default()];
    for (i, (host, name)) in [(a, "alice"), (b, "bob")].into_iter().enumerate() {
        let (lg, said) = (lg.clone(), done[i].clone());
        sim.spawn(host, name, move |h| client(h, name, lg, t0, said, 30));
    }
    sim.run_for(Duration::from_secs(2)).unwrap();
    sim.partition(a, server);
    sim.run_for(Duration::from_secs(3)).unwrap();
    sim.repair(a, server);
    sim.run_for(Duration::from_secs(1)).unwrap();
    sim.crash(server);
    sim.run_for(Duration::from_secs(2)).unwrap();
    sim.restart(server);
    let r = sim.run_until(
        |_| done.iter().all(|d| d.get() == u32::MAX),
        Duration::from_secs(300),
    );
    if let Err(e) = r {
        for e in sim
            .trace()
            .entries()
            .collect::<Vec<_>>()
            .iter()
            .rev()
            .take(30)
        {
            eprintln!("{e}");
        }
        panic!("seed {seed}: {e}");
    }
    let entries = sim.trace().entries().map(|e| e.to_string()).collect();
    let hash = sim.trace_hash();
    drop(sim);
    let out = lg.borrow().clone();
    (out, entries, hash)
}

#[test]
fn a_newcomers_chat_server_survives_partition_crash_and_restart() {
    for_seeds(10, |seed| {
        let (log, _, _) = scenario(seed);
        assert!(log.iter().any(|l| l.contains("alice: done")));
        assert!(log.iter().any(|l| l.contains("bob: done")));
    });
}

#[test]
fn every_seed_replays_byte_for_byte() {
    for_seeds(50, |seed| {
        let one = scenario(seed);
        let two = scenario(seed);
        assert_eq!(one.2, two.2, "seed {seed}: hashes differ");
        assert_eq!(one.1, two.1, "seed {seed}: traces differ");
        assert_eq!(one.0, two.0, "seed {seed}: event logs differ");
    });
}
