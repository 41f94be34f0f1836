//! How a tasklet ended reaches the host: `block_on` gives back the main tasklet's value (a
//! `Result`, so that it can use `?`), `watch_exit`/`take_exit` give any tasklet's `Exit`, and a
//! panic's report names its tasklet even with no logger installed.

mod util;

use std::time::Duration;

use fibra::rt::{Error, Exit};
use fibra::tasks::TasksExt;
use util::schedule;

#[test]
fn block_on_gives_back_what_main_returned_errors_included() {
    let mut s = schedule();
    let value = s
        .block_on(|h| {
            h.sleep(Duration::from_millis(2));
            6 * 7
        })
        .unwrap();
    assert_eq!(value, 42);

    let failed = s
        .block_on(|h| -> Result<(), std::num::ParseIntError> {
            h.yield_now();
            let _port: u16 = "70000".parse()?;
            Ok(())
        })
        .unwrap();
    let err = failed.unwrap_err();
    assert_eq!(err.to_string(), "number too large to fit in target type");
}

#[test]
fn block_on_returns_when_main_ends_and_leaves_the_others_running() {
    let mut s = schedule();
    let other = s.spawn(|h| h.sleep(Duration::from_secs(3600))).unwrap();
    assert_eq!(s.block_on(|_| "done").unwrap(), "done");
    assert!(
        s.contains(other),
        "the other tasklet stays for a later tick"
    );
    assert!(s.kill(other));
}

#[test]
fn block_on_says_how_main_ended_when_it_did_not_return() {
    util::panics_expected();
    let mut s = schedule();
    let err = s
        .block_on(|_| -> u32 { panic!("cannot read the config") })
        .unwrap_err();
    match &err {
        Error::Ended { exit } => assert_eq!(*exit, Exit::Panicked("cannot read the config".into())),
        other => panic!("expected Ended, got {other:?}"),
    }
    assert!(err.to_string().contains("cannot read the config"), "{err}");

    // Killed by another tasklet while it sleeps.
    let err = s
        .block_on(|h| {
            let me = h.id();
            h.spawn_detached(move |h| {
                h.kill(me);
            })
            .unwrap();
            h.sleep(Duration::from_secs(3600));
        })
        .unwrap_err();
    assert!(
        matches!(&err, Error::Ended { exit: Exit::Killed }),
        "{err:?}"
    );
}

#[test]
fn block_on_reports_a_main_that_can_never_wake() {
    let mut s = schedule();
    let err = s.block_on(|h| h.park()).unwrap_err();
    assert!(err.is_stalled(), "{err:?}");
}

#[test]
fn the_host_reads_the_exit_of_the_tasklets_it_watches() {
    util::panics_expected();
    let mut s = schedule();
    let finishes = s.spawn(|h| h.sleep(Duration::from_millis(1))).unwrap();
    let panics = s.spawn(|_| panic!("on purpose")).unwrap();
    let killed = s.spawn(|h| h.sleep(Duration::from_secs(3600))).unwrap();
    let unwatched = s.spawn(|_| {}).unwrap();
    for id in [finishes, panics, killed] {
        assert!(s.watch_exit(id));
    }
    assert_eq!(s.take_exit(finishes), None, "still alive");
    s.spawn(move |h| {
        h.sleep(Duration::from_millis(5));
        h.kill(killed);
    })
    .unwrap();
    s.run().unwrap();
    assert_eq!(s.take_exit(finishes), Some(Exit::Finished));
    assert_eq!(
        s.take_exit(panics),
        Some(Exit::Panicked("on purpose".into()))
    );
    assert_eq!(s.take_exit(killed), Some(Exit::Killed));
    assert_eq!(s.take_exit(killed), None, "an exit is given once");
    assert_eq!(
        s.take_exit(unwatched),
        None,
        "nothing is kept for the unwatched"
    );
    assert!(
        !s.watch_exit(unwatched),
        "an ended tasklet cannot be watched"
    );
}

#[test]
fn a_watched_exit_is_kept_when_its_slot_is_reused() {
    util::panics_expected();
    let mut s = schedule();
    let first = s.spawn(|_| {}).unwrap();
    s.watch_exit(first);
    s.run().unwrap();
    // The next tasklet reuses the slot; the first one's exit is still there.
    let second = s.spawn(|_| panic!("second")).unwrap();
    assert_eq!(first.slot(), second.slot());
    s.watch_exit(second);
    s.run().unwrap();
    assert_eq!(s.take_exit(first), Some(Exit::Finished));
    assert_eq!(s.take_exit(second), Some(Exit::Panicked("second".into())));
}

const CHILD: &str = "FIBRA_RT_EXIT_CHILD";

#[test]
fn a_panic_report_names_its_tasklet_without_a_logger() {
    util::panics_expected();
    if std::env::var(CHILD).as_deref() == Ok("panic") {
        // No logger in this process.
        let mut s = schedule();
        s.spawn_named("session-17", |h| {
            h.yield_now();
            panic!("bad frame");
        })
        .unwrap();
        s.run().unwrap();
        return;
    }
    let (ok, stderr) = util::run_in_child(
        "a_panic_report_names_its_tasklet_without_a_logger",
        (CHILD, "panic"),
        Duration::from_secs(60),
    );
    assert!(ok, "the child failed:\n{stderr}");
    assert!(
        stderr.contains("tasklet") && stderr.contains("`session-17` panicked: bad frame"),
        "{stderr}"
    );
}
