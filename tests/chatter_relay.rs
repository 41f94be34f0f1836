//! The chatter across threads: what the relay costs the thread that takes the other
//! threads' lines, over real sockets, against the server running in-process.

mod chat;
mod util;

use std::io::Write;
use std::time::{Duration, Instant};

use chat::{Config, TestServer};

/// Lines said on one thread, a few hundred microseconds apart, are applied on the other in
/// batches, at most one a millisecond: not one round of that thread's fan-out (and one
/// wake-up of it from the speaker's thread) per line, which made a room on N threads cost
/// its threads several times the CPU per delivery of one thread.
#[test]
fn the_other_threads_lines_are_applied_in_batches_not_one_round_each() {
    const LINES: usize = 200;
    let server = TestServer::start_on(2, Config::default());
    let mut speaker = server.join("p0");
    server.wait_for("the join", |room, _| room.members == 1);
    let mut listener = server.join("p1");
    server.wait_for("the join", |room, _| room.members == 2);
    let per_thread = server.stats_per_thread();
    assert!(
        per_thread.iter().all(|(room, _)| room.members == 1),
        "the hand-off put one on each thread: {per_thread:?}"
    );
    speaker.lines_until("p1 has joined the chat.");
    let rounds_before: u64 = per_thread.iter().map(|(room, _)| room.relay_rounds).sum();
    let started = Instant::now();
    let mut stream = speaker.stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        for n in 0..LINES {
            stream.write_all(format!("line {n}\n").as_bytes()).unwrap();
            std::thread::sleep(Duration::from_micros(300));
        }
    });
    for n in 0..LINES {
        assert_eq!(listener.line(), format!("p0 says: line {n}"));
    }
    let elapsed = started.elapsed();
    writer.join().unwrap();
    let rounds: u64 = server
        .stats_per_thread()
        .iter()
        .map(|(room, _)| room.relay_rounds)
        .sum::<u64>()
        - rounds_before;
    // At most one batch a millisecond (and the one that ends the wait).
    let bound = elapsed.as_millis() as u64 + 2;
    assert!(
        rounds <= bound,
        "{LINES} lines over {elapsed:?} applied in {rounds} rounds (at most {bound})"
    );
    server.stop();
}
