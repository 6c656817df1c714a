//! Same-host links of the state channel: a [`Lane`] is one end of a byte stream each way
//! between a core of this engine and a core of a peer engine on the same host, with its
//! own notion of being up. `migratory-ports`' shared-memory lanes implement it (a
//! lock-free ring per direction in a file both processes map); [`MemoryLane`] is the same
//! contract inside one process, for tests.
//!
//! [`super::Peers`] runs the channel's handshake, messages and heartbeats over a lane just
//! as over a TCP link: a lane only carries bytes in order and says when its stream
//! started anew (a new generation), which ends whatever session the old stream carried.
use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex};

/// Where a lane's stream stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaneState {
    /// No stream: the far end is not there yet, or left.
    Down,
    /// A stream is up; a different generation than last time is a new stream (the far end
    /// restarted, or either end reset), which starts with a fresh handshake.
    Up(u64),
}

/// One end of a same-host link. See the module documentation.
pub trait Lane: fmt::Debug + Send {
    /// Upkeep, on every poll: where the stream stands now.
    fn poll(&mut self) -> LaneState;
    /// Writes what fits of `bytes` (while up); returns how many went.
    fn write(&mut self, bytes: &[u8]) -> usize;
    /// Appends at most `max` received bytes to `out` (while up); returns how many.
    fn read(&mut self, out: &mut Vec<u8>, max: usize) -> usize;
    /// Ends the current stream (bad input, a silent peer): both ends start a new one.
    fn reset(&mut self);
    /// Whether this end opens the stream (the handshake's initiator).
    fn opener(&self) -> bool;
    /// How the operator named it, for messages.
    fn describe(&self) -> String;
}

/// Both directions of an in-process lane pair.
#[derive(Debug, Default)]
struct Shared {
    /// Bytes towards the opener, and towards the acceptor.
    to_opener: VecDeque<u8>,
    to_acceptor: VecDeque<u8>,
    /// The current stream's generation (0: none), and whether each end is in it.
    generation: u64,
    opener_in: bool,
    acceptor_in: bool,
    /// The acceptor's last generation left (not rejoined).
    acceptor_left: u64,
}

/// An in-process [`Lane`] for tests: [`MemoryLane::pair`] gives the opener's and the
/// acceptor's end; the capacity bounds each direction like a ring would.
#[derive(Debug)]
pub struct MemoryLane {
    shared: Arc<Mutex<Shared>>,
    opener: bool,
    capacity: usize,
    /// The generation this end joined.
    joined: u64,
}

impl MemoryLane {
    pub fn pair(capacity: usize) -> (MemoryLane, MemoryLane) {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let end = |opener| MemoryLane {
            shared: shared.clone(),
            opener,
            capacity,
            joined: 0,
        };
        let (mut a, b) = (end(true), end(false));
        a.offer();
        (a, b)
    }

    fn offer(&mut self) {
        let mut s = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        s.generation += 1;
        s.opener_in = true;
        s.acceptor_in = false;
        s.to_opener.clear();
        s.to_acceptor.clear();
        self.joined = s.generation;
    }
}

impl Lane for MemoryLane {
    fn poll(&mut self) -> LaneState {
        let mut s = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        if self.opener {
            if !s.acceptor_in && s.acceptor_left == s.generation {
                // The acceptor left this stream: offer a new one.
                drop(s);
                self.offer();
                return LaneState::Down;
            }
            if s.acceptor_in && s.generation == self.joined {
                return LaneState::Up(self.joined);
            }
            return LaneState::Down;
        }
        if s.opener_in && s.generation != 0 && s.acceptor_left != s.generation {
            s.acceptor_in = true;
            self.joined = s.generation;
            return LaneState::Up(self.joined);
        }
        LaneState::Down
    }

    fn write(&mut self, bytes: &[u8]) -> usize {
        let mut s = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        if s.generation != self.joined || !(s.opener_in && s.acceptor_in) {
            return 0;
        }
        let q = if self.opener {
            &mut s.to_acceptor
        } else {
            &mut s.to_opener
        };
        let n = bytes.len().min(self.capacity - q.len());
        q.extend(&bytes[..n]);
        n
    }

    fn read(&mut self, out: &mut Vec<u8>, max: usize) -> usize {
        let mut s = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        if s.generation != self.joined {
            return 0;
        }
        let q = if self.opener {
            &mut s.to_opener
        } else {
            &mut s.to_acceptor
        };
        let n = q.len().min(max);
        out.extend(q.drain(..n));
        n
    }

    fn reset(&mut self) {
        if self.opener {
            self.offer();
        } else {
            let mut s = self.shared.lock().unwrap_or_else(|e| e.into_inner());
            s.acceptor_in = false;
            s.acceptor_left = s.generation;
        }
    }

    fn opener(&self) -> bool {
        self.opener
    }

    fn describe(&self) -> String {
        format!(
            "in-memory lane ({})",
            if self.opener { "opener" } else { "acceptor" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_memory_lane_carries_bytes_both_ways_and_starts_anew_on_reset() {
        let (mut a, mut b) = MemoryLane::pair(8);
        assert_eq!(a.poll(), LaneState::Down);
        let LaneState::Up(g) = b.poll() else {
            panic!("acceptor not up")
        };
        assert_eq!(a.poll(), LaneState::Up(g));
        assert_eq!(a.write(b"0123456789"), 8, "bounded like a ring");
        let mut got = Vec::new();
        assert_eq!(b.read(&mut got, 100), 8);
        assert_eq!(got, b"01234567");
        assert_eq!(b.write(b"back"), 4);
        got.clear();
        a.read(&mut got, 100);
        assert_eq!(got, b"back");
        // The acceptor resets: the opener offers a new stream, which the acceptor joins.
        b.reset();
        assert_eq!(b.poll(), LaneState::Down);
        assert_eq!(a.poll(), LaneState::Down);
        let LaneState::Up(g2) = b.poll() else {
            panic!("acceptor did not rejoin")
        };
        assert_ne!(g, g2);
        assert_eq!(a.poll(), LaneState::Up(g2));
    }
}
