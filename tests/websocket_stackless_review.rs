//! A hostile review of `WebSocket::serve_stackless`: a message fragmented across
//! activations with a ping between its fragments, then a close frame followed by data.

mod util;

use util::ws::Client;
use util::ws_stackless::{start, Ends};

/// Fragments that come apart, idle between them (no tasklet), a ping among them: the pong
/// first, then the whole message; a close followed by a text frame is closed once, 1000.
#[test]
fn a_fragmented_message_with_a_ping_between_is_whole_and_a_close_is_told_once() {
    let ends = Ends::default();
    let server = start(ends.clone());
    let mut c = Client::open(server.addr, "/ws");
    assert_eq!(c.text(), "hello");
    c.raw(0x01, b"hel", true); // text, not final
    server.wait_for("idle mid-message", |&(busy, watching)| {
        busy == 0 && watching == 1
    });
    c.send(9, b"p");
    let (opcode, payload) = c.next();
    assert_eq!((opcode, payload.as_slice()), (10, &b"p"[..]), "the pong");
    c.raw(0x00, b"lo ", true); // continuation, not final
    server.wait_for("idle again", |&(busy, watching)| busy == 0 && watching == 1);
    c.raw(0x80, b"world", true); // continuation, final
    assert_eq!(c.text(), "hello world");
    c.send(8, &1000u16.to_be_bytes());
    c.say("after the close");
    c.expect_close(1000);
    server.wait_for("its end", |&(_, watching)| watching == 0);
    assert_eq!(*ends.lock().unwrap(), [1000]);
}
