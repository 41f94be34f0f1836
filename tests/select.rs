//! `Handle::select`: the first of two or three ops completes, and the others are withdrawn
//! from their plugins (once, and never the winner), whether the select ends by a completion,
//! by an op ready at once, or by a kill. Then over real sockets: "sleep unless the connection
//! is lost", and a receive withdrawn by a sleep loses no data.

mod util;

use std::io::Write;
use std::task::Poll;
use std::time::{Duration, Instant};

use fibra::net::{ops::OnLost, NetExt};
use fibra::rt::{
    Context, Either, Events, Exit, OneOf3, Op, Park, Plugin, Router, Schedule, Serves, TaskletId,
};
use fibra::tasks::{ops::Sleep, TasksExt, TasksPlugin};

/// An op that waits until its gate opens; it answers the gate's number.
struct Wait<const N: usize>;
impl<const N: usize> Op for Wait<N> {
    type Output = usize;
}

/// Holds waiters of `Wait<N>` until opened; records every withdrawal.
#[derive(Debug, Default)]
struct Gate<const N: usize> {
    open: bool,
    waiting: Vec<TaskletId>,
    cancels: Vec<TaskletId>,
    refused: usize,
}

impl<const N: usize> Plugin for Gate<N> {
    fn register(router: &mut Router<Self>) {
        router.op::<Wait<N>>();
    }

    fn poll(&mut self, cx: &mut Context<'_>, _: Events<'_>) -> std::io::Result<()> {
        if self.open {
            for id in std::mem::take(&mut self.waiting) {
                if cx.complete::<Wait<N>>(id, N).is_err() {
                    self.refused += 1;
                }
            }
        }
        Ok(())
    }

    fn next_deadline(&self) -> Option<Instant> {
        // Polled every round while it has waiters, so that the host's `open` is seen.
        (!self.waiting.is_empty()).then(Instant::now)
    }

    fn cancel(&mut self, id: TaskletId) {
        self.waiting.retain(|&w| w != id);
        self.cancels.push(id);
    }
}

impl<const N: usize> Serves<Wait<N>> for Gate<N> {
    fn submit(&mut self, _: Wait<N>, from: TaskletId, _: &mut Context<'_>) -> Poll<usize> {
        if self.open {
            return Poll::Ready(N);
        }
        self.waiting.push(from);
        Poll::Pending
    }
}

fn gates() -> util::TestSchedule {
    let mut s = util::schedule();
    s.add_plugin(Gate::<1>::default()).unwrap();
    s.add_plugin(Gate::<2>::default()).unwrap();
    s.add_plugin(Gate::<3>::default()).unwrap();
    s
}

fn gate<const N: usize>(s: &mut Schedule) -> &mut Gate<N> {
    s.plugin_mut::<Gate<N>>().unwrap()
}

#[test]
fn the_first_to_complete_wins_and_only_the_other_is_withdrawn() {
    let mut s = gates();
    let got = std::rc::Rc::new(std::cell::Cell::new(None));
    let out = got.clone();
    let id = s
        .spawn(move |h| out.set(Some(h.select(Wait::<1>, Wait::<2>))))
        .unwrap();
    s.tick().unwrap();
    assert_eq!(gate::<1>(&mut s).waiting, vec![id]);
    assert_eq!(gate::<2>(&mut s).waiting, vec![id]);
    let info = s.tasklets().find(|t| t.id == id).unwrap();
    assert_eq!(info.waiting_on, Some("select"));

    gate::<2>(&mut s).open = true;
    s.run_for(Duration::from_secs(5)).unwrap();
    assert_eq!(got.get(), Some(Either::Second(2)));
    assert_eq!(
        gate::<1>(&mut s).cancels,
        vec![id],
        "the loser is withdrawn once"
    );
    assert!(gate::<1>(&mut s).waiting.is_empty());
    assert!(
        gate::<2>(&mut s).cancels.is_empty(),
        "the winner is not withdrawn"
    );
}

#[test]
fn when_both_complete_in_one_round_the_loser_is_withdrawn_before_its_plugin_answers() {
    let mut s = gates();
    let id = s
        .spawn(|h| assert_eq!(h.select(Wait::<1>, Wait::<2>), Either::First(1)))
        .unwrap();
    s.watch_exit(id);
    s.tick().unwrap();
    gate::<1>(&mut s).open = true;
    gate::<2>(&mut s).open = true;
    s.run_for(Duration::from_secs(5)).unwrap();
    assert_eq!(s.take_exit(id), Some(Exit::Finished));
    assert_eq!(gate::<2>(&mut s).cancels, vec![id]);
    assert_eq!(
        gate::<2>(&mut s).refused,
        0,
        "gate 2 never answered a withdrawn op"
    );
}

#[test]
fn an_op_ready_at_once_wins_and_the_ones_submitted_before_it_are_withdrawn() {
    let mut s = gates();
    gate::<3>(&mut s).open = true;
    let id = s
        .spawn(|h| {
            assert_eq!(h.select3(Wait::<1>, Wait::<2>, Wait::<3>), OneOf3::Third(3));
        })
        .unwrap();
    s.watch_exit(id);
    s.run_for(Duration::from_secs(5)).unwrap();
    assert_eq!(s.take_exit(id), Some(Exit::Finished));
    assert_eq!(gate::<1>(&mut s).cancels, vec![id]);
    assert_eq!(gate::<2>(&mut s).cancels, vec![id]);
    assert!(gate::<3>(&mut s).cancels.is_empty());

    // The first op ready: the later ones are never submitted, so nothing to withdraw.
    let id = s
        .spawn(|h| assert_eq!(h.select(Wait::<3>, Wait::<1>), Either::First(3)))
        .unwrap();
    s.run_for(Duration::from_secs(5)).unwrap();
    assert!(!gate::<1>(&mut s).cancels.contains(&id));
    assert!(gate::<1>(&mut s).waiting.is_empty());
}

#[test]
fn killing_a_selecting_tasklet_withdraws_every_op_and_nothing_answers_it_later() {
    let mut s = gates();
    let drops = std::rc::Rc::new(std::cell::Cell::new(0));
    let d = util::DropCounter(drops.clone());
    let victim = s
        .spawn(move |h| {
            let _d = d;
            h.select3(Wait::<1>, Wait::<2>, Wait::<3>);
            unreachable!("killed while selecting");
        })
        .unwrap();
    s.tick().unwrap();
    // Killed from another tasklet, through the tasks plugin.
    s.spawn(move |h| assert!(h.kill(victim))).unwrap();
    s.tick().unwrap();
    assert!(!s.contains(victim));
    assert_eq!(drops.get(), 1, "its destructors ran once");
    assert_eq!(gate::<1>(&mut s).cancels, vec![victim]);
    assert_eq!(gate::<2>(&mut s).cancels, vec![victim]);
    assert_eq!(gate::<3>(&mut s).cancels, vec![victim]);

    // Killed by the host, and a tasklet that reuses the slot is not woken by the old ops.
    let victim = s
        .spawn(|h| {
            let _ = h.select(Wait::<1>, Wait::<2>);
        })
        .unwrap();
    s.tick().unwrap();
    assert!(s.kill(victim));
    assert_eq!(gate::<1>(&mut s).cancels.len(), 2);
    assert_eq!(gate::<2>(&mut s).cancels.len(), 2);
    assert!(gate::<1>(&mut s).waiting.is_empty() && gate::<2>(&mut s).waiting.is_empty());
    let next = s.spawn(|h| h.sleep(Duration::from_millis(20))).unwrap();
    assert_eq!(next.slot(), victim.slot());
    gate::<1>(&mut s).open = true;
    s.watch_exit(next);
    s.run_for(Duration::from_secs(5)).unwrap();
    assert_eq!(s.take_exit(next), Some(Exit::Finished));
    assert_eq!(gate::<1>(&mut s).refused, 0);
}

#[test]
fn a_select_that_cannot_be_served_panics_its_tasklet_saying_why() {
    util::panics_expected();
    let mut s = gates();
    let same = s
        .spawn(|h| {
            let _ = h.select(Wait::<1>, Wait::<1>);
        })
        .unwrap();
    let missing = s
        .spawn(|h| {
            let _ = h.select(Wait::<1>, Wait::<9>);
        })
        .unwrap();
    s.watch_exit(same);
    s.watch_exit(missing);
    s.run_for(Duration::from_secs(5)).unwrap();
    let Some(Exit::Panicked(msg)) = s.take_exit(same) else {
        panic!("the same-plugin select did not panic");
    };
    assert!(msg.contains("served by different plugins"), "{msg}");
    let Some(Exit::Panicked(msg)) = s.take_exit(missing) else {
        panic!("the select with no plugin did not panic");
    };
    assert!(
        msg.contains("no plugin") && msg.contains("Wait<9>"),
        "{msg}"
    );
    assert!(
        gate::<1>(&mut s).waiting.is_empty(),
        "nothing was submitted"
    );
}

/// A schedule with the tasks and network plugins, and a listener on a free port.
fn listening() -> (util::TestSchedule, fibra::net::Listener) {
    let s = util::net_schedule();
    let listener = util::listen(&s);
    (s, listener)
}

#[test]
fn sleep_unless_the_connection_is_lost() {
    let (mut s, listener) = listening();
    let addr = listener.local_addr();
    let peer = util::peer(addr, |mut stream| {
        stream.write_all(b"hello\n").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        // Closes: the server's wait ends long before its 60 s sleep.
    });
    s.spawn(move |h| {
        let (conn, _) = h.accept(&listener).unwrap();
        assert_eq!(h.receive(&conn).unwrap(), b"hello");
        let deadline = Instant::now() + Duration::from_secs(60);
        match h.select(Sleep(deadline), OnLost::new(&conn)) {
            Either::Second(_) => {}
            Either::First(()) => panic!("slept through the loss"),
        }
    })
    .unwrap();
    util::run_all(&mut s, 30);
    peer.join().unwrap();
    let tasks = s.plugin::<TasksPlugin>().unwrap();
    assert_eq!(tasks.registrations(), 0, "the sleep was withdrawn");
    assert_eq!(util::net_stats(&s).waiting, 0);
}

#[test]
fn a_receive_withdrawn_by_a_sleep_loses_no_data() {
    let (mut s, listener) = listening();
    let addr = listener.local_addr();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let peer = util::peer(addr, move |mut stream| {
        // Sends only once the server's first select has timed out.
        go_rx.recv().unwrap();
        stream.write_all(b"late line\n").unwrap();
        std::thread::sleep(Duration::from_millis(200));
    });
    s.spawn(move |h| {
        let (conn, _) = h.accept(&listener).unwrap();
        let soon = Instant::now() + Duration::from_millis(30);
        match h.select(fibra::net::ops::Receive::new(&conn), Sleep(soon)) {
            Either::Second(()) => {}
            Either::First(got) => panic!("nothing was sent yet, got {got:?}"),
        }
        go_tx.send(()).unwrap();
        let later = Instant::now() + Duration::from_secs(20);
        match h.select(fibra::net::ops::Receive::new(&conn), Sleep(later)) {
            Either::First(got) => assert_eq!(got.unwrap(), b"late line"),
            Either::Second(()) => panic!("the line never came"),
        }
    })
    .unwrap();
    util::run_all(&mut s, 30);
    peer.join().unwrap();
    assert_eq!(s.plugin::<TasksPlugin>().unwrap().registrations(), 0);
    assert_eq!(util::net_stats(&s).waiting, 0);
}

#[test]
fn a_park_arm_completes_on_an_unpark_and_withdraws_the_other_op() {
    util::panics_expected();
    let mut s = gates();
    let id = s
        .spawn(|h| assert_eq!(h.select(Wait::<1>, Park), Either::Second(())))
        .unwrap();
    s.watch_exit(id);
    s.tick().unwrap();
    assert_eq!(gate::<1>(&mut s).waiting, vec![id]);
    s.unparker(id).unpark(); // from the host
    s.run_for(Duration::from_secs(5)).unwrap();
    assert_eq!(s.take_exit(id), Some(Exit::Finished));
    assert_eq!(gate::<1>(&mut s).cancels, vec![id]);
    assert!(gate::<1>(&mut s).waiting.is_empty());

    // An unpark that came first wins at once: the op after it is never submitted.
    let id = s
        .spawn(|h| {
            h.unparker().unpark();
            assert_eq!(h.select(Park, Wait::<1>), Either::First(()));
        })
        .unwrap();
    s.watch_exit(id);
    s.run_for(Duration::from_secs(5)).unwrap();
    assert_eq!(s.take_exit(id), Some(Exit::Finished));
    assert!(gate::<1>(&mut s).waiting.is_empty());

    // The op wins: an unpark after it is only remembered, for the next park.
    let id = s
        .spawn(|h| {
            assert_eq!(h.select(Wait::<2>, Park), Either::First(2));
            h.park(); // returns at once: the unpark below came while it was not parked
        })
        .unwrap();
    s.watch_exit(id);
    s.tick().unwrap();
    gate::<2>(&mut s).open = true;
    s.tick().unwrap();
    s.unparker(id).unpark();
    s.run_for(Duration::from_secs(5)).unwrap();
    assert_eq!(s.take_exit(id), Some(Exit::Finished));
    assert!(gate::<2>(&mut s).cancels.is_empty());

    // Two parks cannot be told apart: refused.
    let id = s
        .spawn(|h| {
            let _ = h.select(Park, Park);
        })
        .unwrap();
    s.watch_exit(id);
    s.run_for(Duration::from_secs(5)).unwrap();
    assert!(matches!(s.take_exit(id), Some(Exit::Panicked(_))));
}

#[test]
fn a_posted_kill_ends_a_tasklet_from_a_destructor_and_from_the_host() {
    let mut s = gates();
    let helper = s
        .spawn(|h| {
            let _ = h.select(Wait::<1>, Park);
            unreachable!("killed while selecting");
        })
        .unwrap();
    /// Kills the helper when dropped, without yielding (a destructor must not).
    struct KillOnDrop(fibra::rt::Unparker);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            self.0.kill();
        }
    }
    let owner = s
        .spawn(move |h| {
            let _guard = KillOnDrop(h.unparker_of(helper));
            h.sleep(Duration::from_secs(3600));
        })
        .unwrap();
    s.watch_exit(helper);
    s.tick().unwrap();
    assert!(s.kill(owner));
    s.tick().unwrap();
    assert_eq!(s.take_exit(helper), Some(Exit::Killed));
    assert_eq!(
        gate::<1>(&mut s).cancels,
        vec![helper],
        "its op was withdrawn"
    );

    // From the host, through an unparker: done before the next step.
    let sleeper = s.spawn(|h| h.sleep(Duration::from_secs(3600))).unwrap();
    s.tick().unwrap();
    let unparker = s.unparker(sleeper);
    unparker.kill();
    assert!(
        s.next_deadline().is_some(),
        "a posted kill is work for the next tick"
    );
    s.tick().unwrap();
    assert!(!s.contains(sleeper));
    assert_eq!(s.plugin::<TasksPlugin>().unwrap().registrations(), 0);
}
