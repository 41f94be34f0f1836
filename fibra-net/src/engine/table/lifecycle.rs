//! A connection's life: its states, its loss (told once to every waiter), the graceful close,
//! the reset, and the removal of its entry.
//!
//! Loss and close are separate: a connection is *lost* when no more input comes (the peer's
//! FIN or RST, a read timeout, a bad frame, a local close), and each side of it ends on its
//! own (`Input::end`, `Output::end`): after the peer's FIN, output still flows.

use std::task::Poll;
use std::time::Instant;

use fibra_rt::{Context, TaskletId};

use super::timers::TimerKind;
use super::waiters::{Parked, Wait};
use super::{conn_mut, Entry, Table};
use crate::api::error::{Lost, NetError};
use crate::api::ops;
use crate::engine::shared::Key;
use crate::engine::sys::{socket, Socket};
use crate::tls::TlsLost;

/// Where a connection is in its life. The socket lives in the state, so "a closed
/// connection has no socket" is a fact of the type.
///
/// ```text
///   connect()                accept()
///      │                        │
///      ▼        handshake       ▼       close(), last handle dropped       output written
///  Connecting ─────────────►  Open  ─────────────────────────────────►  Closing ─────────┐
///      │   (fails, withdrawn:    │                                         │  (or close   │
///      │    entry removed)       │ reset, abort, OS error,                 │   timeout:   │
///      ▼                         │ write failure                           │   reset)     ▼
///   removed                      └──────────────────────────────────────► Closed ◄──────┘
///                                                                            │
///                                                   no handle left ──────────▼ removed
/// ```
///
/// Watchers and the receiver are told the loss when input ends, in any state; drainers and
/// flushers when output ends; the closer when the socket closes.
#[derive(Debug)]
pub(crate) enum ConnState {
    /// The handshake is in progress; `waiter` is the tasklet connecting.
    Connecting { socket: Socket, waiter: Parked },
    /// Connected: input and output flow (each until it ends).
    Open { socket: Socket },
    /// No more sends: queued output is being written, then FIN. `linger` is the close
    /// timeout's deadline; `closer` the tasklet waiting in `close`.
    Closing {
        socket: Socket,
        linger: Option<Instant>,
        closer: Option<Parked>,
    },
    /// The socket is closed; the entry stays while handles refer to it.
    Closed,
}

impl ConnState {
    /// The socket, in every state but `Closed`.
    pub(crate) fn socket(&self) -> Option<&Socket> {
        match self {
            ConnState::Connecting { socket, .. }
            | ConnState::Open { socket }
            | ConnState::Closing { socket, .. } => Some(socket),
            ConnState::Closed => None,
        }
    }

    /// The socket, once connected and until closed.
    pub(crate) fn connected_socket(&self) -> Option<&Socket> {
        match self {
            ConnState::Open { socket } | ConnState::Closing { socket, .. } => Some(socket),
            ConnState::Connecting { .. } | ConnState::Closed => None,
        }
    }

    pub(crate) fn is_connecting(&self) -> bool {
        matches!(self, ConnState::Connecting { .. })
    }

    pub(crate) fn is_closing(&self) -> bool {
        matches!(self, ConnState::Closing { .. })
    }

    /// Moves to `Closed`: the socket, and the tasklet still parked in the state (a connect's
    /// or a close's), with where it waited.
    fn close(&mut self, slot: usize) -> (Option<Socket>, Option<(Parked, Wait)>) {
        match std::mem::replace(self, ConnState::Closed) {
            ConnState::Connecting { socket, waiter } => {
                (Some(socket), Some((waiter, Wait::Connect(slot))))
            }
            ConnState::Open { socket } => (Some(socket), None),
            ConnState::Closing { socket, closer, .. } => {
                (Some(socket), closer.map(|p| (p, Wait::Close(slot))))
            }
            ConnState::Closed => (None, None),
        }
    }

    /// The socket, for the table's drop.
    pub(super) fn into_socket(self) -> Option<Socket> {
        match self {
            ConnState::Connecting { socket, .. }
            | ConnState::Open { socket }
            | ConnState::Closing { socket, .. } => Some(socket),
            ConnState::Closed => None,
        }
    }
}

impl Table {
    /// The connection is lost (its input ended): tell the reader and the watchers, once.
    pub(super) fn lose(&mut self, key: Key, lost: Lost, cx: &mut Context<'_>) {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return;
        };
        if c.input.end.is_none() {
            c.input.end = Some(lost);
        }
        if c.lost.is_some() {
            return;
        }
        c.lost = Some(lost);
        log::trace!(target: "fibra_net", "connection with {} lost: {lost}", c.peer);
        let watchers = std::mem::take(&mut c.watchers);
        let tls = c.tls.is_some();
        // A waiting reader found no complete frame: nothing more will come.
        self.fail_reader(key, lost, cx);
        self.fire_watch(key, cx);
        if tls {
            self.tls_lost(key, lost, cx);
        }
        for parked in watchers {
            self.waiters.complete::<ops::OnLost>(cx, parked, lost);
        }
        if matches!(
            lost,
            Lost::Reset | Lost::Aborted | Lost::Slow { .. } | Lost::Os(_) | Lost::Codec(_)
        ) || matches!(lost, Lost::Tls(t) if t != TlsLost::NoCloseNotify)
        {
            self.end_output(key, lost, cx);
        }
    }

    /// No more output: drop what is queued, fail the writers and the closer, close the
    /// socket.
    pub(super) fn end_output(&mut self, key: Key, lost: Lost, cx: &mut Context<'_>) {
        let dropped = self.fail_output(key, lost, cx);
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return;
        };
        if dropped > 0 {
            log::debug!(target: "fibra_net",
                "connection with {} ({lost}): {dropped} queued bytes were not sent", c.peer);
        }
        if let ConnState::Closing { closer, .. } = &mut c.state {
            if let Some(parked) = closer.take() {
                let result = match lost {
                    Lost::Closed => Ok(()),
                    // The close timeout: the output was not written in time.
                    Lost::TimedOut => Err(NetError::TimedOut),
                    _ => Err(lost.into()),
                };
                self.waiters.complete::<ops::Close>(cx, parked, result);
            }
        }
        self.close_now(key);
    }

    /// Closes gracefully: no more sends; once the output is written, FIN and close. The
    /// closer (if any) waits for that.
    pub(crate) fn submit_close(
        &mut self,
        key: Key,
        from: TaskletId,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), NetError>> {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return Poll::Ready(Ok(()));
        };
        match &c.state {
            ConnState::Closing {
                closer: Some(_), ..
            } => return Poll::Ready(Err(NetError::Busy)),
            ConnState::Closed => {
                return Poll::Ready(match c.output.end {
                    Some(end) if end != Lost::Closed && !end.can_send() => Err(end.into()),
                    _ => Ok(()),
                })
            }
            _ => {}
        }
        self.lose(key, Lost::Closed, cx);
        self.begin_close(key, cx.now());
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return Poll::Ready(Ok(()));
        };
        let ConnState::Closing { closer, .. } = &mut c.state else {
            // Closed already: nothing was left to write.
            return Poll::Ready(Ok(()));
        };
        *closer = Some(self.waiters.park(from, Wait::Close(key.slot)));
        Poll::Pending
    }

    /// Moves to `Closing`; closes now if nothing is left to write, or arms the close timeout
    /// from `now`, which must be a fresh reading (`Context::now`, never `last_reading`: after
    /// a quiet spell that is older than the close timeout, and the close would reset).
    pub(super) fn begin_close(&mut self, key: Key, now: Instant) {
        // What its groups sent before the close still reaches it; nothing after.
        self.leave_groups(key, true);
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return;
        };
        let linger = match &c.state {
            ConnState::Closing { linger, .. } => *linger,
            _ => None,
        };
        let (socket, parked) = c.state.close(key.slot);
        let Some(socket) = socket else {
            return;
        };
        let closer = match parked {
            Some((p, Wait::Close(_))) => Some(p),
            Some((p, wait)) => {
                // A connect still in progress: its tasklet is told the connection closed.
                self.waiters.orphan(p, wait);
                None
            }
            None => None,
        };
        c.state = ConnState::Closing {
            socket,
            linger,
            closer,
        };
        if let Some(tls) = c.tls.as_mut() {
            if c.output.is_empty() && c.output.end.is_none() && !tls.is_handshaking() {
                // Nothing left to encrypt: close_notify is the last record.
                tls.close_notify();
            }
        }
        if c.output_idle() || c.output.end.is_some() {
            self.finish_close(key, None);
            return;
        }
        if linger.is_none() {
            let at = now.checked_add(c.options.close_timeout);
            if let ConnState::Closing { linger, .. } = &mut c.state {
                *linger = at;
            }
            if let Some(at) = at {
                self.timers.arm(at, TimerKind::Linger, key);
            }
        }
        self.mark_dirty(key);
    }

    /// The output is written: FIN, then close the socket; the closer is told.
    pub(super) fn finish_close(&mut self, key: Key, cx: Option<&mut Context<'_>>) {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return;
        };
        if let Some(sock) = c.state.socket() {
            socket::shut_down(sock);
        }
        if c.output.end.is_none() {
            c.output.end = Some(Lost::Closed);
        }
        if let ConnState::Closing { closer, .. } = &mut c.state {
            if let Some(parked) = closer.take() {
                match cx {
                    Some(cx) => self.waiters.complete::<ops::Close>(cx, parked, Ok(())),
                    None => self.waiters.orphan(parked, Wait::Close(key.slot)),
                }
            }
        }
        self.close_now(key);
    }

    /// Closes the socket now, keeping the entry while handles refer to it.
    fn close_now(&mut self, key: Key) {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return;
        };
        let (socket, parked) = c.state.close(key.slot);
        let released = c.released;
        let how = c.output.end.unwrap_or(Lost::Closed);
        if socket.is_some() {
            // Frames decrypted before a TLS failure are still delivered (the entry's
            // removal gives the buffer back); so are the frames read before the peer's end
            // of stream when the peer's reset (or a failed write) ends the output after it:
            // they arrived whole, and the failure is about the output only.
            let whole_input = c.input.end == Some(Lost::Eof)
                && !matches!(c.output.end, None | Some(Lost::Closed | Lost::Aborted));
            if !matches!(c.input.end, Some(Lost::Tls(_))) && !whole_input {
                c.input.clear(&mut self.pool);
            }
            c.output.clear(&mut self.pool);
        }
        self.leave_groups(key, false);
        self.tell_closed(key, how);
        if let Some((p, wait)) = parked {
            self.waiters.orphan(p, wait);
        }
        if let Some(socket) = socket {
            // Nothing is due for a closed socket: its timers go with it.
            self.timers.cancel_slot(key.slot);
            self.close_socket(socket);
            if released {
                self.remove_conn(key);
            }
        }
    }

    /// Ends the connection with a RST (a zero linger makes the close drop unsent data),
    /// telling every waiter `lost`.
    pub(super) fn reset(&mut self, key: Key, lost: Lost, cx: &mut Context<'_>) {
        let Some(sock) = conn_mut(&mut self.entries, key).and_then(|c| c.state.socket()) else {
            return;
        };
        socket::reset_on_close(sock);
        self.lose(key, lost, cx);
        self.end_output(key, lost, cx);
    }

    pub(crate) fn abort(&mut self, key: Key, cx: &mut Context<'_>) {
        self.reset(key, Lost::Aborted, cx);
    }

    /// The close timeout armed for `at` fell due: the output was not written in time.
    pub(super) fn linger_timer(&mut self, key: Key, at: Instant, cx: &mut Context<'_>) {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return;
        };
        if !matches!(c.state, ConnState::Closing { linger: Some(l), .. } if l == at) {
            return;
        }
        log::debug!(target: "fibra_net",
            "close of connection with {}: output not written within {:?}; reset",
            c.peer, c.options.close_timeout);
        self.reset(key, Lost::TimedOut, cx);
    }

    pub(crate) fn submit_lost(&mut self, key: Key, from: TaskletId) -> Poll<Lost> {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return Poll::Ready(Lost::Closed);
        };
        if let Some(lost) = c.lost {
            return Poll::Ready(lost);
        }
        let parked = self.waiters.park(from, Wait::Lost(key.slot));
        if let Some(c) = conn_mut(&mut self.entries, key) {
            c.watchers.push(parked);
        }
        Poll::Pending
    }

    /// Waits for the connection's close, both ways: its output ended too (a graceful close
    /// written out, an abort, a failed write). Ready at once if it is closed, with how its
    /// output ended.
    pub(crate) fn submit_closed(&mut self, key: Key, from: TaskletId) -> Poll<Lost> {
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return Poll::Ready(Lost::Closed);
        };
        if matches!(c.state, ConnState::Closed) {
            return Poll::Ready(c.output.end.unwrap_or(Lost::Closed));
        }
        let parked = self.waiters.park(from, Wait::Closed);
        self.closing_watchers.push((key, parked));
        Poll::Pending
    }

    /// The connection closed: its close watchers are told `how` at the next poll.
    fn tell_closed(&mut self, key: Key, how: Lost) {
        if self.closing_watchers.is_empty() {
            return;
        }
        let mut i = 0;
        while i < self.closing_watchers.len() {
            if self.closing_watchers[i].0 == key {
                let (_, parked) = self.closing_watchers.swap_remove(i);
                self.waiters.closed(parked, how);
            } else {
                i += 1;
            }
        }
    }

    /// The last handle to `key` is gone: close the connection (after its output is written)
    /// or the listener, and remove the entry once its socket is closed.
    pub(crate) fn release(&mut self, key: Key) {
        match self.entries.get_mut(key.slot) {
            Some(Entry::Conn(c)) if c.gen == key.gen => {
                c.released = true;
                if matches!(c.state, ConnState::Closed) {
                    self.remove_conn(key);
                } else {
                    self.begin_close(key, fibra_rt::time::now());
                }
            }
            Some(Entry::Listener(l)) if l.gen == key.gen => self.remove_listener(key),
            Some(Entry::Group(g)) if g.gen == key.gen => self.remove_group(key),
            _ => {}
        }
    }

    /// Removes a connection's entry, closing its socket; its waiters (there should be none)
    /// are told `Closed` at the next poll.
    pub(super) fn remove_conn(&mut self, key: Key) {
        self.leave_groups(key, false);
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return;
        };
        let how = c.output.end.unwrap_or(Lost::Closed);
        self.tell_closed(key, how);
        let Some(c) = conn_mut(&mut self.entries, key) else {
            return;
        };
        let (socket, parked) = c.state.close(key.slot);
        let Some(Entry::Conn(mut c)) = self.entries.try_remove(key.slot) else {
            return;
        };
        self.timers.cancel_slot(key.slot);
        self.unwatch(c.input.watch.take());
        c.input.clear(&mut self.pool);
        let slot = key.slot;
        let mut orphans: Vec<(Parked, Wait)> = Vec::new();
        orphans.extend(parked);
        orphans.extend(c.input.take_reader().map(|p| (p, Wait::Receive(slot))));
        orphans.extend(c.watchers.drain(..).map(|p| (p, Wait::Lost(slot))));
        orphans.extend(c.output.take_waiters(slot));
        if let Some(p) = c.tls.as_mut().and_then(|t| t.take_connecting()) {
            orphans.push((p, Wait::Connect(slot)));
        }
        c.output.clear(&mut self.pool);
        if let Some(socket) = socket {
            self.close_socket(socket);
        }
        for (parked, wait) in orphans {
            self.waiters.orphan(parked, wait);
        }
    }

    /// Begins a graceful stop: listeners close (their acceptors are told `Closed`), no
    /// connection is made or taken any more, and every connection closes as `close` does:
    /// its groups' batches and its queued output are written (within its close timeout),
    /// then FIN.
    pub(crate) fn drain(&mut self, cx: &mut Context<'_>) {
        self.draining = true;
        let now = cx.now();
        let keys: Vec<(Key, bool)> = self
            .entries
            .iter()
            .filter_map(|(slot, entry)| match entry {
                Entry::Listener(l) => Some((Key { slot, gen: l.gen }, true)),
                Entry::Conn(c) if !matches!(c.state, ConnState::Closed) => {
                    Some((Key { slot, gen: c.gen }, false))
                }
                _ => None,
            })
            .collect();
        log::debug!(target: "fibra_net", "draining {} listeners and connections", keys.len());
        for (key, listener) in keys {
            if listener {
                self.stop_listening(key);
            } else {
                self.lose(key, Lost::Closed, cx);
                self.begin_close(key, now);
            }
        }
    }

    /// Whether a drain finished: every socket is closed.
    pub(crate) fn is_drained(&self) -> bool {
        self.counters.sockets == 0
    }

    /// Withdraws whatever tasklet `id` waits for (it was killed, or its op timed out).
    pub(crate) fn forget(&mut self, id: TaskletId) {
        let Some(wait) = self.waiters.withdraw(id) else {
            self.forget_worker(id);
            return;
        };
        match wait {
            Wait::Accept(slot) => {
                if let Some(Entry::Listener(l)) = self.entries.get_mut(slot) {
                    l.acceptors.retain(|p| p.id() != id);
                }
            }
            Wait::Connect(slot) => {
                let Some(Entry::Conn(c)) = self.entries.get_mut(slot) else {
                    return;
                };
                let key = Key { slot, gen: c.gen };
                if let Some(tls) = c.tls.as_mut() {
                    if tls.connecting_is(id) {
                        // The connect gave up during the TLS handshake.
                        log::debug!(target: "fibra_net", "TLS connect to {} withdrawn", c.peer);
                        let _withdrawn = tls.take_connecting();
                        c.released = true;
                        if let Some(sock) = c.state.socket() {
                            socket::reset_on_close(sock);
                        }
                        self.close_now(key);
                        return;
                    }
                }
                if matches!(&c.state, ConnState::Connecting { waiter, .. } if waiter.id() == id) {
                    let key = Key { slot, gen: c.gen };
                    log::debug!(target: "fibra_net", "connect to {} withdrawn", c.peer);
                    if let (Some(socket), _withdrawn) = c.state.close(slot) {
                        self.close_socket(socket);
                    }
                    self.remove_conn(key);
                }
            }
            Wait::Receive(slot) => {
                if let Some(Entry::Conn(c)) = self.entries.get_mut(slot) {
                    c.input.withdraw_reader(id);
                }
            }
            Wait::Closed => self.closing_watchers.retain(|(_, p)| p.id() != id),
            Wait::Drain(slot) | Wait::Flush(slot) | Wait::Close(slot) | Wait::Lost(slot) => {
                if let Some(Entry::Conn(c)) = self.entries.get_mut(slot) {
                    c.output.withdraw(id);
                    c.watchers.retain(|p| p.id() != id);
                    if let ConnState::Closing { closer, .. } = &mut c.state {
                        if closer.as_ref().is_some_and(|p| p.id() == id) {
                            *closer = None;
                        }
                    }
                }
            }
        }
    }
}
