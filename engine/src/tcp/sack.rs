//! The sender's loss-recovery scoreboard: one record per transmitted segment from SND.UNA
//! to SND.MAX (SACKed, lost, retransmitted, when last sent), and the algorithms that read
//! it: RACK time-based loss detection and the state of tail loss probes (RACK-TLP,
//! RFC 8985), pipe (RFC 6675 §4 SetPipe, with RACK's loss marks), D-SACK detection
//! (RFC 2883 §4) and the counting of spurious retransmissions (RFC 3708), and the
//! proportional rate reduction counters (RFC 6937).
//!
//! Owns those records and counters, on the heap, allocated at the first transmission of a
//! SACK connection; the per-segment storage is released whenever nothing is in flight.
//! It knows nothing of buffers, timers or windows, and reads no clock: the connection
//! passes `now` and asks what to retransmit and when to look again.
use std::collections::VecDeque;

use super::seq::SeqNumber;
use crate::time::{Duration, Instant};
use crate::wire::tcp::SackRanges;

/// RFC 6675 §2: DupThresh.
pub const DUP_THRESH: u32 = 3;

/// RFC 8985 §7.2: WCDelAckT, the worst-case delayed-ACK time added to the probe timeout
/// when a single segment is in flight.
pub const WORST_CASE_DELAYED_ACK: Duration = Duration::from_millis(200);
/// The smallest probe timeout (as Linux): below it, host scheduling noise alone would
/// fire probes on sub-millisecond paths.
pub const MIN_PROBE_TIMEOUT: Duration = Duration::from_millis(10);
/// RFC 8985 §6.2 step 4: reo_wnd_persist.
const REO_WND_PERSIST: u8 = 16;
/// The largest reordering-window multiplier (the window is capped by SRTT anyway).
const MAX_REO_WND_MULT: u8 = 16;

/// The receiver holds this segment (SACKed).
const SACKED: u8 = 1 << 0;
/// Marked lost and not retransmitted since.
const LOST: u8 = 1 << 1;
/// Retransmitted at least once.
const RETRANSMITTED: u8 = 1 << 2;

/// One transmitted segment (a FIN counts as one byte of the last one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sent {
    start: SeqNumber,
    end: SeqNumber,
    /// The last time it was (re)transmitted.
    sent_at: Instant,
    flags: u8,
}

impl Sent {
    fn len(&self) -> u32 {
        self.end.distance_from(self.start)
    }
    fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// RACK state (RFC 8985 §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rack {
    /// RACK.xmit_ts and RACK.end_seq: the most recently sent segment delivered.
    xmit_ts: Instant,
    end_seq: SeqNumber,
    /// RACK.rtt, µs: the RTT of that segment.
    rtt_us: u32,
    /// RACK.min_RTT, µs (u32::MAX before the first sample).
    min_rtt_us: u32,
    /// RACK.fack: the highest end sequence delivered (set at the first transmission).
    fack: Option<SeqNumber>,
    has_sample: bool,
    /// RACK.reordering_seen.
    reordering_seen: bool,
    reo_wnd_mult: u8,
    reo_wnd_persist: u8,
    /// RACK.dsack_round: an upper bound of the round in which a D-SACK last widened the
    /// window.
    dsack_round: Option<SeqNumber>,
}

impl Default for Rack {
    fn default() -> Self {
        Rack {
            xmit_ts: Instant::ZERO,
            end_seq: SeqNumber(0),
            rtt_us: 0,
            min_rtt_us: u32::MAX,
            fack: None,
            has_sample: false,
            reordering_seen: false,
            reo_wnd_mult: 1,
            reo_wnd_persist: 0,
            dsack_round: None,
        }
    }
}

/// RFC 8985 §6.2: RACK_sent_after.
fn sent_after(t1: Instant, seq1: SeqNumber, t2: Instant, seq2: SeqNumber) -> bool {
    t1 > t2 || (t1 == t2 && seq1.gt(seq2))
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// A recovery episode whose reduction may be undone (RFC 3708 with the response of
/// RFC 4015: restore the window if every retransmission proves spurious).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Undo {
    /// SND.UNA when the episode began: D-SACKs below it are for older data.
    marker: SeqNumber,
    prior_cwnd: u32,
    prior_ssthresh: u32,
    /// Retransmitted bytes of the episode not yet reported by a D-SACK.
    retransmitted: u32,
    /// At least one retransmission was sent.
    any: bool,
    /// The timestamp (TSval) of the episode's first retransmission, or of an earlier one
    /// still outstanding when it began (a probe's), for the Eifel detection of RFC 3522.
    first_tsval: Option<u32>,
    /// Eifel detection is off for this episode: retransmissions of unknown timestamp were
    /// outstanding when it began.
    no_eifel: bool,
}

/// Proportional rate reduction state (RFC 6937 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Prr {
    recover_fs: u32,
    delivered: u32,
    out: u32,
}

/// Tail loss probe state (RFC 8985 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Probe {
    /// TLP.end_seq: SND.NXT after the probe.
    end_seq: SeqNumber,
    /// TLP.is_retrans.
    is_retrans: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Board {
    /// Sorted, contiguous from SND.UNA to SND.MAX.
    segs: VecDeque<Sent>,
    sacked_bytes: u32,
    sacked_segs: u32,
    lost_bytes: u32,
    rack: Rack,
    undo: Option<Undo>,
    prr: Prr,
    probe: Option<Probe>,
    /// The TSval of a retransmission sent no later than every retransmission still
    /// outstanding (reset when nothing is in flight).
    rexmit_floor: Option<u32>,
}

/// What one ACK told the scoreboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AckInfo {
    /// Bytes newly SACKed (not cumulatively acknowledged).
    pub newly_sacked: u32,
    /// Previously SACKed bytes now covered by the cumulative ACK.
    pub sacked_then_acked: u32,
    /// The D-SACK block of the ACK (RFC 2883 §4), if its first block is one.
    pub dsack: Option<(SeqNumber, SeqNumber)>,
    /// The receiver discarded data it had SACKed (RFC 2018 §8): SACK marks were dropped.
    pub reneged: bool,
}

/// What a loss-detection pass found (RFC 8985 §6.2 step 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LossScan {
    /// Segments were newly marked lost.
    pub newly_lost: bool,
    /// Segments that are not yet lost will be once this much time passes: the RACK
    /// reordering timer.
    pub reorder_timeout: Option<Duration>,
}

/// The sender's scoreboard; empty (no allocation) until a SACK connection sends.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scoreboard {
    board: Option<Box<Board>>,
}

impl Scoreboard {
    fn board_mut(&mut self) -> &mut Board {
        self.board.get_or_insert_with(Box::default)
    }

    /// Forgets everything (the connection closed).
    pub fn clear(&mut self) {
        self.board = None;
    }

    /// No segment is tracked.
    pub fn is_empty(&self) -> bool {
        self.board.as_ref().is_none_or(|b| b.segs.is_empty())
    }

    /// The tracked range, `[SND.UNA, SND.MAX)` as the scoreboard knows it.
    pub fn span(&self) -> Option<(SeqNumber, SeqNumber)> {
        let b = self.board.as_ref()?;
        Some((b.segs.front()?.start, b.segs.back()?.end))
    }

    pub fn sacked_bytes(&self) -> u32 {
        self.board.as_ref().map_or(0, |b| b.sacked_bytes)
    }

    /// Bytes marked lost and not retransmitted since.
    pub fn lost_bytes(&self) -> u32 {
        self.board.as_ref().map_or(0, |b| b.lost_bytes)
    }

    /// The SACKed ranges, merged, lowest first (tests and diagnostics).
    pub fn sacked_ranges(&self) -> Vec<(SeqNumber, SeqNumber)> {
        let mut out: Vec<(SeqNumber, SeqNumber)> = Vec::new();
        let Some(b) = &self.board else { return out };
        for s in b.segs.iter().filter(|s| s.has(SACKED)) {
            match out.last_mut() {
                Some(last) if last.1 == s.start => last.1 = s.end,
                _ => out.push((s.start, s.end)),
            }
        }
        out
    }

    /// Records a transmission of `[start, end)` at `now`: new data is appended, a
    /// retransmission updates the records it covers (no longer lost, sent at `now`).
    /// Returns the retransmitted bytes that were not SACKed.
    pub fn on_transmit(&mut self, start: SeqNumber, end: SeqNumber, now: Instant) -> u32 {
        if !start.lt(end) {
            return 0;
        }
        let b = self.board_mut();
        let append = b.segs.back().is_none_or(|last| start.ge(last.end));
        if append {
            b.segs.push_back(Sent {
                start,
                end,
                sent_at: now,
                flags: 0,
            });
            return 0;
        }
        b.split_at(start);
        b.split_at(end);
        let mut resent = 0u32;
        let first = b.index_of(start);
        for s in b.segs.iter_mut().skip(first) {
            if !s.start.lt(end) {
                break;
            }
            if s.has(SACKED) {
                continue;
            }
            if s.has(LOST) {
                b.lost_bytes = b.lost_bytes.saturating_sub(s.len());
            }
            s.flags = (s.flags & !LOST) | RETRANSMITTED;
            s.sent_at = now;
            resent = resent.saturating_add(s.len());
        }
        if let Some(undo) = &mut b.undo {
            if start.ge(undo.marker) && resent > 0 {
                undo.retransmitted = undo.retransmitted.saturating_add(resent);
                undo.any = true;
            }
        }
        resent
    }

    /// Processes the cumulative acknowledgment `ack` and the SACK `blocks` of one ACK
    /// (RFC 2018, RFC 2883 §4, RFC 8985 §6.2 steps 1-3). `echo_covers(t)` says whether the
    /// ACK's timestamp echo shows it answers a transmission made at `t` or later (true
    /// without timestamps).
    ///
    /// `fin` is the sequence number of our FIN once sent: SACK blocks cannot cover it
    /// (RFC 2018 reports data), so a block ending at it while the FIN was sent in the same
    /// segment as that data reports the FIN too.
    pub fn on_ack(
        &mut self,
        now: Instant,
        ack: SeqNumber,
        blocks: &SackRanges,
        fin: Option<SeqNumber>,
        echo_covers: impl Fn(Instant) -> bool,
    ) -> AckInfo {
        let mut info = AckInfo::default();
        let Some(b) = self.board.as_deref_mut() else {
            return info;
        };
        let Some((lo, hi)) = b
            .segs
            .front()
            .map(|f| f.start)
            .zip(b.segs.back().map(|l| l.end))
        else {
            info.dsack = dsack_block(blocks, ack);
            return info;
        };
        // RFC 2883 §4: the first block is a D-SACK if it lies below the cumulative ACK or
        // inside the second block.
        info.dsack = dsack_block(blocks, ack);
        let mut best: Option<Sent> = None;
        let mut consider = |s: &Sent, rack: &mut Rack| {
            // RFC 8985 §6.2 step 3: a never-retransmitted segment delivered below the
            // highest delivered sequence was reordered.
            match rack.fack {
                Some(fack) if !s.end.gt(fack) => {
                    if s.end.lt(fack) && !s.has(RETRANSMITTED) {
                        rack.reordering_seen = true;
                    }
                }
                _ => rack.fack = Some(s.end),
            }
            // Step 2: ambiguous deliveries of retransmitted segments are skipped.
            if s.has(RETRANSMITTED) {
                let rtt = micros(now - s.sent_at);
                if !echo_covers(s.sent_at) || rtt < rack.min_rtt_us {
                    return;
                }
            }
            if best.is_none_or(|x| sent_after(s.sent_at, s.end, x.sent_at, x.end)) {
                best = Some(*s);
            }
        };
        // Cumulatively acknowledged records.
        if ack.gt(lo) {
            let ack = ack.min(hi);
            // Usually the ACK ends at a record boundary: split only a record it cuts.
            let cut = b.segs.iter().find(|s| s.end.gt(ack));
            if cut.is_some_and(|s| s.start.lt(ack)) {
                b.split_at(ack);
            }
            while let Some(s) = b.segs.front().copied() {
                if !s.end.le(ack) {
                    break;
                }
                b.segs.pop_front();
                if s.has(SACKED) {
                    b.sacked_bytes = b.sacked_bytes.saturating_sub(s.len());
                    b.sacked_segs = b.sacked_segs.saturating_sub(1);
                    info.sacked_then_acked = info.sacked_then_acked.saturating_add(s.len());
                    continue;
                }
                if s.has(LOST) {
                    b.lost_bytes = b.lost_bytes.saturating_sub(s.len());
                }
                consider(&s, &mut b.rack);
            }
        }
        // SACK blocks (the D-SACK block aside), lowest first: an insertion sort of at most
        // four, keyed by the offset from SND.UNA (a total order whatever the peer sent).
        let una = b.segs.front().map(|f| f.start);
        let base = una.unwrap_or(ack);
        let mut sorted = [(0u32, SeqNumber(0), SeqNumber(0)); 4];
        let mut n = 0;
        let skip = usize::from(info.dsack.is_some());
        for &(left, right) in blocks.iter().skip(skip).flatten() {
            let key = left.0.wrapping_sub(base.0);
            let mut i = n;
            while i > 0 && sorted[i - 1].0 > key {
                sorted[i] = sorted[i - 1];
                i -= 1;
            }
            sorted[i] = (key, left, right);
            n += 1;
        }
        for &(_, left, right) in &sorted[..n] {
            let Some(una) = una else { break };
            // RFC 2018 §8 / RFC 6675: blocks outside (SND.UNA, SND.MAX] are ignored.
            if !left.lt(right) || !left.ge(una) || right.gt(hi) {
                continue;
            }
            let right = match fin {
                Some(f)
                    if right == f && b.segs.get(b.index_of(f)).is_some_and(|s| s.start.lt(f)) =>
                {
                    f + 1
                }
                _ => right,
            };
            b.split_at(left);
            b.split_at(right);
            let first = b.index_of(left);
            let mut i = first;
            while let Some(s) = b.segs.get_mut(i) {
                if !s.start.lt(right) {
                    break;
                }
                i += 1;
                if s.has(SACKED) {
                    continue;
                }
                if s.has(LOST) {
                    b.lost_bytes = b.lost_bytes.saturating_sub(s.len());
                }
                s.flags = (s.flags & !LOST) | SACKED;
                let s = *s;
                b.sacked_bytes = b.sacked_bytes.saturating_add(s.len());
                b.sacked_segs = b.sacked_segs.saturating_add(1);
                info.newly_sacked = info.newly_sacked.saturating_add(s.len());
                consider(&s, &mut b.rack);
            }
        }
        if let Some(s) = best {
            let rack = &mut b.rack;
            let rtt = micros(now - s.sent_at);
            if !s.has(RETRANSMITTED) {
                rack.min_rtt_us = rack.min_rtt_us.min(rtt);
            }
            rack.rtt_us = rtt;
            if !rack.has_sample || sent_after(s.sent_at, s.end, rack.xmit_ts, rack.end_seq) {
                rack.xmit_ts = s.sent_at;
                rack.end_seq = s.end;
            }
            rack.has_sample = true;
        }
        // RFC 2018 §8: a cumulative ACK that stops at data the receiver had SACKed means
        // it discarded that data: forget every SACK mark.
        if b.segs.front().is_some_and(|f| f.has(SACKED)) {
            for s in b.segs.iter_mut() {
                s.flags &= !SACKED;
            }
            b.sacked_bytes = 0;
            b.sacked_segs = 0;
            info.reneged = true;
        }
        // RFC 8985 §6.2 step 4: D-SACKs widen the reordering window for a while.
        let snd_una = b.segs.front().map_or(ack, |f| f.start);
        if b.rack.dsack_round.is_some_and(|r| snd_una.ge(r)) {
            b.rack.dsack_round = None;
        }
        if info.dsack.is_some() {
            if b.rack.dsack_round.is_none() {
                b.rack.dsack_round = Some(hi);
                b.rack.reo_wnd_mult = b.rack.reo_wnd_mult.saturating_add(1).min(MAX_REO_WND_MULT);
                b.rack.reo_wnd_persist = REO_WND_PERSIST;
            }
            b.rack.reordering_seen = true;
        }
        if b.segs.is_empty() {
            b.segs = VecDeque::new();
            b.rexmit_floor = None;
        }
        info
    }

    /// RFC 8985 §6.2 step 4: RACK.reo_wnd.
    fn reo_wnd(b: &Board, srtt: Option<Duration>, in_recovery: bool) -> Duration {
        let rack = &b.rack;
        reo_wnd_of(
            b.sacked_segs,
            rack.reordering_seen,
            rack.min_rtt_us,
            rack.reo_wnd_mult,
            srtt,
            in_recovery,
        )
    }

    /// RFC 8985 §6.2 step 5 (RACK_detect_loss): marks lost every segment sent before the
    /// most recently delivered one by more than RACK.rtt + RACK.reo_wnd, and says when
    /// the others would be.
    pub fn detect_losses(
        &mut self,
        now: Instant,
        srtt: Option<Duration>,
        in_recovery: bool,
    ) -> LossScan {
        let mut scan = LossScan::default();
        let Some(b) = self.board.as_deref_mut() else {
            return scan;
        };
        if !b.rack.has_sample {
            return scan;
        }
        let rack = b.rack;
        // The reordering window is computed only if a segment needs it.
        let mut wait = None;
        let mut lost = 0u32;
        let mut timeout = Duration::ZERO;
        let (sacked_segs, reordering_seen, min_rtt_us, reo_wnd_mult) = (
            b.sacked_segs,
            rack.reordering_seen,
            rack.min_rtt_us,
            rack.reo_wnd_mult,
        );
        for s in b.segs.iter_mut() {
            if s.has(SACKED) || s.has(LOST) {
                continue;
            }
            if !sent_after(rack.xmit_ts, rack.end_seq, s.sent_at, s.end) {
                // Segments are first sent in sequence order: none after this one that
                // was never retransmitted was sent before RACK.xmit_ts.
                if !s.has(RETRANSMITTED) {
                    break;
                }
                continue;
            }
            let wait = *wait.get_or_insert_with(|| {
                let reo_wnd = reo_wnd_of(
                    sacked_segs,
                    reordering_seen,
                    min_rtt_us,
                    reo_wnd_mult,
                    srtt,
                    in_recovery,
                );
                Duration::from_micros(u64::from(rack.rtt_us)) + reo_wnd
            });
            let deadline = s.sent_at + wait;
            if deadline <= now {
                s.flags |= LOST;
                lost = lost.saturating_add(s.len());
            } else {
                timeout = timeout.max(deadline - now);
            }
        }
        b.lost_bytes = b.lost_bytes.saturating_add(lost);
        scan.newly_lost = lost > 0;
        scan.reorder_timeout = (timeout > Duration::ZERO).then_some(timeout);
        scan
    }

    /// RFC 8985 §6.3: on a retransmission timeout, the first unacknowledged segment is
    /// lost, and so is every other one sent more than RACK.rtt + RACK.reo_wnd ago.
    /// Without an RTT sample every un-SACKed segment is (RFC 6675 §5.1). Returns whether
    /// anything is marked lost.
    pub fn mark_lost_on_timeout(&mut self, now: Instant, srtt: Option<Duration>) -> bool {
        let Some(b) = self.board.as_deref_mut() else {
            return false;
        };
        let wait = b.rack.has_sample.then(|| {
            Duration::from_micros(u64::from(b.rack.rtt_us)) + Self::reo_wnd(b, srtt, true)
        });
        let mut lost = 0u32;
        let mut first = true;
        for s in b.segs.iter_mut() {
            if s.has(SACKED) {
                continue;
            }
            let old = wait.is_none_or(|w| s.sent_at + w <= now);
            if (first || old) && !s.has(LOST) {
                s.flags |= LOST;
                lost = lost.saturating_add(s.len());
            }
            first = false;
        }
        b.lost_bytes = b.lost_bytes.saturating_add(lost);
        b.lost_bytes > 0
    }

    /// RFC 6675 §5 (DupThresh duplicate ACKs without usable SACK information): the first
    /// unacknowledged segment is lost.
    pub fn mark_head_lost(&mut self) -> bool {
        let Some(b) = self.board.as_deref_mut() else {
            return false;
        };
        match b.segs.front_mut() {
            Some(s) if !s.has(SACKED) && !s.has(LOST) => {
                s.flags |= LOST;
                b.lost_bytes = b.lost_bytes.saturating_add(s.len());
                true
            }
            _ => false,
        }
    }

    /// RFC 6675 §4 SetPipe with RACK's loss marks: bytes in flight are those sent and
    /// neither SACKed nor marked lost since their last transmission. `flight` is
    /// SND.MAX - SND.UNA.
    pub fn pipe(&self, flight: u32) -> u32 {
        flight
            .saturating_sub(self.sacked_bytes())
            .saturating_sub(self.lost_bytes())
    }

    /// RFC 6675 §4 NextSeg rule 1 with RACK's marks: the first segment marked lost and not
    /// retransmitted since, as `[start, end)`.
    pub fn next_lost(&self) -> Option<(SeqNumber, SeqNumber)> {
        let b = self.board.as_ref()?;
        if b.lost_bytes == 0 {
            return None;
        }
        b.segs
            .iter()
            .find(|s| s.has(LOST))
            .map(|s| (s.start, s.end))
    }

    /// The highest segment not SACKed (RFC 8985 §7.3: what a probe retransmits).
    pub fn last_unsacked(&self) -> Option<(SeqNumber, SeqNumber)> {
        let b = self.board.as_ref()?;
        b.segs
            .iter()
            .rev()
            .find(|s| !s.has(SACKED))
            .map(|s| (s.start, s.end))
    }

    /// The start of the first SACKed segment above `seq`, if any.
    pub fn next_sacked_after(&self, seq: SeqNumber) -> Option<SeqNumber> {
        let b = self.board.as_ref()?;
        b.segs
            .iter()
            .skip(b.index_of(seq))
            .find(|s| s.has(SACKED) && s.start.gt(seq))
            .map(|s| s.start)
    }

    // ----- RFC 3708 undo ---------------------------------------------------------------

    /// A recovery episode begins at `snd_una` with the window before its reduction
    /// (replacing any earlier episode).
    ///
    /// Retransmissions still outstanding (a probe's) count in the episode: their D-SACKs
    /// must not stand for the episode's own.
    pub fn begin_undo_episode(&mut self, snd_una: SeqNumber, cwnd: u32, ssthresh: u32) {
        let b = self.board_mut();
        let outstanding: u32 = b
            .segs
            .iter()
            .filter(|s| s.has(RETRANSMITTED) && !s.has(SACKED))
            .map(Sent::len)
            .sum();
        if outstanding == 0 {
            b.rexmit_floor = None;
        }
        b.undo = Some(Undo {
            marker: snd_una,
            prior_cwnd: cwnd,
            prior_ssthresh: ssthresh,
            retransmitted: outstanding,
            any: outstanding > 0,
            first_tsval: b.rexmit_floor,
            no_eifel: outstanding > 0 && b.rexmit_floor.is_none(),
        });
    }

    /// A retransmission carrying timestamp `tsval` was sent: the first of the episode is
    /// the reference of the Eifel detection.
    pub fn note_retransmit_tsval(&mut self, tsval: u32) {
        let b = self.board_mut();
        b.rexmit_floor.get_or_insert(tsval);
        if let Some(undo) = b.undo.as_mut() {
            if undo.first_tsval.is_none() && !undo.no_eifel {
                undo.first_tsval = Some(tsval);
            }
        }
    }

    /// RFC 3522 §3.2 (Eifel detection): an ACK of new data that echoes a timestamp older
    /// than the episode's first retransmission was sent for an original transmission, so
    /// the episode was spurious. Returns the window before it, as
    /// [`Scoreboard::on_dsack`] does, and ends the episode.
    pub fn eifel_check(&mut self, tsecr: u32) -> Option<(u32, u32)> {
        let b = self.board.as_deref_mut()?;
        let undo = b.undo.as_ref()?;
        let first = undo.first_tsval?;
        if (tsecr.wrapping_sub(first) as i32) >= 0 {
            return None;
        }
        let prior = (undo.prior_cwnd, undo.prior_ssthresh);
        b.undo = None;
        for s in b.segs.iter_mut() {
            s.flags &= !LOST;
        }
        b.lost_bytes = 0;
        b.rack.reordering_seen = true;
        Some(prior)
    }

    /// Ends the undo episode (a new one may begin).
    pub fn end_undo_episode(&mut self) {
        if let Some(b) = self.board.as_deref_mut() {
            b.undo = None;
        }
    }

    /// An undo episode is open.
    pub fn undo_open(&self) -> bool {
        self.board.as_ref().is_some_and(|b| b.undo.is_some())
    }

    /// RFC 3708 §3: a D-SACK for `[left, right)` reports that many retransmitted bytes as
    /// spurious. When every retransmission of the episode has been reported, returns the
    /// window before the reduction, `(cwnd, ssthresh)`, and ends the episode; every
    /// remaining loss mark is dropped (those losses were reordering).
    pub fn on_dsack(&mut self, left: SeqNumber, right: SeqNumber) -> Option<(u32, u32)> {
        let b = self.board.as_deref_mut()?;
        let undo = b.undo.as_mut()?;
        if left.lt(undo.marker) || !left.lt(right) {
            return None;
        }
        undo.retransmitted = undo.retransmitted.saturating_sub(right.distance_from(left));
        if !(undo.any && undo.retransmitted == 0) {
            return None;
        }
        let prior = (undo.prior_cwnd, undo.prior_ssthresh);
        b.undo = None;
        for s in b.segs.iter_mut() {
            s.flags &= !LOST;
        }
        b.lost_bytes = 0;
        b.rack.reordering_seen = true;
        Some(prior)
    }

    // ----- RFC 6937 PRR --------------------------------------------------------------

    /// Recovery begins with `flight` bytes outstanding (RecoverFS).
    pub fn prr_start(&mut self, flight: u32) {
        self.board_mut().prr = Prr {
            recover_fs: flight.max(1),
            delivered: 0,
            out: 0,
        };
    }

    /// Bytes sent during recovery (prr_out).
    pub fn prr_sent(&mut self, bytes: u32) {
        if let Some(b) = self.board.as_deref_mut() {
            b.prr.out = b.prr.out.saturating_add(bytes);
        }
    }

    /// RFC 6937 §3, on each ACK in recovery: the congestion window that lets `sndcnt`
    /// bytes go out, given `delivered` (DeliveredData), `pipe` and `ssthresh`, with the
    /// slow-start reduction bound (PRR-SSRB).
    pub fn prr_cwnd(&mut self, delivered: u32, pipe: u32, ssthresh: u32, mss: u32) -> u32 {
        let b = self.board_mut();
        let prr = &mut b.prr;
        prr.delivered = prr.delivered.saturating_add(delivered);
        let sndcnt = if pipe > ssthresh {
            // Proportional part: ceil(prr_delivered * ssthresh / RecoverFS) - prr_out.
            let share = (u64::from(prr.delivered) * u64::from(ssthresh))
                .div_ceil(u64::from(prr.recover_fs));
            u32::try_from(share)
                .unwrap_or(u32::MAX)
                .saturating_sub(prr.out)
        } else {
            // PRR-SSRB: grow back towards ssthresh, at most one segment beyond what
            // was delivered.
            let limit = prr
                .delivered
                .saturating_sub(prr.out)
                .max(delivered)
                .saturating_add(mss);
            ssthresh.saturating_sub(pipe).min(limit)
        };
        pipe.saturating_add(sndcnt)
    }

    // ----- RFC 8985 §7 TLP ---------------------------------------------------------

    /// A probe was sent; `end_seq` is SND.NXT after it.
    pub fn probe_sent(&mut self, end_seq: SeqNumber, is_retrans: bool) {
        self.board_mut().probe = Some(Probe {
            end_seq,
            is_retrans,
        });
    }

    /// A probe is outstanding (no second one until it is answered).
    pub fn probe_outstanding(&self) -> bool {
        self.board.as_ref().is_some_and(|b| b.probe.is_some())
    }

    /// RFC 8985 §7.4 (TLP_process_ack): returns true when the ACK shows the probe
    /// repaired a loss that would otherwise have gone unnoticed (it acknowledges past the
    /// probe and no D-SACK said the original arrived too), so the congestion window must
    /// be reduced. `bare_dupack`: the ACK acknowledges nothing new and carries no SACK.
    pub fn probe_on_ack(&mut self, ack: SeqNumber, dsack: bool, bare_dupack: bool) -> bool {
        let Some(b) = self.board.as_deref_mut() else {
            return false;
        };
        let Some(p) = b.probe else { return false };
        if ack.lt(p.end_seq) {
            return false;
        }
        if !p.is_retrans || dsack || bare_dupack {
            // New data delivered; or the original arrived as well.
            b.probe = None;
            return false;
        }
        if ack.gt(p.end_seq) {
            b.probe = None;
            return true;
        }
        // Exactly at the probe's end: a D-SACK may still follow.
        false
    }

    /// Whether the RACK reordering window is currently widened (diagnostics).
    pub fn reordering_seen(&self) -> bool {
        self.board.as_ref().is_some_and(|b| b.rack.reordering_seen)
    }

    /// Recovery ended: RFC 8985 §6.2 step 4 lets the widened window decay.
    pub fn on_recovery_exit(&mut self) {
        if let Some(b) = self.board.as_deref_mut() {
            let rack = &mut b.rack;
            rack.reo_wnd_persist = rack.reo_wnd_persist.saturating_sub(1);
            if rack.reo_wnd_persist == 0 {
                rack.reo_wnd_mult = 1;
            }
        }
    }
}

/// RFC 8985 §6.2 step 4 (RACK_update_reo_wnd's value): zero when no reordering was seen
/// and the sender is recovering or DupThresh segments are SACKed; else min_RTT / 4 times
/// the multiplier, at most SRTT.
fn reo_wnd_of(
    sacked_segs: u32,
    reordering_seen: bool,
    min_rtt_us: u32,
    mult: u8,
    srtt: Option<Duration>,
    in_recovery: bool,
) -> Duration {
    if !reordering_seen && (in_recovery || sacked_segs >= DUP_THRESH) {
        return Duration::ZERO;
    }
    if min_rtt_us == u32::MAX {
        return Duration::ZERO;
    }
    let wnd = Duration::from_micros(u64::from(min_rtt_us) / 4 * u64::from(mult));
    srtt.map_or(wnd, |s| wnd.min(s))
}

/// RFC 2883 §4: the first SACK block is a D-SACK if it lies at or below the cumulative
/// acknowledgment, or within the second block.
fn dsack_block(blocks: &SackRanges, ack: SeqNumber) -> Option<(SeqNumber, SeqNumber)> {
    let (left, right) = blocks[0]?;
    if !left.lt(right) {
        return None;
    }
    if right.le(ack) {
        return Some((left, right));
    }
    match blocks[1] {
        Some((l2, r2)) if left.ge(l2) && right.le(r2) => Some((left, right)),
        _ => None,
    }
}

/// One transmitted segment of a [`ScoreboardRecord`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentRecord {
    pub start: SeqNumber,
    pub end: SeqNumber,
    /// When it was last (re)transmitted, in nanoseconds relative to the capture.
    pub sent_at: i64,
    /// SACKed (bit 0), lost (bit 1), retransmitted (bit 2).
    pub flags: u8,
}

/// RACK state (RFC 8985 §6.1) of a [`ScoreboardRecord`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RackRecord {
    pub xmit_ts: i64,
    pub end_seq: SeqNumber,
    pub rtt_us: u32,
    pub min_rtt_us: u32,
    pub fack: Option<SeqNumber>,
    pub has_sample: bool,
    pub reordering_seen: bool,
    pub reo_wnd_mult: u8,
    pub reo_wnd_persist: u8,
    pub dsack_round: Option<SeqNumber>,
}

/// An undo episode (RFC 3708) of a [`ScoreboardRecord`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UndoRecord {
    pub marker: SeqNumber,
    pub prior_cwnd: u32,
    pub prior_ssthresh: u32,
    pub retransmitted: u32,
    pub any: bool,
    pub first_tsval: Option<u32>,
    pub no_eifel: bool,
}

/// The sender's scoreboard as plain data, for a connection record (migration): every
/// per-segment record, RACK, the undo episode, PRR and the tail loss probe. The sums the
/// scoreboard keeps (SACKed and lost bytes) are not recorded: they are recomputed from
/// the segments, so a record cannot contradict itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreboardRecord {
    pub segs: Vec<SentRecord>,
    pub rack: RackRecord,
    pub undo: Option<UndoRecord>,
    /// PRR (RFC 6937): RecoverFS, prr_delivered, prr_out.
    pub prr: (u32, u32, u32),
    /// The outstanding tail loss probe: TLP.end_seq and TLP.is_retrans.
    pub probe: Option<(SeqNumber, bool)>,
    pub rexmit_floor: Option<u32>,
}

/// Why a [`ScoreboardRecord`] cannot be a scoreboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ScoreboardRecordError {
    #[error("segment records are empty, overlap or leave gaps")]
    Segments,
    #[error("a segment record has unknown or contradictory flags")]
    Flags,
    #[error("the RACK reordering window multiplier is out of range")]
    Rack,
}

impl Scoreboard {
    /// The scoreboard as a record, times relative to `base`; `None` when nothing was
    /// ever tracked.
    pub fn to_record(&self, base: Instant) -> Option<ScoreboardRecord> {
        let b = self.board.as_deref()?;
        Some(ScoreboardRecord {
            segs: b
                .segs
                .iter()
                .map(|s| SentRecord {
                    start: s.start,
                    end: s.end,
                    sent_at: s.sent_at.offset_from(base),
                    flags: s.flags,
                })
                .collect(),
            rack: RackRecord {
                xmit_ts: b.rack.xmit_ts.offset_from(base),
                end_seq: b.rack.end_seq,
                rtt_us: b.rack.rtt_us,
                min_rtt_us: b.rack.min_rtt_us,
                fack: b.rack.fack,
                has_sample: b.rack.has_sample,
                reordering_seen: b.rack.reordering_seen,
                reo_wnd_mult: b.rack.reo_wnd_mult,
                reo_wnd_persist: b.rack.reo_wnd_persist,
                dsack_round: b.rack.dsack_round,
            },
            undo: b.undo.map(|u| UndoRecord {
                marker: u.marker,
                prior_cwnd: u.prior_cwnd,
                prior_ssthresh: u.prior_ssthresh,
                retransmitted: u.retransmitted,
                any: u.any,
                first_tsval: u.first_tsval,
                no_eifel: u.no_eifel,
            }),
            prr: (b.prr.recover_fs, b.prr.delivered, b.prr.out),
            probe: b.probe.map(|p| (p.end_seq, p.is_retrans)),
            rexmit_floor: b.rexmit_floor,
        })
    }

    /// The scoreboard of `r`, its times rebased on `now`. The segment records must be
    /// non-empty, sorted and contiguous (the caller checks that they span [SND.UNA,
    /// SND.MAX)), with known flags, never both SACKed and lost.
    pub fn from_record(
        r: Option<&ScoreboardRecord>,
        now: Instant,
    ) -> Result<Scoreboard, ScoreboardRecordError> {
        let Some(r) = r else {
            return Ok(Scoreboard::default());
        };
        let mut b = Board::default();
        let mut prev: Option<SeqNumber> = None;
        for s in &r.segs {
            if !s.start.lt(s.end) || prev.is_some_and(|p| p != s.start) {
                return Err(ScoreboardRecordError::Segments);
            }
            prev = Some(s.end);
            if s.flags & !(SACKED | LOST | RETRANSMITTED) != 0
                || (s.flags & SACKED != 0 && s.flags & LOST != 0)
            {
                return Err(ScoreboardRecordError::Flags);
            }
            let sent = Sent {
                start: s.start,
                end: s.end,
                sent_at: Instant::rebase(now, s.sent_at),
                flags: s.flags,
            };
            if sent.has(SACKED) {
                b.sacked_bytes = b.sacked_bytes.saturating_add(sent.len());
                b.sacked_segs = b.sacked_segs.saturating_add(1);
            }
            if sent.has(LOST) {
                b.lost_bytes = b.lost_bytes.saturating_add(sent.len());
            }
            b.segs.push_back(sent);
        }
        if !(1..=MAX_REO_WND_MULT).contains(&r.rack.reo_wnd_mult) {
            return Err(ScoreboardRecordError::Rack);
        }
        b.rack = Rack {
            xmit_ts: Instant::rebase(now, r.rack.xmit_ts),
            end_seq: r.rack.end_seq,
            rtt_us: r.rack.rtt_us,
            min_rtt_us: r.rack.min_rtt_us,
            fack: r.rack.fack,
            has_sample: r.rack.has_sample,
            reordering_seen: r.rack.reordering_seen,
            reo_wnd_mult: r.rack.reo_wnd_mult,
            reo_wnd_persist: r.rack.reo_wnd_persist,
            dsack_round: r.rack.dsack_round,
        };
        b.undo = r.undo.map(|u| Undo {
            marker: u.marker,
            prior_cwnd: u.prior_cwnd,
            prior_ssthresh: u.prior_ssthresh,
            retransmitted: u.retransmitted,
            any: u.any,
            first_tsval: u.first_tsval,
            no_eifel: u.no_eifel,
        });
        let (recover_fs, delivered, out) = r.prr;
        b.prr = Prr {
            recover_fs,
            delivered,
            out,
        };
        b.probe = r.probe.map(|(end_seq, is_retrans)| Probe {
            end_seq,
            is_retrans,
        });
        b.rexmit_floor = r.rexmit_floor;
        Ok(Scoreboard {
            board: Some(Box::new(b)),
        })
    }
}

impl Board {
    /// The index of the record holding `seq` (or the first one after it).
    fn index_of(&self, seq: SeqNumber) -> usize {
        self.segs.partition_point(|s| s.end.le(seq))
    }

    /// Splits the record strictly containing `seq` in two at `seq`.
    fn split_at(&mut self, seq: SeqNumber) {
        let i = self.index_of(seq);
        let Some(s) = self.segs.get_mut(i) else {
            return;
        };
        if !(s.start.lt(seq) && seq.lt(s.end)) {
            return;
        }
        let mut tail = *s;
        s.end = seq;
        tail.start = seq;
        if s.has(SACKED) {
            self.sacked_segs = self.sacked_segs.saturating_add(1);
        }
        self.segs.insert(i + 1, tail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u32 = 100;

    fn s(n: u32) -> SeqNumber {
        SeqNumber(n)
    }

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    fn blocks(list: &[(u32, u32)]) -> SackRanges {
        let mut out: SackRanges = [None; 4];
        for (slot, &(l, r)) in out.iter_mut().zip(list) {
            *slot = Some((s(l), s(r)));
        }
        out
    }

    /// Ten segments of MSS bytes from 0, sent 1 ms apart from t = 0.
    fn ten_sent() -> Scoreboard {
        let mut sb = Scoreboard::default();
        for i in 0..10u32 {
            sb.on_transmit(s(i * MSS), s((i + 1) * MSS), ms(u64::from(i)));
        }
        sb
    }

    fn any(_: Instant) -> bool {
        true
    }

    #[test]
    fn starts_unallocated_and_releases_segments() {
        let mut sb = Scoreboard::default();
        assert!(sb.board.is_none());
        sb.on_transmit(s(0), s(100), ms(0));
        assert_eq!(sb.span(), Some((s(0), s(100))));
        sb.on_ack(ms(10), s(100), &[None; 4], None, any);
        assert!(sb.is_empty());
        assert_eq!(sb.board.as_ref().map(|b| b.segs.capacity()), Some(0));
    }

    #[test]
    fn sack_blocks_mark_and_invalid_ones_are_ignored() {
        let mut sb = ten_sent();
        // RFC 2018 §8: blocks below SND.UNA or beyond SND.MAX are ignored.
        let info = sb.on_ack(
            ms(20),
            s(0),
            &blocks(&[(1100, 1200), (300, 500)]),
            None,
            any,
        );
        assert_eq!(info.newly_sacked, 200);
        assert_eq!(sb.sacked_ranges(), vec![(s(300), s(500))]);
        let info = sb.on_ack(ms(21), s(0), &blocks(&[(300, 500)]), None, any);
        assert_eq!(info.newly_sacked, 0);
        // Partial blocks split records.
        sb.on_ack(ms(22), s(0), &blocks(&[(650, 700)]), None, any);
        assert_eq!(sb.sacked_bytes(), 250);
        assert_eq!(sb.pipe(1000), 750);
    }

    #[test]
    fn many_holes_are_all_remembered() {
        // More ranges than any fixed table: every second segment of 100 SACKed.
        let mut sb = Scoreboard::default();
        for i in 0..100u32 {
            sb.on_transmit(s(i * MSS), s((i + 1) * MSS), ms(0));
        }
        for i in (1..100u32).step_by(2) {
            sb.on_ack(ms(5), s(0), &blocks(&[(i * MSS, (i + 1) * MSS)]), None, any);
        }
        assert_eq!(sb.sacked_ranges().len(), 50);
        assert_eq!(sb.sacked_bytes(), 50 * MSS);
    }

    #[test]
    fn rack_marks_segments_sent_before_a_delivered_one_lost() {
        // RFC 8985 §6.2: segment 0 (sent at 0 ms) is not delivered while 1..=3 (sent at
        // 1..3 ms) are. With three SACKed segments and no reordering seen, reo_wnd = 0.
        let mut sb = ten_sent();
        sb.on_ack(ms(11), s(0), &blocks(&[(100, 400)]), None, any);
        let scan = sb.detect_losses(ms(11), Some(Duration::from_millis(10)), false);
        assert!(scan.newly_lost);
        assert_eq!(sb.next_lost(), Some((s(0), s(100))));
        assert_eq!(sb.lost_bytes(), 100);
        // Pipe: 1000 - 300 SACKed - 100 lost.
        assert_eq!(sb.pipe(1000), 600);
    }

    #[test]
    fn rack_waits_a_reordering_window_with_few_sacks() {
        // One SACKed segment: reo_wnd = min_RTT / 4 (RFC 8985 §6.2 step 4), so segment 0
        // is lost only a quarter RTT after the ACK: the reordering timer says when.
        let mut sb = ten_sent();
        sb.on_ack(ms(9), s(0), &blocks(&[(100, 200)]), None, any); // rtt 8 ms
        let scan = sb.detect_losses(ms(9), Some(Duration::from_millis(8)), false);
        assert!(!scan.newly_lost);
        assert_eq!(scan.reorder_timeout, Some(Duration::from_millis(1)));
        let scan = sb.detect_losses(ms(10), Some(Duration::from_millis(8)), false);
        assert!(scan.newly_lost);
        assert_eq!(sb.next_lost(), Some((s(0), s(100))));
    }

    #[test]
    fn rack_detects_a_lost_retransmission() {
        // RFC 8985 §3.4 (lost retransmissions): segment 0 is retransmitted at 20 ms and
        // lost again; segments sent after 20 ms are delivered; the retransmission is
        // marked lost once RACK.rtt has passed, with no timeout.
        let mut sb = ten_sent();
        sb.on_ack(ms(11), s(0), &blocks(&[(100, 400)]), None, any);
        sb.detect_losses(ms(11), None, true);
        assert_eq!(sb.on_transmit(s(0), s(100), ms(20)), 100);
        assert_eq!(sb.next_lost(), None);
        sb.on_transmit(s(1000), s(1100), ms(21));
        sb.on_ack(
            ms(31),
            s(0),
            &blocks(&[(1000, 1100), (100, 400)]),
            None,
            any,
        );
        let scan = sb.detect_losses(ms(31), None, true);
        assert!(scan.newly_lost);
        assert_eq!(sb.next_lost(), Some((s(0), s(100))));
    }

    #[test]
    fn reordering_is_seen_and_widens_the_window() {
        // Segment 0 arrives after 1..=3 were SACKed (it was not retransmitted): reordering
        // (RFC 8985 §6.2 step 3). From then on, DupThresh SACKed segments no longer make
        // the reordering window zero (step 4): it is min_RTT / 4.
        let mut sb = ten_sent();
        sb.on_ack(ms(11), s(0), &blocks(&[(100, 400)]), None, any); // min_RTT 8 ms
        let srtt = Some(Duration::from_millis(10));
        let board = |sb: &Scoreboard| sb.board.as_deref().cloned().unwrap_or_default();
        assert_eq!(
            Scoreboard::reo_wnd(&board(&sb), srtt, false),
            Duration::ZERO
        );
        sb.on_ack(ms(12), s(400), &[None; 4], None, any);
        assert!(sb.reordering_seen());
        sb.on_ack(ms(15), s(400), &blocks(&[(500, 800)]), None, any);
        assert_eq!(
            Scoreboard::reo_wnd(&board(&sb), srtt, false),
            Duration::from_millis(2)
        );
        // A D-SACK widens it further, for a while (RACK.reo_wnd_mult).
        sb.on_ack(ms(16), s(400), &blocks(&[(0, 100)]), None, any);
        assert_eq!(
            Scoreboard::reo_wnd(&board(&sb), srtt, false),
            Duration::from_millis(4)
        );
    }

    #[test]
    fn timeout_marks_head_and_old_segments() {
        // RFC 8985 §6.3.
        let mut sb = ten_sent();
        sb.on_ack(ms(11), s(0), &blocks(&[(900, 1000)]), None, any); // RACK.rtt = 2 ms
        assert!(sb.mark_lost_on_timeout(ms(12), None));
        // Sent at or before 12 - 2 - reo_wnd(0 in recovery) = 10 ms: all of 0..900.
        assert_eq!(sb.lost_bytes(), 900);
        assert_eq!(sb.next_lost(), Some((s(0), s(100))));
    }

    #[test]
    fn dsack_is_recognised() {
        // RFC 2883 §4: below the cumulative ACK, or inside the second block.
        assert_eq!(
            dsack_block(&blocks(&[(100, 200)]), s(300)),
            Some((s(100), s(200)))
        );
        assert_eq!(
            dsack_block(&blocks(&[(500, 600), (400, 700)]), s(300)),
            Some((s(500), s(600)))
        );
        assert_eq!(
            dsack_block(&blocks(&[(500, 600), (700, 800)]), s(300)),
            None
        );
    }

    #[test]
    fn undo_after_every_retransmission_is_dsacked() {
        // RFC 3708 §3: two retransmissions, two D-SACKs: the episode was spurious.
        let mut sb = ten_sent();
        sb.begin_undo_episode(s(0), 20 * MSS, 30 * MSS);
        sb.on_transmit(s(0), s(100), ms(20));
        sb.on_transmit(s(100), s(200), ms(20));
        assert_eq!(sb.on_dsack(s(0), s(100)), None);
        assert_eq!(sb.on_dsack(s(100), s(200)), Some((20 * MSS, 30 * MSS)));
        assert!(!sb.undo_open());
        // D-SACKs for data before the episode do not count.
        sb.begin_undo_episode(s(500), 1, 1);
        sb.on_transmit(s(500), s(600), ms(30));
        assert_eq!(sb.on_dsack(s(0), s(100)), None);
    }

    #[test]
    fn eifel_detects_an_ack_for_the_original() {
        // RFC 3522 §3.2: the first retransmission carried TSval 500; an ACK echoing 490
        // answers an original transmission: spurious.
        let mut sb = ten_sent();
        sb.begin_undo_episode(s(0), 20 * MSS, 30 * MSS);
        sb.note_retransmit_tsval(500);
        sb.note_retransmit_tsval(510);
        assert_eq!(sb.eifel_check(500), None, "echoes the retransmission");
        assert_eq!(sb.eifel_check(490), Some((20 * MSS, 30 * MSS)));
        assert!(!sb.undo_open());
        // A probe's retransmission from before the episode, still outstanding, is the
        // reference: the ACK must be older than it.
        let mut sb = ten_sent();
        sb.note_retransmit_tsval(480);
        sb.on_transmit(s(900), s(1000), ms(15));
        sb.begin_undo_episode(s(0), 1, 1);
        sb.note_retransmit_tsval(500);
        assert_eq!(sb.eifel_check(490), None);
        assert_eq!(sb.eifel_check(470), Some((1, 1)));
    }

    #[test]
    fn prr_spreads_the_reduction() {
        // RFC 6937 §3: RecoverFS 20 segments, ssthresh 10: about one segment sent per
        // two delivered while pipe > ssthresh.
        let mut sb = ten_sent();
        sb.prr_start(20 * MSS);
        let cwnd = sb.prr_cwnd(2 * MSS, 18 * MSS, 10 * MSS, MSS);
        assert_eq!(cwnd, 19 * MSS);
        sb.prr_sent(MSS);
        let cwnd = sb.prr_cwnd(2 * MSS, 17 * MSS, 10 * MSS, MSS);
        assert_eq!(cwnd, 18 * MSS);
        // Below ssthresh (PRR-SSRB): at most max(prr_delivered - prr_out, DeliveredData)
        // + 1 segment: delivered 5, sent 1, so 5 more.
        let cwnd = sb.prr_cwnd(MSS, 5 * MSS, 10 * MSS, MSS);
        assert_eq!(cwnd, 10 * MSS);
    }

    #[test]
    fn probe_repairing_a_loss_asks_for_a_reduction() {
        let mut sb = ten_sent();
        sb.probe_sent(s(1000), true);
        assert!(sb.probe_outstanding());
        // RFC 8985 §7.4: below the probe's end nothing is known; exactly at it, a D-SACK
        // may follow; past it without one, the probe repaired a loss.
        assert!(!sb.probe_on_ack(s(900), false, false));
        assert!(!sb.probe_on_ack(s(1000), false, false));
        assert!(sb.probe_outstanding());
        assert!(sb.probe_on_ack(s(1100), false, false));
        assert!(!sb.probe_outstanding());
        sb.probe_sent(s(1000), true);
        assert!(
            !sb.probe_on_ack(s(1000), true, false),
            "the original arrived too"
        );
        assert!(!sb.probe_outstanding());
        sb.probe_sent(s(1000), false);
        assert!(
            !sb.probe_on_ack(s(1100), false, false),
            "a probe of new data"
        );
    }

    #[test]
    fn reneging_drops_sack_marks() {
        let mut sb = ten_sent();
        sb.on_ack(ms(11), s(0), &blocks(&[(100, 300)]), None, any);
        let info = sb.on_ack(ms(12), s(100), &[None; 4], None, any);
        assert!(info.reneged);
        assert_eq!(sb.sacked_bytes(), 0);
    }

    #[test]
    fn a_block_ending_at_our_fin_covers_it_when_sent_together() {
        // SACK blocks report data (RFC 2018): a FIN sent with the data that a block ends
        // at arrived with it. One sent alone is not covered.
        let mut sb = Scoreboard::default();
        sb.on_transmit(s(0), s(100), ms(0));
        sb.on_transmit(s(100), s(201), ms(0)); // 100 bytes + FIN at 200
        sb.on_ack(ms(5), s(0), &blocks(&[(100, 200)]), Some(s(200)), any);
        assert_eq!(sb.sacked_bytes(), 101);
        let mut sb = Scoreboard::default();
        sb.on_transmit(s(0), s(100), ms(0));
        sb.on_transmit(s(100), s(200), ms(0));
        sb.on_transmit(s(200), s(201), ms(1)); // the FIN alone
        sb.on_ack(ms(5), s(0), &blocks(&[(100, 200)]), Some(s(200)), any);
        assert_eq!(sb.sacked_bytes(), 100);
    }

    #[test]
    fn wraps_around_zero() {
        let mut sb = Scoreboard::default();
        let base = u32::MAX - 150;
        for i in 0..4u32 {
            sb.on_transmit(
                s(base.wrapping_add(i * MSS)),
                s(base.wrapping_add((i + 1) * MSS)),
                ms(0),
            );
        }
        sb.on_ack(
            ms(5),
            s(base),
            &blocks(&[(base.wrapping_add(100), base.wrapping_add(300))]),
            None,
            any,
        );
        assert_eq!(sb.sacked_bytes(), 200);
        sb.on_ack(ms(6), s(base.wrapping_add(300)), &[None; 4], None, any);
        assert_eq!(
            sb.span(),
            Some((s(base.wrapping_add(300)), s(base.wrapping_add(400))))
        );
        assert_eq!(sb.sacked_bytes(), 0);
    }
}
