//! Test support for the TCP tests: a two-endpoint loop that moves segment bytes between
//! connections through `emit` and `parse`, with a virtual clock, a fixed one-way delay and
//! a drop rule. Not a general simulator (that is `engine::sim`).
#![allow(dead_code)]
use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddrV4};

use engine::flow::FourTuple;
use engine::tcp::{Connection, ConnectionSeed, SeqNumber, TcpConfig, Transmit};
use engine::time::{Duration, Instant};
use engine::wire::tcp::{TcpPacket, TcpRepr};
use engine::wire::ChecksumCaps;

pub const A_ADDR: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 40000);
pub const B_ADDR: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80);

pub fn a_tuple() -> FourTuple {
    FourTuple::new(A_ADDR, B_ADDR)
}

pub fn seed(iss: u32) -> ConnectionSeed {
    ConnectionSeed {
        iss: SeqNumber(iss),
        ts_offset: iss.wrapping_mul(7),
    }
}

/// Serialises a transmit to bytes, checking that emit and parse agree.
pub fn to_bytes(t: &Transmit<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; t.buffer_len()];
    let n = t.emit(&mut buf, &ChecksumCaps::default()).expect("emit");
    assert_eq!(n, buf.len());
    buf
}

pub fn parse(bytes: &[u8], src: Ipv4Addr, dst: Ipv4Addr) -> TcpRepr<'_> {
    let packet = TcpPacket::new_checked(bytes).expect("view");
    TcpRepr::parse(&packet, src, dst, &ChecksumCaps::default()).expect("parse")
}

/// A segment in flight.
#[derive(Debug, Clone)]
pub struct Flight {
    pub at: Instant,
    pub to_b: bool,
    pub bytes: Vec<u8>,
}

/// Decides whether the n-th segment (counted per direction) is dropped.
pub type DropRule = Box<dyn FnMut(bool, u64, &TcpRepr<'_>) -> bool>;

pub struct Pair {
    pub a: Connection,
    pub b: Connection,
    pub now: Instant,
    pub delay: Duration,
    pub wire: VecDeque<Flight>,
    pub drop_rule: DropRule,
    pub sent: [u64; 2],
    pub dropped: [u64; 2],
    pub log: bool,
    /// Extra one-way delay per segment (reordering when it varies).
    pub jitter: Box<dyn FnMut() -> Duration>,
    /// Whether to deliver a segment twice.
    pub duplicate: Box<dyn FnMut() -> bool>,
    /// Every segment sent, dropped or not, in order: (to B, bytes).
    pub history: Vec<(bool, Vec<u8>)>,
}

impl Pair {
    /// A connects to B; B is created from A's SYN by `Connection::accept`.
    pub fn new(config_a: &TcpConfig, config_b: &TcpConfig, delay: Duration) -> Pair {
        let now = Instant::ZERO;
        let mut a = Connection::connect(now, a_tuple(), seed(1_000), config_a);
        let syn = a.poll_transmit(now).expect("SYN");
        let bytes = to_bytes(&syn);
        let repr = parse(&bytes, *A_ADDR.ip(), *B_ADDR.ip());
        let b = Connection::accept(
            now,
            a_tuple().reversed(),
            seed(u32::MAX - 5_000),
            &repr,
            config_b,
        )
        .expect("accept");
        Pair {
            a,
            b,
            now,
            delay,
            wire: VecDeque::new(),
            drop_rule: Box::new(|_, _, _| false),
            sent: [0; 2],
            dropped: [0; 2],
            log: std::env::var_os("TCP_LOG").is_some(),
            jitter: Box::new(|| Duration::ZERO),
            duplicate: Box::new(|| false),
            history: Vec::new(),
        }
    }

    fn flush(&mut self) {
        for to_b in [true, false] {
            loop {
                let conn = if to_b { &mut self.a } else { &mut self.b };
                let Some(t) = conn.poll_transmit(self.now) else {
                    break;
                };
                let bytes = to_bytes(&t);
                let (src, dst) = (t.src_ip(), t.dst_ip());
                let repr = parse(&bytes, src, dst);
                let dir = usize::from(!to_b);
                let n = self.sent[dir];
                self.sent[dir] += 1;
                let drop = (self.drop_rule)(to_b, n, &repr);
                self.history.push((to_b, bytes.clone()));
                if self.log {
                    eprintln!(
                        "{:>10}us {} {} {}",
                        self.now.as_micros(),
                        if to_b { "A>B" } else { "B>A" },
                        if drop { "DROP" } else { "    " },
                        repr
                    );
                }
                if drop {
                    self.dropped[dir] += 1;
                    continue;
                }
                self.wire.push_back(Flight {
                    at: self.now + self.delay,
                    to_b,
                    bytes,
                });
            }
        }
    }

    /// Delivers everything due, runs timers, flushes output; then moves the clock to the
    /// next event. Returns false when nothing is left to happen.
    pub fn step(&mut self) -> bool {
        self.flush();
        let next_wire = self.wire.iter().map(|f| f.at).min();
        let next_timer = [self.a.poll_timeout(), self.b.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        let Some(next) = [next_wire, next_timer].into_iter().flatten().min() else {
            return false;
        };
        self.now = self.now.max(next);
        // Deliver in order of arrival time (FIFO per equal time).
        while let Some(i) = self.wire.iter().position(|f| f.at <= self.now) {
            let f = self.wire.remove(i).expect("index");
            let (conn, src, dst) = if f.to_b {
                (&mut self.b, *A_ADDR.ip(), *B_ADDR.ip())
            } else {
                (&mut self.a, *B_ADDR.ip(), *A_ADDR.ip())
            };
            let repr = parse(&f.bytes, src, dst);
            let d = conn.handle_segment(self.now, &repr);
            if self.log && d != engine::tcp::Disposition::Accepted {
                eprintln!(
                    "{:>10}us {} {:?} {}",
                    self.now.as_micros(),
                    if f.to_b { "at B" } else { "at A" },
                    d,
                    repr
                );
            }
        }
        self.a.handle_timeout(self.now);
        self.b.handle_timeout(self.now);
        self.flush();
        true
    }

    /// Steps until `done` holds or `limit` of virtual time passes.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Pair) -> bool) -> bool {
        let end = self.now + limit;
        while self.now < end {
            if done(self) {
                return true;
            }
            if !self.step() {
                return done(self);
            }
        }
        done(self)
    }
}

/// A deterministic pseudo-random byte pattern.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A small seeded generator for drop rules.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() % 1_000_000) as f64 / 1_000_000.0 < p
    }
}

/// A segment as the test sees it (owned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seg {
    pub control: engine::wire::tcp::Control,
    pub seq: SeqNumber,
    pub ack: Option<SeqNumber>,
    pub window: u16,
    pub payload: Vec<u8>,
    pub sack: Vec<(SeqNumber, SeqNumber)>,
    pub timestamp: Option<(u32, u32)>,
    pub mss: Option<u16>,
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
}

impl Seg {
    pub fn is_pure_ack(&self) -> bool {
        self.control == engine::wire::tcp::Control::None
            && self.payload.is_empty()
            && self.ack.is_some()
    }
}

/// Everything `conn` wants to send now, emitted, parsed back and owned.
pub fn drain(conn: &mut Connection, now: Instant) -> Vec<Seg> {
    let mut out = vec![];
    for _ in 0..10_000 {
        let Some(t) = conn.poll_transmit(now) else {
            break;
        };
        let bytes = to_bytes(&t);
        let r = parse(&bytes, t.src_ip(), t.dst_ip());
        out.push(Seg {
            control: r.control,
            seq: r.seq_number,
            ack: r.ack_number,
            window: r.window_len,
            payload: r.payload.to_vec(),
            sack: r.sack_ranges.iter().flatten().copied().collect(),
            timestamp: r.timestamp,
            mss: r.max_seg_size,
            window_scale: r.window_scale,
            sack_permitted: r.sack_permitted,
        });
    }
    out
}

/// The remote end, played by hand: it tracks its own sequence numbers and builds
/// segments addressed to the connection under test (which is A, at `a_tuple()`).
#[derive(Debug, Clone)]
pub struct Peer {
    /// The peer's next sequence number.
    pub seq: SeqNumber,
    /// What the peer acknowledges.
    pub ack: SeqNumber,
    pub window: u16,
    /// The peer's TSval clock, if timestamps are in use.
    pub tsval: Option<u32>,
    /// The last TSval seen from the connection (to echo).
    pub tsecr: u32,
}

impl Peer {
    pub fn seg(
        &self,
        control: engine::wire::tcp::Control,
        payload: &'static [u8],
    ) -> TcpRepr<'static> {
        TcpRepr {
            src_port: B_ADDR.port(),
            dst_port: A_ADDR.port(),
            control,
            seq_number: self.seq,
            ack_number: Some(self.ack),
            window_len: self.window,
            timestamp: self.tsval.map(|v| (v, self.tsecr)),
            payload,
            ..TcpRepr::default()
        }
    }

    /// A segment with explicit sequence and acknowledgment numbers.
    pub fn seg_at(
        &self,
        control: engine::wire::tcp::Control,
        seq: SeqNumber,
        ack: Option<SeqNumber>,
        payload: &'static [u8],
    ) -> TcpRepr<'static> {
        TcpRepr {
            seq_number: seq,
            ack_number: ack,
            ..self.seg(control, payload)
        }
    }

    /// Sends `seg` to `conn` and advances the peer's sequence number over it.
    pub fn send(
        &mut self,
        conn: &mut Connection,
        now: Instant,
        seg: &TcpRepr<'_>,
    ) -> engine::tcp::Disposition {
        let d = conn.handle_segment(now, seg);
        if seg.seq_number == self.seq {
            self.seq += seg.segment_len();
        }
        if let Some(v) = self.tsval.as_mut() {
            *v = v.wrapping_add(1);
        }
        d
    }

    /// Takes in what the connection sent: acknowledges it (cumulatively, in order).
    pub fn absorb(&mut self, segs: &[Seg]) {
        for s in segs {
            let len = s.payload.len() as u32
                + u32::from(matches!(
                    s.control,
                    engine::wire::tcp::Control::Syn | engine::wire::tcp::Control::Fin
                ));
            if s.seq == self.ack {
                self.ack += len;
            }
            if let Some((v, _)) = s.timestamp {
                self.tsecr = v;
            }
        }
    }
}

/// Configuration for hand-driven state tests: no delayed ACK (every ACK is immediate), so
/// each input shows its reply at once. Timestamps and SACK as given.
pub fn hand_config(timestamps: bool) -> TcpConfig {
    TcpConfig {
        timestamps,
        delayed_ack: None,
        nagle: false,
        recv_buffer: 64 * 1024,
        send_buffer: 64 * 1024,
        ..TcpConfig::default()
    }
}

pub const PEER_ISS: u32 = 50_000;

/// An active open completed by hand: A in ESTABLISHED, the peer's state in `Peer`.
pub fn established(config: &TcpConfig, now: Instant) -> (Connection, Peer) {
    let mut conn = Connection::connect(now, a_tuple(), seed(1_000), config);
    let syn = drain(&mut conn, now);
    assert_eq!(syn.len(), 1);
    let mut peer = Peer {
        seq: SeqNumber(PEER_ISS),
        ack: syn[0].seq + 1,
        window: 0xffff,
        tsval: config.timestamps.then_some(100),
        tsecr: syn[0].timestamp.map_or(0, |t| t.0),
    };
    let syn_ack = TcpRepr {
        control: engine::wire::tcp::Control::Syn,
        max_seg_size: Some(1460),
        window_scale: None,
        sack_permitted: config.sack,
        ..peer.seg(engine::wire::tcp::Control::Syn, b"")
    };
    peer.send(&mut conn, now, &syn_ack);
    let ack = drain(&mut conn, now);
    assert_eq!(conn.state(), engine::tcp::State::Established);
    peer.absorb(&ack);
    conn.take_events();
    (conn, peer)
}
