//! A hostile review of the chatter's `--max-rate` (rev-chat2), over real sockets against the
//! server running in-process, on one thread and on two. Each test here failed when written.
//!
//! - The rate limit counts the bytes a member sends, but what fills its listeners' caps is
//!   what the room writes to them: `{handle} says: {text}` for each line. An empty line is
//!   one byte paced and up to 32 + 7 (+ the line end) bytes written to every member, so a
//!   member with a long handle saying empty lines floods the room ~40 times faster than
//!   `--max-rate` and gets a steady reader cut off as before.
//! - The allowance is the member's, not the client's: a flooder that logs in again gets a
//!   fresh four seconds' worth each time, so a loop of join / 256 KiB / `/quit` is never
//!   held up.
//! - A member held up for long (a low `--max-rate`) does not delay the stop.

mod chat;
mod util;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat::{on_one_and_two_threads, protocol, sink, steady_reader, Client, Config, TestServer};

/// The tests' `--max-rate`: 64 KiB a second, far below the steady reader's pace even on a
/// loaded machine (they check the holding up, not the default).
fn paced() -> Config {
    Config {
        max_rate: 64 * 1024,
        ..Config::default()
    }
}

/// A flooder with a 32-character handle says empty lines as fast as the server takes them:
/// each is 1 byte against `--max-rate` and 43 bytes written to every member. For three
/// seconds the steady reader should keep up, as it does with 1,000-byte lines
/// (`hostile_chatter_review::a_flooder_cannot_get_a_steady_reader_cut_off`). Before: cut off
/// within the first second (the 256 KiB burst alone is 11 MB for each member).
fn short_lines_cannot_get_a_steady_reader_cut_off(threads: usize) {
    let server = TestServer::start_on(threads, paced());
    let mut reader = server.join("reader");
    let handle = "f".repeat(protocol::MAX_HANDLE_CHARS);
    let flood = server.join(&handle);
    reader.expect(&format!("{handle} has joined the chat."));
    let done = Arc::new(AtomicBool::new(false));
    let steady = steady_reader(reader.stream.try_clone().unwrap(), Arc::clone(&done));
    let echo = sink(flood.stream.try_clone().unwrap());
    let mut s = flood.stream.try_clone().unwrap();
    let stop = Arc::clone(&done);
    let writer = std::thread::spawn(move || {
        let lines = vec![b'\n'; 64 * 1024];
        while !stop.load(Ordering::Relaxed) && s.write_all(&lines).is_ok() {}
    });
    std::thread::sleep(Duration::from_secs(3));
    done.store(true, Ordering::Relaxed);
    let (total, why) = steady.join().unwrap();
    let _ = flood.stream.shutdown(std::net::Shutdown::Both);
    writer.join().unwrap();
    echo.join().unwrap();
    assert!(
        why.is_empty(),
        "the steady reader was cut off after reading {total} bytes: {why}"
    );
    assert!(total > 0, "the reader heard the flood");
    server.stop();
}

/// A flooder logs in, says 256 KiB (its saved-up allowance) of 1,000-byte lines, quits and
/// logs in again, for three seconds. Each login is a new member with a full allowance, so
/// it is never held up; the steady reader should keep up as it does against one member
/// flooding. Before: cut off within the first second.
fn logging_in_again_does_not_refill_the_allowance(threads: usize) {
    let server = TestServer::start_on(threads, paced());
    let reader = server.join("reader");
    let done = Arc::new(AtomicBool::new(false));
    let steady = steady_reader(reader.stream.try_clone().unwrap(), Arc::clone(&done));
    let addr = server.addr;
    let stop = Arc::clone(&done);
    let flooder = std::thread::spawn(move || {
        let burst = format!("{}\n", "f".repeat(1000)).repeat(256);
        let mut logins = 0;
        while !stop.load(Ordering::Relaxed) {
            let mut c = Client::connect(addr);
            c.expect(protocol::PROMPT);
            c.send("flood");
            let echo = sink(c.stream.try_clone().unwrap());
            if c.stream.write_all(burst.as_bytes()).is_err() {
                break;
            }
            let _ = c.stream.write_all(b"/quit\n");
            echo.join().unwrap();
            logins += 1;
        }
        logins
    });
    std::thread::sleep(Duration::from_secs(3));
    done.store(true, Ordering::Relaxed);
    let (total, why) = steady.join().unwrap();
    let logins = flooder.join().unwrap();
    let _ = reader.stream.shutdown(std::net::Shutdown::Both);
    assert!(
        why.is_empty(),
        "the steady reader was cut off after reading {total} bytes ({logins} logins of the flooder): {why}"
    );
    server.stop();
}

/// A member held up for long (`--max-rate 1`: a 1,000-byte line is 1,000 s of debt) when the
/// server stops: everyone is told the goodbye at once and the stop takes no longer than a
/// stop without it.
fn a_member_held_up_does_not_delay_the_stop(threads: usize) {
    let server = TestServer::start_on(
        threads,
        Config {
            max_rate: 1,
            ..Config::default()
        },
    );
    let mut ann = server.join("ann");
    let mut bob = server.join("bob");
    ann.expect("bob has joined the chat.");
    bob.send(&"b".repeat(1000));
    ann.expect(&format!("bob says: {}", "b".repeat(1000)));
    // bob's next lines wait in his socket; ann speaks freely (her own allowance).
    bob.send("still here?");
    let started = Instant::now();
    server.stop();
    let took = started.elapsed();
    assert_eq!(ann.line(), protocol::SHUTTING_DOWN);
    let mut bob_heard = Vec::new();
    while let Ok(Some(line)) = bob.try_line() {
        bob_heard.push(line);
    }
    assert!(
        bob_heard.iter().any(|l| l == protocol::SHUTTING_DOWN),
        "bob was not told the goodbye: {bob_heard:?}"
    );
    assert!(took < Duration::from_secs(2), "the stop took {took:?}");
}

/// A member held up (a 2 MiB line at 64 KiB a second: 28 s of debt) whose connection is
/// reset: it is gone, so the room hears it leave at once and its handle is free again.
/// Before: it stayed a member, listed and holding its handle, until its debt was paid.
fn a_member_held_up_that_is_gone_leaves_at_once(threads: usize) {
    let server = TestServer::start_on(
        threads,
        Config {
            max_line: 4 << 20,
            max_outbound: 16 << 20,
            max_rate: 64 * 1024,
            ..Config::default()
        },
    );
    let mut ann = server.join("ann");
    let mut bob = server.join("bob");
    ann.expect("bob has joined the chat.");
    let long = "b".repeat(2 << 20);
    bob.send(&long);
    assert_eq!(ann.line().len(), "bob says: ".len() + long.len());
    let _ = bob.line(); // bob's own copy
    bob.reset();
    let started = Instant::now();
    ann.stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let heard = ann.try_line();
    let mut again = server.client();
    again.expect(protocol::PROMPT);
    again.send("bob");
    let answer = again.line();
    assert!(
        matches!(&heard, Ok(Some(l)) if l == "bob has left the chat."),
        "ann heard {heard:?} within {:?} of bob's reset (a newcomer bob was answered {answer:?})",
        started.elapsed()
    );
    assert_eq!(answer, "bob has joined the chat.");
    drop(again);
    server.stop();
}

on_one_and_two_threads!(
    short_lines_cannot_get_a_steady_reader_cut_off,
    logging_in_again_does_not_refill_the_allowance,
    a_member_held_up_does_not_delay_the_stop,
    a_member_held_up_that_is_gone_leaves_at_once,
);
