//! The Redis client against a real `redis-server` (each test starts its own, on a free port):
//! pipelining order, error replies naming their command, `XREAD BLOCK` timing out without
//! breaking the connection, streams, hashes, claims with a TTL, scripts, `AUTH`, `SELECT`
//! from the URL, RESP3, a reply over the size limit, and 10,000 pipelined `SET`s.

mod util;

use std::time::Duration;

use fibra::redis::{
    Client, Cmd, Commands, Config, Connection, Protocol, RedisError, StreamEntry, Value,
};
use fibra::rt::Handle;
use util::redis::RedisServer;

/// Runs `scenario` in a tasklet of a fresh schedule (tasks and network plugins) on a thread
/// of its own; fails the test after `secs` seconds.
fn within<T: Send + 'static>(secs: u64, scenario: impl FnOnce(&Handle) -> T + Send + 'static) -> T {
    util::on_thread_within("the redis scenario", secs, move || {
        let mut s = util::net_schedule();
        s.block_on(scenario).expect("the scenario's tasklet")
    })
}

fn config(server: &RedisServer) -> Config {
    Config::parse(&server.url()).unwrap()
}

#[test]
fn a_thousand_pipelined_commands_reply_in_order() {
    let server = RedisServer::start();
    let config = config(&server);
    within(30, move |h| {
        let mut conn = Connection::connect(h, &config).unwrap();
        let cmds: Vec<Cmd> = (0..1000).map(|_| Cmd::new("INCR").arg("n")).collect();
        let replies = conn.pipeline(h, &cmds).unwrap();
        assert_eq!(replies.len(), 1000);
        for (i, reply) in replies.into_iter().enumerate() {
            assert_eq!(reply.unwrap(), Value::Int(i as i64 + 1));
        }
        // Mixed commands, one failing in the middle: each gets its own reply.
        let cmds = vec![
            Cmd::new("SET").arg("s").arg("x"),
            Cmd::new("INCR").arg("s"),
            Cmd::new("GET").arg("s"),
        ];
        let replies = conn.pipeline(h, &cmds).unwrap();
        assert!(replies[0].as_ref().unwrap().is_ok());
        let e = replies[1].as_ref().unwrap_err();
        assert!(e.is_server_error(), "{e}");
        assert_eq!(replies[2].as_ref().unwrap(), &Value::Bulk(b"x".to_vec()));
    });
}

#[test]
fn ten_thousand_pipelined_sets_complete() {
    let server = RedisServer::start();
    let config = config(&server).with_call_timeout(Duration::from_secs(30));
    within(60, move |h| {
        let mut conn = Connection::connect(h, &config).unwrap();
        let cmds: Vec<Cmd> = (0..10_000)
            .map(|i| Cmd::new("SET").arg(format!("key:{i}")).arg(i))
            .collect();
        let replies = conn.pipeline(h, &cmds).unwrap();
        assert_eq!(replies.len(), 10_000);
        assert!(replies.iter().all(|r| r.as_ref().is_ok_and(Value::is_ok)));
        assert_eq!(conn.get(h, "key:9999").unwrap(), Some(b"9999".to_vec()));
        let size = conn.call(h, &Cmd::new("DBSIZE")).unwrap();
        assert_eq!(size, Value::Int(10_000));
    });
}

#[test]
fn an_error_reply_names_the_command_and_keeps_the_connection() {
    let server = RedisServer::start();
    let config = config(&server);
    within(30, move |h| {
        let mut conn = Connection::connect(h, &config).unwrap();
        conn.set(h, "text", "hello").unwrap();
        let e = conn
            .call(h, &Cmd::new("lpush").arg("text").arg("x"))
            .unwrap_err();
        match &e {
            RedisError::Server { command, message } => {
                assert_eq!(command, "LPUSH");
                assert!(message.starts_with("WRONGTYPE"), "{message}");
            }
            other => panic!("expected a server error, got {other:?}"),
        }
        assert_eq!(e.server_code(), Some("WRONGTYPE"));
        assert!(e.to_string().contains("LPUSH"), "{e}");
        // The typed helper says the same.
        let e = conn.incr(h, "text").unwrap_err();
        assert!(e.to_string().contains("INCR"), "{e}");
        // The connection goes on.
        assert!(conn.is_usable());
        assert_eq!(conn.get(h, "text").unwrap(), Some(b"hello".to_vec()));
        // An unknown command too.
        let e = conn.call(h, &Cmd::new("NOSUCHCMD")).unwrap_err();
        assert!(e.is_server_error(), "{e}");
        conn.ping(h).unwrap();
        // A plain connection refuses to enter pub/sub mode.
        let e = conn.call(h, &Cmd::new("SUBSCRIBE").arg("c")).unwrap_err();
        assert!(matches!(e, RedisError::Usage { .. }), "{e}");
        conn.ping(h).unwrap();
    });
}

#[test]
fn xread_block_times_out_with_nil_and_the_connection_goes_on() {
    let server = RedisServer::start();
    // A call timeout far shorter than the block: the block is added to it.
    let config = config(&server).with_call_timeout(Duration::from_millis(300));
    within(30, move |h| {
        let mut conn = Connection::connect(h, &config).unwrap();
        let block = Duration::from_millis(600);
        let started = std::time::Instant::now();
        let raw = conn
            .call_blocking(
                h,
                &Cmd::new("XREAD")
                    .arg("BLOCK")
                    .arg(600)
                    .arg("STREAMS")
                    .arg("quiet")
                    .arg("$"),
                block,
            )
            .unwrap();
        assert_eq!(raw, Value::Nil);
        assert!(started.elapsed() >= Duration::from_millis(550));
        let typed = conn
            .xread_block(h, &["quiet"], &["$"], Some(10), block)
            .unwrap();
        assert!(typed.is_empty());
        assert!(conn.is_usable());
        conn.ping(h).unwrap();
        // Something to read: it comes at once.
        let id = conn.xadd(h, "quiet", None, &[("k", "v")]).unwrap();
        let got = conn
            .xread_block(h, &["quiet"], &["0"], None, block)
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].key, b"quiet");
        assert_eq!(got[0].entries[0].id, id);
        // Keys and ids must pair up.
        let e = conn
            .xread_block(h, &["a", "b"], &["0"], None, block)
            .unwrap_err();
        assert!(matches!(e, RedisError::Usage { .. }), "{e}");
    });
}

#[test]
fn xadd_and_xrange_round_trip_with_maxlen() {
    let server = RedisServer::start();
    let config = config(&server);
    within(30, move |h| {
        let mut conn = Connection::connect(h, &config).unwrap();
        let mut ids = Vec::new();
        for i in 0..5 {
            let line = format!("line {i}");
            let id = conn
                .xadd(
                    h,
                    "room",
                    Some(1000),
                    &[("from", "ann"), ("text", line.as_str())],
                )
                .unwrap();
            ids.push(id);
        }
        let all = conn.xrange(h, "room", "-", "+", None).unwrap();
        assert_eq!(all.len(), 5);
        for (i, entry) in all.iter().enumerate() {
            assert_eq!(entry.id, ids[i]);
            assert_eq!(entry.get(b"from"), Some(&b"ann"[..]));
            assert_eq!(entry.get(b"text"), Some(format!("line {i}").as_bytes()));
        }
        // After an id, exclusive; with a count.
        let after = format!("({}", ids[1]);
        let some = conn
            .xrange(h, "room", after.as_str(), "+", Some(2))
            .unwrap();
        let got: Vec<&str> = some.iter().map(|e: &StreamEntry| e.id.as_str()).collect();
        assert_eq!(got, [ids[2].as_str(), ids[3].as_str()]);
        // A missing stream is empty.
        assert!(conn.xrange(h, "none", "-", "+", None).unwrap().is_empty());
    });
}

#[test]
fn keys_hashes_claims_and_scripts() {
    let server = RedisServer::start();
    let config = config(&server);
    within(30, move |h| {
        let mut conn = Connection::connect(h, &config).unwrap();
        // A claim with a TTL: only the first wins.
        let ttl = Duration::from_secs(10);
        assert!(conn.set_nx_ex(h, "handle:ann", "node-a", ttl).unwrap());
        assert!(!conn.set_nx_ex(h, "handle:ann", "node-b", ttl).unwrap());
        assert_eq!(conn.get(h, "handle:ann").unwrap(), Some(b"node-a".to_vec()));
        assert!(conn.expire(h, "handle:ann", ttl).unwrap());
        assert!(conn
            .pexpire(h, "handle:ann", Duration::from_millis(9000))
            .unwrap());
        assert!(!conn.expire(h, "missing", ttl).unwrap());
        let pttl = conn.call(h, &Cmd::new("PTTL").arg("handle:ann")).unwrap();
        assert!((1..=9000).contains(&pttl.as_int().unwrap()), "{pttl:?}");
        assert_eq!(conn.del(h, &["handle:ann", "missing"]).unwrap(), 1);
        assert_eq!(conn.get(h, "handle:ann").unwrap(), None);
        assert_eq!(conn.incr(h, "n").unwrap(), 1);
        // Hashes.
        assert_eq!(conn.hset(h, "members", "ann", "node-a").unwrap(), 1);
        assert_eq!(conn.hset(h, "members", "bob", "node-b").unwrap(), 1);
        assert_eq!(conn.hset(h, "members", "bob", "node-c").unwrap(), 0);
        let mut all = conn.hgetall(h, "members").unwrap();
        all.sort();
        assert_eq!(
            all,
            vec![
                (b"ann".to_vec(), b"node-a".to_vec()),
                (b"bob".to_vec(), b"node-c".to_vec())
            ]
        );
        assert_eq!(conn.hdel(h, "members", &["ann"]).unwrap(), 1);
        assert!(conn.hgetall(h, "none").unwrap().is_empty());
        // Lua: an atomic claim, by EVAL and by its SHA1.
        let script = "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then \
                      return 1 else return 0 end";
        let keys = ["claim"];
        let won = conn.eval(h, script, &keys, &["me", "5000"]).unwrap();
        assert_eq!(won, Value::Int(1));
        let sha = conn.script_load(h, script).unwrap();
        let again = conn.evalsha(h, &sha, &keys, &["you", "5000"]).unwrap();
        assert_eq!(again, Value::Int(0));
        let e = conn
            .evalsha(h, "0000000000000000000000000000000000000000", &keys, &["x"])
            .unwrap_err();
        assert_eq!(e.server_code(), Some("NOSCRIPT"), "{e}");
        conn.call(h, &Cmd::new("SCRIPT").arg("FLUSH")).unwrap();
        let after_flush = conn
            .eval_cached(h, script, &sha, &["other"], &["me", "5000"])
            .unwrap();
        assert_eq!(after_flush, Value::Int(1));
        assert_eq!(conn.publish(h, "nobody", "hi").unwrap(), 0);
    });
}

#[test]
fn auth_with_a_password_and_a_wrong_one() {
    let server = RedisServer::start_with(&["--requirepass", "s3cret"]);
    let port = server.port();
    within(30, move |h| {
        let good = Config::parse(&format!("redis://:s3cret@127.0.0.1:{port}")).unwrap();
        let mut conn = Connection::connect(h, &good).unwrap();
        conn.ping(h).unwrap();
        // A user and a password (Redis 6 ACL, the `default` user).
        let named = Config::parse(&format!("redis://default:s3cret@127.0.0.1:{port}")).unwrap();
        Connection::connect(h, &named).unwrap().ping(h).unwrap();
        // RESP3: HELLO 3 AUTH.
        let resp3 = good.clone().with_protocol(Protocol::Resp3);
        let mut conn3 = Connection::connect(h, &resp3).unwrap();
        conn3.ping(h).unwrap();
        let bad = Config::parse(&format!("redis://:nope@127.0.0.1:{port}")).unwrap();
        let e = Connection::connect(h, &bad).unwrap_err();
        assert!(
            matches!(&e, RedisError::Handshake { command: "AUTH", message } if message.contains("WRONGPASS")),
            "{e:?}"
        );
        assert!(!e.to_string().contains("nope"), "{e}");
        // No password: the first command says so.
        let none = Config::parse(&format!("redis://127.0.0.1:{port}")).unwrap();
        let mut conn = Connection::connect(h, &none).unwrap();
        let e = conn.ping(h).unwrap_err();
        assert_eq!(e.server_code(), Some("NOAUTH"), "{e}");
    });
}

#[test]
fn the_urls_database_is_selected() {
    let server = RedisServer::start();
    let port = server.port();
    within(30, move |h| {
        let db3 = Config::parse(&format!("redis://127.0.0.1:{port}/3")).unwrap();
        let db0 = Config::parse(&format!("redis://127.0.0.1:{port}/0")).unwrap();
        let mut in3 = Connection::connect(h, &db3).unwrap();
        let mut in0 = Connection::connect(h, &db0).unwrap();
        in3.set(h, "where", "three").unwrap();
        assert_eq!(in0.get(h, "where").unwrap(), None);
        assert_eq!(in3.get(h, "where").unwrap(), Some(b"three".to_vec()));
        let e = Connection::connect(
            h,
            &Config::parse(&format!("redis://127.0.0.1:{port}/99")).unwrap(),
        )
        .unwrap_err();
        assert!(
            matches!(
                &e,
                RedisError::Handshake {
                    command: "SELECT",
                    ..
                }
            ),
            "{e:?}"
        );
    });
}

#[test]
fn bad_urls_are_errors() {
    for url in [
        "http://127.0.0.1:6379",
        "redis://127.0.0.1:notaport",
        "redis://127.0.0.1:6379/x",
        "redis://:6379",
        "rediss://127.0.0.1",
    ] {
        let e = Config::parse(url).unwrap_err();
        assert!(matches!(e, RedisError::Url { .. }), "{url}: {e:?}");
    }
}

#[test]
fn a_reply_over_the_limit_fails_its_call_and_the_client_comes_back() {
    let server = RedisServer::start();
    let config = config(&server).with_max_reply(64 * 1024);
    within(30, move |h| {
        let mut client = Client::new(config);
        let big = vec![b'x'; 100 * 1024];
        client.set(h, "big", big.as_slice()).unwrap();
        client.set(h, "small", "ok").unwrap();
        let e = client.get(h, "big").unwrap_err();
        assert!(
            matches!(&e, RedisError::TooLarge { command, limit: 65536 } if command == "GET"),
            "{e:?}"
        );
        assert!(!client.is_connected());
        // The next call opens a new connection.
        assert_eq!(client.get(h, "small").unwrap(), Some(b"ok".to_vec()));
        assert!(client.is_connected());
    });
}

#[test]
fn resp3_replies_decode_into_the_same_values() {
    let server = RedisServer::start();
    let config = config(&server).with_protocol(Protocol::Resp3);
    within(30, move |h| {
        let mut conn = Connection::connect(h, &config).unwrap();
        conn.hset(h, "h", "f", "v").unwrap();
        // HGETALL is a map in RESP3.
        let raw = conn.call(h, &Cmd::new("HGETALL").arg("h")).unwrap();
        assert!(matches!(raw, Value::Map(_)), "{raw:?}");
        assert_eq!(
            conn.hgetall(h, "h").unwrap(),
            vec![(b"f".to_vec(), b"v".to_vec())]
        );
        assert_eq!(conn.get(h, "missing").unwrap(), None);
        let id = conn.xadd(h, "s", Some(10), &[("a", "b")]).unwrap();
        let read = conn
            .xread_block(h, &["s"], &["0"], None, Duration::from_millis(10))
            .unwrap();
        assert_eq!(read[0].entries[0].id, id);
        assert!(conn
            .xread_block(h, &["s"], &["$"], None, Duration::from_millis(10))
            .unwrap()
            .is_empty());
    });
}
