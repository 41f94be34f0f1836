//! The chatter example end to end: every rule of its protocol, over real sockets, against
//! the server running in-process on an ephemeral port.

mod chat;
mod util;

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use chat::{protocol, Client, Config, TestServer};

fn the_newcomer_and_everyone_else_hear_the_join(threads: usize) {
    let server = TestServer::start_on(threads, Config::default());
    let mut ann = server.join("ann");
    let mut bob = server.join("bob");
    ann.expect("bob has joined the chat.");
    let mut cy = server.join("cy");
    ann.expect("cy has joined the chat.");
    bob.expect("cy has joined the chat.");
    cy.send("hello");
    for c in [&mut ann, &mut bob, &mut cy] {
        c.expect("cy says: hello");
    }
    server.stop();
}

fn bad_handles_are_explained_and_prompted_again(threads: usize) {
    let server = TestServer::start_on(threads, Config::default());
    let mut ann = server.join("ann");
    let mut c = server.client();
    c.expect(protocol::PROMPT);
    let refused: [(&str, &str); 7] = [
        ("", "A handle cannot be empty."),
        (" \t ", "A handle cannot be empty."),
        (&"x".repeat(33), "A handle can have at most 32 characters."),
        (
            "two words",
            "A handle cannot contain spaces or control characters.",
        ),
        (
            "bell\u{7}",
            "A handle cannot contain spaces or control characters.",
        ),
        ("ann", protocol::TAKEN),
        ("  ann\t", protocol::TAKEN),
    ];
    for (answer, reason) in refused {
        c.send(answer);
        c.expect(reason);
        c.expect(protocol::PROMPT);
    }
    // Surrounding white space is trimmed; 32 characters (64 bytes here) are allowed; CRLF.
    let long = "é".repeat(32);
    c.send_raw(format!("  {long} \r\n").as_bytes());
    c.expect(&format!("{long} has joined the chat."));
    ann.expect(&format!("{long} has joined the chat."));
    // The refused attempts told the room nothing.
    ann.send("sync");
    assert_eq!(ann.lines_until("ann says: sync"), Vec::<String>::new());
    server.stop();
}

fn lines_reach_every_member_in_order(threads: usize) {
    let server = TestServer::start_on(threads, Config::default());
    let mut ann = server.join("ann");
    let mut bob = server.join("bob");
    ann.expect("bob has joined the chat.");
    // LF and CRLF ends, one write holding several lines, a line split across writes,
    // white space kept as sent, and invalid UTF-8 replaced.
    bob.send_raw(b"one\r\ntwo\n  three  \nfo");
    bob.stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    bob.send_raw(b"ur\n\xffbad\xc3\n\n");
    let want = [
        "bob says: one",
        "bob says: two",
        "bob says:   three  ",
        "bob says: four",
        "bob says: \u{fffd}bad\u{fffd}",
        "bob says: ",
    ];
    for c in [&mut ann, &mut bob] {
        for line in want {
            c.expect(line);
        }
    }
    server.stop();
}

fn who_and_msg_reach_one_member_only(threads: usize) {
    let server = TestServer::start_on(threads, Config::default());
    let mut ann = server.join("ann");
    let mut cy = server.join("cy");
    ann.expect("cy has joined the chat.");
    let mut bob = server.join("bob");
    ann.expect("bob has joined the chat.");
    cy.expect("bob has joined the chat.");

    cy.send("/who");
    cy.expect("Online: ann, bob, cy");
    cy.send("/msg ann meet me   at noon");
    ann.expect("cy whispers: meet me   at noon");
    cy.send("/msg zed hello?");
    cy.expect("No such handle: zed");
    cy.send("/msg ann");
    cy.expect(protocol::MSG_USAGE);
    cy.send("/dance wildly");
    cy.expect("Unknown command: /dance");
    cy.send("/");
    cy.expect("Unknown command: /");
    cy.send("/help");
    cy.expect(protocol::HELP);
    // Nobody else heard any of it: their next line is the sync.
    cy.send("sync");
    for c in [&mut ann, &mut bob, &mut cy] {
        assert_eq!(
            c.lines_until("cy says: sync"),
            Vec::<String>::new(),
            "{}",
            c.name
        );
    }
    server.stop();
}

fn quit_closes_the_connection_and_frees_the_handle(threads: usize) {
    let server = TestServer::start_on(threads, Config::default());
    let mut ann = server.join("ann");
    let mut bob = server.join("bob");
    ann.expect("bob has joined the chat.");
    bob.send("last words");
    bob.send("/quit");
    bob.send("never said");
    bob.expect("bob says: last words");
    bob.expect_end();
    ann.expect("bob says: last words");
    ann.expect("bob has left the chat.");
    let mut bob2 = server.join("bob");
    ann.expect("bob has joined the chat.");
    bob2.send("back");
    ann.expect("bob says: back");
    server.wait_for("one session per connection", |room, _| room.sessions == 2);
    server.stop();
}

/// EOF, reset and half-close: each gives one leave line, and a half-closed member's last
/// complete line comes first.
fn a_lost_connection_leaves_exactly_once(threads: usize) {
    let server = TestServer::start_on(threads, Config::default());
    let mut ann = server.join("ann");
    chat::eof_rst_and_half_leave(&server, &mut ann);

    // No second leave line for anyone; the handles are free.
    ann.send("sync");
    assert_eq!(ann.lines_until("ann says: sync"), Vec::<String>::new());
    for handle in ["eof", "rst", "half"] {
        let mut again = server.join(handle);
        ann.expect(&format!("{handle} has joined the chat."));
        again.send("/quit");
        again.expect_end();
        ann.expect(&format!("{handle} has left the chat."));
    }
    server.wait_for("every session ended", |room, net| {
        room.sessions == 1 && room.members == 1 && net.connections == 1
    });
    server.stop();
}

fn clients_racing_for_one_handle_exactly_one_wins(threads: usize) {
    const RACERS: usize = 8;
    let mut server = TestServer::start_on(threads, Config::default());
    // The winner of each race may be on either thread; the racers are on both.
    server.members_may_be_anywhere();
    for round in 0..10 {
        let handle = format!("prize{round}");
        let barrier = Arc::new(Barrier::new(RACERS));
        let racers: Vec<_> = (0..RACERS)
            .map(|_| {
                let (addr, barrier, handle) = (server.addr, barrier.clone(), handle.clone());
                std::thread::spawn(move || {
                    let mut c = Client::connect(addr);
                    c.expect(protocol::PROMPT);
                    barrier.wait();
                    c.send(&handle);
                    let answer = c.line();
                    let won = if answer == protocol::TAKEN {
                        c.expect(protocol::PROMPT);
                        false
                    } else {
                        assert_eq!(answer, format!("{handle} has joined the chat."));
                        true
                    };
                    // Kept connected until every racer has its answer: a winner that left
                    // would free the handle for a later one.
                    (won, c)
                })
            })
            .collect();
        let results: Vec<(bool, Client)> = racers.into_iter().map(|r| r.join().unwrap()).collect();
        let winners = results.iter().filter(|(won, _)| *won).count();
        assert_eq!(winners, 1, "round {round}");
    }
    server.stop();
}

fn an_overlong_line_ends_that_member_only(threads: usize) {
    let server = TestServer::start_on(threads, Config::default());
    let mut ann = server.join("ann");
    let mut big = server.join("big");
    ann.expect("big has joined the chat.");
    // Exactly at the limit is fine.
    let fits = "x".repeat(8192);
    big.send(&fits);
    ann.expect(&format!("big says: {fits}"));
    big.expect(&format!("big says: {fits}"));
    big.send(&"y".repeat(8193));
    big.expect("Line too long (the limit is 8192 bytes); goodbye.");
    big.expect_end();
    ann.expect("big has left the chat.");
    ann.send("still here");
    ann.expect("ann says: still here");

    // Also while choosing a handle, and with a configured limit.
    let server = TestServer::start_on(
        threads,
        Config {
            max_line: 16,
            ..Config::default()
        },
    );
    let mut c = server.client();
    c.expect(protocol::PROMPT);
    c.send(&"z".repeat(17));
    c.expect("Line too long (the limit is 16 bytes); goodbye.");
    c.expect_end();
}

fn a_member_that_does_not_read_is_cut_off_and_the_room_goes_on(threads: usize) {
    // One speaker fills the reader's cap: not held up by the rate limit (which would make it
    // take a quarter of a minute; `a_flooder_cannot_get_a_steady_reader_cut_off` tests it).
    let config = Config {
        max_rate: 0,
        ..Config::default()
    };
    let server = TestServer::start_on(threads, config);
    let mut ann = server.join("ann");
    // A tiny receive window, so the kernel holds little for it and the server's cap decides.
    let slow = {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.connect(&server.addr.into()).unwrap();
        let mut c = Client::from_stream(socket.into());
        c.login("slow");
        c
    };
    ann.expect("slow has joined the chat.");

    // Ann talks (8 KiB lines) and reads everything back; slow reads nothing.
    let line = "a".repeat(8000);
    let mut said = 0;
    let mut cut = false;
    while !cut {
        assert!(
            said < 2000,
            "slow was never cut off after {said} lines of 8 KB"
        );
        ann.send(&line);
        said += 1;
        loop {
            let got = ann.line();
            if got == "slow has left the chat." {
                cut = true;
            } else {
                assert_eq!(got.len(), line.len() + "ann says: ".len());
                break;
            }
        }
    }
    // The cap (1 MiB) plus what the kernel buffers decided when: not before the cap.
    assert!(said * 8000 > 1024 * 1024, "cut off after only {said} lines");
    server.wait_for("the cut-off counted", |room, _| room.cut_off == 1);
    let (_, net) = server.stats();
    assert!(
        net.queued < 2 * 1024 * 1024,
        "memory held for slow: {net:?}"
    );
    // The room goes on.
    let mut bob = server.join("bob");
    ann.lines_until("bob has joined the chat.");
    bob.send("hi");
    ann.lines_until("bob says: hi");
    // Slow got a reset (or what was buffered, then the end).
    let mut slow = slow;
    slow.name = "slow".into();
    let _ = slow.drain_to_end();
    server.stop();
}

fn five_hundred_clients_each_hear_every_line(threads: usize) {
    const CLIENTS: usize = 500;
    const LINES: usize = 3;
    util::raise_fd_limit(4 * CLIENTS as u64);
    let server = TestServer::start_on(threads, Config::default());
    let joined = Arc::new(Barrier::new(CLIENTS));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (addr, joined) = (server.addr, joined.clone());
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let mut c = Client::connect(addr);
                    c.login(&format!("u{i}"));
                    joined.wait();
                    for n in 0..LINES {
                        c.send(&format!("{i} {n}"));
                    }
                    // Every sender's lines, in the order sent.
                    let mut next: HashMap<usize, usize> = HashMap::new();
                    let mut heard = 0;
                    while heard < CLIENTS * LINES {
                        let line = c.line();
                        if line.ends_with(" has joined the chat.") {
                            continue;
                        }
                        let (who, rest) = line.split_once(" says: ").expect("a says line");
                        let (sender, n) = rest.split_once(' ').unwrap();
                        let sender: usize = sender.parse().unwrap();
                        assert_eq!(who, format!("u{sender}"));
                        let want = next.entry(sender).or_default();
                        assert_eq!(n.parse::<usize>().unwrap(), *want, "u{i} from u{sender}");
                        *want += 1;
                        heard += 1;
                    }
                    assert!(next.values().all(|&n| n == LINES));
                    assert_eq!(next.len(), CLIENTS);
                    c
                })
                .unwrap()
        })
        .collect();
    let clients: Vec<Client> = clients.into_iter().map(|t| t.join().unwrap()).collect();
    let (room, _) = server.stats();
    assert_eq!(room.members, CLIENTS);
    assert_eq!(room.cut_off, 0);
    drop(clients);
    server.wait_for("everyone left", |room, net| {
        room.members == 0 && net.connections == 0
    });
    server.stop();
}

fn a_client_that_never_chooses_a_handle_is_timed_out(threads: usize) {
    let server = TestServer::start_on(
        threads,
        Config {
            login_timeout: Some(Duration::from_millis(200)),
            ..Config::default()
        },
    );
    let mut ann = server.join("ann");
    let mut idle = server.client();
    idle.expect(protocol::PROMPT);
    // Answering badly does not extend the deadline.
    idle.send("");
    idle.expect("A handle cannot be empty.");
    idle.expect(protocol::PROMPT);
    idle.expect(protocol::LOGIN_TIMED_OUT);
    idle.expect_end();
    // Members are not subject to it.
    std::thread::sleep(Duration::from_millis(300));
    ann.send("still here");
    ann.expect("ann says: still here");
    server.stop();
}

fn shutdown_tells_everyone_and_closes_every_connection(threads: usize) {
    let server = TestServer::start_on(threads, Config::default());
    let mut ann = server.join("ann");
    let mut bob = server.join("bob");
    ann.expect("bob has joined the chat.");
    let mut pending = server.client();
    pending.expect(protocol::PROMPT);
    server.stop(); // asserts that no socket is left open
    for c in [&mut ann, &mut bob, &mut pending] {
        c.expect(protocol::SHUTTING_DOWN);
        c.expect_end();
    }
}

/// On two threads: speakers on both, each heard by every member on both in the order it
/// spoke; and a line crosses to the other thread once, not once per member there.
#[test]
fn across_threads_each_line_crosses_once_and_keeps_its_speakers_order() {
    const MEMBERS: usize = 8;
    const LINES: usize = 50;
    let server = TestServer::start_on(2, Config::default());
    let mut members: Vec<Client> = (0..MEMBERS)
        .map(|i| {
            let c = server.join(&format!("p{i}"));
            server.wait_for("the join", |room, _| room.members == i + 1);
            c
        })
        .collect();
    let per_thread = server.stats_per_thread();
    assert!(
        per_thread
            .iter()
            .all(|(room, _)| room.members == MEMBERS / 2),
        "the hand-off put half on each thread: {per_thread:?}"
    );
    // Everyone has heard every join (the joins cross too).
    for (i, m) in members.iter_mut().enumerate() {
        if i + 1 < MEMBERS {
            m.lines_until(&format!("p{} has joined the chat.", MEMBERS - 1));
        }
    }
    server.wait_for("the joins crossed", |room, _| {
        room.crossed >= MEMBERS as u64
    });
    let crossed_before: Vec<u64> = server
        .stats_per_thread()
        .iter()
        .map(|(room, _)| room.crossed)
        .collect();
    // p0 (thread 0) and p1 (thread 1) speak at once, interleaved.
    let writers: Vec<_> = [0usize, 1]
        .into_iter()
        .map(|speaker| {
            let mut stream = members[speaker].stream.try_clone().unwrap();
            std::thread::spawn(move || {
                for n in 0..LINES {
                    stream
                        .write_all(format!("{n} from p{speaker}\n").as_bytes())
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    for m in &mut members {
        let mut next = [0usize; 2];
        while next != [LINES; 2] {
            let line = m.line();
            let speaker = usize::from(line.starts_with("p1 says:"));
            assert_eq!(
                line,
                format!("p{speaker} says: {} from p{speaker}", next[speaker]),
                "{} hears each speaker in order",
                m.name
            );
            next[speaker] += 1;
        }
    }
    // Each thread sent each of its speaker's lines across once: 50, not 50 × 4 members.
    let crossed: Vec<u64> = server
        .stats_per_thread()
        .iter()
        .zip(&crossed_before)
        .map(|((room, _), before)| room.crossed - before)
        .collect();
    assert_eq!(crossed, vec![LINES as u64; 2]);
    server.stop();
}

/// `--accept reuseport` on two threads: the kernel spreads the members; the room is one.
#[test]
fn with_a_listener_per_thread_the_room_is_still_one() {
    let server = TestServer::start_reuseport(2, Config::default());
    // The kernel's hash of each connection's ports picks its thread: 12 members, and more
    // (up to 64) in the rare case that all landed on one thread, so that the room spans both.
    let mut members: Vec<Client> = Vec::new();
    let mut per_thread: Vec<usize> = Vec::new();
    while members.len() < 12 || (per_thread.contains(&0) && members.len() < 64) {
        let i = members.len();
        members.push(server.join(&format!("r{i}")));
        server.wait_for("the join", |room, _| room.members == i + 1);
        per_thread = server
            .stats_per_thread()
            .iter()
            .map(|(room, _)| room.members)
            .collect();
    }
    let members_count = members.len();
    eprintln!("SO_REUSEPORT placed {members_count} members as {per_thread:?}");
    for (i, m) in members.iter_mut().enumerate() {
        if i + 1 < members_count {
            m.lines_until(&format!("r{} has joined the chat.", members_count - 1));
        }
    }
    members[0].send("hello, everyone");
    for m in &mut members {
        m.expect("r0 says: hello, everyone");
    }
    let mut who: Vec<String> = (0..members_count).map(|i| format!("r{i}")).collect();
    who.sort();
    members[members_count - 1].send("/who");
    members[members_count - 1].expect(&format!("Online: {}", who.join(", ")));
    members[members_count - 1].send("/msg r0 psst");
    members[0].expect(&format!("r{} whispers: psst", members_count - 1));
    server.stop();
}

chat::on_one_and_two_threads!(
    the_newcomer_and_everyone_else_hear_the_join,
    bad_handles_are_explained_and_prompted_again,
    lines_reach_every_member_in_order,
    who_and_msg_reach_one_member_only,
    quit_closes_the_connection_and_frees_the_handle,
    a_lost_connection_leaves_exactly_once,
    clients_racing_for_one_handle_exactly_one_wins,
    an_overlong_line_ends_that_member_only,
    a_member_that_does_not_read_is_cut_off_and_the_room_goes_on,
    five_hundred_clients_each_hear_every_line,
    a_client_that_never_chooses_a_handle_is_timed_out,
    shutdown_tells_everyone_and_closes_every_connection,
);

// The protocol's parsers, alone (here once, not in every test file that includes `chat`).
#[test]
fn protocol_parses_handles() {
    use protocol::{parse_handle, BadHandle};
    assert_eq!(parse_handle("  ann \t"), Ok("ann"));
    assert_eq!(parse_handle(""), Err(BadHandle::Empty));
    assert_eq!(parse_handle(" \t "), Err(BadHandle::Empty));
    assert_eq!(parse_handle(&"é".repeat(32)), Ok("é".repeat(32).as_str()));
    assert_eq!(parse_handle(&"a".repeat(33)), Err(BadHandle::TooLong));
    assert_eq!(parse_handle("a b"), Err(BadHandle::BadCharacter));
    assert_eq!(parse_handle("a\u{1}b"), Err(BadHandle::BadCharacter));
    assert_eq!(parse_handle("a\u{a0}b"), Err(BadHandle::BadCharacter));
    // Letters that pass for another's: a Cyrillic `а` before Latin `nn`, a Greek omicron
    // in `bob`, fullwidth and mathematical letters, a lone or stacked accent.
    for look_alike in [
        "\u{430}nn",
        "b\u{3bf}b",
        "\u{ff41}nn",
        "\u{1d41a}nn",
        "\u{301}ann",
        "a\u{301}\u{302}\u{303}nn",
    ] {
        assert_eq!(
            parse_handle(look_alike),
            Err(BadHandle::LookAlike),
            "{look_alike}"
        );
    }
    // One script, digits and marks in it, accents in moderation: handles.
    for fine in [
        "\u{438}\u{432}\u{430}\u{43d}",
        "\u{396}\u{3c9}\u{3ae}",
        "Jos\u{e9}",
        "Jose\u{301}",
        "ann_42",
        "\u{5d3}\u{5d5}\u{5d3}",
    ] {
        assert_eq!(parse_handle(fine), Ok(fine), "{fine}");
    }
}

#[test]
fn protocol_parses_commands() {
    use protocol::{parse_command, Command};
    assert_eq!(parse_command("hi /who"), Command::Say("hi /who"));
    assert_eq!(parse_command(""), Command::Say(""));
    assert_eq!(parse_command("/who"), Command::Who);
    assert_eq!(parse_command("/who is here"), Command::Who);
    assert_eq!(parse_command("/quit"), Command::Quit);
    assert_eq!(
        parse_command("/msg bob  hello  there"),
        Command::Msg {
            to: "bob",
            text: "hello  there"
        }
    );
    assert_eq!(parse_command("/msg bob"), Command::MsgUsage);
    assert_eq!(parse_command("/msg bob   "), Command::MsgUsage);
    assert_eq!(parse_command("/msg"), Command::MsgUsage);
    assert_eq!(parse_command("/"), Command::Unknown(""));
    assert_eq!(parse_command("/QUIT"), Command::Unknown("QUIT"));
    assert_eq!(parse_command("/help"), Command::Help);
    assert_eq!(parse_command("/dance wildly"), Command::Unknown("dance"));
}

/// Ctrl-C (SIGINT to the process, by its id) after every member sat quiet for 7 s, longer
/// than the connections' close timeout: each member still gets the goodbye, then the end of
/// the stream (a FIN, not a reset).
fn ctrl_c_after_a_quiet_spell_says_goodbye_to_every_member(args: &[&str]) {
    let server = util::Example::start_with("chatter", args);
    let addr: std::net::SocketAddr = server.addr.parse().unwrap();
    let mut members: Vec<Client> = ["ann", "bob", "cy"]
        .iter()
        .map(|handle| {
            let mut c = Client::connect(addr);
            c.login(handle);
            c
        })
        .collect();
    std::thread::sleep(Duration::from_secs(7));
    let (status, said) = server.interrupt();
    assert!(
        status.success(),
        "chatter {args:?} exited {status}:\n{said}"
    );
    for c in &mut members {
        // The later members' joins come first.
        c.lines_until(protocol::SHUTTING_DOWN);
        match c.try_line() {
            Ok(None) => {}
            Ok(Some(line)) => panic!("{}: expected the end, got {line:?}", c.name),
            Err(e) => panic!("{}: expected FIN after the goodbye, got {e}", c.name),
        }
    }
}

#[test]
fn ctrl_c_after_a_quiet_spell_says_goodbye_to_every_member_on_one_thread() {
    ctrl_c_after_a_quiet_spell_says_goodbye_to_every_member(&[]);
}

#[test]
fn ctrl_c_after_a_quiet_spell_says_goodbye_to_every_member_on_two_threads() {
    ctrl_c_after_a_quiet_spell_says_goodbye_to_every_member(&["--threads", "2"]);
}

/// A restart with `--accept reuseport` on the port a stopped chatter served: the members'
/// connections, closed by the server first, wait in TIME_WAIT on that port, and the new
/// listeners still bind it (as a restart on one thread or with the hand-off does).
#[test]
fn a_restart_with_reuseport_binds_the_port_its_predecessors_members_left_in_time_wait() {
    let first = util::Example::start_with("chatter", &[]);
    let addr: std::net::SocketAddr = first.addr.parse().unwrap();
    let mut ann = Client::connect(addr);
    ann.login("ann");
    let (status, said) = first.interrupt();
    assert!(status.success(), "chatter exited {status}:\n{said}");
    ann.lines_until(protocol::SHUTTING_DOWN);
    assert!(matches!(ann.try_line(), Ok(None)), "expected the end");
    drop(ann); // the server closed first: its side waits in TIME_WAIT
    let port = addr.port().to_string();
    let at = format!("127.0.0.1:{port}");
    let args = [
        "--addr",
        &at,
        "--no-web",
        "--threads",
        "2",
        "--accept",
        "reuseport",
    ];
    let second = util::Example::spawn("chatter", &args);
    assert!(
        second.try_wait_for("listening on", Duration::from_secs(10)),
        "chatter {args:?} did not listen again on its predecessor's port"
    );
    let mut bob = Client::connect(addr);
    bob.login("bob");
    let (status, said) = second.interrupt();
    assert!(
        status.success(),
        "chatter {args:?} exited {status}:\n{said}"
    );
}
