//! Ethernet II frames (IEEE 802.3 with an EtherType): the view, the addresses, the Repr.
//!
//! Owns the 14-byte header only. 802.1Q/802.1ad tags are not parsed: a tagged frame has the
//! tag's TPID as its EtherType and therefore reads as [`EthernetProtocol::Unknown`].
//! No frame check sequence: devices strip it.
use core::fmt;
use core::str::FromStr;

use super::{Error, Result};

/// A 48-bit IEEE MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: EthernetAddress = EthernetAddress([0xff; 6]);
    /// 00:00:00:00:00:00, used as the unknown target of an ARP request.
    pub const UNSPECIFIED: EthernetAddress = EthernetAddress([0x00; 6]);

    /// The address from the first six bytes of `data`.
    ///
    /// # Panics
    /// If `data` is shorter than six bytes. Callers pass slices of checked views.
    pub fn from_bytes(data: &[u8]) -> EthernetAddress {
        let mut bytes = [0u8; 6];
        bytes.copy_from_slice(&data[..6]);
        EthernetAddress(bytes)
    }

    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// The group bit (least significant bit of the first octet) is set. Broadcast is a
    /// multicast address by this definition.
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// An individual address that is not all zeros.
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast() && *self != Self::UNSPECIFIED
    }

    /// The locally administered bit (second least significant bit of the first octet).
    pub const fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

impl fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// Why a string is not a MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseAddressError {
    #[error("a MAC address has six groups of two hex digits separated by ':' or '-'")]
    Format,
}

impl FromStr for EthernetAddress {
    type Err = ParseAddressError;

    /// Accepts `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff`, either case.
    fn from_str(s: &str) -> core::result::Result<Self, Self::Err> {
        let sep = if s.contains('-') { '-' } else { ':' };
        let mut bytes = [0u8; 6];
        let mut groups = s.split(sep);
        for byte in bytes.iter_mut() {
            let group = groups.next().ok_or(ParseAddressError::Format)?;
            if group.len() != 2 || !group.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(ParseAddressError::Format);
            }
            *byte = u8::from_str_radix(group, 16).map_err(|_| ParseAddressError::Format)?;
        }
        if groups.next().is_some() {
            return Err(ParseAddressError::Format);
        }
        Ok(EthernetAddress(bytes))
    }
}

/// The EtherType field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EthernetProtocol {
    Ipv4,
    Arp,
    /// Anything else, including 802.1Q (0x8100) and 802.1ad (0x88a8) tags and IPv6.
    Unknown(u16),
}

impl EthernetProtocol {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    /// IPv6 (RFC 2464), which this engine does not speak: read as `Unknown(0x86dd)`.
    pub const IPV6: u16 = 0x86dd;
    /// 802.1Q customer VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// 802.1ad service VLAN tag (QinQ).
    pub const QINQ: u16 = 0x88a8;

    /// An 802.1Q or 802.1ad tag: the frame is VLAN-tagged.
    pub fn is_vlan_tag(self) -> bool {
        matches!(u16::from(self), Self::VLAN | Self::QINQ)
    }

    /// IPv6.
    pub fn is_ipv6(self) -> bool {
        u16::from(self) == Self::IPV6
    }
}

impl From<u16> for EthernetProtocol {
    fn from(value: u16) -> Self {
        match value {
            Self::IPV4 => EthernetProtocol::Ipv4,
            Self::ARP => EthernetProtocol::Arp,
            other => EthernetProtocol::Unknown(other),
        }
    }
}

impl From<EthernetProtocol> for u16 {
    fn from(value: EthernetProtocol) -> u16 {
        match value {
            EthernetProtocol::Ipv4 => EthernetProtocol::IPV4,
            EthernetProtocol::Arp => EthernetProtocol::ARP,
            EthernetProtocol::Unknown(other) => other,
        }
    }
}

impl fmt::Display for EthernetProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EthernetProtocol::Ipv4 => f.write_str("IPv4"),
            EthernetProtocol::Arp => f.write_str("ARP"),
            EthernetProtocol::Unknown(t) => write!(f, "0x{t:04x}"),
        }
    }
}

mod field {
    use core::ops::{Range, RangeFrom};
    pub const DESTINATION: Range<usize> = 0..6;
    pub const SOURCE: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    pub const PAYLOAD: RangeFrom<usize> = 14..;
}

/// Length of the Ethernet II header.
pub const HEADER_LEN: usize = field::PAYLOAD.start;

/// A view of an Ethernet II frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps `buffer` without checking its length; accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> EthernetFrame<T> {
        EthernetFrame { buffer }
    }

    /// Wraps `buffer` after checking it holds a whole header.
    pub fn new_checked(buffer: T) -> Result<EthernetFrame<T>> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// `Err(Truncated)` if the buffer is shorter than the header.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Header length plus `payload_len`.
    pub const fn buffer_len(payload_len: usize) -> usize {
        HEADER_LEN + payload_len
    }

    pub fn dst_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::DESTINATION])
    }

    pub fn src_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::SOURCE])
    }

    pub fn ethertype(&self) -> EthernetProtocol {
        let d = &self.buffer.as_ref()[field::ETHERTYPE];
        EthernetProtocol::from(u16::from_be_bytes([d[0], d[1]]))
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> EthernetFrame<&'a T> {
    /// The bytes after the header, borrowed for the buffer's lifetime.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    pub fn set_dst_addr(&mut self, value: EthernetAddress) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&value.0);
    }

    pub fn set_src_addr(&mut self, value: EthernetAddress) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&value.0);
    }

    pub fn set_ethertype(&mut self, value: EthernetProtocol) {
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&u16::from(value).to_be_bytes());
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for EthernetFrame<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The meaning of an Ethernet II header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EthernetRepr {
    pub src_addr: EthernetAddress,
    pub dst_addr: EthernetAddress,
    pub ethertype: EthernetProtocol,
}

impl EthernetRepr {
    /// Reads the header of a checked frame. Every header is well formed; this cannot fail
    /// on a frame from [`EthernetFrame::new_checked`], but checks the length anyway.
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> Result<EthernetRepr> {
        frame.check_len()?;
        Ok(EthernetRepr {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            ethertype: frame.ethertype(),
        })
    }

    /// Length of the header this Repr emits.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Length of a frame with this header and `payload_len` bytes of payload.
    pub const fn buffer_len(&self, payload_len: usize) -> usize {
        HEADER_LEN + payload_len
    }

    /// Writes the header into `frame`, which must hold at least [`HEADER_LEN`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut EthernetFrame<T>) {
        frame.set_src_addr(self.src_addr);
        frame.set_dst_addr(self.dst_addr);
        frame.set_ethertype(self.ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // dst 01:02:03:04:05:06, src 11:12:13:14:15:16, IPv4, 4 bytes of payload.
    static FRAME_BYTES: [u8; 18] = [
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x08, 0x00, 0xaa,
        0xbb, 0xcc, 0xdd,
    ];

    fn repr() -> EthernetRepr {
        EthernetRepr {
            dst_addr: EthernetAddress([0x01, 0x02, 0x03, 0x04, 0x05, 0x06]),
            src_addr: EthernetAddress([0x11, 0x12, 0x13, 0x14, 0x15, 0x16]),
            ethertype: EthernetProtocol::Ipv4,
        }
    }

    #[test]
    fn parse_literal_frame() {
        let frame = EthernetFrame::new_checked(&FRAME_BYTES[..]).unwrap();
        assert_eq!(frame.dst_addr(), EthernetAddress([1, 2, 3, 4, 5, 6]));
        assert_eq!(
            frame.src_addr(),
            EthernetAddress([0x11, 0x12, 0x13, 0x14, 0x15, 0x16])
        );
        assert_eq!(frame.ethertype(), EthernetProtocol::Ipv4);
        assert_eq!(frame.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(EthernetRepr::parse(&frame).unwrap(), repr());
    }

    #[test]
    fn emit_gives_literal_bytes() {
        let mut bytes = [0u8; 18];
        let mut frame = EthernetFrame::new_unchecked(&mut bytes[..]);
        repr().emit(&mut frame);
        frame
            .payload_mut()
            .copy_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(bytes, FRAME_BYTES);
        assert_eq!(repr().buffer_len(4), 18);
    }

    #[test]
    fn short_buffers_are_truncated() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                EthernetFrame::new_checked(&FRAME_BYTES[..len]).unwrap_err(),
                Error::Truncated
            );
        }
        let header_only = EthernetFrame::new_checked(&FRAME_BYTES[..HEADER_LEN]).unwrap();
        assert!(header_only.payload().is_empty());
    }

    #[test]
    fn ethertypes() {
        assert_eq!(EthernetProtocol::from(0x0806), EthernetProtocol::Arp);
        assert_eq!(
            EthernetProtocol::from(0x86dd),
            EthernetProtocol::Unknown(0x86dd)
        );
        let vlan = EthernetProtocol::from(0x8100);
        assert_eq!(vlan, EthernetProtocol::Unknown(0x8100));
        assert!(EthernetProtocol::from(0x86dd).is_ipv6());
        assert!(!vlan.is_ipv6() && !EthernetProtocol::Ipv4.is_ipv6());
        assert!(vlan.is_vlan_tag());
        assert!(EthernetProtocol::from(0x88a8).is_vlan_tag());
        assert!(!EthernetProtocol::Ipv4.is_vlan_tag());
        for t in [0x0800u16, 0x0806, 0x8100, 0xffff, 0] {
            assert_eq!(u16::from(EthernetProtocol::from(t)), t);
        }
    }

    #[test]
    fn address_classes() {
        let b = EthernetAddress::BROADCAST;
        assert!(b.is_broadcast() && b.is_multicast() && !b.is_unicast());
        let m = EthernetAddress([0x01, 0x00, 0x5e, 0x00, 0x00, 0x01]);
        assert!(!m.is_broadcast() && m.is_multicast() && !m.is_unicast());
        let u = EthernetAddress([0x02, 0x00, 0x00, 0x00, 0x00, 0x01]);
        assert!(!u.is_broadcast() && !u.is_multicast() && u.is_unicast() && u.is_local());
        assert!(!EthernetAddress::UNSPECIFIED.is_unicast());
    }

    #[test]
    fn address_display_and_parse() {
        let a = EthernetAddress([0xaa, 0xbb, 0xcc, 0x0d, 0xee, 0xff]);
        assert_eq!(a.to_string(), "aa:bb:cc:0d:ee:ff");
        assert_eq!("aa:bb:cc:0d:ee:ff".parse::<EthernetAddress>(), Ok(a));
        assert_eq!("AA-BB-CC-0D-EE-FF".parse::<EthernetAddress>(), Ok(a));
        for bad in [
            "",
            "aa:bb:cc:dd:ee",
            "aa:bb:cc:dd:ee:ff:00",
            "aa:bb:cc:dd:ee:f",
            "aa:bb:cc:dd:ee:fff",
            "aa:bb:cc:dd:ee:gg",
            "aa:bb:cc-dd:ee:ff",
            "+a:bb:cc:dd:ee:ff",
            "aa:bb:cc:dd:ee:ff:",
        ] {
            assert_eq!(
                bad.parse::<EthernetAddress>(),
                Err(ParseAddressError::Format),
                "{bad:?}"
            );
        }
    }
}
