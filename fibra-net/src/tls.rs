//! TLS on fibra-net's connections: what a TLS connection tells about itself ([`TlsInfo`])
//! and why one was lost ([`TlsLost`]).
//!
//! TLS is a filter of the connection table, not a stream wrapped around a connection: bytes
//! read from a TLS connection's socket are decrypted before its codec sees them, and what
//! its output queue holds is encrypted as it is written. So everything a plain connection
//! does works the same over TLS: framing, [`Conn::try_send`](crate::Conn::try_send) from
//! host code, a [`Group`](crate::Group)'s shared batch (each TLS member encrypts it on its
//! own write), the flush delay, read timeouts, half-close (a peer's `close_notify` is its
//! end of stream) and [`on_lost_connection`](crate::NetExt::on_lost_connection). A plain
//! connection pays one branch per read and per write for it.
//!
//! With the `tls` feature (on by default), a listener takes a
//! [`rustls::ServerConfig`](https://docs.rs/rustls/0.23/rustls/struct.ServerConfig.html)
//! (`NetExt::listen_tls`, or `ListenOptions::with_tls`), and a client connection a
//! `ClientConfig` and the server's name (`NetExt::connect_tls`, or `ConnOptions::with_tls`,
//! which is how a [`ReconnectingClient`](crate::ReconnectingClient) or a
//! [`Pool`](crate::Pool) connects over TLS). The rustls crate is re-exported as
//! `fibra_net::rustls`, so the configs are built with the version fibra-net uses;
//! `server_config_from_pem` and `client_config_from_pem` build the usual ones from PEM, with
//! fibra-net's provider (`provider()`, ring).
//!
//! - A server's connection is handed out by `accept` at once; its handshake runs as its
//!   bytes come, and a receive waits for the first decrypted frame. A client's `connect_tls`
//!   returns once the handshake is done (a certificate the client refuses fails it).
//! - The handshake must end within the connection's handshake timeout
//!   (`ConnOptions::with_handshake_timeout`, 10 s by default), or the connection is lost
//!   with [`TlsLost::HandshakeTimedOut`]: a peer that drips its hello a byte a second holds
//!   a connection that long at most.
//! - A graceful close (`close`, `Conn::close`, the last `Conn` dropped) sends `close_notify`
//!   after the queued output; an abort or a reset does not. A close (or a graceful stop)
//!   before the handshake is done lets the handshake go on, so the output queued before it
//!   (a greeting) still goes, encrypted; the handshake timeout still applies, and a
//!   handshake that fails ends the close at once with its reason. A peer that ends the TCP
//!   stream without a `close_notify` is lost with [`TlsLost::NoCloseNotify`] (its data may
//!   have been cut), one that sent it with [`Lost::Eof`](crate::Lost::Eof).
//! - Memory stays bounded: rustls keeps at most 16 KiB of decrypted bytes and one record of
//!   ciphertext for a connection, its encrypted output is capped (`set_buffer_limit`), and a
//!   connection's reads are budgeted per poll round as a plain one's are, so a peer sending
//!   a flood of tiny records is served in slices like any flooding peer.
//! - Bad input ends that connection alone, with [`Lost::Tls`](crate::Lost::Tls) saying why:
//!   plaintext to a TLS port ([`TlsLost::NotTls`]), a malformed hello
//!   ([`TlsLost::Handshake`]), an oversized record ([`TlsLost::RecordTooLarge`]), a
//!   renegotiation ([`TlsLost::Renegotiation`]), a refused certificate
//!   ([`TlsLost::Certificate`]), a fatal alert ([`TlsLost::Alert`]).
//!
//! rustls is driven through its buffered `ServerConnection`/`ClientConnection` API
//! (`read_tls`, `process_new_packets`, `reader`, `writer`, `write_tls`): it keeps the
//! handshake's state machine, key updates and alerts in rustls, and the table feeds it
//! from the socket and from the output queue (a gathering write of the queue's slices
//! becomes records without a copy). The unbuffered API would save rustls's copy of
//! decrypted bytes and its per-record buffer, at the price of driving every handshake state
//! here.
//!
//! ```no_run
//! # #[cfg(feature = "tls")] {
//! use std::sync::Arc;
//! use fibra_net::{rustls, NetExt, NetPlugin};
//! use fibra_rt::Schedule;
//!
//! # fn configs() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) { todo!() }
//! let (server_config, client_config) = configs();
//! let mut schedule = Schedule::new();
//! schedule.add_plugin(NetPlugin::new()?)?;
//! schedule.spawn(move |h| {
//!     let listener = h.listen_tls("127.0.0.1:0", server_config).unwrap();
//!     let client = h
//!         .connect_tls(listener.local_addr(), "localhost", client_config)
//!         .unwrap();
//!     let (server, _) = h.accept(&listener).unwrap();
//!     h.send_line(&client, "hello over TLS").unwrap();
//!     assert_eq!(h.receive(&server).unwrap(), b"hello over TLS");
//!     let info = server.tls().unwrap();
//!     assert_eq!(info.server_name.as_deref(), Some("localhost"));
//! })?;
//! schedule.run()?;
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::Duration;

/// The default handshake timeout of a TLS connection: 10 s.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub use crate::api::error::TlsLost;

/// What a TLS connection negotiated: [`Conn::tls`](crate::Conn::tls).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsInfo {
    /// The handshake is still going on (the fields below may still be empty).
    pub handshaking: bool,
    /// The server name: the one the client sent (SNI) on a server's connection, the one
    /// connected to on a client's.
    pub server_name: Option<String>,
    /// The application protocol agreed by ALPN (`http/1.1`, `h2`...), if any.
    pub alpn: Option<Vec<u8>>,
    /// The protocol version (`TLSv1_3`, `TLSv1_2`), once agreed.
    pub version: Option<String>,
    /// The cipher suite, once agreed.
    pub cipher_suite: Option<String>,
    /// The peer's certificate chain (DER, its own certificate first), once the handshake
    /// checked it: the server's on a client's connection; the client's on a server's, when
    /// the server asks for one (client authentication: a `ServerConfig` built
    /// `with_client_cert_verifier`). Empty otherwise. Who the client is, for a server that
    /// authenticates clients by certificate.
    pub peer_certificates: Vec<Vec<u8>>,
}

/// rustls's ring provider, which fibra-net is built with. Build configs with it
/// (`ServerConfig::builder_with_provider`) rather than with `ServerConfig::builder()`: the
/// latter needs one process-wide provider, and panics when another crate of the program
/// turns on rustls's `aws-lc-rs` feature beside `ring`.
#[cfg(feature = "tls")]
pub fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}

/// A server config serving the certificate chain `cert_pem` (leaf first) with the private
/// key `key_pem` (PKCS#8, PKCS#1 or SEC1), both PEM as `openssl` or a certificate authority
/// writes them; TLS 1.3 and 1.2, no client certificates, no ALPN (set `alpn_protocols` on
/// it, then wrap it in an `Arc`).
///
/// ```no_run
/// use std::sync::Arc;
/// let cert = std::fs::read("cert.pem")?;
/// let key = std::fs::read("key.pem")?;
/// let mut config = fibra_net::tls::server_config_from_pem(&cert, &key)?;
/// config.alpn_protocols = vec![b"http/1.1".to_vec()];
/// let config = Arc::new(config);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// [`NetError::TlsConfig`](crate::NetError::TlsConfig), saying what is wrong: no
/// certificate in `cert_pem`, no key in `key_pem`, a key that does not match the
/// certificate.
#[cfg(feature = "tls")]
pub fn server_config_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<rustls::ServerConfig, crate::NetError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let refused = |reason: String| crate::NetError::TlsConfig { reason };
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| refused(format!("reading the certificate PEM: {e}")))?;
    if chain.is_empty() {
        return Err(refused(
            "no CERTIFICATE block in the certificate PEM".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| refused(format!("reading the private key PEM: {e}")))?;
    rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| refused(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| refused(format!("the certificate and key: {e}")))
}

/// A client config trusting the certificate authorities in `ca_pem` (PEM), and them
/// alone; TLS 1.3 and 1.2, no client certificate, no ALPN.
///
/// A self-signed certificate that the server serves and this config trusts must name the
/// server (a subjectAltName) and must not be a CA's (`openssl req -x509` makes a CA's
/// unless told otherwise):
///
/// ```text
/// openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=localhost \
///     -addext subjectAltName=DNS:localhost -addext basicConstraints=critical,CA:FALSE \
///     -keyout key.pem -out cert.pem
/// ```
///
/// # Errors
///
/// [`NetError::TlsConfig`](crate::NetError::TlsConfig): no certificate in `ca_pem`, or one
/// that is not a usable trust anchor.
#[cfg(feature = "tls")]
pub fn client_config_from_pem(ca_pem: &[u8]) -> Result<rustls::ClientConfig, crate::NetError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;

    let refused = |reason: String| crate::NetError::TlsConfig { reason };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| refused(format!("reading the CA PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| refused(format!("a CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(refused("no CERTIFICATE block in the CA PEM".into()));
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| refused(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
