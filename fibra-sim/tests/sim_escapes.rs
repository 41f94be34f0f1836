//! What would leave the simulation fails clearly under it, rather than going real (a real
//! thread, a real socket, a real name lookup) or hanging: `unblock`, a host name, a real
//! network plugin, schedules on threads of their own, a hand-off; and a tasklet that
//! yields forever without time passing is reported as a livelock.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fibra_net::{NetExt, NetPlugin};
use fibra_sim::{Sim, SimError};
use fibra_tasks::TasksExt;

/// Runs `f` as a tasklet on a one-host simulation and returns what it gave.
fn in_sim<T: 'static>(f: impl FnOnce(&fibra_rt::Handle) -> T + 'static) -> T {
    let mut sim = Sim::new(1);
    let host = sim.host("10.0.0.1");
    let got = Rc::new(RefCell::new(None));
    let put = got.clone();
    sim.spawn(host, "escape", move |h| *put.borrow_mut() = Some(f(h)));
    let done = got.clone();
    sim.run_until(move |_| done.borrow().is_some(), Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("the tasklet never got an answer: {e}"));
    let out = got.borrow_mut().take().unwrap();
    out
}

#[test]
fn unblock_under_simulation_fails_clearly_and_runs_nothing_for_real() {
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    let answer = in_sim(move |h| h.unblock(move || flag.store(true, Ordering::SeqCst)));
    let err = answer.expect_err("unblock under a simulated clock");
    assert!(err.to_string().contains("simulation"), "{err}");
    std::thread::sleep(Duration::from_millis(100));
    assert!(!ran.load(Ordering::SeqCst), "the job ran on a real thread");
}

#[test]
fn a_host_name_is_not_looked_up_for_real() {
    let answer = in_sim(|h| h.connect("localhost:7").map(|_| ()));
    let err = answer.expect_err("a name under simulation");
    assert!(err.to_string().contains("simulated network"), "{err}");
}

#[test]
fn a_real_network_plugin_is_refused_on_a_simulations_thread() {
    let _sim = Sim::new(1);
    let Err(err) = NetPlugin::new() else {
        panic!("a real plugin inside a simulation");
    };
    assert!(err.to_string().contains("simulation"), "{err}");
    drop(_sim);
    assert!(
        NetPlugin::new().is_ok(),
        "the simulation has ended: real again"
    );
}

#[test]
fn schedules_on_threads_of_their_own_are_refused_under_simulation() {
    let _sim = Sim::new(1);
    let Err(err) = fibra_rt::Cores::start(2, false, |_, _| Ok(())) else {
        panic!("threads under a simulation");
    };
    assert!(err.to_string().contains("simulation"), "{err}");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut sim = _sim;
    let host = sim.host("10.0.0.1");
    let remote = sim.schedule(host).unwrap().remote();
    let (tx, _rx) = fibra_tasks::remote_channel::<fibra_net::Handed>(&remote, 1);
    let Err(err) = fibra_net::Handoff::start(listener, vec![tx]) else {
        panic!("a hand-off under a simulation");
    };
    assert!(err.to_string().contains("simulation"), "{err}");
}

#[test]
fn a_tasklet_that_yields_forever_is_reported_as_a_livelock() {
    let mut sim = Sim::new(1);
    let host = sim.host("10.0.0.1");
    sim.spawn(host, "spin", |h| loop {
        h.yield_now();
    });
    match sim.run_until(|_| false, Duration::from_secs(10)) {
        Err(SimError::Livelock { at }) => assert_eq!(at, Duration::ZERO),
        other => panic!("expected a livelock, got {other:?}"),
    }
}

/// A tasklet that sleeps for nothing, forever: reported as soon as a yielding one, within
/// the default rounds (it took a million, 25 s of a debug build).
#[test]
fn a_tasklet_that_sleeps_for_nothing_forever_is_reported_within_the_livelock_rounds() {
    let mut sim = Sim::new(1);
    let host = sim.host("10.0.0.1");
    sim.spawn(host, "spin", |h| loop {
        h.sleep(Duration::ZERO);
    });
    match sim.run_until(|_| false, Duration::from_secs(10)) {
        Err(SimError::Livelock { at }) => assert_eq!(at, Duration::ZERO),
        other => panic!("expected a livelock, got {other:?}"),
    }
    // A round is one tick, one trace entry (and a few more for its ops at most).
    let entries = sim.trace().len();
    assert!(
        entries <= 200_000,
        "{entries} trace entries before the livelock was reported"
    );
}

/// TLS draws the system's randomness (its signatures differ in length from run to run)
/// and checks certificates against the wall clock: refused on a simulated network.
#[test]
fn tls_is_refused_on_a_simulated_network() {
    let mut sim = Sim::new(1);
    let server = sim.host("10.0.0.1");
    let client = sim.host("10.0.0.2");
    sim.spawn(server, "plain", |h| {
        let listener = h.listen("0.0.0.0:443").unwrap();
        while let Ok((conn, _)) = h.accept(&listener) {
            let _ = h.receive(&conn);
        }
    });
    let got = Rc::new(RefCell::new(None));
    let put = got.clone();
    sim.spawn(client, "tls client", move |h| {
        use fibra_net::rustls;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let answer = h
            .connect_tls("10.0.0.1:443", "server", Arc::new(config))
            .map(|_| ());
        *put.borrow_mut() = Some((answer, fibra_rt::time::now()));
    });
    let start = fibra_rt::time::now();
    let done = got.clone();
    sim.run_until(move |_| done.borrow().is_some(), Duration::from_secs(60))
        .unwrap();
    let (answer, at) = got.borrow_mut().take().unwrap();
    let err = answer.expect_err("TLS under simulation");
    assert!(err.to_string().contains("simulat"), "{err}");
    assert_eq!(at, start, "refused at once");
}

/// A kernel socket taken over by a simulated host would be real: refused.
#[test]
fn adopting_a_kernel_socket_is_refused_on_a_simulated_network() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let answer = in_sim(move |h| h.adopt(stream, fibra_net::ConnOptions::new()).map(|_| ()));
    let err = answer.expect_err("a kernel socket in a simulation");
    assert!(err.to_string().contains("simulat"), "{err}");
}

/// `Schedule::run` on a simulated host's schedule would wait on the real poller while the
/// simulated clock stands still: refused, not hung.
#[test]
fn running_a_simulated_hosts_schedule_by_hand_is_refused_not_hung() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sim = Sim::new(1);
        let host = sim.host("10.0.0.1");
        sim.spawn(host, "sleeper", |h| h.sleep(Duration::from_secs(1)));
        let answer = sim.schedule(host).unwrap().run().map_err(|e| e.to_string());
        let _ = tx.send(answer);
    });
    let answer = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("Schedule::run under a simulation hung");
    let err = answer.expect_err("Schedule::run under a simulation");
    assert!(err.contains("simulation"), "{err}");
}
