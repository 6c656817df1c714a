//! Applications on the migratory engine and the `migratory` command line.
//!
//! This crate joins the sans-IO engine to DPDK through `migratory-ports` (the engine's
//! port trait over `dpdk-sys`, and fault injection): [`preflight`] turns the usual set-up mistakes into one
//! clear line before DPDK starts, and [`cli`] is the command line users and scripts run.
#![deny(unsafe_code)]

pub mod apps;
pub mod args;
pub mod cli;
pub mod ctl;
pub mod preflight;
pub mod serve;
