//! The sender's SACK scoreboard and the loss-recovery queries of RFC 6675 (IsLost, SetPipe,
//! NextSeg) over it.
//!
//! Owns the SACKed ranges above SND.UNA (bounded; when full, the highest range is
//! forgotten, which only makes the sender more conservative). It knows nothing of buffers
//! or timers; the connection asks it what to retransmit.
use super::seq::SeqNumber;
use crate::wire::tcp::SackRanges;

/// Ranges remembered. Receivers report at most 4 blocks per ACK; 6 covers the usual
/// pattern of a few holes in flight.
pub const MAX_RANGES: usize = 6;
/// RFC 6675 §2: DupThresh.
pub const DUP_THRESH: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scoreboard {
    /// Sorted, disjoint `[start, end)` ranges the receiver holds, all above SND.UNA.
    ranges: [(SeqNumber, SeqNumber); MAX_RANGES],
    count: u8,
}

/// A hole of the scoreboard: un-SACKed bytes below some SACKed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Hole {
    start: SeqNumber,
    end: SeqNumber,
    /// RFC 6675 IsLost holds for every byte of the hole (the SACKed data above it is the
    /// same for all of them).
    lost: bool,
}

impl Scoreboard {
    pub fn ranges(&self) -> &[(SeqNumber, SeqNumber)] {
        &self.ranges[..usize::from(self.count)]
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn clear(&mut self) {
        self.count = 0;
    }

    /// Adds the blocks of one ACK. Blocks not strictly within `(snd_una, snd_max]` are
    /// ignored (RFC 2018 §8, and D-SACK blocks below SND.UNA). Returns whether any byte
    /// was newly SACKed.
    pub fn add_blocks(
        &mut self,
        blocks: &SackRanges,
        snd_una: SeqNumber,
        snd_max: SeqNumber,
    ) -> bool {
        let before = self.sacked_bytes();
        for &(left, right) in blocks.iter().flatten() {
            if !left.lt(right) || !left.gt(snd_una) || right.gt(snd_max) {
                continue;
            }
            self.insert(left, right);
        }
        self.sacked_bytes() != before
    }

    fn insert(&mut self, start: SeqNumber, end: SeqNumber) {
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
                merged = (merged.0.min(s), merged.1.max(e));
            }
        }
        if !placed {
            out[n] = merged;
            n += 1;
        }
        // Full: forget the highest range (conservative: those bytes count as un-SACKed).
        let n = n.min(MAX_RANGES);
        self.ranges[..n].copy_from_slice(&out[..n]);
        self.count = n as u8;
    }

    /// SND.UNA moved: drop what it covers.
    pub fn advance(&mut self, snd_una: SeqNumber) {
        let mut out = [(SeqNumber(0), SeqNumber(0)); MAX_RANGES];
        let mut n = 0;
        for &(s, e) in self.ranges() {
            if e.le(snd_una) {
                continue;
            }
            out[n] = (s.max(snd_una), e);
            n += 1;
        }
        self.ranges = out;
        self.count = n as u8;
    }

    pub fn sacked_bytes(&self) -> u32 {
        self.ranges().iter().map(|&(s, e)| e.distance_from(s)).sum()
    }

    /// The highest SACKed sequence number (end of the highest range).
    pub fn highest_sacked(&self) -> Option<SeqNumber> {
        self.ranges().last().map(|r| r.1)
    }

    /// Whether `seq` is SACKed.
    pub fn is_sacked(&self, seq: SeqNumber) -> bool {
        self.ranges().iter().any(|&(s, e)| seq.in_range(s, e))
    }

    /// The end of the SACKed range holding `seq`, if any.
    pub fn sacked_until(&self, seq: SeqNumber) -> Option<SeqNumber> {
        self.ranges()
            .iter()
            .find(|&&(s, e)| seq.in_range(s, e))
            .map(|r| r.1)
    }

    /// The start of the first SACKed range above `seq`, if any.
    pub fn next_sacked_after(&self, seq: SeqNumber) -> Option<SeqNumber> {
        self.ranges().iter().map(|r| r.0).find(|s| s.gt(seq))
    }

    /// RFC 6675 §4 IsLost: DupThresh discontiguous SACKed ranges, or more than
    /// (DupThresh - 1) * SMSS SACKed bytes, lie above `seq`.
    pub fn is_lost(&self, seq: SeqNumber, mss: u32) -> bool {
        let mut ranges = 0;
        let mut bytes = 0u32;
        for &(s, e) in self.ranges() {
            if e.gt(seq) {
                ranges += 1;
                bytes = bytes.saturating_add(e.distance_from(s.max(seq + 1)));
            }
        }
        ranges >= DUP_THRESH || bytes > (DUP_THRESH - 1) * mss
    }

    /// The holes below the highest SACKed byte, lowest first.
    fn holes(&self, snd_una: SeqNumber, mss: u32) -> impl Iterator<Item = Hole> + '_ {
        let ranges = self.ranges();
        let mut cursor = snd_una;
        ranges.iter().enumerate().filter_map(move |(i, &(s, e))| {
            let start = cursor;
            cursor = e;
            if !start.lt(s) {
                return None;
            }
            // Bytes SACKed above this hole: ranges i.., the hole is lost if
            // DupThresh ranges or more than (DupThresh-1)*SMSS bytes are above it.
            let above = &ranges[i..];
            let bytes: u32 = above.iter().map(|&(s, e)| e.distance_from(s)).sum();
            let lost = above.len() as u32 >= DUP_THRESH || bytes > (DUP_THRESH - 1) * mss;
            Some(Hole {
                start,
                end: s,
                lost,
            })
        })
    }

    /// RFC 6675 §4 SetPipe: bytes estimated in flight. Un-SACKed bytes count once unless
    /// lost, and once more if retransmitted (below `high_rxt`).
    pub fn pipe(
        &self,
        snd_una: SeqNumber,
        snd_max: SeqNumber,
        high_rxt: SeqNumber,
        mss: u32,
    ) -> u32 {
        let retransmitted = |start: SeqNumber, end: SeqNumber| -> u32 {
            let end = end.min(high_rxt);
            end.distance_from(start)
        };
        let mut pipe = 0u32;
        let mut covered = snd_una;
        for hole in self.holes(snd_una, mss) {
            let len = hole.end.distance_from(hole.start);
            if !hole.lost {
                pipe = pipe.saturating_add(len);
            }
            pipe = pipe.saturating_add(retransmitted(hole.start, hole.end));
        }
        if let Some(high) = self.highest_sacked() {
            covered = covered.max(high);
        }
        // The tail above the highest SACKed byte: nothing SACKed above it, so not lost.
        pipe = pipe.saturating_add(snd_max.distance_from(covered));
        pipe.saturating_add(retransmitted(covered, snd_max))
    }

    /// RFC 6675 §4 NextSeg rules 1 and 3 (rule 2, new data, is the caller's): the first
    /// un-SACKed range at or above `high_rxt` that is lost, else (rule 3) the first
    /// un-SACKed range at or above `high_rxt` below the highest SACKed byte. Returns the
    /// start and the length available before the next SACKed byte.
    pub fn next_seg(
        &self,
        snd_una: SeqNumber,
        high_rxt: SeqNumber,
        mss: u32,
        allow_rule3: bool,
    ) -> Option<(SeqNumber, u32)> {
        let mut rule3 = None;
        for hole in self.holes(snd_una, mss) {
            let start = hole.start.max(high_rxt);
            if !start.lt(hole.end) {
                continue;
            }
            let len = hole.end.distance_from(start);
            if hole.lost {
                return Some((start, len));
            }
            if rule3.is_none() {
                rule3 = Some((start, len));
            }
        }
        if allow_rule3 {
            rule3
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u32 = 100;

    fn s(n: u32) -> SeqNumber {
        SeqNumber(n)
    }

    fn blocks(list: &[(u32, u32)]) -> SackRanges {
        let mut out: SackRanges = [None; 4];
        for (slot, &(l, r)) in out.iter_mut().zip(list) {
            *slot = Some((s(l), s(r)));
        }
        out
    }

    #[test]
    fn ignores_invalid_blocks() {
        let mut sb = Scoreboard::default();
        // Below SND.UNA (D-SACK), beyond SND.MAX, empty.
        assert!(!sb.add_blocks(
            &blocks(&[(50, 100), (900, 1100), (500, 500)]),
            s(100),
            s(1000)
        ));
        assert!(sb.is_empty());
        assert!(sb.add_blocks(&blocks(&[(200, 300)]), s(100), s(1000)));
        assert!(!sb.add_blocks(&blocks(&[(200, 300)]), s(100), s(1000)));
        assert_eq!(sb.sacked_bytes(), 100);
    }

    #[test]
    fn advance_trims() {
        let mut sb = Scoreboard::default();
        sb.add_blocks(&blocks(&[(200, 300), (400, 500)]), s(100), s(1000));
        sb.advance(s(250));
        assert_eq!(sb.ranges(), &[(s(250), s(300)), (s(400), s(500))]);
        sb.advance(s(500));
        assert!(sb.is_empty());
    }

    #[test]
    fn is_lost_by_bytes_or_ranges() {
        let mut sb = Scoreboard::default();
        // One segment lost at 100..200, three segments SACKed after it.
        sb.add_blocks(&blocks(&[(200, 500)]), s(100), s(1000));
        assert!(sb.is_lost(s(100), MSS));
        assert!(!sb.is_lost(s(500), MSS));
        let mut sb = Scoreboard::default();
        sb.add_blocks(&blocks(&[(200, 250)]), s(100), s(1000));
        assert!(!sb.is_lost(s(100), MSS));
        sb.add_blocks(&blocks(&[(300, 350), (400, 450)]), s(100), s(1000));
        assert!(sb.is_lost(s(100), MSS));
    }

    #[test]
    fn pipe_and_next_seg_follow_rfc6675() {
        let mut sb = Scoreboard::default();
        // Sent 0..1000; 0..100 and 500..600 lost; SACKed 100..500 and 600..700.
        sb.add_blocks(&blocks(&[(100, 500), (600, 700)]), s(0), s(1000));
        // Hole 0..100 is lost (400+100 SACKed above); hole 500..600 is not (100 above);
        // tail 700..1000 counts. Pipe = 100 (hole 2) + 300 (tail) = 400.
        assert_eq!(sb.pipe(s(0), s(1000), s(0), MSS), 400);
        assert_eq!(sb.next_seg(s(0), s(0), MSS, false), Some((s(0), 100)));
        // After retransmitting 0..100 it counts once in the pipe.
        assert_eq!(sb.pipe(s(0), s(1000), s(100), MSS), 500);
        assert_eq!(sb.next_seg(s(0), s(100), MSS, false), None);
        assert_eq!(sb.next_seg(s(0), s(100), MSS, true), Some((s(500), 100)));
    }

    #[test]
    fn bounded_forgets_highest() {
        let mut sb = Scoreboard::default();
        for i in 0..(MAX_RANGES as u32 + 2) {
            sb.add_blocks(&blocks(&[(100 + 20 * i, 110 + 20 * i)]), s(0), s(10_000));
        }
        assert_eq!(sb.ranges().len(), MAX_RANGES);
        assert_eq!(sb.ranges()[0], (s(100), s(110)));
    }
}
