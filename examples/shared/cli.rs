//! The examples' command lines, read flag by flag: `-h` or `--help` prints the help and
//! exits 0; a flag's value follows it (`--addr 127.0.0.1:1980`) or is joined to it with `=`
//! (`--addr=127.0.0.1:1980`); a mistake (an unknown flag, a value missing or out of range, a
//! value given to a flag that takes none) is said on stderr with a pointer to `--help`, and
//! the program exits 2, the status of a usage error. A flag given twice: the last one counts.

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
    /// The flag last returned, and the value joined to it with `=` while none took it.
    joined: Option<(String, String)>,
}

impl Args {
    /// The command line of the program `name`, whose `help` starts with one line saying what
    /// the program is, then its usage and options with their defaults.
    pub(crate) fn new(name: &'static str, help: impl Into<String>) -> Args {
        Args {
            name,
            help: help.into(),
            rest: std::env::args().skip(1),
            joined: None,
        }
    }

    /// The next flag, `None` at the end. At `-h` or `--help`, prints the help and exits 0.
    /// A value joined to the previous flag (`--pin=yes`) that it did not take is a usage
    /// error here.
    pub(crate) fn next_flag(&mut self) -> Option<String> {
        if let Some((flag, value)) = self.joined.take() {
            self.fail(format!("{flag} takes no value (given `{value}`)"));
        }
        let mut flag = self.rest.next()?;
        if flag.starts_with("--") {
            if let Some((name, value)) = flag.split_once('=') {
                let (name, value) = (name.to_owned(), value.to_owned());
                self.joined = Some((name.clone(), value));
                flag = name;
            }
        }
        if flag == "-h" || flag == "--help" {
            // A closed stdout (`| head`) is no failure of the help.
            let _ = writeln!(std::io::stdout(), "{}", self.help);
            std::process::exit(0);
        }
        Some(flag)
    }

    /// The value of `flag`: joined to it with `=`, or the next argument; a usage error when
    /// there is none.
    pub(crate) fn value(&mut self, flag: &str) -> String {
        if let Some((_, value)) = self.joined.take() {
            return value;
        }
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

/// What an example's `main` returns: an error that the standard `main` prints as
/// `Error: <its message>`, where a `Box<dyn Error>` would print its `Debug` form (quoted
/// strings, struct fields). Any error converts into it with `?`.
pub(crate) struct Failure(String);

impl<E: Display> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure(e.to_string())
    }
}

impl std::fmt::Debug for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
