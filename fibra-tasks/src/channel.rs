//! Channels between tasklets (fibra's "tubes"): bounded or unbounded, many senders and many
//! receivers, closable.
//!
//! A channel lives on the schedule's thread. Sending or receiving first tries without
//! suspending; only when the channel is full (send) or empty (receive) does the tasklet park
//! until the other side makes room or sends. Values sent before a close are still received;
//! after the close, receivers see `None` once the queue is drained and senders get their value
//! back in the error.
//!
//! First come, first served: each value sent to a waiting receiver, and each room made for a
//! waiting sender, is kept for the one it woke (a `try_receive` or `try_send` meanwhile finds
//! the channel empty or full), so no waiter is overtaken by one that did not wait.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::rc::Rc;

use fibra_rt::Handle;

use crate::{SendError, TryReceiveError, TrySendError, WaitGuard, WaitList};

struct Chan<T> {
    queue: VecDeque<T>,
    cap: Option<usize>,
    closed: bool,
    senders: usize,
    receivers: usize,
    recv_waiters: WaitList,
    send_waiters: WaitList,
}

impl<T> Chan<T> {
    fn describe(&self, side: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(side)
            .field("len", &self.queue.len())
            .field("cap", &self.cap)
            .field("closed", &self.closed)
            .finish()
    }

    /// No room for a new value: each sender woken for room made (and not yet run) holds
    /// its place, so a sender that did not wait never takes it (first come, first served).
    fn is_full(&self) -> bool {
        self.cap
            .is_some_and(|cap| self.queue.len() + self.send_waiters.woken() >= cap)
    }

    fn close(&mut self) {
        self.closed = true;
        self.recv_waiters.wake_all();
        self.send_waiters.wake_all();
    }
}

type Shared<T> = Rc<RefCell<Chan<T>>>;

fn new_chan<T>(cap: Option<usize>) -> (Sender<T>, Receiver<T>) {
    let chan = Rc::new(RefCell::new(Chan {
        queue: VecDeque::with_capacity(cap.unwrap_or(0).min(1024)),
        cap,
        closed: false,
        senders: 1,
        receivers: 1,
        recv_waiters: WaitList::new(),
        send_waiters: WaitList::new(),
    }));
    (
        Sender {
            chan: Rc::clone(&chan),
        },
        Receiver { chan },
    )
}

/// A channel with no capacity limit: sends never wait.
///
/// ```
/// use fibra_rt::Schedule;
///
/// let (tx, rx) = fibra_tasks::channel::<u32>();
/// let mut schedule = Schedule::new();
/// schedule.spawn(move |h| {
///     let mut sum = 0;
///     while let Some(v) = rx.receive(h) {
///         sum += v;
///     }
///     assert_eq!(sum, 6);
/// })?;
/// schedule.spawn(move |h| {
///     for v in 1..=3 {
///         tx.send(h, v).unwrap();
///     }
///     // dropping the last sender closes the channel
/// })?;
/// schedule.run()?;
/// # Ok::<(), fibra_rt::Error>(())
/// ```
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    new_chan(None)
}

/// A channel holding at most `capacity` values (at least 1): a send to a full channel waits
/// until a receiver makes room.
pub fn bounded<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    new_chan(Some(capacity.max(1)))
}

/// Parks `h` on the list that `list` picks in `chan` until woken. The tasklet leaves the list
/// however the park ends; a tasklet killed after it was woken passes its wake-up (and the
/// value or the room kept for it) to the next waiter.
fn wait<T>(h: &Handle, chan: &Shared<T>, list: fn(&mut Chan<T>) -> &mut WaitList) {
    let key = list(&mut chan.borrow_mut()).push(h.unparker());
    let mut guard = WaitGuard::new(|done| {
        list(&mut chan.borrow_mut()).leave(key, done);
    });
    h.park();
    guard.done(true);
}

/// The sending side of a channel. Cloning it adds a sender; when the last sender is dropped
/// the channel closes.
pub struct Sender<T> {
    chan: Shared<T>,
}

impl<T> Sender<T> {
    /// Sends `value`, waiting while the channel is full.
    ///
    /// # Errors
    ///
    /// Gives `value` back if the channel is closed.
    pub fn send(&self, h: &Handle, value: T) -> Result<(), SendError<T>> {
        let mut value = value;
        loop {
            match self.try_send(value) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(v)) => return Err(SendError(v)),
                Err(TrySendError::Full(v)) => value = v,
            }
            // Each receive that makes room wakes one sender, and the room is that sender's
            // until it runs (a sender that did not wait finds the channel full meanwhile):
            // woken, it always has its place, so it never parks again for it and never
            // passes the wake-up on; killed while woken, it passes it to the next.
            wait(h, &self.chan, |c| &mut c.send_waiters);
        }
    }

    /// Sends `value` if there is room now; never suspends.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] or [`TrySendError::Closed`], with the value.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let mut chan = self.chan.borrow_mut();
        if chan.closed {
            return Err(TrySendError::Closed(value));
        }
        if chan.is_full() {
            return Err(TrySendError::Full(value));
        }
        chan.queue.push_back(value);
        chan.recv_waiters.wake_one();
        Ok(())
    }

    /// Closes the channel for everyone: sends fail, receivers drain what is queued.
    pub fn close(&self) {
        self.chan.borrow_mut().close();
    }

    /// Whether the channel is closed.
    pub fn is_closed(&self) -> bool {
        self.chan.borrow().closed
    }

    /// How many values are queued.
    pub fn len(&self) -> usize {
        self.chan.borrow().queue.len()
    }

    /// Whether no value is queued.
    pub fn is_empty(&self) -> bool {
        self.chan.borrow().queue.is_empty()
    }

    /// The capacity, or `None` for an unbounded channel.
    pub fn capacity(&self) -> Option<usize> {
        self.chan.borrow().cap
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.borrow_mut().senders += 1;
        Sender {
            chan: Rc::clone(&self.chan),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut chan = self.chan.borrow_mut();
        chan.senders -= 1;
        if chan.senders == 0 {
            chan.close();
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.chan.borrow().describe("Sender", f)
    }
}

/// The receiving side of a channel. Cloning it adds a receiver (each value goes to one of
/// them); when the last receiver is dropped the channel closes.
pub struct Receiver<T> {
    chan: Shared<T>,
}

impl<T> Receiver<T> {
    /// Receives the next value, waiting while the channel is empty. `None` once the channel is
    /// closed and drained.
    pub fn receive(&self, h: &Handle) -> Option<T> {
        loop {
            match self.try_receive() {
                Ok(v) => return Some(v),
                Err(TryReceiveError::Closed) => return None,
                Err(TryReceiveError::Empty) => {}
            }
            // As for senders: each value sent wakes one receiver and is kept for it.
            wait(h, &self.chan, |c| &mut c.recv_waiters);
        }
    }

    /// Receives a value if one is queued; never suspends.
    ///
    /// # Errors
    ///
    /// [`TryReceiveError::Empty`], or [`TryReceiveError::Closed`] when nothing will ever come.
    pub fn try_receive(&self) -> Result<T, TryReceiveError> {
        let mut chan = self.chan.borrow_mut();
        // The values kept for receivers woken (and not yet run) are theirs.
        if chan.queue.len() <= chan.recv_waiters.woken() && !chan.closed {
            return Err(TryReceiveError::Empty);
        }
        match chan.queue.pop_front() {
            Some(v) => {
                chan.send_waiters.wake_one();
                Ok(v)
            }
            None if chan.closed => Err(TryReceiveError::Closed),
            None => Err(TryReceiveError::Empty),
        }
    }

    /// The old name of [`receive`](Self::receive).
    #[deprecated(since = "0.2.0", note = "renamed to `receive`")]
    pub fn recv(&self, h: &Handle) -> Option<T> {
        self.receive(h)
    }

    /// The old name of [`try_receive`](Self::try_receive).
    ///
    /// # Errors
    ///
    /// As [`try_receive`](Self::try_receive).
    #[deprecated(since = "0.2.0", note = "renamed to `try_receive`")]
    pub fn try_recv(&self) -> Result<T, TryReceiveError> {
        self.try_receive()
    }

    /// Closes the channel for everyone: sends fail, receivers drain what is queued.
    pub fn close(&self) {
        self.chan.borrow_mut().close();
    }

    /// Whether the channel is closed.
    pub fn is_closed(&self) -> bool {
        self.chan.borrow().closed
    }

    /// How many values are queued.
    pub fn len(&self) -> usize {
        self.chan.borrow().queue.len()
    }

    /// Whether no value is queued.
    pub fn is_empty(&self) -> bool {
        self.chan.borrow().queue.is_empty()
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.chan.borrow_mut().receivers += 1;
        Receiver {
            chan: Rc::clone(&self.chan),
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut chan = self.chan.borrow_mut();
        chan.receivers -= 1;
        if chan.receivers == 0 {
            chan.close();
        }
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.chan.borrow().describe("Receiver", f)
    }
}
