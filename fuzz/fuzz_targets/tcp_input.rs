//! Arbitrary bytes as a frame into a stack with a listener and an established connection.
//! `cargo +nightly fuzz run tcp_input` (from the repository root); see `src/tcp_input.rs`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    migratory_fuzz::tcp_input::run(data);
});
