//! Sequence numbers: the modulo-2^32 type lives with the wire format
//! ([`crate::wire::tcp::SeqNumber`]) and is re-exported here, with the few window helpers
//! the state machine needs. Owns no state.
pub use crate::wire::tcp::SeqNumber;

/// Whether `seq` lies in the window `[start, start + len)`; an empty window holds nothing.
pub fn in_window(seq: SeqNumber, start: SeqNumber, len: u32) -> bool {
    len > 0 && seq.ge(start) && seq.lt(start + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_membership_wraps() {
        let start = SeqNumber(u32::MAX - 2);
        assert!(in_window(start, start, 5));
        assert!(in_window(SeqNumber(1), start, 5));
        assert!(!in_window(SeqNumber(2), start, 5));
        assert!(!in_window(start - 1, start, 5));
        assert!(!in_window(start, start, 0));
    }
}
