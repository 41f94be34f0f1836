//! TLS for the chatter's tests: the test server with its TLS doors, a blocking TLS line
//! client (rustls), and TLS records made by hand for the hostile suite: a real ClientHello
//! to drip or to break, and renegotiation requests encrypted under a live connection's keys.

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fibra::net::rustls;
use rustls::crypto::cipher::{OutboundChunks, OutboundPlainMessage};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{
    ClientConfig, ClientConnection, ConnectionTrafficSecrets, ContentType, ProtocolVersion,
    StreamOwned, SupportedCipherSuite, SupportedProtocolVersion,
};

use super::{protocol, Config, Doors, TestServer, READ_TIMEOUT};
use crate::util::certs::TestCerts;

/// Where a test server's TLS doors are, and the certificates they serve.
pub(crate) struct TlsDoors {
    /// The chat over TLS (on every thread: `SO_REUSEPORT` listeners on one port).
    pub(crate) addr: SocketAddr,
    /// The web page over HTTPS (thread 0), when asked for.
    pub(crate) web: Option<SocketAddr>,
    /// The CA and the leaf the doors serve (for `localhost` and 127.0.0.1).
    pub(crate) certs: TestCerts,
}

impl TlsDoors {
    /// A client config trusting the server's CA (TLS 1.2 and 1.3).
    pub(crate) fn client_config(&self) -> Arc<ClientConfig> {
        client_config(&self.certs.ca, &[])
    }

    /// Connects over TLS and joins as `handle`.
    pub(crate) fn join(&self, handle: &str) -> TlsClient {
        TlsClient::join(self.addr, &self.client_config(), handle)
    }
}

impl TestServer {
    /// The chatter on `threads` threads (as [`start_on`](Self::start_on)) with its TLS
    /// door on every thread (a handshake may take `handshake`), and with `web` the web page
    /// over HTTP and HTTPS (thread 0); returns the HTTP page's address too.
    pub(crate) fn start_tls(
        threads: usize,
        config: Config,
        handshake: Duration,
        web: bool,
    ) -> (TestServer, Option<SocketAddr>, TlsDoors) {
        let certs = TestCerts::localhost();
        let door = super::tls_door::TlsDoor {
            config: certs.server_config(),
            handshake_timeout: handshake,
        };
        // A port for every thread's TLS listener, reserved while they bind it.
        let probe =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        probe.set_reuse_port(true).unwrap();
        probe
            .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        let addr = probe.local_addr().unwrap().as_socket().unwrap();
        let (web_tx, web_rx) = std::sync::mpsc::channel();
        let doors: Doors = Arc::new(move |s, chatter, index| {
            let on = addr.to_string();
            chatter.serve_tls(s, &on, &door, true).unwrap();
            if web && index == 0 {
                let at = chatter.serve_web_tls(s, "127.0.0.1:0", &door).unwrap();
                web_tx.send(at).unwrap();
            }
        });
        let (mut server, http) = TestServer::start_with_doors(threads, config, web, Some(doors));
        server.spread_by_the_kernel();
        drop(probe);
        let https = web.then(|| web_rx.recv().unwrap());
        let doors = TlsDoors {
            addr,
            web: https,
            certs,
        };
        (server, http, doors)
    }
}

/// The name the test certificate is for, checked by the clients.
pub(crate) const NAME: &str = "localhost";

/// A client config trusting `ca`, for `versions` (both when empty), ring's suites.
pub(crate) fn client_config(
    ca: &CertificateDer<'static>,
    versions: &[&'static SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let versions = if versions.is_empty() {
        rustls::DEFAULT_VERSIONS
    } else {
        versions
    };
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    // For the renegotiation test: its records are encrypted by hand under these keys.
    config.enable_secret_extraction = true;
    Arc::new(config)
}

/// Either kind of test client, read line by line.
pub(crate) trait LineReader {
    /// The next line, without its `\n`; fails the test on the end or after 10 s.
    fn next_line(&mut self) -> String;
}

impl LineReader for super::Client {
    fn next_line(&mut self) -> String {
        self.line()
    }
}

impl LineReader for TlsClient {
    fn next_line(&mut self) -> String {
        self.line()
    }
}

/// A blocking line client over TLS with a read timeout, so no test hangs.
pub(crate) struct TlsClient {
    io: BufReader<StreamOwned<ClientConnection, TcpStream>>,
    pub(crate) name: String,
}

impl TlsClient {
    /// Connects and finishes the handshake (a refused certificate fails the test).
    pub(crate) fn connect(addr: SocketAddr, config: &Arc<ClientConfig>) -> TlsClient {
        let tcp = TcpStream::connect(addr).expect("connect to the chatter's TLS port");
        tcp.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        tcp.set_nodelay(true).unwrap();
        let name = ServerName::try_from(NAME).unwrap();
        let conn = ClientConnection::new(config.clone(), name).unwrap();
        let mut tls = StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn
                .complete_io(&mut tls.sock)
                .expect("the TLS handshake");
        }
        TlsClient {
            io: BufReader::new(tls),
            name: String::from("(no handle)"),
        }
    }

    /// Connects and joins as `handle`.
    pub(crate) fn join(addr: SocketAddr, config: &Arc<ClientConfig>, handle: &str) -> TlsClient {
        let mut c = TlsClient::connect(addr, config);
        c.login(handle);
        c
    }

    /// Reads the prompt, answers `handle`, and reads its own join line.
    pub(crate) fn login(&mut self, handle: &str) {
        self.expect(protocol::PROMPT);
        self.send(handle);
        self.name = handle.to_owned();
        self.expect(&format!("{handle} has joined the chat."));
    }

    pub(crate) fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\n").as_bytes());
    }

    /// Writes `bytes` as one or more records.
    pub(crate) fn send_raw(&mut self, bytes: &[u8]) {
        let tls = self.io.get_mut();
        tls.write_all(bytes).expect("write to the chatter over TLS");
        tls.flush().unwrap();
    }

    /// The TLS stream (to write records one by one, or take its keys).
    pub(crate) fn into_tls(self) -> StreamOwned<ClientConnection, TcpStream> {
        assert!(self.io.buffer().is_empty(), "lines left unread");
        self.io.into_inner()
    }

    /// The TCP stream under the TLS.
    pub(crate) fn tcp(&self) -> &TcpStream {
        &self.io.get_ref().sock
    }

    /// The next line, without its `\n`; fails the test on the end or after 10 s.
    pub(crate) fn line(&mut self) -> String {
        super::some_line(self.try_line(), &self.name)
    }

    /// The next line; `None` at a clean end (the server's `close_notify`).
    pub(crate) fn try_line(&mut self) -> std::io::Result<Option<String>> {
        super::read_line(&mut self.io, &self.name)
    }

    pub(crate) fn expect(&mut self, want: &str) {
        let got = self.line();
        assert_eq!(got, want, "{} got an unexpected line", self.name);
    }

    /// Reads lines up to and including `last`; returns those before it.
    pub(crate) fn lines_until(&mut self, last: &str) -> Vec<String> {
        super::lines_until(|| self.line(), last)
    }

    /// Expects a graceful end: the server's `close_notify`, then the end of the stream (a
    /// TCP end without `close_notify` fails, as rustls reports it).
    pub(crate) fn expect_end(&mut self) {
        match self.try_line() {
            Ok(None) => {}
            Ok(Some(line)) => panic!("{}: expected the end, got {line:?}", self.name),
            Err(e) => panic!("{}: expected a close_notify and the end: {e}", self.name),
        }
    }
}

/// What the server sent, past what the lines took (a WebSocket's frames).
impl Read for TlsClient {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.io.read(buf)
    }
}

/// The first flight of a fresh client: one record holding a ClientHello for [`NAME`].
pub(crate) fn client_hello(config: &Arc<ClientConfig>) -> Vec<u8> {
    let name = ServerName::try_from(NAME).unwrap();
    let mut conn = ClientConnection::new(config.clone(), name).unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    assert_eq!(out[0], 0x16, "a handshake record");
    let len = usize::from(u16::from_be_bytes([out[3], out[4]]));
    assert_eq!(out.len(), 5 + len, "one record");
    out
}

/// Takes `tls`'s keys and writes `attempts` renegotiation requests (a ClientHello as a
/// handshake message after the handshake) under them, as an attacker holding the session
/// would. Returns the TCP stream: its records can no longer be read as TLS here.
pub(crate) fn renegotiate(
    tls: StreamOwned<ClientConnection, TcpStream>,
    hello: &[u8],
    attempts: u64,
) -> TcpStream {
    let StreamOwned { conn, mut sock } = tls;
    let suite = conn.negotiated_cipher_suite().expect("a suite");
    let (seq, secrets) = conn.dangerous_extract_secrets().expect("the keys").tx;
    let (key, iv) = match secrets {
        ConnectionTrafficSecrets::Aes128Gcm { key, iv }
        | ConnectionTrafficSecrets::Aes256Gcm { key, iv }
        | ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => (key, iv),
        _ => panic!("secrets of an unexpected kind"),
    };
    let mut encrypter = match suite {
        SupportedCipherSuite::Tls13(s) => s.aead_alg.encrypter(key, iv),
        SupportedCipherSuite::Tls12(s) => {
            let fixed = s.aead_alg.key_block_shape().fixed_iv_len;
            let (fixed, explicit) = iv.as_ref().split_at(fixed);
            s.aead_alg.encrypter(key, fixed, explicit)
        }
    };
    let message = &hello[5..]; // the ClientHello handshake message, without its record header
    for i in 0..attempts {
        let plain = OutboundPlainMessage {
            typ: ContentType::Handshake,
            version: ProtocolVersion::TLSv1_2,
            payload: OutboundChunks::Single(message),
        };
        let record = encrypter.encrypt(plain, seq + i).unwrap().encode();
        if sock.write_all(&record).is_err() {
            break; // ended at the previous one
        }
    }
    sock
}

/// Reads until the server ends `stream`; fails the test if it has not within `limit`.
/// Returns how long it took and the first bytes it sent (alerts, say; at most 64 KiB).
pub(crate) fn expect_ended_within(stream: &mut TcpStream, limit: Duration) -> (Duration, Vec<u8>) {
    let started = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (started.elapsed(), got),
            Ok(n) => {
                let room = (64 * 1024usize).saturating_sub(got.len());
                got.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (started.elapsed(), got)
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("reading until the end: {e}"),
        }
        assert!(
            started.elapsed() < limit,
            "the server had not ended the connection after {limit:?}"
        );
    }
}
