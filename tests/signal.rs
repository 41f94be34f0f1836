//! The signals plugin: a tasklet parks until a signal comes, over the schedule's reactor.
//!
//! Signal masks are per thread and a test binary has many threads, so each scenario runs in a
//! child process (this binary again) and raises its signals at the schedule's own thread
//! (`pthread_kill`); the Ctrl-C of a real process is in `examples_exit.rs`.

mod util;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use fibra::rt::{Either, Schedule};
use fibra::signal::{ops::WaitSignal, Signal, SignalError, SignalExt, SignalPlugin};
use fibra::tasks::{ops::Sleep, TasksExt};

const CHILD: &str = "FIBRA_SIGNAL_CHILD";

/// Sends `signal` to this thread (the schedule's).
fn raise(signal: Signal) {
    // SAFETY: `pthread_self` is this live thread; the signal is caught by the plugin.
    let rc = unsafe { libc::pthread_kill(libc::pthread_self(), signal.as_raw()) };
    assert_eq!(rc, 0);
}

/// Whether this thread blocks `signal`.
fn blocked(signal: Signal) -> bool {
    let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: a null new set only reads the mask into `set`, which it initialises.
    unsafe {
        assert_eq!(
            libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), set.as_mut_ptr()),
            0
        );
        libc::sigismember(set.as_ptr(), signal.as_raw()) == 1
    }
}

fn schedule(plugin: SignalPlugin) -> util::TestSchedule {
    let mut s = util::schedule();
    s.add_plugin(plugin).unwrap();
    s
}

fn waiting(s: &Schedule) -> usize {
    s.plugin::<SignalPlugin>().unwrap().waiting()
}

/// Runs `scenario` in a child process when this is the child, else starts the child and
/// checks that it ran to its end.
fn in_child(test: &str, scenario: fn()) {
    if std::env::var(CHILD).as_deref() == Ok(test) {
        scenario();
        eprintln!("child: done");
        return;
    }
    let (ok, output) = util::run_in_child(test, (CHILD, test), Duration::from_secs(60));
    assert!(
        ok && output.contains("child: done"),
        "the child failed:\n{output}"
    );
}

#[test]
fn a_waiting_tasklet_wakes_when_its_signal_comes() {
    in_child("a_waiting_tasklet_wakes_when_its_signal_comes", || {
        let mut s = schedule(SignalPlugin::new().unwrap());
        let got = Rc::new(Cell::new(None));
        let out = got.clone();
        s.spawn(move |h| out.set(Some(h.signals(&[Signal::INT, Signal::USR1]).unwrap())))
            .unwrap();
        s.spawn(|h| {
            h.sleep(Duration::from_millis(20));
            raise(Signal::USR1);
        })
        .unwrap();
        util::run_all(&mut s, 20);
        assert_eq!(got.get(), Some(Signal::USR1));
        assert_eq!(waiting(&s), 0);
        assert!(blocked(Signal::USR1), "caught from the first wait on");
    });
}

#[test]
fn a_signal_that_comes_while_nobody_waits_is_kept_for_the_next_wait() {
    in_child(
        "a_signal_that_comes_while_nobody_waits_is_kept_for_the_next_wait",
        || {
            let mut s = schedule(SignalPlugin::catching(&[Signal::USR2]).unwrap());
            assert!(blocked(Signal::USR2));
            raise(Signal::USR2); // before any tasklet exists: kept, not the default action
            s.spawn(|h| {
                assert_eq!(
                    h.signals(&[Signal::HUP, Signal::USR2]).unwrap(),
                    Signal::USR2
                )
            })
            .unwrap();
            util::run_all(&mut s, 20);
            // Had the arrival been lost, the wait would hang and `run_all` fail.
            // Given once: the next wait parks until a new arrival.
            s.spawn(|h| h.signal(Signal::USR2).unwrap()).unwrap();
            s.run_for(Duration::from_millis(30)).unwrap();
            assert_eq!(waiting(&s), 1, "the kept arrival was given once");
            raise(Signal::USR2);
            util::run_all(&mut s, 20);
        },
    );
}

#[test]
fn one_arrival_wakes_every_tasklet_waiting_for_it() {
    in_child("one_arrival_wakes_every_tasklet_waiting_for_it", || {
        let mut s = schedule(SignalPlugin::new().unwrap());
        let woken = Rc::new(Cell::new(0));
        for _ in 0..3 {
            let woken = woken.clone();
            s.spawn(move |h| {
                h.signal(Signal::HUP).unwrap();
                woken.set(woken.get() + 1);
            })
            .unwrap();
        }
        s.run_for(Duration::from_millis(20)).unwrap();
        assert_eq!(waiting(&s), 3);
        raise(Signal::HUP);
        util::run_all(&mut s, 20);
        assert_eq!(woken.get(), 3);
    });
}

#[test]
fn a_signal_wait_is_withdrawn_by_select_and_by_kill() {
    in_child("a_signal_wait_is_withdrawn_by_select_and_by_kill", || {
        let mut s = schedule(SignalPlugin::new().unwrap());
        s.spawn(|h| {
            let soon = Instant::now() + Duration::from_millis(20);
            match h.select(WaitSignal::new(&[Signal::USR1]), Sleep(soon)) {
                Either::Second(()) => {}
                Either::First(got) => panic!("no signal was sent, got {got:?}"),
            }
        })
        .unwrap();
        util::run_all(&mut s, 20);
        assert_eq!(waiting(&s), 0, "the select withdrew the wait");

        let victim = s.spawn(|h| drop(h.signal(Signal::USR1))).unwrap();
        s.run_for(Duration::from_millis(10)).unwrap();
        assert_eq!(waiting(&s), 1);
        assert!(s.kill(victim));
        assert_eq!(waiting(&s), 0, "the kill withdrew the wait");
        // With nobody waiting, an arrival is kept for the next wait.
        raise(Signal::USR1);
        s.spawn(|h| h.signal(Signal::USR1).unwrap()).unwrap();
        util::run_all(&mut s, 20);
    });
}

#[test]
fn stop_catching_gives_the_default_action_back_and_ends_the_waits_it_strands() {
    in_child(
        "stop_catching_gives_the_default_action_back_and_ends_the_waits_it_strands",
        || {
            let mut s = schedule(SignalPlugin::new().unwrap());
            let stranded = s
                .spawn(|h| match h.signal(Signal::WINCH) {
                    Err(SignalError::Released(Signal::WINCH)) => {}
                    other => panic!("expected Released, got {other:?}"),
                })
                .unwrap();
            s.watch_exit(stranded);
            s.run_for(Duration::from_millis(10)).unwrap();
            assert!(blocked(Signal::WINCH));
            s.spawn(|h| h.stop_catching(Signal::WINCH).unwrap())
                .unwrap();
            util::run_all(&mut s, 20);
            assert_eq!(s.take_exit(stranded), Some(fibra::Exit::Finished));
            assert!(!blocked(Signal::WINCH));
            assert!(!s.plugin::<SignalPlugin>().unwrap().is_caught(Signal::WINCH));
        },
    );
}

#[test]
fn bad_waits_get_clear_errors() {
    in_child("bad_waits_get_clear_errors", || {
        let mut s = schedule(SignalPlugin::new().unwrap());
        s.spawn(|h| {
            let err = h.signals(&[]).unwrap_err();
            assert!(matches!(err, SignalError::Empty), "{err:?}");
        })
        .unwrap();
        util::run_all(&mut s, 20);
        for raw in [libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV, 0, 65, -1] {
            let err = Signal::from_raw(raw).unwrap_err();
            assert!(err.to_string().contains(&format!("signal {raw}")), "{err}");
        }
        assert_eq!(Signal::from_raw(libc::SIGTERM).unwrap(), Signal::TERM);
    });
}
