//! The interface: L2/L3 receive logic of one engine core, sans-IO.
//!
//! [`Interface::process`] takes one received Ethernet frame and a `now`, and decides: answer
//! it in place (ARP reply, ICMP echo reply), consume it (ARP learning), hand it to the TCP
//! layer ([`Verdict::Tcp`]), or drop it with a [`DropReason`]. It owns the ARP cache (with
//! Linux-style neighbour states: a stale entry keeps resolving while it is probed, see
//! [`NeighbourState`]) and the core's [`Counters`]. It performs no I/O, reads no clock and
//! allocates nothing per frame; a frame is modified only when the verdict is
//! [`Verdict::Transmit`]. The ARP requests it wants sent (probes) are handed to the driver
//! as [`ArpProbe`] values ([`Interface::arp_probes`]).
//!
//! This engine is an IPv4 host with one address: no forwarding, no reassembly, no IP
//! options, no multicast groups. IPv6 frames are dropped and counted apart
//! ([`DropReason::Ipv6`]) from unknown EtherTypes.
use core::cell::Cell;
use core::net::Ipv4Addr;
use core::ops::Range;

use hashbrown::HashMap;

use crate::stats::{Counters, DropReason};
use crate::time::{Duration, Instant};
use crate::wire::arp::{self, ArpOperation, ArpPacket, ArpRepr};
use crate::wire::ethernet::{self, EthernetFrame, EthernetRepr};
use crate::wire::icmpv4::{Icmpv4Message, Icmpv4Packet, Icmpv4Repr};
use crate::wire::ipv4::{self, IpProtocol, Ipv4Cidr, Ipv4Packet, Ipv4Repr};
use crate::wire::{ChecksumCaps, Error, EthernetAddress, EthernetProtocol};

/// How an interface is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfaceConfig {
    /// Our MAC address (the port's).
    pub mac: EthernetAddress,
    /// Our IPv4 address and subnet.
    pub cidr: Ipv4Cidr,
    /// Which checksums the device verifies and computes.
    pub caps: ChecksumCaps,
    /// Most entries the ARP cache holds; 0 disables learning.
    pub arp_cache_size: usize,
    /// How long an ARP entry stays reachable after it was last confirmed (Linux's
    /// reachable time). After that it is stale: still used, and checked with probes once a
    /// flow uses it (see [`NeighbourState`]).
    pub arp_entry_ttl: Duration,
}

impl IfaceConfig {
    pub const DEFAULT_ARP_CACHE_SIZE: usize = 1024;
    pub const DEFAULT_ARP_ENTRY_TTL: Duration = Duration::from_secs(60);

    /// A configuration with software checksums and the default ARP cache settings.
    pub fn new(mac: EthernetAddress, cidr: Ipv4Cidr) -> IfaceConfig {
        IfaceConfig {
            mac,
            cidr,
            caps: ChecksumCaps::default(),
            arp_cache_size: Self::DEFAULT_ARP_CACHE_SIZE,
            arp_entry_ttl: Self::DEFAULT_ARP_ENTRY_TTL,
        }
    }
}

/// What to do with a processed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The frame was rewritten in place into a reply: send its first `len` bytes.
    Transmit(usize),
    /// The frame was used (e.g. an ARP reply learnt) and needs no answer: free it.
    Consumed,
    /// The frame was dropped for this reason, already counted: free it.
    Drop(DropReason),
    /// An IPv4 TCP segment addressed to us, for the TCP layer. The segment (header and
    /// payload, no padding) is `frame[tcp_offset..tcp_offset + ip.payload_len]`. Nothing
    /// is counted for it: a driver with no TCP layer counts [`DropReason::TcpNotHandled`].
    Tcp {
        /// The sender's MAC address, from the Ethernet header.
        eth_src: EthernetAddress,
        /// The parsed IPv4 header (no options, not a fragment, checksum checked).
        ip: Ipv4Repr,
        /// Offset of the IPv4 header in the frame.
        ip_offset: usize,
        /// Offset of the TCP header in the frame.
        tcp_offset: usize,
    },
}

impl Verdict {
    /// For [`Verdict::Tcp`], the byte range of the TCP segment in the frame.
    pub fn tcp_range(&self) -> Option<Range<usize>> {
        match *self {
            Verdict::Tcp { ip, tcp_offset, .. } => Some(tcp_offset..tcp_offset + ip.payload_len),
            _ => None,
        }
    }
}

/// Unicast probes of a stale entry in use, to the address it holds, before the broadcast
/// ones (Linux's `ucast_probes`).
pub const ARP_UNICAST_PROBES: u8 = 3;

/// Broadcast probes after the unicast ones, in case the host moved to another address,
/// before the entry is dropped (Linux's `mcast_reprobes`).
pub const ARP_BROADCAST_PROBES: u8 = 1;

/// How long a stale entry that a flow uses waits for traffic from the host to confirm it
/// before the first probe (Linux's `delay_first_probe_time`).
pub const ARP_DELAY_FIRST_PROBE: Duration = Duration::from_secs(5);

/// Time between two probes of one entry, and what the last one gets to be answered
/// (Linux's `retrans_time`). RFC 1122 §2.3.2.1: a host MUST keep from flooding ARP
/// requests for one address; the recommended maximum is one per second.
pub const ARP_PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Probes of an entry before it fails.
const ARP_PROBES: u8 = ARP_UNICAST_PROBES + ARP_BROADCAST_PROBES;

/// The reachability of a neighbour's ARP cache entry: Linux's neighbour (NUD) states, the
/// "unicast poll" of RFC 1122 §2.3.2.1. An entry resolves in every state; one whose probes
/// all went unanswered has failed: it resolves no more and is removed, so it has no state.
///
/// Only `confirmed_at` and the first use after it went stale are stored; the state at an
/// instant follows from them and the constants above:
///
/// ```text
/// Reachable --(reachable time passes)--> Stale --(a flow resolves it)--> Delay
/// Delay --(ARP_DELAY_FIRST_PROBE passes)--> Probe --(ARP_PROBES intervals pass)--> failed
/// any state --(an ARP packet from the host, or its traffic)--> Reachable
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NeighbourState {
    /// Confirmed within the reachable time ([`IfaceConfig::arp_entry_ttl`]).
    Reachable,
    /// Not confirmed for the reachable time, and unused since: nothing is sent for it.
    Stale,
    /// Used while stale: waiting [`ARP_DELAY_FIRST_PROBE`] for traffic to confirm it.
    Delay,
    /// Being probed: ARP requests go to the address it holds, then to broadcast, one per
    /// [`ARP_PROBE_INTERVAL`] (see [`Interface::arp_probes`]).
    Probe,
}

/// An ARP request the driver sends to check a stale entry in use: who has `target`, sent
/// to `dst` (the address the entry holds, or broadcast for the last probes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpProbe {
    pub target: Ipv4Addr,
    pub dst: EthernetAddress,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ArpEntry {
    hardware_addr: EthernetAddress,
    /// When the host's reachability was last confirmed: learnt, an ARP packet from it,
    /// traffic from it.
    confirmed_at: Instant,
    /// When a flow first resolved the entry after it went stale: `None` while reachable,
    /// or stale and unused. Set by [`ArpCache::lookup`], which takes `&self` because the
    /// stack resolves addresses while it holds the interface shared: a mark of use, like
    /// an LRU cache's recency, hence the `Cell`.
    stale_use: Cell<Option<Instant>>,
    /// Probes handed to the driver since `stale_use`.
    probes_sent: u8,
}

impl ArpEntry {
    fn new(hardware_addr: EthernetAddress, now: Instant) -> ArpEntry {
        ArpEntry {
            hardware_addr,
            confirmed_at: now,
            stale_use: Cell::new(None),
            probes_sent: 0,
        }
    }

    /// The state at `now`, or `None` once the entry has failed.
    fn state(&self, reachable: Duration, now: Instant) -> Option<NeighbourState> {
        if now.saturating_duration_since(self.confirmed_at) < reachable {
            return Some(NeighbourState::Reachable);
        }
        let Some(used) = self.stale_use.get() else {
            return Some(NeighbourState::Stale);
        };
        let probing = used + ARP_DELAY_FIRST_PROBE;
        if now < probing {
            Some(NeighbourState::Delay)
        } else if now < probing + ARP_PROBE_INTERVAL * u32::from(ARP_PROBES) {
            Some(NeighbourState::Probe)
        } else {
            None
        }
    }

    /// How many probes are due by `now`: the first when probing starts, one more per
    /// interval, [`ARP_PROBES`] at most.
    fn probes_due(&self, now: Instant) -> u8 {
        let Some(used) = self.stale_use.get() else {
            return 0;
        };
        let probing = used + ARP_DELAY_FIRST_PROBE;
        if now < probing {
            return 0;
        }
        let intervals = (now - probing).as_nanos() / ARP_PROBE_INTERVAL.as_nanos();
        u8::try_from(intervals.saturating_add(1)).map_or(ARP_PROBES, |n| n.min(ARP_PROBES))
    }

    /// When the entry next needs the driver (its next probe, or its failure after the
    /// last one), if a flow uses it stale.
    fn next_probe_at(&self) -> Option<Instant> {
        let used = self.stale_use.get()?;
        Some(used + ARP_DELAY_FIRST_PROBE + ARP_PROBE_INTERVAL * u32::from(self.probes_sent))
    }
}

/// A bounded IPv4 -> MAC cache whose entries go stale and are checked before they are
/// dropped, as Linux does ([`NeighbourState`]).
///
/// RFC 1122 §2.3.2.1: a host MUST flush out-of-date entries. An entry that is not
/// confirmed for the reachable time goes stale but keeps resolving, so that a long flow
/// never stalls on an ARP round trip; once a flow uses it, it is probed (RFC 1122's
/// "unicast poll", then broadcast), and dropped only when the probes go unanswered. ARP
/// packets from the host (RFC 826 merge) and its traffic ([`Interface::learn_neighbour`])
/// confirm it, whatever state it is in.
///
/// Keys are chosen by peers (any host can send ARP), so the map uses hashbrown's default
/// per-process randomly seeded hasher (foldhash), and its size is bounded: a full cache
/// first drops stale entries nobody uses (and failed ones), then the least recently
/// confirmed one. The map is sized at construction and never grows past it, so learning
/// does not allocate.
#[derive(Debug, Clone)]
pub struct ArpCache {
    entries: HashMap<Ipv4Addr, ArpEntry>,
    capacity: usize,
    /// How long an entry stays reachable after a confirmation.
    ttl: Duration,
    /// Whether an entry may be in use while stale: set by `lookup` when it marks one,
    /// cleared by `poll_probes` when none is, so that a cache with nothing to probe costs
    /// the driver's periodic check nothing.
    stale_in_use: Cell<bool>,
}

/// What [`ArpCache::merge`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpMerge {
    /// An existing entry was refreshed: its address changed, or it was not reachable and
    /// is again.
    Refreshed,
    /// An existing reachable entry was confirmed with the address it had: only its
    /// confirmation time moved.
    Confirmed,
    /// A new entry was added; `evicted` entries were removed to make room.
    Learned { evicted: usize },
    /// Nothing changed: no entry, and adding was not allowed or capacity is 0.
    Ignored,
}

impl ArpCache {
    pub fn new(capacity: usize, ttl: Duration) -> ArpCache {
        ArpCache {
            entries: HashMap::with_capacity(capacity),
            capacity,
            ttl,
            stale_in_use: Cell::new(false),
        }
    }

    /// The address of `ip`, if its entry has not failed at `now`. The first lookup of a
    /// stale entry marks it in use, which starts its [`NeighbourState::Delay`].
    pub fn lookup(&self, ip: Ipv4Addr, now: Instant) -> Option<EthernetAddress> {
        let entry = self.entries.get(&ip)?;
        match entry.state(self.ttl, now)? {
            NeighbourState::Stale => {
                entry.stale_use.set(Some(now));
                self.stale_in_use.set(true);
            }
            NeighbourState::Reachable | NeighbourState::Delay | NeighbourState::Probe => {}
        }
        Some(entry.hardware_addr)
    }

    /// The state of the entry for `ip` at `now`; `None` if there is none or it failed.
    /// Unlike [`ArpCache::lookup`], this is not a use.
    pub fn state(&self, ip: Ipv4Addr, now: Instant) -> Option<NeighbourState> {
        self.entries.get(&ip)?.state(self.ttl, now)
    }

    /// Number of entries held, failed ones included until they are removed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// RFC 826's merge, which is also a confirmation of reachability: an existing entry
    /// for `ip` is always updated and becomes reachable; a new one is added only if
    /// `may_add` (the packet was addressed to us, or is traffic from the host).
    pub fn merge(
        &mut self,
        ip: Ipv4Addr,
        hardware_addr: EthernetAddress,
        now: Instant,
        may_add: bool,
    ) -> ArpMerge {
        if let Some(entry) = self.entries.get_mut(&ip) {
            let renewed = entry.hardware_addr != hardware_addr
                || entry.state(self.ttl, now) != Some(NeighbourState::Reachable);
            *entry = ArpEntry::new(hardware_addr, now);
            return if renewed {
                ArpMerge::Refreshed
            } else {
                ArpMerge::Confirmed
            };
        }
        if !may_add || self.capacity == 0 {
            return ArpMerge::Ignored;
        }
        let evicted = self.make_room(now);
        self.entries.insert(ip, ArpEntry::new(hardware_addr, now));
        ArpMerge::Learned { evicted }
    }

    /// Appends to `out` the probes due at `now` (at most one per entry: a driver that
    /// comes back late skips the probes it missed rather than sending them in a burst),
    /// and removes the entries whose last probe went unanswered. Returns how many were
    /// removed. O(entries) when an entry is in use while stale, else O(1).
    pub fn poll_probes(&mut self, now: Instant, out: &mut Vec<ArpProbe>) -> usize {
        if !self.stale_in_use.get() {
            return 0;
        }
        let ttl = self.ttl;
        let mut failed = 0;
        let mut in_use = false;
        self.entries.retain(|&ip, entry| {
            let Some(state) = entry.state(ttl, now) else {
                failed += 1;
                return false;
            };
            in_use |= entry.stale_use.get().is_some();
            let due = entry.probes_due(now);
            if state == NeighbourState::Probe && entry.probes_sent < due {
                // `due` counts from 1: the probe sent now is number `due - 1`.
                let dst = if due - 1 < ARP_UNICAST_PROBES {
                    entry.hardware_addr
                } else {
                    EthernetAddress::BROADCAST
                };
                out.push(ArpProbe { target: ip, dst });
                entry.probes_sent = due;
            }
            true
        });
        self.stale_in_use.set(in_use);
        failed
    }

    /// When [`ArpCache::poll_probes`] next has something to do: the earliest next probe or
    /// failure of an entry in use while stale. O(entries) when there is one, else O(1).
    pub fn next_probe_at(&self) -> Option<Instant> {
        if !self.stale_in_use.get() {
            return None;
        }
        self.entries
            .values()
            .filter_map(ArpEntry::next_probe_at)
            .min()
    }

    /// Frees one slot if the cache is full: stale entries nobody uses and failed ones,
    /// else the least recently confirmed one. O(capacity), and only when full.
    fn make_room(&mut self, now: Instant) -> usize {
        if self.entries.len() < self.capacity {
            return 0;
        }
        let before = self.entries.len();
        let ttl = self.ttl;
        self.entries
            .retain(|_, e| !matches!(e.state(ttl, now), None | Some(NeighbourState::Stale)));
        if self.entries.len() >= self.capacity {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.confirmed_at)
                .map(|(ip, _)| *ip);
            if let Some(ip) = oldest {
                self.entries.remove(&ip);
            }
        }
        before - self.entries.len()
    }
}

/// Length of an Ethernet frame carrying an Ethernet/IPv4 ARP packet, without padding.
pub const ARP_FRAME_LEN: usize = ethernet::HEADER_LEN + arp::ETHERNET_IPV4_LEN;

/// The L2/L3 state of one engine core.
#[derive(Debug, Clone)]
pub struct Interface {
    config: IfaceConfig,
    arp_cache: ArpCache,
    counters: Counters,
    /// Addresses held besides our own (another engine's, whose connections moved here):
    /// IPv4 to them is taken; ARP for them is answered only once announced (after a
    /// drain, the address itself moved here).
    adopted: Vec<(Ipv4Addr, bool)>,
    /// Our own address was handed to another engine (a drain): ARP for it is no longer
    /// answered, though IPv4 to it is still taken (what still reaches us is forwarded).
    handed_over: bool,
}

impl Interface {
    pub fn new(config: IfaceConfig) -> Interface {
        Interface {
            arp_cache: ArpCache::new(config.arp_cache_size, config.arp_entry_ttl),
            config,
            counters: Counters::new(),
            adopted: Vec::new(),
            handed_over: false,
        }
    }

    /// Stops (or resumes) answering ARP for our own address: after a drain the address
    /// belongs to the engine that took our connections, which announces it.
    pub fn hand_over_address(&mut self, handed_over: bool) {
        self.handed_over = handed_over;
    }

    /// Whether our own address was handed over ([`Interface::hand_over_address`]).
    pub fn address_handed_over(&self) -> bool {
        self.handed_over
    }

    /// Takes IPv4 addressed to `ip` too (connections of another engine moved here keep
    /// their address); with `announce`, also answers ARP for it (the address moved here).
    pub fn adopt_address(&mut self, ip: Ipv4Addr, announce: bool) {
        if ip == self.ipv4_addr() {
            return;
        }
        match self.adopted.iter_mut().find(|(a, _)| *a == ip) {
            Some(entry) => entry.1 |= announce,
            None => self.adopted.push((ip, announce)),
        }
    }

    /// Stops taking `ip` (no connection of its is here any more).
    pub fn release_address(&mut self, ip: Ipv4Addr) {
        self.adopted.retain(|(a, _)| *a != ip);
    }

    /// The addresses held besides our own, with whether each is announced.
    pub fn adopted_addresses(&self) -> &[(Ipv4Addr, bool)] {
        &self.adopted
    }

    /// Whether IPv4 to `ip` is ours to take.
    pub fn is_local(&self, ip: Ipv4Addr) -> bool {
        ip == self.ipv4_addr() || self.adopted.iter().any(|(a, _)| *a == ip)
    }

    /// Whether `ip` is ours in full: our own address, or an adopted one announced here.
    /// (An address held only for moved connections is not: segments to it that match no
    /// connection are not answered.)
    pub fn owns_address(&self, ip: Ipv4Addr) -> bool {
        ip == self.ipv4_addr()
            || self
                .adopted
                .iter()
                .any(|&(a, announce)| a == ip && announce)
    }

    /// Whether we answer ARP for `ip`.
    fn answers_arp_for(&self, ip: Ipv4Addr) -> bool {
        (ip == self.ipv4_addr() && !self.handed_over)
            || self
                .adopted
                .iter()
                .any(|&(a, announce)| a == ip && announce)
    }

    pub fn config(&self) -> &IfaceConfig {
        &self.config
    }

    pub fn mac(&self) -> EthernetAddress {
        self.config.mac
    }

    pub fn ipv4_addr(&self) -> Ipv4Addr {
        self.config.cidr.address()
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// For the driver, which counts rx/tx and what it drops itself.
    pub fn counters_mut(&mut self) -> &mut Counters {
        &mut self.counters
    }

    pub fn arp_cache(&self) -> &ArpCache {
        &self.arp_cache
    }

    /// The MAC address of `ip`, if the cache holds an entry for it that has not failed:
    /// reachable, or stale and then checked (see [`ArpCache::lookup`]). A lookup is a use.
    pub fn arp_lookup(&self, ip: Ipv4Addr, now: Instant) -> Option<EthernetAddress> {
        self.arp_cache.lookup(ip, now)
    }

    /// The state of `ip`'s entry at `now`, if there is one that has not failed.
    pub fn neighbour_state(&self, ip: Ipv4Addr, now: Instant) -> Option<NeighbourState> {
        self.arp_cache.state(ip, now)
    }

    /// For the driver, at least every [`ARP_PROBE_INTERVAL`] (and whenever
    /// [`Interface::next_arp_probe`] says): appends to `out` the ARP probes to send now for
    /// stale entries in use (build each with [`Interface::emit_arp_probe`]), and drops the
    /// entries whose probes all went unanswered. Both are counted. Allocates only if `out`
    /// must grow.
    pub fn arp_probes(&mut self, now: Instant, out: &mut Vec<ArpProbe>) {
        let before = out.len();
        let failed = self.arp_cache.poll_probes(now, out);
        self.counters.arp_probes_sent += (out.len() - before) as u64;
        self.counters.arp_entries_failed += failed as u64;
    }

    /// When [`Interface::arp_probes`] next has work, if any: for drivers that sleep until
    /// a deadline (the simulator).
    pub fn next_arp_probe(&self) -> Option<Instant> {
        self.arp_cache.next_probe_at()
    }

    /// Learns `ip` -> `mac`, or confirms its entry, from an IP packet that `ip` sent us
    /// directly (a neighbour on our network): replies need no ARP round trip, and traffic
    /// from a neighbour keeps its entry reachable, the address changed or not, as Linux's
    /// upper-layer confirmation does. Group addresses are ignored. Only a learnt entry, a
    /// changed address or a stale entry confirmed again are counted, not each segment.
    pub fn learn_neighbour(&mut self, ip: Ipv4Addr, mac: EthernetAddress, now: Instant) {
        if !mac.is_unicast() {
            return;
        }
        match self.arp_cache.merge(ip, mac, now, true) {
            ArpMerge::Learned { evicted } => {
                self.counters.arp_entries_learned += 1;
                self.counters.arp_entries_evicted += evicted as u64;
            }
            ArpMerge::Refreshed => self.counters.arp_entries_refreshed += 1,
            ArpMerge::Confirmed | ArpMerge::Ignored => {}
        }
    }

    /// Processes one received frame (Ethernet header first), possibly rewriting it in
    /// place into a reply. Drops are counted here. Never panics, whatever the bytes.
    pub fn process(&mut self, now: Instant, frame: &mut [u8]) -> Verdict {
        let verdict = self.process_ethernet(now, frame);
        if let Verdict::Drop(reason) = verdict {
            self.counters.drop(reason);
        }
        verdict
    }

    fn process_ethernet(&mut self, now: Instant, frame: &mut [u8]) -> Verdict {
        let eth = match EthernetFrame::new_checked(&*frame).and_then(|f| EthernetRepr::parse(&f)) {
            Ok(eth) => eth,
            Err(_) => return Verdict::Drop(DropReason::EthTruncated),
        };
        if eth.src_addr.is_multicast() {
            return Verdict::Drop(DropReason::EthBadSource);
        }
        if eth.dst_addr != self.config.mac && !eth.dst_addr.is_broadcast() {
            return Verdict::Drop(if !eth.dst_addr.is_multicast() {
                DropReason::NotForUsMac
            } else if eth.ethertype.is_ipv6() {
                // IPv6 neighbour discovery and MLD go to multicast groups (RFC 2464 §7):
                // that they are IPv6 says more than that we joined no group.
                DropReason::Ipv6
            } else {
                DropReason::EthMulticast
            });
        }
        match eth.ethertype {
            EthernetProtocol::Arp => self.process_arp(now, frame),
            EthernetProtocol::Ipv4 => self.process_ipv4(eth, frame),
            t if t.is_vlan_tag() => Verdict::Drop(DropReason::VlanTagged),
            t if t.is_ipv6() => Verdict::Drop(DropReason::Ipv6),
            EthernetProtocol::Unknown(_) => Verdict::Drop(DropReason::UnknownEthertype),
        }
    }

    /// RFC 826 "Packet Reception", with RFC 5227 probes (sender 0.0.0.0) answered but not
    /// learnt.
    fn process_arp(&mut self, now: Instant, frame: &mut [u8]) -> Verdict {
        let parsed =
            ArpPacket::new_checked(&frame[ethernet::HEADER_LEN..]).and_then(|p| ArpRepr::parse(&p));
        let arp = match parsed {
            Ok(arp) => arp,
            Err(Error::Unsupported) => return Verdict::Drop(DropReason::ArpUnsupported),
            Err(_) => return Verdict::Drop(DropReason::ArpMalformed),
        };
        if !arp.source_hardware_addr.is_unicast() {
            // A group or zero sender address would poison the cache.
            return Verdict::Drop(DropReason::ArpMalformed);
        }
        let ours = self.ipv4_addr();
        let sender = arp.source_protocol_addr;
        if sender == ours {
            // RFC 5227 §2.4: another host uses our address. Neither learn nor answer.
            return Verdict::Drop(DropReason::ArpConflict);
        }
        let for_us = self.answers_arp_for(arp.target_protocol_addr);
        let sender_is_host = !(sender.is_unspecified()
            || sender.is_broadcast()
            || sender.is_multicast()
            || Some(sender) == self.config.cidr.broadcast());
        if sender_is_host {
            match self
                .arp_cache
                .merge(sender, arp.source_hardware_addr, now, for_us)
            {
                ArpMerge::Refreshed | ArpMerge::Confirmed => {
                    self.counters.arp_entries_refreshed += 1
                }
                ArpMerge::Learned { evicted } => {
                    self.counters.arp_entries_learned += 1;
                    self.counters.arp_entries_evicted += evicted as u64;
                }
                ArpMerge::Ignored => {}
            }
        }
        if !for_us {
            // A gratuitous ARP (sender = target) is an announcement to everyone: the merge
            // above was its whole purpose.
            let gratuitous = sender_is_host && arp.target_protocol_addr == sender;
            return match arp.operation {
                ArpOperation::Request | ArpOperation::Reply if gratuitous => Verdict::Consumed,
                _ => Verdict::Drop(DropReason::ArpNotForUs),
            };
        }
        match arp.operation {
            ArpOperation::Request => {
                // Swap sender and target, put ours as sender, and send it to the requester.
                let reply = ArpRepr {
                    operation: ArpOperation::Reply,
                    source_hardware_addr: self.config.mac,
                    source_protocol_addr: arp.target_protocol_addr,
                    target_hardware_addr: arp.source_hardware_addr,
                    target_protocol_addr: sender,
                };
                let len = emit_arp_frame(frame, self.config.mac, arp.source_hardware_addr, &reply);
                self.counters.arp_replies_sent += 1;
                Verdict::Transmit(len)
            }
            ArpOperation::Reply => Verdict::Consumed,
            ArpOperation::Unknown(_) => Verdict::Drop(DropReason::ArpUnsupported),
        }
    }

    fn process_ipv4(&mut self, eth: EthernetRepr, frame: &mut [u8]) -> Verdict {
        let ip_offset = ethernet::HEADER_LEN;
        let ip = {
            let packet = match Ipv4Packet::new_checked(&frame[ip_offset..]) {
                Ok(p) => p,
                Err(Error::Truncated) => return Verdict::Drop(DropReason::Ipv4Truncated),
                Err(_) => return Verdict::Drop(DropReason::Ipv4Malformed),
            };
            match Ipv4Repr::parse(&packet, &self.config.caps) {
                Ok(ip) => ip,
                Err(Error::Checksum) => return Verdict::Drop(DropReason::Ipv4BadChecksum),
                Err(Error::Unsupported) if packet.header_len() > ipv4::HEADER_LEN => {
                    return Verdict::Drop(DropReason::Ipv4Options)
                }
                Err(Error::Unsupported) => return Verdict::Drop(DropReason::Ipv4Fragment),
                Err(Error::Truncated) => return Verdict::Drop(DropReason::Ipv4Truncated),
                Err(Error::Malformed) => return Verdict::Drop(DropReason::Ipv4Malformed),
            }
        };
        let src = ip.src_addr;
        if src.is_broadcast() || src.is_multicast() || Some(src) == self.config.cidr.broadcast() {
            return Verdict::Drop(DropReason::Ipv4BadSource);
        }
        // RFC 1122 §3.2.1.7: a host does not drop a datagram for its TTL, so there is no
        // TTL check here.
        if !self.is_local(ip.dst_addr) {
            return Verdict::Drop(DropReason::Ipv4NotForUs);
        }
        let payload_offset = ip_offset + ip.header_len();
        match ip.next_header {
            IpProtocol::Icmp => self.process_icmp(eth, ip, payload_offset, frame),
            IpProtocol::Tcp => Verdict::Tcp {
                eth_src: eth.src_addr,
                ip,
                ip_offset,
                tcp_offset: payload_offset,
            },
            IpProtocol::Udp | IpProtocol::Unknown(_) => {
                Verdict::Drop(DropReason::IpProtocolUnsupported)
            }
        }
    }

    /// RFC 1122 §3.2.2.6: answer an echo request with the same identifier, sequence number
    /// and data. The reply is built in place over the request.
    fn process_icmp(
        &mut self,
        eth: EthernetRepr,
        ip: Ipv4Repr,
        payload_offset: usize,
        frame: &mut [u8],
    ) -> Verdict {
        let end = payload_offset + ip.payload_len;
        {
            let packet = match Icmpv4Packet::new_checked(&frame[payload_offset..end]) {
                Ok(p) => p,
                Err(_) => return Verdict::Drop(DropReason::IcmpMalformed),
            };
            match Icmpv4Repr::parse(&packet, &self.config.caps) {
                Ok(Icmpv4Repr::EchoRequest { .. }) => {}
                // We send no echo requests, so a reply answers nothing of ours.
                Ok(Icmpv4Repr::EchoReply { .. }) | Err(Error::Unsupported) => {
                    return Verdict::Drop(DropReason::IcmpUnsupportedType)
                }
                Err(Error::Checksum) => return Verdict::Drop(DropReason::IcmpBadChecksum),
                Err(Error::Truncated | Error::Malformed) => {
                    return Verdict::Drop(DropReason::IcmpMalformed)
                }
            }
        }
        let caps = self.config.caps;
        let mut icmp = Icmpv4Packet::new_unchecked(&mut frame[payload_offset..end]);
        icmp.set_msg_type(Icmpv4Message::EchoReply);
        icmp.set_msg_code(0);
        if caps.icmpv4.compute_tx() {
            icmp.fill_checksum();
        } else {
            icmp.set_checksum(0);
        }
        let reply_ip = Ipv4Repr {
            src_addr: self.ipv4_addr(),
            dst_addr: ip.src_addr,
            next_header: IpProtocol::Icmp,
            payload_len: ip.payload_len,
            hop_limit: ipv4::DEFAULT_HOP_LIMIT,
        };
        reply_ip.emit(
            &mut Ipv4Packet::new_unchecked(&mut frame[ethernet::HEADER_LEN..end]),
            &caps,
        );
        let reply_eth = EthernetRepr {
            src_addr: self.config.mac,
            dst_addr: eth.src_addr,
            ethertype: EthernetProtocol::Ipv4,
        };
        reply_eth.emit(&mut EthernetFrame::new_unchecked(&mut frame[..end]));
        self.counters.icmp_echo_replies_sent += 1;
        Verdict::Transmit(end)
    }

    /// Writes a broadcast ARP request for `target` into `buf` and returns its length
    /// ([`ARP_FRAME_LEN`]), or `Err(Truncated)` if `buf` is shorter than that.
    pub fn emit_arp_request(&self, target: Ipv4Addr, buf: &mut [u8]) -> Result<usize, Error> {
        self.emit_arp_request_to(target, EthernetAddress::BROADCAST, buf)
    }

    /// Writes the ARP request of `probe` (to the address the entry holds, or broadcast)
    /// into `buf` and returns its length, or `Err(Truncated)` if `buf` is shorter than
    /// [`ARP_FRAME_LEN`]. The target hardware address is left zero, as in any request.
    pub fn emit_arp_probe(&self, probe: ArpProbe, buf: &mut [u8]) -> Result<usize, Error> {
        self.emit_arp_request_to(probe.target, probe.dst, buf)
    }

    fn emit_arp_request_to(
        &self,
        target: Ipv4Addr,
        dst: EthernetAddress,
        buf: &mut [u8],
    ) -> Result<usize, Error> {
        let request = ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: self.config.mac,
            source_protocol_addr: self.ipv4_addr(),
            target_hardware_addr: EthernetAddress::UNSPECIFIED,
            target_protocol_addr: target,
        };
        if buf.len() < ARP_FRAME_LEN {
            return Err(Error::Truncated);
        }
        Ok(emit_arp_frame(buf, self.config.mac, dst, &request))
    }

    /// Writes a gratuitous ARP (an RFC 5227 §2.3 announcement: a broadcast request whose
    /// sender and target are our address) into `buf` and returns its length, or
    /// `Err(Truncated)` if `buf` is shorter than [`ARP_FRAME_LEN`].
    pub fn emit_gratuitous_arp(&self, buf: &mut [u8]) -> Result<usize, Error> {
        self.emit_arp_request(self.ipv4_addr(), buf)
    }

    /// A gratuitous ARP announcing `ip` (one of ours: an adopted address that moved here)
    /// at our MAC address.
    pub fn emit_gratuitous_arp_for(&self, ip: Ipv4Addr, buf: &mut [u8]) -> Result<usize, Error> {
        let arp = ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: self.config.mac,
            source_protocol_addr: ip,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: ip,
        };
        let len = ethernet::HEADER_LEN + arp::ETHERNET_IPV4_LEN;
        let buf = buf.get_mut(..len).ok_or(Error::Truncated)?;
        Ok(emit_arp_frame(
            buf,
            self.config.mac,
            EthernetAddress::BROADCAST,
            &arp,
        ))
    }
}

/// Writes an Ethernet header and `arp` into `frame` (at least [`ARP_FRAME_LEN`] long).
fn emit_arp_frame(
    frame: &mut [u8],
    src: EthernetAddress,
    dst: EthernetAddress,
    arp: &ArpRepr,
) -> usize {
    let eth = EthernetRepr {
        src_addr: src,
        dst_addr: dst,
        ethertype: EthernetProtocol::Arp,
    };
    eth.emit(&mut EthernetFrame::new_unchecked(
        &mut frame[..ARP_FRAME_LEN],
    ));
    arp.emit(&mut ArpPacket::new_unchecked(
        &mut frame[ethernet::HEADER_LEN..ARP_FRAME_LEN],
    ));
    ARP_FRAME_LEN
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum;
    use crate::wire::Offload;

    const OUR_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
    const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x02]);
    const OUR_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const T0: Instant = Instant::from_millis(1_000);

    fn config() -> IfaceConfig {
        let cidr = Ipv4Cidr::new(OUR_IP, 24).unwrap();
        IfaceConfig::new(OUR_MAC, cidr)
    }

    fn iface() -> Interface {
        Interface::new(config())
    }

    /// Who has 10.0.0.1? Tell 10.0.0.2, broadcast, padded to the 60-byte minimum.
    #[rustfmt::skip]
    static ARP_REQUEST_FRAME: [u8; 60] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x08, 0x06,
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01,
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x0a, 0x00, 0x00, 0x02,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x01,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];

    /// 10.0.0.1 is at 02:00:00:00:00:01, to 10.0.0.2 at 02:00:00:00:00:02.
    #[rustfmt::skip]
    static ARP_REPLY_FRAME: [u8; 42] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06,
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02,
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x01,
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x0a, 0x00, 0x00, 0x02,
    ];

    fn arp_frame(op: ArpOperation, sha: EthernetAddress, spa: Ipv4Addr, tpa: Ipv4Addr) -> Vec<u8> {
        let mut frame = vec![0u8; 60];
        let arp = ArpRepr {
            operation: op,
            source_hardware_addr: sha,
            source_protocol_addr: spa,
            target_hardware_addr: EthernetAddress::UNSPECIFIED,
            target_protocol_addr: tpa,
        };
        emit_arp_frame(&mut frame, sha, EthernetAddress::BROADCAST, &arp);
        frame
    }

    /// Ethernet + IPv4 (+ the given IPv4 payload) from the peer to us, valid checksums.
    fn ipv4_frame(protocol: IpProtocol, payload: &[u8]) -> Vec<u8> {
        let ip = Ipv4Repr {
            src_addr: PEER_IP,
            dst_addr: OUR_IP,
            next_header: protocol,
            payload_len: payload.len(),
            hop_limit: 37,
        };
        let mut frame = vec![0u8; ethernet::HEADER_LEN + ip.buffer_len()];
        let eth = EthernetRepr {
            src_addr: PEER_MAC,
            dst_addr: OUR_MAC,
            ethertype: EthernetProtocol::Ipv4,
        };
        eth.emit(&mut EthernetFrame::new_unchecked(&mut frame[..]));
        let mut packet = Ipv4Packet::new_unchecked(&mut frame[ethernet::HEADER_LEN..]);
        ip.emit(&mut packet, &ChecksumCaps::default());
        packet.payload_mut().copy_from_slice(payload);
        frame
    }

    fn echo_request(data: &[u8]) -> Vec<u8> {
        let icmp = Icmpv4Repr::EchoRequest {
            ident: 0x4242,
            seq_no: 7,
            data,
        };
        let mut bytes = vec![0u8; icmp.buffer_len()];
        icmp.emit(
            &mut Icmpv4Packet::new_unchecked(&mut bytes[..]),
            &ChecksumCaps::default(),
        );
        bytes
    }

    fn ping_frame(data: &[u8]) -> Vec<u8> {
        ipv4_frame(IpProtocol::Icmp, &echo_request(data))
    }

    /// Rewrites the IPv4 header of `frame` with `f` and fixes its checksum.
    fn edit_ipv4(frame: &mut [u8], f: impl FnOnce(&mut Ipv4Packet<&mut [u8]>)) {
        let mut p = Ipv4Packet::new_unchecked(&mut frame[ethernet::HEADER_LEN..]);
        f(&mut p);
        p.fill_checksum();
    }

    /// Processes `frame` and checks it is dropped for `reason`, counted once, untouched.
    fn assert_dropped(mut iface: Interface, mut frame: Vec<u8>, reason: DropReason) {
        let before = frame.clone();
        assert_eq!(iface.process(T0, &mut frame), Verdict::Drop(reason));
        assert_eq!(frame, before, "a dropped frame must not be modified");
        assert_eq!(iface.counters().dropped(reason), 1);
        assert_eq!(iface.counters().total_dropped(), 1);
        assert_eq!(
            iface.counters().arp_replies_sent + iface.counters().icmp_echo_replies_sent,
            0
        );
    }

    #[test]
    fn arp_request_gets_literal_reply() {
        let mut iface = iface();
        let mut frame = ARP_REQUEST_FRAME;
        assert_eq!(iface.process(T0, &mut frame), Verdict::Transmit(42));
        assert_eq!(frame[..42], ARP_REPLY_FRAME);
        assert_eq!(iface.counters().arp_replies_sent, 1);
        assert_eq!(iface.counters().arp_entries_learned, 1);
        assert_eq!(iface.counters().total_dropped(), 0);
        assert_eq!(iface.arp_lookup(PEER_IP, T0), Some(PEER_MAC));
    }

    #[test]
    fn arp_for_another_ip_is_not_for_us_and_not_learnt() {
        let frame = arp_frame(
            ArpOperation::Request,
            PEER_MAC,
            PEER_IP,
            Ipv4Addr::new(10, 0, 0, 9),
        );
        let mut i = iface();
        let mut f = frame.clone();
        assert_eq!(
            i.process(T0, &mut f),
            Verdict::Drop(DropReason::ArpNotForUs)
        );
        assert_eq!(i.arp_lookup(PEER_IP, T0), None);
        assert!(i.arp_cache().is_empty());
        assert_dropped(iface(), frame, DropReason::ArpNotForUs);
    }

    #[test]
    fn arp_reply_for_us_is_learnt() {
        let mut iface = iface();
        let mut frame = arp_frame(ArpOperation::Reply, PEER_MAC, PEER_IP, OUR_IP);
        assert_eq!(iface.process(T0, &mut frame), Verdict::Consumed);
        assert_eq!(iface.arp_lookup(PEER_IP, T0), Some(PEER_MAC));
        assert_eq!(iface.counters().arp_entries_learned, 1);
    }

    #[test]
    fn arp_merge_updates_known_senders_from_any_packet() {
        let mut iface = iface();
        let mut frame = arp_frame(ArpOperation::Reply, PEER_MAC, PEER_IP, OUR_IP);
        iface.process(T0, &mut frame);
        // The peer moved to a new MAC and asks for someone else: the entry is updated.
        let new_mac = EthernetAddress([0x02, 0, 0, 0, 0, 0x99]);
        let t1 = T0 + Duration::from_secs(1);
        let mut frame = arp_frame(
            ArpOperation::Request,
            new_mac,
            PEER_IP,
            Ipv4Addr::new(10, 0, 0, 9),
        );
        assert_eq!(
            iface.process(t1, &mut frame),
            Verdict::Drop(DropReason::ArpNotForUs)
        );
        assert_eq!(iface.arp_lookup(PEER_IP, t1), Some(new_mac));
        assert_eq!(iface.counters().arp_entries_refreshed, 1);
        // A gratuitous ARP from a known host updates it too, and is consumed.
        let mut frame = arp_frame(ArpOperation::Request, PEER_MAC, PEER_IP, PEER_IP);
        assert_eq!(iface.process(t1, &mut frame), Verdict::Consumed);
        assert_eq!(iface.arp_lookup(PEER_IP, t1), Some(PEER_MAC));
        // A gratuitous ARP from an unknown host is consumed but adds nothing.
        let other = Ipv4Addr::new(10, 0, 0, 3);
        let mut frame = arp_frame(ArpOperation::Reply, new_mac, other, other);
        assert_eq!(iface.process(t1, &mut frame), Verdict::Consumed);
        assert_eq!(iface.arp_lookup(other, t1), None);
        assert_eq!(iface.arp_cache().len(), 1);
        assert_eq!(iface.counters().arp_entries_learned, 1);
    }

    #[test]
    fn arp_probe_is_answered_not_learnt() {
        let mut iface = iface();
        let mut frame = arp_frame(
            ArpOperation::Request,
            PEER_MAC,
            Ipv4Addr::UNSPECIFIED,
            OUR_IP,
        );
        assert_eq!(
            iface.process(T0, &mut frame),
            Verdict::Transmit(ARP_FRAME_LEN)
        );
        let reply = ArpRepr::parse(&ArpPacket::new_checked(&frame[14..42]).unwrap()).unwrap();
        assert_eq!(reply.operation, ArpOperation::Reply);
        assert_eq!(reply.target_hardware_addr, PEER_MAC);
        assert_eq!(reply.target_protocol_addr, Ipv4Addr::UNSPECIFIED);
        assert_eq!(&frame[..6], &PEER_MAC.0);
        assert!(iface.arp_cache().is_empty());
    }

    #[test]
    fn arp_drops() {
        // Claiming our own address.
        assert_dropped(
            iface(),
            arp_frame(ArpOperation::Request, PEER_MAC, OUR_IP, OUR_IP),
            DropReason::ArpConflict,
        );
        // Token ring hardware type.
        let mut frame = ARP_REQUEST_FRAME.to_vec();
        frame[15] = 6;
        assert_dropped(iface(), frame, DropReason::ArpUnsupported);
        // Unknown opcode, for us.
        let mut frame = ARP_REQUEST_FRAME.to_vec();
        frame[21] = 9;
        assert_dropped(iface(), frame, DropReason::ArpUnsupported);
        // Truncated: 20 bytes of ARP.
        assert_dropped(
            iface(),
            ARP_REQUEST_FRAME[..34].to_vec(),
            DropReason::ArpMalformed,
        );
        // A group sender hardware address.
        let mut frame = ARP_REQUEST_FRAME.to_vec();
        frame[22] = 0x01;
        assert_dropped(iface(), frame, DropReason::ArpMalformed);
    }

    #[test]
    fn arp_cache_is_bounded_and_evicts_unused_stale_entries_first() {
        let mut config = config();
        config.arp_cache_size = 2;
        config.arp_entry_ttl = Duration::from_secs(10);
        let mut iface = Interface::new(config);
        let host = |n: u8| Ipv4Addr::new(10, 0, 0, n);
        let mac = |n: u8| EthernetAddress([0x02, 0, 0, 0, 1, n]);
        for n in 2..=4u8 {
            let now = T0 + Duration::from_secs(u64::from(n));
            let mut frame = arp_frame(ArpOperation::Reply, mac(n), host(n), OUR_IP);
            assert_eq!(iface.process(now, &mut frame), Verdict::Consumed);
        }
        let now = T0 + Duration::from_secs(4);
        assert_eq!(iface.arp_cache().len(), 2);
        assert_eq!(iface.arp_lookup(host(2), now), None, "oldest evicted");
        assert_eq!(iface.arp_lookup(host(3), now), Some(mac(3)));
        assert_eq!(iface.arp_lookup(host(4), now), Some(mac(4)));
        assert_eq!(iface.counters().arp_entries_evicted, 1);
        // Entry 3 was confirmed at T0+3s: reachable until T0+13s, then stale, and still
        // used: a flow sends to it at T0+13s.
        assert_eq!(
            iface.neighbour_state(host(3), T0 + Duration::from_millis(12_999)),
            Some(NeighbourState::Reachable)
        );
        assert_eq!(
            iface.neighbour_state(host(3), T0 + Duration::from_secs(13)),
            Some(NeighbourState::Stale)
        );
        assert_eq!(
            iface.arp_lookup(host(3), T0 + Duration::from_secs(13)),
            Some(mac(3))
        );
        // Both stale at T0+20s, 3 in use, 4 not: learning a new host evicts 4 only.
        let later = T0 + Duration::from_secs(20);
        let mut frame = arp_frame(ArpOperation::Reply, mac(5), host(5), OUR_IP);
        iface.process(later, &mut frame);
        assert_eq!(iface.arp_cache().len(), 2);
        assert_eq!(iface.counters().arp_entries_evicted, 2);
        assert_eq!(iface.arp_lookup(host(5), later), Some(mac(5)));
        assert_eq!(iface.arp_lookup(host(3), later), Some(mac(3)));
        assert_eq!(iface.arp_lookup(host(4), later), None);
    }

    const TTL: Duration = IfaceConfig::DEFAULT_ARP_ENTRY_TTL;
    const MS: Duration = Duration::from_millis(1);
    const PROBES: u8 = ARP_UNICAST_PROBES + ARP_BROADCAST_PROBES;
    const UNICAST_PROBE: ArpProbe = ArpProbe {
        target: PEER_IP,
        dst: PEER_MAC,
    };
    const BROADCAST_PROBE: ArpProbe = ArpProbe {
        target: PEER_IP,
        dst: EthernetAddress::BROADCAST,
    };

    /// An interface that learnt the peer from its ARP reply at T0.
    fn iface_knowing_peer() -> Interface {
        let mut iface = iface();
        let mut frame = arp_frame(ArpOperation::Reply, PEER_MAC, PEER_IP, OUR_IP);
        assert_eq!(iface.process(T0, &mut frame), Verdict::Consumed);
        iface
    }

    /// The probes due at `now`.
    fn probes(iface: &mut Interface, now: Instant) -> Vec<ArpProbe> {
        let mut out = Vec::new();
        iface.arp_probes(now, &mut out);
        out
    }

    fn state(iface: &Interface, now: Instant) -> Option<NeighbourState> {
        iface.neighbour_state(PEER_IP, now)
    }

    #[test]
    fn a_stale_entry_keeps_resolving_while_it_is_probed() {
        let mut iface = iface_knowing_peer();
        assert_eq!(
            state(&iface, T0 + TTL - MS),
            Some(NeighbourState::Reachable)
        );
        assert_eq!(state(&iface, T0 + TTL), Some(NeighbourState::Stale));
        // A stale entry nobody uses is left alone.
        assert_eq!(probes(&mut iface, T0 + 2 * TTL), []);
        assert_eq!(iface.next_arp_probe(), None);
        // A flow sends to it: it still resolves at once, and waits for traffic to confirm
        // it before the first probe.
        let used = T0 + 2 * TTL;
        assert_eq!(iface.arp_lookup(PEER_IP, used), Some(PEER_MAC));
        assert_eq!(state(&iface, used), Some(NeighbourState::Delay));
        assert_eq!(iface.next_arp_probe(), Some(used + ARP_DELAY_FIRST_PROBE));
        assert_eq!(probes(&mut iface, used + ARP_DELAY_FIRST_PROBE - MS), []);
        // Then unicast probes to the known address, then broadcast ones, at most one per
        // interval; the entry resolves all the while.
        let first = used + ARP_DELAY_FIRST_PROBE;
        for k in 0..PROBES {
            let at = first + ARP_PROBE_INTERVAL * u32::from(k);
            let expected = if k < ARP_UNICAST_PROBES {
                UNICAST_PROBE
            } else {
                BROADCAST_PROBE
            };
            assert_eq!(probes(&mut iface, at), [expected], "probe {k}");
            assert_eq!(iface.next_arp_probe(), Some(at + ARP_PROBE_INTERVAL));
            assert_eq!(probes(&mut iface, at + ARP_PROBE_INTERVAL - MS), []);
            assert_eq!(iface.arp_lookup(PEER_IP, at), Some(PEER_MAC));
            assert_eq!(state(&iface, at), Some(NeighbourState::Probe));
        }
        assert_eq!(iface.counters().arp_probes_sent, u64::from(PROBES));
    }

    #[test]
    fn a_late_poll_sends_one_probe_not_a_burst() {
        let mut iface = iface_knowing_peer();
        let used = T0 + TTL;
        iface.arp_lookup(PEER_IP, used);
        // The driver comes back two intervals into probing: one probe, the third one
        // (unicast still), and the next a full interval later (RFC 1122 §2.3.2.1).
        let late = used + ARP_DELAY_FIRST_PROBE + ARP_PROBE_INTERVAL * 2;
        assert_eq!(probes(&mut iface, late), [UNICAST_PROBE]);
        assert_eq!(probes(&mut iface, late + ARP_PROBE_INTERVAL - MS), []);
        assert_eq!(
            probes(&mut iface, late + ARP_PROBE_INTERVAL),
            [BROADCAST_PROBE]
        );
        assert_eq!(iface.counters().arp_probes_sent, 2);
    }

    #[test]
    fn a_reply_to_a_probe_confirms_the_entry() {
        let mut iface = iface_knowing_peer();
        let used = T0 + TTL;
        assert_eq!(iface.arp_lookup(PEER_IP, used), Some(PEER_MAC));
        let probed = used + ARP_DELAY_FIRST_PROBE;
        assert_eq!(probes(&mut iface, probed), [UNICAST_PROBE]);
        let replied = probed + 2 * MS;
        let mut frame = arp_frame(ArpOperation::Reply, PEER_MAC, PEER_IP, OUR_IP);
        assert_eq!(iface.process(replied, &mut frame), Verdict::Consumed);
        assert_eq!(state(&iface, replied), Some(NeighbourState::Reachable));
        assert_eq!(iface.counters().arp_entries_refreshed, 1);
        // Reachable for a whole TTL from the reply, with no more probes.
        assert_eq!(iface.next_arp_probe(), None);
        assert_eq!(probes(&mut iface, replied + TTL - MS), []);
        assert_eq!(
            state(&iface, replied + TTL - MS),
            Some(NeighbourState::Reachable)
        );
        assert_eq!(state(&iface, replied + TTL), Some(NeighbourState::Stale));
        assert_eq!(iface.counters().arp_probes_sent, 1);
    }

    #[test]
    fn traffic_from_the_neighbour_confirms_its_entry() {
        let mut iface = iface_knowing_peer();
        // TCP input from the peer (the stack calls `learn_neighbour`), same address: the
        // entry is confirmed although nothing else changes, and stays reachable.
        let heard = T0 + TTL / 2;
        iface.learn_neighbour(PEER_IP, PEER_MAC, heard);
        assert_eq!(state(&iface, T0 + TTL), Some(NeighbourState::Reachable));
        assert_eq!(
            state(&iface, heard + TTL - MS),
            Some(NeighbourState::Reachable)
        );
        assert_eq!(
            iface.counters().arp_entries_refreshed,
            0,
            "confirming a reachable entry is not counted per segment"
        );
        // Stale and in use: traffic before the first probe confirms it, no probe at all.
        let used = heard + TTL;
        assert_eq!(iface.arp_lookup(PEER_IP, used), Some(PEER_MAC));
        assert_eq!(state(&iface, used), Some(NeighbourState::Delay));
        iface.learn_neighbour(PEER_IP, PEER_MAC, used + MS);
        assert_eq!(state(&iface, used + MS), Some(NeighbourState::Reachable));
        assert_eq!(iface.counters().arp_entries_refreshed, 1);
        assert_eq!(probes(&mut iface, used + ARP_DELAY_FIRST_PROBE), []);
        // Being probed: an ARP request from the peer for another host confirms it too
        // (RFC 826 merge; RFC 1122 §2.3.2.1, "regardless of target address").
        let used = used + MS + TTL;
        iface.arp_lookup(PEER_IP, used);
        let probed = used + ARP_DELAY_FIRST_PROBE;
        assert_eq!(probes(&mut iface, probed), [UNICAST_PROBE]);
        let mut frame = arp_frame(
            ArpOperation::Request,
            PEER_MAC,
            PEER_IP,
            Ipv4Addr::new(10, 0, 0, 9),
        );
        assert_eq!(
            iface.process(probed + MS, &mut frame),
            Verdict::Drop(DropReason::ArpNotForUs)
        );
        assert_eq!(state(&iface, probed + MS), Some(NeighbourState::Reachable));
        assert_eq!(probes(&mut iface, probed + ARP_PROBE_INTERVAL), []);
        assert_eq!(iface.counters().arp_probes_sent, 1);
        // Group addresses confirm nothing.
        let stale = probed + MS + TTL;
        iface.learn_neighbour(PEER_IP, EthernetAddress::BROADCAST, stale);
        assert_eq!(state(&iface, stale), Some(NeighbourState::Stale));
    }

    #[test]
    fn an_unanswered_entry_is_dropped_after_its_probes() {
        let mut iface = iface_knowing_peer();
        let used = T0 + TTL;
        iface.arp_lookup(PEER_IP, used);
        let first = used + ARP_DELAY_FIRST_PROBE;
        for k in 0..PROBES {
            let at = first + ARP_PROBE_INTERVAL * u32::from(k);
            assert_eq!(probes(&mut iface, at).len(), 1, "probe {k}");
        }
        // The last probe has a whole interval to be answered.
        let failed = first + ARP_PROBE_INTERVAL * u32::from(PROBES);
        assert_eq!(iface.arp_lookup(PEER_IP, failed - MS), Some(PEER_MAC));
        assert_eq!(iface.next_arp_probe(), Some(failed));
        // Then it no longer resolves, even before the driver's next call removes it...
        assert_eq!(iface.arp_lookup(PEER_IP, failed), None);
        assert_eq!(state(&iface, failed), None);
        assert_eq!(iface.arp_cache().len(), 1);
        // ...which sends nothing more and counts the failure.
        assert_eq!(probes(&mut iface, failed), []);
        assert!(iface.arp_cache().is_empty());
        assert_eq!(iface.next_arp_probe(), None);
        assert_eq!(iface.counters().arp_entries_failed, 1);
        assert_eq!(iface.counters().arp_probes_sent, u64::from(PROBES));
        // The peer is back: its next ARP is learnt anew.
        let mut frame = arp_frame(ArpOperation::Reply, PEER_MAC, PEER_IP, OUR_IP);
        assert_eq!(iface.process(failed + MS, &mut frame), Verdict::Consumed);
        assert_eq!(iface.counters().arp_entries_learned, 2);
        assert_eq!(state(&iface, failed + MS), Some(NeighbourState::Reachable));
    }

    /// Every state × every event: where the entry goes.
    #[test]
    fn neighbour_states_and_events() {
        use NeighbourState::*;
        #[derive(Debug, Clone, Copy)]
        enum Event {
            /// An ARP packet from the peer, same address.
            Arp,
            /// An ARP packet from the peer, a new address.
            ArpMoved,
            /// TCP input from the peer (`learn_neighbour`), same address.
            Traffic,
            /// A flow resolves the address.
            Use,
        }
        // An interface with the peer's entry in `state`, and the instant it is so.
        let setup = |state: NeighbourState| {
            let mut iface = iface_knowing_peer();
            let at = match state {
                Reachable => T0 + TTL / 2,
                Stale => T0 + TTL,
                Delay => {
                    iface.arp_lookup(PEER_IP, T0 + TTL);
                    T0 + TTL + MS
                }
                Probe => {
                    iface.arp_lookup(PEER_IP, T0 + TTL);
                    let at = T0 + TTL + ARP_DELAY_FIRST_PROBE;
                    assert_eq!(probes(&mut iface, at).len(), 1);
                    at
                }
            };
            assert_eq!(iface.neighbour_state(PEER_IP, at), Some(state));
            (iface, at)
        };
        let moved = EthernetAddress([0x02, 0, 0, 0, 0, 0x99]);
        let table = [
            (Reachable, [Reachable, Reachable, Reachable, Reachable]),
            (Stale, [Reachable, Reachable, Reachable, Delay]),
            (Delay, [Reachable, Reachable, Reachable, Delay]),
            (Probe, [Reachable, Reachable, Reachable, Probe]),
        ];
        let events = [Event::Arp, Event::ArpMoved, Event::Traffic, Event::Use];
        for (from, to) in table {
            for (event, expected) in events.into_iter().zip(to) {
                let (mut iface, at) = setup(from);
                let mac = match event {
                    Event::Arp | Event::ArpMoved => {
                        let mac = if matches!(event, Event::ArpMoved) {
                            moved
                        } else {
                            PEER_MAC
                        };
                        let mut frame = arp_frame(ArpOperation::Reply, mac, PEER_IP, OUR_IP);
                        assert_eq!(iface.process(at, &mut frame), Verdict::Consumed);
                        mac
                    }
                    Event::Traffic => {
                        iface.learn_neighbour(PEER_IP, PEER_MAC, at);
                        PEER_MAC
                    }
                    Event::Use => PEER_MAC,
                };
                assert_eq!(
                    iface.arp_lookup(PEER_IP, at),
                    Some(mac),
                    "{from:?} {event:?}"
                );
                assert_eq!(state(&iface, at), Some(expected), "{from:?} {event:?}");
            }
        }
    }

    #[test]
    fn emitted_arp_probes() {
        let iface = iface();
        let mut buf = [0u8; 64];
        for probe in [UNICAST_PROBE, BROADCAST_PROBE] {
            assert_eq!(iface.emit_arp_probe(probe, &mut buf), Ok(ARP_FRAME_LEN));
            let eth =
                EthernetRepr::parse(&EthernetFrame::new_checked(&buf[..42]).unwrap()).unwrap();
            assert_eq!((eth.src_addr, eth.dst_addr), (OUR_MAC, probe.dst));
            assert_eq!(eth.ethertype, EthernetProtocol::Arp);
            let arp = ArpRepr::parse(&ArpPacket::new_checked(&buf[14..42]).unwrap()).unwrap();
            assert_eq!(
                arp,
                ArpRepr {
                    operation: ArpOperation::Request,
                    source_hardware_addr: OUR_MAC,
                    source_protocol_addr: OUR_IP,
                    target_hardware_addr: EthernetAddress::UNSPECIFIED,
                    target_protocol_addr: PEER_IP,
                }
            );
        }
        assert_eq!(
            iface.emit_arp_probe(UNICAST_PROBE, &mut buf[..41]),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn arp_cache_of_size_zero_learns_nothing() {
        let mut config = config();
        config.arp_cache_size = 0;
        let mut iface = Interface::new(config);
        let mut frame = ARP_REQUEST_FRAME;
        assert_eq!(iface.process(T0, &mut frame), Verdict::Transmit(42));
        assert!(iface.arp_cache().is_empty());
        assert_eq!(iface.counters().arp_entries_learned, 0);
    }

    #[test]
    fn emitted_arp_requests() {
        let iface = iface();
        let mut buf = [0u8; 64];
        assert_eq!(iface.emit_arp_request(PEER_IP, &mut buf), Ok(42));
        let eth = EthernetRepr::parse(&EthernetFrame::new_checked(&buf[..42]).unwrap()).unwrap();
        assert_eq!(eth.dst_addr, EthernetAddress::BROADCAST);
        assert_eq!(eth.src_addr, OUR_MAC);
        assert_eq!(eth.ethertype, EthernetProtocol::Arp);
        let arp = ArpRepr::parse(&ArpPacket::new_checked(&buf[14..42]).unwrap()).unwrap();
        assert_eq!(arp.operation, ArpOperation::Request);
        assert_eq!(
            (arp.source_hardware_addr, arp.source_protocol_addr),
            (OUR_MAC, OUR_IP)
        );
        assert_eq!(arp.target_protocol_addr, PEER_IP);

        assert_eq!(iface.emit_gratuitous_arp(&mut buf), Ok(42));
        let arp = ArpRepr::parse(&ArpPacket::new_checked(&buf[14..42]).unwrap()).unwrap();
        assert_eq!(
            (arp.source_protocol_addr, arp.target_protocol_addr),
            (OUR_IP, OUR_IP)
        );
        assert_eq!(
            iface.emit_arp_request(PEER_IP, &mut buf[..41]),
            Err(Error::Truncated)
        );
    }

    fn check_echo_reply(frame: &[u8], data: &[u8], caps: &ChecksumCaps) {
        let eth = EthernetRepr::parse(&EthernetFrame::new_checked(frame).unwrap()).unwrap();
        assert_eq!((eth.src_addr, eth.dst_addr), (OUR_MAC, PEER_MAC));
        assert_eq!(eth.ethertype, EthernetProtocol::Ipv4);
        let packet = Ipv4Packet::new_checked(&frame[14..]).unwrap();
        assert_eq!(usize::from(packet.total_len()), frame.len() - 14);
        let ip = Ipv4Repr::parse(&packet, caps).unwrap();
        assert_eq!((ip.src_addr, ip.dst_addr), (OUR_IP, PEER_IP));
        assert_eq!(ip.hop_limit, 64);
        assert_eq!(ip.next_header, IpProtocol::Icmp);
        assert!(packet.dont_frag());
        let icmp = Icmpv4Packet::new_checked(packet.payload()).unwrap();
        assert_eq!(
            Icmpv4Repr::parse(&icmp, caps).unwrap(),
            Icmpv4Repr::EchoReply {
                ident: 0x4242,
                seq_no: 7,
                data
            }
        );
    }

    #[test]
    fn ping_gets_echo_reply_in_place() {
        let mut iface = iface();
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let mut frame = ping_frame(&data);
        let len = frame.len();
        assert_eq!(iface.process(T0, &mut frame), Verdict::Transmit(len));
        check_echo_reply(&frame, &data, &ChecksumCaps::default());
        // Checksums independently of the parsers.
        assert_eq!(checksum::sum(&frame[14..34]), 0xffff);
        assert_eq!(checksum::sum(&frame[34..]), 0xffff);
        assert_eq!(iface.counters().icmp_echo_replies_sent, 1);
        assert_eq!(iface.counters().total_dropped(), 0);
    }

    #[test]
    fn ping_with_padding_and_broadcast_mac() {
        let mut iface = iface();
        let mut frame = ping_frame(b"hi");
        let len = frame.len(); // 14 + 20 + 10 = 44: padded to 60 on the wire
        frame.resize(60, 0xee);
        frame[..6].copy_from_slice(&EthernetAddress::BROADCAST.0);
        assert_eq!(iface.process(T0, &mut frame), Verdict::Transmit(len));
        check_echo_reply(&frame[..len], b"hi", &ChecksumCaps::default());
        assert_eq!(&frame[len..], &[0xee; 16]);
    }

    #[test]
    fn ping_with_checksum_offload() {
        let mut config = config();
        config.caps = ChecksumCaps {
            ipv4: Offload::Both,
            icmpv4: Offload::Both,
            tcp: Offload::None,
        };
        let mut iface = Interface::new(config);
        let mut frame = ping_frame(b"abc");
        frame[24] ^= 0xff; // IPv4 checksum: the device checked it, we must not.
        let len = frame.len();
        assert_eq!(iface.process(T0, &mut frame), Verdict::Transmit(len));
        assert_eq!(&frame[24..26], &[0, 0], "IPv4 checksum left to the device");
        assert_eq!(&frame[36..38], &[0, 0], "ICMP checksum left to the device");
        check_echo_reply(&frame, b"abc", &config.caps);
    }

    #[test]
    fn tcp_segment_is_handed_over() {
        let mut iface = iface();
        let segment = [0xabu8; 24];
        let mut frame = ipv4_frame(IpProtocol::Tcp, &segment);
        frame.extend_from_slice(&[0; 6]); // Ethernet padding
        let before = frame.clone();
        let verdict = iface.process(T0, &mut frame);
        let Verdict::Tcp {
            eth_src,
            ip,
            ip_offset,
            tcp_offset,
        } = verdict
        else {
            panic!("expected Tcp, got {verdict:?}");
        };
        assert_eq!(eth_src, PEER_MAC);
        assert_eq!(
            (ip.src_addr, ip.dst_addr, ip.payload_len),
            (PEER_IP, OUR_IP, 24)
        );
        assert_eq!((ip_offset, tcp_offset), (14, 34));
        assert_eq!(verdict.tcp_range(), Some(34..58));
        assert_eq!(&frame[34..58], &segment);
        assert_eq!(frame, before);
        assert_eq!(iface.counters().total_dropped(), 0);
    }

    #[test]
    fn l2_drops() {
        assert_dropped(
            iface(),
            ping_frame(b"x")[..13].to_vec(),
            DropReason::EthTruncated,
        );
        assert_dropped(iface(), Vec::new(), DropReason::EthTruncated);
        let mut frame = ping_frame(b"x");
        frame[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x77]);
        assert_dropped(iface(), frame, DropReason::NotForUsMac);
        let mut frame = ping_frame(b"x");
        frame[..6].copy_from_slice(&[0x01, 0x00, 0x5e, 0, 0, 0x01]);
        assert_dropped(iface(), frame, DropReason::EthMulticast);
        let mut frame = ping_frame(b"x");
        frame[6] = 0x03;
        assert_dropped(iface(), frame, DropReason::EthBadSource);
        let mut frame = ping_frame(b"x");
        frame[12..14].copy_from_slice(&[0x88, 0xb5]);
        assert_dropped(iface(), frame, DropReason::UnknownEthertype);
        let mut frame = ping_frame(b"x");
        frame[12..14].copy_from_slice(&[0x86, 0xdd]);
        assert_dropped(iface(), frame, DropReason::Ipv6);
        let mut frame = ping_frame(b"x");
        frame[12..14].copy_from_slice(&[0x81, 0x00]);
        assert_dropped(iface(), frame, DropReason::VlanTagged);
    }

    /// The counter `name` of `iface`, as scripts read it.
    fn counter(iface: &Interface, name: &str) -> Option<u64> {
        iface
            .counters()
            .iter()
            .find(|&(n, _)| n == name)
            .map(|(_, v)| v)
    }

    #[test]
    fn ipv6_frames_have_their_own_drop_reason() {
        let mut iface = iface();
        let ipv6 = |dst: [u8; 6]| {
            let mut frame = ping_frame(b"x");
            frame[..6].copy_from_slice(&dst);
            frame[12..14].copy_from_slice(&[0x86, 0xdd]);
            frame
        };
        // To us, to the IPv6 all-nodes group (RFC 2464 §7: 33:33 and the group's low 32
        // bits), and to broadcast: IPv6 all three, whatever the destination.
        for dst in [OUR_MAC.0, [0x33, 0x33, 0, 0, 0, 0x01], [0xff; 6]] {
            let mut frame = ipv6(dst);
            let before = frame.clone();
            let verdict = iface.process(T0, &mut frame);
            let Verdict::Drop(reason) = verdict else {
                panic!("IPv6 to {dst:02x?}: {verdict:?}");
            };
            assert_eq!(reason.counter_name(), "drop_ipv6", "to {dst:02x?}");
            assert_eq!(frame, before);
        }
        // Unicast IPv6 to another host is not for us, like any other unicast.
        let mut frame = ipv6([0x02, 0, 0, 0, 0, 0x77]);
        iface.process(T0, &mut frame);
        assert_eq!(counter(&iface, "drop_ipv6"), Some(3));
        assert_eq!(counter(&iface, "drop_not_for_us_mac"), Some(1));
        assert_eq!(counter(&iface, "drop_unknown_ethertype"), Some(0));
        assert_eq!(counter(&iface, "drop_eth_multicast"), Some(0));
        // An unknown EtherType and a non-IPv6 multicast keep their reasons.
        let mut frame = ping_frame(b"x");
        frame[12..14].copy_from_slice(&[0x88, 0xb5]);
        iface.process(T0, &mut frame);
        let mut frame = ping_frame(b"x");
        frame[..6].copy_from_slice(&[0x01, 0x00, 0x5e, 0, 0, 0x01]);
        iface.process(T0, &mut frame);
        assert_eq!(counter(&iface, "drop_unknown_ethertype"), Some(1));
        assert_eq!(counter(&iface, "drop_eth_multicast"), Some(1));
        assert_eq!(iface.counters().total_dropped(), 6);
    }

    #[test]
    fn ipv4_drops() {
        // Shorter than an IPv4 header.
        assert_dropped(
            iface(),
            ping_frame(b"x")[..30].to_vec(),
            DropReason::Ipv4Truncated,
        );
        // Buffer shorter than the total length.
        let frame = ping_frame(b"abcdef");
        assert_dropped(
            iface(),
            frame[..frame.len() - 1].to_vec(),
            DropReason::Ipv4Truncated,
        );
        let mut frame = ping_frame(b"x");
        edit_ipv4(&mut frame, |p| p.set_total_len(700));
        assert_dropped(iface(), frame, DropReason::Ipv4Truncated);
        // Version 6 in an IPv4 ethertype; total length below the header.
        let mut frame = ping_frame(b"x");
        edit_ipv4(&mut frame, |p| p.set_version(6));
        assert_dropped(iface(), frame, DropReason::Ipv4Malformed);
        let mut frame = ping_frame(b"x");
        edit_ipv4(&mut frame, |p| p.set_total_len(12));
        assert_dropped(iface(), frame, DropReason::Ipv4Malformed);
        // Bad header checksum.
        let mut frame = ping_frame(b"x");
        frame[25] ^= 0x01;
        assert_dropped(iface(), frame, DropReason::Ipv4BadChecksum);
        // Options: IHL 6 with a NOP word, rebuilt with a valid checksum.
        let icmp = echo_request(b"x");
        let mut frame = ipv4_frame(
            IpProtocol::Icmp,
            &[[1u8, 1, 1, 0].as_slice(), &icmp].concat(),
        );
        edit_ipv4(&mut frame, |p| p.set_header_len(24));
        assert_dropped(iface(), frame, DropReason::Ipv4Options);
        // Fragments: first (MF) and last (offset).
        let mut frame = ping_frame(b"x");
        edit_ipv4(&mut frame, |p| p.set_more_frags(true));
        assert_dropped(iface(), frame, DropReason::Ipv4Fragment);
        let mut frame = ping_frame(b"x");
        edit_ipv4(&mut frame, |p| p.set_frag_offset(1480));
        assert_dropped(iface(), frame, DropReason::Ipv4Fragment);
        // Not our address; broadcast and multicast sources.
        let mut frame = ping_frame(b"x");
        edit_ipv4(&mut frame, |p| p.set_dst_addr(Ipv4Addr::new(10, 0, 0, 9)));
        assert_dropped(iface(), frame, DropReason::Ipv4NotForUs);
        let mut frame = ping_frame(b"x");
        edit_ipv4(&mut frame, |p| p.set_dst_addr(Ipv4Addr::new(10, 0, 0, 255)));
        assert_dropped(iface(), frame, DropReason::Ipv4NotForUs);
        for src in [
            Ipv4Addr::BROADCAST,
            Ipv4Addr::new(10, 0, 0, 255),
            Ipv4Addr::new(224, 0, 0, 1),
        ] {
            let mut frame = ping_frame(b"x");
            edit_ipv4(&mut frame, |p| p.set_src_addr(src));
            assert_dropped(iface(), frame, DropReason::Ipv4BadSource);
        }
        // UDP and an unknown protocol.
        assert_dropped(
            iface(),
            ipv4_frame(IpProtocol::Udp, &[0; 8]),
            DropReason::IpProtocolUnsupported,
        );
        assert_dropped(
            iface(),
            ipv4_frame(IpProtocol::Unknown(132), &[0; 8]),
            DropReason::IpProtocolUnsupported,
        );
    }

    #[test]
    fn ttl_one_is_still_answered() {
        let mut frame = ping_frame(b"x");
        edit_ipv4(&mut frame, |p| p.set_hop_limit(1));
        let len = frame.len();
        assert_eq!(iface().process(T0, &mut frame), Verdict::Transmit(len));
    }

    #[test]
    fn icmp_drops() {
        // Bad ICMP checksum.
        let mut frame = ping_frame(b"abcd");
        *frame.last_mut().unwrap() ^= 0x01;
        assert_dropped(iface(), frame, DropReason::IcmpBadChecksum);
        // Shorter than the ICMP header.
        assert_dropped(
            iface(),
            ipv4_frame(IpProtocol::Icmp, &[8, 0, 0xf7, 0xff]),
            DropReason::IcmpMalformed,
        );
        // Echo request with a non-zero code.
        let mut icmp = echo_request(b"x");
        icmp[1] = 1;
        let mut p = Icmpv4Packet::new_unchecked(&mut icmp[..]);
        p.fill_checksum();
        assert_dropped(
            iface(),
            ipv4_frame(IpProtocol::Icmp, &icmp),
            DropReason::IcmpMalformed,
        );
        // Echo reply and destination unreachable.
        for t in [Icmpv4Message::EchoReply, Icmpv4Message::DstUnreachable] {
            let mut icmp = echo_request(b"x");
            let mut p = Icmpv4Packet::new_unchecked(&mut icmp[..]);
            p.set_msg_type(t);
            p.fill_checksum();
            assert_dropped(
                iface(),
                ipv4_frame(IpProtocol::Icmp, &icmp),
                DropReason::IcmpUnsupportedType,
            );
        }
    }

    #[test]
    fn counts_accumulate_across_frames() {
        let mut iface = iface();
        for _ in 0..3 {
            let mut frame = ping_frame(b"x");
            iface.process(T0, &mut frame);
            let mut frame = vec![0u8; 5];
            iface.process(T0, &mut frame);
        }
        assert_eq!(iface.counters().icmp_echo_replies_sent, 3);
        assert_eq!(iface.counters().dropped(DropReason::EthTruncated), 3);
        assert_eq!(iface.counters().total_dropped(), 3);
    }

    #[test]
    fn adopted_addresses_take_ipv4_and_answer_arp_once_announced() {
        let other = Ipv4Addr::new(10, 0, 0, 9);
        let mut i = iface();
        let to_other = |mut f: Vec<u8>| {
            // Re-address the datagram to `other` (fixing the header checksum).
            let mut p = Ipv4Packet::new_unchecked(&mut f[ethernet::HEADER_LEN..]);
            p.set_dst_addr(other);
            p.fill_checksum();
            f
        };
        let mut tcp = to_other(ipv4_frame(IpProtocol::Tcp, &[0; 20]));
        assert_eq!(
            i.process(T0, &mut tcp),
            Verdict::Drop(DropReason::Ipv4NotForUs)
        );
        i.adopt_address(other, false);
        let mut tcp = to_other(ipv4_frame(IpProtocol::Tcp, &[0; 20]));
        assert!(matches!(i.process(T0, &mut tcp), Verdict::Tcp { ip, .. } if ip.dst_addr == other));
        // Not announced: ARP for it is not ours to answer.
        let mut who = arp_frame(ArpOperation::Request, PEER_MAC, PEER_IP, other);
        assert_eq!(
            i.process(T0, &mut who),
            Verdict::Drop(DropReason::ArpNotForUs)
        );
        // Announced: answered with our MAC for that address.
        i.adopt_address(other, true);
        let mut who = arp_frame(ArpOperation::Request, PEER_MAC, PEER_IP, other);
        let Verdict::Transmit(len) = i.process(T0, &mut who) else {
            panic!("an ARP reply")
        };
        let reply =
            ArpRepr::parse(&ArpPacket::new_checked(&who[ethernet::HEADER_LEN..len]).unwrap())
                .unwrap();
        assert_eq!(reply.source_protocol_addr, other);
        assert_eq!(reply.source_hardware_addr, OUR_MAC);
        // A gratuitous ARP for it.
        let mut buf = [0u8; ARP_FRAME_LEN];
        let n = i.emit_gratuitous_arp_for(other, &mut buf).unwrap();
        let g = ArpRepr::parse(&ArpPacket::new_checked(&buf[ethernet::HEADER_LEN..n]).unwrap())
            .unwrap();
        assert_eq!(
            (g.source_protocol_addr, g.target_protocol_addr),
            (other, other)
        );
        assert_eq!(i.adopted_addresses(), &[(other, true)]);
        i.release_address(other);
        assert!(!i.is_local(other) && i.is_local(OUR_IP));
        // Our own address handed over (a drain): IPv4 still taken, ARP no longer answered.
        i.hand_over_address(true);
        let mut who = arp_frame(ArpOperation::Request, PEER_MAC, PEER_IP, OUR_IP);
        assert_eq!(
            i.process(T0, &mut who),
            Verdict::Drop(DropReason::ArpNotForUs)
        );
        assert!(i.is_local(OUR_IP));
        i.hand_over_address(false);
        let mut who = arp_frame(ArpOperation::Request, PEER_MAC, PEER_IP, OUR_IP);
        assert!(matches!(i.process(T0, &mut who), Verdict::Transmit(_)));
    }
}
