//! Two connections talking through a byte-moving loop with a virtual clock: handshake,
//! bulk transfer both ways (byte-exact), loss with retransmission, fast retransmit and
//! SACK recovery, and the close handshake.
mod tcp_support;

use engine::tcp::{CongestionAlgorithm, Events, State, TcpConfig, TcpError};
use engine::time::Duration;
use tcp_support::*;

/// Moves `a_data` from A to B and `b_data` from B to A, reading everything, then closes
/// both ends. Returns what each side received.
fn transfer(pair: &mut Pair, a_data: &[u8], b_data: &[u8], limit: Duration) -> (Vec<u8>, Vec<u8>) {
    let mut a_sent = 0;
    let mut b_sent = 0;
    let mut at_a = Vec::new();
    let mut at_b = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut a_closed = false;
    let mut b_closed = false;
    let ok = pair.run_until(limit, |p| {
        if p.a.is_established() && a_sent < a_data.len() {
            a_sent += p.a.send(&a_data[a_sent..]).unwrap_or(0);
        }
        if p.b.is_established() && b_sent < b_data.len() {
            b_sent += p.b.send(&b_data[b_sent..]).unwrap_or(0);
        }
        if a_sent == a_data.len() && !a_closed && p.a.is_established() {
            p.a.close().expect("close a");
            a_closed = true;
        }
        if b_sent == b_data.len() && !b_closed && p.b.is_established() {
            p.b.close().expect("close b");
            b_closed = true;
        }
        while let Ok(n) = p.a.recv(&mut buf) {
            if n == 0 {
                break;
            }
            at_a.extend_from_slice(&buf[..n]);
        }
        while let Ok(n) = p.b.recv(&mut buf) {
            if n == 0 {
                break;
            }
            at_b.extend_from_slice(&buf[..n]);
        }
        at_a.len() == b_data.len()
            && at_b.len() == a_data.len()
            && matches!(p.a.state(), State::TimeWait | State::Closed)
            && matches!(p.b.state(), State::TimeWait | State::Closed)
    });
    assert!(
        ok,
        "transfer did not finish: a {:?} (sent {a_sent}, got {}), b {:?} (sent {b_sent}, got {}), t={}ms",
        p_state(&pair.a),
        at_a.len(),
        p_state(&pair.b),
        at_b.len(),
        pair.now.as_millis()
    );
    (at_a, at_b)
}

fn p_state(c: &engine::tcp::Connection) -> String {
    format!(
        "{} una={} nxt={} wnd={} cwnd={} sendq={} err={:?}",
        c.state(),
        c.snd_una(),
        c.snd_nxt(),
        c.snd_wnd(),
        c.cwnd(),
        c.send_queue(),
        c.error()
    )
}

#[test]
fn handshake_negotiates_options() {
    let config = TcpConfig::default();
    let mut pair = Pair::new(&config, &config, Duration::from_millis(5));
    assert!(
        pair.run_until(Duration::from_secs(1), |p| p.a.is_established()
            && p.b.is_established())
    );
    assert_eq!(pair.a.state(), State::Established);
    assert_eq!(pair.b.state(), State::Established);
    assert!(pair
        .a
        .take_events()
        .contains(Events::ESTABLISHED | Events::WRITABLE));
    assert!(pair.b.take_events().contains(Events::ESTABLISHED));
    assert!(pair.a.timestamps_enabled() && pair.b.timestamps_enabled());
    assert!(pair.a.sack_enabled() && pair.b.sack_enabled());
    assert_eq!(
        pair.a.window_scaling(),
        Some((config.window_scale(), config.window_scale()))
    );
    assert_eq!(pair.a.smss(), 1460 - 12);
    // Handshake RTT measured: the harness hands the SYN over at once, the SYN-ACK takes
    // the 5 ms one-way delay.
    assert_eq!(pair.a.srtt(), Some(Duration::from_millis(5)));
    assert_eq!(pair.a.buffer_memory(), 0);
}

#[test]
fn one_megabyte_each_way_clean() {
    let config = TcpConfig::default();
    let mut pair = Pair::new(&config, &config, Duration::from_millis(1));
    let a_data = pattern(1 << 20, 1);
    let b_data = pattern(1 << 20, 2);
    let (at_a, at_b) = transfer(&mut pair, &a_data, &b_data, Duration::from_secs(60));
    assert!(at_b == a_data, "A->B bytes differ");
    assert!(at_a == b_data, "B->A bytes differ");
    assert_eq!(pair.a.stats().retransmits, 0);
    assert_eq!(pair.b.stats().retransmits, 0);
    eprintln!(
        "clean 1 MB each way: {} ms virtual, {:?} segments",
        pair.now.as_millis(),
        pair.sent
    );
    // 2 ms RTT, 256 KiB windows: slow start then window-limited, well under 100 ms.
    assert!(
        pair.now.as_millis() < 100,
        "took {} ms",
        pair.now.as_millis()
    );
}

#[test]
fn reordering_and_duplication_with_loss_stay_byte_exact() {
    for seed in [1u64, 2, 3] {
        let config = TcpConfig::default();
        let mut pair = Pair::new(&config, &config, Duration::from_millis(2));
        let mut jitter = Rng(seed * 31);
        pair.jitter = Box::new(move || Duration::from_micros(jitter.next_u64() % 3_000));
        let mut dup = Rng(seed * 17);
        pair.duplicate = Box::new(move || dup.chance(0.02));
        let mut loss = Rng(seed);
        pair.drop_rule = Box::new(move |_, _, _| loss.chance(0.01));
        let a_data = pattern(512 * 1024, seed);
        let b_data = pattern(512 * 1024, seed + 9);
        let (at_a, at_b) = transfer(&mut pair, &a_data, &b_data, Duration::from_secs(600));
        assert!(at_b == a_data && at_a == b_data, "seed {seed}");
    }
}

fn lossy_config(algorithm: CongestionAlgorithm, sack: bool) -> TcpConfig {
    TcpConfig {
        congestion: algorithm,
        sack,
        ..TcpConfig::default()
    }
}

/// Random loss in both directions (data and ACKs), seeded.
fn run_lossy(algorithm: CongestionAlgorithm, sack: bool, loss: f64, seed: u64) -> Pair {
    let config = lossy_config(algorithm, sack);
    let mut pair = Pair::new(&config, &config, Duration::from_millis(2));
    let mut rng = Rng(seed);
    pair.drop_rule = Box::new(move |_, _, _| rng.chance(loss));
    let a_data = pattern(1 << 20, seed);
    let b_data = pattern(1 << 20, seed + 1);
    let (at_a, at_b) = transfer(&mut pair, &a_data, &b_data, Duration::from_secs(600));
    assert!(at_b == a_data, "A->B bytes differ");
    assert!(at_a == b_data, "B->A bytes differ");
    assert!(pair.dropped[0] > 0 && pair.dropped[1] > 0);
    pair
}

#[test]
fn lossy_sack_cubic_one_megabyte_each_way() {
    let pair = run_lossy(CongestionAlgorithm::Cubic, true, 0.02, 7);
    let (a, b) = (pair.a.stats(), pair.b.stats());
    eprintln!(
        "a {a:?}\nb {b:?}\nsent {:?} dropped {:?} t={}ms",
        pair.sent,
        pair.dropped,
        pair.now.as_millis()
    );
    assert!(a.fast_recoveries + b.fast_recoveries > 0);
    assert!(
        a.sack_retransmits + b.sack_retransmits > 0,
        "SACK recovery not exercised"
    );
}

#[test]
fn lossy_newreno_without_sack_one_megabyte_each_way() {
    let pair = run_lossy(CongestionAlgorithm::NewReno, false, 0.02, 11);
    let (a, b) = (pair.a.stats(), pair.b.stats());
    eprintln!(
        "a {a:?}\nb {b:?}\nsent {:?} dropped {:?} t={}ms",
        pair.sent,
        pair.dropped,
        pair.now.as_millis()
    );
    assert!(a.fast_recoveries + b.fast_recoveries > 0);
    assert_eq!(a.sack_retransmits + b.sack_retransmits, 0);
    assert!(!pair.a.sack_enabled());
}

#[test]
fn lossy_many_seeds_quarter_megabyte() {
    for seed in 100..108 {
        for (algorithm, sack) in [
            (CongestionAlgorithm::Cubic, true),
            (CongestionAlgorithm::NewReno, false),
        ] {
            let config = lossy_config(algorithm, sack);
            let mut pair = Pair::new(&config, &config, Duration::from_millis(1));
            let mut rng = Rng(seed);
            pair.drop_rule = Box::new(move |_, _, _| rng.chance(0.05));
            let a_data = pattern(256 * 1024, seed);
            let b_data = pattern(64 * 1024, seed + 1);
            let (at_a, at_b) = transfer(&mut pair, &a_data, &b_data, Duration::from_secs(1200));
            assert!(
                at_b == a_data && at_a == b_data,
                "seed {seed} {algorithm:?}"
            );
        }
    }
}

#[test]
fn single_drop_is_repaired_by_fast_retransmit_not_timeout() {
    for sack in [true, false] {
        let config = lossy_config(CongestionAlgorithm::Cubic, sack);
        let mut pair = Pair::new(&config, &config, Duration::from_millis(10));
        // Drop the 20th segment A sends (a data segment in the middle of the window).
        pair.drop_rule = Box::new(|to_b, n, _| to_b && n == 20);
        let a_data = pattern(300 * 1024, 3);
        let (_, at_b) = transfer(&mut pair, &a_data, &[], Duration::from_secs(60));
        assert!(at_b == a_data);
        let s = pair.a.stats();
        assert_eq!(s.timeouts, 0, "sack={sack}: {s:?}");
        assert_eq!(s.fast_recoveries, 1, "sack={sack}: {s:?}");
        assert!(s.retransmits >= 1, "sack={sack}: {s:?}");
    }
}

#[test]
fn lost_syn_and_tail_are_repaired_by_timeout() {
    let config = TcpConfig::default();
    let mut pair = Pair::new(&config, &config, Duration::from_millis(10));
    // Drop B's first SYN-ACK and A's last data segment (the tail: no dupacks follow).
    let mut tail_dropped = false;
    pair.drop_rule = Box::new(move |to_b, n, repr| {
        if to_b && repr.payload.len() == 100 && !tail_dropped {
            tail_dropped = true;
            return true;
        }
        !to_b && n == 0
    });
    let mut data = pattern(10 * 1448, 9);
    data.extend_from_slice(&pattern(100, 10));
    let (_, at_b) = transfer(&mut pair, &data, &[], Duration::from_secs(60));
    assert!(at_b == data);
    assert!(pair.a.stats().timeouts >= 1);
    assert!(
        pair.b.stats().timeouts >= 1,
        "SYN-ACK retransmitted by B's timer"
    );
}

#[test]
fn connection_times_out_when_peer_vanishes() {
    let config = TcpConfig {
        max_retries: 3,
        ..TcpConfig::default()
    };
    let mut pair = Pair::new(&config, &config, Duration::from_millis(1));
    assert!(
        pair.run_until(Duration::from_secs(1), |p| p.a.is_established()
            && p.b.is_established())
    );
    pair.drop_rule = Box::new(|_, _, _| true);
    pair.a.send(b"hello").unwrap();
    assert!(pair.run_until(Duration::from_secs(120), |p| p.a.state() == State::Closed));
    assert_eq!(pair.a.error(), Some(TcpError::TimedOut));
    assert_eq!(pair.a.stats().timeouts, 4);
    assert!(pair
        .a
        .take_events()
        .contains(Events::ERROR | Events::CLOSED));
}

#[test]
fn slow_reader_closes_and_reopens_the_window() {
    // The receiver reads in small bites at long intervals: the sender hits a zero window,
    // probes it (RFC 9293 §3.8.6.1), and resumes when window updates arrive.
    let config = TcpConfig {
        recv_buffer: 16 * 1024,
        send_buffer: 64 * 1024,
        ..TcpConfig::default()
    };
    let mut pair = Pair::new(&config, &config, Duration::from_millis(1));
    let data = pattern(200 * 1024, 77);
    let mut sent = 0;
    let mut got = Vec::new();
    let mut buf = [0u8; 3000];
    let mut zero_window_seen = false;
    // The reader sleeps for the first 2 s: the 16 KiB window fills and closes.
    let mut next_read = pair.now + Duration::from_secs(2);
    let end = pair.now + Duration::from_secs(600);
    while got.len() < data.len() && pair.now < end {
        let p = &mut pair;
        if p.a.is_established() && sent < data.len() {
            sent += p.a.send(&data[sent..]).unwrap_or(0);
        }
        zero_window_seen |= p.a.is_established() && p.a.snd_wnd() == 0;
        if p.now >= next_read {
            if let Ok(n) = p.b.recv(&mut buf) {
                got.extend_from_slice(&buf[..n]);
            }
            next_read = p.now + Duration::from_millis(50);
        }
        // The reader's schedule is not a connection timer: jump to it when idle.
        let next_event = [
            p.a.poll_timeout(),
            p.b.poll_timeout(),
            p.wire.iter().map(|f| f.at).min(),
        ]
        .into_iter()
        .flatten()
        .min();
        if next_event.is_none_or(|t| t > next_read) {
            p.now = next_read;
        }
        p.step();
    }
    assert_eq!(got.len(), data.len());
    assert!(got == data);
    assert!(zero_window_seen, "the window never closed");
    assert_eq!(pair.a.error(), None);
}
