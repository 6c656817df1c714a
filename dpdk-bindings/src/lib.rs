//! Bindings to the system DPDK and one safe layer above them.
//!
//! [`ffi`] is bindgen's output over DPDK's headers plus the `mgr_*` C shim for static
//! inline functions, macros and thread-locals. Everything else in this crate is the safe
//! layer the rest of migratory uses: [`Eal`], [`Mempool`], [`Mbuf`], [`Port`] and
//! [`DpdkError`]. This is the only crate of the project with `unsafe`.
#![warn(missing_debug_implementations)]
#![deny(clippy::undocumented_unsafe_blocks)]

#[allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code,
    clippy::all,
    clippy::undocumented_unsafe_blocks,
    unnecessary_transmutes,
    rustdoc::all,
    missing_debug_implementations
)]
pub mod ffi {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

mod eal;
mod error;
mod mbuf;
mod port;

pub use eal::{Eal, EalArgs, Lcore};
pub use error::{DpdkError, Result};
pub use mbuf::{Mbuf, Mempool};
pub use port::{LinkStatus, MbufOwner, Port, PortConfig, PortInfo, PortStats, MAX_BURST};

/// The DPDK version string of the linked library, e.g. "DPDK 22.11.11".
pub fn version() -> String {
    // SAFETY: rte_version returns a pointer to a static NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(ffi::mgr_version()) }
        .to_string_lossy()
        .into_owned()
}

/// The TSC counter of this core.
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: reads the time-stamp counter; no memory is touched.
    unsafe { ffi::mgr_rdtsc() }
}

/// The calling thread's lcore id, or `None` for a thread EAL did not create.
pub fn lcore_id() -> Option<u32> {
    // SAFETY: reads a thread-local set by EAL (LCORE_ID_ANY for foreign threads).
    let id = unsafe { ffi::mgr_lcore_id() };
    (id != u32::MAX).then_some(id)
}
