//! A connection as plain data, for moving it (DESIGN.md §4.1, §4.5): [`ConnectionRecord`],
//! [`Connection::capture`] and [`Connection::restore`].
//!
//! Owns the content of the record and the rules a record must satisfy to become a
//! connection again ([`RestoreError`]). The record holds everything the connection holds:
//! sequence state, windows and scales, negotiated options, RTT and congestion state, the
//! whole SACK scoreboard with RACK, PRR and undo state, unacknowledged and unsent send
//! bytes, unread and out-of-order received bytes with their ranges, timers, counters and
//! the connection's copy of its configuration.
//!
//! Time: every instant is stored relative to the capture (signed nanoseconds) and rebased
//! on the destination's `now`, so the two ends need not share a clock. Timestamps: our
//! TSval at the capture travels with the record and the destination's timestamp offset is
//! chosen so that its TSvals continue from it; the peer never sees one go backwards
//! (RFC 7323 §5 PAWS would drop it).
//!
//! May not: encode (the wire format of records is `crate::migrate`'s), read a clock, or
//! panic on any record: every inconsistency is a [`RestoreError`] and nothing is built.
use super::assembler::{Assembler, AssemblerRecord};
use super::config::{Params, MAX_WINDOW_SCALE, MIN_MSS};
use super::congestion::{Congestion, CongestionRecord};
use super::connection::{Connection, ConnectionStats, Flags};
use super::ring::RingBuffer;
use super::rtt::{RttEstimator, RttRecord};
use super::sack::{Scoreboard, ScoreboardRecord, ScoreboardRecordError};
use super::seq::SeqNumber;
use super::state::{Events, State};
use super::timers::{TimerKind, Timers};
use crate::flow::FourTuple;
use crate::time::Instant;

/// The largest send or receive buffer a record may carry (1 GiB, the largest window
/// RFC 7323 scaling can advertise).
pub const MAX_RECORD_BUFFER: u32 = 1 << 30;

/// The largest time offset a record may carry, either way (30 days, beyond any timer and
/// the 24 days after which RFC 7323 §5.5 forgets TS.Recent).
pub const MAX_TIME_OFFSET_NS: i64 = 30 * 24 * 3600 * 1_000_000_000;

/// A connection as plain data. Field names follow the connection's (RFC 9293 §3.3.1).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionRecord {
    pub tuple: FourTuple,
    pub state: State,
    /// The connection's flag bits (negotiated options, close progress, pending work).
    pub flags: u32,
    pub iss: SeqNumber,
    pub snd_una: SeqNumber,
    pub snd_nxt: SeqNumber,
    pub snd_max: SeqNumber,
    pub snd_wl1: SeqNumber,
    pub snd_wl2: SeqNumber,
    pub snd_wnd: u32,
    pub max_snd_wnd: u32,
    pub snd_wscale: u8,
    pub rcv_wscale: u8,
    pub snd_mss: u16,
    pub rcv_mss: u16,
    pub rcv_seg_max: u16,
    pub irs: SeqNumber,
    pub rcv_nxt: SeqNumber,
    pub rcv_adv: SeqNumber,
    pub last_ack_sent: SeqNumber,
    pub rcv_unacked: u32,
    pub dupacks_owed: u8,
    pub peer_fin_seq: Option<SeqNumber>,
    /// TS.Recent (RFC 7323 §4.3) and when it was taken (relative, ns).
    pub ts_recent: u32,
    pub ts_recent_at: i64,
    /// Our timestamp clock (TSval) at the capture.
    pub ts_clock: u32,
    pub rtt: RttRecord,
    /// When the segment timed for an RTT sample without timestamps was sent (relative,
    /// ns), and the sequence number that ends it.
    pub rtt_start: Option<i64>,
    pub rtt_seq: SeqNumber,
    pub congestion: CongestionRecord,
    pub scoreboard: Option<ScoreboardRecord>,
    pub recover: SeqNumber,
    pub dupacks: u8,
    pub retries: u8,
    pub persist_backoff: u8,
    pub persist_probes: u8,
    pub keepalive_probes: u8,
    /// Unacknowledged and unsent bytes, from the first unacknowledged one.
    pub send: Vec<u8>,
    /// Received bytes from RCV.NXT minus `recv_unread`: the unread in-order bytes, then
    /// the out-of-order region up to the end of the last held range (gaps as zeros).
    pub recv: Vec<u8>,
    pub recv_unread: u32,
    pub assembler: AssemblerRecord,
    /// Each timer's deadline (relative, ns), indexed by [`TimerKind`] as a number.
    pub timers: [Option<i64>; 6],
    pub challenge_count: u16,
    pub challenge_window: i64,
    /// Events raised and not yet delivered to the application.
    pub events: u8,
    pub stats: ConnectionStats,
    pub params: Params,
}

/// Why a record cannot become a connection. Nothing is built when restore fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    #[error("a connection in state {0} cannot be moved")]
    NotMovable(State),
    #[error("unknown flag bits")]
    Flags,
    #[error(
        "too many distinct connection parameter sets held already ({})",
        super::config::MAX_PEER_PARAMS
    )]
    TooManyParams,
    #[error("window scale, MSS or configuration out of range")]
    Options,
    #[error("send sequence numbers out of order (SND.UNA =< SND.NXT =< SND.MAX within the data)")]
    SendSequence,
    #[error("the send buffer does not match the sequence space or exceeds its capacity")]
    SendBuffer,
    #[error("receive sequence numbers out of order (RCV.NXT =< RCV.ADV)")]
    ReceiveSequence,
    #[error("received bytes exceed the receive buffer or do not match the held ranges")]
    ReceiveBuffer,
    #[error("out-of-order ranges unsorted, overlapping or not beyond RCV.NXT")]
    Ranges,
    #[error("FIN flags contradict the state")]
    Fin,
    #[error("scoreboard: {0}")]
    Scoreboard(#[from] ScoreboardRecordError),
    #[error("scoreboard does not lie within the send sequence space")]
    ScoreboardSpan,
    #[error("RTT estimator values out of range")]
    Rtt,
    #[error("congestion window values out of range")]
    Congestion,
    #[error("a time offset is out of range")]
    Time,
    #[error("unknown event bits")]
    Events,
}

/// The states a record may hold: the synchronized ones.
pub fn is_movable_state(state: State) -> bool {
    state.is_synchronized()
}

impl Connection {
    /// The connection as a record, its instants relative to `now`. Copies the buffers;
    /// the connection itself is untouched (the caller drops it once the record has a new
    /// owner, or keeps serving it if the move fails).
    pub fn capture(&self, now: Instant) -> ConnectionRecord {
        let rel = |t: Instant| t.offset_from(now);
        // Instants that only say "long ago" (TS.Recent's age, the challenge-ACK window's
        // start) are kept within the record's bound: older is the same as that old.
        let age = |t: Instant| t.offset_from(now).max(-MAX_TIME_OFFSET_NS);
        let ooo_end = self
            .assembler
            .highest()
            .map_or(0, |end| end.distance_from(self.rcv_nxt) as usize);
        let recv_len = self.recv.len() + ooo_end;
        let mut timers = [None; 6];
        for kind in TimerKind::ALL {
            timers[kind as usize] = self.timers.get(kind).map(rel);
        }
        ConnectionRecord {
            tuple: self.tuple,
            state: self.state,
            flags: self.flags.bits(),
            iss: self.iss,
            snd_una: self.snd_una,
            snd_nxt: self.snd_nxt,
            snd_max: self.snd_max,
            snd_wl1: self.snd_wl1,
            snd_wl2: self.snd_wl2,
            snd_wnd: self.snd_wnd,
            max_snd_wnd: self.max_snd_wnd,
            snd_wscale: self.snd_wscale,
            rcv_wscale: self.rcv_wscale,
            snd_mss: self.snd_mss,
            rcv_mss: self.rcv_mss,
            rcv_seg_max: self.rcv_seg_max,
            irs: self.irs,
            rcv_nxt: self.rcv_nxt,
            rcv_adv: self.rcv_adv,
            last_ack_sent: self.last_ack_sent,
            rcv_unacked: self.rcv_unacked,
            dupacks_owed: self.dupacks_owed,
            peer_fin_seq: self.peer_fin_seq,
            ts_recent: self.ts_recent,
            ts_recent_at: age(self.ts_recent_at),
            ts_clock: self.ts_now(now),
            rtt: self.rtt.to_record(),
            rtt_start: self.rtt_start.map(rel),
            rtt_seq: self.rtt_seq,
            congestion: self.cc.to_record(now),
            scoreboard: self.scoreboard.to_record(now),
            recover: self.recover,
            dupacks: self.dupacks,
            retries: self.retries,
            persist_backoff: self.persist_backoff,
            persist_probes: self.persist_probes,
            keepalive_probes: self.keepalive_probes,
            send: self.send.logical_bytes(self.send.len()),
            recv: self.recv.logical_bytes(recv_len),
            recv_unread: self.recv.len() as u32,
            assembler: self.assembler.to_record(),
            timers,
            challenge_count: self.challenge_count,
            challenge_window: age(self.challenge_window),
            events: self.events.bits(),
            stats: self.stats(),
            params: *self.params,
        }
    }

    /// The connection of `record`, its instants rebased on `now`, after checking every
    /// rule a connection's state obeys. The peer sees no difference: same sequence space,
    /// windows, options and timestamps continuing from the capture.
    pub fn restore(record: &ConnectionRecord, now: Instant) -> Result<Connection, RestoreError> {
        let r = record;
        if !is_movable_state(r.state) {
            return Err(RestoreError::NotMovable(r.state));
        }
        let flags = Flags::from_bits(r.flags).ok_or(RestoreError::Flags)?;
        let events = Events::from_bits(r.events).ok_or(RestoreError::Events)?;
        check_options(r)?;
        check_send(r, flags)?;
        check_receive(r)?;
        check_fin(r, flags)?;
        let times = [r.ts_recent_at, r.challenge_window]
            .into_iter()
            .chain(r.rtt_start)
            .chain(r.timers.iter().flatten().copied());
        if times
            .into_iter()
            .any(|t| t.unsigned_abs() > MAX_TIME_OFFSET_NS as u64)
        {
            return Err(RestoreError::Time);
        }
        let rtt = RttEstimator::from_record(&r.rtt).ok_or(RestoreError::Rtt)?;
        let cc = Congestion::from_record(&r.congestion, now).ok_or(RestoreError::Congestion)?;
        let scoreboard = Scoreboard::from_record(r.scoreboard.as_ref(), now)?;
        check_scoreboard_span(r, flags, scoreboard.span())?;
        let assembler = Assembler::from_record(&r.assembler).ok_or(RestoreError::Ranges)?;
        let params = r
            .params
            .intern_from_peer()
            .ok_or(RestoreError::TooManyParams)?;
        let at = |offset: i64| Instant::rebase(now, offset);
        let mut timers = Timers::default();
        for kind in TimerKind::ALL {
            if let Some(offset) = r.timers[kind as usize] {
                timers.set(kind, at(offset));
            }
        }
        Ok(Connection {
            tuple: r.tuple,
            state: r.state,
            flags,
            iss: r.iss,
            snd_una: r.snd_una,
            snd_nxt: r.snd_nxt,
            snd_max: r.snd_max,
            snd_wl1: r.snd_wl1,
            snd_wl2: r.snd_wl2,
            snd_wnd: r.snd_wnd,
            max_snd_wnd: r.max_snd_wnd,
            snd_wscale: r.snd_wscale,
            rcv_wscale: r.rcv_wscale,
            snd_mss: r.snd_mss,
            rcv_mss: r.rcv_mss,
            rcv_seg_max: r.rcv_seg_max,
            irs: r.irs,
            rcv_nxt: r.rcv_nxt,
            rcv_adv: r.rcv_adv,
            last_ack_sent: r.last_ack_sent,
            rcv_unacked: r.rcv_unacked,
            dupacks_owed: r.dupacks_owed,
            peer_fin_seq: r.peer_fin_seq,
            ts_recent: r.ts_recent,
            ts_recent_at: at(r.ts_recent_at),
            // TSval = clock + offset continues from the capture's TSval (RFC 7323 §5.4:
            // the peer's PAWS needs them monotonic).
            ts_offset: r.ts_clock.wrapping_sub(now.as_millis() as u32),
            rtt,
            rtt_start: r.rtt_start.map(at),
            rtt_seq: r.rtt_seq,
            cc,
            scoreboard,
            recover: r.recover,
            dupacks: r.dupacks,
            retries: r.retries,
            persist_backoff: r.persist_backoff,
            persist_probes: r.persist_probes,
            keepalive_probes: r.keepalive_probes,
            send: RingBuffer::from_logical(&r.send, r.send.len()),
            recv: RingBuffer::from_logical(&r.recv, r.recv_unread as usize),
            assembler,
            timers,
            reset: None,
            challenge_count: r.challenge_count,
            challenge_window: at(r.challenge_window),
            events,
            error: None,
            stats: (r.stats != ConnectionStats::default()).then(|| Box::new(r.stats)),
            params,
        })
    }
}

fn check_options(r: &ConnectionRecord) -> Result<(), RestoreError> {
    let p = &r.params;
    let ok = r.snd_wscale <= MAX_WINDOW_SCALE
        && r.rcv_wscale <= MAX_WINDOW_SCALE
        && r.snd_mss >= MIN_MSS
        && r.rcv_mss >= MIN_MSS
        && (1..=MAX_RECORD_BUFFER).contains(&p.send_buffer)
        && (1..=MAX_RECORD_BUFFER).contains(&p.recv_buffer)
        && p.mtu_mss >= MIN_MSS;
    if ok {
        Ok(())
    } else {
        Err(RestoreError::Options)
    }
}

/// SND.UNA =< SND.NXT =< SND.MAX, all past our SYN, and the send buffer holding exactly
/// the bytes from SND.UNA on (plus a FIN once sent). The order is checked by distances
/// from SND.UNA within half the sequence space: comparisons modulo 2^32 are no order
/// across 2^31 (two numbers 2^31 apart are each "at most" the other).
fn check_send(r: &ConnectionRecord, flags: Flags) -> Result<(), RestoreError> {
    let nxt = r.snd_nxt.0.wrapping_sub(r.snd_una.0);
    let flight = r.snd_max.0.wrapping_sub(r.snd_una.0);
    if !r.snd_una.gt(r.iss) || nxt > flight || flight >= 1 << 31 {
        return Err(RestoreError::SendSequence);
    }
    let len = r.send.len() as u64;
    if len > u64::from(r.params.send_buffer) {
        return Err(RestoreError::SendBuffer);
    }
    // The FIN occupies one sequence number after the data once sent.
    let fin = u64::from(flags.has(Flags::FIN_SENT));
    if u64::from(flight) > len + fin {
        return Err(RestoreError::SendBuffer);
    }
    Ok(())
}

/// The scoreboard of a SACK connection tracks exactly [SND.UNA, SND.NXT) (nothing when
/// they are equal), as a live connection's does (transmissions extend it at its end or
/// fall inside it; ACKs trim it at SND.UNA); a connection without SACK tracks nothing.
/// Anything else leaves a gap or an untracked part after the next segment (each case was
/// found by fuzzing records).
fn check_scoreboard_span(
    r: &ConnectionRecord,
    flags: Flags,
    span: Option<(SeqNumber, SeqNumber)>,
) -> Result<(), RestoreError> {
    let sack = flags.has(Flags::SACK);
    let ok = match span {
        Some((lo, hi)) => sack && lo == r.snd_una && hi == r.snd_nxt,
        None => !sack || r.snd_nxt == r.snd_una,
    };
    if ok {
        Ok(())
    } else {
        Err(RestoreError::ScoreboardSpan)
    }
}

/// RCV.NXT =< RCV.ADV; the received bytes are the unread ones plus the out-of-order
/// region up to the last held range, exactly; the ranges lie beyond RCV.NXT.
fn check_receive(r: &ConnectionRecord) -> Result<(), RestoreError> {
    let cap = u64::from(r.params.recv_buffer);
    let wnd = r.rcv_adv.distance_from(r.rcv_nxt);
    if r.rcv_adv.lt(r.rcv_nxt)
        || u64::from(wnd) > cap + (1u64 << r.rcv_wscale)
        || r.last_ack_sent.gt(r.rcv_nxt)
    {
        return Err(RestoreError::ReceiveSequence);
    }
    let unread = u64::from(r.recv_unread);
    let mut end = unread;
    for &(start, stop, _) in &r.assembler.ranges {
        if !start.gt(r.rcv_nxt) || !start.lt(stop) {
            return Err(RestoreError::Ranges);
        }
        end = unread + u64::from(stop.distance_from(r.rcv_nxt));
    }
    if end != r.recv.len() as u64 || end > cap {
        return Err(RestoreError::ReceiveBuffer);
    }
    Ok(())
}

/// Our FIN is queued exactly in the states after CLOSE, sent only if queued; the peer's
/// FIN was received exactly in the states after it.
fn check_fin(r: &ConnectionRecord, flags: Flags) -> Result<(), RestoreError> {
    let closed_by_us = matches!(
        r.state,
        State::FinWait1 | State::FinWait2 | State::Closing | State::LastAck | State::TimeWait
    );
    let closed_by_peer = matches!(
        r.state,
        State::CloseWait | State::Closing | State::LastAck | State::TimeWait
    );
    let fin_queued = flags.has(Flags::FIN_QUEUED);
    let ok = fin_queued == closed_by_us
        && (!flags.has(Flags::FIN_SENT) || fin_queued)
        && flags.has(Flags::PEER_FIN) == closed_by_peer;
    if ok {
        Ok(())
    } else {
        Err(RestoreError::Fin)
    }
}
