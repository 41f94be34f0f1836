//! Connection scenarios: `accept` (connections that log in and leave, as fast as they can:
//! the server's accept rate); `idle` is `idle.rs`'s.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use fibra::net::{ConnOptions, Framing, NetExt};
use fibra::tasks::TasksExt;
use fibra::Handle;

use super::measure::{self, Histogram};
use super::{receive_by, Common};

const PROMPT: &[u8] = b"What is your handle?";

/// Connects by `deadline`.
fn connect(h: &Handle, addr: std::net::SocketAddr, deadline: Instant) -> Option<fibra::net::Conn> {
    let timeout = deadline.saturating_duration_since(Instant::now());
    let options = super::tls::options(ConnOptions::new().with_framing(Framing::Lines));
    match h.connect_with(addr, options.with_connect_timeout(Some(timeout))) {
        Ok(conn) => Some(conn),
        Err(e) => {
            eprintln!("connect {addr}: {e}");
            None
        }
    }
}

/// `accept`: `conns` clients at a time, each in a loop: connect, read the prompt, send a
/// fresh handle, read its own join line, and drop the connection. Reports logins/s, login
/// time p50/p99 and the server's CPU.
pub(crate) fn accept(common: &Common, conns: usize) -> Result<(), Box<dyn std::error::Error>> {
    let mut schedule = super::new_schedule()?;
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(common.warmup);
    let stop_at = measure_from + Duration::from_secs_f64(common.secs);
    let latency = Rc::new(RefCell::new(Histogram::new()));
    let failed = Rc::new(Cell::new(0u64));
    for i in 0..conns {
        let (latency, failed) = (latency.clone(), failed.clone());
        let (addr, login_timeout) = (common.addr, common.login_timeout);
        schedule.spawn(move |h| {
            let mut line = Vec::with_capacity(128);
            let mut handle = String::with_capacity(32);
            let mut n: u64 = 0;
            loop {
                let began = Instant::now();
                if began >= stop_at {
                    return;
                }
                n += 1;
                handle.clear();
                use std::fmt::Write as _;
                let _ = write!(handle, "a{i}x{n}");
                if !login(h, addr, &handle, &mut line, began + login_timeout) {
                    failed.set(failed.get() + 1);
                    h.sleep(Duration::from_millis(10));
                    continue;
                }
                if began >= measure_from {
                    latency
                        .borrow_mut()
                        .record(began.elapsed().as_micros() as u64);
                }
            }
        })?;
    }
    let cpu_used = measure::cpu_between(&mut schedule, common.pid, measure_from, stop_at)?;
    schedule.run_until(stop_at + Duration::from_secs(15))?;
    let secs = common.secs;
    let latency = latency.borrow();
    let logins = latency.count();
    let cpu = cpu_used.get();
    println!(
        "{{\"scenario\":\"accept\",\"addr\":\"{}\",\"tls\":{},\"conns\":{},\"secs\":{},\"logins\":{},\
         \"logins_per_s\":{:.0},\"p50_us\":{},\"p99_us\":{},\"failed\":{},\"server_cpu\":{},\
         \"logins_per_cpu_s\":{}}}",
        common.addr,
        super::tls::is_on(),
        conns,
        secs,
        logins,
        logins as f64 / secs,
        latency.percentile(0.50),
        latency.percentile(0.99),
        failed.get(),
        measure::json_f64(cpu.map(|c| c / secs), 3),
        measure::json_f64(cpu.map(|c| logins as f64 / c), 0),
    );
    if failed.get() > 0 {
        eprintln!(
            "loadgen: {} logins failed (refused, or not completed within --login-timeout {} s)",
            failed.get(),
            common.login_timeout.as_secs_f64()
        );
    }
    if logins == 0 {
        return Err("no login completed".into());
    }
    Ok(())
}

/// One login by `deadline`: the prompt, the handle, the join line; then the connection
/// drops.
fn login(
    h: &Handle,
    addr: std::net::SocketAddr,
    handle: &str,
    line: &mut Vec<u8>,
    deadline: Instant,
) -> bool {
    let Some(conn) = connect(h, addr, deadline) else {
        return false;
    };
    if receive_by(h, &conn, line, deadline).is_err() || line != PROMPT {
        return false;
    }
    if h.send_frame(&conn, handle.as_bytes()).is_err() {
        return false;
    }
    // Other members' joins and leaves may come first.
    loop {
        if receive_by(h, &conn, line, deadline).is_err() {
            return false;
        }
        if line.starts_with(handle.as_bytes()) && line.ends_with(b" has joined the chat.") {
            let joined = &line[handle.len()..];
            if joined == b" has joined the chat." {
                return true;
            }
        }
    }
}
