//! Every server example exits non-zero, saying why in words, when it cannot start (its address
//! is taken); none reports success for a server that never served. Ctrl-C (SIGINT, through the
//! signals plugin) stops each one cleanly, with exit status 0. Every example says what it is
//! and how to use it on `--help`, refuses an unknown flag with exit status 2, and has a default
//! port of its own, the one README.md's table gives.

mod util;

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn a_server_that_cannot_listen_exits_non_zero() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    for name in [
        "chatter",
        "echo",
        "host_loop",
        "chatter_2007",
        "eventlet_chat",
        "gettime",
        "timeserver",
        "hertz",
        "abchat",
        "unblock_hash",
    ] {
        let path = util::example(name);
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
        // Said as a message, not as `main`'s Debug form of a `Box<dyn Error>` (a quoted
        // string, or a struct's fields).
        assert!(
            !err.contains("Error: \"") && !err.contains(" { "),
            "{name} said: {err}"
        );
    }
}

#[test]
fn ctrl_c_stops_every_server_example_cleanly() {
    use std::io::{BufRead, BufReader, Write};
    let runs: [(&'static str, &[&str]); 4] = [
        ("chatter", &[]),
        ("chatter", &["--threads", "2"]),
        ("chatter", &["--threads", "2", "--accept", "reuseport"]),
        ("host_loop", &[]),
    ];
    for (name, args) in runs {
        let server = util::Example::start_with(name, args);
        let stream = std::net::TcpStream::connect(&server.addr).unwrap();
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
        let (status, said) = server.interrupt();
        assert!(
            status.success(),
            "{name} exited {status} on SIGINT:\n{said}"
        );
        assert!(said.contains("SIGINT: stopping"), "{name} said:\n{said}");
        if name == "chatter" {
            // ada's own join line, summed over the threads there are.
            assert!(
                said.contains("stopped: 1 lines delivered, 0 members cut off"),
                "{name} {args:?} said:\n{said}"
            );
        }
        // The member was told, and the connection then closed.
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut reader, &mut rest);
        assert!(rest.contains("shutting down"), "{name} sent {rest:?}");
    }

    let server = util::Example::start("echo");
    let mut stream = std::net::TcpStream::connect(&server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(b"ping").unwrap();
    let mut got = [0u8; 4];
    std::io::Read::read_exact(&mut stream, &mut got).unwrap();
    assert_eq!(&got, b"ping");
    let (status, said) = server.interrupt();
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

/// Every example in `examples/` (the benchmark's tools aside).
const EXAMPLES: [&str; 14] = [
    "abchat",
    "chatter",
    "chatter_2007",
    "echo",
    "echo_client",
    "eventlet_chat",
    "gettime",
    "gnet_echo",
    "hertz",
    "host_loop",
    "service",
    "timeserver",
    "unblock_hash",
    "web_hello",
];

#[test]
fn every_example_says_what_it_is_and_how_to_use_it() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    // Every example in examples/ is in the list (a file, or a folder with its main.rs).
    let mut found: Vec<String> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/examples"))
            .expect("examples/")
            .map(|entry| entry.unwrap().path())
            .filter_map(|path| match path.extension() {
                Some(ext) if ext == "rs" => Some(path.file_stem()?.to_str()?.to_owned()),
                None if path.join("main.rs").exists() => {
                    Some(path.file_name()?.to_str()?.to_owned())
                }
                _ => None,
            })
            .collect();
    found.sort();
    assert_eq!(
        found, EXAMPLES,
        "tests/examples_exit.rs's EXAMPLES against examples/"
    );
    let mut ports = std::collections::HashMap::new();
    for name in EXAMPLES {
        let mut help = String::new();
        for flag in ["--help", "-h"] {
            let out = run_to_end(name, flag);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{name} {flag} exited {}",
                out.status
            );
            help = String::from_utf8_lossy(&out.stdout).into_owned();
            let first = help.lines().next().unwrap_or_default();
            assert!(
                first.starts_with(&format!("{name}: ")) && !first.contains("usage:"),
                "{name} {flag} does not start by saying what it is: {first:?}"
            );
            assert!(
                help.contains("usage:") && help.contains("--addr"),
                "{name}: {help}"
            );
        }
        // The `--addr` line gives the default port; no two examples share one (the echo
        // client connects to gnet_echo's), and README's table of examples gives the same.
        let port = help
            .lines()
            .find(|line| line.trim_start().starts_with("--addr"))
            .and_then(|line| line.split("(default 127.0.0.1:").nth(1))
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .unwrap_or_else(|| panic!("{name}'s --addr has no default port: {help}"))
            .to_owned();
        if name != "echo_client" {
            if let Some(other) = ports.insert(port.clone(), name) {
                panic!("{name} and {other} both listen on port {port} by default");
            }
        }
        assert!(
            readme
                .lines()
                .any(|line| line.starts_with(&format!("| `{name}` |")) && line.contains(&port)),
            "README.md's table of examples has no row for {name} with port {port}"
        );

        let bad = run_to_end(name, "--no-such-flag");
        assert_eq!(bad.status.code(), Some(2), "{name} on an unknown flag");
        let said = String::from_utf8_lossy(&bad.stderr);
        assert!(said.contains("--no-such-flag"), "{name} said: {said}");
    }
}

/// A flag's value may be joined to it with `=`, as in most command lines; a value joined to a
/// flag that takes none, or out of range, is a usage error (exit status 2) that names the flag.
#[test]
fn a_flag_and_its_value_may_be_joined_with_equals() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("--addr={}", taken.local_addr().unwrap());
    // The value reached `--addr`: the example tried to listen there.
    for name in ["timeserver", "chatter_2007"] {
        let out = run_to_end_with(name, &[&addr]);
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name} {addr} exited {}", out.status);
        assert!(
            said.contains("Address already in use"),
            "{name} {addr} said: {said}"
        );
    }
    let cases: [(&str, &[&str], &str); 5] = [
        ("echo", &["--pin=yes"], "--pin takes no value"),
        (
            "chatter",
            &["--no-web=1", "--threads", "2"],
            "--no-web takes no value",
        ),
        ("chatter", &["--threads=0"], "--threads `0`"),
        ("hertz", &["--hz=0"], "--hz: invalid ticker period"),
        (
            "service",
            &["--secs=-5"],
            "--secs `-5`: give a whole number",
        ),
    ];
    for (name, args, want) in cases {
        let out = run_to_end_with(name, args);
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name} {args:?} said: {said}");
        assert!(said.contains(want), "{name} {args:?} said: {said}");
    }
}

/// Runs `name arg` to its end, within 20 s: an example that starts serving instead fails.
fn run_to_end(name: &str, arg: &str) -> std::process::Output {
    run_to_end_with(name, &[arg])
}

/// Runs `name args` to its end, within 20 s: an example that starts serving instead fails.
fn run_to_end_with(name: &str, args: &[&str]) -> std::process::Output {
    let mut child = Command::new(util::example(name))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill(); // our own child, by handle
            let _ = child.wait();
            panic!("`{name} {args:?}` kept running instead of ending");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}
