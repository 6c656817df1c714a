//! NewReno's window arithmetic (RFC 5681 §3.1, RFC 6582 §3.2). The retransmission choices
//! of fast recovery live in the connection; this owns cwnd, ssthresh and the byte counter
//! of congestion avoidance.
use super::{initial_window, slow_start_increase, CongestionControl};
use crate::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReno {
    cwnd: u32,
    ssthresh: u32,
    /// Bytes acknowledged since cwnd last grew in congestion avoidance (RFC 5681 §3.1,
    /// the "appropriate byte counting" variant it recommends).
    bytes_acked: u32,
}

impl NewReno {
    pub fn new(mss: u32) -> Self {
        // RFC 5681 §3.1: ssthresh SHOULD be set arbitrarily high initially.
        NewReno {
            cwnd: initial_window(mss),
            ssthresh: u32::MAX,
            bytes_acked: 0,
        }
    }
}

impl NewReno {
    pub(super) fn to_record(&self) -> super::CongestionRecord {
        super::CongestionRecord::NewReno {
            cwnd: self.cwnd,
            ssthresh: self.ssthresh,
            bytes_acked: self.bytes_acked,
        }
    }

    pub(super) fn from_record(r: &super::CongestionRecord) -> Option<NewReno> {
        match *r {
            super::CongestionRecord::NewReno {
                cwnd,
                ssthresh,
                bytes_acked,
            } if cwnd > 0 && ssthresh > 0 => Some(NewReno {
                cwnd,
                ssthresh,
                bytes_acked,
            }),
            _ => None,
        }
    }
}

/// RFC 5681 §3.1 equation (4): ssthresh = max(FlightSize / 2, 2*SMSS).
fn half_flight(flight_size: u32, mss: u32) -> u32 {
    (flight_size / 2).max(2 * mss)
}

impl CongestionControl for NewReno {
    fn cwnd(&self) -> u32 {
        self.cwnd
    }
    fn ssthresh(&self) -> u32 {
        self.ssthresh
    }
    fn set_cwnd(&mut self, cwnd: u32) {
        self.cwnd = cwnd;
    }

    fn on_ack(&mut self, _now: Instant, acked: u32, mss: u32, _srtt: Option<Duration>) {
        if self.cwnd < self.ssthresh {
            // Slow start (RFC 5681 §3.1, with byte counting: see `slow_start_increase`).
            self.cwnd = self
                .cwnd
                .saturating_add(slow_start_increase(acked, mss))
                .min(self.ssthresh.max(self.cwnd));
        } else {
            // Congestion avoidance: one SMSS per cwnd of acknowledged bytes.
            self.bytes_acked = self.bytes_acked.saturating_add(acked);
            if self.bytes_acked >= self.cwnd {
                self.bytes_acked -= self.cwnd;
                self.cwnd = self.cwnd.saturating_add(mss);
            }
        }
    }

    fn on_congestion_event(&mut self, _now: Instant, flight_size: u32, mss: u32) {
        self.ssthresh = half_flight(flight_size, mss);
        self.cwnd = self.ssthresh;
        self.bytes_acked = 0;
    }

    fn on_retransmit_timeout(&mut self, _now: Instant, flight_size: u32, mss: u32) {
        self.ssthresh = half_flight(flight_size, mss);
        // RFC 5681 §3.1: the loss window is one segment.
        self.cwnd = mss;
        self.bytes_acked = 0;
    }

    fn on_recovery_exit(&mut self, _now: Instant, _mss: u32) {
        // RFC 6582 §3.2 step 3: set cwnd to ssthresh (deflate the window).
        self.cwnd = self.ssthresh;
        self.bytes_acked = 0;
    }

    fn undo(&mut self, cwnd: u32, ssthresh: u32) {
        self.cwnd = self.cwnd.max(cwnd);
        self.ssthresh = self.ssthresh.max(ssthresh);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u32 = 1000;

    #[test]
    fn slow_start_doubles_per_round_trip() {
        let mut c = NewReno::new(MSS);
        let now = Instant::ZERO;
        assert_eq!(c.cwnd(), 10 * MSS);
        // One round trip: every segment of the window is acknowledged one by one.
        for _ in 0..10 {
            c.on_ack(now, MSS, MSS, None);
        }
        assert_eq!(c.cwnd(), 20 * MSS);
        // A stretch ACK of 4 segments counts all 4 (byte counting).
        c.on_ack(now, 4 * MSS, MSS, None);
        assert_eq!(c.cwnd(), 24 * MSS);
        // Slow start stops at ssthresh.
        c.ssthresh = 25 * MSS;
        c.on_ack(now, 4 * MSS, MSS, None);
        assert_eq!(c.cwnd(), 25 * MSS);
    }

    #[test]
    fn congestion_avoidance_adds_one_mss_per_window() {
        let mut c = NewReno::new(MSS);
        let now = Instant::ZERO;
        c.on_congestion_event(now, 20 * MSS, MSS);
        assert_eq!((c.cwnd(), c.ssthresh()), (10 * MSS, 10 * MSS));
        for _ in 0..9 {
            c.on_ack(now, MSS, MSS, None);
        }
        assert_eq!(c.cwnd(), 10 * MSS);
        c.on_ack(now, MSS, MSS, None);
        assert_eq!(c.cwnd(), 11 * MSS);
    }

    #[test]
    fn timeout_and_floor() {
        let mut c = NewReno::new(MSS);
        let now = Instant::ZERO;
        c.on_retransmit_timeout(now, 3 * MSS, MSS);
        assert_eq!(c.cwnd(), MSS);
        assert_eq!(c.ssthresh(), 2 * MSS);
        c.on_ack(now, MSS, MSS, None);
        assert_eq!(c.cwnd(), 2 * MSS);
        // Now in congestion avoidance (cwnd == ssthresh).
        c.on_ack(now, MSS, MSS, None);
        assert_eq!(c.cwnd(), 2 * MSS);
        c.set_cwnd(7 * MSS);
        c.on_recovery_exit(now, MSS);
        assert_eq!(c.cwnd(), 2 * MSS);
    }

    #[test]
    fn undo_restores_and_never_lowers() {
        // RFC 4015 §3: back to the window before the spurious reduction.
        let mut c = NewReno::new(MSS);
        let now = Instant::ZERO;
        c.on_retransmit_timeout(now, 40 * MSS, MSS);
        c.undo(40 * MSS, u32::MAX);
        assert_eq!((c.cwnd(), c.ssthresh()), (40 * MSS, u32::MAX));
        c.undo(MSS, MSS);
        assert_eq!(c.cwnd(), 40 * MSS);
    }
}
