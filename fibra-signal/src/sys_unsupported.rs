//! Systems without `signalfd`: the plugin cannot be built, so no other method is reachable.

use std::convert::Infallible;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use crate::signal::SignalSet;
use crate::{Signal, SignalError};

#[derive(Debug)]
pub(crate) struct SignalFd {
    never: Infallible,
}

impl SignalFd {
    pub(crate) fn new() -> Result<SignalFd, SignalError> {
        Err(SignalError::Unsupported)
    }

    pub(crate) fn caught(&self) -> SignalSet {
        match self.never {}
    }

    pub(crate) fn catch(&mut self, _: SignalSet) -> io::Result<()> {
        match self.never {}
    }

    pub(crate) fn release(&mut self, _: Signal) -> io::Result<()> {
        match self.never {}
    }

    pub(crate) fn drain(&self, _: impl FnMut(Signal)) -> io::Result<()> {
        match self.never {}
    }
}

impl AsFd for SignalFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self.never {}
    }
}
