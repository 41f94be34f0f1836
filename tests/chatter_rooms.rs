//! Rooms (`/join NAME`), over real sockets against the server running in-process, on one
//! thread and on two: two rooms do not hear each other, `/who` lists one room, a move is
//! announced as a leave in the room left and a join in the room entered, and telnet and
//! browser members share a room alike. Members who never `/join` stay in the lobby, where
//! everything is as it was with one room. With `--redis` the federation has one room:
//! `/join` is refused, saying so.

mod chat;
mod fed;
mod util;

use chat::{on_one_and_two_threads, Client, Config, TestServer};
use fed::{Node, Redis};
use util::ws::Client as Browser;

/// `handle` logs in and moves to `room`, reading up to its own join there.
fn join_room(server: &TestServer, handle: &str, room: &str) -> Client {
    let mut c = server.join(handle);
    c.send(&format!("/join {room}"));
    c.lines_until(&format!("{handle} has joined room {room}."));
    c
}

/// Reads `c`'s lines up to `want`; before it, only joins (see [`browser_until`]).
fn until(c: &mut Client, want: &str) {
    for got in c.lines_until(want) {
        assert!(
            got == want || got.contains(" has joined "),
            "before {want:?}: {got:?}"
        );
    }
}

/// Two rooms' lines, joins and `/who` stay apart; the lobby hears none of them.
fn two_rooms_do_not_hear_each_other(threads: usize) {
    let server = TestServer::start_on(threads, Config::default());
    let mut lobby = server.join("lo");
    let mut a1 = join_room(&server, "a1", "red");
    let mut b1 = join_room(&server, "b1", "blue");
    let mut a2 = join_room(&server, "a2", "red");
    let mut b2 = join_room(&server, "b2", "blue");
    a1.lines_until("a2 has joined room red.");
    b1.lines_until("b2 has joined room blue.");
    a1.send("in red");
    b1.send("in blue");
    until(&mut a2, "a1 says: in red");
    until(&mut b2, "b1 says: in blue");
    a1.expect("a1 says: in red");
    b1.expect("b1 says: in blue");
    for c in [&mut a1, &mut a2] {
        c.send("/who");
        c.expect("Online in red: a1, a2");
    }
    for c in [&mut b1, &mut b2] {
        c.send("/who");
        c.expect("Online in blue: b1, b2");
    }
    // The lobby heard the four join the chat and leave it for their rooms, nothing said
    // there; its `/who` lists itself only.
    lobby.send("/who");
    let heard = lobby.lines_until("Online: lo");
    assert!(
        heard
            .iter()
            .all(|l| !l.contains("says") && !l.contains("room")),
        "the lobby heard another room: {heard:?}"
    );
    // A whisper crosses rooms: handles are one namespace.
    a2.send("/msg b2 psst");
    b2.expect("a2 whispers: psst");
    server.stop();
}

/// Moving between rooms: a leave in the room left, a join in the room entered (the mover
/// hears its own join), `/join` of the room one is in and a bad name answered, and a member
/// who drops from a room leaves that room only.
fn moving_between_rooms_announces_the_leave_and_the_join(threads: usize) {
    let server = TestServer::start_on(threads, Config::default());
    let mut lobby = server.join("lo");
    let mut red = join_room(&server, "r", "red");
    let mut mover = server.join("m");
    lobby.lines_until("m has joined the chat.");
    mover.send("/join red");
    mover.expect("m has joined room red.");
    lobby.expect("m has left the chat.");
    red.lines_until("m has joined room red.");
    mover.send("/join red");
    mover.expect("You are in room red already.");
    mover.send("/join two words");
    mover.expect(chat::protocol::JOIN_USAGE);
    mover.send("/join");
    mover.expect(chat::protocol::JOIN_USAGE);
    mover.send("/join green");
    mover.expect("m has joined room green.");
    red.expect("m has left room red.");
    mover.send("/join lobby");
    mover.expect("m has joined the chat.");
    lobby.expect("m has joined the chat.");
    mover.send("/who");
    mover.expect("Online: lo, m");
    // Back to red, then the connection drops: red hears the leave, the lobby does not.
    mover.send("/join red");
    mover.expect("m has joined room red.");
    lobby.expect("m has left the chat.");
    red.expect("m has joined room red.");
    mover.send("/quit");
    mover.expect_end();
    red.expect("m has left room red.");
    red.send("/who");
    red.expect("Online in red: r");
    lobby.send("/who");
    lobby.expect("Online: lo");
    server.stop();
}

fn browser_login(web: std::net::SocketAddr, handle: &str) -> Browser {
    let mut b = Browser::open(web, "/ws");
    assert_eq!(b.text(), chat::protocol::PROMPT);
    b.say(handle);
    assert_eq!(b.text(), format!("{handle} has joined the chat."));
    b
}

/// Reads `b`'s messages up to `want`; before it, only joins (a member who joined a room on
/// another thread is told to the members of that room there when its event arrives, which
/// may be after a member here moved in).
fn browser_until(b: &mut Browser, want: &str) {
    loop {
        let got = b.text();
        if got == want {
            return;
        }
        assert!(got.contains(" has joined "), "before {want:?}: {got:?}");
    }
}

/// A browser and a telnet member in one room hear each other; a telnet member in the lobby
/// hears neither.
fn browsers_and_telnet_members_share_a_room(threads: usize) {
    let (server, web) = TestServer::start_on_with_web(threads, Config::default());
    let mut lobby = server.join("lo");
    let mut tel = join_room(&server, "tel", "red");
    let mut web_member = browser_login(web, "web");
    web_member.say("/join red");
    browser_until(&mut web_member, "web has joined room red.");
    tel.expect("web has joined room red.");
    web_member.say("from the browser");
    browser_until(&mut web_member, "web says: from the browser");
    tel.expect("web says: from the browser");
    tel.send("from telnet");
    tel.expect("tel says: from telnet");
    assert_eq!(web_member.text(), "tel says: from telnet");
    web_member.say("/who");
    assert_eq!(web_member.text(), "Online in red: tel, web");
    lobby.send("/who");
    let heard = lobby.lines_until("Online: lo");
    assert!(
        heard.iter().all(|l| !l.contains("says")),
        "the lobby heard red: {heard:?}"
    );
    server.stop();
}

on_one_and_two_threads!(
    two_rooms_do_not_hear_each_other,
    moving_between_rooms_announces_the_leave_and_the_join,
    browsers_and_telnet_members_share_a_room,
);

/// With `--redis`, `/join` is answered with why it is refused, and the member stays in the
/// one federated room: it still hears and is heard there.
#[test]
fn with_redis_join_is_refused_and_the_member_stays_in_the_room() {
    let redis = Redis::start();
    let a = Node::start(&redis, "a", &[]);
    let mut ann = a.join("ann");
    let mut bob = a.join("bob");
    ann.lines_until("bob has joined the chat.");
    ann.send("/join red");
    ann.expect(chat::protocol::ROOMS_NOT_FEDERATED);
    ann.send("still here");
    bob.lines_until("ann says: still here");
    ann.send("/who");
    ann.lines_until("Online: ann, bob");
}
