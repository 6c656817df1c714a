//! Loss recovery of a SACK connection, driven by hand: RACK-TLP time-based loss detection
//! (RFC 8985), lost retransmissions, tail loss probes, timeouts with SACK, D-SACK
//! generation (RFC 2883), undo of spurious retransmissions (RFC 3708 detection, RFC 4015
//! response), PRR (RFC 6937), and a receiver holding many out-of-order ranges. Each test
//! names the section it checks.
mod tcp_support;

use engine::tcp::{Connection, TcpConfig};
use engine::time::{Duration, Instant};
use engine::wire::tcp::{Control, SackRanges, SeqNumber, TcpRepr};
use tcp_support::*;

const T0: Instant = Instant::from_millis(1_000);

/// An RTT the peer shows on every ACK (it answers this long after the segments left).
const RTT: Duration = Duration::from_millis(10);

static DATA: [u8; 100] = [0x5a; 100];

fn blocks(list: &[(SeqNumber, SeqNumber)]) -> SackRanges {
    let mut out: SackRanges = [None; 4];
    for (slot, &b) in out.iter_mut().zip(list) {
        *slot = Some(b);
    }
    out
}

/// A pure ACK from the peer: cumulative `ack` and these SACK blocks.
fn ack_with(peer: &Peer, ack: SeqNumber, sack: &[(SeqNumber, SeqNumber)]) -> TcpRepr<'static> {
    TcpRepr {
        sack_ranges: blocks(sack),
        ..peer.seg_at(Control::None, peer.seq, Some(ack), b"")
    }
}

fn end(s: &Seg) -> SeqNumber {
    s.seq + s.payload.len() as u32 + u32::from(s.control == Control::Fin)
}

/// An active open by hand whose SYN-ACK comes back one `RTT` after the SYN, so SRTT
/// starts at `RTT` (RFC 6298 §2.2). Established at `T0`.
fn established_after_rtt(config: &TcpConfig) -> (Connection, Peer) {
    let mut conn = Connection::connect(T0 - RTT, a_tuple(), seed(1_000), config);
    let syn = drain(&mut conn, T0 - RTT);
    let mut peer = Peer {
        seq: SeqNumber(PEER_ISS),
        ack: syn[0].seq + 1,
        window: 0xffff,
        tsval: config.timestamps.then_some(100),
        tsecr: syn[0].timestamp.map_or(0, |t| t.0),
    };
    let syn_ack = TcpRepr {
        max_seg_size: Some(1460),
        sack_permitted: config.sack,
        ..peer.seg(Control::Syn, b"")
    };
    peer.send(&mut conn, T0, &syn_ack);
    let ack = drain(&mut conn, T0);
    peer.absorb(&ack);
    conn.take_events();
    assert_eq!(conn.srtt(), Some(RTT));
    (conn, peer)
}

/// An established connection (SACK, no timestamps, no delayed ACK) that sent `n` full
/// segments at `T0` (at most the initial window of 10) with `queued` more segments
/// waiting, and those segments.
fn sent_queued(n: usize, queued: usize) -> (Connection, Peer, Vec<Seg>) {
    let (mut conn, peer) = established_after_rtt(&hand_config(false));
    assert!(conn.sack_enabled());
    let mss = usize::from(conn.smss());
    conn.send(&vec![7u8; (n + queued) * mss]).unwrap();
    let out = drain(&mut conn, T0);
    assert_eq!(out.len(), n);
    (conn, peer, out)
}

fn sent(n: usize) -> (Connection, Peer, Vec<Seg>) {
    sent_queued(n, 0)
}

#[test]
fn rack_detects_a_lost_retransmission_without_a_timeout() {
    // RFC 8985 §6.2 (and §3.4's lost retransmission): segment 0 is lost, SACKs of 1..=9
    // make RACK mark it lost (DupThresh SACKed segments, no reordering: reo_wnd = 0) and
    // fast recovery retransmits it. The retransmission is lost too; segments sent after
    // it are SACKed one RTT later, so RACK marks it lost again and it goes out a third
    // time, long before the RTO.
    let (mut conn, peer, first) = sent_queued(10, 20);
    let una = first[0].seq;
    let mut now = T0 + RTT;
    let mut after = vec![];
    for k in 1..10 {
        let ack = ack_with(&peer, una, &[(first[1].seq, end(&first[k]))]);
        conn.handle_segment(now, &ack);
        after.extend(drain(&mut conn, now));
    }
    assert!(conn.in_recovery());
    assert_eq!(conn.stats().fast_recoveries, 1);
    let resent: Vec<&Seg> = after.iter().filter(|s| s.seq == una).collect();
    assert_eq!(resent.len(), 1, "one fast retransmission: {after:?}");
    let new: Vec<&Seg> = after.iter().filter(|s| s.seq.ge(end(&first[9]))).collect();
    assert!(!new.is_empty(), "PRR lets new data out during recovery");
    // One RTT later, the new segments (sent at the same instant as the retransmission,
    // after it) are SACKed; segment 0 is not.
    now += RTT;
    let high = new.iter().map(|s| end(s)).fold(una, SeqNumber::max);
    let ack = ack_with(&peer, una, &[(first[1].seq, high)]);
    conn.handle_segment(now, &ack);
    let out = drain(&mut conn, now);
    assert!(
        out.iter().any(|s| s.seq == una),
        "the lost retransmission is sent again: {out:?}"
    );
    assert_eq!(conn.stats().timeouts, 0);
    assert!(conn.poll_timeout().unwrap() > now + Duration::from_millis(100));
}

#[test]
fn rack_waits_a_reordering_window_before_marking_loss_with_one_sack() {
    // RFC 8985 §6.2 step 4-5: with fewer than DupThresh SACKed segments the reordering
    // window is min_RTT / 4, armed as the RACK timer; when it expires the hole is lost.
    // Three segments in flight, the first lost: no three duplicate ACKs ever come.
    let (mut conn, peer, first) = sent(3);
    let una = first[0].seq;
    let now = T0 + RTT;
    conn.handle_segment(
        now,
        &ack_with(&peer, una, &[(first[1].seq, end(&first[1]))]),
    );
    assert!(
        drain(&mut conn, now).is_empty(),
        "not yet: it may be reordering"
    );
    conn.handle_segment(
        now,
        &ack_with(&peer, una, &[(first[1].seq, end(&first[2]))]),
    );
    assert!(drain(&mut conn, now).is_empty());
    let at = conn.poll_timeout().unwrap();
    assert!(at <= now + RTT / 4 + Duration::from_millis(1), "{at:?}");
    conn.handle_timeout(at);
    let out = drain(&mut conn, at);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].seq, una);
    assert!(conn.in_recovery());
    assert_eq!(conn.stats().timeouts, 0);
}

#[test]
fn tail_loss_probe_retransmits_the_last_segment_before_the_rto() {
    // RFC 8985 §7.2-7.3: the last segment of a flight is lost; nothing is left to send.
    // The probe timeout fires (no later than the RTO would) and the last segment goes out
    // again, with no timeout and no collapse of cwnd.
    let (mut conn, peer, first) = sent(4);
    let now = T0 + RTT;
    conn.handle_segment(now, &ack_with(&peer, end(&first[2]), &[]));
    assert!(drain(&mut conn, now).is_empty());
    let cwnd = conn.cwnd();
    let at = conn.poll_timeout().unwrap();
    assert!(at <= now + conn.rto());
    conn.handle_timeout(at);
    let out = drain(&mut conn, at);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].seq, first[3].seq);
    assert_eq!(conn.stats().loss_probes, 1);
    assert_eq!(conn.stats().timeouts, 0);
    assert_eq!(conn.cwnd(), cwnd);
    // §7.3: the RTO is re-armed, a full RTO after the probe.
    assert_eq!(conn.poll_timeout(), Some(at + conn.rto()));
    // §7.4: the probe repaired the loss (the ACK goes past it, no D-SACK): cwnd is
    // reduced once, without an RTO.
    let later = at + RTT;
    conn.handle_segment(later, &ack_with(&peer, end(&first[3]), &[]));
    assert_eq!(conn.stats().timeouts, 0);
    conn.send(&[1u8; 10]).unwrap();
    let out = drain(&mut conn, later);
    let next = later + RTT;
    conn.handle_segment(next, &ack_with(&peer, end(&out[0]), &[]));
    assert!(
        conn.ssthresh() < u32::MAX,
        "the repaired loss reduced the window"
    );
}

#[test]
fn timeout_with_sack_retransmits_the_head_with_one_segment_of_window() {
    // RFC 6298 §5.4-5.5 and RFC 8985 §6.3: after the probe, nothing answers; the RTO
    // fires, marks the head lost and retransmits it with cwnd = 1 segment, and backs off.
    let (mut conn, _peer, first) = sent(3);
    let mut kinds = vec![];
    for _ in 0..3 {
        let now = conn.poll_timeout().unwrap();
        let timeouts = conn.stats().timeouts;
        conn.handle_timeout(now);
        let out = drain(&mut conn, now);
        assert_eq!(out.len(), 1, "{out:?}");
        kinds.push((conn.stats().timeouts > timeouts, out[0].seq));
    }
    // A probe of the last segment, then timeouts that resend the first.
    assert_eq!(kinds[0], (false, first[2].seq));
    assert_eq!(kinds[1], (true, first[0].seq));
    assert_eq!(kinds[2], (true, first[0].seq));
    assert_eq!(conn.cwnd(), u32::from(conn.smss()));
    assert_eq!(conn.stats().loss_probes, 1);
    assert_eq!(conn.stats().timeouts, 2);
}

#[test]
fn duplicate_below_rcv_nxt_is_reported_as_dsack() {
    // RFC 2883 §4.1: a duplicate of data already acknowledged is reported in the first
    // SACK block of the ACK it triggers, once.
    let (mut conn, mut peer) = established(&hand_config(false), T0);
    let seg = peer.seg(Control::None, &DATA);
    peer.send(&mut conn, T0, &seg);
    let out = drain(&mut conn, T0);
    assert!(out[0].sack.is_empty());
    conn.handle_segment(T0, &seg);
    let out = drain(&mut conn, T0);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].ack, Some(seg.seq_number + 100));
    assert_eq!(out[0].sack, vec![(seg.seq_number, seg.seq_number + 100)]);
    conn.send(b"x").unwrap();
    assert!(drain(&mut conn, T0)[0].sack.is_empty(), "reported once");
}

#[test]
fn duplicate_out_of_order_segment_is_reported_with_its_block() {
    // RFC 2883 §4.2: the D-SACK block first, then the block holding it.
    let (mut conn, peer) = established(&hand_config(false), T0);
    let base = peer.seq;
    let seg = peer.seg_at(Control::None, base + 200, Some(peer.ack), &DATA);
    conn.handle_segment(T0, &seg);
    let first = drain(&mut conn, T0);
    assert_eq!(first[0].sack, vec![(base + 200, base + 300)]);
    conn.handle_segment(T0, &seg);
    let out = drain(&mut conn, T0);
    assert_eq!(
        out[0].sack,
        vec![(base + 200, base + 300), (base + 200, base + 300)]
    );
    assert_eq!(out[0].ack, Some(base));
}

#[test]
fn spurious_timeout_is_undone_by_dsack() {
    // The ACKs were only late (queued ~200 ms): the RTO fires and resends the head with
    // cwnd = 1 segment. Then the ACK of everything arrives, and the peer's D-SACK for the
    // retransmission (RFC 2883 §4.1) shows every retransmission of the episode was
    // spurious (RFC 3708 §3): cwnd and ssthresh are restored (RFC 4015 §3).
    let (mut conn, peer, first) = sent(10);
    let (cwnd, ssthresh) = (conn.cwnd(), conn.ssthresh());
    let mut now = T0;
    while conn.stats().timeouts == 0 {
        now = conn.poll_timeout().unwrap();
        conn.handle_timeout(now);
        drain(&mut conn, now);
    }
    assert_eq!(conn.cwnd(), u32::from(conn.smss()));
    let all = end(&first[9]);
    conn.handle_segment(now + RTT, &ack_with(&peer, all, &[]));
    assert!(conn.ssthresh() < ssthresh);
    // The duplicate head, and the duplicate probe before the timeout.
    let dsack = |s: &Seg| ack_with(&peer, all, &[(s.seq, end(s))]);
    conn.handle_segment(now + RTT, &dsack(&first[9]));
    assert_eq!(
        conn.stats().spurious_undos,
        0,
        "not every retransmission yet"
    );
    conn.handle_segment(now + RTT, &dsack(&first[0]));
    assert_eq!(conn.stats().spurious_undos, 1);
    assert_eq!(conn.stats().dsacks_received, 2);
    assert!(conn.cwnd() >= cwnd, "{} < {cwnd}", conn.cwnd());
    assert_eq!(conn.ssthresh(), ssthresh);
}

#[test]
fn spurious_fast_retransmit_is_undone_by_dsack() {
    // Reordering, not loss: segment 0 arrives after 1..=3, which RACK took for a loss.
    // The D-SACK of the retransmission undoes the reduction (RFC 3708, RFC 4015) and
    // recovery ends.
    let (mut conn, peer, first) = sent(10);
    let (cwnd, ssthresh) = (conn.cwnd(), conn.ssthresh());
    let una = first[0].seq;
    let now = T0 + RTT;
    for k in 1..4 {
        conn.handle_segment(
            now,
            &ack_with(&peer, una, &[(first[1].seq, end(&first[k]))]),
        );
    }
    assert!(conn.in_recovery());
    let out = drain(&mut conn, now);
    assert!(out.iter().any(|s| s.seq == una));
    assert!(conn.ssthresh() < ssthresh);
    // The late original fills the hole at once (so the cumulative ACK cannot be for the
    // retransmission, RFC 8985 §6.2 step 2); the retransmission arrives one RTT later.
    let filled = now + Duration::from_millis(1);
    conn.handle_segment(filled, &ack_with(&peer, end(&first[3]), &[]));
    let later = now + RTT;
    conn.handle_segment(
        later,
        &ack_with(&peer, end(&first[3]), &[(una, end(&first[0]))]),
    );
    assert_eq!(conn.stats().spurious_undos, 1);
    assert!(!conn.in_recovery());
    assert_eq!(conn.ssthresh(), ssthresh);
    assert!(conn.cwnd() >= cwnd);
}

#[test]
fn prr_sends_about_ssthresh_over_flight_per_delivered_segment() {
    // RFC 6937 §3: 20 segments in flight, the first lost, SACKs for the others one by
    // one. While pipe > ssthresh (0.7 of the window with CUBIC), PRR lets out about 0.7
    // segment per segment delivered, instead of nothing and then a burst.
    let config = TcpConfig {
        send_buffer: 1 << 20,
        ..hand_config(false)
    };
    let (mut conn, peer) = established_after_rtt(&config);
    let mss = usize::from(conn.smss());
    // Grow cwnd to 20 segments: send 10, acknowledge them.
    conn.send(&vec![1u8; 60 * mss]).unwrap();
    let warm = drain(&mut conn, T0);
    conn.handle_segment(T0 + RTT, &ack_with(&peer, end(&warm[9]), &[]));
    let first = drain(&mut conn, T0 + RTT);
    assert_eq!(first.len(), 20);
    let una = first[0].seq;
    let now = T0 + RTT * 2;
    let mut sent_in_recovery = vec![];
    let mut delivered_in_recovery = 0;
    for k in 1..20 {
        conn.handle_segment(
            now,
            &ack_with(&peer, una, &[(first[1].seq, end(&first[k]))]),
        );
        let out = drain(&mut conn, now);
        assert!(
            out.len() <= 2,
            "no burst: {} segments for one ACK",
            out.len()
        );
        if conn.in_recovery() {
            delivered_in_recovery += 1;
            sent_in_recovery.extend(out);
        }
    }
    assert_eq!(conn.stats().fast_recoveries, 1);
    assert_eq!(sent_in_recovery[0].seq, una, "the retransmission first");
    // ssthresh / RecoverFS = 0.7: about 0.7 segment per segment delivered in recovery
    // (RecoverFS counts the segments sent before recovery too), never all at once.
    let n = sent_in_recovery.len();
    let expected = delivered_in_recovery * 7 / 10;
    assert!(
        n + 2 >= expected && n <= expected + 2,
        "{n} segments sent for {delivered_in_recovery} delivered"
    );
}

#[test]
fn receiver_keeps_many_out_of_order_ranges() {
    // More holes than the four ranges this receiver used to keep: every second segment of
    // 20 arrives first. All are held (none dropped), each ACK reports the latest range
    // first (RFC 2018 §4), and filling the holes delivers everything.
    let (mut conn, peer) = established(&hand_config(false), T0);
    let base = peer.seq;
    for i in (1..20u32).step_by(2) {
        let seg = peer.seg_at(Control::None, base + 100 * i, Some(peer.ack), &DATA);
        conn.handle_segment(T0, &seg);
        let out = drain(&mut conn, T0);
        assert_eq!(out[0].sack[0], (base + 100 * i, base + 100 * (i + 1)));
        if i >= 3 {
            // Then the most recent others (RFC 2018 §4).
            assert_eq!(out[0].sack[1], (base + 100 * (i - 2), base + 100 * (i - 1)));
        }
    }
    assert_eq!(conn.stats().dropped, 0);
    for i in (0..20u32).step_by(2) {
        let seg = peer.seg_at(Control::None, base + 100 * i, Some(peer.ack), &DATA);
        conn.handle_segment(T0, &seg);
    }
    assert_eq!(conn.recv_queue(), 2000);
    let out = drain(&mut conn, T0);
    assert_eq!(out.last().and_then(|s| s.ack), Some(base + 2000));
    assert!(out.last().is_some_and(|s| s.sack.is_empty()));
}

#[test]
fn lossy_transfers_complete_mostly_without_timeouts() {
    // Both directions lose 5% of segments (retransmissions and ACKs included) on the
    // two-endpoint loop: 1 MiB arrives intact, and RACK-TLP repairs the losses with fast
    // recovery and probes; timeouts are rare.
    let config = TcpConfig {
        send_buffer: 256 * 1024,
        recv_buffer: 256 * 1024,
        ..TcpConfig::default()
    };
    let mut timeouts = 0;
    let mut recoveries = 0;
    for seed in 1..=4u64 {
        let mut pair = Pair::new(&config, &config, Duration::from_millis(5));
        let mut rng = Rng(seed * 7919);
        pair.drop_rule = Box::new(move |_, _, _| rng.chance(0.05));
        let data = pattern(1 << 20, seed);
        let mut sent = 0;
        let mut got = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let done = pair.run_until(Duration::from_secs(120), |p| {
            if p.a.is_established() && sent < data.len() {
                sent += p.a.send(&data[sent..]).unwrap_or(0);
            }
            while let Ok(n) = p.b.recv(&mut buf) {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            got.len() == data.len()
        });
        assert!(done, "seed {seed}: {} of {} bytes", got.len(), data.len());
        assert!(got == data, "seed {seed}: stream corrupted");
        timeouts += pair.a.stats().timeouts;
        recoveries += pair.a.stats().fast_recoveries;
    }
    assert!(recoveries > 20, "{recoveries} fast recoveries");
    assert!(
        timeouts * 10 <= recoveries,
        "{timeouts} timeouts, {recoveries} recoveries"
    );
}

#[test]
fn spurious_timeout_is_undone_at_once_with_timestamps() {
    // RFC 3522 §3.2 (Eifel detection): the ACKs were only delayed. The first ACK after
    // the timeout acknowledges new data and echoes the timestamp of the original
    // transmission, older than the retransmission's: the timeout was spurious, and the
    // window is restored at once (RFC 4015 §3), without waiting for a D-SACK.
    let (mut conn, mut peer) = established_after_rtt(&hand_config(true));
    let mss = usize::from(conn.smss());
    conn.send(&vec![3u8; 10 * mss]).unwrap();
    let first = drain(&mut conn, T0);
    assert_eq!(first.len(), 10);
    let (cwnd, ssthresh) = (conn.cwnd(), conn.ssthresh());
    let mut now = T0;
    while conn.stats().timeouts == 0 {
        now = conn.poll_timeout().unwrap();
        conn.handle_timeout(now);
        drain(&mut conn, now);
    }
    assert_eq!(conn.cwnd(), u32::from(conn.smss()));
    // The delayed ACK of the original flight echoes its TSval.
    peer.tsecr = first[9].timestamp.expect("timestamps").0;
    conn.handle_segment(now + RTT, &ack_with(&peer, end(&first[9]), &[]));
    assert_eq!(conn.stats().spurious_undos, 1);
    assert_eq!(conn.ssthresh(), ssthresh);
    assert!(conn.cwnd() >= cwnd);
}

#[test]
fn timeout_answered_by_the_retransmission_is_not_undone() {
    // The counterpart: the ACK echoes the retransmission's timestamp (the original was
    // lost), so the reduction stands.
    let (mut conn, mut peer) = established_after_rtt(&hand_config(true));
    let mss = usize::from(conn.smss());
    conn.send(&vec![3u8; 10 * mss]).unwrap();
    let first = drain(&mut conn, T0);
    let ssthresh = conn.ssthresh();
    let mut now = T0;
    let mut last = vec![];
    while conn.stats().timeouts == 0 {
        now = conn.poll_timeout().unwrap();
        conn.handle_timeout(now);
        last = drain(&mut conn, now);
    }
    assert_eq!(last[0].seq, first[0].seq);
    peer.tsecr = last[0].timestamp.expect("timestamps").0;
    conn.handle_segment(now + RTT, &ack_with(&peer, end(&first[0]), &[]));
    assert_eq!(conn.stats().spurious_undos, 0);
    assert!(conn.ssthresh() < ssthresh);
}
