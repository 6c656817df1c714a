//! migratory's performance tooling: the load generator (`migratory-gen`), the L2
//! reflector that measures the wire ceiling, the baselines (a Linux-socket echo server and
//! client, an echo server on smoltcp) and the pieces they share.
//!
//! This crate only measures: it holds no protocol logic of the engine and no `unsafe`
//! (DPDK is reached through `dpdk-sys`'s safe layer).
#![deny(unsafe_code)]

pub mod cli;
pub mod dpdk;
pub mod frame;
pub mod latency;
pub mod pacing;
pub mod smol;
pub mod synflood;
pub mod tcpgen;
pub mod tcprun;
