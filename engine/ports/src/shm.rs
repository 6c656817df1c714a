//! The state channel's same-host link: lock-free shared-memory lanes between two engine
//! processes (DESIGN.md §4.4), implementing [`engine::poll::Lane`].
//!
//! Why our own ring rather than a `net_memif` port: the channel is a byte stream per
//! core pair, which a pair of single-producer single-consumer rings carries with one
//! copy each way and no packet framing, segmentation or second DPDK port per engine to
//! configure; memif would need the engine to run TCP (or its own framing and
//! retransmission-free delivery) over a second port. The ring is the same lock-free
//! design memif uses inside (head and tail indices owned by one side each, acquire and
//! release ordering), without the descriptor layer.
//!
//! One file (under `/dev/shm`, a tmpfs) joins two engines; both map it whole. It holds
//! [`LANES`] lanes: lane `(side, core)` is opened by core `core` of the engine on `side`
//! (side 0 is the engine whose name sorts first) and served on the other engine by core
//! `core % cores`. A lane has one ring per direction ([`RING_BYTES`] each) and a
//! handshake of two words: the opener publishes a fresh nonzero `epoch` after resetting
//! the indices it owns; the acceptor, seeing an epoch it has not served, resets the
//! indices it owns and publishes it back as `ack`; the stream is up once the opener sees
//! its epoch acknowledged. Either end ends a stream: the opener by a new epoch (or 0 when
//! it stops), the acceptor by an `ack` of 0 (and it will not rejoin that epoch), which
//! makes the opener offer a new one. A process that dies leaves its lanes as they were;
//! the channel's heartbeats find it silent, reset the lane, and the next process joins
//! the stream the reset started. Whatever a ring holds is checked by the channel's MACs:
//! a corrupt or hostile writer can stall a lane, never inject.
//!
//! May not: block, or trust an index it reads (every one is bounds-checked).
#![allow(unsafe_code)]

use core::sync::atomic::{AtomicU64, Ordering};
use std::ffi::CString;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use engine::poll::{Lane, LaneState};

/// Cores per engine a link file serves.
pub const MAX_CORES: usize = 16;
/// Lanes in one file: one per core of each side.
pub const LANES: usize = 2 * MAX_CORES;
/// Bytes of one direction's ring.
pub const RING_BYTES: usize = 1 << 20;
const MAGIC: [u8; 8] = *b"MGSHM001";
const HEADER_BYTES: usize = 4096;
/// A lane's control page, then its two rings.
const CTL_BYTES: usize = 4096;
const LANE_BYTES: usize = CTL_BYTES + 2 * RING_BYTES;
/// The file's size.
pub const FILE_BYTES: usize = HEADER_BYTES + LANES * LANE_BYTES;

// Offsets in a lane's control page: each word on its own cache line (written by one side).
const EPOCH: usize = 0; // opener
const ACK: usize = 64; // acceptor
const D0_HEAD: usize = 128; // opener writes ring 0 (opener -> acceptor)
const D0_TAIL: usize = 192; // acceptor reads it
const D1_HEAD: usize = 256; // acceptor writes ring 1 (acceptor -> opener)
const D1_TAIL: usize = 320; // opener reads it

/// Why a link file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ShmError {
    #[error("{path}: {what}: {err}")]
    Os {
        path: PathBuf,
        what: &'static str,
        err: std::io::Error,
    },
    #[error("{path}: not a migratory shared-memory link of this version ({why})")]
    Foreign { path: PathBuf, why: String },
    #[error("a shared-memory link serves engines of up to {MAX_CORES} cores, not {0}")]
    TooManyCores(usize),
    #[error("both engines are called {0:?}: a shared-memory link joins two different names")]
    SameName(String),
}

/// A mapped link file.
struct Mapping {
    base: *mut u8,
    path: PathBuf,
}

// The mapping is shared memory accessed only through atomics and bounds-checked copies.
unsafe impl Send for Mapping {}
unsafe impl Sync for Mapping {}

impl Drop for Mapping {
    fn drop(&mut self) {
        unsafe {
            libc::munmap(self.base.cast(), FILE_BYTES);
        }
    }
}

impl Mapping {
    fn word(&self, offset: usize) -> &AtomicU64 {
        debug_assert!(offset.is_multiple_of(8) && offset + 8 <= FILE_BYTES);
        // In bounds and 8-aligned (the mapping is page-aligned); AtomicU64 has the layout
        // of u64, and every access to these words, from either process, is atomic.
        unsafe { &*(self.base.add(offset).cast::<AtomicU64>()) }
    }
}

/// A shared-memory link file, mapped. See the module documentation.
#[derive(Clone)]
pub struct ShmLink {
    map: Arc<Mapping>,
}

impl fmt::Debug for ShmLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShmLink")
            .field("path", &self.map.path)
            .finish()
    }
}

fn os(path: &Path, what: &'static str) -> ShmError {
    ShmError::Os {
        path: path.to_owned(),
        what,
        err: std::io::Error::last_os_error(),
    }
}

impl ShmLink {
    /// Opens (creating it, mode 0600, if missing) and maps the link file at `path`.
    pub fn open(path: &Path) -> Result<ShmLink, ShmError> {
        let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| ShmError::Foreign {
            path: path.to_owned(),
            why: "a NUL in the path".into(),
        })?;
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDWR | libc::O_CREAT | libc::O_CLOEXEC,
                0o600,
            )
        };
        if fd < 0 {
            return Err(os(path, "cannot open"));
        }
        let result = Self::map_fd(fd, path);
        unsafe { libc::close(fd) };
        result
    }

    fn map_fd(fd: libc::c_int, path: &Path) -> Result<ShmLink, ShmError> {
        // One engine at a time sizes and stamps a new file.
        if unsafe { libc::flock(fd, libc::LOCK_EX) } != 0 {
            return Err(os(path, "cannot lock"));
        }
        let mut st: libc::stat = unsafe { core::mem::zeroed() };
        if unsafe { libc::fstat(fd, &mut st) } != 0 {
            return Err(os(path, "cannot stat"));
        }
        let fresh = st.st_size == 0;
        if fresh {
            if unsafe { libc::ftruncate(fd, FILE_BYTES as libc::off_t) } != 0 {
                return Err(os(path, "cannot size"));
            }
        } else if st.st_size as usize != FILE_BYTES {
            return Err(ShmError::Foreign {
                path: path.to_owned(),
                why: format!("{} bytes, expected {FILE_BYTES}", st.st_size),
            });
        }
        let base = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                FILE_BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(os(path, "cannot map"));
        }
        let map = Mapping {
            base: base.cast(),
            path: path.to_owned(),
        };
        let magic = unsafe { core::slice::from_raw_parts_mut(map.base, MAGIC.len()) };
        if fresh {
            magic.copy_from_slice(&MAGIC);
        } else if magic != MAGIC {
            return Err(ShmError::Foreign {
                path: path.to_owned(),
                why: "bad magic".into(),
            });
        }
        unsafe { libc::flock(fd, libc::LOCK_UN) };
        Ok(ShmLink { map: Arc::new(map) })
    }

    /// The lanes core `core` (of `cores`) of engine `me` serves towards engine `peer`:
    /// the one it opens, and those the peer's cores open that it accepts.
    pub fn lanes(
        &self,
        me: &str,
        peer: &str,
        core: usize,
        cores: usize,
        seed: u64,
    ) -> Result<Vec<ShmLane>, ShmError> {
        if cores == 0 || cores > MAX_CORES {
            return Err(ShmError::TooManyCores(cores));
        }
        if me == peer {
            return Err(ShmError::SameName(me.to_owned()));
        }
        let side = usize::from(me > peer);
        let mut lanes = vec![ShmLane::opener(self.clone(), side * MAX_CORES + core, seed)];
        for c in (core..MAX_CORES).step_by(cores) {
            lanes.push(ShmLane::acceptor(self.clone(), (1 - side) * MAX_CORES + c));
        }
        Ok(lanes)
    }
}

/// One end of a lane. See the module documentation.
pub struct ShmLane {
    link: ShmLink,
    lane: usize,
    opener: bool,
    /// Opener: the epoch offered (0: none). Acceptor: the epoch joined (0: none).
    epoch: u64,
    /// Opener: whether the acceptor acknowledged `epoch`.
    up: bool,
    /// Acceptor: an epoch it left and will not rejoin.
    left: u64,
    /// This end's copies of the indices it owns.
    head: u64,
    tail: u64,
    /// Feeds fresh epochs.
    next_epoch: u64,
}

impl fmt::Debug for ShmLane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShmLane")
            .field("lane", &self.lane)
            .field("opener", &self.opener)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl ShmLane {
    fn opener(link: ShmLink, lane: usize, seed: u64) -> ShmLane {
        let mut l = ShmLane {
            link,
            lane,
            opener: true,
            epoch: 0,
            up: false,
            left: 0,
            head: 0,
            tail: 0,
            next_epoch: seed | 1,
        };
        l.offer();
        l
    }

    fn acceptor(link: ShmLink, lane: usize) -> ShmLane {
        let mut l = ShmLane {
            link,
            lane,
            opener: false,
            epoch: 0,
            up: false,
            left: 0,
            head: 0,
            tail: 0,
            next_epoch: 0,
        };
        // A stream an acceptor before this one (a process that stopped or died) joined
        // is not ours to continue mid-way: ask for a new one. A stream offered and never
        // joined carries nothing yet: join it.
        let epoch = l.word(EPOCH).load(Ordering::Acquire);
        if epoch != 0 && l.word(ACK).load(Ordering::Acquire) == epoch {
            l.left = epoch;
            l.word(ACK).store(0, Ordering::Release);
        }
        l
    }

    fn base(&self) -> usize {
        HEADER_BYTES + self.lane * LANE_BYTES
    }

    fn word(&self, at: usize) -> &AtomicU64 {
        self.link.map.word(self.base() + at)
    }

    /// The ring this end writes, and the one it reads: (head word, tail word, data).
    fn rings(&self) -> ((usize, usize, usize), (usize, usize, usize)) {
        let d0 = (D0_HEAD, D0_TAIL, self.base() + CTL_BYTES);
        let d1 = (D1_HEAD, D1_TAIL, self.base() + CTL_BYTES + RING_BYTES);
        if self.opener {
            (d0, d1)
        } else {
            (d1, d0)
        }
    }

    /// Opener: a new stream.
    fn offer(&mut self) {
        // A fresh nonzero epoch (odd steps of a seeded sequence never repeat soon).
        self.next_epoch = self
            .next_epoch
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.epoch = self.next_epoch | 1;
        self.up = false;
        self.head = 0;
        self.tail = 0;
        let ((wh, _, _), (_, rt, _)) = self.rings();
        self.word(wh).store(0, Ordering::Relaxed);
        self.word(rt).store(0, Ordering::Relaxed);
        self.word(EPOCH).store(self.epoch, Ordering::Release);
    }

    fn is_up(&self) -> bool {
        if self.opener {
            self.up
        } else {
            self.epoch != 0
        }
    }
}

impl Lane for ShmLane {
    fn poll(&mut self) -> LaneState {
        if self.opener {
            let ack = self.word(ACK).load(Ordering::Acquire);
            if !self.up {
                self.up = ack == self.epoch;
            } else if ack != self.epoch {
                // The acceptor left (reset, or a new process): a new stream.
                self.offer();
            }
        } else {
            let epoch = self.word(EPOCH).load(Ordering::Acquire);
            if epoch != self.epoch {
                // The opener offered a new stream, or stopped (0): ours ended.
                self.epoch = 0;
                if epoch != 0 && epoch != self.left {
                    self.head = 0;
                    self.tail = 0;
                    let ((wh, _, _), (_, rt, _)) = self.rings();
                    self.word(wh).store(0, Ordering::Relaxed);
                    self.word(rt).store(0, Ordering::Relaxed);
                    self.epoch = epoch;
                    self.word(ACK).store(epoch, Ordering::Release);
                }
            }
        }
        if self.is_up() {
            LaneState::Up(self.epoch)
        } else {
            LaneState::Down
        }
    }

    fn write(&mut self, bytes: &[u8]) -> usize {
        if !self.is_up() || bytes.is_empty() {
            return 0;
        }
        let ((wh, wt, data), _) = self.rings();
        let tail = self.word(wt).load(Ordering::Acquire);
        let used = self.head.wrapping_sub(tail);
        if used > RING_BYTES as u64 {
            return 0; // indices of a stream being reset: wait for the new one
        }
        let n = bytes.len().min(RING_BYTES - used as usize);
        let at = (self.head % RING_BYTES as u64) as usize;
        let first = n.min(RING_BYTES - at);
        let base = self.link.map.base;
        // Both ranges lie inside this lane's ring (at < RING_BYTES, n - first < at).
        unsafe {
            core::ptr::copy_nonoverlapping(bytes.as_ptr(), base.add(data + at), first);
            core::ptr::copy_nonoverlapping(bytes.as_ptr().add(first), base.add(data), n - first);
        }
        self.head = self.head.wrapping_add(n as u64);
        self.word(wh).store(self.head, Ordering::Release);
        n
    }

    fn read(&mut self, out: &mut Vec<u8>, max: usize) -> usize {
        if !self.is_up() {
            return 0;
        }
        let (_, (rh, rt, data)) = self.rings();
        let head = self.word(rh).load(Ordering::Acquire);
        let avail = head.wrapping_sub(self.tail);
        if avail > RING_BYTES as u64 {
            return 0; // indices of a stream being reset: wait for the new one
        }
        let n = (avail as usize).min(max);
        let at = (self.tail % RING_BYTES as u64) as usize;
        let first = n.min(RING_BYTES - at);
        let base = self.link.map.base;
        out.reserve(n);
        // Both ranges lie inside this lane's ring; `out` has room for n more bytes.
        unsafe {
            let dst = out.as_mut_ptr().add(out.len());
            core::ptr::copy_nonoverlapping(base.add(data + at), dst, first);
            core::ptr::copy_nonoverlapping(base.add(data), dst.add(first), n - first);
            out.set_len(out.len() + n);
        }
        self.tail = self.tail.wrapping_add(n as u64);
        self.word(rt).store(self.tail, Ordering::Release);
        n
    }

    fn reset(&mut self) {
        if self.opener {
            self.offer();
        } else {
            self.left = self.epoch;
            self.epoch = 0;
            self.word(ACK).store(0, Ordering::Release);
        }
    }

    fn opener(&self) -> bool {
        self.opener
    }

    fn describe(&self) -> String {
        format!(
            "{} lane {} ({})",
            self.link.map.path.display(),
            self.lane,
            if self.opener {
                "opened here"
            } else {
                "accepted here"
            }
        )
    }
}

impl Drop for ShmLane {
    /// A stopping engine ends its streams at once (rather than after the peer's
    /// heartbeat timeout).
    fn drop(&mut self) {
        if self.opener {
            self.word(EPOCH).store(0, Ordering::Release);
        } else if self.epoch != 0 {
            self.word(ACK).store(0, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh link file path (removed when dropped).
    struct TempFile(PathBuf);
    impl TempFile {
        fn new(tag: &str) -> TempFile {
            let p = std::env::temp_dir().join(format!(
                "migratory-shm-test-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_file(&p);
            TempFile(p)
        }
    }
    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// Engine a's and engine b's one-core lanes over one file, each mapped on its own as
    /// two processes would: (a opens, b accepts it) and (b opens, a accepts it).
    fn pair(file: &TempFile) -> (ShmLane, ShmLane, ShmLane, ShmLane) {
        let la = ShmLink::open(&file.0).expect("a maps");
        let lb = ShmLink::open(&file.0).expect("b maps");
        let mut a = la.lanes("a", "b", 0, 1, 1).expect("a's lanes");
        let mut b = lb.lanes("b", "a", 0, 1, 2).expect("b's lanes");
        assert_eq!(
            a.len(),
            1 + MAX_CORES,
            "one lane opened, one accepted per peer core"
        );
        let b_accepts = b.remove(1);
        let b_opens = b.remove(0);
        let a_accepts = a.remove(1);
        let a_opens = a.remove(0);
        (a_opens, b_accepts, b_opens, a_accepts)
    }

    fn up(x: &mut ShmLane, y: &mut ShmLane) -> u64 {
        for _ in 0..4 {
            if let (LaneState::Up(g), LaneState::Up(h)) = (x.poll(), y.poll()) {
                assert_eq!(g, h, "both ends in one stream");
                return g;
            }
        }
        panic!("the lane did not come up: {x:?} {y:?}");
    }

    #[test]
    fn lanes_carry_bytes_both_ways_across_the_ring_end() {
        let f = TempFile::new("bytes");
        let (mut a, mut b, mut b2, mut a2) = pair(&f);
        up(&mut a, &mut b);
        up(&mut b2, &mut a2);
        // More than the ring holds, in odd pieces: wraps, fills, drains.
        let data: Vec<u8> = (0..3 * RING_BYTES + 12345)
            .map(|i| (i * 7 + i / 251) as u8)
            .collect();
        let (mut sent, mut got) = (0, Vec::new());
        while got.len() < data.len() {
            sent += a.write(&data[sent..(sent + 99_991).min(data.len())]);
            b.read(&mut got, 77_777);
            assert!(sent <= data.len());
        }
        assert_eq!(got, data);
        assert_eq!(b.write(b"answer"), 6);
        let mut back = Vec::new();
        a.read(&mut back, 100);
        assert_eq!(back, b"answer");
        // The other lane is independent.
        assert_eq!(a2.write(b"x"), 1);
        let mut other = Vec::new();
        b2.read(&mut other, 10);
        assert_eq!(other, b"x");
    }

    #[test]
    fn a_full_ring_takes_nothing_more_until_read() {
        let f = TempFile::new("full");
        let (mut a, mut b, _, _) = pair(&f);
        up(&mut a, &mut b);
        let big = vec![1u8; RING_BYTES + 10];
        assert_eq!(a.write(&big), RING_BYTES);
        assert_eq!(a.write(b"more"), 0);
        let mut got = Vec::new();
        assert_eq!(b.read(&mut got, 10), 10);
        assert_eq!(a.write(b"more"), 4);
    }

    #[test]
    fn either_end_resetting_starts_a_new_stream_with_nothing_of_the_old() {
        let f = TempFile::new("reset");
        let (mut a, mut b, _, _) = pair(&f);
        let g1 = up(&mut a, &mut b);
        a.write(b"old bytes");
        // The acceptor resets (bad input): the opener offers a new stream.
        b.reset();
        assert_eq!(b.poll(), LaneState::Down);
        let g2 = up(&mut a, &mut b);
        assert_ne!(g1, g2);
        let mut got = Vec::new();
        assert_eq!(b.read(&mut got, 100), 0, "the old stream's bytes are gone");
        // The opener resets: a new stream again.
        b.write(b"stale");
        a.reset();
        let g3 = up(&mut a, &mut b);
        assert_ne!(g2, g3);
        assert_eq!(a.read(&mut got, 100), 0);
        a.write(b"fresh");
        b.read(&mut got, 100);
        assert_eq!(got, b"fresh");
    }

    #[test]
    fn a_restarted_engine_gets_a_new_stream_and_a_stopped_one_ends_it() {
        let f = TempFile::new("restart");
        let (mut a, mut b, _, _) = pair(&f);
        let g1 = up(&mut a, &mut b);
        a.write(b"in flight");
        // b's process goes away and a new one maps the file: it does not continue the
        // old stream mid-way; the opener sees it left and offers a new one.
        drop(b);
        let lb = ShmLink::open(&f.0).expect("maps again");
        let mut b = lb.lanes("b", "a", 0, 1, 9).expect("lanes").remove(1);
        let g2 = up(&mut a, &mut b);
        assert_ne!(g1, g2);
        let mut got = Vec::new();
        assert_eq!(b.read(&mut got, 100), 0);
        // a stops: b's stream ends at once.
        drop(a);
        assert_eq!(b.poll(), LaneState::Down);
    }

    #[test]
    fn a_stream_offered_before_the_acceptor_started_is_joined() {
        let f = TempFile::new("early");
        let la = ShmLink::open(&f.0).expect("maps");
        let mut a = la.lanes("a", "b", 0, 1, 1).expect("lanes").remove(0);
        assert_eq!(a.poll(), LaneState::Down);
        let lb = ShmLink::open(&f.0).expect("maps");
        let mut b = lb.lanes("b", "a", 0, 1, 2).expect("lanes").remove(1);
        up(&mut a, &mut b);
    }

    #[test]
    fn cores_accept_the_lanes_of_the_peers_cores_modulo_their_count() {
        let f = TempFile::new("cores");
        let l = ShmLink::open(&f.0).expect("maps");
        // Engine b has 3 cores: its core 1 accepts lanes of a's cores 1, 4, 7, ...
        let lanes = l.lanes("b", "a", 1, 3, 1).expect("lanes");
        let accepted: Vec<usize> = lanes[1..].iter().map(|x| x.lane).collect();
        assert_eq!(accepted, (1..MAX_CORES).step_by(3).collect::<Vec<_>>());
        assert_eq!(lanes[0].lane, MAX_CORES + 1, "b sorts second: side 1");
        assert!(matches!(
            l.lanes("b", "a", 0, MAX_CORES + 1, 1),
            Err(ShmError::TooManyCores(_))
        ));
        assert!(matches!(
            l.lanes("a", "a", 0, 1, 1),
            Err(ShmError::SameName(_))
        ));
    }

    #[test]
    fn a_file_that_is_not_a_link_is_refused() {
        let f = TempFile::new("foreign");
        std::fs::write(&f.0, b"some other file").unwrap();
        let e = ShmLink::open(&f.0).expect_err("refused");
        assert!(
            e.to_string().contains("not a migratory shared-memory link"),
            "{e}"
        );
        std::fs::write(&f.0, vec![0u8; FILE_BYTES]).unwrap();
        let e = ShmLink::open(&f.0).expect_err("refused");
        assert!(e.to_string().contains("bad magic"), "{e}");
        let e = ShmLink::open(Path::new("/nonexistent-dir/x")).expect_err("refused");
        assert!(e.to_string().contains("cannot open"), "{e}");
    }

    #[test]
    fn two_threads_stream_through_a_lane_in_order() {
        let f = TempFile::new("threads");
        let (mut a, mut b, _, _) = pair(&f);
        up(&mut a, &mut b);
        const TOTAL: usize = 16 << 20;
        let writer = std::thread::spawn(move || {
            let mut sent = 0usize;
            let mut chunk = vec![0u8; 65_537];
            while sent < TOTAL {
                let n = chunk.len().min(TOTAL - sent);
                for (i, x) in chunk[..n].iter_mut().enumerate() {
                    *x = ((sent + i) % 251) as u8;
                }
                let mut off = 0;
                while off < n {
                    off += a.write(&chunk[off..n]);
                    std::hint::spin_loop();
                }
                sent += n;
            }
            a
        });
        let mut got = Vec::with_capacity(1 << 20);
        let mut seen = 0usize;
        while seen < TOTAL {
            got.clear();
            b.read(&mut got, 1 << 20);
            for (i, &x) in got.iter().enumerate() {
                assert_eq!(x, ((seen + i) % 251) as u8, "byte {}", seen + i);
            }
            seen += got.len();
        }
        let _a = writer.join().expect("writer");
    }
}
