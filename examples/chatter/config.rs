//! How the room treats its members: the limits and timeouts every connection gets.

use std::time::Duration;

use fibra::net::{ConnOptions, Framing};

/// How the room treats its members.
/// TCP keepalive on every connection: a member whose host crashed or dropped off the network
/// while the room was quiet (no FIN, no RST: nothing comes) is found out within about two
/// minutes, leaves, and frees its handle; without it, the member stayed for good and its
/// handle was taken for good.
pub(crate) const KEEPALIVE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The longest line (bytes, without its line end); a longer one ends the connection.
    pub(crate) max_line: usize,
    /// The most output queued to one member; a member that does not read past it is cut off.
    pub(crate) max_outbound: usize,
    /// How long a new connection has to choose a handle; `None`: forever.
    pub(crate) login_timeout: Option<Duration>,
    /// How long a closing connection may take to write its last output.
    pub(crate) close_timeout: Duration,
    /// How long a member's output may wait to be gathered into one write (see
    /// `ConnOptions::with_flush_delay`): the broadcast's cost per line against its latency.
    /// An answer to a connection that just spoke (the login dialogue, `/who`) is not delayed.
    pub(crate) flush_delay: Duration,
    /// Silent connections hold no tasklet (`--idle-members stackless`, the default); `false`:
    /// a tasklet each (`stackful`).
    pub(crate) stackless_members: bool,
    /// The most rooms besides the lobby (`/join` of a new room past it is refused).
    pub(crate) max_rooms: usize,
    /// Origins (`https://chat.example.com`) whose pages may open the WebSocket besides the
    /// server's own (`--web-origin`): a page served through a reverse proxy.
    #[allow(dead_code)] // read by web.rs, which host_loop's copy of the chatter leaves out
    pub(crate) web_origins: Vec<String>,
    /// The bytes a second one member may say (lines and commands, each with its line end),
    /// saved up to a second's worth; a member that says more is held up. 0: no limit.
    pub(crate) max_rate: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_line: 8 * 1024,
            max_outbound: 1024 * 1024,
            login_timeout: Some(Duration::from_secs(60)),
            close_timeout: Duration::from_secs(5),
            flush_delay: Duration::from_millis(10),
            stackless_members: true,
            max_rooms: super::protocol::MAX_ROOMS,
            max_rate: 1024 * 1024,
            web_origins: Vec::new(),
        }
    }
}

impl Config {
    /// What every member's connection gets: its send limit, close timeout and flush delay.
    pub(crate) fn conn_options(&self) -> ConnOptions {
        ConnOptions::new()
            .with_keepalive(Some(KEEPALIVE))
            .with_send_limit(self.max_outbound)
            .with_close_timeout(self.close_timeout)
            .with_flush_delay(self.flush_delay)
    }

    /// What a telnet member's connection gets: those, and lines up to `max_line`.
    pub(crate) fn telnet_options(&self) -> ConnOptions {
        self.conn_options()
            .with_framing(Framing::Lines)
            .with_max_frame(self.max_line)
    }
}
