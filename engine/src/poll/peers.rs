//! One core's end of the state channel between engines (DESIGN.md §4.4), carried on the
//! engine's own TCP: every core listens on the channel port and opens one link to each
//! peer engine; each link speaks [`crate::channel`]'s authenticated messages. A move goes
//! out on the link of the core that started it, and its answers come back on the same
//! link (to the same core); forwarded frames and heartbeats use any link up.
//!
//! Owns the links (their sessions, the bytes in and out), the peers' liveness (a
//! heartbeat every [`HEARTBEAT_EVERY`] on each link; a peer not heard for
//! [`PEER_DEAD_AFTER`] is down and its links are reset), reconnection, and the channel's
//! counters. Messages other than hellos and heartbeats are handed to the poll loop
//! ([`Peers::take_inbox`]), which runs the migration protocol (`remote.rs`).
//!
//! Peers on the same host can be joined by shared-memory lanes instead ([`Lane`],
//! [`Peers::add_lane`]; `migratory-ports`' `shm`): the same handshake, messages and
//! heartbeats over a byte stream per core pair, and no TCP link to such a peer is opened.
//!
//! Why the engine's own TCP: the channel stays kernel-bypass, on the data port, with no
//! second network stack to configure; reliable in-order delivery per link is what the
//! protocol needs (a record arrives before the frames forwarded after it).
//!
//! May not: touch connections other than its links (the poll loop's [`Split`] routes the
//! links' events here and every other event to the application), or block.
use core::net::SocketAddrV4;

use super::lane::{Lane, LaneState};
use crate::channel::{ChannelError, ClusterKey, Message, Role, Session};
use crate::rng::SeededRng;
use crate::stack::{App, ConnId, Ctx, Event, Refusal};
use crate::stats::LatencyHistogram;
use crate::time::{Duration, Instant};

/// How often each link carries a heartbeat (when nothing else was sent).
pub const HEARTBEAT_EVERY: Duration = Duration::from_millis(100);
/// A peer not heard from (on any link) for this long is down.
pub const PEER_DEAD_AFTER: Duration = Duration::from_secs(1);
/// How long a link may take from its first byte to a completed handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(1);
/// How often a core tries to open its link to a peer that has none.
pub const RECONNECT_EVERY: Duration = Duration::from_millis(250);
/// Sealed bytes one link may have waiting for its TCP send buffer; beyond it, new moves
/// A link's congestion window from its first message (Linux's `initcwnd`, raised): a
/// record with a full send buffer (256 KiB by default) leaves in one round trip instead of
/// five of slow start, which a move would wait for with its connection frozen. Links join
/// engines of one cluster, inside a data centre; loss still reduces the window.
pub const LINK_INITIAL_WINDOW: u32 = 256 * 1024;
/// to the peer are refused (busy) and forwarded frames dropped (TCP recovers them).
pub const LINK_BACKLOG: usize = 32 << 20;
/// How often a lane whose stream is down is looked at, and the longest an idle engine
/// with lanes sleeps (a lane raises no interrupt: bytes on it wait for the next look, so
/// with `--idle interrupt` or `sleep` each message of a move may wait this long; a
/// spinning engine sees them at once).
pub const LANE_POLL_EVERY: Duration = Duration::from_micros(100);
/// Bytes taken from a lane per poll, at most (a record is read over several polls).
const LANE_READ_MAX: usize = 1 << 20;

/// Another engine of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAddr {
    pub name: String,
    /// Its channel endpoint (its address and channel port).
    pub addr: SocketAddrV4,
}

/// How an engine joins its cluster.
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    /// This engine's name, as its peers know it.
    pub name: String,
    /// The local port every core listens on for links.
    pub port: u16,
    /// The peers, numbered by their place here ([`crate::migrate::Owner::Peer`]).
    pub peers: Vec<PeerAddr>,
    pub key: ClusterKey,
}

/// What the channel counted on one core. Names are stable: scripts read them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelCounters {
    pub links_opened: u64,
    pub links_accepted: u64,
    pub links_lost: u64,
    pub messages_in: u64,
    pub messages_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Refused input, by reason: each resets its link (nothing else changes).
    pub bad_mac: u64,
    pub replayed: u64,
    pub malformed: u64,
    pub handshake: u64,
    pub unknown_peer: u64,
    pub handshake_timeouts: u64,
    /// Records that did not decode (the message itself was authentic): refused, the
    /// connection stays with its origin.
    pub records_malformed: u64,
    /// Messages about a move this core does not know (late answers after a timeout).
    pub stale: u64,
    /// Frames of moved flows handed to a peer, and taken from one.
    pub frames_forwarded: u64,
    pub frames_received: u64,
    /// Frames that could not be forwarded (no link up, or its backlog full).
    pub frames_dropped: u64,
    pub peers_lost: u64,
}

impl ChannelCounters {
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> {
        let ChannelCounters {
            links_opened,
            links_accepted,
            links_lost,
            messages_in,
            messages_out,
            bytes_in,
            bytes_out,
            bad_mac,
            replayed,
            malformed,
            handshake,
            unknown_peer,
            handshake_timeouts,
            records_malformed,
            stale,
            frames_forwarded,
            frames_received,
            frames_dropped,
            peers_lost,
        } = *self;
        [
            ("channel_links_opened", links_opened),
            ("channel_links_accepted", links_accepted),
            ("channel_links_lost", links_lost),
            ("channel_messages_in", messages_in),
            ("channel_messages_out", messages_out),
            ("channel_bytes_in", bytes_in),
            ("channel_bytes_out", bytes_out),
            ("channel_rejected_bad_mac", bad_mac),
            ("channel_rejected_replay", replayed),
            ("channel_rejected_malformed", malformed),
            ("channel_rejected_handshake", handshake),
            ("channel_rejected_unknown_peer", unknown_peer),
            ("channel_handshake_timeouts", handshake_timeouts),
            ("channel_records_malformed", records_malformed),
            ("channel_stale_messages", stale),
            ("channel_frames_forwarded", frames_forwarded),
            ("channel_frames_received", frames_received),
            ("channel_frames_dropped", frames_dropped),
            ("channel_peers_lost", peers_lost),
        ]
        .into_iter()
    }

    fn rejected(&mut self, e: ChannelError) {
        match e {
            ChannelError::BadMac => self.bad_mac += 1,
            ChannelError::Sequence { .. } => self.replayed += 1,
            ChannelError::Handshake => self.handshake += 1,
            _ => self.malformed += 1,
        }
    }
}

/// One peer as this core sees it, with its migration figures.
#[derive(Debug, Clone, Default)]
pub struct PeerStatus {
    pub name: String,
    pub addr: Option<SocketAddrV4>,
    /// Links up (handshake done) with the peer, both directions.
    pub links_up: u32,
    /// Heard within [`PEER_DEAD_AFTER`].
    pub alive: bool,
    /// Since the peer was last heard.
    pub last_heard: Option<Duration>,
    /// Moves to the peer that ended adopted, and that failed (the connection stayed).
    pub moved_out: u64,
    pub failed_out: u64,
    /// Connections adopted from the peer, and refused.
    pub moved_in: u64,
    pub refused_in: u64,
    /// Freeze to adopted (measured here, the origin: includes the answer's way back).
    pub latency: LatencyHistogram,
}

/// A channel link of this core: its number stays the same for the link's life (a lane
/// whose stream starts anew is a new link, with a new number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkId(u32);

/// What carries a link's bytes.
#[derive(Debug)]
enum Via {
    /// A connection of the engine's own TCP.
    Tcp(ConnId),
    /// A same-host lane, and the generation of its stream this link speaks on (None:
    /// the stream is down).
    Lane {
        lane: Box<dyn Lane>,
        generation: Option<u64>,
    },
}

#[derive(Debug)]
struct Link {
    id: LinkId,
    via: Via,
    session: Session,
    /// The peer's number: known from the start for links we opened, from the hello for
    /// links we accepted.
    peer: Option<u16>,
    outgoing: bool,
    /// Bytes received and not yet a whole message.
    rx: Vec<u8>,
    /// Sealed bytes not yet taken by the TCP send buffer, from `tx_at`.
    tx: Vec<u8>,
    tx_at: usize,
    opened: Instant,
    last_heard: Instant,
    last_sent: Instant,
}

impl Link {
    fn backlog(&self) -> usize {
        self.tx.len() - self.tx_at
    }

    fn is_conn(&self, conn: ConnId) -> bool {
        matches!(self.via, Via::Tcp(c) if c == conn)
    }
}

#[derive(Debug)]
struct PeerState {
    /// The link this core opened to the peer, while it exists.
    out_link: Option<ConnId>,
    next_connect: Instant,
    last_heard: Option<Instant>,
    alive: bool,
    status: PeerStatus,
}

/// A message from a peer for the poll loop: who sent it, on which link.
#[derive(Debug)]
pub struct Incoming {
    pub peer: u16,
    pub link: LinkId,
    pub message: Message,
}

/// One core's links to its peers. See the module documentation.
#[derive(Debug)]
pub struct Peers {
    config: ChannelConfig,
    links: Vec<Link>,
    peers: Vec<PeerState>,
    rng: SeededRng,
    inbox: Vec<Incoming>,
    /// Peers that went down since the poll loop last asked.
    lost: Vec<u16>,
    pub counters: ChannelCounters,
    scratch: Vec<u8>,
    next_link: u32,
    /// Peers reached over lanes only (no TCP link is opened to them).
    lane_peers: Vec<bool>,
    /// When down lanes are next looked at.
    next_lane_check: Instant,
    last_poll: Instant,
}

impl Peers {
    /// The channel of one core; `seed` feeds the handshake nonces (give each core and
    /// each start its own, from the operating system's random source).
    pub fn new(config: ChannelConfig, seed: u64) -> Peers {
        let peers = config
            .peers
            .iter()
            .map(|p| PeerState {
                out_link: None,
                next_connect: Instant::ZERO,
                last_heard: None,
                alive: false,
                status: PeerStatus {
                    name: p.name.clone(),
                    addr: Some(p.addr),
                    ..PeerStatus::default()
                },
            })
            .collect();
        let lane_peers = vec![false; config.peers.len()];
        Peers {
            config,
            links: Vec::new(),
            peers,
            rng: SeededRng::new(seed),
            inbox: Vec::new(),
            lost: Vec::new(),
            counters: ChannelCounters::default(),
            scratch: Vec::new(),
            next_link: 0,
            lane_peers,
            next_lane_check: Instant::ZERO,
            last_poll: Instant::ZERO,
        }
    }

    /// Joins `peer` over `lane` (a same-host link) as well as, or instead of, TCP: once
    /// a peer has a lane, this core opens no TCP link to it.
    pub fn add_lane(&mut self, peer: u16, lane: Box<dyn Lane>) {
        let Some(p) = self.lane_peers.get_mut(usize::from(peer)) else {
            return;
        };
        *p = true;
        let role = if lane.opener() {
            Role::Initiator
        } else {
            Role::Responder
        };
        let link = self.new_link(
            Via::Lane {
                lane,
                generation: None,
            },
            Some(peer),
            role,
            Instant::ZERO,
        );
        self.links.push(link);
    }

    fn next_id(&mut self) -> LinkId {
        self.next_link = self.next_link.wrapping_add(1);
        LinkId(self.next_link)
    }

    /// A session with a fresh nonce.
    fn fresh_session(&mut self, role: Role) -> Session {
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&self.rng.next_u64().to_le_bytes());
        nonce[8..].copy_from_slice(&self.rng.next_u64().to_le_bytes());
        Session::new(role, self.config.key.clone(), &self.config.name, nonce)
    }

    /// A fresh link (its hello not yet written).
    fn new_link(&mut self, via: Via, peer: Option<u16>, role: Role, now: Instant) -> Link {
        Link {
            id: self.next_id(),
            via,
            session: self.fresh_session(role),
            peer,
            outgoing: role == Role::Initiator,
            rx: Vec::new(),
            tx: Vec::new(),
            tx_at: 0,
            opened: now,
            last_heard: now,
            last_sent: now,
        }
    }

    pub fn config(&self) -> &ChannelConfig {
        &self.config
    }

    pub fn peer_count(&self) -> u16 {
        self.peers.len() as u16
    }

    /// The number of the peer called `name`.
    pub fn peer_index(&self, name: &str) -> Option<u16> {
        self.config
            .peers
            .iter()
            .position(|p| p.name == name)
            .map(|i| i as u16)
    }

    /// Starts listening for links (each core: a peer's link may home on any of them).
    pub fn start(&mut self, cx: &mut Ctx<'_>) -> Result<(), crate::stack::StackError> {
        cx.listen(self.config.port)
    }

    /// Whether `conn` is one of the channel's links.
    pub fn is_link(&self, conn: ConnId) -> bool {
        self.links.iter().any(|l| l.is_conn(conn))
    }

    /// Whether the link `id` still exists (a lost link, or a lane's ended stream, does not).
    pub fn has_link(&self, id: LinkId) -> bool {
        self.links.iter().any(|l| l.id == id)
    }

    /// Whether an event is the channel's: an event of a link, or a connection accepted
    /// on the channel port.
    fn takes(&self, conn: ConnId, event: &Event) -> bool {
        match event {
            Event::Accepted { local_port } if *local_port == self.config.port => true,
            _ => self.is_link(conn),
        }
    }

    /// Whether a link to `peer` is up.
    pub fn is_up(&self, peer: u16) -> bool {
        self.link_to(peer).is_some()
    }

    /// Whether `peer` was heard within [`PEER_DEAD_AFTER`].
    pub fn is_alive(&self, peer: u16) -> bool {
        self.peers.get(usize::from(peer)).is_some_and(|p| p.alive)
    }

    /// The messages received since the last call, in arrival order.
    pub fn take_inbox(&mut self, into: &mut Vec<Incoming>) {
        into.append(&mut self.inbox);
    }

    /// Peers that went down since the last call.
    pub fn take_lost(&mut self) -> Vec<u16> {
        core::mem::take(&mut self.lost)
    }

    pub fn has_news(&self) -> bool {
        !self.inbox.is_empty() || !self.lost.is_empty()
    }

    /// Every peer's status, with the figures the poll loop keeps for it.
    pub fn status(&self, now: Instant) -> Vec<PeerStatus> {
        self.peers
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut s = p.status.clone();
                s.links_up = self
                    .links
                    .iter()
                    .filter(|l| l.peer == Some(i as u16) && l.session.is_established())
                    .count() as u32;
                s.alive = p.alive;
                s.last_heard = p.last_heard.map(|t| now.saturating_duration_since(t));
                s
            })
            .collect()
    }

    /// The figures of `peer`, for the poll loop to update.
    pub fn figures_mut(&mut self, peer: u16) -> Option<&mut PeerStatus> {
        self.peers.get_mut(usize::from(peer)).map(|p| &mut p.status)
    }

    /// An established link to `peer`: one this core opened, else any.
    fn link_to(&self, peer: u16) -> Option<LinkId> {
        let up = |l: &&Link| l.peer == Some(peer) && l.session.is_established();
        let own = self.links.iter().filter(up).find(|l| l.outgoing);
        own.or_else(|| self.links.iter().find(up)).map(|l| l.id)
    }

    /// The link this core opened to `peer`, if it is up (moves go on it: their answers
    /// come back on it, to this core).
    pub fn own_link(&self, peer: u16) -> Option<LinkId> {
        self.link_to(peer)
    }

    /// Whether `link` is up and can take `extra` more bytes.
    pub fn has_room(&self, link: LinkId, extra: usize) -> bool {
        self.links
            .iter()
            .find(|l| l.id == link)
            .is_some_and(|l| l.session.is_established() && l.backlog() + extra <= LINK_BACKLOG)
    }

    /// Seals `msg` onto `link` and writes what the TCP send buffer takes. Returns false
    /// (and sends nothing) when the link is not up or its backlog is full.
    pub fn send_on(&mut self, cx: &mut Ctx<'_>, link: LinkId, msg: &Message) -> bool {
        let Some(l) = self.links.iter_mut().find(|l| l.id == link) else {
            return false;
        };
        if !l.session.is_established() || l.backlog() > LINK_BACKLOG {
            return false;
        }
        let before = l.tx.len();
        if l.session.seal(msg, &mut l.tx).is_err() {
            return false;
        }
        self.counters.messages_out += 1;
        self.counters.bytes_out += (l.tx.len() - before) as u64;
        l.last_sent = cx.now();
        flush(cx, l);
        true
    }

    /// Sends `msg` to `peer` on any link up.
    pub fn send_to(&mut self, cx: &mut Ctx<'_>, peer: u16, msg: &Message) -> bool {
        match self.link_to(peer) {
            Some(link) => self.send_on(cx, link, msg),
            None => false,
        }
    }

    /// Forwards a frame of a flow that moved to `peer`.
    pub fn forward_frame(&mut self, cx: &mut Ctx<'_>, peer: u16, frame: &[u8]) {
        let msg = Message::Frame {
            frame: frame.to_vec(),
        };
        if self.send_to(cx, peer, &msg) {
            self.counters.frames_forwarded += 1;
        } else {
            self.counters.frames_dropped += 1;
        }
    }

    /// A link's event (see [`Split`]).
    fn on_event(&mut self, cx: &mut Ctx<'_>, conn: ConnId, event: Event) {
        match event {
            Event::Accepted { .. } => {
                self.counters.links_accepted += 1;
                let _ = cx.raise_congestion_window(conn, LINK_INITIAL_WINDOW);
                self.add_link(cx, conn, None);
            }
            Event::Connected => {
                let _ = cx.raise_congestion_window(conn, LINK_INITIAL_WINDOW);
                if let Some(l) = self.links.iter_mut().find(|l| l.is_conn(conn)) {
                    l.opened = cx.now();
                    l.session.hello(&mut l.tx);
                    flush(cx, l);
                }
            }
            Event::Readable => self.read(cx, conn),
            Event::Writable => {
                if let Some(l) = self.links.iter_mut().find(|l| l.is_conn(conn)) {
                    flush(cx, l);
                }
            }
            Event::PeerClosed => {
                // A peer that closes its link is going away: so do we.
                let _ = cx.close(conn);
            }
            Event::Closed { .. } => self.remove_link(conn),
            Event::Adopted { .. } => {}
        }
    }

    fn add_link(&mut self, cx: &mut Ctx<'_>, conn: ConnId, peer: Option<u16>) {
        // Messages (a forwarded ACK, a prepare) must leave at once: with Nagle's
        // algorithm a small message waits for the acknowledgment of the one before,
        // which the peer delays (40 ms), and every move and forwarded frame with it.
        let _ = cx.set_nodelay(conn, true);
        let role = if peer.is_some() {
            Role::Initiator
        } else {
            Role::Responder
        };
        let mut link = self.new_link(Via::Tcp(conn), peer, role, cx.now());
        if role == Role::Responder {
            link.session.hello(&mut link.tx);
            flush(cx, &mut link);
        }
        self.links.push(link);
    }

    fn remove_link(&mut self, conn: ConnId) {
        let Some(i) = self.links.iter().position(|l| l.is_conn(conn)) else {
            return;
        };
        let link = self.links.swap_remove(i);
        if link.session.is_established() {
            self.counters.links_lost += 1;
        }
        if let Some(p) = link.peer.and_then(|p| self.peers.get_mut(usize::from(p))) {
            if p.out_link == Some(conn) {
                p.out_link = None;
            }
        }
    }

    /// Drops a link on bad input or silence: a TCP link is reset, so that its peer opens a
    /// fresh one; a lane's stream is ended, and both ends start a new one.
    fn drop_link(&mut self, cx: &mut Ctx<'_>, id: LinkId) {
        let Some(i) = self.links.iter().position(|l| l.id == id) else {
            return;
        };
        match &mut self.links[i].via {
            Via::Tcp(conn) => {
                let conn = *conn;
                let _ = cx.abort(conn);
                self.remove_link(conn);
            }
            Via::Lane { lane, .. } => {
                lane.reset();
                self.restart_lane(i, cx.now());
            }
        }
    }

    /// Link `i`, a lane, lost its stream: it becomes a new link (a new number, a fresh
    /// session) that waits for the next stream.
    fn restart_lane(&mut self, i: usize, now: Instant) {
        if self.links[i].session.is_established() {
            self.counters.links_lost += 1;
        }
        let role = if self.links[i].outgoing {
            Role::Initiator
        } else {
            Role::Responder
        };
        let session = self.fresh_session(role);
        let id = self.next_id();
        let l = &mut self.links[i];
        l.id = id;
        l.session = session;
        l.rx.clear();
        l.tx.clear();
        l.tx_at = 0;
        l.opened = now;
        l.last_heard = now;
        l.last_sent = now;
        if let Via::Lane { generation, .. } = &mut l.via {
            *generation = None;
        }
    }

    /// Upkeep of the lanes: streams that started or ended, bytes in, bytes out.
    fn poll_lanes(&mut self, cx: &mut Ctx<'_>) {
        let now = cx.now();
        let check_down = now >= self.next_lane_check;
        if check_down {
            self.next_lane_check = now + LANE_POLL_EVERY;
        }
        for i in 0..self.links.len() {
            let Via::Lane { lane, generation } = &mut self.links[i].via else {
                continue;
            };
            if generation.is_none() && !check_down {
                continue;
            }
            let state = lane.poll();
            match (state, *generation) {
                (LaneState::Up(g), Some(h)) if g == h => {}
                (LaneState::Down, None) => continue,
                (LaneState::Up(g), _) => {
                    // A new stream: a fresh session, which says hello first.
                    if generation.is_some() {
                        self.restart_lane(i, now);
                    }
                    let l = &mut self.links[i];
                    if let Via::Lane { generation, .. } = &mut l.via {
                        *generation = Some(g);
                    }
                    l.opened = now;
                    l.last_heard = now;
                    l.last_sent = now;
                    l.session.hello(&mut l.tx);
                    if l.outgoing {
                        self.counters.links_opened += 1;
                    } else {
                        self.counters.links_accepted += 1;
                    }
                }
                (LaneState::Down, Some(_)) => {
                    self.restart_lane(i, now);
                    continue;
                }
            }
            let mut got = 0;
            let l = &mut self.links[i];
            if let Via::Lane { lane, .. } = &mut l.via {
                got = lane.read(&mut l.rx, LANE_READ_MAX);
            }
            if got > 0 {
                self.counters.bytes_in += got as u64;
                self.parse(cx, i);
            }
            if let Some(l) = self.links.get_mut(i) {
                if l.backlog() > 0 {
                    flush(cx, l);
                }
            }
        }
    }

    fn read(&mut self, cx: &mut Ctx<'_>, conn: ConnId) {
        let Some(i) = self.links.iter().position(|l| l.is_conn(conn)) else {
            return;
        };
        let mut buf = core::mem::take(&mut self.scratch);
        loop {
            buf.clear();
            let n = cx
                .recv_with(conn, |b| {
                    buf.extend_from_slice(b);
                    b.len()
                })
                .unwrap_or(0);
            if n == 0 {
                break;
            }
            self.counters.bytes_in += n as u64;
            self.links[i].rx.extend_from_slice(&buf);
        }
        self.scratch = buf;
        self.parse(cx, i);
    }

    /// Opens the whole messages link `i` received.
    fn parse(&mut self, cx: &mut Ctx<'_>, i: usize) {
        let now = cx.now();
        let id = self.links[i].id;
        if !self.links[i].rx.is_empty() {
            // Bytes of a long message (a record) are a sign of life too: heartbeats
            // queue behind it on the link.
            self.links[i].last_heard = now;
            if let Some(p) = self.links[i]
                .peer
                .and_then(|p| self.peers.get_mut(usize::from(p)))
            {
                if self.links[i].session.is_established() {
                    p.last_heard = Some(now);
                }
            }
        }
        let mut at = 0;
        loop {
            let link = &mut self.links[i];
            match link.session.open(&link.rx[at..]) {
                Ok((msg, used)) => {
                    at += used;
                    self.counters.messages_in += 1;
                    link.last_heard = now;
                    if let Message::Hello { engine, .. } = &msg {
                        let known = self.config.peers.iter().position(|p| p.name == *engine);
                        match (known, link.peer) {
                            (Some(k), None) => link.peer = Some(k as u16),
                            (Some(k), Some(p)) if k as u16 == p => {}
                            _ => {
                                // Not a peer we know, or not the one we called.
                                self.counters.unknown_peer += 1;
                                self.drop_link(cx, id);
                                return;
                            }
                        }
                    }
                    let Some(peer) = link.peer else { continue };
                    let p = &mut self.peers[usize::from(peer)];
                    p.last_heard = Some(now);
                    p.alive = true;
                    match msg {
                        Message::Hello { .. } | Message::Heartbeat { .. } => {}
                        message => self.inbox.push(Incoming {
                            peer,
                            link: id,
                            message,
                        }),
                    }
                }
                Err(ChannelError::Incomplete) => break,
                Err(e) => {
                    self.counters.rejected(e);
                    self.drop_link(cx, id);
                    return;
                }
            }
        }
        self.links[i].rx.drain(..at);
    }

    /// Once per poll: opens missing links, sends heartbeats, drops links that stall in
    /// their handshake or fall silent, and marks peers not heard for
    /// [`PEER_DEAD_AFTER`] as down (their links are reset; [`Peers::take_lost`] names
    /// them).
    pub fn poll(&mut self, cx: &mut Ctx<'_>) {
        let now = cx.now();
        self.last_poll = now;
        self.poll_lanes(cx);
        for i in 0..self.peers.len() {
            let p = &mut self.peers[i];
            if p.out_link.is_none() && !self.lane_peers[i] && now >= p.next_connect {
                p.next_connect = now + RECONNECT_EVERY;
                if let Ok(conn) = cx.connect(self.config.peers[i].addr) {
                    self.counters.links_opened += 1;
                    self.peers[i].out_link = Some(conn);
                    self.add_link(cx, conn, Some(i as u16));
                }
            }
        }
        let mut stale = Vec::new();
        for l in &mut self.links {
            if matches!(
                l.via,
                Via::Lane {
                    generation: None,
                    ..
                }
            ) {
                continue; // no stream: nothing to time out, nothing to send
            }
            let established = l.session.is_established();
            if !established && now.saturating_duration_since(l.opened) > HANDSHAKE_TIMEOUT {
                self.counters.handshake_timeouts += 1;
                stale.push(l.id);
                continue;
            }
            if established && now.saturating_duration_since(l.last_heard) > PEER_DEAD_AFTER {
                stale.push(l.id);
                continue;
            }
            if established && now.saturating_duration_since(l.last_sent) >= HEARTBEAT_EVERY {
                l.last_sent = now;
                let before = l.tx.len();
                let ms = now.as_millis();
                if l.session
                    .seal(&Message::Heartbeat { now_ms: ms }, &mut l.tx)
                    .is_ok()
                {
                    self.counters.messages_out += 1;
                    self.counters.bytes_out += (l.tx.len() - before) as u64;
                }
                flush(cx, l);
            }
        }
        for id in stale {
            self.drop_link(cx, id);
        }
        for (i, p) in self.peers.iter_mut().enumerate() {
            let silent = p
                .last_heard
                .is_none_or(|t| now.saturating_duration_since(t) > PEER_DEAD_AFTER);
            if p.alive && silent {
                p.alive = false;
                self.counters.peers_lost += 1;
                self.lost.push(i as u16);
            }
        }
    }

    /// When the next heartbeat or liveness check is due (the loop must not idle past it).
    pub fn next_deadline(&self) -> Option<Instant> {
        let lanes = self
            .links
            .iter()
            .any(|l| matches!(l.via, Via::Lane { .. }))
            .then_some(self.last_poll + LANE_POLL_EVERY);
        let links = self.links.iter().filter_map(|l| {
            if matches!(
                l.via,
                Via::Lane {
                    generation: None,
                    ..
                }
            ) {
                return None; // no stream: looked at every LANE_POLL_EVERY (below)
            }
            Some(if l.session.is_established() {
                (l.last_sent + HEARTBEAT_EVERY).min(l.last_heard + PEER_DEAD_AFTER)
            } else {
                l.opened + HANDSHAKE_TIMEOUT
            })
        });
        let peers = self.peers.iter().enumerate().filter_map(|(i, p)| {
            // A peer reached over lanes has no TCP link to open.
            if p.out_link.is_none() && !self.lane_peers[i] {
                Some(p.next_connect)
            } else {
                p.last_heard
                    .filter(|_| p.alive)
                    .map(|t| t + PEER_DEAD_AFTER)
            }
        });
        // Just past each deadline: the checks are strict (`>`).
        links
            .chain(peers)
            .chain(lanes)
            .min()
            .map(|t| t + Duration::from_micros(1))
    }

    /// Resets every TCP link (a stopping engine; lanes end their streams when dropped).
    pub fn close_all(&mut self, cx: &mut Ctx<'_>) {
        let tcp: Vec<LinkId> = self
            .links
            .iter()
            .filter(|l| matches!(l.via, Via::Tcp(_)))
            .map(|l| l.id)
            .collect();
        for id in tcp {
            self.drop_link(cx, id);
        }
    }

    /// Whether any link has sealed bytes its TCP send buffer did not take yet.
    pub fn has_backlog(&self) -> bool {
        self.links.iter().any(|l| l.backlog() > 0)
    }

    /// Writes what waits on every link, as far as their send buffers take it.
    pub fn flush_all(&mut self, cx: &mut Ctx<'_>) {
        for l in &mut self.links {
            if l.backlog() > 0 {
                flush(cx, l);
            }
        }
    }

    /// The number of links (any state), for the figures.
    pub fn link_count(&self) -> usize {
        self.links.len()
    }

    /// Whether `link` is one this core opened.
    pub fn is_outgoing(&self, link: LinkId) -> bool {
        self.links.iter().any(|l| l.id == link && l.outgoing)
    }
}

/// Writes as much of `l`'s backlog as the connection takes.
fn flush(cx: &mut Ctx<'_>, l: &mut Link) {
    while l.tx_at < l.tx.len() {
        let sent = match &mut l.via {
            Via::Tcp(conn) => cx.send(*conn, &l.tx[l.tx_at..]).unwrap_or(0),
            Via::Lane { lane, .. } => lane.write(&l.tx[l.tx_at..]),
        };
        if sent == 0 {
            break;
        }
        l.tx_at += sent;
    }
    if l.tx_at == l.tx.len() {
        l.tx.clear();
        l.tx_at = 0;
    } else if l.tx_at > (1 << 20) && l.tx_at * 2 > l.tx.len() {
        l.tx.drain(..l.tx_at);
        l.tx_at = 0;
    }
}

/// The application the stack sees when an engine has a channel: the links' events go to
/// [`Peers`], every other event to the engine's application. Links never move.
pub(super) struct Split<'a, A: ?Sized> {
    pub peers: &'a mut Peers,
    pub app: &'a mut A,
}

impl<A: App + ?Sized> App for Split<'_, A> {
    fn on_event(&mut self, cx: &mut Ctx<'_>, conn: ConnId, event: Event) {
        if self.peers.takes(conn, &event) {
            self.peers.on_event(cx, conn, event);
        } else {
            self.app.on_event(cx, conn, event);
        }
    }

    fn on_poll(&mut self, cx: &mut Ctx<'_>) {
        self.app.on_poll(cx);
    }

    fn export(&mut self, cx: &mut Ctx<'_>, conn: ConnId, out: &mut Vec<u8>) -> Result<(), Refusal> {
        if self.peers.is_link(conn) {
            return Err(Refusal::NotNow("a link of the state channel does not move"));
        }
        self.app.export(cx, conn, out)
    }

    fn import(&mut self, cx: &mut Ctx<'_>, conn: ConnId, snapshot: &[u8]) -> Result<(), Refusal> {
        self.app.import(cx, conn, snapshot)
    }
}
