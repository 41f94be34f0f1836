//! Containment: a plugin that panics (in `submit` or `cancel`) never leaves the schedule with a
//! pointer into a dead stack nor with a dead tasklet still running; ids are never reused; huge
//! durations mean "never"; a missing plugin is named with the line that adds it.
//!
//! The first two bugs were a segfault and a hang, so those scenarios run in a child process
//! (this test binary again) and the parent reads how it ended.

mod util;

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use fibra::rt::{Context, Exit, Op, Plugin, Router, Schedule, Serves, TaskletId, TimedOut};

const CHILD: &str = "FIBRA_RT_CONTAINMENT_CHILD";

/// Never completes on its own; `Holder` completes it from `poll` when asked.
struct Hold;
impl Op for Hold {
    type Output = u64;
}

/// Holds `Hold` ops; its `cancel` panics while `cancel_panics` is set. From `poll` it tries
/// to complete `victim`, and records what `complete` said.
#[derive(Debug, Default)]
struct Holder {
    cancel_panics: bool,
    victim: Option<TaskletId>,
    completions: Vec<Result<(), u64>>,
}

impl Plugin for Holder {
    fn register(router: &mut Router<Self>) {
        router.op::<Hold>();
    }

    fn poll(&mut self, cx: &mut Context<'_>, _: fibra::rt::Events<'_>) -> std::io::Result<()> {
        if let Some(victim) = self.victim {
            self.completions.push(cx.complete::<Hold>(victim, 7));
        }
        Ok(())
    }

    fn cancel(&mut self, _: TaskletId) {
        if std::mem::take(&mut self.cancel_panics) {
            panic!("the plugin's cancel panics");
        }
    }
}

impl Serves<Hold> for Holder {
    fn submit(&mut self, _: Hold, _: TaskletId, _: &mut Context<'_>) -> Poll<u64> {
        Poll::Pending
    }
}

/// Item 1: the host kills a tasklet waiting (with a deadline) on an op whose plugin's `cancel`
/// panics, and catches the panic. The tasklet must be gone, with its op slot: the deadline
/// passing and the plugin completing it later write nowhere.
fn kill_with_panicking_cancel() {
    let mut s = Schedule::new();
    s.add_plugin(Holder::default()).unwrap();
    let dropped = Rc::new(Cell::new(false));
    let d = dropped.clone();
    let victim = s
        .spawn(move |h| {
            let _on_drop = OnDrop(d);
            let got = h.yield_op_timeout(Hold, Duration::from_millis(30));
            unreachable!("the killed tasklet resumed with {got:?}");
        })
        .unwrap();
    s.watch_exit(victim);
    s.tick().unwrap();
    let holder = s.plugin_mut::<Holder>().unwrap();
    holder.cancel_panics = true;
    holder.victim = Some(victim);
    let caught = catch_unwind(AssertUnwindSafe(|| s.kill(victim)));
    // Another tasklet reuses the slot and, likely, the stack; its own op times out properly.
    let timed_out = Rc::new(Cell::new(false));
    let t = timed_out.clone();
    s.spawn(move |h| {
        let r = h.yield_op_timeout(Hold, Duration::from_millis(60));
        t.set(r.is_err_and(|e: TimedOut| e.op().ends_with("Hold")));
    })
    .unwrap();
    // Past the victim's deadline: nothing is written into its old stack.
    std::thread::sleep(Duration::from_millis(40));
    s.run_for(Duration::from_secs(5)).unwrap();
    assert!(caught.is_err(), "the plugin's panic reaches the host");
    assert!(!s.contains(victim), "the killed tasklet left the table");
    assert!(dropped.get(), "its destructors ran");
    assert_eq!(s.take_exit(victim), Some(Exit::Killed));
    assert!(timed_out.get(), "the second tasklet's op timed out");
    let completions = &s.plugin::<Holder>().unwrap().completions;
    assert!(!completions.is_empty());
    assert!(completions.iter().all(|c| *c == Err(7)), "{completions:?}");
    eprintln!("child: survived");
}

/// Item 2: a tasklet that catches panics in a loop yields an op whose plugin panics in
/// `submit`. The tasklet must end there (its code must not run on), and the host's calls
/// return.
fn plugin_panic_inside_catch_panic() {
    struct Explode;
    impl Op for Explode {
        type Output = ();
    }
    #[derive(Debug)]
    struct Bomb;
    impl Plugin for Bomb {
        fn register(router: &mut Router<Self>) {
            router.op::<Explode>();
        }
    }
    impl Serves<Explode> for Bomb {
        fn submit(&mut self, _: Explode, _: TaskletId, _: &mut Context<'_>) -> Poll<()> {
            panic!("the plugin's submit panics");
        }
    }

    let mut s = Schedule::new();
    s.add_plugin(Bomb).unwrap();
    let ran_on = Rc::new(Cell::new(0u32));
    let r = ran_on.clone();
    let id = s
        .spawn(move |h| loop {
            let _ = h.catch_panic(|| h.yield_op(Explode));
            r.set(r.get() + 1);
        })
        .unwrap();
    s.watch_exit(id);
    let caught = catch_unwind(AssertUnwindSafe(|| s.tick()));
    assert!(caught.is_err(), "the plugin's panic reaches the host");
    assert_eq!(ran_on.get(), 0, "the tasklet's code ran on after its end");
    assert!(!s.tick().unwrap(), "the tasklet is gone");
    assert_eq!(
        s.take_exit(id),
        Some(Exit::Panicked("the plugin serving its op panicked".into()))
    );
    eprintln!("child: survived");
}

#[test]
fn a_kill_whose_cancel_panics_leaves_no_pointer_into_the_dead_stack() {
    child(
        "a_kill_whose_cancel_panics_leaves_no_pointer_into_the_dead_stack",
        "kill",
        kill_with_panicking_cancel,
    );
}

#[test]
fn a_tasklet_whose_plugin_panics_ends_even_inside_catch_panic() {
    child(
        "a_tasklet_whose_plugin_panics_ends_even_inside_catch_panic",
        "catch",
        plugin_panic_inside_catch_panic,
    );
}

/// A destructor that runs untrusted code under `catch_panic` (as fibra-net's session does with
/// `Protocol::connection_lost`) while its tasklet is killed: that code's own panic is caught
/// and said, not resumed out of the destructor (a panic escaping a destructor during the
/// kill's unwind aborts the process). The kill's unwind itself still goes through.
fn catch_panic_in_a_destructor_during_a_kill() {
    struct Callback<'h> {
        h: &'h fibra::rt::Handle,
        caught: Rc<RefCell<Option<Result<(), String>>>>,
    }
    impl Drop for Callback<'_> {
        fn drop(&mut self) {
            let r = self
                .h
                .catch_panic(|| panic!("the callback panics while its tasklet dies"));
            *self.caught.borrow_mut() = Some(r);
        }
    }
    let mut s = Schedule::new();
    let caught = Rc::new(RefCell::new(None));
    let c = caught.clone();
    let ran_on = Rc::new(Cell::new(false));
    let r = ran_on.clone();
    let id = s
        .spawn(move |h| {
            let _callback = Callback { h, caught: c };
            let _ = h.catch_panic(|| h.park());
            r.set(true);
        })
        .unwrap();
    s.watch_exit(id);
    s.tick().unwrap();
    assert!(s.kill(id));
    assert_eq!(s.take_exit(id), Some(Exit::Killed));
    assert!(!ran_on.get(), "the killed tasklet ran on");
    let said = caught.borrow_mut().take();
    assert_eq!(
        said,
        Some(Err("the callback panics while its tasklet dies".to_owned()))
    );
    eprintln!("child: survived");
}

#[test]
fn catch_panic_in_a_destructor_of_a_killed_tasklet_catches_its_own_panic() {
    child(
        "catch_panic_in_a_destructor_of_a_killed_tasklet_catches_its_own_panic",
        "destructor",
        catch_panic_in_a_destructor_during_a_kill,
    );
}

/// Runs `scenario` in a child process (this test again, with `CHILD=case`), bounded to 30 s.
fn child(test: &str, case: &str, scenario: fn()) {
    if std::env::var(CHILD).as_deref() == Ok(case) {
        scenario();
        return;
    }
    let (ok, output) = util::run_in_child(test, (CHILD, case), Duration::from_secs(30));
    assert!(ok, "the child failed (or hung):\n{output}");
    assert!(output.contains("child: survived"), "{output}");
}

struct OnDrop(Rc<Cell<bool>>);
impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// Item 7: the id of a schedule's first tasklet, kept after 2^32 more spawns, names nothing
/// (the sequence is 64 bits; a 32-bit one came round to the same id).
#[test]
fn a_stale_id_after_2_pow_32_spawns_names_no_tasklet() {
    let mut fresh = Schedule::new();
    let stale = fresh.spawn(|h| h.park()).unwrap();
    // A schedule that has spawned 2^32 tasklets; its next one takes the same slot.
    let mut later = Schedule::builder().first_sequence(1 << 32).build();
    let woken = Rc::new(Cell::new(false));
    let w = woken.clone();
    let new = later
        .spawn(move |h| {
            h.park();
            w.set(true);
        })
        .unwrap();
    assert_eq!(new.slot(), stale.slot());
    assert_ne!(new, stale, "{new} and {stale}");
    later.tick().unwrap();
    assert!(!later.contains(stale));
    later.unparker(stale).unpark();
    later.tick().unwrap();
    assert!(!woken.get(), "a stale unpark woke the new tasklet");
    assert!(!later.kill(stale), "a stale kill found a tasklet");
    assert!(later.contains(new));
    later.unparker(new).unpark();
    later.tick().unwrap();
    assert!(woken.get());
}

/// Item 6 (fibra-rt's part): a user's `Duration::MAX` means "no limit", never a panic nor a
/// wait of zero.
#[test]
fn huge_durations_mean_no_limit() {
    util::on_thread_within("huge durations", 20, || {
        let mut s = Schedule::new();
        let done = Rc::new(RefCell::new(Vec::new()));
        let d = done.clone();
        let parked = s
            .spawn(move |h| {
                h.park();
                d.borrow_mut().push("woken");
                let r = h.yield_op_timeout(fibra::rt::Park, Duration::MAX);
                d.borrow_mut()
                    .push(if r.is_ok() { "unparked" } else { "timed out" });
            })
            .unwrap();
        s.tick().unwrap();
        let remote = s.remote();
        let waker = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            remote.unpark(parked);
            std::thread::sleep(Duration::from_millis(100));
            remote.unpark(parked);
        });
        let start = Instant::now();
        // Sleeps until the first unpark, not zero (not a busy tick), and does not panic.
        assert!(s.tick_within(Duration::MAX).unwrap(), "tasklets remain");
        assert_eq!(
            *done.borrow(),
            ["woken"],
            "returned after {:?}",
            start.elapsed()
        );
        assert!(!s.run_for(Duration::MAX).unwrap());
        assert_eq!(*done.borrow(), ["woken", "unparked"]);
        waker.join().unwrap();
    });
}

/// An op that declares its plugin.
struct Frame;
impl Op for Frame {
    type Output = u64;
    const PLUGIN: Option<&'static str> = Some("game::Frames::new()");
}

/// Issue 26: yielding an op no plugin serves panics that tasklet (the others go on) with a
/// message naming the op and the line that adds its plugin; the host sees it in `take_exit`.
#[test]
fn an_op_without_its_plugin_ends_its_tasklet_naming_the_line_to_add() {
    let mut s = Schedule::new();
    let alone = s
        .spawn(|h| {
            h.yield_op(Frame);
        })
        .unwrap();
    let in_select = s
        .spawn(|h| {
            h.select(fibra::rt::Park, Frame);
        })
        .unwrap();
    let other = s.spawn(|_| {}).unwrap();
    for id in [alone, in_select, other] {
        s.watch_exit(id);
    }
    s.run().unwrap();
    let want = "no plugin of this schedule serves `rt_containment::Frame`";
    let add = "add `schedule.add_plugin(game::Frames::new())`";
    match s.take_exit(alone) {
        Some(Exit::Panicked(msg)) => {
            assert!(msg.starts_with(want) && msg.ends_with(add), "{msg}");
        }
        exit => panic!("{exit:?}"),
    }
    match s.take_exit(in_select) {
        Some(Exit::Panicked(msg)) => {
            assert!(msg.contains(want) && msg.contains("of a select") && msg.ends_with(add));
        }
        exit => panic!("{exit:?}"),
    }
    assert_eq!(s.take_exit(other), Some(Exit::Finished));
}

/// A tasklet whose plugin panicked while serving it ends with every watcher told, even when
/// the withdrawal of its ops that follows meets a second plugin whose `cancel` panics too.
fn a_second_panic_while_reaping() {
    struct Explode;
    impl Op for Explode {
        type Output = ();
    }
    #[derive(Debug)]
    struct Bomb;
    impl Plugin for Bomb {
        fn register(router: &mut Router<Self>) {
            router.op::<Explode>();
        }
    }
    impl Serves<Explode> for Bomb {
        fn submit(&mut self, _: Explode, _: TaskletId, _: &mut Context<'_>) -> Poll<()> {
            panic!("the plugin's submit panics");
        }
    }
    let mut s = Schedule::new();
    s.add_plugin(Holder {
        cancel_panics: true,
        ..Holder::default()
    })
    .unwrap();
    s.add_plugin(Bomb).unwrap();
    let id = s.spawn(|h| h.yield_op(Explode)).unwrap();
    s.watch_exit(id);
    assert!(catch_unwind(AssertUnwindSafe(|| s.tick())).is_err());
    // The next call ends the tasklet; Holder's cancel panics on the way.
    assert!(catch_unwind(AssertUnwindSafe(|| s.tick())).is_err());
    assert!(!s.contains(id));
    assert_eq!(
        s.take_exit(id),
        Some(Exit::Panicked("the plugin serving its op panicked".into())),
        "the watcher was told"
    );
    assert!(!s.tick().unwrap());
    eprintln!("child: survived");
}

#[test]
fn a_tasklet_ended_by_a_plugin_panic_is_reported_despite_a_panicking_cancel() {
    child(
        "a_tasklet_ended_by_a_plugin_panic_is_reported_despite_a_panicking_cancel",
        "reap",
        a_second_panic_while_reaping,
    );
}

/// Watches the exit of whoever yields `Watch`; its `exited` hook panics.
struct Watch;
impl Op for Watch {
    type Output = ();
}

#[derive(Debug)]
struct BadWatcher;
impl Plugin for BadWatcher {
    fn register(router: &mut Router<Self>) {
        router.op::<Watch>();
    }

    fn exited(&mut self, _: TaskletId, _: &Exit, _: &mut Context<'_>) {
        panic!("the plugin's exited hook panics");
    }
}

impl Serves<Watch> for BadWatcher {
    fn submit(&mut self, _: Watch, from: TaskletId, cx: &mut Context<'_>) -> Poll<()> {
        cx.watch_exit(from);
        Poll::Ready(())
    }
}

/// A plugin whose `exited` hook panics does not keep the tasklet's other watchers from
/// hearing how it ended: a joiner (the tasks plugin watches for it) is woken.
fn a_panicking_exit_hook_with_a_joiner() {
    use fibra::tasks::{TasksExt, TasksPlugin};
    let mut s = Schedule::new();
    s.add_plugin(BadWatcher).unwrap();
    s.add_plugin(TasksPlugin::new()).unwrap();
    let watched = s
        .spawn(|h| {
            h.yield_op(Watch);
            // The joiner joins meanwhile.
            h.sleep(Duration::from_millis(5));
        })
        .unwrap();
    let joined = Rc::new(Cell::new(None));
    let j = joined.clone();
    s.spawn(move |h| j.set(Some(h.join_id(watched).is_ok_and(|e| e.is_finished()))))
        .unwrap();
    let mut panics = 0;
    for _ in 0..200 {
        match catch_unwind(AssertUnwindSafe(|| {
            s.tick_within(Duration::from_millis(10))
        })) {
            Ok(r) => {
                if !r.unwrap() {
                    break;
                }
            }
            Err(_) => panics += 1,
        }
    }
    assert_eq!(panics, 1, "the hook's panic reaches the host once");
    assert_eq!(joined.get(), Some(true), "the joiner heard the end");
    eprintln!("child: survived");
}

#[test]
fn a_panicking_exit_hook_does_not_keep_other_watchers_from_hearing() {
    child(
        "a_panicking_exit_hook_does_not_keep_other_watchers_from_hearing",
        "hook",
        a_panicking_exit_hook_with_a_joiner,
    );
}

/// Never completes; records the tasklets it was told to forget.
struct Wait2;
impl Op for Wait2 {
    type Output = ();
}

#[derive(Debug, Default)]
struct Recorder {
    cancelled: Vec<TaskletId>,
}
impl Plugin for Recorder {
    fn register(router: &mut Router<Self>) {
        router.op::<Wait2>();
    }

    fn cancel(&mut self, id: TaskletId) {
        self.cancelled.push(id);
    }
}

impl Serves<Wait2> for Recorder {
    fn submit(&mut self, _: Wait2, _: TaskletId, _: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

/// A kill of a tasklet waiting in a select withdraws every arm, even when the first arm's
/// plugin panics in `cancel`: the second plugin does not keep a waiter that is gone.
fn a_select_kill_with_a_panicking_cancel() {
    let mut s = Schedule::new();
    s.add_plugin(Holder::default()).unwrap();
    s.add_plugin(Recorder::default()).unwrap();
    let id = s
        .spawn(|h| {
            h.select(Hold, Wait2);
        })
        .unwrap();
    s.watch_exit(id);
    s.tick().unwrap();
    s.plugin_mut::<Holder>().unwrap().cancel_panics = true;
    assert!(catch_unwind(AssertUnwindSafe(|| s.kill(id))).is_err());
    assert_eq!(s.take_exit(id), Some(Exit::Killed));
    assert_eq!(s.plugin::<Recorder>().unwrap().cancelled, [id]);
    eprintln!("child: survived");
}

#[test]
fn a_kill_withdraws_every_arm_of_a_select_despite_a_panicking_cancel() {
    child(
        "a_kill_withdraws_every_arm_of_a_select_despite_a_panicking_cancel",
        "select",
        a_select_kill_with_a_panicking_cancel,
    );
}
