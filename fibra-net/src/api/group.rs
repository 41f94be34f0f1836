//! `Group`: a set of connections that one call sends to (Netty's `ChannelGroup`, the fibra
//! way), for chat rooms, pub/sub topics and game lobbies.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use crate::api::conn::Conn;
use crate::api::error::NetError;
use crate::api::options::GroupOptions;
use crate::api::stats::GroupStats;
use crate::engine::shared::{Encoding, Key, Shared};

/// A set of connections that one call sends to.
///
/// - **Sending** ([`send`](Self::send), [`send_frame`](Self::send_frame),
///   [`send_with`](Self::send_with)) never waits. What is sent during a round is gathered into
///   one batch, stored once, and queued to every member as a shared segment at the end of the
///   round; each member's output is then written with one gathering write. Ten lines to
///   1,000 members cost one copy of the ten lines, not 10,000.
/// - **Membership is exact.** A member gets what was sent after it was [`add`](Self::add)ed
///   and before it was [`remove`](Self::remove)d, in order with what is sent to it directly
///   (`Conn::try_send`, `NetExt::send`): a direct send to a member first seals the group's
///   batch. A member of several groups gets a round's batches group by group, in the order
///   the groups were first sent to in that round (not line by line across groups).
/// - **Slow members** are handled by the group's [`SlowPolicy`](crate::SlowPolicy): cut off (the default) or
///   skipped. A member's cap is its connection's send limit
///   ([`ConnOptions::with_send_limit`](crate::ConnOptions::with_send_limit)).
/// - **A group does not keep connections open.** A member leaves when its connection closes
///   (its last [`Conn`] dropped, closed, reset or cut off).
///
/// Clones share the group. Handle-free: a room can hold it beside its other state, and any
/// tasklet (or the host) can send to it.
///
/// ```
/// use fibra_net::{Group, NetExt, NetPlugin};
/// use fibra_rt::Schedule;
///
/// let mut schedule = Schedule::new();
/// schedule.add_plugin(NetPlugin::new()?)?;
/// schedule.spawn(|h| {
///     let listener = h.listen("127.0.0.1:0").unwrap();
///     let (ann, bob) = (h.connect(listener.local_addr()).unwrap(), h.connect(listener.local_addr()).unwrap());
///     let (ann_here, _) = h.accept(&listener).unwrap();
///     let (bob_here, _) = h.accept(&listener).unwrap();
///     let room = Group::new();
///     room.add(&ann_here).unwrap();
///     room.add(&bob_here).unwrap();
///     room.send_frame(b"hello, everyone").unwrap();
///     assert_eq!(h.receive(&ann).unwrap(), b"hello, everyone");
///     assert_eq!(h.receive(&bob).unwrap(), b"hello, everyone");
///     assert_eq!(room.stats().bytes, 16, "stored once");
/// })?;
/// schedule.run()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct Group {
    inner: Rc<Inner>,
}

#[derive(Default)]
struct Inner {
    options: GroupOptions,
    /// The plugin's table and the group's entry in it, from the first member on.
    bound: RefCell<Option<(Rc<Shared>, Key)>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some((shared, key)) = self.bound.get_mut().take() {
            // Sends not yet sealed still go out; the members stay connected.
            shared.release(key);
        }
    }
}

impl Group {
    /// An empty group: lines, slow members cut off.
    pub fn new() -> Group {
        Group::default()
    }

    /// An empty group with `options`.
    pub fn with_options(options: GroupOptions) -> Group {
        Group {
            inner: Rc::new(Inner {
                options,
                bound: RefCell::new(None),
            }),
        }
    }

    /// Runs `f` with the plugin's shared state and the group's key, if the group has ever
    /// had a member.
    fn with_shared<T>(&self, f: impl FnOnce(&Shared, Key) -> T) -> Option<T> {
        let bound = self.inner.bound.borrow();
        let (shared, key) = bound.as_ref()?;
        Some(f(shared, *key))
    }

    /// Adds `conn`; from now on it gets what is sent to the group. Returns `false` if it was
    /// a member already.
    ///
    /// # Errors
    ///
    /// [`NetError::Closed`] (or the loss's error) if the connection can no longer send; an
    /// [`NetError::Io`] error if it belongs to another schedule's network plugin than the
    /// group's other members.
    pub fn add(&self, conn: &Conn) -> Result<bool, NetError> {
        {
            let mut bound = self.inner.bound.borrow_mut();
            match &*bound {
                Some((shared, _)) if !Rc::ptr_eq(shared, conn.shared()) => {
                    return Err(NetError::Io(std::io::Error::other(
                        "this connection belongs to another schedule's network plugin than \
                         the group's members",
                    )));
                }
                Some(_) => {}
                None => {
                    let shared = Rc::clone(conn.shared());
                    let key = shared.table.borrow_mut().new_group(&self.inner.options);
                    *bound = Some((shared, key));
                }
            }
        }
        self.with_shared(|s, g| s.table.borrow_mut().group_add(g, conn))
            .unwrap_or(Err(NetError::Closed))
    }

    /// Removes `conn`: it gets what was sent before this call, and nothing after. Returns
    /// whether it was a member.
    pub fn remove(&self, conn: &Conn) -> bool {
        if !self.same_plugin(conn) {
            return false;
        }
        self.with_shared(|s, g| s.table.borrow_mut().group_remove(g, conn.key()))
            .unwrap_or(false)
    }

    /// Whether `conn` is a member.
    pub fn contains(&self, conn: &Conn) -> bool {
        self.same_plugin(conn)
            && self
                .with_shared(|s, g| s.table.borrow_mut().group_contains(g, conn.key()))
                .unwrap_or(false)
    }

    fn same_plugin(&self, conn: &Conn) -> bool {
        let bound = self.inner.bound.borrow();
        bound
            .as_ref()
            .is_some_and(|(shared, _)| Rc::ptr_eq(shared, conn.shared()))
    }

    /// How many members it has.
    pub fn len(&self) -> usize {
        self.with_shared(|s, g| s.table.borrow_mut().group_len(g))
            .unwrap_or(0)
    }

    /// Whether it has no member.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The members now, in no particular order (a snapshot: the group may change while it
    /// is walked).
    pub fn members(&self) -> Vec<Conn> {
        self.with_shared(|s, g| s.table.borrow_mut().group_members(g))
            .unwrap_or_default()
    }

    /// Sends `bytes` as they are to every member. Never waits.
    ///
    /// # Errors
    ///
    /// None today; the `Result` is kept for errors of later framings.
    pub fn send(&self, bytes: &[u8]) -> Result<(), NetError> {
        self.with_shared(|s, g| s.table.borrow_mut().group_send(g, bytes, Encoding::AsIs))
            .unwrap_or(Ok(()))
    }

    /// Sends `payload`, framed by the group's framing (a line gets its `\n`), to every
    /// member. Never waits.
    ///
    /// # Errors
    ///
    /// [`NetError::InvalidFrame`] when the framing cannot frame the payload (a line holding
    /// a newline); [`NetError::Codec`] when a user codec panicked (it is not called again);
    /// nothing was sent.
    pub fn send_frame(&self, payload: &[u8]) -> Result<(), NetError> {
        match self.with_shared(|s, g| s.table.borrow_mut().group_send(g, payload, Encoding::Frame))
        {
            Some(result) => result,
            None => self.inner.options.framing.check(payload),
        }
    }

    /// Like [`send_frame`](Self::send_frame), for text.
    ///
    /// # Errors
    ///
    /// As [`send_frame`](Self::send_frame).
    pub fn send_line(&self, text: &str) -> Result<(), NetError> {
        self.send_frame(text.as_bytes())
    }

    /// Sends `bytes` as they are to every member but `except` ("everyone but the sender",
    /// a chat's line). It joins the round's batch as any send does, stored once for all:
    /// `except` gets the batch without these bytes, and the slow-member policy applies to it
    /// as to the others. `except` need not be a member (then everyone gets them). Never
    /// waits.
    ///
    /// # Errors
    ///
    /// None today, as [`send`](Self::send).
    pub fn send_except(&self, except: &Conn, bytes: &[u8]) -> Result<(), NetError> {
        self.with_shared(|s, g| {
            let except = std::ptr::eq(s, &**except.shared()).then(|| except.key());
            s.table
                .borrow_mut()
                .group_send_except(g, except, bytes, Encoding::AsIs)
        })
        .unwrap_or(Ok(()))
    }

    /// Like [`send_except`](Self::send_except), framing `payload` with the group's framing.
    ///
    /// ```no_run
    /// # use fibra_net::{Conn, Group, NetExt};
    /// # fn demo(h: &fibra_rt::Handle, room: &Group, conn: &Conn) {
    /// // eventlet's chat: each line a participant says goes to everyone else.
    /// while let Ok(line) = h.receive_line(conn) {
    ///     let _ = room.send_line_except(conn, &line);
    /// }
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`send_frame`](Self::send_frame).
    pub fn send_frame_except(&self, except: &Conn, payload: &[u8]) -> Result<(), NetError> {
        let sent = self.with_shared(|s, g| {
            let except = std::ptr::eq(s, &**except.shared()).then(|| except.key());
            s.table
                .borrow_mut()
                .group_send_except(g, except, payload, Encoding::Frame)
        });
        match sent {
            Some(result) => result,
            None => self.inner.options.framing.check(payload),
        }
    }

    /// Like [`send_frame_except`](Self::send_frame_except), for text.
    ///
    /// # Errors
    ///
    /// As [`send_frame`](Self::send_frame).
    pub fn send_line_except(&self, except: &Conn, text: &str) -> Result<(), NetError> {
        self.send_frame_except(except, text.as_bytes())
    }

    /// Sends what `f` writes, as it is (framing included), to every member: the bytes are
    /// built in place, in the group's batch, with no buffer of the caller's.
    ///
    /// `f` runs while the network plugin's table is borrowed: it must not call into the
    /// network (that panics). If `f` panics, nothing it wrote is sent, and the panic goes on.
    ///
    /// ```no_run
    /// # fn demo(room: &fibra_net::Group, handle: &str, text: &str) {
    /// use std::io::Write;
    /// room.send_with(|out| {
    ///     let _ = writeln!(out, "{handle} says: {text}");
    /// });
    /// # }
    /// ```
    pub fn send_with(&self, f: impl FnOnce(&mut Vec<u8>)) {
        let _ = self.with_shared(|s, g| s.table.borrow_mut().group_send_with(g, f));
    }

    /// Sends `goodbye` (framed, if given) to every member, then closes every member's
    /// connection gracefully (what was sent is written first) and empties the group. The
    /// members' tasklets see their connection lost with [`Lost::Closed`](crate::Lost::Closed).
    ///
    /// # Errors
    ///
    /// [`NetError::InvalidFrame`] when the framing cannot frame `goodbye`; the members are
    /// closed all the same.
    pub fn close_all(&self, goodbye: Option<&[u8]>) -> Result<(), NetError> {
        self.with_shared(|s, g| s.table.borrow_mut().group_close_all(g, goodbye))
            .unwrap_or(Ok(()))
    }

    /// What it has sent, and to how many.
    pub fn stats(&self) -> GroupStats {
        self.with_shared(|s, g| s.table.borrow_mut().group_stats(g))
            .unwrap_or_default()
    }
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("options", &self.inner.options)
            .field("stats", &self.stats())
            .finish()
    }
}
