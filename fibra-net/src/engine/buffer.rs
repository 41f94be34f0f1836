//! Connection buffers, lent from a pool while they hold bytes.
//!
//! An idle connection holds no buffer: its input buffer is taken from the pool when a read
//! needs it and given back once every byte in it was consumed, and so is its output buffer
//! once everything queued was written. Steady traffic therefore allocates nothing, and
//! 10,000 idle connections cost no buffer memory.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::rc::Rc;

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

/// Bytes shared by every member of a [`Group`](crate::Group): stored once, however many
/// output queues hold them.
pub(crate) type Segment = Rc<Vec<u8>>;

/// A shared segment this small, queued behind other output, is copied rather than shared.
const COPY_MAX: usize = 1024;

/// Slices one gathering write takes at most (more are written by the next one).
pub(crate) const MAX_SLICES: usize = 64;

/// A piece of an output queue: bytes of this connection's own, or a group's shared segment
/// up to `end` (a member left out of part of a batch gets pieces of it); `head` bytes of it
/// are written already.
#[derive(Debug)]
enum Chunk {
    Own {
        data: Vec<u8>,
        head: usize,
    },
    Shared {
        segment: Segment,
        head: usize,
        end: usize,
    },
}

impl Chunk {
    fn pending(&self) -> &[u8] {
        match self {
            Chunk::Own { data, head } => &data[*head..],
            Chunk::Shared { segment, head, end } => &segment[*head..*end],
        }
    }
}

/// A queue of chunks whose first two live inline: most connections hold one or two chunks
/// at a time (a shared batch, and their own bytes behind it), and queueing or writing them
/// then touches no memory beyond the connection's own entry.
#[derive(Debug, Default)]
struct Chunks {
    first: Option<Chunk>,
    /// Only while `first` is `Some`.
    second: Option<Chunk>,
    /// The chunks after `second`; only while `second` is `Some`.
    rest: VecDeque<Chunk>,
}

impl Chunks {
    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + usize::from(self.second.is_some()) + self.rest.len()
    }

    fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    fn push_back(&mut self, chunk: Chunk) {
        if self.first.is_none() {
            self.first = Some(chunk);
        } else if self.second.is_none() {
            self.second = Some(chunk);
        } else {
            self.rest.push_back(chunk);
        }
    }

    fn pop_back(&mut self) -> Option<Chunk> {
        self.rest
            .pop_back()
            .or_else(|| self.second.take())
            .or_else(|| self.first.take())
    }

    fn front(&self) -> Option<&Chunk> {
        self.first.as_ref()
    }

    fn front_mut(&mut self) -> Option<&mut Chunk> {
        self.first.as_mut()
    }

    fn pop_front(&mut self) -> Option<Chunk> {
        let front = self.first.take();
        self.first = self.second.take();
        self.second = self.rest.pop_front();
        front
    }

    fn iter(&self) -> impl Iterator<Item = &Chunk> {
        self.first
            .iter()
            .chain(self.second.iter())
            .chain(self.rest.iter())
    }

    fn take_all(&mut self) -> impl Iterator<Item = Chunk> + '_ {
        let inline = [self.first.take(), self.second.take()];
        inline.into_iter().flatten().chain(self.rest.drain(..))
    }
}

/// Bytes queued to send, in order: the connection's own bytes (in pooled buffers) and shared
/// segments, written with one gathering write.
///
/// `repr(C)`: the length, which every send reads, comes first (see `Output`).
#[derive(Debug, Default)]
#[repr(C)]
pub(crate) struct OutQueue {
    len: usize,
    chunks: Chunks,
}

impl OutQueue {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends bytes written by `f` to the connection's own bytes at the end of the queue;
    /// what `f` wrote is taken back if it fails.
    pub(crate) fn append<E>(
        &mut self,
        pool: &mut BufPool,
        f: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let (mut data, mut head) = match self.chunks.pop_back() {
            Some(Chunk::Own { data, head }) => (data, head),
            other => {
                if let Some(chunk) = other {
                    self.chunks.push_back(chunk);
                }
                (pool.take_out(), 0)
            }
        };
        if self.chunks.is_empty() && head > 0 && head >= data.len() / 2 {
            // Written bytes take half the buffer or more: move the rest to the front.
            data.drain(..head);
            head = 0;
        }
        let before = data.len();
        let result = f(&mut data);
        if result.is_err() {
            data.truncate(before);
        }
        self.len += data.len() - before;
        if data.len() == head {
            // Nothing in it (a failed append to a new buffer): back to the pool.
            pool.give_out(data);
        } else {
            self.chunks.push_back(Chunk::Own { data, head });
        }
        result
    }

    /// Appends a shared segment. Behind other output, a small segment is copied onto the
    /// connection's own bytes instead: the kernel copies one slice of a gathering write
    /// faster than many small ones, so a member that waits for its flush delay gathers the
    /// rounds' small batches into one buffer (a large batch, or one to an idle member, is
    /// shared as it is).
    #[inline(always)]
    pub(crate) fn push_shared(&mut self, segment: &Segment, pool: &mut BufPool) {
        // The whole segment, every member's path (no range to check): kept apart from
        // `push_shared_range`, which only a `send_except`'s member takes.
        if segment.is_empty() {
            return;
        }
        if !self.is_empty() && segment.len() <= COPY_MAX {
            let copied = self.append(pool, |out| {
                out.extend_from_slice(segment);
                Ok::<(), ()>(())
            });
            debug_assert!(copied.is_ok());
            return;
        }
        self.len += segment.len();
        self.chunks.push_back(Chunk::Shared {
            segment: Rc::clone(segment),
            head: 0,
            end: segment.len(),
        });
    }

    /// Appends bytes `start..end` of a group's shared segment (a member left out of the
    /// rest). An empty or out-of-bounds range appends nothing.
    pub(crate) fn push_shared_range(
        &mut self,
        segment: &Segment,
        start: usize,
        end: usize,
        pool: &mut BufPool,
    ) {
        let Some(bytes) = segment.get(start..end).filter(|b| !b.is_empty()) else {
            return;
        };
        if !self.is_empty() && bytes.len() <= COPY_MAX {
            let copied = self.append(pool, |out| {
                out.extend_from_slice(bytes);
                Ok::<(), ()>(())
            });
            debug_assert!(copied.is_ok());
            return;
        }
        self.len += bytes.len();
        self.chunks.push_back(Chunk::Shared {
            segment: Rc::clone(segment),
            head: start,
            end,
        });
    }

    /// The bytes to write next when they are in one piece (the common case: no shared
    /// segment, or only one).
    pub(crate) fn single(&self) -> Option<&[u8]> {
        match self.chunks.len() {
            1 => self.chunks.front().map(Chunk::pending),
            _ => None,
        }
    }

    /// The bytes to write next, as slices for one gathering write: how many slices were
    /// filled, and how many bytes they hold.
    pub(crate) fn slices<'a>(&'a self, out: &mut [IoSlice<'a>; MAX_SLICES]) -> (usize, usize) {
        let (mut n, mut bytes) = (0, 0);
        for chunk in self.chunks.iter().take(MAX_SLICES) {
            let pending = chunk.pending();
            bytes += pending.len();
            out[n] = IoSlice::new(pending);
            n += 1;
        }
        (n, bytes)
    }

    /// Marks `n` bytes as written; written chunks leave (own buffers go back to the pool).
    pub(crate) fn advance(&mut self, mut n: usize, pool: &mut BufPool) {
        if n == self.len && self.chunks.second.is_none() {
            // Everything written, and it was one chunk (an answer per tick): the queue is
            // empty now, with none of the chunks' shuffling below.
            self.len = 0;
            if let Some(Chunk::Own { data, .. }) = self.chunks.first.take() {
                pool.give_out(data);
            }
            return;
        }
        self.len -= n;
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                return;
            };
            let left = front.pending().len();
            if n < left {
                match front {
                    Chunk::Own { head, .. } | Chunk::Shared { head, .. } => *head += n,
                }
                return;
            }
            n -= left;
            if let Some(Chunk::Own { data, .. }) = self.chunks.pop_front() {
                pool.give_out(data);
            }
        }
    }

    /// Drops everything queued; returns how many bytes that was.
    pub(crate) fn clear(&mut self, pool: &mut BufPool) -> usize {
        let dropped = self.len;
        for chunk in self.chunks.take_all() {
            if let Chunk::Own { data, .. } = chunk {
                pool.give_out(data);
            }
        }
        self.len = 0;
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

    #[inline]
    fn take_out(&mut self) -> Vec<u8> {
        self.outs
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BUF_SIZE))
    }

    #[inline]
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

    fn pending(q: &OutQueue) -> Vec<u8> {
        let mut iov = [IoSlice::new(&[]); MAX_SLICES];
        let (n, _) = q.slices(&mut iov);
        iov[..n].iter().flat_map(|s| s.iter().copied()).collect()
    }

    fn put(bytes: &'static [u8]) -> impl FnOnce(&mut Vec<u8>) -> Result<(), ()> {
        move |b: &mut Vec<u8>| {
            b.extend_from_slice(bytes);
            Ok(())
        }
    }

    #[test]
    fn out_queue_keeps_order_across_own_and_shared_bytes() {
        let mut pool = BufPool::default();
        let mut q = OutQueue::default();
        let first: Segment = Rc::new(b"shared ".to_vec());
        let small: Segment = Rc::new(b"small ".to_vec());
        let large: Segment = Rc::new(vec![b'L'; COPY_MAX + 1]);
        // Into an empty queue, a segment is shared as it is.
        q.push_shared(&first, &mut pool);
        q.append(&mut pool, put(b"own ")).unwrap();
        // Behind other output, a small one is copied, a large one shared.
        q.push_shared(&small, &mut pool);
        q.push_shared(&large, &mut pool);
        q.append(&mut pool, put(b"tail")).unwrap();
        assert_eq!(Rc::strong_count(&first), 2);
        assert_eq!(Rc::strong_count(&small), 1, "copied");
        assert_eq!(Rc::strong_count(&large), 2);
        let mut want = b"shared own small ".to_vec();
        want.extend_from_slice(&large);
        want.extend_from_slice(b"tail");
        assert_eq!(q.len(), want.len());
        assert_eq!(pending(&q), want);
        // A partial write in the middle of the first segment.
        q.advance(3, &mut pool);
        assert_eq!(pending(&q), &want[3..]);
        q.advance(want.len() - 3, &mut pool);
        assert!(q.is_empty());
        assert_eq!(Rc::strong_count(&first), 1, "a written segment is let go");
        assert_eq!(Rc::strong_count(&large), 1);
        assert_eq!(pool.pooled(), 2, "both own buffers went back to the pool");
    }

    #[test]
    fn out_queue_shares_pieces_of_a_segment() {
        let mut pool = BufPool::default();
        let mut q = OutQueue::default();
        let mut bytes = vec![b'a'; COPY_MAX + 10];
        bytes.extend_from_slice(b"-skipped-");
        bytes.extend_from_slice(&[b'b'; COPY_MAX + 10]);
        let segment: Segment = Rc::new(bytes);
        let (skip_from, skip_to) = (COPY_MAX + 10, COPY_MAX + 19);
        q.push_shared_range(&segment, 0, skip_from, &mut pool);
        q.push_shared_range(&segment, skip_to, segment.len(), &mut pool);
        q.push_shared_range(&segment, 5, 5, &mut pool);
        q.push_shared_range(&segment, 5, segment.len() + 1, &mut pool);
        assert_eq!(
            Rc::strong_count(&segment),
            3,
            "both pieces shared, not copied"
        );
        let mut want = segment[..skip_from].to_vec();
        want.extend_from_slice(&segment[skip_to..]);
        assert_eq!(q.len(), want.len());
        assert_eq!(pending(&q), want);
        q.advance(skip_from + 1, &mut pool);
        assert_eq!(pending(&q), &want[skip_from + 1..]);
        q.advance(want.len() - skip_from - 1, &mut pool);
        assert!(q.is_empty());
        assert_eq!(Rc::strong_count(&segment), 1);
    }

    #[test]
    fn out_queue_takes_back_a_failed_append() {
        let mut pool = BufPool::default();
        let mut q = OutQueue::default();
        let failed = q.append(&mut pool, |b| {
            b.extend_from_slice(b"half");
            Err("no")
        });
        assert_eq!(failed, Err("no"));
        assert!(q.is_empty());
        assert_eq!(pool.pooled(), 1);
    }
}
