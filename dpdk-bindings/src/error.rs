//! `DpdkError`: a DPDK failure with the operation that failed and its errno.
use std::ffi::CStr;

use crate::ffi;

/// A failed DPDK call: which operation, and the (positive) errno DPDK reported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpdkError {
    /// A DPDK function failed with an errno (from its return value or `rte_errno`).
    #[error("{op}: {} (errno {errno})", strerror(*.errno))]
    Call { op: &'static str, errno: i32 },
    /// EAL was already initialised in this process; DPDK allows it once.
    #[error("EAL is already initialised in this process (DPDK allows one init per process)")]
    AlreadyInitialised,
    /// The EAL arguments are unsafe to use on a shared machine.
    #[error("EAL arguments need --file-prefix=NAME or --in-memory: other DPDK processes on this machine use the default prefix")]
    NoFilePrefix,
    /// An argument could not be passed to C (interior NUL byte).
    #[error("EAL argument contains a NUL byte: {0:?}")]
    BadArgument(String),
    /// No port has this name.
    #[error("no DPDK port named {0:?}")]
    NoSuchPort(String),
    /// The mempool has no free mbuf.
    #[error("mempool exhausted")]
    PoolExhausted,
}

pub type Result<T> = std::result::Result<T, DpdkError>;

/// DPDK's text for an errno, including its own codes above `__ELASTERROR`.
pub fn strerror(errno: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a static or thread-local NUL-terminated
    // buffer that stays valid until the next call on this thread; we copy it at once.
    unsafe { CStr::from_ptr(ffi::rte_strerror(errno)) }
        .to_string_lossy()
        .into_owned()
}

/// The calling thread's `rte_errno`.
pub fn rte_errno() -> i32 {
    // SAFETY: reads a thread-local integer.
    unsafe { ffi::mgr_errno() }
}

impl DpdkError {
    /// An error from a call that returned a negative errno.
    pub fn from_ret(op: &'static str, ret: i32) -> DpdkError {
        DpdkError::Call {
            op,
            errno: ret.abs(),
        }
    }

    /// An error from a call that signals failure and sets `rte_errno`.
    pub fn from_rte_errno(op: &'static str) -> DpdkError {
        DpdkError::Call {
            op,
            errno: rte_errno(),
        }
    }

    /// The errno, when the failure came from DPDK.
    pub fn errno(&self) -> Option<i32> {
        match self {
            DpdkError::Call { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

/// Maps a DPDK return code (0 or positive = success, negative errno = failure).
pub(crate) fn check(op: &'static str, ret: i32) -> Result<i32> {
    if ret < 0 {
        Err(DpdkError::from_ret(op, ret))
    } else {
        Ok(ret)
    }
}
