//! Fault injection on a real port: seeded drop, duplication, reordering and delay of frames,
//! for testing the engine on a device (net_tap, a NIC) whose wire is too kind.
//!
//! Owns: [`FaultConfig`] and its command-line syntax (`drop=0.05,dup=0.01,reorder=0.02,
//! delay=200us,seed=7,dir=rx|tx|both`), and [`FaultyPort`], a [`Port`] that wraps another
//! one, applies the configured faults to received frames, transmitted frames or both, and
//! owns the frames it holds back.
//!
//! May not: look into frames (faults are blind to content), allocate per frame except the
//! copy a duplicate needs (taken from the inner port's pool), hold more frames than its
//! bound, or panic on any input. The simulated wire has its own, richer fault model
//! (`sim::faults`); this one is for ports the simulator does not drive.
//!
//! Per frame of a faulted direction, in this order, with one seeded draw per step:
//! 1. **drop** with probability `drop`;
//! 2. **duplicate** with probability `dup`: a copy is allocated from the inner port and
//!    follows the original (if the pool is empty there is no copy, counted as
//!    `dup_no_buffer`);
//! 3. **reorder** with probability `reorder`: the frame is held back until `reorder_after`
//!    later frames have been delivered in its direction, or `reorder_timeout` has passed,
//!    whichever comes first;
//! 4. otherwise **delay** with probability `delay_p` (1 by default) when `delay` is not
//!    zero: the frame is held until `now + delay`. With `delay_p = 1` the direction is a
//!    FIFO with a fixed latency; below 1, undelayed frames overtake delayed ones.
//!
//! Held frames of a direction are bounded by `hold`: a frame that would be held beyond it
//! passes unfaulted and is counted as `hold_full`. Held frames are released in order of
//! their due time, on the next `recv_burst` or `send_burst` at or after it (the poll loop
//! calls `recv_burst` on every iteration; [`Port::wait_rx`] wakes for the next release).
//! When the `FaultyPort` is dropped its held frames are dropped, which frees them.
//!
//! Determinism: each direction draws from its own [`SeededRng`] stream of `seed`, so the same
//! seed and the same sequence of frames give the same decisions; only when held frames are
//! released depends on the clock.
use core::fmt;
use core::str::FromStr;
use std::collections::VecDeque;

use engine::port::{Frame, IdleSupport, Port};
use engine::rng::SeededRng;
use engine::time::{Clock, Duration, Instant};
use engine::wire::EthernetAddress;

/// Which frames a [`FaultyPort`] faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FaultDirection {
    /// Received frames only.
    #[default]
    Rx,
    /// Transmitted frames only.
    Tx,
    /// Both.
    Both,
}

impl FaultDirection {
    pub const fn as_str(self) -> &'static str {
        match self {
            FaultDirection::Rx => "rx",
            FaultDirection::Tx => "tx",
            FaultDirection::Both => "both",
        }
    }

    /// Whether received frames are faulted.
    pub const fn rx(self) -> bool {
        matches!(self, FaultDirection::Rx | FaultDirection::Both)
    }

    /// Whether transmitted frames are faulted.
    pub const fn tx(self) -> bool {
        matches!(self, FaultDirection::Tx | FaultDirection::Both)
    }
}

impl fmt::Display for FaultDirection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FaultDirection {
    type Err = FaultConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "rx" => Ok(FaultDirection::Rx),
            "tx" => Ok(FaultDirection::Tx),
            "both" => Ok(FaultDirection::Both),
            _ => Err(FaultConfigError::Direction(s.to_owned())),
        }
    }
}

/// The faults a [`FaultyPort`] applies; see the module documentation for their order.
/// Probabilities are per frame, in `[0, 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultConfig {
    /// `drop`: probability that a frame is dropped.
    pub drop: f64,
    /// `dup`: probability that a frame is duplicated.
    pub duplicate: f64,
    /// `reorder`: probability that a frame is held back behind later ones.
    pub reorder: f64,
    /// `reorder_after`: a reordered frame is released after this many later frames (at
    /// least 1)...
    pub reorder_after: u32,
    /// `reorder_timeout`: ...or after this long, whichever comes first.
    pub reorder_timeout: Duration,
    /// `delay`: how long a delayed frame is held; zero disables delay.
    pub delay: Duration,
    /// `delay_p`: probability that a frame (not reordered) is delayed.
    pub delay_probability: f64,
    /// `seed`: the seed of the decisions.
    pub seed: u64,
    /// `dir`: which direction(s) are faulted.
    pub direction: FaultDirection,
    /// `hold`: most frames held back (reordered or delayed) per direction.
    pub hold_limit: usize,
}

impl Default for FaultConfig {
    /// No fault at all, on received frames.
    fn default() -> Self {
        FaultConfig {
            drop: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_after: 3,
            reorder_timeout: Duration::from_millis(1),
            delay: Duration::ZERO,
            delay_probability: 1.0,
            seed: 0,
            direction: FaultDirection::Rx,
            hold_limit: 1024,
        }
    }
}

/// Why a fault configuration was refused. Parsing only, never on the data path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultConfigError {
    /// An item of the list is not `key=value`.
    #[error("`{0}` is not key=value")]
    NotKeyValue(String),
    /// The key is not one of the known ones.
    #[error(
        "unknown fault key `{0}` (expected drop, dup, reorder, reorder_after, \
         reorder_timeout, delay, delay_p, seed, dir, hold)"
    )]
    UnknownKey(String),
    /// The key appears twice.
    #[error("fault key `{0}` given twice")]
    DuplicateKey(&'static str),
    /// A probability that is not a number in `[0, 1]`.
    #[error("`{key}={value}`: a probability must be a number in [0, 1]")]
    Probability { key: &'static str, value: String },
    /// A duration that is not a whole number with a unit.
    #[error("`{key}={value}`: a duration is a whole number with a unit ns, us, ms or s (200us)")]
    Duration { key: &'static str, value: String },
    /// An integer that does not parse or is out of range.
    #[error("`{key}={value}`: expected a whole number {range}")]
    Integer {
        key: &'static str,
        value: String,
        range: &'static str,
    },
    /// A direction other than `rx`, `tx` or `both`.
    #[error("`dir={0}`: expected rx, tx or both")]
    Direction(String),
}

/// The keys of the command-line syntax, in the order [`FaultConfig`]'s `Display` writes.
const KEYS: [&str; 10] = [
    "drop",
    "dup",
    "reorder",
    "reorder_after",
    "reorder_timeout",
    "delay",
    "delay_p",
    "seed",
    "dir",
    "hold",
];

impl FaultConfig {
    /// Checks the probabilities and `reorder_after` of a configuration built in code
    /// (parsing checks them already).
    pub fn validate(&self) -> Result<(), FaultConfigError> {
        for (key, p) in [
            ("drop", self.drop),
            ("dup", self.duplicate),
            ("reorder", self.reorder),
            ("delay_p", self.delay_probability),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(FaultConfigError::Probability {
                    key,
                    value: p.to_string(),
                });
            }
        }
        if self.reorder_after == 0 {
            return Err(FaultConfigError::Integer {
                key: "reorder_after",
                value: "0".to_owned(),
                range: "from 1 to 4294967295",
            });
        }
        Ok(())
    }

    /// Whether no fault can ever happen.
    pub fn is_none(&self) -> bool {
        self.drop == 0.0
            && self.duplicate == 0.0
            && self.reorder == 0.0
            && (self.delay.is_zero() || self.delay_probability == 0.0)
    }
}

fn parse_probability(key: &'static str, value: &str) -> Result<f64, FaultConfigError> {
    match value.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(FaultConfigError::Probability {
            key,
            value: value.to_owned(),
        }),
    }
}

/// A whole number of `ns`, `us`, `ms` or `s`; a bare `0` is accepted.
fn parse_duration(key: &'static str, value: &str) -> Result<Duration, FaultConfigError> {
    let error = || FaultConfigError::Duration {
        key,
        value: value.to_owned(),
    };
    if value == "0" {
        return Ok(Duration::ZERO);
    }
    let digits = value.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = value.split_at(digits);
    let per_unit: u64 = match unit {
        "ns" => 1,
        "us" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        _ => return Err(error()),
    };
    let n: u64 = number.parse().map_err(|_| error())?;
    n.checked_mul(per_unit)
        .map(Duration::from_nanos)
        .ok_or_else(error)
}

fn parse_integer<T: FromStr>(
    key: &'static str,
    value: &str,
    range: &'static str,
) -> Result<T, FaultConfigError> {
    value.parse().map_err(|_| FaultConfigError::Integer {
        key,
        value: value.to_owned(),
        range,
    })
}

impl FromStr for FaultConfig {
    type Err = FaultConfigError;

    /// Parses `key=value` items separated by commas; keys not given keep their
    /// [`Default`]. An empty string is the default configuration (no fault).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut config = FaultConfig::default();
        if s.trim().is_empty() {
            return Ok(config);
        }
        let mut seen = [false; KEYS.len()];
        for item in s.split(',') {
            let item = item.trim();
            let Some((key, value)) = item.split_once('=') else {
                return Err(FaultConfigError::NotKeyValue(item.to_owned()));
            };
            let (key, value) = (key.trim(), value.trim());
            let Some(index) = KEYS.iter().position(|k| *k == key) else {
                return Err(FaultConfigError::UnknownKey(key.to_owned()));
            };
            let key = KEYS[index];
            if core::mem::replace(&mut seen[index], true) {
                return Err(FaultConfigError::DuplicateKey(key));
            }
            match key {
                "drop" => config.drop = parse_probability(key, value)?,
                "dup" => config.duplicate = parse_probability(key, value)?,
                "reorder" => config.reorder = parse_probability(key, value)?,
                "reorder_after" => {
                    config.reorder_after = parse_integer(key, value, "from 1 to 4294967295")?;
                    if config.reorder_after == 0 {
                        return Err(FaultConfigError::Integer {
                            key,
                            value: value.to_owned(),
                            range: "from 1 to 4294967295",
                        });
                    }
                }
                "reorder_timeout" => config.reorder_timeout = parse_duration(key, value)?,
                "delay" => config.delay = parse_duration(key, value)?,
                "delay_p" => config.delay_probability = parse_probability(key, value)?,
                "seed" => config.seed = parse_integer(key, value, "from 0 to 2^64-1")?,
                "dir" => config.direction = value.parse()?,
                _ => config.hold_limit = parse_integer(key, value, "of frames")?,
            }
        }
        Ok(config)
    }
}

impl fmt::Display for FaultConfig {
    /// The command-line syntax, every key, durations in nanoseconds: parsing the output
    /// gives the same configuration back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "drop={},dup={},reorder={},reorder_after={},reorder_timeout={}ns,delay={}ns,\
             delay_p={},seed={},dir={},hold={}",
            self.drop,
            self.duplicate,
            self.reorder,
            self.reorder_after,
            self.reorder_timeout.as_nanos(),
            self.delay.as_nanos(),
            self.delay_probability,
            self.seed,
            self.direction,
            self.hold_limit,
        )
    }
}

/// What a [`FaultyPort`] did to the frames of one direction. Every frame that entered a
/// faulted direction is counted once in exactly one of `dropped`, `reordered`, `delayed`
/// and `passed`; copies made by duplication are counted in `duplicated` only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FaultCounters {
    pub dropped: u64,
    /// Copies made.
    pub duplicated: u64,
    pub reordered: u64,
    pub delayed: u64,
    /// Frames handed on without being dropped or held (including `hold_full` ones).
    pub passed: u64,
    /// Duplications skipped because the inner port had no free buffer.
    pub dup_no_buffer: u64,
    /// Frames chosen for reordering or delay that passed unfaulted because the direction
    /// already held `hold_limit` frames.
    pub hold_full: u64,
}

impl FaultCounters {
    /// Frames that entered the direction (copies excluded).
    pub fn frames(&self) -> u64 {
        self.dropped + self.reordered + self.delayed + self.passed
    }
}

/// A frame held back for reordering: released once `delivered` reaches `after`, or at
/// `deadline`. Both grow with insertion order, so the front is always the first due.
#[derive(Debug)]
struct Reordered<F> {
    after: u64,
    deadline: Instant,
    frame: F,
}

/// A delayed frame, released at `due`. Dues never decrease along the queue.
#[derive(Debug)]
struct Delayed<F> {
    due: Instant,
    frame: F,
}

/// The fault state of one direction.
#[derive(Debug)]
struct Lane<F> {
    enabled: bool,
    rng: SeededRng,
    reorder: VecDeque<Reordered<F>>,
    delay: VecDeque<Delayed<F>>,
    /// The latest due time given so far; later frames are never due before it, so that a
    /// clock that stepped back cannot release frames out of order.
    last_due: Instant,
    /// Frames delivered so far (handed on to the caller or the device, copies included).
    delivered: u64,
    counters: FaultCounters,
}

impl<F: Frame> Lane<F> {
    fn new(enabled: bool, seed: u64, stream: u64) -> Self {
        Lane {
            enabled,
            rng: SeededRng::derive(seed, stream),
            reorder: VecDeque::new(),
            delay: VecDeque::new(),
            last_due: Instant::ZERO,
            delivered: 0,
            counters: FaultCounters::default(),
        }
    }

    fn held(&self) -> usize {
        self.reorder.len() + self.delay.len()
    }

    fn next_release(&self) -> Option<Instant> {
        let r = self.reorder.front().map(|h| h.deadline);
        let d = self.delay.front().map(|h| h.due);
        match (r, d) {
            (Some(r), Some(d)) => Some(r.min(d)),
            (r, d) => r.or(d),
        }
    }

    /// Hands `frame` on, then the reordered frames that have now waited for enough others.
    fn deliver(&mut self, frame: F, out: &mut impl FnMut(F)) {
        out(frame);
        self.delivered += 1;
        while self
            .reorder
            .front()
            .is_some_and(|h| h.after <= self.delivered)
        {
            if let Some(h) = self.reorder.pop_front() {
                out(h.frame);
                self.delivered += 1;
            }
        }
    }

    /// Releases the held frames due at `now`, earliest due first.
    fn release_due(&mut self, now: Instant, out: &mut impl FnMut(F)) {
        loop {
            let delivered = self.delivered;
            let r = self
                .reorder
                .front()
                .filter(|h| h.deadline <= now || h.after <= delivered)
                .map(|h| h.deadline);
            let d = self.delay.front().filter(|h| h.due <= now).map(|h| h.due);
            let frame = match (r, d) {
                (None, None) => return,
                (Some(r), Some(d)) if d < r => self.delay.pop_front().map(|h| h.frame),
                (Some(_), _) => self.reorder.pop_front().map(|h| h.frame),
                (None, Some(_)) => self.delay.pop_front().map(|h| h.frame),
            };
            match frame {
                Some(frame) => self.deliver(frame, out),
                None => return,
            }
        }
    }

    /// Applies the faults to one frame entering this direction.
    fn admit(
        &mut self,
        frame: F,
        now: Instant,
        config: &FaultConfig,
        alloc: &mut impl FnMut(usize) -> Option<F>,
        out: &mut impl FnMut(F),
    ) {
        if !self.enabled {
            self.counters.passed += 1;
            self.deliver(frame, out);
            return;
        }
        if self.rng.chance(config.drop) {
            self.counters.dropped += 1;
            return;
        }
        let copy = if self.rng.chance(config.duplicate) {
            let copy = copy_frame(&frame, alloc);
            match copy {
                Some(_) => self.counters.duplicated += 1,
                None => self.counters.dup_no_buffer += 1,
            }
            copy
        } else {
            None
        };
        let reorder = self.rng.chance(config.reorder);
        let delay =
            !reorder && !config.delay.is_zero() && self.rng.chance(config.delay_probability);
        if (reorder || delay) && self.held() >= config.hold_limit {
            self.counters.hold_full += 1;
        } else if reorder {
            self.counters.reordered += 1;
            let after = self.delivered + u64::from(config.reorder_after);
            let deadline = now + config.reorder_timeout;
            self.reorder.push_back(Reordered {
                after,
                deadline,
                frame,
            });
            if let Some(copy) = copy {
                if self.held() < config.hold_limit {
                    self.reorder.push_back(Reordered {
                        after,
                        deadline,
                        frame: copy,
                    });
                } else {
                    self.deliver(copy, out);
                }
            }
            return;
        } else if delay {
            self.counters.delayed += 1;
            let due = (now + config.delay).max(self.last_due);
            self.last_due = due;
            self.delay.push_back(Delayed { due, frame });
            if let Some(copy) = copy {
                if self.held() < config.hold_limit {
                    self.delay.push_back(Delayed { due, frame: copy });
                } else {
                    self.deliver(copy, out);
                }
            }
            return;
        }
        self.counters.passed += 1;
        self.deliver(frame, out);
        if let Some(copy) = copy {
            self.deliver(copy, out);
        }
    }
}

/// A byte-identical copy of `frame` in a buffer from `alloc`, or `None` when there is no
/// buffer of the right size.
fn copy_frame<F: Frame>(frame: &F, alloc: &mut impl FnMut(usize) -> Option<F>) -> Option<F> {
    let bytes = frame.data();
    let mut copy = alloc(bytes.len())?;
    if copy.data().len() != bytes.len() && !copy.set_len(bytes.len()) {
        return None;
    }
    let dst = copy.data_mut();
    if dst.len() != bytes.len() {
        return None;
    }
    dst.copy_from_slice(bytes);
    Some(copy)
}

/// A [`Port`] that applies seeded faults to another port's frames.
///
/// `C` tells the time held frames are due: the host's clock for a real device, a virtual
/// one in tests (`Port::recv_burst` has no `now` argument, so the port reads its own).
pub struct FaultyPort<P: Port, C: Clock> {
    inner: P,
    clock: C,
    config: FaultConfig,
    rx: Lane<P::Frame>,
    tx: Lane<P::Frame>,
    /// Received frames ready for the caller, in order; bounded by a burst, its copies and
    /// the released frames (at most `hold_limit`).
    rx_ready: VecDeque<P::Frame>,
    /// The inner port's burst, reused; empty between calls.
    rx_scratch: Vec<P::Frame>,
    /// Frames taken from the caller or released, not yet taken by the device, in order.
    /// While it is not empty `send_burst` takes nothing new (the device is the bottleneck).
    tx_backlog: Vec<P::Frame>,
}

impl<P: Port, C: Clock> fmt::Debug for FaultyPort<P, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyPort")
            .field("config", &self.config)
            .field("rx", &self.rx.counters)
            .field("tx", &self.tx.counters)
            .field("rx_held", &self.rx_held())
            .field("tx_held", &self.tx_held())
            .finish_non_exhaustive()
    }
}

impl<P: Port, C: Clock> FaultyPort<P, C> {
    /// Wraps `inner`; `config` is checked with [`FaultConfig::validate`].
    pub fn new(inner: P, clock: C, config: FaultConfig) -> Result<Self, FaultConfigError> {
        config.validate()?;
        Ok(FaultyPort {
            inner,
            clock,
            rx: Lane::new(config.direction.rx(), config.seed, 0),
            tx: Lane::new(config.direction.tx(), config.seed, 1),
            config,
            rx_ready: VecDeque::new(),
            rx_scratch: Vec::new(),
            tx_backlog: Vec::new(),
        })
    }

    pub fn config(&self) -> &FaultConfig {
        &self.config
    }

    /// What was done to received frames (all zero but `passed` when rx is not faulted).
    pub fn rx_counters(&self) -> FaultCounters {
        self.rx.counters
    }

    /// What was done to transmitted frames (all zero but `passed` when tx is not faulted).
    pub fn tx_counters(&self) -> FaultCounters {
        self.tx.counters
    }

    /// Received frames the port holds: held back, or ready but beyond the last `max`.
    pub fn rx_held(&self) -> usize {
        self.rx.held() + self.rx_ready.len()
    }

    /// Transmitted frames the port holds: held back, or not yet taken by the device.
    pub fn tx_held(&self) -> usize {
        self.tx.held() + self.tx_backlog.len()
    }

    /// When the next held frame is due, if any is held.
    pub fn next_release(&self) -> Option<Instant> {
        match (self.rx.next_release(), self.tx.next_release()) {
            (Some(r), Some(t)) => Some(r.min(t)),
            (r, t) => r.or(t),
        }
    }

    pub fn inner(&self) -> &P {
        &self.inner
    }

    pub fn inner_mut(&mut self) -> &mut P {
        &mut self.inner
    }

    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The inner port back; held frames are dropped (freed).
    pub fn into_inner(self) -> P {
        self.inner
    }

    /// Releases the transmitted frames due at `now` and offers the backlog to the device.
    fn pump_tx(&mut self, now: Instant) {
        let backlog = &mut self.tx_backlog;
        self.tx.release_due(now, &mut |f| backlog.push(f));
        if !self.tx_backlog.is_empty() {
            self.inner.send_burst(&mut self.tx_backlog);
        }
    }
}

impl<P: Port, C: Clock> Port for FaultyPort<P, C> {
    fn buffers_low(&self) -> bool {
        self.inner.buffers_low()
    }

    type Frame = P::Frame;

    fn recv_burst(&mut self, out: &mut Vec<Self::Frame>, max: usize) -> usize {
        let now = self.clock.now();
        if self.tx.enabled {
            self.pump_tx(now);
        }
        if !self.rx.enabled {
            let n = self.inner.recv_burst(out, max);
            self.rx.counters.passed += n as u64;
            return n;
        }
        let ready = &mut self.rx_ready;
        self.rx.release_due(now, &mut |f| ready.push_back(f));
        if self.rx_ready.len() < max {
            let want = max - self.rx_ready.len();
            let mut burst = core::mem::take(&mut self.rx_scratch);
            self.inner.recv_burst(&mut burst, want);
            let inner = &mut self.inner;
            let ready = &mut self.rx_ready;
            for frame in burst.drain(..) {
                self.rx.admit(
                    frame,
                    now,
                    &self.config,
                    &mut |len| inner.alloc(len),
                    &mut |f| ready.push_back(f),
                );
            }
            self.rx_scratch = burst;
        }
        let n = max.min(self.rx_ready.len());
        out.extend(self.rx_ready.drain(..n));
        n
    }

    fn send_burst(&mut self, frames: &mut Vec<Self::Frame>) -> usize {
        if !self.tx.enabled {
            let n = self.inner.send_burst(frames);
            self.tx.counters.passed += n as u64;
            return n;
        }
        let now = self.clock.now();
        self.pump_tx(now);
        if !self.tx_backlog.is_empty() {
            // The device has not taken what we already accepted: take nothing new, so
            // that the caller sees the device's back-pressure.
            return 0;
        }
        let taken = frames.len();
        let inner = &mut self.inner;
        let backlog = &mut self.tx_backlog;
        for frame in frames.drain(..) {
            self.tx.admit(
                frame,
                now,
                &self.config,
                &mut |len| inner.alloc(len),
                &mut |f| backlog.push(f),
            );
        }
        if !self.tx_backlog.is_empty() {
            self.inner.send_burst(&mut self.tx_backlog);
        }
        taken
    }

    fn alloc(&mut self, len: usize) -> Option<Self::Frame> {
        self.inner.alloc(len)
    }

    fn mac(&self) -> EthernetAddress {
        self.inner.mac()
    }

    fn mtu(&self) -> usize {
        self.inner.mtu()
    }

    fn idle_support(&self) -> IdleSupport {
        self.inner.idle_support()
    }

    /// Returns at once when received frames are ready or a held frame is due; otherwise
    /// waits on the inner port no longer than until the next held frame is due.
    fn wait_rx(&mut self, timeout: Duration) -> bool {
        if !self.rx_ready.is_empty() {
            return true;
        }
        let timeout = match self.next_release() {
            Some(due) => {
                let now = self.clock.now();
                if due <= now {
                    return true;
                }
                timeout.min(due - now)
            }
            None => timeout,
        };
        self.inner.wait_rx(timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_issue_example() {
        let c: FaultConfig = "drop=0.05,dup=0.01,reorder=0.02,delay=200us,seed=7,dir=both"
            .parse()
            .unwrap();
        assert_eq!(c.drop, 0.05);
        assert_eq!(c.duplicate, 0.01);
        assert_eq!(c.reorder, 0.02);
        assert_eq!(c.delay, Duration::from_micros(200));
        assert_eq!(c.seed, 7);
        assert_eq!(c.direction, FaultDirection::Both);
        assert_eq!(c.reorder_after, FaultConfig::default().reorder_after);
        for (s, d) in [("rx", FaultDirection::Rx), ("tx", FaultDirection::Tx)] {
            let c: FaultConfig = format!("dir={s}").parse().unwrap();
            assert_eq!(c.direction, d);
        }
    }

    #[test]
    fn parses_every_key_and_round_trips_through_display() {
        let c: FaultConfig = " drop=1 , dup=0,reorder=0.5,reorder_after=7,reorder_timeout=3ms,\
                              delay=2s,delay_p=0.25,seed=18446744073709551615,dir=tx,hold=9"
            .parse()
            .unwrap();
        let expected = FaultConfig {
            drop: 1.0,
            duplicate: 0.0,
            reorder: 0.5,
            reorder_after: 7,
            reorder_timeout: Duration::from_millis(3),
            delay: Duration::from_secs(2),
            delay_probability: 0.25,
            seed: u64::MAX,
            direction: FaultDirection::Tx,
            hold_limit: 9,
        };
        assert_eq!(c, expected);
        assert_eq!(c.to_string().parse::<FaultConfig>(), Ok(expected));
        assert_eq!("".parse::<FaultConfig>(), Ok(FaultConfig::default()));
        assert!(FaultConfig::default().is_none());
        assert!(!c.is_none());
        for (s, ns) in [("0", 0), ("5ns", 5), ("7us", 7_000), ("1ms", 1_000_000)] {
            let c: FaultConfig = format!("delay={s}").parse().unwrap();
            assert_eq!(c.delay, Duration::from_nanos(ns));
        }
    }

    #[test]
    fn rejects_bad_keys_and_values() {
        use FaultConfigError as E;
        let err = |s: &str| s.parse::<FaultConfig>().unwrap_err();
        assert_eq!(err("loss=0.1"), E::UnknownKey("loss".into()));
        assert_eq!(err("drop"), E::NotKeyValue("drop".into()));
        assert_eq!(err("drop=0.1,"), E::NotKeyValue("".into()));
        assert_eq!(err("drop=0.1,drop=0.2"), E::DuplicateKey("drop"));
        for bad in ["1.5", "-0.1", "NaN", "inf", "x", ""] {
            assert_eq!(
                err(&format!("drop={bad}")),
                E::Probability {
                    key: "drop",
                    value: bad.into()
                }
            );
        }
        assert!(matches!(
            err("delay_p=2"),
            E::Probability { key: "delay_p", .. }
        ));
        for bad in [
            "200",
            "200 us",
            "us",
            "-1ms",
            "1.5ms",
            "2h",
            "99999999999999999999s",
        ] {
            assert!(
                matches!(
                    err(&format!("delay={bad}")),
                    E::Duration { key: "delay", .. }
                ),
                "{bad}"
            );
        }
        assert!(matches!(err("reorder_timeout=1m"), E::Duration { .. }));
        assert!(matches!(err("seed=-1"), E::Integer { key: "seed", .. }));
        assert!(matches!(err("hold=many"), E::Integer { key: "hold", .. }));
        assert!(matches!(
            err("reorder_after=0"),
            E::Integer {
                key: "reorder_after",
                ..
            }
        ));
        assert_eq!(err("dir=up"), E::Direction("up".into()));
        // Errors say what is wrong.
        assert!(err("drop=2").to_string().contains("[0, 1]"));
    }

    #[test]
    fn validate_checks_configs_built_in_code() {
        let mut c = FaultConfig {
            drop: f64::NAN,
            ..FaultConfig::default()
        };
        assert!(matches!(
            c.validate(),
            Err(FaultConfigError::Probability { key: "drop", .. })
        ));
        c.drop = 0.5;
        assert_eq!(c.validate(), Ok(()));
        c.reorder_after = 0;
        assert!(c.validate().is_err());
    }
}
