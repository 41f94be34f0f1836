//! `--idle-members stackless`: a connection holds no tasklet and no stack while it is
//! silent, at the prompt or as a member. Its state waits in its connection's input watch;
//! each line it sends is served on one of the network plugin's worker tasklets, which goes
//! on to other connections when nothing is left to read (fibra-net's `OnInput`; for browsers, fibra-http's
//! `WebSocket::serve_stackless`). The words are a tasklet session's (`session::obey`, the
//! same prompts); only the waiting differs: an idle connection costs its buffers and this
//! state, not a stack (two kernel maps and ~4 KiB each).
//!
//! The login deadline is the connection's input deadline (`Conn::set_input_deadline`): bytes
//! do not push it back, so a handle trickled a byte at a time is cut at the deadline as a
//! silent one is (a read timeout would have let each byte buy time).

use std::rc::Rc;
use std::time::Instant;

use fibra::http::{CloseCode, Message, WebSocket, WsHandler};
use fibra::net::ops::{InputJob, OnInput, Tried, TryReceive};
use fibra::net::{Conn, LoadToken, Lost, NetError, NetExt};
use fibra::Handle;

use super::member::Member;
use super::protocol::{self, parse_handle};
use super::room::Chat;
use super::session::{obey, Peer};

/// The name of the tasklets that serve a stackless connection's lines.
const WORKER: &str = "chatter member";

/// Where a connection is: choosing a handle (by when), or a member.
enum Phase {
    Login(Option<Instant>),
    Member(Member),
}

/// Serves one connection without a tasklet while it is silent: the prompt now, the rest as
/// its lines come. `load` (a thread's share) goes with it.
pub(crate) fn session(
    h: &Handle,
    chat: &Rc<Chat>,
    conn: &Conn,
    peer: Peer<'_>,
    login_by: Option<Instant>,
    load: Option<LoadToken>,
) {
    let web = matches!(peer, Peer::Web(_));
    if !chat.room.borrow_mut().enter(conn, web) {
        return;
    }
    if !prompt(conn, login_by) {
        return;
    }
    let chat = Rc::clone(chat);
    let phase = Phase::Login(login_by);
    match peer {
        Peer::Telnet => turn(
            h,
            Box::new(Telnet {
                chat,
                phase,
                conn: conn.clone(),
                line: Vec::new(),
                _load: load,
            }),
        ),
        Peer::Web(ws) => {
            let member = WebMember {
                chat,
                phase,
                conn: conn.clone(),
                line: Vec::new(),
                _load: load,
            };
            // Closed already: dropped at once (a member's leave announced).
            let _ = ws.serve_stackless(h, member);
        }
    }
}

/// Prompts for a handle; the login ends at `by`, the connection's input deadline (which
/// bytes that make no line do not push back, as they would a read timeout).
fn prompt(conn: &Conn, by: Option<Instant>) -> bool {
    if conn.try_send_frame(protocol::PROMPT.as_bytes()).is_err() {
        return false;
    }
    if by.is_some() {
        conn.set_input_deadline(by);
    }
    true
}

/// A line from the connection, at the prompt or as a member; `false`: it ends.
fn on_line(
    h: &Handle,
    chat: &Rc<Chat>,
    conn: &Conn,
    web: bool,
    phase: &mut Phase,
    line: &[u8],
) -> bool {
    let by = match phase {
        Phase::Member(member) => return obey(h, chat, conn, member, line),
        Phase::Login(by) => *by,
    };
    let answer = match parse_handle(&String::from_utf8_lossy(line)) {
        Ok(handle) => match Member::join(h, chat, handle, conn, web) {
            Some(member) => {
                conn.set_input_deadline(None);
                // As a tasklet session does: nothing answered to the member (a `/who` sent in
                // the same write as its handle) comes before it hears its own join.
                chat.reach.settle(h, member.handle());
                *phase = Phase::Member(member);
                return true;
            }
            None => protocol::TAKEN,
        },
        Err(bad) => bad.message(),
    };
    conn.try_send_frame(answer.as_bytes()).is_ok() && prompt(conn, by)
}

/// A telnet connection between its lines. Fields drop in order: a member's leave is
/// announced before the connection is released (and closed gracefully).
struct Telnet {
    chat: Rc<Chat>,
    phase: Phase,
    conn: Conn,
    line: Vec<u8>,
    /// With threads: this connection's share of its thread's load.
    _load: Option<LoadToken>,
}

impl InputJob for Telnet {
    fn run(self: Box<Self>, h: &Handle) {
        turn(h, self);
    }
}

/// The lines that are there, then the watch armed again (or the end).
fn turn(h: &Handle, mut t: Box<Telnet>) {
    loop {
        let buf = std::mem::take(&mut t.line);
        match h.try_receive(TryReceive::into_buf(&t.conn, buf)) {
            Tried::Frame(line) => {
                t.line = line;
                let Telnet {
                    chat,
                    phase,
                    conn,
                    line,
                    ..
                } = &mut *t;
                if !on_line(h, chat, conn, false, phase, line) {
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
            Tried::Failed(NetError::Lost(Lost::TimedOut) | NetError::TimedOut) => {
                if matches!(t.phase, Phase::Login(_)) {
                    let _ = t.conn.try_send_frame(protocol::LOGIN_TIMED_OUT.as_bytes());
                }
                return;
            }
            Tried::Failed(_) => return,
        }
    }
    // A silent connection keeps no line buffer.
    t.line = Vec::new();
    let conn = t.conn.clone();
    // The same box, armed again: no allocation per line.
    if let Err(e) = h.on_input(OnInput::new(&conn, WORKER, t)) {
        log::debug!(target: super::room::LOG, "a connection could not wait for input: {e}");
    }
}

/// A browser between its messages.
struct WebMember {
    chat: Rc<Chat>,
    phase: Phase,
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
        if !on_line(h, &self.chat, &self.conn, true, &mut self.phase, &self.line) {
            // `/quit`: the leave is announced before the close.
            self.phase = Phase::Login(None);
            let _ = ws.close(h, CloseCode::NORMAL, "");
        }
        if self.line.capacity() > 256 {
            self.line = Vec::new();
        }
    }

    fn on_read_timeout(&mut self, h: &Handle, ws: &mut WebSocket) {
        if matches!(self.phase, Phase::Login(_)) {
            let _ = self
                .conn
                .try_send_frame(protocol::LOGIN_TIMED_OUT.as_bytes());
            let _ = ws.close(h, CloseCode::POLICY, "login timed out");
        }
    }
}
