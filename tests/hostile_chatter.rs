//! Hostile input and faults against the chatter: the server keeps serving, loses no accepted
//! line, and bounds its memory. After every case a newcomer is served correctly.

mod chat;
mod util;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use chat::{assert_serves_a_newcomer, protocol, Client, Config, TestServer};

/// Writes `bytes` from a thread that stops at the first error (the server hung up).
fn write_in_background(mut stream: TcpStream, bytes: Vec<u8>) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut sent = 0;
        for chunk in bytes.chunks(64 * 1024) {
            if stream.write_all(chunk).is_err() {
                break;
            }
            sent += chunk.len();
        }
        sent
    })
}

fn a_10_mib_line_without_a_newline_is_cut_at_the_limit(threads: usize) {
    let server = TestServer::start_on(threads, Config::default());
    let mut ann = server.join("ann");
    for login in [false, true] {
        let mut big = server.client();
        if login {
            big.login("big");
            ann.expect("big has joined the chat.");
        } else {
            big.expect(protocol::PROMPT);
        }
        let writer = write_in_background(big.stream.try_clone().unwrap(), vec![b'x'; 10 << 20]);
        big.expect("Line too long (the limit is 8192 bytes); goodbye.");
        big.expect_end();
        let sent = writer.join().unwrap();
        assert!(
            sent < 10 << 20,
            "the server read all 10 MiB instead of hanging up"
        );
        if login {
            ann.expect("big has left the chat.");
        }
        let (_, net) = server.stats();
        assert!(net.queued < 64 * 1024, "{net:?}");
        eprintln!("10 MiB line (logged in: {login}): the client wrote {sent} bytes before the hang-up; server queued {} bytes, {} pooled buffers", net.queued, net.pooled_buffers);
    }
    assert_serves_a_newcomer(&server, &mut ann);
    server.stop();
}

/// What the chatter should say for a raw line: one trailing `\r` stripped, invalid UTF-8
/// replaced.
fn relayed(raw: &[u8]) -> String {
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    // Control characters (but the tab) reach no other terminal: replaced.
    String::from_utf8_lossy(raw)
        .chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

fn nul_binary_and_invalid_utf8_are_relayed_not_fatal(threads: usize) {
    let server = TestServer::start_on(threads, Config::default());
    let mut ann = server.join("ann");
    let mut bin = server.join("bin");
    ann.expect("bin has joined the chat.");
    // Every byte value but the newline, in lines of varied length, plus hand-picked ones.
    let mut lines: Vec<Vec<u8>> = vec![
        b"nul\0inside".to_vec(),
        b"\0".to_vec(),
        b"\xff\xfe\xfd".to_vec(),
        b"cut \xe2\x82".to_vec(),
        b"\xc0\x80 overlong nul".to_vec(),
        b"\xed\xa0\x80 surrogate".to_vec(),
        b"\x1b[2J escape".to_vec(),
        "ok: caf\u{e9} \u{1f600}".as_bytes().to_vec(),
    ];
    let mut state = 0x2545_f491_u32;
    for len in [1, 2, 7, 64, 300, 4000] {
        let line: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state % 256) as u8
            })
            .map(|b| if b == b'\n' { b'N' } else { b })
            .collect();
        lines.push(line);
    }
    let mut wire = Vec::new();
    for line in &lines {
        wire.extend_from_slice(line);
        wire.push(b'\n');
    }
    bin.send_raw(&wire);
    for line in &lines {
        let want = format!("bin says: {}", relayed(line));
        ann.expect(&want);
        bin.expect(&want);
    }
    // A handle with invalid UTF-8 is judged after replacement.
    let mut odd = server.client();
    odd.expect(protocol::PROMPT);
    odd.send_raw(b"\xffodd\n");
    odd.expect("\u{fffd}odd has joined the chat.");
    ann.expect("\u{fffd}odd has joined the chat.");
    assert_serves_a_newcomer(&server, &mut ann);
    server.stop();
}

fn mixed_line_ends_and_one_byte_per_write(threads: usize) {
    let server = TestServer::start_on(threads, Config::default());
    let mut ann = server.join("ann");
    let mut slow = server.client();
    slow.stream.set_nodelay(true).unwrap();
    slow.expect(protocol::PROMPT);
    let wire: &[u8] = b"drip\r\nline one\nline two\r\ncr\rinside\nends in two crs\r\r\n\r\n\n";
    for (i, byte) in wire.iter().enumerate() {
        slow.send_raw(&[*byte]);
        if i % 8 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    slow.name = "drip".into();
    slow.expect("drip has joined the chat.");
    ann.expect("drip has joined the chat.");
    for want in [
        "drip says: line one",
        "drip says: line two",
        "drip says: cr\u{fffd}inside",
        "drip says: ends in two crs\u{fffd}",
        "drip says: ",
        "drip says: ",
    ] {
        ann.expect(want);
        slow.expect(want);
    }
    assert_serves_a_newcomer(&server, &mut ann);
    server.stop();
}

fn silent_clients_are_dropped_at_the_login_deadline(threads: usize) {
    let server = TestServer::start_on(
        threads,
        Config {
            login_timeout: Some(Duration::from_millis(300)),
            ..Config::default()
        },
    );
    let mut ann = server.join("ann");
    let silent: Vec<Client> = (0..100).map(|_| server.client()).collect();
    server.wait_for("100 waiting at the prompt", |room, _| room.sessions == 101);
    let started = Instant::now();
    for mut c in silent {
        c.expect(protocol::PROMPT);
        c.expect(protocol::LOGIN_TIMED_OUT);
        c.expect_end();
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    server.wait_for("only ann left", |room, net| {
        room.sessions == 1 && net.connections == 1
    });
    assert_serves_a_newcomer(&server, &mut ann);
    server.stop();
}

fn thousands_of_connects_and_drops_leave_nothing_behind(threads: usize) {
    const PER_THREAD: usize = 750;
    let server = TestServer::start_on(threads, Config::default());
    let mut ann = server.join("ann");
    let mut bob = server.join("bob");
    ann.expect("bob has joined the chat.");
    let addr = server.addr;
    let churners: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let mut joined = 0;
                for i in 0..PER_THREAD {
                    let mut c = Client::connect(addr);
                    match i % 5 {
                        0 => {} // drop at once
                        1 => c.expect(protocol::PROMPT),
                        2 => c.send_raw(b"half a hand"),
                        3 => {
                            c.expect(protocol::PROMPT);
                            c.reset();
                            continue;
                        }
                        _ => {
                            c.login(&format!("churn{t}x{i}"));
                            joined += 1;
                        }
                    }
                    drop(c);
                }
                joined
            })
        })
        .collect();
    // Meanwhile, ann and bob keep talking.
    for n in 0..200 {
        ann.send(&format!("line {n}"));
        bob.lines_until(&format!("ann says: line {n}"));
    }
    let joined: usize = churners.into_iter().map(|t| t.join().unwrap()).sum();
    // Every churner's session has ended, on every thread: its leave was said here, or is
    // crossing from the other thread in that thread's order.
    server.wait_for("the churners gone", |room, _| {
        room.sessions == 2 && room.members == 2
    });
    // So a line said on ann's thread and one said on bob's (the hand-off put them on
    // different threads) each come after every leave from their thread.
    ann.send("sync");
    bob.send("sync");
    let mut heard = Vec::new();
    let mut syncs = 0;
    while syncs < 2 {
        let line = ann.line();
        if line.ends_with(" says: sync") {
            syncs += 1;
        } else {
            heard.push(line);
        }
    }
    // Every churner that joined was announced, and left, exactly once.
    let joins = heard
        .iter()
        .filter(|l| l.ends_with(" has joined the chat."))
        .count();
    let leaves = heard
        .iter()
        .filter(|l| l.ends_with(" has left the chat."))
        .count();
    assert_eq!((joins, leaves), (joined, joined));
    eprintln!("churn: 3000 connections ({joined} joined and left) while 200 lines went round");
    server.wait_for("only ann and bob left", |room, net| {
        // One receive (or, stackless, one input watch) each, and the listener's accept (a
        // hand-off's acceptor is a thread).
        let accepting = usize::from(threads == 1);
        room.sessions == 2
            && room.members == 2
            && net.connections == 2
            && net.waiting + net.watching == 2 + accepting
    });
    assert_serves_a_newcomer(&server, &mut ann);
    server.stop();
}

fn resets_in_the_middle_of_a_broadcast_lose_no_line_for_the_others(threads: usize) {
    const MEMBERS: usize = 20;
    const LINES: usize = 2000;
    let server = TestServer::start_on(threads, Config::default());
    let mut talker = server.join("talker");
    let mut members: Vec<Client> = (0..MEMBERS)
        .map(|i| {
            let c = server.join(&format!("m{i}"));
            talker.expect(&format!("m{i} has joined the chat."));
            c
        })
        .collect();
    // The later joins reach the earlier members: skip them.
    for (i, m) in members.iter_mut().enumerate() {
        if i + 1 < MEMBERS {
            m.lines_until(&format!("m{} has joined the chat.", MEMBERS - 1));
        }
    }
    let quitters: Vec<Client> = members.drain(..5).collect();
    let line = "z".repeat(200);
    let writer = {
        let mut stream = talker.stream.try_clone().unwrap();
        let line = line.clone();
        std::thread::spawn(move || {
            for n in 0..LINES {
                stream
                    .write_all(format!("{n} {line}\n").as_bytes())
                    .unwrap();
            }
        })
    };
    // Reset five members while the lines flow.
    std::thread::sleep(Duration::from_millis(5));
    for q in quitters {
        q.reset();
    }
    writer.join().unwrap();
    for m in members.iter_mut().chain(std::iter::once(&mut talker)) {
        let mut next = 0;
        let mut leaves = 0;
        while next < LINES {
            let got = m.line();
            if got.ends_with(" has left the chat.") {
                leaves += 1;
                continue;
            }
            assert_eq!(got, format!("talker says: {next} {line}"), "{}", m.name);
            next += 1;
        }
        // The leaves may come after the last line (on two threads, a leave from the other
        // thread is in flight until it arrives); once all five are here, /who agrees.
        while leaves < 5 {
            let got = m.line();
            assert!(got.ends_with(" has left the chat."), "{}: {got}", m.name);
            leaves += 1;
        }
        assert_eq!(leaves, 5, "{}", m.name);
        m.send("/who");
        m.expect(&format!("Online: {}", online_after_resets()));
    }
    assert_serves_a_newcomer(&server, &mut talker);
    server.stop();
}

fn online_after_resets() -> String {
    let mut handles: Vec<String> = (5..20).map(|i| format!("m{i}")).collect();
    handles.push("talker".into());
    handles.sort();
    handles.join(", ")
}

fn members_that_never_read_are_cut_off_while_the_room_is_busy(threads: usize) {
    let server = TestServer::start_on(
        threads,
        // Not held up by the rate limit: the speakers fill the caps of those who never read.
        Config {
            max_outbound: 256 * 1024,
            max_rate: 0,
            ..Config::default()
        },
    );
    let mut ann = server.join("ann");
    let sleepers: Vec<Client> = (0..5)
        .map(|i| {
            let socket =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            socket.set_recv_buffer_size(4096).unwrap();
            socket.connect(&server.addr.into()).unwrap();
            let mut c = Client::from_stream(socket.into());
            c.login(&format!("sleeper{i}"));
            ann.expect(&format!("sleeper{i} has joined the chat."));
            c
        })
        .collect();
    let mut max_queued = 0;
    let line = "q".repeat(4000);
    let mut cut = 0;
    let mut said = 0;
    while cut < 5 {
        assert!(
            said < 5000,
            "only {cut} sleepers cut off after {said} lines"
        );
        ann.send(&line);
        said += 1;
        loop {
            let got = ann.line();
            if got.ends_with(" has left the chat.") {
                cut += 1;
            } else {
                break;
            }
        }
        max_queued = max_queued.max(server.stats().1.queued);
    }
    eprintln!("5 non-readers (cap 256 KiB): cut off after {said} lines of 4 KB; most output queued at once {max_queued} bytes");
    // The bound: each sleeper's cap plus a line, and little for ann.
    assert!(
        max_queued <= 5 * (256 * 1024 + 4096) + 64 * 1024,
        "{max_queued}"
    );
    server.wait_for("five cut off", |room, _| {
        room.cut_off == 5 && room.members == 1
    });
    drop(sleepers);
    assert_serves_a_newcomer(&server, &mut ann);
    server.stop();
}

/// A bug in one session harms no other. The fault is injected from outside the server: in a
/// child process, a logger panics on the trace record of `bug`'s line `boom`, which the room
/// writes while it holds its state.
fn a_panicking_session_ends_only_itself(threads: usize) {
    const CHILD: &str = "FIBRA_PANICKING_SESSION_CHILD";
    const NAME: &str = "a_panicking_session_ends_only_itself";
    if std::env::var_os(CHILD).is_some() {
        log::set_boxed_logger(Box::new(PanicOn("bug: boom"))).unwrap();
        log::set_max_level(log::LevelFilter::Trace);
        panicking_session_child(threads);
        return;
    }
    let name = chat::variant_name(NAME, threads);
    let (ok, text) = util::run_in_child(&name, (CHILD, "1"), Duration::from_secs(60));
    assert!(ok, "child failed:\n{text}");
    assert!(text.contains("1 passed"), "the child ran the test:\n{text}");
    assert!(
        text.contains("fault injected"),
        "the fault was injected:\n{text}"
    );
}

/// A logger that panics on one message and drops the rest.
struct PanicOn(&'static str);

impl log::Log for PanicOn {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        if record.args().to_string() == self.0 {
            // On the server's thread, on purpose.
            util::panics_expected();
            panic!("fault injected on {:?}", self.0);
        }
    }

    fn flush(&self) {}
}

fn panicking_session_child(threads: usize) {
    let server = TestServer::start_on(threads, Config::default());
    let mut ann = server.join("ann");
    let mut bug = server.join("bug");
    ann.expect("bug has joined the chat.");
    bug.send("before");
    ann.expect("bug says: before");
    bug.send("boom");
    bug.expect("bug says: before");
    bug.expect_end();
    ann.expect("bug has left the chat.");
    ann.send("sync");
    assert_eq!(ann.lines_until("ann says: sync"), Vec::<String>::new());
    // The handle is free again.
    let mut again = server.join("bug");
    ann.expect("bug has joined the chat.");
    again.send("/quit");
    again.expect_end();
    ann.expect("bug has left the chat.");
    assert_serves_a_newcomer(&server, &mut ann);
    server.stop();
}

/// In a child process limited to 64 descriptors: with every descriptor taken, members keep
/// chatting and newcomers wait in the backlog; once descriptors free up, they are served.
fn out_of_descriptors_members_keep_chatting_and_newcomers_wait(threads: usize) {
    const CHILD: &str = "FIBRA_HOSTILE_FD_CHILD";
    const NAME: &str = "out_of_descriptors_members_keep_chatting_and_newcomers_wait";
    if std::env::var_os(CHILD).is_some() {
        util::set_fd_limit(64);
        out_of_descriptors_child(threads);
        return;
    }
    let name = chat::variant_name(NAME, threads);
    let (ok, text) = util::run_in_child(&name, (CHILD, "1"), Duration::from_secs(60));
    assert!(ok, "child failed:\n{text}");
    assert!(text.contains("1 passed"), "the child ran the test:\n{text}");
}

fn out_of_descriptors_child(threads: usize) {
    let server = TestServer::start_on(threads, Config::default());
    let mut ann = server.join("ann");
    let mut bob = server.join("bob");
    ann.expect("bob has joined the chat.");
    // Sockets for the newcomers, made while descriptors are left.
    let waiting: Vec<socket2::Socket> = (0..3)
        .map(|_| socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap())
        .collect();
    // Take every descriptor left.
    let mut hogs = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        hogs.push(f);
    }
    assert!(!hogs.is_empty());
    for s in &waiting {
        s.connect(&server.addr.into()).unwrap(); // completes in the kernel's backlog
    }
    // Members keep chatting while accept cannot get a descriptor.
    for n in 0..20 {
        ann.send(&format!("still here {n}"));
        bob.expect(&format!("ann says: still here {n}"));
        ann.expect(&format!("ann says: still here {n}"));
    }
    server.wait_for("accept paused", |_, net| net.accept_pauses > 0);
    let (room, _) = server.stats();
    // The hand-off's acceptor thread was already blocked in `accept`, which holds the
    // descriptor it will return (Linux takes it before it waits): one newcomer gets that.
    let reserved = usize::from(server.thread_count() > 1);
    assert_eq!(
        room.sessions,
        2 + reserved,
        "nobody was accepted without a descriptor"
    );
    // Free the descriptors: the waiting newcomers are served.
    drop(hogs);
    let mut late = Vec::new();
    for (i, s) in waiting.into_iter().enumerate() {
        let mut c = Client::from_stream(s.into());
        c.login(&format!("late{i}"));
        ann.expect(&format!("late{i} has joined the chat."));
        bob.expect(&format!("late{i} has joined the chat."));
        late.push(c);
    }
    assert_serves_a_newcomer(&server, &mut ann);
    server.stop();
}

chat::on_one_and_two_threads!(
    a_10_mib_line_without_a_newline_is_cut_at_the_limit,
    nul_binary_and_invalid_utf8_are_relayed_not_fatal,
    mixed_line_ends_and_one_byte_per_write,
    silent_clients_are_dropped_at_the_login_deadline,
    thousands_of_connects_and_drops_leave_nothing_behind,
    resets_in_the_middle_of_a_broadcast_lose_no_line_for_the_others,
    members_that_never_read_are_cut_off_while_the_room_is_busy,
    a_panicking_session_ends_only_itself,
    out_of_descriptors_members_keep_chatting_and_newcomers_wait,
);
