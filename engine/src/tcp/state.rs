//! The connection states of RFC 9293 §3.3.2 and the application-facing events and errors.
//!
//! Owns the names only; the transitions live in `connection.rs` and `input.rs`, driven by
//! segments, timers and application calls. LISTEN is the [`super::Listener`]'s state: a
//! [`super::Connection`] is created by a SYN (passive) or by `connect` (active).
use core::fmt;

/// RFC 9293 §3.3.2 connection states, LISTEN excepted (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Closed,
    SynSent,
    SynReceived,
    Established,
    FinWait1,
    FinWait2,
    CloseWait,
    Closing,
    LastAck,
    TimeWait,
}

impl State {
    /// Every state, for tests that walk them all.
    pub const ALL: [State; 10] = [
        State::Closed,
        State::SynSent,
        State::SynReceived,
        State::Established,
        State::FinWait1,
        State::FinWait2,
        State::CloseWait,
        State::Closing,
        State::LastAck,
        State::TimeWait,
    ];

    /// Both SYNs have been seen (RFC 9293 §3.3.2 "synchronized states").
    pub const fn is_synchronized(self) -> bool {
        !matches!(self, State::Closed | State::SynSent | State::SynReceived)
    }

    /// The application may still queue data (RFC 9293 §3.10.2 SEND).
    pub const fn can_send(self) -> bool {
        matches!(
            self,
            State::SynSent | State::SynReceived | State::Established | State::CloseWait
        )
    }

    /// Data from the peer may still arrive (its FIN has not been seen).
    pub const fn can_receive(self) -> bool {
        matches!(
            self,
            State::SynSent
                | State::SynReceived
                | State::Established
                | State::FinWait1
                | State::FinWait2
        )
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            State::Closed => "CLOSED",
            State::SynSent => "SYN-SENT",
            State::SynReceived => "SYN-RECEIVED",
            State::Established => "ESTABLISHED",
            State::FinWait1 => "FIN-WAIT-1",
            State::FinWait2 => "FIN-WAIT-2",
            State::CloseWait => "CLOSE-WAIT",
            State::Closing => "CLOSING",
            State::LastAck => "LAST-ACK",
            State::TimeWait => "TIME-WAIT",
        };
        f.write_str(name)
    }
}

/// Why a connection ended abnormally, or why an application call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum TcpError {
    /// An acceptable RST arrived in a synchronized state (RFC 9293 §3.10.7.4).
    #[error("connection reset by peer")]
    Reset,
    /// An acceptable RST answered our SYN (RFC 9293 §3.10.7.3).
    #[error("connection refused")]
    Refused,
    /// The retransmission, SYN or keepalive retry limit was reached.
    #[error("connection timed out")]
    TimedOut,
    /// The application aborted the connection.
    #[error("connection aborted")]
    Aborted,
    /// The application already closed the sending direction.
    #[error("connection closing")]
    Closing,
    /// The peer closed its direction and every byte has been read.
    #[error("end of stream")]
    Finished,
    /// The call makes no sense in this state (e.g. send on a closed connection).
    #[error("invalid in state {0}")]
    InvalidState(State),
}

/// Application-facing events, as a set of flags the caller takes with
/// [`super::Connection::take_events`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Events(u8);

impl Events {
    pub const NONE: Events = Events(0);
    /// The handshake completed.
    pub const ESTABLISHED: Events = Events(0x01);
    /// Received data (or the end of stream) can be read.
    pub const READABLE: Events = Events(0x02);
    /// Send buffer space opened up.
    pub const WRITABLE: Events = Events(0x04);
    /// The peer's FIN arrived: no more data will follow what is buffered.
    pub const PEER_CLOSED: Events = Events(0x08);
    /// The connection reached CLOSED (normally or not) and may be removed.
    pub const CLOSED: Events = Events(0x10);
    /// The connection ended with an error: see [`super::Connection::error`].
    pub const ERROR: Events = Events(0x20);

    pub const fn contains(self, other: Events) -> bool {
        self.0 & other.0 == other.0
    }
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn insert(&mut self, other: Events) {
        self.0 |= other.0;
    }
    pub const fn bits(self) -> u8 {
        self.0
    }
    /// The set of `bits`, if every bit is a known event.
    pub const fn from_bits(bits: u8) -> Option<Events> {
        if bits & !0x3f == 0 {
            Some(Events(bits))
        } else {
            None
        }
    }
}

impl core::ops::BitOr for Events {
    type Output = Events;
    fn bitor(self, rhs: Events) -> Events {
        Events(self.0 | rhs.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synchronized_states() {
        let synchronized: Vec<_> = State::ALL.iter().filter(|s| s.is_synchronized()).collect();
        assert_eq!(synchronized.len(), 7);
        assert!(!State::SynReceived.is_synchronized());
        assert!(State::TimeWait.is_synchronized());
    }

    #[test]
    fn events_accumulate() {
        let mut e = Events::NONE;
        assert!(e.is_empty());
        e.insert(Events::READABLE);
        e.insert(Events::PEER_CLOSED);
        assert!(e.contains(Events::READABLE | Events::PEER_CLOSED));
        assert!(!e.contains(Events::WRITABLE));
    }
}
