//! The poll loop over an in-memory port: replies come out, the tx path never hangs or
//! leaks, `run` stops, and the idle strategies reach the port as they should.
use std::cell::Cell;
use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};

use engine::iface::{IfaceConfig, Interface, ARP_DELAY_FIRST_PROBE, ARP_PROBE_INTERVAL};
use engine::poll::{
    Engine, IdleStrategy, ARP_RETRY, INTERRUPT_WAIT, RX_CHUNK, RX_CHUNKS_PER_POLL, TX_ATTEMPTS,
    TX_HOLD,
};
use engine::port::{Frame, IdleSupport, Port, VecFrame};
use engine::stats::DropReason;
use engine::time::{Clock, Duration, Instant};
use engine::wire::arp::{ArpOperation, ArpPacket, ArpRepr};
use engine::wire::icmpv4::{Icmpv4Packet, Icmpv4Repr};
use engine::wire::ipv4::{IpProtocol, Ipv4Cidr, Ipv4Packet, Ipv4Repr};
use engine::wire::{ChecksumCaps, EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr};

const OUR_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x02]);
const OUR_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 7, 1);
const PEER_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 7, 2);

/// A port backed by queues. `tx_room` limits how many frames each `send_burst` takes.
struct MemPort {
    rx: VecDeque<VecFrame>,
    sent: Vec<VecFrame>,
    tx_room: usize,
    send_calls: usize,
    /// Frames `alloc` may still hand out.
    pool: usize,
    idle: IdleSupport,
    wait_result: bool,
    waits: Vec<Duration>,
}

impl MemPort {
    fn new() -> MemPort {
        MemPort {
            rx: VecDeque::new(),
            sent: Vec::new(),
            tx_room: usize::MAX,
            send_calls: 0,
            pool: 16,
            idle: IdleSupport::PollOnly,
            wait_result: true,
            waits: Vec::new(),
        }
    }
}

impl Port for MemPort {
    type Frame = VecFrame;

    fn recv_burst(&mut self, out: &mut Vec<VecFrame>, max: usize) -> usize {
        let n = max.min(self.rx.len());
        out.extend(self.rx.drain(..n));
        n
    }

    fn send_burst(&mut self, frames: &mut Vec<VecFrame>) -> usize {
        self.send_calls += 1;
        let n = self.tx_room.min(frames.len());
        self.sent.extend(frames.drain(..n));
        n
    }

    fn alloc(&mut self, len: usize) -> Option<VecFrame> {
        self.pool = self.pool.checked_sub(1)?;
        Some(VecFrame::new(len))
    }

    fn mac(&self) -> EthernetAddress {
        OUR_MAC
    }

    fn mtu(&self) -> usize {
        1500
    }

    fn idle_support(&self) -> IdleSupport {
        self.idle
    }

    fn wait_rx(&mut self, timeout: Duration) -> bool {
        self.waits.push(timeout);
        self.wait_result
    }
}

fn engine(port: MemPort) -> Engine<MemPort> {
    let cidr = Ipv4Cidr::new(OUR_IP, 24).unwrap();
    Engine::new(port, Interface::new(IfaceConfig::new(OUR_MAC, cidr)))
}

fn arp_request() -> VecFrame {
    let mut frame = VecFrame::new(60);
    let buf = frame.data_mut();
    let eth = EthernetRepr {
        src_addr: PEER_MAC,
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Arp,
    };
    eth.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
    let arp = ArpRepr {
        operation: ArpOperation::Request,
        source_hardware_addr: PEER_MAC,
        source_protocol_addr: PEER_IP,
        target_hardware_addr: EthernetAddress::UNSPECIFIED,
        target_protocol_addr: OUR_IP,
    };
    arp.emit(&mut ArpPacket::new_unchecked(&mut buf[14..]));
    frame
}

fn ipv4_frame(protocol: IpProtocol, payload: &[u8]) -> VecFrame {
    let ip = Ipv4Repr {
        src_addr: PEER_IP,
        dst_addr: OUR_IP,
        next_header: protocol,
        payload_len: payload.len(),
        hop_limit: 64,
    };
    let mut frame = VecFrame::new(14 + ip.buffer_len());
    let buf = frame.data_mut();
    let eth = EthernetRepr {
        src_addr: PEER_MAC,
        dst_addr: OUR_MAC,
        ethertype: EthernetProtocol::Ipv4,
    };
    eth.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
    let mut packet = Ipv4Packet::new_unchecked(&mut buf[14..]);
    ip.emit(&mut packet, &ChecksumCaps::default());
    packet.payload_mut().copy_from_slice(payload);
    frame
}

fn ping(seq_no: u16) -> VecFrame {
    let icmp = Icmpv4Repr::EchoRequest {
        ident: 9,
        seq_no,
        data: b"ping data",
    };
    let mut bytes = vec![0u8; icmp.buffer_len()];
    icmp.emit(
        &mut Icmpv4Packet::new_unchecked(&mut bytes[..]),
        &ChecksumCaps::default(),
    );
    ipv4_frame(IpProtocol::Icmp, &bytes)
}

/// The sequence numbers of the echo replies the engine sent, in order.
fn sent_echo_seqs(engine: &Engine<MemPort>) -> Vec<u16> {
    engine
        .port()
        .sent
        .iter()
        .map(|f| parse_echo_reply(f).2)
        .collect()
}

fn parse_echo_reply(frame: &VecFrame) -> (EthernetRepr, Ipv4Repr, u16) {
    let data = frame.data();
    let eth = EthernetRepr::parse(&EthernetFrame::new_checked(data).unwrap()).unwrap();
    let packet = Ipv4Packet::new_checked(&data[14..]).unwrap();
    let ip = Ipv4Repr::parse(&packet, &ChecksumCaps::default()).unwrap();
    let icmp = Icmpv4Packet::new_checked(packet.payload()).unwrap();
    match Icmpv4Repr::parse(&icmp, &ChecksumCaps::default()).unwrap() {
        Icmpv4Repr::EchoReply {
            ident: 9,
            seq_no,
            data: b"ping data",
        } => (eth, ip, seq_no),
        other => panic!("not our echo reply: {other:?}"),
    }
}

#[test]
fn ping_and_arp_are_answered_in_one_poll() {
    let mut port = MemPort::new();
    port.rx.push_back(arp_request());
    port.rx.push_back(ping(1));
    port.rx.push_back(VecFrame::from_bytes(&[0xff; 9])); // truncated Ethernet
    port.rx.push_back(ipv4_frame(IpProtocol::Tcp, &[0u8; 20]));
    let rx_bytes: usize = port.rx.iter().map(|f| f.data().len()).sum();
    let mut engine = engine(port);

    assert_eq!(engine.poll_once(Instant::from_millis(5)), 4);

    let sent = &engine.port().sent;
    assert_eq!(sent.len(), 2);
    let arp = ArpRepr::parse(&ArpPacket::new_checked(&sent[0].data()[14..]).unwrap()).unwrap();
    assert_eq!(sent[0].data().len(), 42);
    assert_eq!(&sent[0].data()[..6], &PEER_MAC.0);
    assert_eq!(arp.operation, ArpOperation::Reply);
    assert_eq!(
        (arp.source_hardware_addr, arp.source_protocol_addr),
        (OUR_MAC, OUR_IP)
    );
    assert_eq!(
        (arp.target_hardware_addr, arp.target_protocol_addr),
        (PEER_MAC, PEER_IP)
    );
    let (eth, ip, seq_no) = parse_echo_reply(&sent[1]);
    assert_eq!((eth.src_addr, eth.dst_addr), (OUR_MAC, PEER_MAC));
    assert_eq!((ip.src_addr, ip.dst_addr), (OUR_IP, PEER_IP));
    assert_eq!(seq_no, 1);

    let c = engine.counters();
    assert_eq!((c.rx_packets, c.rx_bytes), (4, rx_bytes as u64));
    let tx_bytes: usize = sent.iter().map(|f| f.data().len()).sum();
    assert_eq!((c.tx_packets, c.tx_bytes), (2, tx_bytes as u64));
    assert_eq!((c.arp_replies_sent, c.icmp_echo_replies_sent), (1, 1));
    assert_eq!(c.dropped(DropReason::EthTruncated), 1);
    // An all-zero TCP header (data offset 0) is malformed.
    assert_eq!(c.dropped(DropReason::TcpMalformed), 1);
    assert_eq!(c.total_dropped(), 2);
    assert_eq!(
        engine.iface().arp_lookup(PEER_IP, Instant::from_millis(5)),
        Some(PEER_MAC)
    );

    // Nothing left: an empty poll does nothing and sends nothing.
    let calls = engine.port().send_calls;
    assert_eq!(engine.poll_once(Instant::from_millis(6)), 0);
    assert_eq!(engine.port().send_calls, calls);
}

#[test]
fn polls_take_a_bounded_number_of_bursts() {
    // A poll takes up to RX_CHUNKS_PER_POLL chunks of RX_CHUNK frames before timers run,
    // answering each full chunk before it takes the next (so that a peer works on the
    // answers meanwhile); the rest waits for the next poll.
    let per_poll = RX_CHUNKS_PER_POLL * RX_CHUNK;
    let queued = per_poll + RX_CHUNK / 2;
    let mut port = MemPort::new();
    for seq in 0..queued as u16 {
        port.rx.push_back(ping(seq));
    }
    let mut engine = engine(port);
    assert_eq!(engine.poll_once(Instant::ZERO), per_poll);
    assert_eq!(engine.port().sent.len(), per_poll);
    assert!(
        engine.port().send_calls >= RX_CHUNKS_PER_POLL,
        "answers leave chunk by chunk: {} sends",
        engine.port().send_calls
    );
    assert_eq!(engine.poll_once(Instant::ZERO), RX_CHUNK / 2);
    let seqs = sent_echo_seqs(&engine);
    assert_eq!(seqs, (0..queued as u16).collect::<Vec<_>>(), "order kept");
    assert_eq!(engine.counters().tx_packets, queued as u64);
}

#[test]
fn frames_a_full_tx_ring_refuses_are_held_and_sent_first_by_the_next_poll() {
    let mut port = MemPort::new();
    port.tx_room = 0;
    for seq in 0..5 {
        port.rx.push_back(ping(seq));
    }
    let mut engine = engine(port);
    assert_eq!(engine.poll_once(Instant::ZERO), 5);
    assert!(engine.port().sent.is_empty());
    assert_eq!(engine.port().send_calls, TX_ATTEMPTS);
    assert_eq!(engine.tx_held(), 5);
    let c = engine.counters();
    assert_eq!(c.dropped(DropReason::TxRingFull), 0);
    assert_eq!((c.tx_packets, c.tx_bytes), (0, 0));
    // The ring drains: the held replies go out ahead of the next one, in order.
    engine.port_mut().tx_room = usize::MAX;
    engine.port_mut().rx.push_back(ping(9));
    assert_eq!(engine.poll_once(Instant::ZERO), 1);
    let seqs = sent_echo_seqs(&engine);
    assert_eq!(seqs, vec![0, 1, 2, 3, 4, 9]);
    assert_eq!(engine.tx_held(), 0);
    assert_eq!(engine.counters().tx_packets, 6);
    assert_eq!(engine.counters().dropped(DropReason::TxRingFull), 0);
}

#[test]
fn a_ring_that_never_drains_holds_a_bounded_number_of_frames() {
    let mut port = MemPort::new();
    port.tx_room = 0;
    let mut engine = engine(port);
    let mut queued = 0u64;
    // Feed more replies than the hold keeps, a receive chunk at a time.
    while queued < (TX_HOLD + 100) as u64 {
        for _ in 0..RX_CHUNK {
            engine.port_mut().rx.push_back(ping(queued as u16));
            queued += 1;
        }
        engine.poll_once(Instant::ZERO);
    }
    assert_eq!(engine.tx_held(), TX_HOLD);
    assert_eq!(
        engine.counters().dropped(DropReason::TxRingFull),
        queued - TX_HOLD as u64
    );
    assert!(engine.port().sent.is_empty());
    // Then it drains: the oldest replies held go out, in order.
    engine.port_mut().tx_room = usize::MAX;
    engine.poll_once(Instant::ZERO);
    assert_eq!(engine.port().sent.len(), TX_HOLD);
    assert_eq!(parse_echo_reply(&engine.port().sent[0]).2, 0);
    assert_eq!(engine.tx_held(), 0);
}

#[test]
fn partial_sends_are_retried_a_bounded_number_of_times() {
    let mut port = MemPort::new();
    port.tx_room = 1;
    for seq in 0..6 {
        port.rx.push_back(ping(seq));
    }
    let mut engine = engine(port);
    engine.poll_once(Instant::ZERO);
    assert_eq!(engine.port().send_calls, TX_ATTEMPTS);
    assert_eq!(engine.port().sent.len(), TX_ATTEMPTS);
    let c = engine.counters();
    assert_eq!(c.tx_packets, TX_ATTEMPTS as u64);
    // The rest wait for the next poll.
    assert_eq!(engine.tx_held(), 6 - TX_ATTEMPTS);
    assert_eq!(c.dropped(DropReason::TxRingFull), 0);
    let sent_bytes: usize = engine.port().sent.iter().map(|f| f.data().len()).sum();
    assert_eq!(c.tx_bytes, sent_bytes as u64);
}

#[test]
fn gratuitous_arp_and_requests_use_the_pool() {
    let mut port = MemPort::new();
    port.pool = 1;
    let mut engine = engine(port);
    assert!(engine.send_gratuitous_arp());
    let sent = &engine.port().sent[0];
    let arp = ArpRepr::parse(&ArpPacket::new_checked(&sent.data()[14..]).unwrap()).unwrap();
    assert_eq!(
        (arp.source_protocol_addr, arp.target_protocol_addr),
        (OUR_IP, OUR_IP)
    );
    assert_eq!(&sent.data()[..6], &EthernetAddress::BROADCAST.0);
    // The pool is now empty.
    assert!(!engine.send_arp_request(PEER_IP));
    assert_eq!(engine.counters().dropped(DropReason::NoBuffers), 1);
    assert_eq!(engine.counters().tx_packets, 1);
    // A full ring: the request is held for the next poll, not lost.
    engine.port_mut().pool = 1;
    engine.port_mut().tx_room = 0;
    assert!(engine.send_arp_request(PEER_IP));
    assert_eq!(engine.tx_held(), 1);
    assert_eq!(engine.counters().dropped(DropReason::TxRingFull), 0);
}

/// The ARP requests among `frames`: (Ethernet destination, target protocol address).
fn arp_requests(frames: &[VecFrame]) -> Vec<(EthernetAddress, Ipv4Addr)> {
    frames
        .iter()
        .filter_map(|f| {
            let eth = EthernetRepr::parse(&EthernetFrame::new_checked(f.data()).ok()?).ok()?;
            let arp = ArpRepr::parse(&ArpPacket::new_checked(&f.data()[14..]).ok()?).ok()?;
            (eth.ethertype == EthernetProtocol::Arp && arp.operation == ArpOperation::Request)
                .then_some((eth.dst_addr, arp.target_protocol_addr))
        })
        .collect()
}

#[test]
fn the_loop_probes_a_stale_entry_in_use_until_it_is_confirmed() {
    let mut port = MemPort::new();
    port.rx.push_back(arp_request());
    let mut engine = engine(port);
    engine.poll_once(Instant::ZERO);
    assert_eq!(engine.port().sent.len(), 1, "the ARP reply");
    engine.port_mut().sent.clear();
    // Past the reachable time a flow resolves the peer: it gets the address at once.
    let used = Instant::ZERO + IfaceConfig::DEFAULT_ARP_ENTRY_TTL;
    assert_eq!(engine.iface().arp_lookup(PEER_IP, used), Some(PEER_MAC));
    engine.poll_once(used);
    assert!(engine.port().sent.is_empty(), "no probe before the delay");
    // After the delay, the loop sends the probe the interface asks for: unicast, to the
    // address it knows.
    let probed = used + ARP_DELAY_FIRST_PROBE;
    engine.poll_once(probed);
    assert_eq!(arp_requests(&engine.port().sent), [(PEER_MAC, PEER_IP)]);
    assert_eq!(engine.counters().arp_probes_sent, 1);
    // Not again within the interval, however often the loop polls.
    let mut t = probed;
    while t < probed + ARP_PROBE_INTERVAL - ARP_RETRY {
        t += ARP_RETRY;
        engine.poll_once(t);
    }
    assert_eq!(engine.port().sent.len(), 1);
    // The peer's ARP (a request to us here) confirms it: no probe after that.
    engine.port_mut().rx.push_back(arp_request());
    engine.poll_once(t + Duration::from_millis(1));
    engine.poll_once(probed + ARP_PROBE_INTERVAL * 3);
    assert_eq!(arp_requests(&engine.port().sent), [(PEER_MAC, PEER_IP)]);
    assert_eq!(engine.counters().arp_probes_sent, 1);
    assert_eq!(engine.counters().arp_entries_failed, 0);
}

/// A clock that sets `stop` on its `limit`-th reading, so that `run` ends after a known
/// number of polls without threads or wall-clock timing.
struct StopAfter<'a> {
    reads: Cell<u32>,
    limit: u32,
    stop: &'a AtomicBool,
}

impl Clock for StopAfter<'_> {
    fn now(&self) -> Instant {
        let n = self.reads.get() + 1;
        self.reads.set(n);
        if n >= self.limit {
            self.stop.store(true, Ordering::Release);
        }
        Instant::from_micros(u64::from(n))
    }
}

#[test]
fn run_returns_when_stop_is_set_and_answers_meanwhile() {
    for idle in [
        IdleStrategy::Spin,
        IdleStrategy::Sleep,
        IdleStrategy::Interrupt,
    ] {
        let mut port = MemPort::new();
        port.rx.push_back(ping(3));
        let mut engine = engine(port);
        let stop = AtomicBool::new(false);
        let clock = StopAfter {
            reads: Cell::new(0),
            limit: 200,
            stop: &stop,
        };
        engine.run(&clock, &stop, idle);
        assert_eq!(
            clock.reads.get(),
            200,
            "{idle}: one clock read per poll, stopped at the limit"
        );
        assert_eq!(engine.port().sent.len(), 1, "{idle}");
        assert_eq!(parse_echo_reply(&engine.port().sent[0]).2, 3);
    }
}

#[test]
fn run_with_stop_already_set_does_not_poll() {
    let mut port = MemPort::new();
    port.rx.push_back(ping(1));
    let mut engine = engine(port);
    let stop = AtomicBool::new(true);
    let clock = StopAfter {
        reads: Cell::new(0),
        limit: u32::MAX,
        stop: &stop,
    };
    engine.run(&clock, &stop, IdleStrategy::Spin);
    assert_eq!(clock.reads.get(), 0);
    assert_eq!(engine.port().rx.len(), 1);
}

#[test]
fn interrupt_idling_waits_on_capable_ports() {
    let mut port = MemPort::new();
    port.idle = IdleSupport::Interrupt;
    let mut engine = engine(port);
    assert_eq!(
        engine.effective_idle(IdleStrategy::Interrupt),
        IdleStrategy::Interrupt
    );
    let stop = AtomicBool::new(false);
    let clock = StopAfter {
        reads: Cell::new(0),
        limit: 100,
        stop: &stop,
    };
    engine.run(&clock, &stop, IdleStrategy::Interrupt);
    let waits = &engine.port().waits;
    assert!(!waits.is_empty());
    assert!(waits.len() < 100, "no wait before the empty-poll threshold");
    assert!(waits.iter().all(|&t| t == INTERRUPT_WAIT));
    assert!(!engine.interrupt_fell_back());
}

#[test]
fn interrupt_falls_back_to_sleep_on_poll_only_ports() {
    let mut engine = engine(MemPort::new());
    assert_eq!(
        engine.effective_idle(IdleStrategy::Interrupt),
        IdleStrategy::Sleep
    );
    assert_eq!(
        engine.effective_idle(IdleStrategy::Spin),
        IdleStrategy::Spin
    );
    let stop = AtomicBool::new(false);
    let clock = StopAfter {
        reads: Cell::new(0),
        limit: 100,
        stop: &stop,
    };
    engine.run(&clock, &stop, IdleStrategy::Interrupt);
    assert!(engine.interrupt_fell_back());
    assert!(
        engine.port().waits.is_empty(),
        "wait_rx is only called on Interrupt ports"
    );
}

#[test]
fn failed_wait_falls_back_once() {
    let mut port = MemPort::new();
    port.idle = IdleSupport::Interrupt;
    port.wait_result = false;
    let mut engine = engine(port);
    let stop = AtomicBool::new(false);
    let clock = StopAfter {
        reads: Cell::new(0),
        limit: 150,
        stop: &stop,
    };
    engine.run(&clock, &stop, IdleStrategy::Interrupt);
    assert!(engine.interrupt_fell_back());
    assert_eq!(
        engine.port().waits.len(),
        1,
        "after one failure the loop sleeps instead"
    );
}

#[test]
fn spin_and_sleep_do_not_fall_back() {
    for idle in [IdleStrategy::Spin, IdleStrategy::Sleep] {
        let mut port = MemPort::new();
        port.idle = IdleSupport::Interrupt;
        let mut engine = engine(port);
        let stop = AtomicBool::new(false);
        let clock = StopAfter {
            reads: Cell::new(0),
            limit: 100,
            stop: &stop,
        };
        engine.run(&clock, &stop, idle);
        assert!(!engine.interrupt_fell_back(), "{idle}");
        assert!(engine.port().waits.is_empty(), "{idle}");
    }
}
