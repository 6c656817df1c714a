//! Seeded random numbers: xoshiro256** (Blackman and Vigna) seeded through SplitMix64,
//! written from the algorithms' published descriptions.
//!
//! Owns: the engine's deterministic streams: every random draw the simulated wire and
//! fault injection make, and the expansion of one seed into the stack's keys. May not:
//! read any entropy source; the same seed must give the same stream on every machine and
//! build. Not cryptographic: secrets come from the operating system, through the driver.
use crate::time::Duration;

const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// One step of SplitMix64: advances `state` and returns the next output.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(GOLDEN_GAMMA);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A seeded xoshiro256** generator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeededRng {
    s: [u64; 4],
}

impl SeededRng {
    /// A generator whose whole stream is determined by `seed`.
    pub fn new(seed: u64) -> Self {
        let mut state = seed;
        // Four SplitMix64 outputs are never all zero (it is a bijection of distinct
        // inputs), which is the one state xoshiro must avoid.
        let s = [
            splitmix64(&mut state),
            splitmix64(&mut state),
            splitmix64(&mut state),
            splitmix64(&mut state),
        ];
        SeededRng { s }
    }

    /// An independent stream number `stream` of seed `seed` (one per simulated link, say),
    /// so that traffic on one stream does not shift the draws of another.
    pub fn derive(seed: u64, stream: u64) -> Self {
        let mut state = stream;
        SeededRng::new(seed ^ splitmix64(&mut state))
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1), 53 bits of precision.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `p`; no draw is made when `p <= 0` or `p >= 1` (or NaN,
    /// which counts as 0).
    pub fn chance(&mut self, p: f64) -> bool {
        if p >= 1.0 {
            true
        } else if p > 0.0 {
            self.next_f64() < p
        } else {
            false
        }
    }

    /// Uniform in [0, n) (0 when `n` is 0), by multiply-and-shift: the bias is below
    /// n / 2^64, irrelevant here.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in [0, max], at nanosecond resolution.
    pub fn duration_up_to(&mut self, max: Duration) -> Duration {
        let max = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
        match max.checked_add(1) {
            Some(bound) => Duration::from_nanos(self.below(bound)),
            None => Duration::from_nanos(self.next_u64()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_first_output_for_seed_zero() {
        // The widely published first output of SplitMix64 from state 0.
        let mut state = 0;
        assert_eq!(splitmix64(&mut state), 0xe220_a839_7b1d_cdaf);
    }

    #[test]
    fn same_seed_same_stream_different_seed_different_stream() {
        let a: Vec<u64> = (0..8)
            .scan(SeededRng::new(7), |r, _| Some(r.next_u64()))
            .collect();
        let b: Vec<u64> = (0..8)
            .scan(SeededRng::new(7), |r, _| Some(r.next_u64()))
            .collect();
        let c: Vec<u64> = (0..8)
            .scan(SeededRng::new(8), |r, _| Some(r.next_u64()))
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(SeededRng::derive(7, 1), SeededRng::derive(7, 2));
    }

    #[test]
    fn draws_stay_in_range_and_look_uniform() {
        let mut r = SeededRng::new(1);
        let n = 100_000;
        let mut sum = 0.0;
        let mut hits = 0;
        for _ in 0..n {
            let x = r.next_f64();
            assert!((0.0..1.0).contains(&x));
            sum += x;
            hits += u32::from(r.chance(0.25));
            assert!(r.below(10) < 10);
            assert!(r.duration_up_to(Duration::from_nanos(5)) <= Duration::from_nanos(5));
        }
        assert!((sum / f64::from(n) - 0.5).abs() < 0.01);
        assert!((f64::from(hits) / f64::from(n) - 0.25).abs() < 0.01);
        assert!(!r.chance(0.0) && r.chance(1.0) && !r.chance(f64::NAN));
        assert_eq!(r.below(0), 0);
    }
}
