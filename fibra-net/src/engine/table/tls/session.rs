//! One connection's rustls session: the state the table keeps for a TLS connection, the
//! socket as rustls reads and writes it, and what rustls's errors mean for the connection.

use std::io::{self, IoSlice, Read, Write};
use std::sync::Arc;

use super::super::waiters::Parked;
use crate::api::error::NetError;
use crate::api::options::ClientTls;
use crate::engine::sys::{socket, Socket};
use crate::tls::{TlsInfo, TlsLost};

/// Encrypted output rustls may hold for a connection (records not yet written).
pub(super) const TLS_OUT_LIMIT: usize = 32 * 1024;
/// The first byte of a TLS handshake record (content type 22).
pub(super) const HANDSHAKE_RECORD: u8 = 0x16;

/// A connection's TLS state.
pub(in crate::engine::table) struct Tls {
    pub(super) conn: rustls::Connection,
    /// The handshake's deadline (a timer is armed for it), until it is done.
    pub(super) deadline: Option<std::time::Instant>,
    /// A client's connect, waiting for the end of the handshake.
    pub(super) connecting: Option<Parked>,
    /// A byte of ciphertext came (the first one is checked: TLS or not).
    pub(super) heard: bool,
    /// `close_notify` was queued.
    pub(super) notified: bool,
    /// The server name a client connected to.
    pub(super) client_name: Option<String>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("handshaking", &self.conn.is_handshaking())
            .field("deadline", &self.deadline)
            .field("notified", &self.notified)
            .finish_non_exhaustive()
    }
}

impl Tls {
    pub(super) fn new(mut conn: rustls::Connection, client_name: Option<String>) -> Box<Tls> {
        conn.set_buffer_limit(Some(TLS_OUT_LIMIT));
        Box::new(Tls {
            conn,
            deadline: None,
            connecting: None,
            heard: false,
            notified: false,
            client_name,
        })
    }

    /// A server's side, for a connection accepted by a TLS listener.
    pub(in crate::engine::table) fn server(
        config: &Arc<rustls::ServerConfig>,
    ) -> Result<Box<Tls>, NetError> {
        let conn =
            rustls::ServerConnection::new(Arc::clone(config)).map_err(|e| NetError::TlsConfig {
                reason: e.to_string(),
            })?;
        Ok(Tls::new(conn.into(), None))
    }

    /// A client's side.
    pub(in crate::engine::table) fn client(tls: &ClientTls) -> Result<Box<Tls>, NetError> {
        let conn = rustls::ClientConnection::new(Arc::clone(&tls.config), tls.name.clone())
            .map_err(|e| NetError::TlsConfig {
                reason: e.to_string(),
            })?;
        Ok(Tls::new(conn.into(), Some(tls.name.to_str().into_owned())))
    }

    pub(in crate::engine::table) fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// A client's connect waiting for the handshake, taken.
    pub(in crate::engine::table) fn take_connecting(&mut self) -> Option<Parked> {
        self.connecting.take()
    }

    /// Whether `id` is the connect waiting for the handshake.
    pub(in crate::engine::table) fn connecting_is(&self, id: fibra_rt::TaskletId) -> bool {
        self.connecting.as_ref().is_some_and(|p| p.id() == id)
    }

    /// rustls holds records to write.
    pub(in crate::engine::table) fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// Queues `close_notify` (once), after everything encrypted so far.
    pub(in crate::engine::table) fn close_notify(&mut self) {
        if !self.notified {
            self.notified = true;
            self.conn.send_close_notify();
        }
    }

    /// `Conn::shutdown_write`: `close_notify`, written to the socket now (TLS's half-close;
    /// the FIN follows it). `None`, nothing done, while the handshake runs; `Some(false)`
    /// when the socket did not take the whole record (the rest goes as output does).
    pub(in crate::engine::table) fn shutdown_write(&mut self, sock: &Socket) -> Option<bool> {
        if self.conn.is_handshaking() {
            return None;
        }
        self.close_notify();
        Some(matches!(self.write_records(sock), Ok(true)))
    }

    pub(in crate::engine::table) fn info(&self) -> TlsInfo {
        let conn = &self.conn;
        let server_name = match conn {
            rustls::Connection::Server(s) => s.server_name().map(str::to_owned),
            rustls::Connection::Client(_) => self.client_name.clone(),
        };
        TlsInfo {
            handshaking: conn.is_handshaking(),
            server_name,
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
            version: conn.protocol_version().map(|v| format!("{v:?}")),
            cipher_suite: conn
                .negotiated_cipher_suite()
                .map(|s| format!("{:?}", s.suite())),
            peer_certificates: conn
                .peer_certificates()
                .map(|chain| chain.iter().map(|der| der.as_ref().to_vec()).collect())
                .unwrap_or_default(),
        }
    }

    pub(super) fn is_server(&self) -> bool {
        matches!(self.conn, rustls::Connection::Server(_))
    }

    /// Moves decrypted bytes into `buf`.
    pub(super) fn read_plain(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.conn.reader().read(buf)
    }

    /// Reads ciphertext from the socket: the bytes read (0: end of stream), and whether
    /// the read was short (the socket is drained). A server's first byte must open a
    /// handshake record, or the peer does not speak TLS.
    pub(super) fn read_socket(&mut self, sock: &Socket) -> Result<(usize, bool), ReadFailure> {
        let mut reader = SocketReader {
            sock,
            asked: 0,
            first: None,
        };
        let n = self.conn.read_tls(&mut reader).map_err(ReadFailure::Io)?;
        if !self.heard && n > 0 {
            self.heard = true;
            if self.is_server() && reader.first != Some(HANDSHAKE_RECORD) {
                return Err(ReadFailure::Tls(TlsLost::NotTls));
            }
        }
        Ok((n, n < reader.asked))
    }

    /// Processes what was read: whether the handshake ended with it.
    pub(super) fn process(&mut self) -> Result<bool, TlsLost> {
        let was_handshaking = self.conn.is_handshaking();
        match self.conn.process_new_packets() {
            Ok(_) => Ok(was_handshaking && !self.conn.is_handshaking()),
            Err(e) => Err(classify(&e, was_handshaking)),
        }
    }

    /// Writes rustls's records to the socket: `Ok(true)` when the socket took them all
    /// (`Ok(false)`: it is full).
    pub(super) fn write_records(&mut self, sock: &Socket) -> io::Result<bool> {
        while self.conn.wants_write() {
            let mut writer = SocketWriter { sock, short: false };
            match self.conn.write_tls(&mut writer) {
                Ok(_) if writer.short => return Ok(false),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Encrypts `slices` (as much as rustls takes): the plaintext bytes taken.
    pub(super) fn encrypt(&mut self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        match slices {
            [one] => self.conn.writer().write(one),
            _ => self.conn.writer().write_vectored(slices),
        }
    }

    /// Writes the alert rustls queued for a failure, if the socket takes it now.
    pub(super) fn send_alert(&mut self, sock: &Socket) {
        let _ = self.write_records(sock);
    }
}

/// Why reading ciphertext failed.
pub(super) enum ReadFailure {
    Io(io::Error),
    Tls(TlsLost),
}

/// The socket as rustls reads it: one `read`, remembering how much was asked and the
/// first byte.
struct SocketReader<'a> {
    sock: &'a Socket,
    asked: usize,
    first: Option<u8>,
}

impl Read for SocketReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.asked = buf.len();
        let n = socket::read(self.sock, buf)?;
        if n > 0 {
            self.first = Some(buf[0]);
        }
        Ok(n)
    }
}

/// The socket as rustls writes to it; `short` when a write took less than offered.
struct SocketWriter<'a> {
    sock: &'a Socket,
    short: bool,
}

impl Write for SocketWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = socket::send(self.sock, buf)?;
        self.short |= n < buf.len();
        Ok(n)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let n = socket::write(self.sock, bufs)?;
        self.short |= n < bufs.iter().map(|b| b.len()).sum::<usize>();
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What a rustls error means for the connection.
pub(super) fn classify(e: &rustls::Error, handshaking: bool) -> TlsLost {
    use rustls::{CertificateError, Error, HandshakeType, InvalidMessage, PeerMisbehaved};
    match e {
        Error::InvalidMessage(InvalidMessage::MessageTooLarge) | Error::PeerSentOversizedRecord => {
            TlsLost::RecordTooLarge
        }
        Error::InvalidMessage(InvalidMessage::InvalidContentType)
        | Error::InvalidMessage(InvalidMessage::UnknownProtocolVersion)
            if handshaking =>
        {
            TlsLost::NotTls
        }
        Error::PeerMisbehaved(PeerMisbehaved::TooManyRenegotiationRequests) => {
            TlsLost::Renegotiation
        }
        // A new ClientHello (or a server's HelloRequest) after the handshake asks for
        // a renegotiation; any other message out of place is a protocol error.
        Error::InappropriateHandshakeMessage {
            got_type: HandshakeType::ClientHello | HandshakeType::HelloRequest,
            ..
        } if !handshaking => TlsLost::Renegotiation,
        Error::InappropriateHandshakeMessage { .. } | Error::InappropriateMessage { .. }
            if !handshaking =>
        {
            TlsLost::Protocol {
                reason: "a message out of place after the handshake",
            }
        }
        Error::AlertReceived(alert) => TlsLost::Alert {
            name: alert_name(*alert),
        },
        Error::InvalidCertificate(cert) => TlsLost::Certificate {
            reason: match cert {
                CertificateError::BadEncoding => "bad encoding",
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired",
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    "not valid yet"
                }
                CertificateError::Revoked => "revoked",
                CertificateError::UnknownIssuer => "unknown issuer (not signed by a trusted CA)",
                CertificateError::BadSignature => "bad signature",
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => {
                    "not valid for the server name"
                }
                CertificateError::InvalidPurpose
                | CertificateError::InvalidPurposeContext { .. } => {
                    "not for this use (its extended key usage: a server's needs serverAuth)"
                }
                CertificateError::UnhandledCriticalExtension => {
                    "a critical extension this side does not know"
                }
                CertificateError::UnsupportedSignatureAlgorithmContext { .. } => {
                    "signed with an algorithm this side does not support"
                }
                // webpki's own reasons, which rustls passes on as text.
                CertificateError::Other(other) => other_certificate_reason(&other.to_string()),
                _ => "invalid certificate",
            },
        },
        Error::NoCertificatesPresented => TlsLost::Certificate {
            reason: "the peer presented no certificate",
        },
        Error::NoApplicationProtocol => TlsLost::Handshake {
            reason: "no application protocol (ALPN) in common",
        },
        Error::PeerIncompatible(_) => TlsLost::Handshake {
            reason: "no protocol version, cipher suite or extension in common",
        },
        Error::DecryptError => TlsLost::Protocol {
            reason: "a record failed to decrypt",
        },
        Error::InvalidMessage(_) if handshaking => TlsLost::Handshake {
            reason: "a malformed handshake message",
        },
        Error::InvalidMessage(_) => TlsLost::Protocol {
            reason: "a malformed record",
        },
        Error::PeerMisbehaved(PeerMisbehaved::TooManyEmptyFragments) => TlsLost::Protocol {
            reason: "too many empty records",
        },
        Error::PeerMisbehaved(PeerMisbehaved::TooManyWarningAlertsReceived) => TlsLost::Protocol {
            reason: "too many warning alerts",
        },
        Error::PeerMisbehaved(PeerMisbehaved::TooManyKeyUpdateRequests) => TlsLost::Protocol {
            reason: "too many key updates",
        },
        _ if handshaking => TlsLost::Handshake {
            reason: "the peer broke the handshake protocol",
        },
        _ => TlsLost::Protocol {
            reason: "the peer broke the protocol",
        },
    }
}

fn alert_name(alert: rustls::AlertDescription) -> &'static str {
    use rustls::AlertDescription as A;
    match alert {
        A::CloseNotify => "close_notify",
        A::UnexpectedMessage => "unexpected_message",
        A::BadRecordMac => "bad_record_mac",
        A::RecordOverflow => "record_overflow",
        A::HandshakeFailure => "handshake_failure",
        A::BadCertificate => "bad_certificate",
        A::UnsupportedCertificate => "unsupported_certificate",
        A::CertificateRevoked => "certificate_revoked",
        A::CertificateExpired => "certificate_expired",
        A::CertificateUnknown => "certificate_unknown",
        A::IllegalParameter => "illegal_parameter",
        A::UnknownCA => "unknown_ca",
        A::AccessDenied => "access_denied",
        A::DecodeError => "decode_error",
        A::DecryptError => "decrypt_error",
        A::ProtocolVersion => "protocol_version",
        A::InsufficientSecurity => "insufficient_security",
        A::InternalError => "internal_error",
        A::UserCanceled => "user_canceled",
        A::NoRenegotiation => "no_renegotiation",
        A::MissingExtension => "missing_extension",
        A::UnsupportedExtension => "unsupported_extension",
        A::UnrecognisedName => "unrecognized_name",
        A::NoApplicationProtocol => "no_application_protocol",
        A::CertificateRequired => "certificate_required",
        _ => "(another alert)",
    }
}

/// What webpki's error, passed on by rustls as text, says of a refused certificate.
fn other_certificate_reason(text: &str) -> &'static str {
    if text.contains("CaUsedAsEndEntity") {
        "a CA certificate presented as the peer's own (a self-signed certificate needs \
         basicConstraints CA:FALSE and a subjectAltName for the name)"
    } else if text.contains("EndEntityUsedAsCa") {
        "an end-entity certificate used as a CA"
    } else if text.contains("PathLenConstraintViolated")
        || text.contains("MaximumPathDepthExceeded")
    {
        "a chain longer than its CA allows"
    } else if text.contains("NameConstraintViolation") {
        "a name its CA may not certify"
    } else {
        log::debug!(target: "fibra_net::tls", "certificate refused: {text}");
        "invalid certificate"
    }
}
