//! Classic libpcap capture files (LINKTYPE_ETHERNET), so a simulated run can be opened in
//! Wireshark or tcpdump, and a reader for them, so tests can check what was captured.
//!
//! Owns: the file format (a 24-byte global header, then a 16-byte header per record;
//! written little-endian, read in either byte order). May not: decide which frames are
//! captured or when (the network does), or read a clock: timestamps are virtual
//! [`Instant`]s, written as seconds and micro- or nanoseconds since the virtual origin.
use std::io::{self, Write};

use crate::time::Instant;

/// Magic number of microsecond-resolution files.
pub const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
/// Magic number of nanosecond-resolution files.
pub const MAGIC_NANOS: u32 = 0xa1b2_3c4d;
/// LINKTYPE_ETHERNET.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Bytes kept of each frame; longer frames are truncated (their original length is kept).
pub const SNAPLEN: u32 = 65_535;
const GLOBAL_HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 16;

/// Resolution of the record timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resolution {
    Micros,
    Nanos,
}

/// Writes a capture file to `W`.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
    resolution: Resolution,
    records: u64,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the global header and returns the writer.
    pub fn new(mut out: W, resolution: Resolution) -> io::Result<Self> {
        let magic = match resolution {
            Resolution::Micros => MAGIC_MICROS,
            Resolution::Nanos => MAGIC_NANOS,
        };
        let mut header = [0u8; GLOBAL_HEADER_LEN];
        header[0..4].copy_from_slice(&magic.to_le_bytes());
        header[4..6].copy_from_slice(&2u16.to_le_bytes()); // version 2.4
        header[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone and sigfigs stay zero.
        header[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
        header[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        out.write_all(&header)?;
        Ok(PcapWriter {
            out,
            resolution,
            records: 0,
        })
    }

    /// Appends one frame seen at `at`.
    pub fn write_frame(&mut self, at: Instant, frame: &[u8]) -> io::Result<()> {
        let nanos = at.as_nanos();
        let secs = u32::try_from(nanos / 1_000_000_000).unwrap_or(u32::MAX);
        let frac = match self.resolution {
            Resolution::Micros => (nanos % 1_000_000_000 / 1_000) as u32,
            Resolution::Nanos => (nanos % 1_000_000_000) as u32,
        };
        let orig_len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        let incl_len = orig_len.min(SNAPLEN);
        let mut header = [0u8; RECORD_HEADER_LEN];
        header[0..4].copy_from_slice(&secs.to_le_bytes());
        header[4..8].copy_from_slice(&frac.to_le_bytes());
        header[8..12].copy_from_slice(&incl_len.to_le_bytes());
        header[12..16].copy_from_slice(&orig_len.to_le_bytes());
        self.out.write_all(&header)?;
        self.out.write_all(&frame[..incl_len as usize])?;
        self.records += 1;
        Ok(())
    }

    /// Number of records written.
    pub fn records(&self) -> u64 {
        self.records
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn get_ref(&self) -> &W {
        &self.out
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// One record of a capture file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcapRecord {
    pub at: Instant,
    /// The frame's length on the wire (may exceed `data.len()` if truncated).
    pub orig_len: u32,
    pub data: Vec<u8>,
}

/// A parsed capture file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pcap {
    pub resolution: Resolution,
    pub snaplen: u32,
    pub linktype: u32,
    pub records: Vec<PcapRecord>,
}

/// Why bytes are not a capture file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum PcapError {
    #[error("not a classic pcap file (magic {0:#010x})")]
    BadMagic(u32),
    #[error("pcap file truncated")]
    Truncated,
    #[error("pcap record longer than the snapshot length")]
    RecordTooLong,
}

/// Parses a whole capture file, in either byte order.
pub fn parse(bytes: &[u8]) -> Result<Pcap, PcapError> {
    let header = bytes.get(..GLOBAL_HEADER_LEN).ok_or(PcapError::Truncated)?;
    let magic_le = u32_at(header, 0, false);
    let (resolution, big_endian) = match magic_le {
        MAGIC_MICROS => (Resolution::Micros, false),
        MAGIC_NANOS => (Resolution::Nanos, false),
        m if m.swap_bytes() == MAGIC_MICROS => (Resolution::Micros, true),
        m if m.swap_bytes() == MAGIC_NANOS => (Resolution::Nanos, true),
        m => return Err(PcapError::BadMagic(m)),
    };
    let snaplen = u32_at(header, 16, big_endian);
    let linktype = u32_at(header, 20, big_endian);
    let mut records = Vec::new();
    let mut rest = &bytes[GLOBAL_HEADER_LEN..];
    while !rest.is_empty() {
        let rec = rest.get(..RECORD_HEADER_LEN).ok_or(PcapError::Truncated)?;
        let secs = u64::from(u32_at(rec, 0, big_endian));
        let frac = u64::from(u32_at(rec, 4, big_endian));
        let incl_len = u32_at(rec, 8, big_endian);
        let orig_len = u32_at(rec, 12, big_endian);
        if incl_len > snaplen.max(SNAPLEN) {
            return Err(PcapError::RecordTooLong);
        }
        let end = RECORD_HEADER_LEN + incl_len as usize;
        let data = rest
            .get(RECORD_HEADER_LEN..end)
            .ok_or(PcapError::Truncated)?
            .to_vec();
        let frac_nanos = match resolution {
            Resolution::Micros => frac.saturating_mul(1_000),
            Resolution::Nanos => frac,
        };
        let at = Instant::from_nanos(
            secs.saturating_mul(1_000_000_000)
                .saturating_add(frac_nanos),
        );
        records.push(PcapRecord { at, orig_len, data });
        rest = &rest[end..];
    }
    Ok(Pcap {
        resolution,
        snaplen,
        linktype,
        records,
    })
}

fn u32_at(bytes: &[u8], offset: usize, big_endian: bool) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[offset..offset + 4]);
    if big_endian {
        u32::from_be_bytes(word)
    } else {
        u32::from_le_bytes(word)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_parse_round_trips() {
        for resolution in [Resolution::Micros, Resolution::Nanos] {
            let mut w = PcapWriter::new(Vec::new(), resolution).unwrap();
            w.write_frame(Instant::from_nanos(1_500_000_123), &[1, 2, 3])
                .unwrap();
            w.write_frame(Instant::from_millis(2_000), &[4; 60])
                .unwrap();
            assert_eq!(w.records(), 2);
            let bytes = w.into_inner();
            assert_eq!(bytes.len(), 24 + 16 + 3 + 16 + 60);
            let pcap = parse(&bytes).unwrap();
            assert_eq!(pcap.resolution, resolution);
            assert_eq!(pcap.linktype, LINKTYPE_ETHERNET);
            assert_eq!(pcap.records.len(), 2);
            assert_eq!(pcap.records[0].data, vec![1, 2, 3]);
            let first = match resolution {
                Resolution::Micros => Instant::from_nanos(1_500_000_000),
                Resolution::Nanos => Instant::from_nanos(1_500_000_123),
            };
            assert_eq!(pcap.records[0].at, first);
            assert_eq!(pcap.records[1].at, Instant::from_millis(2_000));
        }
    }

    #[test]
    fn big_endian_files_parse() {
        let mut bytes = Vec::new();
        for word in [MAGIC_NANOS, 0x0002_0004, 0, 0, SNAPLEN, 1, 3, 7, 2, 2] {
            bytes.extend_from_slice(&word.to_be_bytes());
        }
        // The version is two u16 fields; packed as one word above, which suits big-endian.
        bytes.extend_from_slice(&[0xaa, 0xbb]);
        let pcap = parse(&bytes).unwrap();
        assert_eq!(pcap.records[0].at, Instant::from_nanos(3_000_000_007));
        assert_eq!(pcap.records[0].data, vec![0xaa, 0xbb]);
    }

    #[test]
    fn malformed_files_are_refused() {
        assert_eq!(parse(&[0; 10]), Err(PcapError::Truncated));
        assert_eq!(parse(&[0; 24]), Err(PcapError::BadMagic(0)));
        let mut w = PcapWriter::new(Vec::new(), Resolution::Micros).unwrap();
        w.write_frame(Instant::ZERO, &[1, 2, 3, 4]).unwrap();
        let bytes = w.into_inner();
        assert_eq!(parse(&bytes[..bytes.len() - 1]), Err(PcapError::Truncated));
        assert_eq!(parse(&bytes[..30]), Err(PcapError::Truncated));
        let mut long = bytes.clone();
        long[24 + 8..24 + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse(&long), Err(PcapError::RecordTooLong));
    }
}
