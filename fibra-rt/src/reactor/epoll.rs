//! The Linux backend: epoll, called directly.
//!
//! One wait per round (`epoll_wait`; `epoll_pwait2` when the timeout has a sub-millisecond
//! part and the kernel has it, Linux 5.11+), sources registered once edge-triggered with
//! `EPOLLRDHUP` (so a peer's FIN is reported even when it came in the same edge as the last
//! bytes), and an `eventfd` for wake-ups from other threads.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::{Event, Interest, NOTIFY_KEY};

/// Whether this backend reports a peer's end of output ([`Event::read_closed`]).
pub(crate) const REPORTS_READ_CLOSED: bool = true;

/// Events taken per wait; more wait for the next round.
const EVENTS_PER_WAIT: usize = 1024;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// An epoll instance and the eventfd that wakes it.
#[derive(Debug)]
pub(crate) struct Poller {
    epoll: OwnedFd,
    notify: std::sync::Arc<Notifier>,
    /// `epoll_pwait2` may exist (cleared at its first `ENOSYS`).
    pwait2: Cell<bool>,
}

/// The buffer the kernel writes events into, reused by every wait.
#[derive(Debug)]
pub(crate) struct RawEvents(Vec<libc::epoll_event>);

impl RawEvents {
    pub(crate) fn new() -> RawEvents {
        RawEvents(Vec::with_capacity(EVENTS_PER_WAIT))
    }
}

/// Wakes a [`Poller`] from any thread.
#[derive(Debug)]
pub(crate) struct Notifier {
    eventfd: OwnedFd,
}

impl Notifier {
    pub(crate) fn notify(&self) -> io::Result<()> {
        let one: u64 = 1;
        // SAFETY: writes 8 initialized bytes to an eventfd this notifier owns.
        let r = unsafe { libc::write(self.eventfd.as_raw_fd(), (&one as *const u64).cast(), 8) };
        if r == 8 {
            return Ok(());
        }
        match io::Error::last_os_error() {
            // The counter is full: the poller has a wake-up pending anyway.
            e if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            e => Err(e),
        }
    }
}

fn epoll_events(interest: Interest) -> u32 {
    let mut events = (libc::EPOLLET | libc::EPOLLRDHUP) as u32;
    if interest.readable {
        events |= libc::EPOLLIN as u32;
    }
    if interest.writable {
        events |= libc::EPOLLOUT as u32;
    }
    events
}

impl Poller {
    pub(crate) fn new() -> io::Result<Poller> {
        // SAFETY: epoll_create1 has no pointer arguments.
        let epoll = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: epoll_create1 returned a new descriptor that nothing else owns.
        let epoll = unsafe { OwnedFd::from_raw_fd(epoll) };
        // SAFETY: eventfd has no pointer arguments.
        let eventfd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        // SAFETY: eventfd returned a new descriptor that nothing else owns.
        let eventfd = unsafe { OwnedFd::from_raw_fd(eventfd) };
        let poller = Poller {
            epoll,
            notify: std::sync::Arc::new(Notifier { eventfd }),
            pwait2: Cell::new(true),
        };
        poller.ctl(
            libc::EPOLL_CTL_ADD,
            poller.notify.eventfd.as_raw_fd(),
            NOTIFY_KEY,
            Interest::READABLE,
        )?;
        Ok(poller)
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, data: u64, interest: Interest) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: epoll_events(interest),
            u64: data,
        };
        // SAFETY: `event` is a valid epoll_event; the kernel checks the descriptors.
        cvt(unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut event) })?;
        Ok(())
    }

    pub(crate) fn add(&self, fd: BorrowedFd<'_>, data: u64, interest: Interest) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd.as_raw_fd(), data, interest)
    }

    pub(crate) fn modify(
        &self,
        fd: BorrowedFd<'_>,
        data: u64,
        interest: Interest,
    ) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd.as_raw_fd(), data, interest)
    }

    pub(crate) fn delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        let fd = fd.as_raw_fd();
        // SAFETY: a null event is allowed for EPOLL_CTL_DEL since Linux 2.6.9.
        let r = unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            )
        };
        cvt(r).map(drop)
    }

    pub(crate) fn notifier(&self) -> std::sync::Arc<Notifier> {
        std::sync::Arc::clone(&self.notify)
    }

    /// Waits up to `timeout` (`None`: no limit) and appends what became ready to `events`; a
    /// notification empties the eventfd and is not an event (the remote's flag says it).
    pub(crate) fn wait(
        &self,
        raw: &mut RawEvents,
        events: &mut Vec<Event>,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        let buf = &mut raw.0;
        buf.clear();
        let r = match timeout {
            Some(t) if t.subsec_nanos() % 1_000_000 != 0 && self.pwait2.get() => {
                match self.pwait2(buf, t) {
                    Some(r) => r,
                    None => self.epoll_wait(buf, Some(t)),
                }
            }
            _ => self.epoll_wait(buf, timeout),
        };
        let n = match cvt(r) {
            Ok(n) => n as usize,
            // A signal cut the wait short: the round goes on with no events.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        };
        // SAFETY: the kernel initialized the first `n` events.
        unsafe { buf.set_len(n) };
        let mut notified = false;
        for raw in buf.iter() {
            let (bits, key) = (raw.events, raw.u64);
            if key == NOTIFY_KEY {
                notified = true;
                continue;
            }
            let hup = bits & (libc::EPOLLHUP as u32) != 0;
            let error = bits & (libc::EPOLLERR as u32) != 0;
            events.push(Event {
                key: key as usize,
                readable: bits & (libc::EPOLLIN as u32) != 0 || hup || error,
                writable: bits & (libc::EPOLLOUT as u32) != 0 || hup || error,
                read_closed: bits & (libc::EPOLLRDHUP as u32) != 0 || hup,
                error,
            });
        }
        if notified {
            self.clear_notify();
        }
        Ok(())
    }

    /// `epoll_wait`, with the timeout rounded up to a whole millisecond: a wait that ends
    /// before its deadline would only wait again.
    fn epoll_wait(&self, buf: &mut Vec<libc::epoll_event>, timeout: Option<Duration>) -> i32 {
        let ms = match timeout {
            None => -1,
            Some(t) => {
                let ms = t.as_nanos().div_ceil(1_000_000);
                libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
            }
        };
        // SAFETY: `buf` has room for `capacity` events; the kernel writes at most that many
        // and returns how many it wrote.
        unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.capacity() as libc::c_int,
                ms,
            )
        }
    }

    /// `epoll_pwait2`, to the nanosecond; `None` when the kernel does not have it.
    fn pwait2(&self, buf: &mut Vec<libc::epoll_event>, timeout: Duration) -> Option<i32> {
        let spec = libc::timespec {
            tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: as in `epoll_wait`; `spec` is a valid timespec on this frame, and a null
        // signal mask (size 0) leaves the thread's mask alone.
        let r = unsafe {
            libc::syscall(
                libc::SYS_epoll_pwait2,
                self.epoll.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.capacity() as libc::c_int,
                &spec as *const libc::timespec,
                std::ptr::null::<libc::sigset_t>(),
                0usize,
            )
        };
        if r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
            self.pwait2.set(false);
            return None;
        }
        Some(r as i32)
    }

    /// Empties the eventfd's counter, so that the next notify is a new edge of a clean state.
    fn clear_notify(&self) {
        let mut count = 0u64;
        // SAFETY: reads 8 bytes into a u64 on this frame.
        let _ = unsafe {
            libc::read(
                self.notify.eventfd.as_raw_fd(),
                (&mut count as *mut u64).cast(),
                8,
            )
        };
    }
}
