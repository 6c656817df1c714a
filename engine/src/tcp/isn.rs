//! Initial sequence numbers per RFC 6528 and the per-connection timestamp offset.
//!
//! Owns the secret key. ISN = M + F(localip, localport, remoteip, remoteport, secretkey)
//! where M is a 4-microsecond clock taken from the caller's `now` and F is SipHash-2-4.
//! The timestamp offset (RFC 7323 §5.4, Appendix ... "randomized" clocks) is a second hash
//! of the 4-tuple, so a listener can recompute it for a SYN cookie. No clock, no RNG: the
//! key comes from the caller, who draws it once from a seeded or system RNG.
use core::hash::Hasher;

use super::seq::SeqNumber;
use super::siphash::{SipHasher24, SipKey};
use crate::flow::FourTuple;
use crate::time::Instant;

/// What a new connection needs that must not be guessable: its ISN and the offset of its
/// timestamp clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionSeed {
    pub iss: SeqNumber,
    pub ts_offset: u32,
}

/// The keyed generator of RFC 6528 ISNs.
#[derive(Debug, Clone)]
pub struct IsnGenerator {
    key: SipKey,
}

pub(crate) fn hash_tuple(key: &SipKey, domain: u8, tuple: &FourTuple, extra: &[u8]) -> u64 {
    let mut h = SipHasher24::new(key);
    h.write(&[domain]);
    h.write(&tuple.local.ip().octets());
    h.write(&tuple.local.port().to_be_bytes());
    h.write(&tuple.remote.ip().octets());
    h.write(&tuple.remote.port().to_be_bytes());
    h.write(extra);
    h.finish64()
}

impl IsnGenerator {
    pub fn new(key: SipKey) -> Self {
        IsnGenerator { key }
    }

    /// RFC 6528 §3: ISN = M + F(4-tuple, secret), M a timer ticking every 4 µs.
    pub fn isn(&self, now: Instant, tuple: &FourTuple) -> SeqNumber {
        let m = (now.as_micros() / 4) as u32;
        let f = hash_tuple(&self.key, 0x01, tuple, &[]) as u32;
        SeqNumber(m.wrapping_add(f))
    }

    /// The connection's timestamp clock offset: fixed for a 4-tuple under this key.
    pub fn ts_offset(&self, tuple: &FourTuple) -> u32 {
        hash_tuple(&self.key, 0x02, tuple, &[]) as u32
    }

    pub fn seed(&self, now: Instant, tuple: &FourTuple) -> ConnectionSeed {
        ConnectionSeed {
            iss: self.isn(now, tuple),
            ts_offset: self.ts_offset(tuple),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, SocketAddrV4};

    fn tuple(port: u16) -> FourTuple {
        FourTuple::new(
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80),
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), port),
        )
    }

    #[test]
    fn isn_advances_with_clock_and_depends_on_tuple_and_key() {
        let g = IsnGenerator::new(SipKey([7; 16]));
        let a = g.isn(Instant::ZERO, &tuple(1000));
        // M ticks every 4 µs.
        assert_eq!(g.isn(Instant::from_micros(400), &tuple(1000)), a + 100);
        assert_ne!(g.isn(Instant::ZERO, &tuple(1001)), a);
        let other = IsnGenerator::new(SipKey([8; 16]));
        assert_ne!(other.isn(Instant::ZERO, &tuple(1000)), a);
        assert_ne!(g.ts_offset(&tuple(1000)), a.0);
        assert_eq!(g.seed(Instant::ZERO, &tuple(1000)).iss, a);
    }
}
