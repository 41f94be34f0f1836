//! The `echo` scenario: C connections, each sending a message and waiting for it to come
//! back (a closed loop).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use fibra::net::{ConnOptions, Framing, NetExt};

use super::measure::{self, Histogram};
use super::Common;

pub(crate) fn run(
    common: &Common,
    conns: usize,
    size: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut schedule = super::new_schedule()?;

    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(common.warmup);
    let stop_at = measure_from + Duration::from_secs_f64(common.secs);
    let latency = Rc::new(RefCell::new(Histogram::new()));
    let failed = Rc::new(Cell::new(0usize));

    for _ in 0..conns {
        let (latency, failed) = (latency.clone(), failed.clone());
        let addr = common.addr;
        schedule.spawn(move |h| {
            let options = ConnOptions::new().with_framing(Framing::Raw);
            let conn = match h.connect_with(
                addr,
                options
                    .clone()
                    .with_connect_timeout(Some(Duration::from_secs(10))),
            ) {
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
    let cpu_used = measure::cpu_between(&mut schedule, common.pid, measure_from, stop_at)?;
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
    if failed.get() > 0 {
        eprintln!("loadgen: {} connections failed", failed.get());
    }
    if messages == 0 {
        return Err("no echo came back".into());
    }
    Ok(())
}
