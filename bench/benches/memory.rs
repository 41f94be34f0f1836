//! Resident memory per parked tasklet, read from /proc/self/statm, beside raw `corosensei`
//! coroutines parked the same way in the same run.
//!
//! Run: `cargo bench -p fibra-bench --bench memory`.

use corosensei::stack::DefaultStack;
use corosensei::Coroutine;
use fibra::rt::Schedule;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    pages * page
}

const STACK: usize = 64 * 1024;

fn raw_per_coroutine(n: usize) -> std::io::Result<f64> {
    let before = rss_bytes();
    let mut parked = Vec::with_capacity(n);
    for _ in 0..n {
        let stack = DefaultStack::new(STACK)?;
        let mut co = Coroutine::<(), (), (), _>::with_stack(stack, |y, ()| loop {
            y.suspend(());
        });
        co.resume(());
        parked.push(co);
    }
    let per = (rss_bytes() - before) as f64 / n as f64;
    drop(parked);
    Ok(per)
}

fn fibra_per_tasklet(n: usize) -> Result<f64, fibra::rt::Error> {
    let before = rss_bytes();
    let mut s = Schedule::builder().stack_size(STACK).build();
    for _ in 0..n {
        s.spawn(|h| loop {
            h.park();
        })?;
    }
    s.tick()?;
    assert_eq!(s.len(), n);
    Ok((rss_bytes() - before) as f64 / n as f64)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and friends
    }
    println!(
        "resident memory per parked tasklet ({} KiB stacks)",
        STACK / 1024
    );
    println!("| parked | raw corosensei | fibra | ratio | target |");
    println!("|---|---|---|---|---|");
    for n in [10_000usize, 30_000, 100_000] {
        let raw = raw_per_coroutine(n);
        let fibra = fibra_per_tasklet(n);
        match (raw, fibra) {
            (Ok(raw), Ok(fibra)) => println!(
                "| {n} | {:.2} KiB | {:.2} KiB | {:.2}x | <= 4.5 KiB |",
                raw / 1024.0,
                fibra / 1024.0,
                fibra / raw
            ),
            (raw, fibra) => println!(
                "| {n} | {} | {} | - | - |",
                raw.map_or_else(
                    |e| format!("failed: {e}"),
                    |r| format!("{:.2} KiB", r / 1024.0)
                ),
                fibra.map_or_else(
                    |e| format!("failed: {e}"),
                    |r| format!("{:.2} KiB", r / 1024.0)
                ),
            ),
        }
    }
}
