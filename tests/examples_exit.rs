//! Every server example exits non-zero, saying why, when it cannot start (its address is
//! taken); none reports success for a server that never served.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Where cargo put the examples it built for this test run (`target/<profile>/examples`).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    profile_dir.join("examples").join(name)
}

#[test]
fn a_server_that_cannot_listen_exits_non_zero() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    for name in ["chatter", "echo", "host_loop"] {
        let path = example(name);
        assert!(path.exists(), "`cargo test` builds the examples: {path:?}");
        let mut child = Command::new(&path)
            .args(["--addr", &addr])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill(); // our own child, by handle
                let _ = child.wait();
                panic!("{name} kept running on a taken address");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert!(
            !status.success(),
            "{name} exited {status} on a taken address"
        );
        assert!(err.contains("Address already in use"), "{name} said: {err}");
    }
}
