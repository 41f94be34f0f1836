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
    /// Letters that could pass for another member's handle ([`looks_like_another`]): Latin
    /// mixed with Greek or Cyrillic (`аnn` with a Cyrillic `а` reads as `ann`), styled
    /// letters (fullwidth, mathematical, circled), or accents stacked or alone.
    LookAlike,
}

impl BadHandle {
    /// The one line the client is told.
    pub(crate) fn message(self) -> &'static str {
        match self {
            BadHandle::Empty => "A handle cannot be empty.",
            BadHandle::TooLong => "A handle can have at most 32 characters.",
            BadHandle::BadCharacter => "A handle cannot contain spaces or control characters.",
            BadHandle::LookAlike => {
                "A handle cannot mix Latin, Greek and Cyrillic letters, use styled letters or \
                 stack accents: it could pass for another's."
            }
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
    if looks_like_another(handle) {
        return Err(BadHandle::LookAlike);
    }
    Ok(handle)
}

/// The scripts whose letters pass for each other's.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Script {
    Latin,
    Greek,
    Cyrillic,
}

/// The script of letter `c`, if it is one of those that look alike.
fn script(c: char) -> Option<Script> {
    match u32::from(c) {
        0x41..=0x5A | 0x61..=0x7A => Some(Script::Latin),
        0xD7 | 0xF7 => None, // × and ÷
        0xC0..=0x24F | 0x1E00..=0x1EFF | 0x2C60..=0x2C7F | 0xA720..=0xA7FF | 0xAB30..=0xAB6F => {
            Some(Script::Latin)
        }
        0x370..=0x3FF | 0x1F00..=0x1FFF => Some(Script::Greek),
        0x400..=0x52F | 0x1C80..=0x1C8F | 0x2DE0..=0x2DFF | 0xA640..=0xA69F => {
            Some(Script::Cyrillic)
        }
        _ => None,
    }
}

/// Letters styled to pass for plain ones: fullwidth forms, mathematical alphanumerics,
/// circled and squared letters (the flags' regional indicators aside).
fn is_styled(c: char) -> bool {
    matches!(u32::from(c), 0xFF00..=0xFFEF | 0x1D400..=0x1D7FF | 0x2460..=0x24FF | 0x1F100..=0x1F1E5)
}

/// Combining marks (accents put on the character before).
fn is_combining(c: char) -> bool {
    matches!(
        u32::from(c),
        0x300..=0x36F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F
    )
}

/// Whether `handle` could pass for another's: letters of more than one of Latin, Greek and
/// Cyrillic (whose letters look alike), a styled letter, a combining mark first or more
/// than two in a row (text piled over the lines around it). A handle in one script (`иван`,
/// `Ζωή`, `José`) is fine. A check of mixed scripts, as browsers make for domain names, not
/// Unicode's full table of confusables: a handle wholly in Cyrillic letters that all look
/// Latin (`асе`) still passes.
pub(crate) fn looks_like_another(handle: &str) -> bool {
    let mut seen: Option<Script> = None;
    let mut marks = 0;
    for (i, c) in handle.chars().enumerate() {
        if is_styled(c) {
            return true;
        }
        if is_combining(c) {
            marks += 1;
            if i == 0 || marks > 2 {
                return true;
            }
            continue;
        }
        marks = 0;
        match (seen, script(c)) {
            (_, None) => {}
            (None, s) => seen = s,
            (Some(a), Some(b)) if a != b => return true,
            _ => {}
        }
    }
    false
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
