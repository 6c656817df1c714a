//! `migratory-gen syn-flood`: stateless SYNs at a set rate from random source ports (and,
//! optionally, random source addresses of the subnet) to one port of the server, counting
//! the SYN-ACKs (SYN cookies once the server's backlog is full) and RSTs that come back.
//! No TCP stack: every frame is built and read with `engine::wire` directly.
//!
//! Each SYN's sequence number is the send time (nanoseconds since the start, modulo
//! 2^32), so the SYN-ACK's acknowledgment number gives the server's answer time without
//! any state. The generator answers ARP requests for the addresses it sends from.
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dpdk_sys::{Mbuf, MAX_BURST};
use engine::wire::arp::{ArpOperation, ArpPacket, ArpRepr};
use engine::wire::ethernet::HEADER_LEN as ETH_LEN;
use engine::wire::ipv4::{IpProtocol, Ipv4Cidr, Ipv4Packet, Ipv4Repr, HEADER_LEN as IP_LEN};
use engine::wire::tcp::{Control, SeqNumber, TcpPacket, TcpRepr};
use engine::wire::{ChecksumCaps, EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr};
use serde::Serialize;

use crate::cli;
use crate::dpdk::OpenPort;
use crate::latency::{Latency, Percentiles};
use crate::pacing::Pacer;

/// Every frame we build is padded to the Ethernet minimum (without FCS).
const MIN_FRAME: usize = 60;
/// The MSS our SYNs offer.
const SYN_MSS: u16 = 1460;
/// After sending: how long answers still in flight are collected.
const DRAIN: Duration = Duration::from_millis(200);
/// How often an unanswered ARP request for the server is repeated.
const ARP_EVERY: Duration = Duration::from_millis(100);

/// What a flood needs.
#[derive(Debug, Clone)]
pub struct FloodConfig {
    pub ip: Ipv4Cidr,
    pub server: SocketAddrV4,
    /// SYNs per second; `None` as fast as the port takes them.
    pub rate: Option<f64>,
    pub duration: f64,
    /// Source addresses drawn from the whole subnet (not the server's).
    pub random_src_ip: bool,
    pub burst: usize,
    pub connect_timeout: Duration,
    pub progress: bool,
    pub seed: u64,
}

/// The result of a flood, in the shape of the other reports.
#[derive(Debug, Serialize, Default)]
pub struct FloodReport {
    pub workload: &'static str,
    pub server: String,
    pub device: String,
    pub driver: String,
    pub duration_s: f64,
    pub offered_rate: Option<f64>,
    pub random_src_ip: bool,
    pub syns_sent: u64,
    /// Transmit attempts the device refused (ring full); those SYNs were not sent.
    pub tx_refused: u64,
    pub synacks: u64,
    pub rsts: u64,
    /// SYNs sent per second.
    pub tx_pps: f64,
    /// SYN-ACKs back per second: the rate at which the server answers a flood.
    pub pps: f64,
    /// SYN-ACKs per SYN sent.
    pub answered: f64,
    /// ARP requests for our addresses that we answered.
    pub arp_replies: u64,
    /// SYN-to-SYN-ACK time.
    #[serde(flatten)]
    pub latency: Percentiles,
}

/// xorshift64*: the flood's source ports and addresses (not a secret).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Where the SYNs come from and go to.
#[derive(Debug, Clone, Copy)]
pub struct Flow {
    pub src_mac: EthernetAddress,
    pub dst_mac: EthernetAddress,
    pub ip: Ipv4Cidr,
    pub server: SocketAddrV4,
    pub random_src_ip: bool,
}

impl Flow {
    /// The host addresses of the subnet (network and broadcast excluded), as `(first,
    /// count)`; an error for a subnet with no room for another address.
    pub fn host_range(&self) -> Result<(u32, u32), String> {
        let prefix = self.ip.prefix_len();
        if prefix >= 31 {
            return Err(format!(
                "--random-src-ip needs a subnet with hosts to spare, not /{prefix}"
            ));
        }
        let first = u32::from(self.ip.network()) + 1;
        let count = (1u32 << (32 - prefix)) - 2;
        Ok((first, count))
    }

    /// A source address: ours, or a random host of the subnet other than the server.
    #[inline]
    pub fn src_ip(&self, rng: &mut Rng, range: (u32, u32)) -> Ipv4Addr {
        if !self.random_src_ip {
            return self.ip.address();
        }
        loop {
            let ip = Ipv4Addr::from(range.0 + (rng.next_u64() % u64::from(range.1)) as u32);
            if ip != *self.server.ip() {
                return ip;
            }
        }
    }

    /// Whether an ARP request for `ip` is ours to answer.
    pub fn answers_for(&self, ip: Ipv4Addr) -> bool {
        if self.random_src_ip {
            self.ip.contains_addr(&ip) && ip != *self.server.ip()
        } else {
            ip == self.ip.address()
        }
    }
}

/// Writes a SYN from `src` to the server into `buf` (at least [`MIN_FRAME`] bytes);
/// returns the frame length.
pub fn emit_syn(flow: &Flow, src: SocketAddrV4, seq: u32, buf: &mut [u8]) -> Option<usize> {
    let caps = ChecksumCaps::default();
    let tcp = TcpRepr {
        src_port: src.port(),
        dst_port: flow.server.port(),
        control: Control::Syn,
        seq_number: SeqNumber(seq),
        window_len: 0xffff,
        max_seg_size: Some(SYN_MSS),
        ..TcpRepr::default()
    };
    let tcp_len = tcp.buffer_len();
    let len = ETH_LEN + IP_LEN + tcp_len;
    let frame = buf.get_mut(..len.max(MIN_FRAME))?;
    frame[len..].fill(0);
    let eth = EthernetRepr {
        src_addr: flow.src_mac,
        dst_addr: flow.dst_mac,
        ethertype: EthernetProtocol::Ipv4,
    };
    eth.emit(&mut EthernetFrame::new_unchecked(&mut *frame));
    let ip = Ipv4Repr {
        src_addr: *src.ip(),
        dst_addr: *flow.server.ip(),
        next_header: IpProtocol::Tcp,
        payload_len: tcp_len,
        hop_limit: 64,
    };
    ip.emit(&mut Ipv4Packet::new_unchecked(&mut frame[ETH_LEN..]), &caps);
    let mut packet = TcpPacket::new_unchecked(&mut frame[ETH_LEN + IP_LEN..len]);
    tcp.emit(&mut packet, *src.ip(), *flow.server.ip(), &caps)
        .ok()?;
    Some(len.max(MIN_FRAME))
}

/// Writes an ARP packet from `sender` to `target` into `buf`; returns the frame length.
pub fn emit_arp(
    op: ArpOperation,
    sender: (EthernetAddress, Ipv4Addr),
    target: (EthernetAddress, Ipv4Addr),
    eth_dst: EthernetAddress,
    buf: &mut [u8],
) -> Option<usize> {
    let frame = buf.get_mut(..MIN_FRAME)?;
    frame.fill(0);
    let eth = EthernetRepr {
        src_addr: sender.0,
        dst_addr: eth_dst,
        ethertype: EthernetProtocol::Arp,
    };
    eth.emit(&mut EthernetFrame::new_unchecked(&mut *frame));
    let arp = ArpRepr {
        operation: op,
        source_hardware_addr: sender.0,
        source_protocol_addr: sender.1,
        target_hardware_addr: target.0,
        target_protocol_addr: target.1,
    };
    arp.emit(&mut ArpPacket::new_unchecked(&mut frame[ETH_LEN..]));
    Some(MIN_FRAME)
}

/// What a received frame is, to the flood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming {
    /// A SYN-ACK from the server's port; `ack` acknowledges our SYN's sequence + 1.
    SynAck {
        ack: u32,
    },
    /// A RST from the server's port.
    Rst,
    /// An ARP request: who has `target`? (asked by `sender`).
    ArpRequest {
        sender: (EthernetAddress, Ipv4Addr),
        target: Ipv4Addr,
    },
    /// An ARP reply: `ip` is at `mac`.
    ArpReply {
        ip: Ipv4Addr,
        mac: EthernetAddress,
    },
    Other,
}

/// Classifies a received frame. Checksums are not verified: on the link this runs on,
/// a wrong one would be the server's bug, and counting answers is all that is asked.
pub fn classify(frame: &[u8], server: SocketAddrV4) -> Incoming {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return Incoming::Other;
    };
    match eth.ethertype() {
        EthernetProtocol::Ipv4 => {
            let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
                return Incoming::Other;
            };
            if ip.next_header() != IpProtocol::Tcp || ip.src_addr() != *server.ip() {
                return Incoming::Other;
            }
            let Ok(tcp) = TcpPacket::new_checked(ip.payload()) else {
                return Incoming::Other;
            };
            if tcp.src_port() != server.port() {
                return Incoming::Other;
            }
            if tcp.rst() {
                Incoming::Rst
            } else if tcp.syn() && tcp.ack() {
                Incoming::SynAck {
                    ack: tcp.ack_number().0,
                }
            } else {
                Incoming::Other
            }
        }
        EthernetProtocol::Arp => {
            let Ok(packet) = ArpPacket::new_checked(eth.payload()) else {
                return Incoming::Other;
            };
            let Ok(arp) = ArpRepr::parse(&packet) else {
                return Incoming::Other;
            };
            match arp.operation {
                ArpOperation::Request => Incoming::ArpRequest {
                    sender: (arp.source_hardware_addr, arp.source_protocol_addr),
                    target: arp.target_protocol_addr,
                },
                ArpOperation::Reply => Incoming::ArpReply {
                    ip: arp.source_protocol_addr,
                    mac: arp.source_hardware_addr,
                },
                _ => Incoming::Other,
            }
        }
        _ => Incoming::Other,
    }
}

/// The receive side's counters.
#[derive(Debug, Default)]
struct Rx {
    synacks: u64,
    rsts: u64,
    arp_replies: u64,
    latency: Latency,
}

/// Sends one frame built by `build` into a fresh mbuf. False if no mbuf or refused.
fn send_one(open: &OpenPort, build: impl FnOnce(&mut [u8]) -> Option<usize>) -> bool {
    let Some(mut m) = open.pool.alloc() else {
        return false;
    };
    if !m.set_len(MIN_FRAME) {
        return false;
    }
    match build(m.data_mut()) {
        Some(len) if m.set_len(len) => {}
        _ => return false,
    }
    let mut v = vec![m];
    open.port.tx_burst(0, &mut v) == 1
}

/// Receives one burst and handles it: answers, ARP, counts.
fn receive(
    open: &OpenPort,
    flow: &Flow,
    start: Instant,
    bufs: &mut Vec<Mbuf>,
    rx: &mut Rx,
    server_mac: &mut Option<EthernetAddress>,
) {
    if open.port.rx_burst(0, bufs, MAX_BURST) == 0 {
        return;
    }
    let now = start.elapsed().as_nanos() as u32;
    for m in bufs.drain(..) {
        match classify(m.data(), flow.server) {
            Incoming::SynAck { ack } => {
                rx.synacks += 1;
                let sent = ack.wrapping_sub(1);
                let ns = now.wrapping_sub(sent);
                if ns < 1 << 31 {
                    rx.latency.record_ns(u64::from(ns));
                }
            }
            Incoming::Rst => rx.rsts += 1,
            Incoming::ArpRequest { sender, target } if flow.answers_for(target) => {
                let ok = send_one(open, |buf| {
                    emit_arp(
                        ArpOperation::Reply,
                        (flow.src_mac, target),
                        sender,
                        sender.0,
                        buf,
                    )
                });
                if ok {
                    rx.arp_replies += 1;
                }
            }
            Incoming::ArpReply { ip, mac } if ip == *flow.server.ip() => *server_mac = Some(mac),
            _ => {}
        }
    }
}

/// Floods the server from `open` until the duration ends or `stop` is set.
pub fn run(open: &OpenPort, cfg: &FloodConfig, stop: &AtomicBool) -> Result<FloodReport, String> {
    if !cfg.ip.contains_addr(cfg.server.ip()) {
        return Err(format!(
            "the server {} is not on the generator's network {}",
            cfg.server.ip(),
            cfg.ip
        ));
    }
    let mut flow = Flow {
        src_mac: EthernetAddress(open.mac),
        dst_mac: EthernetAddress::BROADCAST,
        ip: cfg.ip,
        server: cfg.server,
        random_src_ip: cfg.random_src_ip,
    };
    let range = if cfg.random_src_ip {
        flow.host_range()?
    } else {
        (0, 1)
    };
    let start = Instant::now();
    let mut rx = Rx::default();
    let mut rx_bufs: Vec<Mbuf> = Vec::with_capacity(MAX_BURST);

    // The server's MAC address first.
    let mut server_mac = None;
    let deadline = start + cfg.connect_timeout;
    let mut next_arp = start;
    while server_mac.is_none() {
        let now = Instant::now();
        if now >= deadline || stop.load(Ordering::Relaxed) {
            return Err(format!(
                "no ARP reply from {} within {:.0} s: is the server running with that address?",
                cfg.server.ip(),
                cfg.connect_timeout.as_secs_f64()
            ));
        }
        if now >= next_arp {
            let me = (flow.src_mac, cfg.ip.address());
            let target = (EthernetAddress([0; 6]), *cfg.server.ip());
            send_one(open, |buf| {
                emit_arp(
                    ArpOperation::Request,
                    me,
                    target,
                    EthernetAddress::BROADCAST,
                    buf,
                )
            });
            next_arp = now + ARP_EVERY;
        }
        receive(open, &flow, start, &mut rx_bufs, &mut rx, &mut server_mac);
    }
    flow.dst_mac = server_mac.unwrap_or(EthernetAddress::BROADCAST);
    rx = Rx::default();

    let mut rng = Rng::new(cfg.seed);
    let mut pacer = Pacer::new(cfg.rate, cfg.burst as u32);
    let mut tx_bufs: Vec<Mbuf> = Vec::with_capacity(MAX_BURST);
    let (mut sent, mut refused) = (0u64, 0u64);
    let progress = cfg.progress;
    let t0 = Instant::now();
    let (mut tick, mut last_back) = (t0, 0u64);
    let mut elapsed = 0.0;
    while elapsed < cfg.duration && !stop.load(Ordering::Relaxed) {
        let want = (pacer.allowance(elapsed) as usize).min(cfg.burst);
        if want > 0 {
            let stamp = start.elapsed().as_nanos() as u32;
            while tx_bufs.len() < want {
                let Some(mut m) = open.pool.alloc() else {
                    break;
                };
                if !m.set_len(MIN_FRAME) {
                    break;
                }
                let src_port = 1024 + (rng.next_u64() % (65536 - 1024)) as u16;
                let src = SocketAddrV4::new(flow.src_ip(&mut rng, range), src_port);
                match emit_syn(&flow, src, stamp, m.data_mut()) {
                    Some(len) if m.set_len(len) => tx_bufs.push(m),
                    _ => break,
                }
            }
            let n = open.port.tx_burst(0, &mut tx_bufs);
            sent += n as u64;
            pacer.sent(n as u32);
            refused += tx_bufs.len() as u64;
            tx_bufs.clear(); // refused SYNs are dropped: new ones are drawn next time
        }
        receive(open, &flow, start, &mut rx_bufs, &mut rx, &mut server_mac);
        let now = Instant::now();
        elapsed = now.duration_since(t0).as_secs_f64();
        if progress && now.duration_since(tick) >= Duration::from_secs(1) {
            let dt = now.duration_since(tick).as_secs_f64();
            print!(
                "\rmigratory-gen: {elapsed:>5.1} s  {}SYN/s sent  {}SYN-ACK/s back      ",
                cli::si(sent as f64 / elapsed.max(1e-9)),
                cli::si((rx.synacks - last_back) as f64 / dt)
            );
            let _ = std::io::stdout().flush();
            tick = now;
            last_back = rx.synacks;
        }
    }
    let secs = t0.elapsed().as_secs_f64().max(1e-9);
    let drain_end = Instant::now() + DRAIN;
    while Instant::now() < drain_end {
        receive(open, &flow, start, &mut rx_bufs, &mut rx, &mut server_mac);
    }
    if progress {
        println!();
    }
    Ok(FloodReport {
        workload: "syn-flood",
        server: cfg.server.to_string(),
        device: open.name.clone(),
        driver: open.driver.clone(),
        duration_s: secs,
        offered_rate: cfg.rate,
        random_src_ip: cfg.random_src_ip,
        syns_sent: sent,
        tx_refused: refused,
        synacks: rx.synacks,
        rsts: rx.rsts,
        tx_pps: sent as f64 / secs,
        pps: rx.synacks as f64 / secs,
        answered: if sent > 0 {
            rx.synacks as f64 / sent as f64
        } else {
            0.0
        },
        arp_replies: rx.arp_replies,
        latency: rx.latency.percentiles(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::iface::{IfaceConfig, Interface};
    use engine::stack::{Received, Stack, StackConfig, StackKeys};
    use engine::time::Instant as EInstant;

    fn flow(random: bool) -> Flow {
        Flow {
            src_mac: EthernetAddress([2, 0, 0, 0, 0, 1]),
            dst_mac: EthernetAddress([2, 0, 0, 0, 0, 2]),
            ip: "10.9.0.1/24".parse().unwrap(),
            server: "10.9.0.2:7".parse().unwrap(),
            random_src_ip: random,
        }
    }

    #[test]
    fn the_engine_answers_our_syn_with_a_syn_ack_we_recognise() {
        let f = flow(false);
        let mut server = Stack::new(
            Interface::new(IfaceConfig::new(f.dst_mac, "10.9.0.2/24".parse().unwrap())),
            StackConfig::default(),
            StackKeys::from_seed(1),
        );
        server.listen(7).unwrap();
        let mut buf = [0u8; 128];
        let len = emit_syn(&f, "10.9.0.1:4000".parse().unwrap(), 0x1234_5678, &mut buf).unwrap();
        assert_eq!(len, MIN_FRAME);
        assert!(matches!(
            server.receive(EInstant::ZERO, &mut buf[..len]),
            Received::Done
        ));
        let mut out: Vec<engine::port::VecFrame> = Vec::new();
        server.transmit(
            EInstant::ZERO,
            &mut |n| Some(engine::port::VecFrame::new(n)),
            &mut out,
        );
        assert_eq!(out.len(), 1);
        use engine::port::Frame;
        assert_eq!(
            classify(out[0].data(), f.server),
            Incoming::SynAck { ack: 0x1234_5679 }
        );
    }

    #[test]
    fn arp_round_trip_and_random_sources() {
        let f = flow(true);
        let mut buf = [0u8; 64];
        let me = (f.src_mac, Ipv4Addr::new(10, 9, 0, 77));
        let n = emit_arp(
            ArpOperation::Request,
            me,
            (EthernetAddress([0; 6]), Ipv4Addr::new(10, 9, 0, 2)),
            EthernetAddress::BROADCAST,
            &mut buf,
        )
        .unwrap();
        assert_eq!(
            classify(&buf[..n], f.server),
            Incoming::ArpRequest {
                sender: me,
                target: Ipv4Addr::new(10, 9, 0, 2)
            }
        );
        let range = f.host_range().unwrap();
        assert_eq!(range, (u32::from(Ipv4Addr::new(10, 9, 0, 1)), 254));
        let mut rng = Rng::new(5);
        for _ in 0..1000 {
            let ip = f.src_ip(&mut rng, range);
            assert!(f.ip.contains_addr(&ip) && ip != *f.server.ip());
            assert!(ip != f.ip.network() && Some(ip) != f.ip.broadcast());
            assert!(f.answers_for(ip));
        }
        assert!(!f.answers_for(Ipv4Addr::new(10, 9, 0, 2)));
        assert!(!flow(false).answers_for(Ipv4Addr::new(10, 9, 0, 5)));
        assert!(flow(false).answers_for(Ipv4Addr::new(10, 9, 0, 1)));
        let mut small = f;
        small.ip = "10.9.0.1/31".parse().unwrap();
        assert!(small.host_range().is_err());
    }
}
