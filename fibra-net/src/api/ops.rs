//! The ops the network plugin serves. Most code yields them through
//! [`NetExt`](crate::NetExt); they are public so that a tasklet can put a deadline on any of
//! them with `Handle::yield_op_until` or `TasksExt::timeout`.
//!
//! ```no_run
//! use std::time::Duration;
//! use fibra_net::{ops, Conn};
//! use fibra_rt::Handle;
//!
//! fn receive_within(h: &Handle, conn: &Conn) -> Option<Vec<u8>> {
//!     // The receive is withdrawn if no frame comes within a second.
//!     h.yield_op_timeout(ops::Receive::new(conn), Duration::from_secs(1)).ok()?.ok()
//! }
//! ```

use std::fmt;
use std::net::SocketAddr;

use fibra_rt::Op;

use crate::api::conn::{Conn, Listener};
use crate::api::error::{Lost, NetError};
use crate::api::options::{ConnOptions, ListenOptions};
use crate::engine::shared::ReceiveMode;

/// Listen on an address. Output: the listener.
#[derive(Debug)]
pub struct Listen {
    pub(crate) addr: SocketAddr,
    pub(crate) options: ListenOptions,
}

impl Listen {
    /// Listen on `addr` with `options`.
    pub fn new(addr: SocketAddr, options: ListenOptions) -> Self {
        Listen { addr, options }
    }
}

impl Op for Listen {
    type Output = Result<Listener, NetError>;
    const PLUGIN: Option<&'static str> = Some("fibra_net::NetPlugin::new()?");
}

/// Accept the next connection. Output: the connection and the peer's address.
#[derive(Debug)]
pub struct Accept {
    pub(crate) listener: Listener,
}

impl Accept {
    /// Accept from `listener`.
    pub fn new(listener: &Listener) -> Self {
        Accept {
            listener: listener.clone(),
        }
    }
}

impl Op for Accept {
    type Output = Result<(Conn, SocketAddr), NetError>;
    const PLUGIN: Option<&'static str> = Some("fibra_net::NetPlugin::new()?");
}

/// Connect to an address without blocking the thread. Output: the connection.
#[derive(Debug)]
pub struct Connect {
    pub(crate) addr: SocketAddr,
    pub(crate) options: ConnOptions,
    pub(crate) local: Option<SocketAddr>,
}

impl Connect {
    /// Connect to `addr`; the connection gets `options`.
    pub fn new(addr: SocketAddr, options: ConnOptions) -> Self {
        Connect {
            addr,
            options,
            local: None,
        }
    }

    /// Binds the socket to `local` before connecting (a source address of one's choice:
    /// 127.0.0.2, 127.0.0.3... each give a load generator another ~28,000 ports to the same
    /// server). Port 0: the system picks one. An address that cannot be bound fails the
    /// connect with [`NetError::BindSource`](crate::NetError::BindSource).
    pub fn bind(mut self, local: SocketAddr) -> Self {
        self.local = Some(local);
        self
    }
}

impl Op for Connect {
    type Output = Result<Conn, NetError>;
    const PLUGIN: Option<&'static str> = Some("fibra_net::NetPlugin::new()?");
}

/// Take over a connected TCP stream accepted or connected elsewhere (another thread's
/// acceptor, say): it becomes this plugin's connection with `options`. Output: the
/// connection.
#[derive(Debug)]
pub struct Adopt {
    pub(crate) stream: std::net::TcpStream,
    pub(crate) options: ConnOptions,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<std::sync::Arc<rustls::ServerConfig>>,
}

impl Adopt {
    /// Adopt `stream`; the connection gets `options`.
    pub fn new(stream: std::net::TcpStream, options: ConnOptions) -> Self {
        Adopt {
            stream,
            options,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Adopt `stream`, an accepted connection, as a TLS server's with `config` (its
    /// handshake starts now, bounded by the options' handshake timeout).
    #[cfg(feature = "tls")]
    pub fn tls(
        stream: std::net::TcpStream,
        options: ConnOptions,
        config: std::sync::Arc<rustls::ServerConfig>,
    ) -> Self {
        Adopt {
            stream,
            options,
            tls: Some(config),
        }
    }
}

impl Op for Adopt {
    type Output = Result<Conn, NetError>;
    const PLUGIN: Option<&'static str> = Some("fibra_net::NetPlugin::new()?");
}

/// Receive the next frame. Output: the frame, in the buffer the op was given (or a new one).
pub struct Receive {
    pub(crate) conn: Conn,
    pub(crate) buf: Vec<u8>,
    pub(crate) mode: ReceiveMode,
}

impl Receive {
    /// Receive the next frame of `conn`, by its codec.
    pub fn new(conn: &Conn) -> Self {
        Self::into_buf(conn, Vec::new())
    }

    /// Like [`new`](Self::new), returning the frame in `buf` (cleared first), so that a
    /// loop of receives allocates nothing.
    pub fn into_buf(conn: &Conn, buf: Vec<u8>) -> Self {
        Receive {
            conn: conn.clone(),
            buf,
            mode: ReceiveMode::Frame,
        }
    }

    /// Receive up to `max` bytes as they arrived, past the codec (what `Read` does).
    pub fn raw(conn: &Conn, buf: Vec<u8>, max: usize) -> Self {
        Receive {
            conn: conn.clone(),
            buf,
            mode: ReceiveMode::Raw(max.max(1)),
        }
    }
}

impl fmt::Debug for Receive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receive")
            .field("conn", &self.conn)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Op for Receive {
    type Output = Result<Vec<u8>, NetError>;
    const PLUGIN: Option<&'static str> = Some("fibra_net::NetPlugin::new()?");
}

/// Declares an op that names only a connection.
macro_rules! conn_op {
    ($(#[$doc:meta])* $name:ident, $new_doc:literal, $output:ty) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name {
            pub(crate) conn: Conn,
        }

        impl $name {
            #[doc = $new_doc]
            pub fn new(conn: &Conn) -> Self {
                $name { conn: conn.clone() }
            }
        }

        impl Op for $name {
            type Output = $output;
            const PLUGIN: Option<&'static str> = Some("fibra_net::NetPlugin::new()?");
        }
    };
}

conn_op!(
    /// Wait until the connection's output is below its send limit (what a parked `send`
    /// does).
    Drain,
    "Wait for room in `conn`'s output.",
    Result<(), NetError>
);
conn_op!(
    /// Wait until every queued byte was written to the socket.
    Flush,
    "Wait until `conn`'s output is empty.",
    Result<(), NetError>
);
conn_op!(
    /// Close gracefully: write what is queued (within the close timeout), then FIN.
    Close,
    "Close `conn`.",
    Result<(), NetError>
);
conn_op!(
    /// Close at once with a reset, dropping queued output.
    Abort,
    "Abort `conn`.",
    ()
);
conn_op!(
    /// Wait until the connection is lost, for any reason. Output: why.
    OnLost,
    "Watch `conn`.",
    Lost
);
conn_op!(
    /// Wait until the connection is closed both ways: its input ended (or was lost) and its
    /// output ended too (a close written out, an abort, a failed write). Output: how its
    /// output ended, [`Lost::Closed`] for a close. What a half-close kept open waits for.
    OnClosed,
    "Wait for `conn`'s close.",
    Lost
);

/// Take the next frame if one is here now, never parking (for a connection served without a
/// tasklet of its own while it is idle; see [`OnInput`]). Output: what was found.
///
/// [`NetExt::try_receive`](crate::NetExt::try_receive) gives the same answers, by a call on
/// the table where a raw read serves it (no yield, no stack switch).
pub struct TryReceive {
    pub(crate) conn: Conn,
    pub(crate) buf: Vec<u8>,
    pub(crate) mode: ReceiveMode,
}

impl TryReceive {
    /// The next frame of `conn` by its codec, in `buf` (cleared first), if it is here.
    pub fn into_buf(conn: &Conn, buf: Vec<u8>) -> Self {
        TryReceive {
            conn: conn.clone(),
            buf,
            mode: ReceiveMode::Frame,
        }
    }

    /// Up to `max` bytes as they arrived, past the codec, if any are here.
    pub fn raw(conn: &Conn, buf: Vec<u8>, max: usize) -> Self {
        TryReceive {
            conn: conn.clone(),
            buf,
            mode: ReceiveMode::Raw(max.max(1)),
        }
    }
}

impl fmt::Debug for TryReceive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryReceive")
            .field("conn", &self.conn)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// What a [`TryReceive`] found.
#[derive(Debug)]
pub enum Tried {
    /// A frame (or raw bytes), in the buffer the op was given.
    Frame(Vec<u8>),
    /// Nothing now; the buffer the op was given, back.
    Nothing(Vec<u8>),
    /// Nothing more will come (as [`Receive`] fails).
    Failed(NetError),
}

impl Op for TryReceive {
    type Output = Tried;
    const PLUGIN: Option<&'static str> = Some("fibra_net::NetPlugin::new()?");
}

/// The body of a tasklet that [`OnInput`] starts: a boxed `FnOnce(&Handle)` closure, or a
/// state that runs itself. [`run`](Self::run) takes the box, so that a job can arm the same
/// box again (`OnInput::new(&conn, name, self)`): an idle connection's state is boxed once,
/// not once per activation (a closure capturing it would be boxed anew each time).
pub trait InputJob: 'static {
    /// Runs on the worker tasklet that input handed it to.
    fn run(self: Box<Self>, h: &fibra_rt::Handle);
}

impl<F: FnOnce(&fibra_rt::Handle) + 'static> InputJob for F {
    fn run(self: Box<Self>, h: &fibra_rt::Handle) {
        (*self)(h);
    }
}

/// Arm `conn`'s input watch, once: when input comes (bytes, or the connection's end), or
/// when it is closed or aborted, `job` runs on one of the plugin's worker tasklets (an idle
/// one, or one started for it and named `name`), which goes on to other connections' jobs
/// when it returns. Until then the connection holds no tasklet and no stack: how a server
/// keeps a million idle connections. If input is there already, `job` starts at once. Never
/// parks; the caller usually ends right after (a job arming its own connection's watch
/// again returns, and its worker takes the next job).
///
/// A job that parks keeps its worker until it returns; the jobs that fire meanwhile go to
/// other workers. A job's panic ends that job (it is logged), not its worker. A few workers
/// serve any number of connections, so their stacks stay in the cache and an activation
/// costs no spawn; idle workers end once no watch is armed.
///
/// One watch per connection: a second replaces the first (which is dropped). A parked
/// [`Receive`] on the same connection is served first; the watch waits.
///
/// [`NetExt::on_input`](crate::NetExt::on_input) arms it by a call on the table while nothing
/// is there to fire it (no yield), and yields this op otherwise.
///
/// A watch is not a tasklet, but it is work: while one is armed the plugin
/// [has work](fibra_rt::Plugin::has_work), so `Schedule::run` and `run_for` go on serving
/// it when no tasklet is left, and return once every watched connection has ended (a
/// watch lasts no longer than its connection: its loss, close or abort spawns the job).
pub struct OnInput {
    pub(crate) conn: Conn,
    pub(crate) job: Box<dyn InputJob>,
    pub(crate) name: &'static str,
}

impl OnInput {
    /// Runs `job` on a tasklet named `name` when `conn` has input.
    pub fn new(conn: &Conn, name: &'static str, job: Box<dyn InputJob>) -> Self {
        OnInput {
            conn: conn.clone(),
            job,
            name,
        }
    }
}

impl fmt::Debug for OnInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnInput")
            .field("conn", &self.conn)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Op for OnInput {
    /// `Err` when the connection is another plugin's, or gone (the job is dropped).
    type Output = Result<(), NetError>;
    const PLUGIN: Option<&'static str> = Some("fibra_net::NetPlugin::new()?");
}
