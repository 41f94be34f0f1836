//! `NetStats`: what the network plugin holds and has done, for tests and monitoring;
//! `GroupStats`: what one group has sent.

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
    /// their connection or listener, so never more than five per entry (the queue holding at most twice the armed ones, plus 64), and in a quiet
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
    /// Connections idle without a tasklet: their input watch is armed
    /// ([`OnInput`](crate::ops::OnInput)).
    pub watching: usize,
    /// Worker tasklets waiting for a watched connection's input (at most four; none once
    /// no watch is armed). Not counted in `waiting`.
    pub idle_workers: usize,
}

/// The counters the table keeps as it works; the rest of [`NetStats`] is counted on demand.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counters {
    pub(crate) sockets: usize,
    pub(crate) reads: u64,
    pub(crate) writes: u64,
    pub(crate) accept_pauses: u64,
}

/// What a group has sent, and to how many.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupStats {
    /// Members now.
    pub members: usize,
    /// Batches sealed: a batch is what was sent to the group between two membership changes
    /// or direct sends to a member, at most a round's worth.
    pub batches: u64,
    /// Bytes sent to the group (each stored once, however many members).
    pub bytes: u64,
    /// Batches queued to members: a batch to 1,000 members counts 1,000.
    pub deliveries: u64,
    /// Batches not queued to a member at its send limit ([`SlowPolicy::Drop`](crate::SlowPolicy::Drop)).
    pub dropped: u64,
    /// Members cut off for not reading ([`SlowPolicy::Disconnect`](crate::SlowPolicy::Disconnect)).
    pub cut_off: u64,
}
