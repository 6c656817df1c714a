//! Live migration of connections (DESIGN.md §4): what moves, and how it is named.
//!
//! Owns: [`Migration`], the unit that moves (a connection's record, the application's
//! snapshot of its state, and what the destination needs to resume it at once), and
//! [`FlowId`], the name of a connection that survives moves. The TCP part of a record
//! and the rules it must satisfy are [`crate::tcp::record`]'s; the stack detaches and
//! adopts connections (`crate::stack`); the poll loop carries migrations between cores.
//!
//! May not: read a clock, do I/O, or trust a record: every record is checked before it
//! becomes a connection, and a refused one leaves everything as it was.
use core::fmt;
use core::str::FromStr;

use crate::flow::FourTuple;
use crate::tcp::ConnectionRecord;
use crate::time::Instant;
use crate::wire::EthernetAddress;

pub mod codec;

pub use codec::{decode, encode, encoded_len, validate, DecodeError};

/// The largest application snapshot a migration may carry.
pub const MAX_APP_SNAPSHOT: usize = 1 << 20;

/// A connection's name across moves: derived from its 4-tuple alone (an unkeyed hash,
/// the same on every core and engine), so an operator can use the id one engine showed on
/// another. Shown as 16 hexadecimal digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowId(pub u64);

impl FlowId {
    /// The id of the connection `tuple` (seen from our end).
    pub fn of(tuple: &FourTuple) -> FlowId {
        // A fixed key: this is a name, not a defence (tables keep their own keyed hashes).
        FlowId(crate::hash::siphash::<1, 3>(
            0x6d69_6772_6174_6f72,
            0x666c_6f77_2d69_6431,
            &tuple.to_bytes(),
        ))
    }
}

impl fmt::Display for FlowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The text is not a flow id (16 hexadecimal digits at most).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a connection id (expected up to 16 hexadecimal digits)")]
pub struct ParseFlowIdError;

impl FromStr for FlowId {
    type Err = ParseFlowIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > 16 {
            return Err(ParseFlowIdError);
        }
        u64::from_str_radix(s, 16)
            .map(FlowId)
            .map_err(|_| ParseFlowIdError)
    }
}

/// Who owns a connection that moved: another core of this engine, or a peer engine
/// (numbered by the engine's list of peers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Owner {
    Core(u16),
    Peer(u16),
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::Core(c) => write!(f, "core {c}"),
            Owner::Peer(p) => write!(f, "peer {p}"),
        }
    }
}

/// What moves: one connection, its application state, and what its new owner needs to
/// resume it without a stall.
#[derive(Debug, Clone, PartialEq)]
pub struct Migration {
    pub flow: FlowId,
    /// The local port of the listener that accepted it (passive opens).
    pub listener_port: Option<u16>,
    /// The MAC address of the connection's next hop, so the new owner need not ARP.
    pub neighbour: Option<EthernetAddress>,
    /// The TCP connection.
    pub conn: ConnectionRecord,
    /// The application's snapshot of its state for this connection (at most
    /// [`MAX_APP_SNAPSHOT`] bytes; its format is the application's).
    pub app: Vec<u8>,
}

/// Names one move from its origin's point of view (unique per origin core).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ticket(pub u64);

/// A migration on its way between the cores of one engine, with what the origin needs to
/// hear back about it.
#[derive(Debug)]
pub struct Transfer {
    pub migration: Migration,
    /// When the origin froze the connection (the engine's clock: one per engine).
    pub frozen_at: Instant,
    /// The core it came from, and its name for this move.
    pub origin: u16,
    pub ticket: Ticket,
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, SocketAddrV4};

    #[test]
    fn flow_ids_are_stable_and_parse_back() {
        let t = FourTuple::new(
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80),
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 40_000),
        );
        let id = FlowId::of(&t);
        assert_eq!(id, FlowId::of(&t));
        assert_ne!(id, FlowId::of(&t.reversed()));
        let text = id.to_string();
        assert_eq!(text.len(), 16);
        assert_eq!(text.parse::<FlowId>(), Ok(id));
        assert_eq!("".parse::<FlowId>(), Err(ParseFlowIdError));
        assert_eq!("12345678901234567".parse::<FlowId>(), Err(ParseFlowIdError));
        assert_eq!("xyz".parse::<FlowId>(), Err(ParseFlowIdError));
    }
}
