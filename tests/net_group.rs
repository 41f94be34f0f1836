//! `Group` over real sockets on 127.0.0.1: order with direct sends, membership at the batch
//! boundary, the bytes stored once, slow members (cut off or skipped), a member lost
//! mid-batch, `close_all`, and 10,000 members.

mod util;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::rc::Rc;
use std::time::Duration;

use fibra::net::{Conn, Group, GroupOptions, Listener, Lost, NetError, NetExt, SlowPolicy};
use fibra::rt::Handle;
use fibra::tasks::TasksExt;
use util::{net_schedule, net_stats, run_all};

/// `n` connected pairs on `listener`: (the server's end, the client's end).
fn pairs(h: &Handle, listener: &Listener, n: usize) -> Vec<(Conn, Conn)> {
    (0..n)
        .map(|_| {
            let client = h.connect(listener.local_addr()).unwrap();
            let (server, _) = h.accept(listener).unwrap();
            (server, client)
        })
        .collect()
}

/// `n` connected pairs on a new listener.
fn connected(h: &Handle, n: usize) -> Vec<(Conn, Conn)> {
    let listener = h.listen("127.0.0.1:0").unwrap();
    pairs(h, &listener, n)
}

/// Sends 1 KiB lines to `room`, 64 a round, until `done` says so (at most 40,000 lines);
/// returns how many were sent.
fn flood(h: &Handle, room: &Group, line: &[u8], done: impl Fn(&Group) -> bool) -> u64 {
    let mut sent = 0;
    while !done(room) && sent < 40_000 {
        for _ in 0..64 {
            room.send_frame(line).unwrap();
            sent += 1;
        }
        h.yield_now();
    }
    sent
}

/// A room of two new members: `slow` (send limit 32 KiB) and `fast` (64 MiB); returns
/// (the room, slow, fast, fast's client, slow's client).
fn slow_and_fast(h: &Handle) -> (Group, Conn, Conn, Conn, Conn) {
    let mut ends = connected(h, 2);
    let (slow, slow_client) = ends.pop().unwrap();
    let (fast, fast_client) = ends.pop().unwrap();
    slow.set_send_limit(32 * 1024);
    fast.set_send_limit(64 * 1024 * 1024);
    let room = Group::new();
    room.add(&slow).unwrap();
    room.add(&fast).unwrap();
    (room, slow, fast, fast_client, slow_client)
}

/// A tasklet that receives on `client` until an `end` frame; its result is how many frames
/// came before it.
fn count_until_end(h: &Handle, client: Conn) -> fibra::tasks::JoinHandle<u64> {
    h.spawn(move |h| {
        let mut lines = 0u64;
        while let Ok(line) = h.receive(&client) {
            if line == b"end" {
                break;
            }
            lines += 1;
        }
        lines
    })
    .unwrap()
}

fn text(h: &Handle, conn: &Conn) -> String {
    String::from_utf8(h.receive(conn).unwrap()).unwrap()
}

/// Runs `scenario` as a tasklet on a network schedule to its end, and fails the test if it
/// panicked (its assertions) or did not end within 20 s.
fn scenario(f: impl FnOnce(&Handle) + 'static) {
    let mut s = net_schedule();
    let failed = Rc::new(RefCell::new(None));
    let out = failed.clone();
    s.spawn_named("scenario", move |h| {
        if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(h))) {
            let message = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
            *out.borrow_mut() = Some(message.unwrap_or_else(|| "a kill".into()));
        }
    })
    .unwrap();
    run_all(&mut s, 20);
    if let Some(message) = failed.borrow_mut().take() {
        panic!("the scenario failed: {message}");
    }
    assert_eq!(net_stats(&s).sockets, 0, "every socket closed");
    assert_eq!(net_stats(&s).groups, 0, "every group gone");
}

#[test]
fn a_member_sees_group_and_direct_sends_in_the_order_they_were_made() {
    scenario(|h| {
        let mut ends = connected(h, 2);
        let (b, b_client) = ends.pop().unwrap();
        let (a, a_client) = ends.pop().unwrap();
        let room = Group::new();
        assert!(room.add(&a).unwrap());
        assert!(room.add(&b).unwrap());
        assert!(!room.add(&a).unwrap(), "a member is added once");
        // One round: group, direct, group, direct.
        room.send_frame(b"one").unwrap();
        a.try_send_frame(b"to a").unwrap();
        room.send_frame(b"two").unwrap();
        h.send_frame(&b, b"to b").unwrap();
        room.send_with(|out| out.extend_from_slice(b"three\n"));
        for expected in ["one", "to a", "two", "three"] {
            assert_eq!(text(h, &a_client), expected);
        }
        for expected in ["one", "two", "to b", "three"] {
            assert_eq!(text(h, &b_client), expected);
        }
        // Each batch was stored once: "one" (sealed by the send to a), "two" (sealed by the
        // send to b), "three" (sealed at the end of the round).
        let stats = room.stats();
        assert_eq!((stats.batches, stats.bytes), (3, 14), "{stats:?}");
        assert_eq!(stats.deliveries, 6, "{stats:?}");
    });
}

#[test]
fn membership_is_exact_at_the_batch_boundary() {
    scenario(|h| {
        let mut ends = connected(h, 3);
        let (c, c_client) = ends.pop().unwrap();
        let (b, b_client) = ends.pop().unwrap();
        let (a, a_client) = ends.pop().unwrap();
        let room = Group::new();
        room.add(&a).unwrap();
        room.add(&b).unwrap();
        // All in one round: a join and a leave cut the batch.
        room.send_frame(b"before c").unwrap();
        room.add(&c).unwrap();
        room.send_frame(b"with c").unwrap();
        assert!(room.remove(&a));
        assert!(!room.remove(&a), "removed once");
        room.send_frame(b"without a").unwrap();
        assert_eq!(room.len(), 2);
        assert!(room.contains(&b) && room.contains(&c) && !room.contains(&a));
        let mut members: Vec<_> = room.members().iter().map(Conn::id).collect();
        members.sort();
        let mut want = vec![b.id(), c.id()];
        want.sort();
        assert_eq!(members, want);
        a.try_send_frame(b"end").unwrap();
        for expected in ["before c", "with c", "end"] {
            assert_eq!(text(h, &a_client), expected);
        }
        for expected in ["before c", "with c", "without a"] {
            assert_eq!(text(h, &b_client), expected);
        }
        for expected in ["with c", "without a"] {
            assert_eq!(text(h, &c_client), expected);
        }
        drop(room);
        // The group is gone; its members are not.
        b.try_send_frame(b"still here").unwrap();
        assert_eq!(text(h, &b_client), "still here");
    });
}

#[test]
fn a_round_of_lines_to_many_members_is_stored_once_and_written_once_per_member() {
    let mut s = net_schedule();
    let stats = Rc::new(RefCell::new(None));
    let out = stats.clone();
    s.spawn(move |h| {
        let ends = connected(h, 50);
        let room = Group::new();
        for (server, _) in &ends {
            room.add(server).unwrap();
        }
        for i in 0..20 {
            room.send_frame(format!("line {i}").as_bytes()).unwrap();
        }
        for (_, client) in &ends {
            for i in 0..20 {
                assert_eq!(text(h, client), format!("line {i}"));
            }
        }
        *out.borrow_mut() = Some(room.stats());
    })
    .unwrap();
    run_all(&mut s, 20);
    let stats = stats.borrow().expect("the scenario ran to its end");
    assert_eq!((stats.batches, stats.deliveries), (1, 50), "{stats:?}");
    let line_bytes: u64 = (0..20).map(|i| format!("line {i}\n").len() as u64).sum();
    assert_eq!(stats.bytes, line_bytes, "the 20 lines are stored once");
    // Nothing else is written on these connections: the clients only read.
    assert_eq!(
        net_stats(&s).writes,
        50,
        "one gathering write per member for the round's 20 lines"
    );
}

#[test]
fn a_member_that_does_not_read_is_cut_off_and_told_once() {
    scenario(|h| {
        let (room, slow, _fast, fast_client, _slow_client) = slow_and_fast(h);
        // The slow member's tasklet waits for its loss, and another receives on it.
        let watched = slow.clone();
        let watcher = h.spawn(move |h| h.on_lost_connection(&watched)).unwrap();
        let received = slow.clone();
        let receiver = h.spawn(move |h| h.receive(&received).map(|_| ())).unwrap();
        // The fast member's client reads everything, in its own tasklet.
        let reader = count_until_end(h, fast_client);
        let line = vec![b'x'; 1023];
        let sent = flood(h, &room, &line, |room| room.stats().cut_off > 0);
        assert_eq!(room.stats().cut_off, 1, "cut off after {sent} lines");
        assert_eq!(h.join(watcher).unwrap(), Lost::Slow { limit: 32 * 1024 });
        assert!(matches!(
            h.join(receiver).unwrap(),
            Err(NetError::Lost(Lost::Slow { .. }))
        ));
        assert_eq!(slow.lost(), Some(Lost::Slow { limit: 32 * 1024 }));
        assert_eq!(room.len(), 1);
        assert!(!room.contains(&slow));
        room.send_frame(b"end").unwrap();
        assert_eq!(
            h.join(reader).unwrap(),
            sent,
            "the fast member got every line"
        );
    });
}

#[test]
fn with_the_drop_policy_a_slow_member_misses_batches_and_stays() {
    scenario(|h| {
        let mut ends = connected(h, 1);
        let (slow, slow_client) = ends.pop().unwrap();
        slow.set_send_limit(32 * 1024);
        let room = Group::with_options(GroupOptions::new().with_slow_policy(SlowPolicy::Drop));
        room.add(&slow).unwrap();
        let line = vec![b'x'; 1023];
        flood(h, &room, &line, |room| room.stats().dropped > 0);
        assert!(room.stats().dropped > 0, "{:?}", room.stats());
        assert!(room.contains(&slow), "still a member");
        assert_eq!(slow.lost(), None);
        // Now it reads until the server has written all it queued for it...
        let mut lines = 0;
        while slow.queued() > 0 {
            assert_eq!(h.receive(&slow_client).unwrap(), line, "whole lines only");
            lines += 1;
        }
        assert!(lines > 0);
        // ...and a later batch reaches it, after the rest of what it was sent.
        room.send_frame(b"marker").unwrap();
        loop {
            let got = h.receive(&slow_client).unwrap();
            if got == b"marker" {
                break;
            }
            assert_eq!(got, line, "whole lines only");
        }
        assert!(room.contains(&slow));
    });
}

#[test]
fn a_member_lost_mid_batch_leaves_and_the_others_get_the_batch() {
    scenario(|h| {
        let mut ends = connected(h, 3);
        let (c, c_client) = ends.pop().unwrap();
        let (b, b_client) = ends.pop().unwrap();
        let (a, a_client) = ends.pop().unwrap();
        let room = Group::new();
        for m in [&a, &b, &c] {
            room.add(m).unwrap();
        }
        room.send_frame(b"first").unwrap();
        // In the same round, before the batch is sealed: one member is reset here, another's
        // handle is aborted for the end of the round.
        h.abort(&b);
        c.abort();
        room.send_frame(b"second").unwrap();
        assert_eq!(text(h, &a_client), "first");
        assert_eq!(text(h, &a_client), "second");
        for lost in [&b_client, &c_client] {
            match h.receive(lost) {
                Err(NetError::Lost(Lost::Reset | Lost::Eof)) => {}
                Ok(got) => panic!("a lost member got {got:?}"),
                Err(e) => panic!("unexpected: {e}"),
            }
        }
        assert_eq!(room.len(), 1);
        assert!(room.contains(&a));
    });
}

#[test]
fn close_all_says_goodbye_and_closes_every_member() {
    scenario(|h| {
        let ends = connected(h, 3);
        let room = Group::new();
        let mut sessions = Vec::new();
        for (server, _) in &ends {
            room.add(server).unwrap();
            let conn = server.clone();
            sessions.push(h.spawn(move |h| h.receive(&conn).map(|_| ())).unwrap());
        }
        h.yield_now();
        room.send_frame(b"last words").unwrap();
        room.close_all(Some(b"goodbye")).unwrap();
        assert!(room.is_empty());
        for (_, client) in &ends {
            assert_eq!(text(h, client), "last words");
            assert_eq!(text(h, client), "goodbye");
            assert!(matches!(h.receive(client), Err(NetError::Lost(Lost::Eof))));
        }
        for session in sessions {
            assert!(matches!(
                h.join(session).unwrap(),
                Err(NetError::Lost(Lost::Closed))
            ));
        }
        assert!(matches!(
            room.send_frame(b"with\nnewline"),
            Ok(()) | Err(NetError::InvalidFrame { .. })
        ));
    });
}

#[test]
fn a_line_with_a_newline_is_refused_and_nothing_is_sent() {
    scenario(|h| {
        let mut ends = connected(h, 1);
        let (a, a_client) = ends.pop().unwrap();
        let room = Group::new();
        room.add(&a).unwrap();
        assert!(matches!(
            room.send_frame(b"two\nlines"),
            Err(NetError::InvalidFrame { .. })
        ));
        room.send_frame(b"fine").unwrap();
        assert_eq!(text(h, &a_client), "fine");
        assert_eq!(room.stats().bytes, 5);
    });
}

/// 10,000 members: the parent serves them; a child process (this test again) holds the
/// 10,000 client sockets, so that neither process needs 20,000 descriptors.
#[test]
fn ten_thousand_members_get_every_batch() {
    const N: usize = 10_000;
    const CHILD: &str = "FIBRA_GROUP_CLIENTS";
    const EXPECTED: &[u8] = b"one\ntwo\nthree\ngoodbye\n";
    if let Ok(addr) = std::env::var(CHILD) {
        let got = util::raise_fd_limit(N as u64 + 100);
        assert!(
            got >= N as u64 + 100,
            "need {} descriptors, have {got}",
            N + 100
        );
        let mut streams: Vec<TcpStream> = (0..N)
            .map(|_| {
                let s = TcpStream::connect(&addr).expect("connect");
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                s
            })
            .collect();
        // Tell the parent every connection is made.
        println!("connected");
        for (i, s) in streams.iter_mut().enumerate() {
            let mut got = Vec::new();
            s.read_to_end(&mut got).expect("read");
            assert_eq!(got, EXPECTED, "member {i}");
        }
        let _ = std::io::stdout().flush();
        return;
    }
    let got = util::raise_fd_limit(N as u64 + 100);
    assert!(
        got >= N as u64 + 100,
        "need {} descriptors, have {got}",
        N + 100
    );
    let mut s = net_schedule();
    let stats = Rc::new(RefCell::new(None));
    let out = stats.clone();
    let listener = Rc::new(RefCell::new(None));
    let bound = listener.clone();
    s.spawn(move |h| {
        let l = h.listen("127.0.0.1:0").unwrap();
        *bound.borrow_mut() = Some(l.local_addr());
        let room = Group::new();
        let mut conns = Vec::with_capacity(N);
        while conns.len() < N {
            let (conn, _) = h.accept(&l).unwrap();
            room.add(&conn).unwrap();
            conns.push(conn);
        }
        room.send_frame(b"one").unwrap();
        room.send_frame(b"two").unwrap();
        h.yield_now();
        room.send_frame(b"three").unwrap();
        h.yield_now();
        room.close_all(Some(b"goodbye")).unwrap();
        *out.borrow_mut() = Some(room.stats());
    })
    .unwrap();
    s.tick().unwrap();
    let addr = listener.borrow().expect("listening after one tick");
    let child = std::thread::spawn(move || {
        util::run_in_child(
            "ten_thousand_members_get_every_batch",
            (CHILD, &addr.to_string()),
            Duration::from_secs(120),
        )
    });
    while !child.is_finished() {
        s.run_for(Duration::from_millis(20)).unwrap();
    }
    let (ok, text) = child.join().unwrap();
    assert!(ok, "the clients failed:\n{text}");
    assert!(
        text.contains("connected") && text.contains("1 passed"),
        "{text}"
    );
    let stats = stats.borrow().expect("the server finished");
    assert_eq!(stats.batches, 3, "{stats:?}");
    assert_eq!(stats.bytes, EXPECTED.len() as u64, "stored once: {stats:?}");
    assert_eq!(stats.deliveries, 3 * N as u64, "{stats:?}");
    assert_eq!((stats.dropped, stats.cut_off), (0, 0));
    // The closes finish in the background.
    for _ in 0..500 {
        if net_stats(&s).connections == 0 {
            break;
        }
        s.run_for(Duration::from_millis(10)).unwrap();
    }
    assert_eq!(net_stats(&s).connections, 0);
}

/// `send_with` runs the caller's closure on the group's batch: if it panics halfway, the half
/// it wrote is not sent to the members (it would tear the next frame of every one of them).
#[test]
fn a_send_with_that_panics_halfway_sends_nothing() {
    util::panics_expected();
    scenario(|h| {
        let mut ends = connected(h, 2);
        let (b, b_client) = ends.pop().unwrap();
        let (a, a_client) = ends.pop().unwrap();
        let room = Group::new();
        assert!(room.add(&a).unwrap());
        assert!(room.add(&b).unwrap());
        room.send_frame(b"before").unwrap();
        let caught = h.catch_panic(|| {
            room.send_with(|out| {
                out.extend_from_slice(b"half a li");
                panic!("the closure panics halfway");
            })
        });
        assert_eq!(caught, Err("the closure panics halfway".to_owned()));
        room.send_frame(b"after").unwrap();
        for client in [&a_client, &b_client] {
            assert_eq!(text(h, client), "before");
            assert_eq!(text(h, client), "after");
        }
        for end in [a, b, a_client, b_client] {
            end.close();
        }
    });
}

#[test]
fn send_except_reaches_everyone_but_the_sender_in_one_batch() {
    scenario(|h| {
        let mut ends = connected(h, 4);
        let (outsider, outsider_client) = ends.pop().unwrap();
        let (c, c_client) = ends.pop().unwrap();
        let (b, b_client) = ends.pop().unwrap();
        let (a, a_client) = ends.pop().unwrap();
        let room = Group::new();
        for m in [&a, &b, &c] {
            room.add(m).unwrap();
        }
        // One round: each member's line goes to the others, around lines to all; a
        // connection that is not a member excepts nobody.
        room.send_line_except(&a, "a: one").unwrap();
        room.send_line("all: two").unwrap();
        room.send_line_except(&b, "b: three").unwrap();
        room.send_line_except(&a, "a: four").unwrap();
        room.send_except(&c, b"c: five\n").unwrap();
        room.send_line_except(&outsider, "six").unwrap();
        assert!(matches!(
            room.send_line_except(&a, "bad\nline"),
            Err(NetError::InvalidFrame { .. })
        ));
        let want = [
            (&a_client, &["all: two", "b: three", "c: five", "six"][..]),
            (
                &b_client,
                &["a: one", "all: two", "a: four", "c: five", "six"],
            ),
            (
                &c_client,
                &["a: one", "all: two", "b: three", "a: four", "six"],
            ),
        ];
        for (client, lines) in want {
            for &line in lines {
                assert_eq!(text(h, client), line);
            }
        }
        // One batch, stored once, delivered to each member in one write.
        let stats = room.stats();
        assert_eq!(stats.batches, 1, "{stats:?}");
        assert_eq!(stats.deliveries, 3, "{stats:?}");
        // Nothing reached the outsider; the members' next batch is whole again.
        room.send_line("seven").unwrap();
        for client in [&a_client, &b_client, &c_client] {
            assert_eq!(text(h, client), "seven");
        }
        h.close(&outsider).unwrap();
        assert!(
            h.receive(&outsider_client).is_err(),
            "the outsider got nothing"
        );
    });
}

#[test]
fn send_except_keeps_the_slow_member_policy() {
    scenario(|h| {
        let (room, slow, fast, fast_client, _slow_client) = slow_and_fast(h);
        let reader = count_until_end(h, fast_client);
        // The fast member "speaks" every line: only the slow one gets them, and is cut off
        // once it has 32 KiB unread.
        let line = vec![b'x'; 1023];
        let mut sent = 0u64;
        while room.stats().cut_off == 0 && sent < 40_000 {
            for _ in 0..64 {
                room.send_frame_except(&fast, &line).unwrap();
                sent += 1;
            }
            h.yield_now();
        }
        assert_eq!(room.stats().cut_off, 1, "cut off after {sent} lines");
        assert_eq!(slow.lost(), Some(Lost::Slow { limit: 32 * 1024 }));
        room.send_frame(b"end").unwrap();
        assert_eq!(
            h.join(reader).unwrap(),
            0,
            "the speaker heard none of its lines"
        );
    });
}

/// A member of two groups sent to in one round gets the first group's batch first: the
/// round's batches are sealed in the order the groups were first sent to. Before, they were
/// sealed last first: `lobby` then `all` reached the member as `all`'s, then `lobby`'s.
#[test]
fn two_groups_sent_to_in_one_round_reach_a_shared_member_in_that_order() {
    scenario(|h| {
        let ends = connected(h, 1);
        let (member, client) = &ends[0];
        let (lobby, all) = (Group::new(), Group::new());
        lobby.add(member).unwrap();
        all.add(member).unwrap();
        lobby.send_frame(b"1 lobby").unwrap();
        all.send_frame(b"2 all").unwrap();
        assert_eq!(text(h, client), "1 lobby");
        assert_eq!(text(h, client), "2 all");
        all.send_frame(b"3 all").unwrap();
        lobby.send_frame(b"4 lobby").unwrap();
        lobby.send_frame(b"5 lobby").unwrap();
        assert_eq!(text(h, client), "3 all");
        assert_eq!(text(h, client), "4 lobby");
        assert_eq!(text(h, client), "5 lobby");
    });
}
