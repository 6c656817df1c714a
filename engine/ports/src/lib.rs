//! The engine's ports on real devices, beside the sans-IO engine rather than in it.
//!
//! Owns: [`dpdk`], the engine's [`engine::port::Port`] over a DPDK ethdev queue pair (what
//! `migratory serve` and the load generator run on), and [`fault`], seeded fault injection
//! wrapped around any port (it reads a clock to release held frames, which is why it
//! lives here and not in the engine).
//!
//! [`shm`] holds the state channel's same-host link: lock-free rings in a file two engine
//! processes map.
//!
//! May not: use `unsafe` (DPDK is reached only through `dpdk-sys`'s safe layer), except
//! [`shm`], which maps shared memory and reads it through atomics; or hold protocol state.
#![deny(unsafe_code)]
#![warn(missing_debug_implementations)]

pub mod dpdk;
pub mod fault;
pub mod shm;
