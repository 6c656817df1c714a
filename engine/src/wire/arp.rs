//! ARP (RFC 826): the packet view and the Repr of Ethernet/IPv4 ARP.
//!
//! The view reads any hardware and protocol address lengths (they are in the packet), so
//! that a well-formed ARP packet for another medium is told apart from a truncated one;
//! [`ArpRepr`] accepts only Ethernet (hardware type 1, length 6) over IPv4 (protocol type
//! 0x0800, length 4) and answers [`Error::Unsupported`] for the rest. Owns no cache: that
//! is the interface's.
use core::net::Ipv4Addr;

use super::ethernet::{EthernetAddress, EthernetProtocol};
use super::{Error, Result};

/// The ARP hardware type of Ethernet.
pub const HARDWARE_ETHERNET: u16 = 0x0001;

/// The opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpOperation {
    Request,
    Reply,
    Unknown(u16),
}

impl ArpOperation {
    pub const REQUEST: u16 = 0x0001;
    pub const REPLY: u16 = 0x0002;
}

impl From<u16> for ArpOperation {
    fn from(value: u16) -> Self {
        match value {
            Self::REQUEST => ArpOperation::Request,
            Self::REPLY => ArpOperation::Reply,
            other => ArpOperation::Unknown(other),
        }
    }
}

impl From<ArpOperation> for u16 {
    fn from(value: ArpOperation) -> u16 {
        match value {
            ArpOperation::Request => ArpOperation::REQUEST,
            ArpOperation::Reply => ArpOperation::REPLY,
            ArpOperation::Unknown(other) => other,
        }
    }
}

mod field {
    use core::ops::Range;
    pub const HTYPE: Range<usize> = 0..2;
    pub const PTYPE: Range<usize> = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Range<usize> = 6..8;
    /// Start of the variable part: SHA, SPA, THA, TPA.
    pub const ADDRESSES: usize = 8;

    pub const fn sha(hlen: usize, _plen: usize) -> Range<usize> {
        ADDRESSES..ADDRESSES + hlen
    }
    pub const fn spa(hlen: usize, plen: usize) -> Range<usize> {
        let start = sha(hlen, plen).end;
        start..start + plen
    }
    pub const fn tha(hlen: usize, plen: usize) -> Range<usize> {
        let start = spa(hlen, plen).end;
        start..start + hlen
    }
    pub const fn tpa(hlen: usize, plen: usize) -> Range<usize> {
        let start = tha(hlen, plen).end;
        start..start + plen
    }
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const ETHERNET_IPV4_LEN: usize = field::tpa(6, 4).end;

/// A view of an ARP packet, of any address lengths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps `buffer` without checks; accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> ArpPacket<T> {
        ArpPacket { buffer }
    }

    /// Wraps `buffer` after [`ArpPacket::check_len`].
    pub fn new_checked(buffer: T) -> Result<ArpPacket<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Err(Truncated)` unless the buffer holds the fixed part and the four addresses of
    /// the lengths it announces. Trailing bytes (Ethernet padding) are allowed.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < field::ADDRESSES || len < field::tpa(self.hardware_len(), self.protocol_len()).end
        {
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

    pub fn hardware_type(&self) -> u16 {
        self.u16_at(field::HTYPE)
    }

    pub fn protocol_type(&self) -> EthernetProtocol {
        EthernetProtocol::from(self.u16_at(field::PTYPE))
    }

    pub fn hardware_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::HLEN])
    }

    pub fn protocol_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::PLEN])
    }

    pub fn operation(&self) -> ArpOperation {
        ArpOperation::from(self.u16_at(field::OPER))
    }

    pub fn source_hardware_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[field::sha(self.hardware_len(), self.protocol_len())]
    }

    pub fn source_protocol_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[field::spa(self.hardware_len(), self.protocol_len())]
    }

    pub fn target_hardware_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[field::tha(self.hardware_len(), self.protocol_len())]
    }

    pub fn target_protocol_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[field::tpa(self.hardware_len(), self.protocol_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    fn set_u16_at(&mut self, range: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[range].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_hardware_type(&mut self, value: u16) {
        self.set_u16_at(field::HTYPE, value)
    }

    pub fn set_protocol_type(&mut self, value: EthernetProtocol) {
        self.set_u16_at(field::PTYPE, value.into())
    }

    pub fn set_hardware_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::HLEN] = value
    }

    pub fn set_protocol_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::PLEN] = value
    }

    pub fn set_operation(&mut self, value: ArpOperation) {
        self.set_u16_at(field::OPER, value.into())
    }

    /// Writes the source hardware address; `value` must have the hardware length.
    pub fn set_source_hardware_addr(&mut self, value: &[u8]) {
        let range = field::sha(self.hardware_len(), self.protocol_len());
        self.buffer.as_mut()[range].copy_from_slice(value)
    }

    /// Writes the source protocol address; `value` must have the protocol length.
    pub fn set_source_protocol_addr(&mut self, value: &[u8]) {
        let range = field::spa(self.hardware_len(), self.protocol_len());
        self.buffer.as_mut()[range].copy_from_slice(value)
    }

    /// Writes the target hardware address; `value` must have the hardware length.
    pub fn set_target_hardware_addr(&mut self, value: &[u8]) {
        let range = field::tha(self.hardware_len(), self.protocol_len());
        self.buffer.as_mut()[range].copy_from_slice(value)
    }

    /// Writes the target protocol address; `value` must have the protocol length.
    pub fn set_target_protocol_addr(&mut self, value: &[u8]) {
        let range = field::tpa(self.hardware_len(), self.protocol_len());
        self.buffer.as_mut()[range].copy_from_slice(value)
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for ArpPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The meaning of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpRepr {
    pub operation: ArpOperation,
    pub source_hardware_addr: EthernetAddress,
    pub source_protocol_addr: Ipv4Addr,
    pub target_hardware_addr: EthernetAddress,
    pub target_protocol_addr: Ipv4Addr,
}

impl ArpRepr {
    /// Reads an Ethernet/IPv4 ARP packet: `Truncated` as [`ArpPacket::check_len`],
    /// `Unsupported` for any other hardware type, protocol type or address length. Any
    /// opcode is accepted (RFC 826 merges the sender before looking at the opcode).
    pub fn parse<T: AsRef<[u8]>>(packet: &ArpPacket<T>) -> Result<ArpRepr> {
        packet.check_len()?;
        if packet.hardware_type() != HARDWARE_ETHERNET
            || packet.protocol_type() != EthernetProtocol::Ipv4
            || packet.hardware_len() != 6
            || packet.protocol_len() != 4
        {
            return Err(Error::Unsupported);
        }
        let ip = |b: &[u8]| Ipv4Addr::new(b[0], b[1], b[2], b[3]);
        Ok(ArpRepr {
            operation: packet.operation(),
            source_hardware_addr: EthernetAddress::from_bytes(packet.source_hardware_addr()),
            source_protocol_addr: ip(packet.source_protocol_addr()),
            target_hardware_addr: EthernetAddress::from_bytes(packet.target_hardware_addr()),
            target_protocol_addr: ip(packet.target_protocol_addr()),
        })
    }

    /// Length of the packet this Repr emits: 28 bytes.
    pub const fn buffer_len(&self) -> usize {
        ETHERNET_IPV4_LEN
    }

    /// Same as [`ArpRepr::buffer_len`]: ARP is all header.
    pub const fn header_len(&self) -> usize {
        ETHERNET_IPV4_LEN
    }

    /// Writes the packet into `packet`, which must hold [`ETHERNET_IPV4_LEN`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut ArpPacket<T>) {
        packet.set_hardware_type(HARDWARE_ETHERNET);
        packet.set_protocol_type(EthernetProtocol::Ipv4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(self.operation);
        packet.set_source_hardware_addr(&self.source_hardware_addr.0);
        packet.set_source_protocol_addr(&self.source_protocol_addr.octets());
        packet.set_target_hardware_addr(&self.target_hardware_addr.0);
        packet.set_target_protocol_addr(&self.target_protocol_addr.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Who has 10.0.0.2? Tell 10.0.0.1 (02:00:00:00:00:01).
    static REQUEST_BYTES: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x0a,
        0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x02,
    ];

    fn request() -> ArpRepr {
        ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: EthernetAddress([0x02, 0, 0, 0, 0, 0x01]),
            source_protocol_addr: Ipv4Addr::new(10, 0, 0, 1),
            target_hardware_addr: EthernetAddress::UNSPECIFIED,
            target_protocol_addr: Ipv4Addr::new(10, 0, 0, 2),
        }
    }

    #[test]
    fn parse_literal_request() {
        let p = ArpPacket::new_checked(&REQUEST_BYTES[..]).unwrap();
        assert_eq!(p.hardware_type(), 1);
        assert_eq!(p.protocol_type(), EthernetProtocol::Ipv4);
        assert_eq!((p.hardware_len(), p.protocol_len()), (6, 4));
        assert_eq!(p.operation(), ArpOperation::Request);
        assert_eq!(p.target_protocol_addr(), &[10, 0, 0, 2]);
        assert_eq!(ArpRepr::parse(&p).unwrap(), request());
    }

    #[test]
    fn emit_gives_literal_bytes() {
        let mut bytes = [0xffu8; 28];
        request().emit(&mut ArpPacket::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, REQUEST_BYTES);
        assert_eq!(request().buffer_len(), 28);
    }

    #[test]
    fn reply_round_trip_with_padding() {
        let reply = ArpRepr {
            operation: ArpOperation::Reply,
            ..request()
        };
        let mut bytes = [0u8; 46];
        reply.emit(&mut ArpPacket::new_unchecked(&mut bytes[..]));
        assert_eq!(&bytes[6..8], &[0x00, 0x02]);
        assert_eq!(&bytes[28..], &[0u8; 18]);
        let p = ArpPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!(ArpRepr::parse(&p).unwrap(), reply);
    }

    #[test]
    fn unknown_opcode_is_kept() {
        let mut bytes = REQUEST_BYTES;
        bytes[7] = 9;
        let p = ArpPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!(
            ArpRepr::parse(&p).unwrap().operation,
            ArpOperation::Unknown(9)
        );
        assert_eq!(u16::from(ArpOperation::Unknown(9)), 9);
    }

    #[test]
    fn truncated() {
        for len in 0..28 {
            assert_eq!(
                ArpPacket::new_checked(&REQUEST_BYTES[..len]).unwrap_err(),
                Error::Truncated
            );
        }
        // Announced lengths larger than the buffer.
        let mut bytes = REQUEST_BYTES;
        bytes[4] = 0xff;
        assert_eq!(
            ArpPacket::new_checked(&bytes[..]).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn other_media_are_unsupported() {
        let cases: [(usize, u8); 5] = [(1, 0x06), (2, 0x86), (3, 0xdd), (4, 0x08), (5, 0x10)];
        for (at, value) in cases {
            let mut bytes = [0u8; 64];
            bytes[..28].copy_from_slice(&REQUEST_BYTES);
            bytes[at] = value;
            let p = ArpPacket::new_checked(&bytes[..]).unwrap();
            assert_eq!(
                ArpRepr::parse(&p),
                Err(Error::Unsupported),
                "byte {at} = {value:#x}"
            );
        }
        // Protocol length 16 (IPv6-sized) in a 28-byte buffer is too short before unsupported.
        let mut bytes = REQUEST_BYTES;
        bytes[5] = 16;
        assert_eq!(
            ArpPacket::new_checked(&bytes[..]).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn variable_length_accessors() {
        // hlen 2, plen 1: 8 + 2*(2+1) = 14 bytes.
        let bytes = [
            0x00, 0x06, 0x08, 0x00, 2, 1, 0x00, 0x01, 0xa1, 0xa2, 0xb1, 0xc1, 0xc2, 0xd1,
        ];
        let p = ArpPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.source_hardware_addr(), &[0xa1, 0xa2]);
        assert_eq!(p.source_protocol_addr(), &[0xb1]);
        assert_eq!(p.target_hardware_addr(), &[0xc1, 0xc2]);
        assert_eq!(p.target_protocol_addr(), &[0xd1]);
        assert_eq!(ArpRepr::parse(&p), Err(Error::Unsupported));
    }
}
