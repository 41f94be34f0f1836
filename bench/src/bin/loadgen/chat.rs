//! The `chat` scenario: C clients log in to a chatter-protocol server, then each says R
//! lines a second (sender id, sequence number, send time) while every client reads
//! everything. Optional churn: N extra clients a second connect, log in and drop.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::rc::Rc;
use std::time::{Duration, Instant};

use fibra::net::{ops, Conn, ConnOptions, Framing, NetExt};
use fibra::tasks::TasksExt;
use fibra::Handle;

use super::measure::{self, CpuWindow, Histogram};
use super::{receive_by, receive_raw_by, Common, LoginFailed};

pub(crate) struct ChatArgs {
    pub(crate) clients: usize,
    /// Lines a second, per client.
    pub(crate) rate: f64,
    /// Extra clients a second that connect, log in and drop.
    pub(crate) churn: f64,
    /// Seconds after the last line is sent for the deliveries to arrive.
    pub(crate) drain: f64,
    /// Seconds between progress lines on stderr (0: none).
    pub(crate) report: f64,
    /// Clients speak WebSocket (a text message a line) to the server's `/ws`.
    pub(crate) ws: bool,
    /// Clients speak ABChat's protocol (length-prefixed frames, `ok <name>`, `<from>: <text>`).
    pub(crate) abchat: bool,
    /// Handles are `<prefix><i>`; senders say their id as `id_base + i`. Several generators
    /// in one room (each with its own prefix and base) count only their own senders' lines.
    pub(crate) prefix: String,
    pub(crate) id_base: usize,
    /// More addresses of one room (federated chatters): client `i` goes to the `i % n`-th of
    /// `--addr` and these, and latency between clients of different addresses is measured
    /// apart.
    pub(crate) also: Vec<std::net::SocketAddr>,
    /// More processes whose CPU is measured in the window (the other chatters, Redis).
    pub(crate) also_pids: Vec<u32>,
    /// Rooms (over 1): after its login, client `i` joins room `room<(id_base + i) % rooms>`
    /// (`/join`), and hears the senders of its room only.
    pub(crate) rooms: usize,
}

const PROMPT: &[u8] = b"What is your handle?";

/// What the clients speak.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wire {
    /// The chatter's telnet lines.
    Lines,
    /// The chatter's WebSocket.
    Ws,
    /// ABChat's length-prefixed frames.
    AbChat,
}

fn wire(args: &ChatArgs) -> Wire {
    if args.abchat {
        Wire::AbChat
    } else if args.ws {
        Wire::Ws
    } else {
        Wire::Lines
    }
}

/// What the clients share (one thread: a `RefCell`).
struct State {
    base: Instant,
    /// This generator's first sender id.
    id_base: usize,
    /// When every client is logged in, the sending starts (set by the coordinator).
    t0: Option<Instant>,
    measure_from: Instant,
    stop_sending: Instant,
    logged_in: usize,
    /// Logins that failed (refused, reset, a wrong answer, or timed out)...
    failed: usize,
    /// ...of which timed out: not completed within `--login-timeout`.
    login_timeouts: usize,
    conns: Vec<Conn>,
    /// Lines each sender has queued.
    sent: Vec<u32>,
    sent_in_window: u64,
    /// Per receiver, the next sequence number expected from each sender.
    next: Vec<Vec<u32>>,
    /// Receivers whose connection ended before the run did.
    lost: Vec<bool>,
    out_of_order: u64,
    deliveries: u64,
    deliveries_in_window: u64,
    latency: Histogram,
    /// How many addresses the clients are spread over, and the latency between clients of
    /// different ones.
    addrs: usize,
    cross: Histogram,
    churn_ok: u64,
    churn_failed: u64,
    /// Samples of the server: (seconds since t0, RSS KiB, open fds, deliveries so far).
    samples: Vec<(f64, Option<u64>, Option<usize>, u64)>,
}

impl State {
    /// Receiver `r` got `line` at `now_us`: checks its sender's order, and counts it (with its
    /// latency) when it was sent within `window` (microseconds since `base`).
    fn record(&mut self, r: usize, line: &[u8], now_us: u64, window: std::ops::Range<u64>) {
        let Some((sender, seq, sent_us)) = parse_says(line) else {
            return;
        };
        // Another generator's sender: its clock is not ours.
        let Some(sender) = sender.checked_sub(self.id_base) else {
            return;
        };
        if sender >= self.sent.len() {
            return;
        }
        self.deliveries += 1;
        let next = &mut self.next[r];
        if sender < next.len() {
            let want = next[sender];
            if seq != want {
                self.out_of_order += 1;
            }
            next[sender] = want.max(seq + 1);
        }
        if window.contains(&sent_us) {
            self.deliveries_in_window += 1;
            self.latency.record(now_us.saturating_sub(sent_us));
            if self.addrs > 1 && sender % self.addrs != r % self.addrs {
                self.cross.record(now_us.saturating_sub(sent_us));
            }
        }
    }
}

pub(crate) fn run(common: &Common, args: &ChatArgs) -> Result<(), Box<dyn std::error::Error>> {
    let mut schedule = super::new_schedule()?;
    let fds_idle = common.pid.and_then(measure::open_fds);
    let c = args.clients;
    let far = Instant::now() + Duration::from_secs(86_400);
    let state = Rc::new(RefCell::new(State {
        base: Instant::now(),
        id_base: args.id_base,
        t0: None,
        measure_from: far,
        stop_sending: far,
        logged_in: 0,
        failed: 0,
        login_timeouts: 0,
        conns: Vec::with_capacity(c),
        sent: vec![0; c],
        sent_in_window: 0,
        next: vec![Vec::new(); c],
        lost: vec![false; c],
        out_of_order: 0,
        deliveries: 0,
        deliveries_in_window: 0,
        latency: Histogram::new(),
        addrs: 1 + args.also.len(),
        cross: Histogram::new(),
        churn_ok: 0,
        churn_failed: 0,
        samples: Vec::new(),
    }));

    // Log in at most 200 at a time, so the server's backlog never overflows. Each login has
    // --login-timeout from when it starts: the login phase ends within
    // ceil(clients / 200) timeouts, whatever the server does.
    let batch = Rc::new(fibra::tasks::bounded::<()>(200));
    let login_timeout = common.login_timeout;
    for i in 0..c {
        let (state, batch) = (state.clone(), batch.clone());
        let addrs: Vec<_> = std::iter::once(common.addr)
            .chain(args.also.iter().copied())
            .collect();
        let (addr, rate, ws) = (addrs[i % addrs.len()], args.rate, wire(args));
        let (prefix, id_base, rooms) = (args.prefix.clone(), args.id_base, args.rooms);
        schedule.spawn(move |h| {
            let _ = batch.0.send(h, ());
            let deadline = Instant::now() + login_timeout;
            let handle = format!("{prefix}{i}");
            let conn = login(h, addr, &handle, ws, deadline).and_then(|(conn, leftover)| {
                if rooms <= 1 {
                    return Ok((conn, leftover));
                }
                let room = format!("room{}", (id_base + i) % rooms);
                join_room(h, conn, &handle, &room, ws, leftover, deadline)
            });
            let _ = batch.1.receive(h);
            let (conn, leftover) = match conn {
                Ok(logged_in) => logged_in,
                Err(why) => {
                    let mut s = state.borrow_mut();
                    s.failed += 1;
                    s.login_timeouts += usize::from(why == LoginFailed::TimedOut);
                    return;
                }
            };
            {
                let mut s = state.borrow_mut();
                s.logged_in += 1;
                s.next[i] = vec![0; c];
                s.conns.push(conn.clone());
            }
            let sender = {
                let (state, conn) = (state.clone(), conn.clone());
                move |h: &Handle| send_lines(h, &state, &conn, (i, id_base), c, rate, ws)
            };
            if h.spawn_detached(sender).is_err() {
                state.borrow_mut().failed += 1;
                return;
            }
            match ws {
                Wire::Ws => read_frames(h, &state, &conn, i, leftover, ws_frame),
                Wire::Lines => read_lines(h, &state, &conn, i),
                Wire::AbChat => read_frames(h, &state, &conn, i, leftover, length_frame),
            }
        })?;
    }

    // The coordinator: starts the clock once everyone is in, runs the churn, samples the
    // server, and ends the run.
    let mut cpu = CpuWindow::new(common.pid);
    let cpu_used = Rc::new(RefCell::new(None));
    let mut also_cpu: Vec<CpuWindow> = args
        .also_pids
        .iter()
        .map(|&p| CpuWindow::new(Some(p)))
        .collect();
    let also_used = Rc::new(RefCell::new(Vec::new()));
    {
        let state = state.clone();
        let (pid, warmup, secs) = (common.pid, common.warmup, common.secs);
        let (churn, drain, report, addr) = (args.churn, args.drain, args.report, common.addr);
        let login_timeout = common.login_timeout;
        let ws = wire(args);
        let cpu_used = cpu_used.clone();
        let also_used = also_used.clone();
        schedule.spawn(move |h| {
            while {
                let s = state.borrow();
                s.logged_in + s.failed < c
            } {
                h.sleep(Duration::from_millis(10));
            }
            let t0 = Instant::now() + Duration::from_millis(100);
            {
                let mut s = state.borrow_mut();
                s.t0 = Some(t0);
                s.measure_from = t0 + Duration::from_secs_f64(warmup);
                s.stop_sending = s.measure_from + Duration::from_secs_f64(secs);
            }
            let (measure_from, stop_sending) = {
                let s = state.borrow();
                (s.measure_from, s.stop_sending)
            };
            if churn > 0.0 {
                let state = state.clone();
                h.spawn_detached(move |h| {
                    let churn = Churn {
                        addr,
                        rate: churn,
                        login_timeout,
                        ws,
                    };
                    churn_clients(h, &state, &churn, t0, stop_sending)
                })
                .expect("churn tasklet");
            }
            h.sleep_until(measure_from);
            cpu.open();
            also_cpu.iter_mut().for_each(CpuWindow::open);
            let sample = |s: &mut State| {
                let at = s.t0.map_or(0.0, |t0| t0.elapsed().as_secs_f64());
                let (rss, fds) = (pid.and_then(measure::rss_kib), pid.and_then(measure::open_fds));
                s.samples.push((at, rss, fds, s.deliveries));
                if report > 0.0 {
                    eprintln!(
                        "[{at:7.1} s] deliveries {} sent {} rss {} KiB fds {} churn {}/{} out-of-order {}",
                        s.deliveries,
                        s.sent_in_window,
                        rss.map_or(-1, |r| r as i64),
                        fds.map_or(-1, |f| f as i64),
                        s.churn_ok,
                        s.churn_failed,
                        s.out_of_order
                    );
                }
            };
            sample(&mut state.borrow_mut());
            let every = if report > 0.0 { report } else { secs };
            let mut next = measure_from;
            loop {
                next += Duration::from_secs_f64(every);
                if next >= stop_sending {
                    break;
                }
                h.sleep_until(next);
                sample(&mut state.borrow_mut());
            }
            h.sleep_until(stop_sending);
            *cpu_used.borrow_mut() = cpu.used();
            *also_used.borrow_mut() = also_cpu.iter().map(CpuWindow::used).collect::<Vec<_>>();
            h.sleep(Duration::from_secs_f64(drain));
            sample(&mut state.borrow_mut());
            // Ending the receivers: reset every connection.
            for conn in state.borrow_mut().conns.drain(..) {
                conn.abort();
            }
        })?;
    }
    // Every wait inside is bounded; this bounds the whole run too: the login phase (200 at
    // a time, each within --login-timeout), the run, the drain, and a margin.
    let batches = c.div_ceil(200) as u32;
    let limit = common.login_timeout * (batches + 1)
        + Duration::from_secs_f64(common.warmup + common.secs + args.drain + 30.0);
    if schedule.run_until(Instant::now() + limit)? {
        eprintln!(
            "loadgen: the run did not end within {} s; reporting what it measured",
            limit.as_secs()
        );
    }

    let s = state.borrow();
    let mut missing: u64 = 0;
    let mut receivers = 0;
    for (r, next) in s.next.iter().enumerate() {
        if next.is_empty() || s.lost[r] {
            continue;
        }
        receivers += 1;
        for (sender, &n) in next.iter().enumerate() {
            // With rooms, a receiver hears the senders of its room only.
            if args.rooms > 1 && (sender + s.id_base) % args.rooms != (r + s.id_base) % args.rooms {
                continue;
            }
            missing += u64::from(s.sent[sender].saturating_sub(n));
        }
    }
    let window = common.secs;
    let cpu = *cpu_used.borrow();
    let last = s.samples.last();
    let first = s.samples.first();
    let rss_max = s.samples.iter().filter_map(|x| x.1).max();
    let mut json = String::new();
    let _ = write!(
        json,
        "{{\"scenario\":\"chat\",\"addr\":\"{}\",\"tls\":{},\"clients\":{},\"rate\":{},\"churn\":{},\"secs\":{},\
         \"logged_in\":{},\"failed\":{},\"login_timeouts\":{},\"lines_sent\":{},\"lines_per_s\":{:.0},\
         \"deliveries\":{},\"deliveries_per_s\":{:.0},\"p50_us\":{},\"p99_us\":{},\"max_us\":{},\
         \"missing\":{},\"out_of_order\":{},\"receivers_lost\":{},\"churn_ok\":{},\"churn_failed\":{},\
         \"server_cpu\":{},\"deliveries_per_cpu_s\":{},\
         \"rss_start_kib\":{},\"rss_end_kib\":{},\"rss_max_kib\":{},\"fds_idle\":{},\"fds_end\":{},\"connected_end\":{},\
         \"addrs\":{},\"cross_p50_us\":{},\"cross_p99_us\":{},\"also_cpu\":[{}]}}",
        common.addr,
        super::tls::is_on(),
        c,
        args.rate,
        args.churn,
        window,
        s.logged_in,
        s.failed,
        s.login_timeouts,
        s.sent_in_window,
        s.sent_in_window as f64 / window,
        s.deliveries_in_window,
        s.deliveries_in_window as f64 / window,
        s.latency.percentile(0.50),
        s.latency.percentile(0.99),
        s.latency.percentile(1.0),
        missing,
        s.out_of_order,
        s.lost.iter().filter(|&&l| l).count(),
        s.churn_ok,
        s.churn_failed,
        measure::json_f64(cpu.map(|c| c / window), 3),
        measure::json_f64(cpu.map(|c| s.deliveries_in_window as f64 / c), 0),
        opt(first.and_then(|x| x.1)),
        opt(last.and_then(|x| x.1)),
        opt(rss_max),
        opt(fds_idle),
        opt(last.and_then(|x| x.2)),
        receivers,
        s.addrs,
        s.cross.percentile(0.50),
        s.cross.percentile(0.99),
        also_used
            .borrow()
            .iter()
            .map(|c| measure::json_f64(c.map(|c| c / window), 3))
            .collect::<Vec<_>>()
            .join(","),
    );
    println!("{json}");
    if s.failed > 0 {
        eprintln!(
            "loadgen: {} of {c} logins failed ({} not completed within --login-timeout {} s)",
            s.failed,
            s.login_timeouts,
            common.login_timeout.as_secs_f64()
        );
    }
    if s.latency.count() == 0 {
        return Err("no line was delivered".into());
    }
    Ok(())
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "null".to_owned(), |v| v.to_string())
}

/// Connects, answers the prompt with `handle`, and reads up to its own join line; with `ws`,
/// over a WebSocket, returning the bytes read past the join. Gives up at `deadline`.
fn login(
    h: &Handle,
    addr: std::net::SocketAddr,
    handle: &str,
    ws: Wire,
    deadline: Instant,
) -> Result<(Conn, Vec<u8>), LoginFailed> {
    let framing = match ws {
        Wire::Ws => Framing::Raw,
        Wire::Lines => Framing::Lines,
        Wire::AbChat => Framing::LengthPrefixed,
    };
    let options = super::tls::options(
        ConnOptions::new()
            .with_framing(framing)
            .with_send_limit(1 << 20),
    )
    .with_connect_timeout(Some(deadline.saturating_duration_since(Instant::now())));
    let conn = h.connect_with(addr, options).map_err(|e| {
        eprintln!("connect {addr}: {e}");
        LoginFailed::from(e)
    })?;
    let joined = format!("{handle} has joined the chat.");
    match ws {
        Wire::Ws => return ws_login(h, conn, handle, &joined, deadline),
        Wire::AbChat => return abchat_login(h, conn, handle, deadline),
        Wire::Lines => {}
    }
    let mut line = Vec::with_capacity(128);
    receive_by(h, &conn, &mut line, deadline)?;
    if line != PROMPT {
        eprintln!(
            "{handle}: expected the prompt, got {:?}",
            String::from_utf8_lossy(&line)
        );
        return Err(LoginFailed::Failed);
    }
    h.send_frame(&conn, handle.as_bytes())?;
    receive_by(h, &conn, &mut line, deadline)?;
    // A server whose room is a channel subscribed before the join goes out (tokio's) may
    // tell a newcomer another member's join or leave first (with rooms, the lobby's leaves).
    while line != joined.as_bytes() && is_membership(&line) {
        receive_by(h, &conn, &mut line, deadline)?;
    }
    if line != joined.as_bytes() {
        eprintln!(
            "{handle}: expected to join, got {:?}",
            String::from_utf8_lossy(&line)
        );
        return Err(LoginFailed::Failed);
    }
    Ok((conn, Vec::new()))
}

/// `/join room` after the login, and reads up to the member's own join there (the lines
/// before it are other members' joins and leaves); over a WebSocket, `leftover` holds the
/// bytes read past the login and the bytes past the join are returned.
fn join_room(
    h: &Handle,
    conn: Conn,
    handle: &str,
    room: &str,
    ws: Wire,
    leftover: Vec<u8>,
    deadline: Instant,
) -> Result<(Conn, Vec<u8>), LoginFailed> {
    let command = format!("/join {room}");
    let joined = format!("{handle} has joined room {room}.");
    match ws {
        Wire::AbChat => {
            eprintln!("{handle}: --rooms needs the chatter's protocol, not ABChat's");
            Err(LoginFailed::Failed)
        }
        Wire::Lines => {
            h.send_frame(&conn, command.as_bytes())?;
            let mut line = Vec::with_capacity(128);
            loop {
                receive_by(h, &conn, &mut line, deadline)?;
                if line == joined.as_bytes() {
                    return Ok((conn, Vec::new()));
                }
            }
        }
        Wire::Ws => {
            h.send(&conn, &ws_text_frame(command.as_bytes()))?;
            let mut buf = leftover;
            loop {
                while let Some((range, used)) = ws_frame(&buf) {
                    let mine = buf[range] == *joined.as_bytes();
                    buf.drain(..used);
                    if mine {
                        return Ok((conn, buf));
                    }
                }
                let more = receive_raw_by(h, &conn, 64 * 1024, deadline)?;
                buf.extend_from_slice(&more);
            }
        }
    }
}

/// Whether `line` tells another member's join or leave (of the chat, or of a room).
fn is_membership(line: &[u8]) -> bool {
    let line = String::from_utf8_lossy(line);
    line.ends_with(" has joined the chat.")
        || line.ends_with(" has left the chat.")
        || (line.contains(" has joined room ") || line.contains(" has left room "))
}

/// ABChat's login: the name as the first frame, `ok <name>` back.
fn abchat_login(
    h: &Handle,
    conn: Conn,
    name: &str,
    deadline: Instant,
) -> Result<(Conn, Vec<u8>), LoginFailed> {
    h.send_frame(&conn, name.as_bytes())?;
    let mut answer = Vec::new();
    receive_by(h, &conn, &mut answer, deadline)?;
    if answer != format!("ok {name}").as_bytes() {
        eprintln!(
            "{name}: expected ok, got {:?}",
            String::from_utf8_lossy(&answer)
        );
        return Err(LoginFailed::Failed);
    }
    Ok((conn, Vec::new()))
}

/// The WebSocket handshake, then the prompt and the join as text messages.
fn ws_login(
    h: &Handle,
    conn: Conn,
    handle: &str,
    joined: &str,
    deadline: Instant,
) -> Result<(Conn, Vec<u8>), LoginFailed> {
    let request = "GET /ws HTTP/1.1\r\nHost: loadgen\r\nUpgrade: websocket\r\n\
                   Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    h.send(&conn, request.as_bytes())?;
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if buf.len() > 4096 {
            return Err(LoginFailed::Failed);
        }
        buf.extend_from_slice(&receive_raw_by(h, &conn, 4096, deadline)?);
    };
    if !buf.starts_with(b"HTTP/1.1 101") {
        eprintln!("{handle}: no upgrade: {:?}", String::from_utf8_lossy(&buf));
        return Err(LoginFailed::Failed);
    }
    buf.drain(..head_end);
    let mut want = PROMPT.to_vec();
    loop {
        let mut payload = None;
        if let Some((range, used)) = ws_frame(&buf) {
            payload = Some(buf[range].to_vec());
            buf.drain(..used);
        }
        match payload {
            Some(p) if p == want && want == PROMPT => {
                h.send(&conn, &ws_text_frame(handle.as_bytes()))?;
                want = joined.as_bytes().to_vec();
            }
            Some(p) if p == want => return Ok((conn, buf)),
            Some(p) if want != PROMPT && is_membership(&p) => {}
            Some(p) => {
                eprintln!("{handle}: unexpected {:?}", String::from_utf8_lossy(&p));
                return Err(LoginFailed::Failed);
            }
            None => {
                let more = receive_raw_by(h, &conn, 64 * 1024, deadline)?;
                buf.extend_from_slice(&more);
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

/// A client's masked text frame.
fn ws_text_frame(payload: &[u8]) -> Vec<u8> {
    const KEY: [u8; 4] = [0x1f, 0x2e, 0x3d, 0x4c];
    let mut frame = Vec::with_capacity(payload.len() + 8);
    frame.push(0x81);
    if payload.len() < 126 {
        frame.push(0x80 | payload.len() as u8);
    } else {
        frame.push(0x80 | 126);
        frame.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    frame.extend_from_slice(&KEY);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ KEY[i & 3]));
    frame
}

/// Says `rate` lines a second, spread over the second by the client's index.
fn send_lines(
    h: &Handle,
    state: &Rc<RefCell<State>>,
    conn: &Conn,
    (i, id_base): (usize, usize),
    c: usize,
    rate: f64,
    ws: Wire,
) {
    let t0 = loop {
        if let Some(t0) = state.borrow().t0 {
            break t0;
        }
        h.sleep(Duration::from_millis(5));
    };
    let (base, measure_from, stop) = {
        let s = state.borrow();
        (s.base, s.measure_from, s.stop_sending)
    };
    let period = Duration::from_secs_f64(1.0 / rate);
    let mut next = t0 + period.mul_f64(i as f64 / c as f64);
    let mut line = String::with_capacity(64);
    let mut seq: u32 = 0;
    while next < stop {
        h.sleep_until(next);
        let now = Instant::now();
        line.clear();
        let _ = write!(
            line,
            "{} {seq} {}",
            i + id_base,
            now.duration_since(base).as_micros()
        );
        let sent = if ws == Wire::Ws {
            h.send(conn, &ws_text_frame(line.as_bytes()))
        } else {
            h.send_frame(conn, line.as_bytes())
        };
        if sent.is_err() {
            return;
        }
        seq += 1;
        let mut s = state.borrow_mut();
        s.sent[i] = seq;
        if now >= measure_from {
            s.sent_in_window += 1;
        }
        drop(s);
        next += period;
    }
}

/// Reads everything; checks each sender's sequence and records the latency.
///
/// Reads raw chunks of up to 64 KiB and cuts the lines here, with one clock reading per
/// chunk: at ten million lines a second the generator has ~100 ns of its one core per line,
/// less than a receive op per line costs.
fn read_lines(h: &Handle, state: &Rc<RefCell<State>>, conn: &Conn, r: usize) {
    let mut chunk = Vec::with_capacity(CHUNK);
    // The start of a line cut by the chunk's end.
    let mut partial: Vec<u8> = Vec::with_capacity(256);
    let base = state.borrow().base;
    loop {
        chunk = match h.yield_op(ops::Receive::raw(conn, std::mem::take(&mut chunk), CHUNK)) {
            Ok(bytes) => bytes,
            Err(_) => {
                let mut s = state.borrow_mut();
                // Ended by the coordinator's abort, or lost early.
                if Instant::now() < s.stop_sending {
                    s.lost[r] = true;
                }
                return;
            }
        };
        // Times as microseconds since `base`, read once per chunk: integer arithmetic per line.
        let now_us = Instant::now().saturating_duration_since(base).as_micros() as u64;
        let mut s = state.borrow_mut();
        let s = &mut *s;
        let from_us = s.measure_from.saturating_duration_since(base).as_micros() as u64;
        let stop_us = s.stop_sending.saturating_duration_since(base).as_micros() as u64;
        let mut rest = &chunk[..];
        while let Some(end) = memchr::memchr(b'\n', rest) {
            let line = if partial.is_empty() {
                &rest[..end]
            } else {
                partial.extend_from_slice(&rest[..end]);
                &partial[..]
            };
            s.record(r, line, now_us, from_us..stop_us); // joins and leaves are skipped
            partial.clear();
            rest = &rest[end + 1..];
        }
        if partial.len() + rest.len() > MAX_PARTIAL {
            log::warn!(target: "loadgen", "receiver {r}: a line over {MAX_PARTIAL} bytes");
            s.lost[r] = true;
            return;
        }
        partial.extend_from_slice(rest);
    }
}

/// Finds the first whole frame of a buffer: its payload's range and the frame's size.
type CutFrame = fn(&[u8]) -> Option<(std::ops::Range<usize>, usize)>;

/// [`read_lines`] for framed streams (a WebSocket's messages, ABChat's length-prefixed
/// frames): each frame that `cut` finds is a line.
fn read_frames(
    h: &Handle,
    state: &Rc<RefCell<State>>,
    conn: &Conn,
    r: usize,
    leftover: Vec<u8>,
    cut: CutFrame,
) {
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut buf = leftover;
    let base = state.borrow().base;
    loop {
        if cut(&buf).is_none() {
            chunk = match h.yield_op(ops::Receive::raw(conn, std::mem::take(&mut chunk), CHUNK)) {
                Ok(bytes) => bytes,
                Err(_) => {
                    let mut s = state.borrow_mut();
                    if Instant::now() < s.stop_sending {
                        s.lost[r] = true;
                    }
                    return;
                }
            };
            buf.extend_from_slice(&chunk);
        }
        let now_us = Instant::now().saturating_duration_since(base).as_micros() as u64;
        let mut s = state.borrow_mut();
        let s = &mut *s;
        let from_us = s.measure_from.saturating_duration_since(base).as_micros() as u64;
        let stop_us = s.stop_sending.saturating_duration_since(base).as_micros() as u64;
        let mut at = 0;
        while let Some((range, used)) = cut(&buf[at..]) {
            s.record(
                r,
                &buf[at + range.start..at + range.end],
                now_us,
                from_us..stop_us,
            );
            at += used;
        }
        buf.drain(..at);
        if buf.len() > MAX_PARTIAL {
            log::warn!(target: "loadgen", "receiver {r}: a frame over {MAX_PARTIAL} bytes");
            s.lost[r] = true;
            return;
        }
    }
}

/// The first whole length-prefixed frame of `buf` (ABChat's): its payload and its size.
fn length_frame(buf: &[u8]) -> Option<(std::ops::Range<usize>, usize)> {
    let len = u32::from_be_bytes(*buf.first_chunk::<4>()?) as usize;
    (buf.len() >= 4 + len).then_some((4..4 + len, 4 + len))
}

const CHUNK: usize = 64 * 1024;
const MAX_PARTIAL: usize = 64 * 1024;

/// `<handle> says: <sender> <seq> <micros>` (the chatter's) or `<name>: <sender> <seq>
/// <micros>` (ABChat's) → (sender, seq, micros).
fn parse_says(line: &[u8]) -> Option<(usize, u32, u64)> {
    let space = line.iter().position(|&b| b == b' ')?;
    let rest = match line[space..].strip_prefix(b" says: ") {
        Some(rest) => rest,
        None if space > 0 && line[space - 1] == b':' => &line[space + 1..],
        None => return None,
    };
    let mut fields = rest.split(|&b| b == b' ');
    let mut number = || -> Option<u64> {
        let f = fields.next()?;
        if f.is_empty() || f.len() > 19 {
            return None;
        }
        f.iter().try_fold(0u64, |n, &b| {
            b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
        })
    };
    let sender = number()? as usize;
    let seq = u32::try_from(number()?).ok()?;
    let micros = number()?;
    Some((sender, seq, micros))
}

/// What the churning clients do.
struct Churn {
    addr: std::net::SocketAddr,
    /// Clients a second.
    rate: f64,
    login_timeout: Duration,
    ws: Wire,
}

/// `churn.rate` extra clients a second connect, log in and drop, until `stop`.
fn churn_clients(
    h: &Handle,
    state: &Rc<RefCell<State>>,
    churn: &Churn,
    t0: Instant,
    stop: Instant,
) {
    let period = Duration::from_secs_f64(1.0 / churn.rate);
    let mut next = t0;
    let mut n: u64 = 0;
    while next < stop {
        h.sleep_until(next);
        next += period;
        n += 1;
        let shared = state.clone();
        let (addr, ws, deadline) = (churn.addr, churn.ws, Instant::now() + churn.login_timeout);
        let spawned = h.spawn_detached(move |h| {
            let ok = login(h, addr, &format!("z{n}"), ws, deadline).is_ok();
            let mut s = shared.borrow_mut();
            if ok {
                s.churn_ok += 1;
            } else {
                s.churn_failed += 1;
            }
            // The connection drops here: the server sees it leave.
        });
        if spawned.is_err() {
            state.borrow_mut().churn_failed += 1;
        }
    }
}
