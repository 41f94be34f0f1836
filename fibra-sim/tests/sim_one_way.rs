//! A one-way partition as TCP lives it: the side whose segments still arrive gets no ACK
//! back, retransmits, and gives up with `ETIMEDOUT` after [`Faults::give_up`]; a repair in
//! time acknowledges everything and the connection goes on.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use fibra_net::NetExt;
use fibra_sim::{Faults, HostId, Sim};
use fibra_tasks::TasksExt as _;

/// A server that says a line every second to its one client, until a send fails (its
/// error is kept); the client reads and never writes. Returns the sim, both hosts, what
/// the client heard and the server's failure.
#[allow(clippy::type_complexity)]
fn talker(
    seed: u64,
) -> (
    Sim,
    HostId,
    HostId,
    Rc<RefCell<usize>>,
    Rc<RefCell<Option<String>>>,
) {
    let mut sim = Sim::new(seed);
    let server = sim.host("10.0.0.1");
    let client = sim.host("10.0.0.2");
    let failed = Rc::new(RefCell::new(None));
    let heard = Rc::new(RefCell::new(0));
    let f = failed.clone();
    sim.spawn(server, "talker", move |h| {
        let listener = h.listen("0.0.0.0:7").unwrap();
        let (conn, _) = h.accept(&listener).unwrap();
        for i in 0.. {
            if let Err(e) = h.send_line(&conn, &format!("tick {i}")) {
                *f.borrow_mut() = Some(e.to_string());
                return;
            }
            h.sleep(Duration::from_secs(1));
        }
    });
    let n = heard.clone();
    sim.spawn(client, "reader", move |h| {
        let conn = h.connect("10.0.0.1:7").unwrap();
        while h.receive_line(&conn).is_ok() {
            *n.borrow_mut() += 1;
        }
    });
    sim.run_until(|_| *heard.borrow() >= 2, Duration::from_secs(10))
        .unwrap();
    (sim, server, client, heard, failed)
}

#[test]
fn the_sender_whose_acks_are_cut_off_gives_up_after_the_give_up() {
    let (mut sim, server, client, heard, failed) = talker(3);
    let give_up = Faults::none().give_up;
    // The client's way to the server dies: the server's lines still arrive, no ACK returns.
    sim.partition_one_way(client, server);
    let cut_at = sim.now();
    let before = *heard.borrow();
    sim.run_until(|_| failed.borrow().is_some(), cut_at + give_up * 3)
        .unwrap_or_else(|e| panic!("the server never learnt its lines go unanswered: {e}"));
    let after = sim.now() - cut_at;
    assert!(
        after >= give_up,
        "gave up after {after:?}, before {give_up:?}"
    );
    assert!(
        after <= give_up + Duration::from_secs(5),
        "gave up after {after:?}"
    );
    assert!(
        *heard.borrow() > before,
        "the lines still arrived meanwhile"
    );
}

#[test]
fn a_one_way_partition_repaired_in_time_loses_nothing() {
    let (mut sim, server, client, heard, failed) = talker(4);
    let give_up = Faults::none().give_up;
    sim.partition_one_way(client, server);
    sim.run_for(give_up / 2).unwrap();
    sim.repair(client, server);
    let at = sim.now();
    sim.run_for(give_up * 2).unwrap();
    assert_eq!(*failed.borrow(), None);
    assert!(*heard.borrow() as u64 >= (at + give_up * 2).as_secs() - 2);
}

/// A host that crashes takes its kernel's retransmission queue with it: what it sent into
/// a partition never arrives after the repair, from a life that is over.
#[test]
fn a_crashed_hosts_held_segments_die_with_it() {
    let mut sim = Sim::new(5);
    let server = sim.host("10.0.0.1");
    let client = sim.host("10.0.0.2");
    let got: Rc<RefCell<Vec<String>>> = Rc::default();
    let g = got.clone();
    sim.spawn(server, "reader", move |h| {
        let listener = h.listen("0.0.0.0:7").unwrap();
        let (conn, _) = h.accept(&listener).unwrap();
        while let Ok(line) = h.receive_line(&conn) {
            g.borrow_mut().push(line);
        }
    });
    let sent = Rc::new(RefCell::new(0));
    let s = sent.clone();
    sim.spawn(client, "writer", move |h| {
        let conn = h.connect("10.0.0.1:7").unwrap();
        h.send_line(&conn, "before").unwrap();
        h.sleep(Duration::from_secs(1));
        h.send_line(&conn, "zombie").unwrap();
        *s.borrow_mut() += 1;
        h.sleep(Duration::from_secs(3600));
    });
    sim.run_until(|_| !got.borrow().is_empty(), Duration::from_secs(10))
        .unwrap();
    sim.partition_one_way(client, server);
    sim.run_until(|_| *sent.borrow() == 1, Duration::from_secs(10))
        .unwrap();
    // Long enough for the line to reach the cut and be held (retransmitted) there.
    sim.run_for(Duration::from_secs(1)).unwrap();
    sim.crash(client);
    sim.repair(client, server);
    sim.restart(client);
    sim.run_for(Duration::from_secs(10)).unwrap();
    assert_eq!(*got.borrow(), ["before"], "a dead kernel retransmitted");
}
