//! `for_seeds`: a test over many seeds, or over the one in `FIBRA_SIM_SEED`.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

/// The environment variable that replays one seed.
pub const SEED_VAR: &str = "FIBRA_SIM_SEED";

/// Runs `test` once per seed: seeds `0..n`, or only the seed in `FIBRA_SIM_SEED` when it is
/// set. A seed whose run panics is printed with the command that replays it, and the panic
/// goes on (the test fails):
///
/// ```text
/// fibra-sim: seed 417 failed; replay it with:
///     FIBRA_SIM_SEED=417 cargo test -p my-crate --test my_test room_invariants_hold
/// ```
pub fn for_seeds(n: u64, mut test: impl FnMut(u64)) {
    let seeds: Vec<u64> = match std::env::var(SEED_VAR) {
        Ok(s) => vec![s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{SEED_VAR}={s:?} is not a number"))],
        Err(_) => (0..n).collect(),
    };
    for seed in seeds {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| test(seed))) {
            eprintln!("{}", replay_line(seed));
            resume_unwind(panic);
        }
    }
}

/// The line that says how to replay `seed` in the current test.
pub fn replay_line(seed: u64) -> String {
    let thread = std::thread::current();
    let test = thread
        .name()
        .filter(|n| *n != "main")
        .map(|n| n.rsplit("::").next().unwrap_or(n).to_string())
        .unwrap_or_else(|| "<test name>".into());
    // The package and the test binary, as cargo names them to the test it runs.
    let package = std::env::var("CARGO_PKG_NAME")
        .map(|p| format!("-p {p} "))
        .unwrap_or_default();
    let binary = std::env::args()
        .next()
        .and_then(|path| {
            let file = std::path::Path::new(&path)
                .file_name()?
                .to_str()?
                .to_string();
            let name = file
                .rsplit_once('-')
                .map_or(file.clone(), |(n, _)| n.to_string());
            Some(format!("--test {name} "))
        })
        .unwrap_or_default();
    format!(
        "fibra-sim: seed {seed} failed; replay it with:\n    \
         {SEED_VAR}={seed} cargo test {package}{binary}{test}"
    )
}
