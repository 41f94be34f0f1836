//! The chatter's words: the fixed lines, the handle rules and the commands, with no I/O.
//!
//! Everything here is a pure function of one line of text, so it is tested and fuzzed
//! on its own (`fuzz/`); `server.rs` does the networking.

/// Sent on connect, and again after a refused handle.
pub(crate) const PROMPT: &str = "What is your handle?";
/// Sent when the chosen handle belongs to a member.
pub(crate) const TAKEN: &str = "That handle is already taken.";
/// Sent to everyone still connected when the server stops.
pub(crate) const SHUTTING_DOWN: &str = "The server is shutting down.";
/// Sent when the login deadline passes before a handle was accepted.
pub(crate) const LOGIN_TIMED_OUT: &str = "Too slow to choose a handle; goodbye.";
/// The most characters (not bytes) a handle may have.
pub(crate) const MAX_HANDLE_CHARS: usize = 32;

/// Why a handle was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadHandle {
    /// Nothing left after trimming.
    Empty,
    /// More than [`MAX_HANDLE_CHARS`] characters.
    TooLong,
    /// A space (any white space), a control character or an invisible one inside.
    BadCharacter,
}

impl BadHandle {
    /// The one line the client is told.
    pub(crate) fn message(self) -> &'static str {
        match self {
            BadHandle::Empty => "A handle cannot be empty.",
            BadHandle::TooLong => "A handle can have at most 32 characters.",
            BadHandle::BadCharacter => "A handle cannot contain spaces or control characters.",
        }
    }
}

/// The handle an answer names: the answer trimmed of surrounding white space, if the rest
/// is 1 to 32 characters with no space or control character.
pub(crate) fn parse_handle(answer: &str) -> Result<&str, BadHandle> {
    let handle = answer.trim();
    if handle.is_empty() {
        return Err(BadHandle::Empty);
    }
    if handle.chars().nth(MAX_HANDLE_CHARS).is_some() {
        return Err(BadHandle::TooLong);
    }
    if handle
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || is_invisible(c))
    {
        return Err(BadHandle::BadCharacter);
    }
    Ok(handle)
}

/// What makes two handles one: their ASCII lower case (`Ann` is `ann`), here, across the
/// threads (the hub) and in Redis (its keys, by Lua's `string.lower`, ASCII too).
pub(crate) fn handle_key(handle: &str) -> String {
    handle.to_ascii_lowercase()
}

// Whether a character shows nothing, or turns the text around it: shared with ABChat's
// names (`examples/shared/invisible.rs`).
#[path = "../shared/invisible.rs"]
mod invisible;
pub(crate) use invisible::is_invisible;

/// `text` as the other members' terminals may show it: every control character but the
/// tab (C0, DEL, C1: a carriage return that writes over the line's `bob says:` with `ann
/// says:`, an escape sequence that clears a screen or sets a window's title, telnet's
/// bytes) replaced by U+FFFD. Borrowed when there is none, as in almost every line.
pub(crate) fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let controls = |c: char| c.is_control() && c != '\t';
    if !text.contains(controls) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(
        text.chars()
            .map(|c| if controls(c) { '\u{FFFD}' } else { c })
            .collect(),
    )
}

/// What a member's line asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Command<'a> {
    /// A plain line: say it to everyone.
    Say(&'a str),
    /// `/who`: list the members.
    Who,
    /// `/msg <handle> <text>`: whisper to one member.
    Msg {
        /// The member to tell.
        to: &'a str,
        /// What to tell them.
        text: &'a str,
    },
    /// `/msg` without a handle and a text.
    MsgUsage,
    /// `/join <room>`: move to that room (a name with the handle's rules; rooms are named in
    /// lower case, `Red` being `red`).
    Join(&'a str),
    /// `/join` without a room, or with a name a handle could not have.
    JoinUsage,
    /// `/quit`: leave.
    Quit,
    /// `/help`: the commands, and what each does.
    Help,
    /// Any other line starting with `/`: the command word, without its slash.
    Unknown(&'a str),
}

/// The answer to `/help`: every command.
pub(crate) const HELP: &str = "Commands: /who (who is in your room), /msg <handle> <text> \
(to one member), /join <room> (move to a room; everyone starts in lobby), /quit (leave), \
/help (this). Any other line is said to your room.";

/// How `/msg` is used, sent after a `/msg` missing its handle or text.
pub(crate) const MSG_USAGE: &str = "Usage: /msg <handle> <text>";

/// How `/join` is used, sent after a `/join` missing its room or naming a bad one.
pub(crate) const JOIN_USAGE: &str =
    "Usage: /join <room> (1 to 32 characters, no spaces; the room everyone enters is lobby)";
/// Sent for `/join` where rooms do not reach (`--redis`: the federation has one room).
pub(crate) const ROOMS_NOT_FEDERATED: &str =
    "Rooms are not federated yet: with --redis there is one room.";
/// The room every member enters at login.
pub(crate) const LOBBY: &str = "lobby";
/// The most rooms besides the lobby, by default (`--max-rooms`).
pub(crate) const MAX_ROOMS: usize = 10_000;

/// What a member is told for `/join` of a new room when there are `max` rooms already.
pub(crate) fn too_many_rooms(max: usize) -> String {
    format!("There are too many rooms (at most {max}): join one that exists.")
}

/// What a room hears when `handle` joins it: the lobby's words are the chat's.
pub(crate) fn joined_line(room: &str, handle: &str) -> String {
    if room == LOBBY {
        format!("{handle} has joined the chat.")
    } else {
        format!("{handle} has joined room {room}.")
    }
}

/// What a room hears when `handle` leaves it.
pub(crate) fn left_line(room: &str, handle: &str) -> String {
    if room == LOBBY {
        format!("{handle} has left the chat.")
    } else {
        format!("{handle} has left room {room}.")
    }
}

/// Reads one line. Commands are the lines starting with `/`; the command word ends at the
/// first white space (`/who now` is `/who`); command words are lower case (`/QUIT` is not
/// one). Everything else is said as it is.
pub(crate) fn parse_command(line: &str) -> Command<'_> {
    let Some(rest) = line.strip_prefix('/') else {
        return Command::Say(line);
    };
    let (word, args) = match rest.find(char::is_whitespace) {
        Some(end) => (&rest[..end], rest[end..].trim_start()),
        None => (rest, ""),
    };
    match word {
        "who" => Command::Who,
        "quit" => Command::Quit,
        "help" => Command::Help,
        "join" => match parse_handle(args) {
            Ok(room) => Command::Join(room),
            Err(_) => Command::JoinUsage,
        },
        "msg" => {
            let (to, text) = match args.find(char::is_whitespace) {
                Some(end) => (&args[..end], args[end..].trim_start()),
                None => (args, ""),
            };
            if to.is_empty() || text.is_empty() {
                Command::MsgUsage
            } else {
                Command::Msg { to, text }
            }
        }
        other => Command::Unknown(other),
    }
}
