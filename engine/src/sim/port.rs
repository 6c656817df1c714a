//! A [`Port`] over the simulated wire, so the real poll loop runs in simulations.
//!
//! Owns: [`SimPort`], a receive and a transmit queue of [`VecFrame`]s with bounded depth
//! and an optional allocation budget (to exercise the "no buffers" paths), and
//! [`PortHost`], which makes anything that drives a port (a poll loop) a simulated
//! [`Host`]. May not: apply faults or know about other hosts (the network does).
use std::collections::VecDeque;

use super::Host;
use crate::port::{Frame, Port, VecFrame};
use crate::stack::App;
use crate::steer::Steer;
use crate::time::Instant;
use crate::wire::EthernetAddress;

/// Counters of what a [`SimPort`] refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimPortStats {
    /// Frames the wire delivered while the receive queue was full.
    pub rx_dropped: u64,
    /// Frames `send_burst` left to the caller because the transmit queue was full.
    pub tx_refused: u64,
    /// `alloc` calls that returned `None`.
    pub alloc_failed: u64,
}

/// A simulated NIC queue pair.
#[derive(Debug, Clone)]
pub struct SimPort {
    mac: EthernetAddress,
    mtu: usize,
    rx: VecDeque<VecFrame>,
    tx: VecDeque<VecFrame>,
    rx_depth: usize,
    tx_depth: usize,
    /// Allocations still allowed; `None` for unlimited.
    alloc_budget: Option<u64>,
    stats: SimPortStats,
}

impl SimPort {
    /// Default depth of each queue, in frames.
    pub const DEFAULT_DEPTH: usize = 1024;

    /// A port with the given MAC address and IP MTU (1500 for Ethernet).
    pub fn new(mac: EthernetAddress, mtu: usize) -> Self {
        SimPort {
            mac,
            mtu,
            rx: VecDeque::new(),
            tx: VecDeque::new(),
            rx_depth: Self::DEFAULT_DEPTH,
            tx_depth: Self::DEFAULT_DEPTH,
            alloc_budget: None,
            stats: SimPortStats::default(),
        }
    }

    /// Sets the depth of the receive and transmit queues (at least one frame each).
    pub fn with_depths(mut self, rx: usize, tx: usize) -> Self {
        self.rx_depth = rx.max(1);
        self.tx_depth = tx.max(1);
        self
    }

    /// Allows only `budget` more allocations (`None`: unlimited).
    pub fn set_alloc_budget(&mut self, budget: Option<u64>) {
        self.alloc_budget = budget;
    }

    /// Wire side: queues a received frame. Returns false (and counts it) if the receive
    /// queue is full.
    pub fn push_rx(&mut self, frame: &[u8]) -> bool {
        if self.rx.len() >= self.rx_depth {
            self.stats.rx_dropped += 1;
            return false;
        }
        self.rx.push_back(VecFrame::from_bytes(frame));
        true
    }

    /// Wire side: hands every transmitted frame to `out`, oldest first; returns how many.
    pub fn drain_tx(&mut self, out: &mut dyn FnMut(&[u8])) -> usize {
        let n = self.tx.len();
        for frame in self.tx.drain(..) {
            out(frame.data());
        }
        n
    }

    pub fn rx_pending(&self) -> usize {
        self.rx.len()
    }

    pub fn tx_pending(&self) -> usize {
        self.tx.len()
    }

    pub fn stats(&self) -> SimPortStats {
        self.stats
    }
}

impl Port for SimPort {
    type Frame = VecFrame;

    fn recv_burst(&mut self, out: &mut Vec<VecFrame>, max: usize) -> usize {
        let n = max.min(self.rx.len());
        out.extend(self.rx.drain(..n));
        n
    }

    fn send_burst(&mut self, frames: &mut Vec<VecFrame>) -> usize {
        let room = self.tx_depth.saturating_sub(self.tx.len());
        let n = room.min(frames.len());
        self.tx.extend(frames.drain(..n));
        self.stats.tx_refused += (frames.len()) as u64;
        n
    }

    fn alloc(&mut self, len: usize) -> Option<VecFrame> {
        let too_long = len > VecFrame::DEFAULT_CAPACITY;
        let exhausted = self.alloc_budget == Some(0);
        if too_long || exhausted {
            self.stats.alloc_failed += 1;
            return None;
        }
        if let Some(budget) = &mut self.alloc_budget {
            *budget -= 1;
        }
        Some(VecFrame::new(len))
    }

    fn mac(&self) -> EthernetAddress {
        self.mac
    }

    fn mtu(&self) -> usize {
        self.mtu
    }
}

/// Something that owns a [`SimPort`] and runs a poll loop over it: the real
/// [`crate::poll::Engine`] over a `SimPort`, or a closure with its port ([`FnDriver`]).
pub trait PortDriver {
    fn port(&self) -> &SimPort;
    fn port_mut(&mut self) -> &mut SimPort;
    /// Runs one iteration of the loop at `now`. Returns when it next wants to run
    /// (`None`: only when a frame arrives).
    fn poll(&mut self, now: Instant) -> Option<Instant>;
}

/// How long after a poll that left connections waiting for a MAC address the simulated
/// loop runs again: the poll loop's ARP retry period (200 ms), so that each wake-up sends
/// the next request.
const ARP_RETRY_WAKE: crate::time::Duration = crate::poll::ARP_RETRY;

/// The engine's poll loop on the simulated wire, with any application and steering. It
/// runs when frames arrive, when the stack's earliest timer (TCP retransmission, delayed
/// ACK, TIME-WAIT expiry, listener timeouts) comes, so the virtual clock jumps straight to
/// TCP's deadlines, every ARP retry period while a connection waits for a MAC address, and
/// when the interface next wants to probe a stale neighbour entry.
impl<A: App, S: Steer<VecFrame>> PortDriver for crate::poll::Engine<SimPort, A, S> {
    fn port(&self) -> &SimPort {
        crate::poll::Engine::port(self)
    }
    fn port_mut(&mut self) -> &mut SimPort {
        crate::poll::Engine::port_mut(self)
    }
    fn poll(&mut self, now: Instant) -> Option<Instant> {
        self.poll_once(now);
        let timers = self.next_deadline();
        // Connections waiting for a MAC address: come back when the loop next sends an
        // ARP request for them.
        let arp = if self.stack().unresolved(now).is_empty() {
            None
        } else {
            Some(now + ARP_RETRY_WAKE)
        };
        // A probe already due was not sent in this poll because the loop checks ARP once
        // per retry period: come back when it next does.
        let probe =
            self.iface()
                .next_arp_probe()
                .map(|at| if at > now { at } else { now + ARP_RETRY_WAKE });
        [timers, arp, probe].into_iter().flatten().min()
    }
}

/// A port and a closure that polls it: the simplest [`PortDriver`].
#[derive(Debug, Clone)]
pub struct FnDriver<F> {
    pub port: SimPort,
    pub poll: F,
}

impl<F: FnMut(Instant, &mut SimPort) -> Option<Instant>> PortDriver for FnDriver<F> {
    fn port(&self) -> &SimPort {
        &self.port
    }
    fn port_mut(&mut self) -> &mut SimPort {
        &mut self.port
    }
    fn poll(&mut self, now: Instant) -> Option<Instant> {
        (self.poll)(now, &mut self.port)
    }
}

/// A [`Host`] made of a [`PortDriver`]: received frames go to its port's receive queue,
/// the driver runs at every transmit opportunity and whenever its own deadline comes, and
/// what it sent leaves through the port's transmit queue.
#[derive(Debug, Clone)]
pub struct PortHost<D> {
    driver: D,
    wake_at: Option<Instant>,
}

impl<D: PortDriver> PortHost<D> {
    pub fn new(driver: D) -> Self {
        PortHost {
            driver,
            wake_at: None,
        }
    }

    pub fn port(&self) -> &SimPort {
        self.driver.port()
    }

    pub fn driver(&self) -> &D {
        &self.driver
    }

    pub fn driver_mut(&mut self) -> &mut D {
        &mut self.driver
    }

    pub fn into_driver(self) -> D {
        self.driver
    }
}

impl<F: FnMut(Instant, &mut SimPort) -> Option<Instant>> PortHost<FnDriver<F>> {
    /// A host that runs `poll` over `port`.
    pub fn from_fn(port: SimPort, poll: F) -> Self {
        PortHost::new(FnDriver { port, poll })
    }
}

impl<D: PortDriver> Host for PortHost<D> {
    fn mac(&self) -> [u8; 6] {
        self.driver.port().mac.0
    }

    fn receive(&mut self, _now: Instant, frame: &[u8]) {
        self.driver.port_mut().push_rx(frame);
    }

    fn transmit(&mut self, now: Instant, out: &mut dyn FnMut(&[u8])) {
        self.wake_at = self.driver.poll(now);
        self.driver.port_mut().drain_tx(out);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        // Frames the driver left in the receive queue (it reads in bursts) need another
        // run at once: an instant in the past means "now".
        if self.driver.port().rx_pending() > 0 {
            return Some(Instant::ZERO);
        }
        self.wake_at
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.wake_at = self.driver.poll(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_are_bounded_and_counted() {
        let mut port = SimPort::new(EthernetAddress([2, 0, 0, 0, 0, 1]), 1500).with_depths(2, 1);
        assert!(port.push_rx(&[1]));
        assert!(port.push_rx(&[2]));
        assert!(!port.push_rx(&[3]));
        let mut got = Vec::new();
        assert_eq!(port.recv_burst(&mut got, 8), 2);
        assert_eq!(got[1].data(), &[2]);

        let mut frames = vec![VecFrame::from_bytes(&[7]), VecFrame::from_bytes(&[8])];
        assert_eq!(port.send_burst(&mut frames), 1);
        assert_eq!(frames.len(), 1, "the refused frame stays with the caller");
        assert_eq!(frames[0].data(), &[8]);
        let mut sent = Vec::new();
        assert_eq!(port.drain_tx(&mut |f| sent.push(f.to_vec())), 1);
        assert_eq!(sent, vec![vec![7]]);
        assert_eq!(
            port.stats(),
            SimPortStats {
                rx_dropped: 1,
                tx_refused: 1,
                alloc_failed: 0
            }
        );
    }

    #[test]
    fn alloc_budget_runs_out() {
        let mut port = SimPort::new(EthernetAddress([2, 0, 0, 0, 0, 1]), 1500);
        port.set_alloc_budget(Some(1));
        assert_eq!(port.alloc(60).map(|f| f.data().len()), Some(60));
        assert!(port.alloc(60).is_none());
        port.set_alloc_budget(None);
        assert!(port.alloc(60).is_some());
        assert!(port.alloc(VecFrame::DEFAULT_CAPACITY + 1).is_none());
        assert_eq!(port.stats().alloc_failed, 2);
    }
}
