//! loadgen bounds every wait: against a server that accepts and never answers, each login
//! counts as failed after --login-timeout, the failures are printed, and the run ends by
//! itself instead of hanging.

use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A server on 127.0.0.1 that accepts, holds every connection and says nothing (no prompt,
/// no echo). Its address.
fn silent_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    addr
}

/// Runs loadgen with `args` to its end (killed, and the test failed, if it has not ended
/// within 30 s): its status, stdout and stderr.
fn run_to_end(args: &[&str]) -> (std::process::ExitStatus, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
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
            panic!("loadgen {args:?} hung on a server that never answers");
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
    (status, out, err)
}

#[test]
fn logins_that_never_complete_are_counted_as_failed_not_waited_for() {
    let addr = silent_server();
    let (status, out, err) = run_to_end(&[
        "chat",
        "--addr",
        &addr,
        "--clients",
        "5",
        "--login-timeout",
        "0.5",
        "--secs",
        "0.5",
        "--warmup",
        "0",
        "--drain",
        "0",
    ]);
    assert!(!status.success(), "nothing was delivered: {status}");
    assert!(
        out.contains("\"logged_in\":0,\"failed\":5,\"login_timeouts\":5"),
        "{out}"
    );
    assert!(err.contains("5 of 5 logins failed"), "{err}");
}

#[test]
fn accept_logins_that_never_complete_are_counted_printed_and_fail_the_run() {
    let addr = silent_server();
    let (status, out, err) = run_to_end(&[
        "accept",
        "--addr",
        &addr,
        "--conns",
        "3",
        "--login-timeout",
        "0.5",
        "--secs",
        "0.4",
        "--warmup",
        "0",
    ]);
    assert!(!status.success(), "no login completed: {status}");
    assert!(out.contains("\"logins\":0,"), "{out}");
    assert!(out.contains("\"failed\":3,"), "{out}");
    assert!(err.contains("3 logins failed"), "{err}");
}

#[test]
fn echoes_that_never_come_back_fail_the_run() {
    let addr = silent_server();
    let (status, out, err) = run_to_end(&[
        "echo", "--addr", &addr, "--conns", "3", "--secs", "0.5", "--warmup", "0",
    ]);
    assert!(!status.success(), "no echo came back: {status}");
    assert!(out.contains("\"messages\":0,"), "{out}");
    assert!(err.contains("no echo came back"), "{err}");
}
