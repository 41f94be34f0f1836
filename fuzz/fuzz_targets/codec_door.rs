//! The codec door: arbitrary bytes, in chunks, through a deliberately misbehaving codec
//! (panics in decode, encode and its factory; frames out of range; consumption past the
//! buffer; zero progress; endless "need more") and through the built-in framings. No panic
//! escapes the door, a misbehaving codec is poisoned with the right failure, the built-ins
//! never break the contract, and the buffer never holds more than `max + 64` bytes.
#![no_main]

use std::cell::Cell;
use std::sync::Once;

use fibra_net::{
    feed_through_door, Codec, CodecCall, CodecFailure, Decoded, DoorError, FrameError, Framing,
};
use libfuzzer_sys::fuzz_target;

thread_local! {
    /// Set while the misbehaving codec panics on purpose: the hook lets that one unwind (to
    /// the door); any other panic aborts, as libfuzzer's own hook does.
    static DELIBERATE: Cell<bool> = const { Cell::new(false) };
}

fn deliberate_panic(what: &'static str) -> ! {
    DELIBERATE.with(|d| d.set(true));
    std::panic::panic_any(what);
}

/// Misbehaves as the first byte of its buffer says.
#[derive(Debug)]
struct Misbehaving;

impl Codec for Misbehaving {
    fn decode(&mut self, buf: &[u8], max: usize) -> Result<Option<Decoded>, FrameError> {
        let (Some(&first), second) = (buf.first(), usize::from(*buf.get(1).unwrap_or(&0))) else {
            return Ok(None);
        };
        match first % 10 {
            0 => deliberate_panic("decode, on purpose"),
            1 => Ok(Some(Decoded {
                frame: 0..buf.len() + 1 + second,
                consumed: buf.len(),
            })),
            2 => Ok(Some(Decoded {
                frame: 0..0,
                consumed: buf.len() + 1 + second,
            })),
            3 => Ok(Some(Decoded {
                frame: 0..0,
                consumed: 0,
            })),
            4 => Ok(Some(Decoded {
                #[allow(clippy::reversed_empty_ranges)]
                frame: 1 + second..second,
                consumed: buf.len(),
            })),
            // Never a frame: the buffer's limit must stop it.
            5 => Ok(None),
            6 => Err(FrameError::Invalid("byte 6")),
            7 if buf.len() > max => Err(FrameError::TooLong),
            // A well-formed frame, when the bytes are there.
            _ => {
                let len = second.min(max);
                if buf.len() < 2 + len {
                    return Ok(None);
                }
                Ok(Some(Decoded {
                    frame: 2..2 + len,
                    consumed: 2 + len,
                }))
            }
        }
    }

    fn encode(&self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
        out.extend_from_slice(payload);
        if payload.first() == Some(&0xEE) {
            deliberate_panic("encode, on purpose");
        }
        Ok(())
    }
}

fuzz_target!(|input: &[u8]| {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            if !DELIBERATE.with(|d| d.replace(false)) {
                eprintln!("{info}");
                std::process::abort();
            }
        }));
    });
    let Some((&[max, chunk, factory], data)) = input.split_first_chunk::<3>() else {
        return;
    };
    let max = usize::from(max);
    let chunk = 1 + usize::from(chunk % 32);

    // The misbehaving codec, its factory panicking when asked.
    let framing = Framing::custom(move || {
        if factory == 0xFF {
            deliberate_panic("factory, on purpose");
        }
        Misbehaving
    });
    let fed = feed_through_door(&framing, data, max, chunk);
    assert!(fed.peak_buffered <= max + 64, "{fed:?}");
    assert!(fed.frame_bytes <= data.len(), "{fed:?}");
    if factory == 0xFF {
        assert!(
            data.is_empty()
                || fed.error
                    == Some(DoorError::Codec(CodecFailure::Panicked {
                        call: CodecCall::Make,
                        message: Some("factory, on purpose"),
                    }))
                || fed.error == Some(DoorError::Frame(FrameError::TooLong)),
            "{fed:?}"
        );
    }

    // The built-in framings: never a contract failure.
    for framing in [Framing::Lines, Framing::LengthPrefixed, Framing::Raw] {
        let fed = feed_through_door(&framing, data, max, chunk);
        assert!(fed.peak_buffered <= max + 64, "{framing:?}: {fed:?}");
        assert!(fed.frame_bytes <= data.len(), "{framing:?}: {fed:?}");
        assert!(
            !matches!(fed.error, Some(DoorError::Codec(_))),
            "{framing:?} broke the contract: {fed:?}"
        );
    }
});
