//! Listening on every core: 1,000 connections spread over four schedules (`Cores`), by
//! `SO_REUSEPORT` listeners (one per schedule, the kernel's hash) and by a `Handoff` (one
//! acceptor, the least-loaded schedule). Each connection is served where it landed (its
//! schedule greets it), and the spread is printed (`cargo test --test net_spread --
//! --nocapture`): the hand-off's is exact, the kernel's is even only on average.

mod util;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fibra::net::{ConnOptions, Handed, Handoff, ListenOptions, NetExt, NetPlugin};
use fibra::rt::Cores;
use fibra::tasks::{remote_channel, RemoteSender, TasksExt, TasksPlugin};

const SCHEDULES: usize = 4;
const CONNECTIONS: usize = 1000;

/// Connects `CONNECTIONS` clients to `addr`, each reading its schedule's greeting; returns
/// the clients (kept open) and how many landed on each schedule.
fn connect_all(addr: std::net::SocketAddr) -> (Vec<TcpStream>, Vec<usize>) {
    let mut spread = vec![0; SCHEDULES];
    let mut clients = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut greeting = String::new();
        BufReader::new(&stream).read_line(&mut greeting).unwrap();
        let index: usize = greeting
            .trim()
            .strip_prefix("schedule ")
            .and_then(|i| i.parse().ok())
            .unwrap_or_else(|| panic!("greeting {greeting:?}"));
        spread[index] += 1;
        clients.push(stream);
    }
    (clients, spread)
}

fn summary(spread: &[usize]) -> String {
    let (min, max) = (spread.iter().min().unwrap(), spread.iter().max().unwrap());
    format!(
        "{spread:?} (min {min}, max {max}, ideal {})",
        CONNECTIONS / SCHEDULES
    )
}

#[test]
fn reuseport_listeners_share_one_port_and_the_kernel_spreads_connections() {
    util::raise_fd_limit(4 * CONNECTIONS as u64 + 256);
    // Reserve a port for the group: bound with SO_REUSEPORT, never listening.
    let probe = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    probe.set_reuse_port(true).unwrap();
    probe
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    let addr = probe.local_addr().unwrap().as_socket().unwrap();
    let listening = Arc::new(AtomicUsize::new(0));
    let l = Arc::clone(&listening);
    let cores = Cores::start(SCHEDULES, false, move |index, s| {
        s.add_plugin(TasksPlugin::new())?;
        s.add_plugin(NetPlugin::new()?)?;
        let listener = s
            .plugin::<NetPlugin>()
            .unwrap()
            .listen_with(addr, ListenOptions::new().with_reuse_port(true))?;
        l.fetch_add(1, Ordering::SeqCst);
        s.spawn(move |h| {
            let mut held = Vec::new();
            while let Ok((conn, _)) = h.accept(&listener) {
                let _ = conn.try_send_line(&format!("schedule {index}"));
                held.push(conn);
            }
        })?;
        Ok(())
    })
    .unwrap();
    assert_eq!(
        listening.load(Ordering::SeqCst),
        SCHEDULES,
        "one port, four listeners"
    );
    drop(probe);
    let (clients, spread) = connect_all(addr);
    eprintln!(
        "SO_REUSEPORT, {CONNECTIONS} connections over {SCHEDULES} schedules: {}",
        summary(&spread)
    );
    assert_eq!(spread.iter().sum::<usize>(), CONNECTIONS);
    assert!(
        spread.iter().all(|&n| n > 0),
        "every listener got connections: {spread:?}"
    );
    drop(clients);
    cores.stop().unwrap();
}

#[test]
fn a_handoff_gives_each_connection_to_the_least_loaded_schedule() {
    util::raise_fd_limit(4 * CONNECTIONS as u64 + 256);
    let senders: Arc<Mutex<Vec<Option<RemoteSender<Handed>>>>> =
        Arc::new(Mutex::new((0..SCHEDULES).map(|_| None).collect()));
    let released = Arc::new(AtomicUsize::new(0));
    let (tx, r) = (Arc::clone(&senders), Arc::clone(&released));
    let cores = Cores::start(SCHEDULES, false, move |index, s| {
        s.add_plugin(TasksPlugin::new())?;
        s.add_plugin(NetPlugin::new()?)?;
        let (sender, receiver) = remote_channel::<Handed>(&s.remote(), 64);
        tx.lock().unwrap()[index] = Some(sender);
        let r = Arc::clone(&r);
        s.spawn(move |h| {
            // Each handed connection is served here: greeted, then held until its client
            // leaves, with its load token.
            while let Some(handed) = receiver.receive(h) {
                assert_eq!(handed.load.schedule(), index);
                let conn = h.adopt(handed.stream, ConnOptions::new()).unwrap();
                let r = Arc::clone(&r);
                h.spawn_detached(move |h| {
                    let _load = handed.load;
                    h.send_line(&conn, &format!("schedule {index}")).unwrap();
                    let _ = h.on_lost_connection(&conn);
                    r.fetch_add(1, Ordering::SeqCst);
                })
                .unwrap();
            }
        })?;
        Ok(())
    })
    .unwrap();
    let targets: Vec<RemoteSender<Handed>> = senders
        .lock()
        .unwrap()
        .iter_mut()
        .map(|s| s.take().unwrap())
        .collect();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let handoff = Handoff::start(listener, targets).unwrap();
    let (mut clients, spread) = connect_all(handoff.local_addr());
    eprintln!(
        "hand-off, {CONNECTIONS} connections over {SCHEDULES} schedules: {}",
        summary(&spread)
    );
    assert_eq!(
        spread,
        vec![CONNECTIONS / SCHEDULES; SCHEDULES],
        "exactly even while all stay"
    );
    assert_eq!(handoff.loads().snapshot(), spread);
    assert_eq!(handoff.handed(), CONNECTIONS as u64);
    // Half of schedule 0's clients leave: the next connections go there first.
    let leaving: Vec<usize> = clients
        .iter()
        .enumerate()
        .filter(|(i, _)| i % SCHEDULES == 0)
        .map(|(i, _)| i)
        .take(CONNECTIONS / SCHEDULES / 2)
        .collect();
    for &i in leaving.iter().rev() {
        clients.remove(i);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while released.load(Ordering::SeqCst) < leaving.len() {
        assert!(Instant::now() < deadline, "the leaves were not seen");
        std::thread::sleep(Duration::from_millis(5));
    }
    let loads = handoff.loads().snapshot();
    assert_eq!(
        loads[0],
        CONNECTIONS / SCHEDULES - leaving.len(),
        "{loads:?}"
    );
    for _ in 0..leaving.len() {
        let stream = TcpStream::connect(handoff.local_addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut greeting = String::new();
        BufReader::new(&stream).read_line(&mut greeting).unwrap();
        assert_eq!(greeting.trim(), "schedule 0", "the least-loaded schedule");
        clients.push(stream);
    }
    handoff.stop();
    drop(clients);
    cores.stop().unwrap();
}

#[test]
fn a_handoff_refuses_bad_setups_with_the_reason() {
    let listener = || std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let err = Handoff::start(listener(), Vec::new()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("at least one schedule"), "{err}");
    let mut s = fibra::rt::Schedule::new();
    s.add_plugin(TasksPlugin::new()).unwrap();
    let (sender, _receiver) = remote_channel::<Handed>(&s.remote(), 4);
    let err = Handoff::start_with(listener(), vec![sender], fibra::net::Loads::new(2)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(
        err.to_string().contains("another number of schedules"),
        "{err}"
    );
}

/// Connects to `addr` and reads until the connection ends or `wait` passes: whether the
/// other end closed it, sending nothing.
fn closed_within(addr: std::net::SocketAddr, wait: Duration) -> (TcpStream, bool) {
    let mut client = TcpStream::connect(addr).unwrap();
    client.set_read_timeout(Some(wait)).unwrap();
    let mut rest = Vec::new();
    let closed = match std::io::Read::read_to_end(&mut client, &mut rest) {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => true,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            false
        }
        Err(e) => panic!("reading from the hand-off's connection: {e}"),
    };
    assert!(rest.is_empty(), "nothing is sent by the hand-off itself");
    (client, closed)
}

/// The loads once they equal `want`, or after 10 s (the caller's assertion then fails).
fn loads_when(handoff: &Handoff, want: &[usize]) -> Vec<usize> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let loads = handoff.loads().snapshot();
        if loads == want || Instant::now() > deadline {
            return loads;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A schedule that no longer takes connections (its receiver is gone) gets none: they are
/// closed at once, and nothing is left counted against it.
#[test]
fn a_handoff_closes_what_a_gone_schedule_cannot_take() {
    let mut s = fibra::rt::Schedule::new();
    s.add_plugin(TasksPlugin::new()).unwrap();
    let (sender, receiver) = remote_channel::<Handed>(&s.remote(), 4);
    drop(receiver);
    let handoff = Handoff::start(
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        vec![sender],
    )
    .unwrap();
    for _ in 0..3 {
        let (_client, closed) = closed_within(handoff.local_addr(), Duration::from_secs(10));
        assert!(closed, "closed at once, not left hanging");
    }
    assert_eq!(loads_when(&handoff, &[0]), [0], "no load left behind");
    handoff.stop();
}

/// Connections handed to a schedule whose receiver then goes (its tasklet ended, its schedule
/// was dropped) before taking them are closed when it goes, and their load given back: not
/// left open, unserved, until the hand-off stops.
#[test]
fn connections_waiting_for_a_schedule_that_goes_are_closed() {
    let mut s = fibra::rt::Schedule::new();
    s.add_plugin(TasksPlugin::new()).unwrap();
    let (sender, receiver) = remote_channel::<Handed>(&s.remote(), 4);
    let handoff = Handoff::start(
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        vec![sender],
    )
    .unwrap();
    let mut waiting = Vec::new();
    for _ in 0..2 {
        let (client, closed) = closed_within(handoff.local_addr(), Duration::from_millis(50));
        assert!(!closed, "waits in the channel, open");
        waiting.push(client);
    }
    assert_eq!(loads_when(&handoff, &[2]), [2]);
    drop(receiver);
    for (i, client) in waiting.iter_mut().enumerate() {
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut rest = Vec::new();
        let ended = match std::io::Read::read_to_end(client, &mut rest) {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        };
        assert!(ended, "connection {i} left open after its schedule went");
    }
    assert_eq!(loads_when(&handoff, &[0]), [0], "no load left behind");
    handoff.stop();
}

/// Over 20 schedules, loads that change while the acceptor orders them (connections ending
/// on the schedules' threads) must not end the acceptor: it read each load in the sort's
/// comparisons, the order came out inconsistent, and the sort panicked ("does not correctly
/// implement a total order"), after which nothing more was accepted.
#[test]
fn loads_changing_while_the_acceptor_orders_them_do_not_stop_it() {
    use std::sync::atomic::AtomicBool;
    const TARGETS: usize = 64;
    const CLIENTS: u64 = 3000;
    let mut s = fibra::rt::Schedule::new();
    s.add_plugin(TasksPlugin::new()).unwrap();
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..TARGETS)
        .map(|_| remote_channel::<Handed>(&s.remote(), 4096))
        .unzip();
    let loads = fibra::net::Loads::new(TARGETS);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let handoff = Handoff::start_with(listener, senders, loads.clone()).unwrap();
    // Two threads charge and release load on the schedules as fast as they can.
    let stop = Arc::new(AtomicBool::new(false));
    let churn: Vec<_> = (0..2u64)
        .map(|seed| {
            let (loads, stop) = (loads.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut x = 0x9e37_79b9_7f4a_7c15 ^ seed;
                let mut held = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    if held.len() < 5000 && x & 1 == 0 {
                        held.push(loads.charge((x >> 8) as usize % TARGETS));
                    } else if !held.is_empty() {
                        let at = (x >> 8) as usize % held.len();
                        held.swap_remove(at);
                    }
                }
            })
        })
        .collect();
    let addr = handoff.local_addr();
    let mut clients = Vec::new();
    let mut stalled = None;
    for n in 1..=CLIENTS {
        clients.push(TcpStream::connect(addr).unwrap());
        if clients.len() >= 200 {
            clients.clear();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while handoff.handed() < n && Instant::now() < deadline {
            std::thread::yield_now();
        }
        if handoff.handed() < n {
            stalled = Some(n);
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for thread in churn {
        thread.join().unwrap();
    }
    assert_eq!(
        stalled,
        None,
        "the acceptor stopped handing connections out (handed {})",
        handoff.handed()
    );
    handoff.stop();
    drop(receivers);
}

/// Once a schedule is found gone, the hand-off stops choosing it: with it at load 0 and
/// the live one loaded, every later connection still goes to the live one, and so does the
/// connection that found it gone.
#[test]
fn a_handoff_hands_to_the_live_schedules_once_one_is_gone() {
    let mut s = fibra::rt::Schedule::new();
    s.add_plugin(TasksPlugin::new()).unwrap();
    let (to_gone, gone) = remote_channel::<Handed>(&s.remote(), 4);
    let (to_live, live) = remote_channel::<Handed>(&s.remote(), 4);
    drop(gone);
    let handoff = Handoff::start(
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        vec![to_gone, to_live],
    )
    .unwrap();
    // Equal loads: the first connection goes to schedule 0, which is found gone, and then
    // to schedule 1. All wait in the live schedule's channel (nobody reads it), open.
    let mut held = Vec::new();
    for i in 0..4 {
        let (client, closed) = closed_within(handoff.local_addr(), Duration::from_millis(100));
        assert!(
            !closed,
            "connection {i} went to the gone schedule and was closed"
        );
        held.push(client);
    }
    assert_eq!(loads_when(&handoff, &[0, 4]), [0, 4]);
    assert_eq!(handoff.handed(), 4);
    handoff.stop();
    drop(live);
}

/// One schedule is stuck (its tasklet blocks its thread for seconds) and its channel fills:
/// the hand-off passes it over, the other schedules go on getting and greeting connections,
/// and `stop` returns at once, though a connection was waiting for the stuck schedule.
#[test]
fn a_stuck_schedule_holds_up_neither_the_others_nor_the_stop() {
    const CLIENTS: usize = 40;
    const ROOM: usize = 4;
    let senders: Arc<Mutex<Vec<Option<RemoteSender<Handed>>>>> =
        Arc::new(Mutex::new((0..3).map(|_| None).collect()));
    let stuck = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (tx, flag) = (Arc::clone(&senders), Arc::clone(&stuck));
    let cores = Cores::start(3, false, move |index, s| {
        s.add_plugin(TasksPlugin::new())?;
        s.add_plugin(NetPlugin::new()?)?;
        let (sender, receiver) = remote_channel::<Handed>(&s.remote(), ROOM);
        tx.lock().unwrap()[index] = Some(sender);
        let flag = Arc::clone(&flag);
        s.spawn(move |h| {
            if index == 0 {
                // Blocks its schedule's thread (a bug, a blocking call) for up to 30 s.
                let until = Instant::now() + Duration::from_secs(30);
                while flag.load(Ordering::SeqCst) && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            while let Some(handed) = receiver.receive(h) {
                let conn = h.adopt(handed.stream, ConnOptions::new()).unwrap();
                h.spawn_detached(move |h| {
                    let _load = handed.load;
                    let _ = h.send_line(&conn, &format!("schedule {index}"));
                    let _ = h.on_lost_connection(&conn);
                })
                .unwrap();
            }
        })?;
        Ok(())
    })
    .unwrap();
    let targets: Vec<RemoteSender<Handed>> = senders
        .lock()
        .unwrap()
        .iter_mut()
        .map(|s| s.take().unwrap())
        .collect();
    let handoff = Handoff::bind(
        "127.0.0.1:0",
        &ListenOptions::new(),
        targets,
        fibra::net::Loads::new(3),
    )
    .unwrap();
    let addr = handoff.local_addr();
    let clients: Vec<TcpStream> = (0..CLIENTS)
        .map(|_| {
            let c = TcpStream::connect(addr).unwrap();
            c.set_nonblocking(true).unwrap();
            c
        })
        .collect();
    // Greetings from the schedules that are not stuck, within 10 s.
    let mut greeted = [false; CLIENTS];
    let deadline = Instant::now() + Duration::from_secs(10);
    while greeted.iter().filter(|&&g| g).count() < CLIENTS - ROOM && Instant::now() < deadline {
        for (i, mut client) in clients.iter().enumerate() {
            let mut buf = [0u8; 64];
            if let Ok(n) = std::io::Read::read(&mut client, &mut buf) {
                assert!(n > 0, "client {i}: closed");
                assert!(buf.starts_with(b"schedule "), "client {i}");
                greeted[i] = true;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let greeted = greeted.iter().filter(|&&g| g).count();
    // One more waits for room: schedule 0's channel holds `ROOM`, the others are loaded.
    let stopped = {
        let (done, stop) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            handoff.stop();
            let _ = done.send(());
        });
        stop.recv_timeout(Duration::from_secs(5)).is_ok()
    };
    stuck.store(false, Ordering::SeqCst);
    assert!(
        greeted >= CLIENTS - ROOM,
        "{greeted} of {CLIENTS} greeted while one schedule was stuck (at most {ROOM} wait for it)"
    );
    assert!(stopped, "Handoff::stop did not return within 5 s");
    drop(clients);
    cores.stop().unwrap();
}

/// Listeners (the plugin's and the hand-off's) ask for the kernel's largest backlog by
/// default, as Go's do: std's 128 dropped connections of a burst the kernel would queue.
#[test]
fn the_default_backlog_is_the_kernels_somaxconn() {
    let kernel = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
        .unwrap_or(4096);
    assert_eq!(ListenOptions::new().backlog(), kernel);
    assert_eq!(ListenOptions::default().backlog(), kernel);
    assert_eq!(ListenOptions::new().with_backlog(0).backlog(), 1);
}
