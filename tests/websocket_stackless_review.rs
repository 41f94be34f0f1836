//! A hostile review of `WebSocket::serve_stackless`: a message fragmented across
//! activations with a ping between its fragments, then a close frame followed by data.

mod util;

use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fibra::http::{CloseCode, Limits, Message, Router, WebSocket, WsHandler};
use fibra::net::NetPlugin;
use fibra::rt::{Handle, Schedule};
use fibra::tasks::TasksExt;
use util::ws::Client;
use util::{Served, ServerThread};

/// The close codes `on_close` was told, in order.
type Ends = Arc<Mutex<Vec<u16>>>;

/// (tasklets serving a WebSocket or a request now, connections in an input watch)
type Stats = (usize, usize);

struct Echo(Ends);

impl WsHandler for Echo {
    fn on_message(&mut self, h: &Handle, ws: &mut WebSocket, message: Message) {
        let Message::Text(text) = message else {
            return;
        };
        match text.as_str() {
            "slow" => {
                h.sleep(Duration::from_millis(150));
                ws.send_text("slow done").unwrap();
            }
            "panic" => panic!("asked to"),
            "quit" => {
                let _ = ws.close(h, CloseCode::NORMAL, "bye");
            }
            _ => ws.send_text(&text).unwrap(),
        }
    }

    fn on_close(&mut self, code: CloseCode) {
        self.0.lock().unwrap().push(code.0);
    }
}

struct Ws;
impl Served for Ws {
    type Stats = Stats;
    fn stats(&self, s: &Schedule) -> Stats {
        let busy = s
            .tasklets()
            .filter(|t| t.name == "websocket" || t.name == "http")
            .count();
        (busy, s.plugin::<NetPlugin>().unwrap().stats().watching)
    }
    fn stop(self, _: &mut Schedule) {}
}

fn start(ends: Ends) -> ServerThread<Stats> {
    ServerThread::start(move |s| {
        let limits = Limits {
            close_timeout: Duration::from_millis(500),
            ..Limits::default()
        };
        let router = Rc::new(
            Router::new()
                .websocket("/ws", move |h, _req, ws| {
                    ws.send_text("hello").unwrap();
                    ws.serve_stackless(h, Echo(ends.clone())).unwrap();
                })
                .with_limits(limits),
        );
        let listener = s
            .plugin::<NetPlugin>()
            .unwrap()
            .listen("127.0.0.1:0")
            .unwrap();
        let addr = listener.local_addr();
        s.spawn(move |h| {
            let _ = fibra::http::serve(h, &listener, router);
        })
        .unwrap();
        (addr, Ws)
    })
}

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
