//! Engine time: a monotonic instant in nanoseconds since an arbitrary origin.
//!
//! The protocol code never reads a clock: the driver (the poll loop, or the simulator's
//! virtual clock) passes `now` in. Instants are plain integers so that state holding them
//! is `Copy`, `Send` and can be captured and moved between cores and hosts.
use core::ops::{Add, AddAssign, Sub};
pub use core::time::Duration;

/// A point on the engine's monotonic clock, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    /// The clock's origin.
    pub const ZERO: Instant = Instant(0);

    pub const fn from_nanos(ns: u64) -> Instant {
        Instant(ns)
    }
    pub const fn from_micros(us: u64) -> Instant {
        Instant(us * 1_000)
    }
    pub const fn from_millis(ms: u64) -> Instant {
        Instant(ms * 1_000_000)
    }
    pub const fn as_nanos(self) -> u64 {
        self.0
    }
    pub const fn as_micros(self) -> u64 {
        self.0 / 1_000
    }
    pub const fn as_millis(self) -> u64 {
        self.0 / 1_000_000
    }
    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
    /// `self - base` in signed nanoseconds (negative: before `base`), saturating. How
    /// state that crosses to another clock stores its instants (see [`Instant::rebase`]).
    pub fn offset_from(self, base: Instant) -> i64 {
        let d = i128::from(self.0) - i128::from(base.0);
        d.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }
    /// `base + offset` (as from [`Instant::offset_from`]), saturating at the clock's
    /// origin and end.
    pub fn rebase(base: Instant, offset: i64) -> Instant {
        let t = i128::from(base.0) + i128::from(offset);
        Instant(t.clamp(0, i128::from(u64::MAX)) as u64)
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(nanos(d)))
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, d: Duration) -> Instant {
        Instant(self.0.saturating_sub(nanos(d)))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

/// A source of `now` for drivers. Protocol code takes `Instant` arguments instead.
pub trait Clock {
    fn now(&self) -> Instant;
}

/// How far after the clock's origin a [`MonotonicClock`] starts: instants of state
/// captured on another clock (a migrated connection's send times, say) that lie up to this
/// far in the past can be rebased without clamping at the origin.
pub const MONOTONIC_START: Duration = Duration::from_secs(24 * 3600);

/// The host's monotonic clock: [`MONOTONIC_START`] at construction.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    origin: std::time::Instant,
}

impl MonotonicClock {
    pub fn new() -> Self {
        MonotonicClock {
            origin: std::time::Instant::now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Instant {
        Instant(nanos(MONOTONIC_START).saturating_add(nanos(self.origin.elapsed())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_rebase_onto_another_clock() {
        let base = Instant::from_millis(10_000);
        let past = Instant::from_millis(9_000);
        let future = Instant::from_millis(10_500);
        assert_eq!(past.offset_from(base), -1_000_000_000);
        assert_eq!(future.offset_from(base), 500_000_000);
        let other = Instant::from_millis(50);
        assert_eq!(
            Instant::rebase(other, future.offset_from(base)),
            Instant::from_millis(550)
        );
        // Before the other clock's origin: its origin.
        assert_eq!(
            Instant::rebase(other, past.offset_from(base)),
            Instant::ZERO
        );
        assert_eq!(Instant::rebase(Instant::ZERO, i64::MIN), Instant::ZERO);
        assert_eq!(
            Instant::rebase(Instant::from_nanos(u64::MAX), i64::MAX),
            Instant::from_nanos(u64::MAX)
        );
    }

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_millis(5);
        assert_eq!((t + Duration::from_millis(2)).as_millis(), 7);
        assert_eq!((t - Duration::from_secs(1)), Instant::ZERO);
        assert_eq!(Instant::ZERO - t, Duration::ZERO);
        assert_eq!(t - Instant::from_millis(2), Duration::from_millis(3));
    }
}
