//! A running chat server ([`Chatter`]) and its doors: listeners whose connections become
//! telnet sessions, or the connections a hand-off brings to this thread. Another kind of
//! listener (TLS) is one more door: [`Chatter::accept`] serves any listener's connections
//! as sessions of the same room. The web page is `web.rs`'s door, the stop `shutdown.rs`'s.

use std::net::SocketAddr;
use std::rc::Rc;

use fibra::net::{
    Conn, ConnOptions, Handed, ListenOptions, Listener, LoadToken, NetError, NetExt, NetPlugin,
};
use fibra::tasks::{RemoteReceiver, TasksExt};
use fibra::{Handle, Schedule, SpawnOptions};

use super::alone::Alone;
use super::config::Config;
use super::room::{Chat, RoomStats, LOG};
use super::session::{session, Peer};

/// A running chat server: the room its sessions share, and the tasklets that serve it.
#[derive(Debug)]
pub(crate) struct Chatter {
    pub(super) chat: Rc<Chat>,
    pub(super) addr: SocketAddr,
    pub(super) config: Config,
}

impl Chatter {
    /// Listens on `addr` and serves the chat on `schedule` (which needs the tasks and network
    /// plugins), a room that this schedule serves alone. A bad address is an error here.
    pub(crate) fn start(
        schedule: &mut Schedule,
        addr: &str,
        config: Config,
    ) -> Result<Chatter, Box<dyn std::error::Error>> {
        let listener = listen(schedule, addr, config.telnet_options(), false)?;
        let mut chatter = Chatter {
            chat: Chat::new(Box::new(Alone)),
            addr: listener.local_addr(),
            config,
        };
        chatter.chat.room.borrow_mut().max_rooms = chatter.config.max_rooms;
        chatter.chat.room.borrow_mut().max_rate = chatter.config.max_rate;
        chatter.accept(schedule, listener)?;
        Ok(chatter)
    }

    /// Serves each connection `listener` accepts as a telnet session in this room, from a
    /// tasklet that the room's shutdown ends.
    pub(crate) fn accept(
        &mut self,
        schedule: &mut Schedule,
        listener: Listener,
    ) -> Result<(), fibra::rt::Error> {
        let (chat, config) = (Rc::clone(&self.chat), self.config.clone());
        let acceptor = schedule.spawn_named("chatter acceptor", move |h| {
            accept_loop(h, &chat, &listener, &config)
        })?;
        self.chat.room.borrow_mut().tasklets.push(acceptor);
        Ok(())
    }

    /// The address it listens on.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The room's counters.
    pub(crate) fn stats(&self) -> RoomStats {
        self.chat.room.borrow().stats()
    }

    /// The room's counters, read by a tasklet or anything else that outlives this value.
    pub(crate) fn counters(&self) -> impl Fn() -> RoomStats + 'static {
        let chat = Rc::clone(&self.chat);
        move || chat.room.borrow().stats()
    }
}

/// Listens on `addr` from the host, its connections with `conn` (and `SO_REUSEPORT` with
/// `reuse_port`): a bad address is an error at once.
pub(crate) fn listen(
    schedule: &Schedule,
    addr: &str,
    conn: ConnOptions,
    reuse_port: bool,
) -> Result<Listener, Box<dyn std::error::Error>> {
    let net = schedule
        .plugin::<NetPlugin>()
        .ok_or("the chatter needs the NetPlugin")?;
    let options = ListenOptions::new()
        .with_conn(conn)
        .with_reuse_port(reuse_port);
    Ok(net.listen_with(addr, options)?)
}

fn accept_loop(h: &Handle, chat: &Rc<Chat>, listener: &Listener, config: &Config) {
    loop {
        let (conn, peer) = match h.accept(listener) {
            Ok(accepted) => accepted,
            Err(NetError::Closed) => return,
            Err(e) => {
                log::warn!(target: LOG, "accept: {e}");
                continue;
            }
        };
        serve_conn(h, chat, conn, peer, config, None);
    }
}

/// With a hand-off: adopts the connections handed to this thread and serves each.
pub(crate) fn adopt_loop(
    h: &Handle,
    chat: &Rc<Chat>,
    handed: &RemoteReceiver<Handed>,
    config: &Config,
) {
    let options = config.telnet_options();
    while let Some(Handed { stream, peer, load }) = handed.receive(h) {
        match h.adopt(stream, options.clone()) {
            Ok(conn) => serve_conn(h, chat, conn, peer, config, Some(load)),
            Err(e) => log::warn!(target: LOG, "cannot serve {peer}: {e}"),
        }
    }
}

/// Serves `conn` on a session tasklet of its own; `load` (a hand-off's share) goes with it.
pub(crate) fn serve_conn(
    h: &Handle,
    chat: &Rc<Chat>,
    conn: Conn,
    peer: SocketAddr,
    config: &Config,
    load: Option<LoadToken>,
) {
    log::debug!(target: LOG, "{peer} connected");
    let (chat, login_timeout) = (Rc::clone(chat), config.login_timeout);
    let stackless = config.stackless_members;
    let options = SpawnOptions::new().name("chatter session");
    if let Err(e) = h.spawn_detached_with(options, move |h| {
        let by = login_timeout.map(|t| fibra::rt::time::now() + t);
        if stackless {
            super::stackless::session(h, &chat, &conn, Peer::Telnet, by, load);
            return;
        }
        let _load = load;
        session(h, &chat, &conn, Peer::Telnet, by);
        log::debug!(target: LOG, "{peer} left");
    }) {
        log::warn!(target: LOG, "no tasklet for {peer}: {e}"); // the connection closes
    }
}
