//! The simulated Ethernet segment and its virtual clock.
//!
//! Owns: the hosts, one [`Link`] per ordered pair of hosts (created on first use, each
//! with its own random stream derived from the network's seed), the frames in flight, the
//! virtual clock, the counters and the capture. May not: read a real clock, sleep, or look
//! inside frames beyond the destination MAC address (bytes 0..6).
//!
//! # Delivery
//! The segment is a switch that knows every host's MAC address (asked once, when the host
//! is added): a frame goes to the host with its destination MAC, or, for broadcast and
//! multicast destinations (low bit of the first byte set), to every other host, each copy
//! through its own link. Frames to an unknown MAC or back to their sender are dropped and
//! counted as unroutable; frames shorter than an Ethernet header as runts.
//!
//! # Time
//! Within one instant the network repeats rounds until nothing happens: deliver the copies
//! due, let each host whose `poll_timeout` has come handle it, then let every host
//! transmit (in the order hosts were added). Then the clock jumps straight to the next
//! event: the earliest arrival in flight or host deadline. Ten virtual seconds of an idle
//! protocol cost a handful of rounds.
use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap};
use std::io::{self, Write};

use super::faults::{FaultError, Faults};
use super::link::{Link, LinkStats, ETHERNET_HEADER_LEN};
use super::pcap::{PcapWriter, Resolution};
use super::{Host, HostId, SimError};
use crate::rng::SeededRng;
use crate::time::{Duration, Instant};

/// Which frames the capture records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CaptureMode {
    /// Each copy as the receiving host gets it, at its arrival time: duplicates appear
    /// twice, corrupted copies corrupted, lost frames not at all, and a broadcast once per
    /// receiver. What the receivers saw.
    Delivered,
    /// Each frame as its sender transmitted it, at transmit time, whatever then happens to
    /// it (including frames the faults drop). What the senders did.
    Transmitted,
}

/// Totals over the whole network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetworkStats {
    /// Frames the hosts transmitted.
    pub transmitted: u64,
    /// Frames shorter than an Ethernet header.
    pub runts: u64,
    /// Frames for an unknown MAC address or for their own sender.
    pub unroutable: u64,
    /// Copies still in flight.
    pub in_flight: u64,
    /// The sum of every link's counters.
    pub links: LinkStats,
}

/// Where captured frames go.
enum Sink {
    Memory(Vec<u8>),
    Stream(Box<dyn Write>),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Memory(v) => v.write(buf),
            Sink::Stream(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Memory(_) => Ok(()),
            Sink::Stream(w) => w.flush(),
        }
    }
}

impl core::fmt::Debug for Sink {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Sink::Memory(v) => write!(f, "Memory({} bytes)", v.len()),
            Sink::Stream(_) => f.write_str("Stream"),
        }
    }
}

#[derive(Debug)]
struct Capture {
    writer: PcapWriter<Sink>,
    mode: CaptureMode,
    /// The first write error; capturing stops there, the simulation goes on.
    error: Option<io::ErrorKind>,
}

impl Capture {
    fn record(&mut self, at: Instant, frame: &[u8]) {
        if self.error.is_none() {
            if let Err(e) = self.writer.write_frame(at, frame) {
                self.error = Some(e.kind());
            }
        }
    }
}

#[derive(Debug)]
struct InFlight {
    at: Instant,
    /// Order of scheduling: ties in `at` arrive in the order they were scheduled.
    seq: u64,
    from: usize,
    to: usize,
    bytes: Vec<u8>,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Everything but the hosts, so that a host can transmit into it while borrowed.
#[derive(Debug)]
struct Wire {
    now: Instant,
    seed: u64,
    macs: Vec<[u8; 6]>,
    default_faults: Faults,
    link_faults: BTreeMap<(usize, usize), Faults>,
    links: BTreeMap<(usize, usize), Link>,
    in_flight: BinaryHeap<Reverse<InFlight>>,
    next_seq: u64,
    transmitted: u64,
    runts: u64,
    unroutable: u64,
    capture: Option<Capture>,
}

impl Wire {
    /// Puts a frame from host `from` on the segment at the current instant.
    fn route(&mut self, from: usize, frame: &[u8]) {
        self.transmitted += 1;
        let now = self.now;
        if let Some(capture) = self
            .capture
            .as_mut()
            .filter(|c| c.mode == CaptureMode::Transmitted)
        {
            capture.record(now, frame);
        }
        if frame.len() < ETHERNET_HEADER_LEN {
            self.runts += 1;
            return;
        }
        let mut dst = [0u8; 6];
        dst.copy_from_slice(&frame[..6]);
        if dst[0] & 1 == 1 {
            for to in 0..self.macs.len() {
                if to != from {
                    self.send_over(from, to, frame);
                }
            }
        } else {
            match self.macs.iter().position(|mac| *mac == dst) {
                Some(to) if to != from => self.send_over(from, to, frame),
                _ => self.unroutable += 1,
            }
        }
    }

    fn send_over(&mut self, from: usize, to: usize, frame: &[u8]) {
        let faults = self
            .link_faults
            .get(&(from, to))
            .unwrap_or(&self.default_faults);
        let seed = self.seed;
        let link = self.links.entry((from, to)).or_insert_with(|| {
            // One stream per ordered pair: traffic in one direction does not shift the
            // random draws of another.
            Link::new(SeededRng::derive(seed, ((from as u64) << 32) | to as u64))
        });
        let (in_flight, next_seq) = (&mut self.in_flight, &mut self.next_seq);
        link.transmit(faults, self.now, frame, |at, bytes| {
            in_flight.push(Reverse(InFlight {
                at,
                seq: *next_seq,
                from,
                to,
                bytes,
            }));
            *next_seq += 1;
        });
    }
}

/// A simulated Ethernet segment of hosts of type `H` (by default any [`Host`], boxed).
#[derive(Debug)]
pub struct Network<H = Box<dyn Host>> {
    hosts: Vec<H>,
    wire: Wire,
    max_rounds: u64,
}

impl<H: Host> Network<H> {
    /// Default bound on the rounds at a single instant before [`SimError::Livelock`].
    pub const DEFAULT_MAX_ROUNDS: u64 = 1_000_000;

    /// An empty network whose every random draw follows from `seed`, with perfect links.
    pub fn new(seed: u64) -> Self {
        Network {
            hosts: Vec::new(),
            wire: Wire {
                now: Instant::ZERO,
                seed,
                macs: Vec::new(),
                default_faults: Faults::none(),
                link_faults: BTreeMap::new(),
                links: BTreeMap::new(),
                in_flight: BinaryHeap::new(),
                next_seq: 0,
                transmitted: 0,
                runts: 0,
                unroutable: 0,
                capture: None,
            },
            max_rounds: Self::DEFAULT_MAX_ROUNDS,
        }
    }

    /// Bounds the rounds run at a single instant (a host that keeps asking to run now, or
    /// frames bouncing with zero delay forever) before [`SimError::Livelock`].
    pub fn set_max_rounds_per_instant(&mut self, rounds: u64) {
        self.max_rounds = rounds.max(1);
    }

    /// Attaches a host. Its MAC address must be unicast and not already on the segment.
    pub fn add_host(&mut self, host: H) -> Result<HostId, SimError> {
        let mac = host.mac();
        if mac[0] & 1 == 1 {
            return Err(SimError::MulticastMac);
        }
        if self.wire.macs.contains(&mac) {
            return Err(SimError::DuplicateMac);
        }
        self.wire.macs.push(mac);
        self.hosts.push(host);
        Ok(HostId(self.hosts.len() - 1))
    }

    pub fn host(&self, id: HostId) -> Option<&H> {
        self.hosts.get(id.0)
    }

    pub fn host_mut(&mut self, id: HostId) -> Option<&mut H> {
        self.hosts.get_mut(id.0)
    }

    /// The hosts, in the order they were added.
    pub fn hosts(&self) -> impl Iterator<Item = (HostId, &H)> + '_ {
        self.hosts.iter().enumerate().map(|(i, h)| (HostId(i), h))
    }

    /// The virtual clock.
    pub fn now(&self) -> Instant {
        self.wire.now
    }

    pub fn seed(&self) -> u64 {
        self.wire.seed
    }

    /// Sets the faults of every link without its own configuration.
    pub fn set_faults(&mut self, faults: Faults) -> Result<(), FaultError> {
        faults.validate()?;
        self.wire.default_faults = faults;
        Ok(())
    }

    /// Sets the faults of the link from `from` to `to` (one direction).
    pub fn set_link_faults(
        &mut self,
        from: HostId,
        to: HostId,
        faults: Faults,
    ) -> Result<(), SimError> {
        faults.validate()?;
        self.check(from)?;
        self.check(to)?;
        self.wire.link_faults.insert((from.0, to.0), faults);
        Ok(())
    }

    /// Sets the faults of both directions between `a` and `b`.
    pub fn set_path_faults(
        &mut self,
        a: HostId,
        b: HostId,
        faults: Faults,
    ) -> Result<(), SimError> {
        self.set_link_faults(a, b, faults.clone())?;
        self.set_link_faults(b, a, faults)
    }

    /// The counters of the link from `from` to `to` (zero if it never carried a frame).
    pub fn link_stats(&self, from: HostId, to: HostId) -> LinkStats {
        self.wire
            .links
            .get(&(from.0, to.0))
            .map(|l| l.stats)
            .unwrap_or_default()
    }

    /// Totals over the whole network.
    pub fn stats(&self) -> NetworkStats {
        let mut links = LinkStats::default();
        for link in self.wire.links.values() {
            links += link.stats;
        }
        NetworkStats {
            transmitted: self.wire.transmitted,
            runts: self.wire.runts,
            unroutable: self.wire.unroutable,
            in_flight: self.wire.in_flight.len() as u64,
            links,
        }
    }

    /// Records frames into an in-memory capture file, read with [`Self::pcap_bytes`] (and
    /// saved with [`Self::save_pcap`]). Replaces any capture in progress.
    pub fn capture(&mut self, mode: CaptureMode, resolution: Resolution) {
        // Writing the header to memory cannot fail.
        if let Ok(writer) = PcapWriter::new(Sink::Memory(Vec::new()), resolution) {
            self.wire.capture = Some(Capture {
                writer,
                mode,
                error: None,
            });
        }
    }

    /// Streams captured frames to `out` (a file, say). Replaces any capture in progress.
    pub fn capture_to(
        &mut self,
        out: Box<dyn Write>,
        mode: CaptureMode,
        resolution: Resolution,
    ) -> io::Result<()> {
        let writer = PcapWriter::new(Sink::Stream(out), resolution)?;
        self.wire.capture = Some(Capture {
            writer,
            mode,
            error: None,
        });
        Ok(())
    }

    /// The in-memory capture file so far (`None` without an in-memory capture).
    pub fn pcap_bytes(&self) -> Option<&[u8]> {
        match self.wire.capture.as_ref()?.writer.get_ref() {
            Sink::Memory(bytes) => Some(bytes),
            Sink::Stream(_) => None,
        }
    }

    /// Writes the in-memory capture to a file, for Wireshark. Does nothing without one.
    pub fn save_pcap(&self, path: impl AsRef<std::path::Path>) -> io::Result<()> {
        match self.pcap_bytes() {
            Some(bytes) => std::fs::write(path, bytes),
            None => Ok(()),
        }
    }

    /// Flushes and ends the capture, reporting the first write error if there was one.
    pub fn finish_capture(&mut self) -> io::Result<()> {
        let Some(mut capture) = self.wire.capture.take() else {
            return Ok(());
        };
        if let Some(kind) = capture.error {
            return Err(kind.into());
        }
        capture.writer.flush()
    }

    /// Puts `frame` on the wire as if host `from` had transmitted it now.
    pub fn inject(&mut self, from: HostId, frame: &[u8]) -> Result<(), SimError> {
        self.check(from)?;
        self.wire.route(from.0, frame);
        Ok(())
    }

    /// Runs until `done` holds (checked whenever an instant has settled), returning the
    /// totals. Fails with [`SimError::Timeout`] if the next event would be after
    /// `deadline` (the clock is then left at `deadline`), with [`SimError::Stalled`] if no
    /// event is left at all, and with [`SimError::Livelock`] if one instant never settles.
    pub fn run_until(
        &mut self,
        mut done: impl FnMut(&Self) -> bool,
        deadline: Instant,
    ) -> Result<NetworkStats, SimError> {
        loop {
            self.settle()?;
            if done(self) {
                return Ok(self.stats());
            }
            match self.next_event() {
                None => return Err(SimError::Stalled { now: self.wire.now }),
                Some(at) if at > deadline => {
                    self.wire.now = self.wire.now.max(deadline);
                    return Err(SimError::Timeout { now: self.wire.now });
                }
                Some(at) => self.wire.now = self.wire.now.max(at),
            }
        }
    }

    /// Runs for `duration` of virtual time (or until nothing is left to happen), leaving
    /// the clock at the end of it.
    pub fn run_for(&mut self, duration: Duration) -> Result<NetworkStats, SimError> {
        let end = self.wire.now + duration;
        loop {
            self.settle()?;
            match self.next_event() {
                Some(at) if at <= end => self.wire.now = self.wire.now.max(at),
                _ => {
                    self.wire.now = end;
                    return Ok(self.stats());
                }
            }
        }
    }

    /// The earliest pending event: an arrival, or a host deadline (a past deadline counts
    /// as now).
    pub fn next_event(&self) -> Option<Instant> {
        let arrival = self.wire.in_flight.peek().map(|Reverse(f)| f.at);
        let deadline = self.hosts.iter().filter_map(|h| h.poll_timeout()).min();
        let next = match (arrival, deadline) {
            (Some(a), Some(d)) => Some(a.min(d)),
            (a, d) => a.or(d),
        };
        next.map(|t| t.max(self.wire.now))
    }

    /// Runs rounds at the current instant until nothing more happens in it.
    pub fn settle(&mut self) -> Result<(), SimError> {
        let now = self.wire.now;
        for _ in 0..self.max_rounds {
            let mut active = false;
            while self
                .wire
                .in_flight
                .peek()
                .is_some_and(|Reverse(f)| f.at <= now)
            {
                let Some(Reverse(frame)) = self.wire.in_flight.pop() else {
                    break;
                };
                active = true;
                if let Some(link) = self.wire.links.get_mut(&(frame.from, frame.to)) {
                    link.stats.delivered += 1;
                    link.stats.bytes_delivered += frame.bytes.len() as u64;
                }
                if let Some(c) = self
                    .wire
                    .capture
                    .as_mut()
                    .filter(|c| c.mode == CaptureMode::Delivered)
                {
                    c.record(now, &frame.bytes);
                }
                if let Some(host) = self.hosts.get_mut(frame.to) {
                    host.receive(now, &frame.bytes);
                }
            }
            for host in &mut self.hosts {
                if host.poll_timeout().is_some_and(|t| t <= now) {
                    host.handle_timeout(now);
                    active = true;
                }
            }
            let transmitted_before = self.wire.transmitted;
            for (index, host) in self.hosts.iter_mut().enumerate() {
                let wire = &mut self.wire;
                host.transmit(now, &mut |frame| wire.route(index, frame));
            }
            active |= self.wire.transmitted != transmitted_before;
            if !active {
                return Ok(());
            }
        }
        Err(SimError::Livelock { now })
    }

    fn check(&self, id: HostId) -> Result<(), SimError> {
        if id.0 < self.hosts.len() {
            Ok(())
        } else {
            Err(SimError::UnknownHost)
        }
    }
}
