//! `Error`, the runtime's error enum.

use std::{fmt, io};

/// What can go wrong in the runtime.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A tasklet's stack could not be allocated.
    StackAlloc {
        /// The stack size that was asked for, in bytes.
        size: usize,
        /// What the operating system said.
        source: io::Error,
    },
    /// Two plugins claimed the same op type.
    OpTaken {
        /// The op's type name.
        op: &'static str,
    },
    /// A schedule holds at most this many plugins.
    TooManyPlugins {
        /// The limit.
        max: usize,
    },
    /// The schedule can make no more progress: tasklets are waiting, but no timer, I/O source,
    /// [`Remote`](crate::Remote) or runnable tasklet is left that could ever wake them (a
    /// deadlock).
    Stalled {
        /// How many tasklets are stuck. [`Schedule::tasklets`](crate::Schedule::tasklets) says
        /// what each waits on.
        waiting: usize,
    },
    /// A plugin's poll failed.
    Plugin {
        /// The plugin's type name.
        plugin: &'static str,
        /// What it reported.
        source: io::Error,
    },
    /// The schedule's poller could not be created, or its wait failed.
    Reactor(io::Error),
    /// The tasklet given to [`Schedule::block_on`](crate::Schedule::block_on) ended without
    /// returning.
    Ended {
        /// How it ended: panicked or killed.
        exit: crate::Exit,
    },
    /// One schedule of a [`Cores`](crate::Cores) failed: its build, its poller, a plugin's
    /// error, or a panic that reached its thread.
    Core {
        /// The schedule's index (its thread is `fibra-<index>`).
        index: usize,
        /// What went wrong.
        reason: String,
    },
    /// Any other I/O error.
    Io(io::Error),
}

impl Error {
    /// Whether this is a failure to allocate a tasklet stack.
    pub fn is_stack_alloc(&self) -> bool {
        matches!(self, Error::StackAlloc { .. })
    }

    /// Whether this is a deadlock report from [`Schedule::run`](crate::Schedule::run).
    pub fn is_stalled(&self) -> bool {
        matches!(self, Error::Stalled { .. })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::StackAlloc { size, source } => {
                write!(
                    f,
                    "could not allocate a {size}-byte tasklet stack: {source}"
                )?;
                if source.kind() == io::ErrorKind::OutOfMemory {
                    write!(
                        f,
                        "; each tasklet stack is two memory maps and Linux caps a process at \
                         vm.max_map_count maps (default 65530, about 32,000 stacks): raise it, \
                         e.g. `sudo sysctl -w vm.max_map_count=262144` (and any `ulimit -v` \
                         address-space limit), or run fewer tasklets or smaller stacks"
                    )?;
                }
                Ok(())
            }
            Error::OpTaken { op } => write!(
                f,
                "op type `{op}` is already handled by another plugin; each op type has exactly \
                 one plugin"
            ),
            Error::TooManyPlugins { max } => write!(
                f,
                "a schedule holds at most {max} plugins; serve more op types from one plugin"
            ),
            Error::Stalled { waiting } => write!(
                f,
                "{waiting} tasklet(s) are waiting but nothing can ever wake them (no runnable \
                 tasklet, no timer, no I/O source, no Remote held outside the schedule): a \
                 deadlock; Schedule::tasklets() lists what each one waits on"
            ),
            Error::Plugin { plugin, source } => write!(f, "plugin `{plugin}` failed: {source}"),
            Error::Reactor(e) => {
                write!(f, "the schedule's poller failed: {e}")?;
                if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                    write!(
                        f,
                        "; the process is out of file descriptors: close some, or raise the \
                         limit (`ulimit -n`)"
                    )?;
                }
                Ok(())
            }
            Error::Ended { exit } => {
                write!(
                    f,
                    "the tasklet given to block_on ended without returning: {exit}"
                )
            }
            Error::Core { index, reason } => {
                write!(
                    f,
                    "schedule {index} (thread `fibra-{index}`) failed: {reason}"
                )
            }
            Error::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::StackAlloc { source, .. } | Error::Plugin { source, .. } => Some(source),
            Error::Io(e) | Error::Reactor(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}
