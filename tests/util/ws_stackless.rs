//! A WebSocket server on its own thread whose `/ws` greets with `hello` and then serves
//! `WebSocket::serve_stackless` with [`Echo`] (tests/websocket_stackless*.rs).

use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fibra::http::{CloseCode, Limits, Message, Router, WebSocket, WsHandler};
use fibra::net::NetPlugin;
use fibra::rt::{Handle, Schedule};
use fibra::tasks::TasksExt;

use super::{Served, ServerThread};

/// The close codes `on_close` was told, in order.
pub(crate) type Ends = Arc<Mutex<Vec<u16>>>;

/// (tasklets serving a WebSocket or a request now, connections in an input watch)
pub(crate) type Stats = (usize, usize);

/// Echoes text; `slow` parks 150 ms first, `panic` panics, `quit` closes with 1000.
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
            "panic" => {
                // On the server's thread, on purpose.
                super::panics_expected();
                panic!("asked to")
            }
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
            .filter(|t| !super::is_idle_worker(t))
            .count();
        (busy, s.plugin::<NetPlugin>().unwrap().stats().watching)
    }
    fn stop(self, _: &mut Schedule) {}
}

/// The server, telling `ends` each close code; a close waits 500 ms for the peer's answer.
pub(crate) fn start(ends: Ends) -> ServerThread<Stats> {
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
