//! A hostile review of the chatter across threads (rev-d), over real sockets against the
//! server running in-process (on two threads; the `/join` test on one and on two).
//!
//! - A handle given up on one thread and taken again at once on another: each member hears
//!   the old member's leave before the new member's join, and hears of a leave only of a
//!   member that left. Before, the hub freed the handle at once while the leave still
//!   crossed to the other thread behind the room's lines: there a member heard `X has
//!   joined the chat.` (the newcomer) and then `X has left the chat.` (the old one), and
//!   took X, online, for gone.
//! - `/join` of a name with control characters is refused, as such a handle is.

mod chat;
mod util;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chat::{on_one_and_two_threads, protocol, sink, Client, Config, TestServer};

/// The lines about `X` joining or leaving that `stream` gets, until its end.
fn x_events(stream: TcpStream) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut reader = BufReader::new(stream);
        let mut events = Vec::new();
        let mut line = String::new();
        while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
            let l = line.trim_end();
            if l == "X has joined the chat." || l == "X has left the chat." {
                events.push(l.to_owned());
            }
            line.clear();
        }
        events
    })
}

/// X quits and logs in again at once, over and over, while another member floods the
/// room: every other member hears X's joins and leaves alternate, and X, online at the
/// end, last joined.
#[test]
fn a_handle_taken_again_on_another_thread_is_heard_leaving_before_it_joins() {
    let mut server = TestServer::start_on(2, Config::default());
    server.members_may_be_anywhere();
    let watchers: Vec<Client> = ["ann", "bob"].iter().map(|h| server.join(h)).collect();
    let events: Vec<_> = watchers
        .iter()
        .map(|c| (c.name.clone(), x_events(c.stream.try_clone().unwrap())))
        .collect();
    // The flood: lines that cross between the threads ahead of X's leave.
    let flooder = server.join("flo");
    let drained = sink(flooder.stream.try_clone().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let mut flood = flooder.stream.try_clone().unwrap();
    let flooding = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let lines = b"yyyyyyyyyyyyyyyyyyyy\n".repeat(2000);
            while !stop.load(Ordering::Relaxed) && flood.write_all(&lines).is_ok() {}
        })
    };
    let mut x = server.join("X");
    for _ in 0..150 {
        x.send("/quit");
        let next = loop {
            let mut c = server.client();
            c.expect(protocol::PROMPT);
            c.send("X");
            match c.line().as_str() {
                "X has joined the chat." => break c,
                "That handle is already taken." => {}
                other => panic!("X's login got {other:?}"),
            }
        };
        x = next;
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    flooding.join().unwrap();
    // X stays: the stop tells no leaves, so each member's last word on X is its join.
    std::thread::sleep(Duration::from_millis(500));
    server.stop();
    drop((x, flooder));
    drained.join().unwrap();
    for (name, events) in events {
        let events = events.join().unwrap();
        let out_of_turn = events.windows(2).position(|w| w[0] == w[1]);
        assert!(
            out_of_turn.is_none(),
            "{name} heard X's joins and leaves out of turn at {out_of_turn:?}: {:?}",
            &events[out_of_turn.unwrap().saturating_sub(2)..][..5.min(events.len())]
        );
        assert_eq!(
            events.last().map(String::as_str),
            Some("X has joined the chat."),
            "{name} was last told that X, online, left"
        );
    }
    drop(watchers);
}

/// `/join` of a name with control characters is refused, as a handle with them is (the
/// rooms follow the handles' rules). Before, the controls became U+FFFD and the member
/// moved to a room named with them (`/join a<ESC>b` made room `a\u{FFFD}b`).
fn a_room_name_with_control_characters_is_refused(threads: usize) {
    let server = TestServer::start_on(threads, Config::default());
    let mut ann = server.join("ann");
    ann.send_raw(b"/join a\x1bb\n/join c\x07\n/join e\x7f\n/who\n");
    assert_eq!(
        ann.lines_until("Online: ann"),
        [protocol::JOIN_USAGE; 3],
        "a room named with control characters was joined"
    );
    // A bad handle is refused the same way, for comparison.
    let mut bob = server.client();
    bob.expect(protocol::PROMPT);
    bob.send_raw(b"a\x1bb\n");
    bob.expect("A handle cannot contain spaces or control characters.");
    server.stop();
}

on_one_and_two_threads!(
    a_room_name_with_control_characters_is_refused,
    a_handle_that_reads_like_a_members_is_refused,
);

/// A handle that reads like a member's (a Cyrillic `а` for a Latin `a`) is refused: before,
/// `аnn` joined beside `ann` and spoke as `ann` to the others' eyes.
fn a_handle_that_reads_like_a_members_is_refused(threads: usize) {
    let server = TestServer::start_on(threads, Config::default());
    let _ann = server.join("ann");
    let mut fake = server.client();
    fake.expect(protocol::PROMPT);
    fake.send("\u{430}nn"); // Cyrillic small a, then Latin nn
    assert_eq!(
        fake.line(),
        "A handle cannot mix Latin, Greek and Cyrillic letters, use styled letters or stack \
         accents: it could pass for another's."
    );
    fake.expect(protocol::PROMPT);
    server.stop();
}
