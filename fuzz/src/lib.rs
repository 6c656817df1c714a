//! Fuzz targets of the engine (cargo-fuzz). Each target's body is a plain function in a
//! module that the engine's tests also include, so the targets' logic and their seed
//! corpus run under `cargo test` too (`engine/tests/fuzz_replay.rs`,
//! `engine/tests/fuzz_replay_record.rs`).
pub mod record_decode;
#[path = "../../engine/tests/stack_support/mod.rs"]
pub mod stack_support;
pub mod tcp_input;
#[path = "../../engine/tests/tcp_support/mod.rs"]
pub mod tcp_support;
