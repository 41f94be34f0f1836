//! A hostile review of the chatter's members without a tasklet: the login deadline holds
//! against a peer that trickles its handle a byte at a time (slowloris), as it does for a
//! stackful login.

mod chat;
mod util;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat::{protocol, Config, TestServer};
use util::ws::Client as Browser;

/// A peer that sends a byte of its handle every third of the login deadline, never ending
/// the line, is told and closed at the deadline: bytes that do not make a line do not buy
/// time.
fn a_trickled_handle_does_not_outlast_the_login_deadline(stackless: bool) {
    const DEADLINE: Duration = Duration::from_millis(300);
    let config = Config {
        login_timeout: Some(DEADLINE),
        stackless_members: stackless,
        ..Config::default()
    };
    let (server, _web) = TestServer::start_on_with_web(1, config);
    let mut slow = server.client();
    slow.expect(protocol::PROMPT);
    let start = Instant::now();
    let writer = slow.stream.try_clone().unwrap();
    let trickling = Arc::new(AtomicBool::new(true));
    let still = trickling.clone();
    let trickle = std::thread::spawn(move || {
        let mut writer = writer;
        // Bounded: thirty bytes over three seconds, ten times the deadline.
        for _ in 0..30 {
            std::thread::sleep(DEADLINE / 3);
            if std::io::Write::write_all(&mut writer, b"a").is_err() {
                break;
            }
        }
        still.store(false, Ordering::SeqCst);
    });
    slow.expect(protocol::LOGIN_TIMED_OUT);
    let (took, cut_while_trickling) = (start.elapsed(), trickling.load(Ordering::SeqCst));
    slow.expect_end();
    trickle.join().unwrap();
    assert!(
        cut_while_trickling,
        "the trickled login outlasted its trickle: cut after {took:?}, the deadline is \
         {DEADLINE:?}"
    );
    server.stop();
}

#[test]
fn a_trickled_handle_does_not_outlast_the_login_deadline_stackless() {
    a_trickled_handle_does_not_outlast_the_login_deadline(true);
}

#[test]
fn a_trickled_handle_does_not_outlast_the_login_deadline_stackful() {
    a_trickled_handle_does_not_outlast_the_login_deadline(false);
}

/// A browser that pings every third of the login deadline, never choosing a handle, is told
/// and closed (1008) at the deadline: control frames do not buy time either.
fn a_pinging_browser_does_not_outlast_the_login_deadline(stackless: bool) {
    const DEADLINE: Duration = Duration::from_millis(300);
    let config = Config {
        login_timeout: Some(DEADLINE),
        stackless_members: stackless,
        ..Config::default()
    };
    let (server, web) = TestServer::start_on_with_web(1, config);
    let mut slow = Browser::open(web, "/ws");
    slow.c
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(slow.text(), protocol::PROMPT);
    let mut pinger = Browser {
        c: slow.c.try_clone().unwrap(),
    };
    let trickling = Arc::new(AtomicBool::new(true));
    let still = trickling.clone();
    let pings = std::thread::spawn(move || {
        // Bounded: thirty pings over three seconds.
        for _ in 0..30 {
            std::thread::sleep(DEADLINE / 3);
            pinger.send(9, b"hi");
        }
        still.store(false, Ordering::SeqCst);
    });
    let text = loop {
        match slow.next() {
            (10, _) => continue, // a pong
            (1, text) => break String::from_utf8(text).unwrap(),
            (opcode, payload) => panic!("unexpected frame {opcode}: {payload:?}"),
        }
    };
    let cut_while_pinging = trickling.load(Ordering::SeqCst);
    assert_eq!(text, protocol::LOGIN_TIMED_OUT);
    pings.join().unwrap();
    assert!(cut_while_pinging, "the pinging login outlasted its pings");
    server.stop();
}

#[test]
fn a_pinging_browser_does_not_outlast_the_login_deadline_stackless() {
    a_pinging_browser_does_not_outlast_the_login_deadline(true);
}

#[test]
fn a_pinging_browser_does_not_outlast_the_login_deadline_stackful() {
    a_pinging_browser_does_not_outlast_the_login_deadline(false);
}
