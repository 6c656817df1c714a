//! CUBIC (RFC 9438): the window grows as a cubic function of the time since the last
//! congestion event, with a Reno-friendly region and fast convergence.
//!
//! Owns cwnd, ssthresh and the epoch state. Window arithmetic is done in segments as
//! `f64` (as the RFC writes it) and exposed in bytes. Time comes in as `now`.
use super::{initial_window, slow_start_increase, CongestionControl};
use crate::time::{Duration, Instant};

/// RFC 9438 §4.5: β_cubic.
const BETA: f64 = 0.7;
/// RFC 9438 §4.5: C.
const C: f64 = 0.4;
/// RFC 9438 §4.3: α_cubic = 3 (1 - β) / (1 + β).
const ALPHA: f64 = 3.0 * (1.0 - BETA) / (1.0 + BETA);

#[derive(Debug, Clone, PartialEq)]
pub struct Cubic {
    /// Congestion window, in bytes (fractional growth accumulates).
    cwnd: f64,
    ssthresh: u32,
    /// W_max: the window just before the last reduction, in segments.
    w_max: f64,
    /// The window before the last reduction (cwnd_prior of §4.6), in segments.
    cwnd_prior: f64,
    /// K of §4.2, in seconds.
    k: f64,
    /// W_est of §4.3, in segments.
    w_est: f64,
    /// The start of the current congestion-avoidance epoch.
    epoch_start: Option<Instant>,
}

impl Cubic {
    pub fn new(mss: u32) -> Self {
        Cubic {
            cwnd: f64::from(initial_window(mss)),
            ssthresh: u32::MAX,
            w_max: 0.0,
            cwnd_prior: 0.0,
            k: 0.0,
            w_est: 0.0,
            epoch_start: None,
        }
    }

    pub(super) fn to_record(&self, base: Instant) -> super::CongestionRecord {
        super::CongestionRecord::Cubic {
            cwnd: self.cwnd,
            ssthresh: self.ssthresh,
            w_max: self.w_max,
            cwnd_prior: self.cwnd_prior,
            k: self.k,
            w_est: self.w_est,
            epoch_start: self.epoch_start.map(|t| t.offset_from(base)),
        }
    }

    pub(super) fn from_record(r: &super::CongestionRecord, now: Instant) -> Option<Cubic> {
        let super::CongestionRecord::Cubic {
            cwnd,
            ssthresh,
            w_max,
            cwnd_prior,
            k,
            w_est,
            epoch_start,
        } = *r
        else {
            return None;
        };
        // Windows in segments or bytes, K in seconds: finite, not negative, and far
        // below anything a 32-bit sequence space allows.
        let sane = |x: f64| x.is_finite() && (0.0..=1e12).contains(&x);
        let ok = sane(cwnd)
            && cwnd >= 1.0
            && ssthresh > 0
            && [w_max, cwnd_prior, k, w_est].into_iter().all(sane);
        ok.then(|| Cubic {
            cwnd,
            ssthresh,
            w_max,
            cwnd_prior,
            k,
            w_est,
            epoch_start: epoch_start.map(|o| Instant::rebase(now, o)),
        })
    }

    /// W_cubic(t) of §4.2 eq. (1), in segments.
    fn w_cubic(&self, t: f64) -> f64 {
        C * (t - self.k).powi(3) + self.w_max
    }

    /// K of §4.2 eq. (2), with W_max and the window at the start of the epoch.
    pub fn k(&self) -> f64 {
        self.k
    }

    pub fn w_max_segments(&self) -> f64 {
        self.w_max
    }

    /// §4.6 and §4.7: remember W_max (with fast convergence) and reduce ssthresh.
    fn reduce(&mut self, mss: u32) {
        let seg = f64::from(mss);
        let cwnd_seg = self.cwnd / seg;
        // §4.7 fast convergence: a window below the previous W_max means the available
        // bandwidth shrank; release more of it.
        self.w_max = if cwnd_seg < self.w_max {
            cwnd_seg * (1.0 + BETA) / 2.0
        } else {
            cwnd_seg
        };
        self.cwnd_prior = cwnd_seg;
        // §4.6: ssthresh = cwnd * β, at least 2 segments.
        let ssthresh = (self.cwnd * BETA).max(2.0 * seg);
        self.ssthresh = ssthresh as u32;
        self.epoch_start = None;
    }

    fn start_epoch(&mut self, now: Instant, mss: u32) {
        let seg = f64::from(mss);
        let cwnd_seg = self.cwnd / seg;
        self.epoch_start = Some(now);
        if cwnd_seg < self.w_max {
            // §4.2 eq. (2): K = cbrt((W_max - cwnd_epoch) / C).
            self.k = ((self.w_max - cwnd_seg) / C).cbrt();
        } else {
            self.k = 0.0;
            self.w_max = cwnd_seg;
        }
        self.w_est = cwnd_seg;
    }
}

impl CongestionControl for Cubic {
    fn cwnd(&self) -> u32 {
        self.cwnd as u32
    }
    fn ssthresh(&self) -> u32 {
        self.ssthresh
    }
    fn set_cwnd(&mut self, cwnd: u32) {
        self.cwnd = f64::from(cwnd);
    }

    fn on_ack(&mut self, now: Instant, acked: u32, mss: u32, srtt: Option<Duration>) {
        let seg = f64::from(mss);
        if (self.cwnd as u32) < self.ssthresh {
            // §4.10: slow start as RFC 5681 (with byte counting: see `slow_start_increase`).
            let grown = self.cwnd + f64::from(slow_start_increase(acked, mss));
            self.cwnd = grown.min(f64::from(self.ssthresh).max(self.cwnd));
            return;
        }
        if self.epoch_start.is_none() {
            self.start_epoch(now, mss);
        }
        let Some(epoch) = self.epoch_start else {
            return;
        };
        let cwnd_seg = self.cwnd / seg;
        let acked_seg = f64::from(acked) / seg;
        let rtt = srtt.unwrap_or(Duration::from_millis(100)).as_secs_f64();
        let t = (now - epoch).as_secs_f64();

        // §4.3 Reno-friendly estimate: α_cubic until W_est reaches cwnd_prior, then 1.
        let alpha = if self.w_est >= self.cwnd_prior {
            1.0
        } else {
            ALPHA
        };
        self.w_est += alpha * acked_seg / cwnd_seg;

        if self.w_cubic(t) < self.w_est {
            // §4.3: the Reno-friendly region.
            self.cwnd = self.w_est * seg;
        } else {
            // §4.4 / §4.5: aim at W_cubic one RTT ahead, clamped to [cwnd, 1.5 cwnd].
            let target = self.w_cubic(t + rtt).clamp(cwnd_seg, 1.5 * cwnd_seg);
            self.cwnd += (target - cwnd_seg) / cwnd_seg * acked_seg * seg;
        }
    }

    fn on_congestion_event(&mut self, _now: Instant, _flight_size: u32, mss: u32) {
        self.reduce(mss);
        self.cwnd = f64::from(self.ssthresh);
    }

    fn on_retransmit_timeout(&mut self, _now: Instant, _flight_size: u32, mss: u32) {
        // §4.8: as a congestion event for ssthresh, then cwnd = 1 segment (RFC 5681).
        self.reduce(mss);
        self.cwnd = f64::from(mss);
    }

    fn on_recovery_exit(&mut self, _now: Instant, _mss: u32) {
        self.cwnd = f64::from(self.ssthresh);
    }

    fn undo(&mut self, cwnd: u32, ssthresh: u32) {
        self.cwnd = self.cwnd.max(f64::from(cwnd));
        self.ssthresh = self.ssthresh.max(ssthresh);
        // W_max is the window the spurious event recorded (the one restored); the next
        // congestion-avoidance epoch starts from there.
        self.epoch_start = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u32 = 1000;

    fn ack_round(c: &mut Cubic, now: Instant, rtt: Duration) {
        // Acknowledge one window's worth, one segment per ACK.
        let segments = c.cwnd() / MSS;
        for _ in 0..segments {
            c.on_ack(now, MSS, MSS, Some(rtt));
        }
    }

    #[test]
    fn reduction_is_beta_and_k_matches_formula() {
        let mut c = Cubic::new(MSS);
        c.set_cwnd(100 * MSS);
        c.ssthresh = 50 * MSS;
        c.on_congestion_event(Instant::ZERO, 100 * MSS, MSS);
        assert_eq!(c.cwnd(), 70 * MSS);
        assert_eq!(c.ssthresh(), 70 * MSS);
        assert_eq!(c.w_max_segments(), 100.0);
        c.on_ack(Instant::ZERO, MSS, MSS, Some(Duration::from_millis(10)));
        // K = cbrt((100 - 70) / 0.4) = cbrt(75)
        assert!((c.k() - 75f64.cbrt()).abs() < 1e-3, "K = {}", c.k());
    }

    #[test]
    fn concave_then_convex_growth_around_w_max() {
        let mut c = Cubic::new(MSS);
        c.set_cwnd(100 * MSS);
        c.on_congestion_event(Instant::ZERO, 100 * MSS, MSS);
        let rtt = Duration::from_millis(100);
        let mut now = Instant::ZERO;
        let mut history = vec![];
        for _ in 0..80 {
            now += rtt;
            ack_round(&mut c, now, rtt);
            history.push(c.cwnd() / MSS);
        }
        // Never above 1.5x per round, monotonic, plateau near W_max at t ~ K (4.2 s), and
        // beyond W_max afterwards.
        assert!(history.windows(2).all(|w| w[1] >= w[0]), "{history:?}");
        let at_k = history[41];
        assert!(
            (95..=102).contains(&at_k),
            "cwnd at K = {at_k}, {history:?}"
        );
        let early_growth = history[10] - history[0];
        let plateau_growth = history[45] - history[37];
        assert!(plateau_growth < early_growth, "{history:?}");
        assert!(*history.last().unwrap() > 110, "{history:?}");
    }

    #[test]
    fn fast_convergence_lowers_w_max() {
        let mut c = Cubic::new(MSS);
        c.set_cwnd(100 * MSS);
        c.on_congestion_event(Instant::ZERO, 0, MSS);
        assert_eq!(c.w_max_segments(), 100.0);
        // A second loss below W_max: W_max = 70 * (1 + 0.7) / 2 = 59.5
        c.on_congestion_event(Instant::ZERO, 0, MSS);
        assert!((c.w_max_segments() - 59.5).abs() < 1e-9);
        assert_eq!(c.cwnd(), 49 * MSS);
    }

    #[test]
    fn timeout_collapses_to_one_segment_and_slow_starts() {
        let mut c = Cubic::new(MSS);
        c.set_cwnd(40 * MSS);
        c.on_retransmit_timeout(Instant::ZERO, 40 * MSS, MSS);
        assert_eq!(c.cwnd(), MSS);
        assert_eq!(c.ssthresh(), 28 * MSS);
        c.on_ack(Instant::ZERO, MSS, MSS, None);
        assert_eq!(c.cwnd(), 2 * MSS);
    }

    #[test]
    fn undo_restores_the_window_before_a_spurious_timeout() {
        // RFC 4015 §3 response to an RFC 3708 detection.
        let mut c = Cubic::new(MSS);
        c.set_cwnd(40 * MSS);
        c.on_retransmit_timeout(Instant::ZERO, 40 * MSS, MSS);
        c.undo(40 * MSS, u32::MAX);
        assert_eq!((c.cwnd(), c.ssthresh()), (40 * MSS, u32::MAX));
    }

    #[test]
    fn reno_friendly_region_on_short_rtt() {
        // With a tiny RTT, the cubic curve is flat for many ACKs; W_est must still grow.
        let mut c = Cubic::new(MSS);
        c.set_cwnd(20 * MSS);
        c.on_congestion_event(Instant::ZERO, 0, MSS);
        let start = c.cwnd();
        let rtt = Duration::from_micros(100);
        let mut now = Instant::ZERO;
        for _ in 0..50 {
            now += rtt;
            ack_round(&mut c, now, rtt);
        }
        assert!(c.cwnd() > start + 10 * MSS, "{} -> {}", start, c.cwnd());
    }
}
