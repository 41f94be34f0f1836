//! A channel from other threads to one tasklet: the senders live anywhere, the receiver is a
//! tasklet of one schedule.
//!
//! [`RemoteSender::send`] queues a value and, if the receiving tasklet is parked, unparks it
//! through the schedule's [`Remote`]: the schedule wakes at once, even inside a blocking
//! `run()`. While the receiver is busy draining, sends touch only the channel's lock, with no
//! system call. The channel is bounded: a send to a full channel blocks the sending *thread*
//! until the receiver makes room (or fails at once with [`RemoteSender::try_send`]). At most
//! `capacity` values wait for the receiver to take them, and at most `capacity` more that it
//! took in one swap wait in the receiver to be handed out.
//! Dropping every sender closes the channel; the receiver gets what was queued, then `None`.
//! Dropping the receiver closes it for the senders, which get their values back; the values
//! still queued are dropped with it.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use fibra_rt::{Handle, Remote};

use crate::wait::WaitKey;
use crate::{RemoteWaker, SendError, TryReceiveError, TrySendError, WaitGuard, WaitList, Wake};

struct State<T> {
    queue: VecDeque<T>,
    cap: usize,
    closed: bool,
    senders: usize,
    /// Receiving tasklets (about to be) parked for lack of values, first come first woken,
    /// each with its own schedule's remote (the receiver may move to another schedule). More
    /// than one only when tasklets share the receiver (through an `Rc`).
    parked: WaitList<RemoteWaker>,
    /// Sending threads blocked for lack of room.
    blocked: usize,
    /// Sending tasklets (of other schedules) parked for lack of room, with their schedule's
    /// remote to unpark them.
    parked_senders: WaitList<RemoteWaker>,
}

struct Inner<T> {
    state: Mutex<State<T>>,
    /// Signalled when room is made or the channel closes, if a sender is blocked.
    room: Condvar,
    /// The schedule the channel was made for: held (not used to wake: each parked tasklet
    /// records its own schedule's), so that while the channel lives that schedule counts as
    /// one a remote may still wake, as it always did.
    _receiving: Remote,
}

impl<T> Inner<T> {
    /// Leaves the wait list that `list` picks when dropped, a kill included; a wake-up not
    /// used goes to the next waiter.
    fn leave_on_drop(
        &self,
        key: WaitKey,
        list: fn(&mut State<T>) -> &mut WaitList<RemoteWaker>,
    ) -> WaitGuard<impl FnOnce(bool) + '_> {
        WaitGuard::new(move |done| {
            list(&mut self.lock()).leave(key, done);
        })
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding the lock leaves the queue as it was: go on with it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Closes the channel; wakes the receiver and every blocked sender.
    fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.parked.wake_all();
        state.parked_senders.wake_all();
        let blocked = state.blocked > 0;
        drop(state);
        if blocked {
            self.room.notify_all();
        }
    }
}

/// A bounded channel from other threads to a tasklet of the schedule behind `remote`
/// (capacity at least 1). A parked receiver is woken through its own schedule's remote, so the
/// receiver may also be moved to, and used by, a tasklet of another schedule.
///
/// ```
/// use fibra_rt::Schedule;
///
/// let mut schedule = Schedule::new();
/// let (tx, rx) = fibra_tasks::remote_channel::<u64>(&schedule.remote(), 64);
/// schedule.spawn(move |h| {
///     let mut sum = 0;
///     while let Some(v) = rx.receive(h) {
///         sum += v;
///     }
///     assert_eq!(sum, 5050);
/// })?;
/// let producer = std::thread::spawn(move || {
///     for v in 1..=100 {
///         tx.send(v).unwrap();
///     }
///     // dropping the last sender closes the channel
/// });
/// schedule.run()?; // blocks between values; returns once the channel closed
/// producer.join().unwrap();
/// # Ok::<(), fibra_rt::Error>(())
/// ```
pub fn remote_channel<T: Send>(
    remote: &Remote,
    capacity: usize,
) -> (RemoteSender<T>, RemoteReceiver<T>) {
    let cap = capacity.max(1);
    let inner = Arc::new(Inner {
        state: Mutex::new(State {
            queue: VecDeque::with_capacity(cap.min(1024)),
            cap,
            closed: false,
            senders: 1,
            parked: WaitList::new(),
            blocked: 0,
            parked_senders: WaitList::new(),
        }),
        room: Condvar::new(),
        _receiving: remote.clone(),
    });
    (
        RemoteSender {
            inner: Arc::clone(&inner),
        },
        RemoteReceiver {
            inner,
            taken: RefCell::new(VecDeque::with_capacity(cap.min(1024))),
        },
    )
}

/// The sending side of a [`remote_channel`]: `Send + Sync`, cloneable, usable from any thread.
pub struct RemoteSender<T> {
    inner: Arc<Inner<T>>,
}

impl<T> RemoteSender<T> {
    /// Sends `value`, blocking this thread while the channel is full.
    ///
    /// Do not call it from a tasklet of the receiving schedule: the receiver could never run
    /// to make room. A tasklet of another schedule uses
    /// [`send_parking`](Self::send_parking), since blocking its thread stops its whole
    /// schedule.
    ///
    /// # Errors
    ///
    /// [`SendError`] with the value when the channel is closed.
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        let mut state = self.inner.lock();
        loop {
            if state.closed {
                return Err(SendError(value));
            }
            if state.queue.len() < state.cap {
                break;
            }
            state.blocked += 1;
            state = self
                .inner
                .room
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.blocked -= 1;
        }
        self.push(state, value);
        Ok(())
    }

    /// Sends `value` from a tasklet (of another schedule: the one to talk to), parking the
    /// tasklet, not its thread, while the channel is full; the receiver unparks it through
    /// the sender's own schedule when it takes values. Values from one sender arrive in the
    /// order sent.
    ///
    /// ```
    /// use fibra_rt::Cores;
    /// use std::sync::{Arc, Mutex};
    ///
    /// // Schedule 1 receives; schedule 0 sends 1,000 values through a channel of 8.
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let got = Arc::new(Mutex::new(Vec::new()));
    /// let seen = got.clone();
    /// let rx = Mutex::new(Some(rx));
    /// let cores = Cores::start(2, false, move |index, schedule| {
    ///     if index == 1 {
    ///         let (sender, receiver) = fibra_tasks::remote_channel::<u32>(&schedule.remote(), 8);
    ///         tx.send(sender).unwrap();
    ///         let seen = seen.clone();
    ///         schedule.spawn(move |h| {
    ///             while let Some(v) = receiver.receive(h) {
    ///                 seen.lock().unwrap().push(v);
    ///             }
    ///         })?;
    ///     } else {
    ///         let sender = rx.lock().unwrap().take().unwrap().recv().unwrap();
    ///         schedule.spawn(move |h| {
    ///             for v in 0..1000 {
    ///                 sender.send_parking(h, v).unwrap();
    ///             }
    ///         })?;
    ///     }
    ///     Ok(())
    /// })?;
    /// cores.join()?;
    /// assert_eq!(*got.lock().unwrap(), (0..1000).collect::<Vec<u32>>());
    /// # Ok::<(), fibra_rt::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`SendError`] with the value when the channel is closed.
    pub fn send_parking(&self, h: &Handle, value: T) -> Result<(), SendError<T>> {
        loop {
            let mut state = self.inner.lock();
            if state.closed {
                return Err(SendError(value));
            }
            if state.queue.len() < state.cap {
                self.push(state, value);
                return Ok(());
            }
            let key = state.parked_senders.push(RemoteWaker::of(h));
            drop(state);
            let mut leave = self.inner.leave_on_drop(key, |s| &mut s.parked_senders);
            h.park();
            leave.done(true);
        }
    }

    /// Sends `value` if there is room now.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] when the channel is at capacity, [`TrySendError::Closed`] when it
    /// is closed; both hand the value back.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let state = self.inner.lock();
        if state.closed {
            return Err(TrySendError::Closed(value));
        }
        if state.queue.len() >= state.cap {
            return Err(TrySendError::Full(value));
        }
        self.push(state, value);
        Ok(())
    }

    fn push(&self, mut state: MutexGuard<'_, State<T>>, value: T) {
        state.queue.push_back(value);
        // One receiver is enough: the one woken takes everything queued.
        let parked = state.parked.take_next().cloned();
        drop(state);
        if let Some(waker) = parked {
            waker.wake();
        }
    }

    /// Closes the channel for every sender; the receiver still gets what was queued.
    pub fn close(&self) {
        self.inner.close();
    }

    /// Whether the channel is closed.
    pub fn is_closed(&self) -> bool {
        self.inner.lock().closed
    }

    /// Values queued now.
    pub fn len(&self) -> usize {
        self.inner.lock().queue.len()
    }

    /// Whether no value is queued now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most values the channel holds.
    pub fn capacity(&self) -> usize {
        self.inner.lock().cap
    }
}

impl<T> Clone for RemoteSender<T> {
    fn clone(&self) -> Self {
        self.inner.lock().senders += 1;
        RemoteSender {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> Drop for RemoteSender<T> {
    fn drop(&mut self) {
        let mut state = self.inner.lock();
        state.senders -= 1;
        let last = state.senders == 0;
        drop(state);
        if last {
            self.inner.close();
        }
    }
}

impl<T> fmt::Debug for RemoteSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.lock();
        f.debug_struct("RemoteSender")
            .field("len", &state.queue.len())
            .field("cap", &state.cap)
            .field("closed", &state.closed)
            .finish()
    }
}

/// The receiving side of a [`remote_channel`]: used by a tasklet (of the schedule whose
/// [`Remote`] made the channel, or of any other: it may be moved there), or by several
/// tasklets of one schedule sharing it.
pub struct RemoteReceiver<T> {
    inner: Arc<Inner<T>>,
    /// Values taken from the shared queue in one swap, handed out without the lock.
    taken: RefCell<VecDeque<T>>,
}

impl<T> RemoteReceiver<T> {
    /// The next value, parking the tasklet until one comes; `None` once the channel is closed
    /// and drained.
    ///
    /// Values are taken from the senders' queue all at once, under one lock (the queues are
    /// swapped), and then handed out one by one without it.
    pub fn receive(&self, h: &Handle) -> Option<T> {
        if self.wait_for_values(h) {
            self.taken.borrow_mut().pop_front()
        } else {
            None
        }
    }

    /// Like [`receive`](Self::receive), giving up at `deadline`.
    ///
    /// # Errors
    ///
    /// [`TimedOut`](fibra_rt::TimedOut) if nothing came (and the channel was not closed) by
    /// then.
    pub fn receive_until(
        &self,
        h: &Handle,
        deadline: std::time::Instant,
    ) -> Result<Option<T>, fibra_rt::TimedOut> {
        let mut parked = false;
        loop {
            let mut state = {
                let mut taken = self.taken.borrow_mut();
                if let Some(value) = taken.pop_front() {
                    return Ok(Some(value));
                }
                let mut state = self.inner.lock();
                if self.take_all(&mut state, &mut taken) {
                    if parked {
                        return Ok(taken.pop_front());
                    }
                    // As in `wait_for_values`: yield once, then look again.
                    drop(state);
                    drop(taken);
                    yield_once(h);
                    parked = true;
                    continue;
                }
                if state.closed {
                    return Ok(None);
                }
                state
            };
            let key = state.parked.push(RemoteWaker::of(h));
            drop(state);
            let mut leave = self.inner.leave_on_drop(key, |s| &mut s.parked);
            h.park_until(deadline)?;
            leave.done(true);
            parked = true;
        }
    }

    /// The next value if one is queued.
    ///
    /// # Errors
    ///
    /// [`TryReceiveError::Empty`] when nothing is queued, [`TryReceiveError::Closed`] when
    /// nothing is queued and the channel is closed.
    pub fn try_receive(&self) -> Result<T, TryReceiveError> {
        let mut taken = self.taken.borrow_mut();
        if let Some(value) = taken.pop_front() {
            return Ok(value);
        }
        let mut state = self.inner.lock();
        self.take_all(&mut state, &mut taken);
        match taken.pop_front() {
            Some(value) => Ok(value),
            None if state.closed => Err(TryReceiveError::Closed),
            None => Err(TryReceiveError::Empty),
        }
    }

    /// Moves the queued values (at most `max`) to `into`, parking until at least one is
    /// there; returns how many moved, 0 once the channel is closed and drained.
    pub fn receive_many(&self, h: &Handle, into: &mut Vec<T>, max: usize) -> usize {
        if !self.wait_for_values(h) {
            return 0;
        }
        let mut taken = self.taken.borrow_mut();
        let n = taken.len().min(max.max(1));
        into.extend(taken.drain(..n));
        n
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

    /// The old name of [`receive_many`](Self::receive_many).
    #[deprecated(since = "0.2.0", note = "renamed to `receive_many`")]
    pub fn recv_many(&self, h: &Handle, into: &mut Vec<T>, max: usize) -> usize {
        self.receive_many(h, into, max)
    }

    /// Parks until values are in `taken` (true), or the channel is closed and drained
    /// (false). No borrow is held across the park: other tasklets may use this receiver too.
    fn wait_for_values(&self, h: &Handle) -> bool {
        let mut parked = false;
        loop {
            let state = {
                let mut taken = self.taken.borrow_mut();
                if !taken.is_empty() {
                    return true;
                }
                let mut state = self.inner.lock();
                if self.take_all(&mut state, &mut taken) {
                    if parked {
                        return true;
                    }
                    // Taken without a wait: yield once, then look again (the values stay
                    // in `taken`, this receiver's, for a kill meanwhile).
                    drop(state);
                    drop(taken);
                    yield_once(h);
                    parked = true;
                    continue;
                }
                if state.closed {
                    return false;
                }
                state
            };
            self.park(h, state);
            parked = true;
        }
    }

    /// Parks until a sender or a close unparks this tasklet. Its place in the wait list goes
    /// when the park ends in any way, a kill included, so a dead tasklet never takes the
    /// wake-up meant for a live one.
    fn park(&self, h: &Handle, mut state: MutexGuard<'_, State<T>>) {
        let key = state.parked.push(RemoteWaker::of(h));
        drop(state);
        let mut leave = self.inner.leave_on_drop(key, |s| &mut s.parked);
        h.park();
        // Back from the park, the tasklet takes what is queued; killed, it passes its wake on.
        leave.done(true);
    }

    /// Swaps the shared queue with the empty `taken` (both keep their allocations); frees
    /// the room for blocked senders. Returns whether anything was taken.
    fn take_all(&self, state: &mut State<T>, taken: &mut VecDeque<T>) -> bool {
        if state.queue.is_empty() {
            return false;
        }
        std::mem::swap(&mut state.queue, taken);
        if state.blocked > 0 {
            self.inner.room.notify_all();
        }
        // Parked sending tasklets: one unpark each, however many values they wait to send.
        state.parked_senders.wake_all();
        true
    }

    /// Closes the channel: senders fail from now on; what is queued can still be received.
    pub fn close(&self) {
        self.inner.close();
    }

    /// Whether the channel is closed.
    pub fn is_closed(&self) -> bool {
        self.inner.lock().closed
    }

    /// Values queued now, not yet received.
    pub fn len(&self) -> usize {
        self.taken.borrow().len() + self.inner.lock().queue.len()
    }

    /// Whether no value is queued now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Yields once: the tasklet goes to the back of the run queue and takes a step of the
/// schedule's budget. A receiver that finds values queued by other threads each time it looks
/// never parks; without this, a producer that keeps ahead of it would hold the receiving
/// tasklet, and the schedule's `tick()`, for as long as it sends.
fn yield_once(h: &Handle) {
    h.unparker().unpark();
    h.park();
}

impl<T> Drop for RemoteReceiver<T> {
    fn drop(&mut self) {
        self.inner.close();
        // What was queued can no longer be received: dropped now (outside the lock: a
        // value's drop may take time, or send), not when the last sender goes, which may be
        // never (a connection handed to a schedule that is gone stayed open, unserved).
        let queued = std::mem::take(&mut self.inner.lock().queue);
        drop(queued);
    }
}

impl<T> fmt::Debug for RemoteReceiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.lock();
        f.debug_struct("RemoteReceiver")
            .field(
                "len",
                &(state.queue.len() + self.taken.try_borrow().map_or(0, |t| t.len())),
            )
            .field("cap", &state.cap)
            .field("closed", &state.closed)
            .finish()
    }
}
