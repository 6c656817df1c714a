//! The zero-window corner of RFC 9293 §3.8.6.1 and §3.10.7.4, as found against a Linux
//! client that stopped reading and then died: which segments update the send window, the
//! acceptability of a zero-length segment at the right edge of the receive window, the
//! persist timer probing whenever nothing can be sent, and the bounds that free a
//! connection whose peer never answers.
mod tcp_support;

use engine::tcp::{Connection, Disposition, State, TcpConfig, TcpError};
use engine::time::{Duration, Instant};
use engine::wire::tcp::{Control, SeqNumber, TcpRepr};
use tcp_support::*;

const T0: Instant = Instant::from_millis(1_000);

/// The engine's receive buffer in these tests: small, so that the client fills it.
const RECV_BUFFER: u32 = 4096;

fn config() -> TcpConfig {
    TcpConfig {
        recv_buffer: RECV_BUFFER,
        ..hand_config(false)
    }
}

/// Runs the connection's timers until `limit`, collecting what it sends and handing each
/// segment to `answer` (which may feed replies back). Stops when the connection closes.
fn run_timers(
    conn: &mut Connection,
    mut now: Instant,
    limit: Instant,
    mut answer: impl FnMut(&mut Connection, Instant, &Seg),
) -> (Instant, Vec<Seg>) {
    let mut sent = vec![];
    while let Some(at) = conn.poll_timeout() {
        if at > limit || conn.state() == State::Closed {
            break;
        }
        now = at.max(now);
        conn.handle_timeout(now);
        for s in drain(conn, now) {
            answer(conn, now, &s);
            sent.push(s);
        }
    }
    (now, sent)
}

#[test]
fn zero_length_segment_at_the_right_window_edge_is_acceptable() {
    // §3.10.7.4 reads "RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND" for a zero-length segment,
    // but a sender that filled the window sends its ACKs from exactly RCV.NXT+RCV.WND;
    // Linux (tcp_sequence) and the BSDs accept SEG.SEQ =< RCV.NXT+RCV.WND, and so must we,
    // or a window update from such a peer is lost.
    let (mut conn, mut peer) = established(&config(), T0);
    conn.send(&[7u8; 100]).unwrap();
    let out = drain(&mut conn, T0);
    assert_eq!(out.len(), 1);
    let wnd = conn.rcv_wnd();
    assert!(wnd > 0);
    peer.absorb(&out);
    peer.window = 0;
    let edge = conn.rcv_nxt() + wnd;
    let ack = peer.seg_at(Control::None, edge, Some(peer.ack), b"");
    assert_eq!(conn.handle_segment(T0, &ack), Disposition::Accepted);
    assert_eq!(conn.snd_una(), peer.ack, "the ACK was processed");
    assert_eq!(conn.snd_wnd(), 0, "the window update was taken");
    // One past the edge is still out of the window.
    let beyond = peer.seg_at(Control::None, edge + 1, Some(peer.ack), b"");
    assert_eq!(conn.handle_segment(T0, &beyond), Disposition::OutOfWindow);
}

#[test]
fn an_ack_of_new_data_updates_the_window_even_from_an_older_segment() {
    // RFC 9293 §3.10.7.4 updates the window only from segments newer than SND.WL1, which
    // an out-of-order segment can move ahead of every in-order one that follows. Linux
    // (tcp_may_update_window) also takes the window from any ACK that moves SND.UNA.
    let (mut conn, mut peer) = established(&config(), T0);
    conn.send(&[1u8; 200]).unwrap();
    let out = drain(&mut conn, T0);
    assert_eq!(out.len(), 1);
    // An out-of-order segment (the one before it is lost) with window 1000 and no ACK of
    // the data: SND.WL1 moves to its sequence number.
    peer.window = 1000;
    let gap = 100;
    let ooo = peer.seg_at(Control::None, peer.seq + gap, Some(peer.ack), &[9u8; 50]);
    assert_eq!(conn.handle_segment(T0, &ooo), Disposition::Accepted);
    assert_eq!(conn.snd_wnd(), 1000);
    // The lost segment comes again, in order, acknowledging the data and closing the
    // window: its SEG.SEQ is older than SND.WL1, but it acknowledges new data.
    peer.absorb(&out);
    peer.window = 0;
    let in_order = peer.seg(Control::None, &[8u8; 100]);
    assert_eq!(peer.send(&mut conn, T0, &in_order), Disposition::Accepted);
    assert_eq!(conn.snd_una(), peer.ack);
    assert_eq!(conn.snd_wnd(), 0, "window taken from the ACK of new data");
}

/// The sequence captured against a Linux client (issue 8): the client advertises a
/// 36-byte window, an out-of-order segment of its moves SND.WL1 ahead, the engine fills
/// the 36 bytes, the client's zero-window ACK comes from SEG.SEQ = RCV.NXT + RCV.WND, the
/// client's retransmissions of the missing data (older than SND.WL1) acknowledge the 36
/// bytes; then the client dies and its RSTs are lost. Returns the connection and the
/// client's view, the client's receive window closed and everything acknowledged.
fn stalled_by_a_dead_client() -> (Connection, Peer, Instant) {
    let (mut conn, mut peer) = established(&config(), T0);
    let mut now = T0;
    // The client advertises 36 bytes.
    peer.window = 36;
    let w = peer.seg(Control::None, b"");
    peer.send(&mut conn, now, &w);
    // The client fills the engine's receive window: the first part is lost, the second
    // part arrives out of order and moves SND.WL1 ahead.
    let wnd = conn.rcv_wnd();
    let first = 1000u32;
    let second = wnd - first;
    let ooo = peer.seg_at(
        Control::None,
        peer.seq + first,
        Some(peer.ack),
        Box::leak(vec![2u8; second as usize].into_boxed_slice()),
    );
    assert_eq!(conn.handle_segment(now, &ooo), Disposition::Accepted);
    drain(&mut conn, now); // the duplicate ACK with SACK
                           // The engine fills the 36 bytes: sender SWS avoidance (RFC 9293 §3.8.6.2.1) holds
                           // the short segment until the override timeout.
    conn.send(&[3u8; 10_000]).unwrap();
    assert!(drain(&mut conn, now).is_empty());
    now = conn.poll_timeout().expect("override timeout");
    conn.handle_timeout(now);
    let out = drain(&mut conn, now);
    assert_eq!(out.iter().map(|s| s.payload.len()).sum::<usize>(), 36);
    peer.absorb(&out);
    // The client's pure ACK closing its window, from the right edge of ours.
    peer.window = 0;
    let edge = peer.seq + wnd;
    now += Duration::from_millis(1);
    let zero = peer.seg_at(Control::None, edge, Some(peer.ack), b"");
    conn.handle_segment(now, &zero);
    drain(&mut conn, now);
    // The client retransmits the missing part, in order, older than SND.WL1.
    let retx = peer.seg(
        Control::None,
        Box::leak(vec![1u8; first as usize].into_boxed_slice()),
    );
    now += Duration::from_millis(200);
    assert_eq!(peer.send(&mut conn, now, &retx), Disposition::Accepted);
    drain(&mut conn, now);
    assert_eq!(conn.snd_una(), peer.ack, "the 36 bytes are acknowledged");
    (conn, peer, now)
}

#[test]
fn a_dead_client_at_zero_window_draws_a_reset() {
    // The client's host is alive but its socket is gone: its kernel answers anything
    // with <SEQ=SEG.ACK><CTL=RST> (RFC 9293 §3.10.7.1). The engine must send something
    // for that to happen.
    let (mut conn, _peer, now) = stalled_by_a_dead_client();
    let (_, sent) = run_timers(
        &mut conn,
        now,
        now + Duration::from_secs(300),
        |conn, now, s| {
            let rst = TcpRepr {
                src_port: B_ADDR.port(),
                dst_port: A_ADDR.port(),
                control: Control::Rst,
                seq_number: s.ack.unwrap_or(SeqNumber(0)),
                ack_number: None,
                ..TcpRepr::default()
            };
            conn.handle_segment(now, &rst);
        },
    );
    assert!(!sent.is_empty(), "no probe in 300 s");
    assert_eq!(conn.state(), State::Closed);
    assert_eq!(conn.error(), Some(TcpError::Reset));
}

#[test]
fn unanswered_zero_window_probes_time_the_connection_out() {
    // The client's host is gone altogether: nothing answers. RFC 1122 §4.2.2.17 lets the
    // connection live while the receiver answers probes; unanswered ones are bounded
    // like retransmissions (Linux: tcp_retries2 probes).
    let (mut conn, _peer, now) = stalled_by_a_dead_client();
    let (end, sent) = run_timers(
        &mut conn,
        now,
        now + Duration::from_secs(3600),
        |_, _, _| {},
    );
    assert_eq!(conn.state(), State::Closed, "still open after an hour");
    assert_eq!(conn.error(), Some(TcpError::TimedOut));
    assert_eq!(conn.buffer_memory(), 0, "buffers released");
    let probes = sent.iter().filter(|s| s.seq == conn.snd_una() - 1).count();
    assert!(
        probes >= usize::from(TcpConfig::default().max_persist_probes),
        "{probes} probes before giving up"
    );
    assert!(end - now < Duration::from_secs(3600));
}

#[test]
fn answered_zero_window_probes_keep_a_live_connection() {
    // RFC 1122 §4.2.2.17: "MUST NOT close the connection as long as the receiving TCP
    // continues to send acknowledgments in response to the probe segments."
    let (mut conn, peer, now) = stalled_by_a_dead_client();
    let (_, sent) = run_timers(
        &mut conn,
        now,
        now + Duration::from_secs(3600),
        |conn, now, s| {
            // The live client answers each probe with its (still zero) window.
            let ack = peer.seg_at(Control::None, s.ack.unwrap(), Some(peer.ack), b"");
            conn.handle_segment(now, &ack);
        },
    );
    assert!(sent.len() > usize::from(TcpConfig::default().max_persist_probes));
    assert!(conn.is_established(), "{:?}", conn.state());
}

#[test]
fn a_closed_application_bounds_answered_probes_too() {
    // Once the application closed the connection (its data and FIN wait for the window),
    // nobody will read or write it again: like Linux's tcp_orphan_retries, the persist
    // back-off is bounded even while the peer answers.
    let (mut conn, peer, now) = stalled_by_a_dead_client();
    conn.close().unwrap();
    let (_, _) = run_timers(
        &mut conn,
        now,
        now + Duration::from_secs(24 * 3600),
        |conn, now, s| {
            let ack = peer.seg_at(Control::None, s.ack.unwrap(), Some(peer.ack), b"");
            conn.handle_segment(now, &ack);
        },
    );
    assert_eq!(conn.state(), State::Closed);
    assert_eq!(conn.error(), Some(TcpError::TimedOut));
}
