//! The one door into codec code: every call the network plugin makes into a [`Codec`]'s
//! `decode` and `encode`, and into [`Framing::custom`]'s factory, goes through
//! [`CodecState`] here, while the connection table is borrowed.
//!
//! A user codec is code the peer steers: the bytes it decodes are the peer's. So each call
//! is panic-contained, and what `decode` returns is checked before the table trusts it (the
//! frame lies within the bytes consumed, those within the buffer, and at least one byte is
//! consumed, or the connection would return the same frame forever). A failure poisons that
//! codec alone: it is never called again ([`CodecState::Failed`]), its connection is lost
//! with [`Lost::Codec`](crate::Lost::Codec), and the failure is logged once at warn. The
//! other connections of the schedule do not notice.
//!
//! The happy path costs a few comparisons per frame and no allocation: `catch_unwind` is a
//! landing pad, not a call.

use std::any::Any;
use std::fmt;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::api::codec::{
    Codec, CodecCall, CodecFailure, Decoded, FrameError, Framing, Kind, LengthCodec, LineCodec,
    RawCodec,
};
use crate::api::error::NetError;

/// Whose codec is called, for the log line.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Site {
    /// A connection's, with this peer.
    Conn(SocketAddr),
    /// A group's.
    Group,
    /// A throwaway one, checking a payload.
    Check,
    /// A caller outside the plugin (the fuzz target, tests).
    Other,
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Site::Conn(peer) => write!(f, "connection with {peer}"),
            Site::Group => f.write_str("group"),
            Site::Check => f.write_str("frame check"),
            Site::Other => f.write_str("codec"),
        }
    }
}

impl Framing {
    /// Whether `payload` can be framed (for a send to nobody): a throwaway codec, made and
    /// called through the door.
    pub(crate) fn check(&self, payload: &[u8]) -> Result<(), NetError> {
        CodecState::new(self, Site::Check)
            .encode(payload, &mut Vec::new(), Site::Check)
            .map_err(NetError::from_door)
    }
}

impl NetError {
    /// A payload the codec door could not frame, outside a connection.
    pub(crate) fn from_door(e: DoorError) -> NetError {
        match e {
            DoorError::Frame(e) => NetError::from_encode(e),
            DoorError::Codec(failure) => NetError::Codec(failure),
        }
    }
}

/// Why a call through the door gave no frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DoorError {
    /// The codec refused the bytes or the payload, as its contract allows.
    Frame(FrameError),
    /// The codec broke its contract; it is poisoned.
    Codec(CodecFailure),
}

/// A connection's (or group's) codec: the built-ins dispatched without a virtual call, a
/// user's boxed, or the failure that poisoned it.
#[derive(Debug)]
pub(crate) enum CodecState {
    Lines(LineCodec),
    Length(LengthCodec),
    Raw(RawCodec),
    Custom(Box<dyn Codec>),
    Failed(CodecFailure),
}

impl CodecState {
    /// A fresh codec for `framing`; a panicking factory gives a failed one.
    pub(crate) fn new(framing: &Framing, site: Site) -> CodecState {
        match &framing.0 {
            Kind::Lines => CodecState::Lines(LineCodec::new()),
            Kind::LengthPrefixed => CodecState::Length(LengthCodec),
            Kind::Raw => CodecState::Raw(RawCodec),
            // The factory is the user's `Fn`; if it panics, nothing of it is used again by
            // this call, and the framing's later calls are its own business.
            Kind::Custom(make) => match catch_unwind(AssertUnwindSafe(|| make())) {
                Ok(codec) => CodecState::Custom(codec),
                Err(payload) => CodecState::Failed(panicked(CodecCall::Make, payload, site)),
            },
        }
    }

    /// The failure that poisoned the codec, if one did.
    pub(crate) fn failure(&self) -> Option<CodecFailure> {
        match self {
            CodecState::Failed(failure) => Some(*failure),
            _ => None,
        }
    }

    /// The first frame in `buf` (at most `max` bytes of payload), checked to lie in `buf`.
    pub(crate) fn decode(
        &mut self,
        buf: &[u8],
        max: usize,
        site: Site,
    ) -> Result<Option<Decoded>, DoorError> {
        let result = match self {
            CodecState::Lines(c) => c.decode(buf, max),
            CodecState::Length(c) => c.decode(buf, max),
            CodecState::Raw(c) => c.decode(buf, max),
            // The codec sees `buf` only shared; if it panics it is poisoned below and never
            // called again, so no broken invariant of its own can be observed.
            CodecState::Custom(c) => match catch_unwind(AssertUnwindSafe(|| c.decode(buf, max))) {
                Ok(result) => result,
                Err(payload) => return Err(self.poison_panicked(CodecCall::Decode, payload, site)),
            },
            CodecState::Failed(failure) => return Err(DoorError::Codec(*failure)),
        };
        match result {
            Ok(Some(d)) => match check(&d, buf.len()) {
                Ok(()) => Ok(Some(d)),
                Err(failure) => Err(self.poison(failure, site)),
            },
            Ok(None) => Ok(None),
            Err(e) => Err(DoorError::Frame(e)),
        }
    }

    /// Appends `payload`, framed, to `out`; on any failure `out` is as it was.
    pub(crate) fn encode(
        &mut self,
        payload: &[u8],
        out: &mut Vec<u8>,
        site: Site,
    ) -> Result<(), DoorError> {
        let before = out.len();
        let result = match self {
            CodecState::Lines(c) => c.encode(payload, out),
            CodecState::Length(c) => c.encode(payload, out),
            CodecState::Raw(c) => c.encode(payload, out),
            // `out` is cut back to `before` on a panic, and the codec is poisoned.
            CodecState::Custom(c) => {
                match catch_unwind(AssertUnwindSafe(|| c.encode(payload, &mut *out))) {
                    Ok(result) => result,
                    Err(payload) => {
                        out.truncate(before);
                        return Err(self.poison_panicked(CodecCall::Encode, payload, site));
                    }
                }
            }
            CodecState::Failed(failure) => return Err(DoorError::Codec(*failure)),
        };
        result.map_err(|e| {
            out.truncate(before);
            DoorError::Frame(e)
        })
    }

    /// Forgets scanning state: the buffer was read past the codec (raw reads).
    pub(crate) fn reset(&mut self) {
        if let CodecState::Lines(c) = self {
            c.scanned = 0;
        }
    }

    fn poison_panicked(
        &mut self,
        call: CodecCall,
        payload: Box<dyn Any + Send>,
        site: Site,
    ) -> DoorError {
        let failure = panicked(call, payload, site);
        self.set_failed(failure);
        DoorError::Codec(failure)
    }

    fn poison(&mut self, failure: CodecFailure, site: Site) -> DoorError {
        log::warn!(target: "fibra_net", "{site}: {failure}; the codec is not called again");
        self.set_failed(failure);
        DoorError::Codec(failure)
    }

    /// Drops the codec (through the door: see `Drop`) and keeps the failure.
    fn set_failed(&mut self, failure: CodecFailure) {
        *self = CodecState::Failed(failure);
    }
}

/// A user codec's `Drop` is user code too, run where the table drops the connection: it is
/// contained like the other calls.
impl Drop for CodecState {
    fn drop(&mut self) {
        if let CodecState::Custom(codec) = self {
            // `RawCodec` is zero-sized: the stand-in allocates nothing.
            let codec = std::mem::replace(codec, Box::new(RawCodec));
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| drop(codec))) {
                log::warn!(target: "fibra_net", "a codec's drop panicked; ignored");
                forget_payload_safely(payload);
            }
        }
    }
}

/// Checks a `Decoded` against the buffer it came from.
fn check(d: &Decoded, buffered: usize) -> Result<(), CodecFailure> {
    if d.consumed > buffered {
        return Err(CodecFailure::ConsumedPastBuffer {
            consumed: d.consumed,
            buffered,
        });
    }
    if d.frame.start > d.frame.end || d.frame.end > d.consumed {
        return Err(CodecFailure::FrameOutOfRange {
            start: d.frame.start,
            end: d.frame.end,
            consumed: d.consumed,
        });
    }
    if d.consumed == 0 {
        return Err(CodecFailure::NoProgress);
    }
    Ok(())
}

/// The failure for a panic with `payload`, logged once at warn with its whole message.
fn panicked(call: CodecCall, payload: Box<dyn Any + Send>, site: Site) -> CodecFailure {
    let literal = payload.downcast_ref::<&'static str>().copied();
    let text = match (literal, payload.downcast_ref::<String>()) {
        (Some(s), _) => s,
        (None, Some(s)) => s.as_str(),
        (None, None) => "(not a string)",
    };
    log::warn!(target: "fibra_net",
        "{site}: the codec's {call} panicked: {text}; the codec is not called again");
    forget_payload_safely(payload);
    CodecFailure::Panicked {
        call,
        message: literal,
    }
}

/// Drops a panic payload, whose own `Drop` may panic (then it is leaked).
fn forget_payload_safely(payload: Box<dyn Any + Send>) {
    if let Err(again) = catch_unwind(AssertUnwindSafe(|| drop(payload))) {
        std::mem::forget(again);
    }
}

/// What [`feed_through_door`] saw.
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct Fed {
    /// Frames decoded.
    pub frames: usize,
    /// Their bytes, in all.
    pub frame_bytes: usize,
    /// The most bytes the buffer held at once.
    pub peak_buffered: usize,
    /// What ended the stream early, if anything did.
    pub error: Option<DoorError>,
}

/// Feeds `data` through the door in chunks of `chunk` bytes, the way a connection's input
/// grows, to the codec `framing` makes, and encodes each frame back: what the fuzz target
/// calls. Never panics, whatever the codec does; holds at most `max + 64` bytes, as a
/// connection's input buffer does.
#[doc(hidden)]
pub fn feed_through_door(framing: &Framing, data: &[u8], max: usize, chunk: usize) -> Fed {
    let limit = max.saturating_add(64);
    let mut codec = CodecState::new(framing, Site::Other);
    let mut fed = Fed::default();
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        let room = limit.saturating_sub(buf.len()).min(piece.len());
        if room == 0 {
            fed.error = Some(DoorError::Frame(FrameError::TooLong));
            return fed;
        }
        buf.extend_from_slice(&piece[..room]);
        fed.peak_buffered = fed.peak_buffered.max(buf.len());
        loop {
            match codec.decode(&buf, max, Site::Other) {
                Ok(Some(d)) => {
                    let frame = &buf[d.frame.clone()];
                    fed.frames += 1;
                    fed.frame_bytes += frame.len();
                    out.clear();
                    if let Err(e @ DoorError::Codec(_)) = codec.encode(frame, &mut out, Site::Other)
                    {
                        fed.error = Some(e);
                        return fed;
                    }
                    buf.drain(..d.consumed);
                }
                Ok(None) => break,
                Err(e) => {
                    fed.error = Some(e);
                    return fed;
                }
            }
        }
    }
    fed
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;

    /// Counts its calls; panics on `!`, in decode and in encode.
    #[derive(Debug)]
    struct Touchy(Rc<Cell<u32>>);

    impl Codec for Touchy {
        fn decode(&mut self, buf: &[u8], _max: usize) -> Result<Option<Decoded>, FrameError> {
            self.0.set(self.0.get() + 1);
            assert!(buf.first() != Some(&b'!'), "a bang");
            Ok(buf.first().map(|_| Decoded {
                frame: 0..1,
                consumed: 1,
            }))
        }

        fn encode(&self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
            self.0.set(self.0.get() + 1);
            out.extend_from_slice(payload);
            assert!(payload.first() != Some(&b'!'), "a bang");
            Ok(())
        }
    }

    fn touchy() -> (CodecState, Rc<Cell<u32>>) {
        let calls = Rc::new(Cell::new(0));
        let c = Rc::clone(&calls);
        let framing = Framing::custom(move || Touchy(Rc::clone(&c)));
        (CodecState::new(&framing, Site::Other), calls)
    }

    #[test]
    fn a_panicking_decode_poisons_the_codec() {
        let (mut codec, calls) = touchy();
        assert!(codec.decode(b"a", 8, Site::Other).unwrap().is_some());
        let failure = codec.decode(b"!", 8, Site::Other).unwrap_err();
        assert_eq!(
            failure,
            DoorError::Codec(CodecFailure::Panicked {
                call: CodecCall::Decode,
                message: Some("a bang")
            })
        );
        assert_eq!(codec.decode(b"a", 8, Site::Other), Err(failure));
        assert_eq!(calls.get(), 2, "not called after the panic");
    }

    #[test]
    fn a_panicking_encode_leaves_the_output_as_it_was() {
        let (mut codec, _) = touchy();
        let mut out = b"kept".to_vec();
        codec.encode(b"ok", &mut out, Site::Other).unwrap();
        assert_eq!(out, b"keptok");
        assert!(codec.encode(b"!x", &mut out, Site::Other).is_err());
        assert_eq!(out, b"keptok");
    }

    #[test]
    fn decoded_is_checked_against_its_buffer() {
        let d = |frame: std::ops::Range<usize>, consumed| Decoded { frame, consumed };
        assert_eq!(check(&d(0..2, 3), 3), Ok(()));
        assert_eq!(check(&d(1..1, 1), 1), Ok(()));
        assert!(matches!(
            check(&d(0..4, 3), 3),
            Err(CodecFailure::FrameOutOfRange { .. })
        ));
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = d(2..1, 3);
        assert!(matches!(
            check(&reversed, 3),
            Err(CodecFailure::FrameOutOfRange { .. })
        ));
        assert!(matches!(
            check(&d(0..1, 4), 3),
            Err(CodecFailure::ConsumedPastBuffer { .. })
        ));
        assert_eq!(check(&d(0..0, 0), 3), Err(CodecFailure::NoProgress));
    }

    #[test]
    fn length_prefix_past_the_limit_is_refused_before_any_sum() {
        let mut codec = CodecState::new(&Framing::LengthPrefixed, Site::Other);
        let huge = [0xFF, 0xFF, 0xFF, 0xFF, 1, 2];
        assert_eq!(
            codec.decode(&huge, usize::MAX, Site::Other),
            Ok(None),
            "waits for 4 GiB it will never hold, without wrapping"
        );
        assert_eq!(
            codec.decode(&huge, 1024, Site::Other),
            Err(DoorError::Frame(FrameError::TooLong))
        );
    }
}
