//! The federated chatter under a second hostile review (Redis away, slow, or black-holed;
//! nodes with different flags), each case on a real `redis-server` of its own and real
//! chatter processes. Every wait is bounded.

mod chat;
mod fed;
mod util;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fed::{ann_and_bob, wait_for_value, Ask, Node, Proxy, Redis};

/// A member who left on a node while that node was away from Redis past the TTL: the
/// others were told (the reaper's leave), and the handle is free; another node's member takes
/// it. When the first node is back and publishes the leave it kept, that late leave is about
/// the former holder: it must not make a third node drop the new holder from its room
/// (`"ann has left the chat."` heard, `/who` without ann while ann is there).
#[test]
fn a_late_leave_from_a_node_back_from_away_does_not_remove_the_handles_new_holder() {
    let redis = Redis::start();
    let proxy = Proxy::to(&redis);
    let a = Node::start_at(&proxy.url(), "a", &[]);
    let b = Node::start(&redis, "b", &[]);
    let c = Node::start(&redis, "c", &[]);
    let mut carol = c.join("carol");
    carol
        .stream
        .set_read_timeout(Some(Duration::from_secs(25)))
        .unwrap();
    let ann = a.join("ann");
    carol.lines_until("ann has joined the chat.");
    proxy.cut();
    a.wait_for("lost Redis");
    drop(ann); // ann leaves on a, away: its leave waits in a's outbox
    a.wait_for("ann left");
    // a's claim on ann expires, a is reaped: carol hears ann leave, the handle is free.
    carol.lines_until("ann has left the chat.");
    wait_for_value(
        &redis,
        "chatter:handle:ann",
        "(nil)",
        Duration::from_secs(20),
        "ann's handle was never freed",
    );
    // Another ann, on b.
    let _ann2 = b.join("ann");
    carol.lines_until("ann has joined the chat.");
    proxy.heal();
    a.wait_for("Redis is in reach");
    // A member of a who joins now: its line follows a's outbox in the stream.
    let mut dave = a.join("dave");
    dave.send("marker");
    let before = carol.lines_until("dave says: marker");
    assert!(
        !before.iter().any(|l| l == "ann has left the chat."),
        "carol was told ann (now on b) left, by a's late leave of the former ann: {before:?}"
    );
    carol.send("/who");
    let who = carol.line();
    assert!(
        who.contains("ann"),
        "ann is on b, but c's /who no longer lists her: {who:?}"
    );
}

/// A TCP proxy to a [`Redis`] that can black-hole the network: while `blackhole` is on,
/// every byte either way is read and thrown away (no reset, no close: a partition that drops
/// packets); `heal` ends the connections that lived through it and lets new ones through.
struct Blackhole {
    port: u16,
    dropping: Arc<AtomicBool>,
    live: Arc<Mutex<Vec<TcpStream>>>,
}

impl Blackhole {
    fn to(redis: &Redis) -> Blackhole {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = redis.port();
        let proxy = Blackhole {
            port,
            dropping: Default::default(),
            live: Default::default(),
        };
        let (dropping, live) = (proxy.dropping.clone(), proxy.live.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                if dropping.load(Ordering::SeqCst) {
                    live.lock().unwrap().push(client); // held open, never answered
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let mut l = live.lock().unwrap();
                l.push(client.try_clone().unwrap());
                l.push(server.try_clone().unwrap());
                drop(l);
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let dropping = dropping.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 64 * 1024];
                        loop {
                            match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    if dropping.load(Ordering::SeqCst) {
                                        continue; // black-holed
                                    }
                                    if to.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        proxy
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn blackhole(&self) {
        self.dropping.store(true, Ordering::SeqCst);
    }

    fn heal(&self) {
        for s in self.live.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        self.dropping.store(false, Ordering::SeqCst);
    }
}

/// A member leaves while the network to Redis drops everything: the writer's pipeline with
/// the leave and the handle's release times out. When Redis is back the leave is published
/// again; the release must be too: the handle no longer listed among the node's members (or
/// the node's goodbye, its reaping or a restart under its name says that member left a
/// second time, long after, wherever it is by then).
#[test]
fn a_release_cut_off_by_a_timeout_is_not_forgotten() {
    let redis = Redis::start();
    let proxy = Blackhole::to(&redis);
    let a = Node::start_at(&proxy.url(), "a", &[]);
    let b = Node::start(&redis, "b", &[]);
    let (ann, mut bob) = ann_and_bob(&a, &b);
    assert_eq!(redis.cmd(&["SISMEMBER", "chatter:members:a", "ann"]), ":1");
    proxy.blackhole();
    drop(ann); // the leave and the release go out at once, into the black hole
    a.wait_for("ann left");
    a.wait_for("lost Redis");
    proxy.heal();
    a.wait_for("Redis is in reach");
    bob.stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    bob.lines_until("ann has left the chat.");
    // ann is gone from the room: her handle is free for anyone, at once.
    let mut again = b.client();
    again.expect(chat::protocol::PROMPT);
    again.send("ann");
    let answer = again.line();
    // And a's members in Redis no longer list her (or a's goodbye, its reaping or a restart
    // under its name says she left a second time, long after, wherever she is by then).
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut listed = redis.cmd(&["SISMEMBER", "chatter:members:a", "ann"]);
    while listed != ":0" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        listed = redis.cmd(&["SISMEMBER", "chatter:members:a", "ann"]);
    }
    assert_eq!(
        (answer.as_str(), listed.as_str()),
        ("ann has joined the chat.", ":0"),
        "after ann's leave was heard: her handle refused on b, and/or still listed among a's \
         members in Redis (the release was dropped with the pipeline that timed out)"
    );
}

/// Nodes with different `--max-line` (a rolling change of the flag, or one node for long
/// pastes): lines that node a takes, more of them together than node b's reply limit for
/// its reads allows (64 MiB by default), must not stop b hearing the room: b's reader asked
/// for the same entries again and again, each time failing with "reply too large", b
/// flapping between served-alone and back, republishing its outbox each time. Now b reads
/// them one at a time. And a line longer than every node can read is refused at the start.
#[test]
fn a_line_longer_than_another_nodes_reply_limit_does_not_stop_it_hearing_the_room() {
    let redis = Redis::start();
    // Both let members read long lines (--max-outbound); only a takes them (--max-line).
    let out = ["--max-outbound", "200000000"];
    // a says 105 MB at once: not held up by the rate limit.
    let a = Node::start(
        &redis,
        "a",
        &["--max-line", "16777216", "--max-rate", "0", out[0], out[1]],
    );
    let b = Node::start(&redis, "b", &out);
    let (mut ann, mut bob) = ann_and_bob(&a, &b);
    // b away while the lines go into the stream: its next read finds them all.
    b.pause();
    let mut to_a = ann.stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        // Seven lines of 15 MB: past b's 64 MiB together, even after the first (which may
        // answer the read b had asked before it was paused).
        let mut lines = String::new();
        for _ in 0..7 {
            lines.push_str(&"x".repeat(15_000_000));
            lines.push('\n');
        }
        lines.push_str("after\n");
        to_a.write_all(lines.as_bytes()).unwrap();
    });
    ann.stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    ann.lines_until("ann says: after"); // a itself got both back from the stream
    writer.join().unwrap();
    b.resume();
    bob.stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let heard = loop {
        match bob.try_line() {
            Ok(Some(line)) if line == "ann says: after" => break true,
            Ok(Some(line)) => got.push(line.chars().take(60).collect::<String>()),
            Ok(None) | Err(_) => break false,
        }
        if Instant::now() > deadline {
            break false;
        }
    };
    let log = b.log();
    let tail: Vec<String> = log
        .lines()
        .filter(|l| l.contains("Redis") || l.contains("redis"))
        .map(|l| l.chars().take(200).collect())
        .collect();
    let losses = tail.iter().filter(|l| l.contains("lost Redis")).count();
    let tail = &tail[tail.len().saturating_sub(4)..];
    assert!(
        heard,
        "bob (on b) never heard the line after ann's long one; heard {got:?}; b lost Redis {losses} times; b's log ends: {tail:#?}"
    );
    let long = got
        .iter()
        .filter(|l| l.starts_with("ann says: xxx"))
        .count();
    assert_eq!(long, 7, "bob heard every long line: {got:?}");
    assert!(
        b.log().contains("reading them one at a time"),
        "the read too large was asked again one entry at a time: {tail:#?}"
    );
}

#[test]
fn a_line_limit_past_what_every_node_can_read_is_refused_at_the_start() {
    let redis = Redis::start();
    let out = std::process::Command::new(util::example("chatter"))
        .args(["--addr", "127.0.0.1:0", "--no-web"])
        .args(["--redis", &redis.url(), "--max-line", "16777217"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "refused: {stderr}");
    assert!(
        stderr.contains("--max-line 16777217 with --redis: at most 16777216 bytes"),
        "{stderr}"
    );
}

/// Handles are one whatever their ASCII case across nodes too: `ANN` on b while `ann` is on
/// a is taken (Redis's key is the handle in lower case), and free again once ann leaves.
#[test]
fn a_handle_in_another_case_on_another_node_is_taken() {
    let redis = Redis::start();
    let a = Node::start(&redis, "a", &[]);
    let b = Node::start(&redis, "b", &[]);
    let (mut ann, _bob) = ann_and_bob(&a, &b);
    let mut taken = b.client();
    taken.expect(chat::protocol::PROMPT);
    taken.send("ANN");
    taken.expect(chat::protocol::TAKEN);
    assert_eq!(redis.cmd(&["GET", "chatter:handle:ann"]), "a");
    ann.send("/quit");
    wait_for_value(
        &redis,
        "chatter:handle:ann",
        "(nil)",
        Duration::from_secs(10),
        "ann's release",
    );
    taken.expect(chat::protocol::PROMPT);
    taken.send("ANN");
    taken.expect("ANN has joined the chat.");
    assert_eq!(redis.cmd(&["GET", "chatter:handle:ann"]), "b");
}
