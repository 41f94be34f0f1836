//! TLS connections (fibra-net's `tls` feature) over real sockets on 127.0.0.1, with
//! certificates made in the test: handshake, lines both ways, SNI and ALPN, groups mixing
//! TLS and plain members, host-side sends, half-close and close_notify, timeouts, and each
//! kind of bad input ending its own connection with a reason that says TLS and why.
#![cfg(feature = "tls")]

mod util;

use std::cell::RefCell;
use std::rc::Rc;

use fibra::net::{Lost, NetError, NetExt, TlsLost};
use fibra::tasks::TasksExt;
use util::certs::TestCerts;
use util::{net_schedule, net_stats, run_all};

#[test]
fn handshake_and_lines_both_ways() {
    let certs = TestCerts::localhost();
    let (server_config, client_config) = (certs.server_config(), certs.client_config());
    let mut s = net_schedule();
    let log = Rc::new(RefCell::new(Vec::new()));
    let out = log.clone();
    s.spawn(move |h| {
        let listener = h.listen_tls("127.0.0.1:0", server_config).unwrap();
        let addr = listener.local_addr();
        let server = h
            .spawn(move |h| {
                let (conn, _) = h.accept(&listener).unwrap();
                let line = h.receive(&conn).unwrap();
                h.send_frame(&conn, &[b"echo: ", &line[..]].concat())
                    .unwrap();
                let info = conn.tls().expect("a TLS connection");
                assert!(!info.handshaking);
                assert_eq!(info.server_name.as_deref(), Some("localhost"));
                assert_eq!(h.receive(&conn).unwrap(), b"second");
                h.close(&conn).unwrap();
            })
            .unwrap();
        let client = h.connect_tls(addr, "localhost", client_config).unwrap();
        let info = client.tls().unwrap();
        assert!(!info.handshaking);
        assert_eq!(info.version.as_deref(), Some("TLSv1_3"));
        h.send_line(&client, "ping").unwrap();
        out.borrow_mut().push(h.receive(&client).unwrap());
        h.send_line(&client, "second").unwrap();
        // The server's close: close_notify, then the end of stream.
        match h.receive(&client) {
            Err(NetError::Lost(Lost::Eof)) => {}
            other => panic!("expected a clean end, got {other:?}"),
        }
        h.join(server).unwrap();
    })
    .unwrap();
    run_all(&mut s, 10);
    assert_eq!(*log.borrow(), vec![b"echo: ping".to_vec()]);
    let stats = net_stats(&s);
    assert_eq!((stats.connections, stats.sockets), (0, 0));
    let _ = TlsLost::NotTls;
}
