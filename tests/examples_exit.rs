//! Every server example exits non-zero, saying why, when it cannot start (its address is
//! taken); none reports success for a server that never served. Ctrl-C (SIGINT, through the
//! signals plugin) stops each one cleanly, with exit status 0.

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

/// Starts example `name` on a free port; returns the child, the address it logged, and the
/// rest of its stderr as it comes.
fn start(
    name: &str,
) -> (
    std::process::Child,
    String,
    std::sync::mpsc::Receiver<String>,
) {
    use std::io::BufRead;
    let mut child = Command::new(example(name))
        .args(["--addr", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            let _ = child.kill(); // our own child, by handle
            let _ = child.wait();
            panic!("{name} logged no address");
        };
        let addr = line
            .split_whitespace()
            .find(|word| word.starts_with("127.0.0.1:"))
            .map(|word| word.trim_end_matches(|c: char| !c.is_ascii_digit()));
        if let Some(addr) = addr {
            return (child, addr.to_owned(), rx);
        }
    }
}

/// Sends SIGINT to our own child and waits for it to exit; returns its status and the stderr
/// it wrote after the start.
fn interrupt(
    name: &str,
    mut child: std::process::Child,
    rx: &std::sync::mpsc::Receiver<String>,
) -> (std::process::ExitStatus, String) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: `kill` with a pid we spawned and have not reaped; it only sends a signal.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill(); // our own child, by handle
            let _ = child.wait();
            panic!("{name} kept running after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut said = String::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(2)) {
        said.push_str(&line);
        said.push('\n');
    }
    (status, said)
}

#[test]
fn ctrl_c_stops_every_server_example_cleanly() {
    use std::io::{BufRead, BufReader, Write};
    for name in ["chatter", "host_loop"] {
        let (child, addr, rx) = start(name);
        let stream = std::net::TcpStream::connect(&addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(line.contains("handle"), "{name} greeted with {line:?}");
        (&stream).write_all(b"ada\r\n").unwrap();
        line.clear();
        reader.read_line(&mut line).unwrap(); // the welcome
        let (status, said) = interrupt(name, child, &rx);
        assert!(
            status.success(),
            "{name} exited {status} on SIGINT:\n{said}"
        );
        assert!(said.contains("SIGINT: stopping"), "{name} said:\n{said}");
        // The member was told, and the connection then closed.
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut reader, &mut rest);
        assert!(rest.contains("shutting down"), "{name} sent {rest:?}");
    }

    let (child, addr, rx) = start("echo");
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(b"ping").unwrap();
    let mut got = [0u8; 4];
    std::io::Read::read_exact(&mut stream, &mut got).unwrap();
    assert_eq!(&got, b"ping");
    let (status, said) = interrupt("echo", child, &rx);
    assert!(status.success(), "echo exited {status} on SIGINT:\n{said}");
    assert!(said.contains("SIGINT: stopped"), "echo said:\n{said}");
    // Its connections closed with it.
    let mut rest = Vec::new();
    match std::io::Read::read_to_end(&mut stream, &mut rest) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("echo's connection was left open after it stopped: {e}"),
    }
}
