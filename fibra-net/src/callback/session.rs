//! The loop that runs a [`Protocol`] on one connection, on the connection's own tasklet:
//! callbacks in order, notifications between frames, and `connection_lost` exactly once, from
//! a destructor, so that a kill or a panic cannot skip it.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;

use fibra_rt::{Either, Handle, Park};

use super::mailbox::Mailbox;
use crate::ops::Receive;
use crate::{Conn, ConnId, Ended, Lost, NetError, NetExt, Protocol, Transport};

/// The live connections of a server, by id: what its factory's `on_notify` is shown, and
/// what a stop kills. In the ids' order, not a hash's: a hash's order differs between two
/// processes, and a simulation's runs (fibra-sim) must not.
pub(crate) type Sessions = Rc<RefCell<BTreeMap<ConnId, Transport>>>;

/// Owns the protocol for the session's life; its drop tells the protocol how it ended.
struct Session<'h, P: Protocol> {
    h: &'h Handle,
    protocol: P,
    transport: Transport,
    ended: Option<Ended>,
    sessions: Option<&'h Sessions>,
}

impl<P: Protocol> Drop for Session<'_, P> {
    fn drop(&mut self) {
        let reason = self.ended.take().unwrap_or(if self.h.is_being_killed() {
            Ended::Killed
        } else {
            Ended::Panicked("the session's tasklet panicked".to_owned())
        });
        if let Some(sessions) = self.sessions {
            sessions.borrow_mut().remove(&self.transport.id());
        }
        self.transport.end(matches!(
            reason,
            Ended::Panicked(_) | Ended::Lost(Lost::Aborted)
        ));
        log::debug!(target: "fibra_net::protocol",
            "session with {} ended: {reason}", self.transport.peer_addr());
        let protocol = &mut self.protocol;
        // A panic here must not escape a destructor that may run during an unwind.
        if let Err(msg) = self.h.catch_panic(|| protocol.connection_lost(&reason)) {
            log::error!(target: "fibra_net::protocol", "connection_lost panicked: {msg}");
        }
    }
}

/// Runs `protocol` on `conn` until the connection ends; returns why (after
/// `connection_lost`). Notifications from `mailbox` go to `on_notify` between frames.
pub(crate) fn run_session<P: Protocol>(
    h: &Handle,
    protocol: P,
    conn: Conn,
    peer: SocketAddr,
    mailbox: Option<&Mailbox>,
    sessions: Option<&Sessions>,
) -> Ended {
    let transport = Transport::new(conn.clone(), peer, h.unparker());
    if let Some(sessions) = sessions {
        sessions
            .borrow_mut()
            .insert(transport.id(), transport.clone());
    }
    let mut session = Session {
        h,
        protocol,
        transport: transport.clone(),
        ended: None,
        sessions,
    };
    let reason = serve(h, &mut session.protocol, &transport, &conn, mailbox);
    session.ended = Some(reason.clone());
    drop(session);
    reason
}

fn serve<P: Protocol>(
    h: &Handle,
    protocol: &mut P,
    transport: &Transport,
    conn: &Conn,
    mailbox: Option<&Mailbox>,
) -> Ended {
    if let Err(msg) = h.catch_panic(|| protocol.connection_made(h, transport)) {
        return Ended::Panicked(msg);
    }
    // After a half-close the protocol chose to keep: no more receives, only notifications,
    // until the connection closes (the protocol's close or abort, a failed write).
    let mut half_closed = false;
    // The frames' buffer, reused: a steady stream of frames allocates nothing.
    let mut buf = Vec::new();
    loop {
        while let Some(message) = mailbox.and_then(Mailbox::take) {
            if let Err(msg) = h.catch_panic(|| protocol.on_notify(h, transport, &message)) {
                return Ended::Panicked(msg);
            }
        }
        if transport.close_requested() {
            let _ = h.close(conn);
            return Ended::Lost(Lost::Closed);
        }
        if half_closed {
            match h.select(crate::ops::OnClosed::new(conn), Park) {
                Either::First(how) => {
                    let closed = transport.close_requested();
                    return Ended::Lost(if closed { Lost::Closed } else { how });
                }
                Either::Second(()) => continue,
            }
        }
        match h.select(Receive::into_buf(conn, std::mem::take(&mut buf)), Park) {
            Either::First(Ok(frame)) => {
                buf = frame;
                if let Err(msg) = h.catch_panic(|| protocol.frame_received(h, transport, &buf)) {
                    return Ended::Panicked(msg);
                }
            }
            Either::First(Err(e)) => match loss(&e) {
                Lost::Eof => match h.catch_panic(|| protocol.eof_received(h, transport)) {
                    Ok(true) => {
                        transport.keep_half_close();
                        half_closed = true;
                    }
                    Ok(false) => {
                        let _ = h.close(conn);
                        return Ended::Lost(Lost::Eof);
                    }
                    Err(msg) => return Ended::Panicked(msg),
                },
                lost => return Ended::Lost(lost),
            },
            // Unparked: a notification or a close request.
            Either::Second(()) => {}
        }
    }
}

/// What a failed receive says about the connection.
pub(crate) fn loss(e: &NetError) -> Lost {
    match e {
        NetError::Lost(lost) => *lost,
        NetError::Closed => Lost::Closed,
        NetError::Reset => Lost::Reset,
        NetError::TimedOut => Lost::TimedOut,
        NetError::TooLong { limit } => Lost::TooLong { limit: *limit },
        NetError::InvalidFrame { reason } => Lost::Invalid { reason },
        NetError::Codec(failure) => Lost::Codec(*failure),
        NetError::Io(e) => Lost::from_io(e),
        _ => Lost::Os(libc::EIO),
    }
}
