//! The family's classic chats, written against the public API as examples, run as real
//! processes and driven over loopback: the 2007 chatter and eventlet's chat server.

mod util;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A telnet-like client: lines in, lines out, 10 s read timeout.
struct Client {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: &str) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Client { stream, reader }
    }

    fn say(&mut self, line: &str) {
        self.stream
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
    }

    fn hear(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        line.trim_end().to_owned()
    }

    /// Whether the server closed the connection (EOF or reset; not a timeout).
    fn closed(&mut self) -> bool {
        let mut rest = String::new();
        match std::io::Read::read_to_string(&mut self.reader, &mut rest) {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

#[test]
fn the_2007_chatter_keeps_its_rules() {
    let server = util::Example::start("chatter_2007");
    let mut ada = Client::connect(&server.addr);
    assert_eq!(ada.hear(), "What is your handle?");
    ada.say("ada");
    assert_eq!(ada.hear(), "ada has joined the chat.");

    let mut bob = Client::connect(&server.addr);
    assert_eq!(bob.hear(), "What is your handle?");
    bob.say("ada");
    assert_eq!(bob.hear(), "That handle is already taken.");
    assert_eq!(bob.hear(), "What is your handle?");
    bob.say("bob");
    assert_eq!(bob.hear(), "bob has joined the chat.");
    assert_eq!(ada.hear(), "bob has joined the chat.");

    bob.say("hi all");
    assert_eq!(ada.hear(), "bob says: hi all");
    assert_eq!(bob.hear(), "bob says: hi all");

    bob.say("/quit");
    assert_eq!(ada.hear(), "bob has left the chat.");
    assert!(bob.closed(), "/quit closes the connection");

    // A lost connection leaves too, once, and frees its handle.
    drop(ada);
    let mut cy = Client::connect(&server.addr);
    assert_eq!(cy.hear(), "What is your handle?");
    cy.say("ada");
    assert_eq!(cy.hear(), "ada has joined the chat.");
}

#[test]
fn eventlets_chat_sends_each_line_to_everyone_else() {
    let server = util::Example::start("eventlet_chat");
    let mut ada = Client::connect(&server.addr);
    server.wait_for("Participant joined chat.");
    let mut bob = Client::connect(&server.addr);
    server.wait_for("Participant joined chat.");
    ada.say("hello");
    assert_eq!(bob.hear(), "hello");
    server.wait_for("Chat: hello");
    bob.say("hi ada");
    assert_eq!(ada.hear(), "hi ada", "ada hears bob, not her own line");
    drop(bob);
    server.wait_for("Participant left chat.");
    let (status, said) = server.interrupt();
    assert!(status.success(), "exited {status}:\n{said}");
    assert!(said.contains("ChatServer exiting."), "{said}");
    assert!(
        ada.closed(),
        "the participants' connections close with the server"
    );
}

#[test]
fn fibra_hertz_ticks_on_its_grid_beside_the_echo_server() {
    let server = util::Example::start_with("hertz", &["--hz", "30", "--seconds", "2"]);
    // Echo traffic on the same thread while it ticks.
    let mut echo = TcpStream::connect(&server.addr).unwrap();
    echo.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut back = [0u8; 64];
    for i in 0..200u32 {
        let msg = format!("ping {i:>8}");
        echo.write_all(msg.as_bytes()).unwrap();
        std::io::Read::read_exact(&mut echo, &mut back[..msg.len()]).unwrap();
        assert_eq!(&back[..msg.len()], msg.as_bytes());
    }
    server.wait_for("ticks in the last second");
    let (status, said) = server.wait_exit();
    assert!(status.success(), "{said}");
    let done = said
        .lines()
        .find_map(|l| {
            l.split_once("hertz: done: ")
                .map(|(_, rest)| rest.to_owned())
        })
        .unwrap_or_else(|| panic!("no summary in {said}"));
    // "<ticks> ticks, <skipped> skipped in ..."
    let words: Vec<&str> = done.split_whitespace().collect();
    let ticks: u64 = words[0].parse().unwrap();
    let skipped: u64 = words[2].parse().unwrap();
    // 2 s of a 30 Hz grid is 60 deadlines: never more ticks than that (none early), and
    // every deadline either ticked or was counted as skipped.
    assert!(ticks <= 61, "{done}");
    assert!(ticks + skipped >= 59, "{done}");
    assert!(done.contains("worst lateness"), "{done}");
}

/// A rate the thread cannot keep up with leaves every tick already due, and a due tick
/// returns without yielding: the tick loop still lets the echo server and the signals
/// tasklet run, so it echoes and Ctrl-C stops it.
#[test]
fn fibra_hertz_above_what_the_thread_can_tick_still_echoes_and_stops_on_ctrl_c() {
    let server = util::Example::start_with("hertz", &["--hz", "1e9"]);
    let mut echo = TcpStream::connect(&server.addr).unwrap();
    echo.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    echo.write_all(b"ping").unwrap();
    let mut back = [0u8; 4];
    std::io::Read::read_exact(&mut echo, &mut back).unwrap();
    assert_eq!(&back, b"ping");
    let (status, said) = server.interrupt();
    assert!(status.success(), "exited {status}:\n{said}");
    assert!(said.contains("SIGINT: stopping"), "{said}");
    assert!(said.contains("hertz: done: "), "{said}");
}
