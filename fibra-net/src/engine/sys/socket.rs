//! Sockets: setting them up (socket2), accepting, connecting, reading, writing, closing,
//! and what each system call's errors mean for the caller.

use std::io::{self, IoSlice, Read};
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::api::error::NetError;

/// Input read and thrown away before closing, so the close is a FIN and not a RST.
const CLOSE_DRAIN: usize = 64 * 1024;

fn stream(addr: SocketAddr) -> io::Result<Socket> {
    Socket::new(
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
) -> Result<(Socket, SocketAddr), NetError> {
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
        match listener.accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) {
            Ok((socket, addr)) => return Accepted::Conn(socket, addr.as_socket()),
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

/// A socket connecting to `addr`: `(socket, true)` while the handshake is in progress.
pub(crate) fn connect(addr: SocketAddr) -> Result<(Socket, bool), NetError> {
    let socket = stream(addr)?;
    match socket.connect(&SockAddr::from(addr)) {
        Ok(()) => Ok((socket, false)),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok((socket, true)),
        Err(e) => Err(connect_error(e, addr)),
    }
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
    match socket.take_error() {
        Ok(None) => match socket.peer_addr() {
            Ok(_) => Handshake::Done,
            Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Handshake::NotYet,
            Err(e) => Handshake::Failed(e),
        },
        Ok(Some(e)) | Err(e) => Handshake::Failed(e),
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
    loop {
        match (&*socket).read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// One write (`send`) of `bytes`, without `SIGPIPE`.
pub(crate) fn send(socket: &Socket, bytes: &[u8]) -> io::Result<usize> {
    socket.send_with_flags(bytes, libc::MSG_NOSIGNAL)
}

/// One gathering write (`sendmsg`) of `slices`, without `SIGPIPE`.
pub(crate) fn write(socket: &Socket, slices: &[IoSlice<'_>]) -> io::Result<usize> {
    socket.send_vectored_with_flags(slices, libc::MSG_NOSIGNAL)
}

/// Sends FIN, then reads and drops what the peer sent (within a bound): unread input would
/// turn the close into a reset that can destroy what we sent before the peer reads it.
pub(crate) fn shut_down(socket: &Socket) {
    let _ = socket.shutdown(std::net::Shutdown::Write);
    let mut drained = 0;
    let mut scratch = [0u8; 4096];
    while drained < CLOSE_DRAIN {
        match (&*socket).read(&mut scratch) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

/// Makes the close send a RST and drop unsent data (a zero linger).
pub(crate) fn reset_on_close(socket: &Socket) {
    let _ = socket.set_linger(Some(Duration::ZERO));
}
