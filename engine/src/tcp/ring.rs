//! The byte ring behind the send and receive buffers, allocated only while it holds data.
//!
//! Owns bytes and their positions, nothing about sequence numbers. Storage grows
//! geometrically on demand up to a capacity the caller passes in, and is released when
//! empty, so an idle connection carries no buffer memory. The receive side writes
//! out-of-order data past `len` with [`RingBuffer::write_at`]; growth preserves those
//! bytes too.
const MIN_ALLOCATION: usize = 4096;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RingBuffer {
    storage: Box<[u8]>,
    head: u32,
    len: u32,
}

impl RingBuffer {
    pub fn new() -> Self {
        RingBuffer {
            storage: Box::default(),
            head: 0,
            len: 0,
        }
    }

    /// Bytes held (contiguous from the head).
    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of storage currently allocated.
    pub fn allocated(&self) -> usize {
        self.storage.len()
    }

    /// Releases the storage if nothing is held. The caller asserts that no out-of-order
    /// bytes live past `len` either.
    pub fn release_if_empty(&mut self) {
        if self.len == 0 {
            self.storage = Box::default();
            self.head = 0;
        }
    }

    /// Makes sure at least `total` bytes from the head are addressable, growing to at most
    /// `max` (and never below `total` when `total <= max`). Returns the addressable size.
    fn reserve(&mut self, total: usize, max: usize) -> usize {
        let cap = self.storage.len();
        if total <= cap {
            return cap;
        }
        let want = total
            .max(MIN_ALLOCATION)
            .next_power_of_two()
            .min(max.max(total.min(max)));
        if want <= cap {
            return cap;
        }
        let mut storage = vec![0u8; want].into_boxed_slice();
        // Linearise the whole old storage (held bytes and any bytes written past them).
        let head = self.head as usize;
        if cap > 0 {
            storage[..cap - head].copy_from_slice(&self.storage[head..]);
            storage[cap - head..cap].copy_from_slice(&self.storage[..head]);
        }
        self.storage = storage;
        self.head = 0;
        want
    }

    /// Physical index of logical `offset` (which must be below the storage size).
    fn index(&self, offset: usize) -> usize {
        let i = self.head as usize + offset;
        let cap = self.storage.len();
        if i >= cap {
            i - cap
        } else {
            i
        }
    }

    /// Copies `data` to logical `offset` (from the head), without changing `len`. Writes
    /// at most up to `max` bytes from the head; returns the number of bytes written.
    pub fn write_at(&mut self, offset: usize, data: &[u8], max: usize) -> usize {
        let n = data.len().min(max.saturating_sub(offset));
        if n == 0 {
            return 0;
        }
        let cap = self.reserve(offset + n, max);
        let n = n.min(cap.saturating_sub(offset));
        let start = self.index(offset);
        let first = n.min(cap - start);
        self.storage[start..start + first].copy_from_slice(&data[..first]);
        self.storage[..n - first].copy_from_slice(&data[first..n]);
        n
    }

    /// Appends as much of `data` as fits under `max`; returns the number of bytes taken.
    pub fn push(&mut self, data: &[u8], max: usize) -> usize {
        let n = self.write_at(self.len(), data, max);
        self.commit(n);
        n
    }

    /// Counts `n` more bytes as held (after `write_at` at `len`).
    pub fn commit(&mut self, n: usize) {
        let n = n.min(self.storage.len() - self.len());
        self.len += n as u32;
    }

    /// The held bytes from `offset`, at most `len` of them, as up to two slices.
    pub fn slices(&self, offset: usize, len: usize) -> (&[u8], &[u8]) {
        if offset >= self.len() {
            return (&[], &[]);
        }
        let len = len.min(self.len() - offset);
        let cap = self.storage.len();
        let start = self.index(offset);
        let first = len.min(cap - start);
        (
            &self.storage[start..start + first],
            &self.storage[..len - first],
        )
    }

    /// Drops `n` bytes from the head.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.len());
        if n == 0 {
            return;
        }
        self.head = self.index(n) as u32;
        self.len -= n as u32;
    }

    /// Copies held bytes into `out` and drops them; returns the count.
    pub fn read(&mut self, out: &mut [u8]) -> usize {
        let (a, b) = self.slices(0, out.len());
        let (na, nb) = (a.len(), b.len());
        out[..na].copy_from_slice(a);
        out[na..na + nb].copy_from_slice(b);
        self.consume(na + nb);
        na + nb
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_unallocated_and_releases_when_empty() {
        let mut r = RingBuffer::new();
        assert_eq!(r.allocated(), 0);
        assert_eq!(r.push(b"hello", 1 << 20), 5);
        assert!(r.allocated() >= 5);
        let mut out = [0u8; 8];
        assert_eq!(r.read(&mut out), 5);
        assert_eq!(&out[..5], b"hello");
        r.release_if_empty();
        assert_eq!(r.allocated(), 0);
    }

    #[test]
    fn push_respects_capacity() {
        let mut r = RingBuffer::new();
        assert_eq!(r.push(&[1; 100], 64), 64);
        assert_eq!(r.push(&[1; 100], 64), 0);
        r.consume(10);
        assert_eq!(r.push(&[2; 100], 64), 10);
        assert_eq!(r.len(), 64);
    }

    #[test]
    fn wraps_and_grows_preserving_out_of_order_bytes() {
        let max = 1 << 16;
        let mut r = RingBuffer::new();
        // Fill and drain to move the head near the end of a 4 KiB allocation.
        r.push(&[0; 4000], max);
        r.consume(4000);
        // Out-of-order bytes at offset 100, then the hole filled, wrapping physically.
        assert_eq!(r.write_at(100, &[7; 50], max), 50);
        assert_eq!(r.write_at(0, &[5; 100], max), 100);
        r.commit(150);
        let (a, b) = r.slices(0, 150);
        assert!(!b.is_empty(), "expected a wrap");
        let all: Vec<u8> = a.iter().chain(b).copied().collect();
        assert_eq!(&all[..100], &[5; 100][..]);
        assert_eq!(&all[100..], &[7; 50][..]);
        // Out-of-order bytes far away force growth; earlier bytes survive it.
        assert_eq!(r.write_at(9000, &[9; 10], max), 10);
        assert!(r.allocated() >= 9010);
        let (a, b) = r.slices(0, 150);
        let all: Vec<u8> = a.iter().chain(b).copied().collect();
        assert_eq!(&all[..100], &[5; 100][..]);
        r.consume(150);
        r.write_at(0, &[1; 8850], max);
        r.commit(8860);
        let (a, b) = r.slices(8850, 10);
        assert_eq!(a.len() + b.len(), 10);
        assert!(a.iter().chain(b).all(|&x| x == 9));
    }

    #[test]
    fn slices_past_end_are_empty() {
        let mut r = RingBuffer::new();
        r.push(b"abc", 10);
        assert_eq!(r.slices(3, 5), (&[][..], &[][..]));
        assert_eq!(r.slices(1, 100).0, b"bc");
    }
}
