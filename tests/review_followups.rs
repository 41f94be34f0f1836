//! Hostile review of the day's library changes, part 2 (rev-lib2).

mod util;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use fibra::redis::{Cmd, Config, Value};
use fibra::rt::Handle;
use fibra::tasks::TasksExt;

fn within<T: Send + 'static>(secs: u64, scenario: impl FnOnce(&Handle) -> T + Send + 'static) -> T {
    util::on_thread_within("the scenario", secs, move || {
        let mut s = util::net_schedule();
        s.block_on(scenario).expect("the scenario's tasklet")
    })
}

fn fake_config(addr: std::net::SocketAddr) -> Config {
    Config::new("127.0.0.1", addr.port())
        .with_call_timeout(Duration::from_secs(2))
        .with_connect_timeout(Duration::from_secs(2))
}

/// A fake RESP3 server: HELLO, then GET a answered with `first`, then (after 50 ms, in a
/// write of its own) `late`, then every later command answered `$3 new`.
fn resp3_server(
    first: &'static [u8],
    late: &'static [u8],
) -> (std::net::SocketAddr, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 512];
        let _ = s.read(&mut buf); // HELLO 3
        s.write_all(b"%1\r\n+server\r\n+redis\r\n").unwrap();
        let _ = s.read(&mut buf); // GET a
        s.write_all(first).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        s.write_all(late).unwrap();
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if s.write_all(b"$3\r\nnew\r\n").is_err() {
                        break;
                    }
                }
            }
        }
    });
    (addr, server)
}

fn second_get(first: &'static [u8], late: &'static [u8]) -> Result<Value, String> {
    let (addr, server) = resp3_server(first, late);
    let got = within(30, move |h| {
        let config = fake_config(addr).with_protocol(fibra::redis::Protocol::Resp3);
        let mut conn = fibra::redis::Connection::connect(h, &config).unwrap();
        let first = conn.call(h, &Cmd::new("GET").arg("a")).unwrap();
        assert_eq!(first, Value::Bulk(b"old".to_vec()));
        h.sleep(Duration::from_millis(300));
        conn.call(h, &Cmd::new("GET").arg("b"))
            .map_err(|e| e.to_string())
    });
    let _ = server.join();
    got
}

/// (8) `judge_unasked` only looks at bytes already read into the connection's input; a
/// stray RESP3 reply that came in a later segment (still in the socket's buffer, not read)
/// is not judged by `check_usable` (its RESP2-only `conn.received()` test): a `Connection`
/// used directly (no `probe_idle`: only Client and Pool probe) takes it as the next call's
/// answer.
#[test]
fn resp3_connection_a_stray_reply_in_a_later_segment_is_not_the_next_calls_answer() {
    let got = second_get(b"$3\r\nold\r\n", b"$3\r\nold\r\n");
    assert_ne!(
        got,
        Ok(Value::Bulk(b"old".to_vec())),
        "a late duplicate of GET a's reply was GET b's answer"
    );
}

/// (8) A stray RESP3 reply whose first bytes came with the asked-for reply and the rest
/// later: `judge_unasked` keeps any RESP3 frame not yet whole ("a push, maybe"), though its
/// first byte (`$`) says it is no push; the next call takes it as its answer.
#[test]
fn resp3_connection_a_stray_reply_split_across_reads_is_not_the_next_calls_answer() {
    let got = second_get(b"$3\r\nold\r\n$3\r\nol", b"d\r\n");
    assert_ne!(
        got,
        Ok(Value::Bulk(b"old".to_vec())),
        "a split duplicate of GET a's reply was GET b's answer"
    );
}

// ----- (7) fibra-http's default WebSocket origin check ---------------------------------

struct Ws;
impl util::Served for Ws {
    type Stats = ();
    fn stats(&self, _: &fibra::rt::Schedule) {}
    fn stop(self, _: &mut fibra::rt::Schedule) {}
}

/// The handshake's head, with `headers` (each `Name: value\r\n`) after a `Host` of `host`.
fn handshake_from(addr: std::net::SocketAddr, host: &str, headers: &str) -> String {
    util::ws::handshake_head(addr, host.as_bytes(), headers.as_bytes())
}

/// `Router::check_origin`'s docs: the default (`same_origin`) keeps "any web page open in a
/// user's browser" from opening a WebSocket to "a chat on localhost". `same_origin` compares
/// `Origin` with `Host`, both of which a DNS-rebinding page chooses: the page at
/// `http://attacker.example:PORT`, its name rebound to 127.0.0.1, opens
/// `ws://attacker.example:PORT/ws`; the browser sends `Host: attacker.example:PORT` and
/// `Origin: http://attacker.example:PORT`, which match, and the local chat takes it. Nothing
/// ties `Host` to a name of the server's (`localhost`, its address).
#[test]
fn a_dns_rebinding_page_is_not_taken_as_the_local_servers_own_origin() {
    let server = util::ServerThread::start(|s| {
        let router =
            std::rc::Rc::new(fibra::http::Router::new().websocket("/ws", |_h, _req, _ws| {}));
        let listener = util::listen(s);
        let addr = listener.local_addr();
        s.spawn(move |h| {
            let _ = fibra::http::serve(h, &listener, router);
        })
        .unwrap();
        (addr, Ws)
    });
    let port = server.addr.port();
    // Control: the server's own page is taken.
    let own = handshake_from(
        server.addr,
        &server.addr.to_string(),
        &format!("Origin: http://{}\r\n", server.addr),
    );
    assert!(own.starts_with("HTTP/1.1 101"), "{own}");
    let host = format!("attacker.example:{port}");
    let rebound = handshake_from(server.addr, &host, &format!("Origin: http://{host}\r\n"));
    assert!(
        rebound.starts_with("HTTP/1.1 403"),
        "a page of attacker.example (rebound to 127.0.0.1) got its WebSocket to the local server: {rebound}"
    );
}

// ----- (5) ReconnectingClient stopped from its callback on the last attempt ------------

struct Nop;
impl fibra::net::Protocol for Nop {
    fn frame_received(&mut self, _h: &Handle, _t: &fibra::net::Transport, _frame: &[u8]) {}
}
struct Nops;
impl fibra::net::Factory for Nops {
    type Protocol = Nop;
    fn build_protocol(&mut self, _peer: std::net::SocketAddr) -> Option<Nop> {
        Some(Nop)
    }
}

/// A client stopped from its `ConnectFailed` event on its last allowed attempt: the loop
/// runs on to the give-up (no yield between), `set_state(GaveUp)` is skipped (stopped), but
/// `tell(GaveUp)` is not: the callback hears `GaveUp` from a client it stopped, and
/// `state()` (Stopped) and the events disagree.
#[test]
fn a_client_stopped_on_its_last_attempt_does_not_report_giving_up() {
    use fibra::net::{Backoff, ClientEvent, ClientState, ConnOptions, ReconnectingClient};
    let mut s = util::net_schedule();
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let backoff = Backoff::new()
        .with_initial(Duration::from_millis(10))
        .with_max(Duration::from_millis(10))
        .with_max_attempts(Some(1));
    let client = ReconnectingClient::new(addr, ConnOptions::new(), backoff, Nops);
    let me = client.clone();
    let events: std::rc::Rc<std::cell::RefCell<Vec<String>>> = Default::default();
    let ev = events.clone();
    client.on_event(move |event| {
        ev.borrow_mut().push(format!("{event:?}"));
        if let ClientEvent::ConnectFailed { .. } = event {
            me.stop();
        }
    });
    client.start(&mut *s).unwrap();
    util::run_until(&mut s, "the stop", || !client.is_running());
    for _ in 0..20 {
        s.tick_within(Duration::from_millis(2)).unwrap();
    }
    assert_eq!(client.state(), ClientState::Stopped);
    let events = events.borrow();
    assert!(
        !events.iter().any(|e| e.starts_with("GaveUp")),
        "stopped, then told GaveUp: {events:?}"
    );
}
