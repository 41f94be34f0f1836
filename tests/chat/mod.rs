//! The chatter example, run in-process on an ephemeral port, and a blocking line client.
#![allow(dead_code)] // each test file uses some of it

#[path = "../../examples/chatter/protocol.rs"]
pub(crate) mod protocol;
#[path = "../../examples/chatter/server.rs"]
pub(crate) mod server;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::time::Duration;

use fibra::net::{NetPlugin, NetStats};
use fibra::Schedule;

pub(crate) use server::{Config, RoomStats};

/// How long a client waits for a line before the test fails.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The room's and the network plugin's counters.
pub(crate) type Stats = (RoomStats, NetStats);

/// The chatter as a [`crate::util::ServerThread`]: its shutdown asserts no socket is left.
impl crate::util::Served for server::Chatter {
    type Stats = Stats;

    fn stats(&self, s: &Schedule) -> Stats {
        (self.stats(), s.plugin::<NetPlugin>().unwrap().stats())
    }

    fn stop(self, s: &mut Schedule) {
        self.shutdown(s, Duration::from_secs(5));
        let net = s.plugin::<NetPlugin>().unwrap().stats();
        assert_eq!(net.sockets, 0, "sockets left open after the shutdown");
    }
}

/// A chatter served by its own thread; stopped (cleanly) when dropped.
pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    thread: crate::util::ServerThread<Stats>,
}

impl TestServer {
    pub(crate) fn start(config: Config) -> TestServer {
        let thread = crate::util::ServerThread::start(move |s| {
            let chatter = server::Chatter::start(s, "127.0.0.1:0", config).unwrap();
            (chatter.local_addr(), chatter)
        });
        TestServer {
            addr: thread.addr,
            thread,
        }
    }

    /// Like [`start`](Self::start), with the web page served too; returns its address.
    pub(crate) fn start_with_web(config: Config) -> (TestServer, SocketAddr) {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = crate::util::ServerThread::start(move |s| {
            let mut chatter = server::Chatter::start(s, "127.0.0.1:0", config).unwrap();
            tx.send(chatter.serve_web(s, "127.0.0.1:0").unwrap())
                .unwrap();
            (chatter.local_addr(), chatter)
        });
        let web = rx.recv().unwrap();
        let server = TestServer {
            addr: thread.addr,
            thread,
        };
        (server, web)
    }

    /// The room's and the network plugin's counters, as of the server's last round.
    pub(crate) fn stats(&self) -> Stats {
        self.thread.stats()
    }

    /// Waits until `f` holds for counters read after this call (never an older snapshot);
    /// fails the test after 10 s.
    pub(crate) fn wait_for(&self, what: &str, f: impl Fn(&RoomStats, &NetStats) -> bool) {
        self.thread.wait_for(what, |(room, net)| f(room, net));
    }

    pub(crate) fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    /// Connects and joins as `handle`.
    pub(crate) fn join(&self, handle: &str) -> Client {
        let mut c = self.client();
        c.login(handle);
        c
    }

    /// Stops the server (its shutdown asserts no socket is left) and waits for its thread.
    pub(crate) fn stop(self) {
        self.thread.stop();
    }
}

/// A blocking line client with a read timeout, so no test hangs.
pub(crate) struct Client {
    pub(crate) stream: TcpStream,
    reader: BufReader<TcpStream>,
    pub(crate) name: String,
}

impl Client {
    pub(crate) fn connect(addr: SocketAddr) -> Client {
        Client::from_stream(TcpStream::connect(addr).expect("connect to the chatter"))
    }

    pub(crate) fn from_stream(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Client {
            stream,
            reader,
            name: String::from("(no handle)"),
        }
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

    pub(crate) fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to the chatter");
    }

    /// The next line, without its `\n`; fails the test on EOF or after 10 s.
    pub(crate) fn line(&mut self) -> String {
        match self.try_line() {
            Ok(Some(line)) => line,
            Ok(None) => panic!("{}: the server closed the connection", self.name),
            Err(e) => panic!("{}: no line from the server: {e}", self.name),
        }
    }

    /// The next line; `None` at the end of the stream.
    pub(crate) fn try_line(&mut self) -> std::io::Result<Option<String>> {
        let mut raw = Vec::new();
        if self.reader.read_until(b'\n', &mut raw)? == 0 {
            return Ok(None);
        }
        assert_eq!(
            raw.pop(),
            Some(b'\n'),
            "{}: a line without its end",
            self.name
        );
        Ok(Some(
            String::from_utf8(raw).expect("the server sends UTF-8"),
        ))
    }

    pub(crate) fn expect(&mut self, want: &str) {
        let got = self.line();
        assert_eq!(got, want, "{} got an unexpected line", self.name);
    }

    /// Reads lines up to and including `last`; returns those before it.
    pub(crate) fn lines_until(&mut self, last: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.line();
            if line == last {
                return lines;
            }
            lines.push(line);
        }
    }

    /// Expects the server to have closed the connection: EOF (or a reset) next.
    pub(crate) fn expect_end(&mut self) {
        match self.try_line() {
            Ok(None) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Ok(Some(line)) => panic!("{}: expected the end, got {line:?}", self.name),
            Err(e) => panic!("{}: expected the end: {e}", self.name),
        }
    }

    /// Half-closes: the server sees the end of input; output can still arrive.
    pub(crate) fn shutdown_write(&mut self) {
        self.stream.shutdown(Shutdown::Write).unwrap();
    }

    /// Drops the connection with a reset (SO_LINGER 0) instead of a FIN.
    pub(crate) fn reset(self) {
        let socket = socket2::SockRef::from(&self.stream);
        socket.set_linger(Some(Duration::ZERO)).unwrap();
        drop(self);
    }

    /// Reads and discards everything until the end of the stream; returns the byte count.
    pub(crate) fn drain_to_end(&mut self) -> std::io::Result<usize> {
        let mut total = 0;
        let mut buf = [0u8; 64 * 1024];
        loop {
            match self.reader.read(&mut buf) {
                Ok(0) => return Ok(total),
                Ok(n) => total += n,
                Err(e) => return Err(e),
            }
        }
    }
}

/// A newcomer can still join and chat, and `member` (already in the room) hears it.
pub(crate) fn assert_serves_a_newcomer(server: &TestServer, member: &mut Client) {
    let handle = format!("new{}", NEWCOMERS.fetch_add(1, Ordering::Relaxed));
    let mut c = server.join(&handle);
    member.lines_until(&format!("{handle} has joined the chat."));
    c.send("/who");
    let who = c.line();
    assert!(
        who.starts_with("Online: ") && who.contains(&handle),
        "{who}"
    );
    c.send("fresh and well");
    c.expect(&format!("{handle} says: fresh and well"));
    member.lines_until(&format!("{handle} says: fresh and well"));
    c.send("/quit");
    c.expect_end();
    member.lines_until(&format!("{handle} has left the chat."));
}

static NEWCOMERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
