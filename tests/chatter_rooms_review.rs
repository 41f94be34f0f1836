//! A hostile review of rooms (`/join NAME`), over real sockets against the server running
//! in-process, on one thread and on two: what a member could not tell apart is one room
//! (names differ by case only), what a member could not see is refused (invisible
//! characters), and rooms are bounded.

mod chat;
mod util;

use chat::{on_one_and_two_threads, Client, Config, TestServer};

/// `handle` logs in and moves to `room`, reading up to its own join there.
fn join_room(server: &TestServer, handle: &str, room: &str) -> Client {
    let mut c = server.join(handle);
    c.send(&format!("/join {room}"));
    c.lines_until(&format!("{handle} has joined room {room}."));
    c
}

/// Room names are case-insensitive: `/join LOBBY` is the lobby (not a second room that
/// reads like it), `/join RED` from red is answered as a join of the room one is in, and
/// `Red` and `red` are one room.
fn room_names_differ_by_more_than_case(threads: usize) {
    let server = TestServer::start_on(threads, Config::default());
    let mut lobby = server.join("lo");
    let mut red = join_room(&server, "r", "red");
    lobby.lines_until("r has left the chat.");
    red.send("/join RED");
    red.expect("You are in room red already.");
    let mut m = server.join("m");
    m.send("/join Red");
    m.expect("m has joined room red.");
    red.lines_until("m has joined room red.");
    m.send("/join LOBBY");
    m.expect("m has joined the chat.");
    lobby.lines_until("m has joined the chat.");
    m.send("/who");
    m.expect("Online: lo, m");
    server.stop();
}

/// Characters a member cannot see are refused in room names and handles: a right-to-left
/// override turns the rest of every line naming the room, a zero-width space makes a room
/// (or a handle) that reads like another.
fn invisible_characters_are_refused(threads: usize) {
    let server = TestServer::start_on(threads, Config::default());
    let mut m = server.join("m");
    for name in ["\u{202E}evil", "red\u{200B}", "\u{2066}x", "a\u{FEFF}"] {
        m.send(&format!("/join {name}"));
        m.expect(chat::protocol::JOIN_USAGE);
    }
    m.send("/who");
    m.expect("Online: m");
    let mut spoof = server.client();
    spoof.expect(chat::protocol::PROMPT);
    spoof.send("m\u{200B}");
    spoof.expect(chat::protocol::BadHandle::BadCharacter.message());
    spoof.expect(chat::protocol::PROMPT);
    server.stop();
}

/// Rooms are bounded (`--max-rooms`): past the limit, `/join` of a new room is refused with
/// why, the member staying where it was; a room that exists may still be joined, and a room
/// that empties frees its place.
fn rooms_are_bounded(threads: usize) {
    let config = Config {
        max_rooms: 2,
        ..Config::default()
    };
    let server = TestServer::start_on(threads, config);
    let mut m = server.join("m");
    let mut a = join_room(&server, "a", "one");
    let mut b = join_room(&server, "b", "two");
    // The whisper comes after b's join, from b's thread: m's thread knows of room two.
    b.send("/msg m hi");
    m.lines_until("b whispers: hi");
    m.send("/join three");
    m.expect(&chat::protocol::too_many_rooms(2));
    m.send("/who");
    m.expect("Online: m");
    m.send("/join two");
    m.expect("m has joined room two.");
    b.lines_until("m has joined room two.");
    // Room one empties: its place is free.
    a.send("/join lobby");
    a.expect("a has joined the chat.");
    a.send("/msg m bye");
    m.lines_until("a whispers: bye");
    m.send("/join three");
    m.expect("m has joined room three.");
    server.stop();
}

/// A member cut off for not reading, with a move to another room in the same write: the
/// room it was in hears it leave, once, and the room it named hears nothing (its lines after
/// the cut-off are not obeyed).
fn a_member_cut_off_while_moving_leaves_the_room_it_was_in(threads: usize) {
    for stackless in [true, false] {
        let config = Config {
            max_outbound: 1024,
            stackless_members: stackless,
            ..Config::default()
        };
        let server = TestServer::start_on(threads, config);
        let mut lo = server.join("lo");
        let mut red = join_room(&server, "r", "red");
        let mut v = server.join("v");
        lo.lines_until("v has joined the chat.");
        // Answers past its limit, unread, then a move: all in one write.
        let mut burst = "/who\n".repeat(400);
        burst.push_str("/join red\n");
        v.send_raw(burst.as_bytes());
        lo.expect("v has left the chat.");
        lo.send("/who");
        lo.expect("Online: lo");
        red.send("/who");
        red.expect("Online in red: r");
        server.stop();
    }
}

/// Across threads, a line said in a room goes only to the threads with a member in it: the
/// two members of red on one thread say lines, and none of them crosses to the other thread
/// (whose members are in the lobby); a whisper to a member there does. Counted by the
/// speakers' thread's `crossed`.
#[test]
fn a_rooms_lines_cross_only_to_threads_with_a_member_in_it() {
    let server = TestServer::start_on(2, Config::default());
    // The hand-off gives each newcomer the least-loaded thread: find where each one went.
    let mut clients = Vec::new();
    let mut on = [Vec::new(), Vec::new()];
    for i in 0..4 {
        let handle = format!("m{i}");
        let before: Vec<u64> = server
            .stats_per_thread()
            .iter()
            .map(|s| s.0.joined)
            .collect();
        let c = server.join(&handle);
        server.wait_for("the join counted", |room, _| room.joined == i + 1);
        let after = server.stats_per_thread();
        let thread = (0..2).find(|&t| after[t].0.joined > before[t]).unwrap();
        on[thread].push(clients.len());
        clients.push((handle, c));
    }
    // Two on one thread (`here`), one on the other.
    let here = if on[0].len() >= 2 { 0 } else { 1 };
    assert!(on[here].len() >= 2 && !on[1 - here].is_empty(), "{on:?}");
    let (x, y, z) = (on[here][0], on[here][1], on[1 - here][0]);
    for i in [x, y] {
        let (handle, c) = &mut clients[i];
        c.send("/join red");
        c.lines_until(&format!("{handle} has joined room red."));
    }
    let (xh, yh, zh) = (
        clients[x].0.clone(),
        clients[y].0.clone(),
        clients[z].0.clone(),
    );
    // Every join and leave so far has crossed: a whisper to the other thread, heard, and
    // fresh counters after it.
    clients[y].1.send(&format!("/msg {zh} sync"));
    clients[z].1.lines_until(&format!("{yh} whispers: sync"));
    server.wait_for("fresh counters", |_, _| true);
    let crossed_before = server.stats_per_thread()[here].0.crossed;
    for n in 0..50 {
        clients[x].1.send(&format!("line {n}"));
    }
    clients[y].1.lines_until(&format!("{xh} says: line 49"));
    clients[x].1.send(&format!("/msg {zh} done"));
    clients[z].1.expect(&format!("{xh} whispers: done"));
    server.wait_for("fresh counters", |_, _| true);
    let crossed = server.stats_per_thread()[here].0.crossed - crossed_before;
    assert_eq!(
        crossed, 1,
        "events sent to the other thread: the whisper only"
    );
    server.stop();
}

/// With a tasklet per member (`--idle-members stackful`), rooms behave as with stackless
/// members: lines and `/who` per room, a move announced in both rooms, a leave from a room
/// heard there only, once, and the handle free again.
fn rooms_with_stackful_members(threads: usize) {
    let config = Config {
        stackless_members: false,
        ..Config::default()
    };
    let server = TestServer::start_on(threads, config);
    let mut lo = server.join("lo");
    let mut a = join_room(&server, "a", "red");
    let mut b = join_room(&server, "b", "red");
    a.lines_until("b has joined room red.");
    lo.lines_until("b has left the chat.");
    b.send("hi");
    a.expect("b says: hi");
    // On two threads, a's join there may come after b's own.
    for got in b.lines_until("b says: hi") {
        assert!(
            got == "b says: hi" || got == "a has joined room red.",
            "{got:?}"
        );
    }
    a.send("/who");
    a.expect("Online in red: a, b");
    b.send("/quit");
    b.expect_end();
    a.expect("b has left room red.");
    let mut b = server.join("b");
    b.send("/who");
    b.expect("Online: b, lo");
    lo.expect("b has joined the chat.");
    lo.send("/who");
    lo.expect("Online: b, lo");
    server.stop();
}

/// A member who joins a room and speaks at once, in one write, is heard by the members
/// already there, whatever their thread: the room's threads are known when the line is said,
/// not when the other threads' joins have come (twenty rooms, each a fresh race).
fn a_line_said_at_once_after_a_join_reaches_the_room(threads: usize) {
    let server = TestServer::start_on(threads, Config::default());
    let _lobby = server.join("lo");
    for i in 0..20 {
        let room = format!("r{i}");
        let mut first = join_room(&server, &format!("a{i}"), &room);
        let mut second = server.client();
        second.expect(chat::protocol::PROMPT);
        second.send_raw(format!("b{i}\n/join {room}\nhi from b{i}\n").as_bytes());
        first.expect(&format!("b{i} has joined room {room}."));
        first.expect(&format!("b{i} says: hi from b{i}"));
    }
    server.stop();
}

on_one_and_two_threads!(
    a_line_said_at_once_after_a_join_reaches_the_room,
    rooms_with_stackful_members,
    a_member_cut_off_while_moving_leaves_the_room_it_was_in,
    rooms_are_bounded,
    room_names_differ_by_more_than_case,
    invisible_characters_are_refused,
);
