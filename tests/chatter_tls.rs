//! The chatter over TLS end to end: TLS and plain members in one room over 127.0.0.1 (lines
//! both ways, `/who`, `/msg`, `/quit` with a `close_notify`), the web page over HTTPS, a
//! wrong name refused by the client, the real binary's flags (a bad PEM file is a usage
//! error) and its Ctrl-C goodbye over TLS. Each room test runs on one thread and on two.
#![cfg(feature = "tls")]

mod chat;
mod util;

use std::io::Read;
use std::time::Duration;

use chat::tls::{client_config, LineReader, TlsClient};
use chat::{protocol, Config, TestServer};
use fibra::net::rustls;

fn tls_and_plain_members_chat_in_one_room(threads: usize) {
    let (server, _, tls) = TestServer::start_tls(
        threads,
        Config::default(),
        fibra::net::DEFAULT_HANDSHAKE_TIMEOUT,
        false,
    );
    let mut ann = server.join("ann");
    let mut tim = tls.join("tim");
    ann.expect("tim has joined the chat.");
    let mut bob = server.join("bob");
    ann.expect("bob has joined the chat.");
    tim.expect("bob has joined the chat.");
    let mut tess = tls.join("tess");
    for c in [&mut ann, &mut bob] {
        c.expect("tess has joined the chat.");
    }
    tim.expect("tess has joined the chat.");

    // Lines both ways, in each speaker's order.
    for n in 0..20 {
        tim.send(&format!("secret {n}"));
        ann.send(&format!("plain {n}"));
    }
    let readers: [&mut dyn LineReader; 4] = [&mut ann, &mut bob, &mut tim, &mut tess];
    for reader in readers {
        let mut next = (0, 0);
        while next != (20, 20) {
            let line = reader.next_line();
            if let Some(n) = line.strip_prefix("tim says: secret ") {
                assert_eq!(n, next.0.to_string());
                next.0 += 1;
            } else if let Some(n) = line.strip_prefix("ann says: plain ") {
                assert_eq!(n, next.1.to_string());
                next.1 += 1;
            } else {
                panic!("unexpected {line:?}");
            }
        }
    }

    // /who lists both kinds; /msg crosses from TLS to plain and back.
    tim.send("/who");
    tim.expect("Online: ann, bob, tess, tim");
    tim.send("/msg bob over TLS");
    bob.expect("tim whispers: over TLS");
    bob.send("/msg tess in plain");
    tess.expect("bob whispers: in plain");

    // /quit over TLS: the connection closes with a close_notify; the room hears the leave.
    tim.send("/quit");
    tim.expect_end();
    for c in [&mut ann, &mut bob] {
        c.expect("tim has left the chat.");
    }
    tess.expect("tim has left the chat.");
    // The handle is free again, for a plain member this time.
    let mut again = server.join("tim");
    tess.expect("tim has joined the chat.");
    again.send("/quit");
    again.expect_end();
    tess.expect("tim has left the chat.");
    server.stop();
    // The stop's goodbye reaches TLS members too, then their close_notify.
    tess.expect(protocol::SHUTTING_DOWN);
    tess.expect_end();
}

fn a_client_refuses_a_certificate_for_another_name(threads: usize) {
    let (server, _, tls) = TestServer::start_tls(
        threads,
        Config::default(),
        fibra::net::DEFAULT_HANDSHAKE_TIMEOUT,
        false,
    );
    let mut ann = server.join("ann");
    let tcp = std::net::TcpStream::connect(tls.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let name = rustls::pki_types::ServerName::try_from("chat.example.org").unwrap();
    let conn = rustls::ClientConnection::new(tls.client_config(), name).unwrap();
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    let mut buf = [0u8; 64];
    let err = stream
        .read(&mut buf)
        .expect_err("a certificate for localhost only");
    assert!(
        err.to_string().contains("not valid for name"),
        "refused for its name: {err}"
    );
    // The room never saw it as a session past the handshake, and goes on.
    chat::assert_serves_a_newcomer(&server, &mut ann);
    server.stop();
}

chat::on_one_and_two_threads!(
    tls_and_plain_members_chat_in_one_room,
    a_client_refuses_a_certificate_for_another_name,
);

#[test]
fn the_web_page_over_https_and_its_websocket_over_wss() {
    let (server, _, tls) = TestServer::start_tls(
        1,
        Config::default(),
        fibra::net::DEFAULT_HANDSHAKE_TIMEOUT,
        true,
    );
    let https = tls.web.unwrap();
    let mut ann = server.join("ann");
    let config = client_config(&tls.certs.ca, &[]);
    // The page itself.
    let mut page = TlsClient::connect(https, &config);
    page.send_raw(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(page.line(), "HTTP/1.1 200 OK\r");
    let mut html = false;
    while let Ok(Some(line)) = page.try_line() {
        html |= line.contains("<html");
    }
    assert!(html, "the page came over HTTPS");
    // The WebSocket, over WSS: a member of the same room.
    let mut ws = TlsClient::connect(https, &config);
    ws.send_raw(
        b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    );
    assert_eq!(ws.line(), "HTTP/1.1 101 Switching Protocols\r");
    while ws.line() != "\r" {}
    let mut wss = ws;
    assert_eq!(read_text(&mut wss), protocol::PROMPT);
    wss.send_raw(&client_text_frame(b"wes"));
    assert_eq!(read_text(&mut wss), "wes has joined the chat.");
    ann.expect("wes has joined the chat.");
    ann.send("hello browser");
    ann.expect("ann says: hello browser");
    assert_eq!(read_text(&mut wss), "ann says: hello browser");
    wss.send_raw(&client_text_frame(b"hello telnet"));
    ann.expect("wes says: hello telnet");
    drop(wss);
    ann.expect("wes has left the chat.");
    server.stop();
}

/// The next text message of a server's (unmasked) WebSocket stream.
fn read_text(stream: &mut impl Read) -> String {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(head[0], 0x81, "a final text frame");
    let len = match head[1] {
        126 => {
            let mut n = [0u8; 2];
            stream.read_exact(&mut n).unwrap();
            usize::from(u16::from_be_bytes(n))
        }
        n if n < 126 => usize::from(n),
        n => panic!("a frame of length code {n}"),
    };
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).unwrap();
    String::from_utf8(payload).unwrap()
}

/// The test certificates as PEM files, for the binary's flags.
struct PemFiles {
    dir: std::path::PathBuf,
    certs: util::certs::TestCerts,
}

impl PemFiles {
    fn new(test: &str) -> PemFiles {
        let dir = std::env::temp_dir().join(format!("fibra-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let certs = util::certs::TestCerts::localhost();
        std::fs::write(dir.join("cert.pem"), &certs.chain_pem).unwrap();
        std::fs::write(dir.join("key.pem"), &certs.key_pem).unwrap();
        std::fs::write(dir.join("ca.pem"), &certs.ca_pem).unwrap();
        PemFiles { dir, certs }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_owned()
    }
}

impl Drop for PemFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn ctrl_c_says_goodbye_over_tls_and_closes_with_close_notify() {
    let pem = PemFiles::new("chatter-tls-ctrl-c");
    let config = client_config(&pem.certs.ca, &[]);
    // One thread; two with the hand-off on both ports; two with a listener each.
    let runs: [&[&str]; 3] = [
        &[],
        &["--threads", "2"],
        &["--threads", "2", "--accept", "reuseport"],
    ];
    for threads in runs {
        let (cert, key) = (pem.path("cert.pem"), pem.path("key.pem"));
        let mut args = vec![
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--tls-addr",
            "127.0.0.1:0",
            "--tls-web-addr",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(threads);
        let server = util::Example::start_with("chatter", &args);
        let line = server.wait_for("TLS on 127.0.0.1:");
        let at = line.find("TLS on ").unwrap() + "TLS on ".len();
        let addr: std::net::SocketAddr = line[at..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        server.wait_for("web page on https://127.0.0.1:");
        let mut ann = chat::Client::connect(server.addr.parse().unwrap());
        ann.login("ann");
        let mut tim = TlsClient::join(addr, &config, "tim");
        ann.expect("tim has joined the chat.");
        tim.send("bye soon");
        ann.expect("tim says: bye soon");
        tim.expect("tim says: bye soon");
        let (status, said) = server.interrupt();
        assert!(status.success(), "{threads:?}: exited {status}:\n{said}");
        tim.expect(protocol::SHUTTING_DOWN);
        tim.expect_end();
        ann.expect(protocol::SHUTTING_DOWN);
        ann.expect_end();
    }
}

#[test]
fn a_bad_or_missing_pem_file_is_a_usage_error_that_names_it() {
    let pem = PemFiles::new("chatter-tls-flags");
    let (cert, key, ca) = (
        pem.path("cert.pem"),
        pem.path("key.pem"),
        pem.path("ca.pem"),
    );
    let missing = pem.path("missing.pem");
    let cases: [(Vec<&str>, &str); 6] = [
        (
            vec!["--tls-cert", &missing, "--tls-key", &key],
            "missing.pem",
        ),
        (
            vec!["--tls-cert", &key, "--tls-key", &key],
            "no CERTIFICATE block",
        ),
        (vec!["--tls-cert", &cert, "--tls-key", &ca], "private key"),
        (
            vec!["--tls-cert", &cert],
            "--tls-cert and --tls-key go together",
        ),
        (
            vec!["--tls-addr", "127.0.0.1:0"],
            "need --tls-cert and --tls-key",
        ),
        (
            vec!["--tls-handshake-timeout", "1"],
            "need --tls-cert and --tls-key",
        ),
    ];
    for (args, said) in cases {
        let out = std::process::Command::new(util::example("chatter"))
            .args(&args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(said), "{args:?}: {stderr}");
    }
    // A key that does not match the certificate.
    let other = util::certs::TestCerts::localhost();
    std::fs::write(pem.dir.join("other-key.pem"), &other.key_pem).unwrap();
    let other_key = pem.path("other-key.pem");
    let out = std::process::Command::new(util::example("chatter"))
        .args(["--tls-cert", &cert, "--tls-key", &other_key])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("other-key.pem"), "{stderr}");
}

/// A client's masked text frame.
fn client_text_frame(payload: &[u8]) -> Vec<u8> {
    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
    assert!(payload.len() < 126);
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&KEY);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ KEY[i % 4]));
    frame
}
