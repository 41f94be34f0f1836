//! `LengthCodec` (u32 big-endian length, then the payload): arbitrary bytes in arbitrary
//! chunks decode exactly like a model parser; frames never pass the limit; and encoded
//! payloads decode back to themselves.
#![no_main]

use fibra_net::{Codec, FrameError, LengthCodec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&[max, chunk_seed], data)) = input.split_first_chunk::<2>() else {
        return;
    };
    let max = usize::from(max) * 4;

    // The model parser.
    let mut want: Vec<&[u8]> = Vec::new();
    let mut model_error = false;
    let mut at = 0;
    while data.len() - at >= 4 {
        let len = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        if len > max {
            model_error = true;
            break;
        }
        if data.len() - at - 4 < len {
            break;
        }
        want.push(&data[at + 4..at + 4 + len]);
        at += 4 + len;
    }

    let mut codec = LengthCodec;
    let fed = fibra_fuzz::feed(&mut codec, data, max, chunk_seed, 23);
    let (got, error) = (fed.frames, fed.error);
    assert_eq!(got, want);
    match error {
        None => assert!(!model_error),
        Some(FrameError::TooLong) => assert!(model_error),
        Some(other) => panic!("unexpected {other:?}"),
    }

    // Round trip of the whole input as payloads of fuzzer-chosen sizes.
    let mut out = Vec::new();
    let payloads: Vec<&[u8]> = data.chunks(1 + usize::from(chunk_seed)).collect();
    for p in &payloads {
        codec.encode(p, &mut out).unwrap();
    }
    let mut fresh = LengthCodec;
    let mut pos = 0;
    for p in &payloads {
        let d = fresh.decode(&out[pos..], usize::MAX).unwrap().unwrap();
        assert_eq!(&out[pos..][d.frame], *p);
        pos += d.consumed;
    }
    assert_eq!(pos, out.len());
});
