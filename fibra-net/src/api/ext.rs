//! `NetExt`: the network ops as calls on a tasklet's [`Handle`].

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;
use std::time::Instant;

use fibra_rt::Handle;

use crate::api::conn::{Conn, Listener};
use crate::api::error::{Lost, NetError};
use crate::api::io::ConnIo;
use crate::api::ops;
use crate::api::options::{ConnOptions, ListenOptions};
use crate::api::resolve::ToAddrs;
use crate::engine::shared::Encoding;

/// Listening, connecting, receiving, sending and closing, as calls on a tasklet's
/// [`Handle`]. They need the [`NetPlugin`](crate::NetPlugin) in the schedule.
///
/// Every call that can wait takes the handle, so yield points stay visible. Addresses are
/// what [`ToAddrs`] takes (what [`ToSocketAddrs`] takes: an address, `"host:port"`,
/// `(&str, u16)`...). A host name is looked up on a thread of a blocking pool of its own
/// (a [`BlockingPool`](fibra_tasks::BlockingPool), as
/// [`TasksExt::unblock`](fibra_tasks::TasksExt::unblock) uses) while the tasklet parks, so
/// the schedule's other tasklets go on; an IP address is used as it is. Every address a name
/// gives is tried in order, as std does.
pub trait NetExt {
    /// Listens on `addr` (port 0: the system picks one; see
    /// [`Listener::local_addr`]); of a host name's addresses, the first that can be bound.
    ///
    /// # Errors
    ///
    /// [`NetError::Bind`] (address in use, not allowed...): the last address's.
    fn listen<A: ToAddrs>(&self, addr: A) -> Result<Listener, NetError>;

    /// Like [`listen`](Self::listen), with options (backlog, `SO_REUSEPORT`, and the options
    /// of accepted connections).
    ///
    /// # Errors
    ///
    /// As [`listen`](Self::listen).
    fn listen_with<A: ToAddrs>(
        &self,
        addr: A,
        options: ListenOptions,
    ) -> Result<Listener, NetError>;

    /// Listens on `addr` for TLS connections served with `config` (its certificates, ALPN
    /// protocols...); what [`ListenOptions::with_tls`] does. `accept` hands connections out
    /// at once: each one's handshake runs as its bytes come, within its handshake timeout.
    ///
    /// # Errors
    ///
    /// As [`listen`](Self::listen).
    #[cfg(feature = "tls")]
    fn listen_tls<A: ToAddrs>(
        &self,
        addr: A,
        config: std::sync::Arc<rustls::ServerConfig>,
    ) -> Result<Listener, NetError> {
        self.listen_with(addr, ListenOptions::new().with_tls(config))
    }

    /// Waits for the next connection. When the process is out of file descriptors, accepting
    /// pauses (the waiters stay parked) and resumes by itself.
    ///
    /// # Errors
    ///
    /// [`NetError::Closed`] if the listener was closed; other accept errors.
    fn accept(&self, listener: &Listener) -> Result<(Conn, SocketAddr), NetError>;

    /// Connects to `addr` without blocking the thread, with default options. A host name's
    /// addresses are tried in order until one connects (`localhost` reaches a server
    /// listening on `127.0.0.1` alone, or on `::1` alone).
    ///
    /// # Errors
    ///
    /// [`NetError::Refused`], [`NetError::Unreachable`], or another I/O error: the last
    /// address's.
    fn connect<A: ToAddrs>(&self, addr: A) -> Result<Conn, NetError>;

    /// Like [`connect`](Self::connect) with options: the connection's framing and limits, and
    /// how long to wait ([`ConnOptions::with_connect_timeout`]: the name's lookup and every
    /// address's handshake together).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use fibra_net::{ConnOptions, Framing, NetExt};
    /// # fn demo(h: &fibra_rt::Handle) -> Result<(), fibra_net::NetError> {
    /// let options = ConnOptions::new()
    ///     .with_framing(Framing::LengthPrefixed)
    ///     .with_connect_timeout(Some(Duration::from_secs(3)));
    /// let conn = h.connect_with("127.0.0.1:7000", options)?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect), and [`NetError::TimedOut`]; [`NetError::Codec`] when
    /// the factory of a [`Framing::custom`](crate::Framing::custom) panicked.
    fn connect_with<A: ToAddrs>(&self, addr: A, options: ConnOptions) -> Result<Conn, NetError>;

    /// Connects to `addr` over TLS with `config`, checking the server's certificate against
    /// `server_name` (a DNS name or an IP address, also sent as SNI). Returns once the
    /// handshake is done.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect); [`NetError::InvalidServerName`]; a failed handshake
    /// with [`NetError::Lost`] of [`Lost::Tls`] (a certificate refused, no protocol in
    /// common, the handshake timeout...).
    #[cfg(feature = "tls")]
    fn connect_tls<A: ToAddrs>(
        &self,
        addr: A,
        server_name: &str,
        config: std::sync::Arc<rustls::ClientConfig>,
    ) -> Result<Conn, NetError> {
        self.connect_tls_with(addr, server_name, config, ConnOptions::default())
    }

    /// Like [`connect_tls`](Self::connect_tls), with options (framing, limits, the connect
    /// and handshake timeouts).
    ///
    /// # Errors
    ///
    /// As [`connect_tls`](Self::connect_tls).
    #[cfg(feature = "tls")]
    fn connect_tls_with<A: ToAddrs>(
        &self,
        addr: A,
        server_name: &str,
        config: std::sync::Arc<rustls::ClientConfig>,
        options: ConnOptions,
    ) -> Result<Conn, NetError> {
        let name =
            rustls::pki_types::ServerName::try_from(server_name.to_owned()).map_err(|_| {
                NetError::InvalidServerName {
                    name: server_name.to_owned(),
                }
            })?;
        self.connect_with(addr, options.with_tls(config, name))
    }

    /// Takes over `stream`, a TCP connection accepted or connected elsewhere (another
    /// thread's acceptor handing connections out, say): it becomes a connection of this
    /// schedule with `options`. Never parks.
    ///
    /// # Errors
    ///
    /// [`NetError::Io`] if the stream is not connected or cannot be made non-blocking, or
    /// cannot be registered with the poller; [`NetError::Codec`] when the factory of a
    /// [`Framing::custom`](crate::Framing::custom) panicked.
    fn adopt(&self, stream: std::net::TcpStream, options: ConnOptions) -> Result<Conn, NetError>;

    /// Like [`adopt`](Self::adopt), for a stream accepted elsewhere that speaks TLS: this
    /// schedule serves it with `config` (a [`Handoff`](crate::Handoff)'s connections on a
    /// TLS port, say). Its handshake runs as its bytes come, as on a TLS listener's.
    ///
    /// # Errors
    ///
    /// As [`adopt`](Self::adopt), and [`NetError::TlsConfig`].
    #[cfg(feature = "tls")]
    fn adopt_tls(
        &self,
        stream: std::net::TcpStream,
        options: ConnOptions,
        config: std::sync::Arc<rustls::ServerConfig>,
    ) -> Result<Conn, NetError>;

    /// Waits for the next frame (by the connection's codec) and returns it.
    ///
    /// Frames received before the peer closed are still returned; then the loss's error.
    ///
    /// # Errors
    ///
    /// [`NetError::Lost`] once the connection is lost, with why: [`Lost::Eof`] (the peer
    /// closed), [`Lost::Reset`], [`Lost::Closed`] or [`Lost::Aborted`] (this side),
    /// [`Lost::TimedOut`] (read timeout), [`Lost::TooLong`] (a frame over the limit: the
    /// connection is then lost), [`Lost::Codec`] (the connection's codec panicked or
    /// returned a frame outside its buffer: the connection was ended),
    /// [`Lost::Slow`] (cut off by a group);
    /// [`NetError::Closed`] if the connection is gone; [`NetError::Busy`] if another tasklet
    /// is receiving on it.
    fn receive(&self, conn: &Conn) -> Result<Vec<u8>, NetError>;

    /// Like [`receive`](Self::receive), as text: invalid UTF-8 is replaced with U+FFFD (what
    /// a line-based protocol read from telnet needs).
    ///
    /// # Errors
    ///
    /// As [`receive`](Self::receive).
    fn receive_line(&self, conn: &Conn) -> Result<String, NetError>;

    /// Like [`receive`](Self::receive), giving up at `deadline` (a login's time limit, say):
    /// the receive is withdrawn, and the connection stays as it was.
    ///
    /// # Errors
    ///
    /// [`NetError::TimedOut`] at the deadline; otherwise as [`receive`](Self::receive).
    fn receive_until(&self, conn: &Conn, deadline: Instant) -> Result<Vec<u8>, NetError>;

    /// Like [`receive`](Self::receive), into `buf` (cleared first): a loop of receives into
    /// one buffer allocates nothing.
    ///
    /// # Errors
    ///
    /// As [`receive`](Self::receive).
    fn receive_into(&self, conn: &Conn, buf: &mut Vec<u8>) -> Result<(), NetError>;

    /// Queues `bytes` as they are; they leave at the end of the tick, coalesced with the
    /// tick's other sends to this connection. When the output is at its send limit, waits
    /// until the peer has read half of it.
    ///
    /// This may park the tasklet (a peer that does not read): never call it while a
    /// `RefCell` borrow of shared state is held, or the next tasklet to borrow it panics.
    /// To send to many connections held in shared state, use [`Conn::try_send`] (it never
    /// waits) or a [`Group`](crate::Group):
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use std::rc::Rc;
    /// use fibra_net::{Conn, NetExt, NetPlugin};
    /// use fibra_rt::Schedule;
    ///
    /// let mut schedule = Schedule::new();
    /// schedule.add_plugin(NetPlugin::new()?)?;
    /// let room: Rc<RefCell<Vec<Conn>>> = Rc::default();
    /// let r = room.clone();
    /// schedule.spawn(move |h| {
    ///     let listener = h.listen("127.0.0.1:0").unwrap();
    ///     let clients: Vec<Conn> =
    ///         (0..2).map(|_| h.connect(listener.local_addr()).unwrap()).collect();
    ///     for _ in 0..2 {
    ///         let (member, _) = h.accept(&listener).unwrap();
    ///         r.borrow_mut().push(member);
    ///     }
    ///     // Right: the borrow lasts while nothing can park.
    ///     for member in r.borrow().iter() {
    ///         let _ = member.try_send_frame(b"hello, room");
    ///     }
    ///     // Also right: copy the members out, end the borrow, then send (and maybe park).
    ///     let members: Vec<Conn> = r.borrow().clone();
    ///     for member in &members {
    ///         h.send_frame(member, b"one by one").unwrap();
    ///     }
    ///     for client in &clients {
    ///         assert_eq!(h.receive(client).unwrap(), b"hello, room");
    ///         assert_eq!(h.receive(client).unwrap(), b"one by one");
    ///     }
    /// })?;
    /// schedule.run()?;
    /// assert_eq!(room.borrow().len(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`NetError::Lost`] (why) or [`NetError::Closed`] when the connection can no longer
    /// send.
    fn send(&self, conn: &Conn, bytes: &[u8]) -> Result<(), NetError>;

    /// Like [`send`](Self::send), framing `payload` with the connection's codec.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send), and [`NetError::InvalidFrame`]; [`Lost::Codec`] when the
    /// codec's `encode` panicked (the connection is then ended).
    fn send_frame(&self, conn: &Conn, payload: &[u8]) -> Result<(), NetError>;

    /// Like [`send_frame`](Self::send_frame), for text: `send_line(&conn, "hello")` sends
    /// `hello\n` on a line connection.
    ///
    /// # Errors
    ///
    /// As [`send_frame`](Self::send_frame).
    fn send_line(&self, conn: &Conn, text: &str) -> Result<(), NetError>;

    /// Waits until every queued byte was written to the socket.
    ///
    /// # Errors
    ///
    /// The loss's error if the connection broke first.
    fn flush(&self, conn: &Conn) -> Result<(), NetError>;

    /// Closes gracefully: no more sends; waits until what was queued is written (at most the
    /// close timeout), then sends FIN and closes. Other tasklets watching or receiving on the
    /// connection are told [`Lost::Closed`].
    ///
    /// # Errors
    ///
    /// [`NetError::TimedOut`] when the output could not be written in time (it was dropped,
    /// the connection reset), or the loss's error if it broke first.
    fn close(&self, conn: &Conn) -> Result<(), NetError>;

    /// Queues `bytes`, then closes gracefully (gnet's `send_lose`): everything is delivered
    /// before the FIN.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send) and [`close`](Self::close).
    fn send_and_close(&self, conn: &Conn, bytes: &[u8]) -> Result<(), NetError>;

    /// Closes at once with a reset; queued output is dropped.
    fn abort(&self, conn: &Conn);

    /// Waits until the connection is lost, for any reason, and says why. Each call returns
    /// once; a connection already lost returns at once.
    fn on_lost_connection(&self, conn: &Conn) -> Lost;

    /// Waits until the connection is closed both ways, and says how its output ended:
    /// [`Lost::Closed`] for a close (this tasklet's or another's), else the abort or the
    /// failed write that ended it. After the peer's end of stream
    /// ([`on_lost_connection`](Self::on_lost_connection) says [`Lost::Eof`] at once), the
    /// connection may still send: this waits past it. A peer that resets a connection no
    /// longer read is found by its reset (the error the kernel reports after the end of
    /// stream), or by the next write; frames that arrived before the end of stream are still
    /// received. A connection already closed returns at once.
    fn on_closed(&self, conn: &Conn) -> Lost;

    /// A [`std::io::Read`] + [`std::io::Write`] adapter, for synchronous libraries.
    fn io<'a>(&'a self, conn: &'a Conn) -> ConnIo<'a>;

    /// Takes what is there without parking, as yielding [`TryReceive`](ops::TryReceive)
    /// does, with the same answers; where a raw read serves it (no framing or a raw receive,
    /// nothing buffered, no TLS), by a call on the connection's table, without a yield: the
    /// tasklet does not switch out. A stackless session's receive, once per activation. The
    /// call serves the connection on its own table, where the op refuses another plugin's.
    fn try_receive(&self, op: ops::TryReceive) -> ops::Tried;

    /// Arms the connection's input watch, as yielding [`OnInput`](ops::OnInput) does; while
    /// nothing is there to fire it at once (the socket drained, no end, no loss, the read
    /// budget not spent, no job armed), by a call on the connection's table, without a
    /// yield. Otherwise the op arms it, fires it at once, or refuses it.
    ///
    /// # Errors
    ///
    /// The connection is gone (or, where the op arms it, is another plugin's): the job is
    /// dropped.
    fn on_input(&self, op: ops::OnInput) -> Result<(), NetError>;
}

/// `timeout` from now (far in the future if that overflows).
fn deadline_after(timeout: Duration) -> Instant {
    let now = fibra_rt::time::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600))
}

/// Whether a connect that failed with `e` gives up instead of trying the next address: only
/// when the connect's own `deadline` has passed. A `TimedOut` before it (or with none) is one
/// address's (the kernel's `ETIMEDOUT`: that host never answered), and the next may answer.
fn out_of_time(e: &NetError, deadline: Option<Instant>, now: Instant) -> bool {
    matches!(e, NetError::TimedOut) && deadline.is_some_and(|deadline| now >= deadline)
}

/// The first address of `addr`, looked up on this thread (host code's listen).
pub(crate) fn resolve<A: ToSocketAddrs>(addr: A) -> Result<SocketAddr, NetError> {
    addr.to_socket_addrs()?.next().ok_or_else(|| {
        NetError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the address resolved to nothing",
        ))
    })
}

impl NetExt for Handle {
    fn try_receive(&self, op: ops::TryReceive) -> ops::Tried {
        let ops::TryReceive { conn, buf, mode } = op;
        match conn.try_receive_at_once(buf, mode) {
            Ok(tried) => tried,
            Err(buf) => self.yield_op(ops::TryReceive { conn, buf, mode }),
        }
    }

    fn on_input(&self, op: ops::OnInput) -> Result<(), NetError> {
        let ops::OnInput { conn, job, name } = op;
        match conn.arm_at_once(job, name) {
            Ok(()) => Ok(()),
            Err(job) => self.yield_op(ops::OnInput { conn, job, name }),
        }
    }

    fn listen<A: ToAddrs>(&self, addr: A) -> Result<Listener, NetError> {
        self.listen_with(addr, ListenOptions::default())
    }

    fn listen_with<A: ToAddrs>(
        &self,
        addr: A,
        options: ListenOptions,
    ) -> Result<Listener, NetError> {
        let addrs = addr.to_addrs()?.resolve(self, None)?;
        let (last, others) = addrs
            .as_slice()
            .split_last()
            .expect("resolve gives one or more");
        for &addr in others {
            if let Ok(listener) = self.yield_op(ops::Listen::new(addr, options.clone())) {
                return Ok(listener);
            }
        }
        self.yield_op(ops::Listen::new(*last, options))
    }

    fn accept(&self, listener: &Listener) -> Result<(Conn, SocketAddr), NetError> {
        self.yield_op(ops::Accept::new(listener))
    }

    fn connect<A: ToAddrs>(&self, addr: A) -> Result<Conn, NetError> {
        self.connect_with(addr, ConnOptions::default())
    }

    fn connect_with<A: ToAddrs>(&self, addr: A, options: ConnOptions) -> Result<Conn, NetError> {
        let deadline = options.connect_timeout.map(deadline_after);
        let addrs = addr.to_addrs()?.resolve(self, deadline)?;
        let (last, others) = addrs
            .as_slice()
            .split_last()
            .expect("resolve gives one or more");
        let connect = |addr, options| {
            let op = ops::Connect::new(addr, options);
            match deadline {
                Some(deadline) => self.yield_op_until(op, deadline)?,
                None => self.yield_op(op),
            }
        };
        for &addr in others {
            match connect(addr, options.clone()) {
                Ok(conn) => return Ok(conn),
                Err(e) if out_of_time(&e, deadline, fibra_rt::time::now()) => return Err(e),
                Err(e) => {
                    log::debug!(target: "fibra_net::connect", "{addr}: {e}; trying the next address")
                }
            }
        }
        connect(*last, options)
    }

    fn adopt(&self, stream: std::net::TcpStream, options: ConnOptions) -> Result<Conn, NetError> {
        self.yield_op(ops::Adopt::new(stream, options))
    }

    #[cfg(feature = "tls")]
    fn adopt_tls(
        &self,
        stream: std::net::TcpStream,
        options: ConnOptions,
        config: std::sync::Arc<rustls::ServerConfig>,
    ) -> Result<Conn, NetError> {
        self.yield_op(ops::Adopt::tls(stream, options, config))
    }

    fn receive(&self, conn: &Conn) -> Result<Vec<u8>, NetError> {
        self.yield_op(ops::Receive::new(conn))
    }

    fn receive_line(&self, conn: &Conn) -> Result<String, NetError> {
        let bytes = self.receive(conn)?;
        Ok(match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    fn receive_until(&self, conn: &Conn, deadline: Instant) -> Result<Vec<u8>, NetError> {
        self.yield_op_until(ops::Receive::new(conn), deadline)?
    }

    fn receive_into(&self, conn: &Conn, buf: &mut Vec<u8>) -> Result<(), NetError> {
        let op = ops::Receive::into_buf(conn, std::mem::take(buf));
        *buf = self.yield_op(op)?;
        Ok(())
    }

    fn send(&self, conn: &Conn, bytes: &[u8]) -> Result<(), NetError> {
        conn.send_parking(self, bytes, Encoding::AsIs)
    }

    fn send_frame(&self, conn: &Conn, payload: &[u8]) -> Result<(), NetError> {
        conn.send_parking(self, payload, Encoding::Frame)
    }

    fn send_line(&self, conn: &Conn, text: &str) -> Result<(), NetError> {
        self.send_frame(conn, text.as_bytes())
    }

    fn flush(&self, conn: &Conn) -> Result<(), NetError> {
        self.yield_op(ops::Flush::new(conn))
    }

    fn close(&self, conn: &Conn) -> Result<(), NetError> {
        self.yield_op(ops::Close::new(conn))
    }

    fn send_and_close(&self, conn: &Conn, bytes: &[u8]) -> Result<(), NetError> {
        self.send(conn, bytes)?;
        self.close(conn)
    }

    fn abort(&self, conn: &Conn) {
        self.yield_op(ops::Abort::new(conn));
    }

    fn on_lost_connection(&self, conn: &Conn) -> Lost {
        self.yield_op(ops::OnLost::new(conn))
    }

    fn on_closed(&self, conn: &Conn) -> Lost {
        self.yield_op(ops::OnClosed::new(conn))
    }

    fn io<'a>(&'a self, conn: &'a Conn) -> ConnIo<'a> {
        ConnIo::new(self, conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_connects_own_deadline_stops_the_addresses() {
        let now = fibra_rt::time::now();
        let later = now + Duration::from_secs(5);
        // The kernel's ETIMEDOUT for one address (no deadline, or before it): try the next.
        assert!(!out_of_time(&NetError::TimedOut, None, now));
        assert!(!out_of_time(&NetError::TimedOut, Some(later), now));
        // The connect timeout has passed: give up.
        assert!(out_of_time(&NetError::TimedOut, Some(now), now));
        assert!(out_of_time(&NetError::TimedOut, Some(now), later));
        // Any other failure: the next address.
        let refused = NetError::Refused {
            addr: "127.0.0.1:1".parse().unwrap(),
        };
        assert!(!out_of_time(&refused, Some(now), later));
    }
}
