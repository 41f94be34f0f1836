//! The federated chatter under a hostile review: the cases a first round of tests left out,
//! each on a real `redis-server` of its own and real chatter processes.

mod chat;
mod fed;
mod util;

use std::time::Duration;

use fed::{
    a_cut_off, ann_and_bob, redis_sleeps, said, says, until_no, wait_for_value, Ask, Node, Redis,
};

/// The node that set the epoch first reconnects first to a Redis restarted empty: it must
/// still see the data loss (and publish again what it read back lately), or a node that had
/// not read those lines yet never hears them.
#[test]
fn redis_restarted_empty_is_seen_as_such_by_the_node_that_set_the_epoch() {
    let mut redis = Redis::start();
    let a = Node::start(&redis, "a", &[]); // first: its epoch
    let b = Node::start(&redis, "b", &[]);
    let (mut ann, mut bob) = ann_and_bob(&a, &b);
    // b stands still, past its pending XREAD's block: the next lines are not on their way
    // to it when Redis dies.
    b.pause();
    std::thread::sleep(Duration::from_millis(1500));
    for k in 0..3 {
        ann.send(&format!("while b slept {k}"));
    }
    assert_eq!(says(&mut ann, 3), said("ann", "while b slept ", 3));
    redis.kill();
    redis.restart();
    a.wait_for("Redis is in reach");
    b.resume();
    b.wait_for("Redis is in reach");
    bob.stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let heard = says(&mut bob, 3);
    assert_eq!(heard, said("ann", "while b slept ", 3));
    ann.send("marker");
    until_no(&mut bob, "ann says: marker", &["says:"]);
    assert_eq!(redis.cmd(&["GET", "chatter:handle:bob"]), "b");
}

/// Two machines on the same `--addr 0.0.0.0:PORT` and no `--node` must not share a name
/// (each would take the other's members for a former instance's and make them leave): the
/// default name holds the machine's host name, not the wildcard address.
#[test]
fn the_default_node_name_is_not_a_wildcard_address_shared_by_every_machine() {
    let redis = Redis::start();
    for threads in [None, Some("2")] {
        let mut cmd = std::process::Command::new(util::example("chatter"));
        cmd.args(["--addr", "0.0.0.0:0", "--no-web", "--redis", &redis.url()]);
        if let Some(n) = threads {
            cmd.args(["--threads", n]);
        }
        let mut child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut nodes = String::new();
        while nodes.is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            nodes = redis.cmd(&["HKEYS", "chatter:nodes"]);
        }
        let _ = child.kill(); // our own child, by handle
        let _ = child.wait();
        assert!(!nodes.is_empty(), "the node never registered");
        assert!(
            !nodes.contains("0.0.0.0"),
            "a wildcard address as the node's name: {nodes:?}"
        );
        redis.cmd(&["FLUSHALL"]);
    }
}

/// A member who leaves while its node is away with a full outbox: its leave must still reach
/// the other nodes (else it stays in their `/who` for ever, a ghost).
#[test]
fn a_leave_said_while_the_outbox_is_full_still_reaches_the_others() {
    let redis = Redis::start();
    let (proxy, a, _b, mut ann, mut bob) = a_cut_off(&redis, &["--redis-outbox", "3"], &[]);
    for k in 0..4 {
        ann.send(&format!("{k}"));
    }
    says(&mut ann, 4);
    a.wait_for("outbox full (3 entries)");
    ann.send("/quit");
    drop(ann);
    a.wait_for("ann left");
    proxy.heal();
    a.wait_for("Redis is in reach");
    bob.stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    until_no(&mut bob, "ann has left the chat.", &["ann says: 3"]);
    bob.send("/who");
    bob.expect("Online: bob");
}

/// Two clients of one node ask for the same handle at once: one wins, and the handle stays
/// claimed in Redis for it (the loser's release freed the winner's claim, so another node
/// could take the handle too).
#[test]
fn two_clients_of_one_node_racing_for_a_handle_leave_it_claimed_for_the_winner() {
    let redis = Redis::start();
    let a = Node::start(&redis, "a", &[]);
    let mut first = a.client();
    let mut second = a.client();
    first.expect(chat::protocol::PROMPT);
    second.expect(chat::protocol::PROMPT);
    first.send("ann");
    second.send("ann");
    let (one, two) = (first.line(), second.line());
    let mut won = [&one, &two]
        .iter()
        .filter(|l| l.as_str() == "ann has joined the chat.")
        .count();
    assert_eq!(won, 1, "{one:?} {two:?}");
    // Past a heartbeat: the claim is still the winner's, and another node cannot take it.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(redis.cmd(&["GET", "chatter:handle:ann"]), "a");
    assert_eq!(redis.cmd(&["SISMEMBER", "chatter:members:a", "ann"]), ":1");
    let c = Node::start(&redis, "c", &[]);
    let mut other = c.client();
    other.expect(chat::protocol::PROMPT);
    other.send("ann");
    let answer = other.line();
    won += usize::from(answer == "ann has joined the chat.");
    assert_eq!(won, 1, "the handle was taken twice: {answer:?}");
}

/// A node stopped (SIGSTOP) for 4 s, well within the claim TTL: not declared dead (no
/// leave anywhere), and what was said meanwhile on either side arrives once, in order.
#[test]
fn a_node_paused_for_a_few_seconds_is_not_declared_dead_and_loses_no_line() {
    let redis = Redis::start();
    let a = Node::start(&redis, "a", &[]);
    let b = Node::start(&redis, "b", &[]);
    let (mut ann, mut bob) = ann_and_bob(&a, &b);
    b.pause();
    for k in 0..3 {
        ann.send(&format!("a {k}"));
    }
    std::thread::sleep(Duration::from_secs(4));
    b.resume();
    for k in 0..3 {
        bob.send(&format!("b {k}"));
    }
    let want = [said("ann", "a ", 3), said("bob", "b ", 3)].concat();
    for m in [&mut ann, &mut bob] {
        let mut heard = says(m, 6);
        heard.sort(); // the two senders' lines may interleave; each sender's order kept
        assert_eq!(heard, want, "{}", m.name);
        m.send("/who");
        until_no(m, "Online: ann, bob", &["has left", "says:"]);
    }
    assert!(a.try_wait_for("is gone", Duration::from_secs(1)).is_none());
}

/// Handles with bytes that mean something in keys and fields (`:`, `{`, `}`, `*`, unicode,
/// 32 characters) on two nodes: claimed under their own key, listed by `/who`, reached by
/// `/msg`, and freed when they leave.
#[test]
fn odd_handles_are_keys_of_their_own_and_reach_across_nodes() {
    let redis = Redis::start();
    let a = Node::start(&redis, "a", &[]);
    let b = Node::start(&redis, "b", &[]);
    let odd = "h:{x}*é→🦀";
    let long: String = "ж".repeat(32);
    let mut first = a.join(odd);
    let mut second = b.join(&long);
    first.lines_until(&format!("{long} has joined the chat."));
    assert_eq!(redis.cmd(&["GET", &format!("chatter:handle:{odd}")]), "a");
    assert_eq!(redis.cmd(&["GET", &format!("chatter:handle:{long}")]), "b");
    assert_eq!(redis.cmd(&["GET", "chatter:handle:h"]), "(nil)");
    first.send(&format!("/msg {long} psst"));
    until_no(&mut second, &format!("{odd} whispers: psst"), &["says:"]);
    second.send("/who");
    let mut names = [odd, long.as_str()];
    names.sort_unstable();
    until_no(
        &mut second,
        &format!("Online: {}", names.join(", ")),
        &["says:"],
    );
    // A third client asking for the odd handle on the other node: taken.
    let mut taken = b.client();
    taken.expect(chat::protocol::PROMPT);
    taken.send(odd);
    taken.expect(chat::protocol::TAKEN);
    drop(first);
    until_no(
        &mut second,
        &format!("{odd} has left the chat."),
        &["says:"],
    );
    wait_for_value(
        &redis,
        &format!("chatter:handle:{odd}"),
        "(nil)",
        Duration::from_secs(5),
        "the odd handle was never freed",
    );
}

/// A server on Redis's port that answers every command with an empty array (a broken
/// proxy, a wrong service speaking RESP): the node must not panic on the reply to its
/// hello (it indexed past the end of it), and goes on.
#[test]
fn an_empty_reply_to_the_hello_does_not_panic_the_reader() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            std::thread::spawn(move || {
                let mut buf = [0u8; 64 * 1024];
                let mut at_line_start = true;
                while let Ok(n @ 1..) = stream.read(&mut buf) {
                    // One empty array per command (each begins with `*` at a line start).
                    let mut replies = 0;
                    for &b in &buf[..n] {
                        if at_line_start && b == b'*' {
                            replies += 1;
                        }
                        at_line_start = b == b'\n';
                    }
                    if stream.write_all(&b"*0\r\n".repeat(replies)).is_err() {
                        break;
                    }
                }
            });
        }
    });
    let a = Node::start_at(&format!("redis://127.0.0.1:{port}"), "a", &[]);
    assert!(
        a.try_wait_for("panicked", Duration::from_millis(500))
            .is_none(),
        "{}",
        a.log()
    );
}

/// Entries in the room's stream that no chatter wrote (another tool's, a half-written one,
/// numbers that are not numbers): skipped or taken at their word, never a crash, and the
/// room goes on in order. (A forged leave or join of a real member is taken at its word:
/// a writer with Redis access is trusted.)
#[test]
fn entries_no_chatter_wrote_are_skipped_and_the_room_goes_on() {
    let redis = Redis::start();
    let a = Node::start(&redis, "a", &[]);
    let b = Node::start(&redis, "b", &[]);
    let (mut ann, mut bob) = ann_and_bob(&a, &b);
    for fields in [
        &["foo", "bar"][..],
        &["k", "say"],
        &["k", "dance", "h", "ann"],
        &[
            "k", "say", "n", "x", "i", "y", "s", "-3", "h", "eve", "t", "hi",
        ],
        &[
            "k",
            "say",
            "n",
            "x",
            "i",
            "y",
            "s",
            "18446744073709551616",
            "h",
            "eve",
        ],
        &["k", "msg", "n", "x", "to", "", "t", ""],
        &[
            "k", "", "n", "", "i", "", "s", "", "h", "", "t", "", "to", "",
        ],
    ] {
        let mut cmd = vec!["XADD", "chatter:log", "*"];
        cmd.extend_from_slice(fields);
        redis.cmd(&cmd);
    }
    ann.send("after");
    for m in [&mut ann, &mut bob] {
        until_no(
            m,
            "ann says: after",
            &["has left", "has joined", "ann says:"],
        );
        m.send("/who");
        m.lines_until("Online: ann, bob");
    }
    for node in [&a, &b] {
        assert!(node
            .try_wait_for("panicked", Duration::from_millis(200))
            .is_none());
    }
}

/// A member held back by a full outbox while Redis was slow is served at once when the
/// node finds Redis out of reach (it stayed frozen until Redis came back).
#[test]
fn a_member_paced_by_a_full_outbox_is_served_alone_once_redis_is_lost() {
    let redis = Redis::start_with(&["--enable-debug-command", "yes"]);
    let a = Node::start(&redis, "a", &["--redis-outbox", "3"]);
    let mut ann = a.join("ann");
    // Redis stands still for 6 s: a's calls time out after 1 s and it serves alone.
    let sleeper = redis_sleeps(&redis, 6);
    std::thread::sleep(Duration::from_millis(200));
    for k in 0..5 {
        ann.send(&format!("{k}"));
    }
    a.wait_for("lost Redis");
    // Every line, the ones past the full outbox too, while Redis still sleeps.
    assert_eq!(says(&mut ann, 5), said("ann", "", 5));
    assert!(
        !a.log().contains("Redis is in reach"),
        "the lines past the outbox waited for Redis:\n{}",
        a.log()
    );
    sleeper.join().unwrap();
}

/// Redis refuses writes (`maxmemory` reached, `-OOM`): a line said then is not lost in
/// silence (it was counted written, never came back, and neither its speaker nor anyone
/// else heard it): the node serves alone, and publishes it once Redis takes writes again.
#[test]
fn a_line_redis_refuses_to_store_is_served_here_and_published_later() {
    let redis = Redis::start();
    let a = Node::start(&redis, "a", &[]);
    let b = Node::start(&redis, "b", &[]);
    let (mut ann, mut bob) = ann_and_bob(&a, &b);
    redis.cmd(&["CONFIG", "SET", "maxmemory", "1"]);
    ann.send("refused");
    ann.expect("ann says: refused");
    redis.cmd(&["CONFIG", "SET", "maxmemory", "0"]);
    bob.stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    until_no(&mut bob, "ann says: refused", &["says:"]);
    ann.send("after");
    for m in [&mut ann, &mut bob] {
        until_no(m, "ann says: after", &["says:"]);
    }
}

/// Redis refuses writes (`-OOM`): a login is not told its free handle "is already taken"
/// (a refused claim counted as lost to another node); it is taken here alone and claimed
/// once Redis takes writes again.
#[test]
fn a_claim_redis_refuses_to_store_is_not_told_taken() {
    let redis = Redis::start();
    let a = Node::start(&redis, "a", &[]);
    redis.cmd(&["CONFIG", "SET", "maxmemory", "1"]);
    let mut cat = a.client();
    cat.expect(chat::protocol::PROMPT);
    cat.send("cat");
    cat.expect("cat has joined the chat.");
    redis.cmd(&["CONFIG", "SET", "maxmemory", "0"]);
    wait_for_value(
        &redis,
        "chatter:handle:cat",
        "a",
        Duration::from_secs(10),
        "cat was never claimed",
    );
}

/// A node killed just before Redis restarts empty: the new Redis never heard of it, so no
/// reaper found it and its members stayed in everyone's `/who` for ever. Its leaves must
/// still reach the others once, within the death bound after Redis is back.
#[test]
fn a_node_that_died_while_redis_restarted_empty_still_has_its_members_leave_once() {
    let mut redis = Redis::start();
    let a = Node::start(&redis, "a", &[]);
    let b = Node::start(&redis, "b", &[]);
    let c = Node::start(&redis, "c", &[]);
    let (mut ann, mut bob) = ann_and_bob(&a, &b);
    let _cy = c.join("cy");
    for m in [&mut ann, &mut bob] {
        m.lines_until("cy has joined the chat.");
    }
    c.kill();
    redis.kill();
    redis.restart();
    a.wait_for("Redis is in reach");
    b.wait_for("Redis is in reach");
    for m in [&mut ann, &mut bob] {
        m.stream
            .set_read_timeout(Some(Duration::from_secs(25)))
            .unwrap();
        until_no(m, "cy has left the chat.", &["has left", "has joined"]);
    }
    // Once: past two more heartbeats, nothing more of it.
    std::thread::sleep(Duration::from_secs(5));
    ann.send("/who");
    until_no(&mut ann, "Online: ann, bob", &["has left", "has joined"]);
    ann.send("marker");
    for m in [&mut ann, &mut bob] {
        until_no(m, "ann says: marker", &["has left", "has joined"]);
    }
    let _cy_again = b.join("cy");
}

/// Long lines (`--max-line 2000000`) piled up while a node was paused: 64 of them in one
/// `XREAD` passed the client's 64 MiB reply limit, the read failed, and the next one asked
/// for the same 64 again: the node never heard the room again. Its reads must fit.
#[test]
fn a_node_behind_on_long_lines_catches_up() {
    const LINES: usize = 66;
    const LONG: usize = 1_100_000;
    let redis = Redis::start();
    // 72 MB said at once: not held up by the rate limit.
    let flags = [
        "--max-line",
        "2000000",
        "--max-outbound",
        "200000000",
        "--max-rate",
        "0",
    ];
    let a = Node::start(&redis, "a", &flags);
    let b = Node::start(&redis, "b", &flags);
    let (mut ann, mut bob) = ann_and_bob(&a, &b);
    b.pause();
    std::thread::sleep(Duration::from_millis(1500)); // past b's pending XREAD
    let mut out = ann.stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let line = format!("{}\n", "x".repeat(LONG));
        for _ in 0..LINES {
            out.write_all(line.as_bytes()).unwrap();
        }
    });
    ann.stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    for _ in 0..LINES {
        let line = ann.line();
        assert_eq!(line.len(), "ann says: ".len() + LONG);
    }
    writer.join().unwrap();
    b.resume();
    bob.stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    for k in 0..LINES {
        let line = bob.line();
        assert_eq!(line.len(), "ann says: ".len() + LONG, "line {k}");
    }
    ann.send("marker");
    until_no(&mut bob, "ann says: marker", &["says:"]);
}

/// A client that sends its handle, a line and `/who` in one write, before its join came
/// back from the stream (the join hold): it hears its join first, then its line, in the
/// room's order, and so does the other node.
#[test]
fn lines_sent_during_the_join_hold_follow_the_join_everywhere() {
    let redis = Redis::start();
    let a = Node::start(&redis, "a", &[]);
    let b = Node::start(&redis, "b", &[]);
    let mut bob = b.join("bob");
    let mut ann = a.client();
    ann.expect(chat::protocol::PROMPT);
    ann.name = "ann".into();
    ann.send_raw(b"ann\nhello\n/who\nagain\n");
    ann.expect("ann has joined the chat.");
    let rest: Vec<String> = (0..3).map(|_| ann.line()).collect();
    assert!(rest.contains(&"Online: ann, bob".to_owned()), "{rest:?}");
    let said: Vec<&String> = rest.iter().filter(|l| l.contains(" says: ")).collect();
    assert_eq!(said, ["ann says: hello", "ann says: again"]);
    bob.expect("ann has joined the chat.");
    bob.expect("ann says: hello");
    bob.expect("ann says: again");
}

/// A node away past the TTL is declared gone; what its member said meanwhile comes out when
/// it is back, and the others must hear the member join again before it speaks (they heard
/// lines from someone who had left, then the join).
#[test]
fn a_member_declared_gone_joins_again_before_its_lines_arrive() {
    let redis = Redis::start();
    let (proxy, _a, _b, mut ann, mut bob) = a_cut_off(&redis, &[], &[]);
    ann.send("while away");
    ann.expect("ann says: while away");
    bob.stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    until_no(&mut bob, "ann has left the chat.", &["says:"]);
    proxy.heal();
    let heard = until_no(&mut bob, "ann says: while away", &["has left"]);
    assert!(
        heard.contains(&"ann has joined the chat.".to_owned()),
        "bob heard ann speak before she joined again: {heard:?}"
    );
}

/// Two chatters started under one `--node` name (a copied config): each takes the other's
/// members for a former instance's, and their heartbeats fight over one key. It must at
/// least be said, loudly, in the log.
#[test]
fn two_chatters_under_one_node_name_are_told_so() {
    let redis = Redis::start();
    let first = Node::start(&redis, "x", &[]);
    let second = Node::start(&redis, "x", &[]);
    let said = |n: &Node| {
        n.try_wait_for("another chatter runs as node x", Duration::from_secs(3))
            .is_some()
    };
    assert!(
        said(&first) || said(&second),
        "{}\n{}",
        first.log(),
        second.log()
    );
}

/// A node known to another only from its hello (started later), paused across a Redis
/// restarted empty for longer than the late reaper waits: declared gone, then back: its
/// members must join again (the late reaper's tombstone names its instance, learned from the
/// hello, or the node never knew it had been declared dead).
#[test]
fn a_node_declared_gone_by_the_late_reaper_joins_its_members_again() {
    let mut redis = Redis::start();
    let b = Node::start(&redis, "b", &[]);
    let mut bob = b.join("bob");
    let c = Node::start(&redis, "c", &[]); // knows bob from its hello only
    let mut cy = c.join("cy");
    bob.lines_until("cy has joined the chat.");
    b.pause();
    redis.kill();
    redis.restart();
    c.wait_for("Redis is in reach");
    cy.stream
        .set_read_timeout(Some(Duration::from_secs(25)))
        .unwrap();
    until_no(&mut cy, "bob has left the chat.", &["says:"]);
    b.resume();
    until_no(&mut cy, "bob has joined the chat.", &["says:"]);
    bob.send("back");
    until_no(&mut cy, "bob says: back", &["has left"]);
    cy.send("/who");
    cy.expect("Online: bob, cy");
}

/// The late reaper declares no live node dead: past its wait after Redis restarted empty,
/// every member is still in the room and nobody heard a leave.
#[test]
fn the_late_reaper_spares_the_nodes_that_came_back() {
    let mut redis = Redis::start();
    let a = Node::start(&redis, "a", &[]);
    let b = Node::start(&redis, "b", &[]);
    let (mut ann, mut bob) = ann_and_bob(&a, &b);
    redis.kill();
    redis.restart();
    a.wait_for("Redis is in reach");
    b.wait_for("Redis is in reach");
    std::thread::sleep(Duration::from_secs(16)); // TTL + refresh + a beat, and more
    bob.send("still here");
    for m in [&mut ann, &mut bob] {
        until_no(m, "bob says: still here", &["has left", "has joined"]);
        m.send("/who");
        m.expect("Online: ann, bob");
    }
    assert_eq!(redis.cmd(&["GET", "chatter:handle:ann"]), "a");
}
