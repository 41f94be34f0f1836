//! Hostile review of the family examples (eventlet_chat, chatter_2007, unblock_hash, hertz,
//! abchat), each run as a process and driven over loopback. Every test here failed when it was written; each names
//! what it expects.
//!
//! Run: `cargo build --release --examples && cargo test --release --test
//! examples_family_review` (or the debug pair).

mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// `lines` numbered lines of about 300 bytes, in one buffer: what a member pasting a file
/// into `nc` sends.
fn burst(lines: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..lines {
        out.extend_from_slice(format!("{i} {}\n", "y".repeat(300)).as_bytes());
    }
    out
}

/// Every line a reader got, and its error if one ended it.
type Heard = (Vec<String>, Option<String>);

/// A reader on `addr` that reads as fast as the kernel gives (its own thread), after sending
/// `hello` (a handle, where the chat asks for one); returns every line it got until the
/// server went quiet for 3 s, or its error.
fn fast_reader(addr: &str, hello: &[u8]) -> (TcpStream, std::thread::JoinHandle<Heard>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(hello).unwrap();
    let read = stream.try_clone().unwrap();
    read.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let thread = std::thread::spawn(move || {
        let mut reader = BufReader::new(read);
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) => return (lines, Some("EOF".to_owned())),
                Ok(_) => lines.push(line.trim_end().to_owned()),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return (lines, None),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return (lines, None),
                Err(e) => return (lines, Some(e.to_string())),
            }
        }
    });
    (stream, thread)
}

/// The numbers of the burst's lines among `lines` (`"<n> yyy…"`, or `"<who> says: <n> yyy…"`).
fn burst_numbers(lines: &[String]) -> Vec<usize> {
    lines
        .iter()
        .filter(|l| l.ends_with("yyyy"))
        .filter_map(|l| {
            let words: Vec<&str> = l.split(' ').collect();
            words[words.len() - 2].parse().ok()
        })
        .collect()
}

/// A member that reads as fast as the machine allows must get every line another member
/// pasted, in order: it is not the slow one. eventlet_chat's group (default 64 KiB send
/// limit, slow members cut off) resets it, before a byte reaches it, when another member
/// sends 300 KB in one write.
#[test]
fn eventlet_chat_a_burst_from_one_member_does_not_cut_off_a_reader_that_keeps_up() {
    let server = util::Example::start("eventlet_chat");
    let (_keep, reader) = fast_reader(&server.addr, b"");
    let mut paster = TcpStream::connect(&server.addr).unwrap();
    // Both are in the group once their joins are printed.
    server.wait_for("Participant joined chat.");
    server.wait_for("Participant joined chat.");
    paster.write_all(&burst(1000)).unwrap();
    let (lines, error) = reader.join().unwrap();
    let got = burst_numbers(&lines);
    assert_eq!(
        error,
        None,
        "the reader was cut off after {} of 1000 lines",
        got.len()
    );
    assert_eq!(got, (0..1000).collect::<Vec<_>>());
}

/// chatter_2007's broadcast drops a line for a member whose output is full
/// (`try_send_line`): a burst of 300 KB from one member loses most lines for a reader that
/// keeps up.
#[test]
fn chatter_2007_a_burst_from_one_member_reaches_a_reader_that_keeps_up_whole() {
    let server = util::Example::start("chatter_2007");
    let (_keep, reader) = fast_reader(&server.addr, b"reader\n");
    let mut paster = TcpStream::connect(&server.addr).unwrap();
    paster.write_all(b"paster\n").unwrap();
    // Logged in once its own join comes back (the reader joined before it).
    paster
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut own = BufReader::new(paster.try_clone().unwrap());
    loop {
        let mut line = String::new();
        own.read_line(&mut line).unwrap();
        if line.starts_with("paster has joined") {
            break;
        }
    }
    paster.write_all(&burst(1000)).unwrap();
    let (lines, error) = reader.join().unwrap();
    assert_eq!(error, None);
    let got = burst_numbers(&lines);
    assert_eq!(got.len(), 1000, "lost {} of 1000 lines", 1000 - got.len());
    assert_eq!(got, (0..1000).collect::<Vec<_>>());
}

/// unblock_hash's chat drops lines the same way (`try_send_line` to each other member).
#[test]
fn unblock_hash_a_burst_from_one_member_reaches_a_reader_that_keeps_up_whole() {
    let server = util::Example::start("unblock_hash");
    let (_keep, reader) = fast_reader(&server.addr, b"");
    let mut paster = TcpStream::connect(&server.addr).unwrap();
    std::thread::sleep(Duration::from_millis(300)); // both are members (no line says so)
    paster.write_all(&burst(1000)).unwrap();
    let (lines, error) = reader.join().unwrap();
    assert_eq!(error, None);
    let got = burst_numbers(&lines);
    assert_eq!(got.len(), 1000, "lost {} of 1000 lines", 1000 - got.len());
}

/// One member's `/hash` lines each become a tasklet and a blocking-pool job, without limit:
/// one write of 3,000 `/hash big` lines queues 3,000 reads of the whole file, which go on
/// after that member left, and every other member's `/hash` waits behind them all.
/// One member sending thousands of `/hash` lines held a tasklet and a blocking-pool job for
/// each (40,000 took the process to `vm.max_map_count`), and another member's `/hash` waited
/// behind them all. Now one `/hash` at a time per member.
#[test]
fn unblock_hash_one_members_hash_flood_does_not_starve_the_others() {
    let dir = std::env::temp_dir().join(format!("fibra-unblock-flood-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("big"), vec![7u8; 8 << 20]).unwrap();
    std::fs::write(dir.join("small"), b"abc").unwrap();
    let server = util::Example::start_with("unblock_hash", &["--dir", dir.to_str().unwrap()]);
    let mut flood = TcpStream::connect(&server.addr).unwrap();
    flood.write_all(&b"/hash big\n".repeat(3000)).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    drop(flood); // it leaves; what it asked for should not outlive it by 3,000 jobs
    let mut other = TcpStream::connect(&server.addr).unwrap();
    other
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    other.write_all(b"/hash small\n").unwrap();
    let mut answer = String::new();
    let got = BufReader::new(other).read_line(&mut answer);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        got.is_ok() && answer.starts_with("/hash small: fnv1a64"),
        "no answer to another member's /hash within 20 s ({got:?}, {answer:?}): it waits \
         behind the flood's jobs"
    );
}

/// hertz's tick loop looks at Ctrl-C only between ticks: at `--hz 0.01` Ctrl-C waits up to
/// 100 s. The module doc says Ctrl-C stops it.
#[test]
fn hertz_at_a_low_rate_stops_on_ctrl_c_without_waiting_for_its_next_tick() {
    let server = util::Example::start_with("hertz", &["--hz", "0.01"]);
    // Listening and ticking; the first tick is given at once, the next 100 s later.
    std::thread::sleep(Duration::from_millis(500));
    let (status, said) = server.interrupt(); // panics "hertz kept running" after 20 s
    assert!(status.success(), "exited {status}:\n{said}");
}

/// ABChat frames: a 4-byte big-endian length, then the payload.
fn frame(text: &str) -> Vec<u8> {
    let mut out = (text.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    out
}

fn recv_frame(stream: &mut TcpStream) -> String {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).unwrap();
    let mut payload = vec![0; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut payload).unwrap();
    String::from_utf8(payload).unwrap()
}

fn abchat_login(addr: &str, name: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&frame(name)).unwrap();
    assert_eq!(recv_frame(&mut s), format!("ok {name}"));
    s
}

/// `--interval`: "a frame sooner than that after the sender's last accepted one is dropped",
/// and a client that reconnects keeps its name. Logging in again under the same name starts
/// a fresh interval: reconnecting evades the rate limit.
#[test]
fn abchat_logging_in_again_does_not_restart_the_rate_limit() {
    let server = util::Example::start_with("abchat", &["--interval", "60000"]);
    let mut bob = abchat_login(&server.addr, "bob");
    let mut ada = abchat_login(&server.addr, "ada");
    ada.write_all(&frame("one")).unwrap();
    assert_eq!(recv_frame(&mut bob), "ada: one");
    assert_eq!(recv_frame(&mut ada), "ada: one");
    let mut again = abchat_login(&server.addr, "ada");
    assert_eq!(recv_frame(&mut ada), "error replaced");
    again.write_all(&frame("two")).unwrap();
    assert_eq!(
        recv_frame(&mut again),
        "error too fast",
        "ada's second frame came 60 s too soon, on a new connection"
    );
}

/// ABChat's names refused control characters but not the ones that show nothing: `ab` with
/// a zero-width space inside, or a right-to-left override, logged in as names that read like
/// another's.
#[test]
fn abchat_refuses_names_that_show_nothing_more_than_another() {
    let server = util::Example::start("abchat");
    for trick in ["ab\u{200b}c", "\u{202e}evil", "ann\u{2800}"] {
        let mut s = TcpStream::connect(&server.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(&frame(trick)).unwrap();
        let answer = recv_frame(&mut s);
        assert!(
            answer.starts_with("error "),
            "{trick:?} logged in: {answer}"
        );
    }
}
