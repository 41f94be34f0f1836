//! `idle`: many connections that say nothing, for the server's memory per connection,
//! spread over generator processes (each holds at most what its descriptor limit allows)
//! and source addresses (127.0.0.2, 127.0.0.3, ...: each pair of addresses has ~28,000
//! ports). Telnet or WebSocket (`--ws yes`: the upgrade, the prompt), at the prompt or
//! logged in (`--login yes`: a handle each, then silent; every join is said to every
//! member, so the generator reads and drops what comes).
//!
//! With `--procs 1` (and no `--sources`) the connections are this process's. Otherwise it
//! starts `--procs` children (`loadgen idle --child yes ...`, this binary), each with its
//! share and its source address; each prints one line when its connections are up and
//! holds them until its `--hold` ends (so it ends by itself); the parent measures, then
//! kills its children (by their handles) and prints the JSON line.

use std::cell::{Cell, RefCell};
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fibra::net::{ops, Conn, ConnOptions, Framing, NetExt};
use fibra::Handle;

use super::measure;
use super::{receive_by, receive_raw_by, Common};

const PROMPT: &[u8] = b"What is your handle?";

/// What `idle` was asked for.
#[derive(Clone, Debug)]
pub(crate) struct IdleArgs {
    pub(crate) conns: usize,
    /// Read the prompt (a chat server's) before falling silent.
    pub(crate) prompt: bool,
    /// Log in (a handle each) before falling silent.
    pub(crate) login: bool,
    /// Over the chatter's WebSocket (`/ws`): the upgrade, then the prompt.
    pub(crate) ws: bool,
    /// Generator processes (0: as many as the connections need, 18,000 each).
    pub(crate) procs: usize,
    /// Source addresses, 127.0.0.2 on (0: as many as the connections need, 25,000 each;
    /// with one process and none asked, the system's choice).
    pub(crate) sources: usize,
    /// A child's: its source address and how long it holds.
    pub(crate) child: bool,
    pub(crate) source: Option<IpAddr>,
    pub(crate) hold: f64,
    /// Handles are `<prefix><i>`.
    pub(crate) prefix: String,
}

/// Connections one generator holds at most (its descriptor limit is 20,000 here).
const PER_PROC: usize = 18_000;
/// Connections from one source address at most (of ~28,000 ports to one server address).
const PER_SOURCE: usize = 25_000;

pub(crate) fn run(common: &Common, args: &IdleArgs) -> Result<(), Box<dyn std::error::Error>> {
    raise_fd_limit();
    if args.child {
        return child(common, args);
    }
    let procs = if args.procs > 0 {
        args.procs
    } else {
        args.conns.div_ceil(PER_PROC)
    };
    let sources = if args.sources > 0 {
        args.sources
    } else if procs > 1 {
        args.conns.div_ceil(PER_SOURCE)
    } else {
        0
    };
    let procs = procs.max(sources).max(1);
    parent(common, args, procs, sources)
}

/// This process's connections, up: (held, failed, seconds it took).
struct Held {
    schedule: fibra::Schedule,
    conns: Rc<RefCell<Vec<Conn>>>,
    failed: usize,
    secs: f64,
}

/// Opens `args.conns` connections (200 connecting at a time), each to the prompt or the
/// login when asked, from `args.source` when given.
fn open(common: &Common, args: &IdleArgs) -> Result<Held, Box<dyn std::error::Error>> {
    let mut schedule = super::new_schedule()?;
    let ready = Rc::new(Cell::new(0usize));
    let failed = Rc::new(Cell::new(0usize));
    let held = Rc::new(RefCell::new(Vec::with_capacity(args.conns)));
    let gate = Rc::new(fibra::tasks::bounded::<()>(200));
    let started = Instant::now();
    for i in 0..args.conns {
        let (ready, failed, held, gate) =
            (ready.clone(), failed.clone(), held.clone(), gate.clone());
        let (addr, login_timeout, args) = (common.addr, common.login_timeout, args.clone());
        schedule.spawn(move |h| {
            let _ = gate.0.send(h, ());
            let deadline = Instant::now() + login_timeout;
            let handle = format!("{}{i}", args.prefix);
            let conn = one(h, addr, &args, &handle, deadline);
            let _ = gate.1.receive(h);
            let Some(conn) = conn else {
                failed.set(failed.get() + 1);
                return;
            };
            ready.set(ready.get() + 1);
            held.borrow_mut().push(conn.clone());
            if args.login {
                // Everyone's joins come to every member: read and drop them.
                while h.receive(&conn).is_ok() {}
            }
        })?;
    }
    while ready.get() + failed.get() < args.conns {
        if started.elapsed() > Duration::from_secs(600) {
            return Err("connecting took over 600 s".into());
        }
        schedule.run_for(Duration::from_millis(50))?;
    }
    Ok(Held {
        schedule,
        conns: held,
        failed: failed.get(),
        secs: started.elapsed().as_secs_f64(),
    })
}

/// One connection, to the prompt or the login when asked; `None` if it failed (said on
/// stderr).
fn one(
    h: &Handle,
    addr: SocketAddr,
    args: &IdleArgs,
    handle: &str,
    deadline: Instant,
) -> Option<Conn> {
    let framing = if args.ws {
        Framing::Raw
    } else {
        Framing::Lines
    };
    let options = super::tls::options(ConnOptions::new().with_framing(framing));
    let mut op = ops::Connect::new(addr, options);
    if let Some(ip) = args.source {
        op = op.bind(SocketAddr::new(ip, 0));
    }
    let conn = match h.yield_op_until(op, deadline) {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            eprintln!("connect {addr}: {e}");
            return None;
        }
        Err(_) => {
            eprintln!("connect {addr}: timed out");
            return None;
        }
    };
    if args.ws {
        let joined = format!("{handle} has joined the chat.");
        return ws_login(
            h,
            &conn,
            args.login.then_some((handle, &joined[..])),
            deadline,
        )
        .then_some(conn);
    }
    if !args.prompt && !args.login {
        return Some(conn);
    }
    let mut line = Vec::new();
    if receive_by(h, &conn, &mut line, deadline).is_err() || line != PROMPT {
        eprintln!("{handle}: no prompt");
        return None;
    }
    if !args.login {
        return Some(conn);
    }
    h.send_frame(&conn, handle.as_bytes()).ok()?;
    let joined = format!("{handle} has joined the chat.");
    // Other members' joins may come first.
    loop {
        receive_by(h, &conn, &mut line, deadline).ok()?;
        if line == joined.as_bytes() {
            return Some(conn);
        }
    }
}

/// The WebSocket upgrade, then the prompt (a text frame); with `login` (the handle and its
/// join line), the handle, and everything up to its join (others' joins come too).
fn ws_login(h: &Handle, conn: &Conn, login: Option<(&str, &str)>, deadline: Instant) -> bool {
    let request = "GET /ws HTTP/1.1\r\nHost: loadgen\r\nUpgrade: websocket\r\n\
                   Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    if h.send(conn, request.as_bytes()).is_err() {
        return false;
    }
    let mut buf = Vec::new();
    let mut upgraded = false;
    let mut prompted = false;
    loop {
        if !upgraded {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                if !buf.starts_with(b"HTTP/1.1 101") {
                    eprintln!("no upgrade: {:?}", String::from_utf8_lossy(&buf));
                    return false;
                }
                buf.drain(..at + 4);
                upgraded = true;
            }
        }
        while let Some((range, used)) = ws_frame(&buf).filter(|_| upgraded) {
            let payload = buf[range].to_vec();
            buf.drain(..used);
            if !prompted {
                if payload != PROMPT {
                    eprintln!(
                        "expected the prompt, got {:?}",
                        String::from_utf8_lossy(&payload)
                    );
                    return false;
                }
                prompted = true;
                let Some((handle, _)) = login else {
                    return true;
                };
                if h.send(conn, &ws_text_frame(handle.as_bytes())).is_err() {
                    return false;
                }
            } else if login.is_some_and(|(_, joined)| payload == joined.as_bytes()) {
                return true;
            }
        }
        if buf.len() > 64 * 1024 {
            return false;
        }
        match receive_raw_by(h, conn, 64 * 1024, deadline) {
            Ok(more) => buf.extend_from_slice(&more),
            Err(_) => {
                eprintln!(
                    "WebSocket login: nothing more ({} bytes pending)",
                    buf.len()
                );
                return false;
            }
        }
    }
}

/// The first whole frame of a server's (unmasked) stream: its payload and its size.
fn ws_frame(buf: &[u8]) -> Option<(std::ops::Range<usize>, usize)> {
    let (b1, mut at) = (*buf.get(1)?, 2);
    let len = match b1 & 0x7F {
        126 => {
            at += 2;
            usize::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]))
        }
        127 => {
            at += 8;
            u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize
        }
        n => usize::from(n),
    };
    (buf.len() >= at + len).then_some((at..at + len, at + len))
}

/// A client's masked text frame (a handle: under 126 bytes).
fn ws_text_frame(payload: &[u8]) -> Vec<u8> {
    const KEY: [u8; 4] = [0x1f, 0x2e, 0x3d, 0x4c];
    let mut frame = vec![0x81, 0x80 | payload.len().min(125) as u8];
    frame.extend_from_slice(&KEY);
    frame.extend(
        payload
            .iter()
            .take(125)
            .enumerate()
            .map(|(i, b)| b ^ KEY[i & 3]),
    );
    frame
}

/// A child: its connections, one line when they are up, then silence until `--hold` ends.
fn child(common: &Common, args: &IdleArgs) -> Result<(), Box<dyn std::error::Error>> {
    let mut held = open(common, args)?;
    let open_now = held.conns.borrow().len();
    println!(
        "{{\"ready\":{open_now},\"failed\":{},\"connect_secs\":{:.2}}}",
        held.failed, held.secs
    );
    std::io::stdout().flush()?;
    hold(&mut held.schedule, args.hold)?;
    for conn in held.conns.borrow_mut().drain(..) {
        conn.abort();
    }
    held.schedule.run_for(Duration::from_millis(200))?;
    Ok(())
}

/// What a child said when its connections were up.
struct Ready {
    ready: usize,
    failed: usize,
    secs: f64,
}

fn parse_ready(line: &str) -> Option<Ready> {
    let field = |name: &str| -> Option<f64> {
        let at = line.find(&format!("\"{name}\":"))? + name.len() + 3;
        let rest = &line[at..];
        let end = rest.find([',', '}'])?;
        rest[..end].parse().ok()
    };
    Some(Ready {
        ready: field("ready")? as usize,
        failed: field("failed")? as usize,
        secs: field("connect_secs")?,
    })
}

/// The parent: the server's memory before, the children's connections (or its own), the
/// memory with them, then the JSON line.
fn parent(
    common: &Common,
    args: &IdleArgs,
    procs: usize,
    sources: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let rss_before = common.pid.and_then(measure::rss_kib);
    let fds_before = common.pid.and_then(measure::open_fds);
    let sock_before = sockstat();
    let mut own = None;
    let mut children: Vec<Child> = Vec::new();
    let (mut open_total, mut failed, mut connect_secs) = (0usize, 0usize, 0f64);
    if procs == 1 && sources == 0 {
        let held = open(common, args)?;
        open_total = held.conns.borrow().len();
        failed = held.failed;
        connect_secs = held.secs;
        own = Some(held);
    } else {
        let hold = common.warmup + common.secs + 60.0 + 600.0;
        let (tx, rx) = mpsc::channel();
        let started = Instant::now();
        for k in 0..procs {
            let share = args.conns / procs + usize::from(k < args.conns % procs);
            let source = Ipv4Addr::new(127, 0, 0, 2 + (k % sources.max(1)) as u8);
            let mut cmd = Command::new(std::env::current_exe()?);
            cmd.args(["idle", "--child", "yes", "--addr", &common.addr.to_string()])
                .args([
                    "--conns",
                    &share.to_string(),
                    "--source",
                    &source.to_string(),
                ])
                .args([
                    "--hold",
                    &format!("{hold}"),
                    "--prefix",
                    &format!("{}{k}x", args.prefix),
                ])
                .args([
                    "--login-timeout",
                    &format!("{}", common.login_timeout.as_secs_f64()),
                ])
                .args(["--prompt", yes(args.prompt), "--login", yes(args.login)])
                .args(["--ws", yes(args.ws)])
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
            let mut child = cmd.spawn()?;
            let stdout = child.stdout.take().ok_or("no stdout")?;
            let tx = tx.clone();
            std::thread::spawn(move || {
                let line = BufReader::new(stdout).lines().next();
                let _ = tx.send(line.and_then(Result::ok));
            });
            children.push(child);
        }
        drop(tx);
        let mut told = 0;
        while told < procs {
            match rx.recv_timeout(Duration::from_secs(660)) {
                Ok(Some(line)) => match parse_ready(&line) {
                    Some(r) => {
                        open_total += r.ready;
                        failed += r.failed;
                        connect_secs = connect_secs.max(r.secs);
                    }
                    None => return Err(format!("a child said {line:?}").into()),
                },
                Ok(None) => return Err("a child ended before its connections were up".into()),
                Err(e) => return Err(format!("a child did not answer: {e}").into()),
            }
            told += 1;
        }
        // From the first child's start to the last one's connections: all of it.
        connect_secs = started.elapsed().as_secs_f64();
    }
    // Let the server settle, then read its memory, twice over the hold.
    let pause = |secs: f64, own: &mut Option<Held>| -> Result<(), Box<dyn std::error::Error>> {
        match own {
            Some(held) => hold(&mut held.schedule, secs)?,
            None => std::thread::sleep(Duration::from_secs_f64(secs)),
        }
        Ok(())
    };
    pause(common.warmup, &mut own)?;
    let rss_with = common.pid.and_then(measure::rss_kib);
    let fds_with = common.pid.and_then(measure::open_fds);
    let sock_with = sockstat();
    pause(common.secs, &mut own)?;
    let rss_end = common.pid.and_then(measure::rss_kib);
    for child in &mut children {
        let _ = child.kill(); // our own children, by their handles
        let _ = child.wait();
    }
    if let Some(held) = &mut own {
        for conn in held.conns.borrow_mut().drain(..) {
            conn.abort();
        }
        held.schedule.run_for(Duration::from_millis(200))?;
    }
    let rss_max = rss_with.max(rss_end);
    let per_conn = match (rss_before, rss_max) {
        (Some(a), Some(b)) if open_total > 0 => {
            Some((b.saturating_sub(a)) as f64 / open_total as f64)
        }
        _ => None,
    };
    let kernel = match (sock_before, sock_with) {
        (Some(a), Some(b)) if open_total > 0 => {
            Some(b.mem_pages.saturating_sub(a.mem_pages) as f64 * 4096.0 / open_total as f64)
        }
        _ => None,
    };
    let stat = |s: Option<Sockstat>| {
        s.map_or_else(
            || "null".to_owned(),
            |s| {
                format!(
                    "{{\"tcp_inuse\":{},\"tcp_mem_pages\":{}}}",
                    s.inuse, s.mem_pages
                )
            },
        )
    };
    println!(
        "{{\"scenario\":\"idle\",\"addr\":\"{}\",\"conns\":{},\"procs\":{procs},\"sources\":{sources},\
         \"ws\":{},\"login\":{},\"prompt\":{},\"open\":{open_total},\"failed\":{failed},\
         \"connect_secs\":{connect_secs:.2},\"rss_before_kib\":{},\"rss_with_kib\":{},\
         \"rss_end_kib\":{},\"kib_per_conn\":{},\"bytes_per_conn\":{},\"fds_before\":{},\
         \"fds_with\":{},\"sockstat_before\":{},\"sockstat_with\":{},\
         \"kernel_buffer_bytes_per_conn\":{}}}",
        common.addr,
        args.conns,
        args.ws,
        args.login,
        args.prompt,
        opt(rss_before),
        opt(rss_with),
        opt(rss_end),
        measure::json_f64(per_conn, 2),
        measure::json_f64(per_conn.map(|k| k * 1024.0), 0),
        opt(fds_before),
        opt(fds_with),
        stat(sock_before),
        stat(sock_with),
        measure::json_f64(kernel, 0),
    );
    if failed > 0 {
        return Err(format!("{failed} connections failed").into());
    }
    Ok(())
}

/// Ticks `schedule` for `secs`: its connections stay served with no tasklet left (a
/// schedule's `run_for` returns at once then).
fn hold(schedule: &mut fibra::Schedule, secs: f64) -> Result<(), Box<dyn std::error::Error>> {
    let end = Instant::now() + Duration::from_secs_f64(secs);
    while let Some(left) = end
        .checked_duration_since(Instant::now())
        .filter(|l| !l.is_zero())
    {
        schedule.tick_within(left.min(Duration::from_millis(100)))?;
    }
    Ok(())
}

fn yes(on: bool) -> &'static str {
    if on {
        "yes"
    } else {
        "no"
    }
}

/// The TCP line of `/proc/net/sockstat`: sockets in use and the pages of their buffers.
#[derive(Clone, Copy)]
struct Sockstat {
    inuse: u64,
    mem_pages: u64,
}

fn sockstat() -> Option<Sockstat> {
    let text = std::fs::read_to_string("/proc/net/sockstat").ok()?;
    let line = text.lines().find(|l| l.starts_with("TCP:"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let value = |name: &str| -> Option<u64> {
        let at = words.iter().position(|w| *w == name)?;
        words.get(at + 1)?.parse().ok()
    };
    Some(Sockstat {
        inuse: value("inuse")?,
        mem_pages: value("mem")?,
    })
}

/// The soft descriptor limit raised to the hard one.
fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "null".to_owned(), |v| v.to_string())
}
