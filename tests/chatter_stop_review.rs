//! A hostile review of the chatter's stop (rev-d), against the built example binary.
//!
//! - Ctrl-C while the room is busy: `The server is shutting down.` is the last line every
//!   member gets. Before, with `--threads 2`, lines said in the round of the stop (relayed
//!   from the other thread, or said there) reached members after the goodbye: the
//!   goodbye's group (`Group::close_all`) was sealed at once, ahead of the room's group
//!   whose batch held lines sent earlier in that round.
//! - A bad `--addr` with `--threads 2 --accept reuseport` is named in the error, as it is
//!   without reuseport. Before: only `invalid socket address`.

mod chat;
mod util;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use chat::{protocol, Client};

/// Reads every line `stream` gets until the end of the stream (or a reset).
fn read_to_end(stream: TcpStream) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut reader = BufReader::new(stream);
        let mut lines = Vec::new();
        let mut line = String::new();
        while let Ok(n) = reader.read_line(&mut line) {
            if n == 0 {
                break;
            }
            lines.push(std::mem::take(&mut line).trim_end().to_owned());
        }
        lines
    })
}

/// Ctrl-C while one member floods the room: every member's last line is the goodbye.
fn ctrl_c_in_a_busy_room_makes_the_goodbye_the_last_line(args: &[&str]) {
    let server = util::Example::start_with("chatter", args);
    let addr: SocketAddr = server.addr.parse().unwrap();
    // The flooder first, then two listeners: with the hand-off, one on each thread.
    let mut members: Vec<Client> = ["ann", "bob", "cy"]
        .iter()
        .map(|handle| {
            let mut c = Client::connect(addr);
            c.login(handle);
            c
        })
        .collect();
    members[0].lines_until("cy has joined the chat.");
    members[1].lines_until("cy has joined the chat.");
    let readers: Vec<_> = members
        .iter()
        .map(|c| (c.name.clone(), read_to_end(c.stream.try_clone().unwrap())))
        .collect();
    // Short lines, without end (the server paces ann at --max-rate): many lines in every
    // round, on both threads, when the stop comes.
    let mut flood = members[0].stream.try_clone().unwrap();
    let flooder = std::thread::spawn(move || {
        let line = [b'x'; 99].iter().chain(b"\n").copied().collect::<Vec<u8>>();
        let lines: Vec<u8> = line.repeat(1000);
        while flood.write_all(&lines).is_ok() {}
    });
    std::thread::sleep(Duration::from_millis(1500));
    let (status, said) = server.interrupt();
    assert!(
        status.success(),
        "chatter {args:?} exited {status}:\n{said}"
    );
    for (name, reader) in readers {
        let lines = reader.join().unwrap();
        let goodbye = lines.iter().position(|l| l == protocol::SHUTTING_DOWN);
        let Some(at) = goodbye else {
            panic!("{name} never got the goodbye ({} lines)", lines.len());
        };
        assert_eq!(
            &lines[at + 1..],
            &[] as &[String],
            "{name} got lines after `{}` (chatter {args:?})",
            protocol::SHUTTING_DOWN
        );
    }
    flooder.join().unwrap();
}

#[test]
fn ctrl_c_in_a_busy_room_makes_the_goodbye_the_last_line_on_one_thread() {
    ctrl_c_in_a_busy_room_makes_the_goodbye_the_last_line(&[]);
}

#[test]
fn ctrl_c_in_a_busy_room_makes_the_goodbye_the_last_line_on_two_threads() {
    ctrl_c_in_a_busy_room_makes_the_goodbye_the_last_line(&["--threads", "2"]);
}

/// A bad address with `--accept reuseport` says which address, and exits 1.
#[test]
fn a_bad_address_with_reuseport_is_named() {
    let args = [
        "--addr",
        "nonsense",
        "--no-web",
        "--threads",
        "2",
        "--accept",
        "reuseport",
    ];
    let (status, said) = util::Example::spawn("chatter", &args).wait_exit();
    assert_eq!(status.code(), Some(1), "chatter {args:?} said:\n{said}");
    assert!(
        said.contains("cannot serve the chat on `nonsense`"),
        "chatter {args:?} did not name the address:\n{said}"
    );
}

/// A taken web port: the error names it and the process exits 1, and nothing else is said
/// before it (a warning that "a schedule was dropped with tasklets that never ran" came
/// first, about the chat's own acceptor).
#[test]
fn a_taken_web_port_is_named_and_nothing_spurious_is_said() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let web = taken.local_addr().unwrap().to_string();
    for threads in ["1", "2"] {
        let args = [
            "--addr",
            "127.0.0.1:0",
            "--web-addr",
            &web,
            "--threads",
            threads,
        ];
        let (status, said) = util::Example::spawn("chatter", &args).wait_exit();
        assert_eq!(status.code(), Some(1), "chatter {args:?} said:\n{said}");
        assert!(
            said.contains(&format!("cannot serve the web page on `{web}`")),
            "chatter {args:?} did not name the web address:\n{said}"
        );
        assert!(
            !said.contains("never ran"),
            "chatter {args:?} said something spurious:\n{said}"
        );
    }
}
