//! The federation's test rig: a real `redis-server` of the test's own on a free port (no
//! saving, killed by its process id), and chatter processes ("nodes") on it, each on free
//! ports, whose log lines the test can wait for. Every wait is bounded.
#![allow(dead_code)] // each test uses some of it

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::chat::Client;
use crate::util;

/// The test's own `redis-server` (`tests/util/redis.rs`).
pub(crate) use crate::util::redis::RedisServer as Redis;

/// What a test asks its Redis directly.
pub(crate) trait Ask {
    /// A command's reply, in RESP's words (`+OK`, `:3`, a bulk string as its text, `(nil)`,
    /// an array as its items joined by spaces).
    fn cmd(&self, args: &[&str]) -> String;
}

impl Ask for Redis {
    fn cmd(&self, args: &[&str]) -> String {
        let ask = || -> std::io::Result<String> {
            let mut c = TcpStream::connect(self.addr())?;
            c.set_read_timeout(Some(Duration::from_secs(5)))?;
            let mut out = format!("*{}\r\n", args.len());
            for a in args {
                out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
            }
            c.write_all(out.as_bytes())?;
            read_reply(&mut BufReader::new(c))
        };
        ask().unwrap_or_else(|e| panic!("redis {args:?}: {e}"))
    }
}

fn read_reply(r: &mut impl BufRead) -> std::io::Result<String> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let line = line.trim_end().to_owned();
    match line.as_bytes().first() {
        Some(b'$') => {
            let n: i64 = line[1..].parse().unwrap();
            if n < 0 {
                return Ok("(nil)".into());
            }
            let mut buf = vec![0; n as usize + 2];
            r.read_exact(&mut buf)?;
            buf.truncate(n as usize);
            Ok(String::from_utf8_lossy(&buf).into_owned())
        }
        Some(b'*') => {
            let n: i64 = line[1..].parse().unwrap();
            let items: std::io::Result<Vec<String>> =
                (0..n.max(0)).map(|_| read_reply(r)).collect();
            Ok(items?.join(" "))
        }
        Some(_) => Ok(line),
        None => Err(std::io::Error::other("redis closed the connection")),
    }
}

/// A chatter process, a node of the room in a [`Redis`].
pub(crate) struct Node {
    pub(crate) name: String,
    child: Option<Child>,
    /// Its telnet address.
    pub(crate) addr: SocketAddr,
    /// Its web page's address.
    pub(crate) web: SocketAddr,
    output: Receiver<String>,
    /// What it said so far (for failure messages).
    said: std::cell::RefCell<Vec<String>>,
}

impl Node {
    /// `chatter --redis URL --node NAME` with `more` flags on free ports; waits until it
    /// listens and has said its hello in Redis.
    pub(crate) fn start(redis: &Redis, name: &str, more: &[&str]) -> Node {
        Node::start_at(&redis.url(), name, more)
    }

    pub(crate) fn start_at(url: &str, name: &str, more: &[&str]) -> Node {
        let mut child = Command::new(util::example("chatter"))
            .args(["--addr", "127.0.0.1:0", "--web-addr", "127.0.0.1:0"])
            .args(["--redis", url, "--node", name])
            .args(more)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, output) = std::sync::mpsc::channel();
        let stdout: Box<dyn Read + Send> = Box::new(child.stdout.take().unwrap());
        let stderr: Box<dyn Read + Send> = Box::new(child.stderr.take().unwrap());
        for stream in [stdout, stderr] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let mut node = Node {
            name: name.to_owned(),
            child: Some(child),
            addr: "0.0.0.0:0".parse().unwrap(),
            web: "0.0.0.0:0".parse().unwrap(),
            output,
            said: Default::default(),
        };
        let listening = node.wait_for("listening on");
        node.addr = address_in(&listening, "listening on ");
        let web = node.wait_for("web page on http://");
        node.web = address_in(&web, "web page on http://");
        node.wait_for("joined the room in Redis");
        node
    }

    /// Waits up to `within` for a log line containing `needle`; returns it.
    pub(crate) fn try_wait_for(&self, needle: &str, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        if let Some(line) = self.said.borrow().iter().find(|l| l.contains(needle)) {
            return Some(line.clone());
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(line) => {
                    self.said.borrow_mut().push(line.clone());
                    if line.contains(needle) {
                        return Some(line);
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Waits up to 10 s for a log line containing `needle`.
    pub(crate) fn wait_for(&self, needle: &str) -> String {
        self.try_wait_for(needle, Duration::from_secs(10))
            .unwrap_or_else(|| {
                panic!(
                    "node {} never said {needle:?}; it said:\n{}",
                    self.name,
                    self.said.borrow().join("\n")
                )
            })
    }

    /// Its log so far.
    pub(crate) fn log(&self) -> String {
        while let Ok(line) = self.output.try_recv() {
            self.said.borrow_mut().push(line);
        }
        self.said.borrow().join("\n")
    }

    /// A telnet client, connected.
    pub(crate) fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    /// A telnet member `handle`, logged in (its own join read).
    pub(crate) fn join(&self, handle: &str) -> Client {
        let mut c = self.client();
        c.login(handle);
        c
    }

    /// A browser member `handle`, logged in.
    pub(crate) fn join_web(&self, handle: &str) -> util::ws::Client {
        let mut b = util::ws::Client::open(self.web, "/ws");
        assert_eq!(b.text(), crate::chat::protocol::PROMPT);
        b.say(handle);
        assert_eq!(b.text(), format!("{handle} has joined the chat."));
        b
    }

    fn pid(&self) -> libc::pid_t {
        libc::pid_t::try_from(self.child.as_ref().unwrap().id()).unwrap()
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: `kill` with the id of our own child, not yet reaped; it only sends a signal.
        assert_eq!(unsafe { libc::kill(self.pid(), signal) }, 0);
    }

    /// SIGSTOP: the node stands still (no heartbeat, no reading) until [`resume`].
    pub(crate) fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT after [`pause`].
    pub(crate) fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    /// SIGKILL: the node dies with no goodbye.
    pub(crate) fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGINT, and its exit (bounded): whether it exited 0.
    pub(crate) fn interrupt(mut self) -> bool {
        self.signal(libc::SIGINT);
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // our own child, by handle
            let _ = child.wait();
        }
    }
}

fn address_in(line: &str, after: &str) -> SocketAddr {
    let at = line.find(after).unwrap() + after.len();
    let addr: String = line[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
        .collect();
    addr.parse().unwrap_or_else(|e| panic!("{line}: {e}"))
}

/// Reads `c`'s lines until `want` of them are `says:` lines (others skipped); returns those.
pub(crate) fn says(c: &mut Client, want: usize) -> Vec<String> {
    let mut lines = Vec::with_capacity(want);
    while lines.len() < want {
        let line = c.line();
        if line.contains(" says: ") {
            lines.push(line);
        }
    }
    lines
}

/// A TCP proxy to a [`Redis`], which a test can cut (every connection through it reset, new
/// ones refused) and heal: one node away from Redis while the others are not.
pub(crate) struct Proxy {
    pub(crate) port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    live: std::sync::Arc<std::sync::Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    pub(crate) fn to(redis: &Redis) -> Proxy {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = redis.port();
        let proxy = Proxy {
            port,
            cut: Default::default(),
            live: Default::default(),
        };
        let (cut, live) = (proxy.cut.clone(), proxy.live.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                if cut.load(Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let mut live = live.lock().unwrap();
                live.push(client.try_clone().unwrap());
                live.push(server.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        proxy
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Every connection through it ends; new ones are refused until [`heal`].
    pub(crate) fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for s in self.live.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    pub(crate) fn heal(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Reads `c`'s lines until `want`; fails the test on anything in `never` before it.
pub(crate) fn until_no(c: &mut Client, want: &str, never: &[&str]) -> Vec<String> {
    let lines = c.lines_until(want);
    for line in &lines {
        assert!(
            !never.iter().any(|n| line.contains(n)),
            "{}: unexpected {line:?} before {want:?}",
            c.name
        );
    }
    lines
}

/// `ann` on node `a` and `bob` on node `b`, logged in, ann having heard bob join.
pub(crate) fn ann_and_bob(a: &Node, b: &Node) -> (Client, Client) {
    let mut ann = a.join("ann");
    let bob = b.join("bob");
    ann.lines_until("bob has joined the chat.");
    (ann, bob)
}

/// The `n` lines `"{who} says: {text}{k}"`, k from 0: what `says` reads of `who`'s lines.
pub(crate) fn said(who: &str, text: &str, n: usize) -> Vec<String> {
    (0..n).map(|k| format!("{who} says: {text}{k}")).collect()
}

/// `DEBUG SLEEP secs` on a thread of its own (the Redis must allow `DEBUG`): Redis stands
/// still that long; the thread ends with its `+OK`.
pub(crate) fn redis_sleeps(redis: &Redis, secs: u32) -> std::thread::JoinHandle<()> {
    let addr = redis.addr();
    let secs = secs.to_string();
    std::thread::spawn(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        let command = format!(
            "*3\r\n$5\r\nDEBUG\r\n$5\r\nSLEEP\r\n${}\r\n{secs}\r\n",
            secs.len()
        );
        c.write_all(command.as_bytes()).unwrap();
        let mut ok = [0u8; 5];
        c.read_exact(&mut ok).unwrap();
        assert_eq!(&ok, b"+OK\r\n");
    })
}

/// Waits up to `within` for `GET key` to answer `value` (in [`Ask::cmd`]'s words); fails
/// the test, naming `what`, if it never does.
pub(crate) fn wait_for_value(redis: &Redis, key: &str, value: &str, within: Duration, what: &str) {
    let deadline = Instant::now() + within;
    while redis.cmd(&["GET", key]) != value {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Node a (with `a_args`) on `redis` through a [`Proxy`], node b (with `b_args`) on `redis`
/// itself, [`ann_and_bob`] on them; then the proxy is cut and a has lost Redis.
pub(crate) fn a_cut_off(
    redis: &Redis,
    a_args: &[&str],
    b_args: &[&str],
) -> (Proxy, Node, Node, Client, Client) {
    let proxy = Proxy::to(redis);
    let a = Node::start_at(&proxy.url(), "a", a_args);
    let b = Node::start(redis, "b", b_args);
    let (ann, bob) = ann_and_bob(&a, &b);
    proxy.cut();
    a.wait_for("lost Redis");
    (proxy, a, b, ann, bob)
}
