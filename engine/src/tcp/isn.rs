//! Initial sequence numbers per RFC 6528 and the per-connection timestamp offset.
//!
//! Owns the secret key. ISN = M + F(localip, localport, remoteip, remoteport, secretkey)
//! where M is a 4-microsecond clock taken from the caller's `now` and F is SipHash-2-4.
//! The timestamp offset (RFC 7323 §5.4, Appendix ... "randomized" clocks) is a second hash
//! of the 4-tuple, so a listener can recompute it for a SYN cookie. No clock, no RNG: the
//! key comes from the caller, who draws it once from a seeded or system RNG.
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

/// Most bytes [`hash_tuple`] takes after the 4-tuple.
pub(crate) const MAX_EXTRA: usize = 16;

/// SipHash-2-4 under `key` of `domain`, the 4-tuple's 12 bytes and `extra` (at most
/// [`MAX_EXTRA`] bytes; more are ignored), in one call on a buffer of the stack.
pub(crate) fn hash_tuple(key: &SipKey, domain: u8, tuple: &FourTuple, extra: &[u8]) -> u64 {
    let extra = &extra[..extra.len().min(MAX_EXTRA)];
    let mut msg = [0u8; 13 + MAX_EXTRA];
    msg[0] = domain;
    msg[1..13].copy_from_slice(&tuple.to_bytes());
    msg[13..13 + extra.len()].copy_from_slice(extra);
    SipHasher24::hash(key, &msg[..13 + extra.len()])
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

    #[test]
    fn the_tuple_hash_is_siphash_2_4_of_the_domain_the_tuple_and_the_extra_bytes() {
        use core::hash::Hasher;
        let key = SipKey(core::array::from_fn(|i| (i * 7) as u8));
        let tuple = FourTuple::new(
            "10.0.0.1:80".parse().unwrap(),
            "10.0.0.2:40000".parse().unwrap(),
        );
        let mut h = SipHasher24::new(&key);
        h.write(&[0x03]);
        h.write(&[10, 0, 0, 1, 0, 80, 10, 0, 0, 2, 0x9c, 0x40]);
        h.write(&[1, 2, 3]);
        assert_eq!(hash_tuple(&key, 0x03, &tuple, &[1, 2, 3]), h.finish());
        // Another domain is another hash.
        assert_ne!(
            hash_tuple(&key, 0x01, &tuple, &[]),
            hash_tuple(&key, 0x02, &tuple, &[])
        );
    }
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
