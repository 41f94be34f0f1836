//! loadgen bounds every wait: against a server that accepts and never answers, each login
//! counts as failed after --login-timeout, the failures are printed, and the run ends by
//! itself instead of hanging.

use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn logins_that_never_complete_are_counted_as_failed_not_waited_for() {
    // Accepts, holds every connection, says nothing (no prompt).
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "chat",
            "--addr",
            &addr,
            "--clients",
            "5",
            "--login-timeout",
            "0.5",
        ])
        .args(["--secs", "0.5", "--warmup", "0", "--drain", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill(); // our own child, by handle
            let _ = child.wait();
            panic!("loadgen hung on logins that never complete");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (mut out, mut err) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!status.success(), "nothing was delivered: {status}");
    assert!(
        out.contains("\"logged_in\":0,\"failed\":5,\"login_timeouts\":5"),
        "{out}"
    );
    assert!(err.contains("5 of 5 logins failed"), "{err}");
}
