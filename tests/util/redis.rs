//! A real `redis-server` for one test: on a free port of 127.0.0.1, with no persistence
//! (`--save '' --appendonly no`), started and waited for (it answers `PING`), and killed by
//! its PID when the guard is dropped (also when the test panics).
//!
//! A missing `redis-server` fails the test with a message saying how to install it: the
//! tests never skip silently.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer its first `PING`.
const START_LIMIT: Duration = Duration::from_secs(10);

/// A running `redis-server`, killed when dropped.
#[derive(Debug)]
pub(crate) struct RedisServer {
    child: Option<Child>,
    port: u16,
    extra: Vec<String>,
}

/// Where `redis-server` is: `$REDIS_SERVER`, or the first on `PATH`, or Debian's path.
fn binary() -> String {
    if let Ok(path) = std::env::var("REDIS_SERVER") {
        return path;
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("redis-server"))
            .find(|p| p.is_file())
    });
    match on_path {
        Some(p) => p.to_string_lossy().into_owned(),
        None if std::path::Path::new("/usr/bin/redis-server").is_file() => {
            "/usr/bin/redis-server".into()
        }
        None => panic!(
            "redis-server is not installed: these tests need a real Redis \
             (Debian: `apt-get install -y redis-server`; or set REDIS_SERVER to its path)"
        ),
    }
}

/// A port of 127.0.0.1 free right now (bound, read, released).
pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().unwrap().port()
}

impl RedisServer {
    /// Starts a server on a free port.
    pub(crate) fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// Starts a server on a free port with extra arguments (`["--requirepass", "pw"]`...).
    pub(crate) fn start_with(extra: &[&str]) -> RedisServer {
        let mut server = RedisServer {
            child: None,
            port: free_port(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        server.launch();
        server
    }

    /// The port it listens on (the same across [`restart`](Self::restart)s).
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port`.
    pub(crate) fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `redis://127.0.0.1:port`.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Whether the process is running (not killed by [`kill`](Self::kill)).
    pub(crate) fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server (SIGKILL, by PID) and reaps it; its data is gone.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty, after a [`kill`](Self::kill) (kills
    /// it first if it runs).
    pub(crate) fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    fn launch(&mut self) {
        let port = self.port.to_string();
        let dir = std::env::temp_dir();
        let mut child = Command::new(binary())
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start redis-server: {e}"));
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("redis-server on port {port} exited at start: {status}");
            }
            if answers_ping(self.addr()) {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("redis-server on port {port} did not answer PING within {START_LIMIT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
    }
}

/// Whether a Redis at `addr` answers `PING` (`+PONG`, or `-NOAUTH` with a password set).
fn answers_ping(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 64];
    match stream.read(&mut reply) {
        Ok(n) => reply[..n].starts_with(b"+PONG") || reply[..n].starts_with(b"-NOAUTH"),
        Err(_) => false,
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
