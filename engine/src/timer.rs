//! The per-core timer wheel: millions of coarse timers, O(1) to arm and to cancel.
//!
//! Owns: a hierarchical timing wheel ([`TimerWheel`]) holding small `Copy` payloads (a
//! connection id and a timer kind, say) in a slab, addressed by [`TimerHandle`]s that carry
//! a generation so that a stale handle can never cancel or move somebody else's timer.
//!
//! May not: read a clock (time arrives as `now` arguments), allocate per timer beyond the
//! slab's amortised growth, or call back into the caller while it holds a borrow of the
//! wheel (callbacks run on values that have already left the wheel).
//!
//! # Shape
//! Time is counted in ticks of a configurable length (1 ms suits TCP: RTOs are at least
//! 200 ms to 1 s, delayed ACKs 40 to 200 ms). [`LEVELS`] levels of [`SLOTS`] slots each cover
//! 2^36 ticks (about 2.2 years at 1 ms); level `l` slot `s` holds the timers whose tick
//! agrees with the wheel's position on every digit above `l` and has digit `s` at `l`
//! (base 64). Later timers sit in one overflow list that is revisited each time the wheel
//! enters a new 2^36-tick block. Each slot is an intrusive doubly linked list threaded
//! through the slab, and each level has a 64-bit occupancy mask, so:
//! - arm, cancel and rearm are O(1);
//! - advancing skips empty slots with one `trailing_zeros` per level, and each timer moves
//!   down at most `LEVELS - 1` times before it fires;
//! - [`TimerWheel::next_deadline`] is O(LEVELS).
//!
//! # When a timer fires
//! A deadline `d` is rounded up to the tick `ceil(d / tick)`; an advance to `now` fires
//! every timer whose rounded tick is at most `floor(now / tick)`. Hence a timer never fires
//! before its deadline, and fires at the first advance at or after its deadline rounded up
//! to the tick: at most one tick late if the caller advances at every tick boundary.
//! Timers due at the same advance fire in non-decreasing tick order; the order among timers
//! of the same tick is unspecified but deterministic. (A deadline in the last, partial tick
//! of the `u64` nanosecond range rounds up past every instant and so never fires: use it
//! as "never".)
use crate::time::{Duration, Instant};

/// Number of levels of the wheel.
pub const LEVELS: usize = 6;
/// Slots per level (one bit each in a `u64` occupancy mask).
pub const SLOTS: usize = 64;
const SLOT_BITS: u32 = 6;
/// Ticks covered by the wheel levels before the overflow list takes over.
const WHEEL_BITS: u32 = SLOT_BITS * LEVELS as u32;

const NIL: u32 = u32::MAX;
/// Index of the list of timers that were already due when armed.
const LIST_DUE: u16 = (LEVELS * SLOTS) as u16;
/// Index of the list of timers beyond the wheel's range.
const LIST_OVERFLOW: u16 = LIST_DUE + 1;
const LIST_COUNT: usize = LIST_OVERFLOW as usize + 1;
/// Marks a slab entry as free.
const LIST_FREE: u16 = u16::MAX;

/// The largest number of timers one wheel can hold (slab indices are `u32`, one value is
/// reserved as the list terminator).
pub const MAX_TIMERS: usize = (u32::MAX - 1) as usize;

/// Names one armed timer. Copy it freely: once the timer fired or was cancelled, its
/// handle is stale and every operation on it is a no-op that says so.
///
/// The generation makes stale handles safe; it is 32 bits, so a handle would have to be
/// kept through four billion reuses of the same slab slot to alias a new timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerHandle {
    index: u32,
    generation: u32,
}

/// Why a wheel operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum TimerError {
    /// The wheel already holds as many timers as its limit allows.
    #[error("timer wheel full ({limit} timers)")]
    Full { limit: usize },
    /// The handle's timer already fired or was cancelled.
    #[error("stale timer handle")]
    Stale,
}

#[derive(Debug, Clone)]
struct Entry<T> {
    /// The deadline rounded up to the tick.
    tick: u64,
    prev: u32,
    next: u32,
    generation: u32,
    /// Which list the entry is on, or `LIST_FREE`.
    list: u16,
    /// The payload; a free entry keeps its last (dead) value, harmless since `T: Copy`.
    value: T,
}

/// A hierarchical timer wheel holding payloads of type `T`. See the module documentation.
#[derive(Debug, Clone)]
pub struct TimerWheel<T> {
    /// Tick length in nanoseconds, at least 1.
    tick_ns: u64,
    /// Every timer whose tick is at most `elapsed` has fired (or sits on the due list).
    elapsed: u64,
    entries: Vec<Entry<T>>,
    free_head: u32,
    /// Head of each list: `LEVELS * SLOTS` slots, then the due and overflow lists.
    heads: Vec<u32>,
    occupied: [u64; LEVELS],
    /// A lower bound of the ticks on the overflow list (`u64::MAX` when it is empty).
    overflow_min: u64,
    len: usize,
    limit: usize,
}

impl<T: Copy> TimerWheel<T> {
    /// A wheel with ticks of `tick`, positioned at the clock's origin. A zero tick is taken
    /// as 1 ns and a tick longer than `u64::MAX` ns as `u64::MAX` ns.
    pub fn new(tick: Duration) -> Self {
        Self::starting_at(tick, Instant::ZERO)
    }

    /// A wheel with ticks of `tick` whose first advance will be at or after `now`: timers
    /// armed before `now` are due at the first advance.
    pub fn starting_at(tick: Duration, now: Instant) -> Self {
        let tick_ns = u64::try_from(tick.as_nanos()).unwrap_or(u64::MAX).max(1);
        TimerWheel {
            tick_ns,
            elapsed: now.as_nanos() / tick_ns,
            entries: Vec::new(),
            free_head: NIL,
            heads: vec![NIL; LIST_COUNT],
            occupied: [0; LEVELS],
            overflow_min: u64::MAX,
            len: 0,
            limit: MAX_TIMERS,
        }
    }

    /// Caps the number of timers held at once (at most [`MAX_TIMERS`]); [`Self::arm`]
    /// fails with [`TimerError::Full`] beyond it.
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = limit.min(MAX_TIMERS);
        self
    }

    /// Reserves slab room for `additional` more timers, so that arming them later does not
    /// reallocate on the data path.
    pub fn reserve(&mut self, additional: usize) {
        let free = self.entries.len() - self.len;
        if additional > free {
            self.entries.reserve(additional - free);
        }
    }

    /// The tick length.
    pub fn tick(&self) -> Duration {
        Duration::from_nanos(self.tick_ns)
    }

    /// Bytes allocated for the timers (armed or free) and the list heads.
    pub fn allocation_bytes(&self) -> usize {
        self.entries.capacity() * core::mem::size_of::<Entry<T>>()
            + self.heads.capacity() * core::mem::size_of::<u32>()
    }

    /// Number of armed timers.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The instant up to which the wheel has advanced, rounded down to the tick.
    pub fn position(&self) -> Instant {
        self.tick_instant(self.elapsed)
    }

    /// Arms a timer carrying `value` that fires at the first advance at or after
    /// `deadline` rounded up to the tick. A deadline already passed fires at the next
    /// advance.
    pub fn arm(&mut self, deadline: Instant, value: T) -> Result<TimerHandle, TimerError> {
        if self.len >= self.limit {
            return Err(TimerError::Full { limit: self.limit });
        }
        let tick = self.deadline_tick(deadline);
        let index = match self.free_head {
            NIL => {
                // `len < limit <= MAX_TIMERS` and every entry is either live or free, and the
                // free list is empty, so `entries.len() == len < MAX_TIMERS < u32::MAX`.
                let index = self.entries.len() as u32;
                self.entries.push(Entry {
                    tick,
                    prev: NIL,
                    next: NIL,
                    generation: 0,
                    list: LIST_FREE,
                    value,
                });
                index
            }
            index => {
                let entry = &mut self.entries[index as usize];
                self.free_head = entry.next;
                entry.tick = tick;
                entry.value = value;
                index
            }
        };
        self.len += 1;
        self.place(index);
        Ok(TimerHandle {
            index,
            generation: self.entries[index as usize].generation,
        })
    }

    /// Cancels a timer, returning its value, or `None` if the handle is stale.
    pub fn cancel(&mut self, handle: TimerHandle) -> Option<T> {
        self.live(handle)?;
        self.unlink(handle.index);
        Some(self.release(handle.index))
    }

    /// Moves a timer to a new deadline, keeping its handle and value.
    pub fn rearm(&mut self, handle: TimerHandle, deadline: Instant) -> Result<(), TimerError> {
        self.live(handle).ok_or(TimerError::Stale)?;
        let tick = self.deadline_tick(deadline);
        self.unlink(handle.index);
        self.entries[handle.index as usize].tick = tick;
        self.place(handle.index);
        Ok(())
    }

    /// Whether the handle names an armed timer.
    pub fn is_armed(&self, handle: TimerHandle) -> bool {
        self.live(handle).is_some()
    }

    /// The value of an armed timer.
    pub fn value(&self, handle: TimerHandle) -> Option<&T> {
        self.live(handle).map(|entry| &entry.value)
    }

    /// The instant an armed timer is due: its deadline rounded up to the tick.
    pub fn deadline(&self, handle: TimerHandle) -> Option<Instant> {
        let entry = self.live(handle)?;
        Some(self.tick_instant(entry.tick))
    }

    /// Fires every timer due at `now`, calling `fire` with each value, in non-decreasing
    /// deadline order (ties in unspecified order). Returns how many fired.
    ///
    /// Time never goes backwards here: a `now` earlier than a previous advance is taken as
    /// that advance's time. `fire` cannot touch the wheel; to arm timers from expiries, use
    /// [`Self::expire`] and walk the vector afterwards.
    pub fn advance(&mut self, now: Instant, mut fire: impl FnMut(T)) -> usize {
        let target = (now.as_nanos() / self.tick_ns).max(self.elapsed);
        let mut fired = self.fire_list(LIST_DUE, &mut fire);
        while let Some((list, start)) = self.next_event() {
            if start > target {
                break;
            }
            self.elapsed = start;
            if list == LIST_OVERFLOW {
                self.overflow_min = u64::MAX;
            } else if list < SLOTS as u16 {
                fired += self.fire_list(list, &mut fire);
                continue;
            }
            // A higher slot (or the overflow list) whose time has come: move its timers
            // down relative to the new position; those due exactly now fire.
            let mut cursor = self.take_list(list);
            while cursor != NIL {
                let next = self.entries[cursor as usize].next;
                if self.entries[cursor as usize].tick <= self.elapsed {
                    fire(self.release(cursor));
                    fired += 1;
                } else {
                    self.place(cursor);
                }
                cursor = next;
            }
        }
        self.elapsed = target;
        fired
    }

    /// Like [`Self::advance`], appending the values that fired to `out`. Returns how many
    /// fired.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<T>) -> usize {
        self.advance(now, |value| out.push(value))
    }

    /// When the next advance may have work to do, for a caller deciding how long to sleep.
    ///
    /// Never later than the instant the earliest timer fires (its deadline rounded up to
    /// the tick). Exact when that timer is within the 64 ticks after the wheel's position;
    /// otherwise it may be earlier, at the start of the higher-level slot holding that
    /// timer: advancing to it then fires nothing and only moves timers down a level (at
    /// most `LEVELS - 1` such wake-ups per timer). A timer already due when armed yields the
    /// wheel's position, which is not after any `now` already passed to [`Self::advance`].
    /// `None` when no timer is armed.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.heads[LIST_DUE as usize] != NIL {
            return Some(self.tick_instant(self.elapsed));
        }
        self.next_event().map(|(_, tick)| self.tick_instant(tick))
    }

    /// Cancels every timer.
    pub fn clear(&mut self) {
        for list in 0..LIST_COUNT as u16 {
            let mut cursor = self.take_list(list);
            while cursor != NIL {
                let next = self.entries[cursor as usize].next;
                self.release(cursor);
                cursor = next;
            }
        }
        self.overflow_min = u64::MAX;
    }

    fn deadline_tick(&self, deadline: Instant) -> u64 {
        let ns = deadline.as_nanos();
        ns.div_ceil(self.tick_ns)
    }

    fn tick_instant(&self, tick: u64) -> Instant {
        Instant::from_nanos(tick.saturating_mul(self.tick_ns))
    }

    fn live(&self, handle: TimerHandle) -> Option<&Entry<T>> {
        let entry = self.entries.get(handle.index as usize)?;
        (entry.list != LIST_FREE && entry.generation == handle.generation).then_some(entry)
    }

    /// Links an unlinked entry into the list its tick belongs to, relative to `elapsed`.
    fn place(&mut self, index: u32) {
        let tick = self.entries[index as usize].tick;
        let list = if tick <= self.elapsed {
            LIST_DUE
        } else {
            // The highest base-64 digit where the tick and the position differ; the tick is
            // later, so its digit there is larger than the position's.
            let level = (63 - (tick ^ self.elapsed).leading_zeros()) / SLOT_BITS;
            if level as usize >= LEVELS {
                self.overflow_min = self.overflow_min.min(tick);
                LIST_OVERFLOW
            } else {
                let slot = (tick >> (level * SLOT_BITS)) as usize & (SLOTS - 1);
                self.occupied[level as usize] |= 1 << slot;
                (level as usize * SLOTS + slot) as u16
            }
        };
        let head = self.heads[list as usize];
        let entry = &mut self.entries[index as usize];
        entry.list = list;
        entry.prev = NIL;
        entry.next = head;
        if head != NIL {
            self.entries[head as usize].prev = index;
        }
        self.heads[list as usize] = index;
    }

    /// Unlinks a linked entry from its list (leaving it allocated).
    fn unlink(&mut self, index: u32) {
        let Entry {
            prev, next, list, ..
        } = self.entries[index as usize];
        if prev == NIL {
            self.heads[list as usize] = next;
            if next == NIL {
                self.list_emptied(list);
            }
        } else {
            self.entries[prev as usize].next = next;
        }
        if next != NIL {
            self.entries[next as usize].prev = prev;
        }
    }

    fn list_emptied(&mut self, list: u16) {
        if (list as usize) < LEVELS * SLOTS {
            self.occupied[list as usize / SLOTS] &= !(1 << (list as usize % SLOTS));
        } else if list == LIST_OVERFLOW {
            self.overflow_min = u64::MAX;
        }
    }

    /// Detaches a whole list and returns its first entry; the entries keep their `next`
    /// links, so the caller walks them and must re-place or release every one.
    fn take_list(&mut self, list: u16) -> u32 {
        let head = std::mem::replace(&mut self.heads[list as usize], NIL);
        if head != NIL {
            self.list_emptied(list);
        }
        head
    }

    /// Releases every entry of a list, calling `fire` with each value.
    fn fire_list(&mut self, list: u16, fire: &mut impl FnMut(T)) -> usize {
        let mut cursor = self.take_list(list);
        let mut fired = 0;
        while cursor != NIL {
            let next = self.entries[cursor as usize].next;
            fire(self.release(cursor));
            fired += 1;
            cursor = next;
        }
        fired
    }

    /// Frees an entry that is no longer on any list and returns its value.
    fn release(&mut self, index: u32) -> T {
        let free_head = self.free_head;
        let entry = &mut self.entries[index as usize];
        entry.list = LIST_FREE;
        entry.generation = entry.generation.wrapping_add(1);
        entry.next = free_head;
        entry.prev = NIL;
        self.free_head = index;
        self.len -= 1;
        entry.value
    }

    /// The earliest non-empty slot (or the overflow list) and the tick at which the wheel
    /// must visit it. The due list is not considered.
    fn next_event(&self) -> Option<(u16, u64)> {
        for (level, &mask) in self.occupied.iter().enumerate() {
            if mask != 0 {
                let slot = u64::from(mask.trailing_zeros());
                let shift = level as u32 * SLOT_BITS;
                let block = self.elapsed & !low_mask(shift + SLOT_BITS);
                return Some((
                    (level * SLOTS) as u16 + slot as u16,
                    block | (slot << shift),
                ));
            }
        }
        if self.heads[LIST_OVERFLOW as usize] != NIL {
            // `overflow_min` is a lower bound of the ticks on the list and lies in a later
            // block than `elapsed`, so the start of its block is in the future.
            let start = self.overflow_min & !low_mask(WHEEL_BITS);
            return Some((LIST_OVERFLOW, start.max(self.elapsed)));
        }
        None
    }
}

fn low_mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Instant {
        Instant::from_millis(v)
    }

    #[test]
    fn fires_at_deadline_not_before() {
        let mut wheel = TimerWheel::new(Duration::from_millis(1));
        let h = wheel.arm(ms(10), 7u32).unwrap();
        let mut out = Vec::new();
        assert_eq!(wheel.expire(ms(9), &mut out), 0);
        assert!(wheel.is_armed(h));
        assert_eq!(wheel.expire(ms(10), &mut out), 1);
        assert_eq!(out, vec![7]);
        assert!(!wheel.is_armed(h));
        assert_eq!(wheel.cancel(h), None);
    }

    #[test]
    fn deadline_rounds_up_to_the_tick() {
        let mut wheel = TimerWheel::new(Duration::from_millis(1));
        let h = wheel.arm(Instant::from_micros(10_001), ()).unwrap();
        assert_eq!(wheel.deadline(h), Some(ms(11)));
        let mut out = Vec::new();
        assert_eq!(wheel.expire(Instant::from_micros(10_999), &mut out), 0);
        assert_eq!(wheel.expire(ms(11), &mut out), 1);
    }

    #[test]
    fn past_deadline_fires_at_next_advance() {
        let mut wheel = TimerWheel::new(Duration::from_millis(1));
        let mut out = Vec::new();
        wheel.expire(ms(100), &mut out);
        wheel.arm(ms(3), 1u8).unwrap();
        assert_eq!(wheel.next_deadline(), Some(ms(100)));
        assert_eq!(wheel.expire(ms(100), &mut out), 1);
        assert!(wheel.is_empty());
    }

    #[test]
    fn stale_handle_does_not_touch_reused_slot() {
        let mut wheel = TimerWheel::new(Duration::from_millis(1));
        let a = wheel.arm(ms(5), 'a').unwrap();
        assert_eq!(wheel.cancel(a), Some('a'));
        let b = wheel.arm(ms(6), 'b').unwrap();
        assert_eq!(a.index, b.index, "slot reused");
        assert_eq!(wheel.cancel(a), None);
        assert_eq!(wheel.rearm(a, ms(1)), Err(TimerError::Stale));
        assert_eq!(wheel.value(b), Some(&'b'));
        assert_eq!(wheel.cancel(b), Some('b'));
    }

    #[test]
    fn next_deadline_is_a_lower_bound_that_converges() {
        let mut wheel = TimerWheel::new(Duration::from_millis(1));
        assert_eq!(wheel.next_deadline(), None);
        wheel.arm(ms(1_000), 1u8).unwrap();
        let mut wakeups = 0;
        let mut out = Vec::new();
        while out.is_empty() {
            let next = wheel.next_deadline().unwrap();
            assert!(next <= ms(1_000));
            wheel.expire(next, &mut out);
            wakeups += 1;
            assert!(wakeups <= LEVELS, "too many wake-ups");
        }
        assert_eq!(wheel.next_deadline(), None);
    }

    #[test]
    fn far_timers_use_the_overflow_list() {
        // 1 ns ticks: 2^36 ticks are about 69 s.
        let mut wheel = TimerWheel::new(Duration::from_nanos(1));
        let far = Instant::from_nanos(1 << 40);
        let h = wheel.arm(far, 1u8).unwrap();
        assert_eq!(wheel.entries[h.index as usize].list, LIST_OVERFLOW);
        let mut out = Vec::new();
        assert_eq!(
            wheel.expire(Instant::from_nanos((1 << 40) - 1), &mut out),
            0
        );
        assert_eq!(wheel.expire(far, &mut out), 1);
        let h = wheel.arm(Instant::from_nanos(u64::MAX), 2u8).unwrap();
        assert_eq!(wheel.deadline(h), Some(Instant::from_nanos(u64::MAX)));
        assert_eq!(wheel.expire(Instant::from_nanos(u64::MAX), &mut out), 1);
    }

    #[test]
    fn limit_is_enforced() {
        let mut wheel = TimerWheel::new(Duration::from_millis(1)).with_limit(2);
        wheel.arm(ms(1), ()).unwrap();
        let h = wheel.arm(ms(2), ()).unwrap();
        assert_eq!(wheel.arm(ms(3), ()), Err(TimerError::Full { limit: 2 }));
        wheel.cancel(h);
        assert!(wheel.arm(ms(3), ()).is_ok());
    }

    #[test]
    fn zero_tick_is_one_nanosecond() {
        let wheel: TimerWheel<()> = TimerWheel::new(Duration::ZERO);
        assert_eq!(wheel.tick(), Duration::from_nanos(1));
    }
}
