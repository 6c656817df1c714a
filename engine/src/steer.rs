//! Flow ownership and software steering between the cores of one engine.
//!
//! Each connection is owned by one core. The device spreads received packets over its
//! queues by a hash we may not know (net_tap multi-queue uses the kernel's) or that may not
//! be symmetric (a NIC's RSS), so a packet can arrive on a core that does not own its flow.
//! That core hands it to the owner over the [`Mesh`].
//!
//! Owns: [`FlowSteer`], the rule that gives every flow a **home** core, the same on every
//! core and for both directions of the flow; the choice of source ports for active opens so
//! that the new flow's home is the opening core ([`FlowSteer::pick_local_port`]);
//! [`Mesh`], one bounded lock-free single-producer/single-consumer queue per ordered pair
//! of cores, over which a core hands values to another; [`CoreMessage`], what those values
//! are (received frames, migrating connections and what their origin hears back, owner
//! updates for home cores); and [`Steer`], the poll loop's way to the other owners, with
//! [`NoSteer`] for a single core and [`MeshSteer`] over the mesh.
//!
//! May not: look into frames, decide who owns a flow after a migration (the stack's table
//! holds redirects; the stack says where a frame goes), block, allocate per value, or lose
//! a value: a value is in a queue, back in the caller's hands, or dropped with the mesh.
use core::fmt;
use core::net::{Ipv4Addr, SocketAddrV4};
use core::ops::RangeInclusive;
use std::sync::Arc;

use crossbeam::queue::ArrayQueue;

use crate::flow::FourTuple;
use crate::migrate::{Owner, Ticket, Transfer};
use crate::stack::MigrateError;
use crate::table::FlowHashKey;
use crate::time::Instant;

/// Why a steering structure could not be built or used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum SteerError {
    /// A core count of zero.
    #[error("the core count must be at least 1")]
    NoCores,
    /// A mesh queue that could hold nothing.
    #[error("a mesh queue must hold at least one value")]
    ZeroCapacity,
    /// A mesh whose queues would hold more than [`MAX_MESH_SLOTS`] values in all.
    #[error("a mesh of {cores} cores with queues of {capacity} is too large")]
    TooLarge { cores: u16, capacity: usize },
    /// A destination that is not another core of the mesh.
    #[error("core {to} is not a peer of core {core} (mesh of {cores} cores)")]
    NotAPeer { core: u16, to: u16, cores: u16 },
}

/// Which core is the home of a flow.
///
/// The home is the owner of a passively opened connection, and of an actively opened one
/// whose source port came from [`FlowSteer::pick_local_port`]. A core that receives a
/// packet for a flow whose home is another core forwards it there over the [`Mesh`].
///
/// The key must be the same on all cores of an engine (unlike a table's key, which is per
/// core) and secret: peers choose their ports, and a peer that could predict homes could
/// pile its flows onto one core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowSteer {
    cores: u16,
    /// Keys the hash of 4-tuples, which peers choose (see [`FlowHashKey`]).
    key: FlowHashKey,
}

impl FlowSteer {
    /// Steering over `cores` cores (at least 1) under `key`.
    pub fn new(cores: u16, key: FlowHashKey) -> Result<Self, SteerError> {
        if cores == 0 {
            return Err(SteerError::NoCores);
        }
        Ok(FlowSteer { cores, key })
    }

    pub fn cores(&self) -> u16 {
        self.cores
    }

    /// The home core of a flow, in `0..cores`.
    ///
    /// Contract: a pure function of the key, the core count and the **unordered** pair of
    /// endpoints, so `home(t) == home(&t.reversed())`, every core (and every engine built
    /// with the same key and core count) computes the same value, and it never changes for
    /// a given `FlowSteer`. Changing the core count re-homes most flows; migration, not
    /// this function, keeps existing connections where they are.
    ///
    /// How: the endpoints are ordered by (address, port), the keyed SipHash-1-3 of
    /// [`FlowHashKey::hash_tuple`] is taken over (lower, higher), and the 64-bit hash is
    /// mapped onto the cores by multiply-and-shift.
    pub fn home(&self, tuple: &FourTuple) -> u16 {
        let order = |a: &SocketAddrV4| (u32::from(*a.ip()), a.port());
        let canonical = if order(&tuple.local) <= order(&tuple.remote) {
            *tuple
        } else {
            tuple.reversed()
        };
        let hash = self.key.hash_tuple(&canonical);
        // < cores, since hash < 2^64.
        ((u128::from(hash) * u128::from(self.cores)) >> 64) as u16
    }

    /// A source port in `range` for an active open from `local_ip` to `remote` on `core`,
    /// such that the flow's home is `core`: the first such port from `start_hint` on,
    /// wrapping around to the start of the range (from the start if the hint is outside
    /// it). `None` if no port of the range qualifies or `core` is not below the core
    /// count. Port 0 is never returned.
    ///
    /// About one port in `cores` qualifies, so a search takes `cores` hashes on average and
    /// the whole range (up to 65535) in the worst case. Whether the port is free is the
    /// caller's business: see [`FlowSteer::pick_local_port_where`].
    pub fn pick_local_port(
        &self,
        local_ip: Ipv4Addr,
        remote: SocketAddrV4,
        core: u16,
        range: RangeInclusive<u16>,
        start_hint: u16,
    ) -> Option<u16> {
        self.pick_local_port_where(local_ip, remote, core, range, start_hint, |_| true)
    }

    /// As [`FlowSteer::pick_local_port`], skipping ports for which `usable` is false
    /// (those in use with this remote endpoint, say). `usable` is only asked about ports
    /// that home on `core`.
    pub fn pick_local_port_where(
        &self,
        local_ip: Ipv4Addr,
        remote: SocketAddrV4,
        core: u16,
        range: RangeInclusive<u16>,
        start_hint: u16,
        mut usable: impl FnMut(u16) -> bool,
    ) -> Option<u16> {
        let (low, high) = (*range.start(), *range.end());
        if low > high || core >= self.cores {
            return None;
        }
        let span = u32::from(high - low) + 1;
        let first = if range.contains(&start_hint) {
            u32::from(start_hint - low)
        } else {
            0
        };
        (0..span)
            .map(|i| low + ((first + i) % span) as u16)
            .filter(|&port| port != 0)
            .find(|&port| {
                let tuple = FourTuple::new(SocketAddrV4::new(local_ip, port), remote);
                self.home(&tuple) == core && usable(port)
            })
    }
}

/// What the cores of one engine send each other over the [`Mesh`]. Frames and control
/// messages share one queue per pair of cores, so that a connection's record arrives
/// before the segments its origin hands on after it.
#[derive(Debug)]
pub enum CoreMessage<F> {
    /// A received frame for the receiving core, which owns its flow or is its home;
    /// `hops` counts the cores it went through (a bound stops loops).
    Frame { frame: F, hops: u8 },
    /// A connection moving to the receiving core.
    Migrate(Box<Transfer>),
    /// The receiving core's move `ticket` succeeded: the sender adopted the connection at
    /// `adopted_at`.
    Adopted { ticket: Ticket, adopted_at: Instant },
    /// The receiving core's move came back refused: it takes the connection back.
    Returned {
        transfer: Box<Transfer>,
        error: MigrateError,
    },
    /// To a flow's home core: the flow's connection is now `owner`'s (`Some`), or core
    /// `from` let go of it (`None`).
    Owner {
        tuple: FourTuple,
        owner: Option<Owner>,
        from: u16,
    },
    /// An address handed over to this engine by a drained peer: every core takes it and
    /// answers ARP for it (a request for it may reach any core's queue).
    Address { ip: Ipv4Addr },
}

/// How the poll loop reaches the other owners of flows: the cores of its engine (and,
/// later, peer engines).
pub trait Steer<F> {
    /// Sends `msg` to `to`. Gives it back if that is impossible (queue full, not a core
    /// of this engine); the loop then drops a frame (counted) or retries a control
    /// message.
    fn send(&mut self, to: Owner, msg: CoreMessage<F>) -> Result<(), CoreMessage<F>>;
    /// Appends the messages others sent here, in their order per sender.
    fn receive(&mut self, out: &mut Vec<CoreMessage<F>>, max: usize) -> usize;
    /// Whether messages this end sent wait in queues for their receivers (a snapshot).
    fn has_queued(&self) -> bool {
        false
    }
}

/// No other cores: nothing is ever forwarded.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoSteer;

impl<F> Steer<F> for NoSteer {
    fn send(&mut self, _: Owner, msg: CoreMessage<F>) -> Result<(), CoreMessage<F>> {
        Err(msg)
    }
    fn receive(&mut self, _: &mut Vec<CoreMessage<F>>, _: usize) -> usize {
        0
    }
}

/// Most values all queues of one [`Mesh`] may hold together (2^24, some 256 MiB of slots
/// for 8-byte values): bounds the memory a configuration can ask for.
pub const MAX_MESH_SLOTS: usize = 1 << 24;

/// The queues between every ordered pair of `cores` cores. A caller never holds one: it
/// gets one [`MeshEndpoint`] per core from [`Mesh::new`], and the mesh lives as long as
/// the last of them. Dropping it drops the values still queued.
pub struct Mesh<T> {
    cores: u16,
    /// The queue from core `f` to core `t` (f != t) is at `f * (cores - 1) + t'`, where
    /// `t'` is `t` with `f` taken out of the numbering. Each has one producer (the
    /// endpoint of `f`) and one consumer (the endpoint of `t`).
    queues: Box<[ArrayQueue<T>]>,
}

impl<T> fmt::Debug for Mesh<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mesh")
            .field("cores", &self.cores)
            .field("queues", &self.queues.len())
            .finish_non_exhaustive()
    }
}

impl<T> Mesh<T> {
    fn queue(&self, from: u16, to: u16) -> Option<&ArrayQueue<T>> {
        if from == to || from >= self.cores || to >= self.cores {
            return None;
        }
        let to_index = if to > from { to - 1 } else { to };
        let index = usize::from(from) * usize::from(self.cores - 1) + usize::from(to_index);
        self.queues.get(index)
    }
}

impl<T: Send> Mesh<T> {
    /// A mesh of `cores` cores whose queues hold `capacity` values each: `cores × (cores
    /// - 1)` queues, all allocated now. Returns the endpoints, the one of core `i` at index
    /// `i`; each is `Send`, to be moved to its core's thread.
    // The mesh itself is shared by the endpoints and never handed out.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(cores: u16, capacity: usize) -> Result<Vec<MeshEndpoint<T>>, SteerError> {
        if cores == 0 {
            return Err(SteerError::NoCores);
        }
        if capacity == 0 {
            return Err(SteerError::ZeroCapacity);
        }
        let pairs = usize::from(cores) * usize::from(cores - 1);
        if !matches!(pairs.checked_mul(capacity), Some(slots) if slots <= MAX_MESH_SLOTS) {
            return Err(SteerError::TooLarge { cores, capacity });
        }
        let queues = (0..pairs).map(|_| ArrayQueue::new(capacity)).collect();
        let mesh = Arc::new(Mesh { cores, queues });
        Ok((0..cores)
            .map(|core| MeshEndpoint {
                core,
                mesh: Arc::clone(&mesh),
                counters: vec![PeerCounters::default(); usize::from(cores)].into_boxed_slice(),
                next_peer: if cores > 1 { (core + 1) % cores } else { core },
            })
            .collect())
    }
}

/// What one endpoint exchanged with one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PeerCounters {
    /// Values queued to the peer.
    pub sent: u64,
    /// Values taken from the peer's queue.
    pub received: u64,
    /// Values refused because the queue to the peer was full (each refusal counts, also
    /// for a value the caller then retries).
    pub full: u64,
}

/// A value the mesh did not take, handed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MeshSendError<T> {
    /// The queue to the peer is full.
    #[error("queue to the peer is full")]
    Full(T),
    /// The destination is this core or not a core of the mesh.
    #[error("destination is not a peer")]
    NotAPeer(T),
}

impl<T> MeshSendError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            MeshSendError::Full(value) | MeshSendError::NotAPeer(value) => value,
        }
    }
}

/// One core's end of a [`Mesh`]: the producer of its queues to every peer and the consumer
/// of every peer's queue to it. Not `Clone`, and every operation takes `&mut self`, which
/// is what makes each queue single-producer, single-consumer.
pub struct MeshEndpoint<T> {
    core: u16,
    mesh: Arc<Mesh<T>>,
    /// Indexed by peer; the entry of this core stays zero.
    counters: Box<[PeerCounters]>,
    /// The peer `recv_burst` polls first (round-robin).
    next_peer: u16,
}

impl<T> fmt::Debug for MeshEndpoint<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshEndpoint")
            .field("core", &self.core)
            .field("cores", &self.mesh.cores)
            .finish_non_exhaustive()
    }
}

impl<T: Send> MeshEndpoint<T> {
    /// This endpoint's core.
    pub fn core(&self) -> u16 {
        self.core
    }

    /// The number of cores in the mesh.
    pub fn cores(&self) -> u16 {
        self.mesh.cores
    }

    /// Counters per peer, indexed by core (this core's entry is zero).
    pub fn counters(&self) -> &[PeerCounters] {
        &self.counters
    }

    /// Queues `value` to core `to`; a full queue or a destination that is not a peer hands
    /// it back (the caller drops it and counts, or retries later).
    pub fn send(&mut self, to: u16, value: T) -> Result<(), MeshSendError<T>> {
        let Some(queue) = self.mesh.queue(self.core, to) else {
            return Err(MeshSendError::NotAPeer(value));
        };
        let counters = &mut self.counters[usize::from(to)];
        match queue.push(value) {
            Ok(()) => {
                counters.sent += 1;
                Ok(())
            }
            Err(value) => {
                counters.full += 1;
                Err(MeshSendError::Full(value))
            }
        }
    }

    /// Queues values from the front of `values` to core `to` until the queue is full,
    /// removing those sent; returns how many. What is left was not sent, in its order.
    pub fn send_burst(&mut self, to: u16, values: &mut Vec<T>) -> Result<usize, SteerError> {
        let cores = self.mesh.cores;
        let Some(queue) = self.mesh.queue(self.core, to) else {
            return Err(SteerError::NotAPeer {
                core: self.core,
                to,
                cores,
            });
        };
        // Pop from the back of the reversed vector: O(1) per value, no allocation, and a
        // refused value goes back where it was.
        values.reverse();
        let mut sent = 0;
        while let Some(value) = values.pop() {
            if let Err(value) = queue.push(value) {
                values.push(value);
                break;
            }
            sent += 1;
        }
        values.reverse();
        let counters = &mut self.counters[usize::from(to)];
        counters.sent += sent as u64;
        counters.full += values.len() as u64;
        Ok(sent)
    }

    /// Appends up to `max` values from the peers' queues to `out`, one per peer in turn
    /// (round-robin, continuing where the last call stopped) so that a busy peer cannot
    /// starve the others; returns how many. Values from one peer keep their order.
    pub fn recv_burst(&mut self, out: &mut Vec<T>, max: usize) -> usize {
        let cores = self.mesh.cores;
        let peers = usize::from(cores) - 1;
        let mut received = 0;
        let mut empty_in_a_row = 0;
        let mut peer = self.next_peer;
        while received < max && empty_in_a_row < peers {
            if let Some(value) = self.mesh.queue(peer, self.core).and_then(ArrayQueue::pop) {
                out.push(value);
                received += 1;
                empty_in_a_row = 0;
                self.counters[usize::from(peer)].received += 1;
            } else {
                empty_in_a_row += 1;
            }
            peer = (peer + 1) % cores;
            if peer == self.core {
                peer = (peer + 1) % cores;
            }
        }
        self.next_peer = peer;
        received
    }

    /// Values queued from this core to `to` and not yet taken (0 for a non-peer). A
    /// snapshot: the peer may be taking them as this returns.
    pub fn queued_to(&self, to: u16) -> usize {
        self.mesh.queue(self.core, to).map_or(0, ArrayQueue::len)
    }
}

/// The poll loop's [`Steer`] for one core of several: messages to another core go over
/// the [`Mesh`]; messages other cores sent here come back out of `receive`.
#[derive(Debug)]
pub struct MeshSteer<F> {
    endpoint: MeshEndpoint<CoreMessage<F>>,
}

impl<F: Send> MeshSteer<F> {
    pub fn new(endpoint: MeshEndpoint<CoreMessage<F>>) -> Self {
        MeshSteer { endpoint }
    }

    pub fn endpoint(&self) -> &MeshEndpoint<CoreMessage<F>> {
        &self.endpoint
    }

    pub fn endpoint_mut(&mut self) -> &mut MeshEndpoint<CoreMessage<F>> {
        &mut self.endpoint
    }
}

impl<F: Send> Steer<F> for MeshSteer<F> {
    fn send(&mut self, to: Owner, msg: CoreMessage<F>) -> Result<(), CoreMessage<F>> {
        match to {
            Owner::Core(core) => self
                .endpoint
                .send(core, msg)
                .map_err(MeshSendError::into_inner),
            Owner::Peer(_) => Err(msg),
        }
    }

    fn receive(&mut self, out: &mut Vec<CoreMessage<F>>, max: usize) -> usize {
        self.endpoint.recv_burst(out, max)
    }

    fn has_queued(&self) -> bool {
        (0..self.endpoint.cores()).any(|to| self.endpoint.queued_to(to) > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_indices_cover_every_pair_once() {
        let mesh: Mesh<u8> = Mesh {
            cores: 5,
            queues: (0..20).map(|_| ArrayQueue::new(1)).collect(),
        };
        let mut seen = std::collections::HashSet::new();
        for from in 0..5 {
            for to in 0..5 {
                match mesh.queue(from, to) {
                    Some(q) => assert!(seen.insert(q as *const _ as usize)),
                    None => assert_eq!(from, to),
                }
            }
        }
        assert_eq!(seen.len(), 20);
        assert!(mesh.queue(5, 0).is_none() && mesh.queue(0, 5).is_none());
    }
}
