//! fibra-redis's reply reader (its scanner, then the decoder on top of `redis-protocol`):
//! arbitrary bytes from a server, cut into arbitrary pieces, never panic; no reply passes
//! the reply limit; and the pieces' cut changes nothing: the bytes read in one piece give the
//! same replies and the same end.
#![no_main]

use fibra_redis::fuzzing::read_replies;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&[max, chunk_seed, flags], data)) = input.split_first_chunk::<3>() else {
        return;
    };
    let max = usize::from(max) * 8 + 1;
    let resp3 = flags & 1 == 1;

    // Cut the bytes into pieces of 1 to 8 bytes, by the seed.
    let mut pieces = Vec::new();
    let mut at = 0;
    let mut seed = chunk_seed;
    while at < data.len() {
        let n = (usize::from(seed % 8) + 1).min(data.len() - at);
        pieces.push(&data[at..at + n]);
        at += n;
        seed = seed.wrapping_mul(31).wrapping_add(7);
    }

    let (replies, end) = read_replies(&pieces, max, resp3);
    for (len, _) in &replies {
        assert!(*len <= max, "a reply of {len} bytes passed the limit {max}");
    }
    let whole = read_replies(&[data], max, resp3);
    assert!(
        whole.0 == replies && whole.1 == end,
        "the cut changed what was read"
    );
});
