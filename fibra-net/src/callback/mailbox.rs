//! `Mailbox`: the bounded queue of a server's or client's notifications, read by its own
//! tasklet, which it unparks.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use fibra_rt::Unparker;

/// At most this many notifications wait for one member; more are dropped (and logged).
pub(crate) const MAILBOX_CAP: usize = 1024;

#[derive(Clone, Default)]
pub(crate) struct Mailbox {
    inner: Rc<RefCell<Inner>>,
}

#[derive(Default)]
struct Inner {
    queue: VecDeque<Rc<str>>,
    reader: Option<Unparker>,
}

impl Mailbox {
    /// The tasklet that reads the mailbox from now on; `None` (stopped) drops what waits.
    pub(crate) fn set_reader(&self, reader: Option<Unparker>) {
        let mut inner = self.inner.borrow_mut();
        if reader.is_none() {
            inner.queue.clear();
        }
        inner.reader = reader;
    }

    /// Queues `message` and wakes the reader; `false` when nobody reads the mailbox (its
    /// member is not running) or it is full.
    pub(crate) fn post(&self, message: Rc<str>) -> bool {
        let mut inner = self.inner.borrow_mut();
        if inner.reader.is_none() {
            return false;
        }
        if inner.queue.len() >= MAILBOX_CAP {
            log::warn!(target: "fibra_net::service",
                "notification dropped: {MAILBOX_CAP} are already waiting to be read");
            return false;
        }
        inner.queue.push_back(message);
        if let Some(reader) = &inner.reader {
            reader.unpark();
        }
        true
    }

    /// The oldest notification.
    pub(crate) fn take(&self) -> Option<Rc<str>> {
        self.inner.borrow_mut().queue.pop_front()
    }
}
