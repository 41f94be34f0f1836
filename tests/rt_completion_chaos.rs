//! Hostile completions (review of 6ccb17a): a hostile plugin pair completes ops twice, with the wrong type, after a
//! kill, after a timeout in the same round, into selects (with and without a `Park` arm),
//! while the host kills and unparks at random. Every output value is counted: each one made
//! must be dropped exactly once (a double answer through `ptr::write` would leak; a type
//! confusion would corrupt the count or crash). Run in debug, so `Slot::answer`'s
//! `debug_assert!(out.is_none())` also fires on any double answer.

use std::cell::Cell;
use std::task::Poll;
use std::time::{Duration, Instant};

use fibra::rt::{Context, Either, Op, Park, Plugin, Router, Schedule, Serves, TaskletId};

thread_local! {
    static LIVE: Cell<i64> = const { Cell::new(0) };
}

/// An output value that counts itself (and carries heap data, for ASan).
#[derive(Debug)]
struct Tracked(#[allow(dead_code)] Box<[u8; 24]>);
impl Tracked {
    fn new() -> Tracked {
        LIVE.with(|l| l.set(l.get() + 1));
        Tracked(Box::new([7; 24]))
    }
}
impl Drop for Tracked {
    fn drop(&mut self) {
        LIVE.with(|l| l.set(l.get() - 1));
    }
}

struct A;
impl Op for A {
    type Output = Tracked;
}
struct B;
impl Op for B {
    type Output = (Tracked, u64);
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Holds every op it is given and, each round, completes a random choice of the held ids
/// (and of ids it never held), with the right and the wrong op types, several times.
#[derive(Debug)]
struct Chaos<const N: u8> {
    held: Vec<TaskletId>,
    seen: Vec<TaskletId>,
    rng: u64,
    ok: u64,
}

impl<const N: u8> Chaos<N> {
    fn new(seed: u64) -> Self {
        Chaos {
            held: Vec::new(),
            seen: Vec::new(),
            rng: seed,
            ok: 0,
        }
    }
    fn hit(&mut self, cx: &mut Context<'_>) {
        let mut rng = Rng(self.rng);
        for _ in 0..4 {
            let pool = if rng.next() % 3 == 0 {
                &self.seen
            } else {
                &self.held
            };
            if pool.is_empty() {
                continue;
            }
            let id = pool[(rng.next() as usize) % pool.len()];
            let times = 1 + rng.next() % 3;
            for _ in 0..times {
                let done = match rng.next() % 3 {
                    0 => cx.complete::<A>(id, Tracked::new()).is_ok(),
                    1 => cx.complete::<B>(id, (Tracked::new(), 9)).is_ok(),
                    _ => cx.complete::<Park>(id, ()).is_ok(),
                };
                self.ok += u64::from(done);
            }
            if rng.next() % 2 == 0 {
                self.held.retain(|&h| h != id);
            }
        }
        self.rng = rng.0;
    }
}

impl Plugin for Chaos<0> {
    fn register(router: &mut Router<Self>) {
        router.op::<A>();
    }
    fn poll(&mut self, cx: &mut Context<'_>, _: fibra::rt::Events<'_>) -> std::io::Result<()> {
        self.hit(cx);
        Ok(())
    }
    fn flush(&mut self, cx: &mut Context<'_>) -> std::io::Result<()> {
        self.hit(cx);
        Ok(())
    }
    fn cancel(&mut self, id: TaskletId) {
        // Sometimes "forgets" to forget: a completion after the withdrawal must be refused.
        if self.rng % 2 == 0 {
            self.held.retain(|&h| h != id);
        }
    }
    fn exited(&mut self, _: TaskletId, _: &fibra::rt::Exit, cx: &mut Context<'_>) {
        self.hit(cx);
    }
}
impl Serves<A> for Chaos<0> {
    fn submit(&mut self, _: A, from: TaskletId, cx: &mut Context<'_>) -> Poll<Tracked> {
        self.held.push(from);
        self.seen.push(from);
        cx.watch_exit(from);
        // Completing from inside submit (the tasklet is running) must be refused.
        self.hit(cx);
        if Rng(self.rng).next() % 5 == 0 {
            self.held.pop();
            return Poll::Ready(Tracked::new());
        }
        Poll::Pending
    }
}

impl Plugin for Chaos<1> {
    fn register(router: &mut Router<Self>) {
        router.op::<B>();
    }
    fn poll(&mut self, cx: &mut Context<'_>, _: fibra::rt::Events<'_>) -> std::io::Result<()> {
        self.hit(cx);
        Ok(())
    }
    fn cancel(&mut self, id: TaskletId) {
        if self.rng % 3 == 0 {
            self.held.retain(|&h| h != id);
        }
    }
}
impl Serves<B> for Chaos<1> {
    fn submit(&mut self, _: B, from: TaskletId, cx: &mut Context<'_>) -> Poll<(Tracked, u64)> {
        self.held.push(from);
        self.seen.push(from);
        self.hit(cx);
        Poll::Pending
    }
}

fn worker(h: &fibra::rt::Handle, seed: u64) {
    let mut rng = Rng(seed | 1);
    for _ in 0..40 {
        match rng.next() % 7 {
            0 => drop(h.yield_op(A)),
            1 => drop(h.yield_op_until(A, Instant::now())),
            2 => drop(h.yield_op_timeout(B, Duration::from_micros(rng.next() % 300))),
            3 => drop(h.select(A, B)),
            4 => match h.select(B, Park) {
                Either::First(v) => drop(v),
                Either::Second(()) => {}
            },
            5 => drop(h.park_until(Instant::now() + Duration::from_micros(rng.next() % 200))),
            _ => drop(h.select(Park, A)),
        }
    }
}

#[test]
fn hostile_completions_never_double_answer_or_confuse_types() {
    for seed in 1..=40u64 {
        let mut s = Schedule::new();
        s.add_plugin(Chaos::<0>::new(seed * 7919)).unwrap();
        s.add_plugin(Chaos::<1>::new(seed * 104_729)).unwrap();
        let mut ids = Vec::new();
        for i in 0..24u64 {
            ids.push(s.spawn(move |h| worker(h, seed * 31 + i)).unwrap());
        }
        let mut rng = Rng(seed * 13);
        for _ in 0..400 {
            let id = ids[(rng.next() as usize) % ids.len()];
            match rng.next() % 8 {
                0 => {
                    s.kill(id);
                }
                1 | 2 => s.unparker(id).unpark(),
                _ => {}
            }
            s.tick_within(Duration::from_micros(200)).unwrap();
            if s.is_empty() {
                break;
            }
        }
        for id in ids {
            s.kill(id);
        }
        let oks = s.plugin::<Chaos<0>>().unwrap().ok + s.plugin::<Chaos<1>>().unwrap().ok;
        eprintln!(
            "seed {seed}: {oks} completions accepted, {} steps",
            s.steps_run()
        );
        drop(s);
        assert_eq!(
            LIVE.with(Cell::get),
            0,
            "seed {seed}: an output leaked or was dropped twice"
        );
    }
}
