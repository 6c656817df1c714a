//! Zero-copy packet views and their meanings (Reprs), one file per protocol.
//!
//! A view (`Packet<T: AsRef<[u8]>>`) wraps bytes; its `new_checked` validates lengths once
//! so that no accessor can panic afterwards. A `Repr` holds the meaning, borrows the
//! payload, and is `parse`d from and `emit`ted into a view. Nothing here allocates.
pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmpv4;
pub mod ipv4;
pub mod tcp;

pub use checksum::{ChecksumCaps, Offload};
pub use core::net::Ipv4Addr;
pub use ethernet::{EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr};

/// Why bytes were not accepted as a packet. Small and `Copy`: it is counted on the data
/// path, never formatted there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    /// Shorter than its header or than a length field says.
    #[error("truncated packet")]
    Truncated,
    /// A field holds a value the format forbids.
    #[error("malformed packet")]
    Malformed,
    /// The checksum does not match.
    #[error("bad checksum")]
    Checksum,
    /// Well formed but a feature we drop on purpose (IPv4 options, fragments, ...).
    #[error("unsupported packet feature")]
    Unsupported,
}

pub type Result<T> = core::result::Result<T, Error>;
