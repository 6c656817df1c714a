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

/// A connection and the stack's bookkeeping for it. Laid out to stay small: a core may
/// hold millions (`Option<Instant>` in 8 bytes, the retransmission figures it is counted under
/// boxed, and only once it has any).
#[derive(Debug)]
pub(super) struct Entry {
    pub conn: Connection,
    pub timer: Option<TimerHandle>,
    /// The deadline its timer is armed for.
    pub deadline: Option<Instant>,
    /// It moved here, frozen at this instant, and has not sent a segment since.
    pub moved_at: Option<Instant>,
    /// The application's word for it.
    pub user: u64,
    /// The retransmission figures it is counted under in the slab's running counts; none
    /// while they are all zero (most connections, all their lives).
    counted_stats: Option<Box<ConnectionStats>>,
    /// The buffer bytes it is counted under.
    counted_buffers: u32,
    /// Its slot's generation (the slab's, kept here to save a word per slot).
    generation: u32,
    /// The local port of the listener that accepted it (passive opens; never 0).
    listener_port: Option<core::num::NonZeroU16>,
    /// In `Stack::touched` (events to deliver or output to send).
    pub touched: bool,
    /// The state it is counted under.
    counted_state: State,
}

impl Entry {
    pub fn new(conn: Connection, listener_port: Option<u16>) -> Entry {
        Entry {
            conn,
            timer: None,
            deadline: None,
            moved_at: None,
            user: 0,
            counted_stats: None,
            counted_buffers: 0,
            generation: 0,
            listener_port: listener_port.and_then(core::num::NonZeroU16::new),
            touched: false,
            counted_state: State::Closed,
        }
    }

    /// The local port of the listener that accepted it (passive opens).
    pub fn listener_port(&self) -> Option<u16> {
        self.listener_port.map(core::num::NonZeroU16::get)
    }

    /// The retransmission figures it is counted under.
    fn counted_stats(&self) -> ConnectionStats {
        self.counted_stats.as_deref().copied().unwrap_or_default()
    }

    /// Counts it under `stats` from now on.
    fn set_counted_stats(&mut self, stats: ConnectionStats) {
        if stats == ConnectionStats::default() {
            self.counted_stats = None;
        } else if let Some(b) = self.counted_stats.as_deref_mut() {
            *b = stats;
        } else {
            self.counted_stats = Some(Box::new(stats));
        }
    }
}

/// A slot: an entry (which carries the slot's generation), or none.
type Slot = Option<Entry>;

/// The entries, by [`ConnId`].
#[derive(Debug, Default)]
pub(super) struct Slab {
    slots: Vec<Slot>,
    /// Empty slots (index and the generation they last had), reused last-freed first.
    free: Vec<(u32, u32)>,
    /// Entries by the state they are counted under, indexed by `State as usize`.
    by_state: [usize; State::ALL.len()],
    /// Sum of the entries' counted buffer bytes.
    buffer_bytes: usize,
    /// The entries' retransmission figures, as counted.
    live: TcpCounters,
    /// Entries whose counted figures are boxed (not all zero).
    boxed_stats: usize,
}

impl Slab {
    /// Stores `entry` and returns its new id.
    pub fn insert(&mut self, mut entry: Entry) -> ConnId {
        entry.counted_state = entry.conn.state();
        entry.counted_buffers = buffer_count(&entry.conn);
        entry.set_counted_stats(entry.conn.stats());
        self.boxed_stats += usize::from(entry.counted_stats.is_some());
        self.live.add_stats(&entry.counted_stats());
        self.by_state[entry.counted_state as usize] += 1;
        self.buffer_bytes += entry.counted_buffers as usize;
        let (index, generation) = match self.free.pop() {
            Some((i, g)) => (i, g.wrapping_add(1)),
            None => {
                self.slots.push(None);
                ((self.slots.len() - 1) as u32, 1)
            }
        };
        entry.generation = generation;
        self.slots[index as usize] = Some(entry);
        ConnId { index, generation }
    }

    /// The id of the entry at slot `index`, if one is there.
    pub fn id_at(&self, index: u32) -> Option<ConnId> {
        let e = self.slots.get(index as usize)?.as_ref()?;
        Some(ConnId {
            index,
            generation: e.generation,
        })
    }

    pub fn get(&self, id: ConnId) -> Option<&Entry> {
        let e = self.slots.get(id.index as usize)?.as_ref()?;
        (e.generation == id.generation).then_some(e)
    }

    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut Entry> {
        let e = self.slots.get_mut(id.index as usize)?.as_mut()?;
        (e.generation == id.generation).then_some(e)
    }

    /// Takes `id`'s entry out; its slot is free for reuse (under a new generation).
    pub fn remove(&mut self, id: ConnId) -> Option<Entry> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.as_ref()?.generation != id.generation {
            return None;
        }
        let entry = slot.take()?;
        self.free.push((id.index, id.generation));
        self.by_state[entry.counted_state as usize] -= 1;
        self.buffer_bytes -= entry.counted_buffers as usize;
        self.live.remove_stats(&entry.counted_stats());
        self.boxed_stats -= usize::from(entry.counted_stats.is_some());
        Some(entry)
    }

    /// Brings `id`'s place in the running counts up to date with its connection (after
    /// anything may have changed its state or buffers).
    pub fn recount(&mut self, id: ConnId) {
        let Some(e) = self
            .slots
            .get_mut(id.index as usize)
            .and_then(Option::as_mut)
        else {
            return;
        };
        if e.generation != id.generation {
            return;
        }
        let (state, buffers) = (e.conn.state(), buffer_count(&e.conn));
        if state != e.counted_state {
            self.by_state[e.counted_state as usize] -= 1;
            self.by_state[state as usize] += 1;
            e.counted_state = state;
        }
        if buffers != e.counted_buffers {
            self.buffer_bytes = self.buffer_bytes - e.counted_buffers as usize + buffers as usize;
            e.counted_buffers = buffers;
        }
        let stats = e.conn.stats();
        let counted = e.counted_stats();
        if stats != counted {
            self.live.remove_stats(&counted);
            self.live.add_stats(&stats);
            let was_boxed = e.counted_stats.is_some();
            e.set_counted_stats(stats);
            self.boxed_stats =
                self.boxed_stats + usize::from(e.counted_stats.is_some()) - usize::from(was_boxed);
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

    /// Bytes allocated for the slots (held or free) and the free list, and the boxed
    /// statistics: a connection boxes its own once it counts something, and its entry
    /// boxes the copy it is counted under then too (so two boxes per entry that has one,
    /// as last counted).
    pub fn allocation_bytes(&self) -> usize {
        self.slots.capacity() * core::mem::size_of::<Slot>()
            + self.free.capacity() * core::mem::size_of::<(u32, u32)>()
            + self.boxed_stats * 2 * core::mem::size_of::<ConnectionStats>()
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Every entry with its id, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (ConnId, &Entry)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            s.as_ref().map(|e| {
                (
                    ConnId {
                        index: i as u32,
                        generation: e.generation,
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

/// A connection's buffer bytes as counted (a ring is at most a few MiB).
fn buffer_count(conn: &Connection) -> u32 {
    u32::try_from(conn.buffer_bytes()).unwrap_or(u32::MAX)
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
    fn a_slot_stays_small() {
        // A core holds up to millions: every word here is megabytes there. The connection
        // itself has its own bound (tcp_states); the stack adds at most 56 bytes.
        let slot = core::mem::size_of::<Slot>();
        let conn = core::mem::size_of::<Connection>();
        assert!(
            slot <= conn + 56,
            "slot {slot} bytes for a {conn}-byte connection"
        );
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
