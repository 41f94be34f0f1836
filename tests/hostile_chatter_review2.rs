//! A hostile review of today's chatter changes (rev-chat2), over real sockets against the
//! server running in-process, on one thread and on two.
//!
//! - Handles are one whatever their ASCII case (`Ann` is refused while `ann` is a member),
//!   so `/msg ANN` reaches `ann`: before, "No such handle: ANN" for a member `/who` lists.
//! - A telnet client's CRLF line end is no control character in the line said.

mod chat;
mod util;

use chat::{on_one_and_two_threads, Config, TestServer};

/// `/msg` names a member in another ASCII case: the handle is the same one (a newcomer
/// `ANN` is refused as taken), so the whisper reaches it.
fn a_whisper_finds_its_handle_whatever_the_case(threads: usize) {
    let server = TestServer::start_on(threads, Config::default());
    let mut ann = server.join("ann");
    let mut bob = server.join("bob");
    ann.expect("bob has joined the chat.");
    bob.send("/msg ANN hello");
    bob.send("done");
    assert_eq!(
        ann.lines_until("bob says: done"),
        ["bob whispers: hello"],
        "ann did not get bob's whisper to ANN"
    );
    server.stop();
}

/// Lines ended by CRLF (telnet's own line end) or telnet's CR NUL are said without a
/// replacement character.
fn crlf_line_ends_are_not_control_characters(threads: usize) {
    let server = TestServer::start_on(threads, Config::default());
    let mut ann = server.join("ann");
    let mut bob = server.join("bob");
    ann.expect("bob has joined the chat.");
    bob.send_raw(b"hello\r\n\ttabbed \xf0\x9f\x98\x80 \xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d\r\n");
    assert_eq!(ann.line(), "bob says: hello");
    assert_eq!(
        ann.line(),
        "bob says: \ttabbed \u{1F600} \u{05E9}\u{05DC}\u{05D5}\u{05DD}"
    );
    server.stop();
}

on_one_and_two_threads!(
    a_whisper_finds_its_handle_whatever_the_case,
    crlf_line_ends_are_not_control_characters,
);
