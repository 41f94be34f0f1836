//! `StackPool`: tasklet stacks reused instead of mapped anew for every spawn.

use corosensei::stack::DefaultStack;

use crate::Error;

/// Free stacks of the schedule's default size. Creating a stack costs an `mmap`, an `mprotect`
/// and a first page fault (about 10 µs); taking one from the pool costs a `Vec::pop`.
/// Stacks of other sizes are mapped on demand and unmapped when their tasklet ends.
pub(crate) struct StackPool {
    size: usize,
    cap: usize,
    free: Vec<DefaultStack>,
}

impl std::fmt::Debug for StackPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackPool")
            .field("size", &self.size)
            .field("cap", &self.cap)
            .field("free", &self.free.len())
            .finish()
    }
}

impl StackPool {
    pub(crate) fn new(size: usize, cap: usize) -> Self {
        StackPool {
            size,
            cap,
            free: Vec::new(),
        }
    }

    pub(crate) fn default_size(&self) -> usize {
        self.size
    }

    /// A stack of `size` bytes (plus its guard page), from the pool when it has one.
    pub(crate) fn take(&mut self, size: usize) -> Result<DefaultStack, Error> {
        if size == self.size {
            if let Some(stack) = self.free.pop() {
                return Ok(stack);
            }
        }
        DefaultStack::new(size).map_err(|source| Error::StackAlloc { size, source })
    }

    /// Gives back the stack of an ended tasklet.
    pub(crate) fn give(&mut self, stack: DefaultStack, size: usize) {
        if size == self.size && self.free.len() < self.cap {
            self.free.push(stack);
        }
    }

    /// Maps stacks until `n` are free (or the cap is reached).
    pub(crate) fn prewarm(&mut self, n: usize) -> Result<(), Error> {
        let n = n.min(self.cap);
        while self.free.len() < n {
            let stack = DefaultStack::new(self.size).map_err(|source| Error::StackAlloc {
                size: self.size,
                source,
            })?;
            self.free.push(stack);
        }
        Ok(())
    }

    pub(crate) fn free_len(&self) -> usize {
        self.free.len()
    }
}
