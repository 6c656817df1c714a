//! TCP segments (RFC 9293 §3.1): the sequence-number type, the view, the options, the Repr.
//!
//! Owns the TCP header and its options only. It knows nothing of connections: the IPv4
//! addresses arrive as arguments, for the pseudo-header checksum. Parsing validates once
//! (data offset, option lengths, flag combinations, checksum) so that nothing after it can
//! panic; emitting writes exactly [`TcpRepr::buffer_len`] bytes. Nothing here allocates.
use core::fmt;
use core::net::Ipv4Addr;
use core::ops::{Add, AddAssign, Sub};

use super::checksum::{self, ChecksumCaps};
use super::{Error, Result};

/// The IPv4 protocol number of TCP.
pub const PROTOCOL: u8 = 0x06;

/// The length of a TCP header without options.
pub const HEADER_LEN: usize = 20;

/// The largest TCP header: a 4-bit data offset counts at most 15 words.
pub const MAX_HEADER_LEN: usize = 60;

/// The room for options in the largest header.
pub const MAX_OPTIONS_LEN: usize = MAX_HEADER_LEN - HEADER_LEN;

/// A TCP sequence number: a point in a 2^32 circular space, compared modulo 2^32
/// (RFC 9293 §3.4, RFC 1982). Never compare the raw `u32`s.
///
/// Two sequence numbers more than 2^31 apart have no meaningful order; the comparison
/// then answers as the wrapping subtraction says, which is what TCP's window checks want.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNumber(pub u32);

impl SeqNumber {
    /// The signed distance from `other` to `self` (positive if `self` is later).
    pub const fn diff(self, other: SeqNumber) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }

    /// The distance from `earlier` to `self`, zero if `self` is not later.
    pub fn distance_from(self, earlier: SeqNumber) -> u32 {
        let d = self.diff(earlier);
        if d > 0 {
            d as u32
        } else {
            0
        }
    }

    /// `self < other` modulo 2^32.
    pub const fn lt(self, other: SeqNumber) -> bool {
        self.diff(other) < 0
    }
    /// `self <= other` modulo 2^32.
    pub const fn le(self, other: SeqNumber) -> bool {
        self.diff(other) <= 0
    }
    /// `self > other` modulo 2^32.
    pub const fn gt(self, other: SeqNumber) -> bool {
        self.diff(other) > 0
    }
    /// `self >= other` modulo 2^32.
    pub const fn ge(self, other: SeqNumber) -> bool {
        self.diff(other) >= 0
    }

    /// The later of the two.
    pub fn max(self, other: SeqNumber) -> SeqNumber {
        if self.ge(other) {
            self
        } else {
            other
        }
    }

    /// The earlier of the two.
    pub fn min(self, other: SeqNumber) -> SeqNumber {
        if self.le(other) {
            self
        } else {
            other
        }
    }

    /// `start <= self < end` modulo 2^32.
    pub const fn in_range(self, start: SeqNumber, end: SeqNumber) -> bool {
        self.ge(start) && self.lt(end)
    }
}

impl Add<u32> for SeqNumber {
    type Output = SeqNumber;
    fn add(self, n: u32) -> SeqNumber {
        SeqNumber(self.0.wrapping_add(n))
    }
}

impl AddAssign<u32> for SeqNumber {
    fn add_assign(&mut self, n: u32) {
        self.0 = self.0.wrapping_add(n);
    }
}

impl Sub<u32> for SeqNumber {
    type Output = SeqNumber;
    fn sub(self, n: u32) -> SeqNumber {
        SeqNumber(self.0.wrapping_sub(n))
    }
}

impl fmt::Debug for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Seq({})", self.0)
    }
}

impl fmt::Display for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ_NUM: Range<usize> = 4..8;
    pub const ACK_NUM: Range<usize> = 8..12;
    pub const FLAGS: Range<usize> = 12..14;
    pub const WIN_SIZE: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
}

/// The flag bits of the header's 13th and 14th bytes (data offset in the top four bits).
pub mod flags {
    pub const FIN: u16 = 0x001;
    pub const SYN: u16 = 0x002;
    pub const RST: u16 = 0x004;
    pub const PSH: u16 = 0x008;
    pub const ACK: u16 = 0x010;
    pub const URG: u16 = 0x020;
    pub const ECE: u16 = 0x040;
    pub const CWR: u16 = 0x080;
    /// Every bit that is a flag (the rest of the 16 bits is the data offset and reserved).
    pub const MASK: u16 = 0x0ff;
}

/// Option kinds (IANA "TCP Option Kind Numbers").
pub mod option_kind {
    pub const END: u8 = 0x00;
    pub const NOP: u8 = 0x01;
    pub const MSS: u8 = 0x02;
    pub const WINDOW_SCALE: u8 = 0x03;
    pub const SACK_PERMITTED: u8 = 0x04;
    pub const SACK: u8 = 0x05;
    pub const TIMESTAMP: u8 = 0x08;
    /// RFC 4727/6994 experimental option, shared by experiment id.
    pub const EXPERIMENTAL_1: u8 = 0xfd;
    pub const EXPERIMENTAL_2: u8 = 0xfe;
}

/// A read-only or read/write view of a TCP segment.
#[derive(Debug, Clone)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps `buffer` without checking it. Accessors may panic on a short buffer: use
    /// [`TcpPacket::new_checked`] for anything that came from the network.
    pub const fn new_unchecked(buffer: T) -> TcpPacket<T> {
        TcpPacket { buffer }
    }

    /// Wraps `buffer` after checking that the fixed header is there, the data offset is at
    /// least 5 words and the header it announces fits in the buffer.
    pub fn new_checked(buffer: T) -> Result<TcpPacket<T>> {
        let packet = TcpPacket::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// The checks of [`TcpPacket::new_checked`].
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let header_len = usize::from(self.header_len());
        if header_len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if header_len > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn read_u16(&self, range: core::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[range];
        u16::from_be_bytes([b[0], b[1]])
    }

    fn read_u32(&self, range: core::ops::Range<usize>) -> u32 {
        let b = &self.buffer.as_ref()[range];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    pub fn src_port(&self) -> u16 {
        self.read_u16(field::SRC_PORT)
    }
    pub fn dst_port(&self) -> u16 {
        self.read_u16(field::DST_PORT)
    }
    pub fn seq_number(&self) -> SeqNumber {
        SeqNumber(self.read_u32(field::SEQ_NUM))
    }
    /// The acknowledgment field, meaningful only when [`TcpPacket::ack`] is set.
    pub fn ack_number(&self) -> SeqNumber {
        SeqNumber(self.read_u32(field::ACK_NUM))
    }
    /// The header length in bytes (data offset × 4).
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::FLAGS.start] >> 4) * 4
    }
    /// The flag bits (see [`flags`]).
    pub fn flags(&self) -> u16 {
        self.read_u16(field::FLAGS) & flags::MASK
    }
    pub fn fin(&self) -> bool {
        self.flags() & flags::FIN != 0
    }
    pub fn syn(&self) -> bool {
        self.flags() & flags::SYN != 0
    }
    pub fn rst(&self) -> bool {
        self.flags() & flags::RST != 0
    }
    pub fn psh(&self) -> bool {
        self.flags() & flags::PSH != 0
    }
    pub fn ack(&self) -> bool {
        self.flags() & flags::ACK != 0
    }
    pub fn urg(&self) -> bool {
        self.flags() & flags::URG != 0
    }
    pub fn window_len(&self) -> u16 {
        self.read_u16(field::WIN_SIZE)
    }
    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM)
    }
    pub fn urgent_at(&self) -> u16 {
        self.read_u16(field::URGENT)
    }

    /// The option bytes (between the fixed header and the payload).
    pub fn options(&self) -> &[u8] {
        let end = usize::from(self.header_len());
        &self.buffer.as_ref()[HEADER_LEN..end]
    }

    /// The options, parsed one at a time. Never panics; a malformed option yields one
    /// `Err` and ends the iteration.
    pub fn option_iter(&self) -> TcpOptions<'_> {
        TcpOptions::new(self.options())
    }

    pub fn payload(&self) -> &[u8] {
        let start = usize::from(self.header_len());
        &self.buffer.as_ref()[start..]
    }

    /// Whether the checksum over the pseudo-header and the whole segment is correct.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let data = self.buffer.as_ref();
        let Ok(len) = u16::try_from(data.len()) else {
            return false;
        };
        let pseudo = checksum::pseudo_header(src, dst, PROTOCOL, len);
        checksum::combine(&[pseudo, checksum::sum(data)]) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    fn write_u16(&mut self, range: core::ops::Range<usize>, v: u16) {
        self.buffer.as_mut()[range].copy_from_slice(&v.to_be_bytes());
    }
    fn write_u32(&mut self, range: core::ops::Range<usize>, v: u32) {
        self.buffer.as_mut()[range].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_src_port(&mut self, v: u16) {
        self.write_u16(field::SRC_PORT, v)
    }
    pub fn set_dst_port(&mut self, v: u16) {
        self.write_u16(field::DST_PORT, v)
    }
    pub fn set_seq_number(&mut self, v: SeqNumber) {
        self.write_u32(field::SEQ_NUM, v.0)
    }
    pub fn set_ack_number(&mut self, v: SeqNumber) {
        self.write_u32(field::ACK_NUM, v.0)
    }
    /// Sets the data offset and the flags together (they share two bytes). `header_len`
    /// must be a multiple of 4 between 20 and 60.
    pub fn set_header_len_and_flags(&mut self, header_len: u8, flag_bits: u16) {
        let word = (u16::from(header_len / 4) << 12) | (flag_bits & flags::MASK);
        self.write_u16(field::FLAGS, word)
    }
    pub fn set_window_len(&mut self, v: u16) {
        self.write_u16(field::WIN_SIZE, v)
    }
    pub fn set_checksum(&mut self, v: u16) {
        self.write_u16(field::CHECKSUM, v)
    }
    pub fn set_urgent_at(&mut self, v: u16) {
        self.write_u16(field::URGENT, v)
    }
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.header_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = usize::from(self.header_len());
        &mut self.buffer.as_mut()[start..]
    }

    /// Fills the checksum field. With `compute` the full checksum; without it (hardware
    /// offload) the non-complemented pseudo-header sum, which DPDK's TCP checksum offload
    /// expects in the field.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr, compute: bool) -> Result<()> {
        let len = u16::try_from(self.buffer.as_ref().len()).map_err(|_| Error::Malformed)?;
        let pseudo = checksum::pseudo_header(src, dst, PROTOCOL, len);
        self.set_checksum(0);
        let value = if compute {
            !checksum::combine(&[pseudo, checksum::sum(self.buffer.as_ref())])
        } else {
            pseudo
        };
        self.set_checksum(value);
        Ok(())
    }
}

/// Up to four SACK blocks `(left edge, right edge)` as carried by one option.
pub type SackRanges = [Option<(SeqNumber, SeqNumber)>; 4];

/// One parsed TCP option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOption<'a> {
    EndOfList,
    NoOperation,
    /// RFC 9293 §3.2, RFC 6691.
    MaxSegmentSize(u16),
    /// RFC 7323 §2: the shift count as received (values above 14 are the user's to clamp).
    WindowScale(u8),
    /// RFC 2018 §2.
    SackPermitted,
    /// RFC 2018 §3: one to four blocks.
    SackRange(SackRanges),
    /// RFC 7323 §3.
    Timestamp {
        tsval: u32,
        tsecr: u32,
    },
    /// RFC 6994 shared experimental option (kind 253 or 254) with a 16-bit experiment id.
    Experimental {
        kind: u8,
        exid: u16,
        data: &'a [u8],
    },
    /// Any other kind, skipped by parsing.
    Unknown {
        kind: u8,
        data: &'a [u8],
    },
}

/// An iterator over the options of a header. Yields `Err(Error::Malformed)` once for an
/// option with a bad length and then stops.
#[derive(Debug, Clone)]
pub struct TcpOptions<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> TcpOptions<'a> {
    pub const fn new(options: &'a [u8]) -> TcpOptions<'a> {
        TcpOptions {
            rest: options,
            failed: false,
        }
    }

    fn parse_one(&mut self) -> Result<TcpOption<'a>> {
        let rest = self.rest;
        let kind = rest[0];
        match kind {
            option_kind::END => {
                // Everything after End of Option List is padding.
                self.rest = &[];
                return Ok(TcpOption::EndOfList);
            }
            option_kind::NOP => {
                self.rest = &rest[1..];
                return Ok(TcpOption::NoOperation);
            }
            _ => {}
        }
        let len = usize::from(*rest.get(1).ok_or(Error::Malformed)?);
        if len < 2 || len > rest.len() {
            return Err(Error::Malformed);
        }
        let data = &rest[2..len];
        self.rest = &rest[len..];
        let option = match kind {
            option_kind::MSS => match data {
                [a, b] => TcpOption::MaxSegmentSize(u16::from_be_bytes([*a, *b])),
                _ => return Err(Error::Malformed),
            },
            option_kind::WINDOW_SCALE => match data {
                [s] => TcpOption::WindowScale(*s),
                _ => return Err(Error::Malformed),
            },
            option_kind::SACK_PERMITTED => match data {
                [] => TcpOption::SackPermitted,
                _ => return Err(Error::Malformed),
            },
            option_kind::SACK => {
                if data.is_empty() || !data.len().is_multiple_of(8) || data.len() > 32 {
                    return Err(Error::Malformed);
                }
                let mut ranges: SackRanges = [None; 4];
                for (slot, block) in ranges.iter_mut().zip(data.chunks_exact(8)) {
                    let left = u32::from_be_bytes([block[0], block[1], block[2], block[3]]);
                    let right = u32::from_be_bytes([block[4], block[5], block[6], block[7]]);
                    *slot = Some((SeqNumber(left), SeqNumber(right)));
                }
                TcpOption::SackRange(ranges)
            }
            option_kind::TIMESTAMP => match data {
                [a, b, c, d, e, f, g, h] => TcpOption::Timestamp {
                    tsval: u32::from_be_bytes([*a, *b, *c, *d]),
                    tsecr: u32::from_be_bytes([*e, *f, *g, *h]),
                },
                _ => return Err(Error::Malformed),
            },
            option_kind::EXPERIMENTAL_1 | option_kind::EXPERIMENTAL_2 => match data {
                [a, b, rest @ ..] => TcpOption::Experimental {
                    kind,
                    exid: u16::from_be_bytes([*a, *b]),
                    data: rest,
                },
                _ => return Err(Error::Malformed),
            },
            _ => TcpOption::Unknown { kind, data },
        };
        Ok(option)
    }
}

impl<'a> Iterator for TcpOptions<'a> {
    type Item = Result<TcpOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let item = self.parse_one();
        if item.is_err() {
            self.failed = true;
            self.rest = &[];
        }
        Some(item)
    }
}

/// The control flag of a segment that changes the connection's state. ACK is carried by
/// [`TcpRepr::ack_number`] and PSH by [`TcpRepr::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Control {
    #[default]
    None,
    Syn,
    Fin,
    Rst,
}

impl Control {
    /// The sequence space the flag occupies (RFC 9293 §3.4: SYN and FIN count as one).
    pub const fn seq_len(self) -> u32 {
        match self {
            Control::Syn | Control::Fin => 1,
            Control::None | Control::Rst => 0,
        }
    }
}

/// The meaning of a TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpRepr<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub control: Control,
    /// The PSH flag.
    pub push: bool,
    pub seq_number: SeqNumber,
    /// `Some` when the ACK flag is set.
    pub ack_number: Option<SeqNumber>,
    /// The raw 16-bit window field (unscaled).
    pub window_len: u16,
    pub window_scale: Option<u8>,
    pub max_seg_size: Option<u16>,
    pub sack_permitted: bool,
    pub sack_ranges: SackRanges,
    /// `(TSval, TSecr)`.
    pub timestamp: Option<(u32, u32)>,
    /// Kind 253 with a 16-bit RFC 6994 experiment id: reserved for M-TCP.
    pub experimental: Option<(u16, &'a [u8])>,
    pub payload: &'a [u8],
}

impl Default for TcpRepr<'_> {
    fn default() -> Self {
        TcpRepr {
            src_port: 0,
            dst_port: 0,
            control: Control::None,
            push: false,
            seq_number: SeqNumber(0),
            ack_number: None,
            window_len: 0,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None; 4],
            timestamp: None,
            experimental: None,
            payload: &[],
        }
    }
}

/// The bytes of option encodings, shared by `header_len` and `emit` so they cannot differ.
const MSS_LEN: usize = 4;
const WS_LEN: usize = 4; // NOP + kind 3 len 3
const SACK_PERM_LEN: usize = 4; // NOP NOP kind 4 len 2 (or folded with the timestamp)
const TS_LEN: usize = 12; // NOP NOP kind 8 len 10
const SACK_BLOCK_LEN: usize = 8;
const SACK_HEAD_LEN: usize = 4; // NOP NOP kind 5 len

impl<'a> TcpRepr<'a> {
    /// Parses a segment that arrived from `src` to `dst`. Verifies the checksum unless the
    /// device did (`caps.tcp`). Rejects SYN with RST or FIN, a zero port, and malformed
    /// options; skips unknown options. A segment with both RST and FIN is read as RST.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &TcpPacket<&'a T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        caps: &ChecksumCaps,
    ) -> Result<TcpRepr<'a>> {
        packet.check_len()?;
        if packet.src_port() == 0 || packet.dst_port() == 0 {
            return Err(Error::Malformed);
        }
        if caps.tcp.verify_rx() && !packet.verify_checksum(src, dst) {
            return Err(Error::Checksum);
        }
        let control = match (packet.syn(), packet.fin(), packet.rst()) {
            (false, false, false) => Control::None,
            (true, false, false) => Control::Syn,
            (false, true, false) => Control::Fin,
            (false, _, true) => Control::Rst,
            (true, _, _) => return Err(Error::Malformed),
        };
        let ack_number = packet.ack().then(|| packet.ack_number());

        // The lifetime of the returned slices is that of the underlying buffer.
        let bytes: &'a [u8] = packet.buffer.as_ref();
        let header_len = usize::from(packet.header_len());
        let options = &bytes[HEADER_LEN..header_len];
        let payload = &bytes[header_len..];

        let mut repr = TcpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            control,
            push: packet.psh(),
            seq_number: packet.seq_number(),
            ack_number,
            window_len: packet.window_len(),
            payload,
            ..TcpRepr::default()
        };
        for option in TcpOptions::new(options) {
            match option? {
                TcpOption::EndOfList | TcpOption::NoOperation | TcpOption::Unknown { .. } => {}
                TcpOption::MaxSegmentSize(mss) => repr.max_seg_size = Some(mss),
                TcpOption::WindowScale(shift) => repr.window_scale = Some(shift),
                TcpOption::SackPermitted => repr.sack_permitted = true,
                TcpOption::SackRange(ranges) => repr.sack_ranges = ranges,
                TcpOption::Timestamp { tsval, tsecr } => repr.timestamp = Some((tsval, tsecr)),
                TcpOption::Experimental { kind, exid, data } => {
                    if kind == option_kind::EXPERIMENTAL_1 {
                        repr.experimental = Some((exid, data));
                    }
                }
            }
        }
        Ok(repr)
    }

    /// The number of SACK blocks that will be emitted: those present, as many as fit.
    fn sack_blocks_emitted(&self) -> usize {
        let present = self.sack_ranges.iter().take_while(|r| r.is_some()).count();
        if present == 0 {
            return 0;
        }
        let other = self.options_len_without_sack();
        let room = MAX_OPTIONS_LEN.saturating_sub(other + SACK_HEAD_LEN) / SACK_BLOCK_LEN;
        present.min(room)
    }

    fn options_len_without_sack(&self) -> usize {
        let mut len = 0;
        if self.max_seg_size.is_some() {
            len += MSS_LEN;
        }
        if self.window_scale.is_some() {
            len += WS_LEN;
        }
        if self.sack_permitted && self.timestamp.is_none() {
            // With a timestamp, SACK-permitted takes the place of its two NOPs.
            len += SACK_PERM_LEN;
        }
        if self.timestamp.is_some() {
            len += TS_LEN;
        }
        if let Some((_, data)) = self.experimental {
            len += (4 + data.len()).next_multiple_of(4);
        }
        len
    }

    /// The length of the options as emitted (a multiple of 4).
    pub fn options_len(&self) -> usize {
        let sack = self.sack_blocks_emitted();
        let sack_len = if sack == 0 {
            0
        } else {
            SACK_HEAD_LEN + sack * SACK_BLOCK_LEN
        };
        self.options_len_without_sack() + sack_len
    }

    /// The header length as emitted, options included.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options_len()
    }

    /// The whole segment's length as emitted.
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload.len()
    }

    /// The sequence space the segment occupies: payload plus SYN or FIN.
    pub fn segment_len(&self) -> u32 {
        // A payload is at most 64 KiB: a u32 holds it.
        (self.payload.len() as u32).wrapping_add(self.control.seq_len())
    }

    /// The flag bits this Repr emits.
    pub fn flag_bits(&self) -> u16 {
        let mut bits = match self.control {
            Control::None => 0,
            Control::Syn => flags::SYN,
            Control::Fin => flags::FIN,
            Control::Rst => flags::RST,
        };
        if self.push {
            bits |= flags::PSH;
        }
        if self.ack_number.is_some() {
            bits |= flags::ACK;
        }
        bits
    }

    /// Writes the header, the options and the payload into `packet`, whose buffer must be
    /// exactly [`TcpRepr::buffer_len`] long, and fills the checksum (or, with transmit
    /// offload, the pseudo-header sum). Fails with `Truncated` if the buffer is too short
    /// and `Malformed` if the options do not fit in 40 bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut TcpPacket<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        caps: &ChecksumCaps,
    ) -> Result<()> {
        self.emit_header(packet)?;
        let header_len = self.header_len();
        let buf = packet.buffer.as_mut();
        let end = header_len + self.payload.len();
        buf.get_mut(header_len..end)
            .ok_or(Error::Truncated)?
            .copy_from_slice(self.payload);
        packet.fill_checksum(src, dst, caps.tcp.compute_tx())
    }

    /// Writes the header and the options only, leaving the payload bytes and the checksum
    /// field to the caller (who copies the payload from wherever it lives and then calls
    /// [`TcpPacket::fill_checksum`]). `self.payload` is ignored.
    pub fn emit_header<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut TcpPacket<T>,
    ) -> Result<()> {
        let options_len = self.options_len();
        if options_len > MAX_OPTIONS_LEN {
            return Err(Error::Malformed);
        }
        let header_len = HEADER_LEN + options_len;
        if packet.buffer.as_ref().len() < header_len {
            return Err(Error::Truncated);
        }
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_seq_number(self.seq_number);
        packet.set_ack_number(self.ack_number.unwrap_or_default());
        // header_len <= 60 was checked above.
        packet.set_header_len_and_flags(header_len as u8, self.flag_bits());
        packet.set_window_len(self.window_len);
        packet.set_checksum(0);
        packet.set_urgent_at(0);

        let options = &mut packet.buffer.as_mut()[HEADER_LEN..header_len];
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            options[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        if let Some(mss) = self.max_seg_size {
            let m = mss.to_be_bytes();
            put(&[option_kind::MSS, 4, m[0], m[1]]);
        }
        match (self.sack_permitted, self.timestamp) {
            (true, Some(_)) => put(&[option_kind::SACK_PERMITTED, 2]),
            (true, None) => put(&[
                option_kind::NOP,
                option_kind::NOP,
                option_kind::SACK_PERMITTED,
                2,
            ]),
            (false, Some(_)) => put(&[option_kind::NOP, option_kind::NOP]),
            (false, None) => {}
        }
        if let Some((tsval, tsecr)) = self.timestamp {
            put(&[option_kind::TIMESTAMP, 10]);
            put(&tsval.to_be_bytes());
            put(&tsecr.to_be_bytes());
        }
        if let Some(shift) = self.window_scale {
            put(&[option_kind::NOP, option_kind::WINDOW_SCALE, 3, shift]);
        }
        let blocks = self.sack_blocks_emitted();
        if blocks > 0 {
            // blocks <= 4, so the length fits a byte.
            let len = (2 + blocks * SACK_BLOCK_LEN) as u8;
            put(&[option_kind::NOP, option_kind::NOP, option_kind::SACK, len]);
            for (left, right) in self.sack_ranges.iter().take(blocks).flatten() {
                put(&left.0.to_be_bytes());
                put(&right.0.to_be_bytes());
            }
        }
        if let Some((exid, data)) = self.experimental {
            let len = 4 + data.len();
            // Checked above: the whole option list is at most 40 bytes.
            put(&[option_kind::EXPERIMENTAL_1, len as u8]);
            put(&exid.to_be_bytes());
            put(data);
            let pad = len.next_multiple_of(4) - len;
            for _ in 0..pad {
                put(&[option_kind::NOP]);
            }
        }
        Ok(())
    }
}

impl fmt::Display for TcpRepr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TCP {}->{} ", self.src_port, self.dst_port)?;
        match self.control {
            Control::Syn => write!(f, "SYN ")?,
            Control::Fin => write!(f, "FIN ")?,
            Control::Rst => write!(f, "RST ")?,
            Control::None => {}
        }
        write!(f, "seq={}", self.seq_number)?;
        if let Some(ack) = self.ack_number {
            write!(f, " ack={ack}")?;
        }
        write!(f, " win={} len={}", self.window_len, self.payload.len())?;
        if let Some(mss) = self.max_seg_size {
            write!(f, " mss={mss}")?;
        }
        if let Some(ws) = self.window_scale {
            write!(f, " ws={ws}")?;
        }
        if self.sack_permitted {
            write!(f, " sackOK")?;
        }
        if let Some((v, e)) = self.timestamp {
            write!(f, " ts={v}/{e}")?;
        }
        for (l, r) in self.sack_ranges.iter().flatten() {
            write!(f, " sack={l}-{r}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Offload;

    const SRC: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
    const DST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);

    /// A Linux-style SYN: 192.168.1.10:40000 -> 192.168.1.1:80, MSS 1460, SACK permitted,
    /// timestamps, window scale 7, in the option order Linux uses.
    static SYN_BYTES: [u8; 40] = [
        0x9c, 0x40, 0x00, 0x50, 0x12, 0x34, 0x56, 0x78, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa,
        0xf0, 0x11, 0x12, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x00, 0xa1,
        0xb2, 0xc3, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07,
    ];

    fn caps() -> ChecksumCaps {
        ChecksumCaps::default()
    }

    fn syn_repr() -> TcpRepr<'static> {
        TcpRepr {
            src_port: 40000,
            dst_port: 80,
            control: Control::Syn,
            seq_number: SeqNumber(0x1234_5678),
            window_len: 64240,
            window_scale: Some(7),
            max_seg_size: Some(1460),
            sack_permitted: true,
            timestamp: Some((0x00a1_b2c3, 0)),
            ..TcpRepr::default()
        }
    }

    /// Builds a segment with the given options (padded by the caller) and a valid checksum.
    fn with_options(options: &[u8], payload: &[u8]) -> Vec<u8> {
        let header_len = HEADER_LEN + options.len();
        let mut buf = vec![0u8; header_len + payload.len()];
        buf[..HEADER_LEN].copy_from_slice(&SYN_BYTES[..HEADER_LEN]);
        let mut packet = TcpPacket::new_unchecked(&mut buf);
        packet.set_header_len_and_flags(header_len as u8, flags::ACK);
        packet.options_mut().copy_from_slice(options);
        packet.payload_mut().copy_from_slice(payload);
        packet.fill_checksum(SRC, DST, true).unwrap();
        buf
    }

    fn parse(bytes: &[u8]) -> Result<TcpRepr<'_>> {
        let packet = TcpPacket::new_checked(bytes)?;
        TcpRepr::parse(&packet, SRC, DST, &caps())
    }

    #[test]
    fn seq_number_wraps() {
        let a = SeqNumber(u32::MAX - 1);
        let b = a + 4;
        assert_eq!(b, SeqNumber(2));
        assert!(a.lt(b) && b.gt(a) && a.le(a) && a.ge(a));
        assert_eq!(b.diff(a), 4);
        assert_eq!(a.diff(b), -4);
        assert_eq!(b.distance_from(a), 4);
        assert_eq!(a.distance_from(b), 0);
        assert_eq!(a.max(b), b);
        assert_eq!(a.min(b), a);
        assert!(SeqNumber(u32::MAX).in_range(a, b));
        assert!(!b.in_range(a, b));
        assert_eq!(b - 4, a);
    }

    #[test]
    fn parse_capture_syn() {
        let packet = TcpPacket::new_checked(&SYN_BYTES[..]).unwrap();
        assert_eq!(packet.header_len(), 40);
        assert!(packet.syn() && !packet.ack());
        assert!(packet.verify_checksum(SRC, DST));
        let repr = TcpRepr::parse(&packet, SRC, DST, &caps()).unwrap();
        assert_eq!(repr, syn_repr());
        assert_eq!(repr.segment_len(), 1);
    }

    #[test]
    fn emit_capture_syn_byte_exact() {
        let repr = syn_repr();
        assert_eq!(repr.buffer_len(), SYN_BYTES.len());
        let mut buf = [0u8; 40];
        repr.emit(
            &mut TcpPacket::new_unchecked(&mut buf[..]),
            SRC,
            DST,
            &caps(),
        )
        .unwrap();
        assert_eq!(buf, SYN_BYTES);
    }

    #[test]
    fn round_trip_data_segment_with_sack_and_experiment() {
        let payload = b"hello, migratory";
        let repr = TcpRepr {
            src_port: 80,
            dst_port: 40000,
            control: Control::None,
            push: true,
            seq_number: SeqNumber(7),
            ack_number: Some(SeqNumber(0xffff_fff0)),
            window_len: 1234,
            sack_ranges: [
                Some((SeqNumber(100), SeqNumber(200))),
                Some((SeqNumber(300), SeqNumber(400))),
                None,
                None,
            ],
            timestamp: Some((5, 6)),
            experimental: Some((0x4d54, &[1, 2, 3])),
            payload,
            ..TcpRepr::default()
        };
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(
            &mut TcpPacket::new_unchecked(&mut buf[..]),
            SRC,
            DST,
            &caps(),
        )
        .unwrap();
        assert_eq!(repr.header_len() % 4, 0);
        let parsed = parse(&buf).unwrap();
        assert_eq!(parsed, repr);
    }

    #[test]
    fn round_trip_fin_rst() {
        for control in [Control::Fin, Control::Rst, Control::None] {
            let repr = TcpRepr {
                src_port: 1,
                dst_port: 2,
                control,
                seq_number: SeqNumber(9),
                ack_number: Some(SeqNumber(10)),
                ..TcpRepr::default()
            };
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(
                &mut TcpPacket::new_unchecked(&mut buf[..]),
                SRC,
                DST,
                &caps(),
            )
            .unwrap();
            assert_eq!(parse(&buf).unwrap(), repr);
        }
    }

    #[test]
    fn sack_blocks_limited_to_room() {
        let all = [
            Some((SeqNumber(1), SeqNumber(2))),
            Some((SeqNumber(3), SeqNumber(4))),
            Some((SeqNumber(5), SeqNumber(6))),
            Some((SeqNumber(7), SeqNumber(8))),
        ];
        let with_ts = TcpRepr {
            sack_ranges: all,
            timestamp: Some((1, 2)),
            ..TcpRepr::default()
        };
        assert_eq!(with_ts.options_len(), 12 + 4 + 3 * 8);
        let without = TcpRepr {
            sack_ranges: all,
            ..TcpRepr::default()
        };
        assert_eq!(without.options_len(), 4 + 4 * 8);
        let mut buf = vec![0u8; with_ts.buffer_len()];
        let repr = TcpRepr {
            src_port: 1,
            dst_port: 2,
            ..with_ts
        };
        repr.emit(
            &mut TcpPacket::new_unchecked(&mut buf[..]),
            SRC,
            DST,
            &caps(),
        )
        .unwrap();
        let parsed = parse(&buf).unwrap();
        assert_eq!(parsed.sack_ranges[..3], all[..3]);
        assert_eq!(parsed.sack_ranges[3], None);
    }

    #[test]
    fn oversized_options_rejected_by_emit() {
        let data = [0u8; 40];
        let repr = TcpRepr {
            src_port: 1,
            dst_port: 2,
            experimental: Some((1, &data)),
            ..TcpRepr::default()
        };
        let mut buf = vec![0u8; repr.buffer_len()];
        assert_eq!(
            repr.emit(
                &mut TcpPacket::new_unchecked(&mut buf[..]),
                SRC,
                DST,
                &caps()
            ),
            Err(Error::Malformed)
        );
        let small = TcpRepr {
            src_port: 1,
            dst_port: 2,
            ..TcpRepr::default()
        };
        let mut short = [0u8; 10];
        assert_eq!(
            small.emit(
                &mut TcpPacket::new_unchecked(&mut short[..]),
                SRC,
                DST,
                &caps()
            ),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn tx_offload_writes_pseudo_header_sum() {
        let repr = syn_repr();
        let mut buf = [0u8; 40];
        let offload = ChecksumCaps {
            tcp: Offload::Tx,
            ..ChecksumCaps::default()
        };
        repr.emit(
            &mut TcpPacket::new_unchecked(&mut buf[..]),
            SRC,
            DST,
            &offload,
        )
        .unwrap();
        let packet = TcpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(
            packet.checksum(),
            checksum::pseudo_header(SRC, DST, PROTOCOL, 40)
        );
        // Software verification is still on for Offload::Tx, so this fails...
        assert_eq!(
            TcpRepr::parse(&packet, SRC, DST, &offload),
            Err(Error::Checksum)
        );
        // ...and a receiver whose device verified accepts it.
        let rx = ChecksumCaps {
            tcp: Offload::Rx,
            ..ChecksumCaps::default()
        };
        assert!(TcpRepr::parse(&packet, SRC, DST, &rx).is_ok());
    }

    #[test]
    fn bad_checksum_rejected() {
        let mut bytes = SYN_BYTES;
        bytes[17] ^= 1;
        assert_eq!(parse(&bytes), Err(Error::Checksum));
    }

    #[test]
    fn truncated_and_bad_offset() {
        assert_eq!(
            TcpPacket::new_checked(&SYN_BYTES[..19]).err(),
            Some(Error::Truncated)
        );
        // Data offset says 40 bytes, buffer has 39.
        assert_eq!(
            TcpPacket::new_checked(&SYN_BYTES[..39]).err(),
            Some(Error::Truncated)
        );
        let mut bytes = SYN_BYTES;
        bytes[12] = 0x40; // data offset 4 words
        assert_eq!(
            TcpPacket::new_checked(&bytes[..]).err(),
            Some(Error::Malformed)
        );
    }

    #[test]
    fn impossible_flag_combinations_rejected() {
        for bits in [
            flags::SYN | flags::RST,
            flags::SYN | flags::FIN,
            flags::SYN | flags::FIN | flags::RST,
        ] {
            let mut buf = with_options(&[], &[]);
            let mut packet = TcpPacket::new_unchecked(&mut buf);
            packet.set_header_len_and_flags(20, bits);
            packet.fill_checksum(SRC, DST, true).unwrap();
            assert_eq!(parse(&buf), Err(Error::Malformed), "flags {bits:#x}");
        }
        let mut buf = with_options(&[], &[]);
        let mut packet = TcpPacket::new_unchecked(&mut buf);
        packet.set_header_len_and_flags(20, flags::RST | flags::FIN | flags::ACK);
        packet.fill_checksum(SRC, DST, true).unwrap();
        assert_eq!(parse(&buf).unwrap().control, Control::Rst);
    }

    #[test]
    fn zero_port_rejected() {
        let mut buf = with_options(&[], &[]);
        let mut packet = TcpPacket::new_unchecked(&mut buf);
        packet.set_dst_port(0);
        packet.fill_checksum(SRC, DST, true).unwrap();
        assert_eq!(parse(&buf), Err(Error::Malformed));
    }

    #[test]
    fn malformed_options() {
        let cases: &[(&str, &[u8])] = &[
            ("length 0", &[0x02, 0x00, 0x00, 0x00]),
            ("length 1", &[0x02, 0x01, 0x00, 0x00]),
            ("kind without length byte", &[0x01, 0x01, 0x01, 0x02]),
            ("runs past header", &[0x08, 0x0a, 0x00, 0x00]),
            ("mss wrong length", &[0x02, 0x03, 0x05, 0x01]),
            ("window scale wrong length", &[0x03, 0x04, 0x07, 0x00]),
            ("sack permitted wrong length", &[0x04, 0x03, 0x00, 0x00]),
            (
                "sack not a multiple of 8",
                &[0x05, 0x06, 0, 0, 0, 0, 0x01, 0x01],
            ),
            ("sack empty", &[0x05, 0x02, 0x01, 0x01]),
            (
                "timestamp wrong length",
                &[0x08, 0x06, 0, 0, 0, 0, 0x01, 0x01],
            ),
            ("experiment without id", &[0xfd, 0x03, 0x00, 0x01]),
        ];
        for (name, options) in cases {
            let buf = with_options(options, b"x");
            assert_eq!(parse(&buf), Err(Error::Malformed), "{name}");
            let packet = TcpPacket::new_checked(&buf[..]).unwrap();
            let items: Vec<_> = packet.option_iter().collect();
            assert!(
                items.last().is_some_and(|i| i.is_err()),
                "{name}: {items:?}"
            );
        }
    }

    #[test]
    fn unknown_options_skipped_and_end_of_list_stops() {
        // Unknown kind 30 (MPTCP) with 2 data bytes, then MSS, then EOL and junk padding.
        let options = [
            30, 4, 0xaa, 0xbb, 0x02, 0x04, 0x05, 0xdc, 0x00, 0xff, 0xff, 0xff,
        ];
        let buf = with_options(&options, b"");
        let repr = parse(&buf).unwrap();
        assert_eq!(repr.max_seg_size, Some(1500));
        let packet = TcpPacket::new_checked(&buf[..]).unwrap();
        let items: Vec<_> = packet.option_iter().map(|o| o.unwrap()).collect();
        assert_eq!(
            items,
            [
                TcpOption::Unknown {
                    kind: 30,
                    data: &[0xaa, 0xbb]
                },
                TcpOption::MaxSegmentSize(1500),
                TcpOption::EndOfList
            ]
        );
    }

    #[test]
    fn kind_254_is_parsed_but_not_the_mtcp_slot() {
        let options = [0xfe, 0x06, 0x12, 0x34, 0x56, 0x78, 0x01, 0x01];
        let buf = with_options(&options, b"");
        assert_eq!(parse(&buf).unwrap().experimental, None);
        let options = [0xfd, 0x06, 0x12, 0x34, 0x56, 0x78, 0x01, 0x01];
        let buf = with_options(&options, b"");
        assert_eq!(
            parse(&buf).unwrap().experimental,
            Some((0x1234, &[0x56, 0x78][..]))
        );
    }

    #[test]
    fn options_iterator_never_panics_on_any_short_input() {
        // Every 0..=3 byte option list over a small alphabet of interesting bytes.
        let alphabet = [0u8, 1, 2, 3, 4, 5, 8, 10, 253, 255];
        for a in alphabet {
            for b in alphabet {
                for c in alphabet {
                    for len in 0..=3 {
                        let bytes = [a, b, c];
                        let _ = TcpOptions::new(&bytes[..len]).count();
                    }
                }
            }
        }
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        fn seq() -> impl Strategy<Value = SeqNumber> {
            any::<u32>().prop_map(SeqNumber)
        }

        proptest! {
            #[test]
            fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
                if let Ok(packet) = TcpPacket::new_checked(&bytes[..]) {
                    let _ = packet.option_iter().count();
                    let no_verify = ChecksumCaps { tcp: Offload::Rx, ..ChecksumCaps::default() };
                    let _ = TcpRepr::parse(&packet, SRC, DST, &no_verify);
                }
            }

            #[test]
            fn emit_parse_round_trip(
                src_port in 1u16.., dst_port in 1u16.., seq_number in seq(),
                ack in proptest::option::of(seq()), window_len in any::<u16>(),
                control in prop_oneof![Just(Control::None), Just(Control::Syn), Just(Control::Fin), Just(Control::Rst)],
                push in any::<bool>(), mss in proptest::option::of(any::<u16>()),
                ws in proptest::option::of(0u8..15), sack_permitted in any::<bool>(),
                ts in proptest::option::of((any::<u32>(), any::<u32>())),
                blocks in proptest::collection::vec((seq(), seq()), 0..4),
                payload in proptest::collection::vec(any::<u8>(), 0..64),
            ) {
                let mut sack_ranges: SackRanges = [None; 4];
                for (slot, b) in sack_ranges.iter_mut().zip(&blocks) {
                    *slot = Some(*b);
                }
                let repr = TcpRepr {
                    src_port, dst_port, control, push, seq_number, ack_number: ack, window_len,
                    window_scale: ws, max_seg_size: mss, sack_permitted, sack_ranges,
                    timestamp: ts, experimental: None, payload: &payload,
                };
                let mut buf = vec![0u8; repr.buffer_len()];
                repr.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), SRC, DST, &caps()).unwrap();
                let parsed = parse(&buf).unwrap();
                // SACK blocks beyond the room are dropped by emit: compare what fits.
                let kept = repr.sack_blocks_emitted();
                let mut expected = repr;
                for slot in expected.sack_ranges.iter_mut().skip(kept) {
                    *slot = None;
                }
                prop_assert_eq!(parsed, expected);
            }
        }
    }
}
