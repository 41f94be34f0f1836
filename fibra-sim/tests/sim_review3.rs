//! Hostile review of the last two commits' fibra-sim change (rev-last): persist probes only
//! toward a peer that cannot be reached.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use fibra_net::{ConnOptions, Framing, NetExt};
use fibra_sim::Sim;

/// A writer stuck on a shut window to a reader whose host is power-cycled (`Sim::restart`
/// of a host that is up: crash and restart at once). The reader's socket is gone; a real
/// kernel's persist probe gets a RST and the writer's flush fails. `probes()` now sends a
/// persist probe only where `unreachable` (the peer's host down or cut): the host is up
/// again at once, so no probe ever goes, the writer never learns, and the run goes Quiet
/// with the writer stuck on a connection that no longer exists.
#[test]
fn a_writer_stuck_on_a_reader_whose_host_restarted_learns_it_is_gone() {
    let mut sim = Sim::new(5);
    let server = sim.host("10.0.0.1");
    let client = sim.host("10.0.0.2");
    sim.spawn(server, "never reads", |h| {
        let listener = h.listen("0.0.0.0:7").unwrap();
        let (_conn, _) = h.accept(&listener).unwrap();
        h.park();
    });
    let out: Rc<RefCell<Vec<String>>> = Rc::default();
    let o = out.clone();
    sim.spawn(client, "writer", move |h| {
        let options = ConnOptions::new()
            .with_framing(Framing::Raw)
            .with_send_limit(8 << 20);
        let conn = h.connect_with("10.0.0.1:7", options).unwrap();
        h.send(&conn, &vec![7u8; 2 << 20]).unwrap();
        let r = h.flush(&conn);
        o.borrow_mut().push(format!("{r:?}"));
    });
    // The window shuts.
    let _ = sim.run_for(Duration::from_secs(5));
    assert!(
        out.borrow().is_empty(),
        "the writer should be stuck: {:?}",
        out.borrow()
    );
    sim.restart(server);
    let r = sim.run_until(|_| !out.borrow().is_empty(), Duration::from_secs(3600));
    assert!(
        r.is_ok() && out.borrow().first().is_some_and(|s| s.starts_with("Err")),
        "the writer never learned its reader's host restarted: {r:?}, {:?}, now {:?}",
        out.borrow(),
        sim.now()
    );
}
