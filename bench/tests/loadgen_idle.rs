//! `loadgen idle` spreads its connections over generator processes and source addresses:
//! against a server that accepts and holds every connection (and says nothing), each
//! connection comes from 127.0.0.2 or 127.0.0.3 as asked, all are counted open, and the run
//! ends by itself.

use std::collections::BTreeMap;
use std::net::{IpAddr, TcpListener};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn idle_connections_are_spread_over_processes_and_source_addresses() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let peers = Arc::new(Mutex::new(BTreeMap::<IpAddr, usize>::new()));
    let seen = peers.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            let ip = stream.peer_addr().unwrap().ip();
            *seen.lock().unwrap().entry(ip).or_default() += 1;
            held.push(stream);
        }
    });
    let args = [
        "idle",
        "--addr",
        &addr,
        "--conns",
        "60",
        "--procs",
        "3",
        "--sources",
        "2",
        "--secs",
        "0.2",
        "--warmup",
        "0",
    ];
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill(); // our own child, by handle
            let _ = child.wait();
            panic!("loadgen {args:?} did not end by itself");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for field in [
        "\"open\":60",
        "\"failed\":0",
        "\"procs\":3",
        "\"sources\":2",
    ] {
        assert!(stdout.contains(field), "{field} in {stdout}");
    }
    let peers = peers.lock().unwrap();
    let from = |ip: [u8; 4]| peers.get(&IpAddr::from(ip)).copied().unwrap_or(0);
    // Three children over two addresses: 20 + 20 from 127.0.0.2, 20 from 127.0.0.3.
    assert_eq!(
        (from([127, 0, 0, 2]), from([127, 0, 0, 3])),
        (40, 20),
        "{peers:?}"
    );
}
