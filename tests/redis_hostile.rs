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
