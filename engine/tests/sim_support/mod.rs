//! Toy hosts for the simulator tests: a sender of numbered frames, a receiver that counts,
//! checks and optionally echoes them, a periodic ticker.
#![allow(dead_code)]

use engine::sim::Host;
use engine::time::{Duration, Instant};

/// An EtherType from the IEEE "local experimental" range.
pub const TOY_ETHERTYPE: [u8; 2] = [0x88, 0xb5];
pub const BROADCAST: [u8; 6] = [0xff; 6];

pub fn mac(n: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 0, n]
}

/// Frame number `seq` from `src` to `dst`, `len` bytes long (at least 18): the Ethernet
/// header, the number, then a pattern that depends on both.
pub fn toy_frame(dst: [u8; 6], src: [u8; 6], seq: u32, len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(len.max(18));
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&TOY_ETHERTYPE);
    f.extend_from_slice(&seq.to_be_bytes());
    // Every bit of the number changes the filler, so one flipped bit never turns a frame
    // into another valid one.
    let mut state = u64::from(seq);
    let mut word = 0u64;
    let mut i = 0;
    while f.len() < len {
        if i % 8 == 0 {
            word = engine::rng::splitmix64(&mut state);
        }
        f.push((word >> (8 * (i % 8))) as u8);
        i += 1;
    }
    f
}

/// Bits in which two equally long frames differ.
pub fn bit_distance(x: &[u8], y: &[u8]) -> u32 {
    x.iter().zip(y).map(|(a, b)| (a ^ b).count_ones()).sum()
}

/// The number a toy frame claims to carry.
pub fn toy_seq(frame: &[u8]) -> Option<u32> {
    let b = frame.get(14..18)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

#[derive(Debug, Clone)]
pub struct Toy {
    pub mac: [u8; 6],
    pub peer: [u8; 6],
    /// Frames still to send, and the next number.
    pub to_send: u32,
    pub next_seq: u32,
    /// Send one frame per interval (or all at once when `None`).
    pub interval: Option<Duration>,
    pub next_send: Instant,
    /// Length of sent frames; `lengths` overrides it per frame when non-empty.
    pub len: usize,
    pub lengths: Vec<usize>,
    /// Intact frames received: their numbers and arrival times.
    pub received: Vec<u32>,
    pub arrivals: Vec<Instant>,
    /// Frames that did not match the toy frame their number names.
    pub damaged: Vec<Vec<u8>>,
    /// Frames of other kinds (broadcasts from a test, say).
    pub other: Vec<Vec<u8>>,
    /// Send every intact frame back to its source.
    pub echo: bool,
    pub echo_queue: Vec<Vec<u8>>,
}

impl Toy {
    pub fn new(n: u8, peer: u8) -> Self {
        Toy {
            mac: mac(n),
            peer: mac(peer),
            to_send: 0,
            next_seq: 0,
            interval: None,
            next_send: Instant::ZERO,
            len: 64,
            lengths: Vec::new(),
            received: Vec::new(),
            arrivals: Vec::new(),
            damaged: Vec::new(),
            other: Vec::new(),
            echo: false,
            echo_queue: Vec::new(),
        }
    }

    /// A host that sends `count` frames to `peer`, one every `interval`.
    pub fn sender(n: u8, peer: u8, count: u32, interval: Option<Duration>) -> Self {
        Toy {
            to_send: count,
            interval,
            ..Toy::new(n, peer)
        }
    }

    pub fn echoer(n: u8) -> Self {
        Toy {
            echo: true,
            ..Toy::new(n, 0)
        }
    }

    pub fn done_sending(&self) -> bool {
        self.to_send == 0
    }

    fn frame_len(&self, seq: u32) -> usize {
        self.lengths.get(seq as usize).copied().unwrap_or(self.len)
    }
}

impl Host for Toy {
    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn receive(&mut self, now: Instant, frame: &[u8]) {
        if frame.get(12..14) != Some(&TOY_ETHERTYPE[..]) || frame[..6] != self.mac {
            self.other.push(frame.to_vec());
            return;
        }
        let mut src = [0u8; 6];
        src.copy_from_slice(&frame[6..12]);
        let seq = toy_seq(frame).unwrap_or(u32::MAX);
        let original = toy_frame(self.mac, src, seq, frame.len());
        if frame != original.as_slice() {
            self.damaged.push(frame.to_vec());
            return;
        }
        self.received.push(seq);
        self.arrivals.push(now);
        if self.echo {
            self.echo_queue
                .push(toy_frame(src, self.mac, seq, frame.len()));
        }
    }

    fn transmit(&mut self, now: Instant, out: &mut dyn FnMut(&[u8])) {
        for frame in self.echo_queue.drain(..) {
            out(&frame);
        }
        while self.to_send > 0 && now >= self.next_send {
            let frame = toy_frame(
                self.peer,
                self.mac,
                self.next_seq,
                self.frame_len(self.next_seq),
            );
            out(&frame);
            self.next_seq += 1;
            self.to_send -= 1;
            match self.interval {
                Some(interval) => {
                    self.next_send = now + interval;
                    break;
                }
                None => continue,
            }
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        (self.to_send > 0 && self.interval.is_some()).then_some(self.next_send)
    }

    fn handle_timeout(&mut self, _now: Instant) {
        // Sending happens in `transmit`, which follows in the same round.
    }
}

/// A host that only wakes up every `period`, counting the wake-ups.
#[derive(Debug, Clone)]
pub struct Ticker {
    pub mac: [u8; 6],
    pub period: Duration,
    pub next: Instant,
    pub ticks: Vec<Instant>,
    pub stop_after: usize,
}

impl Host for Ticker {
    fn mac(&self) -> [u8; 6] {
        self.mac
    }
    fn receive(&mut self, _: Instant, _: &[u8]) {}
    fn transmit(&mut self, _: Instant, _: &mut dyn FnMut(&[u8])) {}
    fn poll_timeout(&self) -> Option<Instant> {
        (self.ticks.len() < self.stop_after).then_some(self.next)
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.ticks.push(now);
        self.next = now + self.period;
    }
}
