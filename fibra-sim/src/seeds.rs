//! `for_seeds`: a test over many seeds, or over the one in `FIBRA_SIM_SEED`.

use std::io::Write;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The environment variable that replays one seed.
pub const SEED_VAR: &str = "FIBRA_SIM_SEED";

/// The environment variable that sets after how many seconds of wall time a seed that has
/// not ended is named on standard error (60 by default).
pub const WATCH_VAR: &str = "FIBRA_SIM_WATCH";

/// Runs `test` once per seed: seeds `0..n`, or only the seed in `FIBRA_SIM_SEED` when it is
/// set. A seed whose run panics is printed with the command that replays it, and the panic
/// goes on (the test fails):
///
/// ```text
/// fibra-sim: seed 417 failed; replay it with:
///     FIBRA_SIM_SEED=417 cargo test -p my-crate --test my_test -- --exact room_invariants_hold
/// ```
///
/// A seed that hangs (a tasklet in a loop that never yields, time that crawls) never
/// panics: one still running after 60 s of wall time (`FIBRA_SIM_WATCH` seconds) is named,
/// with its replay command, straight on standard error, past the test harness's capture.
pub fn for_seeds(n: u64, mut test: impl FnMut(u64)) {
    let seeds: Vec<u64> = match std::env::var(SEED_VAR) {
        Ok(s) => vec![s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{SEED_VAR}={s:?} is not a number"))],
        Err(_) => (0..n).collect(),
    };
    let watch = Watch::start();
    for seed in seeds {
        watch.now_on(seed);
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| test(seed))) {
            eprintln!("{}", replay_line(seed));
            resume_unwind(panic);
        }
    }
}

/// The seed now running, watched from a thread of its own (wall time only: it never
/// touches the simulation). Stops with the `for_seeds` that made it.
struct Watch {
    shared: Arc<Watched>,
}

struct Watched {
    /// The seed now running, when it began, its replay line, and whether it was named.
    now: Mutex<Option<(u64, Instant, String, bool)>>,
    done: AtomicBool,
}

impl Watch {
    fn start() -> Watch {
        let after = std::env::var(WATCH_VAR)
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .map_or(Duration::from_secs(60), Duration::from_secs_f64);
        let shared = Arc::new(Watched {
            now: Mutex::new(None),
            done: AtomicBool::new(false),
        });
        let watched = Arc::clone(&shared);
        let tick = (after / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        // Without a thread (none can be made), seeds are simply not watched.
        let _ = std::thread::Builder::new()
            .name("fibra-sim watch".into())
            .spawn(move || {
                while !watched.done.load(Ordering::Relaxed) {
                    std::thread::park_timeout(tick);
                    let mut now = watched.now.lock().unwrap_or_else(PoisonError::into_inner);
                    if let Some((seed, began, line, named)) = now.as_mut() {
                        if !*named && began.elapsed() >= after {
                            *named = true;
                            let line = line.replacen("failed", "is still running", 1);
                            let _ = writeln!(
                                std::io::stderr(),
                                "fibra-sim: seed {seed}: {:.0?} of wall time and not ended (a hang?)\n{line}",
                                began.elapsed()
                            );
                        }
                    }
                }
            });
        Watch { shared }
    }

    fn now_on(&self, seed: u64) {
        let line = replay_line(seed);
        *self
            .shared
            .now
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((seed, Instant::now(), line, false));
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.shared.done.store(true, Ordering::Relaxed);
    }
}

/// The line that says how to replay `seed` in the current test: the package, the test
/// binary when it is an integration test's (`--test NAME`; a library's or a binary's own
/// tests are found by name alone), and the test's full name, `--exact`, so that the
/// command runs that test and no other whose name contains it.
pub fn replay_line(seed: u64) -> String {
    let thread = std::thread::current();
    let test = thread
        .name()
        .filter(|n| *n != "main")
        .unwrap_or("<test name>")
        .to_string();
    // The package, as cargo names it to the tests it runs.
    let package = std::env::var("CARGO_PKG_NAME").ok();
    let binary = std::env::args().next().and_then(|path| {
        let file = std::path::Path::new(&path)
            .file_name()?
            .to_str()?
            .to_string();
        Some(
            file.rsplit_once('-')
                .map_or(file.clone(), |(n, _)| n.to_string()),
        )
    });
    // A library's unit tests (and a binary's) run in a binary named after the crate: no
    // `--test` names them.
    let crate_name = package.as_ref().map(|p| p.replace('-', "_"));
    let target = match binary {
        Some(b) if Some(&b) != crate_name.as_ref() => format!("--test {b} "),
        _ => String::new(),
    };
    let package = package.map(|p| format!("-p {p} ")).unwrap_or_default();
    format!(
        "fibra-sim: seed {seed} failed; replay it with:\n    \
         {SEED_VAR}={seed} cargo test {package}{target}-- --exact {test}"
    )
}

#[cfg(test)]
mod tests {
    use super::replay_line;

    #[test]
    fn the_replay_line_of_a_librarys_unit_test_names_it_exactly_and_no_test_binary() {
        let line = replay_line(417);
        assert!(
            line.ends_with(
                "FIBRA_SIM_SEED=417 cargo test -p fibra-sim -- --exact \
                 seeds::tests::the_replay_line_of_a_librarys_unit_test_names_it_exactly_and_no_test_binary"
            ),
            "{line}"
        );
    }
}
