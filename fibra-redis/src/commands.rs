//! `Commands`: typed helpers for the commands a chat federation needs (keys with a TTL,
//! hashes, streams, pub/sub, scripts), on anything that can make a call.

use std::time::Duration;

use fibra_rt::Handle;

use crate::cmd::{Arg, Cmd};
use crate::error::RedisError;
use crate::value::Value;

/// Field-value pairs: a hash's (`HGETALL`), a stream entry's.
pub type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// One entry of a stream: its id (`1700000000000-0`) and its field-value pairs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamEntry {
    /// The entry's id.
    pub id: String,
    /// Its fields and values, in order.
    pub fields: Fields,
}

impl StreamEntry {
    /// The value of the first field named `name`.
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(f, _)| f.as_slice() == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// The entries `XREAD` returned for one stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamRead {
    /// The stream's key.
    pub key: Vec<u8>,
    /// Its new entries, oldest first.
    pub entries: Vec<StreamEntry>,
}

/// Typed commands, for a [`Connection`](crate::Connection), a [`Client`](crate::Client) or a
/// [`Pool`](crate::Pool): each sends one command with [`call_blocking`] and checks the
/// reply's type.
///
/// [`call_blocking`]: Commands::call_blocking
///
/// # Errors
///
/// Every helper fails as [`Connection::call`](crate::Connection::call) does, and with
/// [`RedisError::UnexpectedReply`] when the reply is not of the expected type.
pub trait Commands {
    /// Sends `cmd` and returns its reply, within the call timeout plus `block` (the time a
    /// blocking command may wait on the server).
    ///
    /// # Errors
    ///
    /// As [`Connection::call`](crate::Connection::call).
    fn call_blocking(
        &mut self,
        h: &Handle,
        cmd: &Cmd,
        block: Duration,
    ) -> Result<Value, RedisError>;

    /// Sends `cmd` and returns its reply, within the call timeout.
    ///
    /// # Errors
    ///
    /// As [`Connection::call`](crate::Connection::call).
    fn call(&mut self, h: &Handle, cmd: &Cmd) -> Result<Value, RedisError> {
        self.call_blocking(h, cmd, Duration::ZERO)
    }

    /// `PING`.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    fn ping(&mut self, h: &Handle) -> Result<(), RedisError> {
        let cmd = Cmd::new("PING");
        let v = self.call(h, &cmd)?;
        expect_ok(&cmd, v, "PONG")
    }

    /// `GET key`: its value, `None` if the key is missing.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    fn get<K: Arg>(&mut self, h: &Handle, key: K) -> Result<Option<Vec<u8>>, RedisError> {
        let cmd = Cmd::new("GET").arg(key);
        optional_bytes(&cmd, self.call(h, &cmd)?)
    }

    /// `SET key value`.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    fn set<K: Arg, V: Arg>(&mut self, h: &Handle, key: K, value: V) -> Result<(), RedisError> {
        let cmd = Cmd::new("SET").arg(key).arg(value);
        let v = self.call(h, &cmd)?;
        expect_ok(&cmd, v, "OK")
    }

    /// `SET key value NX EX ttl`: sets the key only if it does not exist, with a TTL (whole
    /// seconds, at least 1); `true` when it was set. A claim with an expiry.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    fn set_nx_ex<K: Arg, V: Arg>(
        &mut self,
        h: &Handle,
        key: K,
        value: V,
        ttl: Duration,
    ) -> Result<bool, RedisError> {
        let secs = ttl.as_secs().max(1);
        let cmd = Cmd::new("SET")
            .arg(key)
            .arg(value)
            .arg("NX")
            .arg("EX")
            .arg(secs);
        ok_or_nil(&cmd, self.call(h, &cmd)?)
    }

    /// `SET key value NX PX ttl`: as [`set_nx_ex`](Self::set_nx_ex), in milliseconds.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    fn set_nx_px<K: Arg, V: Arg>(
        &mut self,
        h: &Handle,
        key: K,
        value: V,
        ttl: Duration,
    ) -> Result<bool, RedisError> {
        let ms = millis(ttl);
        let cmd = Cmd::new("SET")
            .arg(key)
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(ms);
        ok_or_nil(&cmd, self.call(h, &cmd)?)
    }

    /// `EXPIRE key secs`: `true` if the key exists (its TTL was set).
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    fn expire<K: Arg>(&mut self, h: &Handle, key: K, ttl: Duration) -> Result<bool, RedisError> {
        let cmd = Cmd::new("EXPIRE").arg(key).arg(ttl.as_secs().max(1));
        Ok(int(&cmd, self.call(h, &cmd)?)? == 1)
    }

    /// `PEXPIRE key ms`: `true` if the key exists.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    fn pexpire<K: Arg>(&mut self, h: &Handle, key: K, ttl: Duration) -> Result<bool, RedisError> {
        let ms = millis(ttl);
        let cmd = Cmd::new("PEXPIRE").arg(key).arg(ms);
        Ok(int(&cmd, self.call(h, &cmd)?)? == 1)
    }

    /// `DEL key...`: how many keys were removed.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    fn del<K: Arg>(&mut self, h: &Handle, keys: &[K]) -> Result<i64, RedisError> {
        let cmd = Cmd::new("DEL").args(keys);
        int(&cmd, self.call(h, &cmd)?)
    }

    /// `INCR key`: the new value.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    fn incr<K: Arg>(&mut self, h: &Handle, key: K) -> Result<i64, RedisError> {
        let cmd = Cmd::new("INCR").arg(key);
        int(&cmd, self.call(h, &cmd)?)
    }

    /// `HSET key field value`: 1 if the field is new, 0 if it was updated.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    fn hset<K: Arg, F: Arg, V: Arg>(
        &mut self,
        h: &Handle,
        key: K,
        field: F,
        value: V,
    ) -> Result<i64, RedisError> {
        let cmd = Cmd::new("HSET").arg(key).arg(field).arg(value);
        int(&cmd, self.call(h, &cmd)?)
    }

    /// `HGET key field`: its value, `None` if the field or the key is missing.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    fn hget<K: Arg, F: Arg>(
        &mut self,
        h: &Handle,
        key: K,
        field: F,
    ) -> Result<Option<Vec<u8>>, RedisError> {
        let cmd = Cmd::new("HGET").arg(key).arg(field);
        optional_bytes(&cmd, self.call(h, &cmd)?)
    }

    /// `EXISTS key...`: how many of the keys exist.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    fn exists<K: Arg>(&mut self, h: &Handle, keys: &[K]) -> Result<i64, RedisError> {
        let cmd = Cmd::new("EXISTS").args(keys);
        int(&cmd, self.call(h, &cmd)?)
    }

    /// `SADD key member...`: how many were new.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    fn sadd<K: Arg, M: Arg>(
        &mut self,
        h: &Handle,
        key: K,
        members: &[M],
    ) -> Result<i64, RedisError> {
        let cmd = Cmd::new("SADD").arg(key).args(members);
        int(&cmd, self.call(h, &cmd)?)
    }

    /// `SREM key member...`: how many were removed.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    fn srem<K: Arg, M: Arg>(
        &mut self,
        h: &Handle,
        key: K,
        members: &[M],
    ) -> Result<i64, RedisError> {
        let cmd = Cmd::new("SREM").arg(key).args(members);
        int(&cmd, self.call(h, &cmd)?)
    }

    /// `SMEMBERS key`: the members, in no order (none for a missing key).
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    fn smembers<K: Arg>(&mut self, h: &Handle, key: K) -> Result<Vec<Vec<u8>>, RedisError> {
        let cmd = Cmd::new("SMEMBERS").arg(key);
        let v = self.call(h, &cmd)?;
        let Some(list) = v.clone().into_array() else {
            return Err(unexpected(&cmd, "an array", &v));
        };
        list.into_iter().map(|m| bytes(&cmd, m)).collect()
    }

    /// `HDEL key field...`: how many fields were removed.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    fn hdel<K: Arg, F: Arg>(
        &mut self,
        h: &Handle,
        key: K,
        fields: &[F],
    ) -> Result<i64, RedisError> {
        let cmd = Cmd::new("HDEL").arg(key).args(fields);
        int(&cmd, self.call(h, &cmd)?)
    }

    /// `HGETALL key`: its fields and values (none for a missing key).
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    fn hgetall<K: Arg>(&mut self, h: &Handle, key: K) -> Result<Fields, RedisError> {
        let cmd = Cmd::new("HGETALL").arg(key);
        pairs(&cmd, self.call(h, &cmd)?)
    }

    /// `XADD key [MAXLEN ~ n] * field value...`: appends an entry with a new id, trimming the
    /// stream to about `max_len` entries; returns the id.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    fn xadd<K: Arg, F: Arg, V: Arg>(
        &mut self,
        h: &Handle,
        key: K,
        max_len: Option<usize>,
        fields: &[(F, V)],
    ) -> Result<String, RedisError> {
        let mut cmd = Cmd::new("XADD").arg(key);
        if let Some(n) = max_len {
            cmd = cmd.arg("MAXLEN").arg("~").arg(n);
        }
        cmd.add("*");
        for (f, v) in fields {
            cmd.add(f);
            cmd.add(v);
        }
        string(&cmd, self.call(h, &cmd)?, "an id")
    }

    /// `XREAD [COUNT n] BLOCK ms STREAMS key... id...`: the entries after each `ids[i]` of
    /// `keys[i]` (`$`: only new ones), waiting up to `block` for one to come; none (an empty
    /// list) when the block time passed. The call's timeout is `block` plus the call
    /// timeout, so a quiet stream does not break the connection. A zero `block` waits 1 ms
    /// (Redis reads `BLOCK 0` as "for ever", which no timeout allows).
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call); [`RedisError::Usage`] when `keys` and `ids` differ in
    /// length or are empty.
    fn xread_block<K: Arg, I: Arg>(
        &mut self,
        h: &Handle,
        keys: &[K],
        ids: &[I],
        count: Option<usize>,
        block: Duration,
    ) -> Result<Vec<StreamRead>, RedisError> {
        if keys.len() != ids.len() || keys.is_empty() {
            return Err(RedisError::Usage {
                command: "XREAD".into(),
                reason: format!(
                    "{} keys and {} ids: give one id per key, at least one",
                    keys.len(),
                    ids.len()
                ),
            });
        }
        let mut cmd = Cmd::new("XREAD");
        if let Some(n) = count {
            cmd = cmd.arg("COUNT").arg(n);
        }
        // Redis reads `BLOCK 0` as "for ever", past any timeout: a zero block waits 1 ms.
        let ms = millis(block);
        cmd = cmd.arg("BLOCK").arg(ms).arg("STREAMS").args(keys).args(ids);
        let v = self.call_blocking(h, &cmd, block)?;
        stream_reads(&cmd, v)
    }

    /// `XRANGE key start end [COUNT n]`: the entries between two ids (`-` and `+` for the
    /// ends, `(id` to exclude one).
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    fn xrange<K: Arg, S: Arg, E: Arg>(
        &mut self,
        h: &Handle,
        key: K,
        start: S,
        end: E,
        count: Option<usize>,
    ) -> Result<Vec<StreamEntry>, RedisError> {
        let mut cmd = Cmd::new("XRANGE").arg(key).arg(start).arg(end);
        if let Some(n) = count {
            cmd = cmd.arg("COUNT").arg(n);
        }
        let v = self.call(h, &cmd)?;
        entries(&cmd, v)
    }

    /// `PUBLISH channel message`: how many subscribers got it.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    fn publish<C: Arg, M: Arg>(
        &mut self,
        h: &Handle,
        channel: C,
        message: M,
    ) -> Result<i64, RedisError> {
        let cmd = Cmd::new("PUBLISH").arg(channel).arg(message);
        int(&cmd, self.call(h, &cmd)?)
    }

    /// `EVAL script numkeys key... arg...`: runs a Lua script atomically.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call); the script's own errors are [`RedisError::Server`].
    fn eval<K: Arg, A: Arg>(
        &mut self,
        h: &Handle,
        script: &str,
        keys: &[K],
        args: &[A],
    ) -> Result<Value, RedisError> {
        let cmd = script_cmd("EVAL", script, keys, args);
        self.call(h, &cmd)
    }

    /// `EVALSHA sha1 numkeys key... arg...`: runs a script loaded before; a
    /// [`RedisError::Server`] with code `NOSCRIPT` when the server does not know it (after a
    /// restart, say): load it again, or use [`eval_cached`](Self::eval_cached).
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    fn evalsha<K: Arg, A: Arg>(
        &mut self,
        h: &Handle,
        sha1: &str,
        keys: &[K],
        args: &[A],
    ) -> Result<Value, RedisError> {
        let cmd = script_cmd("EVALSHA", sha1, keys, args);
        self.call(h, &cmd)
    }

    /// `SCRIPT LOAD script`: its SHA1, for [`evalsha`](Self::evalsha).
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    fn script_load(&mut self, h: &Handle, script: &str) -> Result<String, RedisError> {
        let cmd = Cmd::new("SCRIPT").arg("LOAD").arg(script);
        string(&cmd, self.call(h, &cmd)?, "a SHA1")
    }

    /// Runs `script` by its SHA1 (`sha1`, as [`script_load`](Self::script_load) gave it),
    /// sending the whole script only when the server answers `NOSCRIPT` (it was restarted
    /// empty): the script travels once per server, not once per call.
    ///
    /// # Errors
    ///
    /// As [`eval`](Self::eval).
    fn eval_cached<K: Arg, A: Arg>(
        &mut self,
        h: &Handle,
        script: &str,
        sha1: &str,
        keys: &[K],
        args: &[A],
    ) -> Result<Value, RedisError> {
        match self.evalsha(h, sha1, keys, args) {
            Err(e) if e.server_code() == Some("NOSCRIPT") => self.eval(h, script, keys, args),
            other => other,
        }
    }
}

fn script_cmd<K: Arg, A: Arg>(name: &str, script: &str, keys: &[K], args: &[A]) -> Cmd {
    Cmd::new(name)
        .arg(script)
        .arg(keys.len())
        .args(keys)
        .args(args)
}

pub(crate) fn unexpected(cmd: &Cmd, expected: &'static str, got: &Value) -> RedisError {
    RedisError::UnexpectedReply {
        command: cmd.name().into_owned(),
        expected,
        got: got.describe(),
    }
}

fn expect_ok(cmd: &Cmd, v: Value, word: &str) -> Result<(), RedisError> {
    match &v {
        Value::Simple(s) if s == word => Ok(()),
        _ => Err(unexpected(cmd, "a status reply", &v)),
    }
}

fn int(cmd: &Cmd, v: Value) -> Result<i64, RedisError> {
    match v {
        Value::Int(i) => Ok(i),
        v => Err(unexpected(cmd, "an integer", &v)),
    }
}

/// `OK` (`true`) or nil (`false`): a `SET ... NX`'s reply.
fn ok_or_nil(cmd: &Cmd, v: Value) -> Result<bool, RedisError> {
    match v {
        Value::Nil => Ok(false),
        v if v.is_ok() => Ok(true),
        v => Err(unexpected(cmd, "OK or nil", &v)),
    }
}

/// A string reply (`expected` names it in the error).
fn string(cmd: &Cmd, v: Value, expected: &'static str) -> Result<String, RedisError> {
    v.clone()
        .into_string()
        .ok_or_else(|| unexpected(cmd, expected, &v))
}

/// A string, or `None` for nil (a missing key or field).
fn optional_bytes(cmd: &Cmd, v: Value) -> Result<Option<Vec<u8>>, RedisError> {
    match v {
        Value::Nil => Ok(None),
        v => Ok(Some(bytes(cmd, v)?)),
    }
}

/// `d` in whole milliseconds, at least 1 (and at most `u64::MAX`).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn bytes(cmd: &Cmd, v: Value) -> Result<Vec<u8>, RedisError> {
    match v {
        Value::Bulk(b) => Ok(b),
        Value::Simple(s) => Ok(s.into_bytes()),
        v => Err(unexpected(cmd, "a string", &v)),
    }
}

fn pairs(cmd: &Cmd, v: Value) -> Result<Fields, RedisError> {
    // The shape is checked by reference: the reply is taken apart, never copied.
    let is_map = match &v {
        Value::Map(_) | Value::Nil => true,
        Value::Array(a) => a.len() % 2 == 0,
        _ => false,
    };
    if !is_map {
        return Err(unexpected(cmd, "a map", &v));
    }
    let map = v.into_map().unwrap_or_default();
    map.into_iter()
        .map(|(k, v)| Ok((bytes(cmd, k)?, bytes(cmd, v)?)))
        .collect()
}

/// `[[id, [field, value, ...]], ...]`.
fn entries(cmd: &Cmd, v: Value) -> Result<Vec<StreamEntry>, RedisError> {
    let list = match v {
        Value::Array(a) | Value::Push(a) => a,
        Value::Nil => Vec::new(),
        other => return Err(unexpected(cmd, "an array of stream entries", &other)),
    };
    list.into_iter()
        .map(|entry| {
            let well_formed = entry
                .as_array()
                .is_some_and(|a| a.len() == 2 && a[0].as_str().is_some());
            if !well_formed {
                return Err(unexpected(cmd, "a stream entry [id, fields]", &entry));
            }
            let mut parts = entry.into_array().unwrap_or_default().into_iter();
            let (Some(id), Some(fields)) = (parts.next(), parts.next()) else {
                return Err(unexpected(cmd, "a stream entry [id, fields]", &Value::Nil));
            };
            let id = id.as_str().unwrap_or_default().to_owned();
            let fields = pairs(cmd, fields)?;
            Ok(StreamEntry { id, fields })
        })
        .collect()
}

/// `XREAD`'s reply: nil, `[[key, entries], ...]` (RESP2) or `{key: entries}` (RESP3).
fn stream_reads(cmd: &Cmd, v: Value) -> Result<Vec<StreamRead>, RedisError> {
    let streams: Vec<(Value, Value)> = match v {
        Value::Nil => return Ok(Vec::new()),
        Value::Map(m) => m,
        Value::Array(a) => {
            let mut out = Vec::with_capacity(a.len());
            for s in a {
                match s {
                    Value::Array(kv) if kv.len() == 2 => {
                        let mut it = kv.into_iter();
                        if let (Some(k), Some(e)) = (it.next(), it.next()) {
                            out.push((k, e));
                        }
                    }
                    other => return Err(unexpected(cmd, "[key, entries]", &other)),
                }
            }
            out
        }
        other => return Err(unexpected(cmd, "streams", &other)),
    };
    streams
        .into_iter()
        .map(|(k, e)| {
            Ok(StreamRead {
                key: bytes(cmd, k)?,
                entries: entries(cmd, e)?,
            })
        })
        .collect()
}

impl Commands for crate::Connection {
    fn call_blocking(
        &mut self,
        h: &Handle,
        cmd: &Cmd,
        block: Duration,
    ) -> Result<Value, RedisError> {
        crate::Connection::call_blocking(self, h, cmd, block)
    }
}
