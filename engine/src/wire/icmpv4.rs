//! ICMPv4 (RFC 792): the message view and the Repr of echo request and echo reply.
//!
//! The view covers any message type (its first 8 bytes are common to all); [`Icmpv4Repr`]
//! knows only echo, which is all a host needs to answer ping (RFC 1122 §3.2.2.6). Every
//! other type parses as [`Error::Unsupported`]. The checksum covers the whole message, so
//! the view must be given exactly the IP payload.
use super::checksum::{self, ChecksumCaps};
use super::{Error, Result};

/// The message type field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Icmpv4Message {
    EchoReply,
    DstUnreachable,
    Redirect,
    EchoRequest,
    TimeExceeded,
    ParamProblem,
    Unknown(u8),
}

impl Icmpv4Message {
    pub const ECHO_REPLY: u8 = 0;
    pub const DST_UNREACHABLE: u8 = 3;
    pub const REDIRECT: u8 = 5;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAM_PROBLEM: u8 = 12;
}

impl From<u8> for Icmpv4Message {
    fn from(value: u8) -> Self {
        match value {
            Self::ECHO_REPLY => Icmpv4Message::EchoReply,
            Self::DST_UNREACHABLE => Icmpv4Message::DstUnreachable,
            Self::REDIRECT => Icmpv4Message::Redirect,
            Self::ECHO_REQUEST => Icmpv4Message::EchoRequest,
            Self::TIME_EXCEEDED => Icmpv4Message::TimeExceeded,
            Self::PARAM_PROBLEM => Icmpv4Message::ParamProblem,
            other => Icmpv4Message::Unknown(other),
        }
    }
}

impl From<Icmpv4Message> for u8 {
    fn from(value: Icmpv4Message) -> u8 {
        match value {
            Icmpv4Message::EchoReply => Icmpv4Message::ECHO_REPLY,
            Icmpv4Message::DstUnreachable => Icmpv4Message::DST_UNREACHABLE,
            Icmpv4Message::Redirect => Icmpv4Message::REDIRECT,
            Icmpv4Message::EchoRequest => Icmpv4Message::ECHO_REQUEST,
            Icmpv4Message::TimeExceeded => Icmpv4Message::TIME_EXCEEDED,
            Icmpv4Message::ParamProblem => Icmpv4Message::PARAM_PROBLEM,
            Icmpv4Message::Unknown(other) => other,
        }
    }
}

mod field {
    use core::ops::{Range, RangeFrom};
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    pub const ECHO_IDENT: Range<usize> = 4..6;
    pub const ECHO_SEQNO: Range<usize> = 6..8;
    pub const ECHO_DATA: RangeFrom<usize> = 8..;
}

/// Length of the ICMP header: type, code, checksum and the 4-byte rest of header.
pub const HEADER_LEN: usize = field::ECHO_DATA.start;

/// A view of an ICMPv4 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// Wraps `buffer` without checks; accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Icmpv4Packet<T> {
        Icmpv4Packet { buffer }
    }

    /// Wraps `buffer` after checking it holds the 8-byte header.
    pub fn new_checked(buffer: T) -> Result<Icmpv4Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
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

    fn u16_at(&self, range: core::ops::Range<usize>) -> u16 {
        let d = &self.buffer.as_ref()[range];
        u16::from_be_bytes([d[0], d[1]])
    }

    pub fn msg_type(&self) -> Icmpv4Message {
        Icmpv4Message::from(self.buffer.as_ref()[field::TYPE])
    }

    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    /// The identifier of an echo message.
    pub fn echo_ident(&self) -> u16 {
        self.u16_at(field::ECHO_IDENT)
    }

    /// The sequence number of an echo message.
    pub fn echo_seq_no(&self) -> u16 {
        self.u16_at(field::ECHO_SEQNO)
    }

    /// The message checksum is valid (the whole message sums to 0xffff).
    pub fn verify_checksum(&self) -> bool {
        checksum::sum(self.buffer.as_ref()) == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Icmpv4Packet<&'a T> {
    /// The bytes after the 8-byte header (an echo's data), borrowed for the buffer's
    /// lifetime.
    pub fn data(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::ECHO_DATA]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    fn set_u16_at(&mut self, range: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[range].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_msg_type(&mut self, value: Icmpv4Message) {
        self.buffer.as_mut()[field::TYPE] = value.into()
    }

    pub fn set_msg_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value
    }

    pub fn set_checksum(&mut self, value: u16) {
        self.set_u16_at(field::CHECKSUM, value)
    }

    pub fn set_echo_ident(&mut self, value: u16) {
        self.set_u16_at(field::ECHO_IDENT, value)
    }

    pub fn set_echo_seq_no(&mut self, value: u16) {
        self.set_u16_at(field::ECHO_SEQNO, value)
    }

    /// Computes the checksum over the whole buffer and writes it.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c)
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::ECHO_DATA]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Icmpv4Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The meaning of an ICMPv4 message this engine handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Icmpv4Repr<'a> {
    EchoRequest {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    EchoReply {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
}

impl<'a> Icmpv4Repr<'a> {
    /// Reads a message: `Truncated` below 8 bytes, `Checksum` if software must verify
    /// (`caps.icmpv4.verify_rx()`) and the checksum is wrong, `Malformed` for an echo with
    /// a non-zero code, `Unsupported` for every type but echo request and reply.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Icmpv4Packet<&'a T>,
        caps: &ChecksumCaps,
    ) -> Result<Icmpv4Repr<'a>> {
        packet.check_len()?;
        if caps.icmpv4.verify_rx() && !packet.verify_checksum() {
            return Err(Error::Checksum);
        }
        let (ident, seq_no, data) = (packet.echo_ident(), packet.echo_seq_no(), packet.data());
        match (packet.msg_type(), packet.msg_code()) {
            (Icmpv4Message::EchoRequest, 0) => Ok(Icmpv4Repr::EchoRequest {
                ident,
                seq_no,
                data,
            }),
            (Icmpv4Message::EchoReply, 0) => Ok(Icmpv4Repr::EchoReply {
                ident,
                seq_no,
                data,
            }),
            (Icmpv4Message::EchoRequest | Icmpv4Message::EchoReply, _) => Err(Error::Malformed),
            _ => Err(Error::Unsupported),
        }
    }

    /// Length of the 8-byte header.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Length of the whole message.
    pub const fn buffer_len(&self) -> usize {
        match self {
            Icmpv4Repr::EchoRequest { data, .. } | Icmpv4Repr::EchoReply { data, .. } => {
                HEADER_LEN + data.len()
            }
        }
    }

    /// Writes the message into `packet`, whose buffer must be exactly
    /// [`Icmpv4Repr::buffer_len`] long (the checksum covers all of it). The checksum is
    /// computed when `caps.icmpv4.compute_tx()`, else left zero.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Icmpv4Packet<T>,
        caps: &ChecksumCaps,
    ) {
        let (msg_type, ident, seq_no, data) = match *self {
            Icmpv4Repr::EchoRequest {
                ident,
                seq_no,
                data,
            } => (Icmpv4Message::EchoRequest, ident, seq_no, data),
            Icmpv4Repr::EchoReply {
                ident,
                seq_no,
                data,
            } => (Icmpv4Message::EchoReply, ident, seq_no, data),
        };
        packet.set_msg_type(msg_type);
        packet.set_msg_code(0);
        packet.set_echo_ident(ident);
        packet.set_echo_seq_no(seq_no);
        packet.data_mut()[..data.len()].copy_from_slice(data);
        if caps.icmpv4.compute_tx() {
            packet.fill_checksum();
        } else {
            packet.set_checksum(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Offload;

    // Echo request, ident 0x1234, seq 1, data "abcd".
    static ECHO_BYTES: [u8; 12] = [
        0x08, 0x00, 0x21, 0x04, 0x12, 0x34, 0x00, 0x01, 0x61, 0x62, 0x63, 0x64,
    ];

    fn echo() -> Icmpv4Repr<'static> {
        Icmpv4Repr::EchoRequest {
            ident: 0x1234,
            seq_no: 1,
            data: b"abcd",
        }
    }

    fn caps() -> ChecksumCaps {
        ChecksumCaps::default()
    }

    #[test]
    fn literal_checksum_is_valid() {
        assert_eq!(checksum::sum(&ECHO_BYTES), 0xffff);
    }

    #[test]
    fn parse_literal_echo() {
        let p = Icmpv4Packet::new_checked(&ECHO_BYTES[..]).unwrap();
        assert_eq!(p.msg_type(), Icmpv4Message::EchoRequest);
        assert_eq!(p.msg_code(), 0);
        assert_eq!(p.checksum(), 0x2104);
        assert_eq!(p.echo_ident(), 0x1234);
        assert_eq!(p.echo_seq_no(), 1);
        assert_eq!(p.data(), b"abcd");
        assert_eq!(Icmpv4Repr::parse(&p, &caps()).unwrap(), echo());
    }

    #[test]
    fn emit_gives_literal_bytes() {
        let mut bytes = [0xffu8; 12];
        assert_eq!(echo().buffer_len(), 12);
        echo().emit(&mut Icmpv4Packet::new_unchecked(&mut bytes[..]), &caps());
        assert_eq!(bytes, ECHO_BYTES);
    }

    #[test]
    fn reply_round_trip() {
        let reply = Icmpv4Repr::EchoReply {
            ident: 7,
            seq_no: 0xffff,
            data: &[1, 2, 3],
        };
        let mut bytes = [0u8; 11];
        reply.emit(&mut Icmpv4Packet::new_unchecked(&mut bytes[..]), &caps());
        assert_eq!(bytes[0], 0);
        let p = Icmpv4Packet::new_checked(&bytes[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(Icmpv4Repr::parse(&p, &caps()).unwrap(), reply);
    }

    #[test]
    fn truncated() {
        for len in 0..8 {
            assert_eq!(
                Icmpv4Packet::new_checked(&ECHO_BYTES[..len]).unwrap_err(),
                Error::Truncated
            );
        }
    }

    #[test]
    fn bad_checksum_unless_offloaded() {
        let mut bytes = ECHO_BYTES;
        bytes[11] ^= 0x20; // 'd' -> 'D'
        let p = Icmpv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Icmpv4Repr::parse(&p, &caps()), Err(Error::Checksum));
        let rx_offload = ChecksumCaps {
            icmpv4: Offload::Both,
            ..caps()
        };
        assert_eq!(
            Icmpv4Repr::parse(&p, &rx_offload),
            Ok(Icmpv4Repr::EchoRequest {
                ident: 0x1234,
                seq_no: 1,
                data: b"abcD"
            })
        );
    }

    fn with(f: impl FnOnce(&mut Icmpv4Packet<&mut [u8]>)) -> [u8; 12] {
        let mut bytes = ECHO_BYTES;
        let mut p = Icmpv4Packet::new_unchecked(&mut bytes[..]);
        f(&mut p);
        p.fill_checksum();
        bytes
    }

    #[test]
    fn other_types_and_codes() {
        for t in [3u8, 5, 11, 12, 13, 42] {
            let bytes = with(|p| p.set_msg_type(Icmpv4Message::from(t)));
            let p = Icmpv4Packet::new_checked(&bytes[..]).unwrap();
            assert_eq!(
                Icmpv4Repr::parse(&p, &caps()),
                Err(Error::Unsupported),
                "type {t}"
            );
        }
        let bytes = with(|p| p.set_msg_code(1));
        let p = Icmpv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Icmpv4Repr::parse(&p, &caps()), Err(Error::Malformed));
        for v in 0..=255u8 {
            assert_eq!(u8::from(Icmpv4Message::from(v)), v);
        }
    }
}
