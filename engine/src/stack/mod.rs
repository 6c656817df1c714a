//! One core's TCP/IP endpoint: the interface (ARP, ICMP), listeners, the connection table,
//! the timer wheel, and the glue that turns frames into segments and segments into frames.
//!
//! Sans-IO like the rest of the engine: frames come in through [`Stack::receive`], time
//! through `now` arguments, frames go out through [`Stack::transmit`] into buffers the
//! caller allocates, and applications are driven by [`Stack::dispatch`]. The poll loop
//! (`poll::Engine`) and the simulator are the two drivers.
//!
//! Connections are numbered by [`ConnId`] (slot index + generation, so a stale id never
//! reaches a newer connection). The table maps 4-tuples to ids with a keyed hash; the
//! wheel holds one timer per connection, re-armed whenever its earliest deadline moves.
//! A connection that reaches TIME-WAIT with nothing left for the application is replaced
//! by a compact record in the table ([`crate::tcp::TimeWaitRecord`]), which answers its
//! 4-tuple until 2 MSL have passed; the application sees [`Event::Closed`] at once.
pub mod app;

use core::net::{Ipv4Addr, SocketAddrV4};
use core::ops::RangeInclusive;

use crate::flow::FourTuple;
use crate::iface::{Interface, Verdict};
use crate::port::Frame;
use crate::sim::splitmix64;
use crate::stats::{Counters, DropReason};
use crate::steer::FlowSteer;
use crate::table::{ConnTable, EntryKind, FlowHashKey, Lookup, TableLimits};
use crate::tcp::{
    reset_for, Connection, Events, IsnGenerator, Listener, ListenerConfig, SipKey, State,
    TcpConfig, TcpError, TimeWaitRecord, TimeWaitVerdict, Transmit,
};
use crate::time::{Duration, Instant};
use crate::timer::{TimerHandle, TimerWheel};
use crate::wire::ethernet::{EthernetFrame, HEADER_LEN as ETH_HEADER_LEN};
use crate::wire::ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr, DEFAULT_HOP_LIMIT};
use crate::wire::tcp::{TcpPacket, TcpRepr};
use crate::wire::{Error as WireError, EthernetAddress, EthernetProtocol, EthernetRepr};

pub use app::{App, Ctx, Event, NoApp};

/// IPv4 header length of every packet we send (no options).
const IPV4_HEADER_LEN: usize = 20;
/// Stateless replies (RSTs for unknown flows) queued at most per poll; more are dropped.
const MAX_REPLIES: usize = 256;

/// A connection of one core's stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    index: u32,
    generation: u32,
}

impl ConnId {
    /// The slot index: small and dense, for applications that keep per-connection state
    /// in a `Vec`. Reused after [`Event::Closed`].
    pub fn index(self) -> usize {
        self.index as usize
    }
}

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

/// TCP-level counters of one core. Names are stable: scripts read them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpCounters {
    pub segments_in: u64,
    pub segments_out: u64,
    pub resets_sent_no_connection: u64,
    pub accepted: u64,
    pub opened: u64,
    pub closed: u64,
    pub errors: u64,
    pub table_full: u64,
    pub no_buffers: u64,
    pub no_route: u64,
    /// SYNs dropped because buffers ran low.
    pub syn_dropped_low_buffers: u64,
    /// Sums over closed connections (live ones are added when reporting).
    pub retransmits: u64,
    pub fast_recoveries: u64,
    pub rto_expiries: u64,
    pub sack_retransmits: u64,
    /// Tail loss probes sent (RFC 8985 §7).
    pub loss_probes: u64,
}

impl TcpCounters {
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> {
        let TcpCounters {
            segments_in,
            segments_out,
            resets_sent_no_connection,
            accepted,
            opened,
            closed,
            errors,
            table_full,
            no_buffers,
            no_route,
            syn_dropped_low_buffers,
            retransmits,
            fast_recoveries,
            rto_expiries,
            sack_retransmits,
            loss_probes,
        } = *self;
        [
            ("tcp_segments_in", segments_in),
            ("tcp_segments_out", segments_out),
            ("tcp_resets_sent_no_connection", resets_sent_no_connection),
            ("tcp_accepted", accepted),
            ("tcp_opened", opened),
            ("tcp_closed", closed),
            ("tcp_errors", errors),
            ("tcp_drop_table_full", table_full),
            ("tcp_no_buffers", no_buffers),
            ("tcp_no_route", no_route),
            ("tcp_syn_dropped_low_buffers", syn_dropped_low_buffers),
            ("tcp_retransmits", retransmits),
            ("tcp_fast_recoveries", fast_recoveries),
            ("tcp_rto_expiries", rto_expiries),
            ("tcp_sack_retransmits", sack_retransmits),
            ("tcp_loss_probes", loss_probes),
        ]
        .into_iter()
    }

    fn add_connection(&mut self, c: &Connection) {
        let s = c.stats();
        self.retransmits += u64::from(s.retransmits);
        self.fast_recoveries += u64::from(s.fast_recoveries);
        self.rto_expiries += u64::from(s.timeouts);
        self.sack_retransmits += u64::from(s.sack_retransmits);
        self.loss_probes += u64::from(s.loss_probes);
    }
}

#[derive(Debug)]
struct Entry {
    conn: Connection,
    timer: Option<TimerHandle>,
    deadline: Option<Instant>,
    /// In `Stack::touched` (events to deliver or output to send).
    touched: bool,
    /// The local port of the listener that accepted it (passive opens).
    listener_port: Option<u16>,
    user: u64,
}

#[derive(Debug, Default)]
struct Slot {
    generation: u32,
    entry: Option<Entry>,
}

/// One core's TCP/IP endpoint. See the module documentation.
#[derive(Debug)]
pub struct Stack {
    iface: Interface,
    config: StackConfig,
    keys: StackKeys,
    isn: IsnGenerator,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Connections, compact TIME-WAIT records (a connection is dropped once it reaches
    /// TIME-WAIT with nothing left for the application) and listeners.
    table: ConnTable<ConnId, u32, TimeWaitRecord>,
    /// Connections that went to a TIME-WAIT record since the last dispatch: the
    /// application gets their [`Event::Closed`] there.
    closed_to_time_wait: Vec<ConnId>,
    listeners: Vec<Listener>,
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
}

/// What [`Stack::receive`] did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// The frame now holds a reply (ARP, ICMP): send its first `len` bytes.
    Reply(usize),
    /// Used, or dropped and counted: free the frame.
    Done,
    /// A TCP segment of a flow this core does not own: hand the frame to its owner.
    NotOurs(FourTuple),
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
            slots: Vec::new(),
            free: Vec::new(),
            listeners: Vec::new(),
            listeners_dirty: false,
            listener_deadline: None,
            touched: Vec::new(),
            expired: Vec::new(),
            replies: Vec::new(),
            next_port,
            tcp: TcpCounters::default(),
            owner: None,
            buffers_low: false,
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

    /// TCP counters, with the retransmission figures of live connections included.
    pub fn tcp_counters(&self) -> TcpCounters {
        let mut c = self.tcp;
        for slot in &self.slots {
            if let Some(e) = &slot.entry {
                c.add_connection(&e.conn);
            }
        }
        c
    }

    pub fn config(&self) -> &StackConfig {
        &self.config
    }

    /// The listeners' counters, summed, as named figures.
    pub fn listener_figures(&self) -> [(&'static str, u64); 7] {
        let mut t = crate::tcp::ListenerStats::default();
        for l in &self.listeners {
            let s = l.stats();
            t.syns += s.syns;
            t.cookies_sent += s.cookies_sent;
            t.cookies_accepted += s.cookies_accepted;
            t.cookies_rejected += s.cookies_rejected;
            t.syns_dropped += s.syns_dropped;
            t.resets_sent += s.resets_sent;
            t.handshake_timeouts += s.handshake_timeouts;
        }
        [
            ("listen_syns", t.syns),
            ("listen_cookies_sent", t.cookies_sent),
            ("listen_cookies_accepted", t.cookies_accepted),
            ("listen_cookies_rejected", t.cookies_rejected),
            ("listen_syns_dropped", t.syns_dropped),
            ("listen_resets_sent", t.resets_sent),
            ("listen_handshake_timeouts", t.handshake_timeouts),
        ]
    }

    /// Connections held, by state (listeners' half-open ones excluded).
    pub fn connections_by_state(&self) -> Vec<(State, usize)> {
        let mut out: Vec<(State, usize)> = Vec::new();
        for e in self.slots.iter().filter_map(|s| s.entry.as_ref()) {
            let st = e.conn.state();
            match out.iter_mut().find(|(s, _)| *s == st) {
                Some((_, n)) => *n += 1,
                None => out.push((st, 1)),
            }
        }
        let time_wait = self.time_wait_count();
        if time_wait > 0 {
            match out.iter_mut().find(|(s, _)| *s == State::TimeWait) {
                Some((_, n)) => *n += time_wait,
                None => out.push((State::TimeWait, time_wait)),
            }
        }
        out
    }

    /// Compact TIME-WAIT records held (connections in TIME-WAIT that were dropped).
    pub fn time_wait_count(&self) -> usize {
        self.table.len(EntryKind::TimeWait)
    }

    /// Resets every connection (RST to each peer, [`Event::Closed`] to the application
    /// at the next dispatch) and closes every listener: an orderly stop. The RSTs go out
    /// with the next [`Stack::transmit`].
    pub fn abort_all(&mut self) {
        for listener in self.listeners.drain(..) {
            self.table.remove_listener(&listener.local());
        }
        self.listeners_dirty = true;
        let ids: Vec<ConnId> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.entry.is_some())
            .map(|(i, s)| ConnId {
                index: i as u32,
                generation: s.generation,
            })
            .collect();
        for id in ids {
            if let Some(e) = self.entry_mut(id) {
                e.conn.abort();
            }
            self.touch(id);
        }
    }

    /// Connections held (any state).
    pub fn connection_count(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Half-open connections held by listeners.
    pub fn half_open_count(&self) -> usize {
        self.listeners
            .iter()
            .map(|l| l.half_open() + l.pending_accept())
            .sum()
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
        let slot = self.slots.get(id.index as usize)?;
        (slot.generation == id.generation).then_some(())?;
        slot.entry.as_ref().map(|e| &e.conn)
    }

    fn entry_mut(&mut self, id: ConnId) -> Option<&mut Entry> {
        let slot = self.slots.get_mut(id.index as usize)?;
        (slot.generation == id.generation).then_some(())?;
        slot.entry.as_mut()
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
        let Some(slot) = self.slots.get(id.index as usize) else {
            return 0;
        };
        match &slot.entry {
            Some(e) if slot.generation == id.generation => e.user,
            _ => 0,
        }
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
        let local = SocketAddrV4::new(self.iface.ipv4_addr(), port);
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
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot::default());
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.generation = slot.generation.wrapping_add(1);
        let id = ConnId {
            index,
            generation: slot.generation,
        };
        if self.table.insert_connection(tuple, id).is_err() {
            self.free.push(index);
            return Err(Box::new(conn));
        }
        slot.entry = Some(Entry {
            conn,
            timer: None,
            deadline: None,
            touched: false,
            listener_port,
            user: 0,
        });
        self.touch(id);
        Ok(id)
    }

    /// Replaces a connection in TIME-WAIT, with nothing left for the application to
    /// read, by a compact record for the rest of its 2 MSL; the application gets
    /// [`Event::Closed`] at the next dispatch. False, leaving the connection whole, if it
    /// has no record or the TIME-WAIT table is full.
    fn replace_by_time_wait_record(&mut self, id: ConnId) -> bool {
        let Some(slot) = self.slots.get_mut(id.index as usize) else {
            return false;
        };
        let Some(e) = slot
            .entry
            .as_ref()
            .filter(|_| slot.generation == id.generation)
        else {
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
        let Some(entry) = slot.entry.take() else {
            return false;
        };
        if let Some(h) = entry.timer {
            self.timers.cancel(h);
        }
        self.tcp.add_connection(&entry.conn);
        self.tcp.closed += 1;
        self.free.push(id.index);
        self.closed_to_time_wait.push(id);
        true
    }

    fn remove(&mut self, id: ConnId) {
        let Some(slot) = self.slots.get_mut(id.index as usize) else {
            return;
        };
        if slot.generation != id.generation {
            return;
        }
        let Some(entry) = slot.entry.take() else {
            return;
        };
        if let Some(h) = entry.timer {
            self.timers.cancel(h);
        }
        self.table.remove_connection(&entry.conn.tuple());
        self.tcp.add_connection(&entry.conn);
        self.tcp.closed += 1;
        self.free.push(id.index);
    }

    /// Opens a connection to `remote` from a free ephemeral port.
    pub fn connect(&mut self, now: Instant, remote: SocketAddrV4) -> Result<ConnId, StackError> {
        if next_hop(&self.iface, self.config.gateway, *remote.ip()).is_none() {
            self.tcp.no_route += 1;
            return Err(StackError::Unreachable(*remote.ip()));
        }
        let local_ip = self.iface.ipv4_addr();
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
        if !self.owns(&tuple) {
            return Received::NotOurs(tuple);
        }
        self.tcp.segments_in += 1;
        // Peers on our network are reached at the address they sent from (the SYN of a
        // passive open may arrive before we ever ARP for the client).
        if self.iface.config().cidr.contains_addr(&ip.src_addr) {
            self.iface.learn_neighbour(ip.src_addr, eth_src, now);
        }
        match self.table.lookup(&tuple) {
            Lookup::Connection(&id) => {
                if let Some(e) = self.entry_mut(id) {
                    e.conn.handle_segment(now, &repr);
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
                    TimeWaitVerdict::Close => {
                        self.table.remove_time_wait(&tuple);
                    }
                    TimeWaitVerdict::Reopen => {
                        // RFC 6191: a new incarnation; the listener takes the SYN.
                        self.table.remove_time_wait(&tuple);
                        match self.table.listener_for(tuple.local) {
                            Some((_, &index)) => self.listener_input(now, index, tuple, &repr),
                            None => {
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
            } => self.listener_input(now, index, tuple, &repr),
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
        self.table.expire_time_wait(now, |_, _| {});
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
        [conns, listeners, time_wait].into_iter().flatten().min()
    }

    /// Delivers the events of every touched connection to `app`.
    pub fn dispatch<A: App + ?Sized>(&mut self, now: Instant, app: &mut A) {
        // Connections that went to TIME-WAIT records: gone, cleanly.
        let mut gone = core::mem::take(&mut self.closed_to_time_wait);
        for &id in &gone {
            let mut cx = Ctx { stack: self, now };
            app.on_event(&mut cx, id, Event::Closed { error: None });
        }
        gone.clear();
        if self.closed_to_time_wait.is_empty() {
            self.closed_to_time_wait = gone; // keep the allocation
        }
        let mut i = 0;
        // Applications may touch more connections (connect, or write to another): the
        // list grows while we walk it.
        while i < self.touched.len() {
            let id = self.touched[i];
            i += 1;
            let Some(e) = self.entry_mut(id) else {
                continue;
            };
            let events = e.conn.take_events();
            if events.is_empty() {
                continue;
            }
            let listener_port = e.listener_port;
            let error = e.conn.error();
            let mut cx = Ctx { stack: self, now };
            if events.contains(Events::ESTABLISHED) {
                let ev = match listener_port {
                    Some(local_port) => Event::Accepted { local_port },
                    None => Event::Connected,
                };
                app.on_event(&mut cx, id, ev);
            }
            if events.contains(Events::READABLE) {
                app.on_event(&mut cx, id, Event::Readable);
            }
            if events.contains(Events::PEER_CLOSED) {
                app.on_event(&mut cx, id, Event::PeerClosed);
            }
            if events.contains(Events::WRITABLE) {
                app.on_event(&mut cx, id, Event::Writable);
            }
            if events.contains(Events::CLOSED) {
                if error.is_some() {
                    self.tcp.errors += 1;
                }
                let mut cx = Ctx { stack: self, now };
                app.on_event(&mut cx, id, Event::Closed { error });
            }
        }
        let mut cx = Ctx { stack: self, now };
        app.on_poll(&mut cx);
    }

    /// Writes every pending segment into frames from `alloc` (called with the frame
    /// length) and appends them to `out`. Stops early, leaving the rest for the next
    /// call, when `alloc` fails. Removes closed connections and re-arms timers.
    pub fn transmit<F: Frame>(
        &mut self,
        now: Instant,
        alloc: &mut impl FnMut(usize) -> Option<F>,
        out: &mut Vec<F>,
    ) {
        let caps = self.iface.config().caps;
        let our_mac = self.iface.mac();
        let gateway = self.config.gateway;
        let iface = &self.iface;
        let tcp = &mut self.tcp;
        let mut out_of_buffers = false;

        // Stateless replies first: they are the oldest.
        for (tuple, repr) in self.replies.drain(..) {
            if out_of_buffers {
                continue; // dropped: the peer retransmits
            }
            let t = Transmit {
                tuple,
                repr,
                payload: [&[], &[]],
            };
            match resolve(iface, gateway, t.dst_ip(), now) {
                None => tcp.no_route += 1,
                Some(mac) if write_frame(&t, our_mac, mac, caps, alloc, out) => {
                    tcp.segments_out += 1
                }
                Some(_) => {
                    tcp.no_buffers += 1;
                    out_of_buffers = true;
                }
            }
        }

        // Listeners only have output after their input or timers (`listeners_dirty`).
        if self.listeners_dirty {
            for listener in &mut self.listeners {
                while !out_of_buffers {
                    let Some(t) = listener.poll_transmit(now) else {
                        break;
                    };
                    match resolve(iface, gateway, t.dst_ip(), now) {
                        None => tcp.no_route += 1,
                        Some(mac) if write_frame(&t, our_mac, mac, caps, alloc, out) => {
                            tcp.segments_out += 1
                        }
                        Some(_) => {
                            tcp.no_buffers += 1;
                            out_of_buffers = true;
                        }
                    }
                }
            }
            if !out_of_buffers {
                self.listener_deadline = self
                    .listeners
                    .iter()
                    .filter_map(Listener::poll_timeout)
                    .min();
                self.listeners_dirty = false;
            }
        }

        let mut touched = core::mem::take(&mut self.touched);
        // Connections whose output could not be tried (no MAC address for the next hop
        // yet, or no buffers) stay touched, in order, for the next call: nothing else
        // would bring them back (their timers are armed by what they send).
        let mut kept = 0;
        for i in 0..touched.len() {
            let id = touched[i];
            let Some(slot) = self.slots.get_mut(id.index as usize) else {
                continue;
            };
            if slot.generation != id.generation {
                continue;
            }
            let Some(e) = slot.entry.as_mut() else {
                continue;
            };
            let mut done = false;
            if !out_of_buffers {
                if let Some(mac) = resolve(&self.iface, gateway, e.conn.tuple().remote_ip(), now) {
                    done = true;
                    while let Some(t) = e.conn.poll_transmit(now) {
                        if write_frame(&t, our_mac, mac, caps, alloc, out) {
                            self.tcp.segments_out += 1;
                        } else {
                            // Committed to the sequence space and lost: retransmission
                            // recovers it once buffers are back.
                            self.tcp.no_buffers += 1;
                            out_of_buffers = true;
                            done = false;
                            break;
                        }
                    }
                }
            }
            if e.conn.is_closed() {
                e.touched = false;
                self.remove(id);
                continue;
            }
            let mut to_record = false;
            if done && e.conn.state() == State::TimeWait {
                if e.conn.has_events() {
                    // Events first (the application has not seen the FIN yet): come
                    // back after the next dispatch.
                    done = false;
                } else {
                    // Unread data keeps the connection whole; reading it touches the
                    // connection and brings it back here.
                    to_record = e.conn.recv_queue() == 0;
                }
            }
            e.touched = !done;
            if to_record && self.replace_by_time_wait_record(id) {
                continue;
            }
            if !done {
                touched[kept] = id;
                kept += 1;
            }
            self.rearm(id);
        }
        touched.truncate(kept);
        self.touched = touched;
    }

    fn rearm(&mut self, id: ConnId) {
        let Some(slot) = self.slots.get_mut(id.index as usize) else {
            return;
        };
        let Some(e) = slot.entry.as_mut() else { return };
        let deadline = e.conn.poll_timeout();
        if deadline == e.deadline && (deadline.is_none() || e.timer.is_some()) {
            return;
        }
        e.deadline = deadline;
        match (deadline, e.timer) {
            (Some(d), Some(h)) => {
                if self.timers.rearm(h, d).is_err() {
                    e.timer = self.timers.arm(d, id).ok();
                }
            }
            (Some(d), None) => e.timer = self.timers.arm(d, id).ok(),
            (None, Some(h)) => {
                self.timers.cancel(h);
                e.timer = None;
            }
            (None, None) => {}
        }
    }

    /// Next hops of connections whose MAC address is unknown, for the driver to ARP.
    /// Only connections still waiting to send are looked at: [`Stack::transmit`] keeps
    /// exactly those touched, so this costs nothing when everything is resolved.
    pub fn unresolved(&self, now: Instant) -> Vec<Ipv4Addr> {
        let mut v = Vec::new();
        for &id in &self.touched {
            let Some(conn) = self.conn(id) else { continue };
            if let Some(hop) = next_hop(&self.iface, self.config.gateway, conn.tuple().remote_ip())
            {
                if self.iface.arp_lookup(hop, now).is_none() && !v.contains(&hop) {
                    v.push(hop);
                }
            }
        }
        v
    }

    /// Counts a dropped frame at L2/L3 (for drivers).
    pub fn count_drop(&mut self, reason: DropReason) {
        self.iface.counters_mut().drop(reason);
    }
}

/// The next hop for `dst`: itself on our network, else the gateway.
fn next_hop(iface: &Interface, gateway: Option<Ipv4Addr>, dst: Ipv4Addr) -> Option<Ipv4Addr> {
    if iface.config().cidr.contains_addr(&dst) {
        Some(dst)
    } else {
        gateway
    }
}

/// The MAC address for `ip` (through the gateway when off-link), if known.
fn resolve(
    iface: &Interface,
    gateway: Option<Ipv4Addr>,
    ip: Ipv4Addr,
    now: Instant,
) -> Option<EthernetAddress> {
    iface.arp_lookup(next_hop(iface, gateway, ip)?, now)
}

/// The RST that tells the peer of an aborted connection, if any.
fn conn_reset(conn: &Connection) -> Option<(FourTuple, TcpRepr<'static>)> {
    let repr = TcpRepr {
        src_port: conn.local().port(),
        dst_port: conn.remote().port(),
        control: crate::wire::tcp::Control::Rst,
        seq_number: conn.snd_nxt(),
        ack_number: Some(conn.rcv_nxt()),
        ..TcpRepr::default()
    };
    Some((conn.tuple(), repr))
}

/// Writes Ethernet + IPv4 + the segment into a frame from `alloc`. False if no frame.
fn write_frame<F: Frame>(
    t: &Transmit<'_>,
    src_mac: EthernetAddress,
    dst_mac: EthernetAddress,
    caps: crate::wire::ChecksumCaps,
    alloc: &mut impl FnMut(usize) -> Option<F>,
    out: &mut Vec<F>,
) -> bool {
    let tcp_len = t.buffer_len();
    let len = ETH_HEADER_LEN + IPV4_HEADER_LEN + tcp_len;
    let Some(mut frame) = alloc(len) else {
        return false;
    };
    if !frame.set_len(len) {
        return false;
    }
    let buf = frame.data_mut();
    let mut eth = EthernetFrame::new_unchecked(&mut *buf);
    EthernetRepr {
        src_addr: src_mac,
        dst_addr: dst_mac,
        ethertype: EthernetProtocol::Ipv4,
    }
    .emit(&mut eth);
    let ip = Ipv4Repr {
        src_addr: t.src_ip(),
        dst_addr: t.dst_ip(),
        next_header: IpProtocol::Tcp,
        payload_len: tcp_len,
        hop_limit: DEFAULT_HOP_LIMIT,
    };
    let mut ip_packet = Ipv4Packet::new_unchecked(&mut buf[ETH_HEADER_LEN..]);
    ip.emit(&mut ip_packet, &caps);
    if t.emit(&mut buf[ETH_HEADER_LEN + IPV4_HEADER_LEN..], &caps)
        .is_err()
    {
        return false;
    }
    out.push(frame);
    true
}
