//! The `record_decode` fuzz target (`fuzz/`, run with cargo-fuzz on nightly) under plain
//! `cargo test`, as `fuzz_replay.rs` does for `tcp_input`: the generated seeds, every file
//! of `fuzz/seeds/record_decode` (checked in: the seeds, and any crash found since, to keep
//! it fixed), of the local `fuzz/corpus/record_decode` and `fuzz/artifacts/record_decode`
//! when a fuzzing run left them, and a fixed number of seeded random mutations of the
//! seeds. Not a fuzzer (no coverage feedback): it keeps the target building and its known
//! inputs passing.
//!
//! `UPDATE_FUZZ_CORPUS=1 cargo test -p migratory-engine --test fuzz_replay_record` rewrites
//! the seed files.
#[path = "../../fuzz/src/record_decode.rs"]
mod record_decode;
mod tcp_support;

use std::collections::HashSet;
use std::path::PathBuf;

use engine::migrate::decode;
use engine::rng::SeededRng;
use engine::tcp::State;

fn fuzz_dir(sub: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(sub)
        .join("record_decode")
}

#[test]
fn seeds_and_corpus_replay() {
    let seeds = record_decode::seeds();
    assert!(seeds.len() > 30);
    // The seeds hold real records, in several states, with data held in every buffer.
    let records: Vec<_> = seeds
        .iter()
        .filter(|s| s.first() == Some(&0))
        .filter_map(|s| decode(s.get(1..)?).ok())
        .collect();
    let states: HashSet<State> = records.iter().map(|m| m.conn.state).collect();
    assert!(states.len() >= 4, "{states:?}");
    assert!(records.iter().any(|m| m.conn.scoreboard.is_some()));
    assert!(records.iter().any(|m| !m.conn.assembler.ranges.is_empty()));
    assert!(records.iter().any(|m| m.conn.recv_unread > 0));
    assert!(records.iter().any(|m| !m.conn.send.is_empty()));
    let dir = fuzz_dir("seeds");
    if std::env::var_os("UPDATE_FUZZ_CORPUS").is_some() {
        std::fs::create_dir_all(&dir).expect("seeds dir");
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:03}")), seed).expect("write seed");
        }
    }
    for seed in &seeds {
        record_decode::run(seed);
    }
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/seeds/record_decode") {
        record_decode::run(&std::fs::read(entry.expect("entry").path()).expect("read"));
        files += 1;
    }
    // What a local fuzzing run found (not checked in).
    for sub in ["corpus", "artifacts"] {
        if let Ok(entries) = std::fs::read_dir(fuzz_dir(sub)) {
            for entry in entries.flatten() {
                if let Ok(input) = std::fs::read(entry.path()) {
                    record_decode::run(&input);
                }
            }
        }
    }
    assert!(files >= seeds.len(), "the seeds are checked in");
}

#[test]
fn seeded_mutations_do_not_panic() {
    let seeds = record_decode::seeds();
    let mut rng = SeededRng::new(0x5eed);
    let mut decoded = 0;
    for _ in 0..5_000 {
        let mut input = seeds[rng.below(seeds.len() as u64) as usize].clone();
        for _ in 0..=rng.below(4) {
            mutate(&mut rng, &mut input);
        }
        // Mostly with the fix-up bit, so that mutations reach the body's checks.
        if let Some(mode) = input.first_mut() {
            if rng.chance(0.8) {
                *mode |= record_decode::FIX_UP;
            }
        }
        record_decode::run(&input);
        decoded += usize::from(is_record(&input));
    }
    // Some mutations are records still (a changed counter, say), run as connections.
    assert!(decoded > 0);
}

/// Whether `run` got as far as a decoded record for `input`.
fn is_record(input: &[u8]) -> bool {
    let Some((&mode, rest)) = input.split_first() else {
        return false;
    };
    let mut rest = rest.to_vec();
    if mode & record_decode::FIX_UP != 0 && rest.len() >= 16 {
        let crc = crc32fast::hash(&rest[16..]);
        let len = (rest.len() - 16) as u32;
        rest[8..12].copy_from_slice(&len.to_le_bytes());
        rest[12..16].copy_from_slice(&crc.to_le_bytes());
    }
    decode(&rest).is_ok()
}

fn mutate(rng: &mut SeededRng, input: &mut Vec<u8>) {
    let len = input.len() as u64;
    match rng.below(8) {
        0 if len > 0 => {
            let bit = rng.below(len * 8);
            input[(bit / 8) as usize] ^= 1 << (bit % 8);
        }
        1 if len > 0 => {
            let at = rng.below(len) as usize;
            input[at] = rng.next_u64() as u8;
        }
        2 => {
            let at = rng.below(len + 1) as usize;
            input.insert(at, rng.next_u64() as u8);
        }
        3 if len > 0 => {
            input.remove(rng.below(len) as usize);
        }
        4 => input.truncate(rng.below(len + 1) as usize),
        5 => {
            for _ in 0..rng.below(64) {
                input.push(rng.next_u64() as u8);
            }
        }
        // A little-endian u32 somewhere set to a boundary value (counts, lengths).
        6 if len >= 4 => {
            let at = rng.below(len - 3) as usize;
            let v = [0, 1, 0xff, 0x100, 1 << 20, 1 << 30, u32::MAX][rng.below(7) as usize];
            input[at..at + 4].copy_from_slice(&u32::to_le_bytes(v));
        }
        _ if len > 0 => input[0] = rng.next_u64() as u8,
        _ => {}
    }
}
