//! Cross-thread messages: one thread sends to a tasklet on another thread's schedule through
//! `fibra_tasks::remote_channel`, beside the same traffic between two threads through
//! `std::sync::mpsc::sync_channel` and through a mutex queue with `thread::park`/`unpark`.
//!
//! Two figures, each the median of several runs, measured in this one run:
//! - throughput: messages per second, the sender sending as fast as it can into a channel of
//!   1024 slots (the receiver drains; it parks only when the queue is empty);
//! - wake latency: the time from a send to the receiver holding the value, when the receiver
//!   is parked (the sender waits for an acknowledgement before each next send), so every
//!   message pays a full wake-up: an eventfd write and an `epoll_wait` return for fibra, a
//!   futex wake for std.
//!
//! And the same two figures from a tasklet of one schedule to a tasklet of another (two
//! schedules on two threads, `fibra::rt::Cores`), the sender parking on a full channel with
//! `RemoteSender::send_parking`.
//!
//! Run: `cargo bench -p fibra-bench --bench remote` (`-- --quick` for fewer runs).

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use fibra::rt::Schedule;
use fibra::tasks::remote_channel;

const CAP: usize = 1024;

// ----- throughput --------------------------------------------------------------------------

fn fibra_throughput(n: u64, batch: bool) -> f64 {
    let mut s = Schedule::new();
    let (tx, rx) = remote_channel::<u64>(&s.remote(), CAP);
    let sum = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let out = sum.clone();
    s.spawn(move |h| {
        let mut total = 0u64;
        if batch {
            let mut buf = Vec::with_capacity(CAP);
            while rx.receive_many(h, &mut buf, CAP) > 0 {
                total += buf.drain(..).sum::<u64>();
            }
        } else {
            while let Some(v) = rx.receive(h) {
                total += v;
            }
        }
        out.set(total);
    })
    .unwrap();
    let start = Instant::now();
    let producer = thread::spawn(move || {
        for i in 0..n {
            tx.send(i).unwrap();
        }
    });
    s.run().unwrap();
    let took = start.elapsed();
    producer.join().unwrap();
    assert_eq!(sum.get(), n * (n - 1) / 2);
    n as f64 / took.as_secs_f64()
}

fn mpsc_throughput(n: u64) -> f64 {
    let (tx, rx) = mpsc::sync_channel::<u64>(CAP);
    let start = Instant::now();
    let producer = thread::spawn(move || {
        for i in 0..n {
            tx.send(i).unwrap();
        }
    });
    let consumer = thread::spawn(move || rx.iter().sum::<u64>());
    producer.join().unwrap();
    let sum = consumer.join().unwrap();
    let took = start.elapsed();
    assert_eq!(sum, n * (n - 1) / 2);
    n as f64 / took.as_secs_f64()
}

/// A mutex queue; the receiver parks its thread when the queue is empty, the sender unparks
/// it when it queued into an empty queue.
struct ParkQueue {
    queue: Mutex<(VecDeque<u64>, bool)>,
    receiver: thread::Thread,
}

fn park_throughput(n: u64) -> f64 {
    let (ready_tx, ready_rx) = mpsc::channel();
    let start = Instant::now();
    let consumer = thread::spawn(move || {
        let q = Arc::new(ParkQueue {
            queue: Mutex::new((VecDeque::with_capacity(CAP), false)),
            receiver: thread::current(),
        });
        ready_tx.send(q.clone()).unwrap();
        let mut total = 0u64;
        let mut batch = Vec::with_capacity(CAP);
        loop {
            let done = {
                let mut g = q.queue.lock().unwrap();
                batch.extend(g.0.drain(..));
                g.1 && batch.is_empty()
            };
            if done {
                return total;
            }
            if batch.is_empty() {
                thread::park();
            }
            total += batch.drain(..).sum::<u64>();
        }
    });
    let q = ready_rx.recv().unwrap();
    for i in 0..n {
        loop {
            let mut g = q.queue.lock().unwrap();
            if g.0.len() < CAP {
                let was_empty = g.0.is_empty();
                g.0.push_back(i);
                drop(g);
                if was_empty {
                    q.receiver.unpark();
                }
                break;
            }
            drop(g);
            thread::yield_now();
        }
    }
    q.queue.lock().unwrap().1 = true;
    q.receiver.unpark();
    let sum = consumer.join().unwrap();
    let took = start.elapsed();
    assert_eq!(sum, n * (n - 1) / 2);
    n as f64 / took.as_secs_f64()
}

// ----- wake latency ------------------------------------------------------------------------

/// Median and 99th percentile, in microseconds.
fn percentiles(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let at = |q: f64| v[((v.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    (at(0.5), at(0.99))
}

/// The sender stamps each message and waits for the acknowledgement before the next, with a
/// short pause so that the receiver is parked (in `run()`'s wait) when the message comes.
fn fibra_latency(n: usize) -> (f64, f64) {
    let mut s = Schedule::new();
    let (tx, rx) = remote_channel::<Instant>(&s.remote(), CAP);
    let (ack_tx, ack_rx) = mpsc::channel::<Duration>();
    s.spawn(move |h| {
        while let Some(sent) = rx.receive(h) {
            ack_tx.send(sent.elapsed()).unwrap();
        }
    })
    .unwrap();
    let sender = thread::spawn(move || {
        let mut lat = Vec::with_capacity(n);
        for _ in 0..n {
            pause();
            tx.send(Instant::now()).unwrap();
            lat.push(ack_rx.recv().unwrap());
        }
        lat
    });
    s.run().unwrap();
    percentiles(sender.join().unwrap())
}

fn mpsc_latency(n: usize) -> (f64, f64) {
    let (tx, rx) = mpsc::sync_channel::<Instant>(CAP);
    let (ack_tx, ack_rx) = mpsc::channel::<Duration>();
    let receiver = thread::spawn(move || {
        for sent in rx {
            ack_tx.send(sent.elapsed()).unwrap();
        }
    });
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        pause();
        tx.send(Instant::now()).unwrap();
        lat.push(ack_rx.recv().unwrap());
    }
    drop(tx);
    receiver.join().unwrap();
    percentiles(lat)
}

fn park_latency(n: usize) -> (f64, f64) {
    let slot = Arc::new(Mutex::new(None::<Instant>));
    let (ack_tx, ack_rx) = mpsc::channel::<Duration>();
    let s = slot.clone();
    let receiver = thread::spawn(move || {
        for _ in 0..n {
            let sent = loop {
                if let Some(t) = s.lock().unwrap().take() {
                    break t;
                }
                thread::park();
            };
            ack_tx.send(sent.elapsed()).unwrap();
        }
    });
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        pause();
        *slot.lock().unwrap() = Some(Instant::now());
        receiver.thread().unpark();
        lat.push(ack_rx.recv().unwrap());
    }
    receiver.join().unwrap();
    percentiles(lat)
}

// ----- schedule to schedule ----------------------------------------------------------------

/// Runs `receiver` on schedule 1 and `sender` on schedule 0, joined by a remote channel
/// of `CAP` (made on schedule 1) and a second one back (made on schedule 0).
fn two_schedules<A, B>(sender: A, receiver: B)
where
    A: Fn(
            &fibra::Handle,
            fibra::tasks::RemoteSender<Instant>,
            fibra::tasks::RemoteReceiver<Duration>,
        ) + Send
        + Sync
        + 'static,
    B: Fn(
            &fibra::Handle,
            fibra::tasks::RemoteReceiver<Instant>,
            fibra::tasks::RemoteSender<Duration>,
        ) + Send
        + Sync
        + 'static,
{
    let (to_b, at_b) = mpsc::channel();
    let (to_a, at_a) = mpsc::channel();
    let (at_a, at_b) = (Mutex::new(at_a), Mutex::new(at_b));
    let (sender, receiver) = (Arc::new(sender), Arc::new(receiver));
    let cores = fibra::rt::Cores::start(2, false, move |index, s| {
        s.add_plugin(fibra::tasks::TasksPlugin::new())?;
        if index == 1 {
            let (tx, rx) = remote_channel::<Instant>(&s.remote(), CAP);
            to_a.send(tx).unwrap();
            let ack = at_b.lock().unwrap().recv().unwrap();
            let receiver = receiver.clone();
            s.spawn(move |h| receiver(h, rx, ack))?;
        } else {
            let (ack_tx, ack_rx) = remote_channel::<Duration>(&s.remote(), CAP);
            to_b.send(ack_tx).unwrap();
            let tx = at_a.lock().unwrap().recv().unwrap();
            let sender = sender.clone();
            s.spawn(move |h| sender(h, tx, ack_rx))?;
        }
        Ok(())
    })
    .unwrap();
    cores.join().unwrap();
}

fn sched_throughput(n: u64) -> f64 {
    let elapsed = Arc::new(Mutex::new(Duration::ZERO));
    let out = elapsed.clone();
    two_schedules(
        move |h, tx, ack| {
            let start = Instant::now();
            for _ in 0..n {
                tx.send_parking(h, start).unwrap();
            }
            drop(tx);
            // The receiver says when it has them all.
            let _ = ack.receive(h);
        },
        move |h, rx, ack| {
            let mut start = None;
            let mut got = 0;
            while let Some(t) = rx.receive(h) {
                start.get_or_insert(t);
                got += 1;
            }
            assert_eq!(got, n);
            *out.lock().unwrap() = start.unwrap().elapsed();
            let _ = ack.send_parking(h, Duration::ZERO);
        },
    );
    let elapsed = *elapsed.lock().unwrap();
    n as f64 / elapsed.as_secs_f64()
}

fn sched_latency(n: usize) -> (f64, f64) {
    let lat = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let out = lat.clone();
    two_schedules(
        move |h, tx, ack| {
            for _ in 0..n {
                pause();
                tx.send_parking(h, Instant::now()).unwrap();
                out.lock().unwrap().push(ack.receive(h).unwrap());
            }
        },
        |h, rx, ack| {
            while let Some(sent) = rx.receive(h) {
                ack.send_parking(h, sent.elapsed()).unwrap();
            }
        },
    );
    let lat = std::mem::take(&mut *lat.lock().unwrap());
    percentiles(lat)
}

/// Long enough for the receiver to go back to sleep.
fn pause() {
    let until = Instant::now() + Duration::from_micros(50);
    while Instant::now() < until {
        black_box(());
    }
    thread::sleep(Duration::from_micros(100));
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 3 } else { 7 };
    let n: u64 = if quick { 200_000 } else { 1_000_000 };
    let pings = if quick { 500 } else { 2_000 };
    println!("cross-thread messages ({runs} runs each, alternating; medians)");
    let (mut fib, mut fib_batch, mut std_mpsc, mut park) = (vec![], vec![], vec![], vec![]);
    for _ in 0..runs {
        fib.push(fibra_throughput(n, false));
        fib_batch.push(fibra_throughput(n, true));
        std_mpsc.push(mpsc_throughput(n));
        park.push(park_throughput(n));
    }
    let (fib, fib_batch, std_mpsc, park) = (
        median(fib),
        median(fib_batch),
        median(std_mpsc),
        median(park),
    );
    println!("\nthroughput, {n} u64 messages, channel of {CAP}:");
    println!("  {:<44} {:>12}", "", "msgs/s");
    println!("  {:<44} {:>12.0}", "fibra remote_channel, recv", fib);
    println!(
        "  {:<44} {:>12.0}",
        "fibra remote_channel, recv_many", fib_batch
    );
    println!(
        "  {:<44} {:>12.0}",
        "std::sync::mpsc::sync_channel", std_mpsc
    );
    println!("  {:<44} {:>12.0}", "mutex queue + thread::park", park);
    println!(
        "  ratio fibra/mpsc: recv {:.2}x, recv_many {:.2}x",
        fib / std_mpsc,
        fib_batch / std_mpsc
    );

    let (mut f50, mut f99, mut m50, mut m99, mut p50, mut p99) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..runs.min(5) {
        let (a, b) = fibra_latency(pings);
        f50.push(a);
        f99.push(b);
        let (a, b) = mpsc_latency(pings);
        m50.push(a);
        m99.push(b);
        let (a, b) = park_latency(pings);
        p50.push(a);
        p99.push(b);
    }
    let (f50, f99, m50, m99, p50, p99) = (
        median(f50),
        median(f99),
        median(m50),
        median(m99),
        median(p50),
        median(p99),
    );
    println!("\nwake latency, receiver parked, {pings} pings per run:");
    println!("  {:<44} {:>9} {:>9}", "", "p50 µs", "p99 µs");
    println!(
        "  {:<44} {:>9.1} {:>9.1}",
        "fibra remote_channel (run() in epoll)", f50, f99
    );
    println!(
        "  {:<44} {:>9.1} {:>9.1}",
        "std::sync::mpsc (thread in futex)", m50, m99
    );
    println!("  {:<44} {:>9.1} {:>9.1}", "thread::park/unpark", p50, p99);
    println!("  ratio fibra/mpsc p50: {:.2}x", f50 / m50);

    let (mut tp, mut l50, mut l99) = (vec![], vec![], vec![]);
    for _ in 0..runs.min(5) {
        tp.push(sched_throughput(n));
        let (a, b) = sched_latency(pings);
        l50.push(a);
        l99.push(b);
    }
    println!("\nschedule to schedule (a tasklet on each of two threads, send_parking):");
    println!(
        "  {:<44} {:>12.0}",
        format!("throughput, {n} messages, msgs/s"),
        median(tp)
    );
    println!(
        "  {:<44} {:>9.1} {:>9.1}",
        "wake latency p50 / p99 µs",
        median(l50),
        median(l99)
    );
}
