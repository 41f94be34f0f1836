//! A stackless job's calls on the table over real sockets: `NetExt::try_receive` and
//! `NetExt::on_input` serve a raw connection without a yield, with the ops' answers. The end
//! of the stream or a reset that such a call reads is told to the connection's other
//! tasklets (`on_lost_connection`) as a loss found in a round is, and the connection's
//! later calls fail with it. `Conn::lost` says it at once, and a close asked right after it
//! (what a stackless session's end does) is not told in its place.

mod util;

use std::cell::RefCell;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use fibra::net::ops::{InputJob, OnInput, Tried, TryReceive};
use fibra::net::{Conn, ConnOptions, Framing, Lost, NetError, NetExt};
use fibra::rt::Handle;
use fibra::tasks::TasksExt;

type Seen = Rc<RefCell<Vec<String>>>;

/// Takes what is there by calls, then arms the watch again, until the connection fails; then
/// notes `Conn::lost`, and closes the connection if `close` says so.
fn job(conn: Conn, seen: Seen, heard: mpsc::Sender<()>, close: bool) -> Box<dyn InputJob> {
    Box::new(move |h: &Handle| {
        loop {
            match h.try_receive(TryReceive::raw(&conn, Vec::new(), 64 * 1024)) {
                Tried::Frame(bytes) => {
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    seen.borrow_mut().push(format!("frame {text}"));
                    let _ = heard.send(());
                }
                Tried::Nothing(_) => break,
                Tried::Failed(e) => {
                    seen.borrow_mut().push(format!("failed {e:?}"));
                    seen.borrow_mut().push(format!("lost {:?}", conn.lost()));
                    if close {
                        conn.close();
                    }
                    return;
                }
            }
        }
        let again = job(conn.clone(), seen.clone(), heard.clone(), close);
        h.on_input(OnInput::new(&conn, "watch", again)).unwrap();
    })
}

/// A raw connection to a peer that says `hello`, waits until it was heard, then ends as
/// `end` does; what the job saw (closing on the failure if `close` says so), and what
/// `on_lost_connection` told another tasklet.
fn served_until_the_peer_ends(end: fn(TcpStream), close: bool) -> (Vec<String>, Option<Lost>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (heard_tx, heard_rx) = mpsc::channel::<()>();
    let peer = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        c.write_all(b"hello").unwrap();
        heard_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        end(c);
    });
    let mut s = util::net_schedule();
    let seen = Seen::default();
    let lost = Rc::new(RefCell::new(None));
    let (seen2, lost2) = (seen.clone(), lost.clone());
    s.spawn(move |h| {
        let raw = ConnOptions::new().with_framing(Framing::Raw);
        let conn = h.connect_with(addr, raw).unwrap();
        let watched = conn.clone();
        h.spawn_detached(move |h| *lost2.borrow_mut() = Some(h.on_lost_connection(&watched)))
            .unwrap();
        h.on_input(OnInput::new(
            &conn,
            "watch",
            job(conn.clone(), seen2, heard_tx, close),
        ))
        .unwrap();
    })
    .unwrap();
    util::run_until(&mut s, "the job's failure and the loss told", || {
        seen.borrow().iter().any(|e| e.starts_with("failed")) && lost.borrow().is_some()
    });
    util::on_thread_within("the peer", 20, move || peer.join().unwrap());
    let seen = seen.borrow().clone();
    let lost = *lost.borrow();
    (seen, lost)
}

fn peer_shuts_down(c: TcpStream) {
    c.shutdown(std::net::Shutdown::Write).unwrap();
    std::thread::sleep(Duration::from_millis(200));
}

fn peer_resets(c: TcpStream) {
    socket2::SockRef::from(&c)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(c);
}

/// What the job sees when the peer ends with `lost`.
fn failure(lost: Lost) -> Vec<String> {
    vec![
        "frame hello".to_owned(),
        format!("failed {:?}", NetError::Lost(lost)),
        format!("lost {:?}", Some(lost)),
    ]
}

#[test]
fn an_end_of_stream_read_by_a_call_is_told_to_the_connections_tasklets() {
    let (seen, lost) = served_until_the_peer_ends(peer_shuts_down, false);
    assert_eq!(seen, failure(Lost::Eof));
    assert_eq!(lost, Some(Lost::Eof));
}

#[test]
fn a_reset_read_by_a_call_is_told_to_the_connections_tasklets() {
    let (seen, lost) = served_until_the_peer_ends(peer_resets, false);
    assert_eq!(seen, failure(Lost::Reset));
    assert_eq!(lost, Some(Lost::Reset));
}

/// Review: the close a session's end asks for went on the deferred stack after the end read
/// by the call, was taken first, and `Closed` was told in place of the end.
#[test]
fn an_end_of_stream_read_by_a_call_then_a_close_tells_the_end() {
    let (seen, lost) = served_until_the_peer_ends(peer_shuts_down, true);
    assert_eq!(seen, failure(Lost::Eof));
    assert_eq!(lost, Some(Lost::Eof));
}

#[test]
fn a_reset_read_by_a_call_then_a_close_tells_the_reset() {
    let (seen, lost) = served_until_the_peer_ends(peer_resets, true);
    assert_eq!(seen, failure(Lost::Reset));
    assert_eq!(lost, Some(Lost::Reset));
}
