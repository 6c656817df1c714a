//! The per-core connection table: which connection, TIME_WAIT record or listener a
//! segment's 4-tuple belongs to.
//!
//! Owns: four hash tables (connections by [`FourTuple`], compact TIME_WAIT records by
//! [`FourTuple`], redirects of migrated connections by [`FourTuple`], listeners by local
//! [`SocketAddrV4`]), their capacity limits, the keyed hash that protects them
//! ([`FlowHashKey`], SipHash-1-3 from [`crate::hash`]), and the TIME_WAIT and redirect
//! expiry orders.
//!
//! May not: interpret segments or connection state (the TCP module decides what a lookup
//! result means), read a clock (expiry takes `now`), or grow past its limits.
//!
//! Lookup order ([`ConnTable::lookup`]): a connection in any state but LISTEN and
//! TIME_WAIT, then a TIME_WAIT record (RFC 9293 §3.10.7.4: a segment for a TIME_WAIT 4-tuple
//! goes to that record, which may let a new SYN through to the listener), then a redirect
//! (the connection moved to another owner: its segments are handed on), then a listener
//! on the exact local address, then a listener on the wildcard address `0.0.0.0` with the
//! same port. A 4-tuple is a connection, a TIME_WAIT record or a redirect, never two.
use core::net::{Ipv4Addr, SocketAddrV4};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use hashbrown::HashTable;

use crate::flow::FourTuple;
use crate::time::Instant;

/// The secret key of the table's hash.
///
/// Peers choose 4-tuples (ports and, behind NATs, addresses), so a table keyed by them
/// needs a hash they cannot predict, or they can fill one bucket and make every lookup
/// linear (hash flooding). The key must be random and private to the engine: draw it per
/// core from the operating system's random source at start-up. Tables of different cores
/// should have different keys.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FlowHashKey {
    k0: u64,
    k1: u64,
}

impl core::fmt::Debug for FlowHashKey {
    /// Never prints the key itself.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("FlowHashKey(..)")
    }
}

impl FlowHashKey {
    /// A key from 16 random bytes.
    pub fn new(bytes: [u8; 16]) -> Self {
        let mut k0 = [0; 8];
        let mut k1 = [0; 8];
        k0.copy_from_slice(&bytes[..8]);
        k1.copy_from_slice(&bytes[8..]);
        FlowHashKey {
            k0: u64::from_le_bytes(k0),
            k1: u64::from_le_bytes(k1),
        }
    }

    /// A key from two 64-bit words.
    pub const fn from_words(k0: u64, k1: u64) -> Self {
        FlowHashKey { k0, k1 }
    }

    /// The keyed hash of a 4-tuple (its 12 bytes: local address and port, remote address
    /// and port, in network order).
    pub fn hash_tuple(&self, tuple: &FourTuple) -> u64 {
        crate::hash::siphash::<1, 3>(self.k0, self.k1, &tuple.to_bytes())
    }
}

/// The hash of a listener's address: not keyed, as only the engine chooses these keys (a
/// peer can only look one up, never add one, so it cannot crowd a bucket). The mixer of
/// SplitMix64 over the address and port, so that both the low bits (the bucket) and the
/// top bits (hashbrown's tag) vary. Looked up for every segment that reaches a listener,
/// up to twice (the exact address, then the wildcard): a keyed hash there cost more than
/// the table's own lookup.
fn listener_hash(addr: &SocketAddrV4) -> u64 {
    let mut x = (u64::from(u32::from(*addr.ip())) << 16) | u64::from(addr.port());
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The three kinds of entry a table holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A connection in any state but LISTEN and TIME_WAIT.
    Connection,
    /// A TIME_WAIT record.
    TimeWait,
    /// A listener.
    Listener,
    /// A redirect: the connection moved to another owner.
    Redirect,
}

/// Why a table operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum TableError {
    /// The table of that kind already holds its limit.
    #[error("{kind:?} table full ({limit} entries)")]
    Full { kind: EntryKind, limit: usize },
    /// The key is already taken by an entry of that kind.
    #[error("key already used by a {0:?} entry")]
    Occupied(EntryKind),
    /// No entry of the expected kind has that key.
    #[error("no such entry")]
    NotFound,
}

/// An insertion that was refused, handing the value back so that it keeps exactly one
/// owner (a connection being migrated in must not be lost because a table was full).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct Refused<T> {
    pub error: TableError,
    pub value: T,
}

/// Expiry instants of 4-tuples, earliest first. Records of one kind almost always live
/// equally long (TIME_WAIT: 2·MSL), so each new expiry is usually not earlier than the
/// last one added: those go to a FIFO, pushed and popped in constant time. Any other goes
/// to a heap beside it, and the earlier of the two fronts comes out first. (A heap alone
/// cost a tenth of an actively closing engine's time at a million TIME_WAIT records:
/// every pop a walk of twenty levels through memory.)
#[derive(Debug, Clone, Default)]
struct ExpiryQueue {
    in_order: VecDeque<(Instant, FourTuple)>,
    out_of_order: BinaryHeap<Reverse<(Instant, FourTuple)>>,
}

impl ExpiryQueue {
    fn push(&mut self, at: Instant, tuple: FourTuple) {
        if self.in_order.back().is_none_or(|&(last, _)| at >= last) {
            self.in_order.push_back((at, tuple));
        } else {
            self.out_of_order.push(Reverse((at, tuple)));
        }
    }

    /// Whether the earliest entry is the FIFO's (else the heap's), if there is one.
    fn front_in_order(&self) -> Option<bool> {
        match (self.in_order.front(), self.out_of_order.peek()) {
            (Some(a), Some(Reverse(b))) => Some(a <= b),
            (Some(_), None) => Some(true),
            (None, Some(_)) => Some(false),
            (None, None) => None,
        }
    }

    fn peek(&self) -> Option<(Instant, FourTuple)> {
        match self.front_in_order()? {
            true => self.in_order.front().copied(),
            false => self.out_of_order.peek().map(|Reverse(e)| *e),
        }
    }

    fn pop(&mut self) -> Option<(Instant, FourTuple)> {
        match self.front_in_order()? {
            true => self.in_order.pop_front(),
            false => self.out_of_order.pop().map(|Reverse(e)| e),
        }
    }

    fn len(&self) -> usize {
        self.in_order.len() + self.out_of_order.len()
    }
}

impl FromIterator<(Instant, FourTuple)> for ExpiryQueue {
    /// All in the FIFO, sorted.
    fn from_iter<I: IntoIterator<Item = (Instant, FourTuple)>>(iter: I) -> Self {
        let mut all: Vec<_> = iter.into_iter().collect();
        all.sort_unstable();
        ExpiryQueue {
            in_order: all.into(),
            out_of_order: BinaryHeap::new(),
        }
    }
}

/// Per-kind capacity limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableLimits {
    pub connections: usize,
    pub time_wait: usize,
    pub listeners: usize,
    pub redirects: usize,
}

impl Default for TableLimits {
    /// A million connections and TIME_WAIT records, a thousand listeners.
    fn default() -> Self {
        TableLimits {
            connections: 1 << 20,
            time_wait: 1 << 20,
            listeners: 1024,
            redirects: 1 << 20,
        }
    }
}

/// What a TIME_WAIT 4-tuple keeps: enough to re-acknowledge a retransmitted FIN, to answer
/// other segments (RFC 9293 §3.10.7.4) and to judge a new SYN (RFC 6191), and nothing else.
/// The table is generic over this record (`W`), so the TCP module may use its own; this one
/// is the suggested default, 24 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeWait {
    /// Our next sequence number (the one after our FIN).
    pub snd_nxt: u32,
    /// The next sequence number we expect (the one after the peer's FIN).
    pub rcv_nxt: u32,
    /// The receive window we advertise, as on the wire (already scaled down).
    pub rcv_wnd: u16,
    /// The peer's last timestamp value (RFC 7323 TS.Recent), if timestamps were in use.
    pub ts_recent: Option<u32>,
    /// Offset of our timestamp clock, so TSval keeps increasing for this 4-tuple.
    pub ts_offset: u32,
}

/// A TIME_WAIT record with its expiry (2·MSL after entering TIME_WAIT, restartable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWaitEntry<W> {
    pub state: W,
    pub expiry: Instant,
}

/// Where the segments of a migrated connection go now, and until when this entry is
/// kept (`None`: until removed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redirect<R> {
    pub owner: R,
    pub expiry: Option<Instant>,
}

/// A lookup result; `C`, `T`, `L` and `R` are references to the connection, the TIME_WAIT
/// record, the listener and the redirect (shared or mutable).
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<C, T, L, R = ()> {
    Connection(C),
    TimeWait(T),
    Redirect(R),
    /// A listener; `local` is the key that matched (the exact address or the wildcard).
    Listener {
        local: SocketAddrV4,
        listener: L,
    },
    NotFound,
}

impl<C, T, L, R> Lookup<C, T, L, R> {
    /// Which kind of entry was found.
    pub fn kind(&self) -> Option<EntryKind> {
        match self {
            Lookup::Connection(_) => Some(EntryKind::Connection),
            Lookup::TimeWait(_) => Some(EntryKind::TimeWait),
            Lookup::Redirect(_) => Some(EntryKind::Redirect),
            Lookup::Listener { .. } => Some(EntryKind::Listener),
            Lookup::NotFound => None,
        }
    }
}

/// A core's connection table. `V` is what a connection entry holds (the connection itself
/// or an index into the core's slab), `L` a listener, `W` a TIME_WAIT record, `R` the new
/// owner of a migrated connection.
#[derive(Debug, Clone)]
pub struct ConnTable<V, L = V, W = TimeWait, R = u16> {
    /// Keys the hashes of all three tables. Secret and per core: peers choose the keys of
    /// the connection and TIME_WAIT tables (see [`FlowHashKey`]).
    key: FlowHashKey,
    limits: TableLimits,
    connections: HashTable<(FourTuple, V)>,
    time_wait: HashTable<(FourTuple, TimeWaitEntry<W>)>,
    /// Keyed by local address; `0.0.0.0:port` is the wildcard for that port. We choose
    /// these keys: hashed without the key ([`listener_hash`]).
    listeners: HashTable<(SocketAddrV4, L)>,
    /// TIME_WAIT expiries, earliest first. An entry is stale when the record was removed
    /// or its expiry changed since; stale entries are skipped when popped and purged when
    /// they outnumber live ones.
    expiries: ExpiryQueue,
    redirects: HashTable<(FourTuple, Redirect<R>)>,
    /// Expiries of redirects that have one, stale entries skipped as for TIME_WAIT.
    redirect_expiries: ExpiryQueue,
}

impl<V, L, W, R> ConnTable<V, L, W, R> {
    /// An empty table whose hashes are keyed by `key` (see [`FlowHashKey`]).
    pub fn new(key: FlowHashKey, limits: TableLimits) -> Self {
        ConnTable {
            key,
            limits,
            connections: HashTable::new(),
            time_wait: HashTable::new(),
            listeners: HashTable::new(),
            expiries: ExpiryQueue::default(),
            redirects: HashTable::new(),
            redirect_expiries: ExpiryQueue::default(),
        }
    }

    pub fn limits(&self) -> TableLimits {
        self.limits
    }

    /// Reserves room for `additional` more entries of a kind (clamped to the kind's limit),
    /// so that inserting them does not rehash on the data path.
    pub fn reserve(&mut self, kind: EntryKind, additional: usize) {
        let key = self.key;
        match kind {
            EntryKind::Connection => {
                let room = self
                    .limits
                    .connections
                    .saturating_sub(self.connections.len());
                self.connections
                    .reserve(additional.min(room), |(t, _)| key.hash_tuple(t));
            }
            EntryKind::TimeWait => {
                let room = self.limits.time_wait.saturating_sub(self.time_wait.len());
                self.time_wait
                    .reserve(additional.min(room), |(t, _)| key.hash_tuple(t));
            }
            EntryKind::Listener => {
                let room = self.limits.listeners.saturating_sub(self.listeners.len());
                self.listeners
                    .reserve(additional.min(room), |(a, _)| listener_hash(a));
            }
            EntryKind::Redirect => {
                let room = self.limits.redirects.saturating_sub(self.redirects.len());
                self.redirects
                    .reserve(additional.min(room), |(t, _)| key.hash_tuple(t));
            }
        }
    }

    /// The keyed hash this table uses for a 4-tuple.
    pub fn flow_hash(&self, tuple: &FourTuple) -> u64 {
        self.key.hash_tuple(tuple)
    }

    /// Bytes allocated for the connection entries (buckets and control bytes).
    pub fn connection_bytes(&self) -> usize {
        self.connections.allocation_size()
    }

    /// Number of entries of a kind.
    pub fn len(&self, kind: EntryKind) -> usize {
        match kind {
            EntryKind::Connection => self.connections.len(),
            EntryKind::TimeWait => self.time_wait.len(),
            EntryKind::Listener => self.listeners.len(),
            EntryKind::Redirect => self.redirects.len(),
        }
    }

    /// Whether the table holds no entry of any kind.
    pub fn is_empty(&self) -> bool {
        self.connections.is_empty()
            && self.time_wait.is_empty()
            && self.listeners.is_empty()
            && self.redirects.is_empty()
    }

    /// Finds what a segment arriving on `tuple` (seen from this end) belongs to, in the
    /// order described in the module documentation.
    pub fn lookup(&self, tuple: &FourTuple) -> Lookup<&V, &TimeWaitEntry<W>, &L, &Redirect<R>> {
        // One hash for the three tables keyed by the 4-tuple.
        self.lookup_hashed(tuple, self.key.hash_tuple(tuple))
    }

    /// [`Self::lookup`] for a caller that has the tuple's [`Self::flow_hash`] already.
    pub fn lookup_hashed(
        &self,
        tuple: &FourTuple,
        hash: u64,
    ) -> Lookup<&V, &TimeWaitEntry<W>, &L, &Redirect<R>> {
        if let Some((_, value)) = self.connections.find(hash, |(t, _)| t == tuple) {
            return Lookup::Connection(value);
        }
        if let Some((_, entry)) = self.time_wait.find(hash, |(t, _)| t == tuple) {
            return Lookup::TimeWait(entry);
        }
        if let Some((_, redirect)) = self.redirects.find(hash, |(t, _)| t == tuple) {
            return Lookup::Redirect(redirect);
        }
        match self.listener_for(tuple.local) {
            Some((local, listener)) => Lookup::Listener { local, listener },
            None => Lookup::NotFound,
        }
    }

    /// [`Self::lookup`], with mutable access to what was found.
    pub fn lookup_mut(
        &mut self,
        tuple: &FourTuple,
    ) -> Lookup<&mut V, &mut TimeWaitEntry<W>, &mut L, &mut Redirect<R>> {
        let hash = self.key.hash_tuple(tuple);
        if let Some((_, value)) = self.connections.find_mut(hash, |(t, _)| t == tuple) {
            return Lookup::Connection(value);
        }
        if let Some((_, entry)) = self.time_wait.find_mut(hash, |(t, _)| t == tuple) {
            return Lookup::TimeWait(entry);
        }
        if let Some((_, redirect)) = self.redirects.find_mut(hash, |(t, _)| t == tuple) {
            return Lookup::Redirect(redirect);
        }
        let Some(local) = listener_key(&self.listeners, tuple.local) else {
            return Lookup::NotFound;
        };
        let hash = listener_hash(&local);
        match self.listeners.find_mut(hash, |(a, _)| *a == local) {
            Some((_, listener)) => Lookup::Listener { local, listener },
            None => Lookup::NotFound,
        }
    }

    // ----- connections -----

    /// Adds a connection. Refused, handing `value` back, if the 4-tuple is a connection,
    /// a TIME_WAIT record or a redirect already, or if the connection table is full.
    pub fn insert_connection(&mut self, tuple: FourTuple, value: V) -> Result<(), Refused<V>> {
        let hash = self.key.hash_tuple(&tuple);
        let error = if self.connections.find(hash, |(t, _)| *t == tuple).is_some() {
            Some(TableError::Occupied(EntryKind::Connection))
        } else if self.time_wait.find(hash, |(t, _)| *t == tuple).is_some() {
            Some(TableError::Occupied(EntryKind::TimeWait))
        } else if self.redirects.find(hash, |(t, _)| *t == tuple).is_some() {
            Some(TableError::Occupied(EntryKind::Redirect))
        } else if self.connections.len() >= self.limits.connections {
            let limit = self.limits.connections;
            Some(TableError::Full {
                kind: EntryKind::Connection,
                limit,
            })
        } else {
            None
        };
        if let Some(error) = error {
            return Err(Refused { error, value });
        }
        let key = self.key;
        self.connections
            .insert_unique(hash, (tuple, value), |(t, _)| key.hash_tuple(t));
        Ok(())
    }

    pub fn connection(&self, tuple: &FourTuple) -> Option<&V> {
        let hash = self.key.hash_tuple(tuple);
        self.connections
            .find(hash, |(t, _)| t == tuple)
            .map(|(_, v)| v)
    }

    pub fn connection_mut(&mut self, tuple: &FourTuple) -> Option<&mut V> {
        let hash = self.key.hash_tuple(tuple);
        self.connections
            .find_mut(hash, |(t, _)| t == tuple)
            .map(|(_, v)| v)
    }

    pub fn remove_connection(&mut self, tuple: &FourTuple) -> Option<V> {
        let hash = self.key.hash_tuple(tuple);
        let entry = self
            .connections
            .find_entry(hash, |(t, _)| t == tuple)
            .ok()?;
        Some(entry.remove().0 .1)
    }

    /// Every connection, in no particular order.
    pub fn connections(&self) -> impl Iterator<Item = (&FourTuple, &V)> + '_ {
        self.connections.iter().map(|(t, v)| (t, v))
    }

    pub fn connections_mut(&mut self) -> impl Iterator<Item = (&FourTuple, &mut V)> + '_ {
        self.connections.iter_mut().map(|(t, v)| (&*t, v))
    }

    /// Keeps the connections for which `keep` returns true and drops the others.
    pub fn retain_connections(&mut self, mut keep: impl FnMut(&FourTuple, &mut V) -> bool) {
        self.connections.retain(|(t, v)| keep(t, v));
    }

    // ----- TIME_WAIT -----

    /// Adds a TIME_WAIT record expiring at `expiry`. Refused if the 4-tuple is a connection
    /// or a TIME_WAIT record already, or if the TIME_WAIT table is full (the caller then
    /// closes without TIME_WAIT, as stacks do when their TIME_WAIT buckets overflow).
    pub fn insert_time_wait(
        &mut self,
        tuple: FourTuple,
        state: W,
        expiry: Instant,
    ) -> Result<(), Refused<W>> {
        let hash = self.key.hash_tuple(&tuple);
        let error = if self.connections.find(hash, |(t, _)| *t == tuple).is_some() {
            Some(TableError::Occupied(EntryKind::Connection))
        } else {
            self.time_wait_room(hash, &tuple)
        };
        if let Some(error) = error {
            return Err(Refused {
                error,
                value: state,
            });
        }
        self.push_time_wait(hash, tuple, TimeWaitEntry { state, expiry });
        Ok(())
    }

    /// Moves a connection to TIME_WAIT in one step: removes it, adds the record, and returns
    /// the connection's value. Refused, with both left as they were, if there is no such
    /// connection or the TIME_WAIT table is full.
    pub fn move_to_time_wait(
        &mut self,
        tuple: &FourTuple,
        state: W,
        expiry: Instant,
    ) -> Result<V, Refused<W>> {
        let hash = self.key.hash_tuple(tuple);
        if let Some(error) = self.time_wait_room(hash, tuple) {
            return Err(Refused {
                error,
                value: state,
            });
        }
        let Ok(entry) = self.connections.find_entry(hash, |(t, _)| t == tuple) else {
            return Err(Refused {
                error: TableError::NotFound,
                value: state,
            });
        };
        let ((tuple, value), _) = entry.remove();
        self.push_time_wait(hash, tuple, TimeWaitEntry { state, expiry });
        Ok(value)
    }

    pub fn time_wait(&self, tuple: &FourTuple) -> Option<&TimeWaitEntry<W>> {
        let hash = self.key.hash_tuple(tuple);
        self.time_wait
            .find(hash, |(t, _)| t == tuple)
            .map(|(_, e)| e)
    }

    /// Mutable access to a record's state. The expiry is changed through
    /// [`Self::restart_time_wait`], which keeps the expiry order right.
    pub fn time_wait_state_mut(&mut self, tuple: &FourTuple) -> Option<&mut W> {
        let hash = self.key.hash_tuple(tuple);
        self.time_wait
            .find_mut(hash, |(t, _)| t == tuple)
            .map(|(_, e)| &mut e.state)
    }

    /// Sets a record's expiry (RFC 9293 §3.10.7.4: a retransmitted FIN restarts the 2·MSL
    /// timeout). Returns false if there is no such record.
    pub fn restart_time_wait(&mut self, tuple: &FourTuple, expiry: Instant) -> bool {
        let hash = self.key.hash_tuple(tuple);
        let Some((_, entry)) = self.time_wait.find_mut(hash, |(t, _)| t == tuple) else {
            return false;
        };
        if entry.expiry != expiry {
            entry.expiry = expiry;
            self.expiries.push(expiry, *tuple);
            self.purge_stale_expiries();
        }
        true
    }

    pub fn remove_time_wait(&mut self, tuple: &FourTuple) -> Option<TimeWaitEntry<W>> {
        let hash = self.key.hash_tuple(tuple);
        let entry = self.time_wait.find_entry(hash, |(t, _)| t == tuple).ok()?;
        let ((_, record), _) = entry.remove();
        self.purge_stale_expiries();
        Some(record)
    }

    /// Every TIME_WAIT record, in no particular order.
    pub fn time_waits(&self) -> impl Iterator<Item = (&FourTuple, &TimeWaitEntry<W>)> + '_ {
        self.time_wait.iter().map(|(t, e)| (t, e))
    }

    /// Removes every TIME_WAIT record whose expiry is at or before `now`, earliest first,
    /// handing each to `expired`. Returns how many were removed.
    pub fn expire_time_wait(
        &mut self,
        now: Instant,
        mut expired: impl FnMut(FourTuple, TimeWaitEntry<W>),
    ) -> usize {
        let mut count = 0;
        while let Some((expiry, tuple)) = self.expiries.peek() {
            if expiry > now {
                break;
            }
            self.expiries.pop();
            let hash = self.key.hash_tuple(&tuple);
            // Only the heap entry that matches the record's current expiry is live.
            if let Ok(entry) = self
                .time_wait
                .find_entry(hash, |(t, e)| *t == tuple && e.expiry == expiry)
            {
                let ((tuple, record), _) = entry.remove();
                expired(tuple, record);
                count += 1;
            }
        }
        count
    }

    /// A lower bound of the earliest TIME_WAIT expiry (exact unless records were removed or
    /// restarted since the last [`Self::expire_time_wait`]), or `None` when there are none.
    pub fn next_time_wait_expiry(&self) -> Option<Instant> {
        if self.time_wait.is_empty() {
            return None;
        }
        self.expiries.peek().map(|(expiry, _)| expiry)
    }

    fn time_wait_room(&self, hash: u64, tuple: &FourTuple) -> Option<TableError> {
        if self.time_wait.find(hash, |(t, _)| t == tuple).is_some() {
            Some(TableError::Occupied(EntryKind::TimeWait))
        } else if self.time_wait.len() >= self.limits.time_wait {
            Some(TableError::Full {
                kind: EntryKind::TimeWait,
                limit: self.limits.time_wait,
            })
        } else {
            None
        }
    }

    fn push_time_wait(&mut self, hash: u64, tuple: FourTuple, entry: TimeWaitEntry<W>) {
        let key = self.key;
        self.expiries.push(entry.expiry, tuple);
        self.time_wait
            .insert_unique(hash, (tuple, entry), |(t, _)| key.hash_tuple(t));
        self.purge_stale_expiries();
    }

    /// Rebuilds the expiry heap from the live records once stale entries dominate, so that
    /// removals and restarts cannot grow it without bound.
    fn purge_stale_expiries(&mut self) {
        if self.expiries.len() > 2 * self.time_wait.len() + 64 {
            self.expiries = self.time_wait.iter().map(|(t, e)| (e.expiry, *t)).collect();
        }
    }

    // ----- redirects -----

    /// Records that `tuple`'s connection is now `owner`'s, until `expiry` (or until
    /// removed), replacing an earlier redirect. Refused, handing `owner` back, if the
    /// 4-tuple is a connection or a TIME_WAIT record here, or the redirect table is full.
    pub fn insert_redirect(
        &mut self,
        tuple: FourTuple,
        owner: R,
        expiry: Option<Instant>,
    ) -> Result<(), Refused<R>> {
        let hash = self.key.hash_tuple(&tuple);
        let error = if self.connections.find(hash, |(t, _)| *t == tuple).is_some() {
            Some(TableError::Occupied(EntryKind::Connection))
        } else if self.time_wait.find(hash, |(t, _)| *t == tuple).is_some() {
            Some(TableError::Occupied(EntryKind::TimeWait))
        } else {
            None
        };
        if let Some(error) = error {
            return Err(Refused {
                error,
                value: owner,
            });
        }
        let redirect = Redirect { owner, expiry };
        if let Some((_, old)) = self.redirects.find_mut(hash, |(t, _)| *t == tuple) {
            *old = redirect;
        } else if self.redirects.len() >= self.limits.redirects {
            return Err(Refused {
                error: TableError::Full {
                    kind: EntryKind::Redirect,
                    limit: self.limits.redirects,
                },
                value: redirect.owner,
            });
        } else {
            let key = self.key;
            self.redirects
                .insert_unique(hash, (tuple, redirect), |(t, _)| key.hash_tuple(t));
        }
        if let Some(at) = expiry {
            self.redirect_expiries.push(at, tuple);
            self.purge_stale_redirect_expiries();
        }
        Ok(())
    }

    pub fn redirect(&self, tuple: &FourTuple) -> Option<&Redirect<R>> {
        let hash = self.key.hash_tuple(tuple);
        self.redirects
            .find(hash, |(t, _)| t == tuple)
            .map(|(_, r)| r)
    }

    /// Puts a connection where `tuple`'s redirect (if any) was, in one step: the
    /// connection's value goes in, the redirect comes out. Refused, with both left as
    /// they were, if the 4-tuple is a connection or a TIME_WAIT record, or the
    /// connection table is full.
    pub fn replace_redirect(
        &mut self,
        tuple: FourTuple,
        value: V,
    ) -> Result<Option<Redirect<R>>, Refused<V>> {
        let hash = self.key.hash_tuple(&tuple);
        let error = if self.connections.find(hash, |(t, _)| *t == tuple).is_some() {
            Some(TableError::Occupied(EntryKind::Connection))
        } else if self.time_wait.find(hash, |(t, _)| *t == tuple).is_some() {
            Some(TableError::Occupied(EntryKind::TimeWait))
        } else if self.connections.len() >= self.limits.connections {
            Some(TableError::Full {
                kind: EntryKind::Connection,
                limit: self.limits.connections,
            })
        } else {
            None
        };
        if let Some(error) = error {
            return Err(Refused { error, value });
        }
        let old = self
            .redirects
            .find_entry(hash, |(t, _)| *t == tuple)
            .ok()
            .map(|e| e.remove().0 .1);
        let key = self.key;
        self.connections
            .insert_unique(hash, (tuple, value), |(t, _)| key.hash_tuple(t));
        Ok(old)
    }

    /// Turns `tuple`'s connection into a redirect to `owner` (until `expiry`) in one
    /// step, returning the connection's value; `None`, changing nothing, if there is no
    /// such connection. (The redirect table may exceed its limit by this one entry: a
    /// connection that leaves must leave its redirect.)
    pub fn connection_to_redirect(
        &mut self,
        tuple: &FourTuple,
        owner: R,
        expiry: Option<Instant>,
    ) -> Option<V> {
        let hash = self.key.hash_tuple(tuple);
        let entry = self
            .connections
            .find_entry(hash, |(t, _)| t == tuple)
            .ok()?;
        let ((tuple, value), _) = entry.remove();
        let key = self.key;
        let redirect = Redirect { owner, expiry };
        match self.redirects.find_mut(hash, |(t, _)| *t == tuple) {
            Some((_, old)) => *old = redirect,
            None => {
                self.redirects
                    .insert_unique(hash, (tuple, redirect), |(t, _)| key.hash_tuple(t));
            }
        }
        if let Some(at) = expiry {
            self.redirect_expiries.push(at, tuple);
            self.purge_stale_redirect_expiries();
        }
        Some(value)
    }

    pub fn remove_redirect(&mut self, tuple: &FourTuple) -> Option<Redirect<R>> {
        let hash = self.key.hash_tuple(tuple);
        let entry = self.redirects.find_entry(hash, |(t, _)| t == tuple).ok()?;
        let ((_, redirect), _) = entry.remove();
        Some(redirect)
    }

    /// Every redirect, in no particular order.
    pub fn redirects(&self) -> impl Iterator<Item = (&FourTuple, &Redirect<R>)> + '_ {
        self.redirects.iter().map(|(t, r)| (t, r))
    }

    /// Removes every redirect whose expiry is at or before `now`; returns how many.
    pub fn expire_redirects(&mut self, now: Instant) -> usize {
        let mut count = 0;
        while let Some((expiry, tuple)) = self.redirect_expiries.peek() {
            if expiry > now {
                break;
            }
            self.redirect_expiries.pop();
            let hash = self.key.hash_tuple(&tuple);
            if let Ok(entry) = self
                .redirects
                .find_entry(hash, |(t, r)| *t == tuple && r.expiry == Some(expiry))
            {
                entry.remove();
                count += 1;
            }
        }
        count
    }

    /// A lower bound of the earliest redirect expiry, or `None` when none expires.
    pub fn next_redirect_expiry(&self) -> Option<Instant> {
        if self.redirects.is_empty() {
            return None;
        }
        self.redirect_expiries.peek().map(|(at, _)| at)
    }

    fn purge_stale_redirect_expiries(&mut self) {
        if self.redirect_expiries.len() > 2 * self.redirects.len() + 64 {
            self.redirect_expiries = self
                .redirects
                .iter()
                .filter_map(|(t, r)| r.expiry.map(|at| (at, *t)))
                .collect();
        }
    }

    // ----- listeners -----

    /// Adds a listener on `local`; `0.0.0.0:port` listens on every local address for that
    /// port. Refused if one is already there or the listener table is full.
    pub fn insert_listener(&mut self, local: SocketAddrV4, listener: L) -> Result<(), Refused<L>> {
        let hash = listener_hash(&local);
        let error = if self.listeners.find(hash, |(a, _)| *a == local).is_some() {
            Some(TableError::Occupied(EntryKind::Listener))
        } else if self.listeners.len() >= self.limits.listeners {
            Some(TableError::Full {
                kind: EntryKind::Listener,
                limit: self.limits.listeners,
            })
        } else {
            None
        };
        if let Some(error) = error {
            return Err(Refused {
                error,
                value: listener,
            });
        }
        self.listeners
            .insert_unique(hash, (local, listener), |(a, _)| listener_hash(a));
        Ok(())
    }

    /// The listener registered on exactly `local` (no wildcard fallback).
    pub fn listener(&self, local: &SocketAddrV4) -> Option<&L> {
        let hash = listener_hash(local);
        self.listeners
            .find(hash, |(a, _)| a == local)
            .map(|(_, l)| l)
    }

    pub fn listener_mut(&mut self, local: &SocketAddrV4) -> Option<&mut L> {
        let hash = listener_hash(local);
        self.listeners
            .find_mut(hash, |(a, _)| a == local)
            .map(|(_, l)| l)
    }

    /// The listener that accepts connections to `local`: the exact one, else the wildcard
    /// one for its port. Returns the key that matched with it.
    pub fn listener_for(&self, local: SocketAddrV4) -> Option<(SocketAddrV4, &L)> {
        let key = self.listener_key(local)?;
        self.listener(&key).map(|l| (key, l))
    }

    pub fn listener_for_mut(&mut self, local: SocketAddrV4) -> Option<(SocketAddrV4, &mut L)> {
        let key = self.listener_key(local)?;
        self.listener_mut(&key).map(|l| (key, l))
    }

    pub fn remove_listener(&mut self, local: &SocketAddrV4) -> Option<L> {
        let hash = listener_hash(local);
        let entry = self.listeners.find_entry(hash, |(a, _)| a == local).ok()?;
        Some(entry.remove().0 .1)
    }

    /// Every listener, in no particular order.
    pub fn listeners(&self) -> impl Iterator<Item = (&SocketAddrV4, &L)> + '_ {
        self.listeners.iter().map(|(a, l)| (a, l))
    }

    fn listener_key(&self, local: SocketAddrV4) -> Option<SocketAddrV4> {
        listener_key(&self.listeners, local)
    }
}

/// Which key a listener lookup for `local` lands on, if any: `local` itself, else the
/// wildcard address with its port. A free function so that it borrows only the listeners.
fn listener_key<L>(
    listeners: &HashTable<(SocketAddrV4, L)>,
    local: SocketAddrV4,
) -> Option<SocketAddrV4> {
    let wildcard = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, local.port());
    [local, wildcard].into_iter().find(|addr| {
        listeners
            .find(listener_hash(addr), |(a, _)| a == addr)
            .is_some()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table's hash is SipHash-1-3 of the 4-tuple's 12 bytes in network order (the
    /// values are pinned in `crate::hash`).
    #[test]
    fn tuple_hash_is_siphash_1_3_of_the_tuple_bytes() {
        let k = FlowHashKey::new(core::array::from_fn(|i| i as u8));
        let local = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80);
        let remote = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 40000);
        assert_eq!(
            k.hash_tuple(&FourTuple::new(local, remote)),
            0x7809_a33a_bff5_156c
        );
    }

    #[test]
    fn the_expiry_queue_gives_expiries_earliest_first_in_any_order_of_arrival() {
        let t = |port| {
            FourTuple::new(
                SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80),
                SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), port),
            )
        };
        let at = Instant::from_millis;
        let mut q = ExpiryQueue::default();
        // In order (the FIFO), then earlier ones (the heap), then later again, and a tie.
        for (ms, port) in [(10, 1), (20, 2), (30, 3), (15, 4), (5, 5), (40, 6), (30, 7)] {
            q.push(at(ms), t(port));
        }
        assert_eq!(q.len(), 7);
        assert_eq!(q.peek(), Some((at(5), t(5))));
        let mut out = Vec::new();
        while let Some((when, tuple)) = q.pop() {
            out.push((when, tuple.remote.port()));
        }
        let ms: Vec<_> = out.iter().map(|(w, _)| *w).collect();
        assert_eq!(ms, [5, 10, 15, 20, 30, 30, 40].map(at).to_vec(), "{out:?}");
        assert_eq!((q.len(), q.peek()), (0, None));
        // Rebuilt from any order: sorted.
        let q: ExpiryQueue = [(at(3), t(1)), (at(1), t(2)), (at(2), t(3))]
            .into_iter()
            .collect();
        assert_eq!(q.peek(), Some((at(1), t(2))));
    }

    #[test]
    fn listener_hashes_differ_in_their_low_and_high_bits() {
        // Every listener address of a /24 on two ports: distinct hashes, spread over the
        // low 10 bits (buckets) and the top 7 (hashbrown's tags).
        let mut low = std::collections::HashSet::new();
        let mut top = std::collections::HashSet::new();
        let mut all = std::collections::HashSet::new();
        for host in 0..=255u8 {
            for port in [80, 443] {
                let h = listener_hash(&SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, host), port));
                all.insert(h);
                low.insert(h & 1023);
                top.insert(h >> 57);
            }
        }
        assert_eq!(all.len(), 512);
        assert!(low.len() > 300, "{} distinct low values", low.len());
        assert!(top.len() > 100, "{} distinct tags", top.len());
    }

    #[test]
    fn tuple_hash_depends_on_every_field() {
        let k = FlowHashKey::from_words(1, 2);
        let a = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80);
        let b = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 40000);
        let t = FourTuple::new(a, b);
        assert_ne!(k.hash_tuple(&t), k.hash_tuple(&t.reversed()));
        let b2 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 40001);
        assert_ne!(k.hash_tuple(&t), k.hash_tuple(&FourTuple::new(a, b2)));
        assert_eq!(format!("{k:?}"), "FlowHashKey(..)");
    }
}

#[cfg(test)]
mod redirect_tests {
    use super::*;

    fn flow(port: u16) -> FourTuple {
        FourTuple::new(
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80),
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), port),
        )
    }

    #[test]
    fn redirects_sit_between_time_wait_and_listeners() {
        let mut t: ConnTable<u32, &str, TimeWait, u16> =
            ConnTable::new(FlowHashKey::from_words(3, 4), TableLimits::default());
        t.insert_listener(flow(1).local, "l").unwrap();
        assert!(matches!(t.lookup(&flow(1)), Lookup::Listener { .. }));
        t.insert_redirect(flow(1), 7, None).unwrap();
        assert_eq!(
            t.lookup(&flow(1)),
            Lookup::Redirect(&Redirect {
                owner: 7,
                expiry: None
            })
        );
        assert_eq!(t.len(EntryKind::Redirect), 1);
        // A connection cannot take the 4-tuple while the redirect is there, and a redirect
        // cannot take a connection's.
        assert_eq!(
            t.insert_connection(flow(1), 1).unwrap_err().error,
            TableError::Occupied(EntryKind::Redirect)
        );
        t.insert_connection(flow(2), 2).unwrap();
        assert_eq!(
            t.insert_redirect(flow(2), 9, None).unwrap_err().error,
            TableError::Occupied(EntryKind::Connection)
        );
        // Replacing keeps one entry; removing brings the listener back.
        t.insert_redirect(flow(1), 8, None).unwrap();
        assert_eq!(t.len(EntryKind::Redirect), 1);
        assert_eq!(t.remove_redirect(&flow(1)).map(|r| r.owner), Some(8));
        assert!(matches!(t.lookup(&flow(1)), Lookup::Listener { .. }));
    }

    #[test]
    fn redirects_expire_unless_replaced() {
        let mut t: ConnTable<u32> =
            ConnTable::new(FlowHashKey::from_words(5, 6), TableLimits::default());
        let at = |ms| Instant::from_millis(ms);
        t.insert_redirect(flow(1), 1, Some(at(10))).unwrap();
        t.insert_redirect(flow(2), 2, Some(at(20))).unwrap();
        t.insert_redirect(flow(3), 3, None).unwrap();
        // Replaced with a later expiry: the first one no longer applies.
        t.insert_redirect(flow(2), 2, Some(at(40))).unwrap();
        assert_eq!(t.next_redirect_expiry(), Some(at(10)));
        assert_eq!(t.expire_redirects(at(25)), 1);
        assert!(t.redirect(&flow(1)).is_none());
        assert!(t.redirect(&flow(2)).is_some());
        assert_eq!(t.expire_redirects(at(40)), 1);
        assert_eq!(t.expire_redirects(at(1_000_000)), 0);
        assert_eq!(t.redirect(&flow(3)).map(|r| r.owner), Some(3));
        let mut full: ConnTable<u32> = ConnTable::new(
            FlowHashKey::from_words(5, 6),
            TableLimits {
                redirects: 1,
                ..TableLimits::default()
            },
        );
        full.insert_redirect(flow(1), 1, None).unwrap();
        assert!(matches!(
            full.insert_redirect(flow(2), 2, None).unwrap_err().error,
            TableError::Full {
                kind: EntryKind::Redirect,
                limit: 1
            }
        ));
    }
}
