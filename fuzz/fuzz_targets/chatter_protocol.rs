//! The chatter's handle rules and command parser on any line: never a panic, and every
//! answer obeys the documented rules.
#![no_main]

#[path = "../../examples/chatter/protocol.rs"]
#[allow(dead_code)]
mod protocol;

use libfuzzer_sys::fuzz_target;
use protocol::{is_invisible, parse_command, parse_handle, BadHandle, Command, MAX_HANDLE_CHARS};

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    match parse_handle(&line) {
        Ok(handle) => {
            assert_eq!(handle, line.trim());
            assert!(!handle.is_empty());
            assert!(handle.chars().count() <= MAX_HANDLE_CHARS);
            assert!(!handle
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || is_invisible(c)));
            assert!(!protocol::looks_like_another(handle));
        }
        Err(BadHandle::LookAlike) => assert!(protocol::looks_like_another(line.trim())),
        Err(BadHandle::Empty) => assert!(line.trim().is_empty()),
        Err(BadHandle::TooLong) => assert!(line.trim().chars().count() > MAX_HANDLE_CHARS),
        Err(BadHandle::BadCharacter) => assert!(line
            .trim()
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || is_invisible(c))),
    }
    // What other members see of a line: no control character but the tab, one character
    // for each.
    let shown = protocol::printable(&line);
    assert!(!shown.chars().any(|c| c.is_control() && c != '\t'));
    assert_eq!(shown.chars().count(), line.chars().count());
    match parse_command(&line) {
        Command::Say(text) => {
            assert!(!line.starts_with('/'));
            assert_eq!(text, line);
        }
        Command::Who => assert!(line.starts_with("/who")),
        Command::Quit => assert!(line.starts_with("/quit")),
        Command::Help => assert!(line.starts_with("/help")),
        Command::MsgUsage => assert!(line.starts_with("/msg")),
        Command::JoinUsage => assert!(line.starts_with("/join")),
        Command::Join(room) => {
            assert!(line.starts_with("/join"));
            assert_eq!(parse_handle(room), Ok(room));
        }
        Command::Msg { to, text } => {
            assert!(line.starts_with("/msg"));
            assert!(!to.is_empty() && !to.contains(char::is_whitespace));
            assert!(!text.is_empty() && !text.starts_with(char::is_whitespace));
            assert!(line.ends_with(text));
        }
        Command::Unknown(word) => {
            assert!(line.starts_with('/'));
            assert!(!["who", "quit", "msg", "join", "help"].contains(&word));
            assert!(!word.contains(char::is_whitespace));
            assert!(line[1..].starts_with(word));
        }
    }
});
