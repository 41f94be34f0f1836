//! One poll round of the table: the reactor's events, then the timers due, then the
//! readers that stopped at the read budget, then the tasklets whose entry went away.

use std::cell::RefCell;

use fibra_rt::{Context, Event, Events};

use super::{output, Entry, Table};
use crate::api::error::Lost;
use crate::engine::shared::Key;
use crate::engine::sys::socket;

/// Who takes up a connection's readable edge.
enum Next {
    /// The tasklet parked in a receive.
    Reader,
    /// The armed input watch's job.
    Watch,
    /// Nobody yet: read ahead (a loss to tell watchers, a close, a TLS handshake).
    ReadAhead,
}

impl Table {
    /// Serves the round's readiness events and what fell due.
    pub(crate) fn poll(&mut self, events: Events<'_>, cx: &mut Context<'_>) {
        self.round += 1;
        self.run_deferred(cx);
        let mut events = events.iter().peekable();
        // A simulated network's events come after the reactor's (there are none of those).
        let mut simulated = self.sys.next_event();
        if events.peek().is_some() || simulated.is_some() || self.timers.next_deadline().is_some() {
            // The schedule's clock, read once per round after its wait.
            self.round_time = cx.now();
        }
        for event in events {
            self.on_event(event, cx);
        }
        while let Some(event) = simulated {
            self.on_event(event, cx);
            simulated = self.sys.next_event();
        }
        self.expire_timers(cx);
        self.serve_retries(cx);
        self.waiters.tell_orphans(cx);
        self.tend_workers(cx);
    }

    /// Whether the next round has work that must not wait for readiness: orphans to tell,
    /// readers to retry, deferred resets and closes, and output queued outside a round (by
    /// the host, between ticks) that the round's flush writes.
    pub(crate) fn has_work_now(&self) -> bool {
        self.waiters.has_orphans()
            || !self.retry.is_empty()
            || !self.deferred.is_empty()
            || !self.ended_by_calls.is_empty()
            || !self.sealing.is_empty()
            || !self.dirty.is_empty()
            || self.workers_need_tending()
    }

    fn on_event(&mut self, event: Event, cx: &mut Context<'_>) {
        let slot = event.key();
        let Some(entry) = self.entries.get_mut(slot) else {
            return;
        };
        let key = Key {
            slot,
            gen: entry.gen(),
        };
        let c = match entry {
            Entry::Listener(l) => {
                l.readable |= event.is_readable();
                self.serve_acceptors(key, cx);
                return;
            }
            Entry::Conn(c) => c,
            Entry::Group(_) => return,
        };
        let readable = event.is_readable() || event.is_read_closed();
        if readable {
            c.input.on_readable(event.is_read_closed());
        }
        if c.state.is_connecting() {
            c.output.writable |= event.is_writable();
            self.finish_connect(key, cx);
            return;
        }
        if event.is_writable() {
            // Held output waits for its timer, whatever the socket says.
            output::on_writable(c, slot, &mut self.dirty);
        }
        if event.is_error() && c.input.end.is_some() && c.output.end.is_none() {
            // The input ended (the peer's end of stream was read), so nothing reads this
            // socket again: an error now (the peer's reset of a kept half-close) is found
            // here, not at a write that may never come.
            if let Some(e) = c.state.connected_socket().and_then(socket::take_error) {
                log::debug!(target: "fibra_net", "connection with {} after its end of stream: {e}", c.peer);
                let lost = Lost::from_io(&e);
                self.lose(key, lost, cx);
                self.end_output(key, lost, cx);
                return;
            }
        }
        // Decided on the entry in hand: one lookup per event.
        let next = if !readable {
            return;
        } else if c.input.has_reader() {
            Next::Reader
        } else if c.input.watch.is_some() {
            Next::Watch
        } else if !c.watchers.is_empty()
            || c.state.is_closing()
            || c.tls.as_ref().is_some_and(|t| t.is_handshaking())
        {
            // A TLS handshake goes on whoever receives.
            Next::ReadAhead
        } else {
            return;
        };
        match next {
            Next::Reader => self.serve_reader(key, cx),
            Next::Watch => self.fire_watch(key, cx),
            Next::ReadAhead => self.read_ahead(key, cx),
        }
    }

    fn serve_retries(&mut self, cx: &mut Context<'_>) {
        if self.retry.is_empty() {
            return;
        }
        let retry = std::mem::take(&mut self.retry);
        for &slot in &retry {
            let Some(Entry::Conn(c)) = self.entries.get(slot) else {
                continue;
            };
            let key = Key { slot, gen: c.gen };
            if c.input.has_reader() {
                self.serve_reader(key, cx);
            } else if c.input.watch.is_some() {
                self.fire_watch(key, cx);
            } else {
                self.read_ahead(key, cx);
            }
        }
        if self.retry.is_empty() {
            // Keep the allocation.
            self.retry = retry;
            self.retry.clear();
        }
    }

    /// Handles dropped while the table was borrowed.
    pub(crate) fn release_deferred(&mut self, deferred: &RefCell<Vec<Key>>) {
        loop {
            let Some(key) = deferred.borrow_mut().pop() else {
                return;
            };
            self.release(key);
        }
    }
}
