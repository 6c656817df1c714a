//! The poll loop's part of moving connections between engines (DESIGN.md §4.2, §4.4):
//! the migration protocol over the state channel ([`super::peers`]).
//!
//! ```text
//! origin (core k)                        destination
//!   Prepare{ticket, flow}  ──────────▶   room, not held here?  ── Ready / Abort(refused)
//!   on Ready: freeze, keep a copy,
//!   Record{ticket, record} ──────────▶   decode, adopt (the 4-tuple and its address
//!                                         stay), serve at once  ── Adopted / Abort(refused)
//!   on Adopted: drop the copy; the
//!   redirect forwards late frames  ──▶   Frame{...}: injected as if received
//!   on Abort: take the copy back
//!                                  ◀──   Closed{flow} once the connection ended there
//!   drop the redirect, Release{flow} ─▶
//! ```
//!
//! Exactly one owner: the origin gives a connection up only on `Adopted`, and takes its
//! copy back only on `Abort` or once the destination is down (not heard for
//! [`super::peers::PEER_DEAD_AFTER`]): a destination that adopted answers on the same
//! in-order link before anything else it sends, so an origin still hearing it has its
//! answer coming. One case is decided by assumption: a link that dies while its peer
//! stays up loses the answer; after [`LIMBO`] the origin takes the move as adopted
//! (refusals are rare and the peer, alive, serves what it adopted), and counts it.
//!
//! Drain: every core forwards segments of flows it does not hold (new connections
//! included) to the peer and moves all its connections there; then every core stops
//! answering ARP for the engine's address and tells the peer, which announces it
//! (gratuitous ARP) and answers ARP for it. The engine can then stop without a
//! connection lost.
use std::collections::HashMap;

use super::peers::{Incoming, LinkId, Peers};
use super::Engine;
use crate::channel::{AbortReason, Message};
use crate::control::MoveResult;
use crate::flow::FourTuple;
use crate::iface::ARP_FRAME_LEN;
use crate::migrate::{codec, FlowId, Migration, Owner, Ticket};
use crate::port::{Frame, Port};
use crate::stack::{App, ConnId, Ctx, MigrateError};
use crate::steer::Steer;
use crate::time::{Duration, Instant};

/// How long an origin waits for its Prepare's answer before calling the move off.
pub const PREPARE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a move whose link died (its peer still up) waits before it is taken as
/// adopted.
pub const LIMBO: Duration = Duration::from_secs(3);
/// How often a destination looks for adopted connections that ended (to tell their
/// origins).
pub const SWEEP_EVERY: Duration = Duration::from_millis(500);
/// How long a destination drops the frames its peer forwards of a connection it refused
/// (see [`RemoteState::refused`]).
const REFUSED_LINGER: Duration = Duration::from_secs(2);
/// How often the moves in flight are checked for timeouts.
const CHECK_MOVES_EVERY: Duration = Duration::from_millis(10);

#[derive(Debug)]
enum Phase {
    /// Prepare sent; the connection still serves here.
    Preparing,
    /// Frozen and sent; the copy comes back here on Abort or if the peer goes down.
    Sent {
        copy: Box<Migration>,
        frozen_at: Instant,
    },
}

/// A move to a peer engine that started on this core and has not ended.
#[derive(Debug)]
struct PeerMove {
    ticket: Ticket,
    flow: FlowId,
    peer: u16,
    link: LinkId,
    started: Instant,
    /// When its link died (the peer still up).
    orphaned: Option<Instant>,
    request: Option<usize>,
    phase: Phase,
}

/// The poll loop's state for moves between engines.
#[derive(Debug, Default)]
pub(super) struct RemoteState {
    /// Moves in flight, by ticket (unique on this core).
    moves: HashMap<u64, PeerMove>,
    /// When `check_moves` next looks for timeouts (they are seconds long: a scan every
    /// [`CHECK_MOVES_EVERY`] is enough, and a poll with 1,000 moves in flight does not
    /// pay for a scan of them all).
    next_check: Option<Instant>,
    /// Flows this core moved to a peer and forwards late frames of: their 4-tuple and
    /// the peer.
    forwarded: HashMap<FlowId, (FourTuple, u16)>,
    /// Connections adopted from peers: their 4-tuple, the origin, and the link the
    /// record came on (the origin's core that holds the redirect is at its other end).
    adopted: HashMap<FlowId, (FourTuple, u16, LinkId)>,
    /// Connections whose record this engine refused, and until when the frames of theirs
    /// the origin forwards are dropped. The origin forwards a flow's frames from its
    /// freeze until it hears the refusal, and then serves the connection again: those
    /// frames are its connection's, and injected here they would meet our listener
    /// (which takes every address we hold), whose RST would kill the connection.
    refused: HashMap<FourTuple, Instant>,
    next_sweep: Option<Instant>,
    incoming: Vec<Incoming>,
    /// Moves assumed adopted after their link died ([`LIMBO`]).
    pub assumed_adopted: u64,
    /// Moves whose copy came back because the destination went down.
    pub taken_back_peer_lost: u64,
}

impl RemoteState {
    pub fn in_flight(&self) -> usize {
        self.moves.len()
    }

    pub fn forwarded_flows(&self) -> usize {
        self.forwarded.len()
    }

    pub fn adopted_flows(&self) -> usize {
        self.adopted.len()
    }
}

impl<P: Port, A: App, S: Steer<P::Frame>> Engine<P, A, S> {
    /// Sends `msg` on `link` (a channel link of this core). Returns whether it went.
    fn send_on_link(&mut self, now: Instant, link: LinkId, msg: &Message) -> bool {
        let Some(peers) = self.peers.as_mut() else {
            return false;
        };
        let mut cx = Ctx::new(&mut self.stack, now);
        peers.send_on(&mut cx, link, msg)
    }

    /// Sends `msg` to `peer` on any link up.
    fn send_to_peer(&mut self, now: Instant, peer: u16, msg: &Message) -> bool {
        let Some(peers) = self.peers.as_mut() else {
            return false;
        };
        let mut cx = Ctx::new(&mut self.stack, now);
        peers.send_to(&mut cx, peer, msg)
    }

    /// Hands a frame of a flow that moved to `peer` on.
    pub(super) fn forward_to_peer(&mut self, now: Instant, peer: u16, frame: &[u8]) {
        let Some(peers) = self.peers.as_mut() else {
            self.stack
                .count_drop(crate::stats::DropReason::SteerQueueFull);
            return;
        };
        let mut cx = Ctx::new(&mut self.stack, now);
        peers.forward_frame(&mut cx, peer, frame);
    }

    /// Starts moving connection `id` to peer `peer`: asks the peer first (the connection
    /// keeps serving here meanwhile). The outcome comes later.
    pub(super) fn start_peer_move(
        &mut self,
        now: Instant,
        id: ConnId,
        peer: u16,
        request: Option<usize>,
    ) -> Result<Ticket, MigrateError> {
        let Some(peers) = self.peers.as_ref() else {
            return Err(MigrateError::PeerUnavailable);
        };
        if peers.is_link(id) {
            return Err(MigrateError::Refused(crate::stack::Refusal::NotNow(
                "a link of the state channel does not move",
            )));
        }
        let Some(link) = peers.own_link(peer) else {
            return Err(MigrateError::PeerUnavailable);
        };
        if !peers.has_room(link, 64) {
            return Err(MigrateError::DestinationBusy);
        }
        self.stack.check_movable(id)?;
        let flow = self
            .stack
            .connection(id)
            .map(|c| FlowId::of(&c.tuple()))
            .ok_or(MigrateError::NoConnection)?;
        let ticket = Ticket(self.migration.next_ticket);
        self.migration.next_ticket += 1;
        if !self.send_on_link(
            now,
            link,
            &Message::Prepare {
                ticket: ticket.0,
                flow,
            },
        ) {
            return Err(MigrateError::PeerUnavailable);
        }
        self.remote.moves.insert(
            ticket.0,
            PeerMove {
                ticket,
                flow,
                peer,
                link,
                started: now,
                orphaned: None,
                request,
                phase: Phase::Preparing,
            },
        );
        Ok(ticket)
    }

    /// The channel's share of a poll: links' upkeep, then the peers' messages.
    pub(super) fn channel_work(&mut self, now: Instant) {
        let Some(peers) = self.peers.as_mut() else {
            return;
        };
        {
            let mut cx = Ctx::new(&mut self.stack, now);
            peers.poll(&mut cx);
        }
        let mut acted = false;
        if peers.has_news() {
            let lost = peers.take_lost();
            let mut inbox = core::mem::take(&mut self.remote.incoming);
            peers.take_inbox(&mut inbox);
            for m in inbox.drain(..) {
                self.handle_peer_message(now, m);
            }
            self.remote.incoming = inbox;
            for p in lost {
                self.peer_lost(now, p);
            }
            acted = true;
        }
        if !self.remote.moves.is_empty() && self.remote.next_check.is_none_or(|t| now >= t) {
            self.remote.next_check = Some(now + CHECK_MOVES_EVERY);
            self.check_moves(now);
        }
        if self.remote.next_sweep.is_none_or(|t| now >= t) {
            self.remote.next_sweep = Some(now + SWEEP_EVERY);
            self.remote.refused.retain(|_, until| now < *until);
            self.sweep_adopted(now);
        }
        if acted {
            // Adopted connections' events, and what answering raised.
            self.dispatch(now);
        }
    }

    fn take_move(&mut self, ticket: u64, link: LinkId) -> Option<PeerMove> {
        if self.remote.moves.get(&ticket)?.link != link {
            return None;
        }
        self.remote.moves.remove(&ticket)
    }

    fn handle_peer_message(&mut self, now: Instant, m: Incoming) {
        let Incoming {
            peer,
            link,
            message,
        } = m;
        match message {
            Message::Prepare { ticket, flow } => {
                let room = self.stack.connection_count() < self.stack.config().max_connections;
                let answer = if room && self.stack.find_flow(flow).is_none() {
                    Message::Ready { ticket }
                } else {
                    if let Some(f) = self.peers.as_mut().and_then(|p| p.figures_mut(peer)) {
                        f.refused_in += 1;
                    }
                    Message::Abort {
                        ticket,
                        reason: AbortReason::Refused,
                    }
                };
                self.send_on_link(now, link, &answer);
            }
            Message::Ready { ticket } => self.on_ready(now, ticket, link),
            Message::Record { ticket, record } => self.on_record(now, peer, link, ticket, &record),
            Message::Adopted { ticket } => {
                let Some(mv) = self.take_move(ticket, link) else {
                    self.count_stale();
                    return;
                };
                let Phase::Sent { copy, frozen_at } = mv.phase else {
                    self.count_stale();
                    self.remote.moves.insert(mv.ticket.0, mv);
                    return;
                };
                let latency = self.stamp(now).saturating_duration_since(frozen_at);
                self.migration.latency.adopted.record(latency);
                if let Some(f) = self.peers.as_mut().and_then(|p| p.figures_mut(peer)) {
                    f.moved_out += 1;
                    f.latency.record(latency);
                }
                self.remote
                    .forwarded
                    .insert(mv.flow, (copy.conn.tuple, mv.peer));
                self.resolve_peer_move(mv.flow, mv.peer, mv.request, Ok(latency));
            }
            Message::Abort { ticket, reason } => {
                if let Some(mv) = self.take_move(ticket, link) {
                    self.end_move_failed(now, mv, abort_error(reason));
                }
                // An abort of a move this core did not start (or already ended) needs
                // nothing here: the destination holds no reservation.
            }
            Message::Frame { frame } => self.inject_frame(now, &frame),
            Message::Closed { flow } => match self.remote.forwarded.remove(&flow) {
                Some((tuple, p)) => {
                    self.stack.end_peer_redirect(tuple, p);
                    self.send_on_link(now, link, &Message::Release { flow });
                }
                None => self.count_stale(),
            },
            Message::Release { .. } => {}
            Message::Drained { addr } => {
                self.stack.iface_mut().adopt_address(addr, true);
                self.announce(addr);
                // The peer's cores each say so on their own link, which may reach only
                // some of ours: tell every other core too.
                let this = self.stack.this_core();
                for k in 0..self.stack.core_count().unwrap_or(1) {
                    if Some(Owner::Core(k)) != this {
                        self.send_control(
                            Owner::Core(k),
                            crate::steer::CoreMessage::Address { ip: addr },
                        );
                    }
                }
            }
            Message::Hello { .. } | Message::Heartbeat { .. } => {}
        }
    }

    fn count_stale(&mut self) {
        if let Some(p) = self.peers.as_mut() {
            p.counters.stale += 1;
        }
    }

    /// The destination said yes: freeze, send the record, keep a copy.
    fn on_ready(&mut self, now: Instant, ticket: u64, link: LinkId) {
        let Some(mut mv) = self.take_move(ticket, link) else {
            self.count_stale();
            return;
        };
        if !matches!(mv.phase, Phase::Preparing) {
            self.count_stale();
            self.remote.moves.insert(mv.ticket.0, mv);
            return;
        }
        let gone = |e: &mut Self, mv: PeerMove, error: MigrateError| {
            e.send_on_link(
                now,
                link,
                &Message::Abort {
                    ticket,
                    reason: AbortReason::Gone,
                },
            );
            e.end_move_failed(now, mv, error);
        };
        let Some(id) = self.stack.find_flow(mv.flow) else {
            return gone(self, mv, MigrateError::NoConnection);
        };
        let frozen_at = self.stamp(now);
        let migration = match self
            .stack
            .migrate_out(now, id, Owner::Peer(mv.peer), &mut self.app)
        {
            Ok(m) => m,
            Err(e) => return gone(self, mv, e),
        };
        let mut record = Vec::with_capacity(codec::encoded_len(&migration));
        codec::encode(&migration, &mut record);
        let fits = self
            .peers
            .as_ref()
            .is_some_and(|p| p.has_room(link, record.len()));
        let sent = fits && self.send_on_link(now, link, &Message::Record { ticket, record });
        mv.phase = Phase::Sent {
            copy: Box::new(migration),
            frozen_at,
        };
        if !sent {
            let error = if fits {
                MigrateError::PeerUnavailable
            } else {
                MigrateError::DestinationBusy
            };
            return gone(self, mv, error);
        }
        self.remote.moves.insert(mv.ticket.0, mv);
    }

    /// The destination's side of a record: adopt, or refuse (the origin takes it back).
    fn on_record(&mut self, now: Instant, peer: u16, link: LinkId, ticket: u64, record: &[u8]) {
        let refuse = |e: &mut Self| {
            if let Some(f) = e.peers.as_mut().and_then(|p| p.figures_mut(peer)) {
                f.refused_in += 1;
            }
            e.send_on_link(
                now,
                link,
                &Message::Abort {
                    ticket,
                    reason: AbortReason::Refused,
                },
            );
        };
        let migration = match codec::decode(record) {
            Ok(m) => m,
            Err(_) => {
                if let Some(p) = self.peers.as_mut() {
                    p.counters.records_malformed += 1;
                }
                self.stack.count_failed(MigrateError::BadRecord);
                return refuse(self);
            }
        };
        let flow = migration.flow;
        let tuple = migration.conn.tuple;
        // The connection keeps its address: take IPv4 to it (ARP stays the origin's).
        if !self.stack.iface().is_local(tuple.local_ip()) {
            self.stack
                .iface_mut()
                .adopt_address(tuple.local_ip(), false);
        }
        match self.stack.migrate_in(now, migration, &mut self.app) {
            Ok(_) => {
                self.remote.forwarded.remove(&flow);
                self.remote.refused.remove(&tuple);
                self.remote.adopted.insert(flow, (tuple, peer, link));
                if let Some(f) = self.peers.as_mut().and_then(|p| p.figures_mut(peer)) {
                    f.moved_in += 1;
                }
                self.send_on_link(now, link, &Message::Adopted { ticket });
            }
            Err(_) => {
                self.remote.refused.insert(tuple, now + REFUSED_LINGER);
                refuse(self);
            }
        }
    }

    /// A frame a peer forwarded: in as if the port had received it.
    fn inject_frame(&mut self, now: Instant, data: &[u8]) {
        if !self.remote.refused.is_empty()
            && tcp_tuple(data).is_some_and(|t| {
                self.remote.refused.contains_key(&t) && !self.stack.holds_tuple(&t)
            })
        {
            // Of a connection we refused: the origin's again (see `RemoteState::refused`).
            self.count_stale();
            return;
        }
        let Some(mut frame) = self.port.alloc(data.len()) else {
            self.stack.count_drop(crate::stats::DropReason::NoBuffers);
            return;
        };
        if !frame.set_len(data.len()) {
            self.stack.count_drop(crate::stats::DropReason::NoBuffers);
            return;
        }
        frame.data_mut().copy_from_slice(data);
        // The frame was addressed to the origin's MAC (the sender's neighbour entry still
        // names it): it is ours now, so it gets our address and passes the MAC filter.
        if data.len() >= 6 {
            let mac = self.stack.iface().mac().0;
            frame.data_mut()[..6].copy_from_slice(&mac);
        }
        if let Some(p) = self.peers.as_mut() {
            p.counters.frames_received += 1;
        }
        // One hop: it may still go to the core that holds the connection, not further.
        self.process_frame(now, frame, super::MAX_HOPS - 1);
    }

    /// Announces `ip` (moved here by a drain) with a gratuitous ARP.
    fn announce(&mut self, ip: core::net::Ipv4Addr) {
        self.send_built(ARP_FRAME_LEN, |iface, buf| {
            // The frame has ARP_FRAME_LEN bytes: this cannot fail.
            let _ = iface.emit_gratuitous_arp_for(ip, buf);
        });
    }

    /// A move failed: the connection stays (or comes back) here.
    fn end_move_failed(&mut self, now: Instant, mv: PeerMove, error: MigrateError) {
        if let Phase::Sent { copy, .. } = mv.phase {
            self.take_back_migration(now, *copy);
        }
        if let Some(f) = self.peers.as_mut().and_then(|p| p.figures_mut(mv.peer)) {
            f.failed_out += 1;
        }
        self.resolve_peer_move(mv.flow, mv.peer, mv.request, Err(error));
    }

    /// Timeouts of moves in flight.
    fn check_moves(&mut self, now: Instant) {
        let mut expired = Vec::new();
        for mv in self.remote.moves.values_mut() {
            let link_up = self.peers.as_ref().is_some_and(|p| p.has_link(mv.link));
            if !link_up && mv.orphaned.is_none() {
                mv.orphaned = Some(now);
            }
            let over = match mv.phase {
                Phase::Preparing => now.saturating_duration_since(mv.started) > PREPARE_TIMEOUT,
                Phase::Sent { .. } => mv
                    .orphaned
                    .is_some_and(|t| now.saturating_duration_since(t) > LIMBO),
            };
            if over {
                expired.push(mv.ticket.0);
            }
        }
        for ticket in expired {
            let Some(mv) = self.remote.moves.remove(&ticket) else {
                continue;
            };
            match mv.phase {
                Phase::Preparing => {
                    let (ticket, link) = (mv.ticket.0, mv.link);
                    self.send_on_link(
                        now,
                        link,
                        &Message::Abort {
                            ticket,
                            reason: AbortReason::Timeout,
                        },
                    );
                    self.end_move_failed(now, mv, MigrateError::PeerTimeout);
                }
                Phase::Sent {
                    ref copy,
                    frozen_at,
                } => {
                    // The answer was lost with the link; the peer is up: it adopted.
                    self.remote.assumed_adopted += 1;
                    let latency = self.stamp(now).saturating_duration_since(frozen_at);
                    self.remote
                        .forwarded
                        .insert(mv.flow, (copy.conn.tuple, mv.peer));
                    self.resolve_peer_move(mv.flow, mv.peer, mv.request, Ok(latency));
                }
            }
        }
    }

    /// `peer` went down: every move to it ends here, the connection serving here.
    fn peer_lost(&mut self, now: Instant, peer: u16) {
        let lost: Vec<u64> = self
            .remote
            .moves
            .values()
            .filter(|m| m.peer == peer)
            .map(|m| m.ticket.0)
            .collect();
        for ticket in lost {
            let Some(mv) = self.remote.moves.remove(&ticket) else {
                continue;
            };
            if matches!(mv.phase, Phase::Sent { .. }) {
                self.remote.taken_back_peer_lost += 1;
            }
            self.end_move_failed(now, mv, MigrateError::PeerLost);
        }
    }

    /// Tells origins about adopted connections that ended here.
    fn sweep_adopted(&mut self, now: Instant) {
        if self.remote.adopted.is_empty() {
            return;
        }
        let ended: Vec<(FlowId, u16, LinkId)> = self
            .remote
            .adopted
            .iter()
            .filter(|(_, (tuple, _, _))| !self.stack.holds_tuple(tuple))
            .map(|(&flow, &(_, peer, link))| (flow, peer, link))
            .collect();
        for (flow, peer, link) in ended {
            self.remote.adopted.remove(&flow);
            let msg = Message::Closed { flow };
            if !self.send_on_link(now, link, &msg) {
                // The origin's core that forwards it is on that link's far end; any link
                // reaches the origin, which drops the redirect if the core is the one.
                self.send_to_peer(now, peer, &msg);
            }
        }
    }

    /// Records the outcome of a peer move for the operator's request.
    fn resolve_peer_move(
        &mut self,
        flow: FlowId,
        peer: u16,
        request: Option<usize>,
        outcome: Result<Duration, MigrateError>,
    ) {
        let from = self.this_core().unwrap_or(0);
        self.resolve_result(
            request,
            MoveResult {
                flow,
                from,
                to: Owner::Peer(peer),
                outcome,
            },
        );
    }

    /// Drain, step one on this core: segments of flows not held here go to `peer`.
    pub(super) fn start_drain(&mut self, peer: u16) {
        let port = self.peers.as_ref().map(|p| p.config().port);
        self.stack
            .set_forward_unknown(Some(Owner::Peer(peer)), port.into_iter().collect());
    }

    /// Drain, last step: our address is the peer's now.
    pub(super) fn hand_over(&mut self, now: Instant, peer: u16) -> bool {
        self.stack.iface_mut().hand_over_address(true);
        let addr = self.stack.iface().ipv4_addr();
        self.send_to_peer(now, peer, &Message::Drained { addr })
    }

    /// The figures of the channel and of moves between engines, as named values.
    pub fn channel_figures(&self) -> Vec<(&'static str, u64)> {
        let Some(peers) = self.peers.as_ref() else {
            return Vec::new();
        };
        let mut v: Vec<(&'static str, u64)> = peers.counters.iter().collect();
        v.push(("channel_links", peers.link_count() as u64));
        v.push(("peer_moves_in_flight", self.remote.in_flight() as u64));
        v.push(("peer_flows_forwarded", self.remote.forwarded_flows() as u64));
        v.push(("peer_flows_adopted", self.remote.adopted_flows() as u64));
        v.push(("peer_moves_assumed_adopted", self.remote.assumed_adopted));
        v.push((
            "peer_moves_taken_back_peer_lost",
            self.remote.taken_back_peer_lost,
        ));
        v
    }

    /// The peers as this core sees them, if the engine has a channel.
    pub fn peer_status(&self, now: Instant) -> Vec<super::peers::PeerStatus> {
        self.peers.as_ref().map_or(Vec::new(), |p| p.status(now))
    }

    pub fn peers(&self) -> Option<&Peers> {
        self.peers.as_ref()
    }
}

/// The 4-tuple, seen from here (the receiver), of the TCP segment in Ethernet frame
/// `data`, if it holds one.
fn tcp_tuple(data: &[u8]) -> Option<FourTuple> {
    use crate::wire::ipv4::{IpProtocol, Ipv4Packet};
    use crate::wire::tcp::TcpPacket;
    use crate::wire::{EthernetFrame, EthernetProtocol};
    let eth = EthernetFrame::new_checked(data).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if ip.next_header() != IpProtocol::Tcp {
        return None;
    }
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
    Some(FourTuple::new(
        core::net::SocketAddrV4::new(ip.dst_addr(), tcp.dst_port()),
        core::net::SocketAddrV4::new(ip.src_addr(), tcp.src_port()),
    ))
}

fn abort_error(reason: AbortReason) -> MigrateError {
    match reason {
        AbortReason::Refused => MigrateError::PeerRefused,
        AbortReason::Timeout => MigrateError::PeerTimeout,
        AbortReason::Gone => MigrateError::NoConnection,
    }
}
