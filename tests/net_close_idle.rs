//! A graceful close asked from host code (no tasklet, no context) after the schedule sat
//! idle longer than the connection's close timeout: the queued output still arrives, then
//! a FIN, never a reset. The close timeout is counted from the close, not from the last
//! clock reading before the quiet spell.

mod util;

use std::cell::RefCell;
use std::io::Read;
use std::net::TcpStream;
use std::rc::Rc;
use std::time::Duration;

use fibra::net::{Conn, ConnOptions, Group, ListenOptions, Lost, NetExt};
use fibra::rt::Schedule;
use util::{listen_with, net_schedule, run_until};

const CLOSE_TIMEOUT: Duration = Duration::from_millis(200);

/// Everything the peer gets until the end of the stream: the bytes, or the error that ended
/// it (a reset).
fn read_to_end(mut client: TcpStream) -> Result<String, std::io::Error> {
    let mut got = Vec::new();
    client.read_to_end(&mut got)?;
    Ok(String::from_utf8_lossy(&got).into_owned())
}

/// `n` clients connected to a listener whose connections close within `CLOSE_TIMEOUT`, and
/// the server's ends, handed to the host (the accepting tasklet has ended).
fn accepted(s: &mut Schedule, n: usize) -> (Vec<TcpStream>, Vec<Conn>) {
    let options =
        ListenOptions::new().with_conn(ConnOptions::new().with_close_timeout(CLOSE_TIMEOUT));
    let listener = listen_with(s, options);
    let addr = listener.local_addr();
    let conns = Rc::new(RefCell::new(Vec::new()));
    let into = Rc::clone(&conns);
    s.spawn(move |h| {
        for _ in 0..n {
            let (conn, _) = h.accept(&listener).unwrap();
            into.borrow_mut().push(conn);
        }
    })
    .unwrap();
    let clients: Vec<TcpStream> = (0..n)
        .map(|_| {
            let c = TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            c
        })
        .collect();
    run_until(s, "the accepts", || conns.borrow().len() == n);
    let conns = std::mem::take(&mut *conns.borrow_mut());
    (clients, conns)
}

/// The schedule sits idle (nothing to do, nothing due) for three close timeouts.
fn quiet_spell(s: &mut Schedule) {
    let until = std::time::Instant::now() + 3 * CLOSE_TIMEOUT;
    while std::time::Instant::now() < until {
        s.tick_within(3 * CLOSE_TIMEOUT).unwrap();
    }
}

/// Ticks until every connection's socket is closed (at most 20 s).
fn run_until_closed(s: &mut Schedule) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while util::net_stats(s).sockets > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for the closes"
        );
        s.tick_within(Duration::from_millis(2)).unwrap();
    }
}

#[test]
fn a_host_close_after_a_quiet_spell_sends_the_output_then_fin() {
    let mut s = net_schedule();
    let (mut clients, conns) = accepted(&mut s, 1);
    quiet_spell(&mut s);
    let conn = &conns[0];
    conn.try_send_line("the last words").unwrap();
    conn.close();
    run_until_closed(&mut s);
    assert_eq!(conn.lost(), Some(Lost::Closed));
    let got = read_to_end(clients.remove(0));
    assert_eq!(
        got.as_ref().map(String::as_str).map_err(|e| e.kind()),
        Ok("the last words\n"),
        "the queued line, then FIN (not a reset)"
    );
}

#[test]
fn a_groups_close_all_after_a_quiet_spell_says_goodbye_then_fin() {
    let mut s = net_schedule();
    let (clients, conns) = accepted(&mut s, 3);
    let room = Group::new();
    for conn in &conns {
        assert!(room.add(conn).unwrap());
    }
    quiet_spell(&mut s);
    room.close_all(Some(b"The server is shutting down."))
        .unwrap();
    run_until_closed(&mut s);
    for (i, client) in clients.into_iter().enumerate() {
        let got = read_to_end(client);
        assert_eq!(
            got.as_ref().map(String::as_str).map_err(|e| e.kind()),
            Ok("The server is shutting down.\n"),
            "member {i}: the goodbye, then FIN (not a reset)"
        );
    }
}
