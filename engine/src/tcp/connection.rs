//! One TCP connection (RFC 9293) as a self-contained, movable value: sequence state,
//! negotiated options, RTT and congestion state, buffers and timers.
//!
//! This file owns the value, its constructors, the application calls (send, recv, close,
//! shutdown, abort), the state transitions and the timers. Segment arrival is in
//! `input.rs`, segment output in `output.rs`. It performs no I/O, reads no clock and draws
//! no random numbers: `now` and the [`ConnectionSeed`] come from the caller.
use core::net::SocketAddrV4;

use super::assembler::Assembler;
use super::config::{Params, TcpConfig, DEFAULT_MSS, MAX_WINDOW_SCALE, MIN_MSS};
use super::congestion::{Congestion, CongestionControl};
use super::isn::ConnectionSeed;
use super::ring::RingBuffer;
use super::rtt::RttEstimator;
use super::sack::Scoreboard;
use super::seq::SeqNumber;
use super::state::{Events, State, TcpError};
use super::timers::{TimerKind, Timers};
use crate::flow::FourTuple;
use crate::time::{Duration, Instant};
use crate::wire::tcp::{Control, TcpRepr};

/// Boolean state of a connection, packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Flags(u32);

impl Flags {
    /// Created from a SYN by a listener (RFC 9293: "initiated with a passive OPEN").
    pub const PASSIVE: u32 = 1 << 0;
    /// Window scaling offered (before the handshake) or in use (after).
    pub const WS: u32 = 1 << 1;
    /// Timestamps offered or in use.
    pub const TS: u32 = 1 << 2;
    /// SACK offered or in use.
    pub const SACK: u32 = 1 << 3;
    /// The application closed the sending direction: a FIN follows the queued data.
    pub const FIN_QUEUED: u32 = 1 << 4;
    /// Our FIN has been sent at least once.
    pub const FIN_SENT: u32 = 1 << 5;
    /// The peer's FIN has been received in order.
    pub const PEER_FIN: u32 = 1 << 6;
    /// The application will not read: received data is discarded.
    pub const READ_CLOSED: u32 = 1 << 7;
    /// An ACK must go out at the next opportunity.
    pub const ACK_NOW: u32 = 1 << 8;
    /// In fast recovery (RFC 6582 / RFC 6675).
    pub const IN_RECOVERY: u32 = 1 << 9;
    /// The first unacknowledged segment must be retransmitted now (fast retransmit or a
    /// NewReno partial ACK).
    pub const REXMIT_HEAD: u32 = 1 << 10;
    /// A zero-window or keepalive probe is due.
    pub const PROBE: u32 = 1 << 11;
    /// The recovery point `recover` of RFC 6582 holds a value.
    pub const RECOVER_SET: u32 = 1 << 12;
    /// The sender-SWS override timeout fired (RFC 9293 §3.8.6.2.1): send what the window
    /// allows even if it is short.
    pub const FORCE: u32 = 1 << 13;
    /// Recovering from a retransmission timeout (RFC 8985 §6.3, RFC 6582's "recover"
    /// after a timeout): lost segments go out before new data until SND.UNA reaches
    /// `recover`.
    pub const LOSS_RECOVERY: u32 = 1 << 14;
    /// A tail loss probe is due (RFC 8985 §7.3).
    pub const TLP_NOW: u32 = 1 << 15;
    /// The loss-detection timer is the probe timeout (RFC 8985 §7.2), not the RACK
    /// reordering timer (§6.2).
    pub const PTO_ARMED: u32 = 1 << 16;
    /// Every bit above.
    pub const ALL: u32 = (1 << 17) - 1;

    pub fn bits(self) -> u32 {
        self.0
    }
    pub fn from_bits(bits: u32) -> Option<Flags> {
        (bits & !Flags::ALL == 0).then_some(Flags(bits))
    }
    pub fn has(self, bit: u32) -> bool {
        self.0 & bit != 0
    }
    pub fn set(&mut self, bit: u32) {
        self.0 |= bit;
    }
    pub fn clear(&mut self, bit: u32) {
        self.0 &= !bit;
    }
    pub fn put(&mut self, bit: u32, on: bool) {
        if on {
            self.set(bit)
        } else {
            self.clear(bit)
        }
    }
    /// Clears `bit` and says whether it was set.
    pub fn take(&mut self, bit: u32) -> bool {
        let was = self.has(bit);
        self.clear(bit);
        was
    }
}

/// A reset to send that is not this connection's own next segment (a reply to a bad
/// segment, RFC 9293 §3.10.7.3/§3.10.7.4): `<SEQ=seq><ACK=ack><CTL=RST>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PendingReset {
    pub seq: SeqNumber,
    pub ack: Option<SeqNumber>,
}

/// Counters of what the connection did, for tests and statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnectionStats {
    /// Segments carrying data, SYN or FIN sent again.
    pub retransmits: u32,
    /// Entries into fast recovery (three duplicate ACKs or SACK loss detection).
    pub fast_recoveries: u32,
    /// Retransmission timer expirations.
    pub timeouts: u32,
    /// Segments retransmitted because the scoreboard marked them lost (RACK, RFC 8985, or
    /// DupThresh, RFC 6675), timeouts and probes excepted.
    pub sack_retransmits: u32,
    /// Segments dropped by the sequence, PAWS, RST, SYN or ACK checks.
    pub dropped: u32,
    /// Challenge ACKs sent (RFC 5961).
    pub challenge_acks: u16,
    /// Recovery episodes undone because every retransmission proved spurious (D-SACK,
    /// RFC 3708).
    pub spurious_undos: u16,
    /// Tail loss probes sent (RFC 8985 §7).
    pub loss_probes: u32,
    /// D-SACK blocks received (RFC 2883).
    pub dsacks_received: u32,
}

/// Which direction(s) [`Connection::shutdown`] closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// No more reads: buffered and future data is discarded.
    Read,
    /// No more writes: a FIN follows the queued data (RFC 9293 CLOSE).
    Write,
    Both,
}

/// One TCP connection. Field names follow RFC 9293 §3.3.1.
#[derive(Debug, Clone)]
pub struct Connection {
    pub(super) tuple: FourTuple,
    pub(super) state: State,
    pub(super) flags: Flags,

    // Send sequence space.
    pub(super) iss: SeqNumber,
    pub(super) snd_una: SeqNumber,
    /// The next sequence number to send; moved back to SND.UNA by a timeout (go-back-N).
    pub(super) snd_nxt: SeqNumber,
    /// The highest sequence number sent plus one ("snd_max" of 4.4BSD).
    pub(super) snd_max: SeqNumber,
    pub(super) snd_wl1: SeqNumber,
    pub(super) snd_wl2: SeqNumber,
    /// The peer's window, scaled (bytes).
    pub(super) snd_wnd: u32,
    /// The largest window the peer offered (RFC 5961 §5.2 MAX.SND.WND).
    pub(super) max_snd_wnd: u32,
    pub(super) snd_wscale: u8,
    pub(super) rcv_wscale: u8,
    /// The peer's MSS (from its SYN, clamped to our MTU).
    pub(super) snd_mss: u16,
    /// The MSS we advertise.
    pub(super) rcv_mss: u16,
    /// The largest payload received so far (what "full-sized" means for delayed ACK).
    pub(super) rcv_seg_max: u16,

    // Receive sequence space.
    pub(super) irs: SeqNumber,
    pub(super) rcv_nxt: SeqNumber,
    /// The right edge of the window last advertised (never moved left, RFC 9293 §3.8.6.2.2).
    pub(super) rcv_adv: SeqNumber,
    /// RCV.NXT as last acknowledged (Last.ACK.sent of RFC 7323 §4.3).
    pub(super) last_ack_sent: SeqNumber,
    /// In-order bytes received since the last ACK we sent.
    pub(super) rcv_unacked: u32,
    /// Duplicate ACKs owed: one per out-of-order segment since RCV.NXT last moved
    /// (RFC 5681 §4.2), so a burst processed at once still yields one each.
    pub(super) dupacks_owed: u8,
    /// Where the peer's FIN sits if it arrived before a gap was filled.
    pub(super) peer_fin_seq: Option<SeqNumber>,

    // Timestamps (RFC 7323).
    pub(super) ts_recent: u32,
    pub(super) ts_recent_at: Instant,
    pub(super) ts_offset: u32,

    // RTT and loss recovery.
    pub(super) rtt: RttEstimator,
    /// Karn timing without timestamps: the segment ending at `rtt_seq` was sent at this time.
    pub(super) rtt_start: Option<Instant>,
    pub(super) rtt_seq: SeqNumber,
    pub(super) cc: Congestion,
    /// Per-segment transmission records, RACK-TLP, undo and PRR state (heap, SACK
    /// connections only).
    pub(super) scoreboard: Scoreboard,
    /// RFC 6582 "recover": the highest sequence sent when the last recovery (or timeout)
    /// began.
    pub(super) recover: SeqNumber,
    pub(super) dupacks: u8,
    pub(super) retries: u8,
    /// Persist timeouts since the window closed (the back-off exponent).
    pub(super) persist_backoff: u8,
    /// Zero-window probes sent since the peer last sent an acceptable segment.
    pub(super) persist_probes: u8,
    pub(super) keepalive_probes: u8,

    // Buffers.
    pub(super) send: RingBuffer,
    pub(super) recv: RingBuffer,
    pub(super) assembler: Assembler,

    pub(super) timers: Timers,
    pub(super) reset: Option<PendingReset>,
    pub(super) challenge_count: u16,
    pub(super) challenge_window: Instant,
    pub(super) events: Events,
    pub(super) error: Option<TcpError>,
    /// Boxed, and only once there is something to count (most connections never do):
    /// 8 bytes instead of 32 in every connection.
    pub(super) stats: Option<Box<ConnectionStats>>,
    /// Shared with the other connections that have the same ([`Params::intern`]).
    pub(super) params: &'static Params,
}

impl Connection {
    fn new(
        now: Instant,
        tuple: FourTuple,
        seed: ConnectionSeed,
        config: &TcpConfig,
        state: State,
    ) -> Self {
        let params = Params::new(config).intern();
        let rcv_mss = config.effective_mss();
        let mut flags = Flags::default();
        flags.put(Flags::WS, config.window_scaling);
        flags.put(Flags::TS, config.timestamps);
        flags.put(Flags::SACK, config.sack);
        let iss = seed.iss;
        Connection {
            tuple,
            state,
            flags,
            iss,
            snd_una: iss,
            snd_nxt: iss,
            snd_max: iss,
            snd_wl1: SeqNumber(0),
            snd_wl2: iss,
            snd_wnd: 0,
            max_snd_wnd: 0,
            snd_wscale: 0,
            rcv_wscale: if config.window_scaling {
                config.window_scale()
            } else {
                0
            },
            snd_mss: DEFAULT_MSS.min(params.mtu_mss),
            rcv_mss,
            rcv_seg_max: 0,
            irs: SeqNumber(0),
            rcv_nxt: SeqNumber(0),
            rcv_adv: SeqNumber(0),
            last_ack_sent: SeqNumber(0),
            rcv_unacked: 0,
            dupacks_owed: 0,
            peer_fin_seq: None,
            ts_recent: 0,
            ts_recent_at: now,
            ts_offset: seed.ts_offset,
            rtt: RttEstimator::new(config.initial_rto, config.min_rto, config.max_rto),
            rtt_start: None,
            rtt_seq: iss,
            cc: Congestion::new(config.congestion, u32::from(DEFAULT_MSS)),
            scoreboard: Scoreboard::default(),
            recover: iss,
            dupacks: 0,
            retries: 0,
            persist_backoff: 0,
            persist_probes: 0,
            keepalive_probes: 0,
            send: RingBuffer::new(),
            recv: RingBuffer::new(),
            assembler: Assembler::default(),
            timers: Timers::default(),
            reset: None,
            challenge_count: 0,
            challenge_window: now,
            events: Events::NONE,
            error: None,
            stats: None,
            params,
        }
    }

    /// Active open (RFC 9293 §3.10.1): the connection starts in SYN-SENT and its first
    /// [`Connection::poll_transmit`] is the SYN.
    pub fn connect(
        now: Instant,
        tuple: FourTuple,
        seed: ConnectionSeed,
        config: &TcpConfig,
    ) -> Self {
        Connection::new(now, tuple, seed, config, State::SynSent)
    }

    /// Passive open from a received SYN (RFC 9293 §3.10.7.2, LISTEN state, third check):
    /// the connection starts in SYN-RECEIVED and its first transmission is the SYN-ACK.
    /// `tuple` is seen from this end. Fails with `InvalidState(Closed)` if `syn` is not a
    /// SYN without ACK.
    pub fn accept(
        now: Instant,
        tuple: FourTuple,
        seed: ConnectionSeed,
        syn: &TcpRepr<'_>,
        config: &TcpConfig,
    ) -> Result<Self, TcpError> {
        if syn.control != Control::Syn || syn.ack_number.is_some() {
            return Err(TcpError::InvalidState(State::Closed));
        }
        let mut conn = Connection::new(now, tuple, seed, config, State::SynReceived);
        conn.flags.set(Flags::PASSIVE);
        conn.irs = syn.seq_number;
        conn.rcv_nxt = syn.seq_number + 1;
        conn.rcv_adv = conn.rcv_nxt;
        conn.last_ack_sent = conn.rcv_nxt;
        conn.negotiate(now, syn);
        // RFC 9293 §3.10.7.2: SND.WND from the SYN (never scaled, RFC 7323 §2.2).
        conn.snd_wnd = u32::from(syn.window_len);
        conn.max_snd_wnd = conn.snd_wnd;
        conn.snd_wl1 = syn.seq_number;
        conn.snd_wl2 = conn.iss;
        // Text in a SYN is legal but we hold it only after the handshake: drop it (the
        // peer retransmits) and ignore a FIN bit the parser could not have combined.
        Ok(conn)
    }

    /// Applies the options of the peer's SYN (or SYN-ACK) to what we offered.
    pub(super) fn negotiate(&mut self, now: Instant, syn: &TcpRepr<'_>) {
        let mss = syn.max_seg_size.unwrap_or(DEFAULT_MSS);
        self.snd_mss = mss.clamp(MIN_MSS, self.params.mtu_mss.max(MIN_MSS));
        match syn.window_scale {
            Some(shift) if self.flags.has(Flags::WS) => {
                // RFC 7323 §2.3: a shift above 14 is used as 14.
                self.snd_wscale = shift.min(MAX_WINDOW_SCALE);
            }
            _ => {
                // RFC 7323 §2.2: both sides must send the option for either to scale.
                self.flags.clear(Flags::WS);
                self.snd_wscale = 0;
                self.rcv_wscale = 0;
            }
        }
        match syn.timestamp {
            Some((tsval, _)) if self.flags.has(Flags::TS) => {
                self.ts_recent = tsval;
                self.ts_recent_at = now;
            }
            _ => self.flags.clear(Flags::TS),
        }
        if !syn.sack_permitted {
            self.flags.clear(Flags::SACK);
        }
        self.cc = Congestion::new(self.cc.algorithm(), u32::from(self.smss()));
    }

    // ----- read-only accessors -------------------------------------------------------

    pub fn state(&self) -> State {
        self.state
    }
    pub fn tuple(&self) -> FourTuple {
        self.tuple
    }
    pub fn local(&self) -> SocketAddrV4 {
        self.tuple.local
    }
    pub fn remote(&self) -> SocketAddrV4 {
        self.tuple.remote
    }
    /// The error that ended the connection, if any.
    pub fn error(&self) -> Option<TcpError> {
        self.error
    }
    /// A RST waits to be sent (the connection is being aborted, or answers a bad segment).
    pub fn has_pending_reset(&self) -> bool {
        self.reset.is_some()
    }
    /// Bytes of heap the connection holds besides itself: its send and receive buffers
    /// (allocated when data first flows, released when they empty) and its out-of-order
    /// ranges.
    pub fn buffer_bytes(&self) -> usize {
        self.send.allocated() + self.recv.allocated() + self.assembler.heap_bytes()
    }

    /// CLOSED with nothing left to send: the owner may drop the value.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed && self.reset.is_none()
    }
    pub fn is_established(&self) -> bool {
        self.state.is_synchronized() && self.state != State::TimeWait
    }
    /// Created by a passive open.
    pub fn is_passive(&self) -> bool {
        self.flags.has(Flags::PASSIVE)
    }
    pub fn iss(&self) -> SeqNumber {
        self.iss
    }
    pub fn irs(&self) -> SeqNumber {
        self.irs
    }
    pub fn snd_una(&self) -> SeqNumber {
        self.snd_una
    }
    pub fn snd_nxt(&self) -> SeqNumber {
        self.snd_nxt
    }
    pub fn snd_wnd(&self) -> u32 {
        self.snd_wnd
    }
    pub fn rcv_nxt(&self) -> SeqNumber {
        self.rcv_nxt
    }
    /// The receive window as last advertised (bytes beyond RCV.NXT).
    pub fn rcv_wnd(&self) -> u32 {
        self.rcv_adv.distance_from(self.rcv_nxt)
    }
    /// The send MSS: the peer's MSS less the timestamp option when in use (RFC 6691).
    pub fn smss(&self) -> u16 {
        let ts = if self.flags.has(Flags::TS) { 12 } else { 0 };
        self.snd_mss.saturating_sub(ts).max(1)
    }
    pub fn window_scaling(&self) -> Option<(u8, u8)> {
        self.flags
            .has(Flags::WS)
            .then_some((self.snd_wscale, self.rcv_wscale))
    }
    pub fn timestamps_enabled(&self) -> bool {
        self.flags.has(Flags::TS)
    }
    pub fn sack_enabled(&self) -> bool {
        self.flags.has(Flags::SACK)
    }
    pub fn cwnd(&self) -> u32 {
        self.cc.cwnd()
    }
    pub fn ssthresh(&self) -> u32 {
        self.cc.ssthresh()
    }
    pub fn congestion(&self) -> &Congestion {
        &self.cc
    }
    pub fn in_recovery(&self) -> bool {
        self.flags.has(Flags::IN_RECOVERY)
    }
    pub fn srtt(&self) -> Option<Duration> {
        self.rtt.srtt()
    }
    pub fn rto(&self) -> Duration {
        self.rtt.rto()
    }
    pub fn stats(&self) -> ConnectionStats {
        self.stats.as_deref().copied().unwrap_or_default()
    }
    /// The statistics, to count something in (boxed on first use).
    pub(super) fn stats_mut(&mut self) -> &mut ConnectionStats {
        self.stats.get_or_insert_with(Box::default)
    }
    /// Bytes queued and not yet acknowledged.
    pub fn send_queue(&self) -> usize {
        self.send.len()
    }
    /// Bytes [`Connection::send`] would accept now.
    pub fn send_capacity(&self) -> usize {
        if self.flags.has(Flags::FIN_QUEUED) || !self.state.can_send() {
            return 0;
        }
        (self.params.send_buffer as usize).saturating_sub(self.send.len())
    }
    /// In-order bytes ready for [`Connection::recv`].
    pub fn recv_queue(&self) -> usize {
        self.recv.len()
    }
    /// Data or the end of stream can be read.
    pub fn can_recv(&self) -> bool {
        !self.recv.is_empty() || self.flags.has(Flags::PEER_FIN)
    }
    pub fn can_send(&self) -> bool {
        self.send_capacity() > 0
    }
    /// The peer's FIN has arrived.
    pub fn peer_closed(&self) -> bool {
        self.flags.has(Flags::PEER_FIN)
    }
    /// Bytes of buffer memory currently allocated (an idle connection holds none).
    pub fn buffer_memory(&self) -> usize {
        self.send.allocated() + self.recv.allocated()
    }

    /// The highest sequence number sent plus one.
    pub fn snd_max(&self) -> SeqNumber {
        self.snd_max
    }

    /// Whether a new SYN for this 4-tuple may reopen the connection from TIME-WAIT
    /// (RFC 1122 §4.2.2.13, RFC 6191): its timestamp is newer than TS.Recent or, without
    /// timestamps, its sequence number is beyond RCV.NXT. The owner then drops this value
    /// and lets the listener create the new connection; RFC 6528 ISNs (a clock term plus a
    /// fixed hash per 4-tuple) keep the new ISN above this incarnation's sequence space.
    pub fn time_wait_accepts_syn(&self, syn: &TcpRepr<'_>) -> bool {
        if self.state != State::TimeWait || syn.control != Control::Syn || syn.ack_number.is_some()
        {
            return false;
        }
        match (self.flags.has(Flags::TS), syn.timestamp) {
            (true, Some((tsval, _))) => (tsval.wrapping_sub(self.ts_recent) as i32) > 0,
            _ => syn.seq_number.gt(self.rcv_nxt),
        }
    }

    /// In TIME-WAIT, the compact record that can stand for this connection for the rest
    /// of it, with the instant its 2·MSL timer ends; `None` in any other state. The owner
    /// may then drop the connection and answer its 4-tuple from the record
    /// ([`super::TimeWaitRecord::handle_segment`]).
    pub fn time_wait_record(&self) -> Option<(super::TimeWaitRecord, Instant)> {
        if self.state != State::TimeWait {
            return None;
        }
        let expiry = self.timers.get(TimerKind::Close)?;
        let field = (self.rcv_wnd() >> self.rcv_wscale).min(0xffff) as u16;
        let record = super::TimeWaitRecord {
            snd_nxt: self.snd_max,
            rcv_nxt: self.rcv_nxt,
            rcv_wnd: field,
            rcv_wscale: self.rcv_wscale,
            ts_recent: self.flags.has(Flags::TS).then_some(self.ts_recent),
            ts_offset: self.ts_offset,
        };
        Some((record, expiry))
    }

    /// Whether events wait for [`Connection::take_events`].
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Takes the events accumulated since the last call.
    pub fn take_events(&mut self) -> Events {
        core::mem::take(&mut self.events)
    }

    // ----- application calls (RFC 9293 §3.10) -----------------------------------------

    /// SEND (RFC 9293 §3.10.2): queues as much of `data` as the send buffer takes and
    /// returns the count. Data queued in SYN-SENT or SYN-RECEIVED goes out once
    /// established.
    pub fn send(&mut self, data: &[u8]) -> Result<usize, TcpError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.flags.has(Flags::FIN_QUEUED) {
            return Err(TcpError::Closing);
        }
        if !self.state.can_send() {
            return Err(TcpError::InvalidState(self.state));
        }
        Ok(self.send.push(data, self.params.send_buffer as usize))
    }

    /// RECEIVE (RFC 9293 §3.10.3): copies in-order data into `buf`. `Ok(0)` means nothing
    /// yet; `Err(Finished)` means the peer closed and everything was read.
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TcpError> {
        if self.recv.is_empty() {
            if self.flags.has(Flags::PEER_FIN) {
                return Err(TcpError::Finished);
            }
            if let Some(e) = self.error {
                return Err(e);
            }
            return Ok(0);
        }
        let n = self.recv.read(buf);
        self.after_read();
        Ok(n)
    }

    /// Zero-copy receive: hands the contiguous readable bytes to `f`, which returns how
    /// many it consumed.
    pub fn recv_with<F: FnOnce(&[u8]) -> usize>(&mut self, f: F) -> Result<usize, TcpError> {
        if self.recv.is_empty() {
            return self.recv(&mut []);
        }
        let (first, _) = self.recv.slices(0, self.recv.len());
        let n = f(first).min(first.len());
        self.recv.consume(n);
        self.after_read();
        Ok(n)
    }

    fn after_read(&mut self) {
        if self.recv.is_empty() && self.assembler.is_empty() {
            self.recv.release_if_empty();
        }
        // Window update: tell the peer when the window opened by enough to matter
        // (RFC 9293 §3.8.6.2.2 receiver SWS avoidance).
        if self.state.can_receive() && self.window_update_due() {
            self.flags.set(Flags::ACK_NOW);
        }
    }

    /// CLOSE (RFC 9293 §3.10.4): no more data will be sent; a FIN follows the queued data.
    /// Receiving continues (half-close) until the peer's FIN.
    pub fn close(&mut self) -> Result<(), TcpError> {
        match self.state {
            State::Closed => Err(TcpError::InvalidState(State::Closed)),
            State::SynSent => {
                // "Delete the TCB ... return 'error: closing'" for queued SENDs.
                self.enter_closed(None);
                Ok(())
            }
            State::SynReceived => {
                // Queued until ESTABLISHED (§3.10.4 SYN-RECEIVED).
                self.flags.set(Flags::FIN_QUEUED);
                Ok(())
            }
            State::Established => {
                self.flags.set(Flags::FIN_QUEUED);
                self.set_state(State::FinWait1);
                Ok(())
            }
            State::CloseWait => {
                self.flags.set(Flags::FIN_QUEUED);
                self.set_state(State::LastAck);
                Ok(())
            }
            State::FinWait1
            | State::FinWait2
            | State::Closing
            | State::LastAck
            | State::TimeWait => Err(TcpError::Closing),
        }
    }

    /// Closes one or both directions. `Write` is [`Connection::close`]; `Read` discards
    /// buffered and future data (still acknowledged, so the peer is not stalled).
    pub fn shutdown(&mut self, how: Shutdown, now: Instant) -> Result<(), TcpError> {
        if matches!(how, Shutdown::Read | Shutdown::Both) {
            self.flags.set(Flags::READ_CLOSED);
            self.recv.consume(self.recv.len());
            self.assembler.clear();
            self.recv.release_if_empty();
            if self.state == State::FinWait2 {
                self.arm_fin_wait_2(now);
            }
        }
        if matches!(how, Shutdown::Write | Shutdown::Both) {
            match self.close() {
                Ok(()) | Err(TcpError::Closing) => {}
                Err(e) => return Err(e),
            }
            if self.state == State::FinWait2 {
                self.arm_fin_wait_2(now);
            }
        }
        Ok(())
    }

    /// ABORT (RFC 9293 §3.10.5): sends a RST where the peer has state and goes to CLOSED.
    /// Turns Nagle's algorithm on or off for this connection (off: TCP_NODELAY), for
    /// request/response or message traffic whose small writes must leave at once.
    pub fn set_nagle(&mut self, on: bool) {
        if self.params.nagle != on {
            self.params = Params {
                nagle: on,
                ..*self.params
            }
            .intern();
        }
    }

    /// Raises the congestion window to at least `bytes` (once synchronized; the handshake
    /// sets it afresh): a larger initial window, as Linux's `initcwnd` route option, for
    /// a connection inside one data centre that must send a burst in one round trip.
    /// Loss still reduces it as usual. Returns whether it applied.
    pub fn raise_congestion_window(&mut self, bytes: u32) -> bool {
        if !self.state().is_synchronized() {
            return false;
        }
        if self.cc.cwnd() < bytes {
            self.cc.set_cwnd(bytes);
        }
        true
    }

    pub fn abort(&mut self) {
        if matches!(
            self.state,
            State::SynReceived
                | State::Established
                | State::FinWait1
                | State::FinWait2
                | State::CloseWait
        ) {
            // <SEQ=SND.NXT><CTL=RST>, with the ACK Linux and BSD also send.
            self.reset = Some(PendingReset {
                seq: self.snd_max,
                ack: Some(self.rcv_nxt),
            });
        }
        if self.state != State::Closed {
            self.enter_closed(Some(TcpError::Aborted));
        }
    }

    // ----- transitions -------------------------------------------------------------

    /// Moves to `next` and does what entering it requires. Every state change goes
    /// through here (or `enter_closed`).
    pub(super) fn set_state(&mut self, next: State) {
        if next == self.state {
            return;
        }
        let prev = self.state;
        self.state = next;
        match next {
            State::Established | State::CloseWait if !prev.is_synchronized() => {
                self.events.insert(Events::ESTABLISHED);
                if self.send_capacity() > 0 {
                    self.events.insert(Events::WRITABLE);
                }
            }
            State::TimeWait => {
                // RFC 9293 §3.10.7.4: start the time-wait timer, turn off the others.
                self.timers.cancel_all();
                self.flags.clear(Flags::PROBE);
            }
            State::Closed => {
                self.timers.cancel_all();
                self.events.insert(Events::CLOSED);
            }
            _ => {}
        }
    }

    /// Goes to CLOSED, dropping buffers; `error` is reported to the application.
    pub(super) fn enter_closed(&mut self, error: Option<TcpError>) {
        if let Some(e) = error {
            if self.error.is_none() {
                self.error = Some(e);
                self.events.insert(Events::ERROR);
            }
        }
        self.send = RingBuffer::new();
        if error.is_some() {
            self.recv = RingBuffer::new();
        }
        self.assembler.clear();
        self.scoreboard.clear();
        self.flags
            .clear(Flags::ACK_NOW | Flags::PROBE | Flags::REXMIT_HEAD);
        self.dupacks_owed = 0;
        self.set_state(State::Closed);
    }

    pub(super) fn enter_time_wait(&mut self, now: Instant) {
        self.set_state(State::TimeWait);
        // RFC 9293 §3.10.7.4 eighth check: (re)start the 2 MSL timer.
        self.timers
            .set(TimerKind::Close, now + self.params.time_wait());
    }

    pub(super) fn arm_fin_wait_2(&mut self, now: Instant) {
        if self.flags.has(Flags::READ_CLOSED) {
            if let Some(timeout) = self.params.fin_wait_2() {
                self.timers.set_if_idle(TimerKind::Close, now + timeout);
            }
        }
    }

    pub(super) fn arm_keepalive(&mut self, now: Instant) {
        if let Some(idle) = self.params.keepalive_idle() {
            if matches!(self.state, State::Established | State::CloseWait) {
                self.timers.set(TimerKind::Keepalive, now + idle);
                self.keepalive_probes = 0;
            }
        }
    }

    /// RFC 5961 §7: send a challenge ACK unless this second's budget is spent.
    pub(super) fn challenge_ack(&mut self, now: Instant) {
        if now - self.challenge_window >= Duration::from_secs(1) {
            self.challenge_window = now;
            self.challenge_count = 0;
        }
        if self.challenge_count < self.params.challenge_ack_limit {
            self.challenge_count += 1;
            let n = &mut self.stats_mut().challenge_acks;
            *n = n.saturating_add(1);
            self.flags.set(Flags::ACK_NOW);
        }
    }

    // ----- timers ------------------------------------------------------------------

    /// The earliest deadline at which [`Connection::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(kind) = self.timers.pop_expired(now) {
            match kind {
                TimerKind::Retransmit => self.on_retransmit_timeout(now),
                TimerKind::LossDetection => self.on_loss_detection_timeout(now),
                TimerKind::Persist => self.on_persist_timeout(now),
                TimerKind::DelayedAck => self.flags.set(Flags::ACK_NOW),
                TimerKind::Keepalive => self.on_keepalive_timeout(now),
                TimerKind::Close => {
                    // TIME-WAIT's 2MSL (RFC 9293 §3.10.8) or the FIN-WAIT-2 timeout.
                    if matches!(self.state, State::TimeWait | State::FinWait2) {
                        self.enter_closed(None);
                    }
                }
            }
        }
    }

    /// RFC 6298 §5.4-5.7 with RFC 5681 §3.1 and RFC 6582 §3.2 step 4.
    fn on_retransmit_timeout(&mut self, now: Instant) {
        let syn_pending = matches!(self.state, State::SynSent | State::SynReceived);
        if self.snd_una == self.snd_max && !syn_pending {
            return;
        }
        if matches!(self.state, State::Closed | State::TimeWait) {
            return;
        }
        self.retries = self.retries.saturating_add(1);
        let n = &mut self.stats_mut().timeouts;
        *n = n.saturating_add(1);
        let limit = if syn_pending {
            self.params.max_syn_retries
        } else {
            self.params.max_retries
        };
        if self.retries > limit {
            // RFC 9293 §3.8.3: R2 reached, close the connection.
            self.enter_closed(Some(TcpError::TimedOut));
            return;
        }
        // §5.5: back off the timer.
        self.rtt.back_off();
        let prior = (self.cc.cwnd(), self.cc.ssthresh());
        if self.state.is_synchronized() || self.state == State::SynReceived {
            let mss = u32::from(self.smss());
            let flight = self.snd_max.distance_from(self.snd_una);
            if self.retries == 1 {
                // RFC 5681 §3.1 (4): ssthresh from FlightSize on the first timeout only.
                self.cc.on_retransmit_timeout(now, flight, mss);
            } else {
                self.cc.set_cwnd(mss);
            }
        }
        self.flags.clear(Flags::TLP_NOW | Flags::PTO_ARMED);
        self.timers.cancel(TimerKind::LossDetection);
        self.dupacks = 0;
        let in_flight = self.snd_max.distance_from(self.snd_una);
        if self.flags.has(Flags::SACK)
            && in_flight > 0
            && self.scoreboard.span() == Some((self.snd_una, self.snd_max))
        {
            // RFC 8985 §6.3: mark the head and every segment sent more than RACK.rtt +
            // reo_wnd ago lost; they go out first, as the window (one segment) allows.
            // SACK information is kept: RFC 6675 §5.1 allows it when reneging is
            // detected (the scoreboard drops its marks when a cumulative ACK stops at
            // SACKed data, RFC 2018 §8), and asks to use what arrives afterwards.
            if !self.flags.has(Flags::IN_RECOVERY) && !self.flags.has(Flags::LOSS_RECOVERY) {
                // RFC 3708: the reduction may prove spurious (D-SACKs for every
                // retransmission). A timeout during recovery keeps that episode's values.
                self.scoreboard
                    .begin_undo_episode(self.snd_una, prior.0, prior.1);
            }
            self.scoreboard.mark_lost_on_timeout(now, self.rtt.srtt());
            self.flags.set(Flags::LOSS_RECOVERY);
        } else {
            // RFC 6582 §3.2 step 4 and RFC 6675 §5.1 without a usable scoreboard: forget
            // SACK information (RFC 2018 §8) and go back to SND.UNA (RFC 6298 §5.4).
            self.scoreboard.clear();
            self.snd_nxt = self.snd_una;
        }
        // Leave fast recovery, remembering the highest sequence sent.
        self.recover = self.snd_max;
        self.flags.set(Flags::RECOVER_SET);
        self.flags.clear(Flags::IN_RECOVERY | Flags::REXMIT_HEAD);
        if self.flags.has(Flags::LOSS_RECOVERY) {
            // §5.4: the earliest unacknowledged segment goes out now, whatever the
            // pipe says (segments sent recently are still counted in flight).
            self.flags.set(Flags::REXMIT_HEAD);
        }
        // Karn: a retransmitted segment gives no RTT sample.
        self.rtt_start = None;
        // §5.6: the timer restarts when the retransmission is sent (poll_transmit).
    }

    /// RFC 9293 §3.8.6.1: probe a zero window, backing off exponentially.
    fn on_persist_timeout(&mut self, now: Instant) {
        if !matches!(
            self.state,
            State::Established
                | State::CloseWait
                | State::FinWait1
                | State::Closing
                | State::LastAck
        ) {
            return;
        }
        if self.send.is_empty() {
            self.persist_backoff = 0;
            return;
        }
        // RFC 1122 §4.2.2.17: the connection lives while the peer answers the probes. One
        // that stops answering is gone (Linux: tcp_retries2), and one the application has
        // closed must not hold its buffers for ever even if the peer answers (RFC 6429;
        // Linux: tcp_orphan_retries).
        let orphan = self.flags.has(Flags::FIN_QUEUED);
        if self.persist_probes >= self.params.max_persist_probes
            || (orphan && self.persist_backoff >= self.params.max_orphan_persist_probes)
        {
            self.enter_closed(Some(TcpError::TimedOut));
            return;
        }
        // A window too small for the queued data is used anyway (the override timeout of
        // sender SWS avoidance, §3.8.6.2.1); with no room at all, even in a window that is
        // not zero (a stale one), the peer is probed: something must draw its answer.
        // `plan` turns the override into a probe if it finds nothing it may send.
        let room = (self.snd_wl2 + self.snd_wnd).distance_from(self.snd_nxt);
        if room > 0 {
            self.flags.set(Flags::FORCE);
        } else {
            self.flags.set(Flags::PROBE);
        }
        self.persist_probes = self.persist_probes.saturating_add(1);
        self.persist_backoff = self.persist_backoff.saturating_add(1).min(16);
        self.arm_persist(now);
    }

    pub(super) fn arm_persist(&mut self, now: Instant) {
        let base = self.rtt.rto();
        let delay = base
            .saturating_mul(1 << self.persist_backoff.min(16))
            .min(Duration::from_secs(60));
        self.timers.set(TimerKind::Persist, now + delay);
    }

    /// RFC 9293 §3.8.4 (RFC 1122 §4.2.3.6): probe an idle connection.
    fn on_keepalive_timeout(&mut self, now: Instant) {
        if !matches!(self.state, State::Established | State::CloseWait) {
            return;
        }
        if self.snd_una != self.snd_max {
            // Data in flight: the retransmission timer watches the peer.
            if let Some(idle) = self.params.keepalive_idle() {
                self.timers.set(TimerKind::Keepalive, now + idle);
            }
            return;
        }
        if self.keepalive_probes >= self.params.keepalive_probes {
            self.enter_closed(Some(TcpError::TimedOut));
            return;
        }
        self.keepalive_probes += 1;
        self.flags.set(Flags::PROBE);
        self.timers
            .set(TimerKind::Keepalive, now + self.params.keepalive_interval());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_is_send_and_clone() {
        fn assert_send<T: Send + Clone + 'static>() {}
        assert_send::<Connection>();
    }

    /// An established connection (active open, no options) whose peer offered `window`.
    fn established(now: Instant, window: u16) -> Connection {
        use core::net::{Ipv4Addr, SocketAddrV4};
        let tuple = FourTuple::new(
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 40_000),
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80),
        );
        let config = TcpConfig {
            timestamps: false,
            sack: false,
            window_scaling: false,
            nagle: false,
            ..TcpConfig::default()
        };
        let seed = ConnectionSeed {
            iss: SeqNumber(1_000),
            ts_offset: 0,
        };
        let mut conn = Connection::connect(now, tuple, seed, &config);
        while conn.poll_transmit(now).is_some() {}
        let syn_ack = TcpRepr {
            src_port: 80,
            dst_port: 40_000,
            control: Control::Syn,
            seq_number: SeqNumber(5_000),
            ack_number: Some(SeqNumber(1_001)),
            window_len: window,
            max_seg_size: Some(1460),
            ..TcpRepr::default()
        };
        conn.handle_segment(now, &syn_ack);
        while conn.poll_transmit(now).is_some() {}
        assert_eq!(conn.state(), State::Established);
        conn
    }

    #[test]
    fn persist_timeout_probes_a_stale_window_without_room() {
        // RFC 9293 §3.8.6.1: with data queued and nothing in flight, the persist timer
        // must draw an answer from the peer. A send window that is not zero but already
        // filled (SND.NXT at its right edge, from a window update the rules missed) leaves
        // nothing for the SWS override to send: the timeout must probe instead.
        let t0 = Instant::from_millis(1_000);
        let mut conn = established(t0, 100);
        conn.send(&[1u8; 500]).unwrap();
        // Stale: the window's right edge is where SND.NXT already is.
        conn.snd_wl2 = conn.snd_nxt - 100;
        let at = {
            conn.update_persist(t0);
            conn.poll_timeout().expect("persist timer armed")
        };
        conn.handle_timeout(at);
        let una = conn.snd_una;
        let probe = conn.poll_transmit(at).expect("a probe");
        assert_eq!(probe.repr.seq_number, una - 1);
        assert_eq!(probe.payload_len(), 0);
        assert!(conn.poll_transmit(at).is_none());
    }

    #[test]
    fn size_of_connection() {
        let size = core::mem::size_of::<Connection>();
        println!("size_of::<Connection>() = {size} bytes");
        // A core may hold a million: the goal is at most 512 bytes of control state per
        // idle connection, table and timer included.
        assert!(size <= 456, "Connection grew to {size} bytes");
    }
}
