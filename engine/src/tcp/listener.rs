//! The LISTEN state (RFC 9293 §3.10.7.2): a passive open on one local address and port.
//!
//! Owns the half-open connections (a bounded backlog, in a map keyed by the peer-chosen
//! 4-tuple with a keyed SipHash), the established connections waiting for `accept`, the
//! ISN generator and the SYN-cookie key. When the backlog is full it answers SYNs with
//! SYN cookies and keeps no state. It performs no I/O: stateless replies (cookie SYN-ACKs,
//! resets) and the half-open connections' SYN-ACKs leave through `poll_transmit`.
use std::collections::VecDeque;

use core::net::SocketAddrV4;
use hashbrown::HashMap;

use super::config::TcpConfig;
use super::connection::{Connection, Flags};
use super::input::{reset_for, Disposition};
use super::isn::{ConnectionSeed, IsnGenerator};
use super::output::Transmit;
use super::seq::SeqNumber;
use super::siphash::{SipBuildHasher, SipKey};
use super::state::{State, TcpError};
use super::syncookie::{CookieOptions, SynCookies};
use crate::flow::FourTuple;
use crate::time::Instant;
use crate::wire::tcp::{Control, TcpRepr};

/// How long after the last SYN cookie an ACK failing the cookie check is dropped instead
/// of reset: two cookie periods, the life of a cookie.
const COOKIE_QUIET: crate::time::Duration = crate::time::Duration::from_secs(128);

/// Stateless replies queued at most; more are dropped (and counted). The queue is drained
/// at least once per poll, and one poll takes in up to `poll::RX_CHUNKS_PER_POLL` chunks
/// of `poll::RX_CHUNK` frames (128): at 64, a SYN flood had exactly half of its SYNs
/// dropped here instead of answered with cookies.
const MAX_REPLIES: usize = 256;

/// Sizes of a listener's queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerConfig {
    /// Half-open connections kept before SYN cookies take over.
    pub backlog: usize,
    /// Established connections waiting for [`Listener::accept`].
    pub accept_backlog: usize,
    /// Answer SYNs with cookies when the backlog is full (otherwise drop them).
    pub syn_cookies: bool,
}

/// Linux's sizes on a machine with a few GiB: `tcp_max_syn_backlog` 2048 half-open
/// connections and `somaxconn` 4096 waiting for accept. A half-open connection holds no
/// buffers (a few hundred bytes). At 256, 2,000 clients connecting at once overflowed
/// into SYN cookies, and a cookie can be completed twice: a handshake ACK that reaches
/// the listener after its connection has come and gone (a multi-queue tap delivers a
/// flow's first ACK on another queue than its data) opens a connection nobody uses.
impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            backlog: 2048,
            accept_backlog: 4096,
            syn_cookies: true,
        }
    }
}

/// What the listener did with a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListenOutcome {
    /// A SYN created a half-open connection (SYN-ACK queued).
    HalfOpen,
    /// A SYN was answered with a SYN cookie (backlog full).
    CookieSent,
    /// A SYN was dropped: backlog full and cookies off, or the reply queue full.
    SynDropped,
    /// A valid cookie ACK created an established connection.
    CookieAccepted,
    /// An ACK matched no half-open connection and no valid cookie: RST queued.
    Reset,
    /// Passed to a half-open or not yet accepted connection.
    Connection(Disposition),
    /// Ignored (RST in LISTEN, wrong port, or a segment with neither SYN nor ACK).
    Ignored,
}

/// Counters of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListenerStats {
    pub syns: u64,
    pub cookies_sent: u64,
    pub cookies_accepted: u64,
    pub cookies_rejected: u64,
    pub syns_dropped: u64,
    pub resets_sent: u64,
    pub handshake_timeouts: u64,
}

impl ListenerStats {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &ListenerStats) {
        let ListenerStats {
            syns,
            cookies_sent,
            cookies_accepted,
            cookies_rejected,
            syns_dropped,
            resets_sent,
            handshake_timeouts,
        } = *other;
        self.syns += syns;
        self.cookies_sent += cookies_sent;
        self.cookies_accepted += cookies_accepted;
        self.cookies_rejected += cookies_rejected;
        self.syns_dropped += syns_dropped;
        self.resets_sent += resets_sent;
        self.handshake_timeouts += handshake_timeouts;
    }
}

/// A passive open on `local`.
#[derive(Debug)]
pub struct Listener {
    local: SocketAddrV4,
    config: TcpConfig,
    limits: ListenerConfig,
    isn: IsnGenerator,
    cookies: SynCookies,
    /// Half-open and established-but-not-accepted connections. The peer chooses the key,
    /// so the hash is keyed SipHash.
    conns: HashMap<FourTuple, Connection, SipBuildHasher>,
    /// Established connections in the order they completed, waiting for `accept`.
    ready: VecDeque<FourTuple>,
    replies: VecDeque<(FourTuple, TcpRepr<'static>)>,
    stats: ListenerStats,
    /// When the last SYN cookie was sent.
    last_cookie_at: Option<Instant>,
    /// Connections that may have a segment to send, oldest first (a connection may be
    /// listed twice, or no longer have output: checked when reached). Finding one by
    /// scanning every half-open connection made each SYN-ACK cost O(backlog).
    pending: VecDeque<FourTuple>,
    /// No connection's deadline is earlier than this (it may be earlier than any: the
    /// connection that set it may be gone; the next timeout pass makes it exact).
    earliest: Option<Instant>,
    /// The connection whose segment `poll_transmit` returned last: sending may have armed
    /// its timer, so its deadline is folded into `earliest` at the next call.
    sent: Option<FourTuple>,
}

impl Listener {
    /// A listener on `local` (its address may be unspecified, 0.0.0.0, to accept any
    /// destination address). `isn_key` keys ISNs and timestamp offsets (RFC 6528),
    /// `cookie_key` the SYN cookies and the map hash; both come from the caller's RNG.
    pub fn new(
        local: SocketAddrV4,
        config: TcpConfig,
        limits: ListenerConfig,
        isn_key: SipKey,
        cookie_key: SipKey,
    ) -> Self {
        Listener {
            local,
            config,
            limits,
            isn: IsnGenerator::new(isn_key),
            cookies: SynCookies::new(cookie_key),
            conns: HashMap::with_hasher(SipBuildHasher(cookie_key)),
            ready: VecDeque::new(),
            replies: VecDeque::new(),
            stats: ListenerStats::default(),
            last_cookie_at: None,
            pending: VecDeque::new(),
            earliest: None,
            sent: None,
        }
    }

    /// Takes note of connection `tuple` after it changed: listed for output if it has
    /// some, its deadline folded into `earliest`.
    fn note(&mut self, tuple: FourTuple) {
        let Some(conn) = self.conns.get(&tuple) else {
            return;
        };
        if conn.has_pending_output() {
            self.pending.push_back(tuple);
        }
        if let Some(d) = conn.poll_timeout() {
            self.earliest = Some(self.earliest.map_or(d, |e| e.min(d)));
        }
    }

    /// Folds in the connection that sent last (see `sent`).
    fn note_sent(&mut self) {
        if let Some(tuple) = self.sent.take() {
            self.note(tuple);
        }
    }

    pub fn local(&self) -> SocketAddrV4 {
        self.local
    }
    pub fn config(&self) -> &TcpConfig {
        &self.config
    }
    pub fn stats(&self) -> ListenerStats {
        self.stats
    }
    /// Half-open connections (SYN-RECEIVED).
    pub fn half_open(&self) -> usize {
        self.conns.len() - self.ready.len()
    }
    /// Whether a half-open or not yet accepted connection of `tuple` is here.
    pub fn holds(&self, tuple: &FourTuple) -> bool {
        self.conns.contains_key(tuple)
    }

    /// Established connections waiting for `accept`.
    pub fn pending_accept(&self) -> usize {
        self.ready.len()
    }

    /// Takes the oldest established connection. The caller installs it in its table and
    /// drives it from then on.
    pub fn accept(&mut self) -> Option<Connection> {
        while let Some(tuple) = self.ready.pop_front() {
            if let Some(conn) = self.conns.remove(&tuple) {
                return Some(conn);
            }
        }
        None
    }

    /// Handles a segment from `tuple.remote` to `tuple.local` (seen from this end) that
    /// matched no established connection in the caller's table.
    pub fn handle_segment(
        &mut self,
        now: Instant,
        tuple: FourTuple,
        seg: &TcpRepr<'_>,
    ) -> ListenOutcome {
        let address_ok = self.local.ip().is_unspecified() || tuple.local.ip() == self.local.ip();
        if seg.dst_port != self.local.port()
            || tuple.local.port() != self.local.port()
            || !address_ok
        {
            return ListenOutcome::Ignored;
        }
        if let Some(conn) = self.conns.get_mut(&tuple) {
            let was_ready = conn.state() != State::SynReceived;
            let d = conn.handle_segment(now, seg);
            self.after_connection_event(tuple, was_ready);
            self.note(tuple);
            return ListenOutcome::Connection(d);
        }
        // RFC 9293 §3.10.7.2, LISTEN.
        // First: an incoming RST is ignored.
        if seg.control == Control::Rst {
            return ListenOutcome::Ignored;
        }
        // Second: an ACK is bad unless it completes a SYN cookie: <SEQ=SEG.ACK><CTL=RST>.
        if let Some(ack) = seg.ack_number {
            // Like Linux, a cookie is checked only while cookies are in use (one was sent
            // in the last two cookie periods, the life of a cookie): otherwise no ACK can
            // complete one, and a stray ACK (a duplicate of a handshake whose connection
            // has come and gone) must not open a connection.
            let cookies_in_use = self
                .last_cookie_at
                .is_some_and(|t| now.saturating_duration_since(t) < COOKIE_QUIET);
            if cookies_in_use && (seg.control == Control::None || seg.control == Control::Fin) {
                if let Some(outcome) = self.try_cookie(now, tuple, seg, ack) {
                    return outcome;
                }
            }
            // While cookies are in use, an ACK that fails the check is dropped rather than
            // reset. It may complete a cookie handshake whose first ACK was lost (its
            // sequence number is then past ISN+1 and fails the check); the peer
            // retransmits what we need.
            if cookies_in_use {
                return ListenOutcome::Ignored;
            }
            self.queue_reset(tuple, seg);
            return ListenOutcome::Reset;
        }
        // Third: a SYN.
        if seg.control != Control::Syn {
            // "Any other control or text-bearing segment ... drop it and return."
            return ListenOutcome::Ignored;
        }
        self.stats.syns += 1;
        if self.half_open() < self.limits.backlog {
            let seed = self.isn.seed(now, &tuple);
            match Connection::accept(now, tuple, seed, seg, &self.config) {
                Ok(conn) => {
                    self.conns.insert(tuple, conn);
                    self.note(tuple);
                    ListenOutcome::HalfOpen
                }
                Err(_) => ListenOutcome::Ignored,
            }
        } else if self.limits.syn_cookies && self.replies.len() < MAX_REPLIES {
            let reply = self.cookie_syn_ack(now, tuple, seg);
            self.replies.push_back((tuple, reply));
            self.stats.cookies_sent += 1;
            self.last_cookie_at = Some(now);
            ListenOutcome::CookieSent
        } else {
            self.stats.syns_dropped += 1;
            ListenOutcome::SynDropped
        }
    }

    fn queue_reset(&mut self, tuple: FourTuple, seg: &TcpRepr<'_>) {
        if let Some(rst) = reset_for(seg) {
            if self.replies.len() < MAX_REPLIES {
                self.replies.push_back((tuple, rst));
                self.stats.resets_sent += 1;
            }
        }
    }

    /// Moves a connection that became established to the ready queue, and drops one
    /// that closed (RST, or "return to LISTEN", or a handshake timeout).
    fn after_connection_event(&mut self, tuple: FourTuple, was_ready: bool) {
        let Some(conn) = self.conns.get(&tuple) else {
            return;
        };
        if conn.is_closed() {
            if !was_ready && conn.error() == Some(TcpError::TimedOut) {
                self.stats.handshake_timeouts += 1;
            }
            self.conns.remove(&tuple);
            self.ready.retain(|t| *t != tuple);
        } else if !was_ready && conn.state() != State::SynReceived {
            if self.ready.len() < self.limits.accept_backlog {
                self.ready.push_back(tuple);
            } else {
                // No room to accept: abort rather than keep a connection nobody reads.
                if let Some(c) = self.conns.get_mut(&tuple) {
                    c.abort();
                }
            }
        }
    }

    /// The SYN-ACK of a SYN cookie (the options a half-open connection would send).
    fn cookie_syn_ack(
        &self,
        now: Instant,
        tuple: FourTuple,
        syn: &TcpRepr<'_>,
    ) -> TcpRepr<'static> {
        let peer_mss = syn.max_seg_size.unwrap_or(super::config::DEFAULT_MSS);
        let iss = self.cookies.encode(now, &tuple, syn.seq_number, peer_mss);
        let sack = self.config.sack && syn.sack_permitted;
        let timestamp = match syn.timestamp {
            Some((tsval, _)) if self.config.timestamps => {
                let clock = (now.as_millis() as u32).wrapping_add(self.isn.ts_offset(&tuple));
                let peer_ws = syn.window_scale.filter(|_| self.config.window_scaling);
                Some((SynCookies::encode_ts(clock, peer_ws, sack), tsval))
            }
            _ => None,
        };
        // The peer's shift and SACK-permitted are remembered only in our TSval: without
        // timestamps, offer neither (both sides would otherwise disagree on scaling).
        let ws = (self.config.window_scaling && syn.window_scale.is_some() && timestamp.is_some())
            .then(|| self.config.window_scale());
        TcpRepr {
            src_port: tuple.local.port(),
            dst_port: tuple.remote.port(),
            control: Control::Syn,
            seq_number: iss,
            ack_number: Some(syn.seq_number + 1),
            window_len: self.config.recv_buffer.min(0xffff) as u16,
            window_scale: ws,
            max_seg_size: Some(self.config.effective_mss()),
            sack_permitted: sack && timestamp.is_some(),
            timestamp,
            ..TcpRepr::default()
        }
    }

    fn try_cookie(
        &mut self,
        now: Instant,
        tuple: FourTuple,
        seg: &TcpRepr<'_>,
        ack: SeqNumber,
    ) -> Option<ListenOutcome> {
        if !self.limits.syn_cookies {
            return None;
        }
        let Some(mss) = self.cookies.decode(now, &tuple, seg.seq_number, ack) else {
            self.stats.cookies_rejected += 1;
            return None;
        };
        if self.ready.len() >= self.limits.accept_backlog {
            // Drop silently: the peer retransmits its ACK (or data) later.
            return Some(ListenOutcome::SynDropped);
        }
        let (window_scale, sack_permitted) = match (self.config.timestamps, seg.timestamp) {
            (true, Some((_, tsecr))) => {
                let (ws, sack) = SynCookies::decode_ts(tsecr);
                (
                    ws.filter(|_| self.config.window_scaling),
                    sack && self.config.sack,
                )
            }
            _ => (None, false),
        };
        let options = CookieOptions {
            mss,
            window_scale,
            sack_permitted,
        };
        let seed = ConnectionSeed {
            iss: ack - 1,
            ts_offset: self.isn.ts_offset(&tuple),
        };
        let mut conn = Connection::from_cookie(now, tuple, seed, seg, options, &self.config);
        // The completing ACK may carry data and a window: process it as the established
        // connection would.
        conn.handle_segment(now, seg);
        self.stats.cookies_accepted += 1;
        self.conns.insert(tuple, conn);
        self.ready.push_back(tuple);
        self.note(tuple);
        Some(ListenOutcome::CookieAccepted)
    }

    /// The next segment to send: stateless replies first, then the connections'.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit<'_>> {
        self.note_sent();
        if let Some((tuple, repr)) = self.replies.pop_front() {
            return Some(Transmit {
                tuple,
                repr,
                payload: [&[], &[]],
            });
        }
        let tuple = loop {
            let tuple = self.pending.pop_front()?;
            if self
                .conns
                .get(&tuple)
                .is_some_and(|c| c.has_pending_output())
            {
                break tuple;
            }
        };
        // It may have more to send: `note_sent` lists it again if so.
        self.sent = Some(tuple);
        self.conns.get_mut(&tuple)?.poll_transmit(now)
    }

    /// The earliest deadline of the connections held, or an instant before it (then a
    /// timeout pass finds nothing due and makes it exact).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let sent = self
            .sent
            .and_then(|t| self.conns.get(&t))
            .and_then(Connection::poll_timeout);
        match (self.earliest, sent) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs the connections' timers (SYN-ACK retransmission, handshake timeout). Scans
    /// the connections only when the earliest deadline is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.note_sent();
        if self.earliest.is_none_or(|e| e > now) {
            return;
        }
        let mut closed = false;
        let mut earliest: Option<Instant> = None;
        for (tuple, conn) in self.conns.iter_mut() {
            if conn.poll_timeout().is_some_and(|t| t <= now) {
                conn.handle_timeout(now);
                closed |= conn.is_closed();
                if conn.has_pending_output() {
                    self.pending.push_back(*tuple);
                }
            }
            if let Some(d) = conn.poll_timeout() {
                earliest = Some(earliest.map_or(d, |e| e.min(d)));
            }
        }
        self.earliest = earliest;
        if !closed {
            return;
        }
        // Timers never complete a handshake; they may end one (or a waiting connection).
        let stats = &mut self.stats;
        let ready = &mut self.ready;
        self.conns.retain(|tuple, conn| {
            if !conn.is_closed() {
                return true;
            }
            if conn.error() == Some(TcpError::TimedOut) && conn.snd_una() == conn.iss() {
                stats.handshake_timeouts += 1;
            }
            ready.retain(|t| t != tuple);
            false
        });
    }
}

impl Connection {
    /// An ESTABLISHED connection rebuilt from a valid SYN-cookie ACK `ack_seg`.
    pub(super) fn from_cookie(
        now: Instant,
        tuple: FourTuple,
        seed: ConnectionSeed,
        ack_seg: &TcpRepr<'_>,
        options: CookieOptions,
        config: &TcpConfig,
    ) -> Connection {
        // Rebuild the SYN the peer sent, as far as the cookie remembers it.
        let syn = TcpRepr {
            src_port: ack_seg.src_port,
            dst_port: ack_seg.dst_port,
            control: Control::Syn,
            seq_number: ack_seg.seq_number - 1,
            window_len: ack_seg.window_len,
            max_seg_size: Some(options.mss),
            window_scale: options.window_scale,
            sack_permitted: options.sack_permitted,
            timestamp: ack_seg.timestamp,
            ..TcpRepr::default()
        };
        let mut conn = match Connection::accept(now, tuple, seed, &syn, config) {
            Ok(conn) => conn,
            // `syn` is a SYN without ACK by construction; keep a closed value otherwise.
            Err(_) => Connection::connect(now, tuple, seed, config),
        };
        // The SYN-ACK was sent (statelessly): our SYN occupies ISS.
        conn.snd_nxt = seed.iss + 1;
        conn.snd_max = conn.snd_nxt;
        // Let the ACK itself set the window (SND.WL1 below its sequence number).
        conn.snd_wl1 = conn.irs;
        conn.snd_wnd = 0;
        conn.rcv_adv = conn.rcv_nxt + config.recv_buffer.min(0xffff);
        conn
    }

    /// Whether `poll_transmit` would produce a handshake segment or a reset (used by the
    /// listener to find which half-open connection to poll without polling them all).
    pub(super) fn has_pending_output(&self) -> bool {
        self.reset.is_some()
            || (matches!(self.state, State::SynSent | State::SynReceived)
                && self.snd_nxt == self.iss)
            || (self.state.is_synchronized()
                && (self.flags.has(Flags::ACK_NOW) || self.dupacks_owed > 0))
    }
}
