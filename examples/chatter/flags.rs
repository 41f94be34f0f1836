//! The command line: the flags, their defaults and the help text.

use std::time::Duration;

use super::cli;
use super::config::Config;
use super::tls::TlsDoor;

const HELP: &str = "chatter: fibra's classic demo, a chat server for telnet and browsers, a \
tasklet per member while it speaks

usage: chatter [--addr HOST:PORT] [--web-addr HOST:PORT | --no-web] [--web-origin ORIGIN]
               [--max-line BYTES]
               [--max-outbound BYTES] [--login-timeout SECS] [--flush-delay MS]
               [--max-rooms N] [--max-rate BYTES]
               [--threads N] [--accept handoff|reuseport] [--pin]
               [--idle-members stackless|stackful]
               [--tls-cert FILE --tls-key FILE [--tls-addr HOST:PORT]
                [--tls-web-addr HOST:PORT] [--tls-handshake-timeout SECS]]
               [--redis redis://HOST:PORT [--node NAME] [--redis-history N]
                [--redis-outbox N]]
  --addr           where to listen for telnet (default 127.0.0.1:1980)
  --web-addr       where to serve the web page and its WebSocket (default 127.0.0.1:1990)
  --no-web         no web page (neither over HTTP nor over HTTPS)
  --web-origin     an origin (https://chat.example.com) whose pages may open the chat's
                   WebSocket besides the server's own: a reverse proxy's (repeatable)
  --max-line       longest line accepted; a longer one ends that connection (default 8192;
                   at most 16777216 with --redis)
  --max-outbound   output queued to a member that does not read before it is cut off
                   (default 1048576)
  --login-timeout  seconds a new connection has to choose a handle, 0 for no limit (default 60)
  --flush-delay    milliseconds a member's output may wait to be gathered into one write,
                   0 to write every round (default 10; fractions allowed)
  --max-rooms      rooms besides the lobby; `/join` of a new one past it is refused
                   (default 10000)
  --max-rate       bytes a second one member may say (lines and commands), saved up to
                   a second's worth; a member saying more is held up (its input waits),
                   so that no member floods the room faster than its readers read;
                   0 for no limit (default 1048576)
  --threads        schedules (threads) serving the one room (default 1)
  --accept         with --threads: `handoff` (one acceptor, the least-loaded thread;
                   the default) or `reuseport` (a listener per thread, the kernel's spread)
  --pin            with --threads: pin thread i to CPU i
  --idle-members   `stackless` (the default: a silent connection, at the prompt or a
                   member, holds no tasklet; its lines are served on pooled tasklets;
                   ~1.2-1.7 KiB each, and no vm.max_map_count raise for a million) or
                   `stackful` (a tasklet, so a stack, per connection: ~5-11 KiB each)
  --tls-cert       with --tls-key: serve the chat over TLS too, with this certificate
                   chain (PEM, the server's certificate first); TLS and plain members
                   share the room (`openssl s_client -connect HOST:PORT` to chat)
  --tls-key        the certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1)
  --tls-addr       where to listen for the chat over TLS (default 127.0.0.1:1983)
  --tls-web-addr   where to serve the web page over HTTPS and WSS (default 127.0.0.1:1993)
  --tls-handshake-timeout  seconds a TLS handshake may take (default 10; fractions allowed)
  --redis          one room with every chatter on this Redis (`docs/federation.md`):
                   redis://[user:pass@]host:port[/db]
  --node           with --redis: this chatter's name among them (default: its telnet
                   address, the host name for 0.0.0.0 or loopback; with --threads N,
                   thread i is NAME/i)
  --redis-history  with --redis: lines the room's stream keeps, for a node that was away
                   to catch up (default 10000)
  --redis-outbox   with --redis: lines said here kept while Redis is out of reach, to
                   publish when it is back (default 10000)";

/// The chat over TLS: the server's configuration and where to serve it.
#[derive(Debug, Clone)]
pub(crate) struct Tls {
    /// The certificate and key, read from the PEM files, and the handshake timeout.
    pub(crate) door: TlsDoor,
    /// Where to listen for the chat over TLS.
    pub(crate) addr: String,
    /// Where to serve the web page over HTTPS; `None` with `--no-web`.
    pub(crate) web_addr: Option<String>,
}

/// What the command line asked for.
#[derive(Debug, Clone)]
pub(crate) struct Flags {
    /// Where to listen for telnet.
    pub(crate) addr: String,
    /// Where to serve the web page; `None`: no web page.
    pub(crate) web_addr: Option<String>,
    /// How the room treats its members.
    pub(crate) config: Config,
    /// Schedules (threads) serving the one room.
    pub(crate) threads: usize,
    /// With threads: a `SO_REUSEPORT` listener per thread instead of one hand-off.
    pub(crate) reuseport: bool,
    /// With threads: thread i pinned to CPU i.
    pub(crate) pin: bool,
    /// The chat over TLS too (`--tls-cert`, `--tls-key`).
    pub(crate) tls: Option<Tls>,
    /// One room with the other chatters on a Redis (`--redis`).
    pub(crate) redis: Option<super::fed::Options>,
}

impl Flags {
    /// Reads the process's arguments; a bad one ends the process with the help text.
    pub(crate) fn parse() -> Flags {
        let mut flags = Flags {
            addr: "127.0.0.1:1980".to_owned(),
            web_addr: Some("127.0.0.1:1990".to_owned()),
            config: Config::default(),
            threads: 1,
            reuseport: false,
            pin: false,
            tls: None,
            redis: None,
        };
        let mut fed = super::fed::Options::default();
        let (mut cert, mut key) = (None, None);
        let (mut tls_addr, mut tls_web_addr, mut handshake_timeout) = (None, None, None);
        let config = &mut flags.config;
        let mut args = cli::Args::new("chatter", HELP);
        while let Some(flag) = args.next_flag() {
            let f = flag.as_str();
            match f {
                "--addr" => flags.addr = args.value(f),
                "--max-line" => config.max_line = args.number(f, 1, 1 << 30) as usize,
                "--max-outbound" => config.max_outbound = args.number(f, 1, 1 << 40) as usize,
                "--login-timeout" => {
                    let secs = args.number(f, 0, 86_400);
                    config.login_timeout = (secs > 0).then(|| Duration::from_secs(secs));
                }
                "--flush-delay" => {
                    let ms: f64 = args.parse(f);
                    if !(0.0..=1000.0).contains(&ms) {
                        args.fail("--flush-delay must be between 0 and 1000 ms");
                    }
                    config.flush_delay = Duration::from_secs_f64(ms / 1000.0);
                }
                "--max-rooms" => config.max_rooms = args.number(f, 0, 1 << 24) as usize,
                "--max-rate" => config.max_rate = args.number(f, 0, 1 << 40),
                "--web-origin" => {
                    let origin = args.value(f);
                    if !origin.contains("://") {
                        args.fail(format!(
                            "--web-origin `{origin}`: give SCHEME://HOST[:PORT], as a browser \
                             sends it (https://chat.example.com)"
                        ));
                    }
                    config.web_origins.push(origin);
                }
                "--threads" => flags.threads = args.number(f, 1, 1024) as usize,
                "--accept" => {
                    flags.reuseport = match args.value(f).as_str() {
                        "handoff" => false,
                        "reuseport" => true,
                        other => args.fail(format!("--accept `{other}`: handoff or reuseport")),
                    }
                }
                "--pin" => flags.pin = true,
                "--idle-members" => {
                    config.stackless_members = match args.value(f).as_str() {
                        "stackful" => false,
                        "stackless" => true,
                        other => {
                            args.fail(format!("--idle-members `{other}`: stackful or stackless"))
                        }
                    }
                }
                "--web-addr" => flags.web_addr = Some(args.value(f)),
                "--no-web" => flags.web_addr = None,
                "--tls-cert" => cert = Some(args.value(f)),
                "--tls-key" => key = Some(args.value(f)),
                "--tls-addr" => tls_addr = Some(args.value(f)),
                "--tls-web-addr" => tls_web_addr = Some(args.value(f)),
                "--tls-handshake-timeout" => {
                    let secs: f64 = args.parse(f);
                    if !(secs > 0.0 && secs <= 3600.0) {
                        args.fail("--tls-handshake-timeout must be in (0, 3600] seconds");
                    }
                    handshake_timeout = Some(Duration::from_secs_f64(secs));
                }
                "--redis" => fed.url = args.value(f),
                "--node" => fed.node = Some(args.value(f)),
                "--redis-history" => fed.history = args.number(f, 1, 1 << 32) as usize,
                "--redis-outbox" => fed.outbox = args.number(f, 1, 1 << 32) as usize,
                _ => args.unknown(f),
            }
        }
        flags.tls = match (cert, key) {
            (None, None)
                if tls_addr.is_none() && tls_web_addr.is_none() && handshake_timeout.is_none() =>
            {
                None
            }
            (None, None) => args.fail(
                "--tls-addr, --tls-web-addr and --tls-handshake-timeout need --tls-cert and \
                 --tls-key",
            ),
            (Some(cert), Some(key)) => match super::tls::server_config(&cert, &key) {
                Ok(config) => Some(Tls {
                    door: TlsDoor {
                        config,
                        handshake_timeout: handshake_timeout
                            .unwrap_or(fibra::net::DEFAULT_HANDSHAKE_TIMEOUT),
                    },
                    addr: tls_addr.unwrap_or_else(|| "127.0.0.1:1983".to_owned()),
                    web_addr: flags
                        .web_addr
                        .is_some()
                        .then(|| tls_web_addr.unwrap_or_else(|| "127.0.0.1:1993".to_owned())),
                }),
                Err(e) => args.fail(e),
            },
            _ => args.fail("--tls-cert and --tls-key go together"),
        };
        if !fed.url.is_empty() {
            if let Err(e) = fibra::redis::Config::parse(&fed.url) {
                args.fail(format!("--redis: {e}"));
            }
            flags.redis = Some(fed);
        } else if fed != super::fed::Options::default() {
            args.fail("--node, --redis-history and --redis-outbox need --redis");
        }
        flags
    }
}
