//! A [`Protocol`] session served without a tasklet of its own while it is idle: its state
//! waits in its connection's input watch ([`OnInput`]); when input comes, one of the network
//! plugin's worker tasklets runs the callbacks for every frame that is there, arms the watch
//! again and goes on to other connections. A callback that parks keeps its worker until it
//! returns, and the connection's later frames wait for it: one tasklet per connection at a
//! time, frames in order. `connection_lost` is called exactly once, from the
//! state's destructor, so a kill or a teardown cannot skip it.

use std::net::SocketAddr;
use std::rc::Rc;

use fibra_rt::Handle;
use fibra_tasks::TasksExt;

use super::session::{loss, Sessions};
use crate::ops::{InputJob, OnInput, Tried, TryReceive};
use crate::{Conn, Ended, Lost, NetError, NetExt, Protocol, Transport};

/// The name of the tasklets that run stackless sessions.
const WORKER: &str = "session";

/// A stackless session's state, between its tasklets.
struct Idle<P: Protocol> {
    protocol: P,
    transport: Transport,
    /// The frames' buffer, reused.
    buf: Vec<u8>,
    made: bool,
    ended: Option<Ended>,
    sessions: Option<Sessions>,
}

impl<P: Protocol> Drop for Idle<P> {
    fn drop(&mut self) {
        // Callbacks' panics are caught and set `ended`: without it, the session was killed
        // (a stop, or its tasklet or schedule went away).
        let reason = self.ended.take().unwrap_or(Ended::Killed);
        if let Some(sessions) = &self.sessions {
            if let Ok(mut sessions) = sessions.try_borrow_mut() {
                sessions.remove(&self.transport.id());
            }
        }
        self.transport.set_worker(None);
        self.transport.end(matches!(
            reason,
            Ended::Panicked(_) | Ended::Lost(Lost::Aborted)
        ));
        log::debug!(target: "fibra_net::protocol",
            "session with {} ended: {reason}", self.transport.peer_addr());
        let protocol = &mut self.protocol;
        // A panic here must not escape a destructor that may run during an unwind.
        let told = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            protocol.connection_lost(&reason);
        }));
        if told.is_err() {
            log::error!(target: "fibra_net::protocol", "connection_lost panicked");
        }
    }
}

impl<P: Protocol> InputJob for Idle<P> {
    fn run(self: Box<Self>, h: &Handle) {
        work(h, self);
    }
}

/// Starts a stackless session of `protocol` on `conn`: `connection_made` runs on a tasklet
/// of its own, which then waits for input without holding it.
pub(crate) fn start<P: Protocol>(
    h: &Handle,
    protocol: P,
    conn: Conn,
    peer: SocketAddr,
    sessions: Option<&Sessions>,
) -> Result<(), NetError> {
    let transport = Transport::new_stackless(conn, peer, h.unparker());
    if let Some(sessions) = sessions {
        sessions
            .borrow_mut()
            .insert(transport.id(), transport.clone());
    }
    let idle = Box::new(Idle {
        protocol,
        transport,
        buf: Vec::new(),
        made: false,
        ended: None,
        sessions: sessions.map(Rc::clone),
    });
    let options = fibra_rt::SpawnOptions::new().name(WORKER);
    h.spawn_detached_with(options, move |h| work(h, idle))?;
    Ok(())
}

/// One turn of a session: its callbacks for what is there, then the watch armed again (or
/// the end).
fn work<P: Protocol>(h: &Handle, mut idle: Box<Idle<P>>) {
    idle.transport.set_worker(Some(h.id()));
    if let Some(reason) = serve(h, &mut idle) {
        idle.ended = Some(reason);
        return;
    }
    idle.transport.set_worker(None);
    let conn = idle.transport.conn().clone();
    // The same box, armed again: no allocation per activation.
    if let Err(e) = h.on_input(OnInput::new(&conn, WORKER, idle)) {
        // Its connection is gone: the state was dropped with the job (`Killed`).
        log::debug!(target: "fibra_net::protocol", "a session could not wait for input: {e}");
    }
}

/// Runs the callbacks for every frame there; `None` when nothing is left, or why it ended.
fn serve<P: Protocol>(h: &Handle, idle: &mut Idle<P>) -> Option<Ended> {
    let Idle {
        protocol,
        transport,
        buf,
        made,
        ..
    } = idle;
    if !*made {
        *made = true;
        if let Err(msg) = h.catch_panic(|| protocol.connection_made(h, transport)) {
            return Some(Ended::Panicked(msg));
        }
    }
    let mut first = true;
    loop {
        if transport.was_killed() {
            return Some(Ended::Killed);
        }
        if transport.close_requested() {
            transport.conn().close();
            return Some(Ended::Lost(Lost::Closed));
        }
        // After a frame, a receive that would find nothing is skipped: the watch is armed
        // at once (the common case: one message, then a drained socket).
        if !std::mem::take(&mut first) && !transport.conn().may_have_input() {
            keep_small(buf);
            return None;
        }
        match h.try_receive(TryReceive::into_buf(transport.conn(), std::mem::take(buf))) {
            Tried::Frame(frame) => {
                *buf = frame;
                if let Err(msg) = h.catch_panic(|| protocol.frame_received(h, transport, buf)) {
                    return Some(Ended::Panicked(msg));
                }
            }
            Tried::Nothing(empty) => {
                *buf = empty;
                keep_small(buf);
                return None;
            }
            Tried::Failed(e) => {
                return Some(match loss(&e) {
                    Lost::Eof => match h.catch_panic(|| protocol.eof_received(h, transport)) {
                        Ok(true) if transport.close_requested() => Ended::Lost(Lost::Closed),
                        Ok(true) => kept_half_close(h, transport),
                        Ok(false) => Ended::Lost(Lost::Eof),
                        Err(msg) => Ended::Panicked(msg),
                    },
                    lost => Ended::Lost(lost),
                });
            }
        }
    }
}

/// The protocol kept the peer's half-close: its worker waits for the connection's close
/// (the protocol's close or abort, a failed write), as a callback that parks keeps it.
fn kept_half_close(h: &Handle, transport: &Transport) -> Ended {
    transport.keep_half_close();
    let how = h.on_closed(transport.conn());
    if transport.close_requested() {
        Ended::Lost(Lost::Closed)
    } else {
        Ended::Lost(how)
    }
}

/// An idle connection keeps no large buffer.
fn keep_small(buf: &mut Vec<u8>) {
    if buf.capacity() > 4096 {
        *buf = Vec::new();
    }
}
