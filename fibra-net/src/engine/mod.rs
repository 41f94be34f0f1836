//! The engine: the plugin that serves the API's ops, and the table of sockets it serves them
//! from (split by concept: input, output, connect, listener, lifecycle, groups, timers,
//! waiters, the poll round), the pooled buffers, what the plugin and the handles share, the
//! one checked door into user codecs, and the system calls.
//!
//! The engine names the API's vocabulary (errors, options, codecs, statistics) and, in one
//! import circle (`scripts/import_cycles.py` finds no other in the crate), its handles:
//! the table is one type whose parts live in its child files (each extends `Table`, and
//! `table/mod.rs` holds their state), and it resumes tasklets with the ops' outputs (an
//! accepted or connected [`Conn`](crate::Conn)), while those handles and ops reach the table
//! through `Shared`: so `api/conn.rs`, `api/ops.rs`, `shared.rs` and nine files of
//! `table/` name each other, and no other file joins them.

pub(crate) mod buffer;
pub(crate) mod codec_door;
pub(crate) mod plugin;
pub(crate) mod shared;
pub(crate) mod sys;
pub(crate) mod table;
