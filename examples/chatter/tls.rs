//! The TLS doors: a TLS listener whose connections are telnet-protocol sessions (for
//! `openssl s_client` or `ncat --ssl`), and the web page over HTTPS and WSS. TLS is
//! fibra-net's, a filter inside the connection table: a TLS connection's lines reach its
//! session decrypted, and the room's fan-out is encrypted on each member's write, so a TLS
//! member is in the same room and the same groups as a plain one, and nothing past the
//! listener knows which it is. The certificate and key come from PEM files
//! (`--tls-cert`, `--tls-key`), read once at the start. Across threads, the TLS port is
//! handed off by load as the telnet port is (`adopt_tls`), or, with `--accept reuseport`,
//! has a listener per thread.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use fibra::net::rustls;
use fibra::net::{Handed, ListenOptions, Listener, NetExt, NetPlugin};
use fibra::tasks::{remote_channel, RemoteSender};
use fibra::Schedule;

use super::room::LOG;
use super::server::{serve_conn, Chatter};

impl Chatter {
    /// Serves the chat over TLS on `addr` with `tls` (and `SO_REUSEPORT` with `reuse_port`,
    /// one listener per thread on one port): each connection is a session of this room,
    /// as a telnet one is. Returns the address.
    pub(crate) fn serve_tls(
        &mut self,
        schedule: &mut Schedule,
        addr: &str,
        tls: &TlsDoor,
        reuse_port: bool,
    ) -> Result<SocketAddr, Box<dyn std::error::Error>> {
        let conn = self.config.telnet_options();
        let listener = listen_tls(schedule, addr, tls, conn, tls.config.clone(), reuse_port)?;
        let served = listener.local_addr();
        self.accept(schedule, listener)?;
        Ok(served)
    }

    /// Serves the web page over HTTPS on `addr` (its WebSocket is then WSS), offering
    /// `http/1.1` by ALPN. Returns the address.
    pub(crate) fn serve_web_tls(
        &mut self,
        schedule: &mut Schedule,
        addr: &str,
        tls: &TlsDoor,
    ) -> Result<SocketAddr, Box<dyn std::error::Error>> {
        let conn = self.config.conn_options();
        let https = fibra::http::https_config(tls.config.clone());
        let listener = listen_tls(schedule, addr, tls, conn, https, false)?;
        let served = listener.local_addr();
        self.serve_page(schedule, listener)?;
        Ok(served)
    }
}

impl Chatter {
    /// With a hand-off on the TLS port (`--threads N`): serves each connection handed to
    /// the returned sender over TLS, as a session of this room, from a tasklet that the
    /// room's shutdown ends.
    pub(crate) fn adopt_tls(
        &mut self,
        schedule: &mut Schedule,
        door: &TlsDoor,
    ) -> Result<RemoteSender<Handed>, fibra::rt::Error> {
        let (sender, handed) = remote_channel::<Handed>(&schedule.remote(), 1024);
        let (chat, config, tls) = (
            Rc::clone(&self.chat),
            self.config.clone(),
            door.config.clone(),
        );
        let options = config
            .telnet_options()
            .with_handshake_timeout(door.handshake_timeout);
        let adopter = schedule.spawn_named("chatter TLS adopter", move |h| {
            while let Some(Handed { stream, peer, load }) = handed.receive(h) {
                match h.adopt_tls(stream, options.clone(), tls.clone()) {
                    Ok(conn) => serve_conn(h, &chat, conn, peer, &config, Some(load)),
                    Err(e) => log::warn!(target: LOG, "cannot serve {peer} over TLS: {e}"),
                }
            }
        })?;
        self.chat.room.borrow_mut().tasklets.push(adopter);
        Ok(sender)
    }
}

/// What a TLS door serves with: the certificate and key, and how long a handshake may take.
#[derive(Debug, Clone)]
pub(crate) struct TlsDoor {
    /// rustls's server configuration (see [`server_config`]).
    pub(crate) config: Arc<rustls::ServerConfig>,
    /// How long a connection's handshake may take (`--tls-handshake-timeout`, fibra-net's
    /// 10 s by default); past it, the connection ends.
    pub(crate) handshake_timeout: Duration,
}

/// Listens on `addr` for TLS with `tls`, its connections with `conn` and the door's
/// handshake timeout.
fn listen_tls(
    schedule: &Schedule,
    addr: &str,
    door: &TlsDoor,
    conn: fibra::net::ConnOptions,
    tls: Arc<rustls::ServerConfig>,
    reuse_port: bool,
) -> Result<Listener, Box<dyn std::error::Error>> {
    let net = schedule
        .plugin::<NetPlugin>()
        .ok_or("the chatter needs the NetPlugin")?;
    let options = ListenOptions::new()
        .with_conn(conn.with_handshake_timeout(door.handshake_timeout))
        .with_reuse_port(reuse_port)
        .with_tls(tls);
    Ok(net.listen_with(addr, options)?)
}

/// The server's TLS configuration from PEM files: `cert`, the certificate chain (the
/// server's first), and `key`, its private key (PKCS#8, PKCS#1 or SEC1); fibra-net's
/// `server_config_from_pem` (rustls with `ring`, TLS 1.2 and 1.3, no client certificates).
/// Errors name the file and say what is wrong with it.
pub(crate) fn server_config(cert: &str, key: &str) -> Result<Arc<rustls::ServerConfig>, String> {
    let cert_pem = std::fs::read(cert).map_err(|e| format!("--tls-cert `{cert}`: {e}"))?;
    let key_pem = std::fs::read(key).map_err(|e| format!("--tls-key `{key}`: {e}"))?;
    let config = fibra::net::tls::server_config_from_pem(&cert_pem, &key_pem)
        .map_err(|e| format!("--tls-cert `{cert}` with --tls-key `{key}`: {e}"))?;
    Ok(Arc::new(config))
}
