//! A small two-way set-associative cache of the connections segments arrived for lately,
//! in front of the connection table.
//!
//! With a million connections the table's buckets and control bytes are tens of
//! megabytes: every lookup misses the CPU caches twice, and at a million connections held
//! the table's lookup was over a quarter of the engine's time. The connections busy at any
//! moment are few; their slots here (8 bytes: a tag from the flow hash and a slab index;
//! 512 KiB in all) stay in cache. Two ways per set, the one put last first: with 16,384
//! slots of 16 bytes instead, ten thousand busy connections found theirs only two times in
//! three.
//!
//! Owns: hash tags and slab indices, nothing else. A hit is only a hint: the stack checks
//! that the slab's connection at that index has the same 4-tuple, which makes it the
//! table's connection for the tuple (the stack keeps the slab and the table's connections
//! in step: a connection is in both or in neither), so a stale slot is never wrong, only
//! a miss. Off (no memory) until the stack holds [`FlowCache::FROM`] connections: below
//! that the table is small enough to stay in cache itself.
/// Slots of the cache (a power of two).
const SLOTS: usize = 1 << 16;

/// An empty slot's index.
const EMPTY: u32 = u32::MAX;

#[derive(Debug, Default)]
pub(super) struct FlowCache {
    /// (tag, slab index); empty while off.
    slots: Vec<(u32, u32)>,
}

impl FlowCache {
    /// The connection count from which the cache is used.
    pub const FROM: usize = 1 << 14;

    /// Turns the cache on (allocating it) once the stack holds `connections`.
    pub fn grown_to(&mut self, connections: usize) {
        if connections >= Self::FROM && self.slots.is_empty() {
            self.slots = vec![(0, EMPTY); SLOTS];
        }
    }

    /// The first slot of `hash`'s set (of two), from the hash's high half (the table
    /// takes the low bits for its buckets), and the tag, its low half.
    fn set_and_tag(hash: u64) -> (usize, u32) {
        (((hash >> 32) as usize & (SLOTS / 2 - 1)) * 2, hash as u32)
    }

    /// The slab index cached for the flow hash `hash`, if any: a hint the caller checks
    /// (another flow may share the hash's tag).
    pub fn get(&self, hash: u64) -> Option<u32> {
        let (set, tag) = Self::set_and_tag(hash);
        self.slots
            .get(set..set + 2)?
            .iter()
            .find(|&&(t, index)| index != EMPTY && t == tag)
            .map(|&(_, index)| index)
    }

    /// Remembers that the connection of flow hash `hash` is at slab index `index` (when
    /// on): first in its set, the other way keeping the set's previous first unless that
    /// had the same tag.
    pub fn put(&mut self, hash: u64, index: u32) {
        let (set, tag) = Self::set_and_tag(hash);
        let Some(ways) = self.slots.get_mut(set..set + 2) else {
            return;
        };
        if ways[0].0 != tag || ways[0].1 == EMPTY {
            ways[1] = ways[0];
        }
        ways[0] = (tag, index);
    }

    /// Bytes allocated.
    pub fn bytes(&self) -> usize {
        self.slots.capacity() * core::mem::size_of::<(u32, u32)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hash in set `set` with tag `tag`.
    fn h(set: u64, tag: u32) -> u64 {
        (set << 32) | u64::from(tag)
    }

    #[test]
    fn off_until_enough_connections_then_two_ways_per_set() {
        let mut c = FlowCache::default();
        c.put(h(7, 1), 3);
        assert_eq!((c.get(h(7, 1)), c.bytes()), (None, 0));
        c.grown_to(FlowCache::FROM - 1);
        assert_eq!(c.bytes(), 0);
        c.grown_to(FlowCache::FROM);
        assert_eq!(c.bytes(), SLOTS * 8);
        c.put(h(7, 1), 3);
        assert_eq!(c.get(h(7, 1)), Some(3));
        // Same set, another tag: both held; another set: not there.
        assert_eq!(c.get(h(7, 2)), None);
        c.put(h(7, 2), 4);
        assert_eq!((c.get(h(7, 1)), c.get(h(7, 2))), (Some(3), Some(4)));
        assert_eq!(c.get(h(8, 1)), None);
        // Put again, the first stays when a third comes; the one put least recently goes.
        c.put(h(7, 1), 3);
        c.put(h(7, 3), 5);
        assert_eq!(
            (c.get(h(7, 1)), c.get(h(7, 2)), c.get(h(7, 3))),
            (Some(3), None, Some(5))
        );
        // A new index for a tag replaces its old one.
        c.put(h(7, 3), 9);
        assert_eq!((c.get(h(7, 3)), c.get(h(7, 1))), (Some(9), Some(3)));
        // An empty slot is never a hit, whatever the tag.
        assert_eq!(c.get(h(100, 0)), None);
    }
}
