//! The tokio peers' listener: bound as fibra listens, with the kernel's largest backlog
//! (`net.core.somaxconn`, as Go listens; 4096 where it cannot be read) instead of tokio's
//! 1,024, so that a burst of logins meets the same accept queue on both sides.

use std::io;
use tokio::net::{TcpListener, TcpSocket};

/// The kernel's cap on a listen backlog, or 4096.
fn somaxconn() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .filter(|&n: &u32| n > 0)
        .unwrap_or(4096)
}

/// Listens on `addr` (`HOST:PORT`, every address it resolves to tried in order) with
/// `SO_REUSEADDR` and the kernel's largest backlog.
pub(crate) async fn bind(addr: &str) -> io::Result<TcpListener> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let socket = if a.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(a).and_then(|()| socket.listen(somaxconn())) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{addr}: no address to listen on"),
        )
    }))
}
