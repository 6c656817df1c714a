//! The way out: every pending segment (stateless replies, listeners' handshakes,
//! connections' output) written as Ethernet + IPv4 + TCP into frames the driver
//! allocates, the next hop's MAC address resolved, and connections re-armed on the timer
//! wheel or removed once closed.
//!
//! Owns the frame source (a frame is taken before a segment is committed to its
//! connection's sequence space) and the frame layout of what we send. May not: read
//! frames, or deliver events.
use core::net::Ipv4Addr;

use super::{ConnId, Stack};
use crate::flow::FourTuple;
use crate::iface::Interface;
use crate::port::Frame;
use crate::tcp::{Connection, Listener, State, Transmit};
use crate::time::Instant;
use crate::wire::ethernet::{EthernetFrame, HEADER_LEN as ETH_HEADER_LEN};
use crate::wire::ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr, DEFAULT_HOP_LIMIT};
use crate::wire::tcp::TcpRepr;
use crate::wire::{EthernetAddress, EthernetProtocol, EthernetRepr};

/// IPv4 header length of every packet we send (no options).
const IPV4_HEADER_LEN: usize = 20;

impl Stack {
    /// Writes every pending segment into frames from `alloc` (called with the largest
    /// frame length, before a segment is committed: a pool miss leaves the segment
    /// unsent, not sent-and-lost) and appends them to `out`. Stops early, leaving the
    /// rest for the next call, when `alloc` fails. Removes closed connections and
    /// re-arms timers.
    pub fn transmit<F: Frame>(
        &mut self,
        now: Instant,
        alloc: &mut impl FnMut(usize) -> Option<F>,
        out: &mut Vec<F>,
    ) {
        let caps = self.iface.config().caps;
        let our_mac = self.iface.mac();
        let gateway = self.config.gateway;
        let iface = &self.iface;
        let tcp = &mut self.tcp;
        let mut frames = FrameSource::new(alloc, ETH_HEADER_LEN + usize::from(self.config.tcp.mtu));

        // Stateless replies first: they are the oldest. Without buffers they are dropped
        // (the peer retransmits).
        for (tuple, repr) in self.replies.drain(..) {
            let t = Transmit {
                tuple,
                repr,
                payload: [&[], &[]],
            };
            match resolve(iface, gateway, t.dst_ip(), now) {
                None => tcp.no_route += 1,
                Some(mac) => match frames.write(&t, our_mac, mac, caps, out) {
                    Ok(()) => tcp.segments_out += 1,
                    Err(_) => tcp.no_buffers += 1,
                },
            }
        }

        // Listeners only have output after their input or timers (`listeners_dirty`).
        if self.listeners_dirty {
            'listeners: for listener in &mut self.listeners {
                loop {
                    if !frames.ready() {
                        tcp.no_buffers += 1;
                        break 'listeners;
                    }
                    let Some(t) = listener.poll_transmit(now) else {
                        break;
                    };
                    match resolve(iface, gateway, t.dst_ip(), now) {
                        None => tcp.no_route += 1,
                        Some(mac) => match frames.write(&t, our_mac, mac, caps, out) {
                            Ok(()) => tcp.segments_out += 1,
                            Err(_) => tcp.no_buffers += 1,
                        },
                    }
                }
            }
            if !frames.exhausted {
                self.listener_deadline = self
                    .listeners
                    .iter()
                    .filter_map(Listener::poll_timeout)
                    .min();
                self.listeners_dirty = false;
            }
        }

        let mut touched = core::mem::take(&mut self.touched);
        // Connections whose output could not be tried (no MAC address for the next hop
        // yet, or no buffers) stay touched, in order, for the next call: nothing else
        // would bring them back (their timers are armed by what they send).
        let mut kept = 0;
        for i in 0..touched.len() {
            let id = touched[i];
            let Some(e) = self.slab.get_mut(id) else {
                continue;
            };
            let mut done = false;
            if !frames.exhausted {
                if let Some(mac) = resolve(&self.iface, gateway, e.conn.tuple().remote_ip(), now) {
                    done = true;
                    loop {
                        // The frame first: a segment is committed to the sequence space
                        // only once it has somewhere to go.
                        if !frames.ready() {
                            self.tcp.no_buffers += 1;
                            done = false;
                            break;
                        }
                        let Some(t) = e.conn.poll_transmit(now) else {
                            break;
                        };
                        match frames.write(&t, our_mac, mac, caps, out) {
                            Ok(()) => {
                                self.tcp.segments_out += 1;
                                if let Some(frozen_at) = e.moved_at.take() {
                                    self.first_sends.push(frozen_at);
                                }
                            }
                            // Longer than the frame (cannot happen: segments fit the MTU):
                            // counted; retransmission recovers it.
                            Err(_) => self.tcp.no_buffers += 1,
                        }
                    }
                }
            }
            if e.conn.is_closed() && !e.conn.has_events() {
                e.touched = false;
                self.remove(id);
                continue;
            }
            let mut to_record = false;
            if e.conn.has_events() {
                // Events first (the application has not seen the FIN, or the close, yet):
                // come back after the next dispatch.
                done = false;
            } else if done && e.conn.state() == State::TimeWait {
                // Unread data keeps the connection whole; reading it touches the
                // connection and brings it back here.
                to_record = e.conn.recv_queue() == 0;
            }
            e.touched = !done;
            if to_record && self.replace_by_time_wait_record(id) {
                continue;
            }
            if !done {
                touched[kept] = id;
                kept += 1;
            }
            self.rearm(id);
        }
        touched.truncate(kept);
        self.touched = touched;
    }

    fn rearm(&mut self, id: ConnId) {
        self.slab.recount(id);
        let Some(e) = self.slab.get_mut(id) else {
            return;
        };
        let deadline = e.conn.poll_timeout();
        if deadline == e.deadline && (deadline.is_none() || e.timer.is_some()) {
            return;
        }
        e.deadline = deadline;
        match (deadline, e.timer) {
            (Some(d), Some(h)) => {
                if self.timers.rearm(h, d).is_err() {
                    e.timer = self.timers.arm(d, id).ok();
                }
            }
            (Some(d), None) => e.timer = self.timers.arm(d, id).ok(),
            (None, Some(h)) => {
                self.timers.cancel(h);
                e.timer = None;
            }
            (None, None) => {}
        }
    }

    /// Next hops of connections whose MAC address is unknown, for the driver to ARP.
    /// Only connections still waiting to send are looked at: [`Stack::transmit`] keeps
    /// exactly those touched, so this costs nothing when everything is resolved.
    pub fn unresolved(&self, now: Instant) -> Vec<Ipv4Addr> {
        let mut v = Vec::new();
        for &id in &self.touched {
            let Some(conn) = self.conn(id) else { continue };
            if let Some(hop) = next_hop(&self.iface, self.config.gateway, conn.tuple().remote_ip())
            {
                if self.iface.arp_lookup(hop, now).is_none() && !v.contains(&hop) {
                    v.push(hop);
                }
            }
        }
        v
    }
}

/// The next hop for `dst`: itself on our network, else the gateway.
pub(super) fn next_hop(
    iface: &Interface,
    gateway: Option<Ipv4Addr>,
    dst: Ipv4Addr,
) -> Option<Ipv4Addr> {
    if iface.config().cidr.contains_addr(&dst) {
        Some(dst)
    } else {
        gateway
    }
}

/// The MAC address for `ip` (through the gateway when off-link), if known.
fn resolve(
    iface: &Interface,
    gateway: Option<Ipv4Addr>,
    ip: Ipv4Addr,
    now: Instant,
) -> Option<EthernetAddress> {
    iface.arp_lookup(next_hop(iface, gateway, ip)?, now)
}

/// The RST that tells the peer of an aborted connection, if any.
pub(super) fn conn_reset(conn: &Connection) -> Option<(FourTuple, TcpRepr<'static>)> {
    let repr = TcpRepr {
        src_port: conn.local().port(),
        dst_port: conn.remote().port(),
        control: crate::wire::tcp::Control::Rst,
        seq_number: conn.snd_nxt(),
        ack_number: Some(conn.rcv_nxt()),
        ..TcpRepr::default()
    };
    Some((conn.tuple(), repr))
}

/// Where `transmit` takes its frames: one frame is allocated (at the largest length)
/// before a segment is committed, and kept for the next segment when there turned out to
/// be none. Dropping the source frees the spare.
struct FrameSource<'a, F, A> {
    alloc: &'a mut A,
    max_len: usize,
    spare: Option<F>,
    /// An allocation failed: nothing more is tried in this call.
    exhausted: bool,
}

/// A segment that was not written: no frame at hand, or too long for it.
#[derive(Debug)]
struct NotSent;

impl<'a, F: Frame, A: FnMut(usize) -> Option<F>> FrameSource<'a, F, A> {
    fn new(alloc: &'a mut A, max_len: usize) -> Self {
        FrameSource {
            alloc,
            max_len,
            spare: None,
            exhausted: false,
        }
    }

    /// Whether a frame is at hand (allocating one if needed).
    fn ready(&mut self) -> bool {
        if self.spare.is_none() && !self.exhausted {
            self.spare = (self.alloc)(self.max_len);
            self.exhausted = self.spare.is_none();
        }
        self.spare.is_some()
    }

    /// Writes Ethernet + IPv4 + the segment into the frame at hand and appends it to
    /// `out`. With no frame at hand, or a segment too long for it, the segment is not sent.
    fn write(
        &mut self,
        t: &Transmit<'_>,
        src_mac: EthernetAddress,
        dst_mac: EthernetAddress,
        caps: crate::wire::ChecksumCaps,
        out: &mut Vec<F>,
    ) -> Result<(), NotSent> {
        if !self.ready() {
            return Err(NotSent);
        }
        let Some(mut frame) = self.spare.take() else {
            return Err(NotSent);
        };
        if write_frame(t, src_mac, dst_mac, caps, &mut frame) {
            out.push(frame);
            Ok(())
        } else {
            self.spare = Some(frame);
            Err(NotSent)
        }
    }
}

/// Writes Ethernet + IPv4 + the segment into `frame`, setting its length. False, with
/// the frame's contents undefined, if the segment does not fit.
fn write_frame<F: Frame>(
    t: &Transmit<'_>,
    src_mac: EthernetAddress,
    dst_mac: EthernetAddress,
    caps: crate::wire::ChecksumCaps,
    frame: &mut F,
) -> bool {
    let tcp_len = t.buffer_len();
    let len = ETH_HEADER_LEN + IPV4_HEADER_LEN + tcp_len;
    if !frame.set_len(len) {
        return false;
    }
    let buf = frame.data_mut();
    let mut eth = EthernetFrame::new_unchecked(&mut *buf);
    EthernetRepr {
        src_addr: src_mac,
        dst_addr: dst_mac,
        ethertype: EthernetProtocol::Ipv4,
    }
    .emit(&mut eth);
    let ip = Ipv4Repr {
        src_addr: t.src_ip(),
        dst_addr: t.dst_ip(),
        next_header: IpProtocol::Tcp,
        payload_len: tcp_len,
        hop_limit: DEFAULT_HOP_LIMIT,
    };
    let mut ip_packet = Ipv4Packet::new_unchecked(&mut buf[ETH_HEADER_LEN..]);
    ip.emit(&mut ip_packet, &caps);
    if t.emit(&mut buf[ETH_HEADER_LEN + IPV4_HEADER_LEN..], &caps)
        .is_err()
    {
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iface::IfaceConfig;
    use crate::port::VecFrame;
    use crate::wire::ipv4::Ipv4Cidr;
    use crate::wire::tcp::{Control, SeqNumber, TcpPacket};
    use crate::wire::ChecksumCaps;
    use core::net::SocketAddrV4;

    fn iface() -> Interface {
        let cidr = Ipv4Cidr::new(Ipv4Addr::new(10, 0, 0, 2), 24).expect("cidr");
        Interface::new(IfaceConfig::new(EthernetAddress([2, 0, 0, 0, 0, 2]), cidr))
    }

    fn rst() -> Transmit<'static> {
        Transmit {
            tuple: FourTuple::new(
                SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80),
                SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 9), 4000),
            ),
            repr: TcpRepr {
                src_port: 80,
                dst_port: 4000,
                control: Control::Rst,
                seq_number: SeqNumber(7),
                ..TcpRepr::default()
            },
            payload: [b"ab", b"c"],
        }
    }

    #[test]
    fn next_hop_is_the_peer_on_link_else_the_gateway() {
        let i = iface();
        let on = Ipv4Addr::new(10, 0, 0, 9);
        let off = Ipv4Addr::new(192, 0, 2, 1);
        let gw = Ipv4Addr::new(10, 0, 0, 1);
        assert_eq!(next_hop(&i, None, on), Some(on));
        assert_eq!(next_hop(&i, None, off), None);
        assert_eq!(next_hop(&i, Some(gw), off), Some(gw));
        assert_eq!(next_hop(&i, Some(gw), on), Some(on));
    }

    #[test]
    fn frames_hold_ethernet_ipv4_and_the_segment() {
        let t = rst();
        let mut frame = VecFrame::new(1514);
        let (src, dst) = (
            EthernetAddress([2, 0, 0, 0, 0, 2]),
            EthernetAddress([2, 0, 0, 0, 0, 9]),
        );
        assert!(write_frame(
            &t,
            src,
            dst,
            ChecksumCaps::default(),
            &mut frame
        ));
        let bytes = frame.data();
        assert_eq!(bytes.len(), ETH_HEADER_LEN + IPV4_HEADER_LEN + 20 + 3);
        let eth = EthernetRepr::parse(&EthernetFrame::new_checked(bytes).unwrap()).unwrap();
        assert_eq!((eth.src_addr, eth.dst_addr), (src, dst));
        let ip_packet = Ipv4Packet::new_checked(&bytes[ETH_HEADER_LEN..]).unwrap();
        let ip = Ipv4Repr::parse(&ip_packet, &ChecksumCaps::default()).unwrap();
        assert_eq!(ip.dst_addr, Ipv4Addr::new(10, 0, 0, 9));
        let tcp = TcpPacket::new_checked(&bytes[ETH_HEADER_LEN + IPV4_HEADER_LEN..]).unwrap();
        let repr =
            TcpRepr::parse(&tcp, ip.src_addr, ip.dst_addr, &ChecksumCaps::default()).unwrap();
        assert_eq!(repr.control, Control::Rst);
        assert_eq!(repr.payload, b"abc");
        // Without a frame at hand nothing is written.
        let mut alloc = |_| None::<VecFrame>;
        let mut source = FrameSource::new(&mut alloc, 1514);
        let mut out = Vec::new();
        assert!(source
            .write(&t, src, dst, ChecksumCaps::default(), &mut out)
            .is_err());
        assert!(source.exhausted && out.is_empty());
    }

    #[test]
    fn the_frame_source_allocates_once_and_keeps_a_spare() {
        let mut allocations = 0;
        let mut alloc = |len| {
            allocations += 1;
            (allocations <= 2).then(|| VecFrame::new(len))
        };
        let mut out = Vec::new();
        {
            let mut source = FrameSource::new(&mut alloc, 1514);
            assert!(source.ready() && source.ready(), "one frame at hand");
            let (a, b) = (EthernetAddress([2; 6]), EthernetAddress([4; 6]));
            assert!(source
                .write(&rst(), a, b, ChecksumCaps::default(), &mut out)
                .is_ok());
            assert!(source.ready(), "a second frame");
            assert!(source
                .write(&rst(), a, b, ChecksumCaps::default(), &mut out)
                .is_ok());
            assert!(!source.ready(), "the pool is empty");
            assert!(source
                .write(&rst(), a, b, ChecksumCaps::default(), &mut out)
                .is_err());
        }
        assert_eq!(out.len(), 2);
        assert_eq!(allocations, 3, "no allocation after the pool ran dry");
    }
}
