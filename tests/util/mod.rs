//! Helpers shared by the test files.
#![allow(dead_code)] // each test file uses some of them

// json.rs and webdriver.rs, beside this file, are the browser test's own (tests/browser.rs
// includes them), so that the other test files do not compile them.
pub(crate) mod ws;
// An echoing stackless WebSocket server on a thread (tests/websocket_stackless*.rs).
pub(crate) mod ws_stackless;
// Tasklets that count themselves when they return (`checked`, `all_ended`).
pub(crate) mod checked;
// A `Protocol` recording its callbacks, its server, ways to end a connection
// (tests/protocol.rs, tests/net_stackless*.rs).
pub(crate) mod recorder;
// A real redis-server per test, on a free port, killed by PID on drop (tests/redis_*.rs).
pub(crate) mod redis;
// Test certificates (a CA and a leaf for localhost) and rustls configs for them.
#[cfg(feature = "tls")]
pub(crate) mod certs;

use std::cell::Cell;
use std::rc::Rc;

use fibra::rt::Schedule;
use fibra::tasks::TasksPlugin;

thread_local! {
    /// Panics on this thread since the last [`run_all`] or [`run_until`] looked (or
    /// [`forget_panics`]): a tasklet's failed assertion ends that tasklet alone, so the
    /// schedule's runs check this to fail the test.
    static PANICS: Cell<u32> = const { Cell::new(0) };
    /// This thread's test panics on purpose ([`panics_expected`]).
    static EXPECTED: Cell<bool> = const { Cell::new(false) };
}

/// This test's tasklets or callbacks panic on purpose (it checks that the panic is
/// contained): its runs do not fail for panics, so its checks must be made outside
/// tasklets (a log, a run's condition, a join).
pub(crate) fn panics_expected() {
    EXPECTED.with(|e| e.set(true));
}

/// Counts every panic on the thread it happens on (then prints it as before).
fn count_panics() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.with(|p| p.set(p.get() + 1));
            report(info);
        }));
    });
}

/// Forgets the panics on this thread so far, returning how many: for a test whose tasklets
/// panic on purpose (containment), before it runs the schedule again.
pub(crate) fn forget_panics() -> u32 {
    PANICS.with(|p| p.replace(0))
}

/// Fails the test if anything panicked on this thread (a tasklet's assertion) since the last
/// look.
fn no_panics() {
    let n = forget_panics();
    if EXPECTED.with(Cell::get) {
        return;
    }
    assert!(
        n == 0,
        "{n} panic(s) on the schedule's thread (see above): a tasklet's assertion failed"
    );
}

/// A test's schedule: a [`Schedule`] that, when the test is done with it, fails the test if
/// anything panicked on its thread meanwhile (a tasklet's failed assertion ends that tasklet
/// alone; [`panics_expected`] for a test whose tasklets panic on purpose).
pub(crate) struct TestSchedule(Schedule);

impl std::ops::Deref for TestSchedule {
    type Target = Schedule;
    fn deref(&self) -> &Schedule {
        &self.0
    }
}

impl std::ops::DerefMut for TestSchedule {
    fn deref_mut(&mut self) -> &mut Schedule {
        &mut self.0
    }
}

impl Drop for TestSchedule {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            no_panics();
        }
    }
}

/// A schedule with the tasks plugin.
pub(crate) fn schedule() -> TestSchedule {
    count_panics();
    let mut s = Schedule::new();
    s.add_plugin(TasksPlugin::new()).unwrap();
    TestSchedule(s)
}

/// Counts its drops in a shared cell: proves destructors ran, and ran once.
pub(crate) struct DropCounter(pub(crate) Rc<Cell<u32>>);

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

/// A schedule with the tasks and network plugins.
pub(crate) fn net_schedule() -> TestSchedule {
    let mut s = schedule();
    s.add_plugin(fibra::net::NetPlugin::new().unwrap()).unwrap();
    s
}

/// A listener on a free port of 127.0.0.1, bound from the host (the schedule needs the
/// network plugin).
pub(crate) fn listen(s: &Schedule) -> fibra::net::Listener {
    listen_with(s, fibra::net::ListenOptions::new())
}

/// [`listen`] with options.
pub(crate) fn listen_with(
    s: &Schedule,
    options: fibra::net::ListenOptions,
) -> fibra::net::Listener {
    s.plugin::<fibra::net::NetPlugin>()
        .expect("the network plugin")
        .listen_with("127.0.0.1:0", options)
        .expect("listen on 127.0.0.1")
}

/// Runs the schedule until every tasklet ended; fails the test after `secs` seconds.
pub(crate) fn run_all(s: &mut Schedule, secs: u64) {
    count_panics();
    let left = s
        .run_for(std::time::Duration::from_secs(secs))
        .expect("the schedule failed");
    if left {
        let waiting: Vec<String> = s
            .tasklets()
            .map(|t| format!("{} `{}` {:?}", t.id, t.name, t.waiting_on))
            .collect();
        panic!("tasklets still running after {secs} s: {waiting:?}");
    }
    no_panics();
}

/// Ticks the schedule (sleeping in the poller up to 2 ms at a time) until `done`; fails the
/// test, naming `what`, after 20 s.
pub(crate) fn run_until(s: &mut Schedule, what: &str, done: impl Fn() -> bool) {
    count_panics();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        s.tick_within(std::time::Duration::from_millis(2)).unwrap();
    }
    no_panics();
}

/// Runs `scenario` on a thread of its own and returns what it returns; fails the test if it
/// does not end within `secs` seconds (a schedule blocked for good, say), naming `what`.
pub(crate) fn on_thread_within<T: Send + 'static>(
    what: &str,
    secs: u64,
    scenario: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(scenario());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(secs)) {
        Ok(out) => out,
        Err(e) => panic!("{what}: did not finish within {secs} s ({e})"),
    }
}

/// The network plugin's counters.
/// Whether `t` is one of the network plugin's input workers waiting for its next job: it
/// serves no connection now (it is named after the job that started it).
pub(crate) fn is_idle_worker(t: &fibra::rt::TaskletInfo<'_>) -> bool {
    t.waiting_on.is_some_and(|op| op.ends_with("::NextJob"))
}

pub(crate) fn net_stats(s: &Schedule) -> fibra::net::NetStats {
    s.plugin::<fibra::net::NetPlugin>().unwrap().stats()
}

/// A blocking std client in its own thread, with a 10 s read timeout so no test hangs.
pub(crate) fn peer<T, F>(addr: std::net::SocketAddr, f: F) -> std::thread::JoinHandle<T>
where
    T: Send + 'static,
    F: FnOnce(std::net::TcpStream) -> T + Send + 'static,
{
    std::thread::spawn(move || {
        let stream = std::net::TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        f(stream)
    })
}

/// Raises this process's open-file limit to at least `want` (up to the hard limit); returns
/// the new soft limit.
pub(crate) fn raise_fd_limit(want: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 0;
    }
    if limit.rlim_cur < want {
        limit.rlim_cur = want.min(limit.rlim_max);
        // SAFETY: setrlimit reads the struct we own.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    }
    limit.rlim_cur
}

/// Runs test `name` of this test binary again in a child process with `env` set (the test
/// sees it and takes its child branch); kills the child after `limit`. Returns whether it
/// succeeded, and its stdout and stderr together.
pub(crate) fn run_in_child(
    name: &str,
    env: (&str, &str),
    limit: std::time::Duration,
) -> (bool, String) {
    use std::io::Read;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(env.0, env.1)
        .env("RUST_BACKTRACE", "0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = out.read_to_string(&mut text);
        text
    });
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = err.read_to_string(&mut text);
        text
    });
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let text = format!(
        "{}{}",
        out_reader.join().unwrap(),
        err_reader.join().unwrap()
    );
    match status {
        Some(status) => (status.success(), text),
        None => panic!("the child `{name}` ran past {limit:?}:\n{text}"),
    }
}

/// Sets this process's open-file limit (soft and hard) to `n`; for child processes only.
pub(crate) fn set_fd_limit(n: u64) {
    let limit = libc::rlimit {
        rlim_cur: n,
        rlim_max: n,
    };
    // SAFETY: setrlimit reads the struct we own.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
}

/// What a [`ServerThread`] serves: it publishes counters after each round and stops cleanly.
pub(crate) trait Served: 'static {
    /// The counters tests wait on.
    type Stats: Copy + Default + Send + std::fmt::Debug + 'static;
    /// Reads the counters (after a round).
    fn stats(&self, s: &Schedule) -> Self::Stats;
    /// Stops serving; may tick `s` and assert on how it ended.
    fn stop(self, s: &mut Schedule);
}

/// A server run by its own schedule on its own thread, with the tasks and network plugins;
/// stopped when dropped.
pub(crate) struct ServerThread<S> {
    pub(crate) addr: std::net::SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The counters and the round they were read in.
    stats: std::sync::Arc<std::sync::Mutex<(u64, S)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<S> ServerThread<S> {
    fn stop_thread(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let result = thread.join();
            if !std::thread::panicking() {
                result.expect("the server's thread panicked");
            }
        }
    }
}

impl<S: Copy + Default + Send + std::fmt::Debug + 'static> ServerThread<S> {
    /// Starts a thread whose schedule `setup` fills; `setup` returns the address served.
    pub(crate) fn start<V, F>(setup: F) -> ServerThread<S>
    where
        V: Served<Stats = S>,
        F: FnOnce(&mut Schedule) -> (std::net::SocketAddr, V) + Send + 'static,
    {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Mutex::new((0, S::default())));
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = {
            let (stop, stats) = (stop.clone(), stats.clone());
            std::thread::spawn(move || {
                let mut s = net_schedule();
                let (addr, served) = setup(&mut s);
                tx.send(addr).unwrap();
                let mut round = 0;
                while !stop.load(Ordering::Relaxed) {
                    s.run_for(std::time::Duration::from_millis(5)).unwrap();
                    round += 1;
                    *stats.lock().unwrap() = (round, served.stats(&s));
                }
                served.stop(&mut s);
            })
        };
        let addr = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the server did not start");
        ServerThread {
            addr,
            stop,
            stats,
            thread: Some(thread),
        }
    }

    /// The counters as of the server's last round.
    pub(crate) fn stats(&self) -> S {
        self.stats.lock().unwrap().1
    }

    /// The server's last round and its counters then.
    pub(crate) fn snapshot(&self) -> (u64, S) {
        *self.stats.lock().unwrap()
    }

    /// Waits until `f` holds for counters read after this call (never an older snapshot);
    /// fails the test after 10 s.
    pub(crate) fn wait_for(&self, what: &str, f: impl Fn(&S) -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let called_in = self.stats.lock().unwrap().0;
        loop {
            let (round, stats) = *self.stats.lock().unwrap();
            if round > called_in + 1 && f(&stats) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "waited 10 s for {what}: {stats:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }

    /// Stops the server and waits for its thread; its panic fails the test.
    pub(crate) fn stop(mut self) {
        self.stop_thread();
    }
}

impl<S> Drop for ServerThread<S> {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

/// Where cargo put the examples it built for this test run (`target/<profile>/examples`).
///
/// `cargo test` builds the examples before it runs the tests, but `cargo test --test NAME`
/// does not: an example older than a source file it is built from (cargo's dep-info file
/// beside it names them) would be tested as it was, so this fails, saying how to rebuild
/// it, rather than test a stale binary.
pub(crate) fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = profile_dir.join("examples").join(name);
    let built = std::fs::metadata(&path).and_then(|m| m.modified());
    let dep_info = std::fs::read_to_string(path.with_extension("d"));
    if let (Ok(built), Ok(dep_info)) = (built, dep_info) {
        // "<binary>: <source> <source> ...", a space in a path escaped as "\ ".
        let sources = dep_info.split_once(": ").map_or("", |(_, s)| s);
        let newer = sources
            .replace("\\ ", "\0")
            .split_whitespace()
            .map(|source| std::path::PathBuf::from(source.replace('\0', " ")))
            .find(|source| {
                std::fs::metadata(source)
                    .and_then(|m| m.modified())
                    .is_ok_and(|m| m > built)
            });
        if let Some(newer) = newer {
            panic!(
                "the example {name} ({}) is older than {} (`cargo test --test NAME` does not \
                 rebuild the examples): run `cargo build --examples` (with --release for a \
                 release test run) or plain `cargo test`",
                path.display(),
                newer.display()
            );
        }
    }
    path
}

/// A server example running as our child process on a free port of 127.0.0.1; killed (by
/// handle) when dropped.
pub(crate) struct Example {
    pub(crate) name: &'static str,
    child: Option<std::process::Child>,
    /// The address it said it listens on.
    pub(crate) addr: String,
    /// Its stdout and stderr lines, as they come.
    output: std::sync::mpsc::Receiver<String>,
}

impl Example {
    /// Starts `name --addr 127.0.0.1:0` and waits until it says its address.
    pub(crate) fn start(name: &'static str) -> Example {
        Example::start_with(name, &[])
    }

    /// [`start`](Self::start) with more arguments after `--addr 127.0.0.1:0`.
    pub(crate) fn start_with(name: &'static str, more: &[&str]) -> Example {
        // The chatter's web page too gets a free port, so that two chatters can run at once.
        let mut args: Vec<&str> = if name == "chatter" {
            vec!["--addr", "127.0.0.1:0", "--web-addr", "127.0.0.1:0"]
        } else {
            vec!["--addr", "127.0.0.1:0"]
        };
        args.extend_from_slice(more);
        let mut server = Example::spawn(name, &args);
        let line = server.wait_for("127.0.0.1:");
        let at = line.find("127.0.0.1:").unwrap();
        let rest = &line[at + "127.0.0.1:".len()..];
        let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let addr = format!("127.0.0.1:{port}");
        server.addr = addr.to_owned();
        server
    }

    /// Starts `name` with `args`; waits for nothing.
    pub(crate) fn spawn(name: &'static str, args: &[&str]) -> Example {
        use std::io::BufRead;
        let mut child = std::process::Command::new(example(name))
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, output) = std::sync::mpsc::channel();
        let stdout: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().unwrap());
        let stderr: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().unwrap());
        for stream in [stdout, stderr] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Example {
            name,
            child: Some(child),
            addr: String::new(),
            output,
        }
    }

    /// Waits up to 10 s for an output line containing `needle`; returns it.
    pub(crate) fn wait_for(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.output.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(e) => panic!("{} never said {needle:?} ({e})", self.name),
            }
        }
    }

    /// Whether an output line containing `needle` comes within `wait` (the lines before it
    /// are consumed).
    pub(crate) fn try_wait_for(&self, needle: &str, wait: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.output.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    }

    /// Waits up to 10 s until every one of `needles` was in some output line, in any order.
    pub(crate) fn wait_for_all(&self, needles: &[&str]) {
        let mut missing: Vec<&str> = needles.to_vec();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !missing.is_empty() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.output.recv_timeout(left) {
                Ok(line) => missing.retain(|n| !line.contains(n)),
                Err(e) => panic!("{} never said {missing:?} ({e})", self.name),
            }
        }
    }

    /// Sends SIGINT to the child and waits for it to exit; returns its status and what it
    /// said from then on.
    pub(crate) fn interrupt(self) -> (std::process::ExitStatus, String) {
        let child = self.child.as_ref().unwrap();
        let pid = libc::pid_t::try_from(child.id()).unwrap();
        // SAFETY: `kill` with a pid we spawned and have not reaped; it only sends a signal.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
        self.wait_exit()
    }

    /// Sends SIGTERM to the child and waits for it to exit, as [`interrupt`](Self::interrupt).
    #[allow(dead_code)]
    pub(crate) fn terminate(self) -> (std::process::ExitStatus, String) {
        let child = self.child.as_ref().unwrap();
        let pid = libc::pid_t::try_from(child.id()).unwrap();
        // SAFETY: `kill` with a pid we spawned and have not reaped; it only sends a signal.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        self.wait_exit()
    }

    /// Waits (up to 20 s) for the child to exit by itself; returns its status and what it
    /// said from then on.
    pub(crate) fn wait_exit(mut self) -> (std::process::ExitStatus, String) {
        let mut child = self.child.take().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill(); // our own child, by handle
                let _ = child.wait();
                panic!("{} kept running", self.name);
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        let mut said = String::new();
        while let Ok(line) = self.output.recv_timeout(std::time::Duration::from_secs(2)) {
            said.push_str(&line);
            said.push('\n');
        }
        (status, said)
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // our own child, by handle
            let _ = child.wait();
        }
    }
}
