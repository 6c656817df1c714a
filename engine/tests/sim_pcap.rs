//! Capture files of simulated runs, and determinism: the same seed gives the same bytes.
mod sim_support;

use engine::sim::pcap::{self, LINKTYPE_ETHERNET, MAGIC_MICROS, MAGIC_NANOS};
use engine::sim::{CaptureMode, Faults, HostId, Network, Resolution};
use engine::time::{Duration, Instant};
use sim_support::Toy;

fn faults() -> Faults {
    Faults::none()
        .with_loss(0.05)
        .with_duplicate(0.05)
        .with_reorder(0.05, Duration::from_millis(20))
        .with_corrupt(0.05)
        .with_delay(Duration::from_millis(10), Duration::from_millis(4))
}

/// An echo run under every fault; returns the network after it.
fn run(seed: u64, mode: CaptureMode, resolution: Resolution) -> (Network<Toy>, HostId) {
    let mut net = Network::new(seed);
    net.set_faults(faults()).unwrap();
    net.capture(mode, resolution);
    let pinger = net
        .add_host(Toy::sender(1, 2, 500, Some(Duration::from_millis(1))))
        .unwrap();
    net.add_host(Toy::echoer(2)).unwrap();
    net.run_until(
        |n| n.host(pinger).unwrap().done_sending() && n.stats().in_flight == 0,
        Instant::from_millis(60_000),
    )
    .unwrap();
    (net, pinger)
}

#[test]
fn delivered_capture_has_one_record_per_delivery() {
    let (net, pinger) = run(1, CaptureMode::Delivered, Resolution::Nanos);
    let bytes = net.pcap_bytes().unwrap();
    assert_eq!(bytes[..4], MAGIC_NANOS.to_le_bytes());
    let file = pcap::parse(bytes).unwrap();
    assert_eq!(file.linktype, LINKTYPE_ETHERNET);
    let stats = net.stats();
    assert_eq!(file.records.len() as u64, stats.links.delivered);
    assert!(
        file.records.windows(2).all(|w| w[0].at <= w[1].at),
        "time never goes back"
    );
    // The echoes the pinger received intact are in the file at their arrival times.
    let echoes = net.host(pinger).unwrap();
    for (seq, at) in echoes.received.iter().zip(&echoes.arrivals) {
        let frame = sim_support::toy_frame([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], *seq, 64);
        assert!(
            file.records.iter().any(|r| r.at == *at && r.data == frame),
            "echo {seq}"
        );
    }
}

#[test]
fn transmitted_capture_has_one_record_per_transmission() {
    let (net, _) = run(1, CaptureMode::Transmitted, Resolution::Micros);
    let file = pcap::parse(net.pcap_bytes().unwrap()).unwrap();
    assert_eq!(net.pcap_bytes().unwrap()[..4], MAGIC_MICROS.to_le_bytes());
    assert_eq!(file.records.len() as u64, net.stats().transmitted);
    // The pinger's frames are in it unharmed, one per millisecond.
    let first = &file.records[0];
    assert_eq!(first.at, Instant::ZERO);
    assert_eq!(
        first.data,
        sim_support::toy_frame([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1], 0, 64)
    );
}

#[test]
fn same_seed_same_bytes_different_seed_different_bytes() {
    let (a, _) = run(42, CaptureMode::Delivered, Resolution::Nanos);
    let (b, _) = run(42, CaptureMode::Delivered, Resolution::Nanos);
    let (c, _) = run(43, CaptureMode::Delivered, Resolution::Nanos);
    assert!(a.pcap_bytes().unwrap().len() > 24 + 500 * 80);
    assert_eq!(a.pcap_bytes(), b.pcap_bytes());
    assert_eq!(a.stats(), b.stats());
    assert_ne!(a.pcap_bytes(), c.pcap_bytes());
    assert_ne!(a.stats(), c.stats());
}

#[test]
fn capture_can_be_saved_and_streamed() {
    let dir = std::env::temp_dir().join(format!("migratory-sim-pcap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let saved = dir.join("saved.pcap");
    let (mut net, _) = run(3, CaptureMode::Delivered, Resolution::Nanos);
    net.save_pcap(&saved).unwrap();
    let on_disk = std::fs::read(&saved).unwrap();
    assert_eq!(Some(on_disk.as_slice()), net.pcap_bytes());
    net.finish_capture().unwrap();
    assert_eq!(net.pcap_bytes(), None);

    // The same run streamed straight to a file gives the same file.
    let streamed = dir.join("streamed.pcap");
    let mut net2 = Network::new(3);
    net2.set_faults(faults()).unwrap();
    let file = std::fs::File::create(&streamed).unwrap();
    net2.capture_to(
        Box::new(std::io::BufWriter::new(file)),
        CaptureMode::Delivered,
        Resolution::Nanos,
    )
    .unwrap();
    let pinger = net2
        .add_host(Toy::sender(1, 2, 500, Some(Duration::from_millis(1))))
        .unwrap();
    net2.add_host(Toy::echoer(2)).unwrap();
    net2.run_until(
        |n| n.host(pinger).unwrap().done_sending() && n.stats().in_flight == 0,
        Instant::from_millis(60_000),
    )
    .unwrap();
    net2.finish_capture().unwrap();
    assert_eq!(std::fs::read(&streamed).unwrap(), on_disk);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_failing_sink_stops_the_capture_not_the_run() {
    struct Broken;
    impl std::io::Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::StorageFull.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut net: Network<Toy> = Network::new(1);
    // The header itself fails to write.
    assert!(net
        .capture_to(Box::new(Broken), CaptureMode::Delivered, Resolution::Nanos)
        .is_err());

    /// Accepts the header, then fails.
    struct FailsLater(usize);
    impl std::io::Write for FailsLater {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::ErrorKind::StorageFull.into());
            }
            self.0 -= 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    net.capture_to(
        Box::new(FailsLater(1)),
        CaptureMode::Transmitted,
        Resolution::Nanos,
    )
    .unwrap();
    let id = net.add_host(Toy::sender(1, 2, 10, None)).unwrap();
    net.add_host(Toy::new(2, 1)).unwrap();
    net.run_for(Duration::from_millis(1)).unwrap();
    assert_eq!(net.stats().links.delivered, 10);
    assert!(net.host(id).unwrap().done_sending());
    let err = net.finish_capture().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::StorageFull);
}
