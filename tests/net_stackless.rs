//! `Server::stackless` over real sockets: a `Protocol` connection that holds no tasklet (no
//! stack) while it waits for input. Frames in order, `connection_lost` exactly once for each
//! way a connection ends, a callback that parks keeps its tasklet while the connection's
//! later frames wait, a panic contained to its connection, and idle connections counted by
//! the schedule: no tasklet each.

mod util;

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::time::Duration;

use fibra::net::{ConnOptions, Ended, Factory, Framing, ListenOptions, Lost, NetPlugin};
use fibra::net::{Protocol, Server, Transport};
use fibra::rt::{Handle, Schedule};
use fibra::tasks::TasksExt;
use util::recorder::{client, end_each, endings, events, lost_count, setup, Ending, Log, Setup};

/// Tasklets that are not the server's acceptor or an inner tasklet (sleeping an hour).
fn session_tasklets(s: &Schedule) -> usize {
    s.tasklets()
        .filter(|t| t.name == "session" && !util::is_idle_worker(t))
        .count()
}

#[test]
fn stackless_connection_lost_is_told_exactly_once_whatever_ends_the_connection() {
    let mut endings = endings();
    let end_of_stream: Ending = (
        "end of stream",
        Box::new(|c: &mut TcpStream| c.shutdown(std::net::Shutdown::Write).unwrap()),
        Ended::Lost(Lost::Closed),
    );
    endings.push(end_of_stream);
    let count = endings.len() as u64;
    let mut rig = setup(64, true);
    end_each(&mut rig, endings);
    let Setup {
        mut s,
        server,
        addr,
        log,
        drops,
    } = rig;

    // The stop, on an idle connection (no tasklet to kill) and on one inside a callback.
    let (idle, busy) = (count + 1, count + 2);
    let mut idle_peer = client(addr);
    let mut busy_peer = client(addr);
    util::run_until(&mut s, "two more connections", || {
        events(&log, busy).contains(&"made".into())
    });
    busy_peer.write_all(b"slow\n").unwrap();
    util::run_until(&mut s, "the slow frame", || {
        events(&log, busy).contains(&"frame slow".into())
    });
    let readers: Vec<_> = [
        idle_peer.try_clone().unwrap(),
        busy_peer.try_clone().unwrap(),
    ]
    .into_iter()
    .map(|mut p| {
        std::thread::spawn(move || {
            let mut rest = Vec::new();
            p.read_to_end(&mut rest).map(|_| rest)
        })
    })
    .collect();
    server.stop();
    util::run_until(&mut s, "the stop", || {
        lost_count(&log, idle) == 1 && lost_count(&log, busy) == 1
    });
    assert_eq!(events(&log, idle).last().unwrap(), "lost Killed");
    assert_eq!(events(&log, busy).last().unwrap(), "lost Killed");
    s.run_for(Duration::from_millis(50)).unwrap();
    for reader in readers {
        assert_eq!(
            reader.join().unwrap().unwrap(),
            b"",
            "closed, not left open"
        );
    }
    drop((idle_peer.flush(), busy_peer.flush()));
    assert_eq!(drops.get(), count as u32 + 2);
    assert_eq!(server.connections(), 0);
    s.run_for(Duration::from_millis(20)).unwrap();
    assert!(
        s.is_empty(),
        "no tasklet is left: {:?}",
        s.tasklets().collect::<Vec<_>>()
    );
    assert_eq!(lost_count(&log, idle), 1);
    assert_eq!(lost_count(&log, busy), 1);
}

#[test]
fn stackless_frames_of_a_connection_arrive_in_order() {
    let Setup {
        mut s, addr, log, ..
    } = setup(1024, true);
    const N: usize = 2_000;
    let peer = std::thread::spawn(move || {
        let c = client(addr);
        let mut writer = c.try_clone().unwrap();
        // All at once and in pieces: frames cut across reads, many per read.
        let mut all = String::new();
        for i in 0..N {
            all.push_str(&format!("m{i}\n"));
        }
        for chunk in all.as_bytes().chunks(777) {
            writer.write_all(chunk).unwrap();
        }
        let mut lines = BufReader::new(c).lines();
        (0..N)
            .map(|_| lines.next().unwrap().unwrap())
            .collect::<Vec<_>>()
    });
    util::run_until(&mut s, "every frame", || events(&log, 1).len() == N + 1);
    let echoed = util::on_thread_within("the echoes", 20, move || peer.join().unwrap());
    let want: Vec<String> = (0..N).map(|i| format!("m{i}")).collect();
    assert_eq!(echoed, want);
    let frames: Vec<String> = events(&log, 1)[1..]
        .iter()
        .map(|e| e.trim_start_matches("frame ").to_owned())
        .collect();
    assert_eq!(frames, want);
    s.run_for(Duration::from_millis(20)).unwrap();
    assert_eq!(session_tasklets(&s), 0, "idle again: no tasklet");
}

#[test]
fn stackless_a_callback_that_parks_keeps_its_tasklet_and_its_later_frames_wait() {
    let Setup {
        mut s, addr, log, ..
    } = setup(1024, true);
    let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let slow_order = order.clone();
    let slow = std::thread::spawn(move || {
        let mut c = client(addr);
        c.write_all(b"slow\nafter\n").unwrap();
        let mut got = String::new();
        let mut lines = BufReader::new(c);
        while !got.ends_with("after\n") {
            assert!(lines.read_line(&mut got).unwrap() > 0, "closed early");
        }
        slow_order.lock().unwrap().push("slow");
        got
    });
    util::run_until(&mut s, "the slow frame", || {
        events(&log, 1).contains(&"frame slow".into())
    });
    assert_eq!(
        session_tasklets(&s),
        1,
        "the parked callback keeps its tasklet"
    );
    assert_eq!(events(&log, 1), ["made", "frame slow"], "`after` waits");
    let fast_order = order.clone();
    let fast = std::thread::spawn(move || {
        let mut c = client(addr);
        c.write_all(b"quick\n").unwrap();
        let mut buf = [0u8; 6];
        c.read_exact(&mut buf).unwrap();
        fast_order.lock().unwrap().push("fast");
    });
    util::run_until(&mut s, "both answers", || order.lock().unwrap().len() == 2);
    assert_eq!(slow.join().unwrap(), "slow done\nafter\n");
    fast.join().unwrap();
    assert_eq!(*order.lock().unwrap(), ["fast", "slow"]);
    assert_eq!(events(&log, 1)[..3], ["made", "frame slow", "frame after"]);
    s.run_for(Duration::from_millis(20)).unwrap();
    assert_eq!(
        session_tasklets(&s),
        0,
        "given back once the callback returned"
    );
}

#[test]
fn stackless_a_panic_in_a_callback_ends_only_its_connection() {
    let Setup {
        mut s, addr, log, ..
    } = setup(1024, true);
    let mut calm = client(addr);
    let mut wild = client(addr);
    util::run_until(&mut s, "two connections", || {
        events(&log, 2).contains(&"made".into())
    });
    wild.write_all(b"panic\n").unwrap();
    util::run_until(&mut s, "the panic", || lost_count(&log, 2) == 1);
    assert_eq!(
        events(&log, 2).last().unwrap(),
        &format!("lost {:?}", Ended::Panicked("asked to".into()))
    );
    let mut rest = Vec::new();
    let _ = wild.read_to_end(&mut rest);
    calm.write_all(b"still here\n").unwrap();
    let reader = std::thread::spawn(move || {
        let mut line = String::new();
        BufReader::new(calm.try_clone().unwrap())
            .read_line(&mut line)
            .unwrap();
        (line, calm)
    });
    util::run_until(&mut s, "the calm echo", || {
        events(&log, 1).contains(&"frame still here".into())
    });
    s.run_for(Duration::from_millis(20)).unwrap();
    let (line, _calm) = reader.join().unwrap();
    assert_eq!(line, "still here\n");
    assert_eq!(lost_count(&log, 1), 0);
}

/// Idle connections, counted by the schedule: a stackful server holds a tasklet (a stack)
/// each, a stackless one none; and the stackless stacks go back to the pool.
#[test]
fn stackless_idle_connections_hold_no_tasklet_and_no_stack() {
    const N: usize = 300;
    for stackless in [false, true] {
        let Setup {
            mut s, addr, log, ..
        } = setup(1024, stackless);
        let peers = std::thread::spawn(move || {
            let mut peers = Vec::new();
            for i in 0..N {
                let mut c = client(addr);
                c.write_all(format!("hello {i}\n").as_bytes()).unwrap();
                let mut line = String::new();
                BufReader::new(c.try_clone().unwrap())
                    .read_line(&mut line)
                    .unwrap();
                assert_eq!(line, format!("hello {i}\n"));
                peers.push(c);
            }
            peers
        });
        util::run_until(&mut s, "every hello", || {
            log.borrow()
                .iter()
                .filter(|(_, e)| e.starts_with("frame"))
                .count()
                == N
        });
        let peers = util::on_thread_within("the peers", 20, move || peers.join().unwrap());
        s.run_for(Duration::from_millis(20)).unwrap();
        let stats = util::net_stats(&s);
        assert_eq!(stats.connections, N);
        // Each connection's inner tasklet (an hour's sleep) is there either way.
        let inner = s
            .tasklets()
            .filter(|t| t.name != "session" && t.name != "server")
            .count();
        assert_eq!(inner, N);
        if stackless {
            assert_eq!(session_tasklets(&s), 0, "no tasklet per idle connection");
            assert_eq!(stats.watching, N, "each waits in its input watch");
            assert!(
                s.pooled_stacks() < 64,
                "the few stacks used went back to the pool: {}",
                s.pooled_stacks()
            );
        } else {
            assert_eq!(session_tasklets(&s), N, "a tasklet per connection");
            assert_eq!(stats.watching, 0);
        }
        drop(peers);
        util::run_until(&mut s, "every loss", || {
            log.borrow()
                .iter()
                .filter(|(_, e)| e.starts_with("lost"))
                .count()
                == N
        });
        s.run_for(Duration::from_millis(20)).unwrap();
        assert_eq!(util::net_stats(&s).watching, 0);
    }
}

/// Dropping the schedule with idle stackless sessions tells each of them, once, and closes
/// their connections.
#[test]
fn stackless_sessions_of_a_dropped_schedule_are_told_once() {
    let Setup {
        mut s, addr, log, ..
    } = setup(1024, true);
    let mut peers: Vec<TcpStream> = (0..3).map(|_| client(addr)).collect();
    util::run_until(&mut s, "three sessions", || {
        events(&log, 3).contains(&"made".into())
    });
    s.run_for(Duration::from_millis(20)).unwrap();
    drop(s);
    for n in 1..=3 {
        assert_eq!(lost_count(&log, n), 1, "{:?}", events(&log, n));
        assert_eq!(events(&log, n).last().unwrap(), "lost Killed");
    }
    for p in &mut peers {
        let mut rest = Vec::new();
        let _ = p.read_to_end(&mut rest);
    }
}

/// Another tasklet closes an idle stackless connection through a kept transport: its
/// queued output still leaves, and `connection_lost` hears `Closed`, once.
#[test]
fn stackless_a_kept_transport_closes_an_idle_connection_from_another_tasklet() {
    struct Kept(Rc<RefCell<Vec<Transport>>>, Log);
    impl Protocol for Kept {
        fn connection_made(&mut self, _h: &Handle, t: &Transport) {
            self.0.borrow_mut().push(t.clone());
        }
        fn frame_received(&mut self, _h: &Handle, _t: &Transport, _frame: &[u8]) {}
        fn connection_lost(&mut self, reason: &Ended) {
            self.1.borrow_mut().push((1, format!("lost {reason:?}")));
        }
    }
    struct Keeps(Rc<RefCell<Vec<Transport>>>, Log);
    impl Factory for Keeps {
        type Protocol = Kept;
        fn build_protocol(&mut self, _peer: SocketAddr) -> Option<Kept> {
            Some(Kept(self.0.clone(), self.1.clone()))
        }
    }
    let mut s = util::net_schedule();
    let listener = util::listen(&s);
    let addr = listener.local_addr();
    let (room, log) = (Rc::new(RefCell::new(Vec::new())), Log::default());
    Server::stackless(listener, Keeps(room.clone(), log.clone()))
        .start(&mut *s)
        .unwrap();
    let mut peer = client(addr);
    util::run_until(&mut s, "the session", || !room.borrow().is_empty());
    s.run_for(Duration::from_millis(20)).unwrap();
    assert_eq!(util::net_stats(&s).watching, 1, "idle, in its watch");
    let transport = room.borrow()[0].clone();
    s.spawn(move |h| {
        h.sleep(Duration::from_millis(5));
        transport.send_line("last words").unwrap();
        transport.close();
    })
    .unwrap();
    let reader = std::thread::spawn(move || {
        let mut rest = Vec::new();
        peer.read_to_end(&mut rest).map(|_| rest)
    });
    util::run_until(&mut s, "the loss", || lost_count(&log, 1) == 1);
    assert_eq!(reader.join().unwrap().unwrap(), b"last words\n");
    s.run_for(Duration::from_millis(20)).unwrap();
    assert_eq!(events(&log, 1), ["lost Lost(Closed)"]);
}

/// Activations run on a few workers, not on a tasklet each: twenty connections taking
/// turns, fifty lines each (a thousand activations, each on an idle connection), are served
/// by a handful of tasklets, whose stacks stay in the cache. Before the workers, every
/// activation spawned a tasklet of its own (980 ids after the first round).
#[test]
fn stackless_activations_share_a_few_worker_tasklets() {
    const CONNS: usize = 20;
    const ROUNDS: usize = 50;
    type Ids = Rc<RefCell<std::collections::HashSet<fibra::rt::TaskletId>>>;
    struct Echo(Ids);
    impl Protocol for Echo {
        fn frame_received(&mut self, h: &Handle, transport: &Transport, frame: &[u8]) {
            // The first round's lines may come before a session's first turn is over,
            // which runs on a tasklet of its own (with `connection_made`).
            if !frame.starts_with(b"0.") {
                self.0.borrow_mut().insert(h.id());
            }
            transport
                .send_line(&String::from_utf8_lossy(frame))
                .unwrap();
        }
    }
    struct Echoes(Ids, Rc<std::cell::Cell<usize>>);
    impl Factory for Echoes {
        type Protocol = Echo;
        fn build_protocol(&mut self, _: SocketAddr) -> Option<Echo> {
            self.1.set(self.1.get() + 1);
            Some(Echo(self.0.clone()))
        }
    }
    let ids = Ids::default();
    let made = Rc::new(std::cell::Cell::new(0));
    let mut s = util::net_schedule();
    let listener = util::listen(&s);
    let addr = listener.local_addr();
    Server::stackless(listener, Echoes(ids.clone(), made.clone()))
        .start(&mut *s)
        .unwrap();
    let peer = std::thread::spawn(move || {
        let conns: Vec<TcpStream> = (0..CONNS).map(|_| client(addr)).collect();
        let mut readers: Vec<_> = conns
            .iter()
            .map(|c| BufReader::new(c.try_clone().unwrap()))
            .collect();
        for round in 0..ROUNDS {
            for (i, mut c) in conns.iter().enumerate() {
                c.write_all(format!("{round}.{i}\n").as_bytes()).unwrap();
            }
            for (i, r) in readers.iter_mut().enumerate() {
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                assert_eq!(line, format!("{round}.{i}\n"));
            }
        }
    });
    util::run_until(&mut s, "every echo", || peer.is_finished());
    util::on_thread_within("the peer", 20, move || peer.join().unwrap());
    assert_eq!(made.get(), CONNS);
    let workers = ids.borrow().len();
    assert!(
        (1..=4).contains(&workers),
        "{workers} tasklets ran {} activations: a worker should serve many",
        CONNS * ROUNDS
    );
}

/// A raw stackless echo serves its messages by calls on the table, not yields: a job's
/// receive, its watch armed again and the next job taken by its worker switch no stack
/// (before, each was a yield answered at once: three tasklet steps per message).
#[test]
fn stackless_raw_messages_cost_no_yield_each() {
    const CONNS: usize = 20;
    const ROUNDS: usize = 50;
    struct Echo;
    impl Protocol for Echo {
        fn frame_received(&mut self, _: &Handle, transport: &Transport, frame: &[u8]) {
            transport.send(frame).unwrap();
        }
    }
    struct Echoes;
    impl Factory for Echoes {
        type Protocol = Echo;
        fn build_protocol(&mut self, _: SocketAddr) -> Option<Echo> {
            Some(Echo)
        }
    }
    let mut s = util::net_schedule();
    let raw = ListenOptions::new().with_conn(ConnOptions::new().with_framing(Framing::Raw));
    let listener = s
        .plugin::<NetPlugin>()
        .unwrap()
        .listen_with("127.0.0.1:0", raw)
        .unwrap();
    let addr = listener.local_addr();
    Server::stackless(listener, Echoes).start(&mut *s).unwrap();
    let conns: Vec<TcpStream> = (0..CONNS).map(|_| client(addr)).collect();
    let message = |round: usize, i: usize| format!("{round:04}.{i:03}");
    // One round first: every session's first turn (with `connection_made`) is over.
    let echo_round = move |conns: &[TcpStream], round: usize| {
        for (i, mut c) in conns.iter().enumerate() {
            c.write_all(message(round, i).as_bytes()).unwrap();
        }
        for (i, mut c) in conns.iter().enumerate() {
            let mut back = [0u8; 8];
            c.read_exact(&mut back).unwrap();
            assert_eq!(&back[..], message(round, i).as_bytes());
        }
    };
    let first = {
        let conns: Vec<TcpStream> = conns.iter().map(|c| c.try_clone().unwrap()).collect();
        std::thread::spawn(move || echo_round(&conns, 0))
    };
    util::run_until(&mut s, "the first round", || first.is_finished());
    first.join().unwrap();
    let before = s.steps_run();
    let peer = std::thread::spawn(move || {
        for round in 1..=ROUNDS {
            echo_round(&conns, round);
        }
    });
    util::run_until(&mut s, "every echo", || peer.is_finished());
    util::on_thread_within("the peer", 20, move || peer.join().unwrap());
    let steps = s.steps_run() - before;
    let messages = (CONNS * ROUNDS) as u64;
    assert!(
        steps * 2 < messages * 3,
        "{steps} tasklet steps for {messages} messages: a message should cost no yield"
    );
}
