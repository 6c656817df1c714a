//! The body of the `record_decode` fuzz target, shared (by path) with the engine's replay
//! test (`engine/tests/fuzz_replay_record.rs`) so that it also runs under plain
//! `cargo test`.
//!
//! One input is one migration record for `engine::migrate::decode`. The first byte says how
//! the rest is used, so that random bytes get past the checksum often enough:
//! - bit 0: the header's body length and checksum are recomputed over the rest (when it is
//!   at least a header long), so that mutations reach the body's own checks.
//!
//! Decoding must never panic. What decodes must encode back to the same bytes (one encoding
//! per record), restore (decode validated it), and run: timers and output until it has
//! nothing more to send, at the instant of the move and later, every segment well-formed.
//! Its record, captured again at the instant of the move, must decode to itself; captured
//! later, it must round-trip if it decodes at all. Any panic is a bug.
use engine::migrate::codec::HEADER_LEN;
use engine::migrate::{decode, encode, FlowId, Migration};
use engine::tcp::record::{is_movable_state, MAX_TIME_OFFSET_NS};
use engine::tcp::{CongestionAlgorithm, Connection, TcpConfig};
use engine::time::{Duration, Instant};
use engine::wire::tcp::{TcpPacket, TcpRepr};
use engine::wire::{ChecksumCaps, EthernetAddress};

use crate::tcp_support::{pattern, Pair, Rng};

pub const FIX_UP: u8 = 1 << 0;

/// Where restored connections live: far enough from the clock's origin that no offset a
/// record may hold saturates.
pub fn now() -> Instant {
    Instant::from_nanos(MAX_TIME_OFFSET_NS.unsigned_abs() + 86_400_000_000_000)
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let Some((&mode, record)) = data.split_first() else {
        return;
    };
    let mut record = record.to_vec();
    if mode & FIX_UP != 0 {
        fix_up(&mut record);
    }
    let Ok(m) = decode(&record) else {
        return;
    };
    let mut again = Vec::new();
    encode(&m, &mut again);
    assert!(again == record, "a decoded record encodes to other bytes");
    let now = now();
    let mut conn = Connection::restore(&m.conn, now).expect("a decoded record restores");
    for at in [
        now,
        now + Duration::from_millis(250),
        now + Duration::from_secs(70),
    ] {
        conn.handle_timeout(at);
        drain(&mut conn, at);
        if !is_movable_state(conn.state()) {
            continue;
        }
        let moved = Migration {
            conn: conn.capture(at),
            ..m.clone()
        };
        let mut bytes = Vec::new();
        encode(&moved, &mut bytes);
        match decode(&bytes) {
            Ok(back) => assert!(back == moved, "a record does not round-trip"),
            Err(e) => assert!(
                at != now,
                "the record of a restored connection, captured at once, is refused: {e}"
            ),
        }
    }
}

/// Sends everything the connection has to send at `at`; every segment must be one our
/// parser accepts, and the connection must run out of things to send.
fn drain(conn: &mut Connection, at: Instant) {
    let caps = ChecksumCaps::default();
    for _ in 0..100_000 {
        let Some(t) = conn.poll_transmit(at) else {
            return;
        };
        let (src, dst) = (t.src_ip(), t.dst_ip());
        let mut buf = vec![0u8; t.buffer_len()];
        let n = t.emit(&mut buf, &caps).expect("a segment emits");
        assert_eq!(n, buf.len());
        let packet = TcpPacket::new_checked(&buf[..]).expect("a well-formed segment");
        assert!(
            TcpRepr::parse(&packet, src, dst, &caps).is_ok(),
            "a restored connection sent a malformed segment"
        );
    }
    panic!("a restored connection never stops sending");
}

/// Makes the header's body length and checksum those of the bytes after it.
fn fix_up(record: &mut [u8]) {
    if record.len() < HEADER_LEN {
        return;
    }
    let (header, body) = record.split_at_mut(HEADER_LEN);
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    header[8..12].copy_from_slice(&len.to_le_bytes());
    header[12..16].copy_from_slice(&crc32fast::hash(body).to_le_bytes());
}

/// The migration of `conn` as its owner would make it.
fn migration(conn: &Connection, now: Instant, app: &[u8]) -> Migration {
    Migration {
        flow: FlowId::of(&conn.tuple()),
        listener_port: conn.is_passive().then(|| conn.local().port()),
        neighbour: Some(EthernetAddress([0x02, 0, 0, 0, 0, 0x02])),
        conn: conn.capture(now),
        app: app.to_vec(),
    }
}

/// Seed inputs: records of both ends of short transfers under loss (three
/// configurations, captured along the way through the closing states), each verbatim and
/// with the fix-up bit; truncated and damaged ones; and a few that are not records.
pub fn seeds() -> Vec<Vec<u8>> {
    let configs = [
        TcpConfig {
            nagle: false,
            ..TcpConfig::default()
        },
        TcpConfig {
            congestion: CongestionAlgorithm::NewReno,
            timestamps: false,
            sack: false,
            window_scaling: false,
            ..TcpConfig::default()
        },
        TcpConfig {
            send_buffer: 4 * 1024,
            recv_buffer: 4 * 1024,
            ..TcpConfig::default()
        },
    ];
    let mut records = Vec::new();
    for (i, config) in configs.iter().enumerate() {
        let seed = i as u64;
        let mut pair = Pair::new(config, config, Duration::from_millis(2));
        let mut rng = Rng(seed * 7 + 3);
        pair.drop_rule = Box::new(move |_, _, _| rng.chance(0.1));
        let a_data = pattern(6_000, seed);
        let b_data = pattern(2_000, seed + 1);
        let (mut a_sent, mut b_sent) = (0, 0);
        let mut buf = [0u8; 700];
        let mut ooo_taken = 0;
        for step in 0..120u32 {
            if pair.a.is_established() && a_sent < a_data.len() {
                a_sent += pair.a.send(&a_data[a_sent..]).unwrap_or(0);
            }
            if pair.b.is_established() && b_sent < b_data.len() {
                b_sent += pair.b.send(&b_data[b_sent..]).unwrap_or(0);
            }
            // Partial reads, so that unread bytes are held at some captures.
            if step % 3 == 0 {
                let _ = pair.a.recv(&mut buf);
                let _ = pair.b.recv(&mut buf);
            }
            if step == 60 {
                let _ = pair.a.close();
            }
            if step == 90 {
                let _ = pair.b.close();
            }
            // Every 12th step, and the first few times an end holds out-of-order data.
            for conn in [&pair.a, &pair.b] {
                if !is_movable_state(conn.state()) {
                    continue;
                }
                let app = pattern(step as usize % 50, seed);
                let m = migration(conn, pair.now, &app);
                let ooo = !m.conn.assembler.ranges.is_empty();
                if step % 12 == 0 || (ooo && ooo_taken < 3) {
                    ooo_taken += usize::from(ooo);
                    let mut bytes = Vec::new();
                    encode(&m, &mut bytes);
                    records.push(bytes);
                }
            }
            if !pair.step() {
                // Nothing in flight: the applications' next reads and closes move it on.
                pair.now += Duration::from_millis(50);
            }
        }
    }
    let mut seeds = Vec::new();
    for r in &records {
        for mode in [0, FIX_UP] {
            seeds.push([&[mode], &r[..]].concat());
        }
    }
    let first = records.first().cloned().unwrap_or_default();
    // Truncated: inside the header, just after it, halfway; with the fix-up bit, a
    // body cut short but checksummed.
    for cut in [HEADER_LEN / 2, HEADER_LEN, first.len() / 2] {
        let cut = first.get(..cut).unwrap_or_default();
        seeds.push([&[0], cut].concat());
        seeds.push([&[FIX_UP], cut].concat());
    }
    // Another version, and trailing bytes.
    let mut v2 = first.clone();
    if let Some(v) = v2.get_mut(4) {
        *v = 2;
    }
    seeds.push([&[0], &v2[..]].concat());
    seeds.push([&[0], &first[..], &[0]].concat());
    seeds.push(vec![FIX_UP; 64]);
    seeds.push(vec![]);
    seeds
}
