//! The simulation's side of the system calls (`sim` feature): the [`SimNet`] a simulator
//! (fibra-sim) implements, and the socket handle the table holds for one of its sockets.
//!
//! A network plugin made with [`NetPlugin::simulated`](crate::NetPlugin::simulated) makes
//! every system call of its table through a `SimNet` instead of the kernel: the table itself
//! (buffers, readiness, timers, loss, groups) is the real code. Readiness comes back as
//! [`Event`]s the plugin takes from [`SimNet::next_event`] in each poll, with the keys given
//! to [`SimNet::watch`], edge-triggered as epoll's: an event after each change, reads and
//! writes until they say `WouldBlock` (or come up short).

use std::fmt;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use fibra_rt::Event;

/// A simulated socket's number, unique within its `SimNet`.
pub type SimFd = u64;

/// A network in memory, seen from one host: the system calls of a simulated network plugin.
///
/// Errors are `io::Error`s with the raw OS codes a kernel would give (`ECONNREFUSED`,
/// `ECONNRESET`, `EPIPE`, `EMFILE`, `ETIMEDOUT`...), or `WouldBlock`: the table classifies
/// them as it classifies the kernel's.
pub trait SimNet: fmt::Debug {
    /// `socket` + `bind` + `listen`: a listener on `addr` and the address it got.
    fn listen(&self, addr: SocketAddr, backlog: i32) -> io::Result<(SimFd, SocketAddr)>;
    /// `accept`: a connection waiting on `listener`, and its peer.
    fn accept(&self, listener: SimFd) -> io::Result<(SimFd, SocketAddr)>;
    /// `socket` + `connect`, non-blocking: a socket whose handshake is under way (its
    /// outcome comes as a writable event).
    fn connect(&self, addr: SocketAddr) -> io::Result<SimFd>;
    /// `SO_ERROR` then `getpeername`: `Ok(true)` connected, `Ok(false)` not yet.
    fn handshake(&self, fd: SimFd) -> io::Result<bool>;
    /// `read`: bytes, 0 at the peer's end of output, or an error.
    fn read(&self, fd: SimFd, buf: &mut [u8]) -> io::Result<usize>;
    /// `sendmsg`: how many bytes of `bufs` were taken.
    fn write(&self, fd: SimFd, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    /// `shutdown(SHUT_WR)`: a FIN after what was written.
    fn shutdown_write(&self, fd: SimFd);
    /// `SO_LINGER` zero: the close will be a reset.
    fn set_linger_zero(&self, fd: SimFd);
    /// `SO_KEEPALIVE` with `idle` before the first probe.
    fn set_keepalive(&self, fd: SimFd, idle: Duration);
    /// `close`.
    fn close(&self, fd: SimFd);
    /// `getsockname`.
    fn local_addr(&self, fd: SimFd) -> Option<SocketAddr>;
    /// Registers `fd` for readiness with `key` (both directions, edge-triggered); the current
    /// readiness is reported at once, as epoll does.
    fn watch(&self, fd: SimFd, key: usize);
    /// The next readiness event for this host's plugin, if any.
    fn next_event(&self) -> Option<Event>;
}

/// A socket of a [`SimNet`]; closed when dropped, as a descriptor is.
pub(crate) struct SimSocket {
    pub(crate) fd: SimFd,
    pub(crate) net: Rc<dyn SimNet>,
}

impl fmt::Debug for SimSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SimSocket({})", self.fd)
    }
}

impl Drop for SimSocket {
    fn drop(&mut self) {
        self.net.close(self.fd);
    }
}
