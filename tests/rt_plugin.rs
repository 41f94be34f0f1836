//! A plugin written in a test file plugs in without touching fibra-rt: ops routed by type,
//! answered at once or later from `poll`, timers via `next_deadline`, withdrawn by `forget`.

mod util;

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use fibra::rt::{Context, Events, Op, Plugin, Router, Schedule, Serves, TaskletId};
use fibra::tasks::TasksPlugin;

/// Wait for the mail addressed to a box.
struct Fetch(&'static str);
impl Op for Fetch {
    type Output = String;
}

/// Count the letters waiting, answered at once.
struct Count;
impl Op for Count {
    type Output = usize;
}

/// Wait for the next "frame" of a 5 ms clock.
struct NextFrame;
impl Op for NextFrame {
    type Output = u64;
}

#[derive(Debug, Default)]
struct Mailbox {
    /// Letters delivered by the host, not yet picked up.
    inbox: HashMap<&'static str, Vec<String>>,
    /// Who waits on which box.
    waiting: HashMap<&'static str, Vec<TaskletId>>,
    frame_waiters: Vec<TaskletId>,
    frame: u64,
    next_frame: Option<Instant>,
    forgotten: Vec<TaskletId>,
}

impl Mailbox {
    fn deliver(&mut self, to: &'static str, letter: &str) {
        self.inbox.entry(to).or_default().push(letter.to_owned());
    }

    fn registrations(&self) -> usize {
        self.waiting.values().map(Vec::len).sum::<usize>() + self.frame_waiters.len()
    }
}

impl Plugin for Mailbox {
    fn register(router: &mut Router<Self>) {
        router.op::<Fetch>().op::<Count>().op::<NextFrame>();
    }

    fn poll(&mut self, cx: &mut Context<'_>, _: Events<'_>) -> io::Result<()> {
        for (to, letters) in self.inbox.iter_mut() {
            let Some(waiters) = self.waiting.get_mut(to) else {
                continue;
            };
            while !letters.is_empty() && !waiters.is_empty() {
                let who = waiters.remove(0);
                let letter = letters.remove(0);
                if let Err(letter) = cx.complete::<Fetch>(who, letter) {
                    letters.insert(0, letter); // nothing is lost
                }
            }
        }
        if self.next_frame.is_some_and(|at| at <= cx.now()) {
            self.frame += 1;
            self.next_frame = None;
            for who in self.frame_waiters.drain(..) {
                cx.complete::<NextFrame>(who, self.frame).unwrap();
            }
        }
        Ok(())
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.next_frame
    }

    fn cancel(&mut self, id: TaskletId) {
        self.forgotten.push(id);
        for waiters in self.waiting.values_mut() {
            waiters.retain(|&w| w != id);
        }
        self.frame_waiters.retain(|&w| w != id);
    }
}

impl Serves<Fetch> for Mailbox {
    fn submit(&mut self, op: Fetch, from: TaskletId, _: &mut Context<'_>) -> Poll<String> {
        match self.inbox.get_mut(op.0) {
            Some(letters) if !letters.is_empty() => Poll::Ready(letters.remove(0)),
            _ => {
                self.waiting.entry(op.0).or_default().push(from);
                Poll::Pending
            }
        }
    }
}

impl Serves<Count> for Mailbox {
    fn submit(&mut self, _: Count, _: TaskletId, _: &mut Context<'_>) -> Poll<usize> {
        Poll::Ready(self.inbox.values().map(Vec::len).sum())
    }
}

impl Serves<NextFrame> for Mailbox {
    fn submit(&mut self, _: NextFrame, from: TaskletId, cx: &mut Context<'_>) -> Poll<u64> {
        self.frame_waiters.push(from);
        self.next_frame
            .get_or_insert(cx.now() + Duration::from_millis(5));
        Poll::Pending
    }
}

#[test]
fn a_plugin_defined_here_plugs_in_and_works() {
    let mut s = Schedule::new();
    s.add_plugin(TasksPlugin::new()).unwrap();
    s.add_plugin(Mailbox::default()).unwrap();
    let got: Rc<RefCell<Vec<String>>> = Rc::default();

    s.plugin_mut::<Mailbox>()
        .unwrap()
        .deliver("alice", "early letter");
    let frames: Rc<RefCell<Vec<u64>>> = Rc::default();
    let f = frames.clone();
    s.spawn(move |h| {
        // Runs first: the early letter is still waiting.
        assert_eq!(h.yield_op(Count), 1);
        let started = Instant::now();
        let a = h.yield_op(NextFrame);
        let b = h.yield_op(NextFrame);
        assert!(
            started.elapsed() >= Duration::from_millis(10),
            "frames never early"
        );
        f.borrow_mut().extend([a, b]);
    })
    .unwrap();

    for name in ["alice", "alice", "bob"] {
        let got = got.clone();
        s.spawn(move |h| {
            let letter = h.yield_op(Fetch(name));
            got.borrow_mut().push(format!("{name}: {letter}"));
        })
        .unwrap();
    }
    for _ in 0..3 {
        s.tick().unwrap();
    }
    assert_eq!(*got.borrow(), vec!["alice: early letter"]);
    s.plugin_mut::<Mailbox>().unwrap().deliver("bob", "hi bob");
    s.plugin_mut::<Mailbox>()
        .unwrap()
        .deliver("alice", "hi again");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s.is_empty() && Instant::now() < deadline {
        s.run_for(Duration::from_millis(50)).unwrap();
    }
    let mut got = got.borrow().clone();
    got.sort();
    assert_eq!(
        got,
        vec!["alice: early letter", "alice: hi again", "bob: hi bob"]
    );
    assert_eq!(*frames.borrow(), vec![1, 2]);
    assert_eq!(s.plugin::<Mailbox>().unwrap().registrations(), 0);
}

#[test]
fn killed_and_timed_out_tasklets_are_forgotten_by_their_plugin() {
    let mut s = Schedule::new();
    s.add_plugin(Mailbox::default()).unwrap();
    let killed = s
        .spawn(|h| {
            h.yield_op(Fetch("nobody"));
        })
        .unwrap();
    let timed_out = s
        .spawn(|h| {
            let r = h.yield_op_timeout(Fetch("nobody"), Duration::from_millis(5));
            assert!(r.is_err());
        })
        .unwrap();
    s.tick().unwrap();
    assert_eq!(s.plugin::<Mailbox>().unwrap().registrations(), 2);
    assert!(s.kill(killed));
    s.run().unwrap();
    let mailbox = s.plugin::<Mailbox>().unwrap();
    assert_eq!(mailbox.registrations(), 0);
    assert_eq!(mailbox.forgotten, vec![killed, timed_out]);
    // A letter for a forgotten waiter is kept for the next one, not lost.
    let mailbox = s.plugin_mut::<Mailbox>().unwrap();
    mailbox.deliver("nobody", "kept");
    s.spawn(|h| assert_eq!(h.yield_op(Fetch("nobody")), "kept"))
        .unwrap();
    s.run().unwrap();
}

#[test]
fn an_op_type_has_one_plugin() {
    #[derive(Debug)]
    struct Rival;
    impl Plugin for Rival {
        fn register(router: &mut Router<Self>) {
            router.op::<Count>();
        }
    }
    impl Serves<Count> for Rival {
        fn submit(&mut self, _: Count, _: TaskletId, _: &mut Context<'_>) -> Poll<usize> {
            Poll::Ready(0)
        }
    }
    let mut s = Schedule::new();
    s.add_plugin(Mailbox::default()).unwrap();
    let err = s.add_plugin(Rival).unwrap_err();
    assert!(err.to_string().contains("rt_plugin::Count"), "{err}");
    assert!(s.plugin::<Rival>().is_none());
}

/// An op whose plugin has a bug: it panics.
struct Explode;
impl Op for Explode {
    type Output = ();
}

#[derive(Debug)]
struct Buggy;
impl Plugin for Buggy {
    fn register(router: &mut Router<Self>) {
        router.op::<Explode>();
    }
}
impl Serves<Explode> for Buggy {
    fn submit(&mut self, _: Explode, _: TaskletId, _: &mut Context<'_>) -> Poll<()> {
        panic!("bug in the plugin");
    }
}

#[test]
fn a_panicking_plugin_reaches_the_host_and_leaves_the_schedule_consistent() {
    let mut s = Schedule::new();
    s.add_plugin(Buggy).unwrap();
    s.add_plugin(TasksPlugin::new()).unwrap();
    let drops = Rc::new(std::cell::Cell::new(0));
    let d = util::DropCounter(drops.clone());
    let victim = s
        .spawn(move |h| {
            let _d = d;
            h.yield_op(fibra::tasks::ops::YieldNow);
            h.yield_op(Explode);
        })
        .unwrap();
    let joined = Rc::new(RefCell::new(None));
    let j = joined.clone();
    s.spawn(move |h| {
        *j.borrow_mut() = h.yield_op(fibra::tasks::ops::Join(victim));
    })
    .unwrap();
    s.tick().unwrap();
    let survivor_ran = Rc::new(RefCell::new(false));
    let r = survivor_ran.clone();
    s.spawn(move |_| *r.borrow_mut() = true).unwrap();
    let tick = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.tick()));
    assert!(tick.is_err(), "the plugin's panic reaches the host");
    assert_eq!(drops.get(), 1, "the tasklet's destructors ran once");
    s.tick().unwrap();
    assert!(
        !s.contains(victim),
        "the next tick reaps the tasklet whose op broke"
    );
    s.run().unwrap();
    let exit = joined
        .borrow()
        .clone()
        .expect("the joiner heard how it ended");
    assert!(exit.is_panicked(), "{exit}");
    assert_eq!(drops.get(), 1);
    assert!(*survivor_ran.borrow());
    assert!(s.is_empty());
}

/// A plugin with work to finish: `drain` begins it (once), each flush does one piece, and
/// the schedule's drain runs rounds until it is done or the time is up.
#[test]
fn drain_asks_each_plugin_once_and_runs_until_it_is_drained() {
    #[derive(Debug, Default)]
    struct Finisher {
        asked: u32,
        left: u32,
    }
    impl Plugin for Finisher {
        fn register(_: &mut Router<Self>) {}
        fn flush(&mut self, _: &mut Context<'_>) -> io::Result<()> {
            self.left = self.left.saturating_sub(1);
            Ok(())
        }
        fn drain(&mut self, _: &mut Context<'_>) {
            self.asked += 1;
            self.left = 5;
        }
        fn is_drained(&self) -> bool {
            self.asked > 0 && self.left == 0
        }
    }
    let mut s = Schedule::new();
    s.add_plugin(TasksPlugin::new()).unwrap();
    s.add_plugin(Finisher::default()).unwrap();
    assert!(s.drain(Duration::from_secs(10)).unwrap(), "drained in time");
    let f = s.plugin::<Finisher>().unwrap();
    assert_eq!((f.asked, f.left), (1, 0));

    /// Never done.
    #[derive(Debug)]
    struct Stuck;
    impl Plugin for Stuck {
        fn register(_: &mut Router<Self>) {}
        fn is_drained(&self) -> bool {
            false
        }
    }
    let mut s = Schedule::new();
    s.add_plugin(Stuck).unwrap();
    let start = Instant::now();
    assert!(!s.drain(Duration::from_millis(50)).unwrap(), "not drained");
    assert!(start.elapsed() >= Duration::from_millis(50));
}
