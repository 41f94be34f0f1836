//! Review (85b27f0), kept as a regression test: the error event that follows a peer's end of stream takes `SO_ERROR`
//! and ends the connection at once (`lose` + `end_output`, whose `close_now` clears the
//! input buffer). Lines the peer sent before its FIN, already read from the socket into the
//! connection's buffer but not yet received by the tasklet, must still be delivered: the
//! peer's later reset says nothing about them (before the commit they were, as long as the
//! tasklet did not write).

mod util;

use std::cell::RefCell;
use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::rc::Rc;
use std::time::Duration;

use fibra::net::NetExt;
use fibra::tasks::TasksExt;

#[test]
fn lines_read_before_a_reset_after_eof_are_still_delivered() {
    let mut s = util::net_schedule();
    let listener = util::listen(&s);
    let addr = listener.local_addr();
    let got = Rc::new(RefCell::new(Vec::<String>::new()));
    let out = got.clone();
    s.spawn(move |h| {
        let (conn, _) = h.accept(&listener).unwrap();
        let first = h.receive(&conn).unwrap();
        out.borrow_mut()
            .push(String::from_utf8_lossy(&first).into_owned());
        // Waits for the peer's end of stream (the table reads ahead for the watcher: the
        // two other lines and the FIN go into the connection's buffer), then is busy
        // elsewhere while the peer resets (a receive-only protocol: no write).
        let lost = h.on_lost_connection(&conn);
        out.borrow_mut().push(format!("on_lost: {lost:?}"));
        h.sleep(Duration::from_millis(400));
        loop {
            match h.receive(&conn) {
                Ok(line) => out
                    .borrow_mut()
                    .push(String::from_utf8_lossy(&line).into_owned()),
                Err(e) => {
                    out.borrow_mut().push(format!("end: {e:?}"));
                    break;
                }
            }
        }
    })
    .unwrap();
    let peer = std::thread::spawn(move || {
        let mut peer = TcpStream::connect(addr).unwrap();
        peer.write_all(b"a\n").unwrap();
        // The server has received `a` and waits in `on_lost_connection`: the next burst
        // and the FIN are read ahead, into the connection's buffer.
        std::thread::sleep(Duration::from_millis(100));
        peer.write_all(b"b\nc\n").unwrap();
        peer.shutdown(Shutdown::Write).unwrap();
        // Long enough for the server to read the burst and the end of stream.
        std::thread::sleep(Duration::from_millis(150));
        socket2::SockRef::from(&peer)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(peer); // RST
    });
    let seen = got.clone();
    util::run_until(&mut s, "the tasklet's end of input", || {
        seen.borrow().iter().any(|l| l.starts_with("end"))
    });
    peer.join().unwrap();
    let got = got.borrow().clone();
    assert_eq!(
        got,
        ["a", "on_lost: Eof", "b", "c", "end: Lost(Eof)"],
        "lines lost to the reset"
    );
}
