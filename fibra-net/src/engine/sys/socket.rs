//! Sockets: setting them up (socket2), accepting, connecting, reading, writing, closing,
//! and what each system call's errors mean for the caller.

// Without the `sim` feature a `Socket` has one variant, and its matches destructure it.
#![cfg_attr(not(feature = "sim"), allow(clippy::infallible_destructuring_match))]

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket as OsSocket, Type};

use super::Socket;
use crate::api::error::NetError;

/// Input read and thrown away before closing, so the close is a FIN and not a RST.
const CLOSE_DRAIN: usize = 64 * 1024;

fn stream(addr: SocketAddr) -> io::Result<OsSocket> {
    OsSocket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )
}

/// A non-blocking listening socket on `addr`, and the address it got (the port the system
/// chose, for port 0).
pub(crate) fn listener(
    addr: SocketAddr,
    backlog: i32,
    reuse_port: bool,
) -> Result<(OsSocket, SocketAddr), NetError> {
    let bind = |e: io::Error| NetError::Bind { addr, source: e };
    let socket = stream(addr).map_err(bind)?;
    socket.set_reuse_address(true).map_err(bind)?;
    if reuse_port {
        socket.set_reuse_port(true).map_err(bind)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true).map_err(bind)?;
    }
    socket.bind(&addr.into()).map_err(bind)?;
    socket.listen(backlog).map_err(bind)?;
    let local = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .unwrap_or(addr);
    Ok((socket, local))
}

/// What one `accept` gave.
pub(crate) enum Accepted {
    /// A connection, non-blocking, and its peer.
    Conn(Socket, Option<SocketAddr>),
    /// None waiting.
    WouldBlock,
    /// The process or system is out of descriptors (or buffers): pause accepting.
    OutOfDescriptors(io::Error),
    /// Another error: the acceptor is told.
    Failed(io::Error),
}

/// Accepts one connection. Connections the peer gave up on before we took them are skipped.
pub(crate) fn accept(listener: &Socket) -> Accepted {
    loop {
        let accepted = match listener {
            Socket::Os(listener) => listener
                .accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
                .map(|(socket, addr)| (Socket::Os(socket), addr.as_socket())),
            #[cfg(feature = "sim")]
            Socket::Sim(l) => l.net.accept(l.fd).map(|(fd, addr)| {
                let net = std::rc::Rc::clone(&l.net);
                (Socket::Sim(super::sim::SimSocket { fd, net }), Some(addr))
            }),
        };
        match accepted {
            Ok((socket, addr)) => return Accepted::Conn(socket, addr),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Accepted::WouldBlock,
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                ) =>
            {
                return Accepted::OutOfDescriptors(e)
            }
            // The peer gave up before we accepted, or a signal: try the next one.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ECONNABORTED | libc::EINTR | libc::EPROTO | libc::EPERM)
                ) => {}
            Err(e) => return Accepted::Failed(e),
        }
    }
}

/// A socket connecting to `addr` (from `local`, if given): `(socket, true)` while the
/// handshake is in progress.
pub(crate) fn connect(
    addr: SocketAddr,
    local: Option<SocketAddr>,
) -> Result<(OsSocket, bool), NetError> {
    let socket = stream(addr)?;
    if let Some(local) = local {
        if local.port() == 0 {
            bind_without_port(&socket);
        }
        socket
            .bind(&SockAddr::from(local))
            .map_err(|e| NetError::BindSource {
                addr: local,
                source: e,
            })?;
    }
    match socket.connect(&SockAddr::from(addr)) {
        Ok(()) => Ok((socket, false)),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok((socket, true)),
        Err(e) => Err(connect_error(e, addr)),
    }
}

/// Lets `connect` pick the port of a socket bound to an address alone (Linux's
/// `IP_BIND_ADDRESS_NO_PORT`): the port is then chosen for the whole address pair (~28,000
/// per server address) instead of the source address alone. Elsewhere, nothing.
fn bind_without_port(socket: &OsSocket) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use std::os::fd::AsRawFd;
        let on: libc::c_int = 1;
        // SAFETY: the descriptor is the socket's, open for this call; the option value is a
        // c_int that outlives the call, with its size given.
        let set = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if set != 0 {
            log::debug!(target: "fibra_net", "IP_BIND_ADDRESS_NO_PORT: {}", io::Error::last_os_error());
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = socket;
}

/// How a connecting socket that became ready stands.
pub(crate) enum Handshake {
    Done,
    /// Not connected yet (a spurious wake-up): keep waiting.
    NotYet,
    Failed(io::Error),
}

/// `SO_ERROR`, then whether the socket has a peer.
pub(crate) fn handshake(socket: &Socket) -> Handshake {
    let socket = match socket {
        Socket::Os(socket) => socket,
        #[cfg(feature = "sim")]
        Socket::Sim(s) => {
            return match s.net.handshake(s.fd) {
                Ok(true) => Handshake::Done,
                Ok(false) => Handshake::NotYet,
                Err(e) => Handshake::Failed(e),
            }
        }
    };
    match socket.take_error() {
        Ok(None) => match socket.peer_addr() {
            Ok(_) => Handshake::Done,
            Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Handshake::NotYet,
            Err(e) => Handshake::Failed(e),
        },
        Ok(Some(e)) | Err(e) => Handshake::Failed(e),
    }
}

/// The socket's pending error (`SO_ERROR`, which it clears), if any: how a connection that
/// is no longer read learns of the peer's reset.
pub(crate) fn take_error(socket: &Socket) -> Option<io::Error> {
    match socket {
        Socket::Os(socket) => socket.take_error().ok().flatten(),
        #[cfg(feature = "sim")]
        Socket::Sim(s) => s.net.handshake(s.fd).err(),
    }
}

/// A failed connect, as the caller can act on it.
pub(crate) fn connect_error(e: io::Error, addr: SocketAddr) -> NetError {
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => NetError::Refused { addr },
        Some(libc::ENETUNREACH | libc::EHOSTUNREACH) => NetError::Unreachable { addr },
        Some(libc::ETIMEDOUT) => NetError::TimedOut,
        _ => NetError::Io(e),
    }
}

/// One `read`, retried on `EINTR`.
pub(crate) fn read(socket: &Socket, buf: &mut [u8]) -> io::Result<usize> {
    let socket = match socket {
        Socket::Os(socket) => socket,
        #[cfg(feature = "sim")]
        Socket::Sim(s) => return s.net.read(s.fd, buf),
    };
    loop {
        match recv(socket, buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// One write (`send`) of `bytes`, without `SIGPIPE`.
pub(crate) fn send(socket: &Socket, bytes: &[u8]) -> io::Result<usize> {
    match socket {
        Socket::Os(socket) => send_os(socket, bytes),
        #[cfg(feature = "sim")]
        Socket::Sim(s) => s.net.write(s.fd, &[IoSlice::new(bytes)]),
    }
}

// The per-message system calls, made straight (Linux). glibc's `recv`, `send` and `sendmsg` are
// cancellation points: in a process with more than one thread (a schedule's stall watchdog
// is one) each call turns asynchronous cancellation on and off around the system call, about
// 30 instructions each way, twice per echoed message. fibra cancels no thread, so the
// system calls are made without the wrappers (`syscall`), as glibc does anyway in a process
// with a single thread. Elsewhere, socket2's calls.

/// One `recv` (`recvfrom` without an address) into `buf`.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn recv(socket: &OsSocket, buf: &mut [u8]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is the socket's, open for this call (`socket` is borrowed);
    // `buf` is valid for writes of `buf.len()` bytes for the call; the address and its length
    // are null, which `recvfrom` takes as "no address wanted". Every argument is passed as a
    // `c_long`, as `syscall` reads them.
    let n = unsafe {
        libc::syscall(
            libc::SYS_recvfrom,
            socket.as_raw_fd() as libc::c_long,
            buf.as_mut_ptr() as libc::c_long,
            buf.len() as libc::c_long,
            0 as libc::c_long,
            0 as libc::c_long,
            0 as libc::c_long,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn recv(socket: &OsSocket, buf: &mut [u8]) -> io::Result<usize> {
    use std::io::Read;
    (&*socket).read(buf)
}

/// One `send` (`sendto` without an address) of `bytes`, without `SIGPIPE`.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn send_os(socket: &OsSocket, bytes: &[u8]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is the socket's, open for this call (`socket` is borrowed);
    // `bytes` is valid for reads of `bytes.len()` bytes for the call; no address (null, 0),
    // as on a connected socket. Every argument is passed as a `c_long`, as `syscall` reads
    // them.
    let n = unsafe {
        libc::syscall(
            libc::SYS_sendto,
            socket.as_raw_fd() as libc::c_long,
            bytes.as_ptr() as libc::c_long,
            bytes.len() as libc::c_long,
            libc::MSG_NOSIGNAL as libc::c_long,
            0 as libc::c_long,
            0 as libc::c_long,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn send_os(socket: &OsSocket, bytes: &[u8]) -> io::Result<usize> {
    socket.send_with_flags(bytes, libc::MSG_NOSIGNAL)
}

/// One gathering `sendmsg` of `slices` (no address), without `SIGPIPE`.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn send_vectored_os(socket: &OsSocket, slices: &[IoSlice<'_>]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: `msghdr` is plain data; all zeroes is a valid one (no address, no control).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // `IoSlice` is ABI-compatible with `iovec` on Unix (std's guarantee); `sendmsg` only reads
    // through the pointer.
    msg.msg_iov = slices.as_ptr().cast_mut().cast::<libc::iovec>();
    msg.msg_iovlen = slices.len() as _;
    // SAFETY: the descriptor is the socket's, open for this call (`socket` is borrowed);
    // `msg` and the slices it points to are valid for reads for the call. Every argument is
    // passed as a `c_long`, as `syscall` reads them.
    let n = unsafe {
        libc::syscall(
            libc::SYS_sendmsg,
            socket.as_raw_fd() as libc::c_long,
            (&msg as *const libc::msghdr) as libc::c_long,
            libc::MSG_NOSIGNAL as libc::c_long,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn send_vectored_os(socket: &OsSocket, slices: &[IoSlice<'_>]) -> io::Result<usize> {
    socket.send_vectored_with_flags(slices, libc::MSG_NOSIGNAL)
}

/// One gathering write (`sendmsg`) of `slices`, without `SIGPIPE`.
pub(crate) fn write(socket: &Socket, slices: &[IoSlice<'_>]) -> io::Result<usize> {
    match socket {
        Socket::Os(socket) => send_vectored_os(socket, slices),
        #[cfg(feature = "sim")]
        Socket::Sim(s) => s.net.write(s.fd, slices),
    }
}

/// Sends FIN after what was written; the socket still reads.
pub(crate) fn shutdown_write(socket: &Socket) {
    match socket {
        Socket::Os(socket) => {
            let _ = socket.shutdown(std::net::Shutdown::Write);
        }
        #[cfg(feature = "sim")]
        Socket::Sim(s) => s.net.shutdown_write(s.fd),
    }
}

/// Sends FIN, then reads and drops what the peer sent (within a bound): unread input would
/// turn the close into a reset that can destroy what we sent before the peer reads it.
pub(crate) fn shut_down(socket: &Socket) {
    shutdown_write(socket);
    let mut drained = 0;
    let mut scratch = [0u8; 4096];
    while drained < CLOSE_DRAIN {
        match read(socket, &mut scratch) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

/// Makes the close send a RST and drop unsent data (a zero linger).
pub(crate) fn reset_on_close(socket: &Socket) {
    match socket {
        Socket::Os(socket) => {
            let _ = socket.set_linger(Some(Duration::ZERO));
        }
        #[cfg(feature = "sim")]
        Socket::Sim(s) => s.net.set_linger_zero(s.fd),
    }
}

/// `TCP_NODELAY` on (a simulated socket has no Nagle to turn off).
pub(crate) fn set_nodelay(socket: &Socket) -> io::Result<()> {
    match socket {
        Socket::Os(socket) => socket.set_tcp_nodelay(true),
        #[cfg(feature = "sim")]
        Socket::Sim(_) => Ok(()),
    }
}

/// TCP keepalive after `idle` (probes every `idle / 4`, at least 1 s, 4 of them).
pub(crate) fn set_keepalive(socket: &Socket, idle: Duration) -> io::Result<()> {
    match socket {
        Socket::Os(socket) => {
            let keepalive = socket2::TcpKeepalive::new()
                .with_time(idle)
                .with_interval((idle / 4).max(Duration::from_secs(1)))
                .with_retries(4);
            socket.set_tcp_keepalive(&keepalive)
        }
        #[cfg(feature = "sim")]
        Socket::Sim(s) => {
            s.net.set_keepalive(s.fd, idle);
            Ok(())
        }
    }
}

/// The socket's own address.
pub(crate) fn local_addr(socket: &Socket) -> Option<SocketAddr> {
    match socket {
        Socket::Os(socket) => socket.local_addr().ok()?.as_socket(),
        #[cfg(feature = "sim")]
        Socket::Sim(s) => s.net.local_addr(s.fd),
    }
}

/// Watches `socket` with `registry` (both directions, edge-triggered) under `key`; a
/// simulated socket is watched by its network.
pub(crate) fn register(
    socket: &Socket,
    registry: &fibra_rt::Registry,
    key: usize,
) -> io::Result<()> {
    match socket {
        Socket::Os(socket) => {
            use std::os::fd::AsFd;
            // SAFETY: the table deregisters every registered socket before it is dropped:
            // `Table::close_socket` is the only place a registered socket is dropped, and
            // `Drop for Table` deregisters the ones still open.
            unsafe { registry.register(socket.as_fd(), key, fibra_rt::Interest::BOTH) }
        }
        #[cfg(feature = "sim")]
        Socket::Sim(s) => {
            s.net.watch(s.fd, key);
            Ok(())
        }
    }
}

/// Stops watching `socket` (before it closes).
pub(crate) fn deregister(socket: &Socket, registry: &fibra_rt::Registry) -> io::Result<()> {
    match socket {
        Socket::Os(socket) => {
            use std::os::fd::AsFd;
            registry.deregister(socket.as_fd())
        }
        #[cfg(feature = "sim")]
        Socket::Sim(_) => Ok(()),
    }
}
