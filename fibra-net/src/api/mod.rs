//! The tasklet-facing API: the handles a tasklet holds ([`Conn`](crate::Conn),
//! [`Listener`](crate::Listener), [`Group`](crate::Group)), the calls it makes on its handle
//! ([`NetExt`](crate::NetExt), a [`std::io`] adapter), the ops those calls yield, and their
//! settings (and the back-off policy), framing, statistics and errors.
//!
//! What a tasklet calls is here; what serves it is in `engine`.

pub(crate) mod backoff;
pub(crate) mod codec;
pub(crate) mod conn;
pub(crate) mod error;
pub(crate) mod ext;
pub(crate) mod group;
pub(crate) mod io;
pub mod ops;
pub(crate) mod options;
pub(crate) mod resolve;
pub(crate) mod stats;
