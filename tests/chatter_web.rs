//! Browsers and telnet members in one room, over real sockets: the web page is served, the
//! WebSocket member follows the same rules (prompt, taken handles, lines in order both ways,
//! `/who`, `/msg`, `/quit`, a lost connection is one leave), and a line said to the room is
//! encoded once per kind of member.

mod chat;
mod util;

use std::io::{Read, Write};
use std::time::Duration;

use chat::{protocol, Config, TestServer};
use util::ws::Client as Browser;

fn browser(web: std::net::SocketAddr) -> Browser {
    Browser::open(web, "/ws")
}

fn login(b: &mut Browser, handle: &str) {
    assert_eq!(b.text(), protocol::PROMPT);
    b.say(handle);
    assert_eq!(b.text(), format!("{handle} has joined the chat."));
}

fn the_page_is_served_whole_and_self_contained(threads: usize) {
    let (server, web) = TestServer::start_on_with_web(threads, Config::default());
    let mut c = std::net::TcpStream::connect(web).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut page = String::new();
    c.read_to_string(&mut page).unwrap();
    assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
    assert!(page.contains("Content-Type: text/html; charset=utf-8"));
    assert!(
        page.contains("new WebSocket"),
        "the page opens its WebSocket"
    );
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no outside URL"
    );
    server.stop();
}

fn browsers_and_telnet_members_share_one_room_under_one_set_of_rules(threads: usize) {
    let (server, web) = TestServer::start_on_with_web(threads, Config::default());
    let mut ada = browser(web);
    login(&mut ada, "ada");
    let mut bob = server.join("bob");
    assert_eq!(ada.text(), "bob has joined the chat.");

    // A taken handle is refused in the browser too, then another is taken.
    let mut cy = browser(web);
    assert_eq!(cy.text(), protocol::PROMPT);
    cy.say("bob");
    assert_eq!(cy.text(), protocol::TAKEN);
    assert_eq!(cy.text(), protocol::PROMPT);
    cy.say("cy");
    assert_eq!(cy.text(), "cy has joined the chat.");
    assert_eq!(ada.text(), "cy has joined the chat.");
    bob.expect("cy has joined the chat.");

    // Lines both ways, in order; a browser's line breaks cannot split a line for telnet.
    for i in 0..5 {
        ada.say(&format!("from ada {i}"));
    }
    bob.send("from bob");
    cy.say("two\nlines");
    let seen_by_bob: Vec<String> = (0..7).map(|_| bob.line()).collect();
    let seen_by_ada: Vec<String> = (0..7).map(|_| ada.text()).collect();
    for seen in [&seen_by_bob, &seen_by_ada] {
        let from_ada: Vec<&String> = seen.iter().filter(|l| l.starts_with("ada says")).collect();
        let want: Vec<String> = (0..5).map(|i| format!("ada says: from ada {i}")).collect();
        assert_eq!(
            from_ada,
            want.iter().collect::<Vec<_>>(),
            "in order: {seen:?}"
        );
        assert!(seen.contains(&"bob says: from bob".to_owned()), "{seen:?}");
        assert!(seen.contains(&"cy says: two lines".to_owned()), "{seen:?}");
    }

    // /who and /msg across kinds.
    ada.say("/who");
    let who = ada.text_where(|l| l.starts_with("Online:"));
    assert_eq!(who, "Online: ada, bob, cy");
    bob.send("/msg ada hello from telnet");
    let whisper = ada.text_where(|l| l.contains("whispers"));
    assert_eq!(whisper, "bob whispers: hello from telnet");

    // /quit from a browser: one leave; a browser that vanishes: one leave.
    cy.say("/quit");
    bob.lines_until("cy has left the chat.");
    drop(ada);
    bob.expect("ada has left the chat.");
    server.wait_for("only bob", |room, _| room.members == 1);
    bob.send("/who");
    bob.expect("Online: bob");
    server.stop();
}

fn the_browsers_line_limit_and_login_deadline_hold(threads: usize) {
    let config = Config {
        max_line: 64,
        login_timeout: Some(Duration::from_millis(200)),
        ..Config::default()
    };
    let (server, web) = TestServer::start_on_with_web(threads, config);
    // Too slow to log in: told, then closed.
    let mut slow = browser(web);
    assert_eq!(slow.text(), protocol::PROMPT);
    assert_eq!(slow.text(), protocol::LOGIN_TIMED_OUT);
    let (opcode, _) = slow.next();
    assert_eq!(opcode, 8, "a close frame");
    // A line over the limit: closed with 1009, nobody else notices.
    let mut big = browser(web);
    login(&mut big, "big");
    big.say(&"x".repeat(100));
    let (opcode, payload) = big.next();
    assert_eq!(opcode, 8);
    assert_eq!(&payload[..2], &1009u16.to_be_bytes());
    server.wait_for("the leave", |room, _| room.members == 0);
    server.stop();
}

/// The stop tells a browser the goodbye, then closes its WebSocket with a close frame (1001,
/// going away), as the telnet members get theirs then a FIN: not a bare end of the stream,
/// which a browser reports as an abnormal closure (1006).
fn the_stop_closes_a_browsers_websocket_with_going_away(threads: usize) {
    let (server, web) = TestServer::start_on_with_web(threads, Config::default());
    let mut ada = browser(web);
    login(&mut ada, "ada");
    // Still logging in: told too.
    let mut bea = browser(web);
    assert_eq!(bea.text(), protocol::PROMPT);
    server.wait_for("both sessions", |room, _| room.sessions == 2);
    server.stop();
    for b in [&mut ada, &mut bea] {
        assert_eq!(b.text(), protocol::SHUTTING_DOWN);
        b.expect_close(1001);
    }
}

chat::on_one_and_two_threads!(
    the_page_is_served_whole_and_self_contained,
    browsers_and_telnet_members_share_one_room_under_one_set_of_rules,
    the_browsers_line_limit_and_login_deadline_hold,
    the_stop_closes_a_browsers_websocket_with_going_away,
);
