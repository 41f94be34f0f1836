//! `Protocol` and `Factory`: a connection written as callbacks (Twisted's, asyncio's, gnet's
//! shape), run on the connection's own tasklet; and `Ended`, why a connection ended.

use std::fmt;
use std::net::SocketAddr;

use fibra_rt::Handle;

use crate::{Lost, Transport};

/// One connection's behaviour, as callbacks. A [`Factory`] makes one per connection; a
/// [`Server`](crate::Server) or a [`ReconnectingClient`](crate::ReconnectingClient) runs it.
///
/// Every callback runs on the connection's own tasklet, one at a time, in order, so `self`
/// needs no locking and a callback may call anything that parks (`h.sleep`, a request to a
/// back end, a parking `h.send`). While one parks, nothing more is read from that connection
/// (its peer is paused, other connections are not); frames that arrive meanwhile are kept and
/// delivered when it returns.
///
/// ```
/// use fibra_net::{Protocol, Transport};
/// use fibra_rt::Handle;
///
/// /// Sends every frame back.
/// struct Echo;
///
/// impl Protocol for Echo {
///     fn frame_received(&mut self, _h: &Handle, transport: &Transport, frame: &[u8]) {
///         let _ = transport.send(frame);
///     }
/// }
/// # let _ = Echo;
/// ```
pub trait Protocol: 'static {
    /// The connection is up: first of the callbacks.
    fn connection_made(&mut self, h: &Handle, transport: &Transport) {
        let _ = (h, transport);
    }

    /// A frame arrived, cut by the connection's codec ([`Framing`](crate::Framing): lines,
    /// length-prefixed, or raw chunks, which is asyncio's `data_received`). The bytes are
    /// lent: the buffer is reused for the next frame (copy what you keep).
    fn frame_received(&mut self, h: &Handle, transport: &Transport, frame: &[u8]);

    /// The peer closed its side (a half-close), after its last frame. Return `true` to keep
    /// the connection open for sending; the default, `false`, closes it.
    ///
    /// A kept half-close stays open until the protocol closes or aborts it through the
    /// transport (from a callback, a notification or another tasklet), its output fails (a
    /// peer that resets is found by the reset itself, or by the next write), or its server
    /// stops; `connection_lost` hears which. On a
    /// [`Server::stackless`](crate::Server::stackless), the session holds a worker tasklet
    /// while it waits, as a callback that parks does.
    fn eof_received(&mut self, h: &Handle, transport: &Transport) -> bool {
        let _ = (h, transport);
        false
    }

    /// A notification from a [`Service`](crate::Service), in the order they were sent. The
    /// default ignores it (logged at debug level).
    fn on_notify(&mut self, h: &Handle, transport: &Transport, message: &str) {
        let _ = (h, transport);
        log::debug!(target: "fibra_net::protocol", "notification ignored: {message}");
    }

    /// The connection ended, and why: called exactly once, whatever ended it (the peer, a
    /// local close or abort, an error, the read deadline, a panic in another callback, or the
    /// kill of its tasklet when its server or client stops). The connection is closed and
    /// its inner tasklets are being killed.
    ///
    /// It may run while its tasklet is being killed, so it gets no handle and must not park;
    /// to do something that parks, hand it to another tasklet (a channel, a `Group`).
    fn connection_lost(&mut self, reason: &Ended) {
        let _ = reason;
    }
}

/// Makes one [`Protocol`] per connection.
pub trait Factory: 'static {
    /// The protocol it makes.
    type Protocol: Protocol;

    /// A protocol for a new connection with `peer`, or `None` to refuse it (the connection is
    /// closed at once).
    fn build_protocol(&mut self, peer: SocketAddr) -> Option<Self::Protocol>;

    /// A notification from a [`Service`](crate::Service) to this server or client, on its
    /// own tasklet, in the order they were sent; `connections` are the transports of the
    /// connections it runs now (to pass the message on). The default ignores it (logged at
    /// debug level).
    fn on_notify(&mut self, h: &Handle, message: &str, connections: &[Transport]) {
        let _ = (h, connections);
        log::debug!(target: "fibra_net::protocol", "notification ignored: {message}");
    }
}

/// Why a protocol's connection ended: what [`Protocol::connection_lost`] is told.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ended {
    /// The connection was lost: the peer ended or reset it, this side closed or aborted it,
    /// nothing arrived within the read deadline, a frame was bad.
    Lost(Lost),
    /// A callback panicked (its message); the connection was aborted.
    Panicked(String),
    /// The connection's tasklet was killed (its server or client was stopped); the connection
    /// was closed.
    Killed,
}

impl fmt::Display for Ended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ended::Lost(lost) => write!(f, "{lost}"),
            Ended::Panicked(msg) => write!(f, "a callback panicked: {msg}"),
            Ended::Killed => f.write_str("its tasklet was killed (stopped)"),
        }
    }
}
