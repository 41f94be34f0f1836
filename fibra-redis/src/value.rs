//! `Value`: a reply, RESP2 or RESP3, as one enum with typed accessors.

use std::fmt;

use redis_protocol::resp2::types::OwnedFrame as Frame2;
use redis_protocol::resp3::types::OwnedFrame as Frame3;

/// A reply from Redis.
///
/// RESP2 and RESP3 replies map onto the same variants: a RESP3 set becomes an
/// [`Array`](Value::Array), a verbatim string a [`Bulk`](Value::Bulk), a big number a
/// [`Simple`](Value::Simple) holding its digits. An error *inside* a reply (an element of an
/// `EXEC` result, say) is a [`Value::Error`]; an error reply to a command is a
/// [`RedisError::Server`](crate::RedisError::Server) instead.
#[derive(Clone, PartialEq)]
pub enum Value {
    /// No value (`$-1`, `*-1`, RESP3's `_`): a missing key, an `XREAD BLOCK` that timed out.
    Nil,
    /// An integer.
    Int(i64),
    /// A simple string (`+OK`).
    Simple(String),
    /// A bulk string: bytes, maybe not UTF-8.
    Bulk(Vec<u8>),
    /// An array (or a RESP3 set).
    Array(Vec<Value>),
    /// A RESP3 map, its pairs in the order they came.
    Map(Vec<(Value, Value)>),
    /// A RESP3 double.
    Double(f64),
    /// A RESP3 boolean.
    Bool(bool),
    /// A RESP3 push (a pub/sub message, an invalidation), out of band.
    Push(Vec<Value>),
    /// An error inside a reply.
    Error(String),
}

impl Value {
    /// Whether it is [`Value::Nil`].
    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    /// Whether it is `+OK`.
    pub fn is_ok(&self) -> bool {
        matches!(self, Value::Simple(s) if s == "OK")
    }

    /// The integer: an [`Int`](Value::Int), or a string holding one (`HGET` of a counter).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bulk(b) => std::str::from_utf8(b).ok()?.parse().ok(),
            Value::Simple(s) => s.parse().ok(),
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    /// The bytes of a [`Bulk`](Value::Bulk) or [`Simple`](Value::Simple) string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bulk(b) => Some(b),
            Value::Simple(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    /// The text of a [`Bulk`](Value::Bulk) (when UTF-8) or [`Simple`](Value::Simple)
    /// string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Bulk(b) => std::str::from_utf8(b).ok(),
            Value::Simple(s) => Some(s),
            _ => None,
        }
    }

    /// The bytes of a string, taken out.
    pub fn into_bytes(self) -> Option<Vec<u8>> {
        match self {
            Value::Bulk(b) => Some(b),
            Value::Simple(s) => Some(s.into_bytes()),
            _ => None,
        }
    }

    /// The text of a string, taken out (a bulk string only when UTF-8).
    pub fn into_string(self) -> Option<String> {
        match self {
            Value::Bulk(b) => String::from_utf8(b).ok(),
            Value::Simple(s) => Some(s),
            _ => None,
        }
    }

    /// The elements of an [`Array`](Value::Array) or [`Push`](Value::Push); [`Nil`] gives
    /// none.
    ///
    /// [`Nil`]: Value::Nil
    pub fn into_array(self) -> Option<Vec<Value>> {
        match self {
            Value::Array(a) | Value::Push(a) => Some(a),
            Value::Nil => Some(Vec::new()),
            _ => None,
        }
    }

    /// The elements of an array, borrowed.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) | Value::Push(a) => Some(a),
            _ => None,
        }
    }

    /// The pairs of a [`Map`](Value::Map), or of a RESP2 array of keys and values
    /// (`HGETALL`'s reply in RESP2); [`Nil`](Value::Nil) gives none.
    pub fn into_map(self) -> Option<Vec<(Value, Value)>> {
        match self {
            Value::Map(m) => Some(m),
            Value::Array(a) if a.len() % 2 == 0 => {
                let mut pairs = Vec::with_capacity(a.len() / 2);
                let mut it = a.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    pairs.push((k, v));
                }
                Some(pairs)
            }
            Value::Nil => Some(Vec::new()),
            _ => None,
        }
    }

    /// What kind of value it is, for messages (`"an integer"`).
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Int(_) => "an integer",
            Value::Simple(_) => "a simple string",
            Value::Bulk(_) => "a bulk string",
            Value::Array(_) => "an array",
            Value::Map(_) => "a map",
            Value::Double(_) => "a double",
            Value::Bool(_) => "a boolean",
            Value::Push(_) => "a push",
            Value::Error(_) => "an error",
        }
    }

    /// A short description for error messages: its kind and the start of its content.
    pub(crate) fn describe(&self) -> String {
        let mut text = format!("{self:?}");
        if text.len() > 80 {
            let mut end = 77;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push_str("...");
        }
        format!("{} ({text})", self.kind())
    }

    pub(crate) fn from_resp2(frame: Frame2) -> Value {
        match frame {
            Frame2::SimpleString(s) => Value::Simple(lossy(s)),
            Frame2::Error(e) => Value::Error(e),
            Frame2::Integer(i) => Value::Int(i),
            Frame2::BulkString(b) => Value::Bulk(b),
            Frame2::Array(a) => Value::Array(a.into_iter().map(Value::from_resp2).collect()),
            Frame2::Null => Value::Nil,
        }
    }

    pub(crate) fn from_resp3(frame: Frame3) -> Value {
        match frame {
            Frame3::BlobString { data, .. } => Value::Bulk(data),
            Frame3::BlobError { data, .. } => Value::Error(lossy(data)),
            Frame3::SimpleString { data, .. } => Value::Simple(lossy(data)),
            Frame3::SimpleError { data, .. } => Value::Error(data),
            Frame3::Boolean { data, .. } => Value::Bool(data),
            Frame3::Null => Value::Nil,
            Frame3::Number { data, .. } => Value::Int(data),
            Frame3::Double { data, .. } => Value::Double(data),
            Frame3::BigNumber { data, .. } => Value::Simple(lossy(data)),
            Frame3::VerbatimString { data, .. } => Value::Bulk(data),
            Frame3::Array { data, .. } => {
                Value::Array(data.into_iter().map(Value::from_resp3).collect())
            }
            Frame3::Set { data, .. } => {
                Value::Array(data.into_iter().map(Value::from_resp3).collect())
            }
            Frame3::Push { data, .. } => {
                Value::Push(data.into_iter().map(Value::from_resp3).collect())
            }
            Frame3::Map { data, .. } => Value::Map(
                data.into_iter()
                    .map(|(k, v)| (Value::from_resp3(k), Value::from_resp3(v)))
                    .collect(),
            ),
            // Redis never sends these to a client (HELLO is a command; streamed chunks are
            // refused by the scanner before decoding).
            Frame3::Hello { .. } | Frame3::ChunkedString(_) => {
                Value::Error("unexpected frame".into())
            }
        }
    }
}

fn lossy(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => f.write_str("nil"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Simple(s) => write!(f, "+{s}"),
            Value::Bulk(b) => match std::str::from_utf8(b) {
                Ok(s) => write!(f, "{s:?}"),
                Err(_) => write!(f, "<{} bytes>", b.len()),
            },
            Value::Array(a) => f.debug_list().entries(a).finish(),
            Value::Push(a) => {
                f.write_str(">")?;
                f.debug_list().entries(a).finish()
            }
            Value::Map(m) => f
                .debug_map()
                .entries(m.iter().map(|(k, v)| (k, v)))
                .finish(),
            Value::Double(d) => write!(f, "{d}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Error(e) => write!(f, "-{e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors() {
        assert_eq!(Value::Int(3).as_int(), Some(3));
        assert_eq!(Value::Bulk(b"42".to_vec()).as_int(), Some(42));
        assert_eq!(Value::Bulk(b"x".to_vec()).as_int(), None);
        assert!(Value::Simple("OK".into()).is_ok());
        assert_eq!(Value::Nil.into_array(), Some(vec![]));
        let flat = Value::Array(vec![Value::Bulk(b"f".to_vec()), Value::Int(1)]);
        assert_eq!(
            flat.into_map(),
            Some(vec![(Value::Bulk(b"f".to_vec()), Value::Int(1))])
        );
        let long = Value::Bulk(vec![b'a'; 200]).describe();
        assert!(long.len() < 110, "{long}");
    }
}
