//! The safe layer against a real EAL and a net_ring port (no hugepages, no root needed
//! beyond what EAL itself asks for). EAL initialises once per process, so this binary
//! has one test that walks the whole life cycle.
use dpdk_sys::{DpdkError, Eal, EalArgs, Mempool, Port, PortConfig};

#[test]
fn eal_mempool_port_lifecycle() {
    let prefix = format!("--file-prefix=dpdk-sys-test-{}", std::process::id());
    let args = EalArgs::new([
        "--no-huge",
        "-m",
        "256",
        prefix.as_str(),
        "-l",
        "0,1",
        "--no-pci",
        "--log-level=lib.eal:error",
        "--vdev=net_ring0",
    ]);
    let eal = Eal::init(&args).expect("EAL init with --no-huge");
    // A second init is refused by us, before DPDK sees it.
    assert_eq!(Eal::init(&args).unwrap_err(), DpdkError::AlreadyInitialised);
    assert!(!eal.lcores().is_empty());
    assert_eq!(eal.port_count(), 1);

    let pool = Mempool::new("test_pool", 1023, 0, Mempool::DEFAULT_DATA_ROOM, -1).expect("mempool");
    assert_eq!(pool.in_use(), 0);

    // Mbuf ownership: dropped means freed.
    {
        let mut m = pool.alloc().expect("alloc");
        assert_eq!(m.len(), 0);
        assert!(m.capacity() >= 1500);
        assert!(m.set_len(60));
        m.data_mut().fill(0xab);
        assert_eq!(m.data(), &[0xab; 60][..]);
        assert!(!m.set_len(m.capacity() + 1));
        assert_eq!(pool.in_use(), 1);
    }
    assert_eq!(pool.in_use(), 0);

    let id = Port::by_name("net_ring0").expect("port by name");
    assert!(matches!(
        Port::by_name("net_nope9"),
        Err(DpdkError::NoSuchPort(_))
    ));
    assert_eq!(Port::ids(), vec![id]);
    let mut port = Port::configure(id, &PortConfig::default(), &pool).expect("configure");
    port.start().expect("start");
    let info = port.info().expect("info");
    assert_eq!(info.driver, "net_ring");
    let _mac = port.mac().expect("mac");
    assert!(port.link().expect("link").up);

    // net_ring loops tx back to rx: what we send comes back byte for byte, and the
    // mbufs the driver took are not double-freed (in_use returns to 0 at the end).
    let mut tx = Vec::new();
    for i in 0..10u8 {
        let mut m = pool.alloc().expect("alloc");
        assert!(m.set_len(64));
        m.data_mut().fill(i);
        tx.push(m);
    }
    assert_eq!(port.tx_burst(0, &mut tx), 10);
    assert!(tx.is_empty());
    let mut rx: Vec<dpdk_sys::Mbuf> = Vec::new();
    let mut got = 0;
    for _ in 0..100 {
        got += port.rx_burst(0, &mut rx, 32);
        if got == 10 {
            break;
        }
    }
    assert_eq!(got, 10);
    for (i, m) in rx.iter().enumerate() {
        assert_eq!(m.data(), &[i as u8; 64][..]);
    }
    assert_eq!(pool.in_use(), 10);
    drop(rx);
    assert_eq!(pool.in_use(), 0);
    let stats = port.stats().expect("stats");
    assert_eq!(stats.opackets, 10);
    // A job on a worker lcore runs there and returns its code; a panic comes back as -1.
    let workers = eal.workers();
    assert_eq!(workers.len(), 1, "lcores {:?}", eal.lcores());
    let lcore = eal
        .launch(workers[0], || {
            dpdk_sys::lcore_id().map_or(-2, |id| id as i32)
        })
        .expect("launch");
    assert_eq!(lcore.join(), workers[0] as i32);
    let lcore = eal
        .launch(workers[0], || panic!("job panics"))
        .expect("launch");
    assert_eq!(lcore.join(), -1);

    port.stop().expect("stop");
    drop(port);
    drop(eal);
}
