//! Congestion control behind one trait, dispatched by an enum so that the state is a plain
//! movable value (captured and restored with the connection; no trait objects).
//!
//! Owns cwnd and ssthresh and how they evolve on acknowledgments, congestion events and
//! timeouts. It does not decide what to retransmit (that is loss recovery, in the
//! connection) and reads no clock: `now` is an argument.
mod cubic;
mod newreno;

pub use cubic::Cubic;
pub use newreno::NewReno;

use super::config::CongestionAlgorithm;
use crate::time::{Duration, Instant};

/// RFC 6928 initial window: min(10*MSS, max(2*MSS, 14600)).
pub fn initial_window(mss: u32) -> u32 {
    (10 * mss).min((2 * mss).max(14_600))
}

/// Slow start's growth for an ACK of `acked` new bytes.
///
/// RFC 5681 §3.1 grows cwnd by min(N, SMSS) per ACK and RFC 3465 allows up to 2*SMSS.
/// Both assume one ACK per one or two segments. A receiver that processes bursts (GRO,
/// or a poll loop like ours that handles a whole rx burst before transmitting) sends
/// stretch ACKs, and per-ACK growth then stalls slow start; like Linux, we count every
/// acknowledged byte. The burst this allows is bounded by the ACK it answers.
pub fn slow_start_increase(acked: u32, _mss: u32) -> u32 {
    acked
}

/// What every algorithm implements. Sizes are in bytes.
pub trait CongestionControl {
    fn cwnd(&self) -> u32;
    fn ssthresh(&self) -> u32;
    /// Loss recovery adjusts cwnd directly (NewReno inflation and deflation, RFC 6582).
    fn set_cwnd(&mut self, cwnd: u32);
    /// `acked` new bytes were acknowledged outside loss recovery.
    fn on_ack(&mut self, now: Instant, acked: u32, mss: u32, srtt: Option<Duration>);
    /// Loss detected by duplicate ACKs or SACK: set ssthresh and cwnd for recovery
    /// (RFC 5681 §3.2 step 2, RFC 9438 §4.6).
    fn on_congestion_event(&mut self, now: Instant, flight_size: u32, mss: u32);
    /// The retransmission timer expired (RFC 5681 §3.1 eq. 4, RFC 9438 §4.8).
    fn on_retransmit_timeout(&mut self, now: Instant, flight_size: u32, mss: u32);
    /// Fast recovery ended with a full acknowledgment.
    fn on_recovery_exit(&mut self, now: Instant, mss: u32);
    /// The last reduction proved spurious (RFC 3708 detection): restore the window and
    /// threshold from before it (RFC 4015 §3 response), never lowering either.
    fn undo(&mut self, cwnd: u32, ssthresh: u32);
}

/// Congestion state as plain data, for a connection record (migration). Times are
/// nanoseconds relative to the capture.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CongestionRecord {
    NewReno {
        cwnd: u32,
        ssthresh: u32,
        bytes_acked: u32,
    },
    Cubic {
        cwnd: f64,
        ssthresh: u32,
        w_max: f64,
        cwnd_prior: f64,
        k: f64,
        w_est: f64,
        epoch_start: Option<i64>,
    },
}

impl Congestion {
    /// The state as a record, times relative to `base`.
    pub fn to_record(&self, base: Instant) -> CongestionRecord {
        match self {
            Congestion::NewReno(c) => c.to_record(),
            Congestion::Cubic(c) => c.to_record(base),
        }
    }

    /// The state of `r` with its times rebased on `now`, if its values are ones the
    /// algorithm can hold (finite, non-negative windows).
    pub fn from_record(r: &CongestionRecord, now: Instant) -> Option<Congestion> {
        match *r {
            CongestionRecord::NewReno { .. } => NewReno::from_record(r).map(Congestion::NewReno),
            CongestionRecord::Cubic { .. } => Cubic::from_record(r, now).map(Congestion::Cubic),
        }
    }
}

/// The algorithm in use, as a value.
#[derive(Debug, Clone, PartialEq)]
pub enum Congestion {
    NewReno(NewReno),
    Cubic(Cubic),
}

impl Congestion {
    pub fn new(algorithm: CongestionAlgorithm, mss: u32) -> Self {
        match algorithm {
            CongestionAlgorithm::NewReno => Congestion::NewReno(NewReno::new(mss)),
            CongestionAlgorithm::Cubic => Congestion::Cubic(Cubic::new(mss)),
        }
    }

    pub fn algorithm(&self) -> CongestionAlgorithm {
        match self {
            Congestion::NewReno(_) => CongestionAlgorithm::NewReno,
            Congestion::Cubic(_) => CongestionAlgorithm::Cubic,
        }
    }

    fn inner(&self) -> &dyn CongestionControl {
        match self {
            Congestion::NewReno(c) => c,
            Congestion::Cubic(c) => c,
        }
    }

    fn inner_mut(&mut self) -> &mut dyn CongestionControl {
        match self {
            Congestion::NewReno(c) => c,
            Congestion::Cubic(c) => c,
        }
    }
}

impl CongestionControl for Congestion {
    fn cwnd(&self) -> u32 {
        self.inner().cwnd()
    }
    fn ssthresh(&self) -> u32 {
        self.inner().ssthresh()
    }
    fn set_cwnd(&mut self, cwnd: u32) {
        self.inner_mut().set_cwnd(cwnd)
    }
    fn on_ack(&mut self, now: Instant, acked: u32, mss: u32, srtt: Option<Duration>) {
        self.inner_mut().on_ack(now, acked, mss, srtt)
    }
    fn on_congestion_event(&mut self, now: Instant, flight_size: u32, mss: u32) {
        self.inner_mut().on_congestion_event(now, flight_size, mss)
    }
    fn on_retransmit_timeout(&mut self, now: Instant, flight_size: u32, mss: u32) {
        self.inner_mut()
            .on_retransmit_timeout(now, flight_size, mss)
    }
    fn on_recovery_exit(&mut self, now: Instant, mss: u32) {
        self.inner_mut().on_recovery_exit(now, mss)
    }
    fn undo(&mut self, cwnd: u32, ssthresh: u32) {
        self.inner_mut().undo(cwnd, ssthresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6928_initial_window() {
        assert_eq!(initial_window(1460), 14_600);
        assert_eq!(initial_window(536), 5_360);
        assert_eq!(initial_window(8960), 17_920);
    }

    #[test]
    fn enum_dispatch_selects_algorithm() {
        let c = Congestion::new(CongestionAlgorithm::NewReno, 1000);
        assert_eq!(c.algorithm(), CongestionAlgorithm::NewReno);
        let c = Congestion::new(CongestionAlgorithm::Cubic, 1000);
        assert_eq!(c.algorithm(), CongestionAlgorithm::Cubic);
        assert_eq!(c.cwnd(), 10_000);
    }
}
