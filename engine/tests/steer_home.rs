//! `FlowSteer`: homes are symmetric, shared by every core, spread evenly, and
//! `pick_local_port` finds ports that home on the opening core.
use core::net::{Ipv4Addr, SocketAddrV4};

use engine::flow::FourTuple;
use engine::rng::SeededRng;
use engine::steer::{FlowSteer, SteerError};
use engine::table::FlowHashKey;

const KEY: FlowHashKey = FlowHashKey::from_words(0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210);

fn addr(rng: &mut SeededRng) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::from(rng.next_u64() as u32), rng.next_u64() as u16)
}

fn random_tuple(rng: &mut SeededRng) -> FourTuple {
    FourTuple::new(addr(rng), addr(rng))
}

#[test]
fn home_is_symmetric_and_in_range() {
    let mut rng = SeededRng::new(1);
    for cores in 1..=9 {
        let steer = FlowSteer::new(cores, KEY).unwrap();
        for _ in 0..10_000 {
            let t = random_tuple(&mut rng);
            let home = steer.home(&t);
            assert!(home < cores);
            assert_eq!(home, steer.home(&t.reversed()), "{t}");
        }
        // Endpoints that differ only in the port, or only in the address.
        let ip = Ipv4Addr::new(10, 0, 0, 1);
        let t = FourTuple::new(SocketAddrV4::new(ip, 80), SocketAddrV4::new(ip, 8080));
        assert_eq!(steer.home(&t), steer.home(&t.reversed()));
    }
}

#[test]
fn every_core_computes_the_same_home_and_the_key_matters() {
    let a = FlowSteer::new(8, KEY).unwrap();
    let b = FlowSteer::new(8, KEY).unwrap();
    let other = FlowSteer::new(8, FlowHashKey::from_words(1, 2)).unwrap();
    let mut rng = SeededRng::new(2);
    let mut differ = 0;
    for _ in 0..1000 {
        let t = random_tuple(&mut rng);
        assert_eq!(a.home(&t), b.home(&t));
        differ += u32::from(a.home(&t) != other.home(&t));
    }
    // Independent keys agree on about 1 in 8 flows.
    assert!(differ > 800, "{differ}");
}

/// Every core's share of `flows` is within 5% of the mean.
fn assert_even(steer: &FlowSteer, flows: impl Iterator<Item = FourTuple>) {
    let mut per_core = vec![0u32; usize::from(steer.cores())];
    let mut n = 0;
    for t in flows {
        per_core[usize::from(steer.home(&t))] += 1;
        n += 1;
    }
    let mean = f64::from(n) / f64::from(steer.cores());
    for (core, &count) in per_core.iter().enumerate() {
        assert!(
            (f64::from(count) - mean).abs() < 0.05 * mean,
            "core {core}: {count} flows, mean {mean}: {per_core:?}"
        );
    }
}

#[test]
fn random_flows_spread_evenly() {
    for cores in [2, 3, 4, 6, 8] {
        let steer = FlowSteer::new(cores, KEY).unwrap();
        let mut rng = SeededRng::new(u64::from(cores));
        assert_even(&steer, (0..100_000).map(|_| random_tuple(&mut rng)));
    }
}

#[test]
fn clients_of_one_server_spread_evenly_by_port() {
    // The usual server case: one listening address, the peer's port is what varies.
    let server = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80);
    let client = Ipv4Addr::new(10, 0, 0, 2);
    let steer = FlowSteer::new(4, KEY).unwrap();
    assert_even(
        &steer,
        (1024..=65535).map(|port| FourTuple::new(server, SocketAddrV4::new(client, port))),
    );
}

#[test]
fn zero_cores_is_refused() {
    assert_eq!(FlowSteer::new(0, KEY), Err(SteerError::NoCores));
}

#[test]
fn picked_ports_home_on_the_requested_core_and_are_the_first_from_the_hint() {
    let steer = FlowSteer::new(4, KEY).unwrap();
    let local_ip = Ipv4Addr::new(10, 0, 0, 1);
    let range = 32768..=60999;
    let mut rng = SeededRng::new(3);
    for _ in 0..2000 {
        let remote = addr(&mut rng);
        let core = rng.below(4) as u16;
        let hint = 32768 + rng.below(28232) as u16;
        let port = steer
            .pick_local_port(local_ip, remote, core, range.clone(), hint)
            .expect("a quarter of the range qualifies");
        assert!(range.contains(&port));
        let home = |p| steer.home(&FourTuple::new(SocketAddrV4::new(local_ip, p), remote));
        assert_eq!(home(port), core);
        // The replies of the flow (seen from the peer) home there too.
        assert_eq!(
            steer.home(&FourTuple::new(remote, SocketAddrV4::new(local_ip, port))),
            core
        );
        // No qualifying port was skipped between the hint and the result.
        if port >= hint {
            assert!((hint..port).all(|p| home(p) != core));
        } else {
            assert!((hint..=60999).chain(32768..port).all(|p| home(p) != core));
        }
    }
}

#[test]
fn pick_local_port_returns_none_when_nothing_qualifies() {
    let steer = FlowSteer::new(4, KEY).unwrap();
    let local_ip = Ipv4Addr::new(10, 0, 0, 1);
    let remote = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 443);
    let home = |p| steer.home(&FourTuple::new(SocketAddrV4::new(local_ip, p), remote));
    // A one-port range homes on exactly one core: the others get None.
    let port = 40000;
    for core in 0..4 {
        let picked = steer.pick_local_port(local_ip, remote, core, port..=port, port);
        if core == home(port) {
            assert_eq!(picked, Some(port));
        } else {
            assert_eq!(picked, None);
        }
    }
    // A core that does not exist, an empty range, and the range {0}.
    assert_eq!(
        steer.pick_local_port(local_ip, remote, 4, 1..=65535, 1),
        None
    );
    #[allow(clippy::reversed_empty_ranges)]
    let empty = 50000..=40000;
    assert_eq!(
        steer.pick_local_port(local_ip, remote, 0, empty, 45000),
        None
    );
    let single = FlowSteer::new(1, KEY).unwrap();
    assert_eq!(single.pick_local_port(local_ip, remote, 0, 0..=0, 0), None);
    assert_eq!(
        single.pick_local_port(local_ip, remote, 0, 0..=10, 0),
        Some(1)
    );
    // One core: the hint itself, wherever it is in the range.
    assert_eq!(
        single.pick_local_port(local_ip, remote, 0, 1000..=2000, 1500),
        Some(1500)
    );
    // A hint outside the range starts at its beginning.
    assert_eq!(
        single.pick_local_port(local_ip, remote, 0, 1000..=2000, 5),
        Some(1000)
    );
}

#[test]
fn pick_local_port_where_skips_unusable_ports_and_gives_up_when_all_are() {
    let steer = FlowSteer::new(2, KEY).unwrap();
    let local_ip = Ipv4Addr::new(10, 0, 0, 1);
    let remote = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 443);
    let range = 1024..=2047;
    let first = steer
        .pick_local_port(local_ip, remote, 1, range.clone(), 1024)
        .unwrap();
    let mut asked = Vec::new();
    let second = steer
        .pick_local_port_where(local_ip, remote, 1, range.clone(), 1024, |p| {
            asked.push(p);
            p != first
        })
        .unwrap();
    assert!(second > first);
    assert_eq!(
        asked,
        vec![first, second],
        "only ports homing on the core are asked about"
    );
    let none = steer.pick_local_port_where(local_ip, remote, 1, range, 1024, |_| false);
    assert_eq!(none, None);
}
