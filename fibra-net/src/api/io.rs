//! `ConnIo`: `std::io::Read` and `Write` over a connection, for synchronous libraries
//! (parsers, TLS, WebSocket) running inside a tasklet.

use std::fmt;
use std::io;

use fibra_rt::Handle;

use crate::api::conn::Conn;
use crate::api::error::{Lost, NetError};
use crate::api::ops;
use crate::engine::shared::Encoding;

/// Reads and writes a [`Conn`]'s raw bytes from inside a tasklet; get one with
/// [`NetExt::io`](crate::NetExt::io). A read parks the tasklet until bytes arrive, a write parks it while the
/// output is at its send limit, and `flush` waits until the output was written.
///
/// Reads bypass the connection's codec: do not mix them with `receive` on one connection
/// unless the protocol switches framing at that point.
///
/// ```no_run
/// use std::io::{BufRead, BufReader, Write};
/// use fibra_net::{Conn, NetExt};
/// use fibra_rt::Handle;
///
/// fn greet(h: &Handle, conn: &Conn) -> std::io::Result<()> {
///     let mut reader = BufReader::new(h.io(conn));
///     let mut name = String::new();
///     reader.read_line(&mut name)?;
///     let mut writer = h.io(conn);
///     writeln!(writer, "hello, {}", name.trim())?;
///     writer.flush()
/// }
/// ```
pub struct ConnIo<'a> {
    h: &'a Handle,
    conn: &'a Conn,
    scratch: Vec<u8>,
}

impl<'a> ConnIo<'a> {
    pub(crate) fn new(h: &'a Handle, conn: &'a Conn) -> Self {
        ConnIo {
            h,
            conn,
            scratch: Vec::new(),
        }
    }
}

impl fmt::Debug for ConnIo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnIo").field("conn", self.conn).finish()
    }
}

impl io::Read for ConnIo<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let op = ops::Receive::raw(self.conn, std::mem::take(&mut self.scratch), out.len());
        match self.h.yield_op(op) {
            Ok(bytes) => {
                let n = bytes.len().min(out.len());
                out[..n].copy_from_slice(&bytes[..n]);
                self.scratch = bytes;
                Ok(n)
            }
            // End of stream, or closed here: a read of zero, as std's sockets do.
            Err(NetError::Closed | NetError::Lost(Lost::Eof | Lost::Closed | Lost::Aborted)) => {
                Ok(0)
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl io::Write for ConnIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.conn.send_parking(self.h, buf, Encoding::AsIs)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.h
            .yield_op(ops::Flush::new(self.conn))
            .map_err(Into::into)
    }
}
