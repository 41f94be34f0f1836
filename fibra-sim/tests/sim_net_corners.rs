//! Corners of fibra-net's table on the simulated network: a connect into a partition, a close
//! to a reader that never reads, loss watchers when resets race closes.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use fibra_net::{ConnOptions, NetExt};
use fibra_sim::{Faults, Sim};
use fibra_tasks::TasksExt;

type Log = Rc<RefCell<Vec<String>>>;

#[test]
fn a_connect_into_a_partition_times_out_on_its_own_deadline() {
    let mut sim = Sim::new(21);
    let server = sim.host("10.0.0.1");
    let client = sim.host("10.0.0.2");
    sim.spawn(server, "server", |h| {
        let l = h.listen("0.0.0.0:7").unwrap();
        while let Ok((_c, _)) = h.accept(&l) {}
    });
    sim.partition(client, server);
    let out: Log = Rc::default();
    let o = out.clone();
    sim.spawn(client, "client", move |h| {
        let options = ConnOptions::new().with_connect_timeout(Some(Duration::from_secs(1)));
        let r = h.connect_with("10.0.0.1:7", options);
        o.borrow_mut().push(format!("{:?}", r.err()));
    });
    sim.run_until(|_| !out.borrow().is_empty(), Duration::from_secs(60))
        .unwrap();
    assert!(
        sim.now() >= Duration::from_secs(1) && sim.now() < Duration::from_millis(1100),
        "{:?}",
        sim.now()
    );
    assert!(out.borrow()[0].contains("TimedOut"), "{:?}", out.borrow());
}

#[test]
fn a_close_to_a_reader_that_never_reads_ends_within_the_close_timeout() {
    let mut sim = Sim::new(22);
    let mut faults = Faults::none();
    faults.send_buffer = 1024;
    sim.set_faults(faults);
    let server = sim.host("10.0.0.1");
    let client = sim.host("10.0.0.2");
    let out: Log = Rc::default();
    let o = out.clone();
    sim.spawn(server, "server", move |h| {
        let l = h.listen("0.0.0.0:7").unwrap();
        let (c, _) = h.accept(&l).unwrap();
        c.set_close_timeout(Duration::from_secs(2));
        for i in 0..1000 {
            let _ = h.send_line(
                &c,
                &format!("line {i} ........................................"),
            );
        }
        let r = h.close(&c);
        o.borrow_mut().push(format!("close {r:?}"));
    });
    let o2 = out.clone();
    sim.spawn(client, "client", move |h| {
        let c = h.connect("10.0.0.1:7").unwrap();
        h.sleep(Duration::from_secs(10));
        let mut n = 0;
        let end = loop {
            match h.receive(&c) {
                Ok(_) => n += 1,
                Err(e) => break e,
            }
        };
        o2.borrow_mut()
            .push(format!("client read {n} then {end:?}"));
    });
    sim.run_until(|_| out.borrow().len() == 2, Duration::from_secs(60))
        .unwrap();
    // The close gave up after its timeout and reset the connection: the reader, back after
    // 10 s, hears the reset.
    let out = out.borrow();
    assert_eq!(out[0], "close Err(TimedOut)", "{out:?}");
    assert!(out[1].ends_with("Lost(Reset)"), "{out:?}");
}

#[test]
fn loss_watchers_fire_once_when_a_reset_races_a_close() {
    fibra_sim::for_seeds(200, |seed| {
        let mut sim = Sim::new(seed);
        let mut faults = Faults::none();
        faults.reset = 0.05;
        faults.short_write = 0.3;
        sim.set_faults(faults);
        let server = sim.host("10.0.0.1");
        let client = sim.host("10.0.0.2");
        let fired: Rc<RefCell<Vec<String>>> = Rc::default();
        let f = fired.clone();
        sim.spawn(server, "server", move |h| {
            let l = h.listen("0.0.0.0:7").unwrap();
            for _ in 0..5 {
                let Ok((c, _)) = h.accept(&l) else { return };
                let f = f.clone();
                let w = c.clone();
                h.spawn_detached(move |h| {
                    let why = h.on_lost_connection(&w);
                    f.borrow_mut().push(format!("{why:?}"));
                })
                .unwrap();
                h.spawn_detached(move |h| {
                    while let Ok(line) = h.receive(&c) {
                        if h.send_frame(&c, &line).is_err() {
                            break;
                        }
                    }
                    let _ = h.close(&c);
                })
                .unwrap();
            }
        });
        let done = Rc::new(std::cell::Cell::new(0));
        let d = done.clone();
        sim.spawn(client, "client", move |h| {
            for _ in 0..5 {
                if let Ok(c) = h.connect("10.0.0.1:7") {
                    for i in 0..5 {
                        if h.send_line(&c, &format!("{i}")).is_err() || h.receive(&c).is_err() {
                            break;
                        }
                    }
                    let _ = h.close(&c);
                }
                d.set(d.get() + 1);
            }
        });
        sim.run_until(
            |_| done.get() == 5 && fired.borrow().len() == 5,
            Duration::from_secs(120),
        )
        .unwrap_or_else(|e| panic!("{e}: {} fired {:?}", done.get(), fired.borrow()));
        sim.run_for(Duration::from_secs(30)).unwrap();
        assert_eq!(fired.borrow().len(), 5, "{:?}", fired.borrow());
    });
}

#[test]
fn bulk_sends_and_send_and_close_deliver_every_byte_before_the_fin() {
    fibra_sim::for_seeds(100, |seed| {
        let mut sim = Sim::new(seed);
        let mut faults = Faults::none();
        faults.short_write = 0.5;
        faults.split = 0.5;
        faults.send_buffer = 16 + sim.random(2000) as usize;
        sim.set_faults(faults);
        let server = sim.host("10.0.0.1");
        let client = sim.host("10.0.0.2");
        let lines = 200 + sim.random(300) as usize;
        sim.spawn(server, "sender", move |h| {
            let l = h.listen("0.0.0.0:7").unwrap();
            let (c, _) = h.accept(&l).unwrap();
            for i in 0..lines - 1 {
                h.send_line(&c, &format!("line {i} {}", "x".repeat(i % 97)))
                    .unwrap();
            }
            let last = format!("line {} {}\n", lines - 1, "x".repeat((lines - 1) % 97));
            h.send_and_close(&c, last.as_bytes()).unwrap();
        });
        let got: Log = Rc::default();
        let g = got.clone();
        let slow = sim.random(2) == 0;
        sim.spawn(client, "reader", move |h| {
            let c = h.connect("10.0.0.1:7").unwrap();
            loop {
                match h.receive_line(&c) {
                    Ok(line) => g.borrow_mut().push(line),
                    Err(e) => {
                        g.borrow_mut().push(format!("end {e:?}"));
                        break;
                    }
                }
                if slow {
                    h.sleep(Duration::from_millis(1));
                }
            }
        });
        sim.run_until(
            |_| got.borrow().last().is_some_and(|l| l.starts_with("end")),
            Duration::from_secs(600),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let got = got.borrow();
        assert_eq!(got.len(), lines + 1, "every line, then the end");
        for (i, line) in got[..lines].iter().enumerate() {
            assert_eq!(*line, format!("line {i} {}", "x".repeat(i % 97)));
        }
        assert!(
            got[lines].contains("Eof") || got[lines].contains("Closed"),
            "{:?}",
            got[lines]
        );
    });
}

#[test]
fn bytes_that_arrive_while_the_reader_is_busy_keep_the_read_timeout_away() {
    fibra_sim::for_seeds(50, |seed| {
        let mut sim = Sim::new(seed);
        let mut faults = Faults::none();
        faults.split = 0.5;
        faults.send_buffer = 64 + sim.random(64) as usize;
        sim.set_faults(faults);
        let server = sim.host("10.0.0.1");
        let client = sim.host("10.0.0.2");
        let got: Log = Rc::default();
        let g = got.clone();
        sim.spawn(server, "busy reader", move |h| {
            let l = h.listen("0.0.0.0:7").unwrap();
            let (c, _) = h.accept(&l).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(1)));
            for round in 0..3 {
                // Busy elsewhere for longer than the timeout, while the peer talks.
                h.sleep(Duration::from_millis(2500));
                let until = fibra_rt::time::now() + Duration::from_millis(400);
                loop {
                    match h.receive_until(&c, until) {
                        Ok(line) => g.borrow_mut().push(String::from_utf8_lossy(&line).into()),
                        Err(fibra_net::NetError::TimedOut) => break,
                        Err(e) => {
                            g.borrow_mut().push(format!("round {round}: {e:?}"));
                            return;
                        }
                    }
                }
            }
            g.borrow_mut().push("done".into());
        });
        sim.spawn(client, "talker", |h| {
            let c = h.connect("10.0.0.1:7").unwrap();
            for i in 0.. {
                if h.send_line(&c, &format!("beat {i} {}", "y".repeat(i % 40)))
                    .is_err()
                {
                    break;
                }
                h.sleep(Duration::from_millis(300));
            }
        });
        sim.run_until(
            |_| got.borrow().last().is_some_and(|l| !l.starts_with("beat")),
            Duration::from_secs(60),
        )
        .unwrap();
        let got = got.borrow();
        assert_eq!(
            got.last().unwrap(),
            "done",
            "{:?}",
            &got[got.len().saturating_sub(3)..]
        );
    });
}
