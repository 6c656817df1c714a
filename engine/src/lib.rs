//! The protocol engine of migratory.
//!
//! Everything here is plain Rust with no `unsafe` and no device access: packets arrive and
//! leave through the [`port::Port`] trait, time arrives as an [`time::Instant`] argument.
//! The DPDK implementation of the port (and fault injection, which reads a clock) lives
//! in `migratory-ports`; a simulated one lives in [`sim`]. That is what lets every protocol test run without DPDK, root or a network.
#![deny(unsafe_code)]
#![warn(missing_debug_implementations)]

pub mod channel;
pub mod control;
pub mod flow;
pub mod hash;
pub mod iface;
pub mod migrate;
pub mod poll;
pub mod port;
pub mod rng;
pub mod sim;
pub mod stack;
pub mod stats;
pub mod steer;
pub mod table;
pub mod tcp;
pub mod time;
pub mod timer;
pub mod wire;
