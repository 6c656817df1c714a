//! The keyed hash of the TCP layer: SipHash-2-4 behind RFC 6528 ISNs, SYN cookies and the
//! listener's seeded map of half-open connections (whose keys the peers choose).
//!
//! The implementation lives in [`crate::hash`] (one SipHash for the whole engine, with
//! the connection table's SipHash-1-3); this module names what TCP uses of it.
pub use crate::hash::{SipBuildHasher, SipHasher24, SipKey};
