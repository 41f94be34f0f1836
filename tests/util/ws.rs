//! A small WebSocket client for tests: the handshake, masked frames out, frames in.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A client's side: handshakes, sends masked frames, reads the server's frames.
pub(crate) struct Client {
    pub(crate) c: TcpStream,
}

impl Client {
    pub(crate) fn open(addr: std::net::SocketAddr, path: &str) -> Client {
        let (client, head) = Client::handshake(addr, path, "13", "dGhlIHNhbXBsZSBub25jZQ==");
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(
            head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            "{head}"
        );
        client
    }

    pub(crate) fn handshake(
        addr: std::net::SocketAddr,
        path: &str,
        version: &str,
        key: &str,
    ) -> (Client, String) {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
             Sec-WebSocket-Version: {version}\r\nSec-WebSocket-Key: {key}\r\n\r\n"
        );
        c.write_all(request.as_bytes()).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(c.read(&mut byte).unwrap(), 1);
            head.push(byte[0]);
        }
        (Client { c }, String::from_utf8(head).unwrap())
    }

    /// Sends a frame: `first` is the first byte (FIN, RSV, opcode), masked unless `unmasked`.
    pub(crate) fn raw(&mut self, first: u8, payload: &[u8], masked: bool) {
        let mut frame = vec![first];
        let mask_bit = if masked { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => frame.push(mask_bit | n as u8),
            n if n <= 0xFFFF => {
                frame.push(mask_bit | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(mask_bit | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let key = [0x12, 0x34, 0x56, 0x78];
        if masked {
            frame.extend_from_slice(&key);
            frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        } else {
            frame.extend_from_slice(payload);
        }
        let _ = self.c.write_all(&frame);
    }

    pub(crate) fn send(&mut self, opcode: u8, payload: &[u8]) {
        self.raw(0x80 | opcode, payload, true);
    }

    /// The next frame: (opcode, payload).
    pub(crate) fn next(&mut self) -> (u8, Vec<u8>) {
        let mut h = [0u8; 2];
        self.c.read_exact(&mut h).unwrap();
        assert_eq!(h[1] & 0x80, 0, "a server's frames are not masked");
        let len = match h[1] & 0x7F {
            126 => {
                let mut b = [0u8; 2];
                self.c.read_exact(&mut b).unwrap();
                u16::from_be_bytes(b) as usize
            }
            127 => {
                let mut b = [0u8; 8];
                self.c.read_exact(&mut b).unwrap();
                u64::from_be_bytes(b) as usize
            }
            n => n as usize,
        };
        let mut payload = vec![0u8; len];
        self.c.read_exact(&mut payload).unwrap();
        (h[0] & 0x0F, payload)
    }

    /// Expects the server's close frame with `code`, then the end of the connection.
    pub(crate) fn expect_close(&mut self, code: u16) {
        let (opcode, payload) = self.next();
        assert_eq!(opcode, 8, "expected a close, got {opcode}: {payload:?}");
        assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), code);
        let mut rest = Vec::new();
        match self.c.read_to_end(&mut rest) {
            Ok(_) => {}
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
        }
    }
    /// Sends a text message.
    pub(crate) fn say(&mut self, text: &str) {
        self.send(1, text.as_bytes());
    }

    /// The next text message (pings and pongs skipped).
    pub(crate) fn text(&mut self) -> String {
        loop {
            match self.next() {
                (1, payload) => return String::from_utf8(payload).unwrap(),
                (9 | 10, _) => {}
                (opcode, payload) => panic!("expected text, got {opcode}: {payload:?}"),
            }
        }
    }

    /// The next text message that `wanted` accepts, skipping the others.
    pub(crate) fn text_where(&mut self, wanted: impl Fn(&str) -> bool) -> String {
        loop {
            let text = self.text();
            if wanted(&text) {
                return text;
            }
        }
    }
}

/// A WebSocket handshake to `/ws` at `addr` with `Host: host` and `headers` (each
/// `Name: value\r\n`) after the usual ones; the answer's head, or what went wrong reading it.
pub(crate) fn handshake_head(addr: std::net::SocketAddr, host: &[u8], headers: &[u8]) -> String {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut request = b"GET /ws HTTP/1.1\r\nHost: ".to_vec();
    request.extend_from_slice(host);
    request.extend_from_slice(
        b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
    );
    request.extend_from_slice(headers);
    request.extend_from_slice(b"\r\n");
    c.write_all(&request).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match c.read(&mut byte) {
            Ok(0) => return format!("closed after {:?}", String::from_utf8_lossy(&head)),
            Ok(_) => head.push(byte[0]),
            Err(e) => return format!("{e} after {:?}", String::from_utf8_lossy(&head)),
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}
