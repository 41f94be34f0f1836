//! Where to listen or connect: [`ToAddrs`] turns what a caller passes (an address, a list, a
//! `"host:port"` text) into addresses, and a host name is looked up on a blocking pool of
//! its own (a [`BlockingPool`] of four threads), never on the schedule's thread: lookups
//! that hang (a resolver that never answers) hold those four at most, never the threads of
//! [`TasksExt::unblock`](fibra_tasks::TasksExt::unblock)'s pool. An IP address given as
//! such, or as text, is parsed where it is: no lookup, no thread, no allocation.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, ToSocketAddrs};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Instant;

use fibra_rt::Handle;
use fibra_tasks::BlockingPool;

use crate::NetError;

/// Addresses to listen on or connect to, as [`ToAddrs`] gives them: known, or a host name to
/// look up.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Addrs {
    /// One address.
    One(SocketAddr),
    /// Several addresses, tried in order.
    Many(Vec<SocketAddr>),
    /// A host name and a port, to look up (off the schedule's thread).
    Host(String, u16),
}

/// What [`NetExt`](crate::NetExt)'s `listen` and `connect` take: the types
/// [`ToSocketAddrs`] takes (`SocketAddr`, `(IpAddr, u16)`, `"host:port"`, `(&str, u16)`, a
/// slice of addresses...), told apart so that a host name is looked up on another thread.
pub trait ToAddrs {
    /// The addresses, or the host name to look up.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidInput`] when text is neither an address nor `host:port`.
    fn to_addrs(&self) -> io::Result<Addrs>;
}

impl ToAddrs for Addrs {
    fn to_addrs(&self) -> io::Result<Addrs> {
        Ok(self.clone())
    }
}

impl ToAddrs for SocketAddr {
    fn to_addrs(&self) -> io::Result<Addrs> {
        Ok(Addrs::One(*self))
    }
}

macro_rules! to_addrs_as_socket_addr {
    ($($t:ty),*) => {$(
        impl ToAddrs for $t {
            fn to_addrs(&self) -> io::Result<Addrs> {
                Ok(Addrs::One(SocketAddr::from(*self)))
            }
        }
    )*};
}

to_addrs_as_socket_addr!(
    SocketAddrV4,
    SocketAddrV6,
    (IpAddr, u16),
    (Ipv4Addr, u16),
    (Ipv6Addr, u16)
);

impl ToAddrs for str {
    fn to_addrs(&self) -> io::Result<Addrs> {
        if let Ok(addr) = self.parse::<SocketAddr>() {
            return Ok(Addrs::One(addr));
        }
        let invalid = |what| io::Error::new(io::ErrorKind::InvalidInput, what);
        let (host, port) = self
            .rsplit_once(':')
            .ok_or_else(|| invalid("invalid socket address: no port (host:port)"))?;
        let port = port
            .parse::<u16>()
            .map_err(|_| invalid("invalid port value"))?;
        (host, port).to_addrs()
    }
}

impl ToAddrs for String {
    fn to_addrs(&self) -> io::Result<Addrs> {
        self.as_str().to_addrs()
    }
}

impl ToAddrs for (&str, u16) {
    fn to_addrs(&self) -> io::Result<Addrs> {
        let (host, port) = *self;
        Ok(match host.parse::<IpAddr>() {
            Ok(ip) => Addrs::One(SocketAddr::new(ip, port)),
            Err(_) => Addrs::Host(host.to_owned(), port),
        })
    }
}

impl ToAddrs for (String, u16) {
    fn to_addrs(&self) -> io::Result<Addrs> {
        (self.0.as_str(), self.1).to_addrs()
    }
}

impl ToAddrs for [SocketAddr] {
    fn to_addrs(&self) -> io::Result<Addrs> {
        Ok(match self {
            [one] => Addrs::One(*one),
            many => Addrs::Many(many.to_vec()),
        })
    }
}

impl ToAddrs for Vec<SocketAddr> {
    fn to_addrs(&self) -> io::Result<Addrs> {
        self.as_slice().to_addrs()
    }
}

impl<T: ToAddrs + ?Sized> ToAddrs for &T {
    fn to_addrs(&self) -> io::Result<Addrs> {
        (**self).to_addrs()
    }
}

/// A stand-in for the system's resolver: answers a (host, port) or passes (`None`).
type Resolver = dyn Fn(&str, u16) -> Option<io::Result<Vec<SocketAddr>>> + Send + Sync;

static RESOLVER: RwLock<Option<Arc<Resolver>>> = RwLock::new(None);

/// Puts `resolver` before the system's for every later lookup (`None`: the system's alone).
/// For tests (a slow name, a name with several addresses); not part of the API.
#[doc(hidden)]
pub fn set_test_resolver(resolver: Option<Arc<Resolver>>) {
    *RESOLVER.write().unwrap_or_else(|e| e.into_inner()) = resolver;
}

/// Looks `host` up (on the calling thread: the blocking pool's).
fn lookup_now(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let hook = RESOLVER.read().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some(answer) = hook.and_then(|hook| hook(host, port)) {
        return answer;
    }
    Ok((host, port).to_socket_addrs()?.collect())
}

impl Addrs {
    /// The addresses: a host name is looked up on the blocking pool while the tasklet parks
    /// (until `deadline`, if any).
    pub(crate) fn resolve(
        self,
        h: &Handle,
        deadline: Option<Instant>,
    ) -> Result<Resolved, NetError> {
        let found = match self {
            Addrs::One(addr) => return Ok(Resolved::One(addr)),
            Addrs::Many(addrs) => addrs,
            Addrs::Host(host, port) => {
                if fibra_rt::time::is_simulated() {
                    return Err(NetError::Io(io::Error::new(
                        io::ErrorKind::Unsupported,
                        format!(
                            "{host:?} is a name: a simulated network looks up no names \
                             (a real lookup would leave the simulation); use a host's address"
                        ),
                    )));
                }
                let pool = lookup_pool();
                let look = move || lookup_now(&host, port);
                match deadline {
                    Some(deadline) => pool.run_until(h, deadline, look)??,
                    None => pool.run(h, look)??,
                }
            }
        };
        if found.is_empty() {
            return Err(NetError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the address resolved to nothing",
            )));
        }
        Ok(Resolved::Many(found))
    }
}

/// Addresses ready to use, in order.
pub(crate) enum Resolved {
    One(SocketAddr),
    Many(Vec<SocketAddr>),
}

impl Resolved {
    pub(crate) fn as_slice(&self) -> &[SocketAddr] {
        match self {
            Resolved::One(addr) => std::slice::from_ref(addr),
            Resolved::Many(addrs) => addrs,
        }
    }
}

/// Threads that look names up at once, in every schedule of the process.
const LOOKUP_THREADS: usize = 4;
/// Lookups queued at most (more wait, parked, for a place).
const LOOKUP_QUEUE: usize = 1024;

/// The pool that looks names up: apart from `unblock`'s, so that hung lookups cannot take
/// the threads other blocking work needs.
fn lookup_pool() -> &'static BlockingPool {
    static POOL: OnceLock<BlockingPool> = OnceLock::new();
    POOL.get_or_init(|| BlockingPool::new(LOOKUP_THREADS, LOOKUP_QUEUE))
}
