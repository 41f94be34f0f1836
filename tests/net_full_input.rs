//! A watcher of a connection nobody receives on hears of its end though the input buffer is
//! full (the peer sent more than a frame may be, with no frame end): a reset, an end of
//! stream, a read timeout. Over real sockets on 127.0.0.1.

mod util;

use std::io::Write;
use std::time::Duration;

use fibra::net::{ConnOptions, ListenOptions, NetExt};
use util::{net_schedule, run_all};

/// Nobody receives; a watcher waits for the loss. The peer sends more than the input buffer
/// takes (no frame end), then `end`s the connection: the watcher must hear of it.
fn watcher_after_a_full_input(
    end: &'static str,
    read_timeout: Option<Duration>,
) -> Option<fibra::net::Lost> {
    let mut s = net_schedule();
    let out = std::rc::Rc::new(std::cell::RefCell::new(None));
    let out2 = out.clone();
    s.spawn(move |h| {
        let options = ConnOptions::new().with_read_timeout(read_timeout);
        let listener = h
            .listen_with("127.0.0.1:0", ListenOptions::new().with_conn(options))
            .unwrap();
        let addr = listener.local_addr();
        let peer = std::thread::spawn(move || {
            let mut stream = std::net::TcpStream::connect(addr).unwrap();
            stream.write_all(&vec![b'x'; 64 * 1024]).unwrap();
            std::thread::sleep(Duration::from_millis(200));
            match end {
                "reset" => {
                    socket2::SockRef::from(&stream)
                        .set_linger(Some(Duration::ZERO))
                        .unwrap();
                    drop(stream);
                }
                "fin" => {
                    stream.shutdown(std::net::Shutdown::Write).unwrap();
                    std::thread::sleep(Duration::from_secs(4));
                }
                _ => std::thread::sleep(Duration::from_secs(4)),
            }
        });
        let (conn, _) = h.accept(&listener).unwrap();
        let lost = h
            .yield_op_timeout(fibra::net::ops::OnLost::new(&conn), Duration::from_secs(3))
            .ok();
        *out2.borrow_mut() = lost;
        h.abort(&conn);
        peer.join().unwrap();
    })
    .unwrap();
    run_all(&mut s, 15);
    out.take()
}

#[test]
fn a_watcher_hears_of_a_reset_though_the_input_buffer_is_full() {
    let lost = watcher_after_a_full_input("reset", None);
    assert_eq!(lost, Some(fibra::net::Lost::Reset));
}

#[test]
fn a_watcher_hears_of_the_end_of_stream_though_the_input_buffer_is_full() {
    let lost = watcher_after_a_full_input("fin", None);
    assert_eq!(lost, Some(fibra::net::Lost::Eof));
}

#[test]
fn a_read_timeout_fires_though_the_input_buffer_is_full() {
    let lost = watcher_after_a_full_input("silent", Some(Duration::from_millis(500)));
    assert_eq!(lost, Some(fibra::net::Lost::TimedOut));
}
