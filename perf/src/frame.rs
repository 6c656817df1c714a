//! The raw Ethernet frames of the L2 workload, and the reflector's MAC swap.
//!
//! A probe frame is Ethernet II with the local-experimental EtherType 0x88b5, then a
//! 4-byte magic, a sequence number and the sender's TSC at transmission (both big-endian),
//! then zero padding up to the requested size. Sizes are given as on the wire including the
//! 4-byte FCS (the usual 64-byte minimum), which the device adds: the mbuf holds size - 4.

/// IEEE 802 local experimental EtherType 1.
pub const ETHERTYPE_PROBE: u16 = 0x88b5;
/// Marks our probes among whatever else arrives.
pub const PROBE_MAGIC: [u8; 4] = *b"MGP1";
/// The frame check sequence the device appends.
pub const FCS_LEN: usize = 4;
/// The smallest frame on the wire, FCS included.
pub const MIN_FRAME: usize = 64;
/// The largest standard frame on the wire, FCS included.
pub const MAX_FRAME: usize = 1518;

const ETH_HEADER: usize = 14;
const MAGIC_AT: usize = ETH_HEADER;
const SEQ_AT: usize = MAGIC_AT + 4;
const TSC_AT: usize = SEQ_AT + 8;
const PROBE_END: usize = TSC_AT + 8;

/// The bytes an mbuf holds for a frame of `size` bytes on the wire, or an error for a
/// size outside 64..=1518.
pub fn data_len(size: usize) -> Result<usize, String> {
    if !(MIN_FRAME..=MAX_FRAME).contains(&size) {
        return Err(format!(
            "frame size {size} is outside {MIN_FRAME}..={MAX_FRAME} (bytes on the wire, FCS included)"
        ));
    }
    Ok(size - FCS_LEN)
}

/// A probe frame of `len` bytes (mbuf length) from `src` to `dst`, sequence and TSC zero.
pub fn probe_template(dst: [u8; 6], src: [u8; 6], len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len.max(PROBE_END)];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&ETHERTYPE_PROBE.to_be_bytes());
    f[MAGIC_AT..SEQ_AT].copy_from_slice(&PROBE_MAGIC);
    f
}

/// Writes the sequence number and TSC into a probe made from [`probe_template`].
#[inline]
pub fn stamp(frame: &mut [u8], seq: u64, tsc: u64) {
    if frame.len() >= PROBE_END {
        frame[SEQ_AT..TSC_AT].copy_from_slice(&seq.to_be_bytes());
        frame[TSC_AT..PROBE_END].copy_from_slice(&tsc.to_be_bytes());
    }
}

/// The sequence number and TSC of a probe, or `None` for any other frame.
#[inline]
pub fn parse_probe(frame: &[u8]) -> Option<(u64, u64)> {
    if frame.len() < PROBE_END
        || frame[12..14] != ETHERTYPE_PROBE.to_be_bytes()
        || frame[MAGIC_AT..SEQ_AT] != PROBE_MAGIC
    {
        return None;
    }
    let seq = u64::from_be_bytes(frame[SEQ_AT..TSC_AT].try_into().ok()?);
    let tsc = u64::from_be_bytes(frame[TSC_AT..PROBE_END].try_into().ok()?);
    Some((seq, tsc))
}

/// Swaps the destination and source MAC addresses in place (frames shorter than the two
/// addresses are left alone).
#[inline]
pub fn swap_macs(frame: &mut [u8]) {
    if frame.len() >= 12 {
        let (dst, rest) = frame.split_at_mut(6);
        dst.swap_with_slice(&mut rest[..6]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const B: [u8; 6] = [2, 0, 0, 0, 0, 2];

    #[test]
    fn sizes() {
        assert_eq!(data_len(64), Ok(60));
        assert_eq!(data_len(1518), Ok(1514));
        assert!(data_len(63).is_err());
        assert!(data_len(1519).is_err());
    }

    #[test]
    fn probe_round_trip() {
        let mut f = probe_template(B, A, 60);
        assert_eq!(f.len(), 60);
        stamp(&mut f, 7, 0x0102_0304_0506_0708);
        assert_eq!(&f[0..6], &B);
        assert_eq!(&f[6..12], &A);
        assert_eq!(&f[12..14], &[0x88, 0xb5]);
        assert_eq!(parse_probe(&f), Some((7, 0x0102_0304_0506_0708)));
        assert!(f[PROBE_END..].iter().all(|&b| b == 0));
    }

    #[test]
    fn rejects_other_frames() {
        let mut f = probe_template(B, A, 60);
        f[12] = 0x08;
        f[13] = 0x00;
        assert_eq!(parse_probe(&f), None);
        let mut g = probe_template(B, A, 60);
        g[MAGIC_AT] = b'X';
        assert_eq!(parse_probe(&g), None);
        assert_eq!(parse_probe(&g[..20]), None);
        assert_eq!(parse_probe(&[]), None);
    }

    #[test]
    fn mac_swap() {
        let mut f = probe_template(B, A, 60);
        swap_macs(&mut f);
        assert_eq!(&f[0..6], &A);
        assert_eq!(&f[6..12], &B);
        let mut short = [1u8, 2, 3];
        swap_macs(&mut short);
        assert_eq!(short, [1, 2, 3]);
    }
}
