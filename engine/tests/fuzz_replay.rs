//! The `tcp_input` fuzz target (`fuzz/`, run with cargo-fuzz on nightly) under plain
//! `cargo test`, so that its harness and corpus are exercised on every run: the generated
//! seeds, every file of `fuzz/seeds/tcp_input` (checked in: the seeds, and any crash found
//! since, to keep it fixed), of the local `fuzz/corpus/tcp_input` and
//! `fuzz/artifacts/tcp_input` when a fuzzing run left them, and a fixed number of seeded
//! random mutations of the seeds. Not a fuzzer (no coverage feedback): it keeps the
//! target building and its known inputs passing.
//!
//! `UPDATE_FUZZ_CORPUS=1 cargo test -p migratory-engine --test fuzz_replay` rewrites the
//! seed files.
mod stack_support;
#[path = "../../fuzz/src/tcp_input.rs"]
mod tcp_input;

use std::path::PathBuf;

use engine::rng::SeededRng;

fn fuzz_dir(sub: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(sub)
        .join("tcp_input")
}

#[test]
fn seeds_and_corpus_replay() {
    let seeds = tcp_input::seeds();
    assert!(seeds.len() > 30);
    let dir = fuzz_dir("seeds");
    if std::env::var_os("UPDATE_FUZZ_CORPUS").is_some() {
        std::fs::create_dir_all(&dir).expect("seeds dir");
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:03}")), seed).expect("write seed");
        }
    }
    for seed in &seeds {
        tcp_input::run(seed);
    }
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/seeds/tcp_input") {
        tcp_input::run(&std::fs::read(entry.expect("entry").path()).expect("read"));
        files += 1;
    }
    // What a local fuzzing run found (not checked in).
    for sub in ["corpus", "artifacts"] {
        if let Ok(entries) = std::fs::read_dir(fuzz_dir(sub)) {
            for entry in entries.flatten() {
                if let Ok(input) = std::fs::read(entry.path()) {
                    tcp_input::run(&input);
                }
            }
        }
    }
    assert!(files >= seeds.len(), "the seeds are checked in");
}

#[test]
fn seeded_mutations_do_not_panic() {
    let seeds = tcp_input::seeds();
    let mut rng = SeededRng::new(0x5eed);
    for _ in 0..5_000 {
        let mut input = seeds[rng.below(seeds.len() as u64) as usize].clone();
        for _ in 0..=rng.below(6) {
            mutate(&mut rng, &mut input);
        }
        tcp_input::run(&input);
    }
}

fn mutate(rng: &mut SeededRng, input: &mut Vec<u8>) {
    let len = input.len() as u64;
    match rng.below(7) {
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
        _ if len > 0 => input[0] = rng.next_u64() as u8,
        _ => {}
    }
}
