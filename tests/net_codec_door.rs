//! The codec door over real sockets on 127.0.0.1: a user codec that panics on a peer's
//! byte, returns a frame out of range, consumes past its buffer or makes no progress, panics
//! in `encode`, or whose factory panics, ends its own connection with `Lost::Codec`; the
//! schedule does not unwind, and another connection on it goes on working.

mod util;

use std::cell::{Cell, RefCell};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::time::Duration;

use fibra::net::{
    Codec, CodecCall, CodecFailure, ConnOptions, Decoded, FrameError, Framing, LineCodec,
    ListenOptions, Lost, NetError, NetExt,
};
use fibra::tasks::TasksExt;
use util::net_schedule;

/// Lines, except that a line starting with a trigger byte makes `decode` misbehave, and the
/// payload `boom` makes `encode` panic.
#[derive(Debug, Default)]
struct Hostile(LineCodec);

impl Codec for Hostile {
    fn decode(&mut self, buf: &[u8], max: usize) -> Result<Option<Decoded>, FrameError> {
        match buf.first() {
            Some(b'P') => panic!("a peer's byte"),
            Some(b'F') => panic!("formatted: {}", buf.len()),
            Some(b'R') => Ok(Some(Decoded {
                frame: 0..buf.len() + 10,
                consumed: 1,
            })),
            Some(b'C') => Ok(Some(Decoded {
                frame: 0..1,
                consumed: buf.len() + 1,
            })),
            Some(b'Z') => Ok(Some(Decoded {
                frame: 0..0,
                consumed: 0,
            })),
            _ => self.0.decode(buf, max),
        }
    }

    fn encode(&self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
        if payload == b"boom" {
            out.extend_from_slice(b"half a frame");
            panic!("encode of boom");
        }
        self.0.encode(payload, out)
    }
}

/// Serves two connections with `framing` (echo of every frame) on a schedule run to the
/// end; a victim connection sends `hello`, then `attack`; a bystander connected second
/// then sends a line and must get its echo. Returns what each server handler ended with, as
/// `NetError`s, and what the victim's peer read after its echo.
fn scenario(framing: Framing, attack: &'static [u8]) -> (Vec<NetError>, String) {
    let mut s = net_schedule();
    let options = ListenOptions::new().with_conn(ConnOptions::new().with_framing(framing));
    let listener = util::listen_with(&s, options);
    let addr = listener.local_addr();
    let errors: Rc<RefCell<Vec<(usize, NetError)>>> = Rc::default();
    let errors_in = errors.clone();
    s.spawn_named("acceptor", move |h| {
        for n in 0..2 {
            let (conn, _) = h.accept(&listener).unwrap();
            let errors = errors_in.clone();
            h.spawn_detached(move |h| loop {
                let frame = match h.receive(&conn) {
                    Ok(frame) => frame,
                    Err(e) => {
                        errors.borrow_mut().push((n, e));
                        return;
                    }
                };
                if let Err(e) = h.send_frame(&conn, &frame) {
                    errors.borrow_mut().push((n, e));
                    return;
                }
            })
            .unwrap();
        }
    })
    .unwrap();
    let peers = std::thread::spawn(move || peers(addr, attack));
    // Before the door, the codec's panic unwound out of here.
    let left = s
        .run_for(Duration::from_secs(20))
        .expect("the schedule ran");
    assert!(!left, "the schedule did not finish");
    let victim_read = peers.join().expect("the peers' thread");
    let mut errors = Rc::try_unwrap(errors).unwrap().into_inner();
    errors.sort_by_key(|(n, _)| *n);
    let errors: Vec<NetError> = errors.into_iter().map(|(_, e)| e).collect();
    assert_eq!(errors.len(), 2, "both handlers ended: {errors:?}");
    (errors, victim_read)
}

/// The two peers: the victim says hello and attacks; the bystander then still gets echoes.
fn peers(addr: SocketAddr, attack: &[u8]) -> String {
    let connect = || {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
    };
    let mut victim = connect();
    // In the factory scenario the connection may be reset already.
    let _ = victim.write_all(b"hello\n");
    let mut victim_in = BufReader::new(victim.try_clone().unwrap());
    let mut line = String::new();
    // The factory scenario's victim gets no echo: its connection ended at once.
    let _ = victim_in.read_line(&mut line);
    let mut bystander = connect();
    let mut bystander_in = BufReader::new(bystander.try_clone().unwrap());
    let _ = victim.write_all(attack);
    // The victim's connection ends (FIN or RST), and nothing more is echoed.
    let mut rest = Vec::new();
    let end = match victim_in.read_to_end(&mut rest) {
        Ok(_) => "eof".to_owned(),
        Err(e) => format!("{:?}", e.kind()),
    };
    for n in 0..3 {
        let said = format!("still here {n}\n");
        bystander.write_all(said.as_bytes()).unwrap();
        let mut echo = String::new();
        bystander_in.read_line(&mut echo).unwrap();
        assert_eq!(echo, said, "the bystander's echo");
    }
    drop(bystander);
    format!("{}{end}", line.trim_end())
}

fn codec_failure(e: &NetError) -> CodecFailure {
    match e {
        NetError::Lost(Lost::Codec(failure)) => *failure,
        other => panic!("not a codec failure: {other:?} ({other})"),
    }
}

fn assert_bystander_ended_cleanly(errors: &[NetError]) {
    assert!(
        matches!(errors[1], NetError::Lost(Lost::Eof)),
        "the bystander's handler ended at its peer's close, not {:?}",
        errors[1]
    );
}

fn hostile() -> Framing {
    Framing::custom(Hostile::default)
}

#[test]
fn decode_panic_on_a_peers_byte_ends_that_connection_only() {
    util::panics_expected();
    let (errors, victim) = scenario(hostile(), b"P\n");
    let failure = codec_failure(&errors[0]);
    assert_eq!(
        failure,
        CodecFailure::Panicked {
            call: CodecCall::Decode,
            message: Some("a peer's byte")
        }
    );
    let shown = errors[0].to_string();
    assert!(
        shown.contains("codec") && shown.contains("decode panicked: a peer's byte"),
        "{shown}"
    );
    assert!(victim.starts_with("hello"), "{victim}");
    assert!(
        victim.len() > "hello".len(),
        "the victim's connection ended: {victim}"
    );
    assert_bystander_ended_cleanly(&errors);
}

#[test]
fn decode_panic_with_a_formatted_message_points_to_the_log() {
    util::panics_expected();
    let (errors, _) = scenario(hostile(), b"F\n");
    assert_eq!(
        codec_failure(&errors[0]),
        CodecFailure::Panicked {
            call: CodecCall::Decode,
            message: None
        }
    );
    assert!(
        errors[0].to_string().contains("in the log"),
        "{}",
        errors[0]
    );
    assert_bystander_ended_cleanly(&errors);
}

#[test]
fn frame_out_of_range_ends_that_connection_only() {
    let (errors, _) = scenario(hostile(), b"R\n");
    assert!(
        matches!(
            codec_failure(&errors[0]),
            CodecFailure::FrameOutOfRange { consumed: 1, .. }
        ),
        "{:?}",
        errors[0]
    );
    assert_bystander_ended_cleanly(&errors);
}

#[test]
fn consumed_past_the_buffer_ends_that_connection_only() {
    let (errors, _) = scenario(hostile(), b"C\n");
    assert!(
        matches!(
            codec_failure(&errors[0]),
            CodecFailure::ConsumedPastBuffer { .. }
        ),
        "{:?}",
        errors[0]
    );
    assert_bystander_ended_cleanly(&errors);
}

#[test]
fn zero_progress_ends_that_connection_instead_of_looping() {
    let (errors, _) = scenario(hostile(), b"Z\n");
    assert_eq!(codec_failure(&errors[0]), CodecFailure::NoProgress);
    assert!(errors[0].to_string().contains("no bytes"), "{}", errors[0]);
    assert_bystander_ended_cleanly(&errors);
}

#[test]
fn encode_panic_ends_that_connection_only() {
    util::panics_expected();
    let (errors, _) = scenario(hostile(), b"boom\n");
    assert_eq!(
        codec_failure(&errors[0]),
        CodecFailure::Panicked {
            call: CodecCall::Encode,
            message: Some("encode of boom")
        }
    );
    assert_bystander_ended_cleanly(&errors);
}

#[test]
fn factory_panic_ends_that_connection_only() {
    util::panics_expected();
    // The first connection's codec cannot be made; the second's can.
    let made = Rc::new(Cell::new(0));
    let framing = Framing::custom(move || {
        made.set(made.get() + 1);
        if made.get() == 1 {
            panic!("no codec for you");
        }
        Hostile::default()
    });
    let (errors, victim) = scenario(framing, b"x\n");
    assert_eq!(
        codec_failure(&errors[0]),
        CodecFailure::Panicked {
            call: CodecCall::Make,
            message: Some("no codec for you")
        }
    );
    assert!(!victim.starts_with("hello"), "no echo: {victim}");
    assert_bystander_ended_cleanly(&errors);
}

#[test]
fn a_group_with_a_panicking_encode_reports_it() {
    util::panics_expected();
    let mut s = net_schedule();
    let outcome: Rc<RefCell<Option<String>>> = Rc::default();
    let out = outcome.clone();
    s.spawn(move |_h| {
        let group = fibra::net::Group::with_options(
            fibra::net::GroupOptions::new().with_framing(hostile()),
        );
        let e = group.send_frame(b"boom").unwrap_err();
        assert!(matches!(e, NetError::Codec(_)), "{e:?}");
        *out.borrow_mut() = Some(e.to_string());
    })
    .unwrap();
    util::run_all(&mut s, 10);
    let shown = outcome.borrow().clone().expect("the tasklet ran");
    assert!(shown.contains("encode panicked"), "{shown}");
}

#[test]
fn a_connect_whose_codec_cannot_be_made_fails_with_the_reason() {
    util::panics_expected();
    let mut s = net_schedule();
    let listener = util::listen(&s);
    let addr = listener.local_addr();
    let outcome: Rc<RefCell<Option<String>>> = Rc::default();
    let out = outcome.clone();
    s.spawn(move |h| {
        let framing = Framing::custom(|| -> Hostile { panic!("no codec for you") });
        let e = h
            .connect_with(addr, ConnOptions::new().with_framing(framing))
            .unwrap_err();
        assert!(
            matches!(
                e,
                NetError::Codec(CodecFailure::Panicked {
                    call: CodecCall::Make,
                    ..
                })
            ),
            "{e:?}"
        );
        *out.borrow_mut() = Some(e.to_string());
        drop(listener);
    })
    .unwrap();
    util::run_all(&mut s, 10);
    let shown = outcome.borrow().clone().expect("the tasklet ran");
    assert!(shown.contains("no codec for you"), "{shown}");
}

thread_local! {
    /// Drops of `DropBomb` on this thread (the schedule's).
    static BOMBS: Cell<u32> = const { Cell::new(0) };
}

/// Lines, with a `Drop` that panics.
#[derive(Debug, Default)]
struct DropBomb(LineCodec);

impl Drop for DropBomb {
    fn drop(&mut self) {
        BOMBS.with(|b| b.set(b.get() + 1));
        panic!("a codec's drop");
    }
}

impl Codec for DropBomb {
    fn decode(&mut self, buf: &[u8], max: usize) -> Result<Option<Decoded>, FrameError> {
        self.0.decode(buf, max)
    }

    fn encode(&self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
        self.0.encode(payload, out)
    }
}

#[test]
fn a_panicking_codec_drop_is_contained() {
    util::panics_expected();
    let mut s = net_schedule();
    let options = ListenOptions::new()
        .with_conn(ConnOptions::new().with_framing(Framing::custom(DropBomb::default)));
    let listener = util::listen_with(&s, options);
    let addr = listener.local_addr();
    s.spawn(move |h| {
        // Two connections, one after the other: each echoes a line and is dropped, which
        // drops its codec inside the table.
        for _ in 0..2 {
            let (conn, _) = h.accept(&listener).unwrap();
            let line = h.receive(&conn).unwrap();
            h.send_frame(&conn, &line).unwrap();
            h.close(&conn).unwrap();
        }
    })
    .unwrap();
    let peer = std::thread::spawn(move || {
        let mut said = Vec::new();
        for n in 0..2 {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            writeln!(stream, "hi {n}").unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).unwrap();
            said.push(answer);
        }
        said
    });
    util::run_all(&mut s, 10);
    assert_eq!(peer.join().unwrap(), ["hi 0\n", "hi 1\n"]);
    assert_eq!(
        BOMBS.with(Cell::get),
        2,
        "both codecs were dropped, each panicking"
    );
}
