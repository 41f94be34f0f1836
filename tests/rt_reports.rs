//! What the runtime logs about tasklets: a stall (a tasklet or plugin running too long without
//! yielding) is named once, while it still runs; an unnamed tasklet is shown as `#<id>`.
//!
//! The tests share one process-wide logger that keeps every record.

mod util;

use std::sync::{Mutex, Once};
use std::task::Poll;
use std::time::{Duration, Instant};

use fibra::rt::{Context, Events, Op, Plugin, Router, Schedule, Serves, TaskletId};
use fibra::tasks::{TasksExt, TasksPlugin};

/// Every record logged, as `LEVEL target: message`.
static RECORDS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Keep;
impl log::Log for Keep {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{} {}: {}", record.level(), record.target(), record.args());
        RECORDS.lock().unwrap().push(line);
    }
    fn flush(&self) {}
}

fn logger() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        log::set_boxed_logger(Box::new(Keep)).unwrap();
        log::set_max_level(log::LevelFilter::Trace);
    });
}

/// The records that contain every one of `parts`.
fn records_with(parts: &[&str]) -> Vec<String> {
    let records = RECORDS.lock().unwrap();
    let hits = records
        .iter()
        .filter(|r| parts.iter().all(|p| r.contains(p)));
    hits.cloned().collect()
}

/// Spins (never yielding) until a record with every one of `parts` appears, at most 10 s.
fn spin_until_logged(parts: &[&str]) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if !records_with(parts).is_empty() {
            return true;
        }
        std::hint::spin_loop();
    }
    false
}

#[test]
fn a_spinning_tasklet_is_named_once_while_it_still_runs() {
    logger();
    let mut s = Schedule::builder()
        .stall_threshold(Duration::from_millis(50))
        .build();
    let spinner = s
        .spawn_named("spinner", |h| {
            let me = h.id().to_string();
            let parts = [
                "WARN fibra_rt::stall: tasklet",
                &me,
                "`spinner`",
                "without yielding",
            ];
            // Still running (this is its first and only step) when the report comes.
            assert!(spin_until_logged(&parts), "no stall report for {me}");
            // Go on a while past it: still reported once only.
            let past = Instant::now();
            while past.elapsed() < Duration::from_millis(200) {
                std::hint::spin_loop();
            }
        })
        .unwrap();
    s.watch_exit(spinner);
    s.run().unwrap();
    assert!(s.take_exit(spinner).unwrap().is_finished());
    let me = format!("{spinner} `spinner`");
    let reports = records_with(&["fibra_rt::stall", &me, "without yielding"]);
    assert_eq!(reports.len(), 1, "{reports:?}");
}

/// An op whose plugin spins in `poll` until the stall report names it.
struct Slow;
impl Op for Slow {
    type Output = ();
}

#[derive(Debug, Default)]
struct Sluggish {
    waiting: Option<TaskletId>,
    reported: bool,
}

impl Plugin for Sluggish {
    fn register(router: &mut Router<Self>) {
        router.op::<Slow>();
    }

    fn poll(&mut self, cx: &mut Context<'_>, _: Events<'_>) -> std::io::Result<()> {
        if let Some(id) = self.waiting.take() {
            let parts = ["WARN fibra_rt::stall: plugin", "Sluggish", "poll"];
            self.reported = spin_until_logged(&parts);
            let _ = cx.complete::<Slow>(id, ());
        }
        Ok(())
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.waiting.map(|_| Instant::now())
    }
}

impl Serves<Slow> for Sluggish {
    fn submit(&mut self, _: Slow, from: TaskletId, _: &mut Context<'_>) -> Poll<()> {
        self.waiting = Some(from);
        Poll::Pending
    }
}

#[test]
fn a_plugin_that_blocks_in_poll_is_named() {
    logger();
    let mut s = Schedule::builder()
        .stall_threshold(Duration::from_millis(50))
        .build();
    s.add_plugin(Sluggish::default()).unwrap();
    s.spawn(|h| h.yield_op(Slow)).unwrap();
    s.run().unwrap();
    assert!(s.plugin::<Sluggish>().unwrap().reported, "no stall report");
}

/// An op whose plugin, once it took one, spins in its next `flush` until the stall report
/// names it.
struct Dawdle;
impl Op for Dawdle {
    type Output = ();
}

#[derive(Debug, Default)]
struct Dawdler {
    armed: bool,
    reported: bool,
}

impl Plugin for Dawdler {
    fn register(router: &mut Router<Self>) {
        router.op::<Dawdle>();
    }

    fn flush(&mut self, _: &mut Context<'_>) -> std::io::Result<()> {
        if std::mem::take(&mut self.armed) {
            let parts = ["WARN fibra_rt::stall: plugin", "Dawdler", "(in flush)"];
            self.reported = spin_until_logged(&parts);
        }
        Ok(())
    }
}

impl Serves<Dawdle> for Dawdler {
    fn submit(&mut self, _: Dawdle, _: TaskletId, _: &mut Context<'_>) -> Poll<()> {
        self.armed = true;
        Poll::Ready(())
    }
}

/// The report names the tasklet that spins on a later step (after steps of another tasklet,
/// then steps of its own in a row), and a plugin that is not the first one added.
#[test]
fn a_tasklet_spinning_on_a_later_step_and_a_later_plugin_are_named() {
    logger();
    let mut s = Schedule::builder()
        .stall_threshold(Duration::from_millis(50))
        .build();
    s.add_plugin(TasksPlugin::new()).unwrap();
    s.add_plugin(Dawdler::default()).unwrap();
    s.spawn_named("hopper", |h| {
        for _ in 0..5 {
            h.yield_now();
        }
    })
    .unwrap();
    let late = s
        .spawn_named("late-spinner", |h| {
            for _ in 0..10 {
                h.yield_now();
            }
            let me = h.id().to_string();
            let parts = [
                "WARN fibra_rt::stall: tasklet",
                &me,
                "`late-spinner`",
                "without yielding",
            ];
            assert!(spin_until_logged(&parts), "no stall report for {me}");
            h.yield_op(Dawdle);
        })
        .unwrap();
    s.watch_exit(late);
    s.run().unwrap();
    assert!(s.take_exit(late).unwrap().is_finished());
    assert!(
        s.plugin::<Dawdler>().unwrap().reported,
        "no report of Dawdler"
    );
}

#[test]
fn with_reports_off_nothing_is_said() {
    logger();
    let mut s = Schedule::builder()
        .stall_threshold(Duration::from_millis(10))
        .stall_reports(false)
        .build();
    s.spawn_named("quiet-spinner", |_| {
        std::thread::sleep(Duration::from_millis(100));
    })
    .unwrap();
    s.run().unwrap();
    assert!(records_with(&["fibra_rt::stall", "quiet-spinner"]).is_empty());
}

#[test]
fn an_unnamed_tasklet_is_shown_by_its_id() {
    logger();
    let mut s = Schedule::new();
    let id = s.spawn(|_| panic!("unnamed and failing")).unwrap();
    s.run().unwrap();
    let reports = records_with(&["unnamed and failing", "fibra_rt::tasklet"]);
    assert_eq!(
        reports,
        [format!(
            "ERROR fibra_rt::tasklet: tasklet {id} panicked: unnamed and failing"
        )]
    );
}

/// The `/proc/self/task/*/status` texts of this process's threads named `fibra-stall`.
fn watchdog_threads() -> Vec<String> {
    let mut found = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() == "fibra-stall" {
            found.push(std::fs::read_to_string(task.path().join("status")).unwrap_or_default());
        }
    }
    found
}

/// The watchdog thread starts with the first schedule (with every signal blocked, so that a
/// signal the signal plugin catches is never delivered to it, with its default action), and
/// ends when the last one drops. Alone in a child process, to count threads.
#[test]
fn the_watchdog_thread_blocks_signals_and_ends_with_its_schedule() {
    const CHILD: &str = "FIBRA_RT_REPORTS_CHILD";
    if std::env::var(CHILD).is_ok() {
        assert!(watchdog_threads().is_empty());
        let s = Schedule::new();
        // The thread names itself as it starts.
        let start = Instant::now();
        let mut threads = watchdog_threads();
        while threads.is_empty() && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(1));
            threads = watchdog_threads();
        }
        assert_eq!(threads.len(), 1);
        let blocked = threads[0]
            .lines()
            .find(|l| l.starts_with("SigBlk:"))
            .unwrap();
        let mask = u64::from_str_radix(blocked["SigBlk:".len()..].trim(), 16).unwrap();
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            assert!(
                mask & (1 << (signal - 1)) != 0,
                "{blocked}: signal {signal}"
            );
        }
        drop(s);
        assert!(
            watchdog_threads().is_empty(),
            "the watchdog outlived its schedule"
        );
        let off = Schedule::builder().stall_reports(false).build();
        assert!(watchdog_threads().is_empty(), "a watchdog with reports off");
        drop(off);
        eprintln!("child: done");
        return;
    }
    let (ok, output) = util::run_in_child(
        "the_watchdog_thread_blocks_signals_and_ends_with_its_schedule",
        (CHILD, "1"),
        Duration::from_secs(30),
    );
    assert!(ok && output.contains("child: done"), "{output}");
}

/// The watchdog thread's `voluntary_ctxt_switches` (how often it went to sleep), once it runs.
fn watchdog_sleeps() -> u64 {
    let start = Instant::now();
    let mut threads = watchdog_threads();
    while threads.is_empty() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(1));
        threads = watchdog_threads();
    }
    assert_eq!(threads.len(), 1, "one watchdog thread");
    let line = threads[0]
        .lines()
        .find(|l| l.starts_with("voluntary_ctxt_switches:"))
        .unwrap();
    line["voluntary_ctxt_switches:".len()..]
        .trim()
        .parse()
        .unwrap()
}

/// Schedules on two threads share one watchdog thread, which names the stall of each; once
/// both dropped (and the thread ended), a new schedule starts a new one that names its
/// stalls too, and sleeps while the schedule blocks in its reactor's wait instead of looking
/// every quarter threshold. Alone in a child process, to count threads.
#[test]
fn schedules_share_one_watchdog_that_sleeps_while_they_wait() {
    const CHILD: &str = "FIBRA_RT_REPORTS_SHARED_CHILD";
    if std::env::var(CHILD).is_ok() {
        logger();
        let built = std::sync::Arc::new(std::sync::Barrier::new(3));
        let threads: Vec<_> = ["spinner-a", "spinner-b"]
            .into_iter()
            .map(|name| {
                let built = built.clone();
                std::thread::spawn(move || {
                    let mut s = Schedule::builder()
                        .stall_threshold(Duration::from_millis(50))
                        .build();
                    built.wait();
                    built.wait();
                    let spinner = s
                        .spawn_named(name, move |h| {
                            let me = h.id().to_string();
                            let name = format!("`{name}`");
                            let parts = ["WARN fibra_rt::stall: tasklet", &me, &name];
                            assert!(spin_until_logged(&parts), "no stall report for {me}");
                        })
                        .unwrap();
                    s.watch_exit(spinner);
                    s.run().unwrap();
                    assert!(s.take_exit(spinner).unwrap().is_finished());
                })
            })
            .collect();
        built.wait();
        watchdog_sleeps();
        // Both schedules are built; a second thread would have named itself by now.
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            watchdog_threads().len(),
            1,
            "one watchdog for two schedules"
        );
        built.wait();
        for thread in threads {
            thread.join().unwrap();
        }
        assert!(
            watchdog_threads().is_empty(),
            "the watchdog outlived its schedules"
        );

        let mut s = Schedule::builder()
            .stall_threshold(Duration::from_millis(20))
            .build();
        s.add_plugin(TasksPlugin::new()).unwrap();
        let spinner = s
            .spawn_named("spinner-c", |h| {
                let me = h.id().to_string();
                let parts = ["WARN fibra_rt::stall: tasklet", &me, "`spinner-c`"];
                assert!(spin_until_logged(&parts), "no stall report for {me}");
            })
            .unwrap();
        s.watch_exit(spinner);
        s.run().unwrap();
        assert!(s.take_exit(spinner).unwrap().is_finished());
        // 400 ms asleep in the reactor: a watchdog looking every 5 ms would sleep 80 times.
        let before = std::rc::Rc::new(std::cell::Cell::new(0));
        let sleeper = {
            let before = before.clone();
            s.spawn_named("sleeper", move |h| {
                before.set(watchdog_sleeps());
                h.sleep(Duration::from_millis(400));
            })
            .unwrap()
        };
        s.watch_exit(sleeper);
        s.run().unwrap();
        assert!(s.take_exit(sleeper).unwrap().is_finished());
        let slept = watchdog_sleeps() - before.get();
        assert!(
            slept <= 10,
            "the watchdog went to sleep {slept} times in 400 ms"
        );
        drop(s);
        eprintln!("child: done, watchdog slept {slept} times");
        return;
    }
    let (ok, output) = util::run_in_child(
        "schedules_share_one_watchdog_that_sleeps_while_they_wait",
        (CHILD, "1"),
        Duration::from_secs(60),
    );
    assert!(ok && output.contains("child: done"), "{output}");
    eprintln!(
        "{}",
        output
            .lines()
            .find(|l| l.contains("child: done"))
            .unwrap_or("")
    );
}

/// Spawns tasklet `name` whose code catches the kill's unwind (a plain `catch_unwind` around
/// a yield) and yields again, which keeps its kill from ending; it lets the unwind through
/// once the watchdog reported it (or after 10 s), so that the kill ends. Runs it to its yield.
fn spawn_swallower(s: &mut Schedule, name: &'static str) -> TaskletId {
    let id = s
        .spawn_named(name, move |h| {
            let me = h.id().to_string();
            let name = format!("`{name}`");
            let parts = ["WARN fibra_rt::stall: tasklet", &me, &name, "being killed"];
            let start = Instant::now();
            loop {
                let slept = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    h.sleep(Duration::from_secs(60))
                }));
                if let Err(unwind) = slept {
                    if !records_with(&parts).is_empty() || start.elapsed() > Duration::from_secs(10)
                    {
                        std::panic::resume_unwind(unwind);
                    }
                }
            }
        })
        .unwrap();
    s.tick().unwrap();
    id
}

/// A kill that the tasklet's code keeps from ending (see [`spawn_swallower`]) is reported,
/// naming the tasklet and what its code does; so is the schedule's drop.
#[test]
fn a_kill_whose_unwind_the_tasklet_swallows_is_reported() {
    logger();
    let mut s = Schedule::builder()
        .stall_threshold(Duration::from_millis(50))
        .build();
    s.add_plugin(TasksPlugin::new()).unwrap();
    let swallower = spawn_swallower(&mut s, "swallower");
    assert!(s.kill(swallower));
    let me = format!("{swallower} `swallower`");
    let reports = records_with(&["WARN fibra_rt::stall", &me, "being killed", "catch_unwind"]);
    assert_eq!(reports.len(), 1, "{reports:?}");

    let dropped = spawn_swallower(&mut s, "swallower-dropped");
    drop(s);
    let me = format!("{dropped} `swallower-dropped`");
    let reports = records_with(&["WARN fibra_rt::stall", &me, "being killed", "catch_unwind"]);
    assert_eq!(reports.len(), 1, "{reports:?}");
}

/// A tasklet that kills another (whose stack unwinds inside its run) and then spins is still
/// named as running: the unwind gives its run back.
#[test]
fn a_tasklet_spinning_after_a_kill_it_asked_for_is_named() {
    logger();
    let mut s = Schedule::builder()
        .stall_threshold(Duration::from_millis(50))
        .build();
    s.add_plugin(TasksPlugin::new()).unwrap();
    let victim = s
        .spawn_named("victim", |h| h.sleep(Duration::from_secs(60)))
        .unwrap();
    s.tick().unwrap();
    let killer = s
        .spawn_named("killer".to_owned(), move |h| {
            assert!(h.kill(victim));
            let me = h.id().to_string();
            let parts = [
                "WARN fibra_rt::stall: tasklet",
                &me,
                "`killer`",
                "without yielding",
            ];
            assert!(spin_until_logged(&parts), "no stall report for {me}");
        })
        .unwrap();
    s.watch_exit(killer);
    s.run().unwrap();
    assert!(s.take_exit(killer).unwrap().is_finished());
}

/// A plugin whose `poll` panics once.
#[derive(Debug, Default)]
struct PanicsInPollOnce {
    panicked: bool,
}

impl Plugin for PanicsInPollOnce {
    fn register(_: &mut Router<Self>) {}

    fn poll(&mut self, _: &mut Context<'_>, _: Events<'_>) -> std::io::Result<()> {
        if !std::mem::replace(&mut self.panicked, true) {
            panic!("poll panics once");
        }
        Ok(())
    }
}

/// A plugin's panic in `poll` ends its run for the watchdog too: the schedule, idle afterwards
/// (the host caught the panic), is not reported as a plugin stuck in `poll` or `flush`.
#[test]
fn a_plugin_whose_poll_panicked_is_not_reported_as_running_after() {
    logger();
    let mut s = Schedule::builder()
        .stall_threshold(Duration::from_millis(20))
        .build();
    s.add_plugin(PanicsInPollOnce::default()).unwrap();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.tick()));
    assert!(caught.is_err(), "the plugin's poll did not panic");
    // The panic hook ran inside `poll` (a backtrace can take longer than the threshold): that
    // run may be reported, and its end then too, within a few watchdog looks.
    std::thread::sleep(Duration::from_millis(300));
    let before = records_with(&["fibra_rt::stall", "PanicsInPollOnce"]);
    // Idle: a few rounds, each waiting in the reactor far past the threshold, then the host
    // on its own as long again.
    s.spawn(|h| h.park()).unwrap();
    for _ in 0..3 {
        s.tick_within(Duration::from_millis(150)).unwrap();
    }
    std::thread::sleep(Duration::from_millis(150));
    let reports = records_with(&["fibra_rt::stall", "PanicsInPollOnce"]);
    assert_eq!(reports, before, "reported while idle");
}

/// A program that spawns and forgets to run the schedule ended in silence; now the drop says
/// so, once, at warn. A schedule that ran says nothing of the tasklets left.
#[test]
fn a_schedule_dropped_before_it_ever_ran_says_so() {
    logger();
    let mut s = Schedule::new();
    for _ in 0..3 {
        s.spawn(|_h| {}).unwrap();
    }
    drop(s);
    let said = records_with(&["WARN fibra_rt:", "3 tasklets that never ran"]);
    assert_eq!(said.len(), 1, "{said:?}");

    let mut s = Schedule::new();
    s.spawn(|_h| {}).unwrap();
    s.tick().unwrap();
    for _ in 0..7 {
        s.spawn(|_h| {}).unwrap();
    }
    drop(s);
    assert!(records_with(&["7 tasklets that never ran"]).is_empty());
}
