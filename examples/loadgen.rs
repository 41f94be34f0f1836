//! A bounded load generator for echo servers (fibra's and its tokio peer alike).
//!
//! ```text
//! cargo run --release --example loadgen -- echo --addr 127.0.0.1:7000 --conns 100 --secs 5
//! ```
//!
//! `echo`: C connections, each sending a message of `--size` bytes and waiting for it to
//! come back (a closed loop). It runs `--warmup` seconds unmeasured, then `--secs` measured
//! seconds, then stops by itself and prints one JSON line: messages/s and round-trip p50/p99
//! in microseconds. With `--pid P` it also reads the server process's CPU time from
//! `/proc/P/stat` over the measured window and reports server CPU use and messages per
//! server-CPU-second.
//!
//! The generator itself runs on fibra (one tasklet per connection, one thread).

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use fibra::net::{ConnOptions, Framing, NetExt, NetPlugin};
use fibra::tasks::{TasksExt, TasksPlugin};
use fibra::Schedule;

struct Args {
    addr: SocketAddr,
    conns: usize,
    size: usize,
    secs: f64,
    warmup: f64,
    pid: Option<u32>,
}

fn parse() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("echo") => {}
        _ => return Err(
            "usage: loadgen echo --addr A [--conns C] [--size B] [--secs S] [--warmup S] [--pid P]"
                .into(),
        ),
    }
    let mut a = Args {
        addr: "127.0.0.1:7000".parse().unwrap(),
        conns: 100,
        size: 64,
        secs: 5.0,
        warmup: 1.0,
        pid: None,
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--addr" => a.addr = value.parse().map_err(|e| bad(&e))?,
            "--conns" => a.conns = value.parse().map_err(|e| bad(&e))?,
            "--size" => a.size = value.parse().map_err(|e| bad(&e))?,
            "--secs" => a.secs = value.parse().map_err(|e| bad(&e))?,
            "--warmup" => a.warmup = value.parse().map_err(|e| bad(&e))?,
            "--pid" => a.pid = Some(value.parse().map_err(|e| bad(&e))?),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if a.conns == 0 || a.size == 0 || a.secs <= 0.0 || a.secs > 600.0 {
        return Err("--conns and --size must be > 0, --secs in (0, 600]".into());
    }
    Ok(a)
}

/// CPU seconds (user + system) the process has used, from `/proc/PID/stat`.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the name and state.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((utime + stime) / ticks)
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse()?;
    let mut schedule = Schedule::builder().stack_size(32 * 1024).build();
    schedule.add_plugin(TasksPlugin::new())?;
    schedule.add_plugin(NetPlugin::new()?)?;

    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let stop_at = measure_from + Duration::from_secs_f64(args.secs);
    let samples: Rc<RefCell<Vec<u32>>> = Rc::new(RefCell::new(Vec::with_capacity(1 << 20)));
    let failed = Rc::new(Cell::new(0usize));
    let cpu_start = Rc::new(Cell::new(None));

    for _ in 0..args.conns {
        let (samples, failed) = (samples.clone(), failed.clone());
        let (addr, size) = (args.addr, args.size);
        schedule.spawn(move |h| {
            let options = ConnOptions::new().framing(Framing::Raw);
            let conn = match h.connect_with(addr, options, Some(Duration::from_secs(10))) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("connect {addr}: {e}");
                    failed.set(failed.get() + 1);
                    return;
                }
            };
            let message = vec![b'x'; size];
            let mut buf = Vec::with_capacity(size);
            loop {
                let sent = Instant::now();
                if sent >= stop_at {
                    return;
                }
                if h.send(&conn, &message).is_err() {
                    failed.set(failed.get() + 1);
                    return;
                }
                let mut got = 0;
                while got < size {
                    if h.receive_into(&conn, &mut buf).is_err() {
                        failed.set(failed.get() + 1);
                        return;
                    }
                    got += buf.len();
                }
                if sent >= measure_from {
                    let rtt = sent.elapsed().as_micros().min(u32::MAX as u128) as u32;
                    samples.borrow_mut().push(rtt);
                }
            }
        })?;
    }
    // The measured window's server CPU: read it when the window opens and closes.
    if let Some(pid) = args.pid {
        let cpu_start = cpu_start.clone();
        schedule.spawn(move |h| {
            h.sleep_until(measure_from);
            cpu_start.set(cpu_seconds(pid));
        })?;
    }
    let deadline = stop_at + Duration::from_secs(10);
    schedule.run_until(deadline)?;
    let elapsed_measured = args.secs;
    let cpu = match (args.pid, cpu_start.get()) {
        (Some(pid), Some(before)) => cpu_seconds(pid).map(|after| after - before),
        _ => None,
    };
    let mut samples = samples.borrow_mut();
    samples.sort_unstable();
    let messages = samples.len();
    let rate = messages as f64 / elapsed_measured;
    let (cpu_json, per_cpu) = match cpu {
        Some(c) if c > 0.0 => (
            format!("{:.3}", c / elapsed_measured),
            format!("{:.0}", messages as f64 / c),
        ),
        _ => ("null".to_owned(), "null".to_owned()),
    };
    println!(
        "{{\"scenario\":\"echo\",\"addr\":\"{}\",\"conns\":{},\"size\":{},\"secs\":{},\"messages\":{},\"msgs_per_s\":{:.0},\"p50_us\":{},\"p99_us\":{},\"failed\":{},\"server_cpu\":{},\"msgs_per_cpu_s\":{}}}",
        args.addr,
        args.conns,
        args.size,
        args.secs,
        messages,
        rate,
        percentile(&samples, 0.50),
        percentile(&samples, 0.99),
        failed.get(),
        cpu_json,
        per_cpu
    );
    Ok(())
}
