//! Applications on the migratory engine and the `migratory` command line.
//!
//! This crate joins the sans-IO engine to DPDK: [`dpdk_port`] implements the engine's
//! port trait over `dpdk-sys`, [`preflight`] turns the usual set-up mistakes into one
//! clear line before DPDK starts, and [`cli`] is the command line users and scripts run.
#![deny(unsafe_code)]

pub mod apps;
pub mod cli;
pub mod ctl;
pub mod dpdk_port;
pub mod preflight;
pub mod serve;
