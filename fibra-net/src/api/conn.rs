//! `Conn` and `Listener`: a tasklet's handles to a connection and a listening socket.

use std::fmt;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::time::Duration;

use fibra_rt::Handle;

use crate::api::codec::Framing;
use crate::api::error::{Lost, NetError};
use crate::api::ops::Tried;
use crate::engine::shared::{Encoding, Key, ReceiveMode, SendState, Shared, WhenFull};
use crate::engine::table::Job;

/// What a handle holds; the last clone to drop releases the table entry.
pub(crate) struct Inner {
    shared: Rc<Shared>,
    key: Key,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.release(self.key);
    }
}

/// A connection's identity: equal for clones of one [`Conn`], never reused by another
/// connection of the same plugin. Use it as a map key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(Key);

/// A TCP connection served by the [`NetPlugin`](crate::NetPlugin).
///
/// Clones refer to the same connection (a chat room keeps a clone of each member's). When
/// the last clone is dropped (also when its tasklet is killed), the connection is closed
/// gracefully in the background: queued output is still written (within the close timeout),
/// then the socket is closed.
///
/// Sending without waiting ([`try_send`](Self::try_send)) and the settings need no
/// [`Handle`](fibra_rt::Handle); everything that may wait is on
/// [`NetExt`](crate::NetExt).
#[derive(Clone)]
pub struct Conn {
    inner: Rc<Inner>,
}

impl Conn {
    pub(crate) fn new(shared: Rc<Shared>, key: Key) -> Conn {
        Conn {
            inner: Rc::new(Inner { shared, key }),
        }
    }

    pub(crate) fn key(&self) -> Key {
        self.inner.key
    }

    pub(crate) fn shared(&self) -> &Rc<Shared> {
        &self.inner.shared
    }

    /// A reference that does not keep the connection open (a group's membership).
    pub(crate) fn downgrade(&self) -> Weak<Inner> {
        Rc::downgrade(&self.inner)
    }

    /// The connection `weak` refers to, while a handle to it lives.
    pub(crate) fn upgrade(weak: &Weak<Inner>) -> Option<Conn> {
        weak.upgrade().map(|inner| Conn { inner })
    }

    /// This connection's identity.
    pub fn id(&self) -> ConnId {
        ConnId(self.inner.key)
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.inner.shared.table.borrow_mut().peer_addr(self.key())
    }

    /// The local address, while the socket is open.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.inner.shared.table.borrow_mut().local_addr(self.key())
    }

    /// Why the connection was lost, if it was.
    pub fn lost(&self) -> Option<Lost> {
        self.inner.shared.table.borrow_mut().lost(self.key())
    }

    /// What the connection's TLS negotiated (SNI, ALPN, version, cipher suite); `None` for a
    /// plain connection. See [`TlsInfo::handshaking`](crate::TlsInfo::handshaking): a server's
    /// connection is handed out before its handshake ends.
    pub fn tls(&self) -> Option<crate::TlsInfo> {
        self.inner.shared.table.borrow_mut().tls_info(self.key())
    }

    /// Bytes queued and not yet written to the socket.
    pub fn queued(&self) -> usize {
        self.inner.shared.table.borrow_mut().queued(self.key())
    }

    /// Half-closes: sends FIN now, after what was written, while input is still read (an
    /// HTTP server that closes while the peer still sends reads and drops the rest first, so
    /// that the close is no reset that destroys its last answer: RFC 9112 §9.6). Nothing may
    /// be sent after it. Over TLS it sends `close_notify`, then FIN. `false`, and nothing
    /// done, while output is queued (flush first), while a TLS handshake runs, or once it is
    /// closing (and `false` when the socket did not take the whole `close_notify` at once:
    /// it goes as output does, and nothing may be sent after it either).
    pub fn shutdown_write(&self) -> bool {
        self.inner
            .shared
            .table
            .borrow_mut()
            .shutdown_write(self.key())
    }

    /// Bytes received from the peer and not yet taken by a receive: read ahead while nobody
    /// received (a tasklet waiting in [`on_lost_connection`](crate::NetExt::on_lost_connection)
    /// reads ahead to see the peer's close), or left after the last frame cut. Bytes still in
    /// the kernel's socket buffer are not counted.
    pub fn received(&self) -> usize {
        self.inner.shared.table.borrow_mut().received(self.key())
    }

    /// Queues `bytes` without ever waiting: they leave at the end of this tick, with
    /// everything else sent to this connection during the tick, in one write (with
    /// [`ConnOptions::with_write_through`](crate::ConnOptions::with_write_through), bytes
    /// sent while nothing is queued are written at once instead).
    ///
    /// # Errors
    ///
    /// [`NetError::Full`] when the output is at its send limit (nothing was queued: the
    /// caller decides, a chat room cuts the slow member off); [`NetError::Lost`] (why) or
    /// [`NetError::Closed`] when the connection can no longer send.
    pub fn try_send(&self, bytes: &[u8]) -> Result<(), NetError> {
        self.queue(bytes, Encoding::AsIs)
    }

    /// Like [`try_send`](Self::try_send), framing `payload` with the connection's codec
    /// (a line gets its `\n`, a length-prefixed frame its length).
    ///
    /// # Errors
    ///
    /// As [`try_send`](Self::try_send), and [`NetError::InvalidFrame`] when the codec cannot
    /// frame the payload (a line holding a newline).
    pub fn try_send_frame(&self, payload: &[u8]) -> Result<(), NetError> {
        self.queue(payload, Encoding::Frame)
    }

    /// Whether a [`TryReceive`](crate::ops::TryReceive) could find anything now. `false`:
    /// it would find nothing (no bytes buffered, the socket known to be drained, no end or
    /// loss), so a job served without a tasklet (see [`OnInput`](crate::ops::OnInput)) can
    /// arm its watch at once rather than yield a receive for nothing. `true`: it may find a
    /// frame, the end, or an error (always on a TLS connection, whose filter may hold
    /// plaintext, and on one that is gone). Never reads, never parks.
    pub fn may_have_input(&self) -> bool {
        self.inner
            .shared
            .table
            .try_borrow()
            .map_or(true, |t| t.input_may_be_pending(self.key()))
    }

    /// A [`TryReceive`](crate::ops::TryReceive) served by a call on the table, or its
    /// buffer back for the op (see `Table::try_receive_at_once`).
    pub(crate) fn try_receive_at_once(
        &self,
        buf: Vec<u8>,
        mode: ReceiveMode,
    ) -> Result<Tried, Vec<u8>> {
        match self.inner.shared.table.try_borrow_mut() {
            Ok(mut table) => table.try_receive_at_once(self.key(), buf, mode),
            Err(_) => Err(buf),
        }
    }

    /// An [`OnInput`](crate::ops::OnInput) armed by a call on the table, or its job back for
    /// the op (see `Table::arm_at_once`).
    pub(crate) fn arm_at_once(&self, job: Job, name: &'static str) -> Result<(), Job> {
        match self.inner.shared.table.try_borrow_mut() {
            Ok(mut table) => table.arm_at_once(self.key(), job, name),
            Err(_) => Err(job),
        }
    }

    /// Queues `bytes`, parking on `Drain` while the output is at its send limit (what
    /// `NetExt::send` does).
    pub(crate) fn send_parking(
        &self,
        h: &Handle,
        bytes: &[u8],
        encoding: Encoding,
    ) -> Result<(), NetError> {
        loop {
            let state = self.inner.shared.table.borrow_mut().send(
                self.key(),
                bytes,
                encoding,
                WhenFull::Wait,
            )?;
            match state {
                SendState::Queued => return Ok(()),
                SendState::MustWait => h.yield_op(crate::api::ops::Drain::new(self))?,
            }
        }
    }

    /// Like [`try_send_frame`](Self::try_send_frame), for text.
    ///
    /// # Errors
    ///
    /// As [`try_send_frame`](Self::try_send_frame).
    pub fn try_send_line(&self, text: &str) -> Result<(), NetError> {
        self.queue(text.as_bytes(), Encoding::Frame)
    }

    fn queue(&self, bytes: &[u8], encoding: Encoding) -> Result<(), NetError> {
        let mut table = self.inner.shared.table.borrow_mut();
        table
            .send(self.key(), bytes, encoding, WhenFull::Fail)
            .map(|_| ())
    }

    /// Resets the connection without a [`Handle`](fibra_rt::Handle), as
    /// [`NetExt::abort`](crate::NetExt::abort) does, at the end of this tick: queued output
    /// is dropped, the peer gets a reset, and receivers and watchers are told
    /// [`Lost::Aborted`]. For code that holds connections but is not a tasklet, such as a
    /// chat room cutting off a member that does not read.
    pub fn abort(&self) {
        let mut table = self.inner.shared.table.borrow_mut();
        table.defer_abort(self.key());
    }

    /// Closes the connection gracefully without a [`Handle`](fibra_rt::Handle), at the end of
    /// this tick: queued output is still written (within the close timeout), then the socket
    /// is closed; receivers and watchers are told [`Lost::Closed`]. It does not wait for the
    /// output to leave ([`NetExt::close`](crate::NetExt::close) does), so code that is not a
    /// tasklet, or a destructor, may call it.
    pub fn close(&self) {
        let mut table = self.inner.shared.table.borrow_mut();
        table.defer_close(self.key());
    }

    /// Sets the read timeout: the connection is lost with [`Lost::TimedOut`] when no byte
    /// arrives for this long. `None` turns it off.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) {
        self.update(|o| o.read_timeout = timeout);
    }

    /// Sets the input deadline: at `at` the connection is lost with [`Lost::TimedOut`]
    /// (a receive fails, an input watch fires) unless it is set off before. Unlike the read
    /// timeout, bytes that come do not push it back: a login deadline that a peer trickling
    /// its line a byte at a time cannot stretch. `None` sets it off (its timer goes too).
    pub fn set_input_deadline(&self, at: Option<std::time::Instant>) {
        let mut table = self.inner.shared.table.borrow_mut();
        table.set_input_deadline(self.key(), at);
    }

    /// Sets the longest frame accepted, in bytes.
    pub fn set_max_frame(&self, bytes: usize) {
        self.update(|o| o.max_frame = bytes);
    }

    /// Sets the send limit (the output buffer's high-water mark), in bytes.
    pub fn set_send_limit(&self, bytes: usize) {
        self.update(|o| o.send_limit = bytes);
    }

    /// Sets how long a graceful close waits for queued output.
    pub fn set_close_timeout(&self, timeout: Duration) {
        self.update(|o| o.close_timeout = timeout);
    }

    /// Sets how long output may wait to be gathered into one write; see
    /// [`ConnOptions::flush_delay`](crate::ConnOptions::flush_delay).
    pub fn set_flush_delay(&self, delay: Duration) {
        self.update(|o| o.flush_delay = delay);
    }

    /// Switches the codec, for frames not yet decoded (bytes already received are decoded
    /// by the new codec).
    pub fn set_framing(&self, framing: Framing) {
        let mut table = self.inner.shared.table.borrow_mut();
        table.set_framing(self.key(), &framing);
    }

    fn update(&self, f: impl FnOnce(&mut crate::ConnOptions)) {
        let mut table = self.inner.shared.table.borrow_mut();
        table.update_options(self.key(), f);
    }
}

/// Handles are equal when they refer to the same connection.
impl PartialEq for Conn {
    fn eq(&self, other: &Conn) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for Conn {}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("slot", &self.inner.key.slot)
            .field("gen", &self.inner.key.gen)
            .finish()
    }
}

/// A listening socket served by the [`NetPlugin`](crate::NetPlugin). Clones share it
/// (several tasklets may accept from one listener); it stops listening when the last clone is
/// dropped.
#[derive(Clone)]
pub struct Listener {
    inner: Rc<Inner>,
    addr: SocketAddr,
}

impl Listener {
    pub(crate) fn new(shared: Rc<Shared>, key: Key, addr: SocketAddr) -> Listener {
        Listener {
            inner: Rc::new(Inner { shared, key }),
            addr,
        }
    }

    pub(crate) fn key(&self) -> Key {
        self.inner.key
    }

    pub(crate) fn shared(&self) -> &Rc<Shared> {
        &self.inner.shared
    }

    /// The address it listens on (with the port the system chose, for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("addr", &self.addr)
            .finish()
    }
}
