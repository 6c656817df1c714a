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
//!
//! # Driving a connection
//!
//! ```
//! use core::net::{Ipv4Addr, SocketAddrV4};
//! use engine::flow::FourTuple;
//! use engine::tcp::{Connection, IsnGenerator, Listener, ListenerConfig, SipKey, TcpConfig};
//! use engine::time::Instant;
//! use engine::wire::tcp::{TcpPacket, TcpRepr};
//! use engine::wire::ChecksumCaps;
//!
//! let caps = ChecksumCaps::default();
//! let client_addr = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 40000);
//! let server_addr = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80);
//! let config = TcpConfig::default();
//! let now = Instant::ZERO;
//!
//! // Keys come from the caller's RNG; the TCP layer draws no random numbers.
//! let mut listener = Listener::new(server_addr, config, ListenerConfig::default(), SipKey([1; 16]), SipKey([2; 16]));
//! let tuple = FourTuple::new(client_addr, server_addr);
//! let seed = IsnGenerator::new(SipKey([3; 16])).seed(now, &tuple);
//! let mut client = Connection::connect(now, tuple, seed, &config);
//!
//! // The poll loop: emit each segment into a frame buffer, parse it at the other end.
//! let mut frame = [0u8; 1500];
//! for _ in 0..3 {
//!     while let Some(t) = client.poll_transmit(now) {
//!         let len = t.emit(&mut frame, &caps).unwrap();
//!         let packet = TcpPacket::new_checked(&frame[..len]).unwrap();
//!         let repr = TcpRepr::parse(&packet, *client_addr.ip(), *server_addr.ip(), &caps).unwrap();
//!         listener.handle_segment(now, tuple.reversed(), &repr);
//!     }
//!     while let Some(t) = listener.poll_transmit(now) {
//!         let len = t.emit(&mut frame, &caps).unwrap();
//!         let packet = TcpPacket::new_checked(&frame[..len]).unwrap();
//!         let repr = TcpRepr::parse(&packet, *server_addr.ip(), *client_addr.ip(), &caps).unwrap();
//!         client.handle_segment(now, &repr);
//!     }
//! }
//! let server = listener.accept().expect("handshake done");
//! assert!(client.is_established() && server.is_established());
//! // From here: send/recv/close on each side, poll_transmit after every call and input,
//! // handle_timeout(now) when now reaches poll_timeout().
//! ```
pub mod assembler;
pub mod config;
pub mod congestion;
mod connection;
mod input;
pub mod isn;
mod listener;
mod output;
pub mod record;
pub mod ring;
pub mod rtt;
pub mod sack;
pub mod seq;
pub mod siphash;
pub mod state;
pub mod syncookie;
pub mod time_wait;
pub mod timers;

pub use config::{CongestionAlgorithm, Keepalive, Params, TcpConfig};
pub use congestion::{Congestion, CongestionControl};
pub use connection::{Connection, ConnectionStats, Shutdown};
pub use input::{reset_for, Disposition};
pub use isn::{ConnectionSeed, IsnGenerator};
pub use listener::{ListenOutcome, Listener, ListenerConfig, ListenerStats};
pub use output::Transmit;
pub use record::{ConnectionRecord, RestoreError};
pub use ring::{spare_bytes as spare_ring_bytes, SPARE_RINGS};
pub use seq::SeqNumber;
pub use siphash::SipKey;
pub use state::{Events, State, TcpError};
pub use time_wait::{TimeWaitRecord, TimeWaitVerdict};
pub use timers::TimerKind;
