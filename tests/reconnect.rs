//! `ReconnectingClient` over real sockets: a failed first connect is retried, the client comes
//! back after its server restarts, waits grow within their bounds against a server that
//! closes at once and start again only after a stable connection, `stop` works in every state,
//! an attempt limit gives up, and `connection_lost` is told once per connection.

mod util;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use fibra::net::{
    Backoff, ClientEvent, ClientState, ConnOptions, Ended, Factory, NetPlugin, Protocol,
    ReconnectingClient, Server, Transport,
};
use fibra::rt::{Handle, Schedule};

/// Connection number → what its protocol saw.
type Log = Rc<RefCell<Vec<(u32, String)>>>;

/// What a server's protocol does with a new connection.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Echo,
    CloseAtOnce,
    CloseAfter(Duration),
}

struct Side {
    n: u32,
    log: Log,
    mode: Mode,
    greet: bool,
}

impl Protocol for Side {
    fn connection_made(&mut self, h: &Handle, t: &Transport) {
        self.log.borrow_mut().push((self.n, "made".into()));
        if self.greet {
            let _ = t.send_line("ooxx");
        }
        match self.mode {
            Mode::Echo => {}
            Mode::CloseAtOnce => t.close(),
            Mode::CloseAfter(after) => {
                let t = t.clone();
                t.clone()
                    .spawn_inner(h, move |h| {
                        fibra::tasks::TasksExt::sleep(h, after);
                        t.close();
                    })
                    .unwrap();
            }
        }
    }

    fn frame_received(&mut self, _h: &Handle, t: &Transport, frame: &[u8]) {
        self.log
            .borrow_mut()
            .push((self.n, format!("frame {}", String::from_utf8_lossy(frame))));
        if self.mode == Mode::Echo && !self.greet {
            let _ = t.send(frame);
        }
    }

    fn connection_lost(&mut self, reason: &Ended) {
        self.log
            .borrow_mut()
            .push((self.n, format!("lost {reason}")));
    }
}

struct Sides {
    next: u32,
    log: Log,
    mode: Rc<Cell<Mode>>,
    greet: bool,
}

impl Sides {
    fn new(mode: Mode, greet: bool) -> (Sides, Log, Rc<Cell<Mode>>) {
        let log = Log::default();
        let mode = Rc::new(Cell::new(mode));
        let sides = Sides {
            next: 0,
            log: log.clone(),
            mode: mode.clone(),
            greet,
        };
        (sides, log, mode)
    }
}

impl Factory for Sides {
    type Protocol = Side;
    fn build_protocol(&mut self, _peer: SocketAddr) -> Option<Side> {
        self.next += 1;
        Some(Side {
            n: self.next,
            log: self.log.clone(),
            mode: self.mode.get(),
            greet: self.greet,
        })
    }
}

fn count(log: &Log, what: &str) -> usize {
    log.borrow()
        .iter()
        .filter(|(_, e)| e.starts_with(what))
        .count()
}

/// Every connection that was made was lost at most once, and each lost one was made.
fn lost_at_most_once(log: &Log) {
    let log = log.borrow();
    let made: Vec<u32> = log
        .iter()
        .filter(|(_, e)| e == "made")
        .map(|(n, _)| *n)
        .collect();
    for n in &made {
        let lost = log
            .iter()
            .filter(|(c, e)| c == n && e.starts_with("lost"))
            .count();
        assert!(
            lost <= 1,
            "connection {n} was told lost {lost} times: {log:?}"
        );
    }
}

/// An address nothing listens on (bound, then closed).
fn free_addr() -> SocketAddr {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap()
}

fn serve(s: &mut Schedule, addr: SocketAddr, factory: Sides) -> Server {
    let listener = s.plugin::<NetPlugin>().unwrap().listen(addr).unwrap();
    let server = Server::new(listener, factory);
    server.start(&mut *s).unwrap();
    server
}

fn quick() -> Backoff {
    Backoff::new()
        .with_initial(Duration::from_millis(10))
        .with_max(Duration::from_millis(80))
        .with_stable_after(Duration::from_millis(150))
        .with_seed(7)
}

fn client_of(addr: SocketAddr, backoff: Backoff) -> (ReconnectingClient, Log) {
    let (sides, log, _) = Sides::new(Mode::Echo, true);
    let client = ReconnectingClient::new(addr, ConnOptions::new(), backoff, sides);
    (client, log)
}

#[test]
fn a_failed_first_connect_is_retried_until_a_server_comes() {
    let mut s = util::net_schedule();
    let addr = free_addr();
    let (client, log) = client_of(addr, quick());
    client.start(&mut *s).unwrap();
    util::run_until(&mut s, "a few failed attempts", || client.failures() >= 3);
    assert_eq!(client.connections(), 0);
    assert!(
        client.last_error().unwrap().contains("refused"),
        "{:?}",
        client.last_error()
    );
    let (sides, server_log, _) = Sides::new(Mode::Echo, false);
    serve(&mut s, addr, sides);
    util::run_until(&mut s, "the echo of ooxx", || {
        count(&log, "frame ooxx") == 1
    });
    assert!(matches!(client.state(), ClientState::Connected { .. }));
    assert_eq!(count(&server_log, "frame ooxx"), 1);
    lost_at_most_once(&log);
}

#[test]
fn the_client_comes_back_after_its_server_restarts() {
    let mut s = util::net_schedule();
    let addr = free_addr();
    let (sides, _, _) = Sides::new(Mode::Echo, false);
    let first = serve(&mut s, addr, sides);
    let (client, log) = client_of(addr, quick());
    client.start(&mut *s).unwrap();
    util::run_until(&mut s, "the first connection", || {
        count(&log, "frame ooxx") == 1
    });

    first.stop();
    util::run_until(&mut s, "the loss", || count(&log, "lost") == 1);
    util::run_until(&mut s, "failed attempts while the server is down", || {
        client.failures() >= 2
    });
    let (sides, _, _) = Sides::new(Mode::Echo, false);
    serve(&mut s, addr, sides);
    util::run_until(&mut s, "the second connection", || {
        count(&log, "frame ooxx") == 2
    });
    assert_eq!(client.connections(), 2);
    assert_eq!(count(&log, "made"), 2);
    lost_at_most_once(&log);
}

#[test]
fn waits_grow_against_a_server_that_closes_at_once_and_reset_after_a_stable_connection() {
    let mut s = util::net_schedule();
    let addr = free_addr();
    let (sides, _, mode) = Sides::new(Mode::CloseAtOnce, false);
    serve(&mut s, addr, sides);
    let backoff = quick();
    let (client, log) = client_of(addr, backoff.clone());
    client.start(&mut *s).unwrap();
    let mut waits_seen = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(400) {
        s.tick_within(Duration::from_millis(1)).unwrap();
        if let ClientState::Waiting { wait, attempt, .. } = client.state() {
            assert!(attempt >= 1);
            assert!(
                wait <= backoff.ceiling(attempt - 1),
                "wait {wait:?} above the ceiling of attempt {attempt}"
            );
            waits_seen += 1;
        }
    }
    assert!(waits_seen > 0);
    let made = client.connections();
    // Every connection closed at once counts as a failure: the waits never start over, and
    // 400 ms of capped waits (at most 80 ms each, 40 on average) allow a few dozen attempts,
    // where a hot loop would make thousands.
    assert!(made >= 2, "only {made} connections");
    assert!(made < 100, "{made} connections in 400 ms: a hot loop");
    assert_eq!(u64::from(client.failures()), made);
    assert_eq!(count(&log, "made") as u64, made);
    lost_at_most_once(&log);

    // Now each connection stays up 300 ms, past `stable_after` (150 ms): after one ends, the
    // count starts again from zero, so it shows one failure.
    mode.set(Mode::CloseAfter(Duration::from_millis(300)));
    let before = client.connections();
    util::run_until(&mut s, "a stable connection and its end", || {
        client.connections() >= before + 2
    });
    util::run_until(&mut s, "the reset", || client.failures() == 1);
    lost_at_most_once(&log);
}

#[test]
fn stop_works_in_every_state() {
    let mut s = util::net_schedule();
    let addr = free_addr();
    let (sides, server_log, _) = Sides::new(Mode::Echo, false);
    serve(&mut s, addr, sides);

    // Idle: stopping does nothing harmful, and it can start later.
    let (client, log) = client_of(addr, quick());
    client.stop();
    assert_eq!(client.state(), ClientState::Stopped);

    // Connecting: stopped before its connect completes; no connection comes of it.
    client.start(&mut *s).unwrap();
    assert!(matches!(client.state(), ClientState::Connecting { .. }));
    client.stop();
    s.run_for(Duration::from_millis(50)).unwrap();
    assert_eq!(client.state(), ClientState::Stopped);
    assert_eq!(client.connections(), 0);
    assert_eq!(count(&log, "made"), 0);

    // Connected: its protocol is told it was killed, and the server sees the connection end.
    client.start(&mut *s).unwrap();
    util::run_until(&mut s, "the connection", || count(&log, "frame ooxx") == 1);
    client.stop();
    util::run_until(&mut s, "the client's loss", || count(&log, "lost") == 1);
    assert!(
        log.borrow().last().unwrap().1.contains("killed"),
        "{:?}",
        log.borrow()
    );
    util::run_until(&mut s, "the server's loss", || {
        count(&server_log, "lost") == 1
    });
    assert_eq!(client.state(), ClientState::Stopped);

    // Waiting: against nothing, stopped during a wait; it never tries again.
    let (waiting, _) = client_of(free_addr(), quick());
    waiting.start(&mut *s).unwrap();
    util::run_until(&mut s, "a wait", || {
        matches!(waiting.state(), ClientState::Waiting { .. })
    });
    waiting.stop();
    let failures = waiting.failures();
    s.run_for(Duration::from_millis(200)).unwrap();
    assert_eq!(waiting.state(), ClientState::Stopped);
    assert_eq!(waiting.failures(), failures, "no attempt after the stop");
    assert!(!waiting.is_running());
    lost_at_most_once(&log);
}

#[test]
fn a_client_gives_up_after_its_attempt_limit() {
    let mut s = util::net_schedule();
    let (client, _) = client_of(free_addr(), quick().with_max_attempts(Some(3)));
    client.start(&mut *s).unwrap();
    util::run_until(&mut s, "giving up", || {
        client.state() == ClientState::GaveUp
    });
    assert_eq!(client.failures(), 3);
    assert!(!client.is_running());
    s.run_for(Duration::from_millis(20)).unwrap();
    assert!(s.is_empty(), "its tasklet ended");
}

#[test]
fn backoff_waits_stay_within_their_ceilings_and_repeat_with_a_seed() {
    let backoff = Backoff::new()
        .with_initial(Duration::from_millis(100))
        .with_factor(3.0)
        .with_max(Duration::from_secs(2))
        .with_seed(42);
    let waits: Vec<Duration> = backoff.delays().take(40).collect();
    for (attempt, wait) in waits.iter().enumerate() {
        assert!(
            *wait <= backoff.ceiling(attempt as u32),
            "{attempt}: {wait:?}"
        );
    }
    assert_eq!(backoff.ceiling(0), Duration::from_millis(100));
    assert_eq!(backoff.ceiling(1), Duration::from_millis(300));
    assert_eq!(backoff.ceiling(10), Duration::from_secs(2), "capped");
    assert_eq!(waits, backoff.delays().take(40).collect::<Vec<_>>());
    let other: Vec<Duration> = backoff.clone().with_seed(43).delays().take(40).collect();
    assert_ne!(waits, other, "the seed moves the jitter");
    // Full jitter: the waits spread over their range, not all at the ceiling.
    let late: Vec<f64> = waits[10..].iter().map(|w| w.as_secs_f64() / 2.0).collect();
    assert!(
        late.iter().any(|f| *f < 0.5) && late.iter().any(|f| *f > 0.5),
        "{late:?}"
    );
}

/// What an `on_event` callback heard, as short strings.
fn events_of(client: &ReconnectingClient) -> Rc<RefCell<Vec<String>>> {
    let events: Rc<RefCell<Vec<String>>> = Rc::default();
    let sink = Rc::clone(&events);
    client.on_event(move |event| {
        let said = match event {
            ClientEvent::Connecting { attempt } => format!("connecting {attempt}"),
            ClientEvent::ConnectFailed { error, attempt } => {
                format!("failed {attempt}: {error}")
            }
            ClientEvent::Connected { peer } => format!("connected {peer}"),
            ClientEvent::Disconnected { ended } => format!("disconnected: {ended}"),
            ClientEvent::Waiting { wait, attempt } => format!("waiting {attempt} {wait:?}"),
            ClientEvent::GaveUp { attempts } => format!("gave up {attempts}"),
            other => format!("{other:?}"),
        };
        sink.borrow_mut().push(said);
    });
    events
}

fn heard(events: &Rc<RefCell<Vec<String>>>, what: &str) -> usize {
    events
        .borrow()
        .iter()
        .filter(|e| e.starts_with(what))
        .count()
}

#[test]
fn events_tell_each_failed_connect_and_each_wait_then_the_connection() {
    let mut s = util::net_schedule();
    let addr = free_addr();
    // Waits of a few milliseconds: `state()` polled between ticks would miss most.
    let backoff = Backoff::new()
        .with_initial(Duration::from_millis(2))
        .with_max(Duration::from_millis(4))
        .with_seed(3);
    let (client, log) = client_of(addr, backoff);
    let events = events_of(&client);
    client.start(&mut *s).unwrap();
    util::run_until(&mut s, "three failed connects", || {
        heard(&events, "failed") >= 3
    });
    {
        let events = events.borrow();
        let failed: Vec<&String> = events.iter().filter(|e| e.starts_with("failed")).collect();
        assert!(
            failed[0].starts_with("failed 1: ") && failed[0].contains("refused"),
            "the error is told: {events:?}"
        );
        assert!(failed[1].starts_with("failed 2: "), "{events:?}");
        // Each failure is followed by its wait, then the next attempt.
        let first = events
            .iter()
            .position(|e| e.starts_with("failed 1"))
            .unwrap();
        assert!(events[first + 1].starts_with("waiting 1 "), "{events:?}");
        assert_eq!(events[first + 2], "connecting 1", "{events:?}");
    }
    let (sides, _server_log, _) = Sides::new(Mode::Echo, false);
    serve(&mut s, addr, sides);
    util::run_until(&mut s, "the connected event", || {
        heard(&events, "connected") == 1
    });
    assert_eq!(
        events
            .borrow()
            .iter()
            .rev()
            .find(|e| e.starts_with("connected")),
        Some(&format!("connected {addr}"))
    );
    util::run_until(&mut s, "the echo of ooxx", || {
        count(&log, "frame ooxx") == 1
    });
    client.stop();
}

#[test]
fn a_panicking_event_callback_does_not_stop_the_client() {
    util::panics_expected();
    let mut s = util::net_schedule();
    let addr = free_addr();
    let (client, _log) = client_of(addr, quick());
    let calls = Rc::new(Cell::new(0));
    let c = Rc::clone(&calls);
    client.on_event(move |_| {
        c.set(c.get() + 1);
        panic!("a careless callback");
    });
    client.start(&mut *s).unwrap();
    util::run_until(&mut s, "two failed attempts", || client.failures() >= 2);
    assert!(client.is_running());
    assert!(calls.get() >= 4, "still called: {}", calls.get());
    client.stop();
}

#[test]
fn waits_of_duration_max_mean_wait_until_stopped() {
    let mut s = util::net_schedule();
    let addr = free_addr();
    let backoff = Backoff::new()
        .with_initial(Duration::MAX)
        .with_max(Duration::MAX)
        .with_stable_after(Duration::MAX)
        // The first wait is 0.88 × Duration::MAX: past what an `Instant` can count.
        .with_seed(0);
    let delays: Vec<Duration> = backoff.delays().take(50).collect();
    assert!(
        delays.iter().all(|d| *d > Duration::from_secs(3600)),
        "{delays:?}"
    );
    let (client, _log) = client_of(addr, backoff);
    let events = events_of(&client);
    client.start(&mut *s).unwrap();
    // `Instant::now() + wait` panicked here.
    util::run_until(&mut s, "the wait after the refused connect", || {
        matches!(client.state(), ClientState::Waiting { .. })
    });
    for _ in 0..20 {
        s.tick_within(Duration::from_millis(2)).unwrap();
    }
    assert_eq!(client.failures(), 1, "no second attempt");
    let ClientState::Waiting { until, .. } = client.state() else {
        panic!("waiting: {:?}", client.state())
    };
    assert!(until > Instant::now() + Duration::from_secs(3600 * 24 * 365));
    assert_eq!(heard(&events, "waiting 1 "), 1, "{:?}", events.borrow());
    client.stop();
    assert_eq!(client.state(), ClientState::Stopped);
    s.tick_within(Duration::from_millis(2)).unwrap();
    assert!(!client.is_running());
}
