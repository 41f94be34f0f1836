//! `ops::Connect::bind`: a connection from a source address of one's choice (a load
//! generator's way past the ~28,000 ports of one address pair), over real sockets.

mod util;

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;

use fibra::net::{ops, ConnOptions, NetError, NetExt};

#[test]
fn a_connect_bound_to_127_0_0_2_comes_from_there() {
    let mut s = util::net_schedule();
    let listener = util::listen(&s);
    let addr = listener.local_addr();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let got = seen.clone();
    s.spawn(move |h| {
        let from: SocketAddr = "127.0.0.2:0".parse().unwrap();
        let op = ops::Connect::new(addr, ConnOptions::new()).bind(from);
        let conn = h.yield_op(op).expect("connect from 127.0.0.2");
        let (_accepted, peer) = h.accept(&listener).unwrap();
        got.borrow_mut().push(peer.ip());
        assert_eq!(
            conn.local_addr().map(|a| a.ip()),
            Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
        );
        // An address this host does not have: refused at the bind, said so.
        let nowhere: SocketAddr = "192.0.2.1:0".parse().unwrap();
        match h.yield_op(ops::Connect::new(addr, ConnOptions::new()).bind(nowhere)) {
            Err(NetError::BindSource { addr, .. }) => got.borrow_mut().push(addr.ip()),
            other => panic!("expected a bind error, got {other:?}"),
        }
    })
    .unwrap();
    util::run_all(&mut s, 10);
    assert_eq!(
        *seen.borrow(),
        [
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))
        ]
    );
}
