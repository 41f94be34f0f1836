//! `LineCodec` against a model: bytes arrive in chunks of fuzzer-chosen sizes, and the frames
//! decoded must be exactly the input's complete lines (one trailing `\r` stripped), up to
//! the first line longer than the limit, which must be reported as `TooLong`.
#![no_main]

use fibra_net::{Codec, FrameError, LineCodec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&[max, chunk_seed], data)) = input.split_first_chunk::<2>() else {
        return;
    };
    let max = usize::from(max % 64);
    // The model: complete lines, stripped.
    let mut lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    let tail = lines.pop().unwrap_or_default();
    let lines: Vec<&[u8]> = lines
        .into_iter()
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .collect();

    // The codec, fed in chunks the way a connection's input buffer grows.
    let mut codec = LineCodec::new();
    let fed = fibra_fuzz::feed(&mut codec, data, max, chunk_seed, 17);
    for frame in &fed.frames {
        assert!(!frame.contains(&b'\n'));
    }
    let (got, error, buf) = (fed.frames, fed.error, fed.rest);

    let first_long = lines.iter().position(|l| l.len() > max);
    match error {
        None => {
            // Every complete line came out, none was too long, and the tail is pending.
            assert_eq!(first_long, None);
            assert_eq!(got, lines);
            assert_eq!(buf, tail);
        }
        Some(FrameError::TooLong) => {
            // Frames before the long line are all there; the long one is either a complete
            // line or the unfinished tail, which can no longer fit.
            let ok = first_long.unwrap_or(lines.len());
            assert_eq!(got, lines[..ok.min(got.len())].to_vec());
            assert!(
                got.len() == ok && (first_long.is_some() || tail.len() > max),
                "TooLong without a long line: {got:?} {lines:?} {tail:?}"
            );
        }
        Some(other) => panic!("lines have no invalid bytes: {other:?}"),
    }

    // Encoding: a payload without `\n` round-trips; one with `\n` is refused untouched.
    let mut out = b"prefix".to_vec();
    match codec.encode(data, &mut out) {
        Ok(()) => {
            assert!(!data.contains(&b'\n'));
            let mut fresh = LineCodec::new();
            let d = fresh.decode(&out[6..], usize::MAX).unwrap().unwrap();
            let want = data.strip_suffix(b"\r").unwrap_or(data);
            assert_eq!(&out[6..][d.frame], want);
        }
        Err(_) => {
            assert!(data.contains(&b'\n'));
            assert_eq!(out, b"prefix");
        }
    }
});
