//! Faults on demand and from the seed: partitions (both ways, one way) and repair, resets,
//! a host's crash and restart, a full accept queue, `EMFILE`.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use fibra_net::{NetExt, NetPlugin};
use fibra_rt::Handle;
use fibra_sim::{Faults, HostId, Sim};
use fibra_tasks::TasksExt;

type Log = Rc<RefCell<Vec<String>>>;

fn log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

fn push(log: &Log, line: impl Into<String>) {
    log.borrow_mut().push(line.into());
}

/// A server on 10.0.0.1:7 that answers each line with "echo: <line>" and logs what it got.
fn echo_server(sim: &mut Sim, got: &Log) -> HostId {
    let server = sim.host("10.0.0.1");
    let got = got.clone();
    sim.on_boot(server, move |schedule| {
        let got = got.clone();
        schedule
            .spawn_named("echo", move |h| {
                let listener = h.listen("0.0.0.0:7").unwrap();
                while let Ok((conn, _)) = h.accept(&listener) {
                    let got = got.clone();
                    h.spawn_detached(move |h| {
                        while let Ok(line) = h.receive_line(&conn) {
                            push(&got, line.clone());
                            if h.send_line(&conn, &format!("echo: {line}")).is_err() {
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

/// A simulation of `seed` with the [`echo_server`] on 10.0.0.1 and a client host 10.0.0.2:
/// (the simulation, the server, the client, the lines the server got).
fn echo_and_client(seed: u64) -> (Sim, HostId, HostId, Log) {
    let mut sim = Sim::new(seed);
    let got = log();
    let server = echo_server(&mut sim, &got);
    let client = sim.host("10.0.0.2");
    (sim, server, client, got)
}

/// A simulation of `seed` with no faults but those `set` turns on.
fn sim_with_faults(seed: u64, set: impl FnOnce(&mut Faults)) -> Sim {
    let mut sim = Sim::new(seed);
    let mut faults = Faults::none();
    set(&mut faults);
    sim.set_faults(faults);
    sim
}

/// `n` client hosts, 10.0.1.0 on, each running a tasklet "client" that is `client(h, c,
/// log)`, `c` its number.
fn clients<F>(sim: &mut Sim, n: u64, log: &Log, client: F)
where
    F: FnOnce(&Handle, u64, Log) + Clone + 'static,
{
    for c in 0..n {
        let host = sim.host(&format!("10.0.1.{c}"));
        let (client, log) = (client.clone(), log.clone());
        sim.spawn(host, "client", move |h| client(h, c, log));
    }
}

#[test]
fn a_partition_holds_segments_until_it_is_repaired() {
    let (mut sim, server, client, got) = echo_and_client(11);
    let heard = log();
    let h2 = heard.clone();
    sim.spawn(client, "client", move |h| {
        let conn = h.connect("10.0.0.1:7").unwrap();
        for i in 0..3 {
            h.send_line(&conn, &format!("line {i}")).unwrap();
            let answer = h.receive_line(&conn).unwrap();
            push(&h2, answer);
            h.sleep(Duration::from_secs(1));
        }
    });
    sim.run_until(|_| heard.borrow().len() == 1, Duration::from_secs(10))
        .unwrap();
    sim.partition(client, server);
    let cut_at = sim.now();
    sim.run_for(Duration::from_secs(5)).unwrap();
    assert_eq!(got.borrow().len(), 1, "nothing crosses the partition");
    sim.repair(client, server);
    sim.run_until(|_| heard.borrow().len() == 3, Duration::from_secs(60))
        .unwrap();
    assert!(sim.now() >= cut_at + Duration::from_secs(5));
    assert_eq!(*got.borrow(), ["line 0", "line 1", "line 2"]);
}

#[test]
fn a_one_way_partition_stops_one_direction_only() {
    let mut sim = Sim::new(12);
    let server = sim.host("10.0.0.1");
    let client = sim.host("10.0.0.2");
    let heard = log();
    let got = log();
    let (h2, g2) = (heard.clone(), got.clone());
    sim.spawn(server, "talker", move |h| {
        let listener = h.listen("0.0.0.0:7").unwrap();
        let (conn, _) = h.accept(&listener).unwrap();
        let reader = conn.clone();
        h.spawn_detached(move |h| {
            while let Ok(line) = h.receive_line(&reader) {
                push(&g2, line);
            }
        })
        .unwrap();
        for i in 0..5 {
            h.send_line(&conn, &format!("tick {i}")).unwrap();
            h.sleep(Duration::from_secs(1));
        }
        h.sleep(Duration::from_secs(3600));
    });
    sim.spawn(client, "listener", move |h| {
        let conn = h.connect("10.0.0.1:7").unwrap();
        h.send_line(&conn, "hello").unwrap();
        while let Ok(line) = h.receive_line(&conn) {
            push(&h2, line);
            h.send_line(&conn, "ack").unwrap();
        }
    });
    sim.run_until(
        |_| !heard.borrow().is_empty() && !got.borrow().is_empty(),
        Duration::from_secs(10),
    )
    .unwrap();
    sim.partition_one_way(client, server);
    let before = got.borrow().len();
    sim.run_until(|_| heard.borrow().len() == 5, Duration::from_secs(20))
        .unwrap();
    assert_eq!(
        got.borrow().len(),
        before,
        "no ack crosses: {:?}",
        got.borrow()
    );
    sim.repair(client, server);
    sim.run_until(|_| got.borrow().len() == 6, Duration::from_secs(30))
        .unwrap();
}

#[test]
fn a_partition_longer_than_tcp_gives_up_fails_the_sender() {
    let (mut sim, server, client, _got) = echo_and_client(13);
    let outcome = log();
    let o = outcome.clone();
    sim.spawn(client, "client", move |h| {
        let conn = h.connect("10.0.0.1:7").unwrap();
        h.send_line(&conn, "first").unwrap();
        let echo = h.receive_line(&conn).unwrap();
        push(&o, echo);
        h.sleep(Duration::from_secs(1));
        h.send_line(&conn, "second").unwrap();
        let r = h.receive_line(&conn);
        push(&o, format!("{r:?}"));
    });
    sim.run_until(|_| outcome.borrow().len() == 1, Duration::from_secs(10))
        .unwrap();
    sim.partition(client, server);
    sim.run_until(|_| outcome.borrow().len() == 2, Duration::from_secs(120))
        .unwrap();
    assert!(sim.now() >= Duration::from_secs(30), "{:?}", sim.now());
    let outcome = outcome.borrow();
    assert!(outcome[1].starts_with("Err("), "{outcome:?}");
}

#[test]
fn a_reset_reaches_both_ends_and_their_loss_watchers() {
    let mut sim = Sim::new(14);
    let a = sim.host("10.0.0.1");
    let b = sim.host("10.0.0.2");
    let lost = log();
    let l1 = lost.clone();
    sim.spawn(a, "server", move |h| {
        let listener = h.listen("0.0.0.0:7").unwrap();
        let (conn, _) = h.accept(&listener).unwrap();
        let why = h.on_lost_connection(&conn);
        push(&l1, format!("server: {why:?}"));
    });
    let l2 = lost.clone();
    sim.spawn(b, "client", move |h| {
        let conn = h.connect("10.0.0.1:7").unwrap();
        let r = h.receive(&conn);
        push(&l2, format!("client: {r:?}"));
    });
    sim.run_for(Duration::from_secs(1)).unwrap();
    assert!(sim.reset_one(), "a connection to reset");
    sim.run_until(|_| lost.borrow().len() == 2, Duration::from_secs(10))
        .unwrap();
    let lost = lost.borrow();
    assert!(lost.iter().all(|l| l.contains("Reset")), "{lost:?}");
}

#[test]
fn a_crashed_server_restarts_and_old_connections_are_reset() {
    let (mut sim, server, client, got) = echo_and_client(15);
    let heard = log();
    let h2 = heard.clone();
    sim.spawn(client, "client", move |h| {
        let conn = h.connect("10.0.0.1:7").unwrap();
        h.send_line(&conn, "before").unwrap();
        push(&h2, h.receive_line(&conn).unwrap());
        h.sleep(Duration::from_secs(2));
        // The server crashed meanwhile and came back: this line reaches a host that no
        // longer knows the connection, which answers with a RST.
        let _ = h.send_line(&conn, "during");
        push(&h2, format!("{:?}", h.receive_line(&conn).err()));
        let conn = h.connect("10.0.0.1:7").unwrap();
        h.send_line(&conn, "after").unwrap();
        push(&h2, h.receive_line(&conn).unwrap());
    });
    sim.run_until(|_| heard.borrow().len() == 1, Duration::from_secs(10))
        .unwrap();
    sim.crash(server);
    assert!(!sim.is_up(server));
    sim.run_for(Duration::from_millis(500)).unwrap();
    sim.restart(server);
    sim.run_until(|_| heard.borrow().len() == 3, Duration::from_secs(30))
        .unwrap();
    let heard = heard.borrow();
    assert_eq!(heard[0], "echo: before");
    assert!(heard[1].contains("Reset"), "{heard:?}");
    assert_eq!(heard[2], "echo: after");
    assert_eq!(*got.borrow(), ["before", "after"]);
}

#[test]
fn a_full_accept_queue_drops_syns_and_clients_get_in_on_a_retry() {
    let mut sim = sim_with_faults(16, |f| f.backlog = 1);
    let server = sim.host("10.0.0.1");
    sim.spawn(server, "slow acceptor", |h| {
        let listener = h.listen("0.0.0.0:7").unwrap();
        while let Ok((conn, _)) = h.accept(&listener) {
            h.send_line(&conn, "welcome").unwrap();
            h.sleep(Duration::from_millis(300));
        }
    });
    let welcomed = log();
    clients(&mut sim, 4, &welcomed, |h, _, w| {
        let conn = h.connect("10.0.0.1:7").unwrap();
        let line = h.receive_line(&conn).unwrap();
        push(&w, line);
        h.sleep(Duration::from_secs(3600));
    });
    sim.run_until(|_| welcomed.borrow().len() == 4, Duration::from_secs(60))
        .unwrap();
    assert!(
        sim.now() >= Duration::from_secs(1),
        "a SYN was retried: {:?}",
        sim.now()
    );
}

#[test]
fn emfile_pauses_accepting_until_a_descriptor_frees_up() {
    let mut sim = sim_with_faults(17, |f| f.fd_limit = 3); // the listener and two connections
    let server = sim.host("10.0.0.1");
    sim.spawn(server, "server", |h| {
        let listener = h.listen("0.0.0.0:7").unwrap();
        while let Ok((conn, _)) = h.accept(&listener) {
            h.spawn_detached(move |h| {
                h.send_line(&conn, "welcome").unwrap();
                // Serves one line, then closes.
                let _ = h.receive_line(&conn);
                let _ = h.close(&conn);
            })
            .unwrap();
        }
    });
    let welcomed = log();
    clients(&mut sim, 3, &welcomed, |h, c, w| {
        h.sleep(Duration::from_millis(10 * c));
        let conn = h.connect("10.0.0.1:7").unwrap();
        let line = h.receive_line(&conn).unwrap();
        push(&w, format!("{c} {line}"));
        h.sleep(Duration::from_secs(2));
        h.send_line(&conn, "bye").unwrap();
        h.sleep(Duration::from_secs(3600));
    });
    sim.run_until(|_| welcomed.borrow().len() == 2, Duration::from_secs(10))
        .unwrap();
    sim.run_for(Duration::from_secs(1)).unwrap();
    assert_eq!(welcomed.borrow().len(), 2, "the third waits: no descriptor");
    let pauses = sim
        .schedule(server)
        .and_then(|s| s.plugin::<NetPlugin>())
        .map(|n| n.stats().accept_pauses)
        .unwrap();
    assert!(pauses > 0, "accepting paused on EMFILE");
    sim.run_until(|_| welcomed.borrow().len() == 3, Duration::from_secs(30))
        .unwrap();
}

#[test]
fn random_faults_from_the_seed_lose_no_echo() {
    fibra_sim::for_seeds(30, |seed| {
        let mut sim = Sim::new(seed);
        let mut faults = sim.random_faults();
        faults.reset = 0.0; // a reset loses lines by design; counted elsewhere
        sim.set_faults(faults);
        let got = log();
        let _server = echo_server(&mut sim, &got);
        let heard = log();
        clients(&mut sim, 3, &heard, |h, c, heard| {
            let conn = h.connect("10.0.0.1:7").unwrap();
            for i in 0..10 {
                h.send_line(&conn, &format!("{c}.{i}")).unwrap();
                let answer = h.receive_line(&conn).unwrap();
                assert_eq!(answer, format!("echo: {c}.{i}"));
                push(&heard, answer);
            }
        });
        sim.run_until(|_| heard.borrow().len() == 30, Duration::from_secs(300))
            .unwrap_or_else(|e| panic!("{e}"));
    });
}

#[test]
fn keepalive_finds_out_an_idle_peer_whose_host_crashed() {
    for keepalive in [None, Some(Duration::from_secs(20))] {
        let mut sim = Sim::new(18);
        let server = sim.host("10.0.0.1");
        let client = sim.host("10.0.0.2");
        let lost = log();
        let l = lost.clone();
        sim.spawn(server, "server", move |h| {
            let options = fibra_net::ConnOptions::new().with_keepalive(keepalive);
            let listener = h
                .listen_with(
                    "0.0.0.0:7",
                    fibra_net::ListenOptions::new().with_conn(options),
                )
                .unwrap();
            let (conn, _) = h.accept(&listener).unwrap();
            let why = h.on_lost_connection(&conn);
            push(&l, format!("{why:?}"));
        });
        sim.spawn(client, "client", |h| {
            let _conn = h.connect("10.0.0.1:7").unwrap();
            h.sleep(Duration::from_secs(3600));
        });
        sim.run_for(Duration::from_secs(1)).unwrap();
        sim.crash(client);
        let found = sim.run_until(|_| !lost.borrow().is_empty(), Duration::from_secs(600));
        match keepalive {
            // Nothing is sent, nothing comes: the server never knows.
            None => assert!(found.is_err(), "{:?}", lost.borrow()),
            // Probes after 20 s of quiet, unanswered, give up.
            Some(_) => {
                found.unwrap();
                assert!(sim.now() < Duration::from_secs(60), "{:?}", sim.now());
            }
        }
    }
}

#[test]
fn a_handshake_that_finds_the_accept_queue_full_waits_outside_it_and_may_be_forgotten() {
    // (the server takes connections again after `pause`, the client's keepalive)
    for (pause, keepalive, expect) in [
        (Duration::from_secs(5), None, "welcome"),
        (Duration::from_secs(3600), None, "nothing"),
        (
            Duration::from_secs(3600),
            Some(Duration::from_secs(60)),
            "Reset",
        ),
    ] {
        let mut sim = sim_with_faults(19, |f| {
            f.backlog = 1;
            f.overflow_established = true;
        });
        let server = sim.host("10.0.0.1");
        sim.spawn(server, "server speaks first", move |h| {
            let listener = h.listen("0.0.0.0:7").unwrap();
            let mut kept = Vec::new();
            loop {
                let Ok((conn, _)) = h.accept(&listener) else {
                    return;
                };
                h.send_line(&conn, "welcome").unwrap();
                kept.push(conn);
                if kept.len() == 2 {
                    // Busy: takes no connection for a while.
                    h.sleep(pause);
                }
            }
        });
        let heard = log();
        // Two served, the third waits in the queue (of 1), the fourth finds it full.
        clients(&mut sim, 4, &heard, move |h, c, heard| {
            h.sleep(Duration::from_millis(100 * c));
            let options = fibra_net::ConnOptions::new().with_keepalive(keepalive);
            let conn = h.connect_with("10.0.0.1:7", options).unwrap();
            let got = h.receive_line(&conn);
            push(&heard, format!("{c}: {got:?}"));
        });
        let _ = sim.run_until(|_| heard.borrow().len() == 4, Duration::from_secs(300));
        let heard = heard.borrow();
        let fourth = heard.iter().find(|l| l.starts_with("3:"));
        match expect {
            "nothing" => assert!(fourth.is_none(), "{heard:?}"),
            word => assert!(fourth.is_some_and(|l| l.contains(word)), "{heard:?}"),
        }
    }
}
