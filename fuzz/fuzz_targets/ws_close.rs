//! The wait of fibra-http's `WebSocket::close` for the peer's close: over any bytes the
//! peer sends after the server's close, every step either skips a whole frame (at least 2
//! bytes, at most what is there), takes the peer's close, asks for more than is there (at
//! most a frame's limit) or stops at a frame that breaks a rule; so the wait ends, and a
//! frame's length can never make it skip nothing (the old sum wrapped to 0 and spun).
#![no_main]

use fibra_http::fuzz::{closing_step, Closing};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&[frame_hi, frame_lo], data)) = input.split_first_chunk::<2>() else {
        return;
    };
    // Up to 64 KiB, and now and then a limit of usize::MAX (no limit the sum may overflow).
    let max_frame = match u16::from_be_bytes([frame_hi, frame_lo]) {
        u16::MAX => usize::MAX,
        n => usize::from(n),
    };
    let mut at = 0;
    let mut steps = 0;
    loop {
        steps += 1;
        assert!(steps <= data.len() / 2 + 1, "the wait does not end");
        let pending = &data[at..];
        match closing_step(pending, max_frame) {
            Ok(Closing::More(need)) => {
                assert!(need > pending.len(), "asks for what it has");
                assert!(need <= max_frame.saturating_add(14));
                return;
            }
            Ok(Closing::Skip(n)) => {
                assert!((2..=pending.len()).contains(&n));
                at += n;
            }
            Ok(Closing::PeerClosed(n)) => {
                assert!((2..=pending.len()).contains(&n));
                assert_eq!(pending[0] & 0x0F, 0x8);
                return;
            }
            Err(code) => {
                assert!(code == 1002 || code == 1009, "code {code}");
                return;
            }
        }
    }
});
