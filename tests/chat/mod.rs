//! The chatter example, run in-process on an ephemeral port, and a blocking line client.
#![allow(dead_code)] // each test file uses some of it

// The chatter's room and its reaches, as `examples/chatter/main.rs` lists them.
#[path = "../../examples/chatter/alone.rs"]
mod alone;
#[path = "../../examples/chatter/config.rs"]
mod config;
#[path = "../../examples/chatter/hub.rs"]
pub(crate) mod hub;
#[path = "../../examples/chatter/member.rs"]
mod member;
#[path = "../../examples/chatter/protocol.rs"]
pub(crate) mod protocol;
#[path = "../../examples/chatter/reach.rs"]
mod reach;
#[path = "../../examples/chatter/relay.rs"]
mod relay;
#[path = "../../examples/chatter/room.rs"]
mod room;
#[path = "../../examples/chatter/server.rs"]
pub(crate) mod server;
#[path = "../../examples/chatter/session.rs"]
mod session;
#[path = "../../examples/chatter/shutdown.rs"]
mod shutdown;
#[path = "../../examples/chatter/stackless.rs"]
mod stackless;
#[path = "../../examples/chatter/web.rs"]
mod web;
// The TLS doors, and a TLS client and hand-made records for the tests.
#[cfg(feature = "tls")]
pub(crate) mod tls;
#[cfg(feature = "tls")]
#[path = "../../examples/chatter/tls.rs"]
mod tls_door;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::time::Duration;

use fibra::net::{NetPlugin, NetStats};
use fibra::Schedule;

pub(crate) use config::Config;
pub(crate) use room::RoomStats;

/// How long a client waits for a line before the test fails.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The room's and the network plugin's counters.
pub(crate) type Stats = (RoomStats, NetStats);

/// More doors for a test server, opened on each thread's schedule once its chatter has
/// started (with the thread's index): a TLS listener, say.
pub(crate) type Doors =
    std::sync::Arc<dyn Fn(&mut Schedule, &mut server::Chatter, usize) + Send + Sync>;

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

/// A chatter served by its own thread, or (`threads` > 1) one room served by that many
/// schedules on their own threads tied by the hub, connections handed to the least-loaded;
/// stopped (cleanly) when dropped.
pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    /// Before the threads: stopped first, so that no connection comes during the stop.
    handoff: Option<fibra::net::Handoff>,
    hub: Option<std::sync::Arc<hub::Hub>>,
    threads: Vec<crate::util::ServerThread<Stats>>,
    /// Whether `stop` checks that members joined on every thread (or only connections).
    members_on_every_thread: bool,
    /// Whether `stop` checks the spread at all: not where members come through
    /// `SO_REUSEPORT` doors whose thread the kernel's hash picks (a few members all on one
    /// thread is a likely draw there, as the TLS doors' tests have).
    spread_checked: bool,
}

impl TestServer {
    /// One thread, the plain chatter.
    pub(crate) fn start(config: Config) -> TestServer {
        TestServer::start_on(1, config)
    }

    /// On `threads` threads (1: the plain chatter, as `start`).
    pub(crate) fn start_on(threads: usize, config: Config) -> TestServer {
        TestServer::start_with(threads, config, false).0
    }

    /// Like [`start`](Self::start), with the web page served too; returns its address.
    pub(crate) fn start_with_web(config: Config) -> (TestServer, SocketAddr) {
        TestServer::start_on_with_web(1, config)
    }

    /// [`start_on`](Self::start_on) with the web page (served by thread 0).
    pub(crate) fn start_on_with_web(threads: usize, config: Config) -> (TestServer, SocketAddr) {
        let (server, web) = TestServer::start_with(threads, config, true);
        (server, web.unwrap())
    }

    fn start_with(threads: usize, config: Config, web: bool) -> (TestServer, Option<SocketAddr>) {
        TestServer::start_with_doors(threads, config, web, None)
    }

    /// [`start_on`](Self::start_on), the web page too when `web`, and `doors` opened on
    /// every thread.
    pub(crate) fn start_with_doors(
        threads: usize,
        config: Config,
        web: bool,
        doors: Option<Doors>,
    ) -> (TestServer, Option<SocketAddr>) {
        if threads == 1 {
            let (web_tx, web_rx) = std::sync::mpsc::channel();
            let thread = crate::util::ServerThread::start(move |s| {
                let mut chatter = server::Chatter::start(s, "127.0.0.1:0", config).unwrap();
                if web {
                    web_tx
                        .send(chatter.serve_web(s, "127.0.0.1:0").unwrap())
                        .unwrap();
                }
                if let Some(doors) = &doors {
                    doors(s, &mut chatter, 0);
                }
                (chatter.local_addr(), chatter)
            });
            let web = web.then(|| web_rx.recv().unwrap());
            let server = TestServer {
                addr: thread.addr,
                handoff: None,
                hub: None,
                threads: vec![thread],
                members_on_every_thread: true,
                spread_checked: true,
            };
            return (server, web);
        }
        let hub = hub::Hub::new(threads);
        let (servers, targets, web) = threaded(&hub, &config, None, web, doors);
        let options = fibra::net::ListenOptions::new();
        let handoff =
            fibra::net::Handoff::bind("127.0.0.1:0", &options, targets, hub.loads().clone())
                .unwrap();
        let server = TestServer {
            addr: handoff.local_addr(),
            handoff: Some(handoff),
            hub: Some(hub),
            threads: servers,
            members_on_every_thread: true,
            spread_checked: true,
        };
        (server, web)
    }

    /// For a test whose members may all end on one thread (the winners of races): `stop`
    /// then checks that every thread served connections, not members.
    pub(crate) fn members_may_be_anywhere(&mut self) {
        self.members_on_every_thread = false;
    }

    /// For a test whose members come through `SO_REUSEPORT` doors: `stop` does not check
    /// how the kernel's hash spread them.
    pub(crate) fn spread_by_the_kernel(&mut self) {
        self.spread_checked = false;
    }

    /// On `threads` threads, each with its own `SO_REUSEPORT` listener on one port
    /// (`--accept reuseport`): the kernel picks each connection's thread.
    pub(crate) fn start_reuseport(threads: usize, config: Config) -> TestServer {
        // A port for the group, reserved while the threads bind it.
        let probe =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        probe.set_reuse_port(true).unwrap();
        probe
            .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        let addr = probe.local_addr().unwrap().as_socket().unwrap();
        let hub = hub::Hub::new(threads);
        let (servers, _, _) = threaded(&hub, &config, Some(addr), false, None);
        drop(probe);
        TestServer {
            addr,
            handoff: None,
            hub: Some(hub),
            threads: servers,
            // The kernel's hash places the members.
            members_on_every_thread: false,
            spread_checked: true,
        }
    }

    /// How many threads serve the room.
    pub(crate) fn thread_count(&self) -> usize {
        self.threads.len()
    }

    /// The room's and the network plugins' counters, summed over the threads, as of each
    /// server's last round.
    pub(crate) fn stats(&self) -> Stats {
        self.with_handoff(sum(self.threads.iter().map(|t| t.stats())))
    }

    /// The hand-off's accept pauses count as the network's.
    fn with_handoff(&self, mut total: Stats) -> Stats {
        if let Some(handoff) = &self.handoff {
            total.1.accept_pauses += handoff.accept_pauses();
        }
        total
    }

    /// Each thread's counters.
    pub(crate) fn stats_per_thread(&self) -> Vec<Stats> {
        self.threads.iter().map(|t| t.stats()).collect()
    }

    /// Waits until `f` holds for counters (summed over the threads) each read after this
    /// call (never an older snapshot); fails the test after 10 s.
    pub(crate) fn wait_for(&self, what: &str, f: impl Fn(&RoomStats, &NetStats) -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let called: Vec<u64> = self.threads.iter().map(|t| t.snapshot().0).collect();
        loop {
            let snapshots: Vec<(u64, Stats)> = self.threads.iter().map(|t| t.snapshot()).collect();
            let fresh = snapshots
                .iter()
                .zip(&called)
                .all(|((round, _), c)| *round > c + 1);
            let total = self.with_handoff(sum(snapshots.iter().map(|(_, s)| *s)));
            if fresh && f(&total.0, &total.1) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "waited 10 s for {what}: {total:?}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
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

    /// Stops the server (its shutdown asserts no socket is left) and waits for its
    /// threads. On more than one thread, it first checks that members were served on every
    /// thread when the test had members enough (the hand-off spreads them by load).
    pub(crate) fn stop(mut self) {
        if self.threads.len() > 1 && self.spread_checked && !std::thread::panicking() {
            let per_thread = self.stats_per_thread();
            let joined: Vec<u64> = per_thread.iter().map(|s| s.0.joined).collect();
            let served: Vec<u64> = per_thread.iter().map(|s| s.0.served).collect();
            if joined.iter().sum::<u64>() >= self.threads.len() as u64 {
                let on_every = if self.members_on_every_thread {
                    &joined
                } else {
                    &served
                };
                assert!(
                    on_every.iter().all(|&j| j > 0),
                    "members should have been on every thread: joined {joined:?}, served {served:?}"
                );
            }
        }
        if let Some(handoff) = self.handoff.take() {
            handoff.stop();
        }
        if let Some(hub) = &self.hub {
            hub.begin_shutdown();
        }
        for thread in self.threads.drain(..) {
            thread.stop();
        }
    }
}

/// The threads of one room tied by `hub`, each listening on `listen_on` (`SO_REUSEPORT`) or
/// adopting what a hand-off sends (the senders, by thread); thread 0 serves the web page
/// when `web` (its address); every thread opens `doors`.
#[allow(clippy::type_complexity)]
fn threaded(
    hub: &std::sync::Arc<hub::Hub>,
    config: &Config,
    listen_on: Option<SocketAddr>,
    web: bool,
    doors: Option<Doors>,
) -> (
    Vec<crate::util::ServerThread<Stats>>,
    Vec<fibra::tasks::RemoteSender<fibra::net::Handed>>,
    Option<SocketAddr>,
) {
    let threads = hub.threads();
    let (handed_tx, handed_rx) = std::sync::mpsc::channel();
    let (web_tx, web_rx) = std::sync::mpsc::channel();
    let servers = (0..threads)
        .map(|index| {
            let (hub, config) = (hub.clone(), config.clone());
            let (handed_tx, web_tx) = (handed_tx.clone(), web_tx.clone());
            let doors = doors.clone();
            crate::util::ServerThread::start(move |s| {
                let on = listen_on.map(|a| a.to_string());
                let (mut chatter, sender) =
                    server::Chatter::start_threaded(s, on.as_deref(), config, hub, index).unwrap();
                handed_tx.send((index, sender)).unwrap();
                if web && index == 0 {
                    web_tx
                        .send(chatter.serve_web(s, "127.0.0.1:0").unwrap())
                        .unwrap();
                }
                if let Some(doors) = &doors {
                    doors(s, &mut chatter, index);
                }
                (chatter.local_addr(), chatter)
            })
        })
        .collect();
    let mut senders: Vec<_> = (0..threads).map(|_| handed_rx.recv().unwrap()).collect();
    senders.sort_by_key(|(index, _)| *index);
    let web = web.then(|| web_rx.recv().unwrap());
    (servers, senders.into_iter().map(|(_, t)| t).collect(), web)
}

/// Counters summed over threads.
fn sum(stats: impl Iterator<Item = Stats>) -> Stats {
    let mut total = Stats::default();
    for (room, net) in stats {
        total.0.sessions += room.sessions;
        total.0.members += room.members;
        total.0.deliveries += room.deliveries;
        total.0.cut_off += room.cut_off;
        total.0.joined += room.joined;
        total.0.served += room.served;
        total.0.crossed += room.crossed;
        total.1.connections += net.connections;
        total.1.listeners += net.listeners;
        total.1.sockets += net.sockets;
        total.1.waiting += net.waiting;
        total.1.queued += net.queued;
        total.1.pooled_buffers += net.pooled_buffers;
        total.1.timers += net.timers;
        total.1.reads += net.reads;
        total.1.writes += net.writes;
        total.1.accept_pauses += net.accept_pauses;
        total.1.groups += net.groups;
        total.1.watching += net.watching;
    }
    total
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
        some_line(self.try_line(), &self.name)
    }

    /// The next line; `None` at the end of the stream.
    pub(crate) fn try_line(&mut self) -> std::io::Result<Option<String>> {
        read_line(&mut self.reader, &self.name)
    }

    pub(crate) fn expect(&mut self, want: &str) {
        let got = self.line();
        assert_eq!(got, want, "{} got an unexpected line", self.name);
    }

    /// Reads lines up to and including `last`; returns those before it.
    pub(crate) fn lines_until(&mut self, last: &str) -> Vec<String> {
        lines_until(|| self.line(), last)
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
/// The next line of `reader`, without its `\n`; `None` at the end of the stream. `name`
/// (the client's) is for messages.
pub(crate) fn read_line(reader: &mut impl BufRead, name: &str) -> std::io::Result<Option<String>> {
    let mut raw = Vec::new();
    if reader.read_until(b'\n', &mut raw)? == 0 {
        return Ok(None);
    }
    assert_eq!(raw.pop(), Some(b'\n'), "{name}: a line without its end");
    Ok(Some(
        String::from_utf8(raw).expect("the server sends UTF-8"),
    ))
}

/// The line [`read_line`] read; fails the test on the end or an error.
pub(crate) fn some_line(read: std::io::Result<Option<String>>, name: &str) -> String {
    match read {
        Ok(Some(line)) => line,
        Ok(None) => panic!("{name}: the server closed the connection"),
        Err(e) => panic!("{name}: no line from the server: {e}"),
    }
}

/// Takes lines from `line` up to and including `last`; returns those before it.
pub(crate) fn lines_until(mut line: impl FnMut() -> String, last: &str) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let line = line();
        if line == last {
            return lines;
        }
        lines.push(line);
    }
}

/// Members `eof`, `rst` and `half` join and end, one after the other, by EOF, by a reset,
/// and by a half-close after a complete line and an incomplete one: `ann` hears each join
/// and each leave (and half's complete line); the half-closed side still reads that line,
/// then the end.
pub(crate) fn eof_rst_and_half_leave(server: &TestServer, ann: &mut Client) {
    let eof = server.join("eof");
    ann.expect("eof has joined the chat.");
    drop(eof);
    ann.expect("eof has left the chat.");

    let rst = server.join("rst");
    ann.expect("rst has joined the chat.");
    rst.reset();
    ann.expect("rst has left the chat.");

    let mut half = server.join("half");
    ann.expect("half has joined the chat.");
    half.send_raw(b"complete line\nincomplete");
    half.shutdown_write();
    ann.expect("half says: complete line");
    ann.expect("half has left the chat.");
    half.expect("half says: complete line");
    half.expect_end();
}

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

/// Makes each named test (a `fn(threads: usize)`) two tests: `one_thread::<name>`, the plain
/// chatter, and `two_threads::<name>`, one room on two threads with members on both.
#[allow(unused_macros)] // the browser test runs on one thread only
macro_rules! on_one_and_two_threads {
    ($($name:ident),* $(,)?) => {
        mod one_thread {
            $(
                #[test]
                fn $name() {
                    super::$name(1)
                }
            )*
        }
        mod two_threads {
            $(
                #[test]
                fn $name() {
                    super::$name(2)
                }
            )*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_one_and_two_threads;

/// The name `run_in_child` needs for the variant of `test` on `threads` threads.
pub(crate) fn variant_name(test: &str, threads: usize) -> String {
    let module = if threads == 1 {
        "one_thread"
    } else {
        "two_threads"
    };
    format!("{module}::{test}")
}

/// Reads `stream` 16 KiB every 10 ms (about 1.6 MB/s, a steady reader on a modest link)
/// until `stop`; the bytes read, and why it stopped early (empty if it did not).
pub(crate) fn steady_reader(
    mut stream: TcpStream,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<(usize, String)> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 16 * 1024];
        let mut total = 0usize;
        while !stop.load(Ordering::Relaxed) {
            match stream.read(&mut buf) {
                Ok(0) => return (total, "the server closed the connection".to_owned()),
                Ok(n) => total += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return (total, e.to_string()),
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        (total, String::new())
    })
}

/// Reads everything `stream` gets, as fast as it comes, until the end.
pub(crate) fn sink(mut stream: TcpStream) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 256 * 1024];
        while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
    })
}
