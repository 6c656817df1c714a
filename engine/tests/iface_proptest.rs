//! Property tests of the interface: arbitrary and mutated frames never panic it, a frame is
//! modified only when it becomes a reply, every reply is well formed, and every drop is
//! counted exactly once.
use std::net::Ipv4Addr;

use engine::iface::{IfaceConfig, Interface, Verdict};
use engine::time::{Duration, Instant};
use engine::wire::arp::{ArpOperation, ArpPacket, ArpRepr};
use engine::wire::icmpv4::{Icmpv4Packet, Icmpv4Repr};
use engine::wire::ipv4::{IpProtocol, Ipv4Cidr, Ipv4Packet, Ipv4Repr};
use engine::wire::{ChecksumCaps, EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr};
use proptest::prelude::*;

const OUR_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x02]);
const OUR_IP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);

fn iface() -> Interface {
    let mut config = IfaceConfig::new(OUR_MAC, Ipv4Cidr::new(OUR_IP, 16).unwrap());
    config.arp_cache_size = 4;
    config.arp_entry_ttl = Duration::from_millis(50);
    Interface::new(config)
}

fn valid_ping(data_len: usize) -> Vec<u8> {
    let data = vec![0x5au8; data_len];
    let icmp = Icmpv4Repr::EchoRequest {
        ident: 1,
        seq_no: 2,
        data: &data,
    };
    let ip = Ipv4Repr {
        src_addr: PEER_IP,
        dst_addr: OUR_IP,
        next_header: IpProtocol::Icmp,
        payload_len: icmp.buffer_len(),
        hop_limit: 64,
    };
    let mut frame = vec![0u8; 14 + ip.buffer_len()];
    let eth = EthernetRepr {
        src_addr: PEER_MAC,
        dst_addr: OUR_MAC,
        ethertype: EthernetProtocol::Ipv4,
    };
    eth.emit(&mut EthernetFrame::new_unchecked(&mut frame[..]));
    let mut packet = Ipv4Packet::new_unchecked(&mut frame[14..]);
    ip.emit(&mut packet, &ChecksumCaps::default());
    icmp.emit(
        &mut Icmpv4Packet::new_unchecked(packet.payload_mut()),
        &ChecksumCaps::default(),
    );
    frame
}

fn valid_arp(op: u16, target: Ipv4Addr) -> Vec<u8> {
    let mut frame = vec![0u8; 60];
    let eth = EthernetRepr {
        src_addr: PEER_MAC,
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Arp,
    };
    eth.emit(&mut EthernetFrame::new_unchecked(&mut frame[..]));
    let arp = ArpRepr {
        operation: ArpOperation::from(op),
        source_hardware_addr: PEER_MAC,
        source_protocol_addr: PEER_IP,
        target_hardware_addr: EthernetAddress::UNSPECIFIED,
        target_protocol_addr: target,
    };
    arp.emit(&mut ArpPacket::new_unchecked(&mut frame[14..]));
    frame
}

/// A valid frame of some kind, then a few bytes overwritten and maybe truncated.
fn mutated_frame() -> impl Strategy<Value = Vec<u8>> {
    let base = prop_oneof![
        (0usize..100).prop_map(valid_ping),
        (0u16..4, prop_oneof![Just(OUR_IP), Just(PEER_IP)]).prop_map(|(op, t)| valid_arp(op, t)),
    ];
    (
        base,
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        proptest::option::of(any::<prop::sample::Index>()),
    )
        .prop_map(|(mut frame, edits, cut)| {
            for (at, value) in edits {
                let i = at.index(frame.len());
                frame[i] = value;
            }
            if let Some(cut) = cut {
                frame.truncate(cut.index(frame.len() + 1));
            }
            frame
        })
}

/// Checks that a transmitted frame is a well-formed ARP reply or ICMP echo reply from us.
fn check_reply(frame: &[u8]) -> Result<(), TestCaseError> {
    let eth = EthernetRepr::parse(&EthernetFrame::new_checked(frame).unwrap()).unwrap();
    prop_assert_eq!(eth.src_addr, OUR_MAC);
    prop_assert!(eth.dst_addr.is_unicast());
    match eth.ethertype {
        EthernetProtocol::Arp => {
            let arp = ArpRepr::parse(&ArpPacket::new_checked(&frame[14..]).unwrap()).unwrap();
            prop_assert_eq!(arp.operation, ArpOperation::Reply);
            prop_assert_eq!(
                (arp.source_hardware_addr, arp.source_protocol_addr),
                (OUR_MAC, OUR_IP)
            );
            prop_assert_eq!(arp.target_hardware_addr, eth.dst_addr);
        }
        EthernetProtocol::Ipv4 => {
            let packet = Ipv4Packet::new_checked(&frame[14..]).unwrap();
            prop_assert_eq!(usize::from(packet.total_len()), frame.len() - 14);
            let ip = Ipv4Repr::parse(&packet, &ChecksumCaps::default()).unwrap();
            prop_assert_eq!(ip.src_addr, OUR_IP);
            let icmp = Icmpv4Packet::new_checked(packet.payload()).unwrap();
            let repr = Icmpv4Repr::parse(&icmp, &ChecksumCaps::default()).unwrap();
            let is_echo_reply = matches!(repr, Icmpv4Repr::EchoReply { .. });
            prop_assert!(is_echo_reply, "not an echo reply: {:?}", repr);
        }
        other => prop_assert!(false, "unexpected reply ethertype {other}"),
    }
    Ok(())
}

fn process_all(frames: Vec<Vec<u8>>) -> Result<(), TestCaseError> {
    let mut iface = iface();
    let mut drops = 0u64;
    for (i, mut frame) in frames.into_iter().enumerate() {
        let before = frame.clone();
        let now = Instant::from_millis(10 * i as u64);
        match iface.process(now, &mut frame) {
            Verdict::Transmit(len) => {
                prop_assert!(len <= frame.len());
                check_reply(&frame[..len])?;
            }
            verdict @ Verdict::Tcp { .. } => {
                let range = verdict.tcp_range().unwrap();
                prop_assert!(range.end <= frame.len());
                prop_assert_eq!(frame, before);
            }
            Verdict::Drop(_) => {
                drops += 1;
                prop_assert_eq!(frame, before);
            }
            Verdict::Consumed => prop_assert_eq!(frame, before),
        }
        prop_assert_eq!(iface.counters().total_dropped(), drops);
        prop_assert!(iface.arp_cache().len() <= 4);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn arbitrary_frames(frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..100), 1..8)) {
        process_all(frames)?;
    }

    #[test]
    fn mutated_frames(frames in proptest::collection::vec(mutated_frame(), 1..16)) {
        process_all(frames)?;
    }

    #[test]
    fn every_valid_ping_is_answered(data_len in 0usize..1400) {
        let mut iface = iface();
        let mut frame = valid_ping(data_len);
        let len = frame.len();
        prop_assert_eq!(iface.process(Instant::ZERO, &mut frame), Verdict::Transmit(len));
        check_reply(&frame)?;
    }
}
