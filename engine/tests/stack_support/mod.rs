//! Test support: `Stack`s driven directly, without the simulator, with frames moved by
//! hand between them and built or read with our own wire code. Shared (by path) by the
//! stack tests, the receive-path benchmark and the fuzz target's replay test.
#![allow(dead_code)]
use std::net::{Ipv4Addr, SocketAddrV4};

use engine::iface::{IfaceConfig, Interface};
use engine::port::{Frame, VecFrame};
use engine::stack::{App, ConnId, Ctx, Event, Received, Stack, StackConfig, StackKeys};
use engine::tcp::SeqNumber;
use engine::time::Instant;
use engine::wire::ethernet::EthernetFrame;
use engine::wire::ipv4::{IpProtocol, Ipv4Cidr, Ipv4Packet, Ipv4Repr, DEFAULT_HOP_LIMIT};
use engine::wire::tcp::{Control, TcpPacket, TcpRepr};
use engine::wire::{ChecksumCaps, EthernetAddress, EthernetProtocol, EthernetRepr};

/// The server (listens) and the client.
pub const SERVER: u8 = 1;
pub const CLIENT: u8 = 2;
pub const SERVER_PORT: u16 = 80;

pub fn mac(n: u8) -> EthernetAddress {
    EthernetAddress([0x02, 0, 0, 0, 0, n])
}

pub fn ip(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, n)
}

/// Stack `n` (10.0.0.n/24) that knows the MAC address of `peer`.
pub fn stack(n: u8, peer: u8, config: StackConfig, caps: ChecksumCaps) -> Stack {
    let cidr = Ipv4Cidr::new(ip(n), 24).expect("cidr");
    let mut iface_config = IfaceConfig::new(mac(n), cidr);
    iface_config.caps = caps;
    let mut iface = Interface::new(iface_config);
    iface.learn_neighbour(ip(peer), mac(peer), Instant::ZERO);
    Stack::new(iface, config, StackKeys::from_seed(u64::from(n) * 1_000))
}

/// Runs the application, then collects what `stack` sends.
pub fn flush<A: App>(stack: &mut Stack, app: &mut A, now: Instant) -> Vec<Vec<u8>> {
    stack.dispatch(now, app);
    let mut out: Vec<VecFrame> = Vec::new();
    stack.transmit(now, &mut |len| Some(VecFrame::new(len)), &mut out);
    out.iter().map(|f| f.data().to_vec()).collect()
}

/// Hands frames to `stack`; returns the in-place replies (ARP, ICMP).
pub fn deliver(stack: &mut Stack, now: Instant, frames: &[Vec<u8>]) -> Vec<Received> {
    frames
        .iter()
        .map(|f| {
            let mut f = f.clone();
            stack.receive(now, &mut f)
        })
        .collect()
}

/// A TCP segment from endpoint `from` to `to`, as a whole frame with correct checksums.
pub fn segment_frame(from: SocketAddrV4, to: SocketAddrV4, repr: &TcpRepr<'_>) -> Vec<u8> {
    let caps = ChecksumCaps::default();
    let tcp_len = repr.buffer_len();
    let mut frame = vec![0u8; 14 + 20 + tcp_len];
    let from_n = from.ip().octets()[3];
    let to_n = to.ip().octets()[3];
    EthernetRepr {
        src_addr: mac(from_n),
        dst_addr: mac(to_n),
        ethertype: EthernetProtocol::Ipv4,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut frame[..]));
    Ipv4Repr {
        src_addr: *from.ip(),
        dst_addr: *to.ip(),
        next_header: IpProtocol::Tcp,
        payload_len: tcp_len,
        hop_limit: DEFAULT_HOP_LIMIT,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut frame[14..]), &caps);
    repr.emit(
        &mut TcpPacket::new_unchecked(&mut frame[34..]),
        *from.ip(),
        *to.ip(),
        &caps,
    )
    .expect("emit");
    frame
}

/// The fields of a TCP frame the tests look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seg {
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub control: Control,
    pub seq: SeqNumber,
    pub ack: Option<SeqNumber>,
    pub window: u16,
    pub timestamp: Option<(u32, u32)>,
    pub payload_len: usize,
}

impl Seg {
    pub fn is_bare_ack(&self) -> bool {
        self.control == Control::None && self.ack.is_some() && self.payload_len == 0
    }
    /// The sequence number after this segment.
    pub fn end(&self) -> SeqNumber {
        let flag = u32::from(matches!(self.control, Control::Syn | Control::Fin));
        self.seq + (self.payload_len as u32 + flag)
    }
}

/// Parses a TCP frame; `None` for anything else.
pub fn seg(frame: &[u8]) -> Option<Seg> {
    let eth = EthernetRepr::parse(&EthernetFrame::new_checked(frame).ok()?).ok()?;
    if eth.ethertype != EthernetProtocol::Ipv4 {
        return None;
    }
    let packet = Ipv4Packet::new_checked(&frame[14..]).ok()?;
    let ip = Ipv4Repr::parse(&packet, &ChecksumCaps::default()).ok()?;
    let tcp = TcpPacket::new_checked(&frame[34..34 + ip.payload_len]).ok()?;
    let repr = TcpRepr::parse(&tcp, ip.src_addr, ip.dst_addr, &ChecksumCaps::default()).ok()?;
    Some(Seg {
        src: SocketAddrV4::new(ip.src_addr, repr.src_port),
        dst: SocketAddrV4::new(ip.dst_addr, repr.dst_port),
        control: repr.control,
        seq: repr.seq_number,
        ack: repr.ack_number,
        window: repr.window_len,
        timestamp: repr.timestamp,
        payload_len: repr.payload.len(),
    })
}

/// An application that records its events, reads everything (unless told not to) and
/// optionally closes when the peer does.
#[derive(Debug, Default)]
pub struct Recorder {
    pub events: Vec<(ConnId, Event)>,
    pub conns: Vec<ConnId>,
    pub received: Vec<u8>,
    pub read: bool,
    pub close_on_peer_close: bool,
}

impl Recorder {
    pub fn new(read: bool, close_on_peer_close: bool) -> Self {
        Recorder {
            read,
            close_on_peer_close,
            ..Recorder::default()
        }
    }

    pub fn closed(&self, conn: ConnId) -> Option<Event> {
        self.events
            .iter()
            .find(|(c, e)| *c == conn && matches!(e, Event::Closed { .. }))
            .map(|&(_, e)| e)
    }

    /// Reads what is buffered on `conn`.
    pub fn drain(&mut self, cx: &mut Ctx<'_>, conn: ConnId) {
        let mut buf = [0u8; 4096];
        while let Ok(n) = cx.recv(conn, &mut buf) {
            if n == 0 {
                break;
            }
            self.received.extend_from_slice(&buf[..n]);
        }
    }
}

impl App for Recorder {
    fn on_event(&mut self, cx: &mut Ctx<'_>, conn: ConnId, event: Event) {
        self.events.push((conn, event));
        match event {
            Event::Accepted { .. } | Event::Connected => self.conns.push(conn),
            Event::Readable if self.read => self.drain(cx, conn),
            Event::PeerClosed => {
                if self.read {
                    self.drain(cx, conn);
                }
                if self.close_on_peer_close {
                    let _ = cx.close(conn);
                }
            }
            _ => {}
        }
    }
}

/// A server and a client stack with their applications, and a clock.
pub struct Pair {
    pub server: Stack,
    pub client: Stack,
    pub server_app: Recorder,
    pub client_app: Recorder,
    pub now: Instant,
    /// Every frame moved so far, with its direction (true: client to server).
    pub log: Vec<(bool, Vec<u8>)>,
}

impl Pair {
    /// The server listens on [`SERVER_PORT`].
    pub fn new(config: StackConfig) -> Pair {
        Self::with_caps(config, ChecksumCaps::default())
    }

    /// [`Pair::new`] with checksum offloads.
    pub fn with_caps(config: StackConfig, caps: ChecksumCaps) -> Pair {
        let mut server = stack(SERVER, CLIENT, config.clone(), caps);
        server.listen(SERVER_PORT).expect("listen");
        Pair {
            server,
            client: stack(CLIENT, SERVER, config, caps),
            server_app: Recorder::new(true, true),
            client_app: Recorder::new(true, true),
            now: Instant::ZERO,
            log: Vec::new(),
        }
    }

    pub fn server_addr() -> SocketAddrV4 {
        SocketAddrV4::new(ip(SERVER), SERVER_PORT)
    }

    /// Moves frames both ways until neither side sends anything; returns how many moved.
    pub fn exchange(&mut self) -> usize {
        let mut moved = 0;
        for _ in 0..1000 {
            let to_server = flush(&mut self.client, &mut self.client_app, self.now);
            deliver(&mut self.server, self.now, &to_server);
            let to_client = flush(&mut self.server, &mut self.server_app, self.now);
            deliver(&mut self.client, self.now, &to_client);
            if to_server.is_empty() && to_client.is_empty() {
                // One more dispatch so that events of the last delivery reach the apps.
                flush(&mut self.client, &mut self.client_app, self.now);
                flush(&mut self.server, &mut self.server_app, self.now);
                return moved;
            }
            moved += to_server.len() + to_client.len();
            self.log.extend(to_server.into_iter().map(|f| (true, f)));
            self.log.extend(to_client.into_iter().map(|f| (false, f)));
        }
        panic!("the stacks never went quiet");
    }

    /// Connects the client to the server and completes the handshake; returns the client's
    /// and the server's connection.
    pub fn connect(&mut self) -> (ConnId, ConnId) {
        let id = self
            .client
            .connect(self.now, Self::server_addr())
            .expect("connect");
        self.exchange();
        let server_conn = *self.server_app.conns.last().expect("accepted");
        assert_eq!(self.client_app.conns.last(), Some(&id), "connected");
        (id, server_conn)
    }

    /// The last logged segment in a direction matching `f`.
    pub fn last(&self, to_server: bool, f: impl Fn(&Seg) -> bool) -> Option<(Seg, Vec<u8>)> {
        self.log
            .iter()
            .rev()
            .filter(|(d, _)| *d == to_server)
            .find_map(|(_, frame)| seg(frame).filter(|s| f(s)).map(|s| (s, frame.clone())))
    }
}
