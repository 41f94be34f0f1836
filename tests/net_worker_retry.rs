//! A stackless job whose worker could not be started (no stack can be mapped) while no other
//! event is coming: the schedule keeps a deadline to try again, and the job runs once stacks
//! can be mapped (before, a quiet schedule slept in its poller for good: `run` never ran it).
//! In a child process, since it limits the process's memory (`RLIMIT_AS`).

mod util;

use std::io::Write;
use std::time::{Duration, Instant};

use fibra::rt::{Handle, Schedule};

const CHILD: &str = "FIBRA_WORKER_RETRY_CHILD";

#[test]
fn a_job_whose_worker_could_not_start_runs_once_stacks_are_back() {
    if std::env::var(CHILD).as_deref() == Ok("enomem") {
        use fibra::net::ops::{Connect, InputJob, OnInput, Tried, TryReceive};
        use fibra::net::{Conn, ConnOptions};
        let _ = env_logger::Builder::new()
            .filter_module("fibra_net", log::LevelFilter::Warn)
            .try_init();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let peer = std::thread::spawn(move || {
            let (mut c, _) = listener.accept().unwrap();
            go_rx.recv().unwrap();
            c.write_all(b"late\n").unwrap();
            std::thread::sleep(Duration::from_secs(5));
        });
        let mut s = Schedule::builder()
            .stack_size(256 * 1024)
            .stack_pool_cap(0)
            .build();
        s.add_plugin(fibra::tasks::TasksPlugin::new()).unwrap();
        s.add_plugin(fibra::net::NetPlugin::new().unwrap()).unwrap();
        type Seen = std::rc::Rc<std::cell::Cell<Option<Instant>>>;
        let seen: Seen = Default::default();
        fn job(conn: Conn, seen: Seen) -> Box<dyn InputJob> {
            Box::new(move |h: &Handle| {
                if let Tried::Frame(_) = h.yield_op(TryReceive::into_buf(&conn, Vec::new())) {
                    seen.set(Some(Instant::now()));
                }
            })
        }
        let s2 = seen.clone();
        s.spawn(move |h| {
            let conn = h.yield_op(Connect::new(addr, ConnOptions::new())).unwrap();
            let _ = h.yield_op(TryReceive::into_buf(&conn, Vec::new()));
            h.yield_op(OnInput::new(&conn, "watch", job(conn.clone(), s2)))
                .unwrap();
        })
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !s.is_empty() {
            assert!(Instant::now() < deadline);
            s.tick_within(Duration::from_millis(5)).unwrap();
        }
        assert_eq!(util::net_stats(&s).watching, 1);
        // From here no stack can be mapped (a moment of memory pressure).
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: u64 = statm.split_whitespace().next().unwrap().parse().unwrap();
        let tight = libc::rlimit {
            rlim_cur: pages * 4096 + 64 * 1024,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: setrlimit with a valid struct.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &tight) }, 0);
        go_tx.send(()).unwrap();
        // The job fires; its worker cannot be started.
        let until = Instant::now() + Duration::from_millis(300);
        while Instant::now() < until {
            s.tick_within(Duration::from_millis(5)).unwrap();
        }
        let failed_start = seen.get().is_none();
        // Memory is back.
        let free = libc::rlimit {
            rlim_cur: libc::RLIM_INFINITY,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: as above.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &free) }, 0);
        // Nothing else will happen on this schedule: it must know when to try again.
        let retry = s.next_deadline();
        let until = Instant::now() + Duration::from_secs(10);
        while seen.get().is_none() && Instant::now() < until {
            s.tick_within(Duration::from_secs(1)).unwrap();
        }
        println!(
            "failed start {failed_start}; a deadline to retry {}; the job ran {}",
            retry.is_some(),
            seen.get().is_some()
        );
        if !failed_start {
            println!("NO FAILED START");
        } else if retry.is_none() || seen.get().is_none() {
            println!("STRANDED");
        }
        drop(peer);
        std::process::exit(0);
    }
    let (ok, out) = util::run_in_child(
        "a_job_whose_worker_could_not_start_runs_once_stacks_are_back",
        (CHILD, "enomem"),
        Duration::from_secs(30),
    );
    assert!(ok, "{out}");
    assert!(
        !out.contains("NO FAILED START"),
        "the worker's start did not fail: the scenario did not happen: {out}"
    );
    assert!(
        !out.contains("STRANDED") && out.contains("the job ran true"),
        "a quiet schedule had no deadline to start the job's worker again: {out}"
    );
}
