//! fibra-http's chunked-body decoder, as the server feeds it a connection's bytes: whatever
//! the pieces the bytes come in, the outcome is the same (the body, where it ended, or the
//! status); the body never goes over its limit, not even on the way to an error; a body
//! encoded in chunks of any sizes (with extensions and trailers) decodes back to itself.
#![no_main]

use fibra_http::fuzz::Chunked;
use libfuzzer_sys::fuzz_target;

/// Feeds `data` in pieces of 1 to 17 bytes (drawn from `seed`), as a connection does: the
/// bytes used and whether the body ended, or the status; and the body.
fn feed(
    data: &[u8],
    limits: (usize, usize),
    seed: Option<u8>,
) -> (Result<(usize, bool), u16>, Vec<u8>) {
    let mut decoder = Chunked::new(limits.0, limits.1, limits.1);
    let mut body = Vec::new();
    let mut used = 0;
    let mut seed = seed.map(|s| u32::from(s) | 1);
    while used < data.len() && !decoder.is_done() {
        let n = match &mut seed {
            Some(seed) => {
                *seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (1 + (*seed >> 16) as usize % 17).min(data.len() - used)
            }
            None => data.len() - used,
        };
        let piece = &data[used..used + n];
        match decoder.decode(piece, &mut body) {
            Ok(taken) => {
                assert!(taken == piece.len() || (taken < piece.len() && decoder.is_done()));
                used += taken;
            }
            Err(status) => {
                assert!(status == 400 || status == 413, "status {status}");
                assert!(body.len() <= limits.0, "over the limit before the error");
                return (Err(status), body);
            }
        }
        assert!(body.len() <= limits.0);
    }
    (Ok((used, decoder.is_done())), body)
}

fuzz_target!(|input: &[u8]| {
    let Some((&[mode, max_body, max_line, seed], data)) = input.split_first_chunk::<4>() else {
        return;
    };
    if mode & 1 == 0 {
        // Any bytes: the same outcome in one piece and in many.
        let limits = (usize::from(max_body) * 4, 1 + usize::from(max_line % 64));
        let whole = feed(data, limits, None);
        let pieces = feed(data, limits, Some(seed));
        assert_eq!(whole.0, pieces.0);
        if whole.0.is_ok() {
            assert_eq!(whole.1, pieces.1);
        }
        return;
    }
    // A body encoded in chunks of sizes drawn from `seed`, with an extension on some size
    // lines and a trailer: decodes to itself, and stops at its end.
    let mut encoded = Vec::new();
    let mut rest = data;
    let mut s = u32::from(seed) | 1;
    while !rest.is_empty() {
        s = s.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let n = (1 + (s >> 16) as usize % 40).min(rest.len());
        let ext = if s & 0x100 != 0 { ";name=value" } else { "" };
        let zeros = (s >> 9) as usize % 4;
        encoded.extend_from_slice(format!("{}{n:x}{ext}\r\n", "0".repeat(zeros)).as_bytes());
        encoded.extend_from_slice(&rest[..n]);
        encoded.extend_from_slice(b"\r\n");
        rest = &rest[n..];
    }
    encoded.extend_from_slice(b"0\r\nTrailer: t\r\n\r\nNEXT");
    let (outcome, body) = feed(&encoded, (data.len(), 64), Some(seed));
    assert_eq!(outcome, Ok((encoded.len() - 4, true)));
    assert_eq!(body, data);
});
