//! Channels: 10,000 tasklets ping-ponging, backpressure, close.

use std::cell::Cell;
use std::rc::Rc;

use fibra::rt::Schedule;
use fibra::tasks::{bounded, channel, TasksExt, TasksPlugin, TryReceiveError, TrySendError};

#[test]
fn ten_thousand_tasklets_ping_pong_over_channels() {
    const PAIRS: usize = 5_000;
    const ROUNDS: u32 = 20;
    let mut s = Schedule::builder().stack_size(16 * 1024).build();
    s.add_plugin(TasksPlugin::new()).unwrap();
    let finished = Rc::new(Cell::new(0usize));
    for pair in 0..PAIRS {
        let (ping_tx, ping_rx) = if pair % 2 == 0 { channel() } else { bounded(1) };
        let (pong_tx, pong_rx) = channel::<u32>();
        let f = finished.clone();
        s.spawn(move |h| {
            for round in 0..ROUNDS {
                ping_tx.send(h, round).unwrap();
                assert_eq!(pong_rx.receive(h), Some(round + 1));
            }
            f.set(f.get() + 1);
        })
        .unwrap();
        let f = finished.clone();
        s.spawn(move |h| {
            while let Some(v) = ping_rx.receive(h) {
                pong_tx.send(h, v + 1).unwrap();
            }
            f.set(f.get() + 1);
        })
        .unwrap();
    }
    assert_eq!(s.len(), 2 * PAIRS);
    s.run().unwrap();
    assert_eq!(finished.get(), 2 * PAIRS);
    assert!(s.is_empty());
}

#[test]
fn a_bounded_channel_parks_senders_until_there_is_room() {
    let mut s = Schedule::new();
    s.add_plugin(TasksPlugin::new()).unwrap();
    let (tx, rx) = bounded::<u32>(2);
    let sent = Rc::new(Cell::new(0));
    let sent2 = sent.clone();
    let probe = tx.clone();
    s.spawn(move |h| {
        for i in 0..10 {
            tx.send(h, i).unwrap();
            sent2.set(i + 1);
        }
    })
    .unwrap();
    s.tick().unwrap();
    assert_eq!(sent.get(), 2, "the sender parks once the channel holds 2");
    assert!(matches!(probe.try_send(99), Err(TrySendError::Full(99))));
    assert_eq!(probe.len(), 2);
    drop(probe);
    let got = Rc::new(std::cell::RefCell::new(Vec::new()));
    let g = got.clone();
    s.spawn(move |h| {
        while let Some(v) = rx.receive(h) {
            g.borrow_mut().push(v);
            h.yield_now();
        }
    })
    .unwrap();
    s.run().unwrap();
    assert_eq!(*got.borrow(), (0..10).collect::<Vec<_>>());
}

#[test]
fn close_drains_then_ends_and_hands_values_back() {
    let mut s = Schedule::new();
    let (tx, rx) = channel::<String>();
    tx.try_send("one".into()).unwrap();
    tx.try_send("two".into()).unwrap();
    rx.close();
    match tx.try_send("three".into()) {
        Err(TrySendError::Closed(v)) => assert_eq!(v, "three"),
        other => panic!("{other:?}"),
    }
    let out = Rc::new(std::cell::RefCell::new(Vec::new()));
    let o = out.clone();
    s.spawn(move |h| {
        while let Some(v) = rx.receive(h) {
            o.borrow_mut().push(v);
        }
        assert_eq!(rx.try_receive(), Err(TryReceiveError::Closed));
        let err = tx.send(h, "four".into()).unwrap_err();
        assert_eq!(err.0, "four");
    })
    .unwrap();
    s.run().unwrap();
    assert_eq!(*out.borrow(), vec!["one", "two"]);
}

#[test]
fn dropping_the_last_sender_wakes_every_receiver() {
    let mut s = Schedule::new();
    s.add_plugin(TasksPlugin::new()).unwrap();
    let (tx, rx) = channel::<u8>();
    let ended = Rc::new(Cell::new(0));
    for _ in 0..3 {
        let rx = rx.clone();
        let e = ended.clone();
        s.spawn(move |h| {
            assert_eq!(rx.receive(h), None);
            e.set(e.get() + 1);
        })
        .unwrap();
    }
    drop(rx);
    s.spawn(move |h| {
        h.yield_now();
        drop(tx);
    })
    .unwrap();
    s.run().unwrap();
    assert_eq!(ended.get(), 3);
}

#[test]
fn a_killed_receiver_passes_its_wake_on() {
    let mut s = Schedule::new();
    s.add_plugin(TasksPlugin::new()).unwrap();
    let (tx, rx) = channel::<u8>();
    let rx2 = rx.clone();
    let first = s
        .spawn(move |h| {
            rx.receive(h);
            unreachable!();
        })
        .unwrap();
    let got = Rc::new(Cell::new(None));
    let g = got.clone();
    s.spawn(move |h| g.set(rx2.receive(h))).unwrap();
    s.tick().unwrap();
    // The value wakes the first receiver, which is killed before it can take it.
    tx.try_send(7).unwrap();
    assert!(s.kill(first));
    s.run().unwrap();
    assert_eq!(got.get(), Some(7));
}

/// `recv`, `try_recv` and `TryRecvError` were renamed to `receive`, `try_receive` and
/// `TryReceiveError` (one verb for receiving, as fibra-net's); the old names still work for
/// one release.
#[test]
#[allow(deprecated)]
fn the_old_recv_names_still_receive() {
    use fibra::tasks::TryRecvError;
    let mut s = Schedule::new();
    s.add_plugin(TasksPlugin::new()).unwrap();
    let (tx, rx) = channel::<u32>();
    let got = Rc::new(Cell::new(None));
    let g = got.clone();
    s.spawn(move |h| {
        tx.send(h, 1).unwrap();
        tx.send(h, 2).unwrap();
        assert_eq!(rx.try_recv(), Ok(1));
        g.set(rx.recv(h));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    })
    .unwrap();
    s.run().unwrap();
    assert_eq!(got.get(), Some(2));

    let (tx, rx) = fibra::tasks::remote_channel::<u32>(&s.remote(), 8);
    for v in 0..4 {
        tx.try_send(v).unwrap();
    }
    drop(tx);
    let got = Rc::new(std::cell::RefCell::new(Vec::new()));
    let g = got.clone();
    s.spawn(move |h| {
        let mut g = g.borrow_mut();
        g.extend(rx.try_recv());
        g.extend(rx.recv(h));
        assert_eq!(rx.recv_many(h, &mut g, 10), 2);
        assert_eq!(rx.recv(h), None);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
    })
    .unwrap();
    s.run().unwrap();
    assert_eq!(*got.borrow(), [0, 1, 2, 3]);
}

/// Two senders wait on a full channel; a receiver makes room and, before the first sender runs,
/// a sender that did not wait takes it. The woken sender finds the channel full again: it must
/// park again, not pass its wake-up to the other waiting sender (which passed it back, the two
/// waking each other for as long as the channel stayed full: a schedule that never slept).
#[test]
fn a_woken_sender_keeps_the_room_made_for_it_and_senders_never_wake_each_other() {
    use fibra::rt::TaskletState;
    use fibra::tasks::Notify;
    use std::time::Duration;

    let mut s = Schedule::new();
    s.add_plugin(TasksPlugin::new()).unwrap();
    let (tx, rx) = bounded::<u32>(1);
    tx.try_send(0).unwrap();
    for v in 1..=2 {
        let tx = tx.clone();
        s.spawn(move |h| tx.send(h, v).unwrap()).unwrap();
    }
    s.tick().unwrap();
    let got = Rc::new(std::cell::RefCell::new(Vec::new()));
    let (g, busy) = (got.clone(), Rc::new(Notify::new()));
    let until = busy.clone();
    s.spawn(move |h| {
        g.borrow_mut().push(rx.try_receive().unwrap()); // room: the first sender is woken
                                                        // The room is kept for it: a sender that did not wait cannot take it (before, it
                                                        // could, and the woken senders then woke each other while the channel stayed full).
        assert!(
            matches!(tx.try_send(3), Err(TrySendError::Full(3))),
            "a sender that did not wait took the room made for a woken one"
        );
        drop(tx);
        until.wait(h); // the receiver busy elsewhere
        while let Some(v) = rx.receive(h) {
            g.borrow_mut().push(v);
        }
    })
    .unwrap();
    for _ in 0..100 {
        s.tick().unwrap();
    }
    let runnable: Vec<_> = s
        .tasklets()
        .filter(|t| t.state == TaskletState::Runnable)
        .map(|t| t.id)
        .collect();
    assert!(
        runnable.is_empty(),
        "tasklets kept waking each other while the channel was full: {runnable:?}"
    );
    busy.notify_one();
    s.run_for(Duration::from_secs(10)).unwrap();
    assert!(s.is_empty());
    // First come, first served.
    assert_eq!(*got.borrow(), [0, 1, 2]);
}

#[test]
fn a_value_sent_to_a_waiting_receiver_is_kept_for_it() {
    let mut s = Schedule::new();
    s.add_plugin(TasksPlugin::new()).unwrap();
    let (tx, rx) = channel::<u32>();
    let got = Rc::new(Cell::new(None));
    let (g, rx_waiting) = (got.clone(), rx.clone());
    s.spawn(move |h| g.set(rx_waiting.receive(h))).unwrap();
    s.tick().unwrap(); // the receiver waits
    s.spawn(move |_h| {
        tx.try_send(7).unwrap(); // wakes the waiting receiver, the value kept for it
        assert_eq!(
            rx.try_receive(),
            Err(TryReceiveError::Empty),
            "a receiver that did not wait took the value sent to a waiting one"
        );
    })
    .unwrap();
    s.run_for(std::time::Duration::from_secs(10)).unwrap();
    assert!(s.is_empty(), "a tasklet is left waiting");
    assert_eq!(got.get(), Some(7));
}
