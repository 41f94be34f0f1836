//! Hostile review of the day's fibra-sim changes, part 2 (rev-lib2).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use fibra_net::{ConnOptions, Framing, NetExt};
use fibra_sim::{Sim, SimError};

/// The guide: "A run that can never progress stops with `SimError::Quiet` instead of
/// hanging". A writer that filled the window of a peer that is up, reachable and never
/// reads (a deadlock of the application: both wait without a deadline) can never progress;
/// the persist probes (every 60 s at most, each answered) keep `next_due` set for good, so
/// the run is never quiet: it goes on to its limit (`TimedOut`), and a generous limit costs
/// a round per probe (a year: half a million rounds).
#[test]
fn a_writer_stuck_on_a_live_peer_that_never_reads_is_still_quiet() {
    let mut sim = Sim::new(5);
    let server = sim.host("10.0.0.1");
    let client = sim.host("10.0.0.2");
    sim.spawn(server, "never reads", |h| {
        let listener = h.listen("0.0.0.0:7").unwrap();
        let (_conn, _) = h.accept(&listener).unwrap();
        h.park(); // for good, no deadline
    });
    let out: Rc<RefCell<Vec<String>>> = Rc::default();
    let o = out.clone();
    sim.spawn(client, "writer", move |h| {
        let options = ConnOptions::new()
            .with_framing(Framing::Raw)
            .with_send_limit(8 << 20);
        let conn = h.connect_with("10.0.0.1:7", options).unwrap();
        h.send(&conn, &vec![7u8; 2 << 20]).unwrap();
        let r = h.flush(&conn); // no deadline: waits for good
        o.borrow_mut().push(format!("{r:?}"));
    });
    let started = Instant::now();
    let r = sim.run_until(|_| !out.borrow().is_empty(), Duration::from_secs(24 * 3600));
    assert!(
        matches!(r, Err(SimError::Quiet { .. })),
        "expected Quiet (nothing can happen: the peer is up and never reads), got {r:?} \
         after {:?} of real time; now {:?}",
        started.elapsed(),
        sim.now()
    );
}
