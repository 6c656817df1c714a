//! TCP (RFC 9293) as a sans-IO state machine, with the extensions of DESIGN.md §3.
//!
//! Owns connections ([`Connection`]), passive opens ([`Listener`]), their configuration,
//! and the algorithms they run (RTO, congestion control, SACK, timestamps, SYN cookies,
//! ISNs). It performs no I/O, reads no clock and draws no random numbers: segments come
//! in through `handle_segment(now, ..)`, timers through `handle_timeout(now)`, and
//! segments go out through `poll_transmit(now)`; keys and ISN material come from the
//! caller. A connection is a plain value (`Send + Clone`) that can be captured and moved.
//!
//! IPv4/Ethernet framing and the connection tables are the caller's.
pub mod assembler;
pub mod config;
pub mod congestion;
mod connection;
mod input;
pub mod isn;
mod listener;
mod output;
pub mod ring;
pub mod rtt;
pub mod sack;
pub mod seq;
pub mod siphash;
pub mod state;
pub mod syncookie;
pub mod timers;

pub use config::{CongestionAlgorithm, Keepalive, TcpConfig};
pub use congestion::{Congestion, CongestionControl};
pub use connection::{Connection, ConnectionStats, Shutdown};
pub use input::{reset_for, Disposition};
pub use isn::{ConnectionSeed, IsnGenerator};
pub use listener::{ListenOutcome, Listener, ListenerConfig, ListenerStats};
pub use output::Transmit;
pub use seq::SeqNumber;
pub use siphash::SipKey;
pub use state::{Events, State, TcpError};
pub use timers::TimerKind;
