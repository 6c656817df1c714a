//! The retransmission timeout of RFC 6298: smoothed RTT, variance, back-off.
//!
//! Owns the estimator only. Samples come from the connection (timestamps, RFC 7323 §4, or
//! one timed segment per round trip with Karn's rule); nothing here reads a clock. Values
//! are kept in microseconds in `u32`s so the state is small and `Copy`.
use crate::time::Duration;

/// RFC 6298 §2: K = 4.
const K: u32 = 4;
/// Clock granularity G of RFC 6298 §2, in microseconds.
const GRANULARITY_US: u32 = 1_000;
/// Back-off stops doubling past this many timeouts (the RTO is clamped anyway).
const MAX_BACKOFF: u8 = 16;

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// RFC 6298 estimator state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RttEstimator {
    srtt_us: u32,
    rttvar_us: u32,
    rto_us: u32,
    min_rto_us: u32,
    max_rto_us: u32,
    has_sample: bool,
    backoff: u8,
}

impl RttEstimator {
    /// RFC 6298 §2.1: before any sample the RTO is `initial` (1 s by the RFC).
    pub fn new(initial: Duration, min: Duration, max: Duration) -> Self {
        let min_rto_us = micros(min);
        let max_rto_us = micros(max).max(min_rto_us);
        RttEstimator {
            srtt_us: 0,
            rttvar_us: 0,
            rto_us: micros(initial).clamp(min_rto_us, max_rto_us),
            min_rto_us,
            max_rto_us,
            has_sample: false,
            backoff: 0,
        }
    }

    /// Takes one RTT measurement (RFC 6298 §2.2, §2.3) and collapses the back-off
    /// (§5.7: a new measurement recomputes the RTO).
    pub fn sample(&mut self, rtt: Duration) {
        let r = micros(rtt);
        if self.has_sample {
            // RTTVAR <- 3/4 RTTVAR + 1/4 |SRTT - R'|; SRTT <- 7/8 SRTT + 1/8 R'
            let delta = self.srtt_us.abs_diff(r);
            self.rttvar_us = ((3 * u64::from(self.rttvar_us) + u64::from(delta)) / 4) as u32;
            self.srtt_us = ((7 * u64::from(self.srtt_us) + u64::from(r)) / 8) as u32;
        } else {
            self.srtt_us = r;
            self.rttvar_us = r / 2;
            self.has_sample = true;
        }
        let var = self.rttvar_us.saturating_mul(K).max(GRANULARITY_US);
        // §2.4 (lower bound, configurable) and §2.5 (upper bound).
        self.rto_us = self
            .srtt_us
            .saturating_add(var)
            .clamp(self.min_rto_us, self.max_rto_us);
        self.backoff = 0;
    }

    /// RFC 6298 §5.7: after a SYN timed out, data transmission starts with an RTO of at
    /// least 3 s unless a measurement has been taken since.
    pub fn after_syn_timeout(&mut self) {
        if !self.has_sample {
            self.rto_us = self.rto_us.max(3_000_000).min(self.max_rto_us);
        }
        self.backoff = 0;
    }

    /// RFC 6298 §5.5: the timer expired; double the RTO.
    pub fn back_off(&mut self) {
        self.backoff = (self.backoff + 1).min(MAX_BACKOFF);
    }

    /// Forgets the back-off (new data was acknowledged).
    pub fn reset_backoff(&mut self) {
        self.backoff = 0;
    }

    /// The current RTO, back-off applied, within the configured bounds.
    pub fn rto(&self) -> Duration {
        let backed = u64::from(self.rto_us) << self.backoff;
        Duration::from_micros(backed.min(u64::from(self.max_rto_us)))
    }

    /// The smoothed RTT, if any sample was taken.
    pub fn srtt(&self) -> Option<Duration> {
        self.has_sample
            .then(|| Duration::from_micros(u64::from(self.srtt_us)))
    }

    pub fn rttvar(&self) -> Duration {
        Duration::from_micros(u64::from(self.rttvar_us))
    }

    pub fn backoff(&self) -> u8 {
        self.backoff
    }
}

/// An estimator as plain data, for a connection record (migration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RttRecord {
    pub srtt_us: u32,
    pub rttvar_us: u32,
    pub rto_us: u32,
    pub min_rto_us: u32,
    pub max_rto_us: u32,
    pub has_sample: bool,
    pub backoff: u8,
}

impl RttEstimator {
    pub fn to_record(&self) -> RttRecord {
        let RttEstimator {
            srtt_us,
            rttvar_us,
            rto_us,
            min_rto_us,
            max_rto_us,
            has_sample,
            backoff,
        } = *self;
        RttRecord {
            srtt_us,
            rttvar_us,
            rto_us,
            min_rto_us,
            max_rto_us,
            has_sample,
            backoff,
        }
    }

    /// The estimator of `r`, if its values are ones an estimator can hold.
    pub fn from_record(r: &RttRecord) -> Option<RttEstimator> {
        let ok = r.min_rto_us <= r.max_rto_us
            && (r.min_rto_us..=r.max_rto_us).contains(&r.rto_us)
            && r.backoff <= MAX_BACKOFF;
        ok.then_some(RttEstimator {
            srtt_us: r.srtt_us,
            rttvar_us: r.rttvar_us,
            rto_us: r.rto_us,
            min_rto_us: r.min_rto_us,
            max_rto_us: r.max_rto_us,
            has_sample: r.has_sample,
            backoff: r.backoff,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn est() -> RttEstimator {
        RttEstimator::new(
            Duration::from_secs(1),
            Duration::from_millis(200),
            Duration::from_secs(60),
        )
    }

    #[test]
    fn initial_rto_is_configured_value() {
        assert_eq!(est().rto(), Duration::from_secs(1));
        assert_eq!(est().srtt(), None);
    }

    #[test]
    fn first_and_second_sample_follow_rfc6298() {
        let mut e = est();
        e.sample(Duration::from_millis(100));
        // SRTT = 100, RTTVAR = 50, RTO = 100 + 4*50 = 300 ms.
        assert_eq!(e.srtt(), Some(Duration::from_millis(100)));
        assert_eq!(e.rto(), Duration::from_millis(300));
        e.sample(Duration::from_millis(200));
        // RTTVAR = 3/4*50 + 1/4*100 = 62.5; SRTT = 7/8*100 + 1/8*200 = 112.5
        assert_eq!(e.srtt(), Some(Duration::from_micros(112_500)));
        assert_eq!(e.rttvar(), Duration::from_micros(62_500));
        assert_eq!(e.rto(), Duration::from_micros(112_500 + 250_000));
    }

    #[test]
    fn syn_timeout_sets_three_seconds_without_sample() {
        let mut e = est();
        e.back_off();
        e.after_syn_timeout();
        assert_eq!(e.rto(), Duration::from_secs(3));
        let mut e = est();
        e.sample(Duration::from_millis(10));
        e.back_off();
        e.after_syn_timeout();
        assert_eq!(e.rto(), Duration::from_millis(200));
    }

    #[test]
    fn floor_backoff_and_ceiling() {
        let mut e = est();
        e.sample(Duration::from_micros(50));
        assert_eq!(e.rto(), Duration::from_millis(200));
        e.back_off();
        e.back_off();
        assert_eq!(e.rto(), Duration::from_millis(800));
        for _ in 0..20 {
            e.back_off();
        }
        assert_eq!(e.rto(), Duration::from_secs(60));
        e.sample(Duration::from_micros(50));
        assert_eq!(e.rto(), Duration::from_millis(200));
    }
}
