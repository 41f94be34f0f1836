//! `Config`: where the server is, how to log in, and the limits of every call; parsed from a
//! `redis://[user:pass@]host:port/db` URL.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::RedisError;

/// The default connect timeout: 5 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The default timeout of one call (or one pipeline): 5 s.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// The default limit on one reply: 64 MiB.
pub const DEFAULT_MAX_REPLY: usize = 64 * 1024 * 1024;

/// Which RESP version a connection speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protocol {
    /// RESP2, what every Redis speaks; no `HELLO` is sent.
    #[default]
    Resp2,
    /// RESP3 (Redis 6 and later): `HELLO 3` on connect; maps, doubles, booleans, pushes.
    Resp3,
}

/// How to reach and use a Redis server.
///
/// ```
/// use std::time::Duration;
/// use fibra_redis::Config;
///
/// let config = Config::parse("redis://app:s3cret@127.0.0.1:6380/2")?
///     .with_call_timeout(Duration::from_secs(2));
/// assert_eq!(config.addr(), "127.0.0.1:6380");
/// assert_eq!(config.db(), 2);
/// assert_eq!(config.username(), Some("app"));
/// // The password never shows in logs.
/// assert!(!format!("{config:?}").contains("s3cret"));
/// assert!(Config::parse("http://127.0.0.1").is_err());
/// # Ok::<(), fibra_redis::RedisError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    host: String,
    port: u16,
    username: Option<String>,
    password: Option<String>,
    db: u32,
    protocol: Protocol,
    client_name: Option<String>,
    connect_timeout: Duration,
    call_timeout: Duration,
    max_reply: usize,
}

impl Config {
    /// A server at `host:port`, database 0, no password, the default limits.
    pub fn new(host: impl Into<String>, port: u16) -> Config {
        Config {
            host: host.into(),
            port,
            username: None,
            password: None,
            db: 0,
            protocol: Protocol::Resp2,
            client_name: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            max_reply: DEFAULT_MAX_REPLY,
        }
    }

    /// Parses `redis://[[user]:password@]host[:port][/db][?protocol=resp3]`. The port
    /// defaults to 6379, the database to 0; user and password may be percent-encoded; an
    /// IPv6 host is written in brackets (`redis://[::1]:6379`).
    ///
    /// # Errors
    ///
    /// [`RedisError::Url`] saying what is wrong (another scheme, `rediss://` (TLS, not
    /// supported yet), a bad port, database or parameter), with the password hidden.
    pub fn parse(url: &str) -> Result<Config, RedisError> {
        let bad = |reason: &str| RedisError::Url {
            url: redact(url),
            reason: reason.to_owned(),
        };
        let rest = if let Some(rest) = url.strip_prefix("redis://") {
            rest
        } else if url.starts_with("rediss://") {
            return Err(bad("TLS (rediss://) is not supported yet; use redis://"));
        } else {
            return Err(bad("the scheme must be redis://"));
        };
        // The user and password end at the last `@`: a password left unescaped may hold
        // `/`, `?`, `#` or `@` (generated ones often do), and nothing after it may.
        let (userinfo, rest) = match rest.rsplit_once('@') {
            Some((userinfo, rest)) => (Some(userinfo), rest),
            None => (None, rest),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest, None),
        };
        let (hostport, path) = match rest.split_once('/') {
            Some((hostport, path)) => (hostport, path),
            None => (rest, ""),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("an IPv6 host lacks its closing `]`"))?;
            match after {
                "" => (host, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => return Err(bad("unexpected text after the IPv6 host")),
                },
            }
        } else {
            match hostport.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(bad("the host is missing"));
        }
        let port = match port {
            None => 6379,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(bad(&format!("bad port `{p}` (1 to 65535)"))),
            },
        };
        let mut config = Config::new(host, port);
        if let Some(userinfo) = userinfo {
            let (user, pass) = match userinfo.split_once(':') {
                Some((user, pass)) => (user, Some(pass)),
                // `redis://secret@host`: a password alone, as Redis's own tools read it.
                None => ("", Some(userinfo)),
            };
            let user = percent_decode(user).ok_or_else(|| bad("bad %-escape in the user"))?;
            if !user.is_empty() {
                config.username = Some(user);
            }
            if let Some(pass) = pass {
                let pass =
                    percent_decode(pass).ok_or_else(|| bad("bad %-escape in the password"))?;
                if !pass.is_empty() {
                    config.password = Some(pass);
                }
            }
        }
        let path = path.trim_end_matches('/');
        if !path.is_empty() {
            config.db = path
                .parse()
                .map_err(|_| bad(&format!("bad database `{path}` (a number, like /0)")))?;
        }
        for param in query.into_iter().flat_map(|q| q.split('&')) {
            match param.split_once('=') {
                Some(("protocol", "2" | "resp2")) => config.protocol = Protocol::Resp2,
                Some(("protocol", "3" | "resp3")) => config.protocol = Protocol::Resp3,
                Some(("db", db)) => {
                    config.db = db
                        .parse()
                        .map_err(|_| bad(&format!("bad database `{db}`")))?
                }
                _ if param.is_empty() => {}
                _ => {
                    return Err(bad(&format!(
                        "unknown parameter `{param}` (known: protocol=resp2|resp3, db=N)"
                    )))
                }
            }
        }
        Ok(config)
    }

    /// Logs in as `username` with `password` (`AUTH user pass`, or `HELLO 3 AUTH ...`).
    #[must_use = "with_auth returns the changed config"]
    pub fn with_auth(mut self, username: Option<&str>, password: &str) -> Config {
        self.username = username.map(str::to_owned);
        self.password = Some(password.to_owned());
        self
    }

    /// Selects database `db` on connect.
    #[must_use = "with_db returns the changed config"]
    pub fn with_db(mut self, db: u32) -> Config {
        self.db = db;
        self
    }

    /// Speaks `protocol`.
    #[must_use = "with_protocol returns the changed config"]
    pub fn with_protocol(mut self, protocol: Protocol) -> Config {
        self.protocol = protocol;
        self
    }

    /// Names the connections (`CLIENT SETNAME`), as `CLIENT LIST` shows them.
    #[must_use = "with_client_name returns the changed config"]
    pub fn with_client_name(mut self, name: &str) -> Config {
        self.client_name = Some(name.to_owned());
        self
    }

    /// How long a connect (and its handshake) may take.
    #[must_use = "with_connect_timeout returns the changed config"]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Config {
        self.connect_timeout = timeout;
        self
    }

    /// How long one call or one pipeline may take, from the call to its last reply (a
    /// blocking command's block time is added to it).
    #[must_use = "with_call_timeout returns the changed config"]
    pub fn with_call_timeout(mut self, timeout: Duration) -> Config {
        self.call_timeout = timeout;
        self
    }

    /// The largest reply accepted, in bytes (its RESP encoding); a larger one fails its call
    /// with [`RedisError::TooLarge`] before it is read whole.
    #[must_use = "with_max_reply returns the changed config"]
    pub fn with_max_reply(mut self, bytes: usize) -> Config {
        self.max_reply = bytes.max(64);
        self
    }

    /// The host.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host:port` (`[v6]:port` for an IPv6 address).
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The user name, if any.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// Whether a password is set.
    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }

    pub(crate) fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The database selected on connect.
    pub fn db(&self) -> u32 {
        self.db
    }

    /// The protocol.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The client name, if any.
    pub fn client_name(&self) -> Option<&str> {
        self.client_name.as_deref()
    }

    /// The connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The timeout of one call.
    pub fn call_timeout(&self) -> Duration {
        self.call_timeout
    }

    /// The reply limit in bytes.
    pub fn max_reply(&self) -> usize {
        self.max_reply
    }
}

impl FromStr for Config {
    type Err = RedisError;

    fn from_str(url: &str) -> Result<Config, RedisError> {
        Config::parse(url)
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("addr", &self.addr())
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("db", &self.db)
            .field("protocol", &self.protocol)
            .field("client_name", &self.client_name)
            .field("connect_timeout", &self.connect_timeout)
            .field("call_timeout", &self.call_timeout)
            .field("max_reply", &self.max_reply)
            .finish()
    }
}

/// `url` with its password (between the first `:` and the last `@` after the scheme)
/// replaced by `***`.
fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let after = &url[scheme_end + 3..];
    match after.rfind('@') {
        Some(at) => {
            let userinfo = &after[..at];
            let user = userinfo.split_once(':').map_or("", |(u, _)| u);
            format!(
                "{}{user}:***{}",
                &url[..scheme_end + 3],
                &url[scheme_end + 3 + at..]
            )
        }
        None => url.to_owned(),
    }
}

/// Decodes `%XX` escapes; `None` for a bad escape or bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let c = Config::parse("redis://127.0.0.1").unwrap();
        assert_eq!((c.host(), c.port(), c.db()), ("127.0.0.1", 6379, 0));
        let c = Config::parse("redis://u%40x:p%3Aw@localhost:7000/3").unwrap();
        assert_eq!(c.username(), Some("u@x"));
        assert_eq!(c.password(), Some("p:w"));
        assert_eq!((c.port(), c.db()), (7000, 3));
        let c = Config::parse("redis://:pw@[::1]:6380/").unwrap();
        assert_eq!((c.host(), c.port(), c.username()), ("::1", 6380, None));
        assert_eq!(c.password(), Some("pw"));
        assert_eq!(c.addr(), "[::1]:6380");
        let c = Config::parse("redis://h?protocol=resp3&db=4").unwrap();
        assert_eq!((c.protocol(), c.db()), (Protocol::Resp3, 4));
        let c: Config = "redis://secret@h:1".parse().unwrap();
        assert_eq!((c.username(), c.password()), (None, Some("secret")));
    }

    #[test]
    fn bad_urls_say_why_and_hide_the_password() {
        for (url, why) in [
            ("http://h", "scheme"),
            ("rediss://h", "TLS"),
            ("redis://", "host is missing"),
            ("redis://h:0", "bad port"),
            ("redis://h:99999", "bad port"),
            ("redis://h:x", "bad port"),
            ("redis://h/db1", "bad database"),
            ("redis://h?tls=1", "unknown parameter"),
            ("redis://[::1", "closing"),
            ("redis://u:p%zz@h", "%-escape"),
        ] {
            let e = Config::parse(url).unwrap_err().to_string();
            assert!(e.contains(why), "{url}: {e}");
        }
        let e = Config::parse("redis://me:hunter2@h:bad")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("me:***@h:bad"), "{e}");
    }
}
