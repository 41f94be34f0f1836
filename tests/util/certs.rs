//! Test certificates, made in the test: a CA, and a leaf it signs for `localhost` and
//! 127.0.0.1; rustls configs that serve the leaf and trust the CA.
//!
//! `util::certs` (with the `tls` feature; rcgen is a dev-dependency).

use std::sync::Arc;

use fibra::net::rustls;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A CA and a leaf certificate signed by it.
pub(crate) struct TestCerts {
    /// The CA's certificate (DER), to trust.
    pub(crate) ca: CertificateDer<'static>,
    /// The CA's certificate, PEM (for a browser or `openssl s_client -CAfile`).
    pub(crate) ca_pem: String,
    /// The leaf's chain (leaf, then CA), DER.
    pub(crate) chain: Vec<CertificateDer<'static>>,
    /// The leaf's chain, PEM (what `--tls-cert FILE` reads).
    pub(crate) chain_pem: String,
    /// The leaf's private key (PKCS#8 DER).
    pub(crate) key: Vec<u8>,
    /// The leaf's private key, PEM (what `--tls-key FILE` reads).
    pub(crate) key_pem: String,
}

impl TestCerts {
    /// A fresh CA and a leaf for `names` (DNS names or IP addresses).
    pub(crate) fn for_names(names: &[&str]) -> TestCerts {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "fibra test CA");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();

        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut leaf_params = rcgen::CertificateParams::new(names).unwrap();
        leaf_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "fibra test server");
        leaf_params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &ca).unwrap();

        TestCerts {
            ca: ca.der().clone(),
            ca_pem: ca.pem(),
            chain: vec![leaf.der().clone(), ca.der().clone()],
            chain_pem: format!("{}{}", leaf.pem(), ca.pem()),
            key: leaf_key.serialize_der(),
            key_pem: leaf_key.serialize_pem(),
        }
    }

    /// A fresh CA and a leaf for `localhost` and 127.0.0.1.
    pub(crate) fn localhost() -> TestCerts {
        TestCerts::for_names(&["localhost", "127.0.0.1"])
    }

    fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone()))
    }

    /// A server config serving the leaf, with ALPN `alpn` (none if empty).
    pub(crate) fn server_config_alpn(&self, alpn: &[&[u8]]) -> Arc<rustls::ServerConfig> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.private_key())
            .unwrap();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    /// A server config serving the leaf, without ALPN.
    pub(crate) fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server_config_alpn(&[])
    }

    /// A server config serving the leaf over TLS 1.2 only.
    pub(crate) fn server_config_tls12(&self) -> Arc<rustls::ServerConfig> {
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.private_key())
            .unwrap();
        Arc::new(config)
    }

    /// A client config trusting the CA, offering ALPN `alpn` (none if empty).
    pub(crate) fn client_config_alpn(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    /// A server config serving the leaf that asks every client for a certificate signed by
    /// the CA (client authentication).
    pub(crate) fn server_config_client_auth(&self) -> Arc<rustls::ServerConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.private_key())
            .unwrap();
        Arc::new(config)
    }

    /// A client config trusting the CA that shows the leaf as its own certificate.
    pub(crate) fn client_config_with_cert(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(self.chain.clone(), self.private_key())
            .unwrap();
        Arc::new(config)
    }

    /// A client config trusting the CA.
    pub(crate) fn client_config(&self) -> Arc<rustls::ClientConfig> {
        self.client_config_alpn(&[])
    }
}

/// rustls's ring provider (fibra's TLS is built with it).
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TestCerts {
    /// A listener on a free port of 127.0.0.1 serving TLS with the leaf, its connections'
    /// options `conn` (the schedule needs the network plugin).
    pub(crate) fn listen(
        &self,
        s: &fibra::rt::Schedule,
        conn: fibra::net::ConnOptions,
    ) -> fibra::net::Listener {
        let options = fibra::net::ListenOptions::new()
            .with_tls(self.server_config())
            .with_conn(conn);
        super::listen_with(s, options)
    }
}

/// A blocking rustls client's stream.
pub(crate) type TlsStream = rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>;

/// A blocking TLS client over `tcp` (to `localhost`), handshake done; 10 s read timeout.
pub(crate) fn tls_client(
    mut tcp: std::net::TcpStream,
    config: Arc<rustls::ClientConfig>,
) -> TlsStream {
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(config, name).unwrap();
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut tcp) {
            panic!("handshake: {e}");
        }
    }
    rustls::StreamOwned::new(conn, tcp)
}

/// A [`tls_client`] of `addr` on a thread of its own, given to `f`.
pub(crate) fn tls_peer<T, F>(
    addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
    f: F,
) -> std::thread::JoinHandle<T>
where
    T: Send + 'static,
    F: FnOnce(TlsStream) -> T + Send + 'static,
{
    std::thread::spawn(move || {
        f(tls_client(
            std::net::TcpStream::connect(addr).unwrap(),
            config,
        ))
    })
}
