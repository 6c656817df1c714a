//! `Mempool` and `Mbuf`: packet buffers with ownership in the type.
//!
//! An `Mbuf` owns one single-segment DPDK mbuf: dropping it frees it, handing it to a
//! transmit burst gives it away (the port layer calls [`Mbuf::into_raw`] only for the
//! mbufs the device took). The engine never sees a raw pointer.
use std::ffi::CString;
use std::ptr::NonNull;

use crate::error::{DpdkError, Result};
use crate::ffi;

/// A pool of packet buffers (`rte_pktmbuf_pool_create`). A cheap, copyable handle: pools
/// live until EAL cleanup, as DPDK applications usually keep them.
#[derive(Debug, Clone, Copy)]
pub struct Mempool {
    raw: NonNull<ffi::rte_mempool>,
}

// SAFETY: DPDK mempools are safe to use from any thread (per-lcore caches are indexed by
// the calling thread's lcore id, and the ring underneath is multi-producer/consumer).
unsafe impl Send for Mempool {}
// SAFETY: as above; the handle is immutable.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// The default data room: headroom plus a 2 KiB buffer, enough for a 1500-byte MTU.
    pub const DEFAULT_DATA_ROOM: u16 = (ffi::RTE_MBUF_DEFAULT_BUF_SIZE) as u16;

    /// Creates a packet pool of `n` mbufs with a per-lcore cache of `cache` and `data_room`
    /// bytes per buffer (headroom included), on NUMA socket `socket` (-1: any).
    pub fn new(name: &str, n: u32, cache: u32, data_room: u16, socket: i32) -> Result<Mempool> {
        let cname = CString::new(name).map_err(|_| DpdkError::BadArgument(name.to_owned()))?;
        // SAFETY: cname is a valid C string for the duration of the call; EAL must be
        // initialised, which holds for any caller that got here through `Eal::init`
        // (otherwise DPDK fails with an errno, it does not crash).
        let raw = unsafe {
            ffi::rte_pktmbuf_pool_create(cname.as_ptr(), n, cache.min(512), 0, data_room, socket)
        };
        NonNull::new(raw)
            .map(|raw| Mempool { raw })
            .ok_or_else(|| DpdkError::from_rte_errno("rte_pktmbuf_pool_create"))
    }

    /// A fresh mbuf with length 0, or `None` when the pool is empty.
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool pointer is valid for the process lifetime.
        let m = unsafe { ffi::mgr_pktmbuf_alloc(self.raw.as_ptr()) };
        NonNull::new(m).map(|raw| Mbuf { raw })
    }

    /// Mbufs currently available in the pool (including per-lcore caches).
    pub fn available(&self) -> u32 {
        // SAFETY: valid pool; read-only counters.
        unsafe { ffi::mgr_mempool_avail(self.raw.as_ptr()) }
    }

    /// Mbufs currently allocated from the pool.
    pub fn in_use(&self) -> u32 {
        // SAFETY: valid pool; read-only counters.
        unsafe { ffi::mgr_mempool_in_use(self.raw.as_ptr()) }
    }

    pub(crate) fn as_ptr(&self) -> *mut ffi::rte_mempool {
        self.raw.as_ptr()
    }
}

/// One owned, single-segment packet buffer.
#[derive(Debug)]
pub struct Mbuf {
    raw: NonNull<ffi::rte_mbuf>,
}

// SAFETY: an Mbuf is uniquely owned; moving it to another thread moves that ownership
// (freeing from any thread returns it to its pool, which is thread-safe).
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `raw` must be a valid, single-segment mbuf that nothing else owns or frees.
    #[inline]
    pub unsafe fn from_raw(raw: NonNull<ffi::rte_mbuf>) -> Mbuf {
        Mbuf { raw }
    }

    /// Gives up ownership without freeing (the receiver, e.g. a tx queue, frees it).
    #[inline]
    pub fn into_raw(self) -> NonNull<ffi::rte_mbuf> {
        let raw = self.raw;
        std::mem::forget(self);
        raw
    }

    #[inline]
    fn m(&self) -> &ffi::rte_mbuf {
        // SAFETY: we own a valid mbuf for our whole lifetime.
        unsafe { self.raw.as_ref() }
    }

    #[inline]
    fn m_mut(&mut self) -> &mut ffi::rte_mbuf {
        // SAFETY: we own a valid mbuf uniquely.
        unsafe { self.raw.as_mut() }
    }

    /// The data length of this (single) segment.
    #[inline]
    pub fn len(&self) -> usize {
        usize::from(self.m().data_len)
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most bytes the data may hold from its current start.
    #[inline]
    pub fn capacity(&self) -> usize {
        let m = self.m();
        usize::from(m.buf_len).saturating_sub(usize::from(m.data_off))
    }

    /// The packet bytes.
    #[inline]
    pub fn data(&self) -> &[u8] {
        let m = self.m();
        // SAFETY: buf_addr + data_off .. + data_len lies inside the mbuf's buffer (DPDK's
        // invariant, kept by set_len), and we own the mbuf, so nothing writes it meanwhile.
        unsafe {
            std::slice::from_raw_parts(
                (m.buf_addr as *const u8).add(usize::from(m.data_off)),
                usize::from(m.data_len),
            )
        }
    }

    /// The packet bytes, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let m = self.m();
        let (addr, off, len) = (m.buf_addr as *mut u8, m.data_off, m.data_len);
        // SAFETY: as in `data`, and we hold the only reference (a refcount of 1 is the
        // norm for received and freshly allocated mbufs; we never clone mbufs).
        unsafe { std::slice::from_raw_parts_mut(addr.add(usize::from(off)), usize::from(len)) }
    }

    /// Sets the data length (single segment). Returns false if `len` exceeds capacity.
    #[inline]
    pub fn set_len(&mut self, len: usize) -> bool {
        if len > self.capacity() {
            return false;
        }
        let m = self.m_mut();
        m.data_len = len as u16;
        m.pkt_len = len as u32;
        true
    }

    /// The receive port the mbuf came from.
    pub fn port(&self) -> u16 {
        self.m().port
    }

    /// Offload flags (`RTE_MBUF_F_*`).
    pub fn ol_flags(&self) -> u64 {
        self.m().ol_flags
    }

    /// Sets offload flags and header lengths for checksum offload on transmit.
    pub fn set_tx_offload(&mut self, flags: u64, l2_len: u8, l3_len: u16) {
        let m = self.m_mut();
        m.ol_flags |= flags;
        // SAFETY: tx_offload is a plain u64 view of a bitfield union.
        let t = unsafe { &mut m.__bindgen_anon_3.tx_offload };
        *t = u64::from(l2_len) | (u64::from(l3_len) << 7);
    }

    pub(crate) fn as_ptr(&self) -> *mut ffi::rte_mbuf {
        self.raw.as_ptr()
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: we own this mbuf and nothing else references it.
        unsafe { ffi::mgr_pktmbuf_free(self.raw.as_ptr()) }
    }
}
