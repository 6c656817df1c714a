//! Arbitrary bytes as a migration record: decoded, and what decodes restored, run and
//! moved again. `cargo +nightly fuzz run record_decode` (from the repository root); see
//! `src/record_decode.rs`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    migratory_fuzz::record_decode::run(data);
});
