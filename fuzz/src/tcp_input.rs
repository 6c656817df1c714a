//! The body of the `tcp_input` fuzz target, shared (by path) with the engine's replay test
//! so that it also runs under plain `cargo test`.
//!
//! One input is one frame into the TCP input path of a `Stack` that has a listener and one
//! established connection (with data exchanged both ways). The first byte chooses how the
//! rest is used, so that random bytes get past the outer checks often enough:
//! - bit 0: the stack trusts the NIC's receive checksums (offload), so corrupted segments
//!   reach TCP;
//! - bit 1: the frame is addressed to the established connection (MAC and IP addresses,
//!   ports) before anything else;
//! - bit 2: the IPv4 total length and checksum and the TCP checksum are fixed up;
//! - bit 3: the frame goes to the client's stack (no listener) instead of the server's.
//!
//! After the frame, the stack runs its application, timers and output; whatever it sends
//! must parse with our own parsers (every checksum right), and its counts stay sane. Any
//! panic is a bug.
use engine::stack::StackConfig;
use engine::time::Duration;
use engine::wire::checksum::Offload;
use engine::wire::ipv4::Ipv4Packet;
use engine::wire::tcp::TcpPacket;
use engine::wire::ChecksumCaps;

use crate::stack_support::{flush, ip, mac, seg, Pair, CLIENT, SERVER, SERVER_PORT};

pub const OFFLOAD: u8 = 1 << 0;
pub const ADDRESS: u8 = 1 << 1;
pub const FIX_UP: u8 = 1 << 2;
pub const TO_CLIENT: u8 = 1 << 3;

/// The stacks every input starts from: deterministic, so a crash replays.
pub fn setup(offload: bool) -> (Pair, u16) {
    let o = if offload { Offload::Rx } else { Offload::None };
    let caps = ChecksumCaps {
        ipv4: o,
        icmpv4: o,
        tcp: o,
    };
    let mut config = StackConfig::default();
    config.tcp.send_buffer = 16 * 1024;
    config.tcp.recv_buffer = 16 * 1024;
    let mut p = Pair::with_caps(config, caps);
    let (client, server) = p.connect();
    let client_port = p.last(true, |_| true).map_or(0, |(s, _)| s.src.port());
    p.now += Duration::from_millis(10);
    let _ = engine::stack::Ctx::new(&mut p.server, p.now).send(server, &[7; 3000]);
    let _ = engine::stack::Ctx::new(&mut p.client, p.now).send(client, &[9; 500]);
    p.exchange();
    (p, client_port)
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let Some((&flags, frame)) = data.split_first() else {
        return;
    };
    let (mut p, client_port) = setup(flags & OFFLOAD != 0);
    let to_client = flags & TO_CLIENT != 0;
    let mut frame = frame.to_vec();
    if flags & ADDRESS != 0 {
        let (from, to, from_port, to_port) = if to_client {
            (SERVER, CLIENT, SERVER_PORT, client_port)
        } else {
            (CLIENT, SERVER, client_port, SERVER_PORT)
        };
        address(&mut frame, from, to, from_port, to_port);
    }
    if flags & FIX_UP != 0 {
        fix_up(&mut frame);
    }
    p.now += Duration::from_millis(1);
    let now = p.now;
    let (stack, app) = if to_client {
        (&mut p.client, &mut p.client_app)
    } else {
        (&mut p.server, &mut p.server_app)
    };
    let _ = stack.receive(now, &mut frame);
    for at in [
        now,
        now + Duration::from_millis(250),
        now + Duration::from_secs(70),
    ] {
        stack.handle_timers(at);
        for out in flush(stack, app, at) {
            // Everything the stack sends is well-formed (ARP aside, which is not TCP).
            if out.get(12..14) == Some(&[0x08, 0x00]) {
                assert!(seg(&out).is_some(), "the stack sent a malformed segment");
            }
        }
    }
    assert!(stack.connection_count() <= 2);
    assert!(stack.time_wait_count() <= 2);
}

/// Points a frame at the established connection: Ethernet and IPv4 addresses and, if the
/// frame is long enough to have them, the TCP ports.
fn address(frame: &mut Vec<u8>, from: u8, to: u8, from_port: u16, to_port: u16) {
    if frame.len() < 54 {
        frame.resize(54, 0);
    }
    frame[0..6].copy_from_slice(&mac(to).0);
    frame[6..12].copy_from_slice(&mac(from).0);
    frame[12..14].copy_from_slice(&[0x08, 0x00]);
    frame[14] = 0x45;
    frame[23] = 6;
    frame[26..30].copy_from_slice(&ip(from).octets());
    frame[30..34].copy_from_slice(&ip(to).octets());
    frame[34..36].copy_from_slice(&from_port.to_be_bytes());
    frame[36..38].copy_from_slice(&to_port.to_be_bytes());
}

/// Makes the IPv4 total length match the frame and both checksums right, where the
/// headers are complete enough to say what they cover.
fn fix_up(frame: &mut [u8]) {
    if frame.len() < 34 || frame[12..14] != [0x08, 0x00] {
        return;
    }
    let ip_len = frame.len() - 14;
    let Ok(total) = u16::try_from(ip_len) else {
        return;
    };
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    if ihl < 20 || ihl > ip_len {
        return;
    }
    let mut packet = Ipv4Packet::new_unchecked(&mut frame[14..]);
    packet.set_total_len(total);
    packet.fill_checksum();
    let (src, dst) = (packet.src_addr(), packet.dst_addr());
    if let Ok(mut tcp) = TcpPacket::new_checked(&mut frame[14 + ihl..]) {
        let _ = tcp.fill_checksum(src, dst, true);
    }
}

/// Seed inputs: well-formed segments of every kind for the connection and the listener,
/// and a few non-TCP frames.
pub fn seeds() -> Vec<Vec<u8>> {
    use engine::tcp::SeqNumber;
    use engine::wire::tcp::{Control, TcpRepr};

    use crate::stack_support::segment_frame;

    let (p, client_port) = setup(false);
    let (c, _) = p.last(true, |_| true).expect("client segment");
    let (s, _) = p.last(false, |_| true).expect("server segment");
    let client = c.src;
    let server = c.dst;
    let tsval = c.timestamp.map_or(1, |t| t.0) + 1;
    let tsecr = s.timestamp.map_or(0, |t| t.0);
    let ack = s.end();
    let base = TcpRepr {
        src_port: client_port,
        dst_port: SERVER_PORT,
        seq_number: c.end(),
        ack_number: Some(ack),
        window_len: 1000,
        timestamp: Some((tsval, tsecr)),
        ..TcpRepr::default()
    };
    let mut reprs: Vec<TcpRepr<'static>> = vec![
        base,
        TcpRepr {
            payload: b"hello, world",
            push: true,
            ..base
        },
        TcpRepr {
            control: Control::Fin,
            ..base
        },
        TcpRepr {
            control: Control::Rst,
            ack_number: None,
            timestamp: None,
            ..base
        },
        TcpRepr {
            seq_number: base.seq_number + 100,
            payload: b"out of order",
            ..base
        },
        TcpRepr {
            sack_ranges: [
                Some((ack - 200, ack - 100)),
                Some((ack - 50, ack - 10)),
                None,
                None,
            ],
            ..base
        },
        TcpRepr {
            timestamp: Some((tsval - 1000, tsecr)),
            payload: b"old",
            ..base
        },
        TcpRepr {
            ack_number: Some(ack + 100_000),
            ..base
        },
        TcpRepr {
            window_len: 0,
            ..base
        },
    ];
    // A new connection to the listener, and a SYN on the established 4-tuple.
    let syn = TcpRepr {
        src_port: client_port.wrapping_add(1).max(1),
        control: Control::Syn,
        seq_number: SeqNumber(12345),
        ack_number: None,
        window_len: 65535,
        max_seg_size: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        timestamp: Some((tsval, 0)),
        ..base
    };
    reprs.push(syn);
    reprs.push(TcpRepr {
        src_port: client_port,
        ..syn
    });
    let mut seeds = Vec::new();
    for repr in &reprs {
        let mut input = vec![0u8];
        input.extend(segment_frame(client, server, repr));
        seeds.push(input.clone());
        // The same, with the address and fix-up bits (for mutations of the payload).
        input[0] = ADDRESS | FIX_UP;
        seeds.push(input.clone());
        input[0] = OFFLOAD;
        seeds.push(input);
    }
    // From the server's side, to the client's stack.
    let mut to_client = vec![TO_CLIENT];
    to_client.extend(segment_frame(
        server,
        client,
        &TcpRepr {
            src_port: SERVER_PORT,
            dst_port: client_port,
            seq_number: s.end(),
            ack_number: Some(c.end()),
            window_len: 500,
            timestamp: Some((tsecr + 1, tsval)),
            payload: b"more",
            ..TcpRepr::default()
        },
    ));
    seeds.push(to_client);
    // An ARP request for the server and garbage.
    let mut arp = vec![0u8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
    arp.extend_from_slice(&mac(CLIENT).0);
    arp.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&mac(CLIENT).0);
    arp.extend_from_slice(&ip(CLIENT).octets());
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&ip(SERVER).octets());
    seeds.push(arp);
    seeds.push(vec![ADDRESS | FIX_UP; 80]);
    seeds.push(vec![]);
    seeds
}
