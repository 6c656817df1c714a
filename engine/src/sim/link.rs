//! One direction of a simulated link: applies a [`Faults`] configuration to each frame
//! and says when (and in which form) each surviving copy arrives.
//!
//! Owns: the link's random stream, its FIFO and serialisation state, and its counters.
//! May not: deliver anything (the network schedules what this returns) or read a clock.
use super::faults::Faults;
use crate::rng::SeededRng;
use crate::time::{Duration, Instant};

/// Length of the Ethernet II header, which corruption spares and the MTU excludes.
pub(crate) const ETHERNET_HEADER_LEN: usize = 14;

/// Counters of one direction of a link (or their sum over all links).
///
/// Without frames in flight, `sent + duplicated == oversize + lost + delivered`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames offered to the link (a broadcast counts once per receiving link).
    pub sent: u64,
    /// Copies handed to the receiving host.
    pub delivered: u64,
    /// Bytes of the copies handed to the receiving host.
    pub bytes_delivered: u64,
    pub lost: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Copies with flipped bits.
    pub corrupted: u64,
    /// Frames held back out of FIFO order.
    pub reordered: u64,
    /// Frames dropped for exceeding the MTU.
    pub oversize: u64,
}

impl core::ops::AddAssign for LinkStats {
    fn add_assign(&mut self, o: LinkStats) {
        self.sent += o.sent;
        self.delivered += o.delivered;
        self.bytes_delivered += o.bytes_delivered;
        self.lost += o.lost;
        self.duplicated += o.duplicated;
        self.corrupted += o.corrupted;
        self.reordered += o.reordered;
        self.oversize += o.oversize;
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Link {
    rng: SeededRng,
    pub(crate) stats: LinkStats,
    /// Arrival time of the last in-order copy: later in-order copies arrive no earlier.
    fifo_until: Instant,
    /// When the wire finishes serialising the frames offered so far.
    busy_until: Instant,
}

impl Link {
    pub(crate) fn new(rng: SeededRng) -> Self {
        Link {
            rng,
            stats: LinkStats::default(),
            fifo_until: Instant::ZERO,
            busy_until: Instant::ZERO,
        }
    }

    /// Puts `frame` on the link at `now`; `schedule` receives each surviving copy with its
    /// arrival time (never before `now`).
    pub(crate) fn transmit(
        &mut self,
        faults: &Faults,
        now: Instant,
        frame: &[u8],
        mut schedule: impl FnMut(Instant, Vec<u8>),
    ) {
        self.stats.sent += 1;
        if faults
            .mtu
            .is_some_and(|mtu| frame.len().saturating_sub(ETHERNET_HEADER_LEN) > mtu)
        {
            self.stats.oversize += 1;
            return;
        }
        let mut departs = now;
        if let Some(bps) = faults.bandwidth.filter(|&bps| bps > 0) {
            let bits = frame.len() as u128 * 8;
            let nanos = (bits * 1_000_000_000).div_ceil(u128::from(bps));
            let start = self.busy_until.max(now);
            self.busy_until =
                start + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
            departs = self.busy_until;
        }
        if self.rng.chance(faults.loss) {
            self.stats.lost += 1;
            return;
        }
        let held_back = !faults.reorder_delay.is_zero() && self.rng.chance(faults.reorder);
        let copies = if self.rng.chance(faults.duplicate) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for copy in 0..copies {
            let mut bytes = frame.to_vec();
            if self.rng.chance(faults.corrupt)
                && flip_bits(&mut self.rng, &mut bytes, faults.corrupt_bits)
            {
                self.stats.corrupted += 1;
            }
            let mut at = departs + faults.delay + self.rng.duration_up_to(faults.jitter);
            if held_back && copy == 0 {
                self.stats.reordered += 1;
                let extra = faults.reorder_delay.saturating_sub(Duration::from_nanos(1));
                at += Duration::from_nanos(1) + self.rng.duration_up_to(extra);
            } else {
                at = at.max(self.fifo_until);
                self.fifo_until = at;
            }
            schedule(at, bytes);
        }
    }
}

/// Flips `count` distinct random bits after the Ethernet header (anywhere in a frame no
/// longer than the header). Returns false, leaving the frame alone, if it is empty.
fn flip_bits(rng: &mut SeededRng, frame: &mut [u8], count: u32) -> bool {
    let start = if frame.len() > ETHERNET_HEADER_LEN {
        ETHERNET_HEADER_LEN
    } else {
        0
    };
    let region = &mut frame[start..];
    let bits = region.len() as u64 * 8;
    if bits == 0 {
        return false;
    }
    let count = u64::from(count).min(bits);
    // Distinct bits, so that flips never cancel out: draw, and redraw on a repeat (the
    // frame has many more bits than flips in any sensible configuration; the bound keeps
    // a pathological one finite).
    let mut flipped: Vec<u64> = Vec::with_capacity(count as usize);
    let mut attempts = 0;
    while (flipped.len() as u64) < count && attempts < count * 64 {
        attempts += 1;
        let bit = rng.below(bits);
        if !flipped.contains(&bit) {
            flipped.push(bit);
            region[(bit / 8) as usize] ^= 1 << (bit % 8);
        }
    }
    !flipped.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(faults: &Faults, frames: usize, len: usize) -> (Link, Vec<(Instant, Vec<u8>)>) {
        let mut link = Link::new(SeededRng::new(3));
        let mut out = Vec::new();
        for i in 0..frames {
            let mut frame = vec![0u8; len];
            frame[14..18].copy_from_slice(&(i as u32).to_be_bytes());
            link.transmit(faults, Instant::ZERO, &frame, |at, b| out.push((at, b)));
        }
        (link, out)
    }

    #[test]
    fn bandwidth_serialises_back_to_back() {
        // 1000-byte frames at 8 Mbit/s take 1 ms each.
        let faults = Faults::none().with_bandwidth(8_000_000);
        let (_, out) = run(&faults, 3, 1000);
        let times: Vec<u64> = out.iter().map(|(at, _)| at.as_millis()).collect();
        assert_eq!(times, vec![1, 2, 3]);
    }

    #[test]
    fn jitter_keeps_fifo_order() {
        let faults = Faults::none().with_delay(Duration::from_millis(10), Duration::from_millis(5));
        let (_, out) = run(&faults, 1000, 64);
        assert!(out.windows(2).all(|w| w[0].0 <= w[1].0));
        assert!(out
            .iter()
            .all(|(at, _)| (10..=15).contains(&at.as_millis())));
        assert!(
            out.iter().any(|(at, _)| at.as_millis() > 10),
            "jitter applied"
        );
    }

    #[test]
    fn corruption_flips_only_after_the_ethernet_header() {
        let mut rng = SeededRng::new(9);
        for _ in 0..1000 {
            let mut frame = vec![0u8; 60];
            assert!(flip_bits(&mut rng, &mut frame, 3));
            assert!(frame[..14].iter().all(|&b| b == 0));
            let ones: u32 = frame.iter().map(|b| b.count_ones()).sum();
            assert_eq!(ones, 3);
        }
        assert!(!flip_bits(&mut rng, &mut [], 1));
    }
}
