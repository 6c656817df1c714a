//! One core's TCP/IP endpoint: the interface (ARP, ICMP), listeners, the connection table,
//! the timer wheel, and the glue that turns frames into segments and segments into frames.
//!
//! Sans-IO like the rest of the engine: frames come in through [`Stack::receive`], time
//! through `now` arguments, frames go out through [`Stack::transmit`] into buffers the
//! caller allocates, and applications are driven by [`Stack::dispatch`]. The poll loop
//! (`poll::Engine`) and the simulator are the two drivers.
//!
//! The module's files, by concern: `slab` (connections by [`ConnId`], slot index +
//! generation, so a stale id never reaches a newer connection), `counters` (what the stack
//! counts and reports), `dispatch` (events to the application), `egress` (segments into
//! frames, next hops, timer re-arming), `app` (the application API); this file holds the
//! stack itself, its set-up, and the way in (frames to connections, listeners, timers).
//! The table maps 4-tuples to ids with a keyed hash; the
//! wheel holds one timer per connection, re-armed whenever its earliest deadline moves.
//! A connection that reaches TIME-WAIT with nothing left for the application is replaced
//! by a compact record in the table ([`crate::tcp::TimeWaitRecord`]), which answers its
//! 4-tuple until 2 MSL have passed; the application sees [`Event::Closed`] at once.
pub mod app;
mod counters;
mod dispatch;
mod egress;
mod flow_cache;
mod migrate;
mod slab;

use core::net::{Ipv4Addr, SocketAddrV4};
use core::ops::RangeInclusive;

use crate::flow::FourTuple;
use crate::iface::{Interface, Verdict};
use crate::migrate::Owner;
use crate::rng::splitmix64;
use crate::stats::{Counters, DropReason};
use crate::steer::FlowSteer;
use crate::table::{ConnTable, FlowHashKey, Lookup, TableLimits};
use crate::tcp::{
    reset_for, Connection, Disposition, IsnGenerator, Listener, ListenerConfig, ListenerStats,
    SipKey, TcpConfig, TcpError, TimeWaitRecord, TimeWaitVerdict,
};
use crate::time::{Duration, Instant};
use crate::timer::TimerWheel;
use crate::wire::ipv4::Ipv4Repr;
use crate::wire::tcp::{TcpPacket, TcpRepr};
use crate::wire::{Error as WireError, EthernetAddress};
use egress::{conn_reset, next_hop};

pub use app::{App, Ctx, Event, NoApp};
pub use counters::{MemoryUse, TcpCounters};
pub use migrate::{MigrateError, MigrationCounters, OwnerUpdate, Refusal, REDIRECT_LINGER};
pub use slab::ConnId;
use slab::{Entry, Slab};

/// Stateless replies (RSTs for unknown flows) queued at most per poll; more are dropped.
const MAX_REPLIES: usize = 256;

/// Errors of the stack's calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StackError {
    #[error("no such connection (closed, or a stale id)")]
    NoConnection,
    #[error("port {0} is already in use")]
    PortInUse(u16),
    #[error("connection table full")]
    TableFull,
    #[error("no free local port for an active open")]
    NoLocalPort,
    #[error("remote address {0} is not on this interface's network and no gateway is set")]
    Unreachable(Ipv4Addr),
    #[error("local address {0} is not this interface's")]
    NotLocal(Ipv4Addr),
    #[error(transparent)]
    Tcp(#[from] TcpError),
}

/// Secret keys for the hashes a peer could otherwise steer. The driver draws them from a
/// real random source, per core.
#[derive(Debug, Clone, Copy)]
pub struct StackKeys {
    /// RFC 6528 ISNs and timestamp offsets.
    pub isn: SipKey,
    /// SYN cookies and listener maps.
    pub cookie: SipKey,
    /// The connection table's hash (peers choose the 4-tuples).
    pub table: FlowHashKey,
}

impl StackKeys {
    /// Keys derived from one 64-bit seed (SplitMix64). Tests use fixed seeds; a driver
    /// passes a value from the operating system's random source.
    pub fn from_seed(seed: u64) -> StackKeys {
        let mut state = seed;
        let mut key = || {
            let mut k = [0u8; 16];
            k[..8].copy_from_slice(&splitmix64(&mut state).to_le_bytes());
            k[8..].copy_from_slice(&splitmix64(&mut state).to_le_bytes());
            k
        };
        StackKeys {
            isn: SipKey(key()),
            cookie: SipKey(key()),
            table: FlowHashKey::new(key()),
        }
    }
}

/// How a stack is set up.
#[derive(Debug, Clone)]
pub struct StackConfig {
    pub tcp: TcpConfig,
    pub listener: ListenerConfig,
    /// Connections (not counting TIME-WAIT and half-open ones) this core holds at most.
    pub max_connections: usize,
    /// Local ports for active opens.
    pub ephemeral_ports: RangeInclusive<u16>,
    /// Granularity of the timer wheel.
    pub timer_tick: Duration,
    /// Next hop for destinations off the interface's network.
    pub gateway: Option<Ipv4Addr>,
}

impl Default for StackConfig {
    fn default() -> Self {
        StackConfig {
            tcp: TcpConfig::default(),
            listener: ListenerConfig::default(),
            max_connections: 65_536,
            ephemeral_ports: 32_768..=60_999,
            timer_tick: Duration::from_millis(1),
            gateway: None,
        }
    }
}

/// One core's TCP/IP endpoint. See the module documentation.
#[derive(Debug)]
pub struct Stack {
    iface: Interface,
    config: StackConfig,
    keys: StackKeys,
    isn: IsnGenerator,
    slab: Slab,
    /// Connections, compact TIME-WAIT records (a connection is dropped once it reaches
    /// TIME-WAIT with nothing left for the application) and listeners.
    table: ConnTable<ConnId, u32, TimeWaitRecord, Owner>,
    /// Recently used connections, in front of the table (on from 16,384 connections).
    flow_cache: flow_cache::FlowCache,
    /// Connections that went to a TIME-WAIT record since the last dispatch: the
    /// application gets their [`Event::Closed`] there.
    closed_to_time_wait: Vec<ConnId>,
    listeners: Vec<Listener>,
    /// The counters of listeners closed so far (by `abort_all`), kept for the figures.
    retired_listeners: ListenerStats,
    /// The listeners may have output to send or a new deadline: set by their input, their
    /// timers and `listen`, cleared once `transmit` has drained them. Their half-open
    /// connections are scanned only then, not on every poll.
    listeners_dirty: bool,
    /// The listeners' earliest deadline, as of the last time they were drained.
    listener_deadline: Option<Instant>,
    timers: TimerWheel<ConnId>,
    /// Connections with possible events or output, each once.
    touched: Vec<ConnId>,
    /// Scratch for expired timers.
    expired: Vec<ConnId>,
    /// Stateless replies: (tuple, header).
    replies: Vec<(FourTuple, TcpRepr<'static>)>,
    next_port: u16,
    tcp: TcpCounters,
    /// With several cores: how flows map to cores, and which core this is. `None`: this
    /// stack owns every flow.
    owner: Option<(FlowSteer, u16)>,
    /// Buffers are low: refuse new connections.
    buffers_low: bool,
    /// Owner updates for other cores (see `migrate`).
    owner_updates: Vec<OwnerUpdate>,
    migration: MigrationCounters,
    /// Freeze instants of moved connections that sent their first segment here.
    first_sends: Vec<Instant>,
    /// After a drain: segments of flows this core does not hold (new connections
    /// included) go to this owner, except those to the local ports listed (the channel's).
    forward_unknown: Option<(Owner, Vec<u16>)>,
}

/// What [`Stack::receive`] did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// The frame now holds a reply (ARP, ICMP): send its first `len` bytes.
    Reply(usize),
    /// Used, or dropped and counted: free the frame.
    Done,
    /// A TCP segment of a flow this core does not own: hand the frame to its owner (the
    /// flow's home core, or where a redirect says the connection moved).
    NotOurs(Owner),
}

impl Stack {
    pub fn new(iface: Interface, config: StackConfig, keys: StackKeys) -> Stack {
        let limits = TableLimits {
            connections: config.max_connections,
            ..TableLimits::default()
        };
        let next_port = *config.ephemeral_ports.start();
        Stack {
            isn: IsnGenerator::new(keys.isn),
            table: ConnTable::new(keys.table, limits),
            closed_to_time_wait: Vec::new(),
            timers: TimerWheel::new(config.timer_tick),
            iface,
            config,
            keys,
            slab: Slab::default(),
            flow_cache: flow_cache::FlowCache::default(),
            listeners: Vec::new(),
            retired_listeners: ListenerStats::default(),
            listeners_dirty: false,
            listener_deadline: None,
            touched: Vec::new(),
            expired: Vec::new(),
            replies: Vec::new(),
            next_port,
            tcp: TcpCounters::default(),
            owner: None,
            buffers_low: false,
            owner_updates: Vec::new(),
            migration: MigrationCounters::default(),
            first_sends: Vec::new(),
            forward_unknown: None,
        }
    }

    pub fn iface(&self) -> &Interface {
        &self.iface
    }

    pub fn iface_mut(&mut self) -> &mut Interface {
        &mut self.iface
    }

    pub fn counters(&self) -> &Counters {
        self.iface.counters()
    }

    pub fn counters_mut(&mut self) -> &mut Counters {
        self.iface.counters_mut()
    }

    pub fn config(&self) -> &StackConfig {
        &self.config
    }

    /// Resets every connection (RST to each peer, [`Event::Closed`] to the application
    /// at the next dispatch) and closes every listener: an orderly stop. The RSTs go out
    /// with the next [`Stack::transmit`].
    pub fn abort_all(&mut self) {
        for listener in self.listeners.drain(..) {
            self.table.remove_listener(&listener.local());
            self.retired_listeners.add(&listener.stats());
        }
        self.listeners_dirty = true;
        for id in self.slab.ids() {
            if let Some(e) = self.entry_mut(id) {
                e.conn.abort();
            }
            self.touch(id);
        }
    }

    /// Tells the stack whether the buffer pool is running low; while it is, SYNs to
    /// listeners are dropped (the peer retries) rather than accepted.
    pub fn set_buffers_low(&mut self, low: bool) {
        self.buffers_low = low;
    }

    /// Makes this stack core `core` of `steer`: it owns the flows whose home is `core`;
    /// segments of other flows come back from [`Stack::receive`] as
    /// [`Received::NotOurs`], and active opens pick source ports that home here.
    pub fn set_steering(&mut self, steer: FlowSteer, core: u16) {
        self.owner = Some((steer, core));
    }

    /// Whether this core owns `tuple`.
    fn owns(&self, tuple: &FourTuple) -> bool {
        self.owner
            .is_none_or(|(steer, core)| steer.home(tuple) == core)
    }

    fn conn(&self, id: ConnId) -> Option<&Connection> {
        self.slab.get(id).map(|e| &e.conn)
    }

    fn entry_mut(&mut self, id: ConnId) -> Option<&mut Entry> {
        self.slab.get_mut(id)
    }

    /// Runs `f` on the connection and marks it for output and events.
    fn with_conn<T>(
        &mut self,
        id: ConnId,
        f: impl FnOnce(&mut Connection) -> Result<T, StackError>,
    ) -> Result<T, StackError> {
        let entry = self.entry_mut(id).ok_or(StackError::NoConnection)?;
        let r = f(&mut entry.conn);
        self.touch(id);
        r
    }

    fn user_data(&self, id: ConnId) -> u64 {
        self.slab.get(id).map_or(0, |e| e.user)
    }

    fn set_user_data(&mut self, id: ConnId, value: u64) {
        if let Some(e) = self.entry_mut(id) {
            e.user = value;
        }
    }

    fn touch(&mut self, id: ConnId) {
        if let Some(e) = self.entry_mut(id) {
            if !e.touched {
                e.touched = true;
                self.touched.push(id);
            }
        }
    }

    /// Listens on `port` of the interface's address.
    pub fn listen(&mut self, port: u16) -> Result<(), StackError> {
        // Every address of the interface: our own, and one adopted from an engine that
        // drained its connections here takes new connections too.
        let local = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port);
        let index = self.listeners.len() as u32;
        self.table
            .insert_listener(local, index)
            .map_err(|_| StackError::PortInUse(port))?;
        let tcp = self.tcp_config();
        self.listeners.push(Listener::new(
            local,
            tcp,
            self.config.listener,
            self.keys.isn,
            self.keys.cookie,
        ));
        self.listeners_dirty = true;
        Ok(())
    }

    /// The TCP configuration with the MSS clamped to the interface's MTU.
    fn tcp_config(&self) -> TcpConfig {
        self.config.tcp
    }

    /// Puts `conn` in the table; gives it back (boxed: the error path is cold) if full.
    fn install(
        &mut self,
        conn: Connection,
        listener_port: Option<u16>,
    ) -> Result<ConnId, Box<Connection>> {
        let tuple = conn.tuple();
        let id = self.slab.insert(Entry::new(conn, listener_port));
        if self.table.insert_connection(tuple, id).is_err() {
            let entry = self.slab.remove(id).expect("just inserted");
            return Err(Box::new(entry.conn));
        }
        self.flow_cache.grown_to(self.slab.len());
        self.touch(id);
        Ok(id)
    }

    /// Replaces a connection in TIME-WAIT, with nothing left for the application to
    /// read, by a compact record for the rest of its 2 MSL; the application gets
    /// [`Event::Closed`] at the next dispatch. False, leaving the connection whole, if it
    /// has no record or the TIME-WAIT table is full.
    fn replace_by_time_wait_record(&mut self, id: ConnId) -> bool {
        let Some(e) = self.slab.get(id) else {
            return false;
        };
        let Some((record, expiry)) = e.conn.time_wait_record() else {
            return false;
        };
        let tuple = e.conn.tuple();
        if self
            .table
            .move_to_time_wait(&tuple, record, expiry)
            .is_err()
        {
            return false;
        }
        let Some(entry) = self.slab.remove(id) else {
            return false;
        };
        if let Some(h) = entry.timer {
            self.timers.cancel(h);
        }
        self.tcp.add_connection(&entry.conn);
        self.tcp.closed += 1;
        self.closed_to_time_wait.push(id);
        true
    }

    /// The connection of `tuple` if the flow cache knows it: the slab's connection at
    /// the cached index, if it has that 4-tuple (the slab and the table's connections are
    /// kept in step, so it is the table's connection of the tuple).
    fn cached_connection(&self, hash: u64, tuple: &FourTuple) -> Option<ConnId> {
        let id = self.slab.id_at(self.flow_cache.get(hash)?)?;
        (self.slab.get(id)?.conn.tuple() == *tuple).then_some(id)
    }

    fn remove(&mut self, id: ConnId) {
        let Some(entry) = self.slab.remove(id) else {
            return;
        };
        if let Some(h) = entry.timer {
            self.timers.cancel(h);
        }
        let tuple = entry.conn.tuple();
        self.table.remove_connection(&tuple);
        self.tcp.add_connection(&entry.conn);
        self.tcp.closed += 1;
        self.note_released(tuple);
    }

    /// Opens a connection to `remote` from a free ephemeral port.
    pub fn connect(&mut self, now: Instant, remote: SocketAddrV4) -> Result<ConnId, StackError> {
        self.connect_from(now, self.iface.ipv4_addr(), remote)
    }

    /// Opens a connection to `remote` from a free ephemeral port of `local_ip`: our own
    /// address or one held in full ([`Interface::adopt_address`] with `announce`). A
    /// client with more than one address opens more connections to one server than one
    /// address has ports.
    pub fn connect_from(
        &mut self,
        now: Instant,
        local_ip: Ipv4Addr,
        remote: SocketAddrV4,
    ) -> Result<ConnId, StackError> {
        if !self.iface.owns_address(local_ip) {
            return Err(StackError::NotLocal(local_ip));
        }
        if next_hop(&self.iface, self.config.gateway, *remote.ip()).is_none() {
            self.tcp.no_route += 1;
            return Err(StackError::Unreachable(*remote.ip()));
        }
        let range = self.config.ephemeral_ports.clone();
        let span = u32::from(*range.end() - *range.start()) + 1;
        let mut port = self.next_port;
        for _ in 0..span {
            let tuple = FourTuple::new(SocketAddrV4::new(local_ip, port), remote);
            let free = matches!(
                self.table.lookup(&tuple),
                Lookup::NotFound | Lookup::Listener { .. }
            ) && self.owns(&tuple);
            port = if port >= *range.end() {
                *range.start()
            } else {
                port + 1
            };
            if free {
                self.next_port = port;
                let seed = self.isn.seed(now, &tuple);
                let conn = Connection::connect(now, tuple, seed, &self.tcp_config());
                let id = self.install(conn, None).map_err(|_| {
                    self.tcp.table_full += 1;
                    StackError::TableFull
                })?;
                self.tcp.opened += 1;
                return Ok(id);
            }
        }
        Err(StackError::NoLocalPort)
    }

    /// Processes one received frame. ARP and ICMP replies are written in place.
    pub fn receive(&mut self, now: Instant, frame: &mut [u8]) -> Received {
        match self.iface.process(now, frame) {
            Verdict::Transmit(len) => Received::Reply(len),
            Verdict::Consumed | Verdict::Drop(_) => Received::Done,
            Verdict::Tcp {
                eth_src,
                ip,
                tcp_offset,
                ..
            } => {
                let Some(segment) = frame.get(tcp_offset..tcp_offset + ip.payload_len) else {
                    self.count_drop(DropReason::TcpMalformed);
                    return Received::Done;
                };
                self.tcp_input(now, eth_src, &ip, segment)
            }
        }
    }

    fn tcp_input(
        &mut self,
        now: Instant,
        eth_src: EthernetAddress,
        ip: &Ipv4Repr,
        segment: &[u8],
    ) -> Received {
        let caps = self.iface.config().caps;
        let packet = match TcpPacket::new_checked(segment) {
            Ok(p) => p,
            Err(_) => {
                self.count_drop(DropReason::TcpMalformed);
                return Received::Done;
            }
        };
        let repr = match TcpRepr::parse(&packet, ip.src_addr, ip.dst_addr, &caps) {
            Ok(r) => r,
            Err(WireError::Checksum) => {
                self.count_drop(DropReason::TcpBadChecksum);
                return Received::Done;
            }
            Err(_) => {
                self.count_drop(DropReason::TcpMalformed);
                return Received::Done;
            }
        };
        let tuple = FourTuple::new(
            SocketAddrV4::new(ip.dst_addr, repr.dst_port),
            SocketAddrV4::new(ip.src_addr, repr.src_port),
        );
        // Ours if we hold it (a connection may live away from its home core after a
        // move); handed on if it moved away; else its home core decides.
        let hash = self.table.flow_hash(&tuple);
        let cached = self.cached_connection(hash, &tuple);
        if cached.is_some() {
            self.tcp.flow_cache_hits += 1;
        }
        let lookup = match cached.as_ref() {
            Some(id) => Lookup::Connection(id),
            None => self.table.lookup_hashed(&tuple, hash),
        };
        if let (None, Lookup::Connection(id)) = (cached, &lookup) {
            let index = id.index() as u32;
            self.flow_cache.put(hash, index);
        }
        match lookup {
            Lookup::Redirect(r) => {
                self.migration.redirected += 1;
                return Received::NotOurs(r.owner);
            }
            Lookup::Listener { .. } | Lookup::NotFound => {
                if let Some((steer, core)) = self.owner {
                    let home = steer.home(&tuple);
                    if home != core {
                        return Received::NotOurs(Owner::Core(home));
                    }
                }
                if let Some((to, except)) = &self.forward_unknown {
                    if !except.contains(&tuple.local.port()) {
                        self.migration.redirected += 1;
                        return Received::NotOurs(*to);
                    }
                }
            }
            Lookup::Connection(_) | Lookup::TimeWait(_) => {}
        }
        self.tcp.segments_in += 1;
        // Peers on our network are reached at the address they sent from (the SYN of a
        // passive open may arrive before we ever ARP for the client).
        if self.iface.config().cidr.contains_addr(&ip.src_addr) {
            self.iface.learn_neighbour(ip.src_addr, eth_src, now);
        }
        match lookup {
            Lookup::Redirect(_) => {}
            Lookup::Connection(&id) => {
                if let Some(e) = self.entry_mut(id) {
                    if e.conn.handle_segment(now, &repr) == Disposition::TimeWaitRst {
                        self.tcp.time_wait_rsts_ignored += 1;
                    }
                }
                self.touch(id);
            }
            Lookup::TimeWait(entry) => {
                let mut record = entry.state;
                match record.handle_segment(&repr) {
                    TimeWaitVerdict::Ack { restart } => {
                        if let Some(state) = self.table.time_wait_state_mut(&tuple) {
                            *state = record;
                        }
                        if restart {
                            // RFC 9293 §3.10.7.4: restart the 2 MSL timeout.
                            let expiry = now + self.config.tcp.time_wait;
                            self.table.restart_time_wait(&tuple, expiry);
                        }
                        let ack = record.ack(now, tuple.local.port(), tuple.remote.port());
                        self.queue_reply((tuple, ack));
                    }
                    TimeWaitVerdict::RstIgnored => self.tcp.time_wait_rsts_ignored += 1,
                    TimeWaitVerdict::Reopen => {
                        // RFC 6191: a new incarnation; the listener takes the SYN.
                        self.table.remove_time_wait(&tuple);
                        match self.table.listener_for(tuple.local) {
                            Some((_, &index)) => self.listener_input(now, index, tuple, &repr),
                            None => {
                                self.note_released(tuple);
                                if let Some(rst) = reset_for(&repr) {
                                    self.tcp.resets_sent_no_connection += 1;
                                    self.queue_reply((tuple, rst));
                                }
                            }
                        }
                    }
                    TimeWaitVerdict::Drop => {}
                }
            }
            Lookup::Listener { .. }
                if self.buffers_low && repr.control == crate::wire::tcp::Control::Syn =>
            {
                self.tcp.syn_dropped_low_buffers += 1;
            }
            Lookup::Listener {
                listener: &index, ..
            } if repr.control != crate::wire::tcp::Control::Syn
                && !self.iface.owns_address(tuple.local_ip())
                && !self
                    .listeners
                    .get(index as usize)
                    .is_some_and(|l| l.holds(&tuple)) =>
            {
                // The same, past a listener on every address: only a SYN (a new
                // connection, forwarded while the address moves here) and the rest of
                // its handshake are the listener's.
                self.tcp.segments_to_held_address += 1;
            }
            Lookup::Listener {
                listener: &index, ..
            } => self.listener_input(now, index, tuple, &repr),
            Lookup::NotFound if !self.iface.owns_address(tuple.local_ip()) => {
                // To an address held for another engine's moved connections: a segment
                // forwarded ahead of its connection's record, or one of a connection
                // that closed here. Not ours to reset: the peer's connection may live.
                self.tcp.segments_to_held_address += 1;
            }
            Lookup::NotFound => {
                // RFC 9293 §3.10.7.1: a segment to no connection gets a RST (unless it is one).
                if let Some(rst) = reset_for(&repr) {
                    self.tcp.resets_sent_no_connection += 1;
                    self.queue_reply((tuple, rst));
                }
            }
        }
        Received::Done
    }

    /// A segment for listener `index`; installs the connections it completes.
    fn listener_input(&mut self, now: Instant, index: u32, tuple: FourTuple, repr: &TcpRepr<'_>) {
        let Some(listener) = self.listeners.get_mut(index as usize) else {
            return;
        };
        listener.handle_segment(now, tuple, repr);
        self.listeners_dirty = true;
        let port = listener.local().port();
        while let Some(conn) = self.listeners[index as usize].accept() {
            match self.install(conn, Some(port)) {
                Ok(_) => self.tcp.accepted += 1,
                Err(mut conn) => {
                    // No room: reset rather than leave the peer hanging.
                    self.tcp.table_full += 1;
                    conn.abort();
                    if let Some(t) = conn_reset(&conn) {
                        self.queue_reply(t);
                    }
                }
            }
        }
    }

    fn queue_reply(&mut self, reply: (FourTuple, TcpRepr<'static>)) {
        if self.replies.len() < MAX_REPLIES {
            self.replies.push(reply);
        }
    }

    /// Fires due timers. The connections they made send come first in the next
    /// [`Stack::transmit`].
    /// Whether a connection timer is due at `now` (may say so a tick early): the poll
    /// loop lets timers act before it sends what more received frames caused.
    pub fn timers_due(&self, now: Instant) -> bool {
        self.timers.next_deadline().is_some_and(|d| d <= now)
    }

    pub fn handle_timers(&mut self, now: Instant) {
        let mut expired = core::mem::take(&mut self.expired);
        self.timers.expire(now, &mut expired);
        let before_timers = self.touched.len();
        for id in expired.drain(..) {
            if let Some(e) = self.entry_mut(id) {
                e.timer = None;
                e.deadline = None;
                e.conn.handle_timeout(now);
                self.touch(id);
            }
        }
        self.expired = expired;
        // What timers make connections send (tail loss probes, retransmissions after a
        // timeout, delayed ACKs, window probes) goes out before the new data that this
        // poll's ACKs released: it is a segment or two that its connection waited a
        // whole timeout for, and the end of a large burst is what a full queue drops (a
        // probe sent last would have its answer dropped with it, and only the RTO left).
        let by_timers = self.touched.len() - before_timers;
        if by_timers > 0 && before_timers > 0 {
            self.touched.rotate_right(by_timers);
        }
        // RFC 9293 §3.10.8: TIME-WAIT records end after 2 MSL.
        let mut released = Vec::new();
        self.table
            .expire_time_wait(now, |tuple, _| released.push(tuple));
        for tuple in released {
            self.note_released(tuple);
        }
        // Redirects of connections that moved away from a core that is not their home.
        self.table.expire_redirects(now);
        // The listeners' deadline is cached while they are unchanged (scanning their
        // half-open connections on every poll was a top cost under connection load).
        if self.listeners_dirty || self.listener_deadline.is_some_and(|d| d <= now) {
            for l in &mut self.listeners {
                if l.poll_timeout().is_some_and(|d| d <= now) {
                    l.handle_timeout(now);
                    self.listeners_dirty = true;
                }
            }
        }
    }

    /// The earliest instant at which [`Stack::handle_timers`] (or [`Stack::dispatch`], for
    /// closings not yet told to the application) has work; an instant in the past means
    /// now.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.closed_to_time_wait.is_empty() {
            return Some(Instant::ZERO);
        }
        let conns = self.timers.next_deadline();
        let listeners = if self.listeners_dirty {
            self.listeners
                .iter()
                .filter_map(Listener::poll_timeout)
                .min()
        } else {
            self.listener_deadline
        };
        let time_wait = self.table.next_time_wait_expiry();
        let redirects = self.table.next_redirect_expiry();
        [conns, listeners, time_wait, redirects]
            .into_iter()
            .flatten()
            .min()
    }

    /// Counts a dropped frame at L2/L3 (for drivers).
    pub fn count_drop(&mut self, reason: DropReason) {
        self.iface.counters_mut().drop(reason);
    }
}
