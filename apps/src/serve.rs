//! `migratory serve`: brings up EAL, one port and the engine's poll loop, and stops
//! cleanly on SIGINT or SIGTERM.
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use dpdk_sys::{Eal, EalArgs, Mempool, Port, PortConfig};
use engine::iface::{IfaceConfig, Interface};
use engine::poll::{Engine, IdleStrategy, NoSteer};
use engine::stack::{App, NoApp, Stack, StackConfig, StackKeys};
use engine::tcp::State;
use engine::time::Clock;
use engine::time::{Duration, MonotonicClock};
use engine::wire::ChecksumCaps;

use crate::apps::{AnyApp, Discard, Echo};
use crate::cli::{AppName, ServeArgs, EXIT_FAILURE, EXIT_USAGE};
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
    if matches!(args.app, Some(AppName::Http | AppName::Iperf3)) {
        return usage_error(format_args!(
            "--app {:?} is not available in this build yet (echo and discard are)",
            args.app.unwrap_or(AppName::Echo)
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

    let mtu = engine::port::Port::mtu(&queue);
    let iface = Interface::new(IfaceConfig {
        mac,
        cidr: args.ip,
        caps: ChecksumCaps::default(),
        arp_cache_size: 1024,
        arp_entry_ttl: Duration::from_secs(60),
    });
    let mut config = StackConfig::default();
    config.tcp.mtu = u16::try_from(mtu).unwrap_or(1500);
    let stack = Stack::new(iface, config, StackKeys::from_seed(random_seed()));
    let app = match args.app {
        None => None,
        Some(AppName::Echo) => Some(AnyApp::Echo(Echo::default())),
        Some(AppName::Discard) => Some(AnyApp::Discard(Discard::default())),
        Some(other) => return usage_error(format_args!("--app {other:?} is not available")),
    };
    let clock = MonotonicClock::new();
    let lcore = dpdk_sys::lcore_id().unwrap_or(0);
    let counters = match app {
        Some(app) => {
            let port_no = args.port.or(args.app.map(AppName::default_port)).unwrap_or(0);
            let mut engine = Engine::with_app(queue, stack, app, NoSteer);
            if let Err(e) = engine.with_ctx(clock.now(), |app, cx| app.start(cx, port_no)) {
                return usage_error(format_args!("cannot listen on port {port_no}: {e}"));
            }
            run_core(&mut engine, &clock, stop, idle, board, 0, lcore, &pool)
        }
        None => {
            let mut engine = Engine::with_app(queue, stack, NoApp, NoSteer);
            run_core(&mut engine, &clock, stop, idle, board, 0, lcore, &pool)
        }
    };

    // Closing the port frees the mbufs its rx ring holds; only then is in_use a leak count.
    drop(port);
    let leaked = pool.in_use();
    println!("migratory: stopped; counters:");
    for (name, value) in counters.iter().filter(|&(_, v)| *v != 0) {
        println!("  {name}: {value}");
    }
    println!("  mbufs_in_use_at_exit: {leaked}");
    if leaked != 0 {
        eprintln!("migratory: {leaked} mbufs were not returned to the pool");
        return EXIT_FAILURE;
    }
    0
}

/// Runs one core's engine until `stop`, publishing its figures to `board` slot `index`.
/// Returns the final figures (counters, then TCP counters and connection states).
#[allow(clippy::too_many_arguments)]
fn run_core<P: engine::port::Port, A: App>(
    engine: &mut Engine<P, A, NoSteer>,
    clock: &MonotonicClock,
    stop: &AtomicBool,
    idle: IdleStrategy,
    board: &StatsBoard,
    index: usize,
    lcore: u32,
    pool: &Mempool,
) -> Vec<(&'static str, u64)> {
    engine.run_with(clock, stop, idle, STATS_EVERY, |e| {
        board.publish(index, |snap| {
            snap.lcore = lcore;
            snap.counters.clone_from(e.counters());
            snap.extra = stack_figures(e.stack());
            snap.extra.push(("mbufs_in_use", u64::from(pool.in_use())));
            snap.extra.push(("steered_out", e.steered_out));
            snap.extra.push(("steered_in", e.steered_in));
        })
    });
    let mut all: Vec<(&'static str, u64)> = engine.counters().iter().collect();
    all.extend(stack_figures(engine.stack()));
    all
}

/// TCP counters and connections by state, as named figures.
fn stack_figures(stack: &Stack) -> Vec<(&'static str, u64)> {
    let mut v: Vec<(&'static str, u64)> = stack.tcp_counters().iter().collect();
    v.push(("connections", stack.connection_count() as u64));
    v.push(("connections_half_open", stack.half_open_count() as u64));
    for (state, n) in stack.connections_by_state() {
        v.push((state_figure(state), n as u64));
    }
    v
}

fn state_figure(s: State) -> &'static str {
    match s {
        State::Closed => "state_closed",
        State::SynSent => "state_syn_sent",
        State::SynReceived => "state_syn_received",
        State::Established => "state_established",
        State::FinWait1 => "state_fin_wait_1",
        State::FinWait2 => "state_fin_wait_2",
        State::CloseWait => "state_close_wait",
        State::Closing => "state_closing",
        State::LastAck => "state_last_ack",
        State::TimeWait => "state_time_wait",
    }
}

/// 64 bits from the operating system's random source (for hash keys and ISNs).
fn random_seed() -> u64 {
    use std::io::Read;
    let mut b = [0u8; 8];
    match std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)) {
        Ok(()) => u64::from_le_bytes(b),
        // No /dev/urandom: fall back to the clock, and say so.
        Err(e) => {
            eprintln!("migratory: /dev/urandom unreadable ({e}); hash keys seeded from the clock");
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
        }
    }
}

fn idle_name(i: IdleStrategy) -> &'static str {
    match i {
        IdleStrategy::Interrupt => "interrupt",
        IdleStrategy::Sleep => "sleep",
        IdleStrategy::Spin => "spin",
    }
}
