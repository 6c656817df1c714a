//! The connections of one stack: a slab of entries numbered by [`ConnId`] (slot index +
//! generation, so a stale id never reaches a newer connection), and what the stack keeps
//! beside each connection ([`Entry`]: its timer, whether it waits in the touched list,
//! the listener that accepted it, the application's word).
//!
//! Owns: slot allocation and reuse, and the running counts of its connections by state
//! and of their buffer bytes (kept as entries come, go and are [`Slab::recount`]ed, so
//! that reporting them never walks a million connections). May not: change connections,
//! or know about the table, the timers or the application (the stack's methods in
//! `mod.rs` and the other files of this module tie those together).
use super::counters::TcpCounters;
use crate::tcp::{Connection, ConnectionStats, State};
use crate::time::Instant;
use crate::timer::TimerHandle;

/// A connection of one core's stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    index: u32,
    generation: u32,
}

impl ConnId {
    /// The slot index: small and dense, for applications that keep per-connection state
    /// in a `Vec`. Reused after [`super::Event::Closed`].
    pub fn index(self) -> usize {
        self.index as usize
    }
}

/// A connection and the stack's bookkeeping for it.
#[derive(Debug)]
pub(super) struct Entry {
    pub conn: Connection,
    pub timer: Option<TimerHandle>,
    pub deadline: Option<Instant>,
    /// In `Stack::touched` (events to deliver or output to send).
    pub touched: bool,
    /// The local port of the listener that accepted it (passive opens).
    pub listener_port: Option<u16>,
    /// The application's word for it.
    pub user: u64,
    /// It moved here, frozen at this instant, and has not sent a segment since.
    pub moved_at: Option<Instant>,
    /// The state and buffer bytes it is counted under in the slab's running counts.
    counted_state: State,
    counted_buffers: usize,
    counted_stats: ConnectionStats,
}

impl Entry {
    pub fn new(conn: Connection, listener_port: Option<u16>) -> Entry {
        Entry {
            conn,
            timer: None,
            deadline: None,
            touched: false,
            listener_port,
            user: 0,
            moved_at: None,
            counted_state: State::Closed,
            counted_buffers: 0,
            counted_stats: ConnectionStats::default(),
        }
    }
}

#[derive(Debug, Default)]
struct Slot {
    generation: u32,
    entry: Option<Entry>,
}

/// The entries, by [`ConnId`].
#[derive(Debug, Default)]
pub(super) struct Slab {
    slots: Vec<Slot>,
    /// Indices of empty slots, reused last-freed first.
    free: Vec<u32>,
    /// Entries by the state they are counted under, indexed by `State as usize`.
    by_state: [usize; State::ALL.len()],
    /// Sum of the entries' counted buffer bytes.
    buffer_bytes: usize,
    /// The entries' retransmission figures, as counted.
    live: TcpCounters,
}

impl Slab {
    /// Stores `entry` and returns its new id.
    pub fn insert(&mut self, mut entry: Entry) -> ConnId {
        entry.counted_state = entry.conn.state();
        entry.counted_buffers = entry.conn.buffer_bytes();
        entry.counted_stats = entry.conn.stats();
        self.live.add_stats(&entry.counted_stats);
        self.by_state[entry.counted_state as usize] += 1;
        self.buffer_bytes += entry.counted_buffers;
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot::default());
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.generation = slot.generation.wrapping_add(1);
        slot.entry = Some(entry);
        ConnId {
            index,
            generation: slot.generation,
        }
    }

    pub fn get(&self, id: ConnId) -> Option<&Entry> {
        let slot = self.slots.get(id.index as usize)?;
        (slot.generation == id.generation).then_some(())?;
        slot.entry.as_ref()
    }

    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut Entry> {
        let slot = self.slots.get_mut(id.index as usize)?;
        (slot.generation == id.generation).then_some(())?;
        slot.entry.as_mut()
    }

    /// Takes `id`'s entry out; its slot is free for reuse (under a new generation).
    pub fn remove(&mut self, id: ConnId) -> Option<Entry> {
        let slot = self.slots.get_mut(id.index as usize)?;
        (slot.generation == id.generation).then_some(())?;
        let entry = slot.entry.take()?;
        self.free.push(id.index);
        self.by_state[entry.counted_state as usize] -= 1;
        self.buffer_bytes -= entry.counted_buffers;
        self.live.remove_stats(&entry.counted_stats);
        Some(entry)
    }

    /// Brings `id`'s place in the running counts up to date with its connection (after
    /// anything may have changed its state or buffers).
    pub fn recount(&mut self, id: ConnId) {
        let Some(slot) = self.slots.get_mut(id.index as usize) else {
            return;
        };
        if slot.generation != id.generation {
            return;
        }
        let Some(e) = slot.entry.as_mut() else {
            return;
        };
        let (state, buffers) = (e.conn.state(), e.conn.buffer_bytes());
        if state != e.counted_state {
            self.by_state[e.counted_state as usize] -= 1;
            self.by_state[state as usize] += 1;
            e.counted_state = state;
        }
        if buffers != e.counted_buffers {
            self.buffer_bytes = self.buffer_bytes - e.counted_buffers + buffers;
            e.counted_buffers = buffers;
        }
        let stats = e.conn.stats();
        if stats != e.counted_stats {
            self.live.remove_stats(&e.counted_stats);
            self.live.add_stats(&stats);
            e.counted_stats = stats;
        }
    }

    /// The entries' retransmission figures, as last counted.
    pub fn live_figures(&self) -> &TcpCounters {
        &self.live
    }

    /// Entries in `state`, as last counted.
    pub fn count_in(&self, state: State) -> usize {
        self.by_state[state as usize]
    }

    /// The entries' buffer bytes, as last counted.
    pub fn buffer_bytes(&self) -> usize {
        self.buffer_bytes
    }

    /// Bytes allocated for the slots (held or free) and the free list.
    pub fn allocation_bytes(&self) -> usize {
        self.slots.capacity() * core::mem::size_of::<Slot>()
            + self.free.capacity() * core::mem::size_of::<u32>()
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Every entry with its id, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (ConnId, &Entry)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            s.entry.as_ref().map(|e| {
                (
                    ConnId {
                        index: i as u32,
                        generation: s.generation,
                    },
                    e,
                )
            })
        })
    }

    /// The ids of every entry (a copy: the caller may change the slab while walking it).
    pub fn ids(&self) -> Vec<ConnId> {
        self.iter().map(|(id, _)| id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::FourTuple;
    use crate::tcp::{ConnectionSeed, SeqNumber, TcpConfig};
    use core::net::{Ipv4Addr, SocketAddrV4};

    fn entry(port: u16) -> Entry {
        let tuple = FourTuple::new(
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), port),
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80),
        );
        let seed = ConnectionSeed {
            iss: SeqNumber(1),
            ts_offset: 0,
        };
        let conn = Connection::connect(Instant::ZERO, tuple, seed, &TcpConfig::default());
        Entry::new(conn, None)
    }

    #[test]
    fn ids_are_dense_and_stale_ids_miss() {
        let mut slab = Slab::default();
        let a = slab.insert(entry(1));
        let b = slab.insert(entry(2));
        assert_eq!((a.index(), b.index()), (0, 1));
        assert_eq!(slab.len(), 2);
        assert_eq!(slab.get(a).map(|e| e.conn.local().port()), Some(1));
        let taken = slab.remove(a).expect("entry");
        assert_eq!(taken.conn.local().port(), 1);
        assert!(slab.get(a).is_none() && slab.remove(a).is_none());
        // The slot is reused under a new generation: the old id does not reach it.
        let c = slab.insert(entry(3));
        assert_eq!(c.index(), a.index());
        assert_ne!(c, a);
        assert!(slab.get(a).is_none() && slab.get_mut(a).is_none());
        assert_eq!(slab.get(c).map(|e| e.conn.local().port()), Some(3));
        assert_eq!(slab.ids(), vec![c, b]);
        assert_eq!(slab.len(), 2);
    }

    #[test]
    fn out_of_range_ids_miss() {
        let mut slab = Slab::default();
        let a = slab.insert(entry(1));
        let mut other = Slab::default();
        other.insert(entry(1));
        let far = other.insert(entry(2));
        assert!(slab.get(far).is_none());
        assert!(slab.remove(far).is_none());
        assert!(slab.get(a).is_some());
    }
}
