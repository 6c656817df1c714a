//! The simulated wire: deterministic protocol tests with a virtual clock and seeded faults.
//!
//! Owns: the [`Host`] interface (a sans-IO endpoint: frames in, frames out, a deadline),
//! the [`Network`] that connects hosts over a simulated Ethernet segment and jumps a
//! virtual clock from event to event, per-link [`Faults`] (loss, reordering, duplication,
//! delay and jitter, corruption, bandwidth, MTU) drawn from a seeded [`crate::rng::SeededRng`], the
//! counters, capture files for Wireshark ([`pcap`]), and [`SimPort`], a [`crate::port::Port`]
//! over the simulated wire so the real poll loop can run here, with [`endpoint`] to run
//! whole TCP/IP endpoints (stack and application) on it.
//!
//! May not: read a real clock, sleep, touch a device or a socket, or draw randomness from
//! anywhere but its seed. The same seed and the same hosts give the same run, byte for
//! byte (hosts that want randomness should draw it from a [`crate::rng::SeededRng`] seeded by the test).
//!
//! # Plugging a protocol in
//! Implement [`Host`] for a wrapper around the endpoint: `receive` parses and hands the
//! frame in, `transmit` emits everything the endpoint wants to send, `poll_timeout` and
//! `handle_timeout` forward the endpoint's timers. Or run a whole poll loop on a
//! [`SimPort`] inside a [`PortHost`]. Then:
//!
//! ```
//! use engine::sim::{Faults, Host, Network};
//! use engine::time::{Duration, Instant};
//!
//! struct Quiet([u8; 6]);
//! impl Host for Quiet {
//!     fn mac(&self) -> [u8; 6] { self.0 }
//!     fn receive(&mut self, _: Instant, _: &[u8]) {}
//!     fn transmit(&mut self, _: Instant, _: &mut dyn FnMut(&[u8])) {}
//!     fn poll_timeout(&self) -> Option<Instant> { None }
//!     fn handle_timeout(&mut self, _: Instant) {}
//! }
//!
//! let mut net: Network = Network::new(42);
//! net.set_faults(Faults::none().with_loss(0.01).with_delay(Duration::from_millis(5), Duration::ZERO))
//!     .unwrap();
//! net.add_host(Box::new(Quiet([2, 0, 0, 0, 0, 1]))).unwrap();
//! net.add_host(Box::new(Quiet([2, 0, 0, 0, 0, 2]))).unwrap();
//! let stats = net.run_for(Duration::from_secs(10)).unwrap();
//! assert_eq!(stats.transmitted, 0);
//! assert_eq!(net.now(), Instant::from_millis(10_000));
//! ```
pub mod cores;
pub mod endpoint;
mod faults;
mod link;
mod network;
pub mod pcap;
mod port;

pub use faults::{FaultError, Faults};
pub use link::LinkStats;
pub use network::{CaptureMode, Network, NetworkStats};
pub use pcap::Resolution;
pub use port::{FnDriver, PortDriver, PortHost, SimPort, SimPortStats};

use crate::time::Instant;

/// A simulated endpoint: anything with a MAC address that takes frames in and puts frames
/// out, sans-IO. The network calls it at virtual instants only.
pub trait Host {
    /// The MAC address frames are delivered to. Asked once, when the host is added.
    fn mac(&self) -> [u8; 6];

    /// A frame (from the Ethernet header on) arrives at `now`. It may be corrupted,
    /// duplicated or not addressed to this host (broadcasts): checking is the host's job.
    fn receive(&mut self, now: Instant, frame: &[u8]);

    /// Hands every frame the host wants to send at `now` to `out`. Called at least once per
    /// round at every instant the network visits, after deliveries and timeouts.
    fn transmit(&mut self, now: Instant, out: &mut dyn FnMut(&[u8]));

    /// When the host next wants [`Host::handle_timeout`]; an instant already passed means
    /// "now". `None` when only an arriving frame can wake it.
    fn poll_timeout(&self) -> Option<Instant>;

    /// The deadline from [`Host::poll_timeout`] has come.
    fn handle_timeout(&mut self, now: Instant);
}

impl<H: Host + ?Sized> Host for Box<H> {
    fn mac(&self) -> [u8; 6] {
        (**self).mac()
    }
    fn receive(&mut self, now: Instant, frame: &[u8]) {
        (**self).receive(now, frame)
    }
    fn transmit(&mut self, now: Instant, out: &mut dyn FnMut(&[u8])) {
        (**self).transmit(now, out)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        (**self).poll_timeout()
    }
    fn handle_timeout(&mut self, now: Instant) {
        (**self).handle_timeout(now)
    }
}

/// Names a host of a [`Network`], in the order hosts were added (0, 1, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostId(usize);

impl HostId {
    /// The id of the `index`-th host added (from 0). Methods given an id the network does
    /// not have return `None` or [`SimError::UnknownHost`].
    pub const fn from_index(index: usize) -> Self {
        HostId(index)
    }

    pub const fn index(self) -> usize {
        self.0
    }
}

/// Why a simulation stopped or a configuration was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum SimError {
    /// The virtual deadline passed before the run was done.
    #[error("virtual deadline reached at {now:?} before the run was done")]
    Timeout { now: Instant },
    /// Nothing in flight and no host deadline: the run can never be done.
    #[error("nothing left to happen at {now:?} and the run is not done")]
    Stalled { now: Instant },
    /// One instant never settled (hosts keep transmitting or asking to run at once).
    #[error("instant {now:?} never settled")]
    Livelock { now: Instant },
    #[error("another host already has this MAC address")]
    DuplicateMac,
    #[error("a host's MAC address must be unicast")]
    MulticastMac,
    #[error("no such host")]
    UnknownHost,
    #[error(transparent)]
    Faults(#[from] FaultError),
}
