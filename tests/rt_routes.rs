//! Ops find their plugin by type, however many types the plugins serve: forty op types (more
//! than the schedule's route cache has slots, so types share slots and evict each other),
//! yielded in an order that keeps changing, each reaches its own plugin and no other, and a
//! type no plugin serves is refused as before.

use std::task::Poll;

use fibra::rt::{Context, Op, Plugin, Router, Schedule, Serves, TaskletId};

/// Op `N`: answered with `N` by the plugin that serves it.
struct Num<const N: usize>;
impl<const N: usize> Op for Num<N> {
    type Output = usize;
}

/// Serves `Num<0>` to `Num<19>`, counting what it served.
#[derive(Default)]
struct Low {
    served: usize,
}

/// Serves `Num<20>` to `Num<39>`, counting what it served.
#[derive(Default)]
struct High {
    served: usize,
}

impl<const N: usize> Serves<Num<N>> for Low {
    fn submit(&mut self, _: Num<N>, _: TaskletId, _: &mut Context<'_>) -> Poll<usize> {
        assert!(N < 20, "op {N} reached the wrong plugin");
        self.served += 1;
        Poll::Ready(N)
    }
}

impl<const N: usize> Serves<Num<N>> for High {
    fn submit(&mut self, _: Num<N>, _: TaskletId, _: &mut Context<'_>) -> Poll<usize> {
        assert!(N >= 20, "op {N} reached the wrong plugin");
        self.served += 1;
        Poll::Ready(N)
    }
}

macro_rules! register {
    ($router:expr, $($n:literal)*) => { $( $router.op::<Num<$n>>(); )* };
}

impl Plugin for Low {
    fn register(router: &mut Router<Self>) {
        register!(router, 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19);
    }
}

impl Plugin for High {
    fn register(router: &mut Router<Self>) {
        register!(router, 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39);
    }
}

/// Yields op `n` (0..40) and returns its answer.
fn ask(h: &fibra::rt::Handle, n: usize) -> usize {
    macro_rules! arms {
        ($($k:literal)*) => { match n { $( $k => h.yield_op(Num::<$k>), )* _ => unreachable!() } };
    }
    arms!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19
          20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39)
}

#[test]
fn forty_op_types_each_reach_their_own_plugin_in_any_order() {
    let mut s = Schedule::new();
    s.add_plugin(Low::default()).unwrap();
    s.add_plugin(High::default()).unwrap();
    const ROUNDS: usize = 50;
    s.spawn(|h| {
        // Strides coprime to 40 visit every type in a different order each round.
        for round in 0..ROUNDS {
            let stride = [1, 3, 7, 9, 11, 13, 17, 19][round % 8];
            for i in 0..40 {
                let n = (i * stride + round) % 40;
                assert_eq!(ask(h, n), n);
            }
        }
    })
    .unwrap();
    s.run().unwrap();
    let low = s.plugin::<Low>().unwrap().served;
    let high = s.plugin::<High>().unwrap().served;
    assert_eq!((low, high), (20 * ROUNDS, 20 * ROUNDS));
}

/// An op type no plugin serves.
struct Nobody;
impl Op for Nobody {
    type Output = ();
}

#[test]
fn an_op_no_plugin_serves_is_still_refused_after_many_others() {
    let mut s = Schedule::new();
    s.add_plugin(Low::default()).unwrap();
    let t = s
        .spawn(|h| {
            for n in 0..20 {
                assert_eq!(ask(h, n), n);
            }
            h.yield_op(Nobody);
        })
        .unwrap();
    s.watch_exit(t);
    s.run().unwrap();
    let exit = s.take_exit(t).expect("it ended");
    assert!(
        format!("{exit:?}").contains("Nobody"),
        "the tasklet should panic naming the op: {exit:?}"
    );
}
