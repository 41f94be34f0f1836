//! `SignalPlugin`: serves `WaitSignal` and `StopCatching` from one signalfd on the schedule's
//! reactor.

use std::io;
use std::os::fd::AsFd;
use std::task::Poll;

use fibra_rt::{Context, Events, Interest, Plugin, Registry, Router, Serves, TaskletId};

use crate::ops::{StopCatching, WaitSignal};
use crate::signal::SignalSet;
use crate::sys::SignalFd;
use crate::{Signal, SignalError};

/// The signals plugin. Add it to a schedule to use [`SignalExt`](crate::SignalExt).
///
/// A signal is *caught* from the first wait for it (or from [`catching`](Self::catching)):
/// it is blocked in the schedule's thread and queued for the plugin, instead of taking its
/// default action. Each arrival wakes every tasklet waiting for it; one that arrives while
/// nobody waits is kept for the next wait. Dropping the plugin gives the caught signals their
/// default action back.
///
/// Signal masks are per thread, and threads started later inherit them: catch signals before
/// starting other threads (or block them in those threads too), or a process-directed signal
/// such as Ctrl-C's may go to a thread that does not block it. Catch a signal in one schedule
/// of a process only.
///
/// ```
/// use fibra_rt::Schedule;
/// use fibra_signal::{Signal, SignalExt, SignalPlugin};
///
/// let mut schedule = Schedule::new();
/// // Caught from here on: a Ctrl-C before the tasklet waits is kept, not lost.
/// schedule.add_plugin(SignalPlugin::catching(&[Signal::INT, Signal::TERM])?)?;
/// schedule.spawn(|h| {
///     let signal = h.signals(&[Signal::INT, Signal::TERM]).unwrap();
///     log::info!("{signal}: stopping");
/// })?;
/// // Here a host would `schedule.run()` until the signal comes.
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct SignalPlugin {
    sys: SignalFd,
    registry: Option<Registry>,
    /// Whether the descriptor is on the reactor: only while tasklets wait, so that a
    /// schedule whose tasklets wait for nothing else can still report a stall.
    registered: bool,
    waiters: Vec<(TaskletId, SignalSet)>,
    /// Caught signals that arrived while nobody waited for them.
    pending: SignalSet,
}

impl SignalPlugin {
    /// A plugin that catches no signal until a tasklet waits for one.
    ///
    /// # Errors
    ///
    /// [`SignalError::Unsupported`] off Linux; [`SignalError::Io`] when no descriptor can be
    /// made.
    pub fn new() -> Result<SignalPlugin, SignalError> {
        Ok(SignalPlugin {
            sys: SignalFd::new()?,
            registry: None,
            registered: false,
            waiters: Vec::new(),
            pending: SignalSet::default(),
        })
    }

    /// A plugin that catches `signals` at once.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new), and [`SignalError::Io`] if a signal cannot be blocked.
    pub fn catching(signals: &[Signal]) -> Result<SignalPlugin, SignalError> {
        let mut plugin = SignalPlugin::new()?;
        plugin.catch(signals)?;
        Ok(plugin)
    }

    /// Catches `signals` from now on (from the host: see [`catching`](Self::catching)).
    ///
    /// # Errors
    ///
    /// [`SignalError::Io`] if a signal cannot be blocked.
    pub fn catch(&mut self, signals: &[Signal]) -> Result<(), SignalError> {
        Ok(self.sys.catch(SignalSet::of(signals))?)
    }

    /// Whether `signal` is caught.
    pub fn is_caught(&self, signal: Signal) -> bool {
        self.sys.caught().contains(signal)
    }

    /// From the host: takes the first of `signals` that arrived while no tasklet waited for
    /// it (catching them from now on if they were not caught). One non-blocking read per
    /// call, so a host loop may call it every frame.
    ///
    /// # Errors
    ///
    /// [`SignalError::Io`] if a signal cannot be blocked or the descriptor cannot be read.
    pub fn take_pending(&mut self, signals: &[Signal]) -> Result<Option<Signal>, SignalError> {
        let set = SignalSet::of(signals);
        self.sys.catch(set)?;
        self.drain()?;
        let signal = set.first_in(self.pending);
        if let Some(signal) = signal {
            self.pending.remove(signal);
        }
        Ok(signal)
    }

    /// How many tasklets wait for a signal.
    pub fn waiting(&self) -> usize {
        self.waiters.len()
    }

    /// Reads the arrivals queued for the descriptor into `pending`.
    fn drain(&mut self) -> io::Result<()> {
        let mut arrived = SignalSet::default();
        self.sys.drain(|signal| arrived.insert(signal))?;
        for signal in arrived.iter() {
            log::debug!(target: "fibra_signal", "{signal} arrived");
            self.pending.insert(signal);
        }
        Ok(())
    }

    /// Hands each pending signal to the tasklets waiting for it.
    fn deliver(&mut self, cx: &mut Context<'_>) {
        if self.waiters.is_empty() {
            return;
        }
        let pending = self.pending;
        let mut delivered = SignalSet::default();
        self.waiters
            .retain(|&(id, set)| match set.first_in(pending) {
                Some(signal) => {
                    delivered.insert(signal);
                    let _ = cx.complete::<WaitSignal>(id, Ok(signal));
                    false
                }
                None => true,
            });
        for signal in delivered.iter() {
            self.pending.remove(signal);
        }
        self.update_registration();
    }

    /// On the reactor while tasklets wait, off it when none does.
    fn update_registration(&mut self) {
        let Some(registry) = &self.registry else {
            return;
        };
        let want = !self.waiters.is_empty();
        if want == self.registered {
            return;
        }
        let result = if want {
            // SAFETY: the descriptor is owned by `self.sys` and deregistered before it closes
            // (here when no tasklet waits, or in `Drop`).
            unsafe { registry.register(self.sys.as_fd(), 0, Interest::READABLE) }
        } else {
            registry.deregister(self.sys.as_fd())
        };
        match result {
            Ok(()) => self.registered = want,
            Err(e) => log::error!(target: "fibra_signal", "signalfd on the reactor: {e}"),
        }
    }
}

impl Plugin for SignalPlugin {
    fn register(router: &mut Router<Self>) {
        router.op::<WaitSignal>().op::<StopCatching>();
    }

    fn added(&mut self, registry: Registry) {
        self.registry = Some(registry);
    }

    fn poll(&mut self, cx: &mut Context<'_>, events: Events<'_>) -> io::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        self.drain()?;
        self.deliver(cx);
        Ok(())
    }

    fn cancel(&mut self, id: TaskletId) {
        self.waiters.retain(|&(waiter, _)| waiter != id);
        self.update_registration();
    }
}

impl Serves<WaitSignal> for SignalPlugin {
    fn submit(
        &mut self,
        op: WaitSignal,
        from: TaskletId,
        _: &mut Context<'_>,
    ) -> Poll<Result<Signal, SignalError>> {
        if op.set.is_empty() {
            return Poll::Ready(Err(SignalError::Empty));
        }
        if let Err(e) = self.sys.catch(op.set).and_then(|()| self.drain()) {
            return Poll::Ready(Err(e.into()));
        }
        if let Some(signal) = op.set.first_in(self.pending) {
            self.pending.remove(signal);
            return Poll::Ready(Ok(signal));
        }
        self.waiters.push((from, op.set));
        self.update_registration();
        if self.registry.is_some() && !self.registered {
            self.waiters.pop();
            return Poll::Ready(Err(SignalError::Io(io::Error::other(
                "the signal descriptor could not be put on the reactor",
            ))));
        }
        Poll::Pending
    }
}

impl Serves<StopCatching> for SignalPlugin {
    fn submit(
        &mut self,
        op: StopCatching,
        _: TaskletId,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), SignalError>> {
        if let Err(e) = self.sys.release(op.0) {
            return Poll::Ready(Err(e.into()));
        }
        self.pending.remove(op.0);
        let caught = self.sys.caught();
        self.waiters.retain(|&(id, set)| {
            if set.first_in(caught).is_some() {
                return true;
            }
            let _ = cx.complete::<WaitSignal>(id, Err(SignalError::Released(op.0)));
            false
        });
        self.update_registration();
        Poll::Ready(Ok(()))
    }
}

impl Drop for SignalPlugin {
    fn drop(&mut self) {
        if let (true, Some(registry)) = (self.registered, &self.registry) {
            let _ = registry.deregister(self.sys.as_fd());
        }
    }
}
