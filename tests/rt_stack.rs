//! Stack overflow and stack exhaustion give messages a user can act on. Each case runs in a
//! child process (this test binary again), since an overflow ends the process.

mod util;

use std::time::Duration;

use fibra::rt::{Schedule, SpawnOptions};
use fibra::tasks::{TasksExt, TasksPlugin};

const CHILD: &str = "FIBRA_RT_STACK_CHILD";

/// Runs `test` of this binary in a child with `CHILD=case`; returns (success, its output).
fn run_child(test: &str, case: &str) -> (bool, String) {
    util::run_in_child(test, (CHILD, case), Duration::from_secs(60))
}

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let mut frame = [0u8; 256];
    std::hint::black_box(&mut frame);
    if depth == 0 {
        return 0;
    }
    recurse(depth - 1) + u64::from(std::hint::black_box(frame)[7])
}

#[test]
fn a_stack_overflow_names_the_tasklet_and_its_stack_size() {
    if std::env::var(CHILD).as_deref() == Ok("overflow") {
        let mut s = Schedule::new();
        s.spawn(|h| h.park()).unwrap();
        let options = SpawnOptions::new()
            .name("deep-recursion")
            .stack_size(32 * 1024);
        s.spawn_with(options, |_| {
            std::hint::black_box(recurse(u64::MAX));
        })
        .unwrap();
        let _ = s.tick();
        unreachable!("the overflow ends the process");
    }
    let (ok, stderr) = run_child(
        "a_stack_overflow_names_the_tasklet_and_its_stack_size",
        "overflow",
    );
    assert!(!ok, "the process must fail");
    assert!(
        stderr.contains("`deep-recursion` overflowed its stack of 32768 bytes"),
        "{stderr}"
    );
    assert!(stderr.contains("SpawnOptions::stack_size"), "{stderr}");
    assert!(!stderr.contains("unreachable"), "{stderr}");
}

#[test]
fn a_stack_overflow_is_reported_after_the_tasklet_killed_another() {
    if std::env::var(CHILD).as_deref() == Ok("overflow-after-kill") {
        let mut s = Schedule::new();
        s.add_plugin(TasksPlugin::new()).unwrap();
        let victim = s.spawn(|h| h.park()).unwrap();
        let options = SpawnOptions::new().name("killer").stack_size(32 * 1024);
        s.spawn_with(options, move |h| {
            // The victim's stack is unwound inside this tasklet's step; the killer must be
            // guarded again afterwards.
            assert!(h.kill(victim));
            std::hint::black_box(recurse(u64::MAX));
        })
        .unwrap();
        let _ = s.tick();
        let _ = s.tick();
        unreachable!("the overflow ends the process");
    }
    let (ok, stderr) = run_child(
        "a_stack_overflow_is_reported_after_the_tasklet_killed_another",
        "overflow-after-kill",
    );
    assert!(!ok, "the process must fail");
    assert!(
        stderr.contains("`killer` overflowed its stack of 32768 bytes"),
        "{stderr}"
    );
    assert!(!stderr.contains("unreachable"), "{stderr}");
}

#[test]
fn the_main_thread_overflow_report_of_std_still_works_for_non_tasklet_faults() {
    if std::env::var(CHILD).as_deref() == Ok("plain") {
        let _s = Schedule::new(); // installs fibra's handler
        let t = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(|| recurse(u64::MAX))
            .unwrap();
        let _ = t.join();
        unreachable!("the overflow ends the process");
    }
    let (ok, stderr) = run_child(
        "the_main_thread_overflow_report_of_std_still_works_for_non_tasklet_faults",
        "plain",
    );
    assert!(!ok);
    assert!(stderr.contains("has overflowed its stack"), "{stderr}");
    assert!(!stderr.contains("fibra: tasklet"), "{stderr}");
}

#[test]
fn running_out_of_stacks_says_how_to_raise_the_limit() {
    if std::env::var(CHILD).as_deref() == Ok("enomem") {
        let mut s = Schedule::builder().stack_size(1024 * 1024).build();
        // Cap the address space a little above what the process uses now, so that mapping
        // stacks fails with ENOMEM as it does at vm.max_map_count.
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: u64 = statm.split_whitespace().next().unwrap().parse().unwrap();
        let limit = pages * 4096 + 64 * 1024 * 1024;
        let rlim = libc::rlimit {
            rlim_cur: limit,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: setrlimit with a valid struct.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &rlim) }, 0);
        for _ in 0..10_000 {
            if let Err(e) = s.spawn(|h| h.park()) {
                eprintln!("spawn failed: {e}");
                assert!(e.is_stack_alloc());
                // Everything spawned so far still runs.
                s.tick().unwrap();
                assert!(!s.is_empty());
                std::process::exit(0);
            }
        }
        panic!("10,000 stacks of 1 MiB fit under a 64 MiB cap");
    }
    let (ok, stderr) = run_child(
        "running_out_of_stacks_says_how_to_raise_the_limit",
        "enomem",
    );
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("spawn failed: could not allocate a 1048576-byte tasklet stack"),
        "{stderr}"
    );
    assert!(stderr.contains("vm.max_map_count"), "{stderr}");
    assert!(
        stderr.contains("sysctl -w vm.max_map_count=262144"),
        "{stderr}"
    );
}
