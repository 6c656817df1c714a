//! The Rust view of `struct rte_mbuf` must match C's: the safe layer reads `data_off`,
//! `data_len`, `pkt_len`, `buf_len` and `buf_addr` directly on the fast path.
use std::mem::{align_of, offset_of, size_of};

use dpdk_sys::ffi;

#[test]
fn rte_mbuf_layout_matches_c() {
    let mut c = ffi::mgr_mbuf_layout::default();
    // SAFETY: the shim only writes sizeof/offsetof values into `c`.
    unsafe { ffi::mgr_mbuf_layout(&mut c) };
    assert_eq!(
        size_of::<ffi::rte_mbuf>(),
        c.size,
        "sizeof(struct rte_mbuf)"
    );
    assert_eq!(
        align_of::<ffi::rte_mbuf>(),
        c.align,
        "alignof(struct rte_mbuf)"
    );
    assert_eq!(offset_of!(ffi::rte_mbuf, buf_addr), c.buf_addr, "buf_addr");
    assert_eq!(offset_of!(ffi::rte_mbuf, data_off), c.data_off, "data_off");
    assert_eq!(offset_of!(ffi::rte_mbuf, refcnt), c.refcnt, "refcnt");
    assert_eq!(offset_of!(ffi::rte_mbuf, nb_segs), c.nb_segs, "nb_segs");
    assert_eq!(offset_of!(ffi::rte_mbuf, port), c.port, "port");
    assert_eq!(offset_of!(ffi::rte_mbuf, ol_flags), c.ol_flags, "ol_flags");
    assert_eq!(offset_of!(ffi::rte_mbuf, pkt_len), c.pkt_len, "pkt_len");
    assert_eq!(offset_of!(ffi::rte_mbuf, data_len), c.data_len, "data_len");
    assert_eq!(offset_of!(ffi::rte_mbuf, vlan_tci), c.vlan_tci, "vlan_tci");
    assert_eq!(offset_of!(ffi::rte_mbuf, buf_len), c.buf_len, "buf_len");
    assert_eq!(offset_of!(ffi::rte_mbuf, pool), c.pool, "pool");
    assert_eq!(offset_of!(ffi::rte_mbuf, next), c.next, "next");
    // Two cache lines on x86_64, as DPDK documents.
    assert_eq!(c.size, 128);
}
