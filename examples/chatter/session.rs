//! One connection, from the prompt to its end, as plain sequential code on a tasklet of its
//! own: the login dialogue, then each line its member sends, said to the room or obeyed as a
//! command (`/who`, `/msg`, `/join`, `/quit`). Telnet lines and a browser's WebSocket messages are
//! read here alike; the words are `protocol.rs`'s.

use std::rc::Rc;
use std::time::Instant;

use fibra::http::{HttpError, Message, WebSocket};
use fibra::net::{Conn, Lost, NetError, NetExt};
use fibra::Handle;

use super::member::Member;
use super::protocol::{self, parse_command, parse_handle, Command};
use super::room::{Chat, LOG};

/// A member's side of its connection: telnet lines, or a browser's WebSocket.
pub(crate) enum Peer<'a> {
    /// Lines (`Framing::Lines`), plain or encrypted alike.
    Telnet,
    /// A browser: one text message is one line.
    Web(&'a mut WebSocket),
}

impl Peer<'_> {
    fn is_web(&self) -> bool {
        matches!(self, Peer::Web(_))
    }
}

/// Serves one connection to the room until it ends: the login (by `login_by`, if given),
/// then its member's lines.
pub(crate) fn session(
    h: &Handle,
    chat: &Rc<Chat>,
    conn: &Conn,
    mut peer: Peer<'_>,
    login_by: Option<Instant>,
) {
    if !chat.room.borrow_mut().enter(conn, peer.is_web()) {
        return;
    }
    let Some(member) = login(h, chat, conn, &mut peer, login_by) else {
        return;
    };
    chat.reach.settle(h, member.handle());
    let mut line = Vec::with_capacity(256);
    while receive(h, conn, &mut peer, &mut line, None) {
        if !obey(h, chat, conn, &member, &line) {
            break;
        }
    }
    // `member` drops here: the room hears the leave; then the connection closes gracefully.
}

/// Says `line`, from `member`, to the room, or obeys it as a command; `false` on `/quit`.
/// Then holds the member up while it says more than the room allows (`--max-rate`) or the
/// reach is behind.
pub(crate) fn obey(h: &Handle, chat: &Chat, conn: &Conn, member: &Member, line: &[u8]) -> bool {
    let handle = member.handle();
    let text = String::from_utf8_lossy(line);
    let text = protocol::printable(&text);
    let mut room = chat.room.borrow_mut();
    match parse_command(&text) {
        Command::Say(text) => {
            log::trace!(target: LOG, "{handle}: {text}");
            chat.reach.say(&mut room, handle, text);
        }
        Command::Who => {
            let place = room.place_of(handle);
            let who = room.who_in(place.as_deref().unwrap_or(protocol::LOBBY));
            room.tell(conn, &who);
        }
        // A name with control characters is no room's, as it is no handle's (the line said
        // has them as U+FFFD, which a handle may have: the name is judged as it came).
        Command::Join(to) if parse_command(&String::from_utf8_lossy(line)) != Command::Join(to) => {
            room.tell(conn, protocol::JOIN_USAGE);
        }
        Command::Join(to) => {
            // One room whatever the case: `LOBBY` is the lobby, not a room that reads like it.
            let to = &*to.to_lowercase();
            // Lower case can lengthen a name (`İ` is two characters): the rules hold after it.
            if protocol::parse_handle(to) != Ok(to) {
                room.tell(conn, protocol::JOIN_USAGE);
            } else if room.place_of(handle).as_deref() == Some(to) {
                room.tell(conn, &format!("You are in room {to} already."));
            } else if !room.may_join(to) {
                let refusal = protocol::too_many_rooms(room.max_rooms);
                room.tell(conn, &refusal);
            } else if !chat.reach.moved(&mut room, handle, to) {
                room.tell(conn, protocol::ROOMS_NOT_FEDERATED);
            }
        }
        Command::JoinUsage => room.tell(conn, protocol::JOIN_USAGE),
        Command::Msg { to, text } => {
            let whisper = format!("{handle} whispers: {text}");
            let found = room.find_handle(to);
            match found.as_deref() {
                Some(name) => match room.member(name) {
                    Some(to) => room.tell(&to, &whisper),
                    None if chat.reach.tell(name, &whisper) => {}
                    None => room.tell(conn, &format!("No such handle: {to}")),
                },
                None => room.tell(conn, &format!("No such handle: {to}")),
            }
        }
        Command::MsgUsage => room.tell(conn, protocol::MSG_USAGE),
        Command::Help => room.tell(conn, protocol::HELP),
        Command::Unknown(word) => room.tell(conn, &format!("Unknown command: /{word}")),
        Command::Quit => return false,
    }
    drop(room);
    member.pace(h, line);
    chat.reach.pace(h);
    true
}

/// Receives a line into `line`; on an error, tells the peer why when it helps.
fn receive(
    h: &Handle,
    conn: &Conn,
    peer: &mut Peer<'_>,
    line: &mut Vec<u8>,
    by: Option<Instant>,
) -> bool {
    let Peer::Web(ws) = peer else {
        return receive_line(h, conn, line, by);
    };
    match ws.receive_until(h, by) {
        Ok(message) => {
            let bytes = match message {
                Message::Text(text) => text.into_bytes(),
                Message::Binary(bytes) => bytes,
            };
            // One message is one line: its line breaks would split it for telnet members.
            line.clear();
            line.extend(
                bytes
                    .into_iter()
                    .map(|b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
            );
            true
        }
        Err(HttpError::TimedOut) => {
            let _ = conn.try_send_frame(protocol::LOGIN_TIMED_OUT.as_bytes());
            let _ = ws.close(h, fibra::http::CloseCode::POLICY, "login timed out");
            false
        }
        Err(_) => false,
    }
}

/// Receives a telnet line.
fn receive_line(h: &Handle, conn: &Conn, line: &mut Vec<u8>, by: Option<Instant>) -> bool {
    let received = match by {
        Some(deadline) => h.receive_until(conn, deadline).map(|got| *line = got),
        None => h.receive_into(conn, line),
    };
    match received {
        Ok(()) => true,
        Err(NetError::Lost(Lost::TooLong { limit })) => {
            let reason = format!("Line too long (the limit is {limit} bytes); goodbye.");
            let _ = conn.try_send_frame(reason.as_bytes());
            false
        }
        Err(NetError::TimedOut) => {
            let _ = conn.try_send_frame(protocol::LOGIN_TIMED_OUT.as_bytes());
            false
        }
        Err(_) => false,
    }
}

/// Prompts until the connection names a free handle; then it is a member.
fn login(
    h: &Handle,
    chat: &Rc<Chat>,
    conn: &Conn,
    peer: &mut Peer<'_>,
    by: Option<Instant>,
) -> Option<Member> {
    let mut line = Vec::new();
    let web = peer.is_web();
    loop {
        conn.try_send_frame(protocol::PROMPT.as_bytes()).ok()?;
        if !receive(h, conn, peer, &mut line, by) {
            return None;
        }
        match parse_handle(&String::from_utf8_lossy(&line)) {
            Ok(handle) => match Member::join(h, chat, handle, conn, web) {
                Some(member) => return Some(member),
                None => conn.try_send_frame(protocol::TAKEN.as_bytes()).ok()?,
            },
            Err(bad) => conn.try_send_frame(bad.message().as_bytes()).ok()?,
        }
    }
}
