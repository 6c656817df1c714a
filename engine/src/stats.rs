//! Counters of one engine core: packets and bytes in and out, L2/L3 protocol events, and
//! one drop counter per [`DropReason`].
//!
//! Owns the names that scripts read (`as_str`, the counter names and the JSON rendering):
//! they are stable, renaming one is a breaking change. Counting is plain `u64` arithmetic on
//! a core-local value; nothing here allocates except [`Counters::to_json`], which is for
//! reporting, never the packet path. Cores keep their own `Counters` and a reporter sums
//! them with [`Counters::add`]. [`LatencyHistogram`] keeps latencies (of migrations) the
//! same way: fixed size, merged across cores by the reporter.
use core::fmt;

use crate::time::Duration;

macro_rules! drop_reasons {
    ($( $(#[doc = $doc:literal])* $variant:ident => $name:literal, )*) => {
        /// Why a received or transmitted frame was dropped at L2/L3.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum DropReason {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl DropReason {
            /// How many reasons there are.
            pub const COUNT: usize = [$($name),*].len();

            /// Every reason, in counter order.
            pub const ALL: [DropReason; DropReason::COUNT] = [$(DropReason::$variant),*];

            /// The reason's stable snake_case name.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(DropReason::$variant => $name,)*
                }
            }

            /// The name of the reason's counter: `drop_` followed by [`DropReason::as_str`].
            pub const fn counter_name(self) -> &'static str {
                match self {
                    $(DropReason::$variant => concat!("drop_", $name),)*
                }
            }
        }
    };
}

drop_reasons! {
    /// Shorter than an Ethernet header.
    EthTruncated => "eth_truncated",
    /// The source MAC address is a group (multicast or broadcast) address.
    EthBadSource => "eth_bad_source",
    /// Unicast to another MAC address.
    NotForUsMac => "not_for_us_mac",
    /// To a multicast MAC address other than broadcast, IPv6 aside: we join no multicast
    /// group.
    EthMulticast => "eth_multicast",
    /// 802.1Q or 802.1ad tagged: this engine runs untagged ports.
    VlanTagged => "vlan_tagged",
    /// An EtherType other than IPv4, ARP, IPv6 or a VLAN tag.
    UnknownEthertype => "unknown_ethertype",
    /// IPv6 (EtherType 0x86DD) to us, to broadcast or to an IPv6 multicast group: this
    /// engine is an IPv4 host. Apart from unknown EtherTypes so that a kernel's IPv6
    /// neighbour discovery and MLD on the same link are told from real junk.
    Ipv6 => "ipv6",
    /// ARP packet shorter than its lengths say, or with a group source hardware address.
    ArpMalformed => "arp_malformed",
    /// ARP for a hardware or protocol type other than Ethernet/IPv4, or an unknown opcode.
    ArpUnsupported => "arp_unsupported",
    /// ARP whose target protocol address is not ours.
    ArpNotForUs => "arp_not_for_us",
    /// ARP from another host claiming our IPv4 address.
    ArpConflict => "arp_conflict",
    /// Shorter than the IPv4 header, its header length or its total length.
    Ipv4Truncated => "ipv4_truncated",
    /// Version other than 4, header length below 20, total length below header length.
    Ipv4Malformed => "ipv4_malformed",
    /// The IPv4 header checksum does not match.
    Ipv4BadChecksum => "ipv4_bad_checksum",
    /// IPv4 header with options: dropped on purpose.
    Ipv4Options => "ipv4_options",
    /// IPv4 fragment: there is no reassembly.
    Ipv4Fragment => "ipv4_fragment",
    /// IPv4 source is a broadcast or multicast address (RFC 1122 §3.2.1.3).
    Ipv4BadSource => "ipv4_bad_source",
    /// IPv4 destination is not our address.
    Ipv4NotForUs => "ipv4_not_for_us",
    /// ICMP message shorter than its header, or an echo with a non-zero code.
    IcmpMalformed => "icmp_malformed",
    /// The ICMP checksum does not match.
    IcmpBadChecksum => "icmp_bad_checksum",
    /// An ICMP type other than echo request.
    IcmpUnsupportedType => "icmp_unsupported_type",
    /// An IP protocol other than ICMP and TCP.
    IpProtocolUnsupported => "ip_protocol_unsupported",
    /// A TCP segment for us while no TCP layer is attached.
    TcpNotHandled => "tcp_not_handled",
    /// A TCP segment shorter than its header, with a bad data offset, bad options, port 0,
    /// or SYN with RST or FIN.
    TcpMalformed => "tcp_malformed",
    /// A TCP segment whose checksum does not match.
    TcpBadChecksum => "tcp_bad_checksum",
    /// A segment of a flow another core owns could not be handed over: its queue was full.
    SteerQueueFull => "steer_queue_full",
    /// A segment handed over by another core belongs to neither (ownership disagrees).
    SteerLoop => "steer_loop",
    /// The port did not take the frame after bounded retries.
    TxRingFull => "tx_ring_full",
    /// No frame buffer could be allocated for a frame we meant to send.
    NoBuffers => "no_buffers",
}

impl DropReason {
    /// Position of the reason's counter in [`Counters::drops`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The counters of one engine core. Every field is a monotonically increasing count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counters {
    /// Frames received from the port.
    pub rx_packets: u64,
    /// Bytes of the frames received, from the Ethernet header on.
    pub rx_bytes: u64,
    /// Frames the port took for transmission.
    pub tx_packets: u64,
    /// Bytes of the frames the port took.
    pub tx_bytes: u64,
    /// ARP replies built and handed to the port.
    pub arp_replies_sent: u64,
    /// New entries added to the ARP cache.
    pub arp_entries_learned: u64,
    /// Existing ARP cache entries refreshed: by any ARP packet from the host, or by its
    /// traffic when that changed the address or confirmed a stale entry again.
    pub arp_entries_refreshed: u64,
    /// ARP cache entries removed to make room for a new one.
    pub arp_entries_evicted: u64,
    /// ARP requests handed to the driver to check a stale entry in use (unicast to the
    /// known address first, then broadcast).
    pub arp_probes_sent: u64,
    /// ARP cache entries removed because their probes went unanswered.
    pub arp_entries_failed: u64,
    /// ICMP echo replies built and handed to the port.
    pub icmp_echo_replies_sent: u64,
    /// Dropped frames, indexed by [`DropReason::index`].
    pub drops: [u64; DropReason::COUNT],
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            rx_packets: 0,
            rx_bytes: 0,
            tx_packets: 0,
            tx_bytes: 0,
            arp_replies_sent: 0,
            arp_entries_learned: 0,
            arp_entries_refreshed: 0,
            arp_entries_evicted: 0,
            arp_probes_sent: 0,
            arp_entries_failed: 0,
            icmp_echo_replies_sent: 0,
            drops: [0; DropReason::COUNT],
        }
    }
}

impl Counters {
    pub fn new() -> Counters {
        Counters::default()
    }

    /// Counts one frame dropped for `reason`.
    pub fn drop(&mut self, reason: DropReason) {
        self.drop_n(reason, 1);
    }

    /// Counts `n` frames dropped for `reason`.
    pub fn drop_n(&mut self, reason: DropReason, n: u64) {
        let c = &mut self.drops[reason.index()];
        *c = c.wrapping_add(n);
    }

    /// Frames dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()]
    }

    /// Frames dropped for any reason.
    pub fn total_dropped(&self) -> u64 {
        self.drops.iter().fold(0u64, |acc, &d| acc.wrapping_add(d))
    }

    /// Adds every counter of `other` to this one (summing cores).
    pub fn add(&mut self, other: &Counters) {
        let Counters {
            rx_packets,
            rx_bytes,
            tx_packets,
            tx_bytes,
            arp_replies_sent,
            arp_entries_learned,
            arp_entries_refreshed,
            arp_entries_evicted,
            arp_probes_sent,
            arp_entries_failed,
            icmp_echo_replies_sent,
            drops,
        } = other;
        self.rx_packets = self.rx_packets.wrapping_add(*rx_packets);
        self.rx_bytes = self.rx_bytes.wrapping_add(*rx_bytes);
        self.tx_packets = self.tx_packets.wrapping_add(*tx_packets);
        self.tx_bytes = self.tx_bytes.wrapping_add(*tx_bytes);
        self.arp_replies_sent = self.arp_replies_sent.wrapping_add(*arp_replies_sent);
        self.arp_entries_learned = self.arp_entries_learned.wrapping_add(*arp_entries_learned);
        self.arp_entries_refreshed = self
            .arp_entries_refreshed
            .wrapping_add(*arp_entries_refreshed);
        self.arp_entries_evicted = self.arp_entries_evicted.wrapping_add(*arp_entries_evicted);
        self.arp_probes_sent = self.arp_probes_sent.wrapping_add(*arp_probes_sent);
        self.arp_entries_failed = self.arp_entries_failed.wrapping_add(*arp_entries_failed);
        self.icmp_echo_replies_sent = self
            .icmp_echo_replies_sent
            .wrapping_add(*icmp_echo_replies_sent);
        for (mine, theirs) in self.drops.iter_mut().zip(drops) {
            *mine = mine.wrapping_add(*theirs);
        }
    }

    /// Every counter as `(name, value)`, scalar counters first, then one `drop_<reason>`
    /// per [`DropReason`] in [`DropReason::ALL`] order. Names are stable.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        // Destructured so that a new field fails to compile until it is listed here.
        let Counters {
            rx_packets,
            rx_bytes,
            tx_packets,
            tx_bytes,
            arp_replies_sent,
            arp_entries_learned,
            arp_entries_refreshed,
            arp_entries_evicted,
            arp_probes_sent,
            arp_entries_failed,
            icmp_echo_replies_sent,
            drops,
        } = self;
        let scalars = [
            ("rx_packets", *rx_packets),
            ("rx_bytes", *rx_bytes),
            ("tx_packets", *tx_packets),
            ("tx_bytes", *tx_bytes),
            ("arp_replies_sent", *arp_replies_sent),
            ("arp_entries_learned", *arp_entries_learned),
            ("arp_entries_refreshed", *arp_entries_refreshed),
            ("arp_entries_evicted", *arp_entries_evicted),
            ("arp_probes_sent", *arp_probes_sent),
            ("arp_entries_failed", *arp_entries_failed),
            ("icmp_echo_replies_sent", *icmp_echo_replies_sent),
        ];
        scalars.into_iter().chain(
            DropReason::ALL
                .iter()
                .map(move |r| (r.counter_name(), drops[r.index()])),
        )
    }

    /// Writes every counter of [`Counters::iter`] as one flat JSON object, in that order,
    /// with `"drops_total"` last. Names are plain identifiers and values integers, so no
    /// escaping is needed.
    pub fn write_json(&self, out: &mut impl fmt::Write) -> fmt::Result {
        out.write_char('{')?;
        for (name, value) in self.iter() {
            write!(out, "\"{name}\":{value},")?;
        }
        write!(out, "\"drops_total\":{}}}", self.total_dropped())
    }

    /// [`Counters::write_json`] into a new string. For reporting, not the packet path.
    pub fn to_json(&self) -> String {
        let mut s = String::with_capacity(64 * (16 + DropReason::COUNT));
        // Writing into a String cannot fail.
        let _ = self.write_json(&mut s);
        s
    }
}

/// Sub-buckets per power of two in a [`LatencyHistogram`] (precision: 1/8, 12.5%).
const SUB_BUCKETS: usize = 8;
/// Buckets: 8 exact values below 8 ns, then 8 per power of two up to 2^64 ns.
const BUCKETS: usize = SUB_BUCKETS + 61 * SUB_BUCKETS;

/// A latency histogram in nanoseconds with logarithmic buckets (HDR-style, 12.5%
/// precision), fixed size and no allocation after construction: what the engine keeps of
/// migration latencies, mergeable across cores.
#[derive(Clone, PartialEq, Eq)]
pub struct LatencyHistogram {
    counts: Box<[u32; BUCKETS]>,
    total: u64,
    max_ns: u64,
}

impl core::fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("count", &self.total)
            .field("p50", &self.percentile(50.0))
            .field("max_ns", &self.max_ns)
            .finish()
    }
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            counts: Box::new([0; BUCKETS]),
            total: 0,
            max_ns: 0,
        }
    }
}

impl LatencyHistogram {
    fn index(ns: u64) -> usize {
        if ns < SUB_BUCKETS as u64 {
            return ns as usize;
        }
        let e = 63 - ns.leading_zeros() as usize; // at least 3
        let sub = ((ns >> (e - 3)) & (SUB_BUCKETS as u64 - 1)) as usize;
        (SUB_BUCKETS + (e - 3) * SUB_BUCKETS + sub).min(BUCKETS - 1)
    }

    /// The largest value bucket `i` holds.
    fn upper(i: usize) -> u64 {
        if i < SUB_BUCKETS {
            return i as u64;
        }
        let e = (i - SUB_BUCKETS) / SUB_BUCKETS + 3;
        let sub = ((i - SUB_BUCKETS) % SUB_BUCKETS) as u64;
        let low = (1u64 << e) | (sub << (e - 3));
        low.saturating_add((1u64 << (e - 3)) - 1)
    }

    pub fn record(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let slot = &mut self.counts[Self::index(ns)];
        *slot = slot.saturating_add(1);
        self.total += 1;
        self.max_ns = self.max_ns.max(ns);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.max_ns)
    }

    /// The value at percentile `p` (0-100): the upper bound of the bucket holding it,
    /// never above the largest value recorded. Zero when empty.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        let rank = ((p.clamp(0.0, 100.0) / 100.0) * self.total as f64)
            .ceil()
            .max(1.0) as u64;
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += u64::from(c);
            if seen >= rank {
                return Duration::from_nanos(Self::upper(i).min(self.max_ns));
            }
        }
        Duration::from_nanos(self.max_ns)
    }

    /// Adds `other`'s values to these.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a = a.saturating_add(*b);
        }
        self.total += other.total;
        self.max_ns = self.max_ns.max(other.max_ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn reasons_are_indexed_in_order() {
        assert_eq!(DropReason::ALL.len(), DropReason::COUNT);
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        assert_eq!(DropReason::EthTruncated.as_str(), "eth_truncated");
        assert_eq!(DropReason::TxRingFull.to_string(), "tx_ring_full");
        assert_eq!(DropReason::NoBuffers.counter_name(), "drop_no_buffers");
    }

    #[test]
    fn reason_names_are_unique_snake_case() {
        let mut seen = HashSet::new();
        for r in DropReason::ALL {
            let name = r.as_str();
            assert!(seen.insert(name), "duplicate {name}");
            assert!(!name.is_empty());
            assert!(name
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_'));
            assert_eq!(r.counter_name(), format!("drop_{name}"));
        }
    }

    #[test]
    fn drops_count_per_reason() {
        let mut c = Counters::new();
        c.drop(DropReason::Ipv4Fragment);
        c.drop(DropReason::Ipv4Fragment);
        c.drop(DropReason::TxRingFull);
        c.drop_n(DropReason::NoBuffers, 5);
        assert_eq!(c.dropped(DropReason::Ipv4Fragment), 2);
        assert_eq!(c.dropped(DropReason::TxRingFull), 1);
        assert_eq!(c.dropped(DropReason::NoBuffers), 5);
        assert_eq!(c.dropped(DropReason::EthTruncated), 0);
        assert_eq!(c.total_dropped(), 8);
    }

    /// Scalar counters before the drop counters.
    const SCALARS: usize = 11;

    fn distinct() -> Counters {
        let mut c = Counters {
            rx_packets: 1,
            rx_bytes: 2,
            tx_packets: 3,
            tx_bytes: 4,
            arp_replies_sent: 5,
            arp_entries_learned: 6,
            arp_entries_refreshed: 7,
            arp_entries_evicted: 8,
            arp_probes_sent: 9,
            arp_entries_failed: 10,
            icmp_echo_replies_sent: 11,
            drops: [0; DropReason::COUNT],
        };
        for (i, d) in c.drops.iter_mut().enumerate() {
            *d = 100 + i as u64;
        }
        c
    }

    #[test]
    fn iter_lists_every_counter_once() {
        let c = distinct();
        let items: Vec<_> = c.iter().collect();
        assert_eq!(items.len(), SCALARS + DropReason::COUNT);
        let names: HashSet<_> = items.iter().map(|(n, _)| *n).collect();
        assert_eq!(names.len(), items.len());
        // Every value is distinct in `distinct()`, so each must appear exactly once.
        let values: HashSet<_> = items.iter().map(|(_, v)| *v).collect();
        assert_eq!(values.len(), items.len());
        assert_eq!(items[0], ("rx_packets", 1));
        assert_eq!(items[8], ("arp_probes_sent", 9));
        assert_eq!(items[SCALARS - 1], ("icmp_echo_replies_sent", 11));
        assert_eq!(items[SCALARS], ("drop_eth_truncated", 100));
        let last = DropReason::ALL[DropReason::COUNT - 1];
        assert_eq!(
            items.last().copied(),
            Some((last.counter_name(), 100 + DropReason::COUNT as u64 - 1))
        );
    }

    #[test]
    fn add_sums_every_counter() {
        let mut a = distinct();
        a.add(&distinct());
        for ((n1, v1), (n2, v2)) in a.iter().zip(distinct().iter()) {
            assert_eq!(n1, n2);
            assert_eq!(v1, 2 * v2, "{n1}");
        }
    }

    #[test]
    fn json_is_one_flat_object() {
        let mut c = Counters::new();
        c.rx_packets = 7;
        c.drop(DropReason::VlanTagged);
        let json = c.to_json();
        assert!(
            json.starts_with("{\"rx_packets\":7,\"rx_bytes\":0,"),
            "{json}"
        );
        assert!(json.ends_with(",\"drops_total\":1}"), "{json}");
        assert!(json.contains("\"drop_vlan_tagged\":1,"), "{json}");
        // One "name":value pair per counter plus the total, separated by commas.
        assert_eq!(json.matches(':').count(), SCALARS + DropReason::COUNT + 1);
        assert_eq!(json.matches(',').count(), SCALARS + DropReason::COUNT);
        assert!(!json.contains(",}"));
    }

    #[test]
    fn latency_percentiles_within_an_eighth() {
        let mut h = LatencyHistogram::default();
        assert_eq!(h.percentile(50.0), Duration::ZERO);
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        assert_eq!(h.count(), 1000);
        for (p, want) in [(50.0, 500u64), (99.0, 990), (100.0, 1000), (1.0, 10)] {
            let got = h.percentile(p).as_nanos() as f64 / 1000.0;
            assert!(
                (got - want as f64).abs() <= want as f64 / 8.0 + 1.0,
                "p{p}: {got} us for {want}"
            );
        }
        assert_eq!(h.max(), Duration::from_micros(1000));
        let mut other = LatencyHistogram::default();
        other.record(Duration::from_secs(3));
        other.record(Duration::from_nanos(3));
        h.merge(&other);
        assert_eq!(h.count(), 1002);
        assert_eq!(h.percentile(100.0), Duration::from_secs(3));
        assert_eq!(h.percentile(0.0), Duration::from_nanos(3));
        // Every value lands in a bucket whose bounds hold it.
        for ns in [
            0u64,
            7,
            8,
            9,
            15,
            16,
            1023,
            1024,
            1025,
            u64::MAX / 3,
            u64::MAX,
        ] {
            let i = LatencyHistogram::index(ns);
            assert!(LatencyHistogram::upper(i) >= ns, "{ns}");
            assert!(i == 0 || LatencyHistogram::upper(i - 1) < ns, "{ns}");
        }
    }
}
