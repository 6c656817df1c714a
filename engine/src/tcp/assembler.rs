//! Out-of-order bookkeeping of the receive side: which sequence ranges beyond RCV.NXT are
//! held in the receive buffer, bounded to a few ranges, and the SACK blocks that report
//! them (RFC 2018 §4).
//!
//! Owns ranges only; the bytes themselves are in the receive [`super::ring::RingBuffer`].
use super::seq::SeqNumber;
use crate::wire::tcp::SackRanges;

/// The most out-of-order ranges held. A segment that would need one more is dropped (the
/// peer retransmits it), which keeps the state small and bounds the work per segment.
pub const MAX_RANGES: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Assembler {
    /// Sorted, disjoint, non-adjacent `[start, end)` ranges, all beyond RCV.NXT.
    ranges: [(SeqNumber, SeqNumber); MAX_RANGES],
    count: u8,
    /// Start of the most recently received out-of-order segment: its range is reported
    /// first (RFC 2018 §4).
    latest: SeqNumber,
}

impl Assembler {
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn ranges(&self) -> &[(SeqNumber, SeqNumber)] {
        &self.ranges[..usize::from(self.count)]
    }

    /// The end of the furthest range held, if any.
    pub fn highest(&self) -> Option<SeqNumber> {
        self.ranges().last().map(|r| r.1)
    }

    /// Records `[start, end)` as held. Returns false (recording nothing) if it would need
    /// more than [`MAX_RANGES`] ranges.
    pub fn add(&mut self, start: SeqNumber, end: SeqNumber) -> bool {
        if !start.lt(end) {
            return true;
        }
        let mut merged = (start, end);
        let mut out = [(SeqNumber(0), SeqNumber(0)); MAX_RANGES + 1];
        let mut n = 0;
        let mut placed = false;
        for &(s, e) in self.ranges() {
            if e.lt(merged.0) {
                out[n] = (s, e);
                n += 1;
            } else if merged.1.lt(s) {
                if !placed {
                    out[n] = merged;
                    n += 1;
                    placed = true;
                }
                out[n] = (s, e);
                n += 1;
            } else {
                // Overlapping or adjacent: absorb.
                merged = (merged.0.min(s), merged.1.max(e));
            }
        }
        if !placed {
            out[n] = merged;
            n += 1;
        }
        if n > MAX_RANGES {
            return false;
        }
        self.ranges[..n].copy_from_slice(&out[..n]);
        self.count = n as u8;
        self.latest = start;
        true
    }

    /// RCV.NXT moved to `rcv_nxt`: removes the ranges it reached and returns the new
    /// RCV.NXT (the end of a range that started at or before it).
    pub fn advance(&mut self, mut rcv_nxt: SeqNumber) -> SeqNumber {
        let mut drop = 0;
        for &(s, e) in self.ranges() {
            if s.le(rcv_nxt) {
                rcv_nxt = rcv_nxt.max(e);
                drop += 1;
            } else {
                break;
            }
        }
        let n = usize::from(self.count);
        self.ranges.copy_within(drop..n, 0);
        self.count = (n - drop) as u8;
        rcv_nxt
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.count = 0;
    }

    /// The SACK blocks to report: the range holding the latest segment first, then the
    /// others from the highest down (RFC 2018 §4 asks for the most recent first).
    pub fn sack_blocks(&self) -> SackRanges {
        let mut out: SackRanges = [None; 4];
        let mut n = 0;
        let ranges = self.ranges();
        let first = ranges.iter().position(|&(s, e)| self.latest.in_range(s, e));
        if let Some(i) = first {
            out[0] = Some(ranges[i]);
            n = 1;
        }
        for (i, &r) in ranges.iter().enumerate().rev() {
            if Some(i) == first || n == out.len() {
                continue;
            }
            out[n] = Some(r);
            n += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u32) -> SeqNumber {
        SeqNumber(n)
    }

    #[test]
    fn merges_and_orders() {
        let mut a = Assembler::default();
        assert!(a.add(s(30), s(40)));
        assert!(a.add(s(10), s(20)));
        assert!(a.add(s(20), s(25)));
        assert_eq!(a.ranges(), &[(s(10), s(25)), (s(30), s(40))]);
        assert!(a.add(s(24), s(31)));
        assert_eq!(a.ranges(), &[(s(10), s(40))]);
        assert_eq!(a.highest(), Some(s(40)));
    }

    #[test]
    fn bounded_number_of_ranges() {
        let mut a = Assembler::default();
        for i in 0..4 {
            assert!(a.add(s(100 * i + 10), s(100 * i + 20)));
        }
        assert!(!a.add(s(1000), s(1010)));
        assert_eq!(a.ranges().len(), 4);
        // Filling between two ranges still works (no new range needed).
        assert!(a.add(s(20), s(110)));
        assert_eq!(a.ranges().len(), 3);
    }

    #[test]
    fn advance_pops_reached_ranges() {
        let mut a = Assembler::default();
        a.add(s(10), s(20));
        a.add(s(30), s(40));
        assert_eq!(a.advance(s(5)), s(5));
        assert_eq!(a.advance(s(10)), s(20));
        assert_eq!(a.ranges(), &[(s(30), s(40))]);
        assert_eq!(a.advance(s(35)), s(40));
        assert!(a.is_empty());
    }

    #[test]
    fn sack_blocks_latest_first() {
        let mut a = Assembler::default();
        a.add(s(10), s(20));
        a.add(s(50), s(60));
        a.add(s(30), s(40));
        let blocks = a.sack_blocks();
        assert_eq!(blocks[0], Some((s(30), s(40))));
        assert_eq!(blocks[1], Some((s(50), s(60))));
        assert_eq!(blocks[2], Some((s(10), s(20))));
        assert_eq!(blocks[3], None);
    }

    #[test]
    fn wraps_around_zero() {
        let mut a = Assembler::default();
        a.add(s(u32::MAX - 5), s(5));
        a.add(s(10), s(20));
        assert_eq!(a.advance(s(u32::MAX - 10)), s(u32::MAX - 10));
        assert_eq!(a.advance(s(u32::MAX - 5)), s(5));
    }
}
