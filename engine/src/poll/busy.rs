//! How busy a poll loop is: the share of its time spent in polls that did work, against
//! polls that found nothing (and the idling after them), as DPDK applications commonly
//! report it. A spinning core always shows 100% CPU; this share says how much of it was
//! work, so a benchmark can tell the side that was saturated from the side that waited.
//!
//! The loop already reads the clock once a poll; [`BusyMeter::record`] charges the time
//! since the previous reading to that previous poll, busy if it did work. No extra clock
//! read, one comparison and one addition per poll.
use crate::time::Instant;

#[derive(Debug, Clone, Copy, Default)]
pub struct BusyMeter {
    last: Option<Instant>,
    last_busy: bool,
    busy_ns: u64,
    total_ns: u64,
}

impl BusyMeter {
    pub const fn new() -> Self {
        BusyMeter {
            last: None,
            last_busy: false,
            busy_ns: 0,
            total_ns: 0,
        }
    }

    /// A poll that started at `now` has run and did work if `busy`: the time from the
    /// previous poll's start to `now` is charged to the previous poll, and this one's
    /// time is charged at the next call.
    #[inline]
    pub fn record(&mut self, now: Instant, busy: bool) {
        if let Some(last) = self.last {
            let d = now.as_nanos().saturating_sub(last.as_nanos());
            self.total_ns += d;
            if self.last_busy {
                self.busy_ns += d;
            }
        }
        self.last = Some(now);
        self.last_busy = busy;
    }

    /// Nanoseconds charged to polls that did work.
    pub fn busy_ns(&self) -> u64 {
        self.busy_ns
    }

    /// Nanoseconds measured in all.
    pub fn total_ns(&self) -> u64 {
        self.total_ns
    }

    /// The busy share between two readings ([`BusyMeter::reading`]); `None` when no
    /// time passed between them.
    pub fn share_between(earlier: (u64, u64), later: (u64, u64)) -> Option<f64> {
        let total = later.1.saturating_sub(earlier.1);
        (total > 0).then(|| later.0.saturating_sub(earlier.0) as f64 / total as f64)
    }

    /// `(busy_ns, total_ns)`, to compare with later.
    pub fn reading(&self) -> (u64, u64) {
        (self.busy_ns, self.total_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;

    #[test]
    fn time_after_a_busy_poll_is_busy_and_after_an_empty_one_is_not() {
        let mut m = BusyMeter::new();
        let t = Instant::ZERO + Duration::from_micros(5);
        m.record(t, true); // a poll at t did work
        m.record(t + Duration::from_micros(3), false); // ... until t+3: 3 us busy
        m.record(t + Duration::from_micros(10), true); // empty poll and idling: 7 us
        m.record(t + Duration::from_micros(11), false); // 1 us busy
        assert_eq!(m.busy_ns(), 4_000);
        assert_eq!(m.total_ns(), 11_000);
        assert_eq!(
            BusyMeter::share_between((0, 0), m.reading()),
            Some(4.0 / 11.0)
        );
        let r = m.reading();
        assert_eq!(BusyMeter::share_between(r, m.reading()), None);
        m.record(t + Duration::from_micros(21), false); // the last poll was empty
        assert_eq!(BusyMeter::share_between(r, m.reading()), Some(0.0));
    }
}
