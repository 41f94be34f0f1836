//! A channel from other threads to a tasklet: every value arrives once and in order, a full
//! channel holds the senders back, closing from either side is seen by the other, and a send
//! wakes a schedule blocked in `run()` beside an idle network plugin.

mod util;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use fibra::net::{NetExt, NetPlugin};
use fibra::rt::Schedule;
use fibra::tasks::{remote_channel, TasksExt, TasksPlugin, TryReceiveError, TrySendError};

/// Runs `scenario` on its own thread; fails if it does not end within 30 s.
fn bounded<T: Send + 'static>(scenario: impl FnOnce() -> T + Send + 'static) -> T {
    util::on_thread_within("the schedule (a send did not wake it?)", 30, scenario)
}

#[test]
fn values_from_several_threads_arrive_once_each_and_in_order_per_thread() {
    let seen = bounded(|| {
        let mut s = Schedule::new();
        let (tx, rx) = remote_channel::<(u32, u32)>(&s.remote(), 16);
        let seen = Rc::new(RefCell::new(Vec::new()));
        let out = seen.clone();
        s.spawn(move |h| {
            while let Some(v) = rx.receive(h) {
                out.borrow_mut().push(v);
            }
        })
        .unwrap();
        let producers: Vec<_> = (0..4)
            .map(|t| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        tx.send((t, i)).unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        s.run().unwrap();
        for p in producers {
            p.join().unwrap();
        }
        seen.take()
    });
    assert_eq!(seen.len(), 8_000);
    for t in 0..4 {
        let mine: Vec<u32> = seen.iter().filter(|v| v.0 == t).map(|v| v.1).collect();
        assert_eq!(mine, (0..2_000).collect::<Vec<_>>(), "thread {t}");
    }
}

#[test]
fn a_send_wakes_a_run_blocked_beside_an_idle_network() {
    let got = bounded(|| {
        let mut s = Schedule::new();
        s.add_plugin(TasksPlugin::new()).unwrap();
        s.add_plugin(NetPlugin::new().unwrap()).unwrap();
        let listener = s
            .spawn(|h| {
                let listener = h.listen("127.0.0.1:0").unwrap();
                let _ = h.accept(&listener);
            })
            .unwrap();
        let (tx, rx) = remote_channel::<String>(&s.remote(), 4);
        let got = Rc::new(RefCell::new(Vec::new()));
        let g = got.clone();
        s.spawn(move |h| {
            while let Some(line) = rx.receive(h) {
                g.borrow_mut().push(line);
            }
            h.kill(listener);
        })
        .unwrap();
        let sender = std::thread::spawn(move || {
            for word in ["one", "two", "three"] {
                std::thread::sleep(Duration::from_millis(20));
                tx.send(word.to_owned()).unwrap();
            }
        });
        s.run().unwrap();
        sender.join().unwrap();
        got.take()
    });
    assert_eq!(got, ["one", "two", "three"]);
}

#[test]
fn a_full_channel_holds_senders_back_and_loses_nothing() {
    let mut s = Schedule::new();
    let (tx, rx) = remote_channel::<u32>(&s.remote(), 2);
    tx.try_send(1).unwrap();
    tx.try_send(2).unwrap();
    assert!(matches!(tx.try_send(3), Err(TrySendError::Full(3))));
    assert_eq!(tx.len(), 2);
    // A blocking send waits for room, made by the tasklet below.
    let blocked = std::thread::spawn(move || {
        tx.send(3).unwrap();
        tx.send(4).unwrap();
    });
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    s.spawn(move |h| {
        while let Some(v) = rx.receive(h) {
            g.borrow_mut().push(v);
        }
    })
    .unwrap();
    util::run_all(&mut s, 30);
    blocked.join().unwrap();
    assert_eq!(*got.borrow(), [1, 2, 3, 4]);
}

#[test]
fn closing_is_seen_on_both_sides() {
    let mut s = Schedule::new();
    let (tx, rx) = remote_channel::<u32>(&s.remote(), 8);
    tx.send(7).unwrap();
    tx.close();
    assert!(tx.is_closed());
    assert_eq!(tx.send(8).unwrap_err().0, 8);
    // What was queued before the close still arrives, then the end.
    assert_eq!(rx.try_receive(), Ok(7));
    assert_eq!(rx.try_receive(), Err(TryReceiveError::Closed));

    let (tx, rx) = remote_channel::<u32>(&s.remote(), 8);
    drop(rx);
    assert!(matches!(tx.try_send(1), Err(TrySendError::Closed(1))));

    // A receiver parked when the last sender goes away wakes with `None`.
    let (tx, rx) = remote_channel::<u32>(&s.remote(), 8);
    let ended = Rc::new(RefCell::new(false));
    let e = ended.clone();
    s.spawn(move |h| {
        assert_eq!(rx.receive(h), None);
        *e.borrow_mut() = true;
    })
    .unwrap();
    s.tick().unwrap();
    let dropper = std::thread::spawn(move || drop(tx));
    util::run_all(&mut s, 30);
    dropper.join().unwrap();
    assert!(*ended.borrow());
}

#[test]
fn receive_many_moves_a_batch_under_one_lock() {
    let mut s = Schedule::new();
    let (tx, rx) = remote_channel::<u32>(&s.remote(), 100);
    for v in 0..10 {
        tx.try_send(v).unwrap();
    }
    drop(tx);
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    s.spawn(move |h| {
        let mut batch = Vec::new();
        assert_eq!(rx.receive_many(h, &mut batch, 4), 4);
        assert_eq!(rx.receive_many(h, &mut batch, 100), 6);
        assert_eq!(rx.receive_many(h, &mut batch, 100), 0);
        *g.borrow_mut() = batch;
    })
    .unwrap();
    s.run().unwrap();
    assert_eq!(*got.borrow(), (0..10).collect::<Vec<_>>());
}

#[test]
fn a_killed_receiver_leaves_the_senders_an_error_not_a_hang() {
    let mut s = Schedule::new();
    s.add_plugin(TasksPlugin::new()).unwrap();
    let (tx, rx) = remote_channel::<u32>(&s.remote(), 1);
    let receiver = s
        .spawn(move |h| {
            let _rx = rx;
            h.sleep(Duration::from_secs(3600));
        })
        .unwrap();
    tx.try_send(1).unwrap();
    // A sender blocked on the full channel is released by the receiver's end.
    let blocked = std::thread::spawn(move || tx.send(2));
    s.tick().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert!(s.kill(receiver));
    assert_eq!(blocked.join().unwrap().unwrap_err().0, 2);
}

/// Two tasklets sharing one receiver (through an `Rc`) both get values: no borrow is held
/// while one of them is parked.
#[test]
fn a_receiver_shared_by_two_tasklets_serves_both() {
    let mut s = Schedule::new();
    s.add_plugin(TasksPlugin::new()).unwrap();
    let (tx, rx) = remote_channel::<u32>(&s.remote(), 8);
    let rx = Rc::new(rx);
    let got = Rc::new(RefCell::new(Vec::new()));
    for _ in 0..2 {
        let (rx, got) = (rx.clone(), got.clone());
        s.spawn(move |h| {
            while let Some(v) = rx.receive(h) {
                got.borrow_mut().push(v);
                h.yield_now(); // let the other receiver in
            }
        })
        .unwrap();
    }
    s.tick().unwrap();
    let sender = std::thread::spawn(move || {
        for v in 0..100 {
            tx.send(v).unwrap();
        }
    });
    drop(rx);
    util::run_all(&mut s, 30);
    sender.join().unwrap();
    let mut got = got.take();
    got.sort();
    assert_eq!(got, (0..100).collect::<Vec<_>>());
}

/// A receiver killed while parked leaves the wait list: the wake-up of the next send goes to
/// the live one sharing the receiver, not to the dead one.
#[test]
fn a_killed_waiter_does_not_take_the_wake_up_of_a_live_one() {
    let mut s = Schedule::new();
    let (tx, rx) = remote_channel::<u32>(&s.remote(), 8);
    let rx = Rc::new(rx);
    let got = Rc::new(RefCell::new(Vec::new()));
    let first = {
        let rx = rx.clone();
        s.spawn(move |h| {
            let _ = rx.receive(h);
        })
        .unwrap()
    };
    s.tick().unwrap(); // the first parks, first in the wait list
    {
        let (rx, got) = (rx.clone(), got.clone());
        s.spawn(move |h| got.borrow_mut().extend(rx.receive(h)))
            .unwrap();
    }
    s.tick().unwrap();
    assert!(s.kill(first));
    drop(rx);
    // A sender stays alive, so only the send itself can wake the live receiver.
    let keep = tx.clone();
    let sender = std::thread::spawn(move || tx.send(5).unwrap());
    util::run_all(&mut s, 30);
    sender.join().unwrap();
    drop(keep);
    assert_eq!(*got.borrow(), [5]);
}

/// Schedule-to-schedule: two sending schedules park their tasklets on a full channel of 4 to
/// a third; each sender's values arrive in order, the queue never holds more than its bound,
/// and a close ends a parked sender with its value back.
#[test]
fn tasklets_of_other_schedules_park_on_a_full_channel_and_keep_their_order() {
    use std::sync::{Arc, Mutex};
    let (tx, rx) = std::sync::mpsc::channel();
    let rx = Mutex::new(rx);
    let got = Arc::new(Mutex::new(Vec::new()));
    let most = Arc::new(Mutex::new(0usize));
    let refused = Arc::new(Mutex::new(0usize));
    let (seen, peak, back) = (got.clone(), most.clone(), refused.clone());
    let cores = fibra::rt::Cores::start(3, false, move |index, s| {
        s.add_plugin(fibra::tasks::TasksPlugin::new())?;
        if index == 0 {
            let (sender, receiver) = fibra::tasks::remote_channel::<(usize, u32)>(&s.remote(), 4);
            tx.send(sender.clone()).unwrap();
            tx.send(sender).unwrap();
            let (seen, peak) = (seen.clone(), peak.clone());
            s.spawn(move |h| {
                for _ in 0..4000 {
                    let Some(v) = receiver.receive(h) else { break };
                    let queued = receiver.len();
                    let mut most = peak.lock().unwrap();
                    *most = (*most).max(queued);
                    seen.lock().unwrap().push(v);
                    if v.1 % 97 == 0 {
                        fibra::tasks::TasksExt::yield_now(h); // let the senders fill it up
                    }
                }
                // Stop receiving: the close ends the senders still parked.
                receiver.close();
                drop(receiver);
            })?;
        } else {
            let sender = rx.lock().unwrap().recv().unwrap();
            let back = back.clone();
            s.spawn(move |h| {
                for v in 0..u32::MAX {
                    if sender.send_parking(h, (index, v)).is_err() {
                        *back.lock().unwrap() += 1;
                        return;
                    }
                }
            })?;
        }
        Ok(())
    })
    .unwrap();
    cores.join().unwrap();
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 4000);
    for sender in [1, 2] {
        let values: Vec<u32> = got.iter().filter(|v| v.0 == sender).map(|v| v.1).collect();
        assert!(!values.is_empty(), "sender {sender} was heard");
        assert!(
            values.windows(2).all(|w| w[1] == w[0] + 1),
            "sender {sender} in order"
        );
    }
    // At most 4 wait for the receiver, and at most 4 more it took in one swap.
    assert!(*most.lock().unwrap() <= 8, "{}", most.lock().unwrap());
    assert_eq!(
        *refused.lock().unwrap(),
        2,
        "both senders ended with their value back"
    );
}

/// A plugin whose poll panics once its fuse is lit: the panic reaches its schedule's thread.
#[derive(Debug)]
struct Bomb(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl fibra::rt::Plugin for Bomb {
    fn register(_: &mut fibra::rt::Router<Self>) {}
    fn poll(
        &mut self,
        _: &mut fibra::rt::Context<'_>,
        _: fibra::rt::Events<'_>,
    ) -> std::io::Result<()> {
        if self.0.load(std::sync::atomic::Ordering::SeqCst) {
            panic!("the receiving schedule blew up");
        }
        Ok(())
    }
}

/// A schedule that dies (a panic reaches its thread) drops its receiver: a tasklet of
/// another schedule parked on the full channel gets its value back, instead of hanging, and
/// the host hears which schedule died.
#[test]
fn a_schedule_that_dies_releases_the_senders_parked_on_it() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    bounded(|| {
        let fuse = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let rx = Mutex::new(rx);
        let outcome = Arc::new(Mutex::new(None));
        let (f, o) = (fuse.clone(), outcome.clone());
        let cores = fibra::rt::Cores::start(2, false, move |index, s| {
            s.add_plugin(fibra::tasks::TasksPlugin::new())?;
            if index == 1 {
                s.add_plugin(Bomb(f.clone()))?;
                let (sender, receiver) = fibra::tasks::remote_channel::<u32>(&s.remote(), 2);
                tx.send(sender).unwrap();
                // Holds the receiver and never reads.
                s.spawn(move |h| {
                    let _receiver = receiver;
                    fibra::tasks::TasksExt::sleep(h, Duration::from_secs(3600));
                })?;
            } else {
                let sender = rx.lock().unwrap().recv().unwrap();
                let o = o.clone();
                s.spawn(move |h| {
                    let mut sent = 0;
                    let refused = loop {
                        match sender.send_parking(h, sent) {
                            Ok(()) => sent += 1,
                            Err(back) => break back.0,
                        }
                    };
                    *o.lock().unwrap() = Some((sent, refused));
                })?;
            }
            Ok(())
        })
        .unwrap();
        std::thread::sleep(Duration::from_millis(50)); // the sender parks on the full channel
        assert_eq!(*outcome.lock().unwrap(), None, "parked, not refused");
        fuse.store(true, Ordering::SeqCst);
        cores.remote(1).unwrap().wake();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while outcome.lock().unwrap().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "the parked sender hangs"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            *outcome.lock().unwrap(),
            Some((2, 2)),
            "two queued, the third back"
        );
        let err = cores.stop().unwrap_err();
        assert!(
            matches!(&err, fibra::rt::Error::Core { index: 1, reason } if reason.contains("blew up")),
            "{err}"
        );
    });
}

/// A receiver made with one schedule's remote and moved to a tasklet of another schedule is
/// woken there (through its own schedule's remote); the tasklet of the first schedule that has
/// the same id is not disturbed.
#[test]
fn a_receiver_moved_to_another_schedule_is_woken_there() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let stop = Arc::new(AtomicBool::new(false));
    let stray = Arc::new(AtomicUsize::new(0));
    // Schedule A makes the channel; its first tasklet parks and counts its wake-ups.
    let (to_b, from_a) = std::sync::mpsc::channel();
    let (a_stop, a_stray) = (stop.clone(), stray.clone());
    let a = std::thread::spawn(move || {
        let mut s = Schedule::new();
        let (tx, rx) = remote_channel::<u32>(&s.remote(), 4);
        let stray = a_stray.clone();
        let a_id = s
            .spawn(move |h| loop {
                h.park();
                stray.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        to_b.send((tx, rx, a_id)).unwrap();
        while !a_stop.load(Ordering::SeqCst) {
            s.tick().unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    let (tx, rx, a_id) = from_a.recv().unwrap();
    // Schedule B's first tasklet (the same id) receives; a thread sends, slowly enough that
    // the receiver parks before each value.
    let got = util::on_thread_within("schedule B (its receiver never woken?)", 10, move || {
        let mut s = Schedule::new();
        let got = Rc::new(RefCell::new(Vec::new()));
        let out = got.clone();
        let b_id = s
            .spawn(move |h| {
                while let Some(v) = rx.receive(h) {
                    out.borrow_mut().push(v);
                }
            })
            .unwrap();
        assert_eq!(a_id, b_id, "the two tasklets share an id");
        let producer = std::thread::spawn(move || {
            for v in 1..=3 {
                std::thread::sleep(Duration::from_millis(20));
                tx.send(v).unwrap();
            }
        });
        s.run().unwrap();
        producer.join().unwrap();
        got.take()
    });
    stop.store(true, Ordering::SeqCst);
    a.join().unwrap();
    assert_eq!(got, [1, 2, 3]);
    assert_eq!(
        stray.load(Ordering::SeqCst),
        0,
        "schedule A's tasklet was woken"
    );
}
