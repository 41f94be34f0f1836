//! The system calls the table makes, each with its error classification.
//!
//! A [`Socket`] is a kernel socket, or with the `sim` feature a simulated one ([`sim`]):
//! the table holds one type either way, and [`socket`]'s functions match on it. Without the
//! feature the enum has one variant, and the real path costs what it did.

#[cfg(feature = "sim")]
pub(crate) mod sim;
pub(crate) mod socket;

use std::net::SocketAddr;

use crate::api::error::NetError;

/// A socket the table holds.
#[derive(Debug)]
pub(crate) enum Socket {
    /// A kernel socket.
    Os(socket2::Socket),
    /// A simulated one.
    #[cfg(feature = "sim")]
    Sim(sim::SimSocket),
}

/// Where the table's sockets come from: the kernel, or a simulated network.
#[derive(Debug, Default)]
pub(crate) struct Sys {
    #[cfg(feature = "sim")]
    pub(crate) sim: Option<std::rc::Rc<dyn sim::SimNet>>,
}

impl Sys {
    /// A listening socket on `addr`, and the address it got.
    pub(crate) fn listener(
        &self,
        addr: SocketAddr,
        backlog: i32,
        reuse_port: bool,
    ) -> Result<(Socket, SocketAddr), NetError> {
        #[cfg(feature = "sim")]
        if let Some(net) = &self.sim {
            let (fd, local) = net
                .listen(addr, backlog)
                .map_err(|source| NetError::Bind { addr, source })?;
            let net = std::rc::Rc::clone(net);
            return Ok((Socket::Sim(sim::SimSocket { fd, net }), local));
        }
        let (socket, local) = socket::listener(addr, backlog, reuse_port)?;
        Ok((Socket::Os(socket), local))
    }

    /// A socket connecting to `addr` (from `local`, if given): `(socket, true)` while the
    /// handshake is in progress.
    pub(crate) fn connect(
        &self,
        addr: SocketAddr,
        local: Option<SocketAddr>,
    ) -> Result<(Socket, bool), NetError> {
        #[cfg(feature = "sim")]
        if let Some(net) = &self.sim {
            // A simulated host has its own address; a chosen source address is not modelled.
            if let Some(local) = local {
                return Err(NetError::BindSource {
                    addr: local,
                    source: std::io::Error::new(
                        std::io::ErrorKind::Unsupported,
                        "binding before connect is not simulated (a simulated host connects from its own address)",
                    ),
                });
            }
            let fd = net
                .connect(addr)
                .map_err(|e| socket::connect_error(e, addr))?;
            let net = std::rc::Rc::clone(net);
            return Ok((Socket::Sim(sim::SimSocket { fd, net }), true));
        }
        let (socket, in_progress) = socket::connect(addr, local)?;
        Ok((Socket::Os(socket), in_progress))
    }

    /// Refuses `what` (TLS, a kernel socket taken over) on a simulated network: it would
    /// leave the simulation (TLS draws the system's randomness and checks certificates
    /// against the wall clock, so a run would not replay; a kernel socket is real). `Ok`
    /// always on kernel sockets, and without the `sim` feature.
    #[inline]
    pub(crate) fn not_simulated(&self, what: &str) -> Result<(), NetError> {
        #[cfg(feature = "sim")]
        if self.sim.is_some() {
            return Err(NetError::Io(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                format!("{what} on a simulated network (fibra-sim): it would leave the simulation"),
            )));
        }
        let _ = what;
        Ok(())
    }

    /// The simulated network's next readiness event, if the table's sockets are simulated.
    #[inline]
    pub(crate) fn next_event(&self) -> Option<fibra_rt::Event> {
        #[cfg(feature = "sim")]
        if let Some(net) = &self.sim {
            return net.next_event();
        }
        None
    }
}
