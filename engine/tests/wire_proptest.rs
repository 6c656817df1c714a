//! Property tests of the L2/L3 wire formats: arbitrary bytes never panic a view or a parse,
//! and every Repr survives emit-then-parse unchanged.
use std::net::Ipv4Addr;

use engine::wire::arp::{self, ArpOperation, ArpPacket, ArpRepr};
use engine::wire::ethernet::{
    self, EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr,
};
use engine::wire::icmpv4::{Icmpv4Packet, Icmpv4Repr};
use engine::wire::ipv4::{IpProtocol, Ipv4Cidr, Ipv4Packet, Ipv4Repr, MAX_PAYLOAD_LEN};
use engine::wire::{ChecksumCaps, Offload};
use proptest::prelude::*;

fn any_caps() -> impl Strategy<Value = ChecksumCaps> {
    let offload = prop_oneof![
        Just(Offload::None),
        Just(Offload::Rx),
        Just(Offload::Tx),
        Just(Offload::Both)
    ];
    (offload.clone(), offload.clone(), offload).prop_map(|(ipv4, icmpv4, tcp)| ChecksumCaps {
        ipv4,
        icmpv4,
        tcp,
    })
}

fn any_mac() -> impl Strategy<Value = EthernetAddress> {
    any::<[u8; 6]>().prop_map(EthernetAddress)
}

fn any_ip() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(Ipv4Addr::from)
}

/// Bytes that often start like an IPv4 header, so that parsing gets past the first checks.
fn ipv4_ish_bytes() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::collection::vec(any::<u8>(), 0..120),
        0x40u8..0x50,
        any::<bool>(),
    )
        .prop_map(|(mut bytes, ver_ihl, force)| {
            if force && !bytes.is_empty() {
                bytes[0] = ver_ihl;
            }
            if force && bytes.len() >= 4 {
                let len = (bytes.len() as u16).to_be_bytes();
                bytes[2..4].copy_from_slice(&len);
            }
            bytes
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn ethernet_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        match EthernetFrame::new_checked(&bytes[..]) {
            Ok(frame) => {
                prop_assert!(bytes.len() >= ethernet::HEADER_LEN);
                let repr = EthernetRepr::parse(&frame).unwrap();
                prop_assert_eq!(repr.dst_addr.0, <[u8; 6]>::try_from(&bytes[..6]).unwrap());
                prop_assert_eq!(frame.payload().len(), bytes.len() - ethernet::HEADER_LEN);
            }
            Err(_) => prop_assert!(bytes.len() < ethernet::HEADER_LEN),
        }
    }

    #[test]
    fn arp_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80), fix in any::<bool>()) {
        let mut bytes = bytes;
        if fix && bytes.len() >= 6 {
            // Mostly Ethernet/IPv4 lengths, to reach the address accessors.
            bytes[..6].copy_from_slice(&[0x00, 0x01, 0x08, 0x00, 0x06, 0x04]);
        }
        if let Ok(packet) = ArpPacket::new_checked(&bytes[..]) {
            let _ = (packet.source_hardware_addr(), packet.source_protocol_addr());
            let _ = (packet.target_hardware_addr(), packet.target_protocol_addr());
            let _ = (packet.operation(), packet.hardware_type(), packet.protocol_type());
            if let Ok(repr) = ArpRepr::parse(&packet) {
                prop_assert!(bytes.len() >= arp::ETHERNET_IPV4_LEN);
                prop_assert_eq!(&repr.source_hardware_addr.0[..], &bytes[8..14]);
                prop_assert_eq!(repr.target_protocol_addr.octets(), <[u8; 4]>::try_from(&bytes[24..28]).unwrap());
            }
        }
    }

    #[test]
    fn ipv4_never_panics(bytes in ipv4_ish_bytes(), caps in any_caps()) {
        if let Ok(packet) = Ipv4Packet::new_checked(&bytes[..]) {
            let payload = packet.payload();
            prop_assert_eq!(payload.len() + packet.header_len(), usize::from(packet.total_len()));
            let _ = (packet.verify_checksum(), packet.frag_offset(), packet.dscp(), packet.ecn());
            let _ = (packet.src_addr(), packet.dst_addr(), packet.next_header(), packet.ident());
            if let Ok(repr) = Ipv4Repr::parse(&packet, &caps) {
                prop_assert_eq!(repr.payload_len, payload.len());
                prop_assert!(!packet.is_fragment());
                prop_assert_eq!(packet.header_len(), 20);
                prop_assert!(!caps.ipv4.verify_rx() || packet.verify_checksum());
            }
        }
    }

    #[test]
    fn icmpv4_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64), caps in any_caps()) {
        if let Ok(packet) = Icmpv4Packet::new_checked(&bytes[..]) {
            let _ = (packet.msg_type(), packet.msg_code(), packet.echo_ident(), packet.echo_seq_no());
            prop_assert_eq!(packet.data().len(), bytes.len() - 8);
            if let Ok(repr) = Icmpv4Repr::parse(&packet, &caps) {
                prop_assert_eq!(repr.buffer_len(), bytes.len());
                prop_assert!(!caps.icmpv4.verify_rx() || packet.verify_checksum());
            }
        } else {
            prop_assert!(bytes.len() < 8);
        }
    }

    #[test]
    fn ethernet_round_trip(src in any_mac(), dst in any_mac(), ethertype in any::<u16>(),
                           payload in proptest::collection::vec(any::<u8>(), 0..32)) {
        let repr = EthernetRepr { src_addr: src, dst_addr: dst, ethertype: EthernetProtocol::from(ethertype) };
        let mut bytes = vec![0u8; repr.buffer_len(payload.len())];
        let mut frame = EthernetFrame::new_unchecked(&mut bytes[..]);
        repr.emit(&mut frame);
        frame.payload_mut().copy_from_slice(&payload);
        let frame = EthernetFrame::new_checked(&bytes[..]).unwrap();
        prop_assert_eq!(EthernetRepr::parse(&frame).unwrap(), repr);
        prop_assert_eq!(frame.payload(), &payload[..]);
        prop_assert_eq!(u16::from(repr.ethertype), ethertype);
    }

    #[test]
    fn arp_round_trip(op in any::<u16>(), sha in any_mac(), spa in any_ip(), tha in any_mac(), tpa in any_ip(),
                      padding in 0usize..32) {
        let repr = ArpRepr {
            operation: ArpOperation::from(op),
            source_hardware_addr: sha,
            source_protocol_addr: spa,
            target_hardware_addr: tha,
            target_protocol_addr: tpa,
        };
        let mut bytes = vec![0u8; repr.buffer_len() + padding];
        repr.emit(&mut ArpPacket::new_unchecked(&mut bytes[..]));
        let packet = ArpPacket::new_checked(&bytes[..]).unwrap();
        prop_assert_eq!(ArpRepr::parse(&packet).unwrap(), repr);
    }

    #[test]
    fn ipv4_round_trip(src in any_ip(), dst in any_ip(), protocol in any::<u8>(), ttl in any::<u8>(),
                       payload_len in prop_oneof![0usize..64, Just(MAX_PAYLOAD_LEN)],
                       padding in 0usize..16, rx_caps in any_caps()) {
        let repr = Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::from(protocol),
            payload_len,
            hop_limit: ttl,
        };
        let mut bytes = vec![0u8; repr.buffer_len() + padding];
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut bytes[..]), &ChecksumCaps::default());
        let packet = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        prop_assert!(packet.verify_checksum());
        prop_assert!(packet.dont_frag());
        prop_assert_eq!(Ipv4Repr::parse(&packet, &rx_caps).unwrap(), repr);
    }

    #[test]
    fn icmpv4_round_trip(reply in any::<bool>(), ident in any::<u16>(), seq_no in any::<u16>(),
                         data in proptest::collection::vec(any::<u8>(), 0..600), rx_caps in any_caps()) {
        let repr = if reply {
            Icmpv4Repr::EchoReply { ident, seq_no, data: &data }
        } else {
            Icmpv4Repr::EchoRequest { ident, seq_no, data: &data }
        };
        let mut bytes = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Icmpv4Packet::new_unchecked(&mut bytes[..]), &ChecksumCaps::default());
        let packet = Icmpv4Packet::new_checked(&bytes[..]).unwrap();
        prop_assert!(packet.verify_checksum());
        prop_assert_eq!(Icmpv4Repr::parse(&packet, &rx_caps).unwrap(), repr);
    }

    #[test]
    fn single_bit_flips_break_checksums(data in proptest::collection::vec(any::<u8>(), 0..64),
                                        bit in any::<prop::sample::Index>()) {
        let repr = Icmpv4Repr::EchoRequest { ident: 1, seq_no: 2, data: &data };
        let mut bytes = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Icmpv4Packet::new_unchecked(&mut bytes[..]), &ChecksumCaps::default());
        let bit = bit.index(bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        let packet = Icmpv4Packet::new_checked(&bytes[..]).unwrap();
        prop_assert!(!packet.verify_checksum());
    }

    #[test]
    fn cidr_display_parses_back(addr in any_ip(), prefix_len in 0u8..=32) {
        let cidr = Ipv4Cidr::new(addr, prefix_len).unwrap();
        prop_assert_eq!(cidr.to_string().parse::<Ipv4Cidr>().unwrap(), cidr);
        prop_assert!(cidr.contains_addr(&addr));
        prop_assert!(cidr.contains_addr(&cidr.network()));
        if let Some(b) = cidr.broadcast() {
            prop_assert!(cidr.contains_addr(&b));
        }
    }

    #[test]
    fn mac_display_parses_back(mac in any_mac()) {
        prop_assert_eq!(mac.to_string().parse::<EthernetAddress>().unwrap(), mac);
    }

    #[test]
    fn cidr_parse_never_panics(s in "\\PC{0,24}") {
        let _ = s.parse::<Ipv4Cidr>();
        let _ = s.parse::<EthernetAddress>();
    }
}
