//! SYN cookies: a listener whose backlog is full answers a SYN without keeping state, and
//! recognises the ACK that completes the handshake from its acknowledgment number alone.
//!
//! Owns the cookie key. The ISN we send is
//! `t mod 32 (5 bits) | MSS index (3 bits) | H(key, 4-tuple, peer ISN, t, MSS index) (24 bits)`
//! with `t` a 64-second counter; a cookie is valid for the current and the previous
//! period. Window scale and SACK-permitted ride in the low 5 bits of our TSval when the
//! peer uses timestamps (as Linux does); without timestamps a cookie connection has
//! neither. No clock: `now` is an argument.

use super::seq::SeqNumber;
use super::siphash::SipKey;
use crate::flow::FourTuple;
use crate::time::Instant;

/// The MSS values a cookie can carry; a peer's MSS is rounded down to one of them.
pub const MSS_TABLE: [u16; 8] = [536, 1200, 1360, 1400, 1440, 1460, 4036, 8960];

const PERIOD_SECS: u64 = 64;
const TS_BITS: u32 = 5;
const TS_MASK: u32 = (1 << TS_BITS) - 1;
const NO_WSCALE: u32 = 0xf;

/// What an accepted cookie tells about the peer's SYN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieOptions {
    pub mss: u16,
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
}

#[derive(Debug, Clone)]
pub struct SynCookies {
    key: SipKey,
}

fn counter(now: Instant) -> u32 {
    (now.as_millis() / 1000 / PERIOD_SECS) as u32
}

impl SynCookies {
    pub fn new(key: SipKey) -> Self {
        SynCookies { key }
    }

    fn hash(&self, tuple: &FourTuple, peer_isn: SeqNumber, t: u32, mss_index: u32) -> u32 {
        let mut extra = [0u8; 9];
        extra[..4].copy_from_slice(&peer_isn.0.to_be_bytes());
        extra[4..8].copy_from_slice(&t.to_be_bytes());
        extra[8] = mss_index as u8;
        (super::isn::hash_tuple(&self.key, 0x03, tuple, &extra) as u32) & 0x00ff_ffff
    }

    /// The index of the largest table MSS not above `mss`.
    pub fn mss_index(mss: u16) -> u32 {
        MSS_TABLE.iter().rposition(|&m| m <= mss).unwrap_or(0) as u32
    }

    /// Our ISN for a SYN from `tuple.remote` with ISN `peer_isn` and MSS `mss`.
    pub fn encode(
        &self,
        now: Instant,
        tuple: &FourTuple,
        peer_isn: SeqNumber,
        mss: u16,
    ) -> SeqNumber {
        let t = counter(now);
        let index = Self::mss_index(mss);
        SeqNumber(((t & 0x1f) << 27) | (index << 24) | self.hash(tuple, peer_isn, t, index))
    }

    /// Checks the cookie acknowledged by `ack` (our ISN + 1) for the peer ISN `seq - 1`.
    /// Returns the MSS it encodes.
    pub fn decode(
        &self,
        now: Instant,
        tuple: &FourTuple,
        seq: SeqNumber,
        ack: SeqNumber,
    ) -> Option<u16> {
        let cookie = (ack - 1).0;
        let peer_isn = seq - 1;
        let t_bits = cookie >> 27;
        let index = (cookie >> 24) & 0x7;
        let now_t = counter(now);
        // The current and the previous period.
        let t = [now_t, now_t.wrapping_sub(1)]
            .into_iter()
            .find(|t| t & 0x1f == t_bits)?;
        (self.hash(tuple, peer_isn, t, index) == cookie & 0x00ff_ffff)
            .then(|| MSS_TABLE[index as usize])
    }

    /// Our TSval for a cookie SYN-ACK: the timestamp clock `ts_clock` with its low bits
    /// replaced by the options, never later than the clock.
    pub fn encode_ts(ts_clock: u32, window_scale: Option<u8>, sack_permitted: bool) -> u32 {
        let ws = window_scale.map_or(NO_WSCALE, |w| u32::from(w.min(14)));
        let bits = ws | (u32::from(sack_permitted) << 4);
        let v = (ts_clock & !TS_MASK) | bits;
        if (v.wrapping_sub(ts_clock) as i32) > 0 {
            v.wrapping_sub(1 << TS_BITS)
        } else {
            v
        }
    }

    /// The options carried by the TSecr of the completing ACK.
    pub fn decode_ts(tsecr: u32) -> (Option<u8>, bool) {
        let ws = tsecr & 0xf;
        let window_scale = (ws != NO_WSCALE).then_some(ws.min(14) as u8);
        (window_scale, tsecr & 0x10 != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, SocketAddrV4};

    fn tuple() -> FourTuple {
        FourTuple::new(
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80),
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 5555),
        )
    }

    #[test]
    fn round_trip_within_two_periods() {
        let c = SynCookies::new(SipKey([1; 16]));
        let now = Instant::from_millis(1_000_000);
        let peer = SeqNumber(12345);
        let iss = c.encode(now, &tuple(), peer, 1460);
        assert_eq!(c.decode(now, &tuple(), peer + 1, iss + 1), Some(1460));
        let later = now + crate::time::Duration::from_secs(64);
        assert_eq!(c.decode(later, &tuple(), peer + 1, iss + 1), Some(1460));
        let too_late = now + crate::time::Duration::from_secs(64 * 3);
        assert_eq!(c.decode(too_late, &tuple(), peer + 1, iss + 1), None);
    }

    #[test]
    fn forged_or_mismatched_cookies_fail() {
        let c = SynCookies::new(SipKey([1; 16]));
        let now = Instant::from_millis(5_000);
        let peer = SeqNumber(777);
        let iss = c.encode(now, &tuple(), peer, 1400);
        assert_eq!(
            c.decode(now, &tuple(), peer + 2, iss + 1),
            None,
            "other peer ISN"
        );
        assert_eq!(
            c.decode(now, &tuple(), peer + 1, iss + 2),
            None,
            "other cookie"
        );
        assert_eq!(
            c.decode(now, &tuple().reversed(), peer + 1, iss + 1),
            None,
            "other tuple"
        );
        let other = SynCookies::new(SipKey([2; 16]));
        assert_eq!(
            other.decode(now, &tuple(), peer + 1, iss + 1),
            None,
            "other key"
        );
        // A blind guess succeeds with probability 2^-24: none of 1000 guesses does.
        let hits = (0..1000u32)
            .filter(|i| {
                c.decode(now, &tuple(), peer + 1, SeqNumber(i * 4_000_037))
                    .is_some()
            })
            .count();
        assert_eq!(hits, 0);
    }

    #[test]
    fn mss_rounds_down_to_table() {
        assert_eq!(MSS_TABLE[SynCookies::mss_index(1460) as usize], 1460);
        assert_eq!(MSS_TABLE[SynCookies::mss_index(1459) as usize], 1440);
        assert_eq!(MSS_TABLE[SynCookies::mss_index(100) as usize], 536);
        assert_eq!(MSS_TABLE[SynCookies::mss_index(65535) as usize], 8960);
    }

    #[test]
    fn timestamp_carries_options_and_never_runs_ahead() {
        for clock in [0u32, 5, 31, 32, 1000, u32::MAX] {
            for ws in [None, Some(0), Some(7), Some(14)] {
                for sack in [false, true] {
                    let v = SynCookies::encode_ts(clock, ws, sack);
                    assert!((v.wrapping_sub(clock) as i32) <= 0, "{clock} {v}");
                    assert!(clock.wrapping_sub(v) < 64);
                    assert_eq!(SynCookies::decode_ts(v), (ws, sack));
                }
            }
        }
    }
}
