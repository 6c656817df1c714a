//! Flow identity: the 4-tuple that keys connection tables and steers packets to cores.
use core::net::{Ipv4Addr, SocketAddrV4};

/// A TCP flow seen from this end: our address and port, the peer's address and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FourTuple {
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
}

impl FourTuple {
    pub const fn new(local: SocketAddrV4, remote: SocketAddrV4) -> Self {
        FourTuple { local, remote }
    }

    /// The same flow seen from the other end.
    pub const fn reversed(self) -> Self {
        FourTuple {
            local: self.remote,
            remote: self.local,
        }
    }

    /// The 12 bytes that identify the flow, in network order: local address and port,
    /// remote address and port. What every keyed hash of a flow reads.
    pub fn to_bytes(&self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[..4].copy_from_slice(&self.local.ip().octets());
        b[4..6].copy_from_slice(&self.local.port().to_be_bytes());
        b[6..10].copy_from_slice(&self.remote.ip().octets());
        b[10..].copy_from_slice(&self.remote.port().to_be_bytes());
        b
    }

    pub fn local_ip(&self) -> Ipv4Addr {
        *self.local.ip()
    }

    pub fn remote_ip(&self) -> Ipv4Addr {
        *self.remote.ip()
    }
}

/// Hashed as its 12 bytes in one write: a streaming keyed hasher (the listener's map of
/// half-open connections) then compresses whole words instead of four small pieces.
impl core::hash::Hash for FourTuple {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        state.write(&self.to_bytes());
    }
}

impl core::fmt::Display for FourTuple {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} <-> {}", self.local, self.remote)
    }
}
