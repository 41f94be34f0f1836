//! The Redis client against fake servers (std threads on 127.0.0.1) that misbehave in ways a
//! real Redis does not on cue: a server that never answers (the call times out, the
//! connection is broken and later calls fail at once, a late reply is never read as the next
//! command's), one that answers half a pipeline, replies that are not RESP, lengths and
//! counts that lie, nesting past the limit, and RESP3 nested as deep as allowed on a
//! tasklet's default 64 KiB stack.

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fibra::redis::{Cmd, Config, Connection, Protocol, RedisError, Value};
use fibra::rt::Handle;

fn within<T: Send + 'static>(secs: u64, scenario: impl FnOnce(&Handle) -> T + Send + 'static) -> T {
    util::on_thread_within("the redis scenario", secs, move || {
        let mut s = util::net_schedule();
        s.block_on(scenario).expect("the scenario's tasklet")
    })
}

/// A server for one connection, run by `serve` on a thread.
fn fake<T: Send + 'static>(
    serve: impl FnOnce(TcpStream) -> T + Send + 'static,
) -> (SocketAddr, JoinHandle<T>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let thread = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        serve(stream)
    });
    (addr, thread)
}

/// Reads until `n` commands (RESP arrays) arrived; returns the bytes.
fn read_commands(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while count_commands(&got) < n {
        let k = stream.read(&mut buf).unwrap();
        assert!(k > 0, "the client closed early");
        got.extend_from_slice(&buf[..k]);
    }
    got
}

/// Commands in `bytes`: each starts with `*` at a line start (the tests' arguments hold no
/// `*`).
fn count_commands(bytes: &[u8]) -> usize {
    let mut n = 0;
    let mut at_line_start = true;
    for &b in bytes {
        if at_line_start && b == b'*' {
            n += 1;
        }
        at_line_start = b == b'\n';
    }
    n
}

/// Whether the peer closed (read gives 0 or a reset) within 5 s.
fn sees_close(stream: &mut TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

fn config(addr: SocketAddr) -> Config {
    Config::new("127.0.0.1", addr.port()).with_call_timeout(Duration::from_millis(300))
}

#[test]
fn a_hung_server_times_out_the_call_and_the_late_reply_is_never_read() {
    let (addr, server) = fake(|mut s| {
        read_commands(&mut s, 1);
        // Answer late: after the client's timeout.
        std::thread::sleep(Duration::from_millis(600));
        let _ = s.write_all(b"$4\r\nlate\r\n");
        sees_close(&mut s)
    });
    within(30, move |h| {
        let mut conn = Connection::connect(h, &config(addr)).unwrap();
        let started = Instant::now();
        let e = conn.call(h, &Cmd::new("GET").arg("k")).unwrap_err();
        let took = started.elapsed();
        assert!(
            matches!(&e, RedisError::Timeout { command, .. } if command == "GET"),
            "{e:?}"
        );
        assert!(took >= Duration::from_millis(290), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        assert!(e.to_string().contains("GET"), "{e}");
        // Broken for good: the next call fails at once, saying why, and the late reply is
        // never taken for its answer.
        assert!(!conn.is_usable());
        let started = Instant::now();
        let e = conn.call(h, &Cmd::new("GET").arg("other")).unwrap_err();
        assert!(started.elapsed() < Duration::from_millis(100));
        match &e {
            RedisError::Broken { command, reason } => {
                assert_eq!(command, "GET");
                assert!(reason.contains("timed out"), "{reason}");
            }
            other => panic!("expected Broken, got {other:?}"),
        }
        let e = conn.pipeline(h, &[Cmd::new("PING")]).unwrap_err();
        assert!(matches!(e, RedisError::Broken { .. }), "{e:?}");
    });
    assert!(
        server.join().unwrap(),
        "the client closed the timed-out connection"
    );
}

#[test]
fn a_pipeline_answered_in_part_times_out_naming_the_missing_reply() {
    let (addr, server) = fake(|mut s| {
        read_commands(&mut s, 5);
        s.write_all(b"+OK\r\n:2\r\n$3\r\nab").unwrap();
        sees_close(&mut s)
    });
    within(30, move |h| {
        let mut conn = Connection::connect(h, &config(addr)).unwrap();
        let cmds: Vec<Cmd> = (0..5).map(|i| Cmd::new("ECHO").arg(i)).collect();
        let e = conn.pipeline(h, &cmds).unwrap_err();
        match &e {
            RedisError::Timeout { command, .. } => {
                assert!(command.contains("ECHO (command 3 of 5"), "{command}");
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
    });
    assert!(server.join().unwrap());
}

#[test]
fn the_pipeline_is_one_write() {
    let (addr, server) = fake(|mut s| {
        // Every command of the pipeline is in the first read (one segment on loopback).
        let mut buf = vec![0u8; 64 * 1024];
        let n = s.read(&mut buf).unwrap();
        let first = count_commands(&buf[..n]);
        let mut replies = Vec::new();
        for i in 0..100 {
            replies.extend_from_slice(format!(":{i}\r\n").as_bytes());
        }
        s.write_all(&replies).unwrap();
        first
    });
    within(30, move |h| {
        let mut conn = Connection::connect(h, &config(addr)).unwrap();
        let cmds: Vec<Cmd> = (0..100).map(|i| Cmd::new("INCR").arg(i)).collect();
        let replies = conn.pipeline(h, &cmds).unwrap();
        for (i, r) in replies.into_iter().enumerate() {
            assert_eq!(r.unwrap(), Value::Int(i as i64));
        }
    });
    assert_eq!(server.join().unwrap(), 100);
}

#[test]
fn lying_lengths_fail_at_once_without_waiting_for_the_bytes() {
    // 100 GB announced: TooLarge at once, not a wait for bytes, not an allocation.
    for reply in [
        &b"$99999999999\r\n"[..],
        b"*99999999999\r\n",
        b"%9999999999999999999\r\n",
    ] {
        let (e, closed) = call_with_reply(reply, Config::new("h", 1).with_max_reply(1 << 20));
        assert!(
            matches!(&e, RedisError::TooLarge { command, limit: 1048576 } if command == "GET"),
            "{reply:?}: {e:?}"
        );
        assert!(closed, "{reply:?}: the connection was closed");
    }
}

#[test]
fn bytes_that_are_not_resp_break_the_connection() {
    for reply in [
        &b"?what\r\n"[..],
        b"$-7\r\n",
        b"$3\r\nabcdef\r\n",
        b"$x\r\n",
        b"|1\r\n+a\r\n+b\r\n+c\r\n",
    ] {
        let (e, closed) = call_with_reply(reply, Config::new("h", 1));
        assert!(
            matches!(&e, RedisError::Protocol { command, .. } if command == "GET"),
            "{reply:?}: {e:?}"
        );
        assert!(closed, "{reply:?}");
    }
    // Nested deeper than the limit.
    let deep: &'static [u8] = Box::leak(b"*1\r\n".repeat(64).into_boxed_slice());
    let (e, _) = call_with_reply(deep, Config::new("h", 1));
    assert!(e.to_string().contains("nests deeper"), "{e}");
}

#[test]
fn resp3_nested_to_the_limit_decodes_on_a_default_stack() {
    // 32 levels of arrays, maps and pushes around a double: redis-protocol's recursive
    // RESP3 decoder alone would need ~600 KiB of stack in a debug build.
    let mut reply = Vec::new();
    for i in 0..31 {
        reply.extend_from_slice(match i % 3 {
            0 => &b"*1\r\n"[..],
            1 => b"%1\r\n+k\r\n",
            _ => b"~1\r\n",
        });
    }
    reply.extend_from_slice(b"*2\r\n,1.5\r\n#t\r\n");
    let reply: &'static [u8] = Box::leak(reply.into_boxed_slice());
    let (addr, server) = fake(move |mut s| {
        // HELLO 3, then the command.
        read_commands(&mut s, 1);
        s.write_all(b"%1\r\n+server\r\n+fake\r\n").unwrap();
        read_commands(&mut s, 1);
        s.write_all(reply).unwrap();
        sees_close(&mut s)
    });
    within(30, move |h| {
        let config = config(addr).with_protocol(Protocol::Resp3);
        let mut conn = Connection::connect(h, &config).unwrap();
        let mut v = conn.call(h, &Cmd::new("DEEP")).unwrap();
        let mut levels = 0;
        loop {
            v = match v {
                Value::Array(mut a) if a.len() == 1 => a.remove(0),
                Value::Map(mut m) if m.len() == 1 => m.remove(0).1,
                Value::Array(a) => {
                    assert_eq!(a, vec![Value::Double(1.5), Value::Bool(true)]);
                    break;
                }
                other => panic!("unexpected {other:?} at level {levels}"),
            };
            levels += 1;
        }
        assert_eq!(levels, 31);
    });
    // The test's connection is dropped at the end of the scenario: closed.
    assert!(server.join().unwrap());
}

/// Sends `reply` to a `GET`; returns the error and whether the connection was then closed.
fn call_with_reply(reply: &'static [u8], limits: Config) -> (RedisError, bool) {
    let (addr, server) = fake(move |mut s| {
        read_commands(&mut s, 1);
        let _ = s.write_all(reply);
        sees_close(&mut s)
    });
    let e = within(30, move |h| {
        let config = config(addr).with_max_reply(limits.max_reply());
        let mut conn = Connection::connect(h, &config).unwrap();
        let started = Instant::now();
        let e = conn.call(h, &Cmd::new("GET").arg("k")).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_millis(250),
            "no wait for the bytes"
        );
        assert!(!conn.is_usable());
        e
    });
    (e, server.join().unwrap())
}

#[test]
fn a_subscriber_notices_a_silent_server_by_its_keepalive() {
    let (addr, server) = fake(|mut s| {
        read_commands(&mut s, 1);
        s.write_all(b"*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n")
            .unwrap();
        // The keepalive PING comes, and is never answered.
        let ping = read_commands(&mut s, 1);
        let pinged = ping.windows(4).any(|w| w == b"PING");
        (pinged, sees_close(&mut s))
    });
    within(30, move |h| {
        let mut sub = fibra::redis::Subscriber::new(config(addr))
            .with_keepalive(Some(Duration::from_millis(200)));
        sub.subscribe(h, &["c"]).unwrap();
        let started = Instant::now();
        let got = sub.next_message(h, Duration::from_secs(5)).unwrap();
        match got {
            Some(fibra::redis::Message::Disconnected { error }) => {
                assert!(error.contains("PING"), "{error}")
            }
            other => panic!("expected Disconnected, got {other:?}"),
        }
        // Quiet 200 ms, then 300 ms (the call timeout) for the answer.
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(450), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
    });
    assert_eq!(server.join().unwrap(), (true, true));
}
