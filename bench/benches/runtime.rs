//! Runtime micro-benchmarks, each beside raw `corosensei` measured in the same run:
//! yield round trip through the Schedule, spawn+run+finish on a warm pool, and idle `tick()`
//! with many parked tasklets. Ends with a summary table of medians and ratios.
//!
//! Run: `cargo bench -p fibra-bench --bench runtime` (add `-- --quick` for a shorter criterion
//! pass).

use std::hint::black_box;
use std::io;
use std::task::Poll;
use std::time::{Duration, Instant};

use corosensei::stack::DefaultStack;
use corosensei::Coroutine;
use criterion::{BenchmarkId, Criterion};
use fibra::rt::{Context, Events, Op, Plugin, Router, Schedule, Serves, TaskletId};
use fibra::tasks::{TasksExt, TasksPlugin};

/// An op its plugin answers at once: the cost of op → plugin → resume.
struct Noop(u64);
impl Op for Noop {
    type Output = u64;
}

#[derive(Debug)]
struct NoopPlugin;
impl Plugin for NoopPlugin {
    fn register(router: &mut Router<Self>) {
        router.op::<Noop>();
    }
    fn poll(&mut self, _: &mut Context<'_>, _: Events<'_>) -> io::Result<()> {
        Ok(())
    }
}
impl Serves<Noop> for NoopPlugin {
    fn submit(&mut self, op: Noop, _: TaskletId, _: &mut Context<'_>) -> Poll<u64> {
        Poll::Ready(op.0 + 1)
    }
}

fn schedule() -> Schedule {
    let mut s = Schedule::new();
    s.add_plugin(TasksPlugin::new()).unwrap();
    s.add_plugin(NoopPlugin).unwrap();
    s
}

// ----- measured loops, shared by criterion and the summary -----

fn raw_round_trips(iters: u64) -> Duration {
    let mut co = Coroutine::<u64, u64, ()>::new(|y, mut v| loop {
        v = y.suspend(v + 1);
    });
    let start = Instant::now();
    for i in 0..iters {
        black_box(co.resume(black_box(i)));
    }
    start.elapsed()
}

/// Times only the loop of round trips, from inside the tasklet: the schedule's creation and
/// the first stack mapping are not part of a round trip.
fn fibra_round_trips(iters: u64) -> Duration {
    let mut s = schedule();
    let took = std::rc::Rc::new(std::cell::Cell::new(Duration::ZERO));
    let t = took.clone();
    s.spawn(move |h| {
        let mut v = 0;
        let start = Instant::now();
        for _ in 0..iters {
            v = h.yield_op(Noop(black_box(v)));
        }
        t.set(start.elapsed());
        black_box(v);
    })
    .unwrap();
    s.run().unwrap();
    took.get()
}

fn fibra_yield_now(iters: u64) -> Duration {
    let mut s = schedule();
    s.spawn(move |h| {
        for _ in 0..iters {
            h.yield_now();
        }
    })
    .unwrap();
    let start = Instant::now();
    s.run().unwrap();
    start.elapsed()
}

fn raw_spawn_finish(iters: u64) -> Duration {
    let mut stack = DefaultStack::new(64 * 1024).unwrap();
    let start = Instant::now();
    for _ in 0..iters {
        let mut co = Coroutine::<(), (), (), _>::with_stack(stack, |_, ()| black_box(()));
        black_box(co.resume(()));
        stack = co.into_stack();
    }
    start.elapsed()
}

const BATCH: u64 = 100;

fn fibra_spawn_finish(s: &mut Schedule, iters: u64) -> Duration {
    let start = Instant::now();
    let mut left = iters;
    while left > 0 {
        let n = left.min(BATCH);
        for _ in 0..n {
            s.spawn(|_| black_box(())).unwrap();
        }
        s.tick().unwrap();
        left -= n;
    }
    start.elapsed()
}

fn fibra_spawn_fresh(iters: u64) -> Duration {
    let mut s = Schedule::builder().stack_pool_cap(0).build();
    fibra_spawn_finish(&mut s, iters)
}

fn fibra_spawn_from_tasklet(iters: u64) -> Duration {
    let mut s = schedule();
    s.prewarm(256).unwrap();
    s.spawn(move |h| {
        for _ in 0..iters {
            h.spawn_detached(|_| black_box(())).unwrap();
            h.yield_now(); // let the child run and finish
        }
    })
    .unwrap();
    let start = Instant::now();
    s.run().unwrap();
    start.elapsed()
}

/// A schedule with `n` parked tasklets, or why it could not be built.
fn parked(n: usize) -> Result<Schedule, fibra::rt::Error> {
    let mut s = schedule();
    for _ in 0..n {
        s.spawn(|h| loop {
            h.park();
        })?;
    }
    s.tick()?;
    Ok(s)
}

/// A schedule with the network plugin: a listener parked in accept and `conns` connected
/// pairs (both ends tasklets of this schedule) parked in receive.
fn net_idle(conns: usize) -> Schedule {
    use fibra::net::{NetExt, NetPlugin};
    let mut s = schedule();
    s.add_plugin(NetPlugin::new().unwrap()).unwrap();
    s.spawn(move |h| {
        let listener = h.listen("127.0.0.1:0").unwrap();
        let addr = listener.local_addr();
        for _ in 0..conns {
            h.spawn_detached(move |h| {
                let conn = h.connect(addr).unwrap();
                let _ = h.receive(&conn);
            })
            .unwrap();
            let (conn, _) = h.accept(&listener).unwrap();
            h.spawn_detached(move |h| {
                let _ = h.receive(&conn);
            })
            .unwrap();
        }
        let _ = h.accept(&listener);
    })
    .unwrap();
    for _ in 0..1000 {
        s.tick().unwrap();
    }
    assert_eq!(s.len(), 2 * conns + 1, "every tasklet is parked");
    s
}

fn idle_ticks(s: &mut Schedule, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        black_box(s.tick().unwrap());
    }
    start.elapsed()
}

// ----- criterion -----

fn criterion_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("yield_round_trip");
    g.bench_function("raw_corosensei", |b| b.iter_custom(raw_round_trips));
    g.bench_function("fibra_ready_op", |b| b.iter_custom(fibra_round_trips));
    g.bench_function("fibra_yield_now", |b| b.iter_custom(fibra_yield_now));
    g.finish();

    let mut g = c.benchmark_group("spawn_run_finish");
    g.bench_function("raw_corosensei_reused_stack", |b| {
        b.iter_custom(raw_spawn_finish)
    });
    let mut warm = schedule();
    warm.prewarm(BATCH as usize).unwrap();
    g.bench_function("fibra_warm_pool", |b| {
        b.iter_custom(|iters| fibra_spawn_finish(&mut warm, iters))
    });
    g.bench_function("fibra_from_tasklet", |b| {
        b.iter_custom(fibra_spawn_from_tasklet)
    });
    g.sample_size(10);
    g.bench_function("fibra_fresh_mmap", |b| b.iter_custom(fibra_spawn_fresh));
    g.finish();

    let mut g = c.benchmark_group("idle_tick");
    for n in [1_000usize, 10_000, 100_000] {
        match parked(n) {
            Ok(mut s) => {
                g.bench_with_input(BenchmarkId::new("parked", n), &n, |b, _| {
                    b.iter_custom(|iters| idle_ticks(&mut s, iters))
                });
            }
            Err(e) => eprintln!("idle_tick/{n}: skipped: {e}"),
        }
    }
    for conns in [0usize, 100] {
        let mut s = net_idle(conns);
        g.bench_with_input(BenchmarkId::new("net_conns", conns), &conns, |b, _| {
            b.iter_custom(|iters| idle_ticks(&mut s, iters))
        });
    }
    g.finish();
}

// ----- summary -----

/// Median nanoseconds per iteration over `runs` runs of `iters` iterations.
fn median_ns(runs: usize, iters: u64, mut f: impl FnMut(u64) -> Duration) -> f64 {
    let mut v: Vec<f64> = (0..runs)
        .map(|_| f(iters).as_nanos() as f64 / iters as f64)
        .collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Runs `a` and `b` alternately (A B A B ...) and returns their medians and the median of the
/// per-pair ratios b/a, so that drift on a noisy machine hits both sides alike.
fn paired_ns(
    runs: usize,
    iters: u64,
    mut a: impl FnMut(u64) -> Duration,
    mut b: impl FnMut(u64) -> Duration,
) -> (f64, f64, f64) {
    let (mut va, mut vb, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let ta = a(iters).as_nanos() as f64 / iters as f64;
        let tb = b(iters).as_nanos() as f64 / iters as f64;
        va.push(ta);
        vb.push(tb);
        ratios.push(tb / ta);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|x, y| x.partial_cmp(y).unwrap());
        v[v.len() / 2]
    };
    (median(&mut va), median(&mut vb), median(&mut ratios))
}

fn summary() {
    let (raw_rt, fibra_rt, rt_ratio) = paired_ns(15, 1_000_000, raw_round_trips, fibra_round_trips);
    let fibra_yn = median_ns(9, 500_000, fibra_yield_now);
    let raw_spawn = median_ns(9, 200_000, raw_spawn_finish);
    let mut warm = schedule();
    warm.prewarm(BATCH as usize).unwrap();
    let fibra_spawn = median_ns(9, 200_000, |i| fibra_spawn_finish(&mut warm, i));
    let fibra_spawn_op = median_ns(9, 200_000, fibra_spawn_from_tasklet);
    let fresh = median_ns(3, 2_000, fibra_spawn_fresh);
    println!();
    println!(
        "fibra runtime summary (medians over runs in this process; round trips paired A B A B)"
    );
    println!("| measure | raw corosensei | fibra | ratio | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| yield round trip (ready op) | {raw_rt:.1} ns | {fibra_rt:.1} ns | {rt_ratio:.2}x | <= 2x |"
    );
    println!(
        "| yield_now (to next tick) | {raw_rt:.1} ns | {fibra_yn:.1} ns | {:.2}x | - |",
        fibra_yn / raw_rt
    );
    println!(
        "| spawn+run+finish, warm pool | {raw_spawn:.1} ns | {fibra_spawn:.1} ns | {:.2}x | <= 150 ns |",
        fibra_spawn / raw_spawn
    );
    println!(
        "| spawn from a tasklet (+ yield_now), warm | {raw_spawn:.1} ns | {fibra_spawn_op:.1} ns | {:.2}x | - |",
        fibra_spawn_op / raw_spawn
    );
    println!("| spawn+run+finish, fresh mmap | - | {fresh:.0} ns | - | - |");
    for n in [1_000usize, 10_000, 100_000] {
        match parked(n) {
            Ok(mut s) => {
                let t = median_ns(9, 20_000, |i| idle_ticks(&mut s, i));
                println!("| idle tick, {n} parked | - | {t:.1} ns | - | <= 2000 ns, flat |");
            }
            Err(e) if e.is_stack_alloc() => println!(
                "| idle tick, {n} parked | - | skipped: too many stacks for vm.max_map_count \
                 (`sudo sysctl -w vm.max_map_count=262144`) | - | - |"
            ),
            Err(e) => println!("| idle tick, {n} parked | - | skipped: {e} | - | - |"),
        }
    }
    for conns in [0usize, 100] {
        let mut s = net_idle(conns);
        let t = median_ns(9, 20_000, |i| idle_ticks(&mut s, i));
        println!(
            "| idle tick, network plugin, a listener + {conns} idle connections | - | {t:.1} ns | - | <= 500 ns |"
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c);
    c.final_summary();
    summary();
}
