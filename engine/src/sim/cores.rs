//! A multi-core engine as one simulated host: [`CoreGroup`] runs one poll loop per core,
//! each on its own [`SimPort`] queue with the same MAC and IP address, joined by a real
//! [`Mesh`], with frames spread over the queues by a receive-side hash that is not the
//! engine's own (as a NIC's RSS or the kernel's tap queues are), so that frames reach cores
//! that do not own their flows and steering, redirects and migrations all run as they do
//! on a device.
//!
//! Owns: the spreading of received frames and the rounds of polls within one instant
//! (until no core has messages for another). May not: read a real clock or look into what
//! cores send each other.
use super::port::{PortDriver, SimPort};
use super::Host;
use crate::iface::{IfaceConfig, Interface};
use crate::poll::Engine;
use crate::port::VecFrame;
use crate::stack::{App, Stack, StackConfig, StackKeys};
use crate::steer::{CoreMessage, FlowSteer, Mesh, MeshSteer};
use crate::table::FlowHashKey;
use crate::time::Instant;
use crate::wire::ipv4::Ipv4Cidr;
use crate::wire::EthernetAddress;

/// Polls of every core within one instant at most (a bound against message ping-pong).
const ROUNDS_PER_INSTANT: usize = 64;

/// One core of a [`CoreGroup`].
pub type CoreEngine<A> = Engine<SimPort, A, MeshSteer<VecFrame>>;

/// Several cores of one engine, as one host.
pub struct CoreGroup<A: App> {
    mac: EthernetAddress,
    cores: Vec<CoreEngine<A>>,
    wake_at: Option<Instant>,
}

impl<A: App> core::fmt::Debug for CoreGroup<A> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CoreGroup")
            .field("cores", &self.cores.len())
            .finish_non_exhaustive()
    }
}

impl<A: App> CoreGroup<A> {
    /// `apps.len()` cores serving `cidr` at `mac`, each with `config`, keys from `seed`
    /// (one ISN/cookie secret for the engine, a table key per core), knowing the MAC
    /// addresses of `neighbours`.
    pub fn new(
        mac: EthernetAddress,
        cidr: Ipv4Cidr,
        config: &StackConfig,
        seed: u64,
        apps: Vec<A>,
        neighbours: &[(core::net::Ipv4Addr, EthernetAddress)],
    ) -> CoreGroup<A> {
        let n = apps.len().max(1) as u16;
        let steer =
            FlowSteer::new(n, FlowHashKey::from_words(seed, !seed)).expect("at least one core");
        let engine_keys = StackKeys::from_seed(seed);
        let endpoints =
            Mesh::<CoreMessage<VecFrame>>::new(n, 1024).expect("a mesh of at most 128 cores");
        let cores = apps
            .into_iter()
            .zip(endpoints)
            .enumerate()
            .map(|(i, (app, endpoint))| {
                let mut iface = Interface::new(IfaceConfig::new(mac, cidr));
                for &(ip, mac) in neighbours {
                    iface.learn_neighbour(ip, mac, Instant::ZERO);
                }
                let keys = StackKeys {
                    table: StackKeys::from_seed(seed.wrapping_add(i as u64 + 1)).table,
                    ..engine_keys
                };
                let mut stack = Stack::new(iface, config.clone(), keys);
                stack.set_steering(steer, i as u16);
                Engine::with_app(
                    SimPort::new(mac, 1500),
                    stack,
                    app,
                    MeshSteer::new(endpoint),
                )
            })
            .collect();
        CoreGroup {
            mac,
            cores,
            wake_at: None,
        }
    }

    pub fn cores(&self) -> &[CoreEngine<A>] {
        &self.cores
    }

    pub fn cores_mut(&mut self) -> &mut [CoreEngine<A>] {
        &mut self.cores
    }

    /// The queue a received frame goes to: a hash of the TCP ports (the kernel's or a
    /// NIC's choice, not the engine's); anything else to queue 0.
    fn queue_of(&self, frame: &[u8]) -> usize {
        let n = self.cores.len();
        // Ethernet (14) + IPv4 without options (20), protocol at byte 23.
        if frame.len() >= 38 && frame[12..14] == [0x08, 0x00] && frame[23] == 6 {
            let ihl = usize::from(frame[14] & 0x0f) * 4;
            let ports = 14 + ihl;
            if let Some(p) = frame.get(ports..ports + 4) {
                let sum = u32::from(u16::from_be_bytes([p[0], p[1]]))
                    + u32::from(u16::from_be_bytes([p[2], p[3]]));
                return (sum.wrapping_mul(2_654_435_761) >> 16) as usize % n;
            }
        }
        0
    }

    /// Polls every core, again while they have messages for each other.
    fn run(&mut self, now: Instant) {
        let mut wake: Option<Instant> = None;
        for _ in 0..ROUNDS_PER_INSTANT {
            for core in &mut self.cores {
                let at = core.poll(now);
                wake = match (wake, at) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            let busy = self.cores.iter().any(|c| c.has_work_for_siblings());
            if !busy {
                break;
            }
        }
        self.wake_at = wake;
    }
}

impl<A: App> Host for CoreGroup<A> {
    fn mac(&self) -> [u8; 6] {
        self.mac.0
    }

    fn receive(&mut self, _now: Instant, frame: &[u8]) {
        let q = self.queue_of(frame);
        if let Some(core) = self.cores.get_mut(q) {
            core.port_mut().push_rx(frame);
        }
    }

    fn transmit(&mut self, now: Instant, out: &mut dyn FnMut(&[u8])) {
        self.run(now);
        for core in &mut self.cores {
            core.port_mut().drain_tx(out);
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self
            .cores
            .iter()
            .any(|c| c.port().rx_pending() > 0 || c.has_work_for_siblings())
        {
            return Some(Instant::ZERO);
        }
        self.wake_at
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.run(now);
    }
}
