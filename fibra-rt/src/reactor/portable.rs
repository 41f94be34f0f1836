//! The portable backend: the `polling` crate (epoll, kqueue, event ports, IOCP, poll).
//!
//! It cannot ask for a peer's end of output (`EPOLLRDHUP`), so [`Event::read_closed`] is
//! never set: plugins read until `WouldBlock` instead of trusting a short read.

use std::io;
use std::num::NonZeroUsize;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::Arc;
use std::time::Duration;

use super::{Event, Interest, NOTIFY_KEY};

/// Whether this backend reports a peer's end of output ([`Event::read_closed`]).
pub(crate) const REPORTS_READ_CLOSED: bool = false;

/// Events taken per wait; more wait for the next round.
const EVENTS_PER_WAIT: usize = 1024;

/// A `polling::Poller`, shared with the notifiers of other threads.
#[derive(Debug)]
pub(crate) struct Poller {
    poller: Arc<polling::Poller>,
}

/// The buffer `polling` writes events into, reused by every wait.
#[derive(Debug)]
pub(crate) struct RawEvents(polling::Events);

impl RawEvents {
    pub(crate) fn new() -> RawEvents {
        RawEvents(polling::Events::with_capacity(
            NonZeroUsize::new(EVENTS_PER_WAIT).expect("non-zero"),
        ))
    }
}

/// Wakes a [`Poller`] from any thread.
#[derive(Debug)]
pub(crate) struct Notifier {
    poller: Arc<polling::Poller>,
}

impl Notifier {
    pub(crate) fn notify(&self) -> io::Result<()> {
        self.poller.notify()
    }
}

fn polling_event(data: u64, interest: Interest) -> polling::Event {
    let key = data as usize;
    match (interest.readable, interest.writable) {
        (true, true) => polling::Event::all(key),
        (true, false) => polling::Event::readable(key),
        (false, true) => polling::Event::writable(key),
        (false, false) => polling::Event::none(key),
    }
}

impl Poller {
    pub(crate) fn new() -> io::Result<Poller> {
        let _ = NOTIFY_KEY;
        Ok(Poller {
            poller: Arc::new(polling::Poller::new()?),
        })
    }

    pub(crate) fn add(&self, fd: BorrowedFd<'_>, data: u64, interest: Interest) -> io::Result<()> {
        // SAFETY: `Registry::register`'s contract: the source is deleted before it closes.
        unsafe {
            self.poller.add_with_mode(
                fd.as_raw_fd(),
                polling_event(data, interest),
                polling::PollMode::Edge,
            )
        }
    }

    pub(crate) fn modify(
        &self,
        fd: BorrowedFd<'_>,
        data: u64,
        interest: Interest,
    ) -> io::Result<()> {
        self.poller
            .modify_with_mode(fd, polling_event(data, interest), polling::PollMode::Edge)
    }

    pub(crate) fn delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        self.poller.delete(fd)
    }

    pub(crate) fn notifier(&self) -> Arc<Notifier> {
        Arc::new(Notifier {
            poller: Arc::clone(&self.poller),
        })
    }

    /// Waits up to `timeout` (`None`: no limit) and appends what became ready to `events`; a
    /// notification is not an event (the remote's flag says it).
    pub(crate) fn wait(
        &self,
        raw: &mut RawEvents,
        events: &mut Vec<Event>,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        raw.0.clear();
        match self.poller.wait(&mut raw.0, timeout) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        for e in raw.0.iter() {
            let error = e.is_err().unwrap_or(false);
            events.push(Event {
                key: e.key,
                readable: e.readable || error,
                writable: e.writable || error,
                read_closed: false,
                error,
            });
        }
        Ok(())
    }
}
