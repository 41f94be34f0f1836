//! Review of fibra-redis's `Pool` and `Client` from the user's side (real sockets).

mod util;

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::rc::Rc;
use std::time::{Duration, Instant};

use fibra::net::Backoff;
use fibra::redis::{Client, Cmd, Commands, Config, Pool, RedisError, Value};
use fibra::rt::Handle;
use fibra::tasks::TasksExt;
use util::redis::RedisServer;

fn within<T: Send + 'static>(secs: u64, scenario: impl FnOnce(&Handle) -> T + Send + 'static) -> T {
    util::on_thread_within("the redis scenario", secs, move || {
        let mut s = util::net_schedule();
        s.block_on(scenario).expect("the scenario's tasklet")
    })
}

fn fast() -> Backoff {
    Backoff::new()
        .with_initial(Duration::from_millis(50))
        .with_max(Duration::from_millis(300))
}

/// Pool of one. A holds the connection (BLPOP, 300 ms); B and C wait in line, B first.
/// When A's call ends, its lease wakes B; A kills B before B ran. C is now first in line,
/// the connection is idle: C must get it. It does not: nobody wakes C, which sleeps until
/// its call timeout and fails with `Unavailable` while the connection sat idle.
#[test]
fn a_waiter_killed_after_its_wakeup_passes_the_connection_to_the_next() {
    let server = RedisServer::start();
    let config = Config::parse(&server.url())
        .unwrap()
        .with_call_timeout(Duration::from_secs(3))
        .with_connect_timeout(Duration::from_secs(3));
    let outcome = within(60, move |h| {
        let pool = Pool::with_backoff(config, 1, fast());
        pool.start(h).unwrap();
        let mut p = pool.clone();
        let deadline = Instant::now() + Duration::from_secs(10);
        while p.ping(h).is_err() {
            assert!(Instant::now() < deadline);
            h.sleep(Duration::from_millis(20));
        }
        let b_id = Rc::new(Cell::new(None));
        let c_result: Rc<RefCell<Option<Result<Value, String>>>> = Rc::new(RefCell::new(None));
        let holder = {
            let (mut p, b_id) = (pool.clone(), Rc::clone(&b_id));
            h.spawn(move |h| {
                let blpop = Cmd::new("BLPOP").arg("nothing").arg("0.3");
                let _ = p.call_blocking(h, &blpop, Duration::from_secs(1));
                // Our lease was dropped: it woke B. B has not run yet.
                assert!(h.kill(b_id.get().unwrap()), "B still alive");
            })
            .unwrap()
        };
        h.sleep(Duration::from_millis(50));
        let b = {
            let p = pool.clone();
            h.spawn(move |h| {
                let _ = p.call(h, &Cmd::new("PING"));
                unreachable!("killed");
            })
            .unwrap()
        };
        b_id.set(Some(b.id()));
        h.yield_now();
        let c = {
            let (p, r) = (pool.clone(), Rc::clone(&c_result));
            h.spawn(move |h| {
                let started = Instant::now();
                let got = p.call(h, &Cmd::new("PING")).map_err(|e| e.to_string());
                *r.borrow_mut() = Some(got);
                started.elapsed()
            })
            .unwrap()
        };
        h.yield_now();
        assert_eq!(pool.stats().waiting, 2, "{:?}", pool.stats());
        h.join(holder).unwrap();
        let took = h.join(c).unwrap();
        let got = c_result.borrow_mut().take().unwrap();
        pool.stop();
        (got, took)
    });
    let (got, took) = outcome;
    assert!(
        got.is_ok(),
        "C should have been handed the idle connection; it failed after {took:?}: {got:?}"
    );
}

/// A fake RESP2 server: connection 1 answers one PING, then (idle) sends `-ERR bye` and
/// closes; connection 2 answers every command with `+PONG`. Returns the listener's address
/// and how many connections it took.
fn say_bye_then_close(
    bye: &'static [u8],
    close: bool,
) -> (std::net::SocketAddr, std::thread::JoinHandle<u32>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let thread = std::thread::spawn(move || {
        let mut n = 0;
        listener.set_nonblocking(true).unwrap();
        let give_up = Instant::now() + Duration::from_secs(5);
        while n < 2 {
            let mut s = match listener.accept() {
                Ok((s, _)) => s,
                Err(_) if Instant::now() < give_up => {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
                Err(_) => break,
            };
            s.set_nonblocking(false).unwrap();
            n += 1;
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut buf = [0u8; 512];
            if n == 1 {
                if s.read(&mut buf).unwrap_or(0) == 0 {
                    break;
                }
                s.write_all(b"+PONG\r\n").unwrap();
                std::thread::sleep(Duration::from_millis(100));
                s.write_all(bye).unwrap();
                if !close {
                    // Hold it open until the client lets go.
                    let _ = s.read(&mut buf);
                    continue;
                }
                drop(s);
            } else {
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            if s.write_all(b"+PONG\r\n").is_err() {
                                break;
                            }
                        }
                    }
                }
                break;
            }
        }
        n
    });
    (addr, thread)
}

fn fake_config(addr: std::net::SocketAddr) -> Config {
    Config::new("127.0.0.1", addr.port())
        .with_call_timeout(Duration::from_secs(2))
        .with_connect_timeout(Duration::from_secs(2))
}

/// `Client`'s docs: "A connection the server closed while it was idle (a restart) is noticed
/// before the next call is sent, so that call goes through on a new connection." A server
/// that says something before closing (an idle-timeout proxy's `-ERR idle`, Redis's
/// `-ERR max number of clients reached`) makes the next call fail with `Broken` ("the server
/// sent N bytes nobody asked for") although nothing was sent: `ensure` reads the bytes in
/// `probe_idle`, finds `is_usable()` true (the loss is not yet seen: the bytes came first),
/// and `call_until`'s `check_usable` then breaks the connection and fails the call. The
/// server's own message is lost from the error.
#[test]
fn a_client_whose_idle_server_says_goodbye_and_closes_sends_the_next_call_on_a_new_connection() {
    let (addr, server) = say_bye_then_close(b"-ERR idle client timeout\r\n", true);
    let got = within(30, move |h| {
        let mut client = Client::with_backoff(fake_config(addr), fast());
        assert_eq!(
            client.call(h, &Cmd::new("PING")).unwrap(),
            Value::Simple("PONG".into())
        );
        h.sleep(Duration::from_millis(400));
        client.call(h, &Cmd::new("PING")).map_err(|e| e.to_string())
    });
    let n = server.join().unwrap();
    assert_eq!(got, Ok(Value::Simple("PONG".into())), "connections: {n}");
}

/// The same through a `Pool`: `lend` probes the idle connection, then lends it: the call
/// fails with `Broken` instead of going through on a repaired connection.
#[test]
fn a_pool_whose_idle_server_says_goodbye_and_closes_sends_the_next_call_on_a_new_connection() {
    let (addr, server) = say_bye_then_close(b"-ERR idle client timeout\r\n", true);
    let got = within(30, move |h| {
        let pool = Pool::with_backoff(fake_config(addr), 1, fast());
        pool.start(h).unwrap();
        assert_eq!(
            pool.call(h, &Cmd::new("PING")).unwrap(),
            Value::Simple("PONG".into())
        );
        h.sleep(Duration::from_millis(400));
        let got = pool.call(h, &Cmd::new("PING")).map_err(|e| e.to_string());
        pool.stop();
        got
    });
    let _ = server.join();
    assert_eq!(got, Ok(Value::Simple("PONG".into())));
}

#[allow(dead_code)]
fn _unused(_: RedisError) {}

/// RESP2 connections drop a connection holding bytes nobody asked for (`check_usable`);
/// RESP3 ones skip the check (pushes may come), and then take a stray *non-push* reply as
/// the next call's answer. A server (or proxy) that answers one GET twice: the second GET
/// returns the first GET's duplicate.
#[test]
fn resp3_a_reply_nobody_asked_for_is_never_the_next_calls_answer() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 512];
        // HELLO 3
        let _ = s.read(&mut buf);
        s.write_all(b"%1\r\n+server\r\n+redis\r\n").unwrap();
        // GET a: answered twice.
        let _ = s.read(&mut buf);
        s.write_all(b"$3\r\nold\r\n$3\r\nold\r\n").unwrap();
        // GET b
        let _ = s.read(&mut buf);
        let _ = s.write_all(b"$3\r\nnew\r\n");
        let _ = s.read(&mut buf);
    });
    let got = within(30, move |h| {
        let config = fake_config(addr).with_protocol(fibra::redis::Protocol::Resp3);
        let mut conn = fibra::redis::Connection::connect(h, &config).unwrap();
        let first = conn.call(h, &Cmd::new("GET").arg("a")).unwrap();
        assert_eq!(first, Value::Bulk(b"old".to_vec()));
        h.sleep(Duration::from_millis(100));
        conn.call(h, &Cmd::new("GET").arg("b"))
            .map_err(|e| e.to_string())
    });
    let _ = server.join();
    assert_ne!(
        got,
        Ok(Value::Bulk(b"old".to_vec())),
        "the duplicate of GET a's reply was taken as GET b's"
    );
}
