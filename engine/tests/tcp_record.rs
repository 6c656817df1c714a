//! Capture and restore (migration's seam): a connection turned into a record and back at
//! any moment behaves exactly as if it had never moved (the same segments on the wire, to
//! the byte), in every state, under loss and reordering; restored onto another clock it
//! keeps its timers and timestamps; every inconsistent record is refused.
mod tcp_support;

use engine::tcp::record::{is_movable_state, MAX_TIME_OFFSET_NS};
use engine::tcp::{
    CongestionAlgorithm, Connection, ConnectionRecord, RestoreError, State, TcpConfig,
};
use engine::time::{Duration, Instant};
use engine::wire::tcp::{Control, SeqNumber};
use tcp_support::*;

/// What one run did: every segment on the wire (direction and bytes), and what each side
/// read.
#[derive(Debug, PartialEq, Eq)]
struct Trace {
    wire: Vec<(bool, Vec<u8>)>,
    at_a: Vec<u8>,
    at_b: Vec<u8>,
    states: Vec<(State, State)>,
}

/// A transfer both ways under `loss` with jitter, both ends closing when done. Before
/// each step, `mv(step)` says which ends to move through a record (A, B).
fn run(config: &TcpConfig, loss: f64, seed: u64, mut mv: impl FnMut(u64) -> (bool, bool)) -> Trace {
    let a_data = pattern(300_000, seed);
    let b_data = pattern(200_000, seed + 1);
    let mut pair = Pair::new(config, config, Duration::from_millis(3));
    let mut rng = Rng(seed | 1);
    pair.drop_rule = Box::new(move |_, _, _| rng.chance(loss));
    let mut jitter = Rng(seed.wrapping_mul(31) | 1);
    pair.jitter = Box::new(move || Duration::from_micros(jitter.next_u64() % 2_000));
    let mut trace = Trace {
        wire: vec![],
        at_a: vec![],
        at_b: vec![],
        states: vec![],
    };
    let (mut a_sent, mut b_sent, mut a_closed, mut b_closed) = (0, 0, false, false);
    let mut buf = vec![0u8; 8 * 1024];
    let mut steps = 0u64;
    let end = pair.now + Duration::from_secs(600);
    while pair.now < end {
        let (move_a, move_b) = mv(steps);
        steps += 1;
        if move_a && is_movable_state(pair.a.state()) {
            let record = pair.a.capture(pair.now);
            pair.a = Connection::restore(&record, pair.now).expect("restore A");
        }
        if move_b && is_movable_state(pair.b.state()) {
            let record = pair.b.capture(pair.now);
            pair.b = Connection::restore(&record, pair.now).expect("restore B");
        }
        if pair.a.is_established() && a_sent < a_data.len() {
            a_sent += pair.a.send(&a_data[a_sent..]).unwrap_or(0);
        }
        if pair.b.is_established() && b_sent < b_data.len() {
            b_sent += pair.b.send(&b_data[b_sent..]).unwrap_or(0);
        }
        if a_sent == a_data.len() && !a_closed && pair.a.is_established() {
            pair.a.close().unwrap();
            a_closed = true;
        }
        if b_sent == b_data.len() && !b_closed && pair.b.is_established() {
            pair.b.close().unwrap();
            b_closed = true;
        }
        // Read everything on some steps and a little on others, so that unread data is
        // often held at a move.
        let reads = if steps.is_multiple_of(4) { 64 } else { 1 };
        for (conn, out) in [
            (&mut pair.a, &mut trace.at_a),
            (&mut pair.b, &mut trace.at_b),
        ] {
            for _ in 0..reads {
                match conn.recv(&mut buf[..(steps as usize % 7 + 1) * 1000]) {
                    Ok(n) if n > 0 => out.extend_from_slice(&buf[..n]),
                    _ => break,
                }
            }
        }
        trace.states.push((pair.a.state(), pair.b.state()));
        if !pair.step() {
            break;
        }
        if matches!(pair.a.state(), State::TimeWait | State::Closed)
            && matches!(pair.b.state(), State::TimeWait | State::Closed)
            && trace.at_a.len() == b_data.len()
            && trace.at_b.len() == a_data.len()
        {
            break;
        }
    }
    assert!(
        trace.at_b == a_data && trace.at_a == b_data,
        "not byte-exact: A got {} of {}, B got {} of {}, states {:?} {:?} at {} ms",
        trace.at_a.len(),
        b_data.len(),
        trace.at_b.len(),
        a_data.len(),
        pair.a.state(),
        pair.b.state(),
        pair.now.as_millis()
    );
    trace.wire = pair.history;
    trace
}

fn configs() -> Vec<(&'static str, TcpConfig)> {
    vec![
        ("default", TcpConfig::default()),
        (
            "newreno, no timestamps, no sack",
            TcpConfig {
                congestion: CongestionAlgorithm::NewReno,
                timestamps: false,
                sack: false,
                window_scaling: false,
                recv_buffer: 60_000,
                ..TcpConfig::default()
            },
        ),
        (
            "small buffers",
            TcpConfig {
                send_buffer: 8 * 1024,
                recv_buffer: 8 * 1024,
                ..TcpConfig::default()
            },
        ),
    ]
}

#[test]
fn moved_connections_send_exactly_what_unmoved_ones_send() {
    let mut seen = std::collections::HashSet::new();
    for (name, config) in configs() {
        for (loss, seed) in [(0.0, 1), (0.05, 2), (0.2, 3)] {
            let still = run(&config, loss, seed, |_| (false, false));
            // Every step, then at random steps, one end or both.
            let every = run(&config, loss, seed, |_| (true, true));
            assert!(
                still == every,
                "{name}, loss {loss}: moving at every step changed the run"
            );
            let mut r = Rng(seed * 77 + 5);
            let some = run(&config, loss, seed, |_| (r.chance(0.1), r.chance(0.1)));
            assert!(
                still == some,
                "{name}, loss {loss}: random moves changed the run"
            );
            seen.extend(still.states.iter().flat_map(|&(a, b)| [a, b]));
        }
    }
    // Every synchronized state was held at a move by one run or another (the ends close
    // one after the other, or at once: CLOSING).
    for st in [
        State::Established,
        State::FinWait1,
        State::FinWait2,
        State::CloseWait,
        State::Closing,
        State::LastAck,
        State::TimeWait,
    ] {
        assert!(seen.contains(&st), "never in {st}: {seen:?}");
    }
}

/// A connection with data in every buffer: unacknowledged and unsent data, unread data,
/// and out-of-order data behind a hole, with SACK and timestamps in use.
fn busy() -> (Connection, Peer, Instant) {
    let config = TcpConfig {
        nagle: false,
        ..hand_config(true)
    };
    let now = Instant::from_millis(5_000);
    let (mut conn, mut peer) = established(&config, now);
    conn.send(&pattern(5_000, 9)).unwrap();
    let out = drain(&mut conn, now);
    assert!(!out.is_empty());
    let in_order = peer.seg(Control::None, b"in order, unread");
    peer.send(&mut conn, now, &in_order);
    let ooo = peer.seg_at(
        Control::None,
        peer.seq + 100,
        Some(peer.ack),
        b"beyond a hole",
    );
    conn.handle_segment(now, &ooo);
    drain(&mut conn, now);
    (conn, peer, now)
}

#[test]
fn a_record_restored_on_another_clock_keeps_times_and_timestamps() {
    let (conn, _, t1) = busy();
    let record = conn.capture(t1);
    assert_eq!(record.recv_unread as usize, b"in order, unread".len());
    assert!(!record.assembler.ranges.is_empty());
    assert!(record.scoreboard.is_some());
    let deadline = conn.poll_timeout().expect("a timer runs");
    // Another clock, far from the first.
    let t2 = Instant::from_millis(900_000);
    let moved = Connection::restore(&record, t2).expect("restore");
    assert_eq!(
        moved.capture(t2),
        record,
        "nothing lost or changed by the move"
    );
    // The next deadline is as far ahead as it was.
    assert_eq!(moved.poll_timeout().expect("timer") - t2, deadline - t1);
    // The peer sees the timestamp clock continue, not jump back.
    let mut moved = moved;
    moved.send(b"more").unwrap();
    let before = {
        let mut c = conn.clone();
        c.send(b"more").unwrap();
        drain(&mut c, t1)
    };
    let after = drain(&mut moved, t2);
    let ts = |segs: &[Seg]| segs.iter().filter_map(|s| s.timestamp).map(|t| t.0).max();
    assert_eq!(ts(&after), ts(&before), "TSval continues from the capture");
    assert_eq!(after.len(), before.len());
    for (a, b) in after.iter().zip(&before) {
        assert_eq!(
            (a.seq, a.ack, &a.payload, a.window),
            (b.seq, b.ack, &b.payload, b.window)
        );
    }
}

/// A mutation of a valid record and the error restore must give.
fn refused(name: &str, expect: RestoreError, f: impl FnOnce(&mut ConnectionRecord)) {
    let (conn, _, now) = busy();
    let mut record = conn.capture(now);
    f(&mut record);
    assert_eq!(
        Connection::restore(&record, now).err(),
        Some(expect),
        "{name}"
    );
}

#[test]
fn inconsistent_records_are_refused() {
    refused("closed", RestoreError::NotMovable(State::Closed), |r| {
        r.state = State::Closed
    });
    refused("syn-sent", RestoreError::NotMovable(State::SynSent), |r| {
        r.state = State::SynSent
    });
    refused("flags", RestoreError::Flags, |r| r.flags |= 1 << 31);
    refused("events", RestoreError::Events, |r| r.events = 0xff);
    refused("wscale", RestoreError::Options, |r| r.snd_wscale = 15);
    refused("mss", RestoreError::Options, |r| r.snd_mss = 10);
    refused("buffer", RestoreError::Options, |r| {
        r.params.recv_buffer = 0
    });
    refused("una beyond nxt", RestoreError::SendSequence, |r| {
        r.snd_una = r.snd_nxt + 1
    });
    refused("unacked beyond the data", RestoreError::SendBuffer, |r| {
        r.send.truncate(10)
    });
    refused("send over capacity", RestoreError::SendBuffer, |r| {
        r.params.send_buffer = 100
    });
    refused("rcv_adv behind", RestoreError::ReceiveSequence, |r| {
        r.rcv_adv = r.rcv_nxt - 1
    });
    refused("range at rcv_nxt", RestoreError::Ranges, |r| {
        r.assembler.ranges[0].0 = r.rcv_nxt
    });
    refused("recv length", RestoreError::ReceiveBuffer, |r| {
        r.recv.push(0)
    });
    refused("unread over", RestoreError::ReceiveBuffer, |r| {
        r.recv_unread += 5
    });
    refused("fin state", RestoreError::Fin, |r| {
        r.state = State::CloseWait
    });
    refused(
        "scoreboard gap",
        RestoreError::Scoreboard(engine::tcp::sack::ScoreboardRecordError::Segments),
        |r| {
            let sb = r.scoreboard.as_mut().unwrap();
            let last = *sb.segs.last().unwrap();
            sb.segs.push(engine::tcp::sack::SentRecord {
                start: last.end + 1,
                end: last.end + 10,
                ..last
            });
        },
    );
    refused(
        "scoreboard beyond snd_max",
        RestoreError::ScoreboardSpan,
        |r| {
            let end = r.snd_max;
            let sb = r.scoreboard.as_mut().unwrap();
            sb.segs.last_mut().unwrap().end = end + 100;
        },
    );
    refused("rtt", RestoreError::Rtt, |r| {
        r.rtt.rto_us = r.rtt.max_rto_us + 1
    });
    refused("congestion", RestoreError::Congestion, |r| {
        r.congestion = engine::tcp::congestion::CongestionRecord::NewReno {
            cwnd: 0,
            ssthresh: 1,
            bytes_acked: 0,
        }
    });
    refused("time", RestoreError::Time, |r| {
        r.timers[0] = Some(MAX_TIME_OFFSET_NS + 1)
    });
}

#[test]
fn random_mutations_never_panic() {
    let (conn, _, now) = busy();
    let record = conn.capture(now);
    let mut rng = Rng(99);
    let mut ok = 0;
    for _ in 0..20_000 {
        let mut r = record.clone();
        for _ in 0..=(rng.next_u64() % 3) {
            let v = rng.next_u64();
            match v % 12 {
                0 => r.snd_una = SeqNumber(v as u32 >> 8),
                1 => r.snd_nxt += v as u32 % 70_000,
                2 => r.rcv_adv = SeqNumber((v >> 16) as u32),
                3 => r.recv_unread = (v >> 20) as u32 % 10_000,
                4 => r.send.truncate((v >> 8) as usize % 6_000),
                5 => r.flags = (v >> 3) as u32,
                6 => r.state = State::ALL[(v >> 4) as usize % 10],
                7 => r
                    .assembler
                    .ranges
                    .push((SeqNumber(v as u32), SeqNumber((v >> 32) as u32), 0)),
                8 => r.rcv_wscale = (v >> 9) as u8,
                9 => r.timers[(v >> 5) as usize % 6] = Some((v >> 1) as i64),
                10 => {
                    if let Some(sb) = r.scoreboard.as_mut() {
                        if let Some(s) = sb.segs.first_mut() {
                            s.flags = (v >> 7) as u8;
                            s.end = SeqNumber((v >> 30) as u32);
                        }
                    }
                }
                _ => r.recv.truncate((v >> 11) as usize % 40),
            }
        }
        if let Ok(mut c) = Connection::restore(&r, now) {
            ok += 1;
            // Whatever was accepted runs.
            c.handle_timeout(now + Duration::from_secs(5));
            drain(&mut c, now + Duration::from_secs(5));
        }
    }
    assert!(ok > 0, "some mutations keep the record valid");
}
