//! `Service`: named servers and clients, started and stopped together, and notified by name
//! (gnet's `Service` and `notify_factory('*', ...)`).

use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;

use crate::{NetError, ReconnectingClient, Server, Spawner};

/// One member of a [`Service`].
#[derive(Clone, Debug)]
pub enum Member {
    /// A server.
    Server(Server),
    /// A reconnecting client.
    Client(ReconnectingClient),
}

impl Member {
    fn start(&self, spawner: &mut Spawner<'_>) -> Result<(), NetError> {
        match (self, spawner) {
            (Member::Server(s), Spawner::Host(schedule)) => s.start(&mut **schedule),
            (Member::Server(s), Spawner::Tasklet(h)) => s.start(*h),
            (Member::Client(c), Spawner::Host(schedule)) => c.start(&mut **schedule),
            (Member::Client(c), Spawner::Tasklet(h)) => c.start(*h),
        }
    }

    /// Stops it.
    pub fn stop(&self) {
        match self {
            Member::Server(s) => s.stop(),
            Member::Client(c) => c.stop(),
        }
    }

    /// Whether it runs.
    pub fn is_running(&self) -> bool {
        match self {
            Member::Server(s) => s.is_running(),
            Member::Client(c) => c.is_running(),
        }
    }

    fn notify(&self, message: Rc<str>) -> bool {
        match self {
            Member::Server(s) => s.notify(message),
            Member::Client(c) => c.notify(message),
        }
    }
}

impl From<Server> for Member {
    fn from(server: Server) -> Self {
        Member::Server(server)
    }
}

impl From<ReconnectingClient> for Member {
    fn from(client: ReconnectingClient) -> Self {
        Member::Client(client)
    }
}

/// Whom a [`Service::notify`] reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target<'a> {
    /// Every member (gnet's `"*"`).
    All,
    /// The member of this name.
    One(&'a str),
    /// The members of these names.
    Some(&'a [&'a str]),
}

impl<'a> From<&'a str> for Target<'a> {
    /// `"*"` is every member; any other string, the member of that name.
    fn from(name: &'a str) -> Self {
        if name == "*" {
            Target::All
        } else {
            Target::One(name)
        }
    }
}

impl<'a> From<&'a [&'a str]> for Target<'a> {
    fn from(names: &'a [&'a str]) -> Self {
        Target::Some(names)
    }
}

/// Named servers and reconnecting clients, started and stopped together, and told things by
/// name: each notification is queued for its member's own tasklet and handed, in order, to
/// its factory's (or, for a connected client, its protocol's) `on_notify`. A member that does
/// not handle notifications ignores them.
///
/// ```
/// use fibra_net::{Backoff, ConnOptions, Factory, NetPlugin, Protocol, ReconnectingClient};
/// use fibra_net::{Server, Service, Transport};
/// use fibra_rt::{Handle, Schedule};
///
/// struct Quiet;
/// impl Protocol for Quiet {
///     fn frame_received(&mut self, _h: &Handle, _t: &Transport, _frame: &[u8]) {}
/// }
/// struct Quiets;
/// impl Factory for Quiets {
///     type Protocol = Quiet;
///     fn build_protocol(&mut self, _peer: std::net::SocketAddr) -> Option<Quiet> {
///         Some(Quiet)
///     }
///     fn on_notify(&mut self, _h: &Handle, message: &str, _connections: &[Transport]) {
///         log::info!("told {message}");
///     }
/// }
///
/// let mut schedule = Schedule::new();
/// schedule.add_plugin(fibra_tasks::TasksPlugin::new())?;
/// schedule.add_plugin(NetPlugin::new()?)?;
/// let listener = schedule.plugin::<NetPlugin>().unwrap().listen("127.0.0.1:0")?;
/// let addr = listener.local_addr();
///
/// let mut service = Service::new();
/// service.add("server", Server::new(listener, Quiets))?;
/// let client = ReconnectingClient::new(addr, ConnOptions::new(), Backoff::new(), Quiets);
/// service.add("client", client.clone())?;
/// assert!(service.add("server", client).is_err()); // names are unique
/// service.start_all(&mut schedule)?;
/// assert_eq!(service.notify("*", "hello")?, 2);
/// assert!(service.notify("nobody", "hello").is_err());
/// service.stop_all();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Default)]
pub struct Service {
    members: BTreeMap<String, Member>,
}

impl Service {
    /// An empty service.
    pub fn new() -> Service {
        Service::default()
    }

    /// Adds `member` as `name` (not started: see [`start_all`](Self::start_all), or start it
    /// first).
    ///
    /// # Errors
    ///
    /// [`NetError::NameTaken`] if a member has that name (nothing changes).
    pub fn add(&mut self, name: &str, member: impl Into<Member>) -> Result<(), NetError> {
        if self.members.contains_key(name) {
            return Err(NetError::NameTaken {
                name: name.to_owned(),
            });
        }
        self.members.insert(name.to_owned(), member.into());
        Ok(())
    }

    /// The member named `name`.
    pub fn get(&self, name: &str) -> Option<&Member> {
        self.members.get(name)
    }

    /// Removes the member named `name`, stopped.
    pub fn remove(&mut self, name: &str) -> Option<Member> {
        let member = self.members.remove(name)?;
        member.stop();
        Some(member)
    }

    /// The members' names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.members.keys().map(String::as_str)
    }

    /// How many members it has.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Starts every member that is not running.
    ///
    /// # Errors
    ///
    /// The first member's error (the members before it are started), such as a server
    /// started before.
    pub fn start_all<'a>(&self, spawner: impl Into<Spawner<'a>>) -> Result<(), NetError> {
        let mut spawner = spawner.into();
        for member in self.members.values().filter(|m| !m.is_running()) {
            member.start(&mut spawner)?;
        }
        Ok(())
    }

    /// Stops every member.
    pub fn stop_all(&self) {
        self.members.values().for_each(Member::stop);
    }

    /// Queues `message` for each member `target` names (`"*"`: all); returns how many it was
    /// queued for (a member that is not running misses it, and so does one with 1,024
    /// notifications waiting, logged).
    ///
    /// # Errors
    ///
    /// [`NetError::UnknownName`] for a name no member has (nobody is told then).
    pub fn notify<'a>(
        &self,
        target: impl Into<Target<'a>>,
        message: &str,
    ) -> Result<usize, NetError> {
        let target = target.into();
        let names: Vec<&str> = match target {
            Target::All => self.names().collect(),
            Target::One(name) => vec![name],
            Target::Some(names) => names.to_vec(),
        };
        if let Some(missing) = names.iter().find(|n| !self.members.contains_key(**n)) {
            return Err(NetError::UnknownName {
                name: (*missing).to_owned(),
            });
        }
        let message: Rc<str> = Rc::from(message);
        Ok(names
            .iter()
            .filter(|n| self.members[**n].notify(Rc::clone(&message)))
            .count())
    }
}

impl fmt::Debug for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.members.iter()).finish()
    }
}
