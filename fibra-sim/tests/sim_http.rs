//! fibra-http in simulation: its deadlines run on the simulated clock and its `Date` on
//! the simulated calendar, so a request is answered, and alike in every run of a seed.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use fibra::http::{Response, Router};
use fibra::net::NetExt;
use fibra::tasks::TasksExt;
use fibra_sim::Sim;

/// The response a client got to `GET /` sent after a pause, and the trace's hash.
fn get(seed: u64) -> (String, u64) {
    let mut sim = Sim::new(seed);
    let server = sim.host("10.0.0.1");
    let client = sim.host("10.0.0.2");
    sim.spawn(server, "http", |h| {
        let router = Rc::new(Router::new().get("/", |_h, _req| Response::text("hello")));
        let listener = h.listen("0.0.0.0:80").unwrap();
        let _ = fibra::http::serve(h, &listener, router);
    });
    let got = Rc::new(RefCell::new(None));
    let g = got.clone();
    sim.spawn(client, "client", move |h| {
        let conn = h.connect("10.0.0.1:80").unwrap();
        h.sleep(Duration::from_millis(300));
        h.send(
            &conn,
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        let mut text = String::new();
        while let Ok(bytes) = h.receive(&conn) {
            text.push_str(&String::from_utf8_lossy(&bytes));
        }
        *g.borrow_mut() = Some(text);
    });
    let done = got.clone();
    sim.run_until(move |_| done.borrow().is_some(), Duration::from_secs(60))
        .unwrap();
    let text = got.borrow_mut().take().unwrap();
    (text, sim.trace_hash())
}

#[test]
fn an_http_request_is_answered_alike_in_every_run_of_a_seed() {
    let (first, hash) = get(2);
    assert!(first.starts_with("HTTP/1.1 200"), "{first:?}");
    assert!(
        first.contains("date: Tue, 01 Jan 2030 00:00:00 GMT")
            || first.contains("Date: Tue, 01 Jan 2030 00:00:00 GMT"),
        "{first:?}"
    );
    std::thread::sleep(Duration::from_millis(1100)); // a new second of the wall clock
    assert_eq!(get(2), (first, hash));
}
