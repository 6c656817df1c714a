//! The simulated wire with toy hosts: delivery, every fault, the clock, the errors.
mod sim_support;

use engine::sim::{Faults, Host, HostId, LinkStats, Network, SimError};
use engine::time::{Duration, Instant};
use sim_support::{bit_distance, mac, toy_frame, Ticker, Toy, BROADCAST};

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// A network with a sender (host 0) of `count` frames every `interval` and a receiver
/// (host 1), under `faults`, run until the sender is done and the wire is empty.
fn pair(seed: u64, faults: Faults, count: u32, interval: Option<Duration>) -> Network<Toy> {
    let mut net = Network::new(seed);
    net.set_faults(faults).unwrap();
    net.add_host(Toy::sender(1, 2, count, interval)).unwrap();
    net.add_host(Toy::new(2, 1)).unwrap();
    net.run_until(
        |n| n.host(a()).unwrap().done_sending() && n.stats().in_flight == 0,
        far(),
    )
    .unwrap();
    net
}

fn a() -> HostId {
    host_id(0)
}

fn b() -> HostId {
    host_id(1)
}

fn host_id(i: usize) -> HostId {
    HostId::from_index(i)
}

fn far() -> Instant {
    Instant::from_millis(3_600_000)
}

fn conserved(s: &LinkStats) -> bool {
    s.sent + s.duplicated == s.oversize + s.lost + s.delivered
}

#[test]
fn perfect_link_delivers_everything_in_order() {
    let faults = Faults::none().with_delay(ms(10), ms(3));
    let net = pair(1, faults, 1000, Some(ms(1)));
    let rx = net.host(b()).unwrap();
    assert_eq!(rx.received, (0..1000).collect::<Vec<u32>>());
    assert!(rx.damaged.is_empty());
    // Jitter delays but never reorders; every frame took between 10 and 13 ms.
    assert!(rx.arrivals.windows(2).all(|w| w[0] <= w[1]));
    for (i, at) in rx.arrivals.iter().enumerate() {
        let sent = Instant::from_millis(i as u64);
        let took = *at - sent;
        assert!(took >= ms(10) && took <= ms(13), "frame {i} took {took:?}");
    }
    let s = net.link_stats(a(), b());
    assert_eq!(
        (s.sent, s.delivered, s.lost, s.duplicated),
        (1000, 1000, 0, 0)
    );
    assert_eq!(s.bytes_delivered, 64_000);
    assert_eq!(net.stats().transmitted, 1000);
    assert_eq!(net.link_stats(b(), a()), LinkStats::default());
}

#[test]
fn loss_rate_is_close_to_configured() {
    const N: u32 = 10_000;
    for (seed, p) in [(1u64, 0.01f64), (2, 0.05), (3, 0.2), (4, 0.5)] {
        let net = pair(seed, Faults::none().with_loss(p), N, None);
        let s = net.link_stats(a(), b());
        let expected = p * f64::from(N);
        let sigma = (f64::from(N) * p * (1.0 - p)).sqrt();
        assert!(
            (s.lost as f64 - expected).abs() < 5.0 * sigma,
            "loss {p}: {} lost, expected {expected} ± {sigma}",
            s.lost
        );
        let rx = net.host(b()).unwrap();
        assert_eq!(rx.received.len() as u64, u64::from(N) - s.lost);
        assert_eq!(s.delivered, rx.received.len() as u64);
        // Survivors still arrive in order.
        assert!(rx.received.windows(2).all(|w| w[0] < w[1]));
        assert!(conserved(&s));
    }
}

#[test]
fn total_loss_delivers_nothing() {
    let net = pair(9, Faults::none().with_loss(1.0), 100, None);
    assert!(net.host(b()).unwrap().received.is_empty());
    assert_eq!(net.link_stats(a(), b()).lost, 100);
}

#[test]
fn duplication_is_observed_and_counted() {
    let net = pair(5, Faults::none().with_duplicate(0.1), 5000, Some(ms(1)));
    let rx = net.host(b()).unwrap();
    let s = net.link_stats(a(), b());
    let mut seen = std::collections::HashSet::new();
    let dups = rx.received.iter().filter(|seq| !seen.insert(**seq)).count() as u64;
    assert_eq!(dups, s.duplicated);
    assert!((400..600).contains(&dups), "{dups} duplicates");
    assert_eq!(seen.len(), 5000, "every frame arrived at least once");
    // A duplicate follows its original directly (the link is FIFO).
    assert!(rx.received.windows(2).all(|w| w[0] <= w[1]));
    assert!(conserved(&s));
}

#[test]
fn reordering_is_observed_and_counted() {
    let faults = Faults::none()
        .with_delay(ms(5), Duration::ZERO)
        .with_reorder(0.1, ms(20));
    let net = pair(6, faults, 2000, Some(ms(1)));
    let rx = net.host(b()).unwrap();
    let s = net.link_stats(a(), b());
    assert!(
        (140..260).contains(&s.reordered),
        "{} held back",
        s.reordered
    );
    // Some frame arrives after a later-numbered one.
    let mut max_seen = 0;
    let mut late = 0;
    for &seq in &rx.received {
        if seq < max_seen {
            late += 1;
        }
        max_seen = max_seen.max(seq);
    }
    assert!(late > 100, "{late} frames overtaken");
    assert!(late as u64 <= s.reordered);
    let mut sorted = rx.received.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..2000).collect::<Vec<u32>>(), "nothing lost");
    // Arrival times are non-decreasing anyway: the clock only moves forward.
    assert!(rx.arrivals.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn corrupted_frames_differ_from_their_originals() {
    let net = pair(7, Faults::none().with_corrupt(0.05), 4000, None);
    let rx = net.host(b()).unwrap();
    let s = net.link_stats(a(), b());
    assert!(
        (130..270).contains(&s.corrupted),
        "{} corrupted",
        s.corrupted
    );
    assert_eq!(rx.damaged.len() as u64, s.corrupted);
    assert_eq!(rx.received.len() as u64, 4000 - s.corrupted);
    assert_eq!(originals_of(rx, 4000, 64, 1).len(), rx.damaged.len());
}

#[test]
fn several_corrupt_bits_flip_that_many() {
    let mut faults = Faults::none().with_corrupt(1.0);
    faults.corrupt_bits = 5;
    let net = pair(8, faults, 50, None);
    let rx = net.host(b()).unwrap();
    assert_eq!(rx.damaged.len(), 50);
    assert_eq!(originals_of(rx, 50, 64, 5).len(), 50);
}

/// Matches each damaged frame to the missing original nearest to it, asserting that it
/// differs in exactly `bits` bits, all after the Ethernet header, and that no two damaged
/// frames share an original. Returns the matched numbers.
fn originals_of(rx: &Toy, sent: u32, len: usize, bits: u32) -> std::collections::BTreeSet<u32> {
    let intact: std::collections::HashSet<u32> = rx.received.iter().copied().collect();
    let missing: Vec<Vec<u8>> = (0..sent)
        .filter(|seq| !intact.contains(seq))
        .map(|seq| toy_frame(mac(2), mac(1), seq, len))
        .collect();
    let mut matched = std::collections::BTreeSet::new();
    for got in &rx.damaged {
        let (seq, original) = missing
            .iter()
            .enumerate()
            .min_by_key(|(_, o)| bit_distance(got, o))
            .expect("a missing original");
        assert_ne!(got, original);
        assert_eq!(bit_distance(got, original), bits);
        assert_eq!(got[..14], original[..14], "Ethernet header spared");
        assert!(matched.insert(seq as u32));
    }
    matched
}

#[test]
fn frames_over_the_mtu_are_dropped_and_counted() {
    let mut net = Network::new(1);
    net.set_faults(Faults::none().with_mtu(1000)).unwrap();
    let mut tx = Toy::sender(1, 2, 6, None);
    // IP lengths 986, 1000, 1001, 1500, 64-14, 1014-14.
    tx.lengths = vec![1000, 1014, 1015, 1514, 64, 1014];
    net.add_host(tx).unwrap();
    net.add_host(Toy::new(2, 1)).unwrap();
    let stats = net.run_until(
        |n| n.stats().transmitted == 6 && n.stats().in_flight == 0,
        far(),
    );
    let stats = stats.unwrap();
    assert_eq!(stats.links.oversize, 2);
    assert_eq!(net.host(b()).unwrap().received, vec![0, 1, 4, 5]);
}

#[test]
fn bandwidth_limits_the_rate() {
    // 1250-byte frames at 10 Mbit/s: 1 ms each on the wire, sent all at once.
    let faults = Faults::none()
        .with_bandwidth(10_000_000)
        .with_delay(ms(2), Duration::ZERO);
    let net = pair(1, faults, 100, None);
    let rx = net.host(b()).unwrap();
    assert_eq!(rx.received.len(), 100);
    let arrivals: Vec<u64> = rx.arrivals.iter().map(|t| t.as_nanos()).collect();
    // 64-byte frames here: 51.2 us each.
    assert_eq!(arrivals[0], 2_000_000 + 51_200);
    assert_eq!(arrivals[99], 2_000_000 + 100 * 51_200);
}

#[test]
fn the_clock_jumps_over_idle_time() {
    let mut net: Network = Network::new(1);
    net.add_host(Box::new(Ticker {
        mac: mac(1),
        period: Duration::from_secs(1),
        next: Instant::from_millis(1_000),
        ticks: Vec::new(),
        stop_after: usize::MAX,
    }))
    .unwrap();
    net.add_host(Box::new(Toy::new(2, 1))).unwrap();
    let err = net
        .run_until(|_| false, Instant::from_millis(10_000))
        .unwrap_err();
    assert_eq!(
        err,
        SimError::Timeout {
            now: Instant::from_millis(10_000)
        }
    );
    assert_eq!(net.now(), Instant::from_millis(10_000));

    // A week of virtual time at one event per second, with a 100 ms link.
    let mut net: Network<Ticker> = Network::new(1);
    let week = 7 * 24 * 3600;
    net.add_host(Ticker {
        mac: mac(1),
        period: Duration::from_secs(1),
        next: Instant::ZERO,
        ticks: Vec::new(),
        stop_after: week,
    })
    .unwrap();
    net.run_until(
        |n| n.hosts().all(|(_, h)| h.ticks.len() == week),
        far() + ms(1_000_000_000),
    )
    .unwrap();
    let ticks = &net.hosts().next().unwrap().1.ticks;
    assert_eq!(ticks.len(), week);
    assert_eq!(
        *ticks.last().unwrap(),
        Instant::from_millis((week as u64 - 1) * 1000)
    );
    assert!(ticks
        .windows(2)
        .all(|w| w[1] - w[0] == Duration::from_secs(1)));
}

#[test]
fn echo_round_trip_takes_two_delays() {
    let mut net = Network::new(1);
    net.set_faults(Faults::none().with_delay(ms(100), Duration::ZERO))
        .unwrap();
    net.add_host(Toy::sender(1, 2, 10, Some(ms(1_000))))
        .unwrap();
    net.add_host(Toy::echoer(2)).unwrap();
    net.run_until(|n| n.host(a()).unwrap().received.len() == 10, far())
        .unwrap();
    let pinger = net.host(a()).unwrap();
    for (i, at) in pinger.arrivals.iter().enumerate() {
        assert_eq!(*at, Instant::from_millis(i as u64 * 1000 + 200));
    }
    assert_eq!(net.now(), Instant::from_millis(9_200));
}

#[test]
fn broadcast_reaches_every_other_host_and_unknown_macs_are_dropped() {
    let mut net = Network::new(1);
    for n in 1..=3 {
        net.add_host(Toy::new(n, 0)).unwrap();
    }
    let one = a();
    net.inject(one, &toy_frame(BROADCAST, mac(1), 0, 60))
        .unwrap();
    net.inject(one, &toy_frame(mac(9), mac(1), 1, 60)).unwrap();
    net.inject(one, &toy_frame(mac(1), mac(1), 2, 60)).unwrap();
    net.inject(one, &[0xff; 10]).unwrap();
    net.run_for(ms(1)).unwrap();
    let others: Vec<usize> = net.hosts().map(|(_, h)| h.other.len()).collect();
    assert_eq!(others, vec![0, 1, 1]);
    let s = net.stats();
    assert_eq!(
        (s.transmitted, s.unroutable, s.runts, s.links.delivered),
        (4, 2, 1, 2)
    );
}

#[test]
fn per_link_faults_apply_to_one_direction() {
    let mut net = Network::new(1);
    net.add_host(Toy::sender(1, 2, 100, None)).unwrap();
    let mut back = Toy::sender(2, 1, 100, None);
    back.next_seq = 0;
    net.add_host(back).unwrap();
    net.set_link_faults(a(), b(), Faults::none().with_loss(1.0))
        .unwrap();
    net.run_for(ms(10)).unwrap();
    assert_eq!(net.host(b()).unwrap().received.len(), 0);
    assert_eq!(net.host(a()).unwrap().received.len(), 100);
    assert_eq!(net.link_stats(a(), b()).lost, 100);
    assert_eq!(net.link_stats(b(), a()).lost, 0);
    let ghost = host_id(5);
    assert_eq!(
        net.set_link_faults(a(), ghost, Faults::none()),
        Err(SimError::UnknownHost)
    );
}

#[test]
fn invalid_configurations_are_refused() {
    let mut net: Network<Toy> = Network::new(1);
    assert!(net.set_faults(Faults::none().with_duplicate(-0.1)).is_err());
    net.add_host(Toy::new(1, 2)).unwrap();
    assert_eq!(
        net.add_host(Toy::new(1, 3)).unwrap_err(),
        SimError::DuplicateMac
    );
    let mut multicast = Toy::new(2, 1);
    multicast.mac = [0x01, 0, 0x5e, 0, 0, 1];
    assert_eq!(net.add_host(multicast).unwrap_err(), SimError::MulticastMac);
}

#[test]
fn stalled_and_livelocked_runs_are_errors() {
    let mut net: Network<Toy> = Network::new(1);
    net.add_host(Toy::new(1, 2)).unwrap();
    let err = net.run_until(|_| false, far()).unwrap_err();
    assert_eq!(err, SimError::Stalled { now: Instant::ZERO });

    /// Asks to run now, forever.
    struct Restless;
    impl Host for Restless {
        fn mac(&self) -> [u8; 6] {
            mac(7)
        }
        fn receive(&mut self, _: Instant, _: &[u8]) {}
        fn transmit(&mut self, _: Instant, _: &mut dyn FnMut(&[u8])) {}
        fn poll_timeout(&self) -> Option<Instant> {
            Some(Instant::ZERO)
        }
        fn handle_timeout(&mut self, _: Instant) {}
    }
    let mut net: Network = Network::new(1);
    net.set_max_rounds_per_instant(1000);
    net.add_host(Box::new(Restless)).unwrap();
    let err = net.run_until(|_| false, far()).unwrap_err();
    assert_eq!(err, SimError::Livelock { now: Instant::ZERO });
}

#[test]
fn everything_at_once_is_conserved() {
    let faults = Faults::none()
        .with_loss(0.1)
        .with_duplicate(0.1)
        .with_reorder(0.1, ms(30))
        .with_corrupt(0.1)
        .with_delay(ms(10), ms(5))
        .with_mtu(500);
    let mut net = Network::new(11);
    net.set_faults(faults).unwrap();
    let mut tx = Toy::sender(1, 2, 3000, Some(ms(1)));
    tx.lengths = (0..3000)
        .map(|i| if i % 10 == 0 { 600 } else { 100 })
        .collect();
    net.add_host(tx).unwrap();
    net.add_host(Toy::echoer(2)).unwrap();
    net.run_until(
        |n| n.host(a()).unwrap().done_sending() && n.stats().in_flight == 0,
        far(),
    )
    .unwrap();
    let s = net.stats().links;
    assert!(conserved(&s));
    assert_eq!(net.link_stats(a(), b()).oversize, 300);
    for stats in [net.link_stats(a(), b()), net.link_stats(b(), a())] {
        assert!(stats.lost > 0 && stats.duplicated > 0 && stats.reordered > 0);
        assert!(stats.corrupted > 0);
    }
    let rx = net.host(b()).unwrap();
    assert_eq!(
        rx.received.len() + rx.damaged.len(),
        net.link_stats(a(), b()).delivered as usize
    );
}
