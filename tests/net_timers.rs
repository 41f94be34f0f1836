//! The network plugin's timers go with their connections: 2,000 connections with a long
//! read timeout come and go, and the timers armed never outnumber the connections alive.

mod util;

use std::time::Duration;

use fibra::net::{ConnOptions, ListenOptions, NetExt};
use util::{listen_with, net_schedule, net_stats, run_all};

const CHURN: usize = 2000;
const HELD: usize = 10;

#[test]
fn timers_never_outnumber_live_connections_under_churn() {
    let mut s = net_schedule();
    let options = ListenOptions::new()
        .with_conn(ConnOptions::new().with_read_timeout(Some(Duration::from_secs(600))));
    let listener = listen_with(&s, options);
    let held = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let keep = std::rc::Rc::clone(&held);
    s.spawn(move |h| {
        for i in 0..CHURN + HELD {
            let client = h.connect(listener.local_addr()).unwrap();
            let (server, _) = h.accept(&listener).unwrap();
            if i < HELD {
                keep.borrow_mut().push((server, client));
                continue;
            }
            // The client leaves; the server sees it and lets go.
            h.close(&client).unwrap();
            drop(client);
            assert!(h.receive(&server).is_err(), "the client left");
            drop(server);
        }
    })
    .unwrap();
    run_all(&mut s, 60);
    // The closes of the last connections settle.
    for _ in 0..20 {
        s.tick_within(Duration::from_millis(5)).unwrap();
    }
    let stats = net_stats(&s);
    assert_eq!(stats.connections, 2 * HELD, "{stats:?}");
    assert!(
        stats.timers <= stats.connections,
        "{} timers armed for {} live connections after {CHURN} came and went",
        stats.timers,
        stats.connections
    );
    held.borrow_mut().clear();
    for _ in 0..20 {
        s.tick_within(Duration::from_millis(5)).unwrap();
    }
    let stats = net_stats(&s);
    assert_eq!((stats.connections, stats.timers), (0, 0), "{stats:?}");
}
