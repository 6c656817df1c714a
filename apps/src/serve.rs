//! `migratory serve`: brings up EAL, one port and the engine's poll loop, and stops
//! cleanly on SIGINT or SIGTERM.
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use dpdk_sys::{Eal, EalArgs, Mempool, Port, PortConfig};
use engine::iface::{IfaceConfig, Interface};
use engine::poll::{Engine, IdleStrategy};
use engine::time::{Duration, MonotonicClock};
use engine::wire::ChecksumCaps;

use crate::cli::{ServeArgs, EXIT_FAILURE, EXIT_USAGE};
use crate::ctl::{ControlServer, StatsBoard};
use crate::dpdk_port::DpdkQueue;
use crate::preflight;

/// Mbufs in the pool: rx and tx rings plus bursts in flight and a margin.
const POOL_MBUFS: u32 = 8191;
const POOL_CACHE: u32 = 256;
/// How often each core publishes its counters for `migratory ctl`.
const STATS_EVERY: Duration = Duration::from_millis(10);

fn usage_error(msg: impl std::fmt::Display) -> i32 {
    eprintln!("migratory: {msg}");
    EXIT_USAGE
}

/// The EAL arguments, with a private file prefix derived from the engine's name when the
/// user gave neither `--file-prefix` nor `--in-memory`.
pub fn eal_args(args: &ServeArgs) -> EalArgs {
    let mut eal = args.eal.clone();
    let parsed = EalArgs::new(eal.iter().cloned());
    if !parsed.has_private_prefix() {
        eal.push(format!("--file-prefix=migratory-{}", args.name));
    }
    EalArgs::new(eal)
}

pub fn serve(args: &ServeArgs) -> i32 {
    if let Some(app) = args.app {
        return usage_error(format_args!(
            "--app {app:?} is not available in this build: the engine answers ARP and ping only until the TCP layer is joined to the port"
        ));
    }
    let eal_args = eal_args(args);
    if let Err(e) = preflight::check_all(&eal_args) {
        return usage_error(e);
    }

    // The control thread starts before EAL, so it does not inherit the main lcore's pinning.
    let board = StatsBoard::new(&args.name, 1);
    let control = match ControlServer::start(&args.ctl_dir, Arc::clone(&board)) {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&stop)) {
            eprintln!("migratory: cannot install a signal handler: {e}");
            return EXIT_FAILURE;
        }
    }

    let eal = match Eal::init(&eal_args) {
        Ok(eal) => eal,
        Err(e) => return usage_error(format_args!("DPDK EAL init failed: {e} (see the EAL messages above)")),
    };
    let code = run_port(args, &eal, &stop, &board);
    drop(control);
    drop(eal);
    code
}

fn run_port(args: &ServeArgs, eal: &Eal, stop: &AtomicBool, board: &StatsBoard) -> i32 {
    let port_id = match &args.device {
        Some(name) => match Port::by_name(name) {
            Ok(id) => id,
            Err(e) => return usage_error(e),
        },
        None => match Port::ids().first() {
            Some(&id) => id,
            None => {
                return usage_error(
                    "no DPDK port found: give one with --vdev=net_tap0,iface=NAME (or bind a NIC to vfio-pci); if you did, the DPDK driver plugins are missing: run ci/setup",
                )
            }
        },
    };

    let pool = match Mempool::new(&format!("mg_pool_{port_id}"), POOL_MBUFS, POOL_CACHE, Mempool::DEFAULT_DATA_ROOM, eal.socket_id()) {
        Ok(p) => p,
        Err(e) => return usage_error(format_args!("cannot create the mbuf pool: {e}")),
    };

    let mut idle: IdleStrategy = args.idle.into();
    let want_intr = idle == IdleStrategy::Interrupt;
    let mut conf = PortConfig { rx_interrupts: want_intr, ..PortConfig::default() };
    let mut port = match Port::configure(port_id, &conf, &pool) {
        Ok(p) => p,
        Err(e) if want_intr => {
            eprintln!("migratory: port {port_id} has no receive interrupts ({e}); idling with sleep back-off");
            idle = IdleStrategy::Sleep;
            conf.rx_interrupts = false;
            match Port::configure(port_id, &conf, &pool) {
                Ok(p) => p,
                Err(e) => return usage_error(format_args!("cannot configure port {port_id}: {e}")),
            }
        }
        Err(e) => return usage_error(format_args!("cannot configure port {port_id}: {e}")),
    };
    if let Err(e) = port.start() {
        return usage_error(format_args!("cannot start port {port_id}: {e}"));
    }

    let queue = match DpdkQueue::new(&port, 0, pool, conf.rx_interrupts) {
        Ok(q) => q,
        Err(e) => return usage_error(format_args!("cannot set up queue 0 of port {port_id}: {e}")),
    };
    let mac = engine::port::Port::mac(&queue);
    let name = port.name().unwrap_or_else(|_| format!("port{port_id}"));
    let driver = port.info().map(|i| i.driver).unwrap_or_default();
    println!(
        "migratory: engine {} serving on port {port_id} ({name}, {driver}) mac {mac} ip {} mtu {} lcores {:?} idle {}",
        args.name,
        args.ip,
        engine::port::Port::mtu(&queue),
        eal.lcores(),
        idle_name(idle),
    );

    let iface = Interface::new(IfaceConfig {
        mac,
        cidr: args.ip,
        caps: ChecksumCaps::default(),
        arp_cache_size: 1024,
        arp_entry_ttl: Duration::from_secs(60),
    });
    let mut engine = Engine::new(queue, iface);
    let clock = MonotonicClock::new();
    let lcore = dpdk_sys::lcore_id().unwrap_or(0);
    engine.run_with(&clock, stop, idle, STATS_EVERY, |e| {
        board.publish(0, |snap| {
            snap.lcore = lcore;
            snap.counters.clone_from(e.counters());
            snap.extra = vec![("mbufs_in_use", u64::from(pool.in_use()))];
        })
    });

    let counters = engine.counters().clone();
    drop(engine);
    // Closing the port frees the mbufs its rx ring holds; only then is in_use a leak count.
    drop(port);
    let leaked = pool.in_use();
    println!("migratory: stopped; counters:");
    for (name, value) in counters.iter().filter(|&(_, v)| v != 0) {
        println!("  {name}: {value}");
    }
    println!("  mbufs_in_use_at_exit: {leaked}");
    if leaked != 0 {
        eprintln!("migratory: {leaked} mbufs were not returned to the pool");
        return EXIT_FAILURE;
    }
    0
}

fn idle_name(i: IdleStrategy) -> &'static str {
    match i {
        IdleStrategy::Interrupt => "interrupt",
        IdleStrategy::Sleep => "sleep",
        IdleStrategy::Spin => "spin",
    }
}
