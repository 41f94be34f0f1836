//! The system calls the table makes, each with its error classification.

pub(crate) mod socket;
