//! The generator's TLS: with `--tls-ca FILE` (PEM) or `--tls-insecure yes` (or `--tls yes`
//! with one of them), every scenario's connections speak TLS through fibra-net's own TLS
//! (`ConnOptions::with_tls`, rustls with `ring`), checking the server's certificate against
//! that CA or, insecure, not at all (any certificate; the handshake's signatures are still
//! checked). Each connection makes a full handshake unless `--tls-resume
//! yes` lets the clients resume sessions: the `accept` scenario over TLS measures new TLS
//! logins (handshake and login) per second.

use std::sync::{Arc, OnceLock};

use fibra::net::rustls;
use fibra::net::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use fibra::net::rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use fibra::net::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use fibra::net::rustls::{DigitallySignedStruct, SignatureScheme};
use fibra::net::ConnOptions;

/// The TLS flags, as given.
#[derive(Debug, Default)]
pub(crate) struct TlsArgs {
    /// `--tls yes` (implied by `--tls-ca` and `--tls-insecure yes`).
    pub(crate) on: bool,
    /// `--tls-ca FILE`: the CA that signed the server's certificate.
    pub(crate) ca: Option<String>,
    /// `--tls-insecure yes`: accept any certificate.
    pub(crate) insecure: bool,
    /// `--tls-name NAME`: the name checked and sent (SNI); default `localhost`.
    pub(crate) name: Option<String>,
    /// `--tls-resume yes`: resume sessions (abbreviated handshakes) where the server lets.
    pub(crate) resume: bool,
}

/// The client config and the server's name every connection uses, once `--tls` is set.
static CLIENT: OnceLock<(Arc<rustls::ClientConfig>, ServerName<'static>)> = OnceLock::new();

impl TlsArgs {
    /// Builds the client config when TLS is on, for [`options`] to use from then on.
    pub(crate) fn install(&self) -> Result<(), String> {
        if !(self.on || self.ca.is_some() || self.insecure) {
            return if self.name.is_some() || self.resume {
                Err("--tls-name and --tls-resume need --tls-ca FILE or --tls-insecure yes".into())
            } else {
                Ok(())
            };
        }
        let mut config = match (&self.ca, self.insecure) {
            (Some(_), true) => {
                return Err("give --tls-ca FILE or --tls-insecure yes, not both".into())
            }
            (None, false) => return Err("TLS needs --tls-ca FILE or --tls-insecure yes".into()),
            (Some(file), false) => {
                let pem = std::fs::read(file).map_err(|e| format!("--tls-ca `{file}`: {e}"))?;
                fibra::net::tls::client_config_from_pem(&pem)
                    .map_err(|e| format!("--tls-ca `{file}`: {e}"))?
            }
            (None, true) => {
                let provider = fibra::net::tls::provider();
                rustls::ClientConfig::builder_with_provider(provider.clone())
                    .with_safe_default_protocol_versions()
                    .map_err(|e| e.to_string())?
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                    .with_no_client_auth()
            }
        };
        if !self.resume {
            config.resumption = rustls::client::Resumption::disabled();
        }
        let name = self.name.as_deref().unwrap_or("localhost");
        let name = ServerName::try_from(name.to_owned())
            .map_err(|e| format!("--tls-name `{name}`: {e}"))?;
        let _ = CLIENT.set((Arc::new(config), name));
        Ok(())
    }
}

/// Whether the connections speak TLS.
pub(crate) fn is_on() -> bool {
    CLIENT.get().is_some()
}

/// `options`, speaking TLS when `--tls yes`.
pub(crate) fn options(options: ConnOptions) -> ConnOptions {
    match CLIENT.get() {
        Some((config, name)) => options.with_tls(config.clone(), name.clone()),
        None => options,
    }
}

/// `--tls-insecure yes`: any certificate for any name is accepted; the handshake's
/// signatures are still checked (with the provider's algorithms), so the peer holds the
/// key of the certificate it shows. For benchmarks against self-signed servers.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
