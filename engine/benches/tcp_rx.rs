//! The receive path's cost per segment, with baselines measured in the same run.
//!
//! `cargo bench -p migratory-engine --bench tcp_rx`
//!
//! - `data/*`: in-order 1448-byte data segments to an established connection, in bursts
//!   of 32 (the poll loop's burst): `Stack::receive` of each frame (Ethernet, IPv4, TCP
//!   parse, table lookup, the connection's input, the copy into the receive ring), then
//!   one `dispatch` (the application reads everything through `recv_with`) and one
//!   `transmit` (the ACKs, one per two segments, into pooled frames).
//! - `ack/receive`: pure ACKs to a connection with data in flight, each acknowledging one
//!   more segment (RTT sample, congestion window, send ring release), `Stack::receive`
//!   only; the new data they let out is sent between measurements.
//! - baselines: `parse` (our wire parsers on the same frame: Ethernet, IPv4, TCP with its
//!   options) and `memcpy` of the 1448-byte payload.
//!
//! Each in two checksum settings: `sw` verifies IPv4 and TCP checksums in software (every
//! payload byte is summed), `offload` trusts the NIC's receive verification (DPDK's
//! `RTE_MBUF_F_RX_*_CKSUM_GOOD`), as a deployment with offloads does. Frames are prepared
//! outside the timed sections; times are per segment.
use std::hint::black_box;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use engine::port::Frame;
use engine::stack::{App, ConnId, Ctx, Event, Stack, StackConfig};
use engine::tcp::SeqNumber;
use engine::time::{Duration, Instant};
use engine::wire::checksum::Offload;
use engine::wire::ethernet::EthernetFrame;
use engine::wire::ipv4::{Ipv4Packet, Ipv4Repr};
use engine::wire::tcp::{Control, TcpPacket, TcpRepr};
use engine::wire::{ChecksumCaps, EthernetRepr};

#[path = "../tests/stack_support/mod.rs"]
mod stack_support;
use stack_support::{seg, segment_frame, Pair, Seg};

const PAYLOAD: usize = 1448;
const BURST: usize = 32;

/// A frame from a fixed pool, as an mbuf would be: no allocation per frame.
struct PoolFrame {
    buf: Box<[u8; 2048]>,
    len: usize,
}

impl Frame for PoolFrame {
    fn data(&self) -> &[u8] {
        &self.buf[..self.len]
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }
    fn set_len(&mut self, len: usize) -> bool {
        if len > self.buf.len() {
            return false;
        }
        self.len = len;
        true
    }
    fn capacity(&self) -> usize {
        self.buf.len()
    }
}

// Boxed: a buffer moves between the pool and a frame without copying its 2 KiB.
#[allow(clippy::vec_box)]
struct Pool(Vec<Box<[u8; 2048]>>);

impl Pool {
    fn new() -> Pool {
        Pool((0..512).map(|_| Box::new([0u8; 2048])).collect())
    }
    fn transmit(&mut self, stack: &mut Stack, now: Instant, out: &mut Vec<PoolFrame>) {
        let free = &mut self.0;
        stack.transmit(
            now,
            &mut |len| {
                free.pop().map(|buf| PoolFrame {
                    buf,
                    len: len.min(2048),
                })
            },
            out,
        );
    }
    fn free(&mut self, out: &mut Vec<PoolFrame>) {
        self.0.extend(out.drain(..).map(|f| f.buf));
    }
}

/// Reads everything, without copying (the bytes are only looked at).
#[derive(Default)]
struct Sink {
    bytes: u64,
}

impl App for Sink {
    fn on_event(&mut self, cx: &mut Ctx<'_>, conn: ConnId, event: Event) {
        if let Event::Readable = event {
            while let Ok(n) = cx.recv_with(conn, |data| {
                black_box(data.first());
                data.len()
            }) {
                if n == 0 {
                    break;
                }
                self.bytes += n as u64;
            }
        }
    }
}

fn caps(offload: bool) -> ChecksumCaps {
    let o = if offload { Offload::Rx } else { Offload::None };
    ChecksumCaps {
        ipv4: o,
        icmpv4: o,
        tcp: o,
    }
}

/// An established connection between two stacks; returns the pair, the client's last
/// segment (for its sequence state and timestamps) and the server's.
fn established(offload: bool) -> (Pair, Seg, Seg) {
    let mut p = Pair::with_caps(StackConfig::default(), caps(offload));
    p.connect();
    let (client, _) = p.last(true, |_| true).expect("client segment");
    let (server, _) = p.last(false, |_| true).expect("server segment");
    (p, client, server)
}

/// A data or ACK segment from the client to the server.
fn client_frame(
    c: &Seg,
    seq: SeqNumber,
    ack: SeqNumber,
    tsval: u32,
    tsecr: u32,
    payload: &[u8],
) -> Vec<u8> {
    segment_frame(
        c.src,
        c.dst,
        &TcpRepr {
            src_port: c.src.port(),
            dst_port: c.dst.port(),
            control: Control::None,
            push: !payload.is_empty(),
            seq_number: seq,
            ack_number: Some(ack),
            window_len: 0xffff,
            timestamp: Some((tsval, tsecr)),
            payload,
            ..TcpRepr::default()
        },
    )
}

/// Rewrites the sequence number of a client frame and its checksum.
fn set_seq(frame: &mut [u8], seq: SeqNumber) {
    let src = Ipv4Packet::new_unchecked(&frame[14..]).src_addr();
    let dst = Ipv4Packet::new_unchecked(&frame[14..]).dst_addr();
    let mut tcp = TcpPacket::new_unchecked(&mut frame[34..]);
    tcp.set_seq_number(seq);
    tcp.fill_checksum(src, dst, true).expect("checksum");
}

fn bench_data(c: &mut Criterion, offload: bool) {
    let name = if offload { "offload" } else { "sw" };
    let mut group = c.benchmark_group(format!("tcp_rx_{name}"));
    group.throughput(Throughput::Elements(1));
    let (mut p, client, server) = established(offload);
    let payload = [0x5au8; PAYLOAD];
    let tsval = client.timestamp.map_or(1, |t| t.0);
    let tsecr = server.timestamp.map_or(0, |t| t.0);
    let template = client_frame(&client, client.seq, server.end(), tsval, tsecr, &payload);
    let mut next = client.seq;
    let mut burst: Vec<Vec<u8>> = vec![template.clone(); BURST];
    let mut app = Sink::default();
    let mut pool = Pool::new();
    let mut out = Vec::new();
    let now = Instant::from_millis(100);

    let mut sent: u64 = 0;
    let mut prepare = |burst: &mut Vec<Vec<u8>>, next: &mut SeqNumber| {
        for f in burst.iter_mut() {
            set_seq(f, *next);
            *next += PAYLOAD as u32;
            sent += PAYLOAD as u64;
        }
    };

    group.bench_function("data/receive+read+ack", |b| {
        b.iter_custom(|iters| {
            let mut timed = StdDuration::ZERO;
            let mut done = 0;
            while done < iters {
                prepare(&mut burst, &mut next);
                let t = StdInstant::now();
                for f in burst.iter_mut() {
                    black_box(p.server.receive(now, f));
                }
                p.server.dispatch(now, &mut app);
                pool.transmit(&mut p.server, now, &mut out);
                timed += t.elapsed();
                pool.free(&mut out);
                done += BURST as u64;
            }
            timed.mul_f64(iters as f64 / done as f64)
        })
    });

    group.bench_function("data/receive", |b| {
        b.iter_custom(|iters| {
            let mut timed = StdDuration::ZERO;
            let mut done = 0;
            while done < iters {
                prepare(&mut burst, &mut next);
                let t = StdInstant::now();
                for f in burst.iter_mut() {
                    black_box(p.server.receive(now, f));
                }
                timed += t.elapsed();
                p.server.dispatch(now, &mut app);
                pool.transmit(&mut p.server, now, &mut out);
                pool.free(&mut out);
                done += BURST as u64;
            }
            timed.mul_f64(iters as f64 / done as f64)
        })
    });
    // Sanity (when the benchmarks above ran, not filtered out): all the data was read.
    if sent > 0 {
        assert_eq!(app.bytes, sent);
        assert_eq!(p.server.connection_count(), 1);
    }

    let frame = template.clone();
    let rx_caps = caps(offload);
    group.bench_function("baseline/parse", |b| {
        b.iter(|| {
            let f = black_box(&frame[..]);
            let eth =
                EthernetRepr::parse(&EthernetFrame::new_checked(f).expect("eth")).expect("eth");
            let ip_packet = Ipv4Packet::new_checked(&f[14..]).expect("ip");
            let ip = Ipv4Repr::parse(&ip_packet, &rx_caps).expect("ip");
            let tcp = TcpPacket::new_checked(&f[34..34 + ip.payload_len]).expect("tcp");
            let repr = TcpRepr::parse(&tcp, ip.src_addr, ip.dst_addr, &rx_caps).expect("tcp");
            black_box((eth.ethertype, repr.seq_number, repr.payload.len()));
        })
    });
    if !offload {
        let mut dst = vec![0u8; PAYLOAD];
        group.bench_function("baseline/memcpy_1448", |b| {
            b.iter(|| {
                dst.copy_from_slice(black_box(&frame[frame.len() - PAYLOAD..]));
                black_box(&dst);
            })
        });
    }
    group.finish();
}

/// The sender side: the server streams to the client, whose ACKs are crafted.
fn bench_ack(c: &mut Criterion, offload: bool) {
    let name = if offload { "offload" } else { "sw" };
    let mut group = c.benchmark_group(format!("tcp_rx_{name}"));
    group.throughput(Throughput::Elements(1));
    let (mut p, client, _) = established(offload);
    let conn = *p.server_app.conns.last().expect("server connection");
    let chunk = vec![0xa5u8; 64 * 1024];
    let mut now = Instant::from_millis(100);
    let mut pool = Pool::new();
    let mut out = Vec::new();
    let mut app = Sink::default();
    let mut tsval = client.timestamp.map_or(1, |t| t.0);
    let mut acks: Vec<Vec<u8>> = Vec::new();

    // Sends what the windows allow and prepares one ACK per data segment sent.
    let mut refill = |p: &mut Pair, now: Instant, acks: &mut Vec<Vec<u8>>, tsval: &mut u32| {
        let mut cx = Ctx::new(&mut p.server, now);
        while cx.send_capacity(conn) > 0 {
            if cx.send(conn, &chunk).unwrap_or(0) == 0 {
                break;
            }
        }
        p.server.dispatch(now, &mut app);
        pool.transmit(&mut p.server, now, &mut out);
        acks.clear();
        for f in out.iter() {
            if let Some(s) = seg(f.data()).filter(|s| s.payload_len > 0) {
                *tsval += 1;
                let echo = s.timestamp.map_or(0, |t| t.0);
                acks.push(client_frame(
                    &client,
                    client.seq,
                    s.end(),
                    *tsval,
                    echo,
                    &[],
                ));
            }
        }
        pool.free(&mut out);
    };

    group.bench_function("ack/receive", |b| {
        b.iter_custom(|iters| {
            let mut timed = StdDuration::ZERO;
            let mut done = 0u64;
            while done < iters {
                now += Duration::from_millis(1);
                refill(&mut p, now, &mut acks, &mut tsval);
                now += Duration::from_millis(1);
                let t = StdInstant::now();
                for f in acks.iter_mut() {
                    black_box(p.server.receive(now, f));
                }
                timed += t.elapsed();
                done += acks.len().max(1) as u64;
            }
            timed.mul_f64(iters as f64 / done as f64)
        })
    });
    // Sanity (whether or not the benchmark ran): nothing was retransmitted.
    assert_eq!(p.server.tcp_counters().retransmits, 0);
    group.finish();
}

fn benches(c: &mut Criterion) {
    for offload in [false, true] {
        bench_data(c, offload);
        bench_ack(c, offload);
    }
}

criterion_group! {
    name = tcp_rx;
    config = Criterion::default()
        .warm_up_time(StdDuration::from_secs(1))
        .measurement_time(StdDuration::from_secs(3))
        .sample_size(50);
    targets = benches
}
criterion_main!(tcp_rx);
