//! IPv4 (RFC 791): the packet view, the header Repr, protocol numbers and address blocks.
//!
//! Owns the IPv4 header only. This engine is a host with no reassembly and no option
//! processing: [`Ipv4Repr::parse`] rejects fragments and headers with options as
//! [`Error::Unsupported`], and [`Ipv4Repr::emit`] writes a 20-byte header with DF set.
use core::fmt;
use core::net::Ipv4Addr;
use core::str::FromStr;

use super::checksum::{self, ChecksumCaps};
use super::{Error, Result};

/// The IPv4 protocol field (IANA "Assigned Internet Protocol Numbers").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpProtocol {
    Icmp,
    Tcp,
    Udp,
    Unknown(u8),
}

impl IpProtocol {
    pub const ICMP: u8 = 0x01;
    pub const TCP: u8 = 0x06;
    pub const UDP: u8 = 0x11;
}

impl From<u8> for IpProtocol {
    fn from(value: u8) -> Self {
        match value {
            Self::ICMP => IpProtocol::Icmp,
            Self::TCP => IpProtocol::Tcp,
            Self::UDP => IpProtocol::Udp,
            other => IpProtocol::Unknown(other),
        }
    }
}

impl From<IpProtocol> for u8 {
    fn from(value: IpProtocol) -> u8 {
        match value {
            IpProtocol::Icmp => IpProtocol::ICMP,
            IpProtocol::Tcp => IpProtocol::TCP,
            IpProtocol::Udp => IpProtocol::UDP,
            IpProtocol::Unknown(other) => other,
        }
    }
}

impl fmt::Display for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpProtocol::Icmp => f.write_str("ICMP"),
            IpProtocol::Tcp => f.write_str("TCP"),
            IpProtocol::Udp => f.write_str("UDP"),
            IpProtocol::Unknown(p) => write!(f, "0x{p:02x}"),
        }
    }
}

mod field {
    use core::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLG_OFF: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC_ADDR: Range<usize> = 12..16;
    pub const DST_ADDR: Range<usize> = 16..20;
}

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

/// The largest payload a 20-byte header can describe.
pub const MAX_PAYLOAD_LEN: usize = u16::MAX as usize - HEADER_LEN;

/// The TTL of packets this engine originates (RFC 1700's recommended default, Linux's too).
pub const DEFAULT_HOP_LIMIT: u8 = 64;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps `buffer` without checks; accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Ipv4Packet<T> {
        Ipv4Packet { buffer }
    }

    /// Wraps `buffer` after [`Ipv4Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Ipv4Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that no accessor can panic: the buffer holds the fixed header, the version is
    /// 4, the header length is at least 20 and fits, and the total length covers the header
    /// and fits. The buffer may be longer than the total length (Ethernet padding).
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 4 || self.header_len() < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if len < self.header_len() {
            return Err(Error::Truncated);
        }
        let total_len = usize::from(self.total_len());
        if total_len < self.header_len() {
            return Err(Error::Malformed);
        }
        if len < total_len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u16_at(&self, range: core::ops::Range<usize>) -> u16 {
        let d = &self.buffer.as_ref()[range];
        u16::from_be_bytes([d[0], d[1]])
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (the IHL field times four).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 0x03
    }

    /// Header plus payload length.
    pub fn total_len(&self) -> u16 {
        self.u16_at(field::LENGTH)
    }

    pub fn ident(&self) -> u16 {
        self.u16_at(field::IDENT)
    }

    pub fn dont_frag(&self) -> bool {
        self.u16_at(field::FLG_OFF) & FLAG_DF != 0
    }

    pub fn more_frags(&self) -> bool {
        self.u16_at(field::FLG_OFF) & FLAG_MF != 0
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (self.u16_at(field::FLG_OFF) & OFFSET_MASK) << 3
    }

    /// Any fragment: more fragments follow or this one is not the first.
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    /// The time-to-live field.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::PROTOCOL])
    }

    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    pub fn src_addr(&self) -> Ipv4Addr {
        let d = &self.buffer.as_ref()[field::SRC_ADDR];
        Ipv4Addr::new(d[0], d[1], d[2], d[3])
    }

    pub fn dst_addr(&self) -> Ipv4Addr {
        let d = &self.buffer.as_ref()[field::DST_ADDR];
        Ipv4Addr::new(d[0], d[1], d[2], d[3])
    }

    /// The header checksum is valid (the header sums to 0xffff).
    pub fn verify_checksum(&self) -> bool {
        checksum::sum(&self.buffer.as_ref()[..self.header_len()]) == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Ipv4Packet<&'a T> {
    /// The payload as delimited by the header and total lengths (padding excluded),
    /// borrowed for the buffer's lifetime.
    pub fn payload(&self) -> &'a [u8] {
        let range = self.header_len()..usize::from(self.total_len());
        &self.buffer.as_ref()[range]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    fn set_u16_at(&mut self, range: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[range].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_version(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (value << 4);
    }

    /// Sets the IHL field from a length in bytes (a multiple of four, at most 60).
    pub fn set_header_len(&mut self, value: usize) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ((value / 4) as u8 & 0x0f);
    }

    pub fn set_dscp(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & 0x03) | (value << 2);
    }

    pub fn set_ecn(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & !0x03) | (value & 0x03);
    }

    pub fn set_total_len(&mut self, value: u16) {
        self.set_u16_at(field::LENGTH, value)
    }

    pub fn set_ident(&mut self, value: u16) {
        self.set_u16_at(field::IDENT, value)
    }

    /// Clears the flags and the fragment offset.
    pub fn clear_flags(&mut self) {
        self.set_u16_at(field::FLG_OFF, 0)
    }

    pub fn set_dont_frag(&mut self, value: bool) {
        let raw = self.u16_at(field::FLG_OFF);
        let raw = if value { raw | FLAG_DF } else { raw & !FLAG_DF };
        self.set_u16_at(field::FLG_OFF, raw)
    }

    pub fn set_more_frags(&mut self, value: bool) {
        let raw = self.u16_at(field::FLG_OFF);
        let raw = if value { raw | FLAG_MF } else { raw & !FLAG_MF };
        self.set_u16_at(field::FLG_OFF, raw)
    }

    /// Sets the fragment offset from a value in bytes (a multiple of eight).
    pub fn set_frag_offset(&mut self, value: u16) {
        let raw = self.u16_at(field::FLG_OFF);
        self.set_u16_at(
            field::FLG_OFF,
            (raw & !OFFSET_MASK) | ((value >> 3) & OFFSET_MASK),
        )
    }

    pub fn set_hop_limit(&mut self, value: u8) {
        self.buffer.as_mut()[field::TTL] = value
    }

    pub fn set_next_header(&mut self, value: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = value.into()
    }

    pub fn set_checksum(&mut self, value: u16) {
        self.set_u16_at(field::CHECKSUM, value)
    }

    pub fn set_src_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&value.octets())
    }

    pub fn set_dst_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&value.octets())
    }

    /// Computes the header checksum and writes it.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(&self.buffer.as_ref()[..self.header_len()]);
        self.set_checksum(c)
    }

    /// The payload as delimited by the header and total lengths.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.header_len()..usize::from(self.total_len());
        &mut self.buffer.as_mut()[range]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Ipv4Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The meaning of an IPv4 header this engine accepts or sends: no options, no fragments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Repr {
    pub src_addr: Ipv4Addr,
    pub dst_addr: Ipv4Addr,
    pub next_header: IpProtocol,
    /// Payload length in bytes, at most [`MAX_PAYLOAD_LEN`].
    pub payload_len: usize,
    /// The time-to-live field.
    pub hop_limit: u8,
}

impl Ipv4Repr {
    /// Reads a header. Fails with `Truncated`/`Malformed` as [`Ipv4Packet::check_len`],
    /// `Checksum` if the header checksum is wrong and software must verify it
    /// (`caps.ipv4.verify_rx()`), and `Unsupported` for options or any fragment.
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv4Packet<T>, caps: &ChecksumCaps) -> Result<Ipv4Repr> {
        packet.check_len()?;
        // The checksum first: a corrupted header says nothing reliable about options.
        if caps.ipv4.verify_rx() && !packet.verify_checksum() {
            return Err(Error::Checksum);
        }
        if packet.header_len() > HEADER_LEN || packet.is_fragment() {
            return Err(Error::Unsupported);
        }
        Ok(Ipv4Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.total_len()) - packet.header_len(),
            hop_limit: packet.hop_limit(),
        })
    }

    /// Length of the header this Repr emits.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Length of the whole packet: header plus payload.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes a 20-byte header: DSCP/ECN 0, identification 0, DF set (RFC 6864 §4.1 lets
    /// atomic datagrams carry any identification), offset 0. The checksum is computed when
    /// `caps.ipv4.compute_tx()`, else left zero for the device. The buffer must hold at
    /// least the header; `payload_len` must not exceed [`MAX_PAYLOAD_LEN`] (it is clamped).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Ipv4Packet<T>,
        caps: &ChecksumCaps,
    ) {
        debug_assert!(self.payload_len <= MAX_PAYLOAD_LEN);
        let total_len = u16::try_from(self.buffer_len()).unwrap_or(u16::MAX);
        packet.set_version(4);
        packet.set_header_len(HEADER_LEN);
        packet.set_dscp(0);
        packet.set_ecn(0);
        packet.set_total_len(total_len);
        packet.set_ident(0);
        packet.clear_flags();
        packet.set_dont_frag(true);
        packet.set_hop_limit(self.hop_limit);
        packet.set_next_header(self.next_header);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        if caps.ipv4.compute_tx() {
            packet.fill_checksum();
        } else {
            packet.set_checksum(0);
        }
    }
}

/// Why an IPv4 address block was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("missing '/prefix' (expected an address block like 10.0.0.1/24)")]
    MissingPrefix,
    #[error("invalid IPv4 address before '/' (expected an address block like 10.0.0.1/24)")]
    BadAddress,
    #[error("invalid prefix length after '/' (expected a number from 0 to 32)")]
    BadPrefix,
    #[error("prefix length above 32")]
    PrefixTooLong,
}

/// An IPv4 address with a prefix length: an interface address and its subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    address: Ipv4Addr,
    prefix_len: u8,
}

impl Ipv4Cidr {
    /// Fails with [`CidrError::PrefixTooLong`] if `prefix_len > 32`.
    pub const fn new(address: Ipv4Addr, prefix_len: u8) -> core::result::Result<Self, CidrError> {
        if prefix_len > 32 {
            return Err(CidrError::PrefixTooLong);
        }
        Ok(Ipv4Cidr {
            address,
            prefix_len,
        })
    }

    pub const fn address(&self) -> Ipv4Addr {
        self.address
    }

    pub const fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    fn mask_bits(&self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix_len))
            .unwrap_or(0)
    }

    /// The subnet mask, e.g. 255.255.255.0 for /24.
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask_bits())
    }

    /// The network address: the address with the host bits cleared.
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.address) & self.mask_bits())
    }

    /// The directed broadcast address, or `None` for /31 (RFC 3021) and /32 which have none.
    pub fn broadcast(&self) -> Option<Ipv4Addr> {
        if self.prefix_len >= 31 {
            return None;
        }
        Some(Ipv4Addr::from(u32::from(self.address) | !self.mask_bits()))
    }

    /// `addr` is in this block.
    pub fn contains_addr(&self, addr: &Ipv4Addr) -> bool {
        u32::from(*addr) & self.mask_bits() == u32::from(self.address) & self.mask_bits()
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = CidrError;

    /// Parses `a.b.c.d/len`.
    fn from_str(s: &str) -> core::result::Result<Self, CidrError> {
        let (addr, prefix) = s.split_once('/').ok_or(CidrError::MissingPrefix)?;
        let address = addr
            .parse::<Ipv4Addr>()
            .map_err(|_| CidrError::BadAddress)?;
        if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|c| c.is_ascii_digit()) {
            return Err(CidrError::BadPrefix);
        }
        let prefix_len = prefix.parse::<u8>().map_err(|_| CidrError::BadPrefix)?;
        Ipv4Cidr::new(address, prefix_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Offload;

    // 10.0.0.1 -> 10.0.0.2, ICMP, TTL 64, DF, id 0, 4 bytes of payload.
    static PACKET_BYTES: [u8; 24] = [
        0x45, 0x00, 0x00, 0x18, 0x00, 0x00, 0x40, 0x00, 0x40, 0x01, 0x26, 0xe3, 0x0a, 0x00, 0x00,
        0x01, 0x0a, 0x00, 0x00, 0x02, 0xaa, 0xbb, 0xcc, 0xdd,
    ];

    fn repr() -> Ipv4Repr {
        Ipv4Repr {
            src_addr: Ipv4Addr::new(10, 0, 0, 1),
            dst_addr: Ipv4Addr::new(10, 0, 0, 2),
            next_header: IpProtocol::Icmp,
            payload_len: 4,
            hop_limit: 64,
        }
    }

    fn caps() -> ChecksumCaps {
        ChecksumCaps::default()
    }

    #[test]
    fn literal_checksum_is_valid() {
        // The literal was built by hand; check it independently of the view.
        assert_eq!(checksum::sum(&PACKET_BYTES[..20]), 0xffff);
    }

    #[test]
    fn parse_literal_packet() {
        let p = Ipv4Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 24);
        assert!(p.dont_frag() && !p.more_frags() && p.frag_offset() == 0);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.next_header(), IpProtocol::Icmp);
        assert_eq!(p.checksum(), 0x26e3);
        assert!(p.verify_checksum());
        assert_eq!(p.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(Ipv4Repr::parse(&p, &caps()).unwrap(), repr());
    }

    #[test]
    fn emit_gives_literal_bytes() {
        let mut bytes = [0xffu8; 24];
        let mut p = Ipv4Packet::new_unchecked(&mut bytes[..]);
        repr().emit(&mut p, &caps());
        p.payload_mut().copy_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(bytes, PACKET_BYTES);
        assert_eq!(repr().buffer_len(), 24);
    }

    #[test]
    fn emit_leaves_checksum_to_offload() {
        let mut bytes = [0xffu8; 24];
        let tx_offload = ChecksumCaps {
            ipv4: Offload::Tx,
            ..caps()
        };
        repr().emit(&mut Ipv4Packet::new_unchecked(&mut bytes[..]), &tx_offload);
        assert_eq!(&bytes[10..12], &[0, 0]);
        assert_eq!(&bytes[..10], &PACKET_BYTES[..10]);
    }

    #[test]
    fn padding_after_total_len_is_ignored() {
        let mut bytes = [0u8; 46];
        bytes[..24].copy_from_slice(&PACKET_BYTES);
        bytes[24..].fill(0xee);
        let p = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(Ipv4Repr::parse(&p, &caps()).unwrap().payload_len, 4);
    }

    fn with(f: impl FnOnce(&mut Ipv4Packet<&mut [u8]>)) -> [u8; 24] {
        let mut bytes = PACKET_BYTES;
        let mut p = Ipv4Packet::new_unchecked(&mut bytes[..]);
        f(&mut p);
        p.fill_checksum();
        bytes
    }

    #[test]
    fn malformed_headers() {
        for len in 0..20 {
            assert_eq!(
                Ipv4Packet::new_checked(&PACKET_BYTES[..len]).unwrap_err(),
                Error::Truncated
            );
        }
        // Buffer shorter than total length.
        assert_eq!(
            Ipv4Packet::new_checked(&PACKET_BYTES[..23]).unwrap_err(),
            Error::Truncated
        );
        let v6 = with(|p| p.set_version(6));
        assert_eq!(
            Ipv4Packet::new_checked(&v6[..]).unwrap_err(),
            Error::Malformed
        );
        let ihl4 = with(|p| p.set_header_len(16));
        assert_eq!(
            Ipv4Packet::new_checked(&ihl4[..]).unwrap_err(),
            Error::Malformed
        );
        let short_total = with(|p| p.set_total_len(19));
        assert_eq!(
            Ipv4Packet::new_checked(&short_total[..]).unwrap_err(),
            Error::Malformed
        );
        // IHL 6 (24 bytes) with total length 24: a valid view with an empty payload.
        let ihl6 = with(|p| p.set_header_len(24));
        let p = Ipv4Packet::new_checked(&ihl6[..]).unwrap();
        assert!(p.payload().is_empty());
        // IHL 15 (60 bytes) in a 24-byte buffer.
        let mut ihl15 = PACKET_BYTES;
        ihl15[0] = 0x4f;
        assert_eq!(
            Ipv4Packet::new_checked(&ihl15[..]).unwrap_err(),
            Error::Truncated
        );
        // Total length 25 in a 24-byte buffer.
        let long_total = with(|p| p.set_total_len(25));
        assert_eq!(
            Ipv4Packet::new_checked(&long_total[..]).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn options_and_fragments_are_unsupported() {
        let mut opts = [0u8; 28];
        opts[..20].copy_from_slice(&PACKET_BYTES[..20]);
        opts[20..24].copy_from_slice(&[0x01, 0x01, 0x01, 0x00]); // NOP NOP NOP EOL
        opts[24..].copy_from_slice(&PACKET_BYTES[20..]);
        {
            let mut p = Ipv4Packet::new_unchecked(&mut opts[..]);
            p.set_header_len(24);
            p.set_total_len(28);
            p.fill_checksum();
        }
        let p = Ipv4Packet::new_checked(&opts[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(Ipv4Repr::parse(&p, &caps()), Err(Error::Unsupported));

        let mf = with(|p| p.set_more_frags(true));
        let p = Ipv4Packet::new_checked(&mf[..]).unwrap();
        assert!(p.is_fragment());
        assert_eq!(Ipv4Repr::parse(&p, &caps()), Err(Error::Unsupported));

        let last = with(|p| p.set_frag_offset(1480));
        let p = Ipv4Packet::new_checked(&last[..]).unwrap();
        assert_eq!(p.frag_offset(), 1480);
        assert!(p.dont_frag() && !p.more_frags());
        assert_eq!(Ipv4Repr::parse(&p, &caps()), Err(Error::Unsupported));
    }

    #[test]
    fn bad_checksum_unless_offloaded() {
        let mut bytes = PACKET_BYTES;
        bytes[11] ^= 0x01;
        let p = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert!(!p.verify_checksum());
        assert_eq!(Ipv4Repr::parse(&p, &caps()), Err(Error::Checksum));
        let rx_offload = ChecksumCaps {
            ipv4: Offload::Rx,
            ..caps()
        };
        assert_eq!(Ipv4Repr::parse(&p, &rx_offload), Ok(repr()));
    }

    #[test]
    fn setters_keep_neighbouring_bits() {
        let mut bytes = PACKET_BYTES;
        let mut p = Ipv4Packet::new_unchecked(&mut bytes[..]);
        p.set_dscp(0x2e);
        p.set_ecn(0x01);
        assert_eq!((p.dscp(), p.ecn()), (0x2e, 0x01));
        p.set_frag_offset(8 * 0x1fff);
        p.set_more_frags(true);
        assert!(p.dont_frag() && p.more_frags());
        assert_eq!(p.frag_offset(), 8 * 0x1fff);
        p.set_dont_frag(false);
        assert!(!p.dont_frag() && p.more_frags());
        assert_eq!((p.version(), p.header_len()), (4, 20));
    }

    #[test]
    fn protocols() {
        assert_eq!(IpProtocol::from(6), IpProtocol::Tcp);
        assert_eq!(IpProtocol::from(17), IpProtocol::Udp);
        assert_eq!(IpProtocol::from(1), IpProtocol::Icmp);
        assert_eq!(IpProtocol::from(89), IpProtocol::Unknown(89));
        for v in 0..=255u8 {
            assert_eq!(u8::from(IpProtocol::from(v)), v);
        }
    }

    #[test]
    fn cidr_arithmetic() {
        let c: Ipv4Cidr = "10.0.1.7/24".parse().unwrap();
        assert_eq!(c.address(), Ipv4Addr::new(10, 0, 1, 7));
        assert_eq!(c.prefix_len(), 24);
        assert_eq!(c.network(), Ipv4Addr::new(10, 0, 1, 0));
        assert_eq!(c.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(c.broadcast(), Some(Ipv4Addr::new(10, 0, 1, 255)));
        assert!(c.contains_addr(&Ipv4Addr::new(10, 0, 1, 200)));
        assert!(!c.contains_addr(&Ipv4Addr::new(10, 0, 2, 1)));
        assert_eq!(c.to_string(), "10.0.1.7/24");

        let all = Ipv4Cidr::new(Ipv4Addr::new(1, 2, 3, 4), 0).unwrap();
        assert_eq!(all.network(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(all.netmask(), Ipv4Addr::UNSPECIFIED);
        assert!(all.contains_addr(&Ipv4Addr::new(200, 1, 1, 1)));
        assert_eq!(all.broadcast(), Some(Ipv4Addr::BROADCAST));

        let host = Ipv4Cidr::new(Ipv4Addr::new(1, 2, 3, 4), 32).unwrap();
        assert_eq!(host.broadcast(), None);
        assert!(host.contains_addr(&Ipv4Addr::new(1, 2, 3, 4)));
        assert!(!host.contains_addr(&Ipv4Addr::new(1, 2, 3, 5)));
        let p2p = Ipv4Cidr::new(Ipv4Addr::new(1, 2, 3, 4), 31).unwrap();
        assert_eq!(p2p.broadcast(), None);
        assert!(p2p.contains_addr(&Ipv4Addr::new(1, 2, 3, 5)));
    }

    #[test]
    fn cidr_errors() {
        assert_eq!(
            Ipv4Cidr::new(Ipv4Addr::LOCALHOST, 33),
            Err(CidrError::PrefixTooLong)
        );
        assert_eq!(
            "10.0.0.1".parse::<Ipv4Cidr>(),
            Err(CidrError::MissingPrefix)
        );
        assert_eq!("10.0.0/24".parse::<Ipv4Cidr>(), Err(CidrError::BadAddress));
        assert_eq!(
            "10.0.0.256/24".parse::<Ipv4Cidr>(),
            Err(CidrError::BadAddress)
        );
        assert_eq!("10.0.0.1/".parse::<Ipv4Cidr>(), Err(CidrError::BadPrefix));
        assert_eq!("10.0.0.1/+8".parse::<Ipv4Cidr>(), Err(CidrError::BadPrefix));
        assert_eq!("10.0.0.1/2x".parse::<Ipv4Cidr>(), Err(CidrError::BadPrefix));
        assert_eq!(
            "10.0.0.1/24/1".parse::<Ipv4Cidr>(),
            Err(CidrError::BadPrefix)
        );
        assert_eq!(
            "10.0.0.1/33".parse::<Ipv4Cidr>(),
            Err(CidrError::PrefixTooLong)
        );
        assert_eq!(
            "10.0.0.1/300".parse::<Ipv4Cidr>(),
            Err(CidrError::BadPrefix)
        );
        assert!(CidrError::MissingPrefix.to_string().contains("10.0.0.1/24"));
    }
}
