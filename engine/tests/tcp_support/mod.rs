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
    ConnectionSeed { iss: SeqNumber(iss), ts_offset: iss.wrapping_mul(7) }
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
}

impl Pair {
    /// A connects to B; B is created from A's SYN by `Connection::accept`.
    pub fn new(config_a: &TcpConfig, config_b: &TcpConfig, delay: Duration) -> Pair {
        let now = Instant::ZERO;
        let mut a = Connection::connect(now, a_tuple(), seed(1_000), config_a);
        let syn = a.poll_transmit(now).expect("SYN");
        let bytes = to_bytes(&syn);
        let repr = parse(&bytes, *A_ADDR.ip(), *B_ADDR.ip());
        let b = Connection::accept(now, a_tuple().reversed(), seed(u32::MAX - 5_000), &repr, config_b).expect("accept");
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
        }
    }

    fn flush(&mut self) {
        for to_b in [true, false] {
            loop {
                let conn = if to_b { &mut self.a } else { &mut self.b };
                let Some(t) = conn.poll_transmit(self.now) else { break };
                let bytes = to_bytes(&t);
                let (src, dst) = (t.src_ip(), t.dst_ip());
                let repr = parse(&bytes, src, dst);
                let dir = usize::from(!to_b);
                let n = self.sent[dir];
                self.sent[dir] += 1;
                let drop = (self.drop_rule)(to_b, n, &repr);
                if self.log {
                    eprintln!("{:>10}us {} {} {}", self.now.as_micros(), if to_b { "A>B" } else { "B>A" }, if drop { "DROP" } else { "    " }, repr);
                }
                if drop {
                    self.dropped[dir] += 1;
                    continue;
                }
                self.wire.push_back(Flight { at: self.now + self.delay, to_b, bytes });
            }
        }
    }

    /// Delivers everything due, runs timers, flushes output; then moves the clock to the
    /// next event. Returns false when nothing is left to happen.
    pub fn step(&mut self) -> bool {
        self.flush();
        let next_wire = self.wire.iter().map(|f| f.at).min();
        let next_timer = [self.a.poll_timeout(), self.b.poll_timeout()].into_iter().flatten().min();
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
                eprintln!("{:>10}us {} {:?} {}", self.now.as_micros(), if f.to_b { "at B" } else { "at A" }, d, repr);
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
