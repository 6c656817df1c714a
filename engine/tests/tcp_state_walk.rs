//! Every state × event pair (RFC 9293 §3.3.2 states; segment, timer and application
//! events): no panic, every reply parses, and the next state is one RFC 9293 allows.
//! Then random segments and random operation sequences for robustness.
mod tcp_support;

use engine::tcp::{Connection, Events, Shutdown, State, TcpConfig};
use engine::time::{Duration, Instant};
use engine::wire::tcp::{Control, SeqNumber, TcpPacket, TcpRepr};
use engine::wire::ChecksumCaps;
use tcp_support::*;

const T0: Instant = Instant::from_millis(5_000);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Syn,
    SynAck,
    AckInWindow,
    AckOutOfWindow,
    DataInWindow,
    DataOutOfWindow,
    Fin,
    RstExact,
    RstInWindow,
    RstOutOfWindow,
    Timeout,
    Close,
    Abort,
    Send,
    Recv,
    ShutdownRead,
}

const EVENTS: [Event; 16] = [
    Event::Syn,
    Event::SynAck,
    Event::AckInWindow,
    Event::AckOutOfWindow,
    Event::DataInWindow,
    Event::DataOutOfWindow,
    Event::Fin,
    Event::RstExact,
    Event::RstInWindow,
    Event::RstOutOfWindow,
    Event::Timeout,
    Event::Close,
    Event::Abort,
    Event::Send,
    Event::Recv,
    Event::ShutdownRead,
];

/// States reachable from `from` by any single event (RFC 9293 §3.3.2 Figure 5, plus
/// CLOSED on reset, abort and timeout, and SYN-RECEIVED -> FIN-WAIT-1 for a CLOSE queued
/// before the handshake completed).
fn legal(from: State) -> &'static [State] {
    use State::*;
    match from {
        Closed => &[Closed],
        SynSent => &[SynSent, SynReceived, Established, Closed],
        SynReceived => &[SynReceived, Established, FinWait1, CloseWait, Closed],
        Established => &[Established, FinWait1, CloseWait, Closed],
        FinWait1 => &[FinWait1, FinWait2, Closing, TimeWait, Closed],
        FinWait2 => &[FinWait2, TimeWait, Closed],
        CloseWait => &[CloseWait, LastAck, Closed],
        Closing => &[Closing, TimeWait, Closed],
        LastAck => &[LastAck, Closed],
        TimeWait => &[TimeWait, Closed],
    }
}

fn config() -> TcpConfig {
    hand_config(false)
}

/// A connection in `state`, and the peer's view of it.
fn in_state(state: State) -> (Connection, Peer) {
    let c = config();
    match state {
        State::SynSent => {
            let mut conn = Connection::connect(T0, a_tuple(), seed(1_000), &c);
            let syn = drain(&mut conn, T0);
            let peer = Peer {
                seq: SeqNumber(PEER_ISS),
                ack: syn[0].seq + 1,
                window: 4096,
                tsval: None,
                tsecr: 0,
            };
            (conn, peer)
        }
        State::SynReceived => {
            let syn = TcpRepr {
                src_port: B_ADDR.port(),
                dst_port: A_ADDR.port(),
                control: Control::Syn,
                seq_number: SeqNumber(PEER_ISS),
                window_len: 4096,
                ..TcpRepr::default()
            };
            let mut conn = Connection::accept(T0, a_tuple(), seed(1_000), &syn, &c).unwrap();
            let out = drain(&mut conn, T0);
            let peer = Peer {
                seq: SeqNumber(PEER_ISS + 1),
                ack: out[0].seq + 1,
                window: 4096,
                tsval: None,
                tsecr: 0,
            };
            (conn, peer)
        }
        _ => {
            let (mut conn, mut peer) = established(&c, T0);
            conn.send(b"unacked data").unwrap();
            let out = drain(&mut conn, T0);
            let ack_all = |peer: &mut Peer, conn: &mut Connection, out: &[Seg]| {
                peer.absorb(out);
                let ack = peer.seg(Control::None, b"");
                peer.send(conn, T0, &ack);
            };
            match state {
                State::Established => {}
                State::Closed => {
                    conn.abort();
                    drain(&mut conn, T0);
                }
                State::FinWait1 => {
                    conn.close().unwrap();
                    drain(&mut conn, T0);
                }
                State::FinWait2 => {
                    conn.close().unwrap();
                    let mut all = out.clone();
                    all.extend(drain(&mut conn, T0));
                    ack_all(&mut peer, &mut conn, &all);
                }
                State::CloseWait => {
                    let fin = peer.seg(Control::Fin, b"");
                    peer.send(&mut conn, T0, &fin);
                    drain(&mut conn, T0);
                }
                State::Closing => {
                    conn.close().unwrap();
                    drain(&mut conn, T0);
                    let fin = peer.seg(Control::Fin, b"");
                    peer.send(&mut conn, T0, &fin);
                    drain(&mut conn, T0);
                }
                State::LastAck => {
                    let fin = peer.seg(Control::Fin, b"");
                    peer.send(&mut conn, T0, &fin);
                    drain(&mut conn, T0);
                    conn.close().unwrap();
                    drain(&mut conn, T0);
                }
                State::TimeWait => {
                    conn.close().unwrap();
                    let mut all = out.clone();
                    all.extend(drain(&mut conn, T0));
                    ack_all(&mut peer, &mut conn, &all);
                    let fin = peer.seg(Control::Fin, b"");
                    peer.send(&mut conn, T0, &fin);
                    drain(&mut conn, T0);
                }
                State::SynSent | State::SynReceived => unreachable!(),
            }
            (conn, peer)
        }
    }
}

fn apply(conn: &mut Connection, peer: &Peer, event: Event) -> Instant {
    let now = T0 + Duration::from_millis(1);
    let rcv_nxt = if conn.state().is_synchronized() || conn.state() == State::SynReceived {
        conn.rcv_nxt()
    } else {
        peer.seq
    };
    let snd_nxt = conn.snd_nxt();
    let seg = |control, seq, ack, payload: &'static [u8]| TcpRepr {
        window_len: peer.window,
        ..peer.seg_at(control, seq, ack, payload)
    };
    let input = match event {
        Event::Syn => Some(seg(Control::Syn, rcv_nxt, None, b"")),
        Event::SynAck => Some(seg(Control::Syn, rcv_nxt, Some(snd_nxt), b"")),
        Event::AckInWindow => Some(seg(Control::None, rcv_nxt, Some(snd_nxt), b"")),
        Event::AckOutOfWindow => Some(seg(Control::None, rcv_nxt, Some(snd_nxt + 100_000), b"")),
        Event::DataInWindow => Some(seg(Control::None, rcv_nxt, Some(snd_nxt), b"payload")),
        Event::DataOutOfWindow => Some(seg(
            Control::None,
            rcv_nxt + 10_000_000,
            Some(snd_nxt),
            b"payload",
        )),
        Event::Fin => Some(seg(Control::Fin, rcv_nxt, Some(snd_nxt), b"")),
        Event::RstExact => Some(seg(Control::Rst, rcv_nxt, None, b"")),
        Event::RstInWindow => Some(seg(Control::Rst, rcv_nxt + 100, None, b"")),
        Event::RstOutOfWindow => Some(seg(Control::Rst, rcv_nxt + 10_000_000, None, b"")),
        _ => None,
    };
    if let Some(input) = input {
        conn.handle_segment(now, &input);
        return now;
    }
    match event {
        Event::Timeout => {
            if let Some(t) = conn.poll_timeout() {
                conn.handle_timeout(t);
                return t;
            }
        }
        Event::Close => {
            let _ = conn.close();
        }
        Event::Abort => conn.abort(),
        Event::Send => {
            let _ = conn.send(b"more");
        }
        Event::Recv => {
            let mut buf = [0u8; 64];
            let _ = conn.recv(&mut buf);
        }
        Event::ShutdownRead => {
            let _ = conn.shutdown(Shutdown::Read, now);
        }
        _ => {}
    }
    now
}

#[test]
fn every_state_event_pair() {
    let mut pairs = 0;
    for from in State::ALL {
        let (base, peer) = in_state(from);
        assert_eq!(base.state(), from, "built the wrong state");
        for event in EVENTS {
            let mut conn = base.clone();
            conn.take_events();
            let now = apply(&mut conn, &peer, event);
            let out = drain(&mut conn, now);
            let to = conn.state();
            assert!(
                legal(from).contains(&to),
                "{from} --{event:?}--> {to} is not a legal transition"
            );
            pairs += 1;

            // Replies never carry a SYN once synchronized.
            if from.is_synchronized() {
                assert!(
                    out.iter().all(|s| s.control != Control::Syn),
                    "{from} {event:?}: SYN sent"
                );
            }
            // An out-of-window RST changes nothing and gets no reply (§3.10.7.4 first check).
            if event == Event::RstOutOfWindow && from != State::Closed {
                assert_eq!(to, from, "{from}: out-of-window RST changed the state");
                assert!(out.is_empty(), "{from}: reply to an out-of-window RST");
            }
            // RFC 5961 §4.2: a SYN in a synchronized state only draws a challenge ACK.
            if event == Event::Syn && from.is_synchronized() {
                assert_eq!(to, from, "{from}: SYN changed the state");
                assert!(
                    out.iter().all(|s| s.is_pure_ack()),
                    "{from}: SYN reply {out:?}"
                );
            }
            // RFC 5961 §5.2: an ACK of unsent data changes nothing.
            if event == Event::AckOutOfWindow && from.is_synchronized() {
                assert_eq!(to, from);
            }
            // A RST at RCV.NXT ends every connection that has one (§3.10.7.4 second check),
            // but TIME-WAIT, which ignores RSTs (RFC 1337 F1).
            if event == Event::RstExact && from != State::SynSent {
                let want = if from == State::TimeWait {
                    State::TimeWait
                } else {
                    State::Closed
                };
                assert_eq!(to, want, "{from}: exact RST");
                assert!(out.is_empty());
            }
            // Abort ends everything; it sends a RST only where the peer has state (§3.10.5).
            if event == Event::Abort {
                assert_eq!(to, State::Closed);
                let rst = out.iter().any(|s| s.control == Control::Rst);
                let expect = matches!(
                    from,
                    State::SynReceived
                        | State::Established
                        | State::FinWait1
                        | State::FinWait2
                        | State::CloseWait
                );
                assert_eq!(rst, expect, "{from}: abort RST");
            }
            // Reaching CLOSED is always reported.
            if to == State::Closed && from != State::Closed {
                assert!(
                    conn.take_events().contains(Events::CLOSED),
                    "{from} {event:?}: no CLOSED event"
                );
            }
        }
    }
    assert_eq!(pairs, State::ALL.len() * EVENTS.len());
}

#[test]
fn random_segments_never_panic() {
    // Garbage and near-miss segments into every state: parse rejects or the connection
    // copes; nothing panics.
    let mut rng = Rng(0x5eed);
    for from in State::ALL {
        let (base, peer) = in_state(from);
        let mut conn = base.clone();
        for i in 0..2_000u32 {
            let now = T0 + Duration::from_micros(u64::from(i) * 100);
            let len = (rng.next_u64() % 80) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            if bytes.len() >= 20 && rng.chance(0.7) {
                // Mostly plausible headers: our ports, a sane data offset, near sequence.
                bytes[0..2].copy_from_slice(&B_ADDR.port().to_be_bytes());
                bytes[2..4].copy_from_slice(&A_ADDR.port().to_be_bytes());
                let near = conn.rcv_nxt() + (rng.next_u64() % 3000) as u32 - 1500;
                bytes[4..8].copy_from_slice(&near.0.to_be_bytes());
                let ack = conn.snd_nxt() + (rng.next_u64() % 20) as u32 - 10;
                bytes[8..12].copy_from_slice(&ack.0.to_be_bytes());
                bytes[12] = 0x50 + ((rng.next_u64() % 2) as u8) * 0x10;
                let mut packet = TcpPacket::new_unchecked(&mut bytes[..]);
                let _ = packet.fill_checksum(*B_ADDR.ip(), *A_ADDR.ip(), true);
            }
            let Ok(packet) = TcpPacket::new_checked(&bytes[..]) else {
                continue;
            };
            let Ok(repr) = TcpRepr::parse(
                &packet,
                *B_ADDR.ip(),
                *A_ADDR.ip(),
                &ChecksumCaps::default(),
            ) else {
                continue;
            };
            conn.handle_segment(now, &repr);
            drain(&mut conn, now);
            if rng.chance(0.05) {
                conn.handle_timeout(now + Duration::from_secs(1));
            }
        }
        let _ = peer;
    }
}

#[test]
fn random_operation_sequences_keep_invariants() {
    // Two real connections, random application calls, random loss and timer jumps.
    for seed_value in 1..40u64 {
        let config = TcpConfig {
            send_buffer: 8192,
            recv_buffer: 8192,
            ..TcpConfig::default()
        };
        let mut pair = Pair::new(&config, &config, Duration::from_millis(1));
        let mut rng = Rng(seed_value * 7919);
        let mut drop_rng = Rng(seed_value);
        pair.drop_rule = Box::new(move |_, _, _| drop_rng.chance(0.1));
        let mut buf = [0u8; 4096];
        for _ in 0..400 {
            let which = rng.next_u64().is_multiple_of(2);
            let conn = if which { &mut pair.a } else { &mut pair.b };
            match rng.next_u64() % 12 {
                0..=4 => {
                    let _ = conn.send(&[0x55; 3000]);
                }
                5..=7 => {
                    let _ = conn.recv(&mut buf);
                }
                8 => {
                    let _ = conn.close();
                }
                9 if rng.chance(0.1) => conn.abort(),
                10 => {
                    let _ = conn.shutdown(Shutdown::Read, pair.now);
                }
                _ => {}
            }
            for _ in 0..(rng.next_u64() % 5) {
                if !pair.step() {
                    break;
                }
            }
            for c in [&pair.a, &pair.b] {
                assert!(c.snd_una().le(c.snd_nxt()), "SND.UNA beyond SND.NXT");
                assert!(c.send_queue() <= 8192);
                assert!(c.recv_queue() <= 8192);
                if c.state() == State::Closed {
                    assert_eq!(c.send_queue(), 0);
                }
            }
        }
        // Everything ends: both sides reach CLOSED or TIME-WAIT within bounded time once
        // closed (aborting what is left).
        pair.a.abort();
        pair.b.abort();
        pair.run_until(Duration::from_secs(600), |p| {
            p.a.is_closed() && p.b.is_closed()
        });
        assert!(pair.a.is_closed() && pair.b.is_closed());
    }
}
