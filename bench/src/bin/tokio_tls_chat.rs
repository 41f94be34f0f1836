//! The tokio + tokio-rustls peer of `chatter --tls-cert --tls-key`, for side-by-side
//! benchmarks: the room of `tokio_chat` (`../tokio_room.rs`), each client's TCP stream
//! wrapped in a `tokio_rustls::server::TlsStream` and split into a reader and a writer
//! (`tokio::io::split`), as a tokio programmer would serve a chat over TLS. rustls with its
//! `ring` provider, as fibra's TLS; the same PEM certificate and key files as the chatter's.
//! By default on a current-thread runtime; `--threads N` on tokio's multi-thread runtime.
//!
//! ```text
//! cargo run --release -p fibra-bench --bin gencert -- --dir /tmp/certs
//! cargo run --release -p fibra-bench --bin tokio_tls_chat -- --addr 127.0.0.1:1973 \
//!     --tls-cert /tmp/certs/cert.pem --tls-key /tmp/certs/key.pem
//! openssl s_client -quiet -connect 127.0.0.1:1973
//! ```
//!
//! A handshake has 10 seconds to finish; the protocol is the chatter's (see `tokio_room.rs`).

#[path = "../../../examples/shared/cli.rs"]
mod cli;
#[path = "../tokio_listen.rs"]
mod listen;
#[path = "../tokio_room.rs"]
mod room;

use std::sync::Arc;
use std::time::Duration;

use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What `--help` prints.
const HELP: &str = "\
tokio_tls_chat: a benchmark tool (fibra-bench), the tokio + tokio-rustls peer of fibra's
`chatter` over TLS: the chatter's line protocol (handles, /who, /msg, /quit) over TLS.

usage: tokio_tls_chat --tls-cert FILE --tls-key FILE [--addr HOST:PORT] [--threads N]
  --tls-cert FILE   the certificate chain, PEM (the server's first)
  --tls-key FILE    its private key, PEM (PKCS#8, PKCS#1 or SEC1)
  --addr HOST:PORT  where to listen (default 127.0.0.1:1973)
  --threads N       tokio's multi-thread runtime with N workers (default: current-thread)";

fn main() -> Result<(), cli::Failure> {
    let mut addr = "127.0.0.1:1973".to_owned();
    let mut threads = None;
    let (mut cert, mut key) = (None, None);
    let mut args = cli::Args::new("tokio_tls_chat", HELP);
    while let Some(flag) = args.next_flag() {
        let f = flag.as_str();
        match f {
            "--addr" => addr = args.value(f),
            "--threads" => threads = Some(args.number(f, 1, 1024) as usize),
            "--tls-cert" => cert = Some(args.value(f)),
            "--tls-key" => key = Some(args.value(f)),
            _ => args.unknown(f),
        }
    }
    let (Some(cert), Some(key)) = (cert, key) else {
        args.fail("give --tls-cert FILE and --tls-key FILE");
    };
    let config = match server_config(&cert, &key) {
        Ok(config) => config,
        Err(e) => args.fail(e),
    };
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let runtime = match threads {
        None => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::max(n, 1))
            .enable_all()
            .build()?,
    };
    runtime.block_on(async move {
        let listener = listen::bind(&addr).await?;
        eprintln!(
            "tokio TLS chat server listening on {}",
            listener.local_addr()?
        );
        let room = room::Room::new();
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    eprintln!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let (room, acceptor) = (room.clone(), acceptor.clone());
            tokio::spawn(async move {
                if stream.set_nodelay(true).is_err() {
                    return;
                }
                let Ok(Ok(tls)) =
                    tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                else {
                    return;
                };
                let (reader, writer) = tokio::io::split(tls);
                let _ = room::client(reader, writer, room).await;
            });
        }
    })
}

/// The server's TLS configuration from its PEM files: rustls with `ring`, TLS 1.2 and 1.3,
/// no client certificates.
fn server_config(cert: &str, key: &str) -> Result<rustls::ServerConfig, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("--tls-cert `{cert}`: {e}"))?;
    if chain.is_empty() {
        return Err(format!("--tls-cert `{cert}`: no certificate in it"));
    }
    let key_der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("--tls-key `{key}`: {e}"))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| format!("--tls-cert `{cert}` with --tls-key `{key}`: {e}"))
}
