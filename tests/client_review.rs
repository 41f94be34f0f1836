//! Review of fibra-net's client helpers (`Pool`, `ReconnectingClient`) over real sockets.

mod util;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use fibra::net::{
    Backoff, ClientEvent, ClientState, ConnOptions, Factory, NetExt, Pool, Protocol,
    ReconnectingClient, Transport,
};
use fibra::rt::Handle;
use fibra::tasks::TasksExt;

/// fibra-redis's `Pool` stops when its last clone is dropped ("so that its keepers end");
/// fibra-net's does not: the keepers hold the pool's `Rc<Inner>`, so a pool dropped without
/// `stop` keeps its connections to the back end open and its keeper tasklets parked for
/// good, and `Schedule::run` never returns.
#[test]
fn a_pool_dropped_without_stop_ends_its_keepers_and_closes_its_connections() {
    let mut s = util::net_schedule();
    let listener = util::listen(&s);
    let addr = listener.local_addr();
    let back_end_saw_close = Rc::new(Cell::new(false));
    let saw = Rc::clone(&back_end_saw_close);
    s.spawn(move |h| {
        let server = h
            .spawn(move |h| {
                let (conn, _) = h.accept(&listener).unwrap();
                while let Ok(line) = h.receive_line(&conn) {
                    let _ = h.send_line(&conn, &line);
                }
                saw.set(true);
            })
            .unwrap();
        {
            let pool = Pool::new(addr, ConnOptions::new(), Backoff::new(), 1);
            pool.start(h).unwrap();
            assert_eq!(
                pool.request(h, b"hi", Duration::from_secs(5)).unwrap(),
                b"hi"
            );
            // The last clone goes here, without `stop`.
        }
        let _ = h.join(server);
    })
    .unwrap();
    let left = s.run_for(Duration::from_secs(3)).unwrap();
    let waiting: Vec<String> = s
        .tasklets()
        .map(|t| format!("`{}` {:?}", t.name, t.waiting_on))
        .collect();
    let stats = util::net_stats(&s);
    assert!(
        !left && back_end_saw_close.get(),
        "still running after the pool's last clone was dropped: {waiting:?}; {stats:?}"
    );
}

/// `Connect::bind` to a local address that cannot be taken failed with `NetError::Bind`,
/// whose message says "cannot listen on …": nothing was listening; a connect's source
/// address was refused. Now `NetError::BindSource`, which says so.
#[test]
fn a_connect_bound_to_a_taken_port_says_connect_not_listen() {
    let mut s = util::net_schedule();
    let listener = util::listen(&s);
    let addr = listener.local_addr();
    let message = Rc::new(RefCell::new(String::new()));
    let m = Rc::clone(&message);
    s.spawn(move |h| {
        // The listener's own address as the source: taken.
        let op = fibra::net::ops::Connect::new(addr, ConnOptions::new()).bind(addr);
        let e = h.yield_op(op).unwrap_err();
        *m.borrow_mut() = e.to_string();
        drop(listener);
    })
    .unwrap();
    util::run_all(&mut s, 10);
    let message = message.borrow();
    assert!(
        !message.contains("listen"),
        "a connect's bind failure reads as a listen failure: {message}"
    );
}

struct Nop;
impl Protocol for Nop {
    fn frame_received(&mut self, _h: &Handle, _t: &Transport, _frame: &[u8]) {}
}
struct Nops;
impl Factory for Nops {
    type Protocol = Nop;
    fn build_protocol(&mut self, _peer: SocketAddr) -> Option<Nop> {
        Some(Nop)
    }
}

/// `on_event`'s docs: "`f` may call this client's methods (`stop` included)". A client
/// stopped from its `ConnectFailed` event goes on to set its state to `Waiting` (and from
/// `Disconnected`, likewise): `state()` says `Waiting` for good after a stop.
#[test]
fn a_client_stopped_from_its_event_callback_says_stopped() {
    let mut s = util::net_schedule();
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let backoff = Backoff::new()
        .with_initial(Duration::from_millis(10))
        .with_max(Duration::from_millis(10));
    let client = ReconnectingClient::new(addr, ConnOptions::new(), backoff, Nops);
    let me = client.clone();
    client.on_event(move |event| {
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
}

/// A connect that times out said only "timed out": a pool's last failure (what
/// `PoolTimedOut` reports) could not be told from a reply's timeout, nor said where. Now it
/// names the address it was connecting to.
#[test]
fn a_pools_connect_timeout_names_the_address() {
    let mut s = util::net_schedule();
    // A listener that never accepts, with a backlog of 0, filled by std clients: further SYNs
    // are dropped and connects wait until their timeout.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        let f = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        f.set_nonblocking(true).unwrap();
        let _ = f.connect(&addr.into());
        fillers.push(f);
    }
    std::thread::sleep(Duration::from_millis(100));
    let options = ConnOptions::new().with_connect_timeout(Some(Duration::from_millis(200)));
    let pool = Pool::new(addr, options, Backoff::new(), 1);
    pool.start(&mut *s).unwrap();
    let p = pool.clone();
    util::run_until(&mut s, "a failed connect", move || p.last_error().is_some());
    let said = pool.last_error().unwrap();
    assert!(
        said.contains(&format!("connect to {addr} timed out")),
        "{said}"
    );
    pool.stop();
    drop((socket, fillers));
}
