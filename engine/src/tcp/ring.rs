//! The byte ring behind the send and receive buffers, allocated only while it holds data.
//!
//! Owns bytes and their positions, nothing about sequence numbers. Storage grows
//! geometrically on demand up to a capacity the caller passes in, and is released when
//! empty, so an idle connection carries no buffer memory. The receive side writes
//! out-of-order data past `len` with [`RingBuffer::write_at`]; growth preserves those
//! bytes too.
//!
//! Storage is initialised lazily: a new allocation is not zeroed, its bytes are written
//! for the first time by the data itself (`Vec::extend_from_slice`), and only a gap that a
//! write skips over is zero-filled. A request/response connection allocates and releases
//! its rings once per message, and zeroing 4 KiB each time was the largest single cost of
//! the engine under rpc load.
//!
//! Released storage of the smallest size goes to a small per-thread (per-core) spare list
//! that the next ring to need one takes from, so that a connection taking and giving back
//! a ring per message costs no call into the allocator: freeing and allocating a 4 KiB
//! block was about a sixth of the engine's time under rpc load. The list is bounded
//! ([`SPARE_RINGS`]), so idle connections still hold no buffer memory and the spare memory
//! per core is small.
use std::cell::RefCell;

const MIN_ALLOCATION: usize = 4096;

/// Most released rings kept per thread for reuse (4 MiB of spare storage).
pub const SPARE_RINGS: usize = 1024;

thread_local! {
    static SPARE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// Storage of `want` bytes: a spare ring when `want` is the smallest size and one is kept,
/// else a fresh allocation. Its length is 0 (nothing written yet), whatever it held before.
fn take_storage(want: usize) -> Vec<u8> {
    if want == MIN_ALLOCATION {
        if let Ok(Some(v)) = SPARE.try_with(|s| s.borrow_mut().pop()) {
            return v;
        }
    }
    Vec::with_capacity(want)
}

/// Gives storage back: kept for reuse when it has the smallest size and the spare list has
/// room, else freed.
fn give_back(mut storage: Vec<u8>) {
    if storage.capacity() != MIN_ALLOCATION {
        return;
    }
    storage.clear();
    // During thread teardown the list may be gone: the storage is then simply freed.
    let _ = SPARE.try_with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < SPARE_RINGS {
            s.push(storage);
        }
    });
}

/// Bytes of spare ring storage this thread keeps for reuse.
pub fn spare_bytes() -> usize {
    SPARE
        .try_with(|s| s.borrow().len() * MIN_ALLOCATION)
        .unwrap_or(0)
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct RingBuffer {
    /// The ring is `storage.capacity()` bytes (0: nothing allocated); only the first
    /// `storage.len()` physical bytes have been written (or zero-filled) so far. Growing
    /// within the capacity never reallocates.
    storage: Vec<u8>,
    head: u32,
    len: u32,
}

impl Clone for RingBuffer {
    fn clone(&self) -> Self {
        // `Vec::clone` would allocate only `len` bytes: keep the ring's size.
        let mut storage = Vec::with_capacity(self.storage.capacity());
        storage.extend_from_slice(&self.storage);
        RingBuffer {
            storage,
            head: self.head,
            len: self.len,
        }
    }
}

impl Drop for RingBuffer {
    fn drop(&mut self) {
        give_back(core::mem::take(&mut self.storage));
    }
}

impl RingBuffer {
    pub fn new() -> Self {
        RingBuffer {
            storage: Vec::new(),
            head: 0,
            len: 0,
        }
    }

    /// The first `n` logical bytes from the head (held bytes, then whatever was written
    /// past them: out-of-order data; never-written bytes read as zeros), as one vector.
    pub fn logical_bytes(&self, n: usize) -> Vec<u8> {
        let n = n.min(self.cap());
        let mut out = Vec::with_capacity(n);
        let head = self.head as usize;
        let first = n.min(self.cap() - head);
        let init = self.storage.len();
        for (start, len) in [(head, first), (0, n - first)] {
            let end = start + len;
            let written = end.min(init).saturating_sub(start);
            out.extend_from_slice(&self.storage[start..start + written]);
            out.resize(out.len() + (len - written), 0);
        }
        out
    }

    /// A ring holding `bytes` from its head, the first `len` of them counted as held (the
    /// rest written past them, as out-of-order data is). Grows on later writes up to the
    /// caller's maximum as any ring does.
    pub fn from_logical(bytes: &[u8], len: usize) -> RingBuffer {
        let mut ring = RingBuffer::new();
        if !bytes.is_empty() {
            ring.write_at(0, bytes, bytes.len());
            ring.commit(len.min(bytes.len()));
        }
        ring
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
        self.cap()
    }

    /// The ring's size in bytes.
    fn cap(&self) -> usize {
        self.storage.capacity()
    }

    /// Releases the storage if nothing is held. The caller asserts that no out-of-order
    /// bytes live past `len` either.
    pub fn release_if_empty(&mut self) {
        if self.len == 0 {
            give_back(core::mem::take(&mut self.storage));
            self.head = 0;
        }
    }

    /// Makes sure at least `total` bytes from the head are addressable, growing to at most
    /// `max` (and never below `total` when `total <= max`). Returns the addressable size.
    fn reserve(&mut self, total: usize, max: usize) -> usize {
        let cap = self.cap();
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
        let mut storage = take_storage(want);
        // Linearise the whole old ring (held bytes and any bytes written past them);
        // parts never written read as zeros, as a zeroed allocation would have.
        let head = self.head as usize;
        if cap > 0 {
            copy_initialised(&mut storage, &self.storage, head, cap);
            copy_initialised(&mut storage, &self.storage, 0, head);
        }
        give_back(core::mem::replace(&mut self.storage, storage));
        self.head = 0;
        self.cap()
    }

    /// Writes `data` at physical index `start` (`start + data.len() <= cap`), zero-filling
    /// any never-written gap before it.
    fn write_physical(&mut self, start: usize, data: &[u8]) {
        let end = start + data.len();
        let init = self.storage.len();
        if end <= init {
            self.storage[start..end].copy_from_slice(data);
        } else if start >= init {
            self.storage.resize(start, 0);
            self.storage.extend_from_slice(data);
        } else {
            let (old, new) = data.split_at(init - start);
            self.storage[start..init].copy_from_slice(old);
            self.storage.extend_from_slice(new);
        }
    }

    /// Makes physical bytes `..end` readable (zero-filling what was never written).
    fn initialise_to(&mut self, end: usize) {
        if self.storage.len() < end {
            self.storage.resize(end, 0);
        }
    }

    /// Physical index of logical `offset` (which must be below the storage size).
    fn index(&self, offset: usize) -> usize {
        let i = self.head as usize + offset;
        let cap = self.cap();
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
        self.write_physical(start, &data[..first]);
        self.write_physical(0, &data[first..n]);
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
        let n = n.min(self.cap() - self.len());
        if n == 0 {
            return;
        }
        // Committed bytes were written by `write_at`; should a caller commit bytes it
        // never wrote, they read as zeros rather than out of bounds.
        let start = self.index(self.len());
        let first = n.min(self.cap() - start);
        self.initialise_to(start + first);
        self.initialise_to(n - first);
        self.len += n as u32;
    }

    /// The held bytes from `offset`, at most `len` of them, as up to two slices.
    pub fn slices(&self, offset: usize, len: usize) -> (&[u8], &[u8]) {
        if offset >= self.len() {
            return (&[], &[]);
        }
        let len = len.min(self.len() - offset);
        let cap = self.cap();
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

/// Appends physical bytes `start..end` of a ring whose written prefix is `written`,
/// with zeros for the part never written.
fn copy_initialised(out: &mut Vec<u8>, written: &[u8], start: usize, end: usize) {
    let copied_end = end.min(written.len());
    if start < copied_end {
        out.extend_from_slice(&written[start..copied_end]);
    }
    let zeros = (end - start) - copied_end.saturating_sub(start);
    out.resize(out.len() + zeros, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_released_ring_is_reused_and_reads_none_of_its_old_bytes() {
        // Each test runs on its own thread: the spare list starts empty.
        assert_eq!(spare_bytes(), 0);
        let mut a = RingBuffer::new();
        a.push(&[7u8; 100], 8192);
        let storage = a.storage.as_ptr();
        a.consume(100);
        a.release_if_empty();
        assert_eq!((a.allocated(), spare_bytes()), (0, MIN_ALLOCATION));
        let mut b = RingBuffer::new();
        b.push(&[1u8; 10], 8192);
        assert_eq!(b.storage.as_ptr(), storage, "the spare storage is taken");
        assert_eq!(spare_bytes(), 0);
        // Past what b wrote, the old connection's bytes are not readable: zeros.
        assert_eq!(b.logical_bytes(20), [[1u8; 10], [0u8; 10]].concat());
        // Dropping a ring gives its storage back as well.
        drop(b);
        assert_eq!(spare_bytes(), MIN_ALLOCATION);
    }

    #[test]
    fn the_spare_list_is_bounded_and_keeps_only_the_smallest_rings() {
        let mut rings: Vec<RingBuffer> = (0..SPARE_RINGS + 10)
            .map(|_| {
                let mut r = RingBuffer::new();
                r.push(&[1], 8192);
                r
            })
            .collect();
        let mut big = RingBuffer::new();
        big.push(&[2u8; 6000], 65536);
        assert!(big.allocated() > MIN_ALLOCATION);
        drop(big);
        assert_eq!(spare_bytes(), 0, "a larger ring is freed, not kept");
        for r in &mut rings {
            r.consume(1);
            r.release_if_empty();
        }
        assert_eq!(spare_bytes(), SPARE_RINGS * MIN_ALLOCATION);
    }

    #[test]
    fn logical_bytes_round_trip_through_a_wrapped_ring() {
        let mut r = RingBuffer::new();
        r.push(&[1u8; 3000], 8192);
        r.consume(2500);
        // Wraps: 500 held from physical 2500, then 3000 more.
        let data: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        r.push(&data, 4096);
        // Out-of-order bytes past the held ones, with a gap.
        r.write_at(3600, b"xyz", 4096);
        let bytes = r.logical_bytes(3603);
        assert_eq!(&bytes[..500], &[1u8; 500][..]);
        assert_eq!(&bytes[500..3500], &data[..]);
        assert_eq!(&bytes[3600..], b"xyz");
        let back = RingBuffer::from_logical(&bytes, 3500);
        assert_eq!(back.len(), 3500);
        assert_eq!(back.logical_bytes(3603), bytes);
        assert!(RingBuffer::from_logical(&[], 0).allocated() == 0);
    }

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
    fn a_new_allocation_is_written_not_zeroed() {
        let mut r = RingBuffer::new();
        assert_eq!(r.push(&[3; 64], 1 << 20), 64);
        assert_eq!(r.allocated(), MIN_ALLOCATION);
        assert_eq!(
            r.storage.len(),
            64,
            "only the written bytes are initialised"
        );
        // A gap skipped by an out-of-order write is zero-filled, not left unreadable.
        assert_eq!(r.write_at(200, &[4; 8], 1 << 20), 8);
        assert_eq!(r.storage.len(), 208);
        r.commit(208 - 64);
        let (a, b) = r.slices(64, 144);
        assert!(b.is_empty() && a[..136].iter().all(|&x| x == 0) && a[136..] == [4; 8]);
        // Committing bytes never written reads zeros rather than panicking.
        let mut q = RingBuffer::new();
        q.reserve(10, 1 << 20);
        q.commit(10);
        assert_eq!(q.slices(0, 10).0, &[0; 10][..]);
    }

    #[test]
    fn model_against_a_vecdeque() {
        // Random pushes, out-of-order writes, commits, reads and releases agree with a
        // simple model of the held bytes.
        let mut seed = 0x1234_5678_u64;
        let mut rnd = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let max = 1 << 15;
        let mut r = RingBuffer::new();
        let mut model: std::collections::VecDeque<u8> = Default::default();
        let mut tag = 0u8;
        for _ in 0..20_000 {
            match rnd(4) {
                0 => {
                    tag = tag.wrapping_add(1);
                    let data = vec![tag; rnd(3000)];
                    let n = r.push(&data, max);
                    model.extend(&data[..n]);
                }
                1 => {
                    let mut out = vec![0; rnd(5000)];
                    let n = r.read(&mut out);
                    let want: Vec<u8> = model.drain(..n).collect();
                    assert_eq!(&out[..n], &want[..]);
                }
                2 => {
                    // A clone (as a captured connection is) is the same ring.
                    let c = r.clone();
                    assert_eq!(c.allocated(), r.allocated());
                    r = c;
                    r.release_if_empty();
                }
                _ => {
                    // An out-of-order write then the hole filled, as the receive side does.
                    tag = tag.wrapping_add(1);
                    let gap = rnd(500);
                    let tail = vec![tag; rnd(500)];
                    let head = vec![tag.wrapping_add(100); gap];
                    let t = r.write_at(r.len() + gap, &tail, max);
                    let h = r.write_at(r.len(), &head, max);
                    if h == gap && gap + t > 0 {
                        r.commit(gap + t);
                        model.extend(&head);
                        model.extend(&tail[..t]);
                    } else {
                        r.commit(h);
                        model.extend(&head[..h]);
                    }
                }
            }
            assert_eq!(r.len(), model.len());
            let (a, b) = r.slices(0, r.len());
            assert!(a.iter().chain(b).eq(model.iter()));
        }
    }

    #[test]
    fn slices_past_end_are_empty() {
        let mut r = RingBuffer::new();
        r.push(b"abc", 10);
        assert_eq!(r.slices(3, 5), (&[][..], &[][..]));
        assert_eq!(r.slices(1, 100).0, b"bc");
    }
}
