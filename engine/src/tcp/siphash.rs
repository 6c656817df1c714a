//! SipHash-2-4 (Aumasson and Bernstein, 2012), written from the paper: the keyed hash
//! behind RFC 6528 ISNs, SYN cookies and the listener's seeded map of half-open
//! connections (whose keys the peers choose).
//!
//! Owns nothing but the hash state. Not a MAC for the state channel (that is HMAC-SHA256).
use core::hash::{BuildHasher, Hasher};

/// A 128-bit SipHash key.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct SipKey(pub [u8; 16]);

impl core::fmt::Debug for SipKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // A secret: never print it.
        f.write_str("SipKey(..)")
    }
}

/// Streaming SipHash-2-4.
#[derive(Debug, Clone)]
pub struct SipHasher24 {
    v: [u64; 4],
    tail: u64,
    ntail: usize,
    length: usize,
}

impl SipHasher24 {
    pub fn new(key: &SipKey) -> Self {
        let k = key.0;
        let k0 = u64::from_le_bytes([k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7]]);
        let k1 = u64::from_le_bytes([k[8], k[9], k[10], k[11], k[12], k[13], k[14], k[15]]);
        SipHasher24 {
            v: [
                k0 ^ 0x736f_6d65_7073_6575,
                k1 ^ 0x646f_7261_6e64_6f6d,
                k0 ^ 0x6c79_6765_6e65_7261,
                k1 ^ 0x7465_6462_7974_6573,
            ],
            tail: 0,
            ntail: 0,
            length: 0,
        }
    }

    fn round(&mut self) {
        let [mut v0, mut v1, mut v2, mut v3] = self.v;
        v0 = v0.wrapping_add(v1);
        v1 = v1.rotate_left(13) ^ v0;
        v0 = v0.rotate_left(32);
        v2 = v2.wrapping_add(v3);
        v3 = v3.rotate_left(16) ^ v2;
        v0 = v0.wrapping_add(v3);
        v3 = v3.rotate_left(21) ^ v0;
        v2 = v2.wrapping_add(v1);
        v1 = v1.rotate_left(17) ^ v2;
        v2 = v2.rotate_left(32);
        self.v = [v0, v1, v2, v3];
    }

    fn compress(&mut self, m: u64) {
        self.v[3] ^= m;
        self.round();
        self.round();
        self.v[0] ^= m;
    }

    /// The 64-bit hash of everything written so far.
    pub fn finish64(&self) -> u64 {
        let mut s = self.clone();
        let b = ((s.length as u64 & 0xff) << 56) | s.tail;
        s.compress(b);
        s.v[2] ^= 0xff;
        for _ in 0..4 {
            s.round();
        }
        s.v[0] ^ s.v[1] ^ s.v[2] ^ s.v[3]
    }

    /// One-shot hash of `data` under `key`.
    pub fn hash(key: &SipKey, data: &[u8]) -> u64 {
        let mut h = SipHasher24::new(key);
        h.write(data);
        h.finish64()
    }
}

impl Hasher for SipHasher24 {
    fn write(&mut self, mut bytes: &[u8]) {
        self.length = self.length.wrapping_add(bytes.len());
        while self.ntail < 8 {
            let Some((&b, rest)) = bytes.split_first() else {
                return;
            };
            self.tail |= u64::from(b) << (8 * self.ntail);
            self.ntail += 1;
            bytes = rest;
        }
        let m = self.tail;
        self.compress(m);
        self.tail = 0;
        self.ntail = 0;
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let m = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
            self.compress(m);
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

/// A [`BuildHasher`] of keyed SipHash-2-4, for maps whose keys a peer chooses.
#[derive(Debug, Clone, Copy, Default)]
pub struct SipBuildHasher(pub SipKey);

impl BuildHasher for SipBuildHasher {
    type Hasher = SipHasher24;
    fn build_hasher(&self) -> SipHasher24 {
        SipHasher24::new(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SipKey {
        let mut k = [0u8; 16];
        for (i, b) in k.iter_mut().enumerate() {
            *b = i as u8;
        }
        SipKey(k)
    }

    #[test]
    fn reference_vectors() {
        // The paper's Appendix A vector and the first entry of the reference test table.
        let msg: Vec<u8> = (0u8..15).collect();
        assert_eq!(SipHasher24::hash(&key(), &msg), 0xa129_ca61_49be_45e5);
        assert_eq!(SipHasher24::hash(&key(), &[]), 0x726f_db47_dd0e_0e31);
    }

    #[test]
    fn streaming_equals_one_shot() {
        let msg: Vec<u8> = (0u8..64).collect();
        for split in 0..msg.len() {
            let mut h = SipHasher24::new(&key());
            h.write(&msg[..split]);
            h.write(&msg[split..]);
            assert_eq!(h.finish(), SipHasher24::hash(&key(), &msg), "split {split}");
        }
    }
}
