//! The run-to-completion poll loop of one engine core, generic over the [`Port`], the
//! [`App`] and the [`Clock`].
//!
//! One poll: receive a burst and run each frame through the [`Stack`] (ARP and ICMP
//! replies are rewritten in place; TCP segments go to their connections; segments of
//! flows another core owns are handed back for steering), fire due timers, deliver the
//! connections' events to the application, collect every segment to send, send it all
//! as one burst, retry what the port did not take a bounded number of times, and drop
//! (free) and count the rest. Every [`ARP_RETRY`] it sends ARP requests for the next hops
//! connections wait on, and the probes the interface asks for to check stale entries still
//! in use. Between polls with no work the loop idles according to an
//! [`IdleStrategy`], never past the stack's next timer. The loop allocates nothing per
//! packet (the burst vectors are reused) and never prints: what a caller should report
//! is exposed as state ([`Engine::interrupt_fell_back`]).
use core::fmt;
use core::net::Ipv4Addr;
use core::str::FromStr;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::control::ControlInbox;
use crate::iface::{ArpProbe, Interface, ARP_FRAME_LEN};
use crate::migrate::Owner;
use crate::port::{Frame, IdleSupport, Port};
use crate::stack::{App, NoApp, Received, Stack, StackConfig, StackKeys};
use crate::stats::{Counters, DropReason};
use crate::steer::{CoreMessage, NoSteer, Steer};
use crate::time::{Clock, Duration, Instant, MonotonicClock};

mod busy;
mod lane;
mod migration;
mod peers;
mod remote;
pub use busy::BusyMeter;
pub use lane::{Lane, LaneState, MemoryLane};
pub use migration::MigrationLatency;
pub use peers::{ChannelConfig, ChannelCounters, PeerAddr, PeerStatus, Peers};
pub use remote::{LIMBO, PREPARE_TIMEOUT};

/// Receive chunks ([`RX_CHUNK`] frames each) taken per poll at most, when the device has
/// that many queued, before timers run.
pub const RX_CHUNKS_PER_POLL: usize = 16;

/// Frames taken from the port at a time within a poll.
pub const RX_CHUNK: usize = 8;

/// How often the loop asks the port whether buffers run low.
const PRESSURE_CHECK: Duration = Duration::from_millis(1);

/// How often the loop looks for connections waiting on an ARP resolution, and for ARP
/// probes due ([`Interface::arp_probes`]).
pub const ARP_RETRY: Duration = Duration::from_millis(200);

/// Probes one ARP check sends without growing its vector (more are rare, and only grow it
/// once).
const ARP_PROBES_PER_CHECK: usize = 16;

/// Most frames received or sent per burst.
pub const BURST_SIZE: usize = 32;

/// Cores a frame may be handed through (home, a core that moved the connection, its
/// owner) before it is dropped as looping.
pub const MAX_HOPS: u8 = 3;

/// How many times one poll calls `send_burst` before keeping what is left for the next.
pub const TX_ATTEMPTS: usize = 4;

/// Frames the port did not take (its ring full: the peer has not drained it yet) are kept,
/// in order, and sent first by the next poll, up to this many; beyond it the newest are
/// dropped and counted as [`DropReason::TxRingFull`]. Without it a burst of replies larger
/// than the ring (10,000 connections answered at once) loses its tail and each lost
/// segment waits for a retransmission timeout. Bounded so that a peer that stops draining
/// cannot take the buffer pool; about one ring's worth.
pub const TX_HOLD: usize = 1024;

/// Consecutive empty polls after which the loop starts idling.
pub const EMPTY_POLLS_BEFORE_IDLE: u32 = 64;

/// First and longest sleep of the [`IdleStrategy::Sleep`] back-off.
pub const SLEEP_MIN: Duration = Duration::from_micros(1);
pub const SLEEP_MAX: Duration = Duration::from_millis(1);

/// Longest block in [`Port::wait_rx`]; it bounds how late the loop sees `stop`.
pub const INTERRUPT_WAIT: Duration = Duration::from_millis(100);

/// The resolution of [`Port::wait_rx`] (epoll's: a millisecond); shorter waits sleep.
pub const INTERRUPT_WAIT_GRAIN: Duration = Duration::from_millis(1);

/// Longest block in [`Port::wait_rx`] for a core with sibling cores: what they hand over
/// (frames of its flows, connections moving to it) does not raise its interrupt, so it
/// looks at least this often.
pub const INTERRUPT_WAIT_WITH_SIBLINGS: Duration = Duration::from_millis(1);

/// What the loop does when there is no work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IdleStrategy {
    /// Keep polling, with a CPU spin-loop hint: lowest latency, one core at 100%.
    #[default]
    Spin,
    /// Sleep with exponential back-off from [`SLEEP_MIN`] to [`SLEEP_MAX`], reset on work.
    Sleep,
    /// Block on receive interrupts for up to [`INTERRUPT_WAIT`]; falls back to `Sleep` on a
    /// port that cannot.
    Interrupt,
}

impl IdleStrategy {
    pub const fn as_str(self) -> &'static str {
        match self {
            IdleStrategy::Spin => "spin",
            IdleStrategy::Sleep => "sleep",
            IdleStrategy::Interrupt => "interrupt",
        }
    }
}

impl fmt::Display for IdleStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The string is not an idle strategy name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown idle strategy (expected one of: spin, sleep, interrupt)")]
pub struct ParseIdleStrategyError;

impl FromStr for IdleStrategy {
    type Err = ParseIdleStrategyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "spin" => Ok(IdleStrategy::Spin),
            "sleep" => Ok(IdleStrategy::Sleep),
            "interrupt" => Ok(IdleStrategy::Interrupt),
            _ => Err(ParseIdleStrategyError),
        }
    }
}

/// One core's poll loop: a port, the stack, the application, and the reusable burst
/// vectors.
pub struct Engine<P: Port, A: App = NoApp, S: Steer<P::Frame> = NoSteer> {
    port: P,
    stack: Stack,
    app: A,
    steer: S,
    /// Received frames of the current burst; empty between polls.
    rx: Vec<P::Frame>,
    /// Frames to send in the current burst; empty between polls.
    tx: Vec<P::Frame>,
    /// Messages from other cores of the current burst; empty between polls.
    inbox: Vec<CoreMessage<P::Frame>>,
    interrupt_fell_back: bool,
    busy: BusyMeter,
    next_arp_check: Instant,
    /// ARP probes due at the current check; empty between checks.
    arp_probes: Vec<ArpProbe>,
    next_pressure_check: Instant,
    /// Frames handed to other cores, and frames they handed here.
    pub steered_out: u64,
    pub steered_in: u64,
    /// Moves in progress, the operator's requests and what they await, latencies.
    migration: migration::MigrationState<P::Frame>,
    control: Option<ControlInbox>,
    /// A clock for measuring migration latencies precisely (the poll's `now` is read once
    /// per poll); without one, `now` is used.
    stamp: Option<MonotonicClock>,
    /// The state channel to peer engines, if this engine has one.
    peers: Option<Peers>,
    /// Moves between engines.
    remote: remote::RemoteState,
}

impl<P: Port, A: App, S: Steer<P::Frame>> fmt::Debug for Engine<P, A, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("stack", &self.stack)
            .field("interrupt_fell_back", &self.interrupt_fell_back)
            .finish_non_exhaustive()
    }
}

impl<P: Port> Engine<P> {
    /// An engine that answers ARP and ping only (no application, fixed hash keys: there
    /// are no listeners whose state a peer could steer).
    pub fn new(port: P, iface: Interface) -> Engine<P> {
        let stack = Stack::new(iface, StackConfig::default(), StackKeys::from_seed(0));
        Engine::with_app(port, stack, NoApp, NoSteer)
    }
}

impl<P: Port, A: App, S: Steer<P::Frame>> Engine<P, A, S> {
    pub fn with_app(port: P, stack: Stack, app: A, steer: S) -> Engine<P, A, S> {
        Engine {
            port,
            stack,
            app,
            steer,
            rx: Vec::with_capacity(BURST_SIZE),
            tx: Vec::with_capacity(BURST_SIZE),
            inbox: Vec::with_capacity(BURST_SIZE),
            interrupt_fell_back: false,
            busy: BusyMeter::new(),
            next_arp_check: Instant::ZERO,
            arp_probes: Vec::with_capacity(ARP_PROBES_PER_CHECK),
            next_pressure_check: Instant::ZERO,
            steered_out: 0,
            steered_in: 0,
            migration: migration::MigrationState::default(),
            control: None,
            stamp: None,
            peers: None,
            remote: remote::RemoteState::default(),
        }
    }

    /// Joins this core to the cluster of `config`: listens on the channel port, opens a
    /// link to every peer, and takes IPv4 to the peers' addresses (connections that
    /// move here keep theirs; ARP for them stays the peers' until a drain).
    /// `seed` feeds the handshake nonces: give each core of each start its own.
    pub fn set_channel(
        &mut self,
        config: ChannelConfig,
        seed: u64,
    ) -> Result<(), crate::stack::StackError> {
        for p in &config.peers {
            self.stack.iface_mut().adopt_address(*p.addr.ip(), false);
        }
        let mut peers = Peers::new(config, seed);
        let mut cx = crate::stack::Ctx::new(&mut self.stack, Instant::ZERO);
        peers.start(&mut cx)?;
        self.peers = Some(peers);
        Ok(())
    }

    /// Joins peer `peer` (its number in the channel's config) over a same-host `lane` as
    /// well: from then on this core opens no TCP link to it (after [`Engine::set_channel`]).
    pub fn add_lane(&mut self, peer: u16, lane: Box<dyn Lane>) {
        if let Some(p) = self.peers.as_mut() {
            p.add_lane(peer, lane);
        }
    }

    /// When the loop next has timed work: the stack's earliest timer, or the channel's
    /// next heartbeat or reconnection.
    pub fn next_deadline(&self) -> Option<Instant> {
        match (
            self.stack.poll_timeout(),
            self.peers.as_ref().and_then(Peers::next_deadline),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Delivers the connections' events: to the channel's links and to the application.
    fn dispatch(&mut self, now: Instant) {
        match self.peers.as_mut() {
            Some(peers) => {
                let mut split = peers::Split {
                    peers,
                    app: &mut self.app,
                };
                self.stack.dispatch(now, &mut split);
            }
            None => self.stack.dispatch(now, &mut self.app),
        }
    }

    /// Takes operator requests from `inbox` between polls (see [`crate::control`]).
    pub fn set_control(&mut self, inbox: ControlInbox) {
        self.control = Some(inbox);
    }

    /// Measures migration latencies with `clock` rather than the poll's `now`.
    pub fn set_stamp_clock(&mut self, clock: MonotonicClock) {
        self.stamp = Some(clock);
    }

    pub fn port(&self) -> &P {
        &self.port
    }

    pub fn port_mut(&mut self) -> &mut P {
        &mut self.port
    }

    pub fn iface(&self) -> &Interface {
        self.stack.iface()
    }

    pub fn iface_mut(&mut self) -> &mut Interface {
        self.stack.iface_mut()
    }

    pub fn stack(&self) -> &Stack {
        &self.stack
    }

    pub fn stack_mut(&mut self) -> &mut Stack {
        &mut self.stack
    }

    pub fn app(&self) -> &A {
        &self.app
    }

    pub fn app_mut(&mut self) -> &mut A {
        &mut self.app
    }

    /// Runs `f` with the application and a context on the stack (to listen, connect, or
    /// write from outside an event), then sends what it queued.
    pub fn with_ctx<T>(
        &mut self,
        now: Instant,
        f: impl FnOnce(&mut A, &mut crate::stack::Ctx<'_>) -> T,
    ) -> T {
        let r = {
            let mut cx = crate::stack::Ctx::new(&mut self.stack, now);
            f(&mut self.app, &mut cx)
        };
        self.dispatch(now);
        self.transmit(now);
        r
    }

    pub fn counters(&self) -> &Counters {
        self.stack.counters()
    }

    /// Gives back the port and the interface.
    pub fn into_parts(self) -> (P, Interface) {
        let iface = self.stack.iface().clone();
        (self.port, iface)
    }

    /// Runs one poll at `now`: receive a burst (from the port and from other cores),
    /// process it, fire timers, run the application, send. Returns the number of frames
    /// received.
    pub fn poll_once(&mut self, now: Instant) -> usize {
        if now >= self.next_pressure_check {
            self.next_pressure_check = now + PRESSURE_CHECK;
            self.stack.set_buffers_low(self.port.buffers_low());
        }
        // Take in up to RX_CHUNKS_PER_POLL chunks before timers run: an ACK still queued
        // in the device must cancel a retransmission before the timer would fire it.
        let mut received = 0;
        for _ in 0..RX_CHUNKS_PER_POLL {
            let (from_port, all) = self.receive_burst(now);
            received += all;
            if from_port < RX_CHUNK {
                break;
            }
            // More is waiting: answer what came in so far first, so that the peer works
            // on it while this side takes in the rest (two engines on one link would
            // otherwise take turns, each idle while the other runs a whole burst). Not
            // when a timer is due: what it sends (a loss probe) goes out first, and the
            // ACKs still queued must be seen before it fires.
            if !self.stack.timers_due(now) {
                self.dispatch(now);
                self.transmit(now);
            }
        }
        self.stack.handle_timers(now);
        self.dispatch(now);
        if self.peers.is_some() {
            self.channel_work(now);
        }
        self.transmit(now);
        self.after_transmit(now);
        if now >= self.next_arp_check {
            self.next_arp_check = now + ARP_RETRY;
            for ip in self.stack.unresolved(now) {
                self.send_arp_request(ip);
            }
            self.send_arp_probes(now);
        }
        received
    }

    /// Sends the probes the interface wants for stale entries in use (and lets it drop
    /// the entries whose probes went unanswered).
    fn send_arp_probes(&mut self, now: Instant) {
        let mut probes = core::mem::take(&mut self.arp_probes);
        self.stack.iface_mut().arp_probes(now, &mut probes);
        for probe in probes.drain(..) {
            self.send_built(ARP_FRAME_LEN, |iface, buf| {
                // The frame has ARP_FRAME_LEN bytes: this cannot fail.
                let _ = iface.emit_arp_probe(probe, buf);
            });
        }
        // Back with its capacity, for the next check.
        self.arp_probes = probes;
    }

    /// Ends every connection with a RST and closes the listeners, tells the application,
    /// and sends the RSTs: what a clean stop does before the port closes.
    pub fn shutdown(&mut self, now: Instant) {
        self.stack.abort_all();
        self.dispatch(now);
        self.transmit(now);
    }

    /// Receives one burst from the port, then what other cores sent (frames, migrations,
    /// answers, owner updates), and runs it all through the stack. Returns the frames
    /// taken from the port, and all frames and messages.
    fn receive_burst(&mut self, now: Instant) -> (usize, usize) {
        self.port.recv_burst(&mut self.rx, RX_CHUNK);
        let from_port = self.rx.len();
        let mut rx = core::mem::take(&mut self.rx);
        for frame in rx.drain(..) {
            let counters = self.stack.counters_mut();
            counters.rx_packets += 1;
            counters.rx_bytes += frame.data().len() as u64;
            self.process_frame(now, frame, 0);
        }
        self.rx = rx;
        let messages = self.steer.receive(&mut self.inbox, BURST_SIZE);
        let mut inbox = core::mem::take(&mut self.inbox);
        for msg in inbox.drain(..) {
            match msg {
                CoreMessage::Frame { frame, hops } => {
                    self.steered_in += 1;
                    self.process_frame(now, frame, hops);
                }
                other => self.handle_core_message(now, other),
            }
        }
        self.inbox = inbox;
        (from_port, from_port + messages)
    }

    /// Runs one frame through the stack: a reply goes out, a frame of a flow owned
    /// elsewhere is handed on (at most [`MAX_HOPS`] times), the rest is done with.
    fn process_frame(&mut self, now: Instant, mut frame: P::Frame, hops: u8) {
        match self.stack.receive(now, frame.data_mut()) {
            Received::Reply(len) => {
                if frame.set_len(len) {
                    self.tx.push(frame);
                } else {
                    // Unreachable: a reply is never longer than the frame it was built
                    // in. Counted rather than assumed.
                    self.stack.count_drop(DropReason::NoBuffers);
                }
            }
            Received::NotOurs(Owner::Peer(peer)) => {
                self.forward_to_peer(now, peer, frame.data());
            }
            Received::NotOurs(owner) => self.forward(owner, frame, hops),
            // Used, or dropped and counted by the stack. The frame is freed on drop.
            Received::Done => {}
        }
    }

    /// Hands `frame` to `owner`, unless it has gone around too often (a loop) or the
    /// queue is full: then it is dropped and counted (TCP recovers a lost segment).
    fn forward(&mut self, owner: Owner, frame: P::Frame, hops: u8) {
        if hops >= MAX_HOPS || self.stack.this_core() == Some(owner) {
            self.stack.count_drop(DropReason::SteerLoop);
            return;
        }
        let msg = CoreMessage::Frame {
            frame,
            hops: hops + 1,
        };
        match self.steer.send(owner, msg) {
            Ok(()) => self.steered_out += 1,
            Err(_) => self.stack.count_drop(DropReason::SteerQueueFull),
        }
    }

    /// Collects every pending segment and sends it with the replies.
    fn transmit(&mut self, now: Instant) {
        let port = &mut self.port;
        self.stack
            .transmit(now, &mut |len| port.alloc(len), &mut self.tx);
        self.flush_tx();
    }

    /// Sends `self.tx`, calling `send_burst` at most [`TX_ATTEMPTS`] times; keeps up to
    /// [`TX_HOLD`] frames the port did not take for the next poll, and drops and counts as
    /// [`DropReason::TxRingFull`] the rest.
    fn flush_tx(&mut self) {
        let mut attempts = 0;
        while !self.tx.is_empty() && attempts < TX_ATTEMPTS {
            attempts += 1;
            let (frames_before, bytes_before) = (self.tx.len(), bytes(&self.tx));
            self.port.send_burst(&mut self.tx);
            let counters = self.stack.counters_mut();
            counters.tx_packets += frames_before.saturating_sub(self.tx.len()) as u64;
            counters.tx_bytes += bytes_before.saturating_sub(bytes(&self.tx));
        }
        if self.tx.len() > TX_HOLD {
            self.stack
                .counters_mut()
                .drop_n(DropReason::TxRingFull, (self.tx.len() - TX_HOLD) as u64);
            self.tx.truncate(TX_HOLD);
        }
    }

    /// Frames built but not yet taken by the port (its ring was full), sent first by the
    /// next poll.
    pub fn tx_held(&self) -> usize {
        self.tx.len()
    }

    /// Sends one frame built by `build` in a freshly allocated frame of `len` bytes.
    /// Returns whether the port took it or holds it for the next poll; failures are
    /// counted.
    fn send_built(&mut self, len: usize, build: impl FnOnce(&Interface, &mut [u8])) -> bool {
        let Some(mut frame) = self.port.alloc(len) else {
            self.stack.count_drop(DropReason::NoBuffers);
            return false;
        };
        if !frame.set_len(len) {
            self.stack.count_drop(DropReason::NoBuffers);
            return false;
        }
        build(self.stack.iface(), frame.data_mut());
        let dropped_before = self.stack.counters().dropped(DropReason::TxRingFull);
        self.tx.push(frame);
        self.flush_tx();
        self.stack.counters().dropped(DropReason::TxRingFull) == dropped_before
    }

    /// Broadcasts a gratuitous ARP for our address (after start-up, or when the address
    /// moves here). Returns whether the port took it.
    pub fn send_gratuitous_arp(&mut self) -> bool {
        self.send_built(ARP_FRAME_LEN, |iface, buf| {
            // The frame has ARP_FRAME_LEN bytes: this cannot fail.
            let _ = iface.emit_gratuitous_arp(buf);
        })
    }

    /// Broadcasts an ARP request for `target`. Returns whether the port took it.
    pub fn send_arp_request(&mut self, target: Ipv4Addr) -> bool {
        self.send_built(ARP_FRAME_LEN, |iface, buf| {
            let _ = iface.emit_arp_request(target, buf);
        })
    }

    /// The strategy [`Engine::run`] will use for `requested`: `Interrupt` becomes `Sleep` on
    /// a port that cannot block on receive.
    pub fn effective_idle(&self, requested: IdleStrategy) -> IdleStrategy {
        match requested {
            IdleStrategy::Interrupt if self.port.idle_support() != IdleSupport::Interrupt => {
                IdleStrategy::Sleep
            }
            other => other,
        }
    }

    /// How busy [`Engine::run`]'s loop has been: time in polls that received frames
    /// against all of it (idling included).
    pub fn busy(&self) -> &BusyMeter {
        &self.busy
    }

    /// Whether a [`Engine::run`] asked for `Interrupt` had to sleep instead, because the
    /// port cannot block on receive or waiting failed. Set once, never cleared; the caller
    /// reports it (the engine does not print).
    pub fn interrupt_fell_back(&self) -> bool {
        self.interrupt_fell_back
    }

    /// Polls until `stop` is set, idling per `idle` after [`EMPTY_POLLS_BEFORE_IDLE`]
    /// consecutive empty polls. `stop` is checked between polls; the longest delay before
    /// it is seen is one idle step ([`SLEEP_MAX`] or [`INTERRUPT_WAIT`]).
    pub fn run(&mut self, clock: &impl Clock, stop: &AtomicBool, idle: IdleStrategy) {
        self.run_with(clock, stop, idle, Duration::MAX, |_| {});
    }

    /// [`Engine::run`], calling `report` with the engine at most every `every` of clock
    /// time (and once more before returning): how a core publishes its counters.
    pub fn run_with(
        &mut self,
        clock: &impl Clock,
        stop: &AtomicBool,
        idle: IdleStrategy,
        every: Duration,
        mut report: impl FnMut(&Self),
    ) {
        let mut strategy = self.effective_idle(idle);
        if strategy != idle {
            self.interrupt_fell_back = true;
        }
        let mut empty_polls: u32 = 0;
        let mut sleep = SLEEP_MIN;
        let mut next_report: Option<Instant> = None;
        while !stop.load(Ordering::Acquire) {
            let now = clock.now();
            let next_report = next_report.get_or_insert(now + every);
            if now >= *next_report {
                report(self);
                *next_report = now + every;
            }
            let received = self.poll_once(now);
            self.busy.record(now, received > 0);
            // Frames held for a full ring are work too: the next poll sends them.
            if received > 0 || !self.tx.is_empty() {
                empty_polls = 0;
                sleep = SLEEP_MIN;
                continue;
            }
            empty_polls = empty_polls.saturating_add(1);
            if empty_polls < EMPTY_POLLS_BEFORE_IDLE {
                continue;
            }
            if strategy == IdleStrategy::Spin {
                // Spinning never waits, so it needs no deadline: `poll_timeout` (the
                // minimum over timers, listeners and TIME-WAIT records) is not worth
                // computing on every empty poll.
                core::hint::spin_loop();
                continue;
            }
            // Never idle past the next timer (or the next report).
            let until_timer = self
                .next_deadline()
                .map_or(Duration::MAX, |d| d.saturating_duration_since(now))
                .min(next_report.saturating_duration_since(now));
            match strategy {
                IdleStrategy::Spin => core::hint::spin_loop(),
                IdleStrategy::Sleep => {
                    std::thread::sleep(sleep.min(until_timer));
                    sleep = (sleep * 2).min(SLEEP_MAX);
                }
                IdleStrategy::Interrupt => {
                    let longest = if self.stack.core_count().is_some_and(|n| n > 1) {
                        INTERRUPT_WAIT_WITH_SIBLINGS
                    } else {
                        INTERRUPT_WAIT
                    };
                    let wait = longest.min(until_timer);
                    if wait.is_zero() {
                        continue;
                    }
                    if wait < INTERRUPT_WAIT_GRAIN {
                        // Receive interrupts wait in whole milliseconds: a deadline
                        // sooner than that (a timer, a lane's next look) is slept to.
                        std::thread::sleep(wait);
                        continue;
                    }
                    if !self.port.wait_rx(wait) {
                        // Waiting failed: sleep from now on rather than fail every time.
                        self.interrupt_fell_back = true;
                        strategy = IdleStrategy::Sleep;
                        std::thread::sleep(sleep);
                    }
                }
            }
        }
        report(self);
    }
}

/// Total length of `frames`.
fn bytes<F: Frame>(frames: &[F]) -> u64 {
    frames.iter().map(|f| f.data().len() as u64).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_strategy_names() {
        for s in [
            IdleStrategy::Spin,
            IdleStrategy::Sleep,
            IdleStrategy::Interrupt,
        ] {
            assert_eq!(s.to_string().parse::<IdleStrategy>(), Ok(s));
        }
        assert_eq!("sleep".parse::<IdleStrategy>(), Ok(IdleStrategy::Sleep));
        assert_eq!("Spin".parse::<IdleStrategy>(), Err(ParseIdleStrategyError));
        assert_eq!("".parse::<IdleStrategy>(), Err(ParseIdleStrategyError));
        assert!(ParseIdleStrategyError
            .to_string()
            .contains("spin, sleep, interrupt"));
    }
}
