//! What a hostile TLS peer can make the server log: nothing above `debug` (a reason per
//! connection, as for any peer's misbehaviour), so that unauthenticated peers cannot flood a
//! server's log at its usual level (`info`) with a few bytes per connection. Its own test
//! binary: it installs the process's logger.
#![cfg(feature = "tls")]

mod util;

use std::io::{Read, Write};
use std::sync::Mutex;

use fibra::net::{ConnOptions, NetExt};
use util::certs::TestCerts;
use util::{net_schedule, run_all};

/// Records every log line at `info` or above.
struct Recorder(Mutex<Vec<String>>);

impl log::Log for Recorder {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Info
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let line = format!("{} {}: {}", record.level(), record.target(), record.args());
            self.0.lock().unwrap().push(line);
        }
    }

    fn flush(&self) {}
}

static RECORDER: Recorder = Recorder(Mutex::new(Vec::new()));

#[test]
fn hostile_tls_peers_leave_nothing_in_the_log_at_info() {
    log::set_logger(&RECORDER).unwrap();
    log::set_max_level(log::LevelFilter::Info);
    let certs = TestCerts::localhost();
    let mut s = net_schedule();
    let listener = certs.listen(&s, ConnOptions::new());
    let addr = listener.local_addr();
    const PEERS: usize = 20;
    let peers = std::thread::spawn(move || {
        for i in 0..PEERS {
            let mut tcp = std::net::TcpStream::connect(addr).unwrap();
            tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .unwrap();
            // A HelloRequest where a ClientHello must come (9 bytes), or a warning alert
            // inside a hello.
            let record: &[u8] = if i % 2 == 0 {
                &[0x16, 0x03, 0x03, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00]
            } else {
                &[0x16, 0x03, 0x03, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00]
            };
            tcp.write_all(record).unwrap();
            let _ = tcp.read_to_end(&mut Vec::new());
        }
    });
    s.spawn(move |h| {
        for _ in 0..PEERS {
            let (conn, _) = h.accept(&listener).unwrap();
            assert!(h.receive(&conn).is_err());
        }
    })
    .unwrap();
    run_all(&mut s, 20);
    peers.join().unwrap();
    let logged = RECORDER.0.lock().unwrap().clone();
    assert!(
        logged.is_empty(),
        "{} lines at info or above, e.g. {:?}",
        logged.len(),
        logged.first()
    );
}
