//! The `echo` scenario: C connections, each sending a message and waiting for it to come
//! back (a closed loop).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use fibra::net::{ConnOptions, Framing, NetExt, NetPlugin};
use fibra::tasks::{TasksExt, TasksPlugin};
use fibra::Schedule;

use super::measure::{self, CpuWindow, Histogram};
use super::Common;

pub(crate) fn run(
    common: &Common,
    conns: usize,
    size: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut schedule = Schedule::builder().stack_size(32 * 1024).build();
    schedule.add_plugin(TasksPlugin::new())?;
    schedule.add_plugin(NetPlugin::new()?)?;

    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(common.warmup);
    let stop_at = measure_from + Duration::from_secs_f64(common.secs);
    let latency = Rc::new(RefCell::new(Histogram::new()));
    let failed = Rc::new(Cell::new(0usize));

    for _ in 0..conns {
        let (latency, failed) = (latency.clone(), failed.clone());
        let addr = common.addr;
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
                    latency
                        .borrow_mut()
                        .record(sent.elapsed().as_micros() as u64);
                }
            }
        })?;
    }
    // The measured window's server CPU: read when the window opens and closes.
    let cpu_used = Rc::new(Cell::new(None));
    {
        let cpu_used = cpu_used.clone();
        let mut cpu = CpuWindow::new(common.pid);
        schedule.spawn(move |h| {
            h.sleep_until(measure_from);
            cpu.open();
            h.sleep_until(stop_at);
            cpu_used.set(cpu.used());
        })?;
    }
    schedule.run_until(stop_at + Duration::from_secs(10))?;
    let secs = common.secs;
    let latency = latency.borrow();
    let messages = latency.count();
    let cpu = cpu_used.get();
    println!(
        "{{\"scenario\":\"echo\",\"addr\":\"{}\",\"conns\":{},\"size\":{},\"secs\":{},\"messages\":{},\
         \"msgs_per_s\":{:.0},\"p50_us\":{},\"p99_us\":{},\"failed\":{},\"server_cpu\":{},\"msgs_per_cpu_s\":{}}}",
        common.addr,
        conns,
        size,
        secs,
        messages,
        messages as f64 / secs,
        latency.percentile(0.50),
        latency.percentile(0.99),
        failed.get(),
        measure::json_f64(cpu.map(|c| c / secs), 3),
        measure::json_f64(cpu.map(|c| messages as f64 / c), 0),
    );
    Ok(())
}
