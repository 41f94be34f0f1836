//! IceServer's README, step by step: `examples/gettime.rs` in front of
//! `examples/timeserver.rs`, run as real processes and driven over loopback, with the back
//! end up, down at start, and killed and restarted (the pool repairs itself, and answers come
//! from the back end again). The back end answers in UTC (`…Z`); gettime's own fallback is
//! the local time with its offset (`…+HH:MM`), so each answer says where it came from.

mod util;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use util::Example;

struct Telnet {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Telnet {
    fn connect(addr: &str) -> Telnet {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Telnet { stream, reader }
    }

    /// Sends `raw` (its own line ending) and returns the answer line, `\r\n` included.
    fn ask(&mut self, raw: &str) -> String {
        self.stream.write_all(raw.as_bytes()).unwrap();
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        line
    }

    fn gettime(&mut self) -> Answer {
        let line = self.ask("gettime\r\n");
        assert!(line.ends_with("\r\n"), "answers end with CRLF: {line:?}");
        Answer::of(line.trim_end())
    }
}

#[derive(Debug, PartialEq)]
enum Answer {
    /// The back end's UTC time, passed on verbatim.
    BackEnd,
    /// gettime's local time, with an offset.
    Local,
}

impl Answer {
    fn of(time: &str) -> Answer {
        let b = time.as_bytes();
        let date_ok = b.len() >= 20 && b[4] == b'-' && b[7] == b'-' && b[10] == b'T';
        assert!(date_ok, "not an RFC 3339 time: {time:?}");
        if time.ends_with('Z') {
            Answer::BackEnd
        } else {
            let offset = &b[b.len() - 6..];
            assert!(
                (offset[0] == b'+' || offset[0] == b'-') && offset[3] == b':',
                "neither UTC nor an offset: {time:?}"
            );
            Answer::Local
        }
    }
}

fn free_port() -> String {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().to_string()
}

fn timeserver_at(addr: &str) -> Example {
    let server = Example::spawn("timeserver", &["--addr", addr]);
    server.wait_for("listening on");
    server
}

fn gettime_for(backend: &str) -> Example {
    Example::start_with(
        "gettime",
        &[
            "--backend",
            backend,
            "--backend-timeout",
            "300ms",
            "--pool",
            "2",
        ],
    )
}

/// Asks until the answer comes from `want`, for up to 10 s; returns how many asks it took.
fn until_answer(client: &mut Telnet, want: Answer) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut asks = 1;
    while client.gettime() != want {
        assert!(Instant::now() < deadline, "never answered from {want:?}");
        std::thread::sleep(Duration::from_millis(50));
        asks += 1;
    }
    asks
}

#[test]
fn gettime_passes_on_the_back_ends_time_and_refuses_other_commands() {
    let backend = Example::start("timeserver");
    let gettime = gettime_for(&backend.addr);
    let mut client = Telnet::connect(&gettime.addr);
    // The pool connects in the background: the first answers may still be local.
    until_answer(&mut client, Answer::BackEnd);
    for _ in 0..5 {
        assert_eq!(client.gettime(), Answer::BackEnd);
    }
    // A bare `\n` ends a line too.
    let line = client.ask("gettime\n");
    assert_eq!(Answer::of(line.trim_end()), Answer::BackEnd);
    for wrong in ["hello\r\n", "GETTIME\n", "gettime now\r\n", "\r\n"] {
        assert_eq!(client.ask(wrong), "command wrong\r\n", "{wrong:?}");
    }
    // Many clients at once, each answered from the back end through the pool of 2.
    let mut clients: Vec<Telnet> = (0..20).map(|_| Telnet::connect(&gettime.addr)).collect();
    for c in &mut clients {
        c.stream.write_all(b"gettime\r\n").unwrap();
    }
    for c in &mut clients {
        let mut line = String::new();
        c.reader.read_line(&mut line).unwrap();
        assert_eq!(Answer::of(line.trim_end()), Answer::BackEnd);
    }
    // The back end on its own, as gettime's pool sees it.
    let mut direct = Telnet::connect(&backend.addr);
    assert_eq!(
        Answer::of(direct.ask("gettime\n").trim_end()),
        Answer::BackEnd
    );
    assert_eq!(direct.ask("what\n"), "command wrong\r\n");
}

#[test]
fn with_the_back_end_down_at_start_gettime_answers_locally_until_it_comes_up() {
    let backend_addr = free_port();
    let gettime = gettime_for(&backend_addr);
    let mut client = Telnet::connect(&gettime.addr);
    let asked = Instant::now();
    assert_eq!(client.gettime(), Answer::Local);
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "the fallback came after the back-end timeout, not hung"
    );
    gettime.wait_for("connection to");
    let _backend = timeserver_at(&backend_addr);
    until_answer(&mut client, Answer::BackEnd);
    assert_eq!(client.gettime(), Answer::BackEnd);
}

#[test]
fn a_back_end_killed_and_restarted_is_used_again() {
    let backend_addr = free_port();
    let backend = timeserver_at(&backend_addr);
    let gettime = gettime_for(&backend_addr);
    let mut client = Telnet::connect(&gettime.addr);
    until_answer(&mut client, Answer::BackEnd);
    drop(backend); // killed: its connections are reset
    until_answer(&mut client, Answer::Local);
    assert_eq!(
        client.gettime(),
        Answer::Local,
        "no back end, no stale answer"
    );
    let _backend = timeserver_at(&backend_addr);
    until_answer(&mut client, Answer::BackEnd);
    for _ in 0..5 {
        assert_eq!(client.gettime(), Answer::BackEnd);
    }
}
