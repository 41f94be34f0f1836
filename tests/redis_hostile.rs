//! The Redis client against a hostile or broken server (std threads on 127.0.0.1): bytes
//! that are not RESP and hold no line end (another service on the port: TLS, a binary
//! protocol).

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

use fibra::redis::{Cmd, Config, Connection, RedisError};
use fibra::rt::Handle;

fn within<T: Send + 'static>(secs: u64, scenario: impl FnOnce(&Handle) -> T + Send + 'static) -> T {
    util::on_thread_within("the redis scenario", secs, move || {
        let mut s = util::net_schedule();
        s.block_on(scenario).expect("the scenario's tasklet")
    })
}

/// A server for one connection: it reads the first command, then `serve` writes.
fn fake(serve: impl FnOnce(&mut TcpStream) + Send + 'static) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let thread = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 256];
        let _ = stream.read(&mut buf);
        serve(&mut stream);
        // Holds the connection until the client lets go.
        let _ = stream.read(&mut buf);
    });
    (addr, thread)
}

/// Another service on Redis's port (a TLS server's alert, no line end): the call fails at
/// once as a protocol error, not a timeout after waiting for a line end.
#[test]
fn bytes_with_no_line_end_that_are_not_resp_fail_at_once() {
    let (addr, server) = fake(|s| {
        let _ = s.write_all(b"\x15\x03\x03\x00\x02\x02\x28");
    });
    let e = within(30, move |h| {
        // A call timeout longer than the test's bound: only the bytes can end the call.
        let config =
            Config::new("127.0.0.1", addr.port()).with_call_timeout(Duration::from_secs(60));
        let mut conn = Connection::connect(h, &config).unwrap();
        conn.call(h, &Cmd::new("GET").arg("k")).unwrap_err()
    });
    assert!(
        matches!(&e, RedisError::Protocol { command, .. } if command == "GET"),
        "{e:?}"
    );
    server.join().unwrap();
}

/// A generated password often holds `/`, `?`, `@`: left unescaped in the URL, it still logs
/// in, and no error shows it (the path was split at its `/`: "the host is missing", and the
/// password printed in full).
#[test]
fn a_password_with_url_characters_left_unescaped_logs_in_and_never_shows() {
    const PASS: &str = "pa/ss?w@rd";
    let server = util::redis::RedisServer::start_with(&[
        "--requirepass",
        PASS,
        "--bind",
        "127.0.0.1",
        "-::1",
    ]);
    let port = server.port();
    let url = format!("redis://:{PASS}@127.0.0.1:{port}/2");
    let config = Config::parse(&url).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((config.port(), config.db()), (port, 2));
    let e = Config::parse(&format!("redis://u:{PASS}@127.0.0.1:{port}/x")).unwrap_err();
    assert!(!e.to_string().contains("ss?w"), "{e}");
    // IPv6, no port (the default) and an odd database: parsed as meant.
    let v6 = Config::parse(&format!("redis://:{PASS}@[::1]")).unwrap();
    assert_eq!((v6.addr().as_str(), v6.db()), ("[::1]:6379", 0));
    let has_v6 = TcpStream::connect(("::1", port)).is_ok();
    within(30, move |h| {
        let mut conn = Connection::connect(h, &config).unwrap();
        let pong = conn.call(h, &Cmd::new("PING")).unwrap();
        assert_eq!(pong.as_str(), Some("PONG"));
        if has_v6 {
            let v6 = Config::parse(&format!("redis://:{PASS}@[::1]:{port}/1")).unwrap();
            let mut conn = Connection::connect(h, &v6).unwrap();
            assert!(conn.call(h, &Cmd::new("PING")).is_ok());
        }
    });
}

/// `XRANGE` of 5,000 entries, 50 times: the typed reply holds every entry and field once
/// (the A/B workload of the copy-free parse of stream replies, under callgrind).
#[test]
fn xrange_of_many_entries_parses_each_entry() {
    use fibra::redis::Commands;
    let server = util::redis::RedisServer::start();
    let port = server.port();
    within(120, move |h| {
        let config = Config::new("127.0.0.1", port).with_call_timeout(Duration::from_secs(30));
        let mut conn = Connection::connect(h, &config).unwrap();
        let cmds: Vec<Cmd> = (0..5000)
            .map(|i| {
                Cmd::new("XADD")
                    .arg("s")
                    .arg("*")
                    .arg("n")
                    .arg(i)
                    .arg("t")
                    .arg("some text")
            })
            .collect();
        for reply in conn.pipeline(h, &cmds).unwrap() {
            reply.unwrap();
        }
        for _ in 0..50 {
            let all = conn.xrange(h, "s", "-", "+", None).unwrap();
            assert_eq!(all.len(), 5000);
            assert_eq!(all[4999].get(b"n"), Some(&b"4999"[..]));
        }
    });
}
