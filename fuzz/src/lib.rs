//! What the codec targets share: feeding a codec the way a connection's input buffer grows.

use fibra_net::{Codec, FrameError};

/// What came out of a codec fed `data` in chunks.
pub struct Fed {
    /// The frames decoded, in order.
    pub frames: Vec<Vec<u8>>,
    /// The error that stopped decoding, if any.
    pub error: Option<FrameError>,
    /// The bytes left in the buffer (an unfinished frame), when no error stopped it.
    pub rest: Vec<u8>,
}

/// Feeds `data` to `codec` in chunks of 1 to `max_chunk` bytes (sizes drawn from `seed`),
/// decoding after each chunk as a connection does; checks each frame's bounds.
pub fn feed(codec: &mut impl Codec, data: &[u8], max: usize, seed: u8, max_chunk: usize) -> Fed {
    let mut buf: Vec<u8> = Vec::new();
    let mut frames = Vec::new();
    let mut rest = data;
    let mut seed = u32::from(seed) | 1;
    while !rest.is_empty() {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let n = (1 + (seed >> 16) as usize % max_chunk).min(rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        loop {
            match codec.decode(&buf, max) {
                Ok(Some(d)) => {
                    assert!(d.frame.end <= d.consumed && d.consumed <= buf.len());
                    assert!(d.frame.len() <= max, "a frame over the limit");
                    frames.push(buf[d.frame.clone()].to_vec());
                    buf.drain(..d.consumed);
                }
                Ok(None) => break,
                Err(e) => {
                    return Fed {
                        frames,
                        error: Some(e),
                        rest: buf,
                    }
                }
            }
        }
    }
    Fed {
        frames,
        error: None,
        rest: buf,
    }
}
