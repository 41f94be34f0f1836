//! Connection buffers, lent from a pool while they hold bytes.
//!
//! An idle connection holds no buffer: its input buffer is taken from the pool when a read
//! needs it and given back once every byte in it was consumed, and so is its output buffer
//! once everything queued was written. Steady traffic therefore allocates nothing, and
//! 10,000 idle connections cost no buffer memory.

/// The size of a pooled buffer.
pub(crate) const BUF_SIZE: usize = 16 * 1024;
/// Buffers kept in each pool at most; more are freed.
const POOL_CAP: usize = 1024;

/// Bytes received and not yet consumed: `data[start..end]`. `data` is always fully
/// initialized (so reads need no `unsafe`): its length is the buffer's capacity.
#[derive(Debug, Default)]
pub(crate) struct InBuf {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl InBuf {
    pub(crate) fn filled(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    pub(crate) fn len(&self) -> usize {
        self.end - self.start
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Marks `n` bytes at the front as used.
    pub(crate) fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.len());
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Room for at least one read of up to `want` bytes, never growing the whole buffer past
    /// `limit` bytes. Empty when the buffer is full at its limit.
    pub(crate) fn spare(&mut self, pool: &mut BufPool, want: usize, limit: usize) -> &mut [u8] {
        if self.data.is_empty() {
            self.data = pool.take_in();
        }
        if self.data.len() - self.end < want && self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let room = self.data.len() - self.end;
        if room < want && self.data.len() < limit {
            let grown = (self.data.len() * 2)
                .max(self.end + want)
                .min(limit.max(BUF_SIZE));
            self.data.resize(grown, 0);
        }
        &mut self.data[self.end..]
    }

    pub(crate) fn commit(&mut self, n: usize) {
        self.end += n;
    }

    /// Gives the memory back to the pool if no byte is waiting in it.
    pub(crate) fn release_if_empty(&mut self, pool: &mut BufPool) {
        if self.is_empty() && !self.data.is_empty() {
            pool.give_in(std::mem::take(&mut self.data));
        }
    }

    /// Drops everything; the memory goes back to the pool.
    pub(crate) fn clear(&mut self, pool: &mut BufPool) {
        self.start = 0;
        self.end = 0;
        self.release_if_empty(pool);
    }
}

/// Bytes queued to send: `data[head..]` is still to be written.
#[derive(Debug, Default)]
pub(crate) struct OutBuf {
    data: Vec<u8>,
    head: usize,
}

impl OutBuf {
    pub(crate) fn len(&self) -> usize {
        self.data.len() - self.head
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.head == self.data.len()
    }

    /// The buffer to append to, taken from the pool if needed.
    pub(crate) fn tail(&mut self, pool: &mut BufPool) -> &mut Vec<u8> {
        if self.data.capacity() == 0 {
            self.data = pool.take_out();
        } else if self.head > 0 && self.head >= self.data.len() / 2 {
            // Written bytes take half the buffer or more: move the rest to the front.
            self.data.drain(..self.head);
            self.head = 0;
        }
        &mut self.data
    }

    /// The bytes still to write.
    pub(crate) fn pending(&self) -> &[u8] {
        &self.data[self.head..]
    }

    /// Marks `n` bytes as written.
    pub(crate) fn advance(&mut self, n: usize) {
        self.head += n;
        if self.head >= self.data.len() {
            self.data.clear();
            self.head = 0;
        }
    }

    /// Gives the memory back to the pool if nothing waits in it.
    pub(crate) fn release_if_empty(&mut self, pool: &mut BufPool) {
        if self.is_empty() && self.data.capacity() != 0 {
            pool.give_out(std::mem::take(&mut self.data));
            self.head = 0;
        }
    }

    /// Drops everything queued; returns how many bytes that was.
    pub(crate) fn clear(&mut self, pool: &mut BufPool) -> usize {
        let dropped = self.len();
        self.data.clear();
        self.head = 0;
        self.release_if_empty(pool);
        dropped
    }
}

/// Spare buffers: input buffers (initialized, length = capacity) and output buffers (empty).
#[derive(Debug, Default)]
pub(crate) struct BufPool {
    ins: Vec<Vec<u8>>,
    outs: Vec<Vec<u8>>,
}

impl BufPool {
    fn take_in(&mut self) -> Vec<u8> {
        self.ins.pop().unwrap_or_else(|| vec![0; BUF_SIZE])
    }

    fn give_in(&mut self, mut buf: Vec<u8>) {
        if self.ins.len() < POOL_CAP {
            if buf.len() != BUF_SIZE {
                buf.truncate(BUF_SIZE);
                buf.shrink_to_fit();
                buf.resize(BUF_SIZE, 0);
            }
            self.ins.push(buf);
        }
    }

    fn take_out(&mut self) -> Vec<u8> {
        self.outs
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BUF_SIZE))
    }

    fn give_out(&mut self, mut buf: Vec<u8>) {
        if self.outs.len() < POOL_CAP {
            buf.clear();
            if buf.capacity() > BUF_SIZE {
                buf.shrink_to(BUF_SIZE);
            }
            self.outs.push(buf);
        }
    }

    /// Buffers kept for reuse.
    pub(crate) fn pooled(&self) -> usize {
        self.ins.len() + self.outs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_buf_grows_to_limit_and_compacts() {
        let mut pool = BufPool::default();
        let mut b = InBuf::default();
        let s = b.spare(&mut pool, 4096, 40_000);
        assert_eq!(s.len(), BUF_SIZE);
        s[..3].copy_from_slice(b"abc");
        b.commit(BUF_SIZE);
        b.consume(1);
        // Full: asks for more room; compaction gives 1 byte, growth gives the rest.
        let s = b.spare(&mut pool, 4096, 40_000);
        assert!(s.len() >= 4096);
        assert_eq!(&b.filled()[..2], b"bc");
        b.consume(b.len());
        b.release_if_empty(&mut pool);
        assert_eq!(pool.pooled(), 1);
    }

    #[test]
    fn in_buf_stops_at_limit() {
        let mut pool = BufPool::default();
        let mut b = InBuf::default();
        let n = b.spare(&mut pool, 4096, BUF_SIZE).len();
        b.commit(n);
        assert!(b.spare(&mut pool, 4096, BUF_SIZE).is_empty());
    }

    #[test]
    fn out_buf_partial_writes() {
        let mut pool = BufPool::default();
        let mut b = OutBuf::default();
        b.tail(&mut pool).extend_from_slice(b"hello world");
        b.advance(5);
        assert_eq!(b.pending(), b" world");
        b.tail(&mut pool).extend_from_slice(b"!");
        assert_eq!(b.pending(), b" world!");
        b.advance(7);
        assert!(b.is_empty());
        b.release_if_empty(&mut pool);
        assert_eq!(pool.pooled(), 1);
    }
}
