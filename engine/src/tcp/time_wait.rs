//! TIME-WAIT without a connection: the compact record that stands for a closed connection
//! during its 2·MSL quiet time (RFC 9293 §3.4.2, §3.10.7.4), and what a segment to it
//! means.
//!
//! Owns [`TimeWaitRecord`] (24 bytes instead of a whole [`super::Connection`]: the table
//! can hold a million of them) and its input rules. Sans-IO like the rest of `tcp`: it
//! decides ([`TimeWaitVerdict`]) and builds the reply header ([`TimeWaitRecord::ack`]);
//! the owner (the stack) keeps the record in its table, restarts or ends its 2·MSL timer,
//! sends the reply and hands reopening SYNs to the listener.
//!
//! Rules, in order:
//! 1. A SYN without ACK that RFC 6191 accepts (a timestamp newer than TS.Recent, or
//!    without timestamps a sequence number beyond RCV.NXT; RFC 1122 §4.2.2.13) reopens
//!    the 4-tuple: the record goes and the listener sees the SYN. Any other SYN gets a
//!    challenge ACK (RFC 5961 §4.2).
//! 2. RSTs are ignored, wherever they fall (RFC 1337 §3, fix F1): TIME-WAIT is there to
//!    outlast old duplicates, and a RST must not cut it short. RFC 9293's second check
//!    would remove the record on a RST at RCV.NXT (Linux does, unless `tcp_rfc1337` is
//!    set; the BSDs ignore them). That RST is what a peer that already closed sends to
//!    any stray segment of ours, such as the ACK an old duplicate of its own draws (rule
//!    4): with the record gone, the 4-tuple could be reopened while old segments are
//!    still about.
//! 3. PAWS (RFC 7323 §5.3): with timestamps in use, a segment without one is dropped and
//!    one with an older TSval gets an ACK and is dropped.
//! 4. Outside the receive window: a retransmission of the peer's FIN is acknowledged and
//!    restarts the 2·MSL timer (§3.10.7.4); anything else gets an ACK.
//! 5. In the window: a segment without ACK is dropped; a bare acceptable ACK is dropped
//!    silently (answering it would let two TIME-WAIT ends of a simultaneous close ACK each
//!    other for ever); data or a FIN gets an ACK.
//!
//! Challenge ACKs are not rate-limited per record (the record has no room for it); the
//! stack bounds its stateless replies per poll.
use super::seq::SeqNumber;
use crate::time::Instant;
use crate::wire::tcp::{Control, TcpRepr};

/// What a TIME-WAIT 4-tuple keeps once its connection is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWaitRecord {
    /// Our next sequence number (after our FIN).
    pub snd_nxt: SeqNumber,
    /// The next sequence number expected (after the peer's FIN).
    pub rcv_nxt: SeqNumber,
    /// The window field of our ACKs (already scaled down).
    pub rcv_wnd: u16,
    /// Our window shift (RFC 7323): the window is `rcv_wnd << rcv_wscale` bytes.
    pub rcv_wscale: u8,
    /// TS.Recent when timestamps are in use (RFC 7323), `None` otherwise.
    pub ts_recent: Option<u32>,
    /// Offset of our timestamp clock, so TSval keeps increasing on this 4-tuple.
    pub ts_offset: u32,
}

/// What to do with a segment that arrived for a TIME-WAIT record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeWaitVerdict {
    /// Send [`TimeWaitRecord::ack`]; with `restart`, the 2·MSL timer starts again (a
    /// retransmitted FIN).
    Ack { restart: bool },
    /// A RST: ignored (RFC 1337), counted by the owner.
    RstIgnored,
    /// An acceptable new SYN (RFC 6191): remove the record and give the SYN to the
    /// listener.
    Reopen,
    /// Nothing to do.
    Drop,
}

impl TimeWaitRecord {
    /// The window, in bytes.
    pub fn window(&self) -> u32 {
        u32::from(self.rcv_wnd) << self.rcv_wscale.min(14)
    }

    /// Whether `syn` may open a new incarnation of this 4-tuple (RFC 6191, RFC 1122
    /// §4.2.2.13): the same rule as [`super::Connection::time_wait_accepts_syn`].
    pub fn accepts_syn(&self, syn: &TcpRepr<'_>) -> bool {
        if syn.control != Control::Syn || syn.ack_number.is_some() {
            return false;
        }
        match (self.ts_recent, syn.timestamp) {
            (Some(recent), Some((tsval, _))) => (tsval.wrapping_sub(recent) as i32) > 0,
            _ => syn.seq_number.gt(self.rcv_nxt),
        }
    }

    /// Processes `seg` (see the module documentation for the rules). May update
    /// TS.Recent.
    pub fn handle_segment(&mut self, seg: &TcpRepr<'_>) -> TimeWaitVerdict {
        const ACK: TimeWaitVerdict = TimeWaitVerdict::Ack { restart: false };
        // 1. New SYNs (before PAWS: RFC 6191 judges their timestamp itself).
        if seg.control == Control::Syn && seg.ack_number.is_none() {
            return if self.accepts_syn(seg) {
                TimeWaitVerdict::Reopen
            } else {
                ACK
            };
        }
        // 2. RSTs (RFC 1337 F1).
        if seg.control == Control::Rst {
            return TimeWaitVerdict::RstIgnored;
        }
        // 3. PAWS.
        if let Some(recent) = self.ts_recent {
            match seg.timestamp {
                None => return TimeWaitVerdict::Drop,
                Some((tsval, _)) if (tsval.wrapping_sub(recent) as i32) < 0 => return ACK,
                Some(_) => {}
            }
        }
        // 4. The sequence number (RFC 9293 §3.10.7.4, first check).
        let seq = seg.seq_number;
        let len = seg.segment_len();
        let wnd = self.window();
        let in_window = |s: SeqNumber| s.ge(self.rcv_nxt) && s.lt(self.rcv_nxt + wnd);
        let acceptable = match (len, wnd) {
            (0, 0) => seq == self.rcv_nxt,
            (0, _) => in_window(seq),
            (_, 0) => false,
            (_, _) => in_window(seq) || in_window(seq + (len - 1)),
        };
        if !acceptable {
            if seg.control == Control::Fin && seq + len == self.rcv_nxt {
                // A retransmission of the peer's FIN: our ACK was lost. RFC 7323 §4.3:
                // it covers Last.ACK.sent, so its timestamp becomes TS.Recent.
                self.update_ts_recent(seg);
                return TimeWaitVerdict::Ack { restart: true };
            }
            return ACK;
        }
        // 5. In the window.
        match seg.control {
            Control::Syn => ACK,
            _ if seg.ack_number.is_none() => TimeWaitVerdict::Drop,
            Control::None if seg.payload.is_empty() => TimeWaitVerdict::Drop,
            _ => ACK,
        }
    }

    fn update_ts_recent(&mut self, seg: &TcpRepr<'_>) {
        if let (Some(recent), Some((tsval, _))) = (self.ts_recent, seg.timestamp) {
            if (tsval.wrapping_sub(recent) as i32) > 0 {
                self.ts_recent = Some(tsval);
            }
        }
    }

    /// The ACK this record sends at `now`: `<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>` with the
    /// window and, with timestamps, `<TSval=our clock><TSecr=TS.Recent>`.
    pub fn ack(&self, now: Instant, src_port: u16, dst_port: u16) -> TcpRepr<'static> {
        let tsval = (now.as_millis() as u32).wrapping_add(self.ts_offset);
        TcpRepr {
            src_port,
            dst_port,
            seq_number: self.snd_nxt,
            ack_number: Some(self.rcv_nxt),
            window_len: self.rcv_wnd,
            timestamp: self.ts_recent.map(|recent| (tsval, recent)),
            ..TcpRepr::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(ts: Option<u32>) -> TimeWaitRecord {
        TimeWaitRecord {
            snd_nxt: SeqNumber(5_000),
            rcv_nxt: SeqNumber(9_000),
            rcv_wnd: 1_000,
            rcv_wscale: 2,
            ts_recent: ts,
            ts_offset: 7,
        }
    }

    fn seg(control: Control, seq: u32, ack: Option<u32>, ts: Option<u32>) -> TcpRepr<'static> {
        TcpRepr {
            src_port: 80,
            dst_port: 40_000,
            control,
            seq_number: SeqNumber(seq),
            ack_number: ack.map(SeqNumber),
            timestamp: ts.map(|v| (v, 1)),
            ..TcpRepr::default()
        }
    }

    const ACK: TimeWaitVerdict = TimeWaitVerdict::Ack { restart: false };

    #[test]
    fn retransmitted_fin_is_acked_and_restarts_the_timer() {
        let mut r = record(Some(100));
        let fin = seg(Control::Fin, 8_999, Some(5_000), Some(150));
        assert_eq!(
            r.handle_segment(&fin),
            TimeWaitVerdict::Ack { restart: true }
        );
        assert_eq!(r.ts_recent, Some(150));
        let ack = r.ack(Instant::from_millis(3), 40_000, 80);
        assert_eq!(ack.seq_number, SeqNumber(5_000));
        assert_eq!(ack.ack_number, Some(SeqNumber(9_000)));
        assert_eq!(ack.window_len, 1_000);
        assert_eq!(ack.timestamp, Some((10, 150)));
        assert_eq!(ack.control, Control::None);
    }

    #[test]
    fn rsts_are_ignored_wherever_they_fall() {
        for ts in [None, Some(100)] {
            let mut r = record(ts);
            let before = r;
            for (seq, what) in [
                (9_000, "at RCV.NXT"),
                (9_001, "in the window"),
                (8_000, "before the window"),
                (9_000 + 4_000, "beyond the window (1000 << 2)"),
            ] {
                assert_eq!(
                    r.handle_segment(&seg(Control::Rst, seq, None, None)),
                    TimeWaitVerdict::RstIgnored,
                    "{what}, timestamps {ts:?}"
                );
                assert_eq!(r, before, "{what}: a RST changes nothing");
            }
        }
    }

    #[test]
    fn syns_reopen_only_when_newer() {
        let mut ts = record(Some(100));
        assert_eq!(
            ts.handle_segment(&seg(Control::Syn, 1, None, Some(101))),
            TimeWaitVerdict::Reopen
        );
        assert_eq!(
            ts.handle_segment(&seg(Control::Syn, 1, None, Some(100))),
            ACK
        );
        // Timestamps in use but none in the SYN: the sequence number decides.
        assert_eq!(
            ts.handle_segment(&seg(Control::Syn, 9_001, None, None)),
            TimeWaitVerdict::Reopen
        );
        let mut plain = record(None);
        assert_eq!(
            plain.handle_segment(&seg(Control::Syn, 9_001, None, None)),
            TimeWaitVerdict::Reopen
        );
        assert_eq!(
            plain.handle_segment(&seg(Control::Syn, 9_000, None, None)),
            ACK
        );
        // A SYN-ACK is not a new connection.
        assert_eq!(
            plain.handle_segment(&seg(Control::Syn, 9_500, Some(5_000), None)),
            ACK
        );
    }

    #[test]
    fn paws_and_other_segments() {
        let mut r = record(Some(100));
        assert_eq!(
            r.handle_segment(&seg(Control::None, 9_000, Some(5_000), None)),
            TimeWaitVerdict::Drop,
            "no timestamp"
        );
        assert_eq!(
            r.handle_segment(&seg(Control::None, 9_000, Some(5_000), Some(99))),
            ACK,
            "old timestamp"
        );
        assert_eq!(
            r.handle_segment(&seg(Control::None, 9_000, Some(5_000), Some(100))),
            TimeWaitVerdict::Drop,
            "a bare in-window ACK"
        );
        let mut data = seg(Control::None, 9_000, Some(5_000), Some(100));
        data.payload = b"late";
        assert_eq!(r.handle_segment(&data), ACK);
        assert_eq!(
            r.handle_segment(&seg(Control::None, 1_000, Some(5_000), Some(100))),
            ACK,
            "out of window"
        );
        assert_eq!(
            r.handle_segment(&seg(Control::Fin, 9_000, None, Some(100))),
            TimeWaitVerdict::Drop,
            "no ACK bit"
        );
        assert_eq!(
            r.ts_recent,
            Some(100),
            "only a retransmitted FIN moves TS.Recent"
        );
    }

    #[test]
    fn record_is_small() {
        assert!(core::mem::size_of::<TimeWaitRecord>() <= 24);
    }
}
