//! The connection's timers as data: one optional deadline per kind, no wheel, no clock.
//!
//! Owns deadlines only. The per-core timer wheel (`crate::timer`) is told the earliest
//! deadline by the connection's `poll_timeout`; nothing here reads a clock.
use crate::time::Instant;

/// The kinds of timer a connection runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerKind {
    /// RFC 6298 retransmission timer (SYN, data and FIN).
    Retransmit = 0,
    /// RFC 9293 §3.8.6.1 zero-window probe (persist) timer.
    Persist = 1,
    /// RFC 9293 §3.8.6.3 delayed acknowledgment.
    DelayedAck = 2,
    /// RFC 9293 §3.8.4 / RFC 1122 §4.2.3.6 keepalive.
    Keepalive = 3,
    /// TIME-WAIT's 2MSL and the FIN-WAIT-2 timeout.
    Close = 4,
    /// RFC 8985 loss detection: the RACK reordering timer (§6.2) or the tail loss probe
    /// timeout (§7.2), whichever the connection armed.
    LossDetection = 5,
}

impl TimerKind {
    /// Every kind, in the order timers due at the same instant run: a loss probe before
    /// the retransmission timeout it may replace (RFC 8985 §7.2).
    pub const ALL: [TimerKind; 6] = [
        TimerKind::LossDetection,
        TimerKind::Retransmit,
        TimerKind::Persist,
        TimerKind::DelayedAck,
        TimerKind::Keepalive,
        TimerKind::Close,
    ];
}

/// One optional deadline per [`TimerKind`] (8 bytes each: `Option<Instant>` uses
/// [`Instant`]'s niche; the connection is meant to stay small).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timers {
    deadlines: [Option<Instant>; 6],
}

impl Timers {
    pub fn set(&mut self, kind: TimerKind, at: Instant) {
        self.deadlines[kind as usize] = Some(at);
    }

    /// Sets the timer unless it is already running.
    pub fn set_if_idle(&mut self, kind: TimerKind, at: Instant) {
        if !self.is_set(kind) {
            self.set(kind, at);
        }
    }

    pub fn cancel(&mut self, kind: TimerKind) {
        self.deadlines[kind as usize] = None;
    }

    pub fn cancel_all(&mut self) {
        self.deadlines = [None; 6];
    }

    pub fn get(&self, kind: TimerKind) -> Option<Instant> {
        self.deadlines[kind as usize]
    }

    pub fn is_set(&self, kind: TimerKind) -> bool {
        self.deadlines[kind as usize].is_some()
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// Removes and returns the earliest timer due at `now`, if any (of timers due at the
    /// same instant, the first in [`TimerKind::ALL`]).
    pub fn pop_expired(&mut self, now: Instant) -> Option<TimerKind> {
        let kind = TimerKind::ALL
            .into_iter()
            .filter(|k| self.get(*k).is_some_and(|at| at <= now))
            .min_by_key(|k| self.deadlines[*k as usize])?;
        self.cancel(kind);
        Some(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_expires_first() {
        let mut t = Timers::default();
        assert_eq!(t.next(), None);
        t.set(TimerKind::Keepalive, Instant::from_millis(30));
        t.set(TimerKind::Retransmit, Instant::from_millis(10));
        t.set_if_idle(TimerKind::Retransmit, Instant::from_millis(5));
        assert_eq!(t.get(TimerKind::Retransmit), Some(Instant::from_millis(10)));
        assert_eq!(t.next(), Some(Instant::from_millis(10)));
        assert_eq!(t.pop_expired(Instant::from_millis(9)), None);
        assert_eq!(
            t.pop_expired(Instant::from_millis(40)),
            Some(TimerKind::Retransmit)
        );
        assert_eq!(
            t.pop_expired(Instant::from_millis(40)),
            Some(TimerKind::Keepalive)
        );
        assert_eq!(t.pop_expired(Instant::from_millis(40)), None);
    }
}
