//! Engine time: a monotonic instant in nanoseconds since an arbitrary origin.
//!
//! The protocol code never reads a clock: the driver (the poll loop, or the simulator's
//! virtual clock) passes `now` in. Instants are plain integers so that state holding them
//! is `Copy`, `Send` and can be captured and moved between cores and hosts.
use core::num::NonZeroU64;
use core::ops::{Add, AddAssign, Sub};
pub use core::time::Duration;

/// A point on the engine's monotonic clock, in nanoseconds, up to [`Instant::MAX`] (the
/// clock's end, about 584 years after its origin, where arithmetic saturates).
///
/// Stored as the complement of the nanoseconds in a `NonZeroU64`, so that the one value
/// it never takes (`u64::MAX` nanoseconds) is a niche: `Option<Instant>` takes 8 bytes,
/// not 16. A connection holds several optional instants, and a core a million
/// connections.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Instant(NonZeroU64);

impl Instant {
    /// The clock's origin.
    pub const ZERO: Instant = Instant::from_nanos(0);
    /// The clock's end: `u64::MAX - 1` nanoseconds.
    pub const MAX: Instant = Instant::from_nanos(u64::MAX - 1);

    /// `ns` nanoseconds after the origin, or [`Instant::MAX`] if that is later.
    pub const fn from_nanos(ns: u64) -> Instant {
        let ns = if ns == u64::MAX { u64::MAX - 1 } else { ns };
        match NonZeroU64::new(!ns) {
            Some(v) => Instant(v),
            None => unreachable!(),
        }
    }
    pub const fn from_micros(us: u64) -> Instant {
        Instant::from_nanos(us.saturating_mul(1_000))
    }
    pub const fn from_millis(ms: u64) -> Instant {
        Instant::from_nanos(ms.saturating_mul(1_000_000))
    }
    pub const fn as_nanos(self) -> u64 {
        !self.0.get()
    }
    pub const fn as_micros(self) -> u64 {
        self.as_nanos() / 1_000
    }
    pub const fn as_millis(self) -> u64 {
        self.as_nanos() / 1_000_000
    }
    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.as_nanos().saturating_sub(earlier.as_nanos()))
    }
    /// `self - base` in signed nanoseconds (negative: before `base`), saturating. How
    /// state that crosses to another clock stores its instants (see [`Instant::rebase`]).
    pub fn offset_from(self, base: Instant) -> i64 {
        let d = i128::from(self.as_nanos()) - i128::from(base.as_nanos());
        d.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }
    /// `base + offset` (as from [`Instant::offset_from`]), saturating at the clock's
    /// origin and end.
    pub fn rebase(base: Instant, offset: i64) -> Instant {
        let t = i128::from(base.as_nanos()) + i128::from(offset);
        Instant::from_nanos(t.clamp(0, i128::from(u64::MAX)) as u64)
    }
}

impl Default for Instant {
    /// The origin.
    fn default() -> Instant {
        Instant::ZERO
    }
}

impl core::fmt::Debug for Instant {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("Instant").field(&self.as_nanos()).finish()
    }
}

impl PartialOrd for Instant {
    fn partial_cmp(&self, other: &Instant) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Instant {
    /// Earlier is less (the stored complements compare the other way round).
    fn cmp(&self, other: &Instant) -> core::cmp::Ordering {
        other.0.cmp(&self.0)
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant::from_nanos(self.as_nanos().saturating_add(nanos(d)))
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
        Instant::from_nanos(self.as_nanos().saturating_sub(nanos(d)))
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
        Instant::from_nanos(nanos(MONOTONIC_START).saturating_add(nanos(self.origin.elapsed())))
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
    fn an_optional_instant_takes_8_bytes_and_order_is_time_order() {
        assert_eq!(core::mem::size_of::<Option<Instant>>(), 8);
        let (a, b) = (Instant::from_nanos(1), Instant::from_nanos(2));
        assert!(a < b && Instant::ZERO < a && b < Instant::MAX);
        assert_eq!(
            [b, Instant::MAX, a, Instant::ZERO].iter().min(),
            Some(&Instant::ZERO)
        );
        assert_eq!(
            Instant::from_nanos(u64::MAX),
            Instant::MAX,
            "the end saturates"
        );
        assert_eq!(Instant::MAX + Duration::from_secs(1), Instant::MAX);
        assert_eq!(Instant::MAX.as_nanos(), u64::MAX - 1);
        assert_eq!(Instant::default(), Instant::ZERO);
        assert_eq!(format!("{:?}", Instant::from_nanos(7)), "Instant(7)");
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
