//! The chatter with `--idle-members stackless` (the default), over real sockets, and a few
//! of the same rules with `stackful`: telnet and browser
//! members hold no tasklet while silent (each waits in its connection's input watch, the
//! network plugin's count) and follow the same rules: lines in order both ways, `/who`,
//! `/msg`, `/quit`, one leave for every way a connection ends, the line limit, and the stop's
//! goodbye and close (1001 for a browser).

mod chat;
mod util;

use chat::{protocol, Config, TestServer};
use util::ws::Client as Browser;

fn stackless() -> Config {
    Config {
        stackless_members: true,
        ..Config::default()
    }
}

fn stackful() -> Config {
    Config {
        stackless_members: false,
        ..Config::default()
    }
}

fn browser(web: std::net::SocketAddr) -> Browser {
    Browser::open(web, "/ws")
}

fn login(b: &mut Browser, handle: &str) {
    assert_eq!(b.text(), protocol::PROMPT);
    b.say(handle);
    assert_eq!(b.text(), format!("{handle} has joined the chat."));
}

fn silent_members_hold_no_tasklet_and_follow_the_rules(threads: usize) {
    let (server, web) = TestServer::start_on_with_web(threads, stackless());
    let mut ada = browser(web);
    login(&mut ada, "ada");
    let mut bob = server.join("bob");
    assert_eq!(ada.text(), "bob has joined the chat.");
    let mut cy = server.join("cy");
    assert_eq!(ada.text(), "cy has joined the chat.");
    bob.expect("cy has joined the chat.");
    // Three silent members: each in its input watch, no session tasklet.
    server.wait_for("three members in their watches", |room, net| {
        room.members == 3 && net.watching == 3
    });

    for i in 0..5 {
        ada.say(&format!("from ada {i}"));
    }
    bob.send("from bob");
    ada.say("two\nlines");
    let seen_by_cy: Vec<String> = (0..7).map(|_| cy.line()).collect();
    let seen_by_ada: Vec<String> = (0..7).map(|_| ada.text()).collect();
    for seen in [&seen_by_cy, &seen_by_ada] {
        let from_ada: Vec<&String> = seen
            .iter()
            .filter(|l| l.starts_with("ada says: from"))
            .collect();
        let want: Vec<String> = (0..5).map(|i| format!("ada says: from ada {i}")).collect();
        assert_eq!(
            from_ada,
            want.iter().collect::<Vec<_>>(),
            "in order: {seen:?}"
        );
        assert!(seen.contains(&"bob says: from bob".to_owned()), "{seen:?}");
        assert!(seen.contains(&"ada says: two lines".to_owned()), "{seen:?}");
    }
    ada.say("/who");
    let who = ada.text_where(|l| l.starts_with("Online:"));
    assert_eq!(who, "Online: ada, bob, cy");
    bob.send("/msg ada hello from telnet");
    let whisper = ada.text_where(|l| l.contains("whispers"));
    assert_eq!(whisper, "bob whispers: hello from telnet");
    server.wait_for("silent again", |_, net| net.watching == 3);

    // /quit from a telnet member and from a browser: one leave each, connection closed.
    cy.send("/quit");
    cy.expect_end();
    bob.lines_until("cy has left the chat.");
    ada.say("/quit");
    bob.lines_until("ada has left the chat.");
    server.wait_for("only bob", |room, net| {
        room.members == 1 && net.watching == 1
    });
    bob.send("/who");
    bob.expect("Online: bob");
    server.stop();
}

/// EOF, reset, half-close and a vanished browser: each one leave line.
fn a_lost_stackless_member_leaves_exactly_once(threads: usize) {
    a_lost_member_leaves_exactly_once(threads, stackless());
}

/// The same with a tasklet per connection (`--idle-members stackful`).
fn a_lost_stackful_member_leaves_exactly_once(threads: usize) {
    a_lost_member_leaves_exactly_once(threads, stackful());
}

fn a_lost_member_leaves_exactly_once(threads: usize, config: Config) {
    let stackless = config.stackless_members;
    let (server, web) = TestServer::start_on_with_web(threads, config);
    let mut ann = server.join("ann");
    chat::eof_rst_and_half_leave(&server, &mut ann);
    let mut gone = browser(web);
    login(&mut gone, "gone");
    ann.expect("gone has joined the chat.");
    drop(gone);
    ann.expect("gone has left the chat.");
    ann.send("sync");
    assert_eq!(ann.lines_until("ann says: sync"), Vec::<String>::new());
    server.wait_for("every session ended", |room, net| {
        room.sessions == 1
            && room.members == 1
            && net.connections == 1
            && net.watching == usize::from(stackless)
    });
    server.stop();
}

fn the_line_limit_ends_only_that_stackless_member(threads: usize) {
    the_line_limit_ends_only_that_member(threads, stackless());
}

fn the_line_limit_ends_only_that_stackful_member(threads: usize) {
    the_line_limit_ends_only_that_member(threads, stackful());
}

fn the_line_limit_ends_only_that_member(threads: usize, config: Config) {
    let config = Config {
        max_line: 64,
        ..config
    };
    let (server, web) = TestServer::start_on_with_web(threads, config);
    let mut ann = server.join("ann");
    let mut long = server.join("long");
    ann.expect("long has joined the chat.");
    long.send(&"x".repeat(100));
    long.expect("Line too long (the limit is 64 bytes); goodbye.");
    long.expect_end();
    ann.expect("long has left the chat.");
    let mut big = browser(web);
    login(&mut big, "big");
    ann.expect("big has joined the chat.");
    big.say(&"x".repeat(100));
    let (opcode, payload) = big.next();
    assert_eq!(opcode, 8);
    assert_eq!(&payload[..2], &1009u16.to_be_bytes());
    ann.expect("big has left the chat.");
    ann.send("still here");
    ann.expect("ann says: still here");
    server.stop();
}

fn the_stop_tells_silent_members_and_closes_them(threads: usize) {
    let (server, web) = TestServer::start_on_with_web(threads, stackless());
    let mut ada = browser(web);
    login(&mut ada, "ada");
    let mut bob = server.join("bob");
    assert_eq!(ada.text(), "bob has joined the chat.");
    server.wait_for("both silent", |_, net| net.watching == 2);
    server.stop(); // asserts that no socket is left open
    bob.expect(protocol::SHUTTING_DOWN);
    bob.expect_end();
    assert_eq!(ada.text(), protocol::SHUTTING_DOWN);
    ada.expect_close(1001);
}

/// A connection at the prompt holds no tasklet either, and the login deadline still holds:
/// told, then closed (a browser with 1008).
fn a_silent_prompt_holds_no_tasklet_and_times_out(threads: usize) {
    let config = Config {
        login_timeout: Some(std::time::Duration::from_millis(300)),
        ..stackless()
    };
    let (server, web) = TestServer::start_on_with_web(threads, config);
    let mut slow = server.client();
    slow.expect(protocol::PROMPT);
    let mut slow_web = browser(web);
    assert_eq!(slow_web.text(), protocol::PROMPT);
    // One bad handle, then silence: the deadline counts from the connect.
    slow.send("two words");
    slow.expect("A handle cannot contain spaces or control characters.");
    slow.expect(protocol::PROMPT);
    slow.expect(protocol::LOGIN_TIMED_OUT);
    slow.expect_end();
    assert_eq!(slow_web.text(), protocol::LOGIN_TIMED_OUT);
    let (opcode, payload) = slow_web.next();
    assert_eq!(opcode, 8, "a close frame");
    assert_eq!(&payload[..2], &1008u16.to_be_bytes());
    let mut quick = server.client();
    server.wait_for("one at its prompt, in its watch", |room, net| {
        room.sessions == 1 && net.watching == 1
    });
    quick.login("quick");
    server.stop();
}

chat::on_one_and_two_threads!(
    a_silent_prompt_holds_no_tasklet_and_times_out,
    silent_members_hold_no_tasklet_and_follow_the_rules,
    a_lost_stackless_member_leaves_exactly_once,
    a_lost_stackful_member_leaves_exactly_once,
    the_line_limit_ends_only_that_stackless_member,
    the_line_limit_ends_only_that_stackful_member,
    the_stop_tells_silent_members_and_closes_them,
);
