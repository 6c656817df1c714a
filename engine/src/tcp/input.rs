//! Segment arrival: RFC 9293 §3.10.7 ("SEGMENT ARRIVES") for every state but LISTEN,
//! with PAWS (RFC 7323 §5), the blind-attack checks of RFC 5961, acknowledgment
//! processing, loss detection and recovery (RFC 5681 and RFC 6582 without SACK; with
//! SACK, RACK-TLP of RFC 8985 over the scoreboard, RFC 6675 pipe, PRR of RFC 6937, undo
//! of spurious retransmissions from D-SACKs, RFC 3708) and data reassembly (with the
//! D-SACK reports of RFC 2883).
//!
//! Owns nothing: these are methods of [`Connection`]. Replies are not sent from here but
//! recorded (flags, pending reset) for `poll_transmit`.
use super::config::MIN_MSS;
use super::congestion::CongestionControl;
use super::connection::{Connection, Flags, PendingReset};
use super::sack::{AckInfo, DUP_THRESH, MIN_PROBE_TIMEOUT, WORST_CASE_DELAYED_ACK};
use super::seq::SeqNumber;
use super::state::{Events, State, TcpError};
use super::timers::TimerKind;
use crate::time::{Duration, Instant};
use crate::wire::tcp::{Control, TcpRepr};

/// What happened to a segment, for counters. No variant allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Disposition {
    /// Processed (possibly only partly: trimmed to the window).
    Accepted,
    /// Not for this connection (ports differ).
    NotOurs,
    /// Outside the receive window (an ACK was queued in reply).
    OutOfWindow,
    /// Rejected by PAWS (RFC 7323 §5.3) or lacking a timestamp (RFC 7323 §3.2).
    Paws,
    /// A RST that was not exactly at RCV.NXT: challenge ACK (RFC 5961 §3.2), or ignored.
    RstIgnored,
    /// A RST in TIME-WAIT, ignored (RFC 1337 §3, fix F1; see [`super::TimeWaitRecord`]).
    TimeWaitRst,
    /// A SYN in a synchronized state: challenge ACK (RFC 5961 §4.2).
    SynChallenged,
    /// An ACK outside [SND.UNA - MAX.SND.WND, SND.NXT] (RFC 5961 §5.2), or no ACK bit.
    BadAck,
    /// The segment reset the connection.
    Reset,
    /// Answered with a RST (unacceptable ACK in SYN-SENT or SYN-RECEIVED, or CLOSED).
    Refused,
    /// Ignored in this state.
    Ignored,
}

/// The RST answering `seg` when no connection exists (RFC 9293 §3.10.7.1): `None` for a
/// RST. Used by the listener and by the table for segments to unknown 4-tuples.
pub fn reset_for(seg: &TcpRepr<'_>) -> Option<TcpRepr<'static>> {
    if seg.control == Control::Rst {
        return None;
    }
    let (seq_number, ack_number) = match seg.ack_number {
        // <SEQ=SEG.ACK><CTL=RST>
        Some(ack) => (ack, None),
        // <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
        None => (SeqNumber(0), Some(seg.seq_number + seg.segment_len())),
    };
    Some(TcpRepr {
        src_port: seg.dst_port,
        dst_port: seg.src_port,
        control: Control::Rst,
        seq_number,
        ack_number,
        ..TcpRepr::default()
    })
}

impl Connection {
    /// Processes one segment addressed to this connection. `seg` was parsed (and its
    /// checksum verified) by [`TcpRepr::parse`]; the caller matched the 4-tuple.
    pub fn handle_segment(&mut self, now: Instant, seg: &TcpRepr<'_>) -> Disposition {
        if seg.dst_port != self.tuple.local.port() || seg.src_port != self.tuple.remote.port() {
            return Disposition::NotOurs;
        }
        let disposition = match self.state {
            State::Closed => self.closed_segment(seg),
            State::SynSent => self.syn_sent_segment(now, seg),
            _ => self.synchronized_segment(now, seg),
        };
        if !matches!(disposition, Disposition::Accepted | Disposition::Reset) {
            let n = &mut self.stats_mut().dropped;
            *n = n.saturating_add(1);
        }
        self.update_persist(now);
        disposition
    }

    /// RFC 9293 §3.10.7.1: CLOSED answers everything but a RST with a RST.
    fn closed_segment(&mut self, seg: &TcpRepr<'_>) -> Disposition {
        match reset_for(seg) {
            Some(rst) => {
                self.reset = Some(PendingReset {
                    seq: rst.seq_number,
                    ack: rst.ack_number,
                });
                Disposition::Refused
            }
            None => Disposition::Ignored,
        }
    }

    /// RFC 9293 §3.10.7.3.
    fn syn_sent_segment(&mut self, now: Instant, seg: &TcpRepr<'_>) -> Disposition {
        // First: the ACK bit.
        if let Some(ack) = seg.ack_number {
            // If SEG.ACK =< ISS or SEG.ACK > SND.NXT, send a reset (unless RST) and drop.
            if ack.le(self.iss) || ack.gt(self.snd_max) {
                if seg.control == Control::Rst {
                    return Disposition::Ignored;
                }
                self.reset = Some(PendingReset {
                    seq: ack,
                    ack: None,
                });
                return Disposition::Refused;
            }
        }
        // Second: the RST bit. Acceptable only if the ACK acknowledges our SYN (RFC 5961 §3.2
        // keeps this rule for SYN-SENT).
        if seg.control == Control::Rst {
            if seg.ack_number.is_some() {
                self.enter_closed(Some(TcpError::Refused));
                return Disposition::Reset;
            }
            return Disposition::RstIgnored;
        }
        // Fourth: the SYN bit.
        if seg.control != Control::Syn {
            return Disposition::Ignored;
        }
        self.irs = seg.seq_number;
        self.rcv_nxt = seg.seq_number + 1;
        self.rcv_adv = self.rcv_nxt;
        self.last_ack_sent = self.rcv_nxt;
        self.negotiate(now, seg);
        match seg.ack_number {
            Some(ack) if ack.gt(self.iss) => {
                // Our SYN is acknowledged: ESTABLISHED, and ACK the peer's SYN.
                self.snd_una = ack;
                if self.snd_nxt.lt(ack) {
                    self.snd_nxt = ack;
                }
                // RFC 7323 §2.2: the window of a SYN is never scaled.
                self.snd_wnd = u32::from(seg.window_len);
                self.max_snd_wnd = self.snd_wnd;
                self.snd_wl1 = seg.seq_number;
                self.snd_wl2 = ack;
                self.take_syn_rtt_sample(now, seg);
                self.timers.cancel(TimerKind::Retransmit);
                if self.retries > 0 {
                    self.rtt.after_syn_timeout();
                }
                self.retries = 0;
                self.rtt.reset_backoff();
                self.set_state(State::Established);
                self.arm_keepalive(now);
                self.flags.set(Flags::ACK_NOW);
                // Data in a SYN-ACK is legal but unusual; it is dropped here and the peer
                // retransmits it.
            }
            _ => {
                // Simultaneous open: SYN-RECEIVED, send <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>.
                self.snd_wnd = u32::from(seg.window_len);
                self.max_snd_wnd = self.snd_wnd;
                self.snd_wl1 = seg.seq_number;
                self.snd_wl2 = self.iss;
                self.snd_nxt = self.iss;
                self.timers.cancel(TimerKind::Retransmit);
                self.set_state(State::SynReceived);
            }
        }
        Disposition::Accepted
    }

    fn take_syn_rtt_sample(&mut self, now: Instant, seg: &TcpRepr<'_>) {
        if self.retries > 0 {
            // Karn: the SYN was retransmitted, the sample is ambiguous (unless timestamps
            // echo the right transmission).
            if let (true, Some((_, tsecr))) = (self.flags.has(Flags::TS), seg.timestamp) {
                self.ts_rtt_sample(now, tsecr);
            }
            return;
        }
        if let Some(start) = self.rtt_start.take() {
            self.rtt.sample(now - start);
        } else if let (true, Some((_, tsecr))) = (self.flags.has(Flags::TS), seg.timestamp) {
            self.ts_rtt_sample(now, tsecr);
        }
    }

    /// Our timestamp clock: milliseconds plus the connection's offset (RFC 7323 §5.4).
    pub(super) fn ts_now(&self, now: Instant) -> u32 {
        (now.as_millis() as u32).wrapping_add(self.ts_offset)
    }

    /// RFC 7323 §4.1: RTT = now - TSecr, on an ACK of new data.
    fn ts_rtt_sample(&mut self, now: Instant, tsecr: u32) {
        let ms = self.ts_now(now).wrapping_sub(tsecr) as i32;
        // A negative or absurd value is a bogus echo, not a measurement.
        if (0..=60_000).contains(&ms) {
            self.rtt.sample(Duration::from_millis(ms as u64));
        }
    }

    /// RFC 7323 §5.5: TS.Recent older than 24 days is no longer valid for PAWS.
    fn ts_recent_valid(&self, now: Instant) -> bool {
        now - self.ts_recent_at < Duration::from_secs(24 * 24 * 3600)
    }

    /// The receive window offered to the peer (RCV.WND of the acceptability test).
    fn rcv_wnd_for_test(&self) -> u32 {
        self.rcv_adv.distance_from(self.rcv_nxt)
    }

    /// RFC 9293 §3.10.7.4 for SYN-RECEIVED and the synchronized states.
    fn synchronized_segment(&mut self, now: Instant, seg: &TcpRepr<'_>) -> Disposition {
        // A retransmitted SYN in SYN-RECEIVED: our SYN-ACK was lost, send it again.
        if self.state == State::SynReceived
            && seg.control == Control::Syn
            && seg.ack_number.is_none()
            && seg.seq_number == self.irs
        {
            self.snd_nxt = self.iss;
            return Disposition::Accepted;
        }

        // RFC 1337 F1: TIME-WAIT outlasts old duplicates; no RST cuts it short (the rules
        // of the compact record that follows, crate::tcp::time_wait).
        if self.state == State::TimeWait && seg.control == Control::Rst {
            return Disposition::TimeWaitRst;
        }

        // RFC 7323 §5.3 R1 (PAWS) and §3.2 (segments without TSopt), before the sequence
        // check. RST segments are exempt.
        let ts = if self.flags.has(Flags::TS) {
            seg.timestamp
        } else {
            None
        };
        if self.flags.has(Flags::TS) && seg.control != Control::Rst {
            match ts {
                None => return Disposition::Paws,
                Some((tsval, _)) => {
                    if (tsval.wrapping_sub(self.ts_recent) as i32) < 0 && self.ts_recent_valid(now)
                    {
                        // "Send an acknowledgment in reply ... and drop the segment."
                        self.challenge_ack(now);
                        return Disposition::Paws;
                    }
                }
            }
        }

        // First: the sequence number (RFC 9293 §3.10.7.4, the four-case table).
        let seg_len = seg.segment_len();
        let wnd = self.rcv_wnd_for_test();
        let seq = seg.seq_number;
        let in_wnd = |s: SeqNumber| s.ge(self.rcv_nxt) && s.lt(self.rcv_nxt + wnd);
        let acceptable = match (seg_len, wnd) {
            (0, 0) => seq == self.rcv_nxt,
            // A zero-length segment may sit at the right edge: a peer that filled the
            // window sends its ACKs from there. RFC 9293's "SEG.SEQ < RCV.NXT+RCV.WND"
            // would drop them (and the window updates they carry); Linux (tcp_sequence)
            // and the BSDs accept SEG.SEQ =< RCV.NXT+RCV.WND.
            (0, _) => seq.ge(self.rcv_nxt) && seq.le(self.rcv_nxt + wnd),
            (_, 0) => false,
            (_, _) => in_wnd(seq) || in_wnd(seq + (seg_len - 1)),
        };
        // A zero window still takes ACKs and RSTs (§3.10.7.4: "special allowance should be
        // made to accept valid ACKs, URGs, and RSTs"): a segment exactly at RCV.NXT is
        // processed with its text trimmed away.
        let zero_window_allowance = !acceptable && wnd == 0 && seq == self.rcv_nxt;
        if !acceptable && !zero_window_allowance {
            if self.state == State::TimeWait
                && seg.control == Control::Fin
                && seq + seg.segment_len() == self.rcv_nxt
            {
                // §3.10.7.4 TIME-WAIT: a retransmission of the remote FIN. Acknowledge
                // it and restart the 2 MSL timeout.
                self.flags.set(Flags::ACK_NOW);
                self.enter_time_wait(now);
                return Disposition::Accepted;
            }
            if seg.control != Control::Rst {
                self.note_duplicate(seg);
                // <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>. A duplicate with data always gets
                // it (a sender going back after a timeout learns RCV.NXT from it); an
                // empty segment only within the challenge-ACK budget, so that two
                // confused ends cannot ping-pong ACKs for ever.
                if seg.payload.is_empty() {
                    self.challenge_ack(now);
                } else {
                    self.flags.set(Flags::ACK_NOW);
                }
            }
            return Disposition::OutOfWindow;
        }

        // Second: the RST bit (RFC 5961 §3.2).
        if seg.control == Control::Rst {
            if seq != self.rcv_nxt {
                self.challenge_ack(now);
                return Disposition::RstIgnored;
            }
            match self.state {
                State::SynReceived if self.flags.has(Flags::PASSIVE) => {
                    // "Return this connection to the LISTEN state": the listener drops it.
                    self.enter_closed(None);
                }
                State::SynReceived => self.enter_closed(Some(TcpError::Refused)),
                State::Established | State::FinWait1 | State::FinWait2 | State::CloseWait => {
                    self.enter_closed(Some(TcpError::Reset));
                }
                _ => self.enter_closed(None),
            }
            return Disposition::Reset;
        }

        // Third: security (compartments) is not implemented.

        // Fourth: the SYN bit (RFC 5961 §4.2 replaces RFC 793's reset).
        if seg.control == Control::Syn {
            if self.state == State::SynReceived && self.flags.has(Flags::PASSIVE) {
                self.enter_closed(None);
                return Disposition::Reset;
            }
            self.challenge_ack(now);
            return Disposition::SynChallenged;
        }

        // Fifth: the ACK field. "If the ACK bit is off, drop the segment."
        let Some(ack) = seg.ack_number else {
            return Disposition::BadAck;
        };

        if self.state == State::SynReceived {
            if self.snd_una.lt(ack) && ack.le(self.snd_max) {
                self.snd_wnd = u32::from(seg.window_len) << self.snd_wscale;
                self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
                self.snd_wl1 = seq;
                self.snd_wl2 = ack;
                if self.retries > 0 {
                    // RFC 6298 §5.7: the SYN-ACK timed out.
                    self.rtt.after_syn_timeout();
                }
                self.set_state(State::Established);
                self.arm_keepalive(now);
                if self.flags.has(Flags::FIN_QUEUED) {
                    // CLOSE was called in SYN-RECEIVED (§3.10.4).
                    self.set_state(State::FinWait1);
                }
            } else {
                // <SEQ=SEG.ACK><CTL=RST>
                self.reset = Some(PendingReset {
                    seq: ack,
                    ack: None,
                });
                return Disposition::Refused;
            }
        }

        // RFC 5961 §5.2: acceptable if SND.UNA - MAX.SND.WND =< SEG.ACK =< SND.NXT.
        let lower = self.snd_una - self.max_snd_wnd.max(1);
        if ack.gt(self.snd_max) || ack.lt(lower) {
            self.challenge_ack(now);
            return Disposition::BadAck;
        }

        // RFC 7323 §4.3: update TS.Recent from an accepted segment that covers
        // Last.ACK.sent.
        if let Some((tsval, _)) = ts {
            if (tsval.wrapping_sub(self.ts_recent) as i32) >= 0 && seq.le(self.last_ack_sent) {
                self.ts_recent = tsval;
                self.ts_recent_at = now;
            }
        }

        // Any acceptable segment shows the peer alive (and answers a zero-window probe).
        self.arm_keepalive(now);
        self.persist_probes = 0;

        self.process_ack(now, seg, ack);
        if self.state == State::Closed {
            return Disposition::Accepted;
        }

        // State-specific parts of the fifth check.
        let fin_acked = self.our_fin_acked();
        match self.state {
            State::FinWait1 if fin_acked => {
                self.set_state(State::FinWait2);
                self.arm_fin_wait_2(now);
            }
            State::Closing if fin_acked => {
                self.enter_time_wait(now);
            }
            State::LastAck if fin_acked => {
                self.enter_closed(None);
                return Disposition::Accepted;
            }
            _ => {}
        }

        // Sixth (URG) is not supported: urgent data is delivered in line.

        // Seventh: the segment text, trimmed to the window.
        self.note_duplicate(seg);
        let (text_seq, text) = if zero_window_allowance {
            (seq, &[][..])
        } else {
            self.trim_to_window(seg)
        };
        let payload_end = seq + seg.payload.len() as u32;
        let fin_in_window = seg.control == Control::Fin
            && !zero_window_allowance
            && text_seq + text.len() as u32 == payload_end.max(text_seq);
        if !text.is_empty() {
            match self.state {
                State::Established | State::FinWait1 | State::FinWait2 => {
                    self.receive_text(now, text_seq, text)
                }
                // The peer already sent its FIN: ignore (RFC 9293 seventh check).
                _ => {}
            }
        } else if !seg.payload.is_empty() || (zero_window_allowance && seg_len > 0) {
            // Nothing new (duplicate or beyond the window): acknowledge at once so the peer
            // learns RCV.NXT.
            self.flags.set(Flags::ACK_NOW);
        }

        // Eighth: the FIN bit.
        if fin_in_window && !self.flags.has(Flags::PEER_FIN) {
            self.peer_fin_seq = Some(payload_end);
        }
        self.maybe_accept_fin(now);
        Disposition::Accepted
    }

    /// RFC 2883 §4: text below RCV.NXT was received twice; report it in the first SACK
    /// block of the next ACK (a D-SACK), so the sender can tell spurious
    /// retransmissions (RFC 3708).
    fn note_duplicate(&mut self, seg: &TcpRepr<'_>) {
        if !self.flags.has(Flags::SACK) || seg.payload.is_empty() {
            return;
        }
        let start = seg.seq_number;
        if !start.lt(self.rcv_nxt) {
            return;
        }
        let end = (start + seg.payload.len() as u32).min(self.rcv_nxt);
        // Only what lies within a window below RCV.NXT is a plausible duplicate.
        if self.rcv_nxt.distance_from(start) <= self.params.recv_buffer {
            self.assembler.set_dsack(start, end);
        }
    }

    /// The part of `seg`'s payload inside the receive window and the buffer, with its
    /// sequence number.
    fn trim_to_window<'a>(&self, seg: &TcpRepr<'a>) -> (SeqNumber, &'a [u8]) {
        let payload = seg.payload;
        let seq = seg.seq_number;
        let skip = (self.rcv_nxt.distance_from(seq) as usize).min(payload.len());
        let start = seq + skip as u32;
        // The window's right edge, also bounded by the buffer's free space.
        // Data a little past the advertised edge (window rounding) is kept if it fits.
        let room = (self.params.recv_buffer as usize).saturating_sub(self.recv.len());
        let offset = start.distance_from(self.rcv_nxt) as usize;
        let take = (payload.len() - skip).min(room.saturating_sub(offset));
        (start, &payload[skip..skip + take])
    }

    /// Stores in-window text (RFC 9293 §3.10.7.4 seventh check) and decides on the ACK.
    fn receive_text(&mut self, now: Instant, seq: SeqNumber, text: &[u8]) {
        let len = text.len() as u32;
        self.rcv_seg_max = self
            .rcv_seg_max
            .max(u16::try_from(text.len()).unwrap_or(u16::MAX));
        let cap = self.params.recv_buffer as usize;
        let read_closed = self.flags.has(Flags::READ_CLOSED);
        let had_holes = !self.assembler.is_empty();
        if seq == self.rcv_nxt {
            let n = if read_closed {
                len as usize
            } else {
                let at = self.recv.len();
                let n = self.recv.write_at(at, text, cap);
                self.recv.commit(n);
                n
            };
            let before = self.rcv_nxt;
            self.rcv_nxt += n as u32;
            let after = self.assembler.advance(self.rcv_nxt);
            if !read_closed {
                self.recv.commit(after.distance_from(self.rcv_nxt) as usize);
            }
            self.rcv_nxt = after;
            let delivered = self.rcv_nxt.distance_from(before);
            self.dupacks_owed = 0;
            self.rcv_unacked = self.rcv_unacked.saturating_add(delivered);
            if !read_closed && delivered > 0 {
                self.events.insert(Events::READABLE);
            }
            let full = u32::from(self.rcv_seg_max.max(MIN_MSS));
            if had_holes || self.params.delayed_ack().is_none() || self.rcv_unacked >= 2 * full {
                // RFC 5681 §4.2: immediate ACK when a hole is filled; RFC 9293 §3.8.6.3:
                // at least every second full-sized segment.
                self.flags.set(Flags::ACK_NOW);
            } else if let Some(delay) = self.params.delayed_ack() {
                self.timers.set_if_idle(TimerKind::DelayedAck, now + delay);
            }
        } else {
            // Out of order: keep it if the assembler has room (bounded), and send an
            // immediate duplicate ACK with SACK blocks (RFC 5681 §4.2, RFC 2018 §4).
            if !read_closed && self.assembler.add(seq, seq + len) {
                let offset = self.recv.len() + seq.distance_from(self.rcv_nxt) as usize;
                self.recv.write_at(offset, text, cap);
            }
            self.dupacks_owed = self.dupacks_owed.saturating_add(1);
        }
    }

    /// RFC 9293 §3.10.7.4 eighth check, once RCV.NXT reaches the peer's FIN.
    fn maybe_accept_fin(&mut self, now: Instant) {
        let Some(fin) = self.peer_fin_seq else { return };
        if fin != self.rcv_nxt || self.flags.has(Flags::PEER_FIN) {
            return;
        }
        self.rcv_nxt += 1;
        self.flags.set(Flags::PEER_FIN | Flags::ACK_NOW);
        self.events.insert(Events::PEER_CLOSED | Events::READABLE);
        match self.state {
            State::SynReceived | State::Established => self.set_state(State::CloseWait),
            State::FinWait1 => {
                if self.our_fin_acked() {
                    self.enter_time_wait(now);
                } else {
                    self.set_state(State::Closing);
                }
            }
            State::FinWait2 => self.enter_time_wait(now),
            _ => {}
        }
    }

    /// Our FIN was sent and everything up to and including it is acknowledged.
    pub(super) fn our_fin_acked(&self) -> bool {
        self.flags.has(Flags::FIN_SENT) && self.send.is_empty() && self.snd_una == self.snd_max
    }

    /// The sequence number of the first byte in the send buffer.
    pub(super) fn send_data_start(&self) -> SeqNumber {
        if self.snd_una == self.iss {
            self.iss + 1
        } else {
            self.snd_una
        }
    }

    /// The fifth check for ESTABLISHED and its siblings: window update, new data
    /// acknowledged, RTT, congestion control and loss detection.
    fn process_ack(&mut self, now: Instant, seg: &TcpRepr<'_>, ack: SeqNumber) {
        let seq = seg.seq_number;
        let mss = u32::from(self.smss());
        // RFC 7323 §2.3: the window of a non-SYN segment is scaled.
        let seg_wnd = u32::from(seg.window_len) << self.snd_wscale;
        let mut window_changed = false;
        // RFC 9293 §3.10.7.4: update the window if SND.UNA =< SEG.ACK =< SND.NXT and the
        // segment is newer (SND.WL1 < SEG.SEQ or SND.WL1 = SEG.SEQ and SND.WL2 =< SEG.ACK).
        // Also, as Linux's tcp_may_update_window does, from any segment that acknowledges
        // new data: an out-of-order segment moves SND.WL1 ahead of the in-order ones that
        // fill the gap, and their window (a zero window, say) must not be ignored.
        if self.snd_una.le(ack)
            && ack.le(self.snd_max)
            && (ack.gt(self.snd_una)
                || self.snd_wl1.lt(seq)
                || (self.snd_wl1 == seq && self.snd_wl2.le(ack)))
        {
            window_changed = self.snd_wnd != seg_wnd;
            self.snd_wnd = seg_wnd;
            self.snd_wl1 = seq;
            self.snd_wl2 = ack;
            self.max_snd_wnd = self.max_snd_wnd.max(seg_wnd);
        }

        let sack = self.flags.has(Flags::SACK);
        let prior_una = self.snd_una;
        let info = if sack && ack.ge(self.snd_una) {
            // The ACK answers a transmission at `t` or later if it echoes a timestamp
            // taken then or later (RFC 8985 §6.2 step 2, RFC 7323 §4).
            let echo = match (self.flags.has(Flags::TS), seg.timestamp) {
                (true, Some((_, tsecr))) => Some(tsecr),
                _ => None,
            };
            let offset = self.ts_offset;
            let fin = self
                .flags
                .has(Flags::FIN_SENT)
                .then(|| self.send_data_start() + self.send.len() as u32);
            self.scoreboard
                .on_ack(now, ack, &seg.sack_ranges, fin, |t: Instant| match echo {
                    Some(tsecr) => {
                        let sent = (t.as_millis() as u32).wrapping_add(offset);
                        tsecr.wrapping_sub(sent) as i32 >= 0
                    }
                    None => true,
                })
        } else {
            AckInfo::default()
        };

        if ack.gt(self.snd_una) {
            self.on_new_ack(now, seg, ack, mss);
        } else if ack == self.snd_una
            && seg.payload.is_empty()
            && seg.control == Control::None
            && self.snd_max.gt(self.snd_una)
            && (!window_changed || info.newly_sacked > 0)
        {
            // RFC 5681 §2 duplicate ACK (RFC 6675 also counts ACKs with new SACK data).
            self.on_dup_ack(now, mss);
        }
        if sack && self.state != State::Closed {
            if let (true, true, Some((_, tsecr))) =
                (ack.gt(prior_una), self.flags.has(Flags::TS), seg.timestamp)
            {
                // RFC 3522 §3.2: an ACK of new data for an original transmission during
                // (or right after) an episode; the response of RFC 4015 §3 restores the
                // window.
                if let Some((cwnd, ssthresh)) = self.scoreboard.eifel_check(tsecr) {
                    self.undo_reduction(cwnd, ssthresh);
                }
            }
            let has_blocks = seg.sack_ranges[0].is_some();
            self.sack_loss_recovery(now, ack, prior_una, has_blocks, &info, mss);
        }
    }

    fn on_new_ack(&mut self, now: Instant, seg: &TcpRepr<'_>, ack: SeqNumber, mss: u32) {
        let acked = ack.distance_from(self.snd_una);
        // RTT: timestamps if in use (RFC 7323 §4), else Karn's timed segment.
        if let (true, Some((_, tsecr))) = (self.flags.has(Flags::TS), seg.timestamp) {
            self.ts_rtt_sample(now, tsecr);
        } else if let Some(start) = self.rtt_start {
            if ack.ge(self.rtt_seq) {
                self.rtt.sample(now - start);
                self.rtt_start = None;
            }
        }
        // Release acknowledged bytes (the SYN and FIN occupy no buffer).
        let data_start = self.send_data_start();
        let data_end = data_start + self.send.len() as u32;
        let data_acked = ack.min(data_end).distance_from(data_start) as usize;
        self.send.consume(data_acked);
        if self.send.is_empty() {
            self.send.release_if_empty();
        }
        self.snd_una = ack;
        if self.snd_nxt.lt(ack) {
            self.snd_nxt = ack;
        }
        self.retries = 0;
        if data_acked > 0 && self.send_capacity() > 0 {
            self.events.insert(Events::WRITABLE);
        }

        if self.flags.has(Flags::LOSS_RECOVERY) && ack.ge(self.recover) {
            // RFC 8985 §6.3 / RFC 6582 §3.2: everything sent before the timeout is
            // acknowledged; the timeout's recovery is over.
            self.flags.clear(Flags::LOSS_RECOVERY);
            self.scoreboard.on_recovery_exit();
        }
        if self.flags.has(Flags::IN_RECOVERY) {
            if ack.ge(self.recover) {
                // RFC 6582 §3.2 step 3 / RFC 6675 §5: a full acknowledgment ends recovery
                // (RFC 6937 §3: cwnd = ssthresh).
                self.flags.clear(Flags::IN_RECOVERY | Flags::REXMIT_HEAD);
                self.dupacks = 0;
                self.cc.on_recovery_exit(now, mss);
                self.scoreboard.on_recovery_exit();
            } else if !self.flags.has(Flags::SACK) {
                // RFC 6582 §3.2 step 4, partial acknowledgment: retransmit the next
                // unacknowledged segment, deflate cwnd by the amount acknowledged and
                // add back one SMSS if at least one SMSS was acknowledged.
                self.flags.set(Flags::REXMIT_HEAD);
                let mut cwnd = self.cc.cwnd().saturating_sub(acked);
                if acked >= mss {
                    cwnd = cwnd.saturating_add(mss);
                }
                self.cc.set_cwnd(cwnd.max(mss));
                // Reset the timer on the first partial ACK (the "impatient" variant resets
                // it on every one).
                self.timers.set(TimerKind::Retransmit, now + self.rtt.rto());
            }
        } else {
            self.dupacks = 0;
            self.cc.on_ack(now, acked, mss, self.rtt.srtt());
        }

        // RFC 6298 §5.2 and §5.3.
        if self.snd_una == self.snd_max {
            self.timers.cancel(TimerKind::Retransmit);
        } else if !self.flags.has(Flags::IN_RECOVERY) || self.flags.has(Flags::SACK) {
            self.timers.set(TimerKind::Retransmit, now + self.rtt.rto());
        }
    }

    fn on_dup_ack(&mut self, now: Instant, mss: u32) {
        self.dupacks = self.dupacks.saturating_add(1);
        if self.flags.has(Flags::SACK) {
            // Loss detection with SACK is RACK's, after the scoreboard took the ACK.
            return;
        }
        if self.flags.has(Flags::IN_RECOVERY) {
            // RFC 5681 §3.2 step 4: inflate cwnd for each further duplicate.
            self.cc.set_cwnd(self.cc.cwnd().saturating_add(mss));
            return;
        }
        if u32::from(self.dupacks) < DUP_THRESH {
            // RFC 3042 limited transmit is applied by the sender for dupacks 1 and 2.
            return;
        }
        // RFC 6582 §3.2 step 2: after a timeout, duplicates for data sent before it do
        // not start another recovery.
        if self.flags.has(Flags::RECOVER_SET) && self.snd_una.lt(self.recover) {
            return;
        }
        self.enter_recovery(now, mss);
    }

    /// Loss recovery of a SACK connection after the scoreboard took an ACK: D-SACK undo
    /// (RFC 3708), the tail loss probe's outcome (RFC 8985 §7.4), RACK loss detection
    /// (RFC 8985 §6.2), entering fast recovery, PRR (RFC 6937) and the loss-detection
    /// timer.
    fn sack_loss_recovery(
        &mut self,
        now: Instant,
        ack: SeqNumber,
        prior_una: SeqNumber,
        has_sack_blocks: bool,
        info: &AckInfo,
        mss: u32,
    ) {
        if let Some((left, right)) = info.dsack {
            let n = &mut self.stats_mut().dsacks_received;
            *n = n.saturating_add(1);
            if let Some((cwnd, ssthresh)) = self.scoreboard.on_dsack(left, right) {
                self.undo_reduction(cwnd, ssthresh);
            }
        }
        let recovering = self.flags.has(Flags::IN_RECOVERY) || self.flags.has(Flags::LOSS_RECOVERY);
        let bare_dupack = ack == prior_una && info.newly_sacked == 0 && !has_sack_blocks;
        if self
            .scoreboard
            .probe_on_ack(ack, info.dsack.is_some(), bare_dupack)
            && !recovering
        {
            // RFC 8985 §7.4: the probe repaired a loss nothing else detected; respond to
            // the congestion as a fast recovery would (the reduction without the
            // episode).
            let flight = self.snd_max.distance_from(self.snd_una);
            self.cc.on_congestion_event(now, flight, mss);
        }
        let scan = self
            .scoreboard
            .detect_losses(now, self.rtt.srtt(), recovering);
        if !recovering && u32::from(self.dupacks) >= DUP_THRESH && self.scoreboard.lost_bytes() == 0
        {
            // RFC 5681 §3.2 / RFC 6675 §5: DupThresh duplicates whose SACK blocks did not
            // let RACK conclude anything still mean the first segment is lost.
            self.scoreboard.mark_head_lost();
        }
        if !recovering && self.scoreboard.lost_bytes() > 0 {
            self.enter_recovery(now, mss);
        }
        if self.flags.has(Flags::IN_RECOVERY) {
            // RFC 6937 §3: DeliveredData = change in SND.UNA + change in SACKed bytes.
            let delivered = ack
                .distance_from(prior_una)
                .saturating_add(info.newly_sacked)
                .saturating_sub(info.sacked_then_acked);
            let flight = self.snd_max.distance_from(self.snd_una);
            let pipe = self.scoreboard.pipe(flight);
            let cwnd = self
                .scoreboard
                .prr_cwnd(delivered, pipe, self.cc.ssthresh(), mss);
            self.cc.set_cwnd(cwnd.max(mss));
        }
        self.arm_loss_timer(now, scan.reorder_timeout);
    }

    /// RFC 3708 detection with the response of RFC 4015 §3: every retransmission of the
    /// episode was spurious, so restore the window and leave recovery.
    fn undo_reduction(&mut self, cwnd: u32, ssthresh: u32) {
        self.cc.undo(cwnd, ssthresh);
        self.flags
            .clear(Flags::IN_RECOVERY | Flags::LOSS_RECOVERY | Flags::REXMIT_HEAD);
        self.dupacks = 0;
        let n = &mut self.stats_mut().spurious_undos;
        *n = n.saturating_add(1);
    }

    /// The loss-detection timer after an ACK or a transmission: the RACK reordering timer
    /// if segments wait for it (RFC 8985 §6.2), else the tail loss probe timeout when a
    /// probe may be sent (RFC 8985 §7.2), else nothing.
    pub(super) fn arm_loss_timer(&mut self, now: Instant, reorder: Option<Duration>) {
        if let Some(wait) = reorder {
            self.timers.set(TimerKind::LossDetection, now + wait);
            self.flags.clear(Flags::PTO_ARMED);
            return;
        }
        let Some(pto) = self.probe_timeout() else {
            self.timers.cancel(TimerKind::LossDetection);
            self.flags.clear(Flags::PTO_ARMED);
            return;
        };
        // §7.2: never later than the RTO would fire (the probe then comes first, and
        // re-arms the RTO).
        let at = match self.timers.get(TimerKind::Retransmit) {
            Some(rto) => (now + pto).min(rto.max(now)),
            None => now + pto,
        };
        self.timers.set(TimerKind::LossDetection, at);
        self.flags.set(Flags::PTO_ARMED);
    }

    /// RFC 8985 §7.2 TLP_calc_PTO, when a probe may be scheduled: a SACK connection in
    /// the open state (not recovering), data in flight, no probe outstanding.
    pub(super) fn probe_timeout(&self) -> Option<Duration> {
        let flight = self.snd_max.distance_from(self.snd_una);
        let may_send = matches!(
            self.state,
            State::Established
                | State::CloseWait
                | State::FinWait1
                | State::Closing
                | State::LastAck
        );
        if !self.flags.has(Flags::SACK)
            || !may_send
            || flight == 0
            || self.flags.has(Flags::IN_RECOVERY)
            || self.flags.has(Flags::LOSS_RECOVERY)
            || self.scoreboard.probe_outstanding()
            || self.scoreboard.lost_bytes() > 0
        {
            return None;
        }
        let mut pto = match self.rtt.srtt() {
            Some(srtt) => srtt * 2,
            None => Duration::from_secs(1),
        };
        if flight <= u32::from(self.smss()) {
            pto += WORST_CASE_DELAYED_ACK;
        }
        Some(pto.max(MIN_PROBE_TIMEOUT))
    }

    /// The loss-detection timer expired: the RACK reordering timer (RFC 8985 §6.2 step 5,
    /// detect again now) or the probe timeout (§7.3, send a probe).
    pub(super) fn on_loss_detection_timeout(&mut self, now: Instant) {
        let mss = u32::from(self.smss());
        if self.flags.take(Flags::PTO_ARMED) {
            if self.probe_timeout().is_some() {
                self.flags.set(Flags::TLP_NOW);
                let n = &mut self.stats_mut().loss_probes;
                *n = n.saturating_add(1);
                // §7.3: after a probe, the RTO is the last resort again, a full RTO
                // from now.
                self.timers.set(TimerKind::Retransmit, now + self.rtt.rto());
            }
            return;
        }
        if !self.flags.has(Flags::SACK) {
            return;
        }
        let recovering = self.flags.has(Flags::IN_RECOVERY) || self.flags.has(Flags::LOSS_RECOVERY);
        let scan = self
            .scoreboard
            .detect_losses(now, self.rtt.srtt(), recovering);
        if !recovering && self.scoreboard.lost_bytes() > 0 {
            self.enter_recovery(now, mss);
        }
        self.arm_loss_timer(now, scan.reorder_timeout);
    }

    /// RFC 5681 §3.2 steps 2-3, RFC 6582 §3.2 step 2, RFC 6675 §5 (entering recovery),
    /// RFC 6937 §3 (PRR's initial state).
    fn enter_recovery(&mut self, now: Instant, mss: u32) {
        let flight = self.snd_max.distance_from(self.snd_una);
        self.recover = self.snd_max;
        self.flags
            .set(Flags::RECOVER_SET | Flags::IN_RECOVERY | Flags::REXMIT_HEAD);
        if self.flags.has(Flags::SACK) {
            // RFC 3708: remember the window, in case the episode proves spurious.
            self.scoreboard
                .begin_undo_episode(self.snd_una, self.cc.cwnd(), self.cc.ssthresh());
            self.scoreboard.prr_start(flight);
        }
        self.cc.on_congestion_event(now, flight, mss);
        if !self.flags.has(Flags::SACK) {
            // NewReno: cwnd = ssthresh + 3*SMSS (the three segments that left the network).
            self.cc.set_cwnd(self.cc.ssthresh().saturating_add(3 * mss));
        }
        let n = &mut self.stats_mut().fast_recoveries;
        *n = n.saturating_add(1);
        // Karn: the timed segment may be retransmitted.
        if self.rtt_start.is_some() && !self.flags.has(Flags::TS) {
            self.rtt_start = None;
        }
    }

    /// Starts or stops the persist timer (RFC 9293 §3.8.6.1) after anything that changes
    /// the window or the queue.
    pub(super) fn update_persist(&mut self, now: Instant) {
        let may_send = matches!(
            self.state,
            State::Established
                | State::CloseWait
                | State::FinWait1
                | State::Closing
                | State::LastAck
        );
        // Nothing in flight (so no ACK will come to clock data out) and the window is too
        // small for the queued data: zero, or short of a segment (sender SWS avoidance
        // would wait for ever without the override timeout of §3.8.6.2.1).
        let unsent = (self.send_data_start() + self.send.len() as u32).distance_from(self.snd_nxt);
        let wnd_room = (self.snd_wl2 + self.snd_wnd).distance_from(self.snd_nxt);
        let full = u32::from(self.smss());
        let blocked =
            may_send && self.snd_una == self.snd_max && unsent > 0 && wnd_room < unsent.min(full);
        if blocked {
            if !self.timers.is_set(TimerKind::Persist) {
                self.arm_persist(now);
            }
        } else {
            self.timers.cancel(TimerKind::Persist);
            self.persist_backoff = 0;
            self.persist_probes = 0;
        }
    }

    /// Whether the window the peer sees should be refreshed after a read.
    pub(super) fn window_update_due(&self) -> bool {
        let cap = self.params.recv_buffer;
        let free = cap.saturating_sub(self.recv.len() as u32);
        let offered = self.rcv_adv.distance_from(self.rcv_nxt);
        let threshold = (cap / 2).min(2 * u32::from(self.rcv_mss)).max(1);
        // Only when the peer is actually constrained: the offered window is less than
        // half of what could be offered now (a bulk receiver keeping up sends no extra
        // ACKs), and the increase is worth a segment (RFC 9293 §3.8.6.2.2).
        free >= offered.saturating_add(threshold) && offered < free / 2
    }
}
