//! `WebSocket::serve_stackless` over real sockets: messages in order, no tasklet while idle
//! (the schedule's count), a handler that parks keeps its tasklet while later messages wait,
//! a panic closed with 1011 on its own connection only, and `on_close` exactly once, with
//! the close's code (1006 for an abrupt end).

mod util;

use util::ws::Client;
use util::ws_stackless::{start, Ends};

#[test]
fn a_stackless_websocket_echoes_in_order_and_holds_no_tasklet_while_idle() {
    let ends = Ends::default();
    let server = start(ends.clone());
    let mut c = Client::open(server.addr, "/ws");
    assert_eq!(c.text(), "hello");
    for i in 0..50 {
        c.say(&format!("m{i}"));
    }
    for i in 0..50 {
        assert_eq!(c.text(), format!("m{i}"));
    }
    server.wait_for("an idle WebSocket", |&(busy, watching)| {
        busy == 0 && watching == 1
    });
    c.send(8, &1000u16.to_be_bytes());
    c.expect_close(1000);
    server.wait_for("its end", |&(_, watching)| watching == 0);
    assert_eq!(*ends.lock().unwrap(), [1000]);
}

#[test]
fn a_stackless_handler_that_parks_keeps_its_tasklet_and_later_messages_wait() {
    let ends = Ends::default();
    let server = start(ends.clone());
    let mut c = Client::open(server.addr, "/ws");
    assert_eq!(c.text(), "hello");
    c.say("slow");
    c.say("after");
    server.wait_for("the parked handler", |&(busy, _)| busy == 1);
    assert_eq!(c.text(), "slow done");
    assert_eq!(c.text(), "after");
    server.wait_for("idle again", |&(busy, watching)| busy == 0 && watching == 1);
    c.say("quit");
    c.expect_close(1000);
    server.wait_for("its end", |&(busy, watching)| busy == 0 && watching == 0);
    assert_eq!(*ends.lock().unwrap(), [1000]);
}

#[test]
fn a_panic_in_a_stackless_handler_closes_only_its_websocket_and_an_abrupt_end_is_1006() {
    let ends = Ends::default();
    let server = start(ends.clone());
    let mut calm = Client::open(server.addr, "/ws");
    let mut wild = Client::open(server.addr, "/ws");
    assert_eq!(calm.text(), "hello");
    assert_eq!(wild.text(), "hello");
    wild.say("panic");
    // The server closes with 1011 and waits for the answer.
    let (opcode, payload) = wild.next();
    assert_eq!((opcode, &payload[..2]), (8, &1011u16.to_be_bytes()[..]));
    wild.send(8, &1011u16.to_be_bytes());
    server.wait_for("the panic's end", |_| ends.lock().unwrap().len() == 1);
    calm.say("still here");
    assert_eq!(calm.text(), "still here");
    drop(calm);
    server.wait_for("both ends", |&(_, watching)| watching == 0);
    server.wait_for("on_close", |_| ends.lock().unwrap().len() == 2);
    assert_eq!(*ends.lock().unwrap(), [1011, 1006]);
}
