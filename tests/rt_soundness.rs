//! A plugin that panics while it serves an op leaves no pointer into a dead tasklet's stack:
//! whatever the host calls next (kill, tick, run) cannot write through it.
//!
//! The bug this guards against was a segfault, so the scenario runs in a child process (this
//! test binary again) and the parent reads how it ended.

mod util;

use std::task::Poll;
use std::time::Duration;

use fibra::rt::{Context, Exit, Op, Plugin, Router, Schedule, Serves, TaskletId};

const CHILD: &str = "FIBRA_RT_SOUNDNESS_CHILD";

/// Kills `kill`, watches `watch`, and waits until the plugin completes it.
struct KillAndWait {
    kill: TaskletId,
    watch: TaskletId,
}
impl Op for KillAndWait {
    type Output = u64;
}

/// Kills tasklets on request. The first exit it hears of panics; each later one completes the
/// waiting tasklet, through whatever the schedule still holds for it.
#[derive(Debug, Default)]
struct Killer {
    waiter: Option<TaskletId>,
    exits: u32,
    completions: Vec<Result<(), u64>>,
}

impl Plugin for Killer {
    fn register(router: &mut Router<Self>) {
        router.op::<KillAndWait>();
    }

    fn exited(&mut self, _: TaskletId, _: &Exit, cx: &mut Context<'_>) {
        self.exits += 1;
        if self.exits == 1 {
            panic!("the plugin's exit hook panics once");
        }
        if let Some(waiter) = self.waiter {
            self.completions.push(cx.complete::<KillAndWait>(waiter, 7));
        }
    }
}

impl Serves<KillAndWait> for Killer {
    fn submit(&mut self, op: KillAndWait, from: TaskletId, cx: &mut Context<'_>) -> Poll<u64> {
        self.waiter = Some(from);
        cx.watch_exit(op.kill);
        cx.watch_exit(op.watch);
        cx.kill(op.kill);
        Poll::Pending
    }
}

/// The waiter's op kills `first`; the exit hook panics and the panic reaches the host while
/// the waiter's coroutine is out of the table. The host then kills `second`, whose exit hook
/// completes the waiter: that must find no op slot to write into.
fn child_scenario() {
    let mut s = Schedule::new();
    s.add_plugin(Killer::default()).unwrap();
    let first = s.spawn(|h| h.park()).unwrap();
    let second = s.spawn(|h| h.park()).unwrap();
    s.tick().unwrap(); // both park
    let waiter = s
        .spawn(move |h| {
            let got = h.yield_op(KillAndWait {
                kill: first,
                watch: second,
            });
            unreachable!("the waiter was resumed with {got} after its stack was dropped");
        })
        .unwrap();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.tick()));
    assert!(caught.is_err(), "the plugin's panic reaches the host");
    assert!(!s.contains(first));
    assert!(s.kill(second));
    assert!(
        !s.contains(waiter),
        "the waiter ended with its plugin's panic"
    );
    let completions = &s.plugin::<Killer>().unwrap().completions;
    assert_eq!(completions.as_slice(), &[Err(7)], "{completions:?}");
    // The schedule goes on.
    s.spawn(|_| {}).unwrap();
    assert!(!s.tick().unwrap());
    eprintln!("child: survived");
}

#[test]
fn a_host_kill_after_a_plugin_panic_never_writes_into_a_dropped_stack() {
    if std::env::var(CHILD).as_deref() == Ok("kill-after-panic") {
        child_scenario();
        return;
    }
    let (ok, stderr) = run_child(
        "a_host_kill_after_a_plugin_panic_never_writes_into_a_dropped_stack",
        "kill-after-panic",
    );
    assert!(ok, "the child failed:\n{stderr}");
    assert!(stderr.contains("child: survived"), "{stderr}");
}

/// Runs `test` of this binary in a child with `CHILD=case`; returns (success, its output).
fn run_child(test: &str, case: &str) -> (bool, String) {
    util::run_in_child(test, (CHILD, case), Duration::from_secs(60))
}
