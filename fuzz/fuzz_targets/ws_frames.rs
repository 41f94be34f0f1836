//! fibra-http's WebSocket frame reader, as `WebSocket::recv` runs it on a connection's
//! bytes: never a panic; every step uses a whole frame (at least 2 bytes, at most what is
//! pending) or asks for more than is pending and at most a frame's limit; payloads and
//! messages stay within the limits; the events are the same whatever the pieces the bytes
//! come in; a close payload's code is checked.
#![no_main]

use fibra_http::fuzz::{close_code, WsEvent, WsReader};
use fibra_http::{Limits, Message};
use libfuzzer_sys::fuzz_target;

/// What a step found, its ranges replaced by their bytes.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Ping(Vec<u8>),
    Pong,
    Close(Vec<u8>, Result<u16, u16>),
    Fragment,
    Message(Message),
    Failed(u16),
}

fn read(data: &[u8], limits: &Limits, seed: Option<u8>) -> Vec<Seen> {
    let mut reader = WsReader::default();
    let mut pending: Vec<u8> = Vec::new();
    let mut seen = Vec::new();
    let mut rest = data;
    let mut seed = seed.map(|s| u32::from(s) | 1);
    loop {
        // A step over what is pending, until it asks for more.
        loop {
            match reader.step(&mut pending, limits) {
                Err(code) => {
                    assert!([1002, 1007, 1009].contains(&code), "code {code}");
                    seen.push(Seen::Failed(code));
                    return seen;
                }
                Ok((used, WsEvent::More(need))) => {
                    assert_eq!(used, 0);
                    assert!(need > pending.len(), "asks for what it has");
                    assert!(need <= limits.max_frame + 14, "asks for more than a frame");
                    break;
                }
                Ok((used, event)) => {
                    assert!((2..=pending.len()).contains(&used));
                    assert!(used <= limits.max_frame + 14);
                    seen.push(match event {
                        WsEvent::Ping(r) => {
                            assert!(r.end == used && r.len() <= 125);
                            Seen::Ping(pending[r].to_vec())
                        }
                        WsEvent::Pong => Seen::Pong,
                        WsEvent::Close(r) => {
                            assert!(r.end == used && r.len() <= 125);
                            let code = close_code(&pending[r.clone()]);
                            match code {
                                Ok(c) => assert!(c == 1005 || (1000..5000).contains(&c)),
                                Err(c) => assert!(c == 1002 || c == 1007),
                            }
                            Seen::Close(pending[r].to_vec(), code)
                        }
                        WsEvent::Fragment => Seen::Fragment,
                        WsEvent::Message(m) => {
                            let len = match &m {
                                Message::Text(t) => t.len(),
                                Message::Binary(b) => b.len(),
                            };
                            assert!(len <= limits.max_message);
                            Seen::Message(m)
                        }
                        WsEvent::More(_) => unreachable!(),
                    });
                    pending.drain(..used);
                }
            }
        }
        if rest.is_empty() {
            return seen;
        }
        let n = match &mut seed {
            Some(seed) => {
                *seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (1 + (*seed >> 16) as usize % 23).min(rest.len())
            }
            None => rest.len(),
        };
        pending.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&[frame, message, seed], data)) = input.split_first_chunk::<3>() else {
        return;
    };
    let limits = Limits {
        max_frame: usize::from(frame) * 2,
        max_message: usize::from(message) * 4,
        ..Limits::default()
    };
    let whole = read(data, &limits, None);
    let pieces = read(data, &limits, Some(seed));
    assert_eq!(whole, pieces);
});
