//! Framing: how a connection's byte stream is cut into the frames `receive` returns.
//!
//! Three codecs are built in: [`LineCodec`] (text lines), [`LengthCodec`] (a u32 big-endian
//! length, then that many bytes) and [`RawCodec`] (whatever arrived). A user codec implements
//! [`Codec`] and is chosen with [`Framing::custom`].

use std::fmt;
use std::ops::Range;
use std::rc::Rc;

/// The default limit on a frame's length: 64 KiB.
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024;

/// Where one decoded frame lies in the buffer given to [`Codec::decode`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// The frame's bytes, without framing (terminator, length prefix).
    pub frame: Range<usize>,
    /// How many bytes from the start of the buffer the frame used up, framing included.
    pub consumed: usize,
}

/// Why bytes could not be decoded into a frame, or a payload encoded into one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The frame is longer than the limit.
    TooLong,
    /// The bytes break the codec's format.
    Invalid(&'static str),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLong => f.write_str("frame longer than the limit"),
            FrameError::Invalid(why) => write!(f, "invalid frame: {why}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Which call into a codec failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecCall {
    /// [`Codec::decode`].
    Decode,
    /// [`Codec::encode`].
    Encode,
    /// The factory given to [`Framing::custom`], making the codec of a connection or group.
    Make,
}

impl fmt::Display for CodecCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CodecCall::Decode => "decode",
            CodecCall::Encode => "encode",
            CodecCall::Make => "factory (Framing::custom)",
        })
    }
}

/// How a codec broke its contract: the reason in [`Lost::Codec`](crate::Lost::Codec) and
/// [`NetError::Codec`](crate::NetError::Codec). After one, the codec is not called again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecFailure {
    /// The codec panicked. The full message is logged at warn (target `fibra_net`); here
    /// when it was a string literal.
    Panicked {
        /// The call that panicked.
        call: CodecCall,
        /// The panic's message, when it was a `&'static str`.
        message: Option<&'static str>,
    },
    /// `decode` returned a frame that does not lie within the bytes it consumed.
    FrameOutOfRange {
        /// The frame's start.
        start: usize,
        /// The frame's end.
        end: usize,
        /// The bytes it said it consumed.
        consumed: usize,
    },
    /// `decode` said it consumed more bytes than the buffer held.
    ConsumedPastBuffer {
        /// The bytes it said it consumed.
        consumed: usize,
        /// The bytes the buffer held.
        buffered: usize,
    },
    /// `decode` returned a frame that consumed no bytes: the same frame would come forever.
    NoProgress,
}

impl fmt::Display for CodecFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecFailure::Panicked {
                call,
                message: Some(message),
            } => write!(f, "the codec's {call} panicked: {message}"),
            CodecFailure::Panicked {
                call,
                message: None,
            } => write!(
                f,
                "the codec's {call} panicked (its message is in the log, target fibra_net)"
            ),
            CodecFailure::FrameOutOfRange {
                start,
                end,
                consumed,
            } => write!(
                f,
                "the codec's decode returned the frame {start}..{end}, not within the \
                 {consumed} bytes it consumed"
            ),
            CodecFailure::ConsumedPastBuffer { consumed, buffered } => write!(
                f,
                "the codec's decode consumed {consumed} bytes of a buffer holding {buffered}"
            ),
            CodecFailure::NoProgress => f.write_str(
                "the codec's decode returned a frame consuming no bytes (it would repeat forever)",
            ),
        }
    }
}

/// Cuts a byte stream into frames, and wraps payloads into frames.
///
/// `decode` is called with every byte received and not yet consumed, from the oldest. It
/// may keep state between calls (how far it already scanned, say) as long as the buffer's
/// start has not moved: after it returns a frame, the next call's buffer starts right after
/// that frame.
///
/// ```
/// use fibra_net::{Codec, Decoded, FrameError};
///
/// /// Frames end with a NUL byte.
/// #[derive(Debug, Default)]
/// struct NulCodec;
///
/// impl Codec for NulCodec {
///     fn decode(&mut self, buf: &[u8], max: usize) -> Result<Option<Decoded>, FrameError> {
///         match buf.iter().position(|&b| b == 0) {
///             Some(end) if end > max => Err(FrameError::TooLong),
///             Some(end) => Ok(Some(Decoded { frame: 0..end, consumed: end + 1 })),
///             None if buf.len() > max => Err(FrameError::TooLong),
///             None => Ok(None),
///         }
///     }
///     fn encode(&self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
///         if payload.contains(&0) {
///             return Err(FrameError::Invalid("a payload cannot hold a NUL byte"));
///         }
///         out.extend_from_slice(payload);
///         out.push(0);
///         Ok(())
///     }
/// }
///
/// let mut codec = NulCodec;
/// assert_eq!(codec.decode(b"ab\0c", 16), Ok(Some(Decoded { frame: 0..2, consumed: 3 })));
/// ```
pub trait Codec: fmt::Debug + 'static {
    /// Finds the first frame in `buf`: `Ok(None)` when more bytes are needed, an error when
    /// the stream cannot go on (the frame's payload would pass `max` bytes, or the bytes
    /// break the format).
    ///
    /// # Errors
    ///
    /// [`FrameError::TooLong`] or [`FrameError::Invalid`]; the connection is then lost.
    fn decode(&mut self, buf: &[u8], max: usize) -> Result<Option<Decoded>, FrameError>;

    /// Appends `payload`, framed, to `out`.
    ///
    /// # Errors
    ///
    /// When the payload cannot be framed; nothing must have been appended then.
    fn encode(&self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError>;
}

/// Text lines ending with `\n`; a `\r` before the `\n` is stripped too (telnet sends `\r\n`).
/// The limit applies to the line without its terminator.
#[derive(Clone, Debug, Default)]
pub struct LineCodec {
    /// Bytes of the buffer already known to hold no `\n`.
    pub(crate) scanned: usize,
}

impl LineCodec {
    /// A line codec.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Codec for LineCodec {
    fn decode(&mut self, buf: &[u8], max: usize) -> Result<Option<Decoded>, FrameError> {
        let from = self.scanned.min(buf.len());
        match buf[from..].iter().position(|&b| b == b'\n') {
            Some(at) => {
                self.scanned = 0;
                let newline = from + at;
                let end = if newline > 0 && buf[newline - 1] == b'\r' {
                    newline - 1
                } else {
                    newline
                };
                if end > max {
                    return Err(FrameError::TooLong);
                }
                Ok(Some(Decoded {
                    frame: 0..end,
                    consumed: newline + 1,
                }))
            }
            // `max` bytes and a `\r` may wait for their `\n`; one byte more cannot fit.
            None if buf.len() > max.saturating_add(1) => Err(FrameError::TooLong),
            None => {
                self.scanned = buf.len();
                Ok(None)
            }
        }
    }

    fn encode(&self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
        if payload.contains(&b'\n') {
            return Err(FrameError::Invalid("a line cannot contain a newline"));
        }
        out.reserve(payload.len().saturating_add(1));
        out.extend_from_slice(payload);
        out.push(b'\n');
        Ok(())
    }
}

/// Frames made of a 4-byte big-endian length, then that many bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct LengthCodec;

impl Codec for LengthCodec {
    fn decode(&mut self, buf: &[u8], max: usize) -> Result<Option<Decoded>, FrameError> {
        let Some(prefix) = buf.first_chunk::<4>() else {
            return Ok(None);
        };
        // A peer's number: checked against the limit before any arithmetic, and the sum
        // checked too (`usize` may be 32 bits, where `4 + u32::MAX` wraps).
        let Ok(len) = usize::try_from(u32::from_be_bytes(*prefix)) else {
            return Err(FrameError::TooLong);
        };
        if len > max {
            return Err(FrameError::TooLong);
        }
        let Some(consumed) = len.checked_add(4) else {
            return Err(FrameError::TooLong);
        };
        if buf.len() < consumed {
            return Ok(None);
        }
        Ok(Some(Decoded {
            frame: 4..consumed,
            consumed,
        }))
    }

    fn encode(&self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
        let len = u32::try_from(payload.len()).map_err(|_| FrameError::TooLong)?;
        out.reserve(payload.len().saturating_add(4));
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(payload);
        Ok(())
    }
}

/// No framing: each receive returns the bytes that arrived (at most the limit).
#[derive(Clone, Copy, Debug, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    fn decode(&mut self, buf: &[u8], max: usize) -> Result<Option<Decoded>, FrameError> {
        if buf.is_empty() {
            return Ok(None);
        }
        let n = buf.len().min(max.max(1));
        Ok(Some(Decoded {
            frame: 0..n,
            consumed: n,
        }))
    }

    fn encode(&self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
        out.extend_from_slice(payload);
        Ok(())
    }
}

/// Makes a fresh user codec for each connection.
type CodecFactory = Rc<dyn Fn() -> Box<dyn Codec>>;

/// Which codec a connection uses; set in [`ConnOptions`](crate::ConnOptions):
/// [`Framing::Lines`] (the default), [`Framing::LengthPrefixed`], [`Framing::Raw`], or a
/// user codec with [`Framing::custom`].
#[derive(Clone, Default)]
pub struct Framing(pub(crate) Kind);

#[derive(Clone, Default)]
pub(crate) enum Kind {
    #[default]
    Lines,
    LengthPrefixed,
    Raw,
    Custom(CodecFactory),
}

// The built-in framings read like the variants they were: `Framing::Lines`.
#[allow(non_upper_case_globals)]
impl Framing {
    /// [`LineCodec`]: `\n`-terminated lines, `\r\n` accepted.
    pub const Lines: Framing = Framing(Kind::Lines);
    /// [`LengthCodec`]: u32 big-endian length prefix.
    pub const LengthPrefixed: Framing = Framing(Kind::LengthPrefixed);
    /// [`RawCodec`]: bytes as they arrive.
    pub const Raw: Framing = Framing(Kind::Raw);

    /// A user codec: `make` is called once per connection.
    pub fn custom<C: Codec, F: Fn() -> C + 'static>(make: F) -> Framing {
        Framing(Kind::Custom(Rc::new(move || {
            Box::new(make()) as Box<dyn Codec>
        })))
    }
}

impl fmt::Debug for Framing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Kind::Lines => f.write_str("Lines"),
            Kind::LengthPrefixed => f.write_str("LengthPrefixed"),
            Kind::Raw => f.write_str("Raw"),
            Kind::Custom(_) => f.write_str("Custom"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(codec: &mut dyn Codec, mut buf: &[u8], max: usize) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut frames = Vec::new();
        while let Some(d) = codec.decode(buf, max)? {
            frames.push(buf[d.frame].to_vec());
            buf = &buf[d.consumed..];
        }
        Ok(frames)
    }

    #[test]
    fn lines_strip_crlf_and_keep_partial() {
        let mut c = LineCodec::new();
        let got = all(&mut c, b"a\r\nbc\n\nd", 8).unwrap();
        assert_eq!(got, vec![b"a".to_vec(), b"bc".to_vec(), b"".to_vec()]);
        assert_eq!(c.decode(b"d", 8), Ok(None));
        assert_eq!(c.scanned, 1);
        assert_eq!(
            c.decode(b"de\n", 8),
            Ok(Some(Decoded {
                frame: 0..2,
                consumed: 3
            }))
        );
    }

    #[test]
    fn lines_limit_is_exact() {
        let mut c = LineCodec::new();
        assert!(c.decode(b"1234\r\n", 4).unwrap().is_some());
        assert_eq!(c.decode(b"12345\n", 4), Err(FrameError::TooLong));
        let mut c = LineCodec::new();
        assert_eq!(c.decode(b"1234\r", 4), Ok(None));
        let mut c = LineCodec::new();
        assert_eq!(c.decode(b"123456", 4), Err(FrameError::TooLong));
        assert!(LineCodec::new().encode(b"a\nb", &mut Vec::new()).is_err());
    }

    #[test]
    fn length_prefixed() {
        let mut out = Vec::new();
        LengthCodec.encode(b"hello", &mut out).unwrap();
        LengthCodec.encode(b"", &mut out).unwrap();
        let got = all(&mut LengthCodec, &out, 16).unwrap();
        assert_eq!(got, vec![b"hello".to_vec(), b"".to_vec()]);
        assert_eq!(LengthCodec.decode(&out[..6], 16), Ok(None));
        assert_eq!(LengthCodec.decode(&out, 4), Err(FrameError::TooLong));
        assert_eq!(LengthCodec.decode(&[0, 0, 0], 4), Ok(None));
    }

    #[test]
    fn raw_caps_chunks() {
        let got = all(&mut RawCodec, b"abcdefg", 3).unwrap();
        assert_eq!(got, vec![b"abc".to_vec(), b"def".to_vec(), b"g".to_vec()]);
    }
}
