//! The federated chatter: two and three chatter processes on one real `redis-server` (each
//! test its own, on a free port) are one room. Telnet and browser members on every node;
//! lines in one order everywhere, `/who` and `/msg` across nodes, a handle raced across
//! nodes, a node killed, Redis restarted empty mid-chat, a slow member cut off, threads.

mod chat;
mod fed;
mod util;

use std::collections::HashSet;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use chat::{protocol, Client};
use fed::{a_cut_off, ann_and_bob, redis_sleeps, said, says, until_no, Ask, Node, Redis};

/// The heartbeat's bound: a dead node's members leave the others within this.
const DEATH_BOUND: Duration = Duration::from_secs(15);

#[test]
fn members_of_three_nodes_hear_every_line_once_in_one_order() {
    let redis = Redis::start();
    let nodes: Vec<Node> = ["a", "b", "c"]
        .iter()
        .map(|n| Node::start(&redis, n, &[]))
        .collect();
    // Two telnet members on each node, a browser on b.
    let mut members: Vec<Client> = Vec::new();
    let mut handles = Vec::new();
    for node in &nodes {
        for j in 0..2 {
            let handle = format!("{}{j}", node.name);
            let c = node.join(&handle);
            // Everyone before hears the newcomer's join.
            for m in &mut members {
                m.lines_until(&format!("{handle} has joined the chat."));
            }
            members.push(c);
            handles.push(handle);
        }
    }
    let mut web = nodes[1].join_web("web");
    for m in &mut members {
        m.lines_until("web has joined the chat.");
    }
    // Everyone speaks at once, from threads.
    const LINES: usize = 30;
    let speakers = members.len();
    let barrier = Arc::new(Barrier::new(speakers));
    let heard: Vec<(String, Vec<String>)> = std::thread::scope(|s| {
        let threads: Vec<_> = members
            .iter_mut()
            .map(|m| {
                let barrier = Arc::clone(&barrier);
                s.spawn(move || {
                    let mut out = m.stream.try_clone().unwrap();
                    barrier.wait();
                    let name = m.name.clone();
                    let writer = std::thread::spawn(move || {
                        use std::io::Write;
                        for k in 0..LINES {
                            out.write_all(format!("{name} line {k}\n").as_bytes())
                                .unwrap();
                        }
                    });
                    let got = says(m, speakers * LINES);
                    writer.join().unwrap();
                    (m.name.clone(), got)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let mut web_heard = Vec::new();
    while web_heard.len() < speakers * LINES {
        let line = web.text();
        if line.contains(" says: ") {
            web_heard.push(line);
        }
    }
    let (first, order) = &heard[0];
    // Exactly once each, each speaker's lines in its order.
    let distinct: HashSet<&String> = order.iter().collect();
    assert_eq!(distinct.len(), order.len(), "{first} heard a line twice");
    for h in &handles {
        let theirs: Vec<&String> = order
            .iter()
            .filter(|l| l.starts_with(&format!("{h} says:")))
            .collect();
        let want: Vec<String> = (0..LINES)
            .map(|k| format!("{h} says: {h} line {k}"))
            .collect();
        assert_eq!(
            theirs,
            want.iter().collect::<Vec<_>>(),
            "{h}'s lines out of order at {first}"
        );
    }
    // One order: the same at every member of every node, the browser too.
    for (name, got) in &heard[1..] {
        assert_eq!(got, order, "{name} heard another order than {first}");
    }
    assert_eq!(&web_heard, order, "the browser on b heard another order");
    drop(nodes);
}

#[test]
fn who_lists_and_msg_reaches_members_of_every_node() {
    let redis = Redis::start();
    let a = Node::start(&redis, "a", &[]);
    let b = Node::start(&redis, "b", &[]);
    let (mut ann, mut bob) = ann_and_bob(&a, &b);
    let mut web = b.join_web("cy");
    ann.lines_until("cy has joined the chat.");
    bob.lines_until("cy has joined the chat.");
    for c in [&mut ann, &mut bob] {
        c.send("/who");
        c.expect("Online: ann, bob, cy");
    }
    web.say("/who");
    assert_eq!(web.text(), "Online: ann, bob, cy");
    // A node that starts later learns who is there.
    let c = Node::start(&redis, "c", &[]);
    let mut dan = c.join("dan");
    dan.send("/who");
    dan.expect("Online: ann, bob, cy, dan");
    ann.lines_until("dan has joined the chat.");
    bob.lines_until("dan has joined the chat.");
    assert_eq!(web.text(), "dan has joined the chat.");
    // Whispers cross nodes, to one member only.
    ann.send("/msg bob psst");
    bob.expect("ann whispers: psst");
    bob.send("/msg cy hello browser");
    assert_eq!(web.text(), "bob whispers: hello browser");
    web.say("/msg dan from the web");
    dan.lines_until("cy whispers: from the web");
    ann.send("/msg zed anyone?");
    ann.expect("No such handle: zed");
    // The others heard none of it: their next line is the next line said.
    dan.send("done");
    for c in [&mut ann, &mut bob] {
        until_no(c, "dan says: done", &["whispers"]);
    }
    assert_eq!(web.text(), "dan says: done");
}

#[test]
fn clients_racing_for_one_handle_on_two_nodes_exactly_one_wins() {
    let redis = Redis::start();
    let a = Node::start(&redis, "a", &[]);
    let b = Node::start(&redis, "b", &[]);
    const RACES: usize = 20;
    for race in 0..RACES {
        let handle = format!("x{race}");
        let barrier = Arc::new(Barrier::new(2));
        let outcomes: Vec<String> = std::thread::scope(|s| {
            let racers: Vec<_> = [a.addr, b.addr]
                .into_iter()
                .map(|addr| {
                    let (barrier, handle) = (Arc::clone(&barrier), handle.clone());
                    s.spawn(move || {
                        let mut c = Client::connect(addr);
                        c.expect(protocol::PROMPT);
                        barrier.wait();
                        c.send(&handle);
                        let answer = c.line();
                        (answer, c)
                    })
                })
                .collect();
            let results: Vec<(String, Client)> =
                racers.into_iter().map(|t| t.join().unwrap()).collect();
            results.into_iter().map(|(answer, _)| answer).collect()
        });
        let won = outcomes
            .iter()
            .filter(|o| **o == format!("{handle} has joined the chat."))
            .count();
        let lost = outcomes.iter().filter(|o| *o == protocol::TAKEN).count();
        assert_eq!((won, lost), (1, 1), "race {race}: {outcomes:?}");
    }
}

#[test]
fn a_killed_nodes_members_leave_the_others_once_within_the_bound() {
    let redis = Redis::start();
    let a = Node::start(&redis, "a", &[]);
    let b = Node::start(&redis, "b", &[]);
    let c = Node::start(&redis, "c", &[]);
    let mut ann = a.join("ann");
    let mut cy = c.join("cy");
    ann.lines_until("cy has joined the chat.");
    let _bob = b.join("bob");
    let _web = b.join_web("bea");
    for m in [&mut ann, &mut cy] {
        m.lines_until("bea has joined the chat.");
    }
    // A pause shorter than the claims' TTL is no death.
    b.pause();
    std::thread::sleep(Duration::from_secs(5));
    b.resume();
    ann.send("after the pause");
    until_no(&mut cy, "ann says: after the pause", &["has left"]);
    until_no(&mut ann, "ann says: after the pause", &["has left"]);

    let killed = Instant::now();
    b.kill();
    for m in [&mut ann, &mut cy] {
        // The bound, not the usual 10 s, for a line.
        m.stream.set_read_timeout(Some(DEATH_BOUND)).unwrap();
        let mut left = HashSet::new();
        while left.len() < 2 {
            let line = m.line();
            if let Some(who) = line.strip_suffix(" has left the chat.") {
                assert!(left.insert(who.to_owned()), "{}: {who} left twice", m.name);
            }
        }
        assert_eq!(left, HashSet::from(["bob".to_owned(), "bea".to_owned()]));
    }
    let took = killed.elapsed();
    assert!(took < DEATH_BOUND, "the leaves took {took:?}");
    // Once: two more heartbeats (every surviving node tries to reap each time), then a
    // marker; nothing more of b's members before it.
    std::thread::sleep(Duration::from_secs(5));
    cy.send("/who");
    cy.expect("Online: ann, cy");
    cy.send("marker");
    for m in [&mut ann, &mut cy] {
        until_no(m, "cy says: marker", &["has left", "has joined"]);
    }
    // Their handles are free again.
    let _bob_again = a.join("bob");
    let reapers = [&a, &c]
        .iter()
        .filter(|n| {
            n.try_wait_for("node b is gone", Duration::from_secs(1))
                .is_some()
        })
        .count();
    assert_eq!(
        reapers,
        1,
        "exactly one node reaps b:\n{}\n{}",
        a.log(),
        c.log()
    );
}

#[test]
fn redis_restarted_empty_mid_chat_loses_and_repeats_no_line_and_keeps_each_senders_order() {
    let mut redis = Redis::start();
    let a = Node::start(&redis, "a", &[]);
    let b = Node::start(&redis, "b", &[]);
    let (mut ann, mut bob) = ann_and_bob(&a, &b);
    ann.send("before");
    bob.lines_until("ann says: before");
    ann.lines_until("ann says: before");

    redis.kill();
    // Each node serves its own members at once, and says so.
    a.wait_for("lost Redis");
    b.wait_for("lost Redis");
    for k in 0..5 {
        ann.send(&format!("ann away {k}"));
        bob.send(&format!("bob away {k}"));
    }
    for k in 0..5 {
        ann.expect(&format!("ann says: ann away {k}"));
        bob.expect(&format!("bob says: bob away {k}"));
    }
    redis.restart();
    a.wait_for("Redis is in reach");
    b.wait_for("Redis is in reach");
    // The other node's lines arrive once, in their order; nothing said here comes twice.
    let at_ann = says(&mut ann, 5);
    let at_bob = says(&mut bob, 5);
    assert_eq!(at_ann, said("bob", "bob away ", 5));
    assert_eq!(at_bob, said("ann", "ann away ", 5));
    // And the room goes on: lines, `/who`, claims back in the new Redis.
    bob.send("after");
    for m in [&mut ann, &mut bob] {
        until_no(m, "bob says: after", &["says:", "has left", "has joined"]);
    }
    ann.send("/who");
    ann.expect("Online: ann, bob");
    let mut taken = b.client();
    taken.expect(protocol::PROMPT);
    taken.send("ann");
    taken.expect(protocol::TAKEN);
    assert_eq!(redis.cmd(&["GET", "chatter:handle:ann"]), "a");
    assert_eq!(redis.cmd(&["SISMEMBER", "chatter:members:b", "bob"]), ":1");
}

#[test]
fn a_slow_member_on_one_node_is_cut_off_without_holding_up_the_others() {
    let redis = Redis::start();
    let a = Node::start(&redis, "a", &[]);
    // bob fills slow's cap: not held up by the rate limit (a quarter of a minute).
    let b = Node::start(&redis, "b", &["--max-rate", "0"]);
    let (mut ann, mut bob) = ann_and_bob(&a, &b);
    // A tiny receive window, so the kernel holds little for it and a's cap decides.
    let slow = {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.set_recv_buffer_size(4096).unwrap();
        s.connect(&a.addr.into()).unwrap();
        let mut c = Client::from_stream(s.into());
        c.login("slow");
        c
    };
    ann.lines_until("slow has joined the chat.");
    bob.lines_until("slow has joined the chat.");
    // bob talks (8 KB lines); ann on slow's node and bob hear each line before the next is
    // said, all along; slow reads nothing, and is cut off.
    let text = "b".repeat(8000);
    let mut cut = [false, false];
    let mut said = 0;
    while cut != [true, true] {
        assert!(
            said < 2000,
            "slow was never cut off after {said} lines of 8 KB"
        );
        bob.send(&format!("{said} {text}"));
        let want = format!("bob says: {said} {text}");
        for (i, m) in [&mut ann, &mut bob].into_iter().enumerate() {
            loop {
                let line = m.line();
                if line == "slow has left the chat." {
                    assert!(!cut[i], "{}: slow left twice", m.name);
                    cut[i] = true;
                } else {
                    assert_eq!(line, want, "{}: a line lost or out of order", m.name);
                    break;
                }
            }
        }
        said += 1;
    }
    // The cap (1 MiB) decided, not less.
    assert!(said * 8000 > 1024 * 1024, "cut off after only {said} lines");
    ann.send("/who");
    ann.expect("Online: ann, bob");
    drop(slow);
}

#[test]
fn threads_and_redis_together_make_one_room() {
    let redis = Redis::start();
    let a = Node::start(&redis, "a", &["--threads", "2"]);
    let b = Node::start(&redis, "b", &[]);
    // Four on a (spread over its two threads by load), one on b.
    let mut members: Vec<Client> = Vec::new();
    for (node, handle) in [(&a, "a0"), (&a, "a1"), (&a, "a2"), (&a, "a3"), (&b, "b0")] {
        let c = node.join(handle);
        for m in &mut members {
            m.lines_until(&format!("{handle} has joined the chat."));
        }
        members.push(c);
    }
    members[4].send("/who");
    members[4].expect("Online: a0, a1, a2, a3, b0");
    members[0].send("/msg a1 same node, maybe another thread");
    members[1].expect("a0 whispers: same node, maybe another thread");
    for (i, m) in members.iter_mut().enumerate() {
        m.send(&format!("from {i}"));
    }
    let orders: Vec<Vec<String>> = members.iter_mut().map(|m| says(m, 5)).collect();
    for order in &orders[1..] {
        assert_eq!(order, &orders[0]);
    }
    // A handle is unique across the threads and the nodes.
    let mut taken = b.client();
    taken.expect(protocol::PROMPT);
    taken.send("a2");
    taken.expect(protocol::TAKEN);
}

#[test]
fn a_node_cut_off_from_redis_serves_alone_then_catches_up_once_in_order() {
    let redis = Redis::start();
    let proxy = fed::Proxy::to(&redis);
    let a = Node::start_at(&proxy.url(), "a", &[]);
    let b = Node::start(&redis, "b", &[]);
    let mut ann = a.join("ann");
    let mut amy = a.join("amy");
    ann.lines_until("amy has joined the chat.");
    let mut bob = b.join("bob");
    for m in [&mut ann, &mut amy] {
        m.lines_until("bob has joined the chat.");
    }
    proxy.cut();
    a.wait_for("lost Redis");
    // a's members hear each other at once; b goes on in Redis meanwhile.
    for k in 0..5 {
        ann.send(&format!("ann away {k}"));
        bob.send(&format!("bob here {k}"));
    }
    for m in [&mut ann, &mut amy] {
        let heard = says(m, 5);
        assert_eq!(heard, said("ann", "ann away ", 5), "{}", m.name);
    }
    assert_eq!(says(&mut bob, 5), said("bob", "bob here ", 5));
    proxy.heal();
    a.wait_for("Redis is in reach");
    // a backfills what b said; b gets what a's members said; each once, in its order.
    for m in [&mut ann, &mut amy] {
        assert_eq!(says(m, 5), said("bob", "bob here ", 5), "{}", m.name);
    }
    assert_eq!(says(&mut bob, 5), said("ann", "ann away ", 5));
    amy.send("together again");
    for m in [&mut ann, &mut amy, &mut bob] {
        until_no(
            m,
            "amy says: together again",
            &["says:", "has left", "has joined"],
        );
    }
}

/// Ctrl-C on b (with `b_args`): its members' leaves reach a's at once, its handles are free.
fn ctrl_c_says_the_leaves_at_once(b_args: &[&str]) {
    let redis = Redis::start();
    let a = Node::start(&redis, "a", &[]);
    let b = Node::start(&redis, "b", b_args);
    let (mut ann, mut bob) = ann_and_bob(&a, &b);
    let mut bea = b.join("bea");
    ann.lines_until("bea has joined the chat.");
    assert!(b.interrupt(), "b {b_args:?} did not stop cleanly");
    bob.lines_until(protocol::SHUTTING_DOWN);
    bea.lines_until(protocol::SHUTTING_DOWN);
    // Well before the heartbeat's TTL would.
    ann.stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut left = HashSet::new();
    while left.len() < 2 {
        if let Some(who) = ann.line().strip_suffix(" has left the chat.") {
            assert!(left.insert(who.to_owned()), "{who} left twice");
        }
    }
    ann.send("/who");
    ann.expect("Online: ann");
    assert_eq!(redis.cmd(&["GET", "chatter:handle:bob"]), "(nil)");
    assert_eq!(redis.cmd(&["GET", "chatter:handle:bea"]), "(nil)");
}

#[test]
fn a_node_stopped_by_ctrl_c_says_its_members_leaves_at_once() {
    ctrl_c_says_the_leaves_at_once(&[]);
}

#[test]
fn a_node_on_two_threads_stopped_by_ctrl_c_says_its_members_leaves_at_once() {
    ctrl_c_says_the_leaves_at_once(&["--threads", "2"]);
}

#[test]
fn a_node_restarted_under_its_name_clears_what_it_left_at_once() {
    let redis = Redis::start();
    let a = Node::start(&redis, "a", &[]);
    let b = Node::start(&redis, "b", &[]);
    let mut ann = a.join("ann");
    let _bob = b.join("bob");
    ann.lines_until("bob has joined the chat.");
    b.kill();
    let b = Node::start(&redis, "b", &[]);
    // Its former members leave at its hello, well before the heartbeat's TTL would.
    ann.stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    until_no(&mut ann, "bob has left the chat.", &["has left"]);
    let _bob = b.join("bob");
    ann.lines_until("bob has joined the chat.");
}

#[test]
fn a_node_away_past_the_ttl_is_declared_gone_then_its_members_join_again() {
    let redis = Redis::start();
    let (proxy, a, _b, mut ann, mut bob) = a_cut_off(&redis, &[], &[]);
    // b's reaper declares a dead once its heartbeat key expired.
    bob.stream.set_read_timeout(Some(DEATH_BOUND)).unwrap();
    until_no(&mut bob, "ann has left the chat.", &["has left"]);
    bob.send("/who");
    bob.expect("Online: bob");
    proxy.heal();
    a.wait_for("its 1 members join again");
    until_no(&mut bob, "ann has joined the chat.", &["has left"]);
    bob.send("/who");
    bob.expect("Online: ann, bob");
    // ann was served all along, and is in the room again.
    ann.send("back");
    until_no(&mut bob, "ann says: back", &["has left"]);
    assert_eq!(redis.cmd(&["GET", "chatter:handle:ann"]), "a");
}

#[test]
fn a_node_away_longer_than_the_history_says_what_it_missed_and_goes_on_in_order() {
    let redis = Redis::start();
    let proxy = fed::Proxy::to(&redis);
    let history = ["--redis-history", "10"];
    let a = Node::start_at(&proxy.url(), "a", &history);
    let b = Node::start(&redis, "b", &history);
    let (mut ann, mut bob) = ann_and_bob(&a, &b);
    proxy.cut();
    a.wait_for("lost Redis");
    // Far more than the history keeps (`MAXLEN ~` trims whole blocks of 100 entries), each
    // line heard back by bob before the next.
    const LINES: usize = 400;
    for k in 0..LINES {
        bob.send(&format!("{k}"));
        bob.expect(&format!("bob says: {k}"));
    }
    assert!(
        redis
            .cmd(&["XLEN", "chatter:log"])
            .trim_start_matches(':')
            .parse::<usize>()
            .unwrap()
            < LINES
    );
    proxy.heal();
    a.wait_for("were trimmed (--redis-history) and are lost here");
    // What is left of the history arrives in order, up to the last line.
    let mut last = None;
    loop {
        let line = ann.line();
        let Some(k) = line.strip_prefix("bob says: ") else {
            continue;
        };
        let k: usize = k.parse().unwrap();
        assert!(last.is_none_or(|l| k == l + 1), "ann: {k} after {last:?}");
        last = Some(k);
        if k == LINES - 1 {
            break;
        }
    }
}

#[test]
fn a_handle_taken_on_two_nodes_while_one_was_away_stays_with_the_node_that_had_redis() {
    let redis = Redis::start();
    let (proxy, a, b, mut ann, mut bob) = a_cut_off(&redis, &[], &[]);
    // While a is away, "zed" is taken on a (only a knows) and on b (in Redis).
    let mut zed_a = a.join("zed");
    ann.lines_until("zed has joined the chat.");
    zed_a.send("said while away");
    ann.lines_until("zed says: said while away");
    let mut zed_b = b.join("zed");
    bob.lines_until("zed has joined the chat.");
    proxy.heal();
    // a's zed is told and let go; what it said stays on a; b's zed stays, for everyone.
    zed_a.lines_until(
        "That handle was taken on another server while this one was away from the room; goodbye.",
    );
    zed_a.expect_end();
    ann.lines_until("zed has left the chat.");
    ann.send("/who");
    let who = loop {
        let line = ann.line();
        if line.starts_with("Online: ") {
            break line;
        }
    };
    assert_eq!(who, "Online: ann, bob, zed");
    zed_b.send("still here");
    ann.lines_until("zed says: still here");
    until_no(
        &mut bob,
        "zed says: still here",
        &["said while away", "zed has left"],
    );
    assert_eq!(redis.cmd(&["GET", "chatter:handle:zed"]), "b");
}

#[test]
fn redis_paused_for_a_moment_loses_and_repeats_no_line() {
    let redis = Redis::start_with(&["--enable-debug-command", "yes"]);
    let a = Node::start(&redis, "a", &[]);
    let b = Node::start(&redis, "b", &[]);
    let (mut ann, mut bob) = ann_and_bob(&a, &b);
    // Redis stands still for 3 s: the nodes' calls time out, each serves its own alone.
    let sleeper = redis_sleeps(&redis, 3);
    std::thread::sleep(Duration::from_millis(200));
    for k in 0..3 {
        ann.send(&format!("ann {k}"));
        bob.send(&format!("bob {k}"));
    }
    a.wait_for("lost Redis");
    b.wait_for("lost Redis");
    sleeper.join().unwrap();
    a.wait_for("Redis is in reach");
    b.wait_for("Redis is in reach");
    // Each hears its own side's lines, then the other's, each once and in order.
    let want = |who: &str| said(who, &format!("{who} "), 3);
    for (m, mine, theirs) in [(&mut ann, "ann", "bob"), (&mut bob, "bob", "ann")] {
        let heard = says(m, 6);
        let (own, other): (Vec<String>, Vec<String>) =
            heard.into_iter().partition(|l| l.starts_with(mine));
        assert_eq!((own, other), (want(mine), want(theirs)), "{}", m.name);
    }
    ann.send("marker");
    for m in [&mut ann, &mut bob] {
        until_no(m, "ann says: marker", &["says:"]);
    }
}

#[test]
fn a_node_away_keeps_what_its_outbox_holds_and_says_what_it_could_not() {
    let redis = Redis::start();
    let (proxy, a, _b, mut ann, mut bob) = a_cut_off(&redis, &["--redis-outbox", "5"], &[]);
    // Eight lines, all heard on a at once; the outbox keeps the first five for the others.
    for k in 0..8 {
        ann.send(&format!("{k}"));
    }
    assert_eq!(says(&mut ann, 8), said("ann", "", 8));
    a.wait_for("outbox full (5 entries) while Redis is out of reach");
    proxy.heal();
    a.wait_for("Redis is in reach");
    ann.send("marker");
    let heard = until_no(
        &mut bob,
        "ann says: marker",
        &["ann says: 5", "ann says: 6", "ann says: 7"],
    );
    let heard: Vec<&String> = heard.iter().filter(|l| l.contains(" says: ")).collect();
    assert_eq!(heard, said("ann", "", 5).iter().collect::<Vec<_>>());
}
