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
///     FIBRA_SIM_SEED=417 cargo test -p my-crate --test my_test -- --exact room_invariants_hold
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
