//! Real TCP/IP endpoints on the simulated wire, for protocol tests that run the whole
//! engine: frames in, the stack, an application, frames out.
//!
//! Owns: [`EngineHost`] (the per-core poll loop `poll::Engine` over a [`SimPort`], with its
//! stack and application, as a simulated host) and [`engine_host`] to build one;
//! [`Tapped`], a host wrapper that shows every frame a host transmits to a callback (where
//! independent parsers and ad-hoc captures hook in); [`BulkApp`], a test application that
//! streams a seeded byte [`Pattern`] in one or both directions and checks what arrives byte
//! for byte. May not: apply faults (the network does), read a clock or draw randomness
//! from anywhere but its seeds.
//!
//! ```
//! use engine::sim::endpoint::{engine_host, endpoint_ip, BulkApp};
//! use engine::sim::{Faults, Network};
//! use engine::stack::StackConfig;
//! use engine::time::{Duration, Instant};
//! use core::net::SocketAddrV4;
//!
//! let server = BulkApp::listen(80, 1, 10_000, 2, 20_000);
//! let client = BulkApp::connect(SocketAddrV4::new(endpoint_ip(1), 80), 2, 20_000, 1, 10_000);
//! let mut net: Network<engine::sim::endpoint::EngineHost<BulkApp>> = Network::new(7);
//! net.set_faults(Faults::none().with_delay(Duration::from_millis(1), Duration::ZERO)).unwrap();
//! let a = net.add_host(engine_host(1, StackConfig::default(), 11, server, &[2])).unwrap();
//! let b = net.add_host(engine_host(2, StackConfig::default(), 12, client, &[1])).unwrap();
//! for id in [a, b] {
//!     net.host_mut(id).unwrap().driver_mut().with_ctx(Instant::ZERO, |app, cx| app.start(cx)).unwrap();
//! }
//! net.run_until(
//!     |n| n.hosts().all(|(_, h)| h.driver().app().stats().complete()),
//!     Instant::from_millis(10_000),
//! )
//! .unwrap();
//! ```
use core::net::{Ipv4Addr, SocketAddrV4};

use super::{Host, PortHost, SimPort};
use crate::iface::{IfaceConfig, Interface};
use crate::poll::Engine;
use crate::stack::{App, ConnId, Ctx, Event, Stack, StackConfig, StackError, StackKeys};
use crate::steer::NoSteer;
use crate::tcp::TcpError;
use crate::time::Instant;
use crate::wire::ipv4::Ipv4Cidr;
use crate::wire::EthernetAddress;

/// The real poll loop, with a stack and an application, as a simulated host.
pub type EngineHost<A> = PortHost<Engine<SimPort, A, NoSteer>>;

/// Prefix length of the simulated endpoints' network, 10.0.0.0/24.
const PREFIX_LEN: u8 = 24;

/// The MAC address of endpoint `n`: 02:00:00:00:00:n (locally administered, unicast).
pub fn endpoint_mac(n: u8) -> EthernetAddress {
    EthernetAddress([0x02, 0, 0, 0, 0, n])
}

/// The IPv4 address of endpoint `n`: 10.0.0.n.
pub fn endpoint_ip(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, n)
}

/// Builds endpoint `n` (MAC [`endpoint_mac`], address [`endpoint_ip`]/24, IP MTU 1500):
/// a stack with `config` and keys derived from `seed`, running `app`, that already knows
/// the MAC addresses of endpoints `neighbours` (so that a first SYN needs no ARP round
/// trip; ARP itself is tested elsewhere).
pub fn engine_host<A: App>(
    n: u8,
    config: StackConfig,
    seed: u64,
    app: A,
    neighbours: &[u8],
) -> EngineHost<A> {
    let mac = endpoint_mac(n);
    // A /24 prefix is always valid; the fallback only satisfies the type.
    let cidr = match Ipv4Cidr::new(endpoint_ip(n), PREFIX_LEN) {
        Ok(cidr) => cidr,
        Err(_) => Ipv4Cidr::new(endpoint_ip(n), 32).unwrap_or(NETWORK),
    };
    let mut iface = Interface::new(IfaceConfig::new(mac, cidr));
    for &peer in neighbours {
        iface.learn_neighbour(endpoint_ip(peer), endpoint_mac(peer), Instant::ZERO);
    }
    let stack = Stack::new(iface, config, StackKeys::from_seed(seed));
    let port = SimPort::new(mac, 1500);
    PortHost::new(Engine::with_app(port, stack, app, NoSteer))
}

const NETWORK: Ipv4Cidr = match Ipv4Cidr::new(Ipv4Addr::new(10, 0, 0, 0), PREFIX_LEN) {
    Ok(cidr) => cidr,
    Err(_) => panic!("a /24 prefix is valid"),
};

/// What [`Tapped`] calls with each transmitted frame and the instant it leaves.
pub type FrameTap = Box<dyn FnMut(Instant, &[u8])>;

/// A host whose every transmitted frame is first shown to a callback (with the instant it
/// leaves), before faults apply: what the host really sent.
pub struct Tapped<H> {
    pub host: H,
    tap: FrameTap,
}

impl<H> Tapped<H> {
    pub fn new(host: H, tap: impl FnMut(Instant, &[u8]) + 'static) -> Self {
        Tapped {
            host,
            tap: Box::new(tap),
        }
    }
}

impl<H: core::fmt::Debug> core::fmt::Debug for Tapped<H> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Tapped")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl<H: Host> Host for Tapped<H> {
    fn mac(&self) -> [u8; 6] {
        self.host.mac()
    }
    fn receive(&mut self, now: Instant, frame: &[u8]) {
        self.host.receive(now, frame)
    }
    fn transmit(&mut self, now: Instant, out: &mut dyn FnMut(&[u8])) {
        let Tapped { host, tap } = self;
        host.transmit(now, &mut |frame| {
            tap(now, frame);
            out(frame);
        })
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.host.poll_timeout()
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.host.handle_timeout(now)
    }
}

/// A deterministic byte stream: byte `i` of stream `seed` depends on both, and every
/// 8-byte word is a different SplitMix64 output, so a shifted, duplicated or corrupted
/// range never matches by chance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pattern {
    seed: u64,
}

impl Pattern {
    pub const fn new(seed: u64) -> Self {
        Pattern { seed }
    }

    fn word(&self, index: u64) -> u64 {
        // The SplitMix64 output function over the word's index (a bijection of it).
        let mut z = self
            .seed
            .wrapping_add(index.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Fills `buf` with the stream's bytes from `offset` on.
    pub fn fill(&self, offset: u64, buf: &mut [u8]) {
        let mut at = offset;
        let mut rest = buf;
        while !rest.is_empty() {
            let bytes = self.word(at / 8).to_le_bytes();
            let skip = (at % 8) as usize;
            let n = (8 - skip).min(rest.len());
            let (head, tail) = rest.split_at_mut(n);
            head.copy_from_slice(&bytes[skip..skip + n]);
            rest = tail;
            at += n as u64;
        }
    }

    /// The index in `data` of the first byte that differs from the stream read from
    /// `offset`, if any.
    pub fn mismatch(&self, offset: u64, data: &[u8]) -> Option<usize> {
        let mut at = offset;
        let mut checked = 0;
        while checked < data.len() {
            let bytes = self.word(at / 8).to_le_bytes();
            let skip = (at % 8) as usize;
            let n = (8 - skip).min(data.len() - checked);
            if let Some(i) = (0..n).find(|&i| data[checked + i] != bytes[skip + i]) {
                return Some(checked + i);
            }
            checked += n;
            at += n as u64;
        }
        None
    }
}

/// How a [`BulkApp`] gets its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Listens on this port and serves the first connection (later ones are reset).
    Listen(u16),
    /// Opens a connection to this address.
    Connect(SocketAddrV4),
}

/// What a [`BulkApp`] saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BulkStats {
    /// Bytes the send buffer took.
    pub sent: u64,
    /// Bytes read that matched the expected stream, in order.
    pub received: u64,
    /// Offset of the first byte that did not match, if one did not (reading stops there).
    pub mismatch_at: Option<u64>,
    /// Bytes read beyond the expected length.
    pub excess: u64,
    pub established_at: Option<Instant>,
    /// When the last expected byte was read.
    pub received_all_at: Option<Instant>,
    /// When the peer's FIN was seen.
    pub peer_closed_at: Option<Instant>,
    /// Set at [`Event::Closed`].
    pub closed_at: Option<Instant>,
    pub error: Option<TcpError>,
    /// Connections beyond the first, reset at once.
    pub refused: u64,
    /// Calls into the stack that failed (a bug in the stack or the test, never expected).
    pub call_errors: u64,
}

impl BulkStats {
    /// Everything expected arrived intact and the peer closed its direction.
    pub fn complete(&self) -> bool {
        self.received_all_at.is_some()
            && self.mismatch_at.is_none()
            && self.excess == 0
            && self.peer_closed_at.is_some()
    }
}

/// Streams `send_len` bytes of one [`Pattern`] to the peer and closes, while reading and
/// checking `recv_len` bytes of another. Run one on each end, with the patterns crossed.
#[derive(Debug, Clone)]
pub struct BulkApp {
    role: Role,
    send: Pattern,
    send_len: u64,
    recv: Pattern,
    recv_len: u64,
    conn: Option<ConnId>,
    fin_queued: bool,
    stats: BulkStats,
    scratch: Vec<u8>,
}

/// Largest write per `send` call.
const CHUNK: usize = 16 * 1024;

impl BulkApp {
    /// Serves the first connection to `port`: sends `send_len` bytes of stream `send_seed`,
    /// expects `recv_len` bytes of stream `recv_seed`.
    pub fn listen(port: u16, send_seed: u64, send_len: u64, recv_seed: u64, recv_len: u64) -> Self {
        Self::new(Role::Listen(port), send_seed, send_len, recv_seed, recv_len)
    }

    /// Connects to `remote` and does the same.
    pub fn connect(
        remote: SocketAddrV4,
        send_seed: u64,
        send_len: u64,
        recv_seed: u64,
        recv_len: u64,
    ) -> Self {
        Self::new(
            Role::Connect(remote),
            send_seed,
            send_len,
            recv_seed,
            recv_len,
        )
    }

    fn new(role: Role, send_seed: u64, send_len: u64, recv_seed: u64, recv_len: u64) -> Self {
        BulkApp {
            role,
            send: Pattern::new(send_seed),
            send_len,
            recv: Pattern::new(recv_seed),
            recv_len,
            conn: None,
            fin_queued: false,
            stats: BulkStats::default(),
            scratch: Vec::new(),
        }
    }

    /// Listens or connects, per the role. Call once, through `Engine::with_ctx`.
    pub fn start(&mut self, cx: &mut Ctx<'_>) -> Result<(), StackError> {
        match self.role {
            Role::Listen(port) => cx.listen(port),
            Role::Connect(remote) => cx.connect(remote).map(|id| self.conn = Some(id)),
        }
    }

    pub fn stats(&self) -> BulkStats {
        self.stats
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// The connection, once opened (and until the app is dropped: ids are not cleared).
    pub fn conn(&self) -> Option<ConnId> {
        self.conn
    }

    fn pump_send(&mut self, cx: &mut Ctx<'_>, conn: ConnId) {
        while self.stats.sent < self.send_len {
            let room = cx.send_capacity(conn);
            let left = usize::try_from(self.send_len - self.stats.sent).unwrap_or(usize::MAX);
            let n = room.min(left).min(CHUNK);
            if n == 0 {
                return;
            }
            self.scratch.resize(n, 0);
            self.send.fill(self.stats.sent, &mut self.scratch);
            match cx.send(conn, &self.scratch) {
                Ok(taken) => {
                    self.stats.sent += taken as u64;
                    if taken < n {
                        return;
                    }
                }
                Err(_) => {
                    self.stats.call_errors += 1;
                    return;
                }
            }
        }
        if !self.fin_queued {
            self.fin_queued = true;
            if cx.close(conn).is_err() {
                self.stats.call_errors += 1;
            }
        }
    }

    fn read_all(&mut self, cx: &mut Ctx<'_>, conn: ConnId) {
        let now = cx.now();
        loop {
            let (recv, recv_len, stats) = (&self.recv, self.recv_len, &mut self.stats);
            let result = cx.recv_with(conn, |data| {
                if stats.mismatch_at.is_some() {
                    return data.len();
                }
                let expected_left = recv_len.saturating_sub(stats.received);
                let take = data
                    .len()
                    .min(usize::try_from(expected_left).unwrap_or(usize::MAX));
                match recv.mismatch(stats.received, &data[..take]) {
                    Some(i) => stats.mismatch_at = Some(stats.received + i as u64),
                    None => {
                        stats.received += take as u64;
                        stats.excess += (data.len() - take) as u64;
                    }
                }
                data.len()
            });
            match result {
                Ok(0) => break,
                Ok(_) => {}
                Err(StackError::Tcp(TcpError::Finished)) => {
                    self.stats.peer_closed_at.get_or_insert(now);
                    break;
                }
                Err(_) => break,
            }
        }
        if self.stats.received == self.recv_len && self.stats.received_all_at.is_none() {
            self.stats.received_all_at = Some(now);
        }
    }
}

impl App for BulkApp {
    fn on_event(&mut self, cx: &mut Ctx<'_>, conn: ConnId, event: Event) {
        match event {
            Event::Accepted { .. } | Event::Connected => {
                let ours = match (self.role, self.conn) {
                    (Role::Listen(_), None) => {
                        self.conn = Some(conn);
                        true
                    }
                    (_, Some(c)) => c == conn,
                    (Role::Connect(_), None) => false,
                };
                if !ours {
                    self.stats.refused += 1;
                    let _ = cx.abort(conn);
                    return;
                }
                self.stats.established_at = Some(cx.now());
                if self.recv_len == 0 {
                    self.stats.received_all_at = Some(cx.now());
                }
                self.pump_send(cx, conn);
            }
            _ if self.conn != Some(conn) => {}
            Event::Readable => self.read_all(cx, conn),
            Event::Writable => self.pump_send(cx, conn),
            Event::PeerClosed => {
                self.read_all(cx, conn);
                self.stats.peer_closed_at.get_or_insert(cx.now());
            }
            Event::Closed { error } => {
                self.stats.closed_at = Some(cx.now());
                self.stats.error = error;
            }
            Event::Adopted { .. } => self.pump_send(cx, conn),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_is_consistent_across_offsets() {
        let p = Pattern::new(5);
        let mut whole = vec![0u8; 100];
        p.fill(3, &mut whole);
        for split in 0..whole.len() {
            let mut a = vec![0u8; split];
            let mut b = vec![0u8; 100 - split];
            p.fill(3, &mut a);
            p.fill(3 + split as u64, &mut b);
            a.extend_from_slice(&b);
            assert_eq!(a, whole, "split {split}");
        }
        assert_eq!(p.mismatch(3, &whole), None);
        let mut bad = whole.clone();
        bad[41] ^= 0x10;
        assert_eq!(p.mismatch(3, &bad), Some(41));
        // Shifted by one, or another stream: mismatch at once.
        assert_eq!(p.mismatch(4, &whole[..16]), Some(0));
        assert!(Pattern::new(6).mismatch(3, &whole).is_some());
    }
}
