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

on_one_and_two_threads!(
    room_names_differ_by_more_than_case,
    invisible_characters_are_refused,
);
