//! `ChunkedDecoder`: the chunked transfer coding (RFC 9112 §7.1), decoded byte by byte as the
//! bytes come, so that nothing a peer sends is held beyond its bound: a chunk size is 1 to 16
//! hex digits and is checked against what is left of the body limit before any of its data
//! is taken; a size line (with its extensions) and the trailer section have their own bounds;
//! lines end with CRLF. Every violation is a status: 413 for a body over the limit, 400 for
//! anything else.

/// Where the decoder is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// In a chunk size's hex digits.
    Size {
        value: u64,
        digits: u8,
    },
    /// Blanks after the size: a `;` must follow.
    Blank,
    /// In the chunk extensions, up to CR.
    Ext,
    /// After the size line's CR.
    SizeLf,
    /// In a chunk's data: this many bytes left.
    Data {
        left: usize,
    },
    /// After a chunk's data: its CR, then its LF.
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final CRLF).
    TrailerStart,
    /// In a trailer line, up to CR; then its LF.
    Trailer,
    TrailerLf,
    /// After the final CR.
    LastLf,
    /// The body ended.
    Done,
}

/// A chunked body's decoder. Feed it the bytes received, in any pieces; it appends the data
/// to the body and stops right after the body's end (what follows is the next request).
#[derive(Clone, Debug)]
pub(crate) struct ChunkedDecoder {
    state: State,
    max_body: usize,
    max_line: usize,
    max_trailers: usize,
    /// The body's data so far, in bytes.
    body_len: usize,
    /// The size line so far, in bytes.
    line: usize,
    /// The trailer section so far, in bytes.
    trailers: usize,
    /// The size the current size line announced.
    announced: usize,
}

/// The most hex digits a chunk size may have (leading zeros included): 16 (a `u64`).
const MAX_SIZE_DIGITS: u8 = 16;

impl ChunkedDecoder {
    /// A decoder for a body of at most `max_body` bytes, size lines of at most `max_line`
    /// bytes and a trailer section of at most `max_trailers` bytes.
    pub(crate) fn new(max_body: usize, max_line: usize, max_trailers: usize) -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::Size {
                value: 0,
                digits: 0,
            },
            max_body,
            max_line,
            max_trailers,
            body_len: 0,
            line: 0,
            trailers: 0,
            announced: 0,
        }
    }

    /// Whether the body has ended.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from `input`, appending chunk data to `body`; returns how many bytes of
    /// `input` were used: all of them, unless the body ended inside it.
    ///
    /// # Errors
    ///
    /// The status to answer with: 413 when the body would go over its limit, 400 when the
    /// coding is broken (a size that is not 1–16 hex digits, a line without CRLF, a size line
    /// or trailers over their bounds, data not followed by CRLF). The decoder must not be
    /// used after an error.
    pub(crate) fn decode(&mut self, input: &[u8], body: &mut Vec<u8>) -> Result<usize, u16> {
        let mut at = 0;
        while at < input.len() {
            if let State::Data { left } = self.state {
                let take = left.min(input.len() - at);
                body.extend_from_slice(&input[at..at + take]);
                at += take;
                self.state = if take == left {
                    State::DataCr
                } else {
                    State::Data { left: left - take }
                };
                continue;
            }
            if self.state == State::Done {
                break;
            }
            let byte = input[at];
            at += 1;
            self.byte(byte)?;
        }
        Ok(at)
    }

    /// One byte outside a chunk's data.
    fn byte(&mut self, byte: u8) -> Result<(), u16> {
        if matches!(
            self.state,
            State::Size { .. } | State::Blank | State::Ext | State::SizeLf
        ) {
            self.line += 1;
            if self.line > self.max_line {
                return Err(400);
            }
        }
        if matches!(
            self.state,
            State::TrailerStart | State::Trailer | State::TrailerLf | State::LastLf
        ) {
            self.trailers += 1;
            if self.trailers > self.max_trailers {
                return Err(400);
            }
        }
        self.state = match (self.state, byte) {
            (State::Size { value, digits }, _) if byte.is_ascii_hexdigit() => {
                if digits == MAX_SIZE_DIGITS {
                    return Err(400);
                }
                let digit = (byte as char).to_digit(16).map_or(0, u64::from);
                State::Size {
                    value: value << 4 | digit,
                    digits: digits + 1,
                }
            }
            (State::Size { digits: 0, .. }, _) => return Err(400),
            (State::Size { value, .. }, b' ' | b'\t') => {
                self.check_size(value)?;
                State::Blank
            }
            (State::Size { value, .. }, b';') => {
                self.check_size(value)?;
                State::Ext
            }
            (State::Size { value, .. }, b'\r') => {
                self.check_size(value)?;
                State::SizeLf
            }
            (State::Blank, b' ' | b'\t') => State::Blank,
            (State::Blank, b';') => State::Ext,
            (State::Ext, b'\r') => State::SizeLf,
            (State::Ext, b'\t') => State::Ext,
            (State::Ext, _) if !byte.is_ascii_control() => State::Ext,
            (State::SizeLf, b'\n') => {
                self.line = 0;
                match self.announced {
                    0 => State::TrailerStart,
                    left => State::Data { left },
                }
            }
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataLf, b'\n') => State::Size {
                value: 0,
                digits: 0,
            },
            (State::TrailerStart, b'\r') => State::LastLf,
            (State::Trailer, b'\r') => State::TrailerLf,
            (State::TrailerStart | State::Trailer, _)
                if byte == b'\t' || !byte.is_ascii_control() =>
            {
                State::Trailer
            }
            (State::TrailerLf, b'\n') => State::TrailerStart,
            (State::LastLf, b'\n') => State::Done,
            _ => return Err(400),
        };
        Ok(())
    }

    /// A chunk of `size` bytes was announced: 413 unless it fits in what is left of the
    /// body's limit (checked before any of it is read, without overflow).
    fn check_size(&mut self, size: u64) -> Result<(), u16> {
        let left = self.max_body - self.body_len;
        match usize::try_from(size) {
            Ok(size) if size <= left => {
                self.body_len += size;
                // Kept until the line's LF: the chunk's data starts after it.
                self.announced = size;
                Ok(())
            }
            _ => Err(413),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes: the body, or the status.
    fn decode(input: &[u8], step: usize) -> Result<(Vec<u8>, usize), u16> {
        let mut decoder = ChunkedDecoder::new(16, 32, 32);
        let (mut body, mut used) = (Vec::new(), 0);
        for piece in input.chunks(step) {
            let n = decoder.decode(piece, &mut body)?;
            used += n;
            if decoder.is_done() {
                return Ok((body, used));
            }
            assert_eq!(n, piece.len());
        }
        Err(0)
    }

    #[test]
    fn chunks_in_any_pieces_and_every_violation() {
        let good = b"5;a=b\r\nhello\r\n2 ;x\r\n, \r\n0000\r\nT: 1\r\n\r\nNEXT";
        for step in 1..good.len() {
            assert_eq!(
                decode(good, step),
                Ok((b"hello, ".to_vec(), good.len() - 4))
            );
        }
        let bad: &[(&[u8], u16)] = &[
            (b"+5\r\nhello\r\n0\r\n\r\n", 400),
            (b"-5\r\n", 400),
            (b"0x5\r\n", 400),
            (b"\r\n", 400),
            (b"5 \r\n", 400),
            (b"5\nhello\r\n", 400),
            (b"5\r\nhelloX\r\n", 400),
            (b"00000000000000005\r\n", 400),
            (b"11\r\n", 413),
            (b"FFFFFFFFFFFFFFFF\r\n", 413),
            (b"5\r\nhello\r\nFFFFFFFFFFFFFFFB\r\n", 413),
            (b"8\r\n12345678\r\n9\r\n", 413),
            (b"1;aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n", 400),
            (b"1;a\x01\r\n", 400),
            (
                b"0\r\nTrailer: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
                400,
            ),
            (b"0\r\nT: 1\n\r\n", 400),
        ];
        for (input, status) in bad {
            assert_eq!(
                decode(input, input.len()),
                Err(*status),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }
}
