//! Connections into the table: accepted ones, and outgoing ones connecting without blocking
//! the thread.

use std::net::SocketAddr;
use std::task::Poll;
use std::time::Instant;

use fibra_rt::{Context, TaskletId};

use super::input::Input;
use super::lifecycle::ConnState;
use super::output::Output;
use super::timers::TimerKind;
use super::tls::Tls;
use super::waiters::{Parked, Wait};
use super::{conn_mut, ConnEntry, Deferred, Entry, Table};
use crate::api::error::{Lost, NetError};
use crate::api::ops;
use crate::api::options::ConnOptions;
use crate::engine::shared::Key;
use crate::engine::sys::socket::{self, Handshake};
use crate::engine::sys::Socket;

impl Table {
    /// Registers `socket` and adds its entry: open, or connecting for `connecting`.
    /// `accepted`: a listener's, whose failed codec ends the connection at the next poll;
    /// otherwise the caller's own connect or adopt, which then fails with the reason.
    /// `tls`: the connection's TLS filter; an accepted one's handshake clock starts now.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn add_conn(
        &mut self,
        socket: Socket,
        peer: SocketAddr,
        options: ConnOptions,
        connecting: Option<Parked>,
        accepted: bool,
        tls: Option<Box<Tls>>,
        now: Instant,
    ) -> Result<Key, (NetError, Option<Parked>)> {
        if self.draining {
            // Stopping: no new connection (the socket closes here, never registered).
            return Err((NetError::Closed, connecting));
        }
        let input = Input::new(&options, peer, now);
        let failed = input.codec.failure();
        if let (Some(failure), false) = (failed, accepted) {
            // The codec's factory panicked: the connect or adopt says so.
            return Err((NetError::Codec(failure), connecting));
        }
        if options.nodelay {
            // A failure here costs latency, not correctness.
            let _ = socket::set_nodelay(&socket);
        }
        if let Some(idle) = options.keepalive {
            if let Err(e) = socket::set_keepalive(&socket, idle) {
                log::debug!(target: "fibra_net", "keepalive for {peer}: {e}");
            }
        }
        let slot = self.entries.vacant_key();
        if let Err(e) = self.register(&socket, slot) {
            return Err((e.into(), connecting));
        }
        let key = self.next_key(slot);
        if let Some(at) = input.timer {
            self.timers.arm(at, TimerKind::Read, key);
        }
        if let Some(failure) = failed {
            // The codec's factory panicked: the accepted connection ends at the next poll
            // (its acceptor is not told, and accepts on).
            self.deferred
                .push((key, Deferred::Reset(Lost::Codec(failure))));
        }
        let state = match connecting {
            Some(waiter) => ConnState::Connecting { socket, waiter },
            None => ConnState::Open { socket },
        };
        let writable = matches!(state, ConnState::Open { .. });
        self.entries.insert(Entry::Conn(Box::new(ConnEntry {
            gen: key.gen,
            peer,
            state,
            released: false,
            lost: None,
            watchers: Vec::new(),
            groups: Vec::new(),
            input,
            output: Output::new(writable),
            options,
            tls,
        })));
        if accepted {
            self.tls_started(key, None, now);
        }
        Ok(key)
    }

    /// Takes over a connected stream from elsewhere; `tls`: served as a TLS server's.
    pub(crate) fn adopt(
        &mut self,
        stream: std::net::TcpStream,
        options: ConnOptions,
        #[cfg(feature = "tls")] tls: Option<&std::sync::Arc<rustls::ServerConfig>>,
        now: Instant,
    ) -> Result<Key, NetError> {
        self.sys
            .not_simulated("a kernel socket taken over (adopt)")?;
        stream.set_nonblocking(true)?;
        let peer = stream.peer_addr()?;
        #[cfg(feature = "tls")]
        let tls = tls.map(Tls::server).transpose()?;
        #[cfg(not(feature = "tls"))]
        let tls = None;
        let served = tls.is_some();
        let key = self
            .add_conn(
                Socket::Os(socket2::Socket::from(stream)),
                peer,
                options,
                None,
                false,
                tls,
                now,
            )
            .map_err(|(e, _)| e)?;
        if served {
            self.tls_started(key, None, now);
        }
        Ok(key)
    }

    pub(crate) fn submit_connect(
        &mut self,
        addr: SocketAddr,
        local: Option<SocketAddr>,
        options: ConnOptions,
        from: TaskletId,
        now: Instant,
    ) -> Poll<Result<Key, NetError>> {
        #[cfg(feature = "tls")]
        if options.tls.is_some() {
            if let Err(e) = self.sys.not_simulated("TLS") {
                return Poll::Ready(Err(e));
            }
        }
        #[cfg(feature = "tls")]
        let tls = match &options.tls {
            Some(client) => match Tls::client(client) {
                Ok(tls) => Some(tls),
                Err(e) => return Poll::Ready(Err(e)),
            },
            None => None,
        };
        #[cfg(not(feature = "tls"))]
        let tls = None;
        let (socket, in_progress) = match self.sys.connect(addr, local) {
            Ok(started) => started,
            Err(e) => return Poll::Ready(Err(e)),
        };
        if !in_progress && tls.is_none() {
            return Poll::Ready(
                self.add_conn(socket, addr, options, None, false, None, now)
                    .map_err(|(e, _)| e),
            );
        }
        // The slot the entry will take: `add_conn` inserts there.
        let parked = self
            .waiters
            .park(from, Wait::Connect(self.entries.vacant_key()));
        if !in_progress {
            // Connected at once: the TLS handshake is what the connect waits for.
            return match self.add_conn(socket, addr, options, None, false, tls, now) {
                Ok(key) => {
                    self.tls_started(key, Some(parked), now);
                    Poll::Pending
                }
                Err((e, _)) => {
                    self.waiters.withdraw(parked.id());
                    Poll::Ready(Err(e))
                }
            };
        }
        match self.add_conn(socket, addr, options, Some(parked), false, tls, now) {
            Ok(_) => Poll::Pending,
            Err((e, parked)) => {
                if let Some(parked) = parked {
                    // Not parked after all: the op completes here.
                    self.waiters.withdraw(parked.id());
                }
                Poll::Ready(Err(e))
            }
        }
    }

    /// A connecting socket became ready: connected, or failed.
    pub(super) fn finish_connect(&mut self, key: Key, cx: &mut Context<'_>) {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return;
        };
        let state = std::mem::replace(&mut c.state, ConnState::Closed);
        let ConnState::Connecting { socket, waiter } = state else {
            c.state = state;
            return;
        };
        let error = match socket::handshake(&socket) {
            Handshake::Done => None,
            Handshake::NotYet => {
                c.state = ConnState::Connecting { socket, waiter };
                return;
            }
            Handshake::Failed(e) => Some(e),
        };
        match error {
            None => {
                c.state = ConnState::Open { socket };
                c.output.writable = true;
                if c.tls.is_some() {
                    // The TLS handshake is what the connect waits for now. The server's
                    // first bytes may have come in the edge that said connected: read them.
                    self.tls_started(key, Some(waiter), cx.last_reading());
                    self.read_ahead(key, cx);
                    return;
                }
                let conn = self.conn(key);
                self.waiters.complete::<ops::Connect>(cx, waiter, Ok(conn));
            }
            Some(e) => {
                let err = socket::connect_error(e, c.peer);
                log::debug!(target: "fibra_net", "connect to {}: {err}", c.peer);
                self.close_socket(socket);
                self.remove_conn(key);
                self.waiters.complete::<ops::Connect>(cx, waiter, Err(err));
            }
        }
    }
}
