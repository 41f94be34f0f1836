//! `Cmd`: a command and its arguments, encoded as RESP as they are added.

use std::borrow::Cow;
use std::fmt;
use std::io::Write;

/// One argument of a command: bytes, text or a number.
///
/// Numbers are formatted on the stack, so that no argument allocates; the bytes are copied
/// once, into the command's buffer.
pub trait Arg {
    /// Calls `f` with the argument's bytes.
    fn with_bytes(&self, f: &mut dyn FnMut(&[u8]));
}

impl Arg for [u8] {
    fn with_bytes(&self, f: &mut dyn FnMut(&[u8])) {
        f(self)
    }
}

impl<const N: usize> Arg for [u8; N] {
    fn with_bytes(&self, f: &mut dyn FnMut(&[u8])) {
        f(self)
    }
}

impl Arg for Vec<u8> {
    fn with_bytes(&self, f: &mut dyn FnMut(&[u8])) {
        f(self)
    }
}

impl Arg for str {
    fn with_bytes(&self, f: &mut dyn FnMut(&[u8])) {
        f(self.as_bytes())
    }
}

impl Arg for String {
    fn with_bytes(&self, f: &mut dyn FnMut(&[u8])) {
        f(self.as_bytes())
    }
}

impl Arg for Cow<'_, str> {
    fn with_bytes(&self, f: &mut dyn FnMut(&[u8])) {
        f(self.as_bytes())
    }
}

impl<T: Arg + ?Sized> Arg for &T {
    fn with_bytes(&self, f: &mut dyn FnMut(&[u8])) {
        (**self).with_bytes(f)
    }
}

/// Formats an integer on the stack.
macro_rules! int_arg {
    ($($t:ty),*) => {$(
        impl Arg for $t {
            fn with_bytes(&self, f: &mut dyn FnMut(&[u8])) {
                let mut buf = [0u8; 40];
                let mut cursor = &mut buf[..];
                // 40 bytes hold any 128-bit integer: the write cannot fail.
                let _ = write!(cursor, "{self}");
                let left = cursor.len();
                f(&buf[..40 - left])
            }
        }
    )*};
}

int_arg!(i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize);

impl Arg for f64 {
    fn with_bytes(&self, f: &mut dyn FnMut(&[u8])) {
        let mut buf = [0u8; 64];
        let mut cursor = &mut buf[..];
        if write!(cursor, "{self}").is_ok() {
            let left = cursor.len();
            f(&buf[..64 - left])
        } else {
            f(self.to_string().as_bytes())
        }
    }
}

/// A Redis command: its name and arguments, encoded as a RESP array of bulk strings as they
/// are added (one buffer for the whole command, no allocation per argument).
///
/// ```
/// use fibra_redis::Cmd;
///
/// let cmd = Cmd::new("XADD").arg("room").arg("MAXLEN").arg("~").arg(10_000).arg("*")
///     .arg("line").arg(b"hello".as_slice());
/// assert_eq!(cmd.name(), "XADD");
/// assert_eq!(cmd.len(), 8);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Cmd {
    /// The arguments' `$len\r\nbytes\r\n`, the name first.
    body: Vec<u8>,
    /// How many arguments, the name included.
    argc: usize,
    /// Where the name's bytes lie in `body`.
    name: (usize, usize),
}

impl Cmd {
    /// A command named `name` (`"GET"`, `"XADD"`...), without arguments yet.
    pub fn new(name: &str) -> Cmd {
        let mut cmd = Cmd {
            body: Vec::with_capacity(64),
            argc: 0,
            name: (0, 0),
        };
        cmd.push(name.as_bytes());
        let start = cmd.body.len() - 2 - name.len();
        cmd.name = (start, start + name.len());
        cmd
    }

    /// Adds an argument.
    #[must_use = "arg returns the command with the argument added"]
    pub fn arg<A: Arg>(mut self, arg: A) -> Cmd {
        self.add(arg);
        self
    }

    /// Adds an argument to a command held by reference.
    pub fn add<A: Arg>(&mut self, arg: A) -> &mut Cmd {
        arg.with_bytes(&mut |bytes| self.push(bytes));
        self
    }

    /// Adds every argument of `args`.
    #[must_use = "args returns the command with the arguments added"]
    pub fn args<A: Arg>(mut self, args: impl IntoIterator<Item = A>) -> Cmd {
        for a in args {
            self.add(a);
        }
        self
    }

    fn push(&mut self, bytes: &[u8]) {
        let mut header = [0u8; 24];
        let mut cursor = &mut header[..];
        // `$` and a usize fit in 24 bytes: the write cannot fail.
        let _ = write!(cursor, "${}\r\n", bytes.len());
        let left = cursor.len();
        self.body.reserve(24 - left + bytes.len().saturating_add(2));
        self.body.extend_from_slice(&header[..24 - left]);
        self.body.extend_from_slice(bytes);
        self.body.extend_from_slice(b"\r\n");
        self.argc += 1;
    }

    /// The command's name as given to [`new`](Self::new), upper-cased if it was written in
    /// lower case (for messages).
    pub fn name(&self) -> Cow<'_, str> {
        let bytes = &self.body[self.name.0..self.name.1];
        match String::from_utf8_lossy(bytes) {
            Cow::Borrowed(s) if !s.bytes().any(|b| b.is_ascii_lowercase()) => Cow::Borrowed(s),
            s => Cow::Owned(s.to_ascii_uppercase()),
        }
    }

    /// The name of a pipeline's first command (for messages; empty for no command).
    pub(crate) fn first_name(cmds: &[Cmd]) -> String {
        cmds.first()
            .map_or_else(String::new, |c| c.name().into_owned())
    }

    /// How many words it has, the name included.
    pub fn len(&self) -> usize {
        self.argc
    }

    /// Whether it has no words (never: a command has its name).
    pub fn is_empty(&self) -> bool {
        self.argc == 0
    }

    /// Appends the command, as RESP, to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut header = [0u8; 24];
        let mut cursor = &mut header[..];
        let _ = write!(cursor, "*{}\r\n", self.argc);
        let left = cursor.len();
        out.reserve(24 - left + self.body.len());
        out.extend_from_slice(&header[..24 - left]);
        out.extend_from_slice(&self.body);
    }

    /// The command as RESP bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 16);
        self.write_to(&mut out);
        out
    }

    /// Whether the command switches a connection to pub/sub mode or the monitor stream (which
    /// only a [`Subscriber`](crate::Subscriber) can read).
    pub(crate) fn is_subscription(&self) -> bool {
        let name = &self.body[self.name.0..self.name.1];
        ["SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "MONITOR"]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n.as_bytes()))
    }
}

impl fmt::Debug for Cmd {
    /// The name and the number of arguments (arguments may be secrets: `AUTH`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Cmd({} + {} args)",
            self.name(),
            self.argc.saturating_sub(1)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_resp_arrays_of_bulk_strings() {
        let cmd = Cmd::new("SET")
            .arg("k")
            .arg(b"v\r\n".as_slice())
            .arg(-12i64)
            .arg(7u32);
        assert_eq!(
            cmd.to_bytes(),
            b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv\r\n\r\n$3\r\n-12\r\n$1\r\n7\r\n"
        );
        assert_eq!(Cmd::new("get").name(), "GET");
        assert_eq!(
            format!("{:?}", Cmd::new("AUTH").arg("secret")),
            "Cmd(AUTH + 1 args)"
        );
        assert!(Cmd::new("subscribe").is_subscription());
        assert_eq!(
            Cmd::new("DEL").args(["a", "b"]).to_bytes(),
            b"*3\r\n$3\r\nDEL\r\n$1\r\na\r\n$1\r\nb\r\n"
        );
        assert_eq!(
            Cmd::new("X").arg(u128::MAX).to_bytes().len(),
            "*2\r\n$1\r\nX\r\n$39\r\n".len() + 39 + 2
        );
    }
}
