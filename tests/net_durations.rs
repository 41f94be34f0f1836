//! Every `Duration` a user gives the network layer at its largest, `Duration::MAX`, means
//! "never" and panics nowhere: a connection's read, close and connect timeouts and its
//! flush delay, set in its options and changed on the live connection.

mod util;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use fibra::net::{ConnOptions, ListenOptions, NetExt};
use fibra::tasks::TasksExt;

fn forever() -> ConnOptions {
    ConnOptions::new()
        .with_read_timeout(Some(Duration::MAX))
        .with_close_timeout(Duration::MAX)
        .with_flush_delay(Duration::MAX)
        .with_connect_timeout(Some(Duration::MAX))
}

#[test]
fn connection_durations_of_duration_max_mean_never() {
    let mut s = util::net_schedule();
    let listener = util::listen_with(&s, ListenOptions::new().with_conn(forever()));
    let addr = listener.local_addr();
    let said: Rc<RefCell<Vec<String>>> = Rc::default();
    let server_said = Rc::clone(&said);
    s.spawn(move |h| {
        let (conn, _) = h.accept(&listener).unwrap();
        conn.set_read_timeout(Some(Duration::MAX));
        conn.set_close_timeout(Duration::MAX);
        conn.set_flush_delay(Duration::MAX);
        let line = h.receive_line(&conn).unwrap();
        server_said.borrow_mut().push(format!("server got {line}"));
        // The first answer goes at once (nothing was written before)...
        h.send_line(&conn, "pong").unwrap();
        // ...the second waits out a delay that never ends: a flush sends it.
        h.send_line(&conn, "held").unwrap();
        h.flush(&conn).unwrap();
        h.close(&conn).unwrap();
    })
    .unwrap();
    let client_said = Rc::clone(&said);
    s.spawn(move |h| {
        // The connect timeout of Duration::MAX is no timeout.
        let conn = h.connect_with(addr, forever()).unwrap();
        // Idle a while: a read timeout of Duration::MAX never fires.
        h.sleep(Duration::from_millis(50));
        assert!(conn.lost().is_none());
        h.send_line(&conn, "ping").unwrap();
        h.flush(&conn).unwrap();
        for _ in 0..2 {
            let line = h.receive_line(&conn).unwrap();
            client_said.borrow_mut().push(format!("client got {line}"));
        }
        h.close(&conn).unwrap();
    })
    .unwrap();
    util::run_all(&mut s, 10);
    assert_eq!(
        *said.borrow(),
        ["server got ping", "client got pong", "client got held"]
    );
}
