//! A seed that hangs never panics, so `for_seeds` could not name it: it is named, with its
//! replay command, once it has run `FIBRA_SIM_WATCH` seconds of wall time.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use fibra_sim::{for_seeds, SEED_VAR, WATCH_VAR};

/// Not a test on its own: seed 3 of 5 hangs (20 s), for the test below.
#[test]
#[ignore = "run by a_seed_that_hangs_is_named_with_its_replay_command"]
fn a_hanging_seed() {
    for_seeds(5, |seed| {
        if seed == 3 {
            std::thread::sleep(Duration::from_secs(20));
        }
    });
}

#[test]
fn a_seed_that_hangs_is_named_with_its_replay_command() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "a_hanging_seed"])
        .env(WATCH_VAR, "0.5")
        .env_remove(SEED_VAR)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut said = Vec::new();
    let mut found = None;
    for line in stderr.lines() {
        let line = line.unwrap();
        if line.contains("cargo test") {
            found = Some(line);
            break;
        }
        said.push(line);
    }
    let _ = child.kill();
    let _ = child.wait();
    let line = found.unwrap_or_else(|| panic!("the hung seed was never named: {said:?}"));
    assert!(said.iter().any(|l| l.contains("seed 3")), "{said:?}");
    assert!(
        line.trim().ends_with(
            "FIBRA_SIM_SEED=3 cargo test -p fibra-sim --test sim_hang -- --exact a_hanging_seed"
        ),
        "{line}"
    );
}
