//! The TLS filter of a connection: rustls between the socket and the connection's buffers.
//!
//! Input: ciphertext is read from the socket into rustls (`read_tls`), processed
//! (`process_new_packets`: handshake messages, alerts, decryption), and the decrypted bytes
//! are moved into the connection's input buffer, where the codec cuts frames as for a plain
//! connection. Output: the output queue (the connection's own bytes and its groups' shared
//! segments) is encrypted as it is written (`writer`, a gathering write of its slices), and
//! rustls's records go to the socket (`write_tls`, a gathering write too).
//!
//! The rest of the table sees a TLS connection as a plain one with three more facts: while
//! its handshake runs it reads ahead (the handshake must progress whoever receives), a
//! client's connect waits for the end of the handshake, and its output is written only once
//! rustls holds no record either (`close_notify` last, on a graceful close).
//!
//! Bounds: rustls keeps at most 16 KiB of decrypted bytes (its `read_tls` refuses more until
//! they are taken) and one record of ciphertext (plus one handshake message of up to 64 KiB
//! while the handshake runs); its encrypted output is capped at `session::TLS_OUT_LIMIT` (the
//! queue's bytes are encrypted as the socket takes them); a connection's reads count
//! against the round's read budget as a plain one's do.

// The rustls session of one connection and its socket adapters.
#[cfg(feature = "tls")]
mod session;
// The table's TLS steps: handshake start and deadline, reading, writing, losses.
#[cfg(feature = "tls")]
mod filter;
// Without the `tls` feature: a state with no value, and steps never taken.
#[cfg(not(feature = "tls"))]
mod disabled;

use super::{conn_mut, Table};
use crate::engine::shared::Key;
use crate::tls::TlsInfo;

#[cfg(feature = "tls")]
pub(super) use session::Tls;

#[cfg(not(feature = "tls"))]
pub(super) use disabled::Tls;

impl Table {
    /// What a TLS connection negotiated; `None` for a plain one.
    pub(crate) fn tls_info(&mut self, key: Key) -> Option<TlsInfo> {
        conn_mut(&mut self.entries, key)?
            .tls
            .as_ref()
            .map(|t| t.info())
    }
}
