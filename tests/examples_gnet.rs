//! gnet's examples on fibra, run as processes: the Protocol echo server, the reconnecting echo
//! client (started before its server, back after the server restarts), and the service that
//! notifies both.

mod util;

use std::io::{Read, Write};
use std::time::Duration;

use util::Example;

#[test]
fn gnet_echo_sends_back_every_byte() {
    let server = Example::start("gnet_echo");
    let mut c = std::net::TcpStream::connect(&server.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let message = vec![7u8; 100_000];
    let writer = {
        let mut c = c.try_clone().unwrap();
        let message = message.clone();
        std::thread::spawn(move || c.write_all(&message).unwrap())
    };
    let mut back = vec![0u8; message.len()];
    c.read_exact(&mut back).unwrap();
    writer.join().unwrap();
    assert_eq!(back, message);
    let (status, said) = server.interrupt();
    assert!(status.success(), "{status}: {said}");
}

#[test]
fn the_echo_client_waits_for_its_server_and_comes_back_after_a_restart() {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap().to_string();
    drop(probe);
    let client = Example::spawn(
        "echo_client",
        &[
            "--addr",
            &addr,
            "--pause",
            "0.05",
            "--reconnect-delay",
            "0.05",
            "--max-delay",
            "0.2",
        ],
    );
    client.wait_for("echo client of");
    std::thread::sleep(Duration::from_millis(300)); // a few refused attempts
    let server = Example::spawn("gnet_echo", &["--addr", &addr]);
    server.wait_for("listening on");
    client.wait_for("connected to");
    // ooxx goes to the server, comes back, and is sent again after each pause.
    client.wait_for("received ooxx");
    client.wait_for("received ooxx");
    let (status, _) = server.interrupt();
    assert!(status.success());
    client.wait_for("connection lost");

    let server = Example::spawn("gnet_echo", &["--addr", &addr]);
    server.wait_for("listening on");
    client.wait_for("connected to");
    client.wait_for("received ooxx");
    let (status, said) = client.interrupt();
    assert!(status.success(), "{status}: {said}");
    assert!(said.contains("stopped after 2 connections"), "{said}");
    drop(server);
}

#[test]
fn the_service_notifies_its_server_and_its_client() {
    let service = Example::spawn("service", &["--addr", "127.0.0.1:0", "--secs", "30"]);
    service.wait_for("client: received ooxx");
    service.wait_for("service: notified 2 members");
    // Both print it, the connected client through its protocol, the server through its
    // factory (which sees the client's connection).
    service.wait_for_all(&[
        "client: notified hello",
        "server: notified hello (1 connections)",
    ]);
    let (status, said) = service.interrupt();
    assert!(status.success(), "{status}: {said}");
    assert!(said.contains("service: SIGINT"), "{said}");
}
