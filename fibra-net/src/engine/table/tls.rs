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
//! while the handshake runs); its encrypted output is capped at [`TLS_OUT_LIMIT`] (the
//! queue's bytes are encrypted as the socket takes them); a connection's reads count
//! against the round's read budget as a plain one's do.

use super::{conn_mut, Table};
use crate::engine::shared::Key;
use crate::tls::TlsInfo;

#[cfg(feature = "tls")]
pub(super) use enabled::Tls;

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

#[cfg(feature = "tls")]
mod enabled {
    use std::io::{self, IoSlice, Read, Write};
    use std::sync::Arc;
    use std::time::Instant;

    use fibra_rt::Context;
    use socket2::Socket;

    use super::super::input::ReadStep;
    use super::super::timers::TimerKind;
    use super::super::waiters::{Parked, Wait};
    use super::super::{conn_mut, Table};
    use crate::api::error::{Lost, NetError};
    use crate::api::options::ClientTls;
    use crate::engine::shared::Key;
    use crate::engine::sys::socket;
    use crate::tls::{TlsInfo, TlsLost};

    /// Encrypted output rustls may hold for a connection (records not yet written).
    const TLS_OUT_LIMIT: usize = 32 * 1024;
    /// The first byte of a TLS handshake record (content type 22).
    const HANDSHAKE_RECORD: u8 = 0x16;

    /// A connection's TLS state.
    pub(in crate::engine::table) struct Tls {
        conn: rustls::Connection,
        /// The handshake's deadline (a timer is armed for it), until it is done.
        deadline: Option<std::time::Instant>,
        /// A client's connect, waiting for the end of the handshake.
        connecting: Option<Parked>,
        /// A byte of ciphertext came (the first one is checked: TLS or not).
        heard: bool,
        /// `close_notify` was queued.
        notified: bool,
        /// The server name a client connected to.
        client_name: Option<String>,
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
        fn new(mut conn: rustls::Connection, client_name: Option<String>) -> Box<Tls> {
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
            let conn = rustls::ServerConnection::new(Arc::clone(config)).map_err(|e| {
                NetError::TlsConfig {
                    reason: e.to_string(),
                }
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

        fn is_server(&self) -> bool {
            matches!(self.conn, rustls::Connection::Server(_))
        }

        /// Moves decrypted bytes into `buf`.
        fn read_plain(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.conn.reader().read(buf)
        }

        /// Reads ciphertext from the socket: the bytes read (0: end of stream), and whether
        /// the read was short (the socket is drained). A server's first byte must open a
        /// handshake record, or the peer does not speak TLS.
        fn read_socket(&mut self, sock: &Socket) -> Result<(usize, bool), ReadFailure> {
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
        fn process(&mut self) -> Result<bool, TlsLost> {
            let was_handshaking = self.conn.is_handshaking();
            match self.conn.process_new_packets() {
                Ok(_) => Ok(was_handshaking && !self.conn.is_handshaking()),
                Err(e) => Err(classify(&e, was_handshaking)),
            }
        }

        /// Writes rustls's records to the socket: `Ok(true)` when the socket took them all
        /// (`Ok(false)`: it is full).
        fn write_records(&mut self, sock: &Socket) -> io::Result<bool> {
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
        fn encrypt(&mut self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
            match slices {
                [one] => self.conn.writer().write(one),
                _ => self.conn.writer().write_vectored(slices),
            }
        }

        /// Writes the alert rustls queued for a failure, if the socket takes it now.
        fn send_alert(&mut self, sock: &Socket) {
            let _ = self.write_records(sock);
        }
    }

    /// Why reading ciphertext failed.
    enum ReadFailure {
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
    fn classify(e: &rustls::Error, handshaking: bool) -> TlsLost {
        use rustls::{CertificateError, Error, HandshakeType, InvalidMessage, PeerMisbehaved};
        match e {
            Error::InvalidMessage(InvalidMessage::MessageTooLarge)
            | Error::PeerSentOversizedRecord => TlsLost::RecordTooLarge,
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
                    CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                        "expired"
                    }
                    CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                        "not valid yet"
                    }
                    CertificateError::Revoked => "revoked",
                    CertificateError::UnknownIssuer => {
                        "unknown issuer (not signed by a trusted CA)"
                    }
                    CertificateError::BadSignature => "bad signature",
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. } => {
                        "not valid for the server name"
                    }
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
            Error::PeerMisbehaved(PeerMisbehaved::TooManyWarningAlertsReceived) => {
                TlsLost::Protocol {
                    reason: "too many warning alerts",
                }
            }
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

    impl Table {
        /// A TLS connection is connected (accepted, or a client's TCP handshake done): its TLS
        /// handshake has `timeout` to finish; a client's first flight goes out this round.
        /// `connecting`: the client's connect, told at the end of the handshake.
        pub(in crate::engine::table) fn tls_started(
            &mut self,
            key: Key,
            connecting: Option<Parked>,
            now: Instant,
        ) {
            let Some(c) = conn_mut(&mut self.entries, key) else {
                if let Some(p) = connecting {
                    self.waiters.orphan(p, Wait::Connect(key.slot));
                }
                return;
            };
            let timeout = c.options.handshake_timeout;
            let Some(tls) = c.tls.as_mut() else {
                if let Some(p) = connecting {
                    self.waiters.orphan(p, Wait::Connect(key.slot));
                }
                return;
            };
            tls.connecting = connecting;
            tls.deadline = now.checked_add(timeout);
            if let Some(at) = tls.deadline {
                self.timers.arm(at, TimerKind::Handshake, key);
            }
            let writes = tls.wants_write();
            if writes {
                self.mark_dirty(key);
            }
        }

        /// The handshake timer armed for `at` fell due.
        pub(in crate::engine::table) fn handshake_timer(
            &mut self,
            key: Key,
            at: Instant,
            cx: &mut Context<'_>,
        ) {
            let Some(c) = conn_mut(&mut self.entries, key) else {
                return;
            };
            let timeout = c.options.handshake_timeout;
            let Some(tls) = c.tls.as_mut() else {
                return;
            };
            if tls.deadline != Some(at) || !tls.is_handshaking() {
                return;
            }
            tls.deadline = None;
            log::debug!(target: "fibra_net",
                "TLS handshake with {} not done within {timeout:?}", c.peer);
            self.tls_failed(
                key,
                Lost::Tls(TlsLost::HandshakeTimedOut { after: timeout }),
                cx,
            );
        }

        /// The TLS filter's input ended with `lost` (a TLS failure, the handshake's timeout,
        /// a reset): the connection is lost, and its output ends where `lost` says nothing
        /// more can be sent, even where the connection was lost before (a close on this
        /// side waiting for the handshake to carry its output: its closer is told why now,
        /// not at the close timeout).
        fn tls_failed(&mut self, key: Key, lost: Lost, cx: &mut Context<'_>) {
            self.lose(key, lost, cx);
            if !lost.can_send() {
                self.end_output(key, lost, cx);
            }
        }

        /// One step of a TLS connection's input: decrypted bytes into the input buffer, or
        /// ciphertext from the socket into rustls.
        pub(in crate::engine::table) fn tls_read_step(
            &mut self,
            key: Key,
            cx: &mut Context<'_>,
        ) -> ReadStep {
            use std::io::ErrorKind;

            let round = self.round;
            let short_read_drains = self.short_read_drains;
            let Some(c) = conn_mut(&mut self.entries, key) else {
                return ReadStep::Ended;
            };
            let Some(sock) = c.state.connected_socket() else {
                return match c.state.socket() {
                    Some(_) => ReadStep::Wait { budget: false },
                    None => ReadStep::Ended,
                };
            };
            let Some(tls) = c.tls.as_mut() else {
                return ReadStep::Ended;
            };
            let input = &mut c.input;
            // Decrypted bytes first.
            let limit = c
                .options
                .max_frame
                .saturating_add(super::super::input::FRAMING_SLACK);
            let spare = input
                .buf
                .spare(&mut self.pool, super::super::input::MIN_READ, limit);
            if spare.is_empty() {
                return ReadStep::Full;
            }
            let end = match tls.read_plain(spare) {
                Ok(0) => Some(Lost::Eof),
                Ok(n) => {
                    input.buf.commit(n);
                    // The peer spoke: an answer to it is not held back by the flush delay.
                    c.output.last_write = None;
                    return ReadStep::Data;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => None,
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => Some(if tls.is_handshaking() {
                    Lost::Tls(TlsLost::Handshake {
                        reason: "the peer closed the connection during the handshake",
                    })
                } else {
                    Lost::Tls(TlsLost::NoCloseNotify)
                }),
                Err(_) => Some(Lost::Tls(TlsLost::Protocol {
                    reason: "the connection failed earlier",
                })),
            };
            if let Some(lost) = end {
                input.buf.release_if_empty(&mut self.pool);
                if lost != Lost::Eof {
                    log::debug!(target: "fibra_net", "connection from {}: {lost}", c.peer);
                }
                self.tls_failed(key, lost, cx);
                return ReadStep::Ended;
            }
            input.buf.release_if_empty(&mut self.pool);
            // Then ciphertext from the socket (rustls holds no decrypted byte now, so its
            // `read_tls` never refuses for a full plaintext buffer).
            if !input.readable {
                return ReadStep::Wait { budget: false };
            }
            if input.round != round {
                input.round = round;
                input.in_round = 0;
            }
            if input.in_round >= super::super::input::READ_BUDGET {
                return ReadStep::Wait { budget: true };
            }
            self.counters.reads += 1;
            let lost = match tls.read_socket(sock) {
                // The end of the stream: the reader says whether a close_notify came first.
                Ok((0, _)) => return ReadStep::Data,
                Ok((n, short)) => {
                    input.in_round += n;
                    if c.options.read_timeout.is_some() {
                        input.last_read = cx.now();
                    }
                    if short && short_read_drains && !input.read_closed {
                        input.readable = false;
                    }
                    match tls.process() {
                        Ok(done) => {
                            let writes = tls.wants_write();
                            if done {
                                tls.deadline = None;
                                self.timers.disarm(TimerKind::Handshake, key);
                                self.tls_handshake_done(key, cx);
                            }
                            if writes {
                                self.mark_dirty(key);
                            }
                            return ReadStep::Data;
                        }
                        Err(why) => {
                            // The alert rustls queued goes now, if the socket takes it.
                            tls.send_alert(sock);
                            // Records decrypted before the bad one were genuine: their frames
                            // are still delivered, as a plain connection's are before its end.
                            loop {
                                let spare = input.buf.spare(&mut self.pool, 1, limit);
                                match tls.read_plain(spare) {
                                    Ok(n) if n > 0 => input.buf.commit(n),
                                    _ => break,
                                }
                            }
                            input.buf.release_if_empty(&mut self.pool);
                            Lost::Tls(why)
                        }
                    }
                }
                Err(ReadFailure::Io(e)) if e.kind() == ErrorKind::WouldBlock => {
                    input.readable = false;
                    return ReadStep::Wait { budget: false };
                }
                Err(ReadFailure::Io(e)) if e.kind() == ErrorKind::InvalidData => {
                    Lost::Tls(TlsLost::RecordTooLarge)
                }
                Err(ReadFailure::Io(e)) => {
                    log::debug!(target: "fibra_net", "receive from {}: {e}", c.peer);
                    Lost::from_io(&e)
                }
                Err(ReadFailure::Tls(why)) => Lost::Tls(why),
            };
            log::debug!(target: "fibra_net", "connection from {}: {lost}", c.peer);
            self.tls_failed(key, lost, cx);
            ReadStep::Ended
        }

        /// The handshake is done: a client's connect returns; output queued meanwhile goes.
        fn tls_handshake_done(&mut self, key: Key, cx: &mut Context<'_>) {
            let Some(c) = conn_mut(&mut self.entries, key) else {
                return;
            };
            log::trace!(target: "fibra_net", "TLS handshake with {} done", c.peer);
            let connecting = c.tls.as_mut().and_then(|t| t.connecting.take());
            if !c.output.is_empty() {
                self.mark_dirty(key);
            }
            if let Some(parked) = connecting {
                let conn = self.conn(key);
                self.waiters
                    .complete::<crate::ops::Connect>(cx, parked, Ok(conn));
            }
        }

        /// A TLS connection is lost: a connect still waiting for the handshake fails with `lost`
        /// (and the connection, which nobody holds, goes).
        pub(in crate::engine::table) fn tls_lost(
            &mut self,
            key: Key,
            lost: Lost,
            cx: &mut Context<'_>,
        ) {
            let Some(c) = conn_mut(&mut self.entries, key) else {
                return;
            };
            let Some(parked) = c.tls.as_mut().and_then(|t| t.connecting.take()) else {
                return;
            };
            c.released = true;
            self.waiters
                .complete::<crate::ops::Connect>(cx, parked, Err(lost.into()));
            self.end_output(key, lost, cx);
        }

        /// Writes a TLS connection's output: encrypts the queue's bytes as the socket takes the
        /// records; `close_notify` after the last byte of a closing connection. `Err` with the
        /// loss when the socket failed.
        pub(in crate::engine::table) fn tls_write(&mut self, key: Key) -> Result<(), Lost> {
            use crate::engine::buffer::MAX_SLICES;
            use std::io::IoSlice;

            let Some(c) = conn_mut(&mut self.entries, key) else {
                return Ok(());
            };
            let closing = c.state.is_closing();
            let (Some(sock), Some(tls)) = (c.state.connected_socket(), c.tls.as_mut()) else {
                return Ok(());
            };
            let output = &mut c.output;
            loop {
                if output.writable {
                    self.counters.writes += u64::from(tls.wants_write());
                    match tls.write_records(sock) {
                        Ok(true) => {}
                        Ok(false) => output.writable = false,
                        Err(e) => {
                            log::debug!(target: "fibra_net", "send to {}: {e}", c.peer);
                            return Err(Lost::from_io(&e));
                        }
                    }
                }
                if !output.writable || tls.is_handshaking() {
                    return Ok(());
                }
                if output.buf.is_empty() {
                    if closing && !tls.notified {
                        tls.close_notify();
                        continue;
                    }
                    return Ok(());
                }
                let taken = match output.buf.single() {
                    Some(bytes) => tls.encrypt(&[IoSlice::new(bytes)]),
                    None => {
                        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                        let (n, _) = output.buf.slices(&mut slices);
                        tls.encrypt(&slices[..n])
                    }
                };
                match taken {
                    Ok(0) if !tls.wants_write() => return Ok(()),
                    Ok(n) => output.buf.advance(n, &mut self.pool),
                    Err(e) => {
                        log::debug!(target: "fibra_net", "TLS to {}: {e}", c.peer);
                        return Err(Lost::Tls(TlsLost::Protocol {
                            reason: "the connection failed earlier",
                        }));
                    }
                }
            }
        }
    }
}

#[cfg(not(feature = "tls"))]
mod disabled {
    use std::time::Instant;

    use fibra_rt::Context;

    use super::super::input::ReadStep;
    use super::super::waiters::Parked;
    use super::super::Table;
    use crate::api::error::Lost;
    use crate::engine::shared::Key;
    use crate::tls::TlsInfo;

    /// Without the `tls` feature no connection has a TLS state: the type has no value, and
    /// the table's TLS branches are never taken.
    #[derive(Debug)]
    pub(in crate::engine::table) enum Tls {}

    impl Tls {
        pub(in crate::engine::table) fn is_handshaking(&self) -> bool {
            match *self {}
        }

        pub(in crate::engine::table) fn take_connecting(&mut self) -> Option<Parked> {
            match *self {}
        }

        pub(in crate::engine::table) fn connecting_is(&self, _id: fibra_rt::TaskletId) -> bool {
            match *self {}
        }

        pub(in crate::engine::table) fn wants_write(&self) -> bool {
            match *self {}
        }

        pub(in crate::engine::table) fn close_notify(&mut self) {
            match *self {}
        }

        pub(in crate::engine::table) fn info(&self) -> TlsInfo {
            match *self {}
        }
    }

    /// The table's TLS steps, never taken: no connection has a TLS state.
    impl Table {
        pub(in crate::engine::table) fn tls_started(
            &mut self,
            _key: Key,
            connecting: Option<Parked>,
            _now: Instant,
        ) {
            debug_assert!(
                connecting.is_none(),
                "only a TLS connect waits for a handshake"
            );
            let _ = connecting;
        }

        pub(in crate::engine::table) fn handshake_timer(
            &mut self,
            _key: Key,
            _at: Instant,
            _cx: &mut Context<'_>,
        ) {
        }

        pub(in crate::engine::table) fn tls_read_step(
            &mut self,
            _key: Key,
            _cx: &mut Context<'_>,
        ) -> ReadStep {
            ReadStep::Ended
        }

        pub(in crate::engine::table) fn tls_lost(
            &mut self,
            _key: Key,
            _lost: Lost,
            _cx: &mut Context<'_>,
        ) {
        }

        pub(in crate::engine::table) fn tls_write(&mut self, _key: Key) -> Result<(), Lost> {
            Ok(())
        }
    }
}
