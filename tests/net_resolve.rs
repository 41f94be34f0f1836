//! Name resolution off the schedule's thread: `connect` and `listen` from a tasklet look a
//! host name up on the blocking pool while the schedule goes on, try every address the name
//! gives in order, and count the lookup in the connect timeout; an IP address is never looked
//! up. Names ending in `.test` are answered by a stand-in resolver (no DNS is used).

mod util;

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use fibra::net::{ConnOptions, NetError, NetExt};
use fibra::tasks::TasksExt;
use util::*;

/// Addresses the stand-in gives for `two.test` (set by the test that uses it).
static TWO: Mutex<Vec<SocketAddr>> = Mutex::new(Vec::new());
/// `slow.test` answers 127.0.0.1 once this is set (or after 10 s: then too late).
static SLOW_GO: AtomicBool = AtomicBool::new(false);
/// `stuck.test` answers once this is set (or after 10 s).
static STUCK_GO: AtomicBool = AtomicBool::new(false);
/// Lookups the stand-in was asked for of an IP address written as text (there must be none).
static IP_LOOKUPS: AtomicUsize = AtomicUsize::new(0);
/// `hang.test` answers once this is set (or after 10 s).
static HANG_GO: AtomicBool = AtomicBool::new(false);
/// Lookups of `here.test`.
static HERE_LOOKUPS: AtomicUsize = AtomicUsize::new(0);

fn wait_for(flag: &AtomicBool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !flag.load(Ordering::SeqCst) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

fn stand_in_resolver() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        fibra::net::set_test_resolver(Some(Arc::new(|host: &str, port: u16| {
            if host.parse::<std::net::IpAddr>().is_ok() {
                IP_LOOKUPS.fetch_add(1, Ordering::SeqCst);
            }
            let local = |port| vec![SocketAddr::from(([127, 0, 0, 1], port))];
            match host {
                "two.test" => Some(Ok(TWO.lock().unwrap().clone())),
                "here.test" => {
                    HERE_LOOKUPS.fetch_add(1, Ordering::SeqCst);
                    Some(Ok(local(port)))
                }
                "fail.test" => Some(Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "fail.test: no such host",
                ))),
                "slow.test" => Some(match wait_for(&SLOW_GO) {
                    true => Ok(local(port)),
                    false => Err(std::io::Error::other(
                        "slow.test: the schedule never ticked",
                    )),
                }),
                "hang.test" => Some(match wait_for(&HANG_GO) {
                    true => Ok(local(port)),
                    false => Err(std::io::Error::other("hang.test: never let go")),
                }),
                "stuck.test" => Some(match wait_for(&STUCK_GO) {
                    true => Ok(local(port)),
                    false => Err(std::io::Error::other(
                        "stuck.test: the connect never gave up",
                    )),
                }),
                _ => None,
            }
        })));
    });
}

/// Runs `main` (and the schedule's other tasklets) to the end; fails the test if `main`
/// panicked (a failed assertion) or anything still runs after 30 s.
fn on_time(s: &mut fibra::rt::Schedule, main: impl FnOnce(&fibra::rt::Handle) + 'static) {
    let ended = Rc::new(Cell::new(false));
    let e = ended.clone();
    s.spawn(move |h| {
        main(h);
        e.set(true);
    })
    .unwrap();
    run_all(s, 30);
    assert!(ended.get(), "the test's main tasklet panicked (see above)");
}

#[test]
fn localhost_connects_whichever_loopback_listens() {
    // Where `localhost` gives ::1 first, its connect is refused and 127.0.0.1 is tried.
    let mut s = net_schedule();
    let listener = listen(&s);
    let port = listener.local_addr().port();
    on_time(&mut s, move |h| {
        let conn = h.connect(format!("localhost:{port}")).unwrap();
        let (served, _) = h.accept(&listener).unwrap();
        h.send_line(&conn, "hi").unwrap();
        assert_eq!(h.receive_line(&served).unwrap(), "hi");
    });
}

#[test]
fn every_address_of_a_name_is_tried_in_order() {
    stand_in_resolver();
    let mut s = net_schedule();
    let listener = listen(&s);
    // The first address refuses (nothing listens on 127.0.0.2 at that port).
    let port = listener.local_addr().port();
    *TWO.lock().unwrap() = vec![
        SocketAddr::from(([127, 0, 0, 2], port)),
        listener.local_addr(),
    ];
    on_time(&mut s, move |h| {
        let conn = h.connect(("two.test", port)).unwrap();
        assert_eq!(conn.peer_addr(), Some(listener.local_addr()));
        let (served, _) = h.accept(&listener).unwrap();
        h.send_line(&conn, "second").unwrap();
        assert_eq!(h.receive_line(&served).unwrap(), "second");
    });
}

#[test]
fn the_schedule_ticks_while_a_name_is_looked_up() {
    stand_in_resolver();
    let mut s = net_schedule();
    let listener = listen(&s);
    let port = listener.local_addr().port();
    let ticks = Rc::new(Cell::new(0u32));
    let t = ticks.clone();
    // The lookup answers only once the ticker has ticked 20 times: were it done on the
    // schedule's thread, the ticker could not tick and the lookup would fail after 10 s.
    s.spawn(move |h| {
        for _ in 0..20 {
            h.sleep(Duration::from_millis(1));
            t.set(t.get() + 1);
        }
        SLOW_GO.store(true, Ordering::SeqCst);
    })
    .unwrap();
    on_time(&mut s, move |h| {
        let conn = h.connect(format!("slow.test:{port}")).unwrap();
        let (_served, _) = h.accept(&listener).unwrap();
        drop(conn);
    });
    assert_eq!(ticks.get(), 20);
}

#[test]
fn the_connect_timeout_counts_the_lookup() {
    stand_in_resolver();
    let mut s = net_schedule();
    let listener = listen(&s);
    let port = listener.local_addr().port();
    on_time(&mut s, move |h| {
        let options = ConnOptions::new().with_connect_timeout(Some(Duration::from_millis(50)));
        let err = h.connect_with(("stuck.test", port), options).unwrap_err();
        STUCK_GO.store(true, Ordering::SeqCst);
        assert!(matches!(err, NetError::TimedOut), "{err}");
        drop(listener);
    });
}

#[test]
fn hung_lookups_never_take_the_threads_of_unblock() {
    stand_in_resolver();
    let mut s = net_schedule();
    on_time(&mut s, |h| {
        // More hung lookups than unblock's pool has threads (16 at most), each given up by
        // its connect after 20 ms.
        let options = ConnOptions::new().with_connect_timeout(Some(Duration::from_millis(20)));
        for _ in 0..20 {
            let err = h
                .connect_with(("hang.test", 9), options.clone())
                .unwrap_err();
            assert!(matches!(err, NetError::TimedOut), "{err}");
        }
        // Blocking work still gets a thread at once.
        let pool = fibra::tasks::BlockingPool::global();
        let got = pool.run_until(h, Instant::now() + Duration::from_secs(5), || 42);
        HANG_GO.store(true, Ordering::SeqCst);
        assert_eq!(
            got.ok(),
            Some(42),
            "unblock's threads were all held by hung lookups"
        );
    });
}

#[test]
fn listen_from_a_tasklet_looks_the_name_up_too_and_ip_addresses_never() {
    stand_in_resolver();
    let mut s = net_schedule();
    on_time(&mut s, |h| {
        let listener = h.listen("127.0.0.1:0").unwrap();
        let conn = h.connect(listener.local_addr()).unwrap();
        let _ = h.connect(format!("127.0.0.1:{}", listener.local_addr().port()));
        drop(conn);
        assert_eq!(
            IP_LOOKUPS.load(Ordering::SeqCst),
            0,
            "an IP address was looked up"
        );
        let named = h.listen("here.test:0").unwrap();
        assert!(named.local_addr().ip().is_loopback());
        assert_eq!(HERE_LOOKUPS.load(Ordering::SeqCst), 1);
        // A lookup that fails is an error, not a hang or a panic.
        let err = h.listen("fail.test:0").unwrap_err();
        assert!(err.to_string().contains("no such host"), "{err}");
    });
}
