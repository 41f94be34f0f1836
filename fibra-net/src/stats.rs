//! `NetStats`: what the network plugin holds and has done, for tests and monitoring.

/// Connection counts and buffer use, for tests and monitoring. More fields may come: read
/// the ones you need.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NetStats {
    /// Connections in the table (open, closing, or closed with live handles).
    pub connections: usize,
    /// Listeners in the table.
    pub listeners: usize,
    /// Sockets open (registered with the poller).
    pub sockets: usize,
    /// Tasklets waiting on a network op.
    pub waiting: usize,
    /// Bytes queued to send, over all connections.
    pub queued: usize,
    /// Buffers kept for reuse.
    pub pooled_buffers: usize,
    /// Timers armed (read and close timeouts, flush delays, accept back-off): removed with
    /// their connection or listener, so never more than four per entry, and in a quiet
    /// server with read timeouts one per connection.
    pub timers: usize,
    /// Read system calls made, since the plugin was created.
    pub reads: u64,
    /// Write system calls made, since the plugin was created.
    pub writes: u64,
    /// Times accepting paused because the process or system was out of file descriptors.
    pub accept_pauses: u64,
    /// Groups alive (see [`Group`](crate::Group)).
    pub groups: usize,
}

/// The counters the table keeps as it works; the rest of [`NetStats`] is counted on demand.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counters {
    pub(crate) sockets: usize,
    pub(crate) reads: u64,
    pub(crate) writes: u64,
    pub(crate) accept_pauses: u64,
}
