//! Segment output: which segment a connection sends next, one at a time.
//!
//! `poll_transmit` decides (reset, SYN, fast retransmit, segments the scoreboard marks
//! lost (RFC 6675 NextSeg with RACK's marks), tail loss probes (RFC 8985 §7), new data
//! under the congestion and peer windows with Nagle and SWS avoidance, FIN, window probes,
//! ACKs with SACK and D-SACK blocks),
//! commits the decision to the sequence state and timers, and returns a [`Transmit`]: the
//! header as a [`TcpRepr`] and the payload as up to two slices of the send ring, so the
//! poll loop writes headers and copies the payload straight into an mbuf.
use core::net::Ipv4Addr;

use super::congestion::CongestionControl;
use super::connection::{Connection, Flags};
use super::seq::SeqNumber;
use super::state::State;
use super::timers::TimerKind;
use crate::flow::FourTuple;
use crate::time::Instant;
use crate::wire::checksum::ChecksumCaps;
use crate::wire::tcp::{Control, SackRanges, TcpPacket, TcpRepr};
use crate::wire::{Error as WireError, Result as WireResult};

/// One segment to send: header meaning plus payload slices borrowed from the send buffer.
#[derive(Debug, Clone, Copy)]
pub struct Transmit<'a> {
    /// Source is `tuple.local`, destination `tuple.remote`.
    pub tuple: FourTuple,
    /// The header. Its `payload` is empty: the bytes are in [`Transmit::payload`].
    pub repr: TcpRepr<'a>,
    /// The payload, split where the send ring wraps.
    pub payload: [&'a [u8]; 2],
}

impl Transmit<'_> {
    pub fn src_ip(&self) -> Ipv4Addr {
        *self.tuple.local.ip()
    }
    pub fn dst_ip(&self) -> Ipv4Addr {
        *self.tuple.remote.ip()
    }
    pub fn payload_len(&self) -> usize {
        self.payload[0].len() + self.payload[1].len()
    }
    /// The TCP segment's length (header, options and payload).
    pub fn buffer_len(&self) -> usize {
        self.repr.header_len() + self.payload_len()
    }

    /// Writes the TCP segment into `buf` (at least [`Transmit::buffer_len`] bytes) and
    /// fills the checksum as `caps` says. Returns the bytes written.
    pub fn emit(&self, buf: &mut [u8], caps: &ChecksumCaps) -> WireResult<usize> {
        let len = self.buffer_len();
        let buf = buf.get_mut(..len).ok_or(WireError::Truncated)?;
        let mut packet = TcpPacket::new_unchecked(&mut *buf);
        self.repr.emit_header(&mut packet)?;
        let header_len = self.repr.header_len();
        let (a, b) = (self.payload[0], self.payload[1]);
        let payload = packet.payload_mut();
        payload[..a.len()].copy_from_slice(a);
        payload[a.len()..a.len() + b.len()].copy_from_slice(b);
        debug_assert_eq!(header_len + a.len() + b.len(), len);
        packet.fill_checksum(self.src_ip(), self.dst_ip(), caps.tcp.compute_tx())?;
        Ok(len)
    }

    /// The payload gathered into one vector (tests and slow paths only).
    pub fn payload_to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.payload_len());
        v.extend_from_slice(self.payload[0]);
        v.extend_from_slice(self.payload[1]);
        v
    }
}

/// What `plan` decided; `build` turns it into a [`Transmit`].
#[derive(Debug, Clone, Copy)]
struct Plan {
    seq: SeqNumber,
    control: Control,
    ack: Option<SeqNumber>,
    window: u16,
    /// Offset of the payload in the send buffer, and its length.
    data_offset: usize,
    data_len: usize,
    /// The segment carries options (everything but a RST).
    options: bool,
    /// The D-SACK block to report first (RFC 2883 §4).
    dsack: Option<(SeqNumber, SeqNumber)>,
}

impl Connection {
    /// The next segment to send, if any. Call until `None` after every input, timeout or
    /// application call; each call commits one segment.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit<'_>> {
        let mut plan = self.plan(now)?;
        if plan.options && plan.control != Control::Syn && self.flags.has(Flags::SACK) {
            // Reported once, in the first segment that carries an acknowledgment.
            plan.dsack = self.assembler.take_dsack();
        }
        Some(self.build(now, &plan))
    }

    fn plan(&mut self, now: Instant) -> Option<Plan> {
        if let Some(rst) = self.reset.take() {
            return Some(Plan {
                seq: rst.seq,
                control: Control::Rst,
                ack: rst.ack,
                window: 0,
                data_offset: 0,
                data_len: 0,
                options: false,
                dsack: None,
            });
        }
        match self.state {
            State::Closed => return None,
            State::SynSent | State::SynReceived => {
                // Nothing but the SYN goes out before the handshake completes.
                self.flags.clear(Flags::ACK_NOW | Flags::PROBE);
                self.dupacks_owed = 0;
                if self.snd_nxt != self.iss {
                    return None;
                }
                return Some(self.plan_syn(now));
            }
            _ => {}
        }
        if let Some(plan) = self.plan_data(now) {
            return Some(plan);
        }
        // Nothing to send: if that is because the peer's window is zero, the persist
        // timer must run (RFC 9293 §3.8.6.1). A persist timeout that found nothing to
        // force out probes instead.
        self.update_persist(now);
        if self.flags.take(Flags::FORCE) {
            self.flags.set(Flags::PROBE);
        }
        if self.flags.take(Flags::PROBE) {
            // Zero-window and keepalive probe: an old sequence number with no data makes
            // the peer answer with an ACK carrying its window (RFC 9293 §3.8.6.1, §3.8.4).
            let window = self.prepare_ack(now);
            return Some(self.control_plan(self.snd_una - 1, window));
        }
        if self.flags.has(Flags::ACK_NOW) || self.dupacks_owed > 0 {
            self.dupacks_owed = self.dupacks_owed.saturating_sub(1);
            let window = self.prepare_ack(now);
            // SND.MAX rather than a rewound SND.NXT so the peer finds it in its window.
            return Some(self.control_plan(self.snd_max, window));
        }
        None
    }

    fn control_plan(&self, seq: SeqNumber, window: u16) -> Plan {
        Plan {
            seq,
            control: Control::None,
            ack: Some(self.rcv_nxt),
            window,
            data_offset: 0,
            data_len: 0,
            options: true,
            dsack: None,
        }
    }

    fn plan_syn(&mut self, now: Instant) -> Plan {
        self.snd_nxt = self.iss + 1;
        self.snd_max = self.snd_max.max(self.snd_nxt);
        if self.retries > 0 {
            let n = &mut self.stats_mut().retransmits;
            *n = n.saturating_add(1);
        } else if !self.flags.has(Flags::TS) {
            self.rtt_start = Some(now);
            self.rtt_seq = self.snd_nxt;
        }
        self.timers
            .set_if_idle(TimerKind::Retransmit, now + self.rtt.rto());
        let ack = (self.state == State::SynReceived).then_some(self.rcv_nxt);
        // RFC 7323 §2.2: the window in a SYN is not scaled.
        let free = self
            .params
            .recv_buffer
            .saturating_sub(self.recv.len() as u32);
        let window = free.min(0xffff) as u16;
        if ack.is_some() {
            self.rcv_adv = self.rcv_adv.max(self.rcv_nxt + u32::from(window));
            self.last_ack_sent = self.rcv_nxt;
        }
        Plan {
            seq: self.iss,
            control: Control::Syn,
            ack,
            window,
            data_offset: 0,
            data_len: 0,
            options: true,
            dsack: None,
        }
    }

    /// The window field to send, committing RCV.WND's new right edge and clearing the
    /// pending-ACK state (every non-SYN segment carries the ACK).
    fn prepare_ack(&mut self, _now: Instant) -> u16 {
        let cap = self.params.recv_buffer;
        let free = cap.saturating_sub(self.recv.len() as u32);
        let offered = self.rcv_adv.distance_from(self.rcv_nxt);
        // RFC 9293 §3.8.6.2.2 receiver SWS avoidance: move the right edge only by at
        // least min(buffer / 2, MSS).
        let step = (cap / 2).min(u32::from(self.rcv_mss)).max(1);
        let mut wnd = if free >= offered.saturating_add(step) {
            free
        } else {
            offered.max(free.min(offered))
        };
        let shift = self.rcv_wscale;
        let max = 0xffffu32 << shift;
        wnd = wnd.min(max);
        let mut field = wnd >> shift;
        // Never move the right edge left (RFC 9293 §3.8.6.2.2, RFC 7323 §2.4): round up.
        if (self.rcv_nxt + (field << shift)).lt(self.rcv_adv) && field < 0xffff {
            field += 1;
        }
        let edge = self.rcv_nxt + (field << shift);
        self.rcv_adv = self.rcv_adv.max(edge);
        self.last_ack_sent = self.rcv_nxt;
        self.rcv_unacked = 0;
        self.flags.clear(Flags::ACK_NOW);
        self.timers.cancel(TimerKind::DelayedAck);
        field as u16
    }

    /// The most payload one segment may carry, given the options it will carry.
    fn payload_limit(&self) -> u32 {
        let mut options = 0u32;
        if self.flags.has(Flags::TS) {
            options += 12;
        }
        if self.flags.has(Flags::SACK) && (!self.assembler.is_empty() || self.assembler.has_dsack())
        {
            let room_blocks = if self.flags.has(Flags::TS) { 3 } else { 4 };
            let held = self.assembler.len() + usize::from(self.assembler.has_dsack());
            let blocks = (held as u32).min(room_blocks);
            options += 4 + 8 * blocks;
        }
        u32::from(self.snd_mss).saturating_sub(options).max(1)
    }

    fn plan_data(&mut self, now: Instant) -> Option<Plan> {
        if !matches!(
            self.state,
            State::Established
                | State::CloseWait
                | State::FinWait1
                | State::Closing
                | State::LastAck
        ) {
            return None;
        }
        let limit = self.payload_limit();
        let mss = u32::from(self.smss());
        let data_start = self.send_data_start();
        let data_end = data_start + self.send.len() as u32;
        let fin_queued = self.flags.has(Flags::FIN_QUEUED);
        let sack = self.flags.has(Flags::SACK);

        // Fast retransmit (RFC 5681 §3.2 step 2, RFC 6675 §5 step 4.3) or a NewReno
        // partial ACK (RFC 6582 §3.2 step 4): the first segment presumed lost, regardless
        // of cwnd.
        if self.flags.take(Flags::REXMIT_HEAD) {
            if sack {
                if let Some((start, end)) = self.scoreboard.next_lost() {
                    return self.retransmit_lost(now, start, end, limit, data_start, data_end);
                }
            } else {
                let seq = self.snd_una;
                let len = data_end.distance_from(seq).min(limit);
                let fin = fin_queued && seq + len == data_end && self.flags.has(Flags::FIN_SENT);
                if len > 0 || fin {
                    return Some(self.commit_data(now, seq, len, fin, data_start));
                }
            }
        }

        // RFC 8985 §7.3: a tail loss probe, regardless of cwnd.
        if sack && self.flags.take(Flags::TLP_NOW) {
            if let Some(plan) = self.plan_probe(now, limit, data_start, data_end) {
                return Some(plan);
            }
        }

        let mut in_flight = self.snd_nxt.distance_from(self.snd_una);
        let cwnd = self.cc.cwnd();
        if sack {
            // RFC 6675 §4 SetPipe, with RACK's loss marks: what is in the network.
            let pipe = self
                .scoreboard
                .pipe(self.snd_max.distance_from(self.snd_una));
            if self.scoreboard.lost_bytes() > 0 {
                // RFC 6675 §5 step (C), NextSeg rule 1 before rule 2: lost segments go out
                // before new data, while cwnd - pipe >= 1 SMSS.
                if cwnd < pipe.saturating_add(mss) {
                    return None;
                }
                let (start, end) = self.scoreboard.next_lost()?;
                return self.retransmit_lost(now, start, end, limit, data_start, data_end);
            }
            if self.flags.has(Flags::IN_RECOVERY) && cwnd < pipe.saturating_add(mss) {
                return None;
            }
            in_flight = pipe;
        }

        let seq = self.snd_nxt;
        let mut cwnd = cwnd;
        if !sack && !self.flags.has(Flags::IN_RECOVERY) && (1..=2).contains(&self.dupacks) {
            // RFC 3042 limited transmit: one new segment per duplicate ACK (with SACK, the
            // pipe already leaves out what the receiver holds).
            cwnd = cwnd.saturating_add(u32::from(self.dupacks) * mss);
        }
        let cwnd_room = cwnd.saturating_sub(in_flight);
        let wnd_room = (self.snd_wl2 + self.snd_wnd).distance_from(seq);
        let is_retransmit = seq.lt(self.snd_max);
        let avail = data_end.distance_from(seq);
        let len = avail.min(limit).min(cwnd_room).min(wnd_room);
        // The FIN rides on the segment that reaches the end of the data.
        let fin = fin_queued && seq.le(data_end) && seq + len == data_end;
        if len == 0 && !fin {
            return None;
        }
        if !is_retransmit && !fin && len < limit {
            // RFC 9293 §3.7.4 (Nagle) and §3.8.6.2.1 (sender SWS avoidance): send a short
            // segment only if it holds everything queued and nothing is in flight (or
            // Nagle is off), or it fills at least half the largest window offered.
            let all_queued = len == avail;
            let idle = self.snd_una == self.snd_max;
            let push = all_queued && (!self.params.nagle || idle);
            let half_window = self.max_snd_wnd > 0 && len >= self.max_snd_wnd / 2;
            if !(push || half_window || self.flags.has(Flags::FORCE)) {
                return None;
            }
        }
        Some(self.commit_data(now, seq, len, fin, data_start))
    }

    /// Retransmits (the start of) the lost segment `[start, end)` of the scoreboard; a
    /// FIN is its last sequence number when `end` is past the data.
    fn retransmit_lost(
        &mut self,
        now: Instant,
        start: SeqNumber,
        end: SeqNumber,
        limit: u32,
        data_start: SeqNumber,
        data_end: SeqNumber,
    ) -> Option<Plan> {
        let len = end.min(data_end).distance_from(start).min(limit);
        let fin = self.flags.has(Flags::FIN_QUEUED)
            && self.flags.has(Flags::FIN_SENT)
            && end.gt(data_end)
            && start + len == data_end;
        if len == 0 && !fin {
            return None;
        }
        let n = &mut self.stats_mut().sack_retransmits;
        *n = n.saturating_add(1);
        Some(self.commit_data(now, start, len, fin, data_start))
    }

    /// RFC 8985 §7.3: the probe is a new segment if the peer's window allows one, else
    /// the last segment sent (its last SMSS) again.
    fn plan_probe(
        &mut self,
        now: Instant,
        limit: u32,
        data_start: SeqNumber,
        data_end: SeqNumber,
    ) -> Option<Plan> {
        let seq = self.snd_nxt;
        let avail = data_end.distance_from(seq);
        let wnd_room = (self.snd_wl2 + self.snd_wnd).distance_from(seq);
        if avail > 0 && wnd_room > 0 {
            let len = avail.min(limit).min(wnd_room);
            let fin = self.flags.has(Flags::FIN_QUEUED) && seq + len == data_end;
            // Outstanding before it is committed, so that sending it arms no new probe.
            let end = seq + len + u32::from(fin);
            self.scoreboard.probe_sent(self.snd_max.max(end), false);
            return Some(self.commit_data(now, seq, len, fin, data_start));
        }
        let (start, end) = self.scoreboard.last_unsacked()?;
        let data_hi = end.min(data_end);
        let start = if data_hi.distance_from(start) > limit {
            data_hi - limit
        } else {
            start
        };
        let len = data_hi.distance_from(start);
        let fin = self.flags.has(Flags::FIN_QUEUED)
            && self.flags.has(Flags::FIN_SENT)
            && end.gt(data_end);
        if len == 0 && !fin {
            return None;
        }
        self.scoreboard.probe_sent(self.snd_max, true);
        Some(self.commit_data(now, start, len, fin, data_start))
    }

    /// Commits a data/FIN segment at `seq`: sequence state, RTT timing, timer.
    fn commit_data(
        &mut self,
        now: Instant,
        seq: SeqNumber,
        len: u32,
        fin: bool,
        data_start: SeqNumber,
    ) -> Plan {
        let end = seq + len + u32::from(fin);
        let is_retransmit = seq.lt(self.snd_max);
        self.flags.clear(Flags::FORCE);
        if is_retransmit {
            let n = &mut self.stats_mut().retransmits;
            *n = n.saturating_add(1);
            // Karn: a timed segment that is sent again gives no sample.
            if self.rtt_start.is_some() && self.rtt_seq.gt(seq) {
                self.rtt_start = None;
            }
        } else if !self.flags.has(Flags::TS) && self.rtt_start.is_none() && len > 0 {
            self.rtt_start = Some(now);
            self.rtt_seq = end;
        }
        // Only sending at SND.NXT moves it; retransmissions of holes leave it.
        if seq == self.snd_nxt {
            self.snd_nxt = end;
        }
        self.snd_max = self.snd_max.max(end);
        if fin {
            self.flags.set(Flags::FIN_SENT);
        }
        // RFC 6298 §5.1: start the timer if it is not running.
        self.timers
            .set_if_idle(TimerKind::Retransmit, now + self.rtt.rto());
        if self.flags.has(Flags::SACK) {
            if is_retransmit && self.flags.has(Flags::TS) {
                let tsval = self.ts_now(now);
                self.scoreboard.note_retransmit_tsval(tsval);
            }
            self.scoreboard.on_transmit(seq, end, now);
            if self.flags.has(Flags::IN_RECOVERY) {
                // RFC 6937 §3: prr_out.
                self.scoreboard.prr_sent(end.distance_from(seq));
            }
            // RFC 8985 §7.2: (re)start the probe timeout after sending, unless the
            // reordering timer is waiting.
            let reorder_pending =
                self.timers.is_set(TimerKind::LossDetection) && !self.flags.has(Flags::PTO_ARMED);
            if !reorder_pending {
                self.arm_loss_timer(now, None);
            }
        }
        let window = self.prepare_ack(now);
        Plan {
            seq,
            control: if fin { Control::Fin } else { Control::None },
            ack: Some(self.rcv_nxt),
            window,
            data_offset: seq.distance_from(data_start) as usize,
            data_len: len as usize,
            options: true,
            dsack: None,
        }
    }

    fn build(&self, now: Instant, plan: &Plan) -> Transmit<'_> {
        let syn = plan.control == Control::Syn;
        let ts = self.flags.has(Flags::TS) && plan.options;
        let timestamp = ts.then(|| {
            let echo = if self.state == State::SynSent && syn {
                0
            } else {
                self.ts_recent
            };
            (self.ts_now(now), echo)
        });
        let sack_ranges: SackRanges = if plan.options && !syn && self.flags.has(Flags::SACK) {
            self.assembler.sack_blocks(plan.dsack)
        } else {
            [None; 4]
        };
        let (a, b) = self.send.slices(plan.data_offset, plan.data_len);
        let at_end = plan.data_offset + plan.data_len == self.send.len();
        let repr = TcpRepr {
            src_port: self.tuple.local.port(),
            dst_port: self.tuple.remote.port(),
            control: plan.control,
            push: plan.data_len > 0 && at_end,
            seq_number: plan.seq,
            ack_number: plan.ack,
            window_len: plan.window,
            window_scale: (syn && self.flags.has(Flags::WS)).then_some(self.rcv_wscale),
            max_seg_size: syn.then_some(self.rcv_mss),
            sack_permitted: syn && self.flags.has(Flags::SACK),
            sack_ranges,
            timestamp,
            experimental: None,
            payload: &[],
        };
        Transmit {
            tuple: self.tuple,
            repr,
            payload: [a, b],
        }
    }
}
