//! The engine: the plugin that serves the API's ops, and the table of sockets it serves them
//! from (split by concept: input, output, connect, listener, lifecycle, groups, timers,
//! waiters, the poll round), the pooled buffers, what the plugin and the handles share, the
//! one checked door into user codecs, and the system calls.

pub(crate) mod buffer;
pub(crate) mod codec_door;
pub(crate) mod plugin;
pub(crate) mod shared;
pub(crate) mod sys;
pub(crate) mod table;
