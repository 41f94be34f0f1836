//! `--idle-members stackless`: after the login (on the connection's tasklet, as ever), a
//! member holds no tasklet and no stack while it is silent. Its state waits in its
//! connection's input watch; each line it sends is served on a tasklet taken from the
//! schedule's pool and given back when nothing is left to read (fibra-net's `OnInput`;
//! for browsers, fibra-http's `WebSocket::serve_stackless`). The words are the same as a
//! tasklet's session (`session::obey`); only the waiting differs: an idle member costs its
//! connection's buffers and this state, not a stack (two kernel maps and ~4 KiB each).

use std::rc::Rc;
use std::time::Instant;

use fibra::http::{CloseCode, Message, WebSocket, WsHandler};
use fibra::net::ops::{OnInput, Tried, TryReceive};
use fibra::net::{Conn, LoadToken, Lost, NetError};
use fibra::Handle;

use super::member::Member;
use super::room::Chat;
use super::session::{login, obey, Peer};

/// The name of the tasklets that serve a stackless member's lines.
const WORKER: &str = "chatter member";

/// Serves one connection: the login on this tasklet, then its member without one.
pub(crate) fn session(
    h: &Handle,
    chat: &Rc<Chat>,
    conn: &Conn,
    mut peer: Peer<'_>,
    login_by: Option<Instant>,
    load: Option<LoadToken>,
) {
    let web = matches!(peer, Peer::Web(_));
    if !chat.room.borrow_mut().enter(conn, web) {
        return;
    }
    let Some(member) = login(h, chat, conn, &mut peer, login_by) else {
        return;
    };
    match peer {
        Peer::Telnet => turn(
            h,
            Box::new(Telnet {
                chat: Rc::clone(chat),
                member,
                conn: conn.clone(),
                line: Vec::new(),
                _load: load,
            }),
        ),
        Peer::Web(ws) => {
            let member = WebMember {
                chat: Rc::clone(chat),
                member: Some(member),
                conn: conn.clone(),
                line: Vec::new(),
                _load: load,
            };
            // Closed already: the member is dropped at once (its leave announced).
            let _ = ws.serve_stackless(h, member);
        }
    }
}

/// A telnet member between its lines. Fields drop in order: the leave is announced before
/// the connection is released (and closed gracefully).
struct Telnet {
    chat: Rc<Chat>,
    member: Member,
    conn: Conn,
    line: Vec<u8>,
    /// With threads: this member's share of its thread's load.
    _load: Option<LoadToken>,
}

/// The lines that are there, then the watch armed again (or the member's end).
fn turn(h: &Handle, mut t: Box<Telnet>) {
    loop {
        let buf = std::mem::take(&mut t.line);
        match h.yield_op(TryReceive::into_buf(&t.conn, buf)) {
            Tried::Frame(line) => {
                t.line = line;
                if !obey(h, &t.chat, &t.conn, t.member.handle(), &t.line) {
                    return;
                }
            }
            Tried::Nothing(buf) => {
                t.line = buf;
                break;
            }
            Tried::Failed(NetError::Lost(Lost::TooLong { limit })) => {
                let reason = format!("Line too long (the limit is {limit} bytes); goodbye.");
                let _ = t.conn.try_send_frame(reason.as_bytes());
                return;
            }
            Tried::Failed(_) => return,
        }
    }
    // An idle member keeps no line buffer.
    t.line = Vec::new();
    let conn = t.conn.clone();
    let job = Box::new(move |h: &Handle| turn(h, t));
    if let Err(e) = h.yield_op(OnInput::new(&conn, WORKER, job)) {
        log::debug!(target: super::room::LOG, "a member could not wait for input: {e}");
    }
}

/// A browser member between its messages.
struct WebMember {
    chat: Rc<Chat>,
    /// Dropped (the leave announced) at `/quit`, before the close.
    member: Option<Member>,
    conn: Conn,
    line: Vec<u8>,
    _load: Option<LoadToken>,
}

impl WsHandler for WebMember {
    fn on_message(&mut self, h: &Handle, ws: &mut WebSocket, message: Message) {
        let bytes = match &message {
            Message::Text(text) => text.as_bytes(),
            Message::Binary(bytes) => bytes,
        };
        // One message is one line: its line breaks would split it for telnet members.
        self.line.clear();
        self.line.extend(
            bytes
                .iter()
                .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
        );
        let Some(member) = &self.member else {
            return;
        };
        if !obey(h, &self.chat, &self.conn, member.handle(), &self.line) {
            self.member = None;
            let _ = ws.close(h, CloseCode::NORMAL, "");
        }
        self.line = Vec::new();
    }
}
