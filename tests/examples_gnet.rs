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

#[test]
fn web_hello_says_hello_and_echoes_on_its_websocket() {
    let server = Example::start("web_hello");
    let mut c = std::net::TcpStream::connect(&server.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nhello, world!"), "{answer}");

    let mut ws = std::net::TcpStream::connect(&server.addr).unwrap();
    ws.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    ws.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        ws.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    // RFC 6455's masked "Hello", echoed unmasked.
    ws.write_all(&[
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ])
    .unwrap();
    let mut echo = [0u8; 7];
    ws.read_exact(&mut echo).unwrap();
    assert_eq!(echo, [0x81, 0x05, b'H', b'e', b'l', b'l', b'o']);
    let (status, said) = server.interrupt();
    assert!(status.success(), "{status}: {said}");
}
