//! Out-of-order bookkeeping of the receive side: which sequence ranges beyond RCV.NXT are
//! held in the receive buffer, the SACK blocks that report them (RFC 2018 §4), and the
//! duplicate to report in a D-SACK block (RFC 2883 §4).
//!
//! Owns ranges only, on the heap from the first out-of-order segment (or duplicate) until
//! the last gap is filled (and the last duplicate reported); the bytes themselves are in
//! the receive [`super::ring::RingBuffer`].
use super::seq::SeqNumber;
use crate::wire::tcp::SackRanges;

/// The most out-of-order ranges held. A segment that would need one more is dropped (the
/// peer retransmits it). The receive buffer bounds the ranges anyway (a 256 KiB buffer of
/// full-sized segments holds fewer than 100 gaps); this bounds the work per segment
/// against a peer sending tiny segments with gaps.
pub const MAX_RANGES: usize = 256;

/// One held range, with the arrival count of the segment that last extended it (for the
/// order of SACK blocks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    start: SeqNumber,
    end: SeqNumber,
    stamp: u32,
}

/// The out-of-order state of one connection. Nothing at all (one word) while every byte
/// arrived in order, which is most connections all their lives: the state is boxed when
/// the first out-of-order segment or duplicate arrives and dropped when the last gap is
/// filled and the last D-SACK reported.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Assembler {
    held: Option<Box<Held>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Held {
    /// Sorted, disjoint, non-adjacent `[start, end)` ranges, all beyond RCV.NXT.
    ranges: Vec<Range>,
    /// Out-of-order arrivals so far (the stamp of the next one).
    arrivals: u32,
    /// Start of the most recently received out-of-order segment: its range is reported
    /// first (RFC 2018 §4).
    latest: SeqNumber,
    /// A duplicate segment to report in the next ACK's first SACK block (RFC 2883 §4);
    /// empty when `start == end`.
    dsack: (SeqNumber, SeqNumber),
}

/// The out-of-order bookkeeping as plain data, for a connection record (migration).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AssemblerRecord {
    /// `(start, end, stamp)` of each held range, lowest first.
    pub ranges: Vec<(SeqNumber, SeqNumber, u32)>,
    pub arrivals: u32,
    pub latest: SeqNumber,
    pub dsack: (SeqNumber, SeqNumber),
}

const NO_DSACK: (SeqNumber, SeqNumber) = (SeqNumber(0), SeqNumber(0));

impl Held {
    fn has_dsack(&self) -> bool {
        self.dsack.0.lt(self.dsack.1)
    }
}

impl Assembler {
    /// Bytes of heap the out-of-order state takes.
    pub fn heap_bytes(&self) -> usize {
        self.held.as_ref().map_or(0, |h| {
            core::mem::size_of::<Held>() + h.ranges.capacity() * core::mem::size_of::<Range>()
        })
    }

    /// The state, boxed first if there is none.
    fn held_mut(&mut self) -> &mut Held {
        self.held.get_or_insert_with(Box::default)
    }

    /// Drops the state once it holds nothing (no range, no D-SACK to report).
    fn release_if_idle(&mut self) {
        if self
            .held
            .as_ref()
            .is_some_and(|h| h.ranges.is_empty() && !h.has_dsack())
        {
            self.held = None;
        }
    }

    fn range_list(&self) -> &[Range] {
        self.held.as_ref().map_or(&[], |h| &h.ranges)
    }

    pub fn to_record(&self) -> AssemblerRecord {
        let Some(h) = self.held.as_ref() else {
            return AssemblerRecord::default();
        };
        AssemblerRecord {
            ranges: h.ranges.iter().map(|r| (r.start, r.end, r.stamp)).collect(),
            arrivals: h.arrivals,
            latest: h.latest,
            dsack: h.dsack,
        }
    }

    /// The assembler of `r`, if its ranges are what one holds: at most [`MAX_RANGES`],
    /// each non-empty, sorted, disjoint and not adjacent.
    pub fn from_record(r: &AssemblerRecord) -> Option<Assembler> {
        if r.ranges.len() > MAX_RANGES {
            return None;
        }
        let mut prev: Option<SeqNumber> = None;
        for &(start, end, _) in &r.ranges {
            if !start.lt(end) || prev.is_some_and(|p| !p.lt(start)) {
                return None;
            }
            prev = Some(end);
        }
        let mut a = Assembler {
            held: Some(Box::new(Held {
                ranges: r
                    .ranges
                    .iter()
                    .map(|&(start, end, stamp)| Range { start, end, stamp })
                    .collect(),
                arrivals: r.arrivals,
                latest: r.latest,
                dsack: r.dsack,
            })),
        };
        a.release_if_idle();
        Some(a)
    }

    pub fn is_empty(&self) -> bool {
        self.range_list().is_empty()
    }

    /// The number of ranges held.
    pub fn len(&self) -> usize {
        self.range_list().len()
    }

    /// The ranges held, lowest first.
    pub fn ranges(&self) -> impl Iterator<Item = (SeqNumber, SeqNumber)> + '_ {
        self.range_list().iter().map(|r| (r.start, r.end))
    }

    /// The end of the furthest range held, if any.
    pub fn highest(&self) -> Option<SeqNumber> {
        self.range_list().last().map(|r| r.end)
    }

    /// Records `[start, end)` as held. Returns false (recording nothing) if it would need
    /// more than [`MAX_RANGES`] ranges. A segment wholly inside a held range is a
    /// duplicate: it is reported as a D-SACK (RFC 2883 §4, with the range holding it as
    /// the next block).
    pub fn add(&mut self, start: SeqNumber, end: SeqNumber) -> bool {
        if !start.lt(end) {
            return true;
        }
        let h = self.held_mut();
        // The first range that ends at or after `start` (adjacent ranges merge).
        let first = h.ranges.partition_point(|r| r.end.lt(start));
        // The ranges from `first` that begin at or before `end` overlap or touch.
        let mut last = first;
        while last < h.ranges.len() && h.ranges[last].start.le(end) {
            last += 1;
        }
        let stamp = h.arrivals;
        if last == first {
            if h.ranges.len() >= MAX_RANGES {
                return false;
            }
            h.ranges.insert(first, Range { start, end, stamp });
        } else {
            let held = h.ranges[first];
            if last == first + 1 && held.start.le(start) && end.le(held.end) {
                h.dsack = (start, end);
            }
            let merged = Range {
                start: held.start.min(start),
                end: h.ranges[last - 1].end.max(end),
                stamp,
            };
            h.ranges[first] = merged;
            h.ranges.drain(first + 1..last);
        }
        h.arrivals = h.arrivals.wrapping_add(1);
        h.latest = start;
        true
    }

    /// RCV.NXT moved to `rcv_nxt`: removes the ranges it reached and returns the new
    /// RCV.NXT (the end of a range that started at or before it).
    pub fn advance(&mut self, mut rcv_nxt: SeqNumber) -> SeqNumber {
        let Some(h) = self.held.as_mut() else {
            return rcv_nxt;
        };
        let mut drop = 0;
        for r in &h.ranges {
            if r.start.le(rcv_nxt) {
                rcv_nxt = rcv_nxt.max(r.end);
                drop += 1;
            } else {
                break;
            }
        }
        h.ranges.drain(..drop);
        if h.ranges.is_empty() {
            h.ranges = Vec::new();
        }
        self.release_if_idle();
        rcv_nxt
    }

    /// Forgets the ranges (and releases their storage).
    pub fn clear(&mut self) {
        if let Some(h) = self.held.as_mut() {
            h.ranges = Vec::new();
        }
        self.release_if_idle();
    }

    /// Reports `[start, end)`, received again below RCV.NXT, in the next ACK's first SACK
    /// block (RFC 2883 §4).
    pub fn set_dsack(&mut self, start: SeqNumber, end: SeqNumber) {
        if start.lt(end) {
            self.held_mut().dsack = (start, end);
        }
    }

    /// Takes the pending D-SACK block, if any (it is reported once).
    pub fn take_dsack(&mut self) -> Option<(SeqNumber, SeqNumber)> {
        let h = self.held.as_mut()?;
        let (start, end) = core::mem::replace(&mut h.dsack, NO_DSACK);
        self.release_if_idle();
        start.lt(end).then_some((start, end))
    }

    /// Whether a D-SACK block waits for the next ACK.
    pub fn has_dsack(&self) -> bool {
        self.held.as_ref().is_some_and(|h| h.has_dsack())
    }

    /// The SACK blocks to report, after `dsack` if given (RFC 2883 §4): the range holding
    /// the latest segment first, then the others, most recently extended first (RFC 2018
    /// §4 asks to repeat the most recently reported blocks).
    pub fn sack_blocks(&self, dsack: Option<(SeqNumber, SeqNumber)>) -> SackRanges {
        let mut out: SackRanges = [None; 4];
        let mut n = 0;
        if let Some(d) = dsack {
            out[0] = Some(d);
            n = 1;
        }
        let Some(h) = self.held.as_ref() else {
            return out;
        };
        let first = h
            .ranges
            .iter()
            .position(|r| h.latest.in_range(r.start, r.end));
        if let Some(i) = first {
            out[n] = Some((h.ranges[i].start, h.ranges[i].end));
            n += 1;
        }
        // The most recent others: a few passes over the (short) list for the highest
        // stamps, without allocating.
        let mut below = u32::MAX;
        while n < out.len() {
            let next = h
                .ranges
                .iter()
                .enumerate()
                .filter(|&(i, r)| Some(i) != first && h.recency(r) < below)
                .max_by_key(|&(_, r)| h.recency(r));
            let Some((_, r)) = next else { break };
            below = h.recency(r);
            out[n] = Some((r.start, r.end));
            n += 1;
        }
        out
    }
}

impl Held {
    /// How recently a range was extended: larger is more recent (stamps wrap).
    fn recency(&self, r: &Range) -> u32 {
        u32::MAX - self.arrivals.wrapping_sub(r.stamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u32) -> SeqNumber {
        SeqNumber(n)
    }

    fn list(a: &Assembler) -> Vec<(SeqNumber, SeqNumber)> {
        a.ranges().collect()
    }

    #[test]
    fn merges_and_orders() {
        let mut a = Assembler::default();
        assert!(a.add(s(30), s(40)));
        assert!(a.add(s(10), s(20)));
        assert!(a.add(s(20), s(25)));
        assert_eq!(list(&a), vec![(s(10), s(25)), (s(30), s(40))]);
        assert!(a.add(s(24), s(31)));
        assert_eq!(list(&a), vec![(s(10), s(40))]);
        assert_eq!(a.highest(), Some(s(40)));
    }

    #[test]
    fn holds_many_ranges_on_the_heap_only_while_needed() {
        let mut a = Assembler::default();
        assert_eq!(a.heap_bytes(), 0);
        assert_eq!(
            core::mem::size_of::<Assembler>(),
            core::mem::size_of::<usize>()
        );
        // More gaps than the four of a fixed table: nothing is dropped.
        for i in 0..40 {
            assert!(a.add(s(100 * i + 10), s(100 * i + 20)));
        }
        assert_eq!(a.len(), 40);
        assert!(a.add(s(20), s(110)));
        assert_eq!(a.len(), 39);
        assert_eq!(a.advance(s(10)), s(120));
        assert_eq!(a.advance(s(3910)), s(3920));
        assert!(a.is_empty());
        assert_eq!(a.heap_bytes(), 0);
        assert!(a.held.is_none(), "released once nothing is held");
        // A duplicate below RCV.NXT boxes the state until it is reported.
        a.set_dsack(s(1), s(5));
        assert!(a.has_dsack() && a.heap_bytes() > 0);
        assert_eq!(a.take_dsack(), Some((s(1), s(5))));
        assert!(a.held.is_none());
        assert_eq!(a.to_record(), AssemblerRecord::default());
    }

    #[test]
    fn bounded_number_of_ranges() {
        let mut a = Assembler::default();
        for i in 0..MAX_RANGES as u32 {
            assert!(a.add(s(100 * i + 10), s(100 * i + 20)));
        }
        assert!(!a.add(s(1_000_000), s(1_000_010)));
        assert_eq!(a.len(), MAX_RANGES);
        // Filling between two ranges still works (no new range needed).
        assert!(a.add(s(20), s(110)));
        assert_eq!(a.len(), MAX_RANGES - 1);
    }

    #[test]
    fn advance_pops_reached_ranges() {
        let mut a = Assembler::default();
        a.add(s(10), s(20));
        a.add(s(30), s(40));
        assert_eq!(a.advance(s(5)), s(5));
        assert_eq!(a.advance(s(10)), s(20));
        assert_eq!(list(&a), vec![(s(30), s(40))]);
        assert_eq!(a.advance(s(35)), s(40));
        assert!(a.is_empty());
    }

    #[test]
    fn sack_blocks_latest_first_then_most_recent() {
        // RFC 2018 §4.
        let mut a = Assembler::default();
        a.add(s(10), s(20));
        a.add(s(50), s(60));
        a.add(s(90), s(95));
        a.add(s(30), s(40));
        let blocks = a.sack_blocks(None);
        assert_eq!(blocks[0], Some((s(30), s(40))));
        assert_eq!(blocks[1], Some((s(90), s(95))));
        assert_eq!(blocks[2], Some((s(50), s(60))));
        assert_eq!(blocks[3], Some((s(10), s(20))));
        // Extending an old range makes it the latest.
        a.add(s(20), s(22));
        assert_eq!(a.sack_blocks(None)[0], Some((s(10), s(22))));
        assert_eq!(a.sack_blocks(None)[1], Some((s(30), s(40))));
    }

    #[test]
    fn duplicate_out_of_order_segment_is_a_dsack() {
        // RFC 2883 §4 (example 4.2): the duplicate first, then the block holding it.
        let mut a = Assembler::default();
        a.add(s(100), s(300));
        a.add(s(500), s(600));
        assert!(!a.has_dsack());
        a.add(s(150), s(200));
        let d = a.take_dsack();
        assert_eq!(d, Some((s(150), s(200))));
        let blocks = a.sack_blocks(d);
        assert_eq!(blocks[0], Some((s(150), s(200))));
        assert_eq!(blocks[1], Some((s(100), s(300))));
        assert_eq!(a.take_dsack(), None, "reported once");
        // Below RCV.NXT (example 4.1), set by the connection.
        a.set_dsack(s(10), s(20));
        assert_eq!(
            a.sack_blocks(a.clone().take_dsack())[0],
            Some((s(10), s(20)))
        );
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
