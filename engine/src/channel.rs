//! The state channel between engines (DESIGN.md §4.4): one message format, authenticated,
//! for every link that joins two engines (a shared-memory link between processes of one
//! host, the network between hosts).
//!
//! Owns: [`Message`] (hello, prepare, ready, record, adopted, release, abort, forwarded
//! frame, heartbeat, closed, drained), its sealed wire form, and [`Session`], the per-link state that seals and
//! opens messages: a handshake of two hellos authenticated with the cluster key, from
//! which each direction gets its own key (HMAC-SHA256 over both sides' fresh nonces), and
//! per-direction sequence numbers so that nothing is replayed, dropped or reordered
//! unnoticed. A bad MAC, a replayed or skipped sequence number, a message before the
//! handshake, an unknown type or version, a length out of bounds: each is a typed
//! [`ChannelError`], and nothing else changes.
//!
//! May not: do I/O, read a clock (heartbeats carry the caller's time), or allocate more
//! than a message's declared, bounded length.
//!
//! Wire form of one message (little-endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `MGCH` |
//! | 4 | 1 | version (1) |
//! | 5 | 1 | type |
//! | 6 | 2 | reserved, 0 |
//! | 8 | 8 | sequence number (hello: 0; then 1, 2, ... per direction) |
//! | 16 | 4 | body length (at most [`MAX_BODY`]) |
//! | 20 | n | body |
//! | 20 + n | 32 | HMAC-SHA256 of bytes 0 .. 20 + n |
//!
//! The hello's MAC is keyed by the cluster key; every later message's by its direction's
//! key, `HMAC(cluster key, "migratory channel 1" | direction | initiator nonce | responder
//! nonce)`. A recorded session replayed to an engine meets a fresh nonce and fails its
//! first MAC.
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::migrate::FlowId;
use core::net::Ipv4Addr;

type HmacSha256 = Hmac<Sha256>;

/// `MGCH`.
pub const MAGIC: [u8; 4] = *b"MGCH";
pub const VERSION: u8 = 1;
/// The highest message type of this version.
const LAST_KIND: u8 = 11;
/// Header bytes before the body.
pub const HEADER_LEN: usize = 20;
/// MAC bytes after the body.
pub const MAC_LEN: usize = 32;
/// The largest body: an encoded migration with both buffers at their largest and a
/// snapshot, with room to spare (a record beyond it is refused at the origin).
pub const MAX_BODY: usize = 8 << 20;
/// The longest engine name in a hello.
pub const MAX_NAME: usize = 64;
/// The shortest cluster key accepted (256 bits).
pub const MIN_KEY_LEN: usize = 32;

/// The secret all engines of a cluster share.
#[derive(Clone)]
pub struct ClusterKey(Vec<u8>);

impl core::fmt::Debug for ClusterKey {
    /// Never prints the key.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ClusterKey(..)")
    }
}

impl ClusterKey {
    /// A key of at least [`MIN_KEY_LEN`] bytes.
    pub fn new(bytes: &[u8]) -> Result<ClusterKey, ChannelError> {
        if bytes.len() < MIN_KEY_LEN {
            return Err(ChannelError::KeyTooShort(bytes.len()));
        }
        Ok(ClusterKey(bytes.to_vec()))
    }
}

/// Why a message was refused. Counted by the caller; the session is unchanged (but for
/// [`Session::open`]'s input, which the caller drops with the link on any error but
/// `Incomplete`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    #[error("more bytes needed")]
    Incomplete,
    #[error("not a channel message (bad magic)")]
    BadMagic,
    #[error("unknown channel version {0}")]
    UnknownVersion(u8),
    #[error("unknown message type {0}")]
    UnknownType(u8),
    #[error("message body of {0} bytes is over the limit")]
    TooLarge(usize),
    #[error("bad message authentication code")]
    BadMac,
    #[error("sequence number {got}, expected {expected} (replayed, lost or reordered)")]
    Sequence { got: u64, expected: u64 },
    #[error("a message other than hello before the handshake, or a second hello")]
    Handshake,
    #[error("malformed message body")]
    Malformed,
    #[error("cluster key of {0} bytes: at least 32 are needed")]
    KeyTooShort(usize),
}

impl ChannelError {
    /// A short stable name, for counters.
    pub fn name(self) -> &'static str {
        match self {
            ChannelError::Incomplete => "incomplete",
            ChannelError::BadMagic => "bad_magic",
            ChannelError::UnknownVersion(_) => "unknown_version",
            ChannelError::UnknownType(_) => "unknown_type",
            ChannelError::TooLarge(_) => "too_large",
            ChannelError::BadMac => "bad_mac",
            ChannelError::Sequence { .. } => "replay",
            ChannelError::Handshake => "handshake",
            ChannelError::Malformed => "malformed",
            ChannelError::KeyTooShort(_) => "key_too_short",
        }
    }
}

/// Why a move was called off (in [`Message::Abort`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortReason {
    /// The destination refused the record (invalid, table full, application refused).
    Refused = 1,
    /// The origin gave up waiting.
    Timeout = 2,
    /// The connection closed or changed before it could move.
    Gone = 3,
}

impl AbortReason {
    fn from_u8(v: u8) -> Option<AbortReason> {
        match v {
            1 => Some(AbortReason::Refused),
            2 => Some(AbortReason::Timeout),
            3 => Some(AbortReason::Gone),
            _ => None,
        }
    }
}

/// A message between engines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Opens a session: who is speaking and its fresh nonce.
    Hello { engine: String, nonce: [u8; 16] },
    /// The origin asks whether the destination can take `flow` (room, not held there
    /// already), before it freezes the connection.
    Prepare { ticket: u64, flow: FlowId },
    /// The destination's yes to [`Message::Prepare`]: the origin freezes and sends the record.
    Ready { ticket: u64 },
    /// The connection itself: an encoded `migrate::Migration` (`migrate::codec`).
    Record { ticket: u64, record: Vec<u8> },
    /// The destination adopted the connection of `ticket`.
    Adopted { ticket: u64 },
    /// The origin let the flow go: no more frames of it will be forwarded.
    Release { flow: FlowId },
    /// The move of `ticket` is off; the connection stays with (or returns to) the origin.
    Abort { ticket: u64, reason: AbortReason },
    /// A frame of a moved flow that still reached the origin.
    Frame { frame: Vec<u8> },
    /// Liveness, with the sender's clock (milliseconds), for round-trip estimates.
    Heartbeat { now_ms: u64 },
    /// The destination's word that a connection it adopted ended there (closed, its
    /// TIME-WAIT over): the origin stops forwarding the flow and answers
    /// [`Message::Release`].
    Closed { flow: FlowId },
    /// The origin moved every connection it had and stopped answering ARP for `addr`:
    /// the destination announces the address (gratuitous ARP) and answers for it.
    Drained { addr: Ipv4Addr },
}

impl Message {
    fn kind(&self) -> u8 {
        match self {
            Message::Hello { .. } => 1,
            Message::Prepare { .. } => 2,
            Message::Record { .. } => 3,
            Message::Adopted { .. } => 4,
            Message::Release { .. } => 5,
            Message::Abort { .. } => 6,
            Message::Frame { .. } => 7,
            Message::Heartbeat { .. } => 8,
            Message::Ready { .. } => 9,
            Message::Closed { .. } => 10,
            Message::Drained { .. } => 11,
        }
    }

    fn write_body(&self, out: &mut Vec<u8>) {
        match self {
            Message::Hello { engine, nonce } => {
                let name = &engine.as_bytes()[..engine.len().min(MAX_NAME)];
                out.push(name.len() as u8);
                out.extend_from_slice(name);
                out.extend_from_slice(nonce);
            }
            Message::Prepare { ticket, flow } => {
                out.extend_from_slice(&ticket.to_le_bytes());
                out.extend_from_slice(&flow.0.to_le_bytes());
            }
            Message::Record { ticket, record } => {
                out.extend_from_slice(&ticket.to_le_bytes());
                out.extend_from_slice(record);
            }
            Message::Adopted { ticket } | Message::Ready { ticket } => {
                out.extend_from_slice(&ticket.to_le_bytes());
            }
            Message::Release { flow } | Message::Closed { flow } => {
                out.extend_from_slice(&flow.0.to_le_bytes());
            }
            Message::Drained { addr } => out.extend_from_slice(&addr.octets()),
            Message::Abort { ticket, reason } => {
                out.extend_from_slice(&ticket.to_le_bytes());
                out.push(*reason as u8);
            }
            Message::Frame { frame } => out.extend_from_slice(frame),
            Message::Heartbeat { now_ms } => out.extend_from_slice(&now_ms.to_le_bytes()),
        }
    }

    fn read_body(kind: u8, b: &[u8]) -> Result<Message, ChannelError> {
        let u64_at = |at: usize| -> Result<u64, ChannelError> {
            b.get(at..at + 8)
                .and_then(|s| s.try_into().ok())
                .map(u64::from_le_bytes)
                .ok_or(ChannelError::Malformed)
        };
        let exact = |len: usize| {
            if b.len() == len {
                Ok(())
            } else {
                Err(ChannelError::Malformed)
            }
        };
        match kind {
            1 => {
                let n = usize::from(*b.first().ok_or(ChannelError::Malformed)?);
                if n > MAX_NAME {
                    return Err(ChannelError::Malformed);
                }
                exact(1 + n + 16)?;
                let engine = core::str::from_utf8(&b[1..1 + n])
                    .map_err(|_| ChannelError::Malformed)?
                    .to_owned();
                let mut nonce = [0u8; 16];
                nonce.copy_from_slice(&b[1 + n..]);
                Ok(Message::Hello { engine, nonce })
            }
            2 => {
                exact(16)?;
                Ok(Message::Prepare {
                    ticket: u64_at(0)?,
                    flow: FlowId(u64_at(8)?),
                })
            }
            3 => Ok(Message::Record {
                ticket: u64_at(0)?,
                record: b[8..].to_vec(),
            }),
            4 => {
                exact(8)?;
                Ok(Message::Adopted { ticket: u64_at(0)? })
            }
            5 => {
                exact(8)?;
                Ok(Message::Release {
                    flow: FlowId(u64_at(0)?),
                })
            }
            6 => {
                exact(9)?;
                let reason = AbortReason::from_u8(b[8]).ok_or(ChannelError::Malformed)?;
                Ok(Message::Abort {
                    ticket: u64_at(0)?,
                    reason,
                })
            }
            7 => Ok(Message::Frame { frame: b.to_vec() }),
            8 => {
                exact(8)?;
                Ok(Message::Heartbeat { now_ms: u64_at(0)? })
            }
            9 => {
                exact(8)?;
                Ok(Message::Ready { ticket: u64_at(0)? })
            }
            10 => {
                exact(8)?;
                Ok(Message::Closed {
                    flow: FlowId(u64_at(0)?),
                })
            }
            11 => {
                exact(4)?;
                Ok(Message::Drained {
                    addr: Ipv4Addr::new(b[0], b[1], b[2], b[3]),
                })
            }
            other => Err(ChannelError::UnknownType(other)),
        }
    }
}

/// Which end opened the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Initiator,
    Responder,
}

#[derive(Debug)]
enum Phase {
    /// Our hello is out; the peer's is awaited.
    Hello,
    Established {
        send_key: [u8; 32],
        recv_key: [u8; 32],
        send_seq: u64,
        recv_seq: u64,
    },
}

/// One end of one link's session. See the module documentation.
#[derive(Debug)]
pub struct Session {
    role: Role,
    key: ClusterKey,
    name: String,
    nonce: [u8; 16],
    peer: Option<String>,
    phase: Phase,
}

impl Session {
    /// A session as `role`, speaking as `name` with a fresh random `nonce` (from the
    /// caller's entropy source); its hello is what [`Session::hello`] seals.
    pub fn new(role: Role, key: ClusterKey, name: &str, nonce: [u8; 16]) -> Session {
        Session {
            role,
            key,
            name: name.chars().take(MAX_NAME).collect(),
            nonce,
            peer: None,
            phase: Phase::Hello,
        }
    }

    /// Our hello, sealed with the cluster key: the first bytes on the link.
    pub fn hello(&self, out: &mut Vec<u8>) {
        let msg = Message::Hello {
            engine: self.name.clone(),
            nonce: self.nonce,
        };
        seal_with(&self.key.0, 0, &msg, out);
    }

    /// The peer's name, once its hello arrived.
    pub fn peer(&self) -> Option<&str> {
        self.peer.as_deref()
    }

    pub fn is_established(&self) -> bool {
        matches!(self.phase, Phase::Established { .. })
    }

    /// Seals `msg` for the peer, appending it to `out`. Only once established, and never
    /// a hello (that is [`Session::hello`]'s).
    pub fn seal(&mut self, msg: &Message, out: &mut Vec<u8>) -> Result<(), ChannelError> {
        let Phase::Established {
            send_key, send_seq, ..
        } = &mut self.phase
        else {
            return Err(ChannelError::Handshake);
        };
        if matches!(msg, Message::Hello { .. }) {
            return Err(ChannelError::Handshake);
        }
        *send_seq += 1;
        seal_with(send_key, *send_seq, msg, out);
        Ok(())
    }

    /// Opens the first message of `input` (a byte stream from the peer). Returns it with
    /// the bytes it took; [`ChannelError::Incomplete`] when more bytes are needed (the
    /// header says how many at most). On any other error the input is bad: the session
    /// is unchanged and the caller drops the link.
    pub fn open(&mut self, input: &[u8]) -> Result<(Message, usize), ChannelError> {
        let header = input.get(..HEADER_LEN).ok_or(ChannelError::Incomplete)?;
        if header[..4] != MAGIC {
            return Err(ChannelError::BadMagic);
        }
        if header[4] != VERSION {
            return Err(ChannelError::UnknownVersion(header[4]));
        }
        let kind = header[5];
        if !(1..=LAST_KIND).contains(&kind) {
            return Err(ChannelError::UnknownType(kind));
        }
        if header[6..8] != [0, 0] {
            return Err(ChannelError::Malformed);
        }
        let seq = u64::from_le_bytes(
            header[8..16]
                .try_into()
                .map_err(|_| ChannelError::Malformed)?,
        );
        let len = u32::from_le_bytes(
            header[16..20]
                .try_into()
                .map_err(|_| ChannelError::Malformed)?,
        ) as usize;
        if len > MAX_BODY {
            return Err(ChannelError::TooLarge(len));
        }
        let total = HEADER_LEN + len + MAC_LEN;
        let whole = input.get(..total).ok_or(ChannelError::Incomplete)?;
        let (signed, tag) = whole.split_at(HEADER_LEN + len);
        let body = &signed[HEADER_LEN..];
        match &mut self.phase {
            Phase::Hello => {
                if kind != 1 || seq != 0 {
                    return Err(ChannelError::Handshake);
                }
                verify(&self.key.0, signed, tag)?;
                let Message::Hello { engine, nonce } = Message::read_body(kind, body)? else {
                    return Err(ChannelError::Malformed);
                };
                let (i, r) = match self.role {
                    Role::Initiator => (self.nonce, nonce),
                    Role::Responder => (nonce, self.nonce),
                };
                let i2r = derive(&self.key.0, b"i->r", &i, &r);
                let r2i = derive(&self.key.0, b"r->i", &i, &r);
                let (send_key, recv_key) = match self.role {
                    Role::Initiator => (i2r, r2i),
                    Role::Responder => (r2i, i2r),
                };
                self.peer = Some(engine.clone());
                self.phase = Phase::Established {
                    send_key,
                    recv_key,
                    send_seq: 0,
                    recv_seq: 0,
                };
                Ok((Message::Hello { engine, nonce }, total))
            }
            Phase::Established {
                recv_key, recv_seq, ..
            } => {
                verify(recv_key, signed, tag)?;
                let expected = *recv_seq + 1;
                if seq != expected {
                    return Err(ChannelError::Sequence { got: seq, expected });
                }
                if kind == 1 {
                    return Err(ChannelError::Handshake);
                }
                let msg = Message::read_body(kind, body)?;
                *recv_seq = expected;
                Ok((msg, total))
            }
        }
    }
}

fn seal_with(key: &[u8], seq: u64, msg: &Message, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(msg.kind());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    msg.write_body(out);
    let len = (out.len() - start - HEADER_LEN) as u32;
    out[start + 16..start + 20].copy_from_slice(&len.to_le_bytes());
    let tag = mac(key, &out[start..]);
    out.extend_from_slice(&tag);
}

fn mac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length: this cannot fail.
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    m.update(data);
    m.finalize().into_bytes().into()
}

/// Checks `tag` in constant time.
fn verify(key: &[u8], data: &[u8], tag: &[u8]) -> Result<(), ChannelError> {
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    m.update(data);
    m.verify_slice(tag).map_err(|_| ChannelError::BadMac)
}

fn derive(key: &[u8], direction: &[u8], initiator: &[u8; 16], responder: &[u8; 16]) -> [u8; 32] {
    let mut input = Vec::with_capacity(64);
    input.extend_from_slice(b"migratory channel 1 ");
    input.extend_from_slice(direction);
    input.extend_from_slice(initiator);
    input.extend_from_slice(responder);
    mac(key, &input)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> ClusterKey {
        ClusterKey::new(&[b; 32]).unwrap()
    }

    /// Two sessions after the handshake.
    fn pair() -> (Session, Session) {
        let mut a = Session::new(Role::Initiator, key(7), "a", [1; 16]);
        let mut b = Session::new(Role::Responder, key(7), "b", [2; 16]);
        let (mut ha, mut hb) = (Vec::new(), Vec::new());
        a.hello(&mut ha);
        b.hello(&mut hb);
        assert!(matches!(b.open(&ha), Ok((Message::Hello { .. }, n)) if n == ha.len()));
        assert!(matches!(a.open(&hb), Ok((Message::Hello { .. }, _))));
        assert_eq!((a.peer(), b.peer()), (Some("b"), Some("a")));
        (a, b)
    }

    fn every_message() -> Vec<Message> {
        vec![
            Message::Prepare {
                ticket: 1,
                flow: FlowId(0xdead_beef),
            },
            Message::Record {
                ticket: 2,
                record: vec![9; 1000],
            },
            Message::Adopted { ticket: 3 },
            Message::Release {
                flow: FlowId(u64::MAX),
            },
            Message::Ready { ticket: 6 },
            Message::Closed { flow: FlowId(7) },
            Message::Drained {
                addr: Ipv4Addr::new(10, 0, 0, 2),
            },
            Message::Abort {
                ticket: 5,
                reason: AbortReason::Timeout,
            },
            Message::Frame {
                frame: vec![1, 2, 3],
            },
            Message::Heartbeat { now_ms: 123_456 },
        ]
    }

    #[test]
    fn messages_cross_both_ways_in_order() {
        let (mut a, mut b) = pair();
        let mut stream = Vec::new();
        for m in every_message() {
            a.seal(&m, &mut stream).unwrap();
        }
        // A byte stream cut anywhere: Incomplete until a message is whole.
        let mut at = 0;
        let mut got = Vec::new();
        while at < stream.len() {
            match b.open(&stream[at..]) {
                Ok((m, n)) => {
                    got.push(m);
                    at += n;
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got, every_message());
        assert_eq!(b.open(&stream[..5]), Err(ChannelError::Incomplete));
        let mut back = Vec::new();
        b.seal(&Message::Adopted { ticket: 9 }, &mut back).unwrap();
        assert_eq!(a.open(&back).unwrap().0, Message::Adopted { ticket: 9 });
    }

    #[test]
    fn tampering_replay_and_other_keys_are_refused() {
        let (mut a, mut b) = pair();
        let mut one = Vec::new();
        a.seal(&Message::Adopted { ticket: 1 }, &mut one).unwrap();
        // Every single bit flipped: refused, and the session still takes the real one.
        for i in 0..one.len() * 8 {
            let mut bad = one.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(b.open(&bad).is_err(), "bit {i}");
        }
        assert!(b.open(&one).is_ok());
        // The same message again: a replay.
        assert_eq!(
            b.open(&one),
            Err(ChannelError::Sequence {
                got: 1,
                expected: 2
            })
        );
        // Skipping one (a lost or withheld message) is refused too.
        let (mut two, mut three) = (Vec::new(), Vec::new());
        a.seal(&Message::Adopted { ticket: 2 }, &mut two).unwrap();
        a.seal(&Message::Adopted { ticket: 3 }, &mut three).unwrap();
        assert_eq!(
            b.open(&three),
            Err(ChannelError::Sequence {
                got: 3,
                expected: 2
            })
        );
        // A message of this session replayed into a new one (new nonces): bad MAC.
        let (_, mut b2) = pair_with_nonces([5; 16], [6; 16]);
        assert_eq!(b2.open(&two), Err(ChannelError::BadMac));
        // A hello under another cluster key.
        let other = Session::new(Role::Initiator, key(8), "x", [3; 16]);
        let mut h = Vec::new();
        other.hello(&mut h);
        let mut fresh = Session::new(Role::Responder, key(7), "b", [4; 16]);
        assert_eq!(fresh.open(&h), Err(ChannelError::BadMac));
        assert!(!fresh.is_established());
    }

    fn pair_with_nonces(na: [u8; 16], nb: [u8; 16]) -> (Session, Session) {
        let mut a = Session::new(Role::Initiator, key(7), "a", na);
        let mut b = Session::new(Role::Responder, key(7), "b", nb);
        let (mut ha, mut hb) = (Vec::new(), Vec::new());
        a.hello(&mut ha);
        b.hello(&mut hb);
        b.open(&ha).unwrap();
        a.open(&hb).unwrap();
        (a, b)
    }

    #[test]
    fn the_handshake_comes_first_and_once() {
        let mut a = Session::new(Role::Initiator, key(7), "a", [1; 16]);
        assert_eq!(
            a.seal(&Message::Adopted { ticket: 1 }, &mut Vec::new()),
            Err(ChannelError::Handshake)
        );
        let (mut a, mut b) = pair();
        let mut h = Vec::new();
        a.hello(&mut h);
        assert!(b.open(&h).is_err(), "a second hello");
        assert_eq!(
            a.seal(
                &Message::Hello {
                    engine: "a".into(),
                    nonce: [0; 16]
                },
                &mut Vec::new()
            ),
            Err(ChannelError::Handshake)
        );
    }

    #[test]
    fn bounds_and_malformed_headers() {
        let (_, mut b) = pair();
        let mut m = Vec::new();
        m.extend_from_slice(&MAGIC);
        m.extend_from_slice(&[VERSION, 7, 0, 0]);
        m.extend_from_slice(&1u64.to_le_bytes());
        m.extend_from_slice(&(u32::MAX).to_le_bytes());
        assert_eq!(b.open(&m), Err(ChannelError::TooLarge(u32::MAX as usize)));
        m[4] = 2;
        assert_eq!(b.open(&m), Err(ChannelError::UnknownVersion(2)));
        m[4] = VERSION;
        m[5] = 99;
        assert_eq!(b.open(&m), Err(ChannelError::UnknownType(99)));
        m[0] = b'X';
        assert_eq!(b.open(&m), Err(ChannelError::BadMagic));
        assert_eq!(
            ClusterKey::new(&[0; 31]).unwrap_err(),
            ChannelError::KeyTooShort(31)
        );
        assert_eq!(format!("{:?}", key(1)), "ClusterKey(..)");
        // Random bytes never panic.
        let mut x = 0x1234_5678_9abc_def0u64;
        for _ in 0..20_000 {
            let len = (x % 80) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = b.open(&bytes);
        }
    }
}
