//! Per-state tests of RFC 9293 §3.10.7 and its companions: crafted segments in, response
//! segments and states checked. Each test names the section it checks.
mod tcp_support;

use engine::tcp::{Connection, Disposition, Events, Shutdown, State, TcpConfig, TcpError};
use engine::time::{Duration, Instant};
use engine::wire::tcp::{Control, SeqNumber, TcpRepr};
use tcp_support::*;

const T0: Instant = Instant::from_millis(1_000);

// ----- SYN-SENT (RFC 9293 §3.10.7.3) ----------------------------------------------------

fn syn_sent(config: &TcpConfig) -> (Connection, Seg) {
    let mut conn = Connection::connect(T0, a_tuple(), seed(1_000), config);
    let out = drain(&mut conn, T0);
    assert_eq!(out.len(), 1);
    assert_eq!(conn.state(), State::SynSent);
    (conn, out[0].clone())
}

fn peer_for(syn: &Seg) -> Peer {
    Peer {
        seq: SeqNumber(PEER_ISS),
        ack: syn.seq + 1,
        window: 8192,
        tsval: None,
        tsecr: 0,
    }
}

#[test]
fn syn_carries_offered_options() {
    // RFC 9293 §3.7.1 (MSS), RFC 7323 §2.2/§3.2 (WS, TS in SYN), RFC 2018 §2 (SACK-permitted).
    let (_, syn) = syn_sent(&TcpConfig::default());
    assert_eq!(syn.control, Control::Syn);
    assert_eq!(syn.ack, None);
    assert_eq!(syn.seq, SeqNumber(1_000));
    assert_eq!(syn.mss, Some(1460));
    assert_eq!(syn.window_scale, Some(TcpConfig::default().window_scale()));
    assert!(syn.sack_permitted);
    assert_eq!(syn.timestamp.map(|t| t.1), Some(0));
    // The window of a SYN is never scaled (RFC 7323 §2.2).
    assert_eq!(syn.window, 0xffff);
}

#[test]
fn syn_sent_unacceptable_ack_gets_reset() {
    // §3.10.7.3 first check: SEG.ACK =< ISS or > SND.NXT -> <SEQ=SEG.ACK><CTL=RST>.
    let (mut conn, syn) = syn_sent(&hand_config(false));
    let peer = peer_for(&syn);
    for bad in [syn.seq, syn.seq + 2, syn.seq - 100] {
        let d = conn.handle_segment(T0, &peer.seg_at(Control::Syn, peer.seq, Some(bad), b""));
        assert_eq!(d, Disposition::Refused);
        let out = drain(&mut conn, T0);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].control, Control::Rst);
        assert_eq!(out[0].seq, bad);
        assert_eq!(out[0].ack, None);
        assert_eq!(conn.state(), State::SynSent);
    }
}

#[test]
fn syn_sent_rst_with_acceptable_ack_refuses() {
    // §3.10.7.3 second check: RST with an acceptable ACK -> "connection reset", CLOSED.
    let (mut conn, syn) = syn_sent(&hand_config(false));
    let peer = peer_for(&syn);
    assert_eq!(
        conn.handle_segment(
            T0,
            &peer.seg_at(Control::Rst, SeqNumber(0), Some(syn.seq + 1), b"")
        ),
        Disposition::Reset
    );
    assert_eq!(conn.state(), State::Closed);
    assert_eq!(conn.error(), Some(TcpError::Refused));
    assert!(conn.take_events().contains(Events::ERROR | Events::CLOSED));
    assert!(drain(&mut conn, T0).is_empty(), "no reply to a RST");
}

#[test]
fn syn_sent_rst_without_ack_is_ignored() {
    // §3.10.7.3 second check: "If the ACK was not acceptable ... drop the segment".
    let (mut conn, syn) = syn_sent(&hand_config(false));
    let peer = peer_for(&syn);
    assert_eq!(
        conn.handle_segment(T0, &peer.seg_at(Control::Rst, SeqNumber(7), None, b"")),
        Disposition::RstIgnored
    );
    assert_eq!(conn.state(), State::SynSent);
}

#[test]
fn syn_sent_syn_ack_establishes() {
    // §3.10.7.3 fourth check: SYN with acceptable ACK -> ESTABLISHED, <SEQ=SND.NXT><ACK=RCV.NXT>.
    let (mut conn, syn) = syn_sent(&hand_config(false));
    let peer = peer_for(&syn);
    let syn_ack = TcpRepr {
        max_seg_size: Some(1000),
        ..peer.seg(Control::Syn, b"")
    };
    assert_eq!(conn.handle_segment(T0, &syn_ack), Disposition::Accepted);
    assert_eq!(conn.state(), State::Established);
    assert_eq!(conn.irs(), SeqNumber(PEER_ISS));
    assert_eq!(conn.rcv_nxt(), SeqNumber(PEER_ISS + 1));
    assert_eq!(conn.snd_una(), syn.seq + 1);
    assert_eq!(conn.snd_wnd(), 8192);
    assert_eq!(conn.smss(), 1000);
    let out = drain(&mut conn, T0);
    assert_eq!(out.len(), 1);
    assert!(out[0].is_pure_ack());
    assert_eq!(out[0].seq, syn.seq + 1);
    assert_eq!(out[0].ack, Some(SeqNumber(PEER_ISS + 1)));
    // Peer sent no window scale: neither side scales (RFC 7323 §2.2), nor SACK.
    assert_eq!(conn.window_scaling(), None);
    assert!(!conn.sack_enabled());
}

#[test]
fn simultaneous_open() {
    // §3.10.7.3 fourth check, "Otherwise, enter SYN-RECEIVED, form a SYN,ACK segment"
    // (Figure 7 of RFC 9293 §3.5).
    let (mut conn, syn) = syn_sent(&hand_config(false));
    let peer = peer_for(&syn);
    let their_syn = peer.seg_at(Control::Syn, peer.seq, None, b"");
    assert_eq!(conn.handle_segment(T0, &their_syn), Disposition::Accepted);
    assert_eq!(conn.state(), State::SynReceived);
    let out = drain(&mut conn, T0);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].control, Control::Syn);
    assert_eq!(out[0].seq, syn.seq);
    assert_eq!(out[0].ack, Some(SeqNumber(PEER_ISS + 1)));
    // Their SYN-ACK completes it.
    let their_syn_ack = peer.seg_at(Control::Syn, peer.seq, Some(syn.seq + 1), b"");
    // In SYN-RECEIVED a SYN at IRS is the peer's own SYN again; its SYN-ACK arrives too.
    conn.handle_segment(T0, &their_syn_ack);
    let ack = peer.seg_at(Control::None, peer.seq + 1, Some(syn.seq + 1), b"");
    assert_eq!(conn.handle_segment(T0, &ack), Disposition::Accepted);
    assert_eq!(conn.state(), State::Established);
    assert!(!conn.is_passive());
}

#[test]
fn simultaneous_open_rst_refuses() {
    // §3.10.7.4 second check, SYN-RECEIVED from an active OPEN: "connection refused".
    let (mut conn, syn) = syn_sent(&hand_config(false));
    let peer = peer_for(&syn);
    conn.handle_segment(T0, &peer.seg_at(Control::Syn, peer.seq, None, b""));
    drain(&mut conn, T0);
    conn.handle_segment(T0, &peer.seg_at(Control::Rst, peer.seq + 1, None, b""));
    assert_eq!(conn.state(), State::Closed);
    assert_eq!(conn.error(), Some(TcpError::Refused));
}

#[test]
fn syn_retransmitted_with_backoff_then_times_out() {
    // RFC 6298 §5.5 (back off), RFC 9293 §3.8.3 (R2 for SYN), initial RTO 1 s (§2.1).
    let config = TcpConfig {
        max_syn_retries: 3,
        ..hand_config(false)
    };
    let (mut conn, _) = syn_sent(&config);
    let mut times = vec![];
    let mut now = T0;
    while let Some(t) = conn.poll_timeout() {
        now = t;
        conn.handle_timeout(now);
        let out = drain(&mut conn, now);
        if conn.state() == State::Closed {
            break;
        }
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].control, Control::Syn);
        times.push((now - T0).as_millis());
    }
    assert_eq!(times, [1_000, 3_000, 7_000]);
    assert_eq!(conn.error(), Some(TcpError::TimedOut));
    assert_eq!((now - T0).as_millis(), 15_000);
}

// ----- SYN-RECEIVED (§3.10.7.4) -------------------------------------------------------

fn syn_received(config: &TcpConfig) -> (Connection, Peer, Seg) {
    let peer = Peer {
        seq: SeqNumber(PEER_ISS),
        ack: SeqNumber(0),
        window: 8192,
        tsval: None,
        tsecr: 0,
    };
    let syn = TcpRepr {
        src_port: B_ADDR.port(),
        dst_port: A_ADDR.port(),
        control: Control::Syn,
        seq_number: peer.seq,
        window_len: 8192,
        max_seg_size: Some(1200),
        ..TcpRepr::default()
    };
    let mut conn = Connection::accept(T0, a_tuple(), seed(9_000), &syn, config).unwrap();
    let out = drain(&mut conn, T0);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].control, Control::Syn);
    assert_eq!(out[0].ack, Some(SeqNumber(PEER_ISS + 1)));
    let mut peer = peer;
    peer.seq += 1;
    peer.ack = out[0].seq + 1;
    (conn, peer, out[0].clone())
}

#[test]
fn accept_rejects_non_syn() {
    let peer = Peer {
        seq: SeqNumber(1),
        ack: SeqNumber(2),
        window: 1,
        tsval: None,
        tsecr: 0,
    };
    let not_syn = peer.seg(Control::None, b"");
    assert!(Connection::accept(T0, a_tuple(), seed(1), &not_syn, &TcpConfig::default()).is_err());
}

#[test]
fn syn_received_bad_ack_gets_reset() {
    // §3.10.7.4 fifth check, SYN-RECEIVED: unacceptable ACK -> <SEQ=SEG.ACK><CTL=RST>.
    let (mut conn, peer, syn_ack) = syn_received(&hand_config(false));
    let bad = syn_ack.seq + 5;
    assert_eq!(
        conn.handle_segment(T0, &peer.seg_at(Control::None, peer.seq, Some(bad), b"")),
        Disposition::Refused
    );
    let out = drain(&mut conn, T0);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].control, out[0].seq, out[0].ack),
        (Control::Rst, bad, None)
    );
    assert_eq!(conn.state(), State::SynReceived);
}

#[test]
fn syn_received_ack_establishes_and_data_in_third_segment_is_delivered() {
    // §3.10.7.4 fifth check: SND.UNA < SEG.ACK =< SND.NXT -> ESTABLISHED, then the text.
    let (mut conn, mut peer, _) = syn_received(&hand_config(false));
    let seg = peer.seg(Control::None, b"hello");
    assert_eq!(peer.send(&mut conn, T0, &seg), Disposition::Accepted);
    assert_eq!(conn.state(), State::Established);
    assert!(conn.is_passive());
    assert_eq!(conn.smss(), 1200);
    let mut buf = [0u8; 16];
    assert_eq!(conn.recv(&mut buf), Ok(5));
    assert_eq!(&buf[..5], b"hello");
    let events = conn.take_events();
    assert!(events.contains(Events::ESTABLISHED | Events::READABLE));
}

#[test]
fn syn_received_without_ack_bit_is_dropped() {
    // §3.10.7.4 fifth check: "if the ACK bit is off, drop the segment and return".
    let (mut conn, peer, _) = syn_received(&hand_config(false));
    let seg = peer.seg_at(Control::None, peer.seq, None, b"data");
    assert_eq!(conn.handle_segment(T0, &seg), Disposition::BadAck);
    assert_eq!(conn.state(), State::SynReceived);
    assert_eq!(conn.recv_queue(), 0);
}

#[test]
fn close_in_syn_received_sends_fin_once_established() {
    // §3.10.4 CLOSE in SYN-RECEIVED: queued until ESTABLISHED, then FIN-WAIT-1.
    let (mut conn, mut peer, _) = syn_received(&hand_config(false));
    conn.close().unwrap();
    assert_eq!(conn.state(), State::SynReceived);
    let ack = peer.seg(Control::None, b"");
    peer.send(&mut conn, T0, &ack);
    assert_eq!(conn.state(), State::FinWait1);
    let out = drain(&mut conn, T0);
    assert_eq!(out.last().map(|s| s.control), Some(Control::Fin));
}

// ----- ESTABLISHED (§3.10.7.4) --------------------------------------------------------

#[test]
fn in_window_data_delivered_and_acknowledged() {
    // §3.10.7.4 seventh check: text to the user, RCV.NXT advanced, <ACK=RCV.NXT> sent.
    let (mut conn, mut peer) = established(&hand_config(false), T0);
    let seg = peer.seg(Control::None, b"abcdef");
    assert_eq!(peer.send(&mut conn, T0, &seg), Disposition::Accepted);
    let out = drain(&mut conn, T0);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].ack, Some(peer.seq));
    assert!(conn.take_events().contains(Events::READABLE));
    let mut buf = [0u8; 3];
    assert_eq!(conn.recv(&mut buf), Ok(3));
    assert_eq!(&buf, b"abc");
    assert_eq!(conn.recv(&mut buf), Ok(3));
    assert_eq!(&buf, b"def");
    assert_eq!(conn.recv(&mut buf), Ok(0));
    // Nothing held: the receive buffer was released.
    assert_eq!(conn.buffer_memory(), 0);
}

#[test]
fn out_of_window_data_is_acked_and_dropped() {
    // §3.10.7.4 first check: unacceptable segment -> <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>.
    let (mut conn, peer) = established(&hand_config(false), T0);
    let rcv_nxt = conn.rcv_nxt();
    for seq in [rcv_nxt - 100, rcv_nxt + 1_000_000] {
        let seg = peer.seg_at(Control::None, seq, Some(peer.ack), b"zzzz");
        assert_eq!(conn.handle_segment(T0, &seg), Disposition::OutOfWindow);
        let out = drain(&mut conn, T0);
        assert_eq!(out.len(), 1);
        assert!(out[0].is_pure_ack());
        assert_eq!(out[0].ack, Some(rcv_nxt));
    }
    assert_eq!(conn.recv_queue(), 0);
    assert_eq!(conn.rcv_nxt(), rcv_nxt);
}

#[test]
fn partially_duplicate_segment_is_trimmed() {
    // §3.10.7.4 first check: the in-window part of an overlapping segment is kept.
    let (mut conn, mut peer) = established(&hand_config(false), T0);
    let seg = peer.seg(Control::None, b"0123");
    peer.send(&mut conn, T0, &seg);
    let overlap = peer.seg_at(Control::None, peer.seq - 2, Some(peer.ack), b"234567");
    conn.handle_segment(T0, &overlap);
    let mut buf = [0u8; 16];
    let n = conn.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"01234567");
}

#[test]
fn rst_exactly_at_rcv_nxt_resets() {
    // §3.10.7.4 second check (RFC 5961 §3.2): RST with SEG.SEQ = RCV.NXT resets.
    let (mut conn, peer) = established(&hand_config(false), T0);
    conn.send(b"pending").unwrap();
    let rst = peer.seg_at(Control::Rst, conn.rcv_nxt(), None, b"");
    assert_eq!(conn.handle_segment(T0, &rst), Disposition::Reset);
    assert_eq!(conn.state(), State::Closed);
    assert_eq!(conn.error(), Some(TcpError::Reset));
    assert_eq!(conn.send(b"x"), Err(TcpError::Reset));
    assert_eq!(conn.send_queue(), 0, "queues flushed");
    assert!(drain(&mut conn, T0).is_empty());
    assert!(conn.is_closed());
}

#[test]
fn rst_in_window_but_not_exact_gets_challenge_ack() {
    // RFC 5961 §3.2: in-window RST not at RCV.NXT -> challenge ACK, no reset.
    let (mut conn, peer) = established(&hand_config(false), T0);
    let rst = peer.seg_at(Control::Rst, conn.rcv_nxt() + 10, None, b"");
    assert_eq!(conn.handle_segment(T0, &rst), Disposition::RstIgnored);
    assert_eq!(conn.state(), State::Established);
    let out = drain(&mut conn, T0);
    assert_eq!(out.len(), 1);
    assert!(out[0].is_pure_ack());
    assert_eq!(out[0].ack, Some(conn.rcv_nxt()));
    assert_eq!(conn.stats().challenge_acks, 1);
}

#[test]
fn rst_out_of_window_is_silently_dropped() {
    // §3.10.7.4 first check: an unacceptable RST is dropped without reply.
    let (mut conn, peer) = established(&hand_config(false), T0);
    let rst = peer.seg_at(Control::Rst, conn.rcv_nxt() + 10_000_000, None, b"");
    assert_eq!(conn.handle_segment(T0, &rst), Disposition::OutOfWindow);
    assert!(drain(&mut conn, T0).is_empty());
    assert_eq!(conn.state(), State::Established);
}

#[test]
fn syn_in_established_gets_challenge_ack() {
    // RFC 5961 §4.2 (replacing RFC 793's reset): any SYN -> challenge ACK.
    let (mut conn, peer) = established(&hand_config(false), T0);
    for seq in [conn.rcv_nxt(), conn.rcv_nxt() + 5] {
        let syn = peer.seg_at(Control::Syn, seq, None, b"");
        assert_eq!(conn.handle_segment(T0, &syn), Disposition::SynChallenged);
        let out = drain(&mut conn, T0);
        assert_eq!(out.len(), 1);
        assert!(out[0].is_pure_ack());
    }
    assert_eq!(conn.state(), State::Established);
}

#[test]
fn ack_beyond_snd_nxt_or_too_old_is_challenged() {
    // RFC 5961 §5.2: SEG.ACK outside [SND.UNA - MAX.SND.WND, SND.NXT] -> ACK and drop.
    let (mut conn, peer) = established(&hand_config(false), T0);
    for ack in [conn.snd_nxt() + 1, conn.snd_una() - 1_000_000] {
        let seg = peer.seg_at(Control::None, peer.seq, Some(ack), b"data");
        assert_eq!(conn.handle_segment(T0, &seg), Disposition::BadAck);
        assert!(drain(&mut conn, T0)[0].is_pure_ack());
    }
    assert_eq!(
        conn.recv_queue(),
        0,
        "data of a bad-ACK segment is not accepted"
    );
}

#[test]
fn challenge_acks_are_rate_limited() {
    // RFC 5961 §7: at most `challenge_ack_limit` per second.
    let config = TcpConfig {
        challenge_ack_limit: 3,
        ..hand_config(false)
    };
    let (mut conn, peer) = established(&config, T0);
    let mut acks = 0;
    for i in 0..10 {
        let rst = peer.seg_at(Control::Rst, conn.rcv_nxt() + 1 + i, None, b"");
        conn.handle_segment(T0, &rst);
        acks += drain(&mut conn, T0).len();
    }
    assert_eq!(acks, 3);
    let later = T0 + Duration::from_secs(1);
    conn.handle_segment(
        later,
        &peer.seg_at(Control::Rst, conn.rcv_nxt() + 1, None, b""),
    );
    assert_eq!(drain(&mut conn, later).len(), 1);
}

#[test]
fn window_update_rules_use_wl1_wl2() {
    // §3.10.7.4 fifth check: update SND.WND only from a newer segment.
    let (mut conn, mut peer) = established(&hand_config(false), T0);
    peer.window = 1000;
    let seg = peer.seg(Control::None, b"x");
    peer.send(&mut conn, T0, &seg);
    assert_eq!(conn.snd_wnd(), 1000);
    // An older segment (lower SEQ) with a bigger window does not update.
    let old = peer.seg_at(Control::None, peer.seq - 1, Some(peer.ack), b"");
    let old = TcpRepr {
        window_len: 5000,
        ..old
    };
    conn.handle_segment(T0, &old);
    assert_eq!(conn.snd_wnd(), 1000);
}

#[test]
fn out_of_order_data_is_reassembled_and_sacked() {
    // RFC 5681 §4.2 (immediate duplicate ACK), RFC 2018 §4 (SACK blocks, latest first).
    let (mut conn, peer) = established(&hand_config(false), T0);
    assert!(conn.sack_enabled());
    let base = peer.seq;
    let seg2 = peer.seg_at(Control::None, base + 4, Some(peer.ack), b"4567");
    let seg3 = peer.seg_at(Control::None, base + 12, Some(peer.ack), b"cdef");
    conn.handle_segment(T0, &seg2);
    let out = drain(&mut conn, T0);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].ack, Some(base));
    assert_eq!(out[0].sack, vec![(base + 4, base + 8)]);
    conn.handle_segment(T0, &seg3);
    let out = drain(&mut conn, T0);
    assert_eq!(
        out[0].sack,
        vec![(base + 12, base + 16), (base + 4, base + 8)]
    );
    assert_eq!(conn.recv_queue(), 0);
    // Fill the first hole: RCV.NXT jumps over the first block, an ACK goes out at once.
    let seg1 = peer.seg_at(Control::None, base, Some(peer.ack), b"0123");
    conn.handle_segment(T0, &seg1);
    let out = drain(&mut conn, T0);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].ack, Some(base + 8));
    assert_eq!(out[0].sack, vec![(base + 12, base + 16)]);
    let fill = peer.seg_at(Control::None, base + 8, Some(peer.ack), b"89ab");
    conn.handle_segment(T0, &fill);
    let mut buf = [0u8; 32];
    let n = conn.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"0123456789abcdef");
    assert!(drain(&mut conn, T0)[0].sack.is_empty());
}

#[test]
fn one_dupack_per_out_of_order_segment() {
    // RFC 5681 §4.2: each out-of-order segment gets its own immediate duplicate ACK, even
    // when a burst is processed before transmitting.
    let (mut conn, peer) = established(&hand_config(false), T0);
    let base = peer.seq;
    for i in 1..=4u32 {
        let seg = peer.seg_at(Control::None, base + 10 * i, Some(peer.ack), b"0123456789");
        conn.handle_segment(T0, &seg);
    }
    let out = drain(&mut conn, T0);
    assert_eq!(out.len(), 4);
    assert!(out.iter().all(|s| s.is_pure_ack() && s.ack == Some(base)));
}

// ----- FIN, half-close and the closing states ------------------------------------------

#[test]
fn fin_moves_to_close_wait_and_signals_end_of_stream() {
    // §3.10.7.4 eighth check: ESTABLISHED -> CLOSE-WAIT, ACK the FIN, signal the user.
    let (mut conn, mut peer) = established(&hand_config(false), T0);
    let seg = peer.seg(Control::Fin, b"last");
    peer.send(&mut conn, T0, &seg);
    assert_eq!(conn.state(), State::CloseWait);
    let out = drain(&mut conn, T0);
    assert_eq!(out[0].ack, Some(peer.seq));
    assert!(conn
        .take_events()
        .contains(Events::PEER_CLOSED | Events::READABLE));
    let mut buf = [0u8; 8];
    assert_eq!(conn.recv(&mut buf), Ok(4));
    assert_eq!(conn.recv(&mut buf), Err(TcpError::Finished));
    // Half-close: we may still send (§3.10.2 SEND in CLOSE-WAIT).
    assert_eq!(conn.send(b"reply"), Ok(5));
    let out = drain(&mut conn, T0);
    assert_eq!(out[0].payload, b"reply");
    // CLOSE in CLOSE-WAIT -> LAST-ACK, FIN sent; its ACK -> CLOSED (§3.10.4, fifth check).
    peer.absorb(&out);
    conn.close().unwrap();
    assert_eq!(conn.state(), State::LastAck);
    let out = drain(&mut conn, T0);
    assert_eq!(out.last().unwrap().control, Control::Fin);
    peer.absorb(&out);
    let ack = peer.seg(Control::None, b"");
    peer.send(&mut conn, T0, &ack);
    assert_eq!(conn.state(), State::Closed);
    assert!(conn.is_closed());
    assert_eq!(conn.error(), None);
}

#[test]
fn out_of_order_fin_waits_for_the_gap() {
    // §3.10.7.4 eighth check applies once RCV.NXT reaches the FIN.
    let (mut conn, peer) = established(&hand_config(false), T0);
    let base = peer.seq;
    conn.handle_segment(
        T0,
        &peer.seg_at(Control::Fin, base + 3, Some(peer.ack), b"def"),
    );
    assert_eq!(conn.state(), State::Established);
    conn.handle_segment(
        T0,
        &peer.seg_at(Control::None, base, Some(peer.ack), b"abc"),
    );
    assert_eq!(conn.state(), State::CloseWait);
    assert_eq!(conn.rcv_nxt(), base + 7);
    let mut buf = [0u8; 8];
    assert_eq!(conn.recv(&mut buf), Ok(6));
}

#[test]
fn active_close_fin_wait_1_2_time_wait_closed() {
    // §3.10.4 CLOSE; §3.10.7.4 fifth check (FIN-WAIT-1 -> FIN-WAIT-2), eighth check
    // (FIN-WAIT-2 -> TIME-WAIT), §3.10.8 (2 MSL -> CLOSED).
    let config = TcpConfig {
        time_wait: Duration::from_secs(30),
        ..hand_config(false)
    };
    let (mut conn, mut peer) = established(&config, T0);
    conn.send(b"bye").unwrap();
    conn.close().unwrap();
    assert_eq!(conn.state(), State::FinWait1);
    assert_eq!(conn.send(b"more"), Err(TcpError::Closing));
    let out = drain(&mut conn, T0);
    assert_eq!(out.len(), 1, "data and FIN in one segment");
    assert_eq!(out[0].control, Control::Fin);
    assert_eq!(out[0].payload, b"bye");
    peer.absorb(&out);
    let ack = peer.seg(Control::None, b"");
    peer.send(&mut conn, T0, &ack);
    assert_eq!(conn.state(), State::FinWait2);
    // Half-closed: data still arrives in FIN-WAIT-2.
    let data = peer.seg(Control::None, b"late data");
    peer.send(&mut conn, T0, &data);
    assert_eq!(conn.recv_queue(), 9);
    let fin = peer.seg(Control::Fin, b"");
    peer.send(&mut conn, T0, &fin);
    assert_eq!(conn.state(), State::TimeWait);
    let out = drain(&mut conn, T0);
    assert_eq!(out.last().unwrap().ack, Some(peer.seq));
    assert_eq!(conn.poll_timeout(), Some(T0 + Duration::from_secs(30)));
    // A retransmitted FIN in TIME-WAIT is acknowledged and restarts the timer.
    let later = T0 + Duration::from_secs(10);
    let again = peer.seg_at(Control::Fin, peer.seq - 1, Some(peer.ack), b"");
    conn.handle_segment(later, &again);
    assert_eq!(drain(&mut conn, later).len(), 1);
    assert_eq!(conn.poll_timeout(), Some(later + Duration::from_secs(30)));
    // RFC 1337 F1: no RST ends TIME-WAIT early, not even one exactly at RCV.NXT; none
    // is answered.
    for seq in [conn.rcv_nxt(), conn.rcv_nxt() + 10, conn.rcv_nxt() - 100] {
        let rst = peer.seg_at(Control::Rst, seq, None, b"");
        assert_eq!(conn.handle_segment(later, &rst), Disposition::TimeWaitRst);
        assert_eq!(conn.state(), State::TimeWait);
        assert!(drain(&mut conn, later).is_empty());
    }
    conn.handle_timeout(later + Duration::from_secs(30));
    assert_eq!(conn.state(), State::Closed);
    assert!(conn.take_events().contains(Events::CLOSED));
}

#[test]
fn simultaneous_close_through_closing() {
    // §3.10.7.4 eighth check: FIN in FIN-WAIT-1 before our FIN is acked -> CLOSING;
    // fifth check: its ACK -> TIME-WAIT (RFC 9293 §3.6 Figure 13).
    let (mut conn, mut peer) = established(&hand_config(false), T0);
    conn.close().unwrap();
    let out = drain(&mut conn, T0);
    assert_eq!(out[0].control, Control::Fin);
    // The peer's FIN crosses ours (it does not acknowledge our FIN).
    let fin = peer.seg(Control::Fin, b"");
    peer.send(&mut conn, T0, &fin);
    assert_eq!(conn.state(), State::Closing);
    peer.absorb(&out);
    let ack = peer.seg(Control::None, b"");
    peer.send(&mut conn, T0, &ack);
    assert_eq!(conn.state(), State::TimeWait);
}

#[test]
fn fin_acking_our_fin_goes_straight_to_time_wait() {
    // §3.10.7.4 eighth check, FIN-WAIT-1: "If our FIN has been ACKed (perhaps in this
    // segment), then enter TIME-WAIT".
    let (mut conn, mut peer) = established(&hand_config(false), T0);
    conn.close().unwrap();
    let out = drain(&mut conn, T0);
    peer.absorb(&out);
    let fin_ack = peer.seg(Control::Fin, b"");
    peer.send(&mut conn, T0, &fin_ack);
    assert_eq!(conn.state(), State::TimeWait);
}

#[test]
fn rst_in_closing_states_closes_without_error() {
    // §3.10.7.4 second check: CLOSING, LAST-ACK, TIME-WAIT -> CLOSED on an acceptable RST.
    let (mut conn, mut peer) = established(&hand_config(false), T0);
    let fin = peer.seg(Control::Fin, b"");
    peer.send(&mut conn, T0, &fin);
    conn.close().unwrap();
    assert_eq!(conn.state(), State::LastAck);
    drain(&mut conn, T0);
    conn.handle_segment(T0, &peer.seg_at(Control::Rst, conn.rcv_nxt(), None, b""));
    assert_eq!(conn.state(), State::Closed);
    assert_eq!(conn.error(), None);
}

#[test]
fn fin_wait_2_times_out_only_after_full_close() {
    let config = TcpConfig {
        fin_wait_2_timeout: Some(Duration::from_secs(5)),
        ..hand_config(false)
    };
    let (mut conn, mut peer) = established(&config, T0);
    conn.close().unwrap();
    let out = drain(&mut conn, T0);
    peer.absorb(&out);
    let ack = peer.seg(Control::None, b"");
    peer.send(&mut conn, T0, &ack);
    assert_eq!(conn.state(), State::FinWait2);
    // Half-close: no timer while the application may still read.
    assert_eq!(conn.poll_timeout(), None);
    conn.shutdown(Shutdown::Read, T0).unwrap();
    assert_eq!(conn.poll_timeout(), Some(T0 + Duration::from_secs(5)));
    conn.handle_timeout(T0 + Duration::from_secs(5));
    assert_eq!(conn.state(), State::Closed);
}

#[test]
fn abort_sends_reset_and_closes() {
    // §3.10.5 ABORT in ESTABLISHED: <SEQ=SND.NXT><CTL=RST>, CLOSED.
    let (mut conn, _) = established(&hand_config(false), T0);
    conn.send(b"unsent").unwrap();
    let snd_nxt = conn.snd_nxt();
    drain(&mut conn, T0);
    conn.abort();
    assert_eq!(conn.state(), State::Closed);
    assert!(!conn.is_closed(), "the RST is still to be sent");
    let out = drain(&mut conn, T0);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].control, Control::Rst);
    assert_eq!(out[0].seq, snd_nxt + 6);
    assert!(conn.is_closed());
    assert_eq!(conn.error(), Some(TcpError::Aborted));
}

#[test]
fn closed_connection_answers_with_reset() {
    // §3.10.7.1 CLOSED: ACK -> <SEQ=SEG.ACK><CTL=RST>; no ACK ->
    // <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>; RST -> nothing.
    let (mut conn, peer) = established(&hand_config(false), T0);
    conn.abort();
    drain(&mut conn, T0);
    conn.handle_segment(
        T0,
        &peer.seg_at(Control::None, SeqNumber(10), Some(SeqNumber(77)), b"x"),
    );
    let out = drain(&mut conn, T0);
    assert_eq!(
        (out[0].control, out[0].seq, out[0].ack),
        (Control::Rst, SeqNumber(77), None)
    );
    conn.handle_segment(T0, &peer.seg_at(Control::None, SeqNumber(10), None, b"xyz"));
    let out = drain(&mut conn, T0);
    assert_eq!(
        (out[0].seq, out[0].ack),
        (SeqNumber(0), Some(SeqNumber(13)))
    );
    conn.handle_segment(T0, &peer.seg_at(Control::Rst, SeqNumber(10), None, b""));
    assert!(drain(&mut conn, T0).is_empty());
}

#[test]
fn application_calls_in_wrong_states_are_errors() {
    let (mut conn, _) = syn_sent(&hand_config(false));
    conn.close().unwrap();
    assert_eq!(conn.state(), State::Closed);
    assert_eq!(conn.close(), Err(TcpError::InvalidState(State::Closed)));
    assert_eq!(conn.send(b"x"), Err(TcpError::InvalidState(State::Closed)));
    let (mut conn, _) = established(&hand_config(false), T0);
    conn.close().unwrap();
    assert_eq!(conn.close(), Err(TcpError::Closing));
}

// ----- Timestamps and PAWS (RFC 7323) -------------------------------------------------

#[test]
fn paws_rejects_old_timestamps_and_echoes_ts_recent() {
    // RFC 7323 §5.3 R1: SEG.TSval < TS.Recent -> drop, send ACK; §4.3: TSecr = TS.Recent.
    let (mut conn, mut peer) = established(&hand_config(true), T0);
    assert!(conn.timestamps_enabled());
    peer.tsval = Some(1_000);
    let seg = peer.seg(Control::None, b"new");
    peer.send(&mut conn, T0, &seg);
    let out = drain(&mut conn, T0);
    assert_eq!(out[0].timestamp.map(|t| t.1), Some(1_000));
    let old = TcpRepr {
        timestamp: Some((999, peer.tsecr)),
        ..peer.seg(Control::None, b"old")
    };
    assert_eq!(conn.handle_segment(T0, &old), Disposition::Paws);
    assert_eq!(conn.recv_queue(), 3);
    assert!(drain(&mut conn, T0)[0].is_pure_ack());
    // RST segments are exempt from PAWS (§5.3 R1 applies to non-RST segments only).
    let rst = TcpRepr {
        timestamp: Some((5, 0)),
        ..peer.seg_at(Control::Rst, conn.rcv_nxt(), None, b"")
    };
    assert_eq!(conn.handle_segment(T0, &rst), Disposition::Reset);
}

#[test]
fn missing_timestamp_is_dropped_once_negotiated() {
    // RFC 7323 §3.2: after negotiation, a non-RST segment without TSopt is dropped.
    let (mut conn, peer) = established(&hand_config(true), T0);
    let bare = TcpRepr {
        timestamp: None,
        ..peer.seg(Control::None, b"x")
    };
    assert_eq!(conn.handle_segment(T0, &bare), Disposition::Paws);
    assert_eq!(conn.recv_queue(), 0);
}

#[test]
fn rtt_measured_from_timestamp_echo() {
    // RFC 7323 §4.1: RTT = now - TSecr on an ACK of new data.
    let (mut conn, mut peer) = established(&hand_config(true), T0);
    conn.send(b"ping").unwrap();
    let out = drain(&mut conn, T0);
    peer.absorb(&out);
    let later = T0 + Duration::from_millis(37);
    let ack = peer.seg(Control::None, b"");
    peer.send(&mut conn, later, &ack);
    // The handshake (answered at once) gave a first sample of 0 ms; this one is 37 ms:
    // SRTT = 7/8 * 0 + 1/8 * 37 (RFC 6298 §2.3).
    assert_eq!(conn.srtt(), Some(Duration::from_micros(4_625)));
}

// ----- Window scaling, MSS clamping -----------------------------------------------------

#[test]
fn window_scale_applies_to_non_syn_segments() {
    // RFC 7323 §2.3: SND.WND = SEG.WND << Snd.Wind.Shift, except in SYNs.
    let config = hand_config(false);
    let mut conn = Connection::connect(T0, a_tuple(), seed(1), &config);
    let syn = drain(&mut conn, T0);
    let mut peer = peer_for(&syn[0]);
    peer.window = 1000;
    let syn_ack = TcpRepr {
        window_scale: Some(4),
        ..peer.seg(Control::Syn, b"")
    };
    peer.send(&mut conn, T0, &syn_ack);
    assert_eq!(conn.snd_wnd(), 1000, "SYN window is not scaled");
    let ack = peer.seg(Control::None, b"");
    peer.send(&mut conn, T0, &ack);
    assert_eq!(conn.snd_wnd(), 16_000);
    // A shift above 14 is used as 14 (RFC 7323 §2.3).
    let mut conn = Connection::connect(T0, a_tuple(), seed(1), &config);
    drain(&mut conn, T0);
    conn.handle_segment(
        T0,
        &TcpRepr {
            window_scale: Some(20),
            ..peer.seg_at(Control::Syn, peer.seq - 1, Some(SeqNumber(2)), b"")
        },
    );
    assert_eq!(conn.window_scaling().map(|w| w.0), Some(14));
}

#[test]
fn mss_clamped_to_mtu() {
    let config = TcpConfig {
        mtu: 1280,
        ..hand_config(false)
    };
    let mut conn = Connection::connect(T0, a_tuple(), seed(1), &config);
    let syn = drain(&mut conn, T0);
    assert_eq!(syn[0].mss, Some(1240));
    let peer = peer_for(&syn[0]);
    conn.handle_segment(
        T0,
        &TcpRepr {
            max_seg_size: Some(9000),
            ..peer.seg(Control::Syn, b"")
        },
    );
    assert_eq!(conn.smss(), 1240);
    // No MSS option: RFC 9293 §3.7.1 default of 536.
    let mut conn = Connection::connect(T0, a_tuple(), seed(1), &config);
    drain(&mut conn, T0);
    conn.handle_segment(T0, &peer.seg(Control::Syn, b""));
    assert_eq!(conn.smss(), 536);
}

// ----- Delayed ACK, Nagle, zero window, keepalive -------------------------------------

#[test]
fn delayed_ack_waits_then_fires_and_acks_every_second_segment() {
    // RFC 9293 §3.8.6.3: delay ACKs (< 0.5 s), but ACK at least every second full segment.
    let config = TcpConfig {
        delayed_ack: Some(Duration::from_millis(40)),
        ..hand_config(false)
    };
    let (mut conn, mut peer) = established(&config, T0);
    let seg = peer.seg(Control::None, &[7; 1000]);
    peer.send(&mut conn, T0, &seg);
    assert!(
        drain(&mut conn, T0).is_empty(),
        "first segment: ACK delayed"
    );
    assert_eq!(conn.poll_timeout(), Some(T0 + Duration::from_millis(40)));
    let seg = peer.seg(Control::None, &[7; 1000]);
    peer.send(&mut conn, T0, &seg);
    let out = drain(&mut conn, T0);
    assert_eq!(out.len(), 1, "second full segment: ACK at once");
    assert_eq!(out[0].ack, Some(peer.seq));
    assert_eq!(
        conn.poll_timeout(),
        None,
        "delayed-ACK timer cancelled by the ACK"
    );
    let seg = peer.seg(Control::None, b"small");
    peer.send(&mut conn, T0, &seg);
    assert!(drain(&mut conn, T0).is_empty());
    let t = T0 + Duration::from_millis(40);
    conn.handle_timeout(t);
    let out = drain(&mut conn, t);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].ack, Some(peer.seq));
}

#[test]
fn nagle_coalesces_small_writes_while_data_is_unacknowledged() {
    // RFC 9293 §3.7.4: hold a small segment while unacknowledged data is outstanding.
    let config = TcpConfig {
        nagle: true,
        ..hand_config(false)
    };
    let (mut conn, mut peer) = established(&config, T0);
    conn.send(b"a").unwrap();
    let out = drain(&mut conn, T0);
    assert_eq!(out.len(), 1, "nothing in flight: sent at once");
    conn.send(b"b").unwrap();
    conn.send(b"c").unwrap();
    assert!(
        drain(&mut conn, T0).is_empty(),
        "held while 'a' is unacknowledged"
    );
    peer.absorb(&out);
    let ack = peer.seg(Control::None, b"");
    peer.send(&mut conn, T0, &ack);
    let out = drain(&mut conn, T0);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].payload, b"bc");
    // Without Nagle each write goes out.
    let (mut conn, _) = established(&hand_config(false), T0);
    conn.send(b"a").unwrap();
    drain(&mut conn, T0);
    conn.send(b"b").unwrap();
    assert_eq!(drain(&mut conn, T0).len(), 1);
    // Nagle turned off on one connection (TCP_NODELAY), the configuration's default kept.
    let (mut conn, _) = established(&config, T0);
    conn.set_nagle(false);
    conn.send(b"a").unwrap();
    drain(&mut conn, T0);
    conn.send(b"b").unwrap();
    assert_eq!(
        drain(&mut conn, T0).len(),
        1,
        "sent at once with 'a' in flight"
    );
}

#[test]
fn zero_window_is_probed_with_backoff_until_it_opens() {
    // RFC 9293 §3.8.6.1: probe a zero window; keep the connection while the peer ACKs.
    let (mut conn, mut peer) = established(&hand_config(false), T0);
    peer.window = 0;
    let ack = peer.seg(Control::None, b"");
    peer.send(&mut conn, T0, &ack);
    assert_eq!(conn.snd_wnd(), 0);
    conn.send(b"blocked").unwrap();
    assert!(
        drain(&mut conn, T0).is_empty(),
        "window closed: nothing sent"
    );
    let mut now = T0;
    let mut probe_times = vec![];
    for _ in 0..4 {
        now = conn.poll_timeout().expect("persist timer");
        conn.handle_timeout(now);
        let out = drain(&mut conn, now);
        assert_eq!(out.len(), 1);
        assert!(out[0].is_pure_ack());
        assert_eq!(
            out[0].seq,
            conn.snd_una() - 1,
            "probe uses an old sequence number"
        );
        probe_times.push((now - T0).as_millis());
        // The peer answers each probe with its (still zero) window.
        let answer = peer.seg(Control::None, b"");
        peer.send(&mut conn, now, &answer);
    }
    assert_eq!(conn.state(), State::Established);
    // The first probe after one RTO, then the interval doubles.
    let rto = conn.rto().as_millis();
    assert_eq!(probe_times[0], rto);
    let gaps: Vec<u128> = probe_times.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps, [2 * rto, 4 * rto, 8 * rto]);
    peer.window = 100;
    let open = peer.seg(Control::None, b"");
    peer.send(&mut conn, now, &open);
    let out = drain(&mut conn, now);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].payload, b"blocked");
}

#[test]
fn keepalive_probes_then_times_out() {
    // RFC 9293 §3.8.4: keepalive after idle; give up after unanswered probes.
    let config = TcpConfig {
        keepalive: Some(engine::tcp::Keepalive {
            idle: Duration::from_secs(60),
            interval: Duration::from_secs(5),
            probes: 3,
        }),
        ..hand_config(false)
    };
    let (mut conn, mut peer) = established(&config, T0);
    let seg = peer.seg(Control::None, b"");
    peer.send(&mut conn, T0, &seg);
    assert_eq!(conn.poll_timeout(), Some(T0 + Duration::from_secs(60)));
    let mut now = T0;
    let mut probes = 0;
    while let Some(t) = conn.poll_timeout() {
        now = t;
        conn.handle_timeout(now);
        for s in drain(&mut conn, now) {
            assert_eq!(s.seq, conn.snd_una() - 1);
            probes += 1;
        }
    }
    assert_eq!(probes, 3);
    assert_eq!(conn.error(), Some(TcpError::TimedOut));
    assert_eq!((now - T0).as_secs(), 60 + 3 * 5);
}

#[test]
fn keepalive_answer_keeps_connection() {
    let config = TcpConfig {
        keepalive: Some(engine::tcp::Keepalive {
            idle: Duration::from_secs(10),
            interval: Duration::from_secs(1),
            probes: 2,
        }),
        ..hand_config(false)
    };
    let (mut conn, mut peer) = established(&config, T0);
    let seg = peer.seg(Control::None, b"");
    peer.send(&mut conn, T0, &seg);
    let mut now = T0;
    for _ in 0..10 {
        now = conn.poll_timeout().unwrap();
        conn.handle_timeout(now);
        if !drain(&mut conn, now).is_empty() {
            // The peer answers the probe (an ACK of the old sequence number).
            let answer = peer.seg(Control::None, b"");
            peer.send(&mut conn, now, &answer);
        }
    }
    assert_eq!(conn.state(), State::Established);
    assert!(now - T0 > Duration::from_secs(50));
}

// ----- Retransmission (RFC 6298) --------------------------------------------------------

#[test]
fn rto_backs_off_and_retransmits_earliest_unacknowledged() {
    // RFC 6298 §5.4 (retransmit earliest), §5.5 (double), §5.7-style collapse on new sample.
    // Without SACK: with it, a tail loss probe (RFC 8985 §7) comes before the first
    // timeout (tcp_recovery.rs checks that path).
    let config = TcpConfig {
        sack: false,
        ..hand_config(false)
    };
    let (mut conn, mut peer) = established(&config, T0);
    conn.send(&[1; 3000]).unwrap();
    let first = drain(&mut conn, T0);
    assert_eq!(first.len(), 3);
    let rto = conn.rto();
    let mut now = T0;
    let mut gaps = vec![];
    for _ in 0..3 {
        let t = conn.poll_timeout().unwrap();
        gaps.push(t - now);
        now = t;
        conn.handle_timeout(now);
        let out = drain(&mut conn, now);
        assert_eq!(out.len(), 1, "cwnd is one segment after a timeout");
        assert_eq!(out[0].seq, first[0].seq);
    }
    assert_eq!(gaps, [rto, rto * 2, rto * 4]);
    assert_eq!(conn.cwnd(), u32::from(conn.smss()));
    peer.absorb(&first[..1]);
    let ack = peer.seg(Control::None, b"");
    peer.send(&mut conn, now, &ack);
    // Slow start resumes: the next two segments go out.
    let out = drain(&mut conn, now);
    assert_eq!(out.len(), 2);
    assert_eq!(conn.stats().timeouts, 3);
}

#[test]
fn time_wait_accepts_only_newer_syns() {
    // RFC 1122 §4.2.2.13 / RFC 6191: reopen from TIME-WAIT only for a newer SYN.
    for timestamps in [false, true] {
        let (mut conn, mut peer) = established(&hand_config(timestamps), T0);
        conn.close().unwrap();
        let out = drain(&mut conn, T0);
        peer.absorb(&out);
        let fin = peer.seg(Control::Fin, b"");
        peer.send(&mut conn, T0, &fin);
        assert_eq!(conn.state(), State::TimeWait);
        let syn = |seq: SeqNumber, ts: Option<(u32, u32)>| TcpRepr {
            timestamp: ts,
            ..peer.seg_at(Control::Syn, seq, None, b"")
        };
        let newer_ts = peer.tsval.map(|v| (v + 1000, 0));
        let older_ts = peer.tsval.map(|v| (v.wrapping_sub(1000), 0));
        assert!(conn.time_wait_accepts_syn(&syn(conn.rcv_nxt() + 100_000, newer_ts)));
        if timestamps {
            // With timestamps the timestamp decides, whatever the sequence number.
            assert!(!conn.time_wait_accepts_syn(&syn(conn.rcv_nxt() + 100_000, older_ts)));
            assert!(conn.time_wait_accepts_syn(&syn(conn.rcv_nxt() - 5, newer_ts)));
        } else {
            assert!(!conn.time_wait_accepts_syn(&syn(conn.rcv_nxt() - 5, None)));
        }
        // Not a SYN, or not in TIME-WAIT: no.
        assert!(!conn.time_wait_accepts_syn(&peer.seg(Control::None, b"")));
        let (est, _) = established(&hand_config(timestamps), T0);
        assert!(!est.time_wait_accepts_syn(&syn(est.rcv_nxt() + 100_000, newer_ts)));
    }
}

#[test]
fn idle_connection_holds_no_buffer_memory() {
    // Buffers are allocated only while they hold data.
    let (mut conn, mut peer) = established(&hand_config(false), T0);
    assert_eq!(conn.buffer_memory(), 0);
    conn.send(&[1; 5000]).unwrap();
    let data = peer.seg(Control::None, b"incoming");
    peer.send(&mut conn, T0, &data);
    assert!(conn.buffer_memory() > 0);
    let out = drain(&mut conn, T0);
    peer.absorb(&out);
    let ack = peer.seg(Control::None, b"");
    peer.send(&mut conn, T0, &ack);
    assert_eq!(conn.send_queue(), 0);
    let mut buf = [0u8; 64];
    assert_eq!(conn.recv(&mut buf), Ok(8));
    assert_eq!(conn.buffer_memory(), 0);
    println!(
        "size_of::<Connection>() = {}",
        core::mem::size_of::<Connection>()
    );
}

#[test]
fn rto_is_three_seconds_after_a_syn_timeout() {
    // RFC 6298 §5.7: SYN timed out, no RTT measured -> RTO re-initialised to 3 s.
    let (mut conn, syn) = syn_sent(&hand_config(false));
    let t = conn.poll_timeout().unwrap();
    conn.handle_timeout(t);
    assert_eq!(drain(&mut conn, t)[0].control, Control::Syn);
    let peer = peer_for(&syn);
    conn.handle_segment(t, &peer.seg(Control::Syn, b""));
    assert_eq!(conn.state(), State::Established);
    assert_eq!(
        conn.srtt(),
        None,
        "Karn: no sample from a retransmitted SYN"
    );
    assert_eq!(conn.rto(), Duration::from_secs(3));
}

#[test]
fn a_raised_congestion_window_sends_a_burst_in_one_round_trip() {
    // Before the handshake there is no window to raise (the SYN-ACK sets it afresh).
    let (mut conn, _) = syn_sent(&hand_config(false));
    assert!(!conn.raise_congestion_window(64 * 1024));
    let (mut conn, mut peer) = established(&hand_config(false), T0);
    let initial = conn.cwnd();
    assert!(conn.raise_congestion_window(64 * 1024));
    assert_eq!(conn.cwnd(), 64 * 1024);
    // It only raises.
    assert!(conn.raise_congestion_window(initial));
    assert_eq!(conn.cwnd(), 64 * 1024);
    peer.window = u16::MAX;
    let ack = peer.seg(Control::None, b"");
    peer.send(&mut conn, T0, &ack);
    conn.send(&[7u8; 60 * 1024]).unwrap();
    let sent: usize = drain(&mut conn, T0).iter().map(|s| s.payload.len()).sum();
    assert!(
        sent > initial as usize && sent >= 60 * 1024 - 1460,
        "{sent} bytes in the first flight (initial window {initial})"
    );
}
