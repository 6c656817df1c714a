//! Flow identity: the 4-tuple that keys connection tables and steers packets to cores.
use core::net::{Ipv4Addr, SocketAddrV4};

/// A TCP flow seen from this end: our address and port, the peer's address and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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

    pub fn local_ip(&self) -> Ipv4Addr {
        *self.local.ip()
    }

    pub fn remote_ip(&self) -> Ipv4Addr {
        *self.remote.ip()
    }
}

impl core::fmt::Display for FourTuple {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} <-> {}", self.local, self.remote)
    }
}
