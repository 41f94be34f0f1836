//! Receives without framing, read straight into the receive's own buffer (fibra-net's
//! `engine/table/direct.rs`): every byte in order, frames within the limit, the end after
//! the last byte, and the small `io::Read` reads that still go through the pooled buffer.

mod util;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::rc::Rc;

use fibra::net::{ConnOptions, Framing, ListenOptions, Lost, NetError, NetExt};
use util::{net_schedule, peer, run_all};

/// 300 KiB in uneven writes (1 byte to 40 KiB), then the client's close.
fn payload() -> (Vec<u8>, Vec<usize>) {
    let bytes: Vec<u8> = (0..300 * 1024u32)
        .map(|i| (i * 7 + i / 251) as u8)
        .collect();
    let mut cuts = Vec::new();
    let (mut at, mut size) = (0, 1usize);
    while at < bytes.len() {
        let n = size.min(bytes.len() - at);
        cuts.push(n);
        at += n;
        size = (size * 3 + 1) % (40 * 1024) + 1;
    }
    (bytes, cuts)
}

/// Serves one connection with `max_frame`, receiving into one buffer until the end: the
/// frames and the error that ended them.
fn received(max_frame: usize) -> (Vec<Vec<u8>>, NetError) {
    let mut s = net_schedule();
    let got = Rc::new(RefCell::new((Vec::new(), None)));
    let out = got.clone();
    let addr = Rc::new(RefCell::new(None));
    let addr_out = addr.clone();
    s.spawn(move |h| {
        let conn = ConnOptions::new()
            .with_framing(Framing::Raw)
            .with_max_frame(max_frame);
        let listener = h
            .listen_with("127.0.0.1:0", ListenOptions::new().with_conn(conn))
            .unwrap();
        *addr_out.borrow_mut() = Some(listener.local_addr());
        let (conn, _) = h.accept(&listener).unwrap();
        let mut buf = Vec::new();
        loop {
            match h.receive_into(&conn, &mut buf) {
                Ok(()) => out.borrow_mut().0.push(buf.clone()),
                Err(e) => {
                    out.borrow_mut().1 = Some(e);
                    return;
                }
            }
        }
    })
    .unwrap();
    s.tick().unwrap();
    let addr = addr.borrow().unwrap();
    let (bytes, cuts) = payload();
    let client = peer(addr, move |mut stream| {
        let mut at = 0;
        for n in cuts {
            stream.write_all(&bytes[at..at + n]).unwrap();
            at += n;
        }
    });
    run_all(&mut s, 20);
    client.join().unwrap();
    let (frames, end) = got.take();
    (frames, end.expect("the receives ended"))
}

#[test]
fn raw_receives_into_one_buffer_carry_every_byte_then_the_end() {
    let (frames, end) = received(1024 * 1024);
    assert!(frames.iter().all(|f| !f.is_empty()));
    assert_eq!(frames.concat(), payload().0);
    assert!(matches!(end, NetError::Lost(Lost::Eof)), "{end:?}");
}

#[test]
fn raw_receives_stay_within_the_frame_limit() {
    for max_frame in [100, 5000] {
        let (frames, end) = received(max_frame);
        assert!(frames.iter().all(|f| !f.is_empty() && f.len() <= max_frame));
        assert_eq!(frames.concat(), payload().0);
        assert!(matches!(end, NetError::Lost(Lost::Eof)), "{end:?}");
    }
}

#[test]
fn io_reads_large_and_small_carry_every_byte() {
    for chunk in [7usize, 8192] {
        let mut s = net_schedule();
        let got = Rc::new(RefCell::new(Vec::new()));
        let out = got.clone();
        let addr = Rc::new(RefCell::new(None));
        let addr_out = addr.clone();
        s.spawn(move |h| {
            let listener = h.listen("127.0.0.1:0").unwrap();
            *addr_out.borrow_mut() = Some(listener.local_addr());
            let (conn, _) = h.accept(&listener).unwrap();
            let mut io = h.io(&conn);
            let mut piece = vec![0; chunk];
            loop {
                let n = io.read(&mut piece).unwrap();
                if n == 0 {
                    return;
                }
                out.borrow_mut().extend_from_slice(&piece[..n]);
            }
        })
        .unwrap();
        s.tick().unwrap();
        let addr = addr.borrow().unwrap();
        let (bytes, cuts) = payload();
        let client = peer(addr, move |mut stream| {
            let mut at = 0;
            for n in cuts {
                stream.write_all(&bytes[at..at + n]).unwrap();
                at += n;
            }
        });
        run_all(&mut s, 20);
        client.join().unwrap();
        assert_eq!(*got.borrow(), payload().0, "reads of {chunk} bytes");
    }
}
