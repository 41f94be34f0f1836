//! Every benchmark tool answers `--help`: exit status 0, and a first line that says what the
//! program is (its name, and that it is a benchmark tool). A mistake on the command line (an
//! unknown argument, a flag without its value) is a usage error, as in the examples (the same
//! examples/shared/cli.rs): exit status 2, the argument named, and a pointer to `--help`.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

const TOOLS: [&str; 7] = [
    "tokio_echo",
    "tokio_chat",
    "tokio_abchat",
    "tokio_ws_chat",
    "tokio_tls_chat",
    "loadgen",
    "gencert",
];

/// The tool's executable, as cargo built it for this test run.
fn exe(name: &str) -> &'static str {
    match name {
        "tokio_echo" => env!("CARGO_BIN_EXE_tokio_echo"),
        "tokio_chat" => env!("CARGO_BIN_EXE_tokio_chat"),
        "tokio_abchat" => env!("CARGO_BIN_EXE_tokio_abchat"),
        "tokio_ws_chat" => env!("CARGO_BIN_EXE_tokio_ws_chat"),
        "tokio_tls_chat" => env!("CARGO_BIN_EXE_tokio_tls_chat"),
        "gencert" => env!("CARGO_BIN_EXE_gencert"),
        "loadgen" => env!("CARGO_BIN_EXE_loadgen"),
        other => panic!("no tool {other}"),
    }
}

/// Runs `name args`; its output, or a failure after 10 s (the child killed by handle).
fn run(name: &str, args: &[&str]) -> Output {
    let mut child = Command::new(exe(name))
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {name}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{name} {args:?} still running after 10 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn every_tool_says_what_it_is_on_help() {
    for name in TOOLS {
        for flag in ["--help", "-h"] {
            let out = run(name, &[flag]);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{name} {flag}: {:?}", out.status);
            let first = stdout.lines().next().unwrap_or_default();
            assert!(
                first.starts_with(&format!("{name}: ")) && first.contains("benchmark tool"),
                "{name} {flag}: first line {first:?}"
            );
            assert!(
                stdout.contains("usage:"),
                "{name} {flag}: no usage in {stdout:?}"
            );
        }
    }
}

#[test]
fn a_mistake_on_the_command_line_is_a_usage_error() {
    // gencert has no --addr: only the unknown argument is tried on it.
    for name in TOOLS.into_iter().filter(|&name| name != "gencert") {
        // loadgen takes a scenario first.
        let first: &[&str] = if name == "loadgen" { &["echo"] } else { &[] };
        for (mistake, said) in [
            (&["--bogus", "1"][..], "unknown argument `--bogus`"),
            (&["--addr"][..], "--addr needs a value"),
            (
                &["--addr=127.0.0.1:1", "--bogus"][..],
                "unknown argument `--bogus`",
            ),
        ] {
            let args = [first, mistake].concat();
            let out = run(name, &args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{name} {args:?}: {stderr:?}");
            assert!(stderr.contains(said), "{name} {args:?}: {stderr:?}");
            assert!(
                stderr.contains(&format!("try `{name} --help`")),
                "{name} {args:?}: {stderr:?}"
            );
        }
    }
    for args in [&[][..], &["nope"][..]] {
        let out = run("loadgen", args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "loadgen {args:?}: {stderr:?}");
        assert!(
            stderr.contains("echo, chat, idle or accept"),
            "loadgen {args:?}: {stderr:?}"
        );
    }
}

/// A fresh directory of gencert's certificates (removed by the caller).
fn certificates(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("fibra-bench-{test}-{}", std::process::id()));
    let out = run("gencert", &["--dir", dir.to_str().unwrap()]);
    assert!(out.status.success(), "gencert: {out:?}");
    dir
}

#[test]
fn a_peer_that_cannot_listen_says_why_in_words() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let certs = certificates("listen");
    let (cert, key) = (certs.join("cert.pem"), certs.join("key.pem"));
    let tls = [
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    for name in TOOLS.iter().filter(|name| name.starts_with("tokio_")) {
        let extra: &[&str] = if *name == "tokio_tls_chat" { &tls } else { &[] };
        let out = run(name, &[&["--addr", &addr][..], extra].concat());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr:?}");
        assert!(
            stderr.contains("Address already in use"),
            "{name}: {stderr:?}"
        );
        // A message, not the Debug form of an error (`Os { code: 98, kind: AddrInUse, … }`).
        assert!(!stderr.contains(" { "), "{name}: {stderr:?}");
    }
    std::fs::remove_dir_all(certs).unwrap();
}

#[test]
fn gencert_writes_pem_files_and_the_tls_peer_refuses_bad_ones() {
    let certs = certificates("gencert");
    let read = |name: &str| std::fs::read_to_string(certs.join(name)).unwrap();
    let (ca, cert, key) = (read("ca.pem"), read("cert.pem"), read("key.pem"));
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
    // The chain: the server's certificate, then the CA's.
    assert_eq!(
        cert.matches("-----BEGIN CERTIFICATE-----").count(),
        2,
        "{cert}"
    );
    assert!(cert.ends_with(&ca), "the CA closes the chain");
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
    let path = |name: &str| certs.join(name).to_str().unwrap().to_owned();
    for (args, said) in [
        (
            [
                "--tls-cert",
                &path("nope.pem"),
                "--tls-key",
                &path("key.pem"),
            ],
            "nope.pem",
        ),
        (
            [
                "--tls-cert",
                &path("key.pem"),
                "--tls-key",
                &path("key.pem"),
            ],
            "no certificate",
        ),
        (
            [
                "--tls-cert",
                &path("cert.pem"),
                "--tls-key",
                &path("ca.pem"),
            ],
            "--tls-key",
        ),
    ] {
        let out = run("tokio_tls_chat", &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr:?}");
        assert!(stderr.contains(said), "{args:?}: {stderr:?}");
    }
    std::fs::remove_dir_all(certs).unwrap();
}
