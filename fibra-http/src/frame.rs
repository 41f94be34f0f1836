//! WebSocket frames (RFC 6455 §5.2): reading a frame's header and checking it against the
//! protocol and the limits before any of its numbers is used, writing a server's frame.

use crate::CloseCode;

/// Continuation, text, binary, close, ping, pong.
pub(crate) const CONTINUATION: u8 = 0x0;
pub(crate) const TEXT: u8 = 0x1;
pub(crate) const BINARY: u8 = 0x2;
pub(crate) const CLOSE: u8 = 0x8;
pub(crate) const PING: u8 = 0x9;
pub(crate) const PONG: u8 = 0xA;

/// A frame's header as the client sent it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) fin: bool,
    pub(crate) rsv: u8,
    pub(crate) opcode: u8,
    pub(crate) mask: Option<[u8; 4]>,
    pub(crate) len: u64,
    /// The header's own length, in bytes.
    pub(crate) size: usize,
}

impl Header {
    /// The header at the start of `buf`, or `None` if more bytes are needed.
    pub(crate) fn parse(buf: &[u8]) -> Option<Header> {
        let (&b0, &b1) = (buf.first()?, buf.get(1)?);
        let mut size = 2;
        let len = match b1 & 0x7F {
            126 => {
                size += 2;
                u64::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]))
            }
            127 => {
                size += 8;
                let bytes: [u8; 8] = buf.get(2..10)?.try_into().ok()?;
                u64::from_be_bytes(bytes)
            }
            n => u64::from(n),
        };
        let mask = if b1 & 0x80 != 0 {
            let key: [u8; 4] = buf.get(size..size + 4)?.try_into().ok()?;
            size += 4;
            Some(key)
        } else {
            None
        };
        Some(Header {
            fin: b0 & 0x80 != 0,
            rsv: (b0 >> 4) & 0x7,
            opcode: b0 & 0x0F,
            mask,
            len,
            size,
        })
    }

    pub(crate) fn is_control(&self) -> bool {
        self.opcode >= 0x8
    }

    /// The rule this header breaks for a server with frames of at most `max_frame` bytes,
    /// if any: 1002 for an unmasked frame, reserved bits, an unknown opcode, a 64-bit length
    /// with its top bit set, a fragmented control frame or one over 125 bytes; 1009 for a
    /// payload over `max_frame`.
    pub(crate) fn violation(&self, max_frame: usize) -> Option<CloseCode> {
        let known = matches!(
            self.opcode,
            CONTINUATION | TEXT | BINARY | CLOSE | PING | PONG
        );
        if self.rsv != 0 || !known || self.mask.is_none() || self.len >> 63 != 0 {
            return Some(CloseCode::PROTOCOL);
        }
        if self.is_control() && (!self.fin || self.len > 125) {
            return Some(CloseCode::PROTOCOL);
        }
        if usize::try_from(self.len).map_or(true, |len| len > max_frame) {
            return Some(CloseCode::TOO_BIG);
        }
        None
    }
}

/// A frame whose header was checked: the header, and the frame's whole length (header and
/// payload), which fits in memory and within the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Checked {
    pub(crate) header: Header,
    pub(crate) total: usize,
}

impl Checked {
    /// The payload's place in the frame.
    pub(crate) fn payload(&self) -> std::ops::Range<usize> {
        self.header.size..self.total
    }
}

/// The frame at the start of `buf`, checked: `Ok(None)` while its header is incomplete (the
/// payload may be; compare `total` with what is there).
///
/// # Errors
///
/// The code to close with when the header breaks a rule ([`Header::violation`]).
pub(crate) fn next(buf: &[u8], max_frame: usize) -> Result<Option<Checked>, CloseCode> {
    let Some(header) = Header::parse(buf) else {
        return Ok(None);
    };
    if let Some(code) = header.violation(max_frame) {
        return Err(code);
    }
    let total = usize::try_from(header.len)
        .ok()
        .and_then(|len| header.size.checked_add(len))
        .ok_or(CloseCode::TOO_BIG)?;
    Ok(Some(Checked { header, total }))
}

/// The most bytes a frame's header takes.
pub(crate) const MAX_HEADER: usize = 14;

/// Unmasks `payload` in place with `key`.
pub(crate) fn unmask(payload: &mut [u8], key: [u8; 4]) {
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// Appends one final, unmasked frame (what a server sends).
pub(crate) fn write(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    out.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
}

/// The codec of [`text_frames`](crate::text_frames): encodes a payload as one text frame.
#[derive(Debug, Default)]
pub(crate) struct TextFrameCodec;

impl fibra_net::Codec for TextFrameCodec {
    fn decode(
        &mut self,
        _buf: &[u8],
        _max: usize,
    ) -> Result<Option<fibra_net::Decoded>, fibra_net::FrameError> {
        Err(fibra_net::FrameError::Invalid(
            "a WebSocket is read with WebSocket::receive, not as frames of its connection",
        ))
    }

    fn encode(&self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), fibra_net::FrameError> {
        if std::str::from_utf8(payload).is_err() {
            return Err(fibra_net::FrameError::Invalid("a text frame must be UTF-8"));
        }
        write(out, TEXT, payload);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6455s_examples_parse() {
        // A single-frame masked text message, "Hello".
        let frame = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let h = Header::parse(&frame).unwrap();
        assert_eq!((h.fin, h.opcode, h.len, h.size), (true, TEXT, 5, 6));
        let mut payload = frame[6..].to_vec();
        unmask(&mut payload, h.mask.unwrap());
        assert_eq!(payload, b"Hello");
        // Partial headers need more bytes.
        assert_eq!(Header::parse(&frame[..1]), None);
        assert_eq!(Header::parse(&frame[..5]), None);
        // 256 bytes in a binary frame: a 16-bit length.
        let mut out = Vec::new();
        write(&mut out, BINARY, &[0; 256]);
        assert_eq!(&out[..4], &[0x82, 0x7E, 0x01, 0x00]);
        let h = Header::parse(&out).unwrap();
        assert_eq!((h.len, h.size, h.mask), (256, 4, None));
        // 65,536 bytes: a 64-bit length.
        let mut out = Vec::new();
        write(&mut out, BINARY, &vec![0; 65_536]);
        assert_eq!(&out[..10], &[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]);
        // An unmasked "Hello" as a server sends it.
        let mut out = Vec::new();
        write(&mut out, TEXT, b"Hello");
        assert_eq!(out, [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    }
}
