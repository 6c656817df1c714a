//! Connection configuration: what the user chooses (`TcpConfig`, with `Duration`s) and the
//! compact copy a connection carries (`Params`, microseconds in `u32`s) so that the moving
//! value stays small. Owns no state and does no I/O.
use crate::time::Duration;

/// IPv4 (20) + TCP (20) header bytes without options: MSS = MTU - 40 (RFC 9293 §3.7.1).
pub const IPV4_TCP_HEADERS: u16 = 40;
/// RFC 9293 §3.7.1: the send MSS when the peer sent no MSS option.
pub const DEFAULT_MSS: u16 = 536;
/// The smallest MSS we accept from a peer; smaller values are raised to it (a tiny MSS
/// would make us send a flood of segments).
pub const MIN_MSS: u16 = 88;
/// RFC 7323 §2.3: the largest shift count.
pub const MAX_WINDOW_SCALE: u8 = 14;

/// The congestion control algorithm of new connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum CongestionAlgorithm {
    /// RFC 5681 + RFC 6582.
    NewReno,
    /// RFC 9438.
    #[default]
    Cubic,
}

/// TCP keepalive (RFC 9293 §3.8.4; off unless configured).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle time before the first probe (RFC 1122 says at least two hours by default).
    pub idle: Duration,
    /// Time between unanswered probes.
    pub interval: Duration,
    /// Unanswered probes before the connection times out.
    pub probes: u8,
}

/// What a user configures for new connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpConfig {
    /// The MSS we advertise, before clamping to `mtu - 40`.
    pub mss: u16,
    /// The port's MTU (IP packet size). Both directions' MSS are clamped to `mtu - 40`.
    pub mtu: u16,
    /// Send buffer capacity in bytes (allocated only while data is held).
    pub send_buffer: u32,
    /// Receive buffer capacity in bytes (allocated only while data is held).
    pub recv_buffer: u32,
    /// Offer window scaling (RFC 7323 §2).
    pub window_scaling: bool,
    /// Offer timestamps (RFC 7323 §3).
    pub timestamps: bool,
    /// Offer SACK (RFC 2018).
    pub sack: bool,
    /// Nagle's algorithm (RFC 9293 §3.7.4): coalesce small writes while data is in flight.
    pub nagle: bool,
    /// Maximum delay of an acknowledgment (RFC 9293 §3.8.6.3, at most 500 ms); `None`
    /// acknowledges every segment at once.
    pub delayed_ack: Option<Duration>,
    pub congestion: CongestionAlgorithm,
    /// RFC 6298 §2.1 (1 s).
    pub initial_rto: Duration,
    /// RFC 6298 §2.4 says 1 s; 200 ms (Linux's) is the common choice on fast networks.
    pub min_rto: Duration,
    /// RFC 6298 §2.5: at least 60 s.
    pub max_rto: Duration,
    /// Retransmissions of one segment before the connection times out (RFC 9293 §3.8.3 R2).
    pub max_retries: u8,
    /// SYN (or SYN-ACK) retransmissions before giving up (RFC 9293 §3.8.3: R2 for SYN
    /// covers at least 3 minutes; the default here, 6 with a 1 s initial RTO, is 127 s).
    pub max_syn_retries: u8,
    pub keepalive: Option<Keepalive>,
    /// Unanswered zero-window probes (RFC 9293 §3.8.6.1) before the connection times out.
    /// A receiver that answers keeps the connection (RFC 1122 §4.2.2.17); one that stops
    /// answering is treated like one that stops acknowledging retransmissions (Linux:
    /// `tcp_retries2`).
    pub max_persist_probes: u8,
    /// Zero-window probes, answered or not, after which a connection the application has
    /// closed (its data and FIN wait for the peer's window) times out: nobody will read or
    /// write it again, so it must not hold its buffers for ever (RFC 6429; Linux:
    /// `tcp_orphan_retries`).
    pub max_orphan_persist_probes: u8,
    /// TIME-WAIT length, 2×MSL (RFC 9293 §3.4.2 uses MSL = 2 minutes).
    pub time_wait: Duration,
    /// After both directions are closed by the application, how long FIN-WAIT-2 may wait
    /// for the peer's FIN (not in the RFC; every stack has one). `None` waits forever.
    pub fin_wait_2_timeout: Option<Duration>,
    /// RFC 5961 §7: challenge ACKs allowed per second per connection.
    pub challenge_ack_limit: u16,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            mss: 1460,
            mtu: 1500,
            send_buffer: 256 * 1024,
            recv_buffer: 256 * 1024,
            window_scaling: true,
            timestamps: true,
            sack: true,
            nagle: true,
            delayed_ack: Some(Duration::from_millis(40)),
            congestion: CongestionAlgorithm::Cubic,
            initial_rto: Duration::from_secs(1),
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(60),
            max_retries: 15,
            max_syn_retries: 6,
            keepalive: None,
            max_persist_probes: 15,
            max_orphan_persist_probes: 8,
            time_wait: Duration::from_secs(60),
            fin_wait_2_timeout: Some(Duration::from_secs(60)),
            challenge_ack_limit: 10,
        }
    }
}

impl TcpConfig {
    /// The MSS we advertise: configured, clamped to the MTU.
    pub fn effective_mss(&self) -> u16 {
        self.mss
            .min(self.mtu.saturating_sub(IPV4_TCP_HEADERS))
            .max(MIN_MSS)
    }

    /// The window scale we offer: the smallest shift that lets the receive buffer be
    /// advertised in 16 bits (RFC 7323 §2.3), at most 14.
    pub fn window_scale(&self) -> u8 {
        let mut shift = 0;
        while shift < MAX_WINDOW_SCALE && (self.recv_buffer >> shift) > 0xffff {
            shift += 1;
        }
        shift
    }
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// The longest configured time a connection keeps (30 days, the bound of a migration
/// record's offsets): a timer armed from a longer one could not move with it.
const MAX_PARAM_MS: u32 = 30 * 24 * 3600 * 1000;

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis())
        .unwrap_or(u32::MAX)
        .min(MAX_PARAM_MS)
}

fn duration(us: u32) -> Duration {
    Duration::from_micros(u64::from(us))
}

fn ms_duration(ms: u32) -> Duration {
    Duration::from_millis(u64::from(ms))
}

/// How many distinct [`Params`] sets the process holds before it refuses more from
/// peers' records (each takes 40 bytes for the life of the process).
pub const MAX_PEER_PARAMS: usize = 4096;

mod interned {
    use super::Params;
    use std::cell::Cell;
    use std::sync::Mutex;

    /// Every set interned so far. Taken only when a thread's cache misses.
    static ALL: Mutex<Vec<&'static Params>> = Mutex::new(Vec::new());

    thread_local! {
        /// The sets this thread used last, most recent first: nearly every lookup ends
        /// here, with no lock.
        static RECENT: Cell<[Option<&'static Params>; 4]> = const { Cell::new([None; 4]) };
    }

    /// The shared copy of `p`, interning it if the process holds fewer than `limit` sets.
    pub(super) fn get(p: Params, limit: usize) -> Option<&'static Params> {
        let mut recent = RECENT.get();
        if let Some(&hit) = recent.iter().flatten().find(|q| ***q == p) {
            return Some(hit);
        }
        let found = {
            let mut all = ALL.lock().unwrap_or_else(|e| e.into_inner());
            match all.iter().find(|q| ***q == p) {
                Some(&q) => q,
                None if all.len() >= limit => return None,
                None => {
                    let q: &'static Params = Box::leak(Box::new(p));
                    all.push(q);
                    q
                }
            }
        };
        recent.rotate_right(1);
        recent[0] = Some(found);
        RECENT.set(recent);
        Some(found)
    }
}

/// The per-connection copy of the configuration, compact (0 = off; short times in µs,
/// long ones in ms). It travels with a migrated connection, so that the connection keeps
/// behaving as it was set up (its window never shrinks because the destination was
/// configured with smaller buffers, say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    pub send_buffer: u32,
    pub recv_buffer: u32,
    pub delayed_ack_us: u32,
    pub keepalive_idle_ms: u32,
    pub keepalive_interval_ms: u32,
    pub time_wait_ms: u32,
    pub fin_wait_2_ms: u32,
    pub mtu_mss: u16,
    pub challenge_ack_limit: u16,
    pub keepalive_probes: u8,
    pub max_retries: u8,
    pub max_syn_retries: u8,
    pub max_persist_probes: u8,
    pub max_orphan_persist_probes: u8,
    pub nagle: bool,
}

impl Params {
    pub fn new(config: &TcpConfig) -> Self {
        let keepalive = config.keepalive;
        Params {
            send_buffer: config.send_buffer.max(1),
            recv_buffer: config.recv_buffer.max(1),
            delayed_ack_us: config.delayed_ack.map_or(0, micros),
            keepalive_idle_ms: keepalive.map_or(0, |k| millis(k.idle).max(1)),
            keepalive_interval_ms: keepalive.map_or(0, |k| millis(k.interval).max(1)),
            time_wait_ms: millis(config.time_wait),
            fin_wait_2_ms: config.fin_wait_2_timeout.map_or(0, |d| millis(d).max(1)),
            mtu_mss: config.mtu.saturating_sub(IPV4_TCP_HEADERS).max(MIN_MSS),
            challenge_ack_limit: config.challenge_ack_limit,
            keepalive_probes: keepalive.map_or(0, |k| k.probes),
            max_retries: config.max_retries,
            max_syn_retries: config.max_syn_retries,
            max_persist_probes: config.max_persist_probes,
            max_orphan_persist_probes: config.max_orphan_persist_probes,
            nagle: config.nagle,
        }
    }

    /// The process's shared copy of these parameters. Connections point at it instead of
    /// each holding 40 bytes: the connections of a core almost all share their
    /// configuration's parameters (a few differ by Nagle, or came with a migration).
    /// Copies are never freed; what a peer can add is bounded ([`Params::intern_from_peer`]).
    pub fn intern(self) -> &'static Params {
        interned::get(self, usize::MAX).expect("no limit")
    }

    /// [`Params::intern`] for parameters that came in a peer's record: `None` once
    /// [`MAX_PEER_PARAMS`] distinct sets are held, so that records cannot grow the set
    /// without bound (the record is refused; the connection stays with its origin).
    pub fn intern_from_peer(self) -> Option<&'static Params> {
        interned::get(self, MAX_PEER_PARAMS)
    }

    pub fn delayed_ack(&self) -> Option<Duration> {
        (self.delayed_ack_us > 0).then(|| duration(self.delayed_ack_us))
    }
    pub fn keepalive_idle(&self) -> Option<Duration> {
        (self.keepalive_idle_ms > 0).then(|| ms_duration(self.keepalive_idle_ms))
    }
    pub fn keepalive_interval(&self) -> Duration {
        ms_duration(self.keepalive_interval_ms)
    }
    pub fn time_wait(&self) -> Duration {
        ms_duration(self.time_wait_ms)
    }
    pub fn fin_wait_2(&self) -> Option<Duration> {
        (self.fin_wait_2_ms > 0).then(|| ms_duration(self.fin_wait_2_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mss_clamped_to_mtu_and_scale_fits_buffer() {
        let c = TcpConfig {
            mss: 9000,
            mtu: 1500,
            ..TcpConfig::default()
        };
        assert_eq!(c.effective_mss(), 1460);
        let c = TcpConfig {
            recv_buffer: 0xffff,
            ..TcpConfig::default()
        };
        assert_eq!(c.window_scale(), 0);
        let c = TcpConfig {
            recv_buffer: 256 * 1024,
            ..TcpConfig::default()
        };
        assert_eq!(c.window_scale(), 3);
        let c = TcpConfig {
            recv_buffer: u32::MAX,
            ..TcpConfig::default()
        };
        assert_eq!(c.window_scale(), 14);
    }

    #[test]
    fn equal_params_share_one_copy_and_peers_are_bounded() {
        let config = TcpConfig::default();
        let a = Params::new(&config).intern();
        assert!(core::ptr::eq(a, Params::new(&config).intern()), "one copy");
        let b = Params {
            nagle: !a.nagle,
            ..*a
        }
        .intern();
        assert!(!core::ptr::eq(a, b));
        assert_eq!(
            *b,
            Params {
                nagle: !a.nagle,
                ..*a
            }
        );
        assert!(core::ptr::eq(
            a,
            Params::new(&config).intern_from_peer().unwrap()
        ));
        // A set never seen, at the limit: refused (the process's sets are not filled
        // here, as other tests run in this process; the bound is the same comparison).
        let fresh = Params {
            send_buffer: 12_345_677,
            ..*a
        };
        assert_eq!(interned::get(fresh, 0), None);
        assert!(
            core::ptr::eq(fresh.intern(), fresh.intern()),
            "and taken without a limit"
        );
    }

    #[test]
    fn params_keep_times() {
        let c = TcpConfig {
            keepalive: Some(Keepalive {
                idle: Duration::from_secs(7200),
                interval: Duration::from_secs(75),
                probes: 9,
            }),
            ..TcpConfig::default()
        };
        let p = Params::new(&c);
        assert_eq!(p.keepalive_idle(), Some(Duration::from_secs(7200)));
        assert_eq!(p.keepalive_interval(), Duration::from_secs(75));
        assert_eq!(p.delayed_ack(), Some(Duration::from_millis(40)));
        assert_eq!(p.time_wait(), Duration::from_secs(60));
        let off = Params::new(&TcpConfig {
            delayed_ack: None,
            ..TcpConfig::default()
        });
        assert_eq!(off.delayed_ack(), None);
        assert_eq!(off.keepalive_idle(), None);
    }
}
