//! `HostPort`: one host's view of the network, the [`SimNet`] its network plugin calls;
//! every call is traced with its answer.

use std::cell::RefCell;
use std::fmt;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::rc::Rc;

use fibra_net::sim::{SimFd, SimNet};
use fibra_rt::Event;

use crate::net::Net;
use crate::trace::What;

/// One life of one host (a restart makes a new one; the old one's calls do nothing).
pub(crate) struct HostPort {
    pub(crate) net: Rc<RefCell<Net>>,
    pub(crate) host: usize,
    pub(crate) life: u32,
}

impl fmt::Debug for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HostPort(h{} life {})", self.host, self.life)
    }
}

fn code<T>(r: &io::Result<T>) -> Result<T, i32>
where
    T: Copy,
{
    match r {
        Ok(v) => Ok(*v),
        Err(e) => Err(Net::errno(e)),
    }
}

impl HostPort {
    /// Whether this life is the host's current one (calls of a crashed life are ignored).
    fn alive(&self, net: &Net) -> bool {
        net.hosts[self.host].up && net.hosts[self.host].life == self.life
    }

    fn gone() -> io::Error {
        io::Error::from_raw_os_error(libc::EBADF)
    }
}

impl SimNet for HostPort {
    fn listen(&self, addr: SocketAddr, backlog: i32) -> io::Result<(SimFd, SocketAddr)> {
        let mut net = self.net.borrow_mut();
        if !self.alive(&net) {
            return Err(Self::gone());
        }
        let r = net.listen(self.host, self.life, addr, backlog);
        let traced = code(
            &r.as_ref()
                .map(|(fd, _)| *fd)
                .map_err(|e| io::Error::from_raw_os_error(Net::errno(e))),
        );
        net.record(self.host, What::Listen(addr, traced));
        r
    }

    fn accept(&self, listener: SimFd) -> io::Result<(SimFd, SocketAddr)> {
        let mut net = self.net.borrow_mut();
        if !self.alive(&net) {
            return Err(Self::gone());
        }
        let r = net.accept(self.host, self.life, listener);
        let traced = match &r {
            Ok((fd, _)) => Ok(*fd),
            Err(e) => Err(Net::errno(e)),
        };
        net.record(self.host, What::Accept(listener, traced));
        r
    }

    fn connect(&self, addr: SocketAddr) -> io::Result<SimFd> {
        let mut net = self.net.borrow_mut();
        if !self.alive(&net) {
            return Err(Self::gone());
        }
        let r = net.connect(self.host, self.life, addr);
        let traced = code(&r);
        net.record(self.host, What::Connect(addr, traced));
        r
    }

    fn handshake(&self, fd: SimFd) -> io::Result<bool> {
        let mut net = self.net.borrow_mut();
        if !self.alive(&net) {
            return Err(Self::gone());
        }
        net.handshake(self.host, self.life, fd)
    }

    fn read(&self, fd: SimFd, buf: &mut [u8]) -> io::Result<usize> {
        let mut net = self.net.borrow_mut();
        if !self.alive(&net) {
            return Err(Self::gone());
        }
        let r = net.read(self.host, self.life, fd, buf);
        let traced = code(&r);
        net.record(self.host, What::Read(fd, traced));
        r
    }

    fn write(&self, fd: SimFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut net = self.net.borrow_mut();
        if !self.alive(&net) {
            return Err(Self::gone());
        }
        let r = net.write(self.host, self.life, fd, bufs);
        let traced = code(&r);
        net.record(self.host, What::Write(fd, traced));
        r
    }

    fn shutdown_write(&self, fd: SimFd) {
        let mut net = self.net.borrow_mut();
        if self.alive(&net) {
            net.record(self.host, What::Shutdown(fd));
            net.shutdown_write(self.host, self.life, fd);
        }
    }

    fn set_linger_zero(&self, fd: SimFd) {
        let mut net = self.net.borrow_mut();
        if self.alive(&net) {
            net.set_linger_zero(self.host, self.life, fd);
        }
    }

    fn set_keepalive(&self, fd: SimFd, idle: std::time::Duration) {
        let mut net = self.net.borrow_mut();
        if self.alive(&net) {
            net.set_keepalive(self.host, self.life, fd, idle);
        }
    }

    fn close(&self, fd: SimFd) {
        // A socket may close while the simulation itself is borrowed (a host dropped in a
        // crash): the network forgot that host's sockets already.
        let Ok(mut net) = self.net.try_borrow_mut() else {
            return;
        };
        if self.alive(&net) {
            net.record(self.host, What::Close(fd));
            net.close(self.host, self.life, fd);
        }
    }

    fn local_addr(&self, fd: SimFd) -> Option<SocketAddr> {
        let mut net = self.net.borrow_mut();
        net.local_addr(self.host, self.life, fd)
    }

    fn watch(&self, fd: SimFd, key: usize) {
        let mut net = self.net.borrow_mut();
        if self.alive(&net) {
            net.watch(self.host, self.life, fd, key);
        }
    }

    fn next_event(&self) -> Option<Event> {
        let mut net = self.net.borrow_mut();
        if !self.alive(&net) {
            return None;
        }
        net.next_event(self.host)
    }
}
