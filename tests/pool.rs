//! `Pool` over real sockets: a back end down at start and then up; a back end that breaks a
//! connection mid-request; all connections busy with waiters served in order; a timeout that
//! says what last went wrong and leaves no late reply behind; kills while waiting and while
//! holding; 1,000 requests from 100 tasklets through a pool of 3.

mod util;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use fibra::net::{Backoff, Conn, ConnOptions, Listener, NetError, NetExt, Pool, PoolStats};
use fibra::rt::{Handle, Schedule, TaskletId};
use fibra::tasks::TasksExt;

/// Quick repairs, so that the tests do not wait seconds.
fn backoff() -> Backoff {
    Backoff::new()
        .with_initial(Duration::from_millis(20))
        .with_max(Duration::from_millis(50))
        .with_stable_after(Duration::ZERO)
        .with_seed(7)
}

/// A network schedule, a listener for the back end, and a pool of `size` connections to it
/// (not started).
fn setup(size: usize) -> (util::TestSchedule, Listener, Pool) {
    let s = util::net_schedule();
    let listener = util::listen(&s);
    let pool = Pool::new(listener.local_addr(), ConnOptions::new(), backoff(), size);
    (s, listener, pool)
}

/// A back end on `listener`: each connection (numbered from 1 in accept order) is served by
/// `serve` on a tasklet of its own.
struct BackEnd {
    accepted: Rc<Cell<u32>>,
    acceptor: TaskletId,
}

impl BackEnd {
    fn start<F>(h: &Handle, listener: Listener, serve: F) -> BackEnd
    where
        F: Fn(&Handle, Conn, u32) + 'static,
    {
        let accepted = Rc::new(Cell::new(0));
        let count = Rc::clone(&accepted);
        let serve = Rc::new(serve);
        let acceptor = h
            .spawn_detached(move |h| {
                while let Ok((conn, _)) = h.accept(&listener) {
                    count.set(count.get() + 1);
                    let n = count.get();
                    let serve = Rc::clone(&serve);
                    h.spawn_detached(move |h| serve(h, conn, n)).unwrap();
                }
            })
            .unwrap();
        BackEnd { accepted, acceptor }
    }

    /// Stops accepting (the connections' tasklets end when the pool closes them).
    fn stop(&self, h: &Handle) {
        h.kill(self.acceptor);
    }
}

/// Answers each line with `<connection>:<line>`.
fn echo(h: &Handle, conn: Conn, n: u32) {
    while let Ok(line) = h.receive_line(&conn) {
        if h.send_line(&conn, &format!("{n}:{line}")).is_err() {
            return;
        }
    }
}

/// The pool's counters once `ready` holds of them, or after 10 s (the caller's assertion
/// then fails with them).
fn stats_when(h: &Handle, pool: &Pool, ready: impl Fn(&PoolStats) -> bool) -> PoolStats {
    for _ in 0..2000 {
        let stats = pool.stats();
        if ready(&stats) {
            return stats;
        }
        h.sleep(Duration::from_millis(5));
    }
    pool.stats()
}

fn free_port() -> SocketAddr {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap()
}

#[test]
fn a_back_end_down_at_start_is_waited_for_and_used_once_up() {
    let mut s = util::net_schedule();
    let addr = free_port();
    let pool = Pool::new(addr, ConnOptions::new(), backoff(), 2);
    pool.start(&mut *s).unwrap();
    assert!(
        pool.is_running(),
        "building and starting never wait for the back end"
    );
    let outcome = Rc::new(RefCell::new(Vec::new()));
    let (p, o) = (pool.clone(), Rc::clone(&outcome));
    s.spawn(move |h| {
        // Down: the request waits its timeout, and says why nothing came.
        let err = p
            .request(h, b"one", Duration::from_millis(150))
            .unwrap_err();
        o.borrow_mut().push(err.to_string());
        assert!(matches!(err, NetError::PoolTimedOut(_)), "{err:?}");
        assert_eq!(p.stats().idle + p.stats().busy, 0);
        // Up: the keepers' next attempts find it.
        let listener = h.listen(addr).expect("the port is free again");
        let back = BackEnd::start(h, listener, echo);
        let reply = p.request(h, b"two", Duration::from_secs(5)).unwrap();
        o.borrow_mut().push(String::from_utf8(reply).unwrap());
        p.stop();
        back.stop(h);
    })
    .unwrap();
    util::run_until(&mut s, "the two requests", || outcome.borrow().len() == 2);
    let outcome = outcome.borrow();
    assert!(
        outcome[0].contains("waiting for a free connection") && outcome[0].contains("refused"),
        "the timeout names the last failure: {}",
        outcome[0]
    );
    assert!(outcome[1].ends_with(":two"), "{}", outcome[1]);
}

#[test]
fn a_connection_broken_mid_request_is_dropped_and_repaired() {
    let mut s = util::net_schedule();
    let listener = util::listen(&s);
    let addr = listener.local_addr();
    let pool = Pool::new(addr, ConnOptions::new(), backoff(), 1);
    let outcome = Rc::new(RefCell::new(Vec::new()));
    let (p, o) = (pool.clone(), Rc::clone(&outcome));
    s.spawn(move |h| {
        // The first connection is reset after the request arrives; later ones echo.
        let back = BackEnd::start(h, listener, |h, conn, n| {
            if n == 1 {
                let _ = h.receive_line(&conn);
                h.abort(&conn);
            } else {
                echo(h, conn, n);
            }
        });
        p.start(h).unwrap();
        let err = p.request(h, b"doomed", Duration::from_secs(5)).unwrap_err();
        assert!(matches!(err, NetError::PoolBroken { .. }), "{err:?}");
        o.borrow_mut().push(err.to_string());
        let reply = p.request(h, b"again", Duration::from_secs(5)).unwrap();
        o.borrow_mut().push(String::from_utf8(reply).unwrap());
        let stats = p.stats();
        assert_eq!((stats.broken, stats.repaired), (1, 1), "{stats:?}");
        p.stop();
        back.stop(h);
    })
    .unwrap();
    util::run_until(&mut s, "both requests", || outcome.borrow().len() == 2);
    let outcome = outcome.borrow();
    assert!(
        outcome[0].contains("broke during the request"),
        "{}",
        outcome[0]
    );
    assert!(outcome[0].contains("reset"), "{}", outcome[0]);
    assert_eq!(
        outcome[1], "2:again",
        "the broken connection was not lent again"
    );
}

#[test]
fn waiters_are_served_first_come_first_served_while_all_are_busy() {
    let (mut s, listener, pool) = setup(1);
    let order = Rc::new(RefCell::new(Vec::new()));
    let most_waiting = Rc::new(Cell::new(0));
    let (p, o, w) = (pool.clone(), Rc::clone(&order), Rc::clone(&most_waiting));
    s.spawn(move |h| {
        let back = BackEnd::start(h, listener, |h, conn, _| {
            while let Ok(line) = h.receive_line(&conn) {
                h.sleep(Duration::from_millis(20));
                h.send_line(&conn, &line).unwrap();
            }
        });
        p.start(h).unwrap();
        let mut joins = Vec::new();
        for i in 0..6 {
            let (p, o, w) = (p.clone(), Rc::clone(&o), Rc::clone(&w));
            joins.push(
                h.spawn(move |h| {
                    w.set(w.get().max(p.stats().waiting));
                    let reply = p.request(h, format!("{i}").as_bytes(), Duration::from_secs(5));
                    o.borrow_mut()
                        .push(String::from_utf8(reply.unwrap()).unwrap());
                })
                .unwrap(),
            );
            // Each asks after the one before it is in line.
            h.yield_now();
        }
        for join in joins {
            h.join(join).unwrap();
        }
        let stats = p.stats();
        assert_eq!(
            (stats.busy, stats.waiting, stats.idle),
            (0, 0, 1),
            "{stats:?}"
        );
        p.stop();
        back.stop(h);
    })
    .unwrap();
    util::run_all(&mut s, 20);
    assert_eq!(*order.borrow(), ["0", "1", "2", "3", "4", "5"]);
    assert!(most_waiting.get() >= 4, "the later requests waited in line");
}

#[test]
fn a_timed_out_request_says_why_and_its_late_reply_reaches_nobody() {
    let (mut s, listener, pool) = setup(1);
    let outcome = Rc::new(RefCell::new(Vec::new()));
    let (p, o) = (pool.clone(), Rc::clone(&outcome));
    s.spawn(move |h| {
        // The first connection answers 300 ms late; the second at once.
        let back = BackEnd::start(h, listener, |h, conn, n| {
            while let Ok(line) = h.receive_line(&conn) {
                if n == 1 {
                    h.sleep(Duration::from_millis(300));
                    let _ = h.send_line(&conn, "late");
                } else {
                    let _ = h.send_line(&conn, &format!("fresh {line}"));
                }
            }
        });
        p.start(h).unwrap();
        let err = p
            .request(h, b"slow", Duration::from_millis(100))
            .unwrap_err();
        o.borrow_mut().push(err.to_string());
        h.sleep(Duration::from_millis(300));
        let reply = p.request(h, b"next", Duration::from_secs(5)).unwrap();
        o.borrow_mut().push(String::from_utf8(reply).unwrap());
        assert_eq!(p.stats().broken, 1, "the timed-out connection was dropped");
        p.stop();
        back.stop(h);
    })
    .unwrap();
    util::run_until(&mut s, "both requests", || outcome.borrow().len() == 2);
    let outcome = outcome.borrow();
    assert!(
        outcome[0].contains("waiting for the reply") && outcome[0].contains("no reply from"),
        "{}",
        outcome[0]
    );
    assert_eq!(outcome[1], "fresh next");
}

#[test]
fn bytes_nobody_asked_for_never_reach_the_next_request() {
    let (mut s, listener, pool) = setup(1);
    let replies = Rc::new(RefCell::new(Vec::new()));
    let (p, r) = (pool.clone(), Rc::clone(&replies));
    // Strays written to the socket so far.
    let strays = Rc::new(Cell::new(0));
    let written = Rc::clone(&strays);
    s.spawn(move |h| {
        // Connection 1 sends a second line with its reply, in one write; connection 2 sends
        // one 30 ms after its reply, while idle; connection 3 answers as asked.
        let back = BackEnd::start(h, listener, move |h, conn, n| {
            while let Ok(line) = h.receive_line(&conn) {
                let sent = match n {
                    1 => h.send(&conn, format!("1:{line}\n1:extra\n").as_bytes()),
                    2 => h.send_line(&conn, &format!("2:{line}")).and_then(|()| {
                        h.sleep(Duration::from_millis(30));
                        h.send_line(&conn, "2:unasked")
                    }),
                    _ => h.send_line(&conn, &format!("{n}:{line}")),
                };
                if sent.and_then(|()| h.flush(&conn)).is_err() {
                    return;
                }
                if n < 3 {
                    written.set(written.get() + 1);
                }
            }
        });
        p.start(h).unwrap();
        for (i, frame) in ["a", "b", "c", "d"].into_iter().enumerate() {
            let reply = p
                .request(h, frame.as_bytes(), Duration::from_secs(5))
                .unwrap();
            r.borrow_mut().push(String::from_utf8(reply).unwrap());
            // The stray is on the socket; two poll rounds later it was read ahead.
            while strays.get() < (i + 1).min(2) {
                h.sleep(Duration::from_millis(5));
            }
            h.sleep(Duration::from_millis(10));
            h.sleep(Duration::from_millis(10));
        }
        let stats = p.stats();
        assert_eq!((stats.broken, stats.repaired), (2, 2), "{stats:?}");
        let why = p.last_error().unwrap_or_default();
        assert!(why.contains("nobody asked for"), "{why}");
        p.stop();
        back.stop(h);
    })
    .unwrap();
    util::run_until(&mut s, "four requests", || replies.borrow().len() == 4);
    assert_eq!(*replies.borrow(), ["1:a", "2:b", "3:c", "3:d"]);
}

#[test]
fn killed_requesters_give_their_connections_back() {
    let (mut s, listener, pool) = setup(1);
    let done = Rc::new(RefCell::new(Vec::new()));
    let (p, d) = (pool.clone(), Rc::clone(&done));
    s.spawn(move |h| {
        let back = BackEnd::start(h, listener, |h, conn, n| {
            while let Ok(line) = h.receive_line(&conn) {
                if line == "hang" {
                    continue;
                }
                if line == "wait" {
                    h.sleep(Duration::from_millis(30));
                }
                let _ = h.send_line(&conn, &format!("{n}:{line}"));
            }
        });
        p.start(h).unwrap();
        // A holder whose back end never answers, and a waiter behind it.
        let holder = {
            let p = p.clone();
            h.spawn(move |h| {
                let _ = p.request(h, b"hang", Duration::from_secs(60));
                unreachable!("killed while holding");
            })
            .unwrap()
        };
        h.yield_now();
        let waiter = {
            let p = p.clone();
            h.spawn(move |h| {
                let _ = p.request(h, b"never", Duration::from_secs(60));
                unreachable!("killed while waiting");
            })
            .unwrap()
        };
        // Once the pool's connection is up, the holder has it and the waiter waits.
        let stats = stats_when(h, &p, |s| (s.busy, s.waiting) == (1, 1));
        assert_eq!((stats.busy, stats.waiting), (1, 1), "{stats:?}");
        // Killed in line: it leaves the line, the holder keeps its connection.
        assert!(h.kill(waiter.id()));
        let stats = p.stats();
        assert_eq!((stats.busy, stats.waiting), (1, 0), "{stats:?}");
        // Killed after sending: its connection is dropped (its reply may still come) and
        // opened again.
        assert!(h.kill(holder.id()));
        let reply = p.request(h, b"after", Duration::from_secs(5)).unwrap();
        d.borrow_mut().push(String::from_utf8(reply).unwrap());
        assert_eq!(back.accepted.get(), 2);
        // Granted the connection and killed before it ran: the grant goes back as it was,
        // and the next request uses that same connection.
        let queued = Rc::new(Cell::new(None));
        let releaser = {
            let (p, q) = (p.clone(), Rc::clone(&queued));
            h.spawn(move |h| {
                let reply = p.request(h, b"wait", Duration::from_secs(5)).unwrap();
                assert_eq!(p.stats().busy, 1, "handed to the waiter in line");
                assert!(h.kill(q.get().unwrap()));
                reply
            })
            .unwrap()
        };
        h.yield_now();
        let granted = {
            let p = p.clone();
            h.spawn(move |h| {
                let _ = p.request(h, b"never", Duration::from_secs(60));
                unreachable!("killed before it used its grant");
            })
            .unwrap()
        };
        queued.set(Some(granted.id()));
        let reply = h.join(releaser).unwrap();
        d.borrow_mut().push(String::from_utf8(reply).unwrap());
        let reply = p.request(h, b"last", Duration::from_secs(5)).unwrap();
        d.borrow_mut().push(String::from_utf8(reply).unwrap());
        let stats = p.stats();
        assert_eq!(
            (stats.broken, stats.repaired, stats.idle),
            (1, 1, 1),
            "{stats:?}"
        );
        p.stop();
        back.stop(h);
    })
    .unwrap();
    util::run_until(&mut s, "the requests after the kills", || {
        done.borrow().len() == 3
    });
    assert_eq!(*done.borrow(), ["2:after", "2:wait", "2:last"]);
}

#[test]
fn a_thousand_requests_from_a_hundred_tasklets_through_a_pool_of_three() {
    let (mut s, listener, pool) = setup(3);
    let answered = Rc::new(Cell::new(0u32));
    let per_conn = Rc::new(RefCell::new([0u32; 4]));
    let (p, a, c) = (pool.clone(), Rc::clone(&answered), Rc::clone(&per_conn));
    s.spawn(move |h| {
        let back = BackEnd::start(h, listener, echo);
        p.start(h).unwrap();
        let mut joins = Vec::new();
        for t in 0..100 {
            let (p, a, c) = (p.clone(), Rc::clone(&a), Rc::clone(&c));
            joins.push(
                h.spawn(move |h| {
                    for r in 0..10 {
                        let ask = format!("t{t} r{r}");
                        let reply = p
                            .request(h, ask.as_bytes(), Duration::from_secs(10))
                            .unwrap();
                        let reply = String::from_utf8(reply).unwrap();
                        let (n, echoed) = reply.split_once(':').unwrap();
                        assert_eq!(echoed, ask, "each reply is its own request's");
                        c.borrow_mut()[n.parse::<usize>().unwrap()] += 1;
                        a.set(a.get() + 1);
                    }
                })
                .unwrap(),
            );
        }
        for join in joins {
            h.join(join).unwrap();
        }
        assert_eq!(back.accepted.get(), 3, "three connections, no more");
        let stats = p.stats();
        assert_eq!((stats.idle, stats.broken), (3, 0), "{stats:?}");
        p.stop();
        back.stop(h);
    })
    .unwrap();
    util::run_all(&mut s, 30);
    assert_eq!(answered.get(), 1000);
    let per_conn = per_conn.borrow();
    assert!(
        per_conn[1..].iter().all(|&n| n > 0),
        "every connection served requests: {per_conn:?}"
    );
}

#[test]
fn a_stopped_pool_refuses_requests_and_its_waiters_are_told() {
    let mut s = util::net_schedule();
    let pool = Pool::new(free_port(), ConnOptions::new(), backoff(), 1);
    let outcome = Rc::new(RefCell::new(Vec::new()));
    let (p, o) = (pool.clone(), Rc::clone(&outcome));
    s.spawn(move |h: &Handle| {
        let err = p.request(h, b"x", Duration::from_secs(1)).unwrap_err();
        o.borrow_mut().push(err.to_string());
        p.start(h).unwrap();
        let waiting = {
            let (p, o) = (p.clone(), Rc::clone(&o));
            h.spawn(move |h| {
                let err = p.request(h, b"y", Duration::from_secs(60)).unwrap_err();
                o.borrow_mut().push(err.to_string());
            })
            .unwrap()
        };
        h.sleep(Duration::from_millis(30));
        p.stop();
        h.join(waiting).unwrap();
    })
    .unwrap();
    run(&mut s);
    let outcome = outcome.borrow();
    assert_eq!(outcome.len(), 2);
    assert!(
        outcome.iter().all(|e| e.contains("not running")),
        "{outcome:?}"
    );
}

fn run(s: &mut Schedule) {
    util::run_all(s, 20);
}

#[test]
fn a_request_with_duration_max_means_no_timeout() {
    let mut s = util::net_schedule();
    let outcome = Rc::new(RefCell::new(Vec::new()));
    let o = Rc::clone(&outcome);
    s.spawn(move |h| {
        let listener = h.listen("127.0.0.1:0").unwrap();
        let addr = listener.local_addr();
        let back = BackEnd::start(h, listener, echo);
        let pool = Pool::new(addr, ConnOptions::new(), backoff(), 1);
        pool.start(h).unwrap();
        // `Instant::now() + Duration::MAX` panicked here: "never" is no deadline.
        let reply = pool.request(h, b"one", Duration::MAX).unwrap();
        o.borrow_mut().push(String::from_utf8(reply).unwrap());
        // The one connection is busy: a second request waits in line with no deadline,
        // and is served once the first gives it back.
        let p = pool.clone();
        let o2 = Rc::clone(&o);
        let second = h
            .spawn(move |h| {
                let reply = p.request(h, b"two", Duration::MAX).unwrap();
                o2.borrow_mut().push(String::from_utf8(reply).unwrap());
            })
            .unwrap();
        let reply = pool.request(h, b"three", Duration::MAX).unwrap();
        o.borrow_mut().push(String::from_utf8(reply).unwrap());
        h.join(second).unwrap();
        pool.stop();
        back.stop(h);
    })
    .unwrap();
    run(&mut s);
    let mut outcome = outcome.borrow().clone();
    outcome.sort();
    assert_eq!(outcome, ["1:one", "1:three", "1:two"]);
}
