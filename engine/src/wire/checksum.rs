//! The Internet checksum (RFC 1071) and the IPv4 pseudo-header sum.
use core::net::Ipv4Addr;

/// One's-complement sum of `data` as big-endian 16-bit words, folded to 16 bits but not
/// complemented. An odd trailing byte is padded with zero.
pub fn sum(data: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        // Four 16-bit words at a time; a u64 accumulator cannot overflow for any frame.
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]))
            + u64::from(u16::from_be_bytes([c[2], c[3]]))
            + u64::from(u16::from_be_bytes([c[4], c[5]]))
            + u64::from(u16::from_be_bytes([c[6], c[7]]));
    }
    let mut words = chunks.remainder().chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [b] = words.remainder() {
        acc += u64::from(u16::from_be_bytes([*b, 0]));
    }
    fold(acc)
}

/// Folds a wide one's-complement accumulator to 16 bits.
pub fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Adds folded partial sums.
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&s| u64::from(s)).sum())
}

/// The IPv4 pseudo-header sum (RFC 9293 §3.1) for an upper-layer protocol and length.
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u16 {
    let s = src.octets();
    let d = dst.octets();
    fold(
        u64::from(u16::from_be_bytes([s[0], s[1]]))
            + u64::from(u16::from_be_bytes([s[2], s[3]]))
            + u64::from(u16::from_be_bytes([d[0], d[1]]))
            + u64::from(u16::from_be_bytes([d[2], d[3]]))
            + u64::from(protocol)
            + u64::from(length),
    )
}

/// The checksum field value for `data`: the complement of its sum.
pub fn checksum(data: &[u8]) -> u16 {
    !sum(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
        assert_eq!(
            sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }

    #[test]
    fn checksummed_data_sums_to_ffff() {
        let mut data = [
            0x45u8, 0x00, 0x00, 0x1c, 0x00, 0x00, 0x40, 0x00, 0x40, 0x01, 0, 0, 10, 0, 0, 1, 10, 0,
            0, 2,
        ];
        let c = checksum(&data);
        data[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(sum(&data), 0xffff);
    }
}

/// Who computes and verifies one protocol's checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Offload {
    /// Software verifies on receive and computes on transmit.
    #[default]
    None,
    /// The device verified on receive; software still computes on transmit.
    Rx,
    /// The device computes on transmit; software verifies on receive. For TCP the
    /// checksum field must then hold the pseudo-header sum (DPDK's convention).
    Tx,
    /// The device does both.
    Both,
}

impl Offload {
    /// Software must verify received checksums.
    pub fn verify_rx(self) -> bool {
        matches!(self, Offload::None | Offload::Tx)
    }
    /// Software must compute transmitted checksums.
    pub fn compute_tx(self) -> bool {
        matches!(self, Offload::None | Offload::Rx)
    }
}

/// Checksum offloads per protocol, as negotiated with the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChecksumCaps {
    pub ipv4: Offload,
    pub icmpv4: Offload,
    pub tcp: Offload,
}
