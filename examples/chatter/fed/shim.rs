//! TEMPORARY: a minimal RESP2 client with the planned fibra-redis API, until it lands.
#![allow(dead_code, missing_docs, unreachable_pub)]

use std::time::{Duration, Instant};

use fibra::net::{Conn, ConnOptions, Framing, NetError, NetExt};
use fibra::Handle;

const TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct Config {
    addr: String,
}

impl Config {
    pub fn parse(url: &str) -> Result<Config, RedisError> {
        let rest = url
            .strip_prefix("redis://")
            .ok_or_else(|| RedisError(format!("not a redis:// URL: {url}")))?;
        Ok(Config {
            addr: rest.split('/').next().unwrap_or("").to_owned(),
        })
    }
}

#[derive(Debug)]
pub struct RedisError(String);

impl std::fmt::Display for RedisError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RedisError {}

impl RedisError {
    pub fn is_server_error(&self) -> bool {
        false
    }
}

impl From<std::io::Error> for RedisError {
    fn from(e: std::io::Error) -> Self {
        RedisError(e.to_string())
    }
}

impl From<NetError> for RedisError {
    fn from(e: NetError) -> Self {
        RedisError(e.to_string())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Nil,
    Int(i64),
    Bulk(Vec<u8>),
    Simple(String),
    Error(String),
    Array(Vec<Value>),
}

#[derive(Debug, Clone)]
pub struct Cmd {
    args: Vec<Vec<u8>>,
}

impl Cmd {
    pub fn new(name: &str) -> Cmd {
        Cmd {
            args: vec![name.as_bytes().to_vec()],
        }
    }
    pub fn arg(mut self, a: impl AsRef<[u8]>) -> Cmd {
        self.args.push(a.as_ref().to_vec());
        self
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("*{}\r\n", self.args.len()).as_bytes());
        for a in &self.args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
    }
}

#[derive(Debug)]
pub struct Connection {
    conn: Conn,
    buf: Vec<u8>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.conn.abort();
    }
}

impl Connection {
    pub fn connect(h: &Handle, cfg: &Config) -> Result<Connection, RedisError> {
        let options = ConnOptions::new()
            .with_framing(Framing::Raw)
            .with_flush_delay(Duration::ZERO)
            .with_connect_timeout(Some(TIMEOUT));
        let conn = h.connect_with(cfg.addr.as_str(), options)?;
        Ok(Connection {
            conn,
            buf: Vec::new(),
        })
    }

    pub fn call(&mut self, h: &Handle, cmd: &Cmd) -> Result<Value, RedisError> {
        self.pipeline(h, std::slice::from_ref(cmd))?.pop().unwrap()
    }

    pub fn call_blocking(
        &mut self,
        h: &Handle,
        cmd: &Cmd,
        _block: Duration,
    ) -> Result<Value, RedisError> {
        self.call(h, cmd)
    }

    pub fn pipeline(
        &mut self,
        h: &Handle,
        cmds: &[Cmd],
    ) -> Result<Vec<Result<Value, RedisError>>, RedisError> {
        let mut out = Vec::new();
        for c in cmds {
            c.encode(&mut out);
        }
        h.send(&self.conn, &out)?;
        let deadline = Instant::now() + TIMEOUT;
        let mut replies = Vec::with_capacity(cmds.len());
        while replies.len() < cmds.len() {
            let mut at = 0;
            match parse(&self.buf, &mut at) {
                Some(v) => {
                    self.buf.drain(..at);
                    replies.push(match v {
                        Value::Error(e) => Err(RedisError(e)),
                        v => Ok(v),
                    });
                }
                None => {
                    let more = h.receive_until(&self.conn, deadline)?;
                    self.buf.extend_from_slice(&more);
                }
            }
        }
        Ok(replies)
    }
}

fn line(buf: &[u8], at: &mut usize) -> Option<String> {
    let start = *at;
    let end = buf[start..].windows(2).position(|w| w == b"\r\n")? + start;
    *at = end + 2;
    Some(String::from_utf8_lossy(&buf[start..end]).into_owned())
}

fn parse(buf: &[u8], at: &mut usize) -> Option<Value> {
    if *at >= buf.len() {
        return None;
    }
    let kind = buf[*at];
    *at += 1;
    let l = line(buf, at)?;
    Some(match kind {
        b'+' => Value::Simple(l),
        b'-' => Value::Error(l),
        b':' => Value::Int(l.parse().ok()?),
        b'$' => {
            let n: i64 = l.parse().ok()?;
            if n < 0 {
                return Some(Value::Nil);
            }
            let n = n as usize;
            if buf.len() < *at + n + 2 {
                return None;
            }
            let v = buf[*at..*at + n].to_vec();
            *at += n + 2;
            Value::Bulk(v)
        }
        b'*' => {
            let n: i64 = l.parse().ok()?;
            if n < 0 {
                return Some(Value::Nil);
            }
            let mut items = Vec::with_capacity(n as usize);
            for _ in 0..n {
                items.push(parse(buf, at)?);
            }
            Value::Array(items)
        }
        _ => Value::Error(format!("bad reply byte {kind}")),
    })
}
