//! The reactor: one poller for every plugin of a schedule.
//!
//! Plugins register file descriptors through a [`Registry`] (from
//! [`Context::registry`](crate::Context::registry)), always edge-triggered, each with a key
//! of their own. The schedule makes one wait per round, with the nearest deadline of all
//! plugins as its timeout, and hands each plugin the [`Events`] of its own sources in
//! [`Plugin::poll`](crate::Plugin::poll). Other threads wake the wait through a
//! [`Remote`](crate::Remote).
//!
//! Backends: on Linux, epoll called directly (one `epoll_wait` per round, `EPOLLRDHUP` so that
//! a peer's end of output is reported); elsewhere, and on Linux with the `portable-poller`
//! feature, the `polling` crate.
//!
//! A plugin that reads a Unix socket, beside whatever else the schedule waits for:
//!
//! ```
//! use std::io::{self, Read, Write};
//! use std::os::fd::AsFd;
//! use std::os::unix::net::UnixStream;
//! use std::task::Poll;
//! use fibra_rt::{Context, Events, Interest, Op, Plugin, Registry, Router, Schedule, Serves,
//!                TaskletId};
//!
//! /// Waits for the next bytes on the plugin's socket.
//! struct ReadSome;
//! impl Op for ReadSome {
//!     type Output = io::Result<Vec<u8>>;
//! }
//!
//! #[derive(Debug)]
//! struct Socket {
//!     stream: UnixStream,
//!     registry: Option<Registry>,
//!     waiter: Option<TaskletId>,
//! }
//!
//! impl Socket {
//!     fn try_read(&mut self) -> Option<io::Result<Vec<u8>>> {
//!         let mut buf = [0u8; 64];
//!         match self.stream.read(&mut buf) {
//!             Ok(n) => Some(Ok(buf[..n].to_vec())),
//!             Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
//!             Err(e) => Some(Err(e)),
//!         }
//!     }
//! }
//!
//! impl Plugin for Socket {
//!     fn register(router: &mut Router<Self>) {
//!         router.op::<ReadSome>();
//!     }
//!     fn poll(&mut self, cx: &mut Context<'_>, events: Events<'_>) -> io::Result<()> {
//!         if events.is_empty() {
//!             return Ok(());
//!         }
//!         if let Some(id) = self.waiter {
//!             if let Some(result) = self.try_read() {
//!                 self.waiter = None;
//!                 let _ = cx.complete::<ReadSome>(id, result);
//!             }
//!         }
//!         Ok(())
//!     }
//! }
//!
//! impl Drop for Socket {
//!     fn drop(&mut self) {
//!         if let Some(registry) = &self.registry {
//!             let _ = registry.deregister(self.stream.as_fd());
//!         }
//!     }
//! }
//!
//! impl Serves<ReadSome> for Socket {
//!     fn submit(&mut self, _: ReadSome, from: TaskletId, cx: &mut Context<'_>)
//!         -> Poll<io::Result<Vec<u8>>>
//!     {
//!         if let Some(result) = self.try_read() {
//!             return Poll::Ready(result); // try first; wait only after WouldBlock
//!         }
//!         if self.registry.is_none() {
//!             let registry = cx.registry();
//!             // SAFETY: the stream is deregistered in `Drop`, before it closes.
//!             let added = unsafe { registry.register(self.stream.as_fd(), 0, Interest::READABLE) };
//!             if let Err(e) = added {
//!                 return Poll::Ready(Err(e));
//!             }
//!             self.registry = Some(registry);
//!         }
//!         self.waiter = Some(from);
//!         Poll::Pending
//!     }
//! }
//!
//! let (ours, mut theirs) = UnixStream::pair()?;
//! ours.set_nonblocking(true)?;
//! let mut schedule = Schedule::new();
//! schedule.add_plugin(Socket { stream: ours, registry: None, waiter: None })?;
//! schedule.spawn(|h| assert_eq!(h.yield_op(ReadSome).unwrap(), b"ping"))?;
//! let writer = std::thread::spawn(move || theirs.write_all(b"ping"));
//! schedule.run()?; // blocks in the reactor until the socket is readable
//! writer.join().unwrap()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::cell::Cell;
use std::fmt;
use std::io;
use std::os::fd::BorrowedFd;
use std::rc::Rc;
use std::time::Duration;

#[cfg(all(target_os = "linux", not(feature = "portable-poller")))]
#[path = "reactor/epoll.rs"]
mod sys;
#[cfg(any(not(target_os = "linux"), feature = "portable-poller"))]
#[path = "reactor/portable.rs"]
mod sys;

pub(crate) use sys::Notifier;

/// The key the notifier's eventfd is registered with (never a plugin's: see [`pack`]).
const NOTIFY_KEY: u64 = u64::MAX;
/// Bits of a packed key that hold the plugin's own key; the plugin's index (below 64) sits in
/// the byte above them, so that a packed key still fits a `usize`.
const KEY_BITS: u32 = usize::BITS - 8;
/// The largest key a plugin may register a source with.
pub const MAX_KEY: usize = (1 << KEY_BITS) - 1;

fn pack(plugin: usize, key: usize) -> u64 {
    ((plugin as u64) << KEY_BITS) | key as u64
}

/// What a source is watched for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interest {
    pub(crate) readable: bool,
    pub(crate) writable: bool,
}

impl Interest {
    /// Readable.
    pub const READABLE: Interest = Interest {
        readable: true,
        writable: false,
    };
    /// Writable.
    pub const WRITABLE: Interest = Interest {
        readable: false,
        writable: true,
    };
    /// Readable and writable.
    pub const BOTH: Interest = Interest {
        readable: true,
        writable: true,
    };

    /// Whether readiness to read is watched.
    pub fn is_readable(self) -> bool {
        self.readable
    }

    /// Whether readiness to write is watched.
    pub fn is_writable(self) -> bool {
        self.writable
    }
}

/// Readiness of one source, as the poller reported it.
///
/// Readiness is a hint, edge-triggered: after an event, do I/O until the system call says
/// `WouldBlock` (or a short read or write shows the kernel's buffer drained or full), and
/// expect the next event only after that. Events may be spurious.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub(crate) key: usize,
    pub(crate) readable: bool,
    pub(crate) writable: bool,
    pub(crate) read_closed: bool,
    pub(crate) error: bool,
}

impl Event {
    /// An event made by hand, for a source that is not a descriptor: a simulated socket
    /// (fibra-sim's network), or a plugin's own tests.
    pub fn new(key: usize, readable: bool, writable: bool, read_closed: bool, error: bool) -> Self {
        Event {
            key,
            readable,
            writable,
            read_closed,
            error,
        }
    }

    /// The key the source was registered with.
    pub fn key(&self) -> usize {
        self.key
    }

    /// The source may be read without blocking.
    pub fn is_readable(&self) -> bool {
        self.readable
    }

    /// The source may be written without blocking.
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// The peer ended its output (or hung up): reads will drain what is left, then return 0.
    /// Only a hint, and only on backends where [`Registry::reports_read_closed`] is true; a
    /// read returning 0 stays the truth.
    pub fn is_read_closed(&self) -> bool {
        self.read_closed
    }

    /// The source has an error pending (read it with the next system call, or `SO_ERROR`).
    pub fn is_error(&self) -> bool {
        self.error
    }
}

/// The events of one round that belong to one plugin; given to
/// [`Plugin::poll`](crate::Plugin::poll).
#[derive(Clone, Copy)]
pub struct Events<'a> {
    all: &'a [Event],
    plugin: usize,
}

impl fmt::Debug for Events<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> Events<'a> {
    pub(crate) fn new(all: &'a [Event], plugin: usize) -> Self {
        Events { all, plugin }
    }

    /// No events.
    pub fn empty() -> Events<'static> {
        Events {
            all: &[],
            plugin: 0,
        }
    }

    /// Whether no source of this plugin is ready. Cheap when the round had no events.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// This plugin's events, with the keys it registered its sources with.
    pub fn iter(&self) -> impl Iterator<Item = Event> + 'a {
        let plugin = self.plugin as u64;
        self.all.iter().filter_map(move |e| {
            let packed = e.key as u64;
            (packed >> KEY_BITS == plugin).then_some(Event {
                key: (packed & MAX_KEY as u64) as usize,
                ..*e
            })
        })
    }
}

/// The poller and how many sources it watches; shared by the schedule and every registry.
#[derive(Debug)]
pub(crate) struct Poller {
    sys: sys::Poller,
    sources: Cell<usize>,
}

/// Registers a plugin's file descriptors with its schedule's poller. Obtained from
/// [`Context::registry`](crate::Context::registry); cheap to clone (a reference count), and
/// may be kept to deregister sources outside the plugin's calls (a handle's `Drop`).
#[derive(Clone)]
pub struct Registry {
    poller: Rc<Poller>,
    plugin: usize,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("plugin", &self.plugin)
            .field("sources", &self.poller.sources.get())
            .finish()
    }
}

fn check_key(key: usize) -> io::Result<()> {
    if key > MAX_KEY {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a source's key must be at most {MAX_KEY:#x}; got {key:#x}"),
        ));
    }
    Ok(())
}

impl Registry {
    /// Watches `fd`, edge-triggered, for `interest`; its events reach this plugin's
    /// [`poll`](crate::Plugin::poll) with `key`.
    ///
    /// # Safety
    ///
    /// `fd` must stay open until it is [deregistered](Self::deregister) (the `polling`
    /// backend's contract: some systems keep no link between a closed descriptor and its
    /// registration).
    ///
    /// # Errors
    ///
    /// `InvalidInput` when `key` is above [`MAX_KEY`], and the poller's own errors (the
    /// descriptor is registered already, or is of a kind that cannot be polled).
    pub unsafe fn register(
        &self,
        fd: BorrowedFd<'_>,
        key: usize,
        interest: Interest,
    ) -> io::Result<()> {
        check_key(key)?;
        self.poller.sys.add(fd, pack(self.plugin, key), interest)?;
        self.poller.sources.set(self.poller.sources.get() + 1);
        Ok(())
    }

    /// Changes the key or interest of a registered `fd`.
    ///
    /// # Errors
    ///
    /// As [`register`](Self::register); `fd` must be registered.
    pub fn reregister(&self, fd: BorrowedFd<'_>, key: usize, interest: Interest) -> io::Result<()> {
        check_key(key)?;
        self.poller.sys.modify(fd, pack(self.plugin, key), interest)
    }

    /// Stops watching `fd`. Call it before closing `fd`.
    ///
    /// # Errors
    ///
    /// The poller's errors (`fd` was not registered).
    pub fn deregister(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        let result = self.poller.sys.delete(fd);
        self.poller
            .sources
            .set(self.poller.sources.get().saturating_sub(1));
        result
    }

    /// Whether this backend reports a peer's end of output ([`Event::is_read_closed`]). When
    /// it does not, a plugin must read until `WouldBlock` to see an end of stream that came
    /// in the same edge as the last bytes.
    pub fn reports_read_closed(&self) -> bool {
        sys::REPORTS_READ_CLOSED
    }
}

/// The schedule's side of the reactor: the poller and the buffers of its waits.
#[derive(Debug)]
pub(crate) struct Reactor {
    poller: Rc<Poller>,
    raw: sys::RawEvents,
}

impl Reactor {
    pub(crate) fn new() -> io::Result<Reactor> {
        Ok(Reactor {
            poller: Rc::new(Poller {
                sys: sys::Poller::new()?,
                sources: Cell::new(0),
            }),
            raw: sys::RawEvents::new(),
        })
    }

    pub(crate) fn registry(&self, plugin: usize) -> Registry {
        Registry {
            poller: Rc::clone(&self.poller),
            plugin,
        }
    }

    pub(crate) fn notifier(&self) -> std::sync::Arc<Notifier> {
        self.poller.sys.notifier()
    }

    /// Sources registered by all plugins.
    pub(crate) fn sources(&self) -> usize {
        self.poller.sources.get()
    }

    /// Waits up to `timeout` for readiness or a notification, and puts the events of every
    /// plugin (keys packed with the plugin's index) into `events`.
    pub(crate) fn wait(
        &mut self,
        events: &mut Vec<Event>,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        events.clear();
        self.poller.sys.wait(&mut self.raw, events, timeout)
    }
}
