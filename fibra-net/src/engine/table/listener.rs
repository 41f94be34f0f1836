//! Listeners: listening, handing connections to waiting acceptors in order, and pausing
//! when the process runs out of file descriptors (rather than spinning on `EMFILE`).

use std::net::SocketAddr;
use std::task::Poll;
use std::time::{Duration, Instant};

use fibra_rt::{Context, TaskletId};

use super::timers::TimerKind;
use super::waiters::{Parked, Wait};
use super::{Entry, Table};
use crate::api::backoff::{Backoff, Delays};
use crate::api::error::NetError;
use crate::api::ops;
use crate::api::options::{ConnOptions, ListenOptions};
use crate::engine::shared::Key;
use crate::engine::sys::socket::{self, Accepted};
use crate::engine::sys::Socket;

/// First and longest pause of `accept` after the process ran out of file descriptors.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// A listener's pauses: the crate's back-off policy, doubling from [`BACKOFF_MIN`] to
/// [`BACKOFF_MAX`], without jitter (one process, no crowd to spread), never giving up.
fn accept_backoff() -> Delays {
    Backoff::new()
        .with_initial(BACKOFF_MIN)
        .with_factor(2.0)
        .with_max(BACKOFF_MAX)
        .with_jitter(false)
        .delays()
}

#[derive(Debug)]
pub(super) struct ListenerEntry {
    pub(super) gen: u64,
    pub(super) socket: Option<Socket>,
    pub(super) addr: SocketAddr,
    /// The options of accepted connections.
    conn: ConnOptions,
    /// The TLS config of accepted connections.
    #[cfg(feature = "tls")]
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    pub(super) readable: bool,
    /// Waiting acceptors, served first come, first served.
    pub(super) acceptors: Vec<Parked>,
    /// Accepting is paused until then (out of file descriptors).
    backoff_until: Option<Instant>,
    /// The pauses so far; reset by an accepted connection.
    backoff: Delays,
}

fn listener_mut(entries: &mut slab::Slab<Entry>, key: Key) -> Option<&mut ListenerEntry> {
    match entries.get_mut(key.slot) {
        Some(Entry::Listener(l)) if l.gen == key.gen => Some(l),
        _ => None,
    }
}

impl Table {
    pub(crate) fn listen(
        &mut self,
        addr: SocketAddr,
        options: &ListenOptions,
    ) -> Result<(Key, SocketAddr), NetError> {
        if self.draining {
            return Err(NetError::Closed);
        }
        #[cfg(feature = "tls")]
        if options.tls.is_some() {
            self.sys.not_simulated("TLS")?;
        }
        let (socket, local) = self
            .sys
            .listener(addr, options.backlog, options.reuse_port)?;
        let slot = self.entries.vacant_key();
        self.register(&socket, slot)
            .map_err(|e| NetError::Bind { addr, source: e })?;
        let key = self.next_key(slot);
        self.entries.insert(Entry::Listener(Box::new(ListenerEntry {
            gen: key.gen,
            socket: Some(socket),
            addr: local,
            conn: options.conn.clone(),
            #[cfg(feature = "tls")]
            tls: options.tls.clone(),
            readable: true,
            acceptors: Vec::new(),
            backoff_until: None,
            backoff: accept_backoff(),
        })));
        log::debug!(target: "fibra_net", "listening on {local}");
        Ok((key, local))
    }

    pub(crate) fn submit_accept(
        &mut self,
        key: Key,
        from: TaskletId,
        now: Instant,
    ) -> Poll<Result<(Key, SocketAddr), NetError>> {
        let Some(l) = listener_mut(&mut self.entries, key) else {
            return Poll::Ready(Err(NetError::Closed));
        };
        if l.socket.is_none() {
            return Poll::Ready(Err(NetError::Closed));
        }
        if l.acceptors.is_empty() && l.backoff_until.is_none() && l.readable {
            if let Some(result) = self.accept_one(key, now) {
                return Poll::Ready(result);
            }
        }
        let parked = self.waiters.park(from, Wait::Accept(key.slot));
        match listener_mut(&mut self.entries, key) {
            Some(l) => l.acceptors.push(parked),
            None => self.waiters.orphan(parked, Wait::Accept(key.slot)),
        }
        Poll::Pending
    }

    /// Accepts one connection; `None` when none is ready (or accepting is paused).
    fn accept_one(
        &mut self,
        key: Key,
        now: Instant,
    ) -> Option<Result<(Key, SocketAddr), NetError>> {
        let l = listener_mut(&mut self.entries, key)?;
        match socket::accept(l.socket.as_ref()?) {
            Accepted::Conn(socket, peer) => {
                l.backoff.reset();
                let options = l.conn.clone();
                let peer = peer.unwrap_or(l.addr);
                #[cfg(feature = "tls")]
                let tls = match &l.tls {
                    Some(config) => match super::tls::Tls::server(config) {
                        Ok(tls) => Some(tls),
                        Err(e) => return Some(Err(e)),
                    },
                    None => None,
                };
                #[cfg(not(feature = "tls"))]
                let tls = None;
                Some(
                    self.add_conn(socket, peer, options, None, true, tls, now)
                        .map(|k| (k, peer))
                        .map_err(|(e, _)| e),
                )
            }
            Accepted::WouldBlock => {
                l.readable = false;
                None
            }
            Accepted::OutOfDescriptors(e) => {
                let pause = l.backoff.next_wait();
                // `pause` is at most BACKOFF_MAX; saturate all the same.
                let until = now.checked_add(pause).unwrap_or(now);
                l.backoff_until = Some(until);
                let addr = l.addr;
                self.counters.accept_pauses += 1;
                self.timers.arm(until, TimerKind::Backoff, key);
                if !std::mem::replace(&mut self.warned_fd_limit, true) {
                    log::warn!(target: "fibra_net",
                        "accept on {addr}: {e}; accepting pauses (from {pause:?} up to \
                         {BACKOFF_MAX:?}) until descriptors free up. Raise the limit with \
                         `ulimit -n` if this is normal load. (Logged once.)");
                } else {
                    log::debug!(target: "fibra_net", "accept on {addr}: {e}; pausing {pause:?}");
                }
                None
            }
            Accepted::Failed(e) => Some(Err(NetError::Io(e))),
        }
    }

    /// Hands ready connections to the listener's waiting acceptors.
    pub(super) fn serve_acceptors(&mut self, key: Key, cx: &mut Context<'_>) {
        loop {
            let Some(l) = listener_mut(&mut self.entries, key) else {
                return;
            };
            if l.acceptors.is_empty() || l.backoff_until.is_some() || !l.readable {
                return;
            }
            let Some(result) = self.accept_one(key, cx.now()) else {
                return;
            };
            let Some(l) = listener_mut(&mut self.entries, key) else {
                return;
            };
            let parked = l.acceptors.remove(0);
            let result = result.map(|(k, addr)| (self.conn(k), addr));
            self.waiters.complete::<ops::Accept>(cx, parked, result);
        }
    }

    /// The listener's pause (set at `at`) is over: accept again.
    pub(super) fn end_backoff(&mut self, key: Key, at: Instant, cx: &mut Context<'_>) {
        let Some(l) = listener_mut(&mut self.entries, key) else {
            return;
        };
        if l.backoff_until == Some(at) {
            l.backoff_until = None;
            l.readable = true;
            self.serve_acceptors(key, cx);
        }
    }

    /// Closes the listening socket (a drain), keeping the entry for its handles; waiting
    /// acceptors are told `Closed`, and later accepts fail with it.
    pub(super) fn stop_listening(&mut self, key: Key) {
        let Some(l) = listener_mut(&mut self.entries, key) else {
            return;
        };
        let socket = l.socket.take();
        let acceptors = std::mem::take(&mut l.acceptors);
        if let Some(socket) = socket {
            log::debug!(target: "fibra_net", "no longer listening on {} (draining)", l.addr);
            self.close_socket(socket);
        }
        self.timers.cancel_slot(key.slot);
        for parked in acceptors {
            self.waiters.orphan(parked, Wait::Accept(key.slot));
        }
    }

    /// Stops listening: the socket closes, waiting acceptors are told `Closed`.
    pub(super) fn remove_listener(&mut self, key: Key) {
        let Some(l) = listener_mut(&mut self.entries, key) else {
            return;
        };
        log::debug!(target: "fibra_net", "no longer listening on {}", l.addr);
        let Some(Entry::Listener(l)) = self.entries.try_remove(key.slot) else {
            return;
        };
        self.timers.cancel_slot(key.slot);
        if let Some(socket) = l.socket {
            self.close_socket(socket);
        }
        for parked in l.acceptors {
            self.waiters.orphan(parked, Wait::Accept(key.slot));
        }
    }
}
