//! The examples' command lines, read flag by flag: `-h` or `--help` prints the help and
//! exits 0; a mistake (an unknown flag, a value missing or out of range) is said on stderr
//! with a pointer to `--help`, and the program exits 2, the status of a usage error.

// Each example uses the parts it needs.
#![allow(dead_code)]

use std::fmt::Display;
use std::io::Write;
use std::str::FromStr;

/// The arguments after the program's name.
pub(crate) struct Args {
    name: &'static str,
    help: String,
    rest: std::iter::Skip<std::env::Args>,
}

impl Args {
    /// The command line of the program `name`, whose `help` starts with one line saying what
    /// the program is, then its usage and options with their defaults.
    pub(crate) fn new(name: &'static str, help: impl Into<String>) -> Args {
        Args {
            name,
            help: help.into(),
            rest: std::env::args().skip(1),
        }
    }

    /// The next flag, `None` at the end. At `-h` or `--help`, prints the help and exits 0.
    pub(crate) fn next_flag(&mut self) -> Option<String> {
        let flag = self.rest.next()?;
        if flag == "-h" || flag == "--help" {
            // A closed stdout (`| head`) is no failure of the help.
            let _ = writeln!(std::io::stdout(), "{}", self.help);
            std::process::exit(0);
        }
        Some(flag)
    }

    /// The value after `flag`; a usage error when there is none.
    pub(crate) fn value(&mut self, flag: &str) -> String {
        match self.rest.next() {
            Some(value) => value,
            None => self.fail(format!("{flag} needs a value")),
        }
    }

    /// The value after `flag`, parsed; a usage error when it does not parse.
    pub(crate) fn parse<T: FromStr>(&mut self, flag: &str) -> T
    where
        T::Err: Display,
    {
        let value = self.value(flag);
        value
            .parse()
            .unwrap_or_else(|e| self.fail(format!("{flag} `{value}`: {e}")))
    }

    /// The value after `flag`, a whole number from `lo` to `hi`; a usage error otherwise.
    pub(crate) fn number(&mut self, flag: &str, lo: u64, hi: u64) -> u64 {
        let value = self.value(flag);
        match value.parse::<u64>() {
            Ok(n) if (lo..=hi).contains(&n) => n,
            _ => self.fail(format!(
                "{flag} `{value}`: give a whole number from {lo} to {hi}"
            )),
        }
    }

    /// A flag this program does not know: a usage error.
    pub(crate) fn unknown(&self, flag: &str) -> ! {
        self.fail(format!("unknown argument `{flag}`"))
    }

    /// Says `message` on stderr, with where to look, and exits 2.
    pub(crate) fn fail(&self, message: impl Display) -> ! {
        eprintln!("{}: {message} (try `{} --help`)", self.name, self.name);
        std::process::exit(2);
    }
}
