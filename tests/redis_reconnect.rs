//! The Redis client through a real `redis-server` killed and started again on the same port:
//! a `Subscriber` notices, reconnects, subscribes again, says so, and gets later messages; a
//! `Pool` fails calls within their timeout while the server is down, with a clear error, and
//! works again after the restart; a `Client` reconnects on its next call.

mod util;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fibra::net::Backoff;
use fibra::redis::{Client, Cmd, Commands, Config, Message, Pool, RedisError, Subscriber, Value};
use fibra::rt::Handle;
use fibra::tasks::TasksExt;
use util::redis::RedisServer;

fn within<T: Send + 'static>(secs: u64, scenario: impl FnOnce(&Handle) -> T + Send + 'static) -> T {
    util::on_thread_within("the redis scenario", secs, move || {
        let mut s = util::net_schedule();
        s.block_on(scenario).expect("the scenario's tasklet")
    })
}

/// Short waits, so that the tests reconnect quickly.
fn fast() -> Backoff {
    Backoff::new()
        .with_initial(Duration::from_millis(50))
        .with_max(Duration::from_millis(300))
}

fn config(server: &RedisServer) -> Config {
    Config::parse(&server.url())
        .unwrap()
        .with_call_timeout(Duration::from_millis(800))
        .with_connect_timeout(Duration::from_millis(800))
}

/// Calls `f` until it succeeds, for up to 10 s.
fn eventually<T>(what: &str, mut f: impl FnMut() -> Result<T, RedisError>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
            }
            Err(e) => panic!("{what}: still failing after 10 s: {e}"),
        }
    }
}

#[test]
fn a_subscriber_comes_back_after_a_server_restart_and_says_so() {
    let server = Arc::new(Mutex::new(RedisServer::start()));
    let config = config(&server.lock().unwrap());
    let s = Arc::clone(&server);
    within(60, move |h| {
        let mut sub = Subscriber::with_backoff(config.clone(), fast());
        sub.subscribe(h, &["room"]).unwrap();
        sub.psubscribe(h, &["news:*"]).unwrap();
        let mut publisher = Client::with_backoff(config, fast());
        assert_eq!(publisher.publish(h, "room", "one").unwrap(), 1);
        assert_eq!(publisher.publish(h, "news:today", "n1").unwrap(), 1);
        let got = sub.next_message(h, Duration::from_secs(5)).unwrap();
        assert_eq!(
            got,
            Some(Message::Message {
                channel: b"room".to_vec(),
                payload: b"one".to_vec()
            })
        );
        let got = sub.next_message(h, Duration::from_secs(5)).unwrap();
        assert_eq!(
            got,
            Some(Message::PMessage {
                pattern: b"news:*".to_vec(),
                channel: b"news:today".to_vec(),
                payload: b"n1".to_vec()
            })
        );

        s.lock().unwrap().kill();
        match sub.next_message(h, Duration::from_secs(5)).unwrap() {
            Some(Message::Disconnected { error }) => assert!(!error.is_empty()),
            other => panic!("expected Disconnected, got {other:?}"),
        }
        // Down: nothing comes, each wait within its timeout, no error.
        let started = Instant::now();
        assert_eq!(
            sub.next_message(h, Duration::from_millis(300)).unwrap(),
            None
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(!sub.is_connected());

        s.lock().unwrap().restart();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            assert!(Instant::now() < deadline, "no Reconnected within 10 s");
            match sub.next_message(h, Duration::from_millis(500)).unwrap() {
                Some(Message::Reconnected { down_for }) => {
                    assert!(down_for >= Duration::from_millis(300), "{down_for:?}");
                    break;
                }
                None => {}
                other => panic!("expected Reconnected, got {other:?}"),
            }
        }
        assert!(sub.is_connected());
        // Subscribed again to both: later messages arrive.
        let n = eventually("publish after the restart", || {
            publisher.publish(h, "room", "two")
        });
        assert_eq!(n, 1);
        assert_eq!(publisher.publish(h, "news:later", "n2").unwrap(), 1);
        let got = sub.next_message(h, Duration::from_secs(5)).unwrap();
        assert_eq!(
            got,
            Some(Message::Message {
                channel: b"room".to_vec(),
                payload: b"two".to_vec()
            })
        );
        let got = sub.next_message(h, Duration::from_secs(5)).unwrap();
        assert!(
            matches!(&got, Some(Message::PMessage { payload, .. }) if payload == b"n2"),
            "{got:?}"
        );
        // Unsubscribing works, and is remembered.
        sub.unsubscribe(h, &["room"]).unwrap();
        assert_eq!(publisher.publish(h, "room", "three").unwrap(), 0);
        assert_eq!(sub.channels().count(), 0);
    });
    drop(server);
}

#[test]
fn a_pool_fails_fast_while_the_server_is_down_and_heals_after() {
    let server = Arc::new(Mutex::new(RedisServer::start()));
    let config = config(&server.lock().unwrap());
    let call_timeout = config.call_timeout();
    let s = Arc::clone(&server);
    within(60, move |h| {
        let pool = Pool::with_backoff(config, 3, fast());
        pool.start(h).unwrap();
        // The first call waits (within its timeout) for a keeper to connect.
        let mut p = pool.clone();
        eventually("the first call", || p.set(h, "k", "v"));
        // Many tasklets share it.
        let workers: Vec<_> = (0..10)
            .map(|_| {
                let mut p = pool.clone();
                h.spawn(move |h| {
                    for _ in 0..50 {
                        p.incr(h, "n").unwrap();
                    }
                })
                .unwrap()
            })
            .collect();
        for w in workers {
            h.join(w).unwrap();
        }
        assert_eq!(p.get(h, "n").unwrap(), Some(b"500".to_vec()));

        s.lock().unwrap().kill();
        for _ in 0..5 {
            let started = Instant::now();
            let e = p.get(h, "k").unwrap_err();
            let took = started.elapsed();
            assert!(
                took <= call_timeout + Duration::from_millis(500),
                "a call took {took:?} with the server down"
            );
            assert!(e.is_connection_error(), "{e:?}");
            let text = e.to_string();
            assert!(text.contains("GET"), "the error names the command: {text}");
            assert!(text.contains("Redis"), "{text}");
        }
        // The pool says what is wrong.
        let last = pool.last_error().expect("a last error");
        assert!(!last.is_empty());

        s.lock().unwrap().restart();
        // A restarted Redis is empty.
        let got = eventually("a call after the restart", || p.get(h, "k"));
        assert_eq!(got, None);
        let stats = pool.stats();
        assert!(stats.broken >= 1, "{stats:?}");
        assert!(stats.repaired >= 1, "{stats:?}");
        // A pipeline through the pool.
        let cmds: Vec<Cmd> = (0..100).map(|_| Cmd::new("INCR").arg("m")).collect();
        let replies = pool.pipeline(h, &cmds).unwrap();
        assert_eq!(replies[99].as_ref().unwrap(), &Value::Int(100));
        pool.stop();
        let e = pool.call(h, &Cmd::new("PING")).unwrap_err();
        assert!(matches!(e, RedisError::Usage { .. }), "{e:?}");
    });
    drop(server);
}

#[test]
fn a_client_reconnects_on_its_next_call() {
    let server = Arc::new(Mutex::new(RedisServer::start()));
    let config = config(&server.lock().unwrap());
    let s = Arc::clone(&server);
    within(60, move |h| {
        let mut client = Client::with_backoff(config, fast());
        client.set(h, "a", "1").unwrap();
        s.lock().unwrap().kill();
        let started = Instant::now();
        let e = client.get(h, "a").unwrap_err();
        assert!(e.is_connection_error(), "{e:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
        // Down: each call fails within its timeout, saying the last failure.
        let e = client.get(h, "a").unwrap_err();
        assert!(
            matches!(
                &e,
                RedisError::Unavailable {
                    last_error: Some(_),
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(client.last_error().is_some());
        s.lock().unwrap().restart();
        let got = eventually("a call after the restart", || client.get(h, "a"));
        assert_eq!(got, None);
        assert!(client.is_connected());
    });
    drop(server);
}

#[test]
fn a_call_killed_mid_reply_never_lends_its_connection_again() {
    let server = RedisServer::start();
    let config = config(&server);
    within(60, move |h| {
        let pool = Pool::with_backoff(config, 1, fast());
        pool.start(h).unwrap();
        let mut p = pool.clone();
        eventually("the first call", || p.ping(h));
        let mut victim_pool = pool.clone();
        let victim = h
            .spawn(move |h| {
                let blpop = Cmd::new("BLPOP").arg("jobs").arg(5);
                let _ = victim_pool.call_blocking(h, &blpop, Duration::from_secs(5));
                unreachable!("killed while waiting for its reply");
            })
            .unwrap();
        h.sleep(Duration::from_millis(200));
        assert!(h.kill(victim.id()));
        // Had the connection been lent again, BLPOP's late reply would be read as RPUSH's,
        // and BLPOP would have taken the job.
        // The first call after the kill works, on a new connection (the old one, blocked in
        // BLPOP, would hold RPUSH until BLPOP's end and time out).
        let pushed = p.call(h, &Cmd::new("RPUSH").arg("jobs").arg("j1")).unwrap();
        assert_eq!(pushed, Value::Int(1));
        h.sleep(Duration::from_millis(100));
        let len = p.call(h, &Cmd::new("LLEN").arg("jobs")).unwrap();
        assert_eq!(len, Value::Int(1), "the killed BLPOP took nothing");
        assert_eq!(pool.stats().broken, 1, "{:?}", pool.stats());
    });
}

#[test]
fn a_quiet_subscriber_stays_up_through_its_keepalive_pings() {
    let server = RedisServer::start();
    let config = config(&server);
    within(60, move |h| {
        let mut sub = Subscriber::with_backoff(config.clone(), fast())
            .with_keepalive(Some(Duration::from_millis(100)));
        sub.subscribe(h, &["quiet"]).unwrap();
        // Ten keepalive rounds, each answered.
        let started = Instant::now();
        assert_eq!(
            sub.next_message(h, Duration::from_millis(1000)).unwrap(),
            None
        );
        assert!(started.elapsed() >= Duration::from_millis(950));
        assert!(sub.is_connected());
        let mut publisher = Client::new(config);
        assert_eq!(publisher.publish(h, "quiet", "now").unwrap(), 1);
        let got = sub.next_message(h, Duration::from_secs(5)).unwrap();
        assert!(
            matches!(&got, Some(Message::Message { payload, .. }) if payload == b"now"),
            "{got:?}"
        );
    });
}

#[test]
fn dropping_the_last_pool_clone_ends_its_keepers() {
    let server = RedisServer::start();
    let config = config(&server);
    util::on_thread_within("the pool's schedule", 30, move || {
        let mut s = util::net_schedule();
        s.spawn(move |h| {
            let pool = Pool::with_backoff(config, 2, fast());
            pool.start(h).unwrap();
            let mut p = pool.clone();
            eventually("a call", || p.ping(h));
            // Both clones dropped here: the keepers end, and `run` returns.
        })
        .unwrap();
        util::run_all(&mut s, 10);
    });
}
