//! A poll loop on a `SimPort`, inside a `PortHost`, on the simulated wire.
mod sim_support;

use std::net::Ipv4Addr;

use engine::iface::{
    IfaceConfig, Interface, NeighbourState, ARP_BROADCAST_PROBES, ARP_DELAY_FIRST_PROBE,
    ARP_PROBE_INTERVAL, ARP_UNICAST_PROBES,
};
use engine::poll::Engine;
use engine::port::{Frame, Port, VecFrame};
use engine::sim::{Faults, Host, HostId, Network, PortDriver, PortHost, SimPort};
use engine::time::{Duration, Instant};
use engine::wire::ipv4::Ipv4Cidr;
use engine::wire::EthernetAddress;
use sim_support::{mac, Toy};

/// A miniature poll loop: receive a burst of up to 4, answer each toy frame with a copy
/// addressed back to its source (allocated from the port), send the burst.
#[derive(Debug, Default)]
struct Reflector {
    polls: u64,
    reflected: u64,
    no_buffer: u64,
    rx: Vec<VecFrame>,
    tx: Vec<VecFrame>,
}

impl Reflector {
    fn poll(&mut self, _now: Instant, port: &mut SimPort) -> Option<Instant> {
        self.polls += 1;
        port.recv_burst(&mut self.rx, 4);
        let own = port.mac().0;
        for frame in self.rx.drain(..) {
            let data = frame.data();
            let Some(mut out) = port.alloc(data.len()) else {
                self.no_buffer += 1;
                continue;
            };
            let bytes = out.data_mut();
            bytes.copy_from_slice(data);
            bytes.copy_within(6..12, 0);
            bytes[6..12].copy_from_slice(&own);
            self.tx.push(out);
            self.reflected += 1;
        }
        port.send_burst(&mut self.tx);
        // Whatever the port did not take is dropped (freed), as a real loop would.
        self.tx.clear();
        None
    }
}

fn reflector_host() -> PortHost<impl PortDriver> {
    let port = SimPort::new(EthernetAddress(mac(2)), 1500);
    let mut reflector = Reflector::default();
    PortHost::from_fn(port, move |now, port: &mut SimPort| {
        reflector.poll(now, port)
    })
}

#[test]
fn a_poll_loop_reflects_frames_over_the_wire() {
    let mut net: Network = Network::new(1);
    net.set_faults(Faults::none().with_delay(Duration::from_millis(1), Duration::ZERO))
        .unwrap();
    // The pinger sends 100 frames at once: more than the loop's burst of 4, so the host
    // must be polled again for the frames left in its receive queue.
    net.add_host(Box::new(Toy::sender(1, 2, 100, None)))
        .unwrap();
    net.add_host(Box::new(reflector_host())).unwrap();
    net.run_until(
        |n| n.stats().links.delivered == 200,
        Instant::from_millis(1_000),
    )
    .unwrap();
    assert_eq!(net.now(), Instant::from_millis(2));
}

#[test]
fn the_pinger_gets_every_frame_back_in_order() {
    let mut net: Network<PortOrToy> = Network::new(1);
    let pinger = net
        .add_host(PortOrToy::Toy(Toy::sender(1, 2, 100, None)))
        .unwrap();
    let refl = net
        .add_host(PortOrToy::Port(Box::new(reflector_host())))
        .unwrap();
    net.run_until(
        |n| n.stats().links.delivered == 200,
        Instant::from_millis(1_000),
    )
    .unwrap();
    let PortOrToy::Toy(toy) = net.host(pinger).unwrap() else {
        unreachable!()
    };
    assert_eq!(toy.received, (0..100).collect::<Vec<u32>>());
    let PortOrToy::Port(host) = net.host(refl).unwrap() else {
        unreachable!()
    };
    assert_eq!(host.port().rx_pending(), 0);
    assert_eq!(host.port().stats().rx_dropped, 0);
}

#[test]
fn a_shallow_receive_queue_drops_and_counts() {
    let mut net: Network<PortOrToy> = Network::new(1);
    let pinger = net
        .add_host(PortOrToy::Toy(Toy::sender(1, 2, 100, None)))
        .unwrap();
    let port = SimPort::new(EthernetAddress(mac(2)), 1500).with_depths(10, 1024);
    let mut reflector = Reflector::default();
    let host = PortHost::from_fn(port, move |now, p: &mut SimPort| reflector.poll(now, p));
    let refl = net.add_host(PortOrToy::Port(Box::new(host))).unwrap();
    net.run_for(Duration::from_millis(10)).unwrap();
    let PortOrToy::Port(host) = net.host(refl).unwrap() else {
        unreachable!()
    };
    // All 100 arrive in one instant, before the loop runs: 10 fit.
    assert_eq!(host.port().stats().rx_dropped, 90);
    let PortOrToy::Toy(toy) = net.host(pinger).unwrap() else {
        unreachable!()
    };
    assert_eq!(toy.received, (0..10).collect::<Vec<u32>>());
}

#[test]
fn an_exhausted_pool_is_seen_by_the_loop() {
    let mut port = SimPort::new(EthernetAddress(mac(2)), 1500);
    port.set_alloc_budget(Some(5));
    let mut reflector = Reflector::default();
    let mut host = PortHost::from_fn(port, move |now, p: &mut SimPort| {
        reflector.poll(now, p);
        // Report through the deadline: a test-only trick to read the counter back.
        Some(Instant::from_nanos(reflector.no_buffer))
    });
    for seq in 0..8 {
        host.receive(
            Instant::ZERO,
            &sim_support::toy_frame(mac(2), mac(1), seq, 64),
        );
    }
    let mut sent = 0;
    host.transmit(Instant::ZERO, &mut |_| sent += 1);
    host.handle_timeout(Instant::ZERO);
    host.transmit(Instant::ZERO, &mut |_| sent += 1);
    assert_eq!(sent, 5);
    assert_eq!(host.poll_timeout(), Some(Instant::from_nanos(3)));
    assert_eq!(host.port().stats().alloc_failed, 3);
}

fn engine_host(n: u8) -> PortHost<Engine<SimPort>> {
    let mac = EthernetAddress(mac(n));
    let cidr = Ipv4Cidr::new(Ipv4Addr::new(192, 168, 7, n), 24).unwrap();
    let iface = Interface::new(IfaceConfig::new(mac, cidr));
    PortHost::new(Engine::new(SimPort::new(mac, 1500), iface))
}

#[test]
fn the_real_poll_loop_resolves_arp_over_a_delayed_wire() {
    let mut net: Network<PortHost<Engine<SimPort>>> = Network::new(7);
    net.set_faults(Faults::none().with_delay(Duration::from_millis(3), Duration::ZERO))
        .unwrap();
    let a = net.add_host(engine_host(1)).unwrap();
    let b = net.add_host(engine_host(2)).unwrap();
    let b_ip = Ipv4Addr::new(192, 168, 7, 2);
    let engine_a = net.host_mut(a).unwrap().driver_mut();
    assert!(engine_a.send_arp_request(b_ip));
    net.run_until(
        |n| n.stats().in_flight == 0 && n.stats().transmitted == 2,
        Instant::from_millis(1_000),
    )
    .unwrap();
    // Request out, reply back: two one-way delays.
    assert_eq!(net.now(), Instant::from_millis(6));
    let engine_a = net.host(a).unwrap().driver();
    assert_eq!(
        engine_a.iface().arp_lookup(b_ip, net.now()),
        Some(EthernetAddress(mac(2)))
    );
    assert_eq!(net.host(b).unwrap().driver().counters().arp_replies_sent, 1);
}

/// A flow on `a` resolves `ip` at the network's current instant (what the stack does when
/// it sends), and the loop polls once then, as it would after sending.
fn use_neighbour(net: &mut Network<PortHost<Engine<SimPort>>>, a: HostId, ip: Ipv4Addr) {
    let now = net.now();
    let host = net.host_mut(a).unwrap();
    assert!(host.driver().iface().arp_lookup(ip, now).is_some());
    host.handle_timeout(now);
}

#[test]
fn the_real_poll_loop_probes_stale_neighbours_on_its_own() {
    let mut net: Network<PortHost<Engine<SimPort>>> = Network::new(7);
    net.set_faults(Faults::none().with_delay(Duration::from_millis(3), Duration::ZERO))
        .unwrap();
    let a = net.add_host(engine_host(1)).unwrap();
    let b = net.add_host(engine_host(2)).unwrap();
    let b_ip = Ipv4Addr::new(192, 168, 7, 2);
    assert!(net.host_mut(a).unwrap().driver_mut().send_arp_request(b_ip));
    net.run_for(Duration::from_millis(10)).unwrap();
    fn engine_a(net: &Network<PortHost<Engine<SimPort>>>) -> &Engine<SimPort> {
        net.hosts().next().unwrap().1.driver()
    }
    assert_eq!(
        engine_a(&net).iface().neighbour_state(b_ip, net.now()),
        Some(NeighbourState::Reachable)
    );

    // Past the reachable time, a flow uses B's entry. Nothing else happens on the wire, yet
    // the loop wakes up to probe it after the delay; B answers, and that confirms it.
    net.run_for(IfaceConfig::DEFAULT_ARP_ENTRY_TTL).unwrap();
    use_neighbour(&mut net, a, b_ip);
    net.run_for(ARP_DELAY_FIRST_PROBE + Duration::from_millis(10))
        .unwrap();
    assert_eq!(engine_a(&net).counters().arp_probes_sent, 1);
    assert_eq!(net.host(b).unwrap().driver().counters().arp_replies_sent, 2);
    assert_eq!(
        engine_a(&net).iface().neighbour_state(b_ip, net.now()),
        Some(NeighbourState::Reachable)
    );

    // B is gone (every frame lost). Used stale again, the entry is probed, unicast then
    // broadcast, on schedule, and dropped when the last probe goes unanswered.
    net.set_faults(Faults::none().with_loss(1.0)).unwrap();
    net.run_for(IfaceConfig::DEFAULT_ARP_ENTRY_TTL).unwrap();
    use_neighbour(&mut net, a, b_ip);
    let probes = ARP_UNICAST_PROBES + ARP_BROADCAST_PROBES;
    let all_probes = ARP_DELAY_FIRST_PROBE + ARP_PROBE_INTERVAL * u32::from(probes);
    net.run_for(all_probes - Duration::from_millis(300))
        .unwrap();
    assert_eq!(
        engine_a(&net).counters().arp_probes_sent,
        1 + u64::from(probes)
    );
    assert_eq!(
        engine_a(&net).iface().arp_lookup(b_ip, net.now()),
        Some(EthernetAddress(mac(2))),
        "still used while the last probe may be answered"
    );
    net.run_for(Duration::from_millis(300)).unwrap();
    assert_eq!(engine_a(&net).iface().arp_lookup(b_ip, net.now()), None);
    assert_eq!(engine_a(&net).counters().arp_entries_failed, 1);
    assert!(engine_a(&net).iface().arp_cache().is_empty());
}

/// Two host types on one network without boxing both.
enum PortOrToy {
    Toy(Toy),
    Port(Box<dyn HostDebug>),
}

trait HostDebug: Host {
    fn port(&self) -> &SimPort;
}

impl<D: PortDriver> HostDebug for PortHost<D> {
    fn port(&self) -> &SimPort {
        PortHost::port(self)
    }
}

impl Host for PortOrToy {
    fn mac(&self) -> [u8; 6] {
        match self {
            PortOrToy::Toy(h) => h.mac(),
            PortOrToy::Port(h) => h.mac(),
        }
    }
    fn receive(&mut self, now: Instant, frame: &[u8]) {
        match self {
            PortOrToy::Toy(h) => h.receive(now, frame),
            PortOrToy::Port(h) => h.receive(now, frame),
        }
    }
    fn transmit(&mut self, now: Instant, out: &mut dyn FnMut(&[u8])) {
        match self {
            PortOrToy::Toy(h) => h.transmit(now, out),
            PortOrToy::Port(h) => h.transmit(now, out),
        }
    }
    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            PortOrToy::Toy(h) => h.poll_timeout(),
            PortOrToy::Port(h) => h.poll_timeout(),
        }
    }
    fn handle_timeout(&mut self, now: Instant) {
        match self {
            PortOrToy::Toy(h) => h.handle_timeout(now),
            PortOrToy::Port(h) => h.handle_timeout(now),
        }
    }
}
