//! A channel for one value between two tasklets of a schedule: a reply, a result, a "done".
//!
//! ```
//! use fibra_rt::Schedule;
//! use fibra_tasks::{oneshot, TasksExt, TasksPlugin};
//!
//! let mut schedule = Schedule::new();
//! schedule.add_plugin(TasksPlugin::new())?;
//! schedule.spawn(|h| {
//!     let (tx, rx) = oneshot::channel();
//!     h.spawn_detached(move |_h| tx.send(6 * 7).unwrap()).unwrap();
//!     assert_eq!(rx.receive(h), Some(42));
//!
//!     // A sender dropped unsent closes it: the receiver hears `None`, not a hang.
//!     let (tx, rx) = oneshot::channel::<u32>();
//!     drop(tx);
//!     assert_eq!(rx.receive(h), None);
//! })?;
//! schedule.run()?;
//! # Ok::<(), fibra_rt::Error>(())
//! ```

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use fibra_rt::Handle;

use crate::{SendError, TryReceiveError, WaitGuard, WaitList};

struct State<T> {
    value: Option<T>,
    /// The other side was dropped (or the value taken): nothing more will come or be taken.
    closed: bool,
    waiter: WaitList,
}

/// A one-value channel: [`Sender::send`] once, [`Receiver::receive`] once. Dropping either side
/// closes it for the other.
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let state = Rc::new(RefCell::new(State {
        value: None,
        closed: false,
        waiter: WaitList::new(),
    }));
    (
        Sender {
            state: Rc::clone(&state),
        },
        Receiver { state },
    )
}

/// The sending side of a [`oneshot::channel`](channel); dropping it unsent closes the channel.
pub struct Sender<T> {
    state: Rc<RefCell<State<T>>>,
}

impl<T> Sender<T> {
    /// Sends the value and wakes the receiver; never yields.
    ///
    /// # Errors
    ///
    /// Gives the value back if the receiver was dropped.
    pub fn send(self, value: T) -> Result<(), SendError<T>> {
        let mut state = self.state.borrow_mut();
        if state.closed {
            return Err(SendError(value));
        }
        state.value = Some(value);
        state.waiter.wake_all();
        Ok(())
    }

    /// Whether the receiver was dropped (a send would fail).
    pub fn is_closed(&self) -> bool {
        self.state.borrow().closed
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut state = self.state.borrow_mut();
        state.closed = true;
        state.waiter.wake_all();
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("oneshot::Sender")
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// The receiving side of a [`oneshot::channel`](channel); dropping it closes the channel (a
/// value sent after that comes back to the sender, one sent before is dropped with it).
pub struct Receiver<T> {
    state: Rc<RefCell<State<T>>>,
}

impl<T> Receiver<T> {
    /// Parks until the value comes; `None` if the sender was dropped without sending.
    /// A receiver killed while parked leaves cleanly (the sender then sees it closed).
    pub fn receive(self, h: &Handle) -> Option<T> {
        loop {
            match self.try_receive() {
                Ok(value) => return Some(value),
                Err(TryReceiveError::Closed) => return None,
                Err(TryReceiveError::Empty) => {}
            }
            let key = self.state.borrow_mut().waiter.push(h.unparker());
            let _leave = WaitGuard::new(|_| {
                self.state.borrow_mut().waiter.remove(key);
            });
            h.park();
        }
    }

    /// The value if it came; never parks.
    ///
    /// # Errors
    ///
    /// [`TryReceiveError::Empty`] while it may still come, [`TryReceiveError::Closed`] once
    /// the sender was dropped without sending (or the value was taken).
    pub fn try_receive(&self) -> Result<T, TryReceiveError> {
        let mut state = self.state.borrow_mut();
        match state.value.take() {
            Some(value) => {
                state.closed = true;
                Ok(value)
            }
            None if state.closed => Err(TryReceiveError::Closed),
            None => Err(TryReceiveError::Empty),
        }
    }

    /// Whether the value can no longer come (the sender was dropped unsent) or was taken.
    pub fn is_closed(&self) -> bool {
        let state = self.state.borrow();
        state.closed && state.value.is_none()
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.state.borrow_mut().closed = true;
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.borrow();
        f.debug_struct("oneshot::Receiver")
            .field("ready", &state.value.is_some())
            .field("closed", &state.closed)
            .finish()
    }
}
