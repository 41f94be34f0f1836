//! fibra's network plugin. Its operations (listen, accept, connect, receive, send, close,
//! on_lost_connection) arrive with the network issue; this crate is a placeholder so that the
//! workspace layout is fixed from the start.

pub use fibra_rt;
