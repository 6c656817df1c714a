//! Back-pressure: while the port says its buffers run low, the engine refuses new
//! connections (drops SYNs, counted) and accepts them again once buffers are back.
use std::collections::VecDeque;
use std::net::Ipv4Addr;

use engine::iface::{IfaceConfig, Interface};
use engine::poll::Engine;
use engine::port::{Frame, Port, VecFrame};
use engine::stack::{NoApp, Stack, StackConfig, StackKeys};
use engine::steer::NoSteer;
use engine::time::Instant;
use engine::wire::ethernet::EthernetFrame;
use engine::wire::ipv4::{IpProtocol, Ipv4Cidr, Ipv4Packet, Ipv4Repr};
use engine::wire::tcp::{Control, SeqNumber, TcpPacket, TcpRepr};
use engine::wire::{ChecksumCaps, EthernetAddress, EthernetProtocol, EthernetRepr};

const OUR_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 1]);
const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 2]);
const OUR_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

#[derive(Default)]
struct LowPort {
    rx: VecDeque<VecFrame>,
    sent: Vec<VecFrame>,
    low: bool,
}

impl Port for LowPort {
    type Frame = VecFrame;
    fn recv_burst(&mut self, out: &mut Vec<VecFrame>, max: usize) -> usize {
        let n = max.min(self.rx.len());
        out.extend(self.rx.drain(..n));
        n
    }
    fn send_burst(&mut self, frames: &mut Vec<VecFrame>) -> usize {
        let n = frames.len();
        self.sent.append(frames);
        n
    }
    fn alloc(&mut self, len: usize) -> Option<VecFrame> {
        Some(VecFrame::new(len))
    }
    fn mac(&self) -> EthernetAddress {
        OUR_MAC
    }
    fn mtu(&self) -> usize {
        1500
    }
    fn buffers_low(&self) -> bool {
        self.low
    }
}

fn syn(src_port: u16) -> VecFrame {
    let caps = ChecksumCaps::default();
    let tcp = TcpRepr {
        src_port,
        dst_port: 80,
        control: Control::Syn,
        seq_number: SeqNumber(1000),
        window_len: 65535,
        max_seg_size: Some(1460),
        ..TcpRepr::default()
    };
    let ip = Ipv4Repr {
        src_addr: PEER_IP,
        dst_addr: OUR_IP,
        next_header: IpProtocol::Tcp,
        payload_len: tcp.buffer_len(),
        hop_limit: 64,
    };
    let mut frame = VecFrame::new(14 + 20 + tcp.buffer_len());
    let buf = frame.data_mut();
    EthernetRepr {
        src_addr: PEER_MAC,
        dst_addr: OUR_MAC,
        ethertype: EthernetProtocol::Ipv4,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut *buf));
    ip.emit(&mut Ipv4Packet::new_unchecked(&mut buf[14..]), &caps);
    tcp.emit(
        &mut TcpPacket::new_unchecked(&mut buf[34..]),
        PEER_IP,
        OUR_IP,
        &caps,
    )
    .expect("room for the SYN");
    frame
}

fn is_syn_ack(frame: &VecFrame) -> bool {
    let p = TcpPacket::new_checked(&frame.data()[34..]).expect("tcp");
    TcpRepr::parse(&p, OUR_IP, PEER_IP, &ChecksumCaps::default())
        .is_ok_and(|r| r.control == Control::Syn && r.ack_number.is_some())
}

#[test]
fn syns_are_refused_while_buffers_are_low() {
    let iface = Interface::new(IfaceConfig::new(
        OUR_MAC,
        Ipv4Cidr::new(OUR_IP, 24).unwrap(),
    ));
    let stack = Stack::new(iface, StackConfig::default(), StackKeys::from_seed(1));
    let mut engine = Engine::with_app(
        LowPort {
            low: true,
            ..LowPort::default()
        },
        stack,
        NoApp,
        NoSteer,
    );
    engine
        .with_ctx(Instant::ZERO, |_, cx| cx.listen(80))
        .unwrap();

    engine.port_mut().rx.push_back(syn(5000));
    engine.poll_once(Instant::from_millis(1));
    assert!(
        engine.port().sent.iter().all(|f| !is_syn_ack(f)),
        "no SYN-ACK while low"
    );
    assert_eq!(engine.stack().tcp_counters().syn_dropped_low_buffers, 1);

    // Buffers are back: the pressure check (every millisecond) lets the next SYN in.
    engine.port_mut().low = false;
    engine.port_mut().rx.push_back(syn(5001));
    engine.poll_once(Instant::from_millis(3));
    assert!(
        engine.port().sent.iter().any(is_syn_ack),
        "SYN-ACK once buffers recover"
    );
    assert_eq!(engine.stack().tcp_counters().syn_dropped_low_buffers, 1);
}
