//! Latency histograms (HdrHistogram) and the percentiles every report carries.
use hdrhistogram::Histogram;
use serde::Serialize;

/// p50, p99 and p99.9 in microseconds, with the sample count.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Percentiles {
    pub samples: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
}

/// A histogram of durations in nanoseconds, 3 significant digits, growing as needed.
#[derive(Debug, Clone)]
pub struct Latency {
    hist: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency::new()
    }
}

impl Latency {
    pub fn new() -> Latency {
        // 3 significant digits and auto-resize: the constructor cannot fail with these.
        let mut hist = Histogram::new(3).unwrap_or_else(|_| unreachable!("3 sigfig is valid"));
        hist.auto(true);
        Latency { hist }
    }

    /// Records one duration in nanoseconds (0 is recorded as 1 ns).
    #[inline]
    pub fn record_ns(&mut self, ns: u64) {
        // With auto-resize on, recording only fails for values past u64's range.
        let _ = self.hist.record(ns.max(1));
    }

    pub fn len(&self) -> u64 {
        self.hist.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hist.is_empty()
    }

    pub fn reset(&mut self) {
        self.hist.reset();
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Latency) {
        let _ = self.hist.add(&other.hist);
    }

    /// The percentiles, with every value scaled by `ns_per_unit` (1.0 when samples are ns).
    pub fn percentiles_scaled(&self, ns_per_unit: f64) -> Percentiles {
        let q = |p: f64| self.hist.value_at_quantile(p) as f64 * ns_per_unit / 1000.0;
        Percentiles {
            samples: self.hist.len(),
            p50_us: q(0.50),
            p99_us: q(0.99),
            p999_us: q(0.999),
        }
    }

    pub fn percentiles(&self) -> Percentiles {
        self.percentiles_scaled(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_spread() {
        let mut l = Latency::new();
        for us in 1..=1000u64 {
            l.record_ns(us * 1000);
        }
        let p = l.percentiles();
        assert_eq!(p.samples, 1000);
        assert!((p.p50_us - 500.0).abs() < 1.0, "{p:?}");
        assert!((p.p99_us - 990.0).abs() < 1.5, "{p:?}");
        assert!((p.p999_us - 999.0).abs() < 1.5, "{p:?}");
    }

    #[test]
    fn scaled_ticks() {
        let mut l = Latency::new();
        l.record_ns(2000); // 2000 ticks of 0.5 ns = 1 us
        assert!((l.percentiles_scaled(0.5).p50_us - 1.0).abs() < 0.01);
    }

    #[test]
    fn empty_is_zero() {
        let l = Latency::new();
        assert!(l.is_empty());
        assert_eq!(l.percentiles().p99_us, 0.0);
    }
}
