//! SipHash-c-d (Aumasson and Bernstein, 2012), written from the paper, with the round
//! counts as const generics: SipHash-2-4 for RFC 6528 ISNs and SYN cookies (values a peer
//! sees); SipHash-1-3 for the connection table's hash and the listener's map of
//! half-open connections (on every segment, and only a flooding defence). The one
//! implementation of both.
//!
//! Owns nothing but the hash state: keys come from the caller. Not a MAC for the state
//! channel (that is HMAC-SHA256).
use core::hash::{BuildHasher, Hasher};

/// A 128-bit SipHash key. A secret: never printed.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct SipKey(pub [u8; 16]);

impl core::fmt::Debug for SipKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SipKey(..)")
    }
}

impl SipKey {
    /// The key as the two little-endian words (k0, k1) of the paper.
    pub fn words(&self) -> (u64, u64) {
        let k = self.0;
        (
            u64::from_le_bytes([k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7]]),
            u64::from_le_bytes([k[8], k[9], k[10], k[11], k[12], k[13], k[14], k[15]]),
        )
    }
}

/// The initial state for key (k0, k1): the paper's "somepseudorandomlygeneratedbytes".
fn init(k0: u64, k1: u64) -> [u64; 4] {
    [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ]
}

#[inline(always)]
fn sip_round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13) ^ v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16) ^ v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21) ^ v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17) ^ v[2];
    v[2] = v[2].rotate_left(32);
}

#[inline(always)]
fn compress<const C: usize>(v: &mut [u64; 4], m: u64) {
    v[3] ^= m;
    for _ in 0..C {
        sip_round(v);
    }
    v[0] ^= m;
}

#[inline(always)]
fn finalize<const D: usize>(mut v: [u64; 4]) -> u64 {
    v[2] ^= 0xff;
    for _ in 0..D {
        sip_round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// SipHash-c-d of `msg` under (k0, k1) in one call: little-endian 64-bit words, the last
/// one padded and carrying the length (mod 256) in its top byte.
pub fn siphash<const C: usize, const D: usize>(k0: u64, k1: u64, msg: &[u8]) -> u64 {
    let mut v = init(k0, k1);
    let mut words = msg.chunks_exact(8);
    for word in words.by_ref() {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        compress::<C>(&mut v, u64::from_le_bytes(w));
    }
    let mut last = [0u8; 8];
    let tail = words.remainder();
    last[..tail.len()].copy_from_slice(tail);
    last[7] = msg.len() as u8;
    compress::<C>(&mut v, u64::from_le_bytes(last));
    finalize::<D>(v)
}

/// Streaming SipHash-c-d: [`Hasher::write`] any number of times, then [`Self::finish64`].
#[derive(Debug, Clone)]
pub struct SipHasher<const C: usize, const D: usize> {
    v: [u64; 4],
    tail: u64,
    ntail: usize,
    length: usize,
}

/// SipHash-2-4, the paper's recommended variant.
pub type SipHasher24 = SipHasher<2, 4>;
/// SipHash-1-3, the faster variant for hash tables.
pub type SipHasher13 = SipHasher<1, 3>;

impl<const C: usize, const D: usize> SipHasher<C, D> {
    pub fn new(key: &SipKey) -> Self {
        let (k0, k1) = key.words();
        Self::with_words(k0, k1)
    }

    pub fn with_words(k0: u64, k1: u64) -> Self {
        SipHasher {
            v: init(k0, k1),
            tail: 0,
            ntail: 0,
            length: 0,
        }
    }

    /// The 64-bit hash of everything written so far.
    pub fn finish64(&self) -> u64 {
        let mut v = self.v;
        compress::<C>(&mut v, ((self.length as u64 & 0xff) << 56) | self.tail);
        finalize::<D>(v)
    }

    /// One-shot hash of `data` under `key`.
    pub fn hash(key: &SipKey, data: &[u8]) -> u64 {
        let (k0, k1) = key.words();
        siphash::<C, D>(k0, k1, data)
    }
}

impl<const C: usize, const D: usize> Hasher for SipHasher<C, D> {
    fn write(&mut self, mut bytes: &[u8]) {
        self.length = self.length.wrapping_add(bytes.len());
        // Complete a word left partial by an earlier write first (none: go straight to
        // whole words).
        if self.ntail > 0 {
            while self.ntail < 8 {
                let Some((&b, rest)) = bytes.split_first() else {
                    return;
                };
                self.tail |= u64::from(b) << (8 * self.ntail);
                self.ntail += 1;
                bytes = rest;
            }
            compress::<C>(&mut self.v, self.tail);
            self.tail = 0;
            self.ntail = 0;
        }
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let m = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
            compress::<C>(&mut self.v, m);
        }
        for (i, &b) in words.remainder().iter().enumerate() {
            self.tail |= u64::from(b) << (8 * i);
        }
        self.ntail = words.remainder().len();
    }

    fn finish(&self) -> u64 {
        self.finish64()
    }
}

/// A [`BuildHasher`] of keyed SipHash-1-3, for maps whose keys a peer chooses: the
/// variant Rust's standard maps use against hash flooding (the key is secret; nothing
/// hashed here leaves the engine, unlike ISNs and SYN cookies, which take SipHash-2-4).
/// The listener's map of half-open connections is looked up several times per
/// connection: SipHash-2-4 there was a sixth of the engine's time opening and closing
/// connections.
#[derive(Debug, Clone, Copy, Default)]
pub struct SipBuildHasher(pub SipKey);

impl BuildHasher for SipBuildHasher {
    type Hasher = SipHasher13;
    fn build_hasher(&self) -> SipHasher13 {
        SipHasher13::new(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SipKey {
        SipKey(core::array::from_fn(|i| i as u8))
    }

    #[test]
    fn reference_vectors() {
        // The paper's Appendix A vector and the first entry of the reference test table.
        let msg: Vec<u8> = (0u8..15).collect();
        assert_eq!(SipHasher24::hash(&key(), &msg), 0xa129_ca61_49be_45e5);
        assert_eq!(SipHasher24::hash(&key(), &[]), 0x726f_db47_dd0e_0e31);
        let (k0, k1) = key().words();
        assert_eq!(siphash::<2, 4>(k0, k1, &msg), 0xa129_ca61_49be_45e5);
    }

    #[test]
    fn streaming_equals_one_shot_for_both_variants() {
        let msg: Vec<u8> = (0u8..64).collect();
        for split in 0..msg.len() {
            let mut h = SipHasher24::new(&key());
            h.write(&msg[..split]);
            h.write(&msg[split..]);
            assert_eq!(h.finish(), SipHasher24::hash(&key(), &msg), "split {split}");
            let mut h = SipHasher13::new(&key());
            h.write(&msg[..split]);
            h.write(&msg[split..]);
            assert_eq!(h.finish(), SipHasher13::hash(&key(), &msg), "split {split}");
        }
        // The variants differ.
        assert_ne!(
            SipHasher13::hash(&key(), &msg),
            SipHasher24::hash(&key(), &msg)
        );
    }

    #[test]
    fn siphash_1_3_is_unchanged() {
        // Pinned from the connection table's former private implementation (its hash of
        // 10.0.0.1:80 <-> 10.0.0.2:40000 and of 10.0.0.1:80), so that moving here changed
        // no table hash.
        let (k0, k1) = key().words();
        let tuple = [10, 0, 0, 1, 0, 80, 10, 0, 0, 2, 0x9c, 0x40];
        assert_eq!(siphash::<1, 3>(k0, k1, &tuple), 0x7809_a33a_bff5_156c);
        assert_eq!(siphash::<1, 3>(k0, k1, &tuple[..6]), 0x2690_751d_74c7_c42f);
    }

    #[test]
    fn keys_are_not_printed() {
        assert_eq!(format!("{:?}", SipKey([7; 16])), "SipKey(..)");
    }
}
