//! Segment output: which segment a connection sends next, one at a time.
//!
//! `poll_transmit` decides (reset, SYN, fast retransmit, RFC 6675 NextSeg, new data under
//! the congestion and peer windows with Nagle and SWS avoidance, FIN, probes, ACKs),
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
}

impl Connection {
    /// The next segment to send, if any. Call until `None` after every input, timeout or
    /// application call; each call commits one segment.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit<'_>> {
        let plan = self.plan(now)?;
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
        // timer must run (RFC 9293 §3.8.6.1).
        self.update_persist(now);
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
        }
    }

    fn plan_syn(&mut self, now: Instant) -> Plan {
        self.snd_nxt = self.iss + 1;
        self.snd_max = self.snd_max.max(self.snd_nxt);
        if self.retries > 0 {
            self.stats.retransmits = self.stats.retransmits.saturating_add(1);
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
        if self.flags.has(Flags::SACK) && !self.assembler.is_empty() {
            let room_blocks = if self.flags.has(Flags::TS) { 3 } else { 4 };
            let blocks = (self.assembler.ranges().len() as u32).min(room_blocks);
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
        let sack_recovery = self.flags.has(Flags::IN_RECOVERY) && self.flags.has(Flags::SACK);

        // Fast retransmit (RFC 5681 §3.2 step 2, RFC 6675 §5 step 3) or a NewReno partial
        // ACK (RFC 6582 §3.2 step 4): the first unacknowledged segment, regardless of cwnd.
        if self.flags.take(Flags::REXMIT_HEAD) {
            let seq = self.snd_una;
            let mut len = data_end.distance_from(seq).min(limit);
            if let Some(&(sacked, _)) = self.scoreboard.ranges().first() {
                len = len.min(sacked.distance_from(seq));
            }
            let fin = fin_queued && seq + len == data_end && self.flags.has(Flags::FIN_SENT);
            if len > 0 || fin {
                self.high_rxt = self.high_rxt.max(seq + len + u32::from(fin));
                return Some(self.commit_data(now, seq, len, fin, data_start));
            }
        }

        let mut in_flight = self.snd_nxt.distance_from(self.snd_una);
        if sack_recovery {
            // RFC 6675 §5 step (C): while cwnd - pipe >= 1 SMSS, NextSeg.
            let pipe = self
                .scoreboard
                .pipe(self.snd_una, self.snd_max, self.high_rxt, mss);
            let cwnd = self.cc.cwnd();
            if cwnd < pipe.saturating_add(mss) {
                return None;
            }
            // Rule 1: a lost, not yet retransmitted hole.
            if let Some((seq, hole)) =
                self.scoreboard
                    .next_seg(self.snd_una, self.high_rxt, mss, false)
            {
                if let Some(plan) =
                    self.sack_retransmit(now, seq, hole, limit, data_start, data_end)
                {
                    return Some(plan);
                }
            }
            in_flight = pipe;
            // Rule 2 is the new-data path below; rule 3 follows it.
        }

        // Going back after a timeout: skip what the receiver has SACKed since.
        while self.snd_nxt.lt(self.snd_max) {
            match self.scoreboard.sacked_until(self.snd_nxt) {
                Some(end) => self.snd_nxt = end.min(self.snd_max),
                None => break,
            }
        }
        let seq = self.snd_nxt;
        let mut cwnd = self.cc.cwnd();
        if !self.flags.has(Flags::IN_RECOVERY) && (1..=2).contains(&self.dupacks) {
            // RFC 3042 limited transmit: one new segment per duplicate ACK.
            cwnd = cwnd.saturating_add(u32::from(self.dupacks) * mss);
        }
        let cwnd_room = cwnd.saturating_sub(in_flight);
        let wnd_room = (self.snd_wl2 + self.snd_wnd).distance_from(seq);
        let is_retransmit = seq.lt(self.snd_max);
        let mut avail = data_end.distance_from(seq);
        if is_retransmit {
            // Do not resend bytes the receiver holds.
            if let Some(sacked) = self.scoreboard.next_sacked_after(seq) {
                avail = avail.min(sacked.distance_from(seq));
            }
        }
        let len = avail.min(limit).min(cwnd_room).min(wnd_room);
        // The FIN rides on the segment that reaches the end of the data.
        let fin = fin_queued && seq.le(data_end) && seq + len == data_end;
        if len == 0 && !fin {
            if sack_recovery {
                // Rule 3: any un-SACKed hole not yet retransmitted.
                if let Some((seq, hole)) =
                    self.scoreboard
                        .next_seg(self.snd_una, self.high_rxt, mss, true)
                {
                    return self.sack_retransmit(now, seq, hole, limit, data_start, data_end);
                }
            }
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

    fn sack_retransmit(
        &mut self,
        now: Instant,
        seq: SeqNumber,
        hole: u32,
        limit: u32,
        data_start: SeqNumber,
        data_end: SeqNumber,
    ) -> Option<Plan> {
        let len = hole.min(limit).min(data_end.distance_from(seq));
        let fin = self.flags.has(Flags::FIN_QUEUED)
            && seq + len == data_end
            && self.flags.has(Flags::FIN_SENT)
            && hole > len;
        if len == 0 && !fin {
            return None;
        }
        self.high_rxt = self.high_rxt.max(seq + len + u32::from(fin));
        self.stats.sack_retransmits = self.stats.sack_retransmits.saturating_add(1);
        Some(self.commit_data(now, seq, len, fin, data_start))
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
            self.stats.retransmits = self.stats.retransmits.saturating_add(1);
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
        let window = self.prepare_ack(now);
        Plan {
            seq,
            control: if fin { Control::Fin } else { Control::None },
            ack: Some(self.rcv_nxt),
            window,
            data_offset: seq.distance_from(data_start) as usize,
            data_len: len as usize,
            options: true,
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
            self.assembler.sack_blocks()
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
