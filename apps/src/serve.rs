//! `migratory serve`: brings up EAL, one port with a queue pair per core, and a poll loop
//! per core (run-to-completion, each core owning the flows that home on it, frames of
//! other cores' flows handed over through the steering mesh), and stops cleanly on
//! SIGINT or SIGTERM: the loops end, the port closes, and every mbuf must be back in
//! the pool.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use dpdk_sys::{Eal, EalArgs, Mempool, Port, PortConfig};
use engine::channel::{ClusterKey, MIN_KEY_LEN};
use engine::control::{control_queue, ControlInbox, ControlSender};
use engine::iface::{IfaceConfig, Interface};
use engine::poll::{ChannelConfig, Engine, IdleStrategy, PeerAddr};
use engine::stack::{App, Stack, StackConfig, StackKeys};
use engine::steer::{CoreMessage, FlowSteer, Mesh, MeshEndpoint, MeshSteer};
use engine::table::FlowHashKey;
use engine::tcp::State;
use engine::time::{Clock, Duration, MonotonicClock};
use engine::wire::ipv4::Ipv4Cidr;
use engine::wire::{ChecksumCaps, EthernetAddress};
use ports::fault::{FaultConfig, FaultyPort};
use ports::shm::ShmLink;

use crate::apps::{AnyApp, AppFactory};
use crate::args::{AppName, ServeArgs, EXIT_FAILURE, EXIT_USAGE};
use crate::ctl::{ControlServer, StatsBoard};
use crate::preflight;
use ports::dpdk::{DpdkQueue, MbufFrame};

/// Mbufs per core: its rx and tx rings (1024 each), bursts in flight, steering queues,
/// and the per-lcore cache.
const MBUFS_PER_CORE: u32 = 4096;
const POOL_CACHE: u32 = 256;
/// Frames one core may have queued towards another.
const MESH_DEPTH: usize = 1024;
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
    if args.app_state_bytes > 0 && args.app != Some(AppName::Echo) {
        return usage_error("--app-state-bytes is for --app echo");
    }
    let factory = match AppFactory::new(args.app, args.port, args.root.as_deref())
        .map(|f| f.with_state_bytes(args.app_state_bytes as usize))
    {
        Ok(f) => f,
        Err(e) => return usage_error(e),
    };
    let fault: Option<FaultConfig> = match args.fault.as_deref().map(str::parse::<FaultConfig>) {
        None => None,
        Some(Ok(f)) if f.is_none() => None,
        Some(Ok(f)) => Some(f),
        Some(Err(e)) => return usage_error(format_args!("bad --fault: {e}")),
    };
    let cores = usize::from(args.cores);
    if cores > 1 && args.app == Some(AppName::Iperf3) {
        // A test's control and data connections must meet on one core (see apps::iperf3).
        return usage_error("--app iperf3 runs on one core: drop --cores");
    }
    let channel = match channel_config(args) {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };
    let shm = match shm_links(args, channel.as_ref()) {
        Ok(l) => l,
        Err(e) => return usage_error(e),
    };
    let eal_args = eal_args(args);
    if let Err(e) = preflight::check_all(&eal_args) {
        return usage_error(e);
    }

    // The control thread starts before EAL, so it does not inherit the main lcore's pinning.
    let board = StatsBoard::new(&args.name, cores);
    let (senders, inboxes): (Vec<ControlSender>, Vec<ControlInbox>) =
        (0..cores).map(|_| control_queue()).unzip();
    let peer_names = args.peers.iter().map(|(n, _)| n.clone()).collect();
    let control = match ControlServer::start(&args.ctl_dir, Arc::clone(&board), senders, peer_names)
    {
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
        Err(e) => {
            return usage_error(format_args!(
                "DPDK EAL init failed: {e} (see the EAL messages above)"
            ))
        }
    };
    let code = run(
        args,
        &eal,
        &stop,
        &board,
        &factory,
        Options {
            fault,
            channel,
            shm,
            inboxes,
        },
    );
    drop(control);
    drop(eal);
    code
}

/// The state channel's configuration from `--channel`, `--peer` and
/// `--cluster-key-file`, checked: the key file must be private to its owner and hold at
/// least 32 bytes; the channel's address must be the engine's own; peers need distinct
/// names other than ours.
fn channel_config(args: &ServeArgs) -> Result<Option<ChannelConfig>, String> {
    let Some(listen) = args.channel else {
        return Ok(None);
    };
    if *listen.ip() != args.ip.address() {
        return Err(format!(
            "--channel {listen}: the channel listens on the engine's own address ({})",
            args.ip.address()
        ));
    }
    let Some(path) = args.cluster_key_file.as_deref() else {
        return Err("--channel needs --cluster-key-file".into());
    };
    let key = read_cluster_key(path)?;
    let mut peers: Vec<PeerAddr> = Vec::new();
    for (name, addr) in &args.peers {
        if *name == args.name {
            return Err(format!("--peer {name}: that is this engine's own name"));
        }
        if peers.iter().any(|p| p.name == *name) {
            return Err(format!("--peer {name}: given twice"));
        }
        peers.push(PeerAddr {
            name: name.clone(),
            addr: *addr,
        });
    }
    if peers.is_empty() {
        return Err("--channel needs at least one --peer NAME=ADDR:PORT".into());
    }
    Ok(Some(ChannelConfig {
        name: args.name.clone(),
        port: listen.port(),
        peers,
        key,
    }))
}

/// The shared-memory links of `--peer-shm`, opened (and created if need be): each
/// names a peer of `--peer`, once.
fn shm_links(
    args: &ServeArgs,
    channel: Option<&ChannelConfig>,
) -> Result<Vec<(u16, String, ShmLink)>, String> {
    let Some(channel) = channel else {
        return Ok(Vec::new());
    };
    let mut links: Vec<(u16, String, ShmLink)> = Vec::new();
    for (name, path) in &args.peer_shm {
        let Some(peer) = channel.peers.iter().position(|p| p.name == *name) else {
            return Err(format!(
                "--peer-shm {name}: no --peer of that name (name it with --peer NAME=ADDR:PORT too)"
            ));
        };
        if links.iter().any(|(p, _, _)| usize::from(*p) == peer) {
            return Err(format!("--peer-shm {name}: given twice"));
        }
        if usize::from(args.cores) > ports::shm::MAX_CORES {
            return Err(format!(
                "--peer-shm: a shared-memory link serves engines of up to {} cores",
                ports::shm::MAX_CORES
            ));
        }
        let link = ShmLink::open(path).map_err(|e| format!("--peer-shm {name}: {e}"))?;
        links.push((peer as u16, name.clone(), link));
    }
    Ok(links)
}

/// Reads the cluster key: the file's bytes (a final newline dropped, so that a key
/// written by an editor or `openssl rand -hex 32 > FILE` reads as typed).
fn read_cluster_key(path: &std::path::Path) -> Result<ClusterKey, String> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("--cluster-key-file {shown}: {e}"))?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "--cluster-key-file {shown}: readable by others (mode {:o}); run chmod 600 on it",
            mode & 0o777
        ));
    }
    let mut bytes = std::fs::read(path).map_err(|e| format!("--cluster-key-file {shown}: {e}"))?;
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
    }
    ClusterKey::new(&bytes).map_err(|_| {
        format!(
            "--cluster-key-file {shown}: {} bytes; a cluster key needs at least {MIN_KEY_LEN}",
            bytes.len()
        )
    })
}

/// What `run` takes besides the arguments: fault injection, the state channel, and the
/// cores' control queues.
struct Options {
    fault: Option<FaultConfig>,
    channel: Option<ChannelConfig>,
    /// Peers joined by shared memory: their number, name and link file.
    shm: Vec<(u16, String, ShmLink)>,
    inboxes: Vec<ControlInbox>,
}

/// What every core needs to build its engine.
#[derive(Clone)]
struct CoreSpec {
    port: Arc<Port>,
    pool: Mempool,
    interrupts: bool,
    idle: IdleStrategy,
    mac: EthernetAddress,
    cidr: Ipv4Cidr,
    mtu: usize,
    max_connections: usize,
    factory: AppFactory,
    fault: Option<FaultConfig>,
    steer: FlowSteer,
    cores: u16,
    stop: Arc<AtomicBool>,
    board: Arc<StatsBoard>,
    /// One clock for every core: instants (and migration latencies) compare across cores.
    clock: MonotonicClock,
    /// The ISN and cookie secrets, the same on every core: a connection that moves, or a
    /// SYN that reopens a TIME-WAIT 4-tuple on another core, meets the same ones.
    engine_keys: StackKeys,
    /// The state channel to peer engines, if any.
    channel: Option<ChannelConfig>,
    /// Peers joined by shared memory: their number, name and link file.
    shm: Vec<(u16, String, ShmLink)>,
}

fn run(
    args: &ServeArgs,
    eal: &Eal,
    stop: &Arc<AtomicBool>,
    board: &Arc<StatsBoard>,
    factory: &AppFactory,
    options: Options,
) -> i32 {
    let Options {
        fault,
        channel,
        shm,
        inboxes,
    } = options;
    let cores = args.cores;
    let lcores: Vec<u32> = eal.lcores().into_iter().take(usize::from(cores)).collect();
    if lcores.len() < usize::from(cores) {
        return usage_error(format_args!(
            "--cores {cores} needs {cores} EAL lcores, but EAL has {:?}: give them with -l (e.g. -l 0-{})",
            eal.lcores(),
            cores - 1
        ));
    }
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

    let mbufs = (MBUFS_PER_CORE * u32::from(cores)).next_power_of_two() - 1;
    let pool = match Mempool::new(
        &format!("mg_pool_{port_id}"),
        mbufs,
        POOL_CACHE,
        Mempool::DEFAULT_DATA_ROOM,
        eal.socket_id(),
    ) {
        Ok(p) => p,
        Err(e) => return usage_error(format_args!("cannot create the mbuf pool: {e}")),
    };

    let mut idle: IdleStrategy = args.idle.into();
    let want_intr = idle == IdleStrategy::Interrupt;
    let mut conf = PortConfig {
        rx_queues: cores,
        tx_queues: cores,
        rx_interrupts: want_intr,
        ..PortConfig::default()
    };
    let mut port = match Port::configure(port_id, &conf, &pool) {
        Ok(p) => p,
        Err(e) if want_intr => {
            eprintln!("migratory: port {port_id} has no receive interrupts ({e}); idling with sleep back-off");
            idle = IdleStrategy::Sleep;
            conf.rx_interrupts = false;
            match Port::configure(port_id, &conf, &pool) {
                Ok(p) => p,
                Err(e) => {
                    return usage_error(format_args!(
                        "cannot configure port {port_id} with {cores} queue pair(s): {e}"
                    ))
                }
            }
        }
        Err(e) => {
            return usage_error(format_args!(
                "cannot configure port {port_id} with {cores} queue pair(s): {e}"
            ))
        }
    };
    if let Err(e) = port.start() {
        return usage_error(format_args!("cannot start port {port_id}: {e}"));
    }
    let (mac, mtu) = match (port.mac(), port.mtu()) {
        (Ok(m), Ok(t)) => (EthernetAddress(m), usize::from(t)),
        (Err(e), _) | (_, Err(e)) => return usage_error(format_args!("port {port_id}: {e}")),
    };
    let name = port.name().unwrap_or_else(|_| format!("port{port_id}"));
    let driver = port.info().map(|i| i.driver).unwrap_or_default();
    println!(
        "migratory: engine {} serving on port {port_id} ({name}, {driver}) mac {mac} ip {} mtu {mtu} lcores {lcores:?} idle {}{}{}",
        args.name,
        args.ip,
        idle.as_str(),
        match args.app {
            Some(a) => format!(" app {a:?} port {}", factory.port()).to_lowercase(),
            None => String::new(),
        },
        fault.as_ref().map(|f| format!(" fault {f}")).unwrap_or_default(),
    );
    if let Some(c) = &spec_channel_line(args) {
        println!("{c}");
    }

    let steer = match FlowSteer::new(cores, FlowHashKey::from_words(random_u64(), random_u64())) {
        Ok(s) => s,
        Err(e) => return usage_error(e),
    };
    let endpoints = match Mesh::<CoreMessage<MbufFrame>>::new(cores, MESH_DEPTH) {
        Ok(e) => e,
        Err(e) => return usage_error(e),
    };
    let spec = CoreSpec {
        port: Arc::new(port),
        pool,
        interrupts: conf.rx_interrupts,
        idle,
        mac,
        cidr: args.ip,
        mtu,
        max_connections: args.max_connections as usize,
        factory: factory.clone(),
        fault,
        steer,
        cores,
        stop: Arc::clone(stop),
        board: Arc::clone(board),
        clock: MonotonicClock::new(),
        engine_keys: StackKeys::from_seed(random_u64()),
        channel,
        shm,
    };

    // Workers first, then the main lcore runs core 0 itself.
    let mut endpoints = endpoints.into_iter().zip(inboxes);
    let main_endpoint = endpoints.next();
    let mut workers = Vec::new();
    let mut failed = false;
    for (index, (endpoint, inbox)) in endpoints.enumerate() {
        let index = index + 1;
        let spec = spec.clone();
        let lcore = lcores[index];
        match eal.launch(lcore, move || {
            run_core(&spec, index, lcore, endpoint, inbox)
        }) {
            Ok(h) => workers.push(h),
            Err(e) => {
                eprintln!("migratory: cannot start core {index} on lcore {lcore}: {e}");
                stop.store(true, Ordering::Release);
                failed = true;
                break;
            }
        }
    }
    let mut code = match main_endpoint {
        Some((endpoint, inbox)) if !failed => run_core(&spec, 0, lcores[0], endpoint, inbox),
        _ => EXIT_FAILURE,
    };
    stop.store(true, Ordering::Release);
    for w in workers {
        let c = w.join();
        if c != 0 {
            code = c;
        }
    }

    let CoreSpec { port, pool, .. } = spec;
    let port_stats = port.stats().ok();
    // Closing the port frees the mbufs its rx rings hold; only then is in_use a leak count.
    match Arc::try_unwrap(port) {
        Ok(port) => drop(port),
        Err(_) => eprintln!("migratory: port still referenced at exit"),
    }
    let leaked = pool.in_use();
    println!("migratory: stopped; counters:");
    let totals = board.totals();
    for (name, value) in totals
        .iter()
        .filter(|&&(n, v)| v != 0 && n != "mbufs_in_use")
    {
        println!("  {name}: {value}");
    }
    if let Some(p) = port_stats {
        println!(
            "  port: ipackets {} opackets {} imissed {} ierrors {} oerrors {} rx_nombuf {}",
            p.ipackets, p.opackets, p.imissed, p.ierrors, p.oerrors, p.rx_nombuf
        );
    }
    println!("  mbufs_in_use_at_exit: {leaked}");
    if leaked != 0 {
        eprintln!("migratory: {leaked} mbufs were not returned to the pool");
        return EXIT_FAILURE;
    }
    code
}

/// One core: builds its queue, stack, application and steering, and polls until stop.
/// Returns its exit code.
fn run_core(
    spec: &CoreSpec,
    index: usize,
    lcore: u32,
    endpoint: MeshEndpoint<CoreMessage<MbufFrame>>,
    inbox: ControlInbox,
) -> i32 {
    let queue = match DpdkQueue::new(&spec.port, index as u16, spec.pool, spec.interrupts) {
        Ok(q) => q,
        Err(e) => {
            eprintln!("migratory: core {index}: cannot set up queue {index}: {e}");
            spec.stop.store(true, Ordering::Release);
            return EXIT_FAILURE;
        }
    };
    let clock = spec.clock;
    let iface = Interface::new(IfaceConfig {
        mac: spec.mac,
        cidr: spec.cidr,
        caps: ChecksumCaps::default(),
        arp_cache_size: 1024,
        arp_entry_ttl: Duration::from_secs(60),
    });
    let mut config = StackConfig::default();
    config.tcp.mtu = u16::try_from(spec.mtu).unwrap_or(1500);
    config.max_connections = spec.max_connections;
    // The table's key is the core's own; the ISN and cookie secrets are the engine's.
    let keys = StackKeys {
        table: StackKeys::from_seed(random_u64()).table,
        ..spec.engine_keys
    };
    let mut stack = Stack::new(iface, config, keys);
    if spec.cores > 1 {
        stack.set_steering(spec.steer, index as u16);
    }
    let steer = MeshSteer::new(endpoint);
    let app = spec.factory.make();
    fn engine<P: engine::port::Port>(
        port: P,
        parts: (
            Stack,
            AnyApp,
            MeshSteer<P::Frame>,
            ControlInbox,
            MonotonicClock,
        ),
    ) -> Engine<P, AnyApp, MeshSteer<P::Frame>>
    where
        P::Frame: Send,
    {
        let (stack, app, steer, inbox, clock) = parts;
        let mut e = Engine::with_app(port, stack, app, steer);
        e.set_control(inbox);
        e.set_stamp_clock(clock);
        e
    }
    match &spec.fault {
        Some(f) => match FaultyPort::new(queue, clock, f.clone()) {
            Ok(port) => {
                let parts = (stack, app, steer, inbox, clock);
                drive(engine(port, parts), spec, index, lcore, &clock)
            }
            Err(e) => {
                eprintln!("migratory: core {index}: bad fault configuration: {e}");
                spec.stop.store(true, Ordering::Release);
                EXIT_FAILURE
            }
        },
        None => {
            let parts = (stack, app, steer, inbox, clock);
            drive(engine(queue, parts), spec, index, lcore, &clock)
        }
    }
}

fn drive<P: engine::port::Port>(
    mut engine: Engine<P, AnyApp, MeshSteer<P::Frame>>,
    spec: &CoreSpec,
    index: usize,
    lcore: u32,
    clock: &MonotonicClock,
) -> i32
where
    P::Frame: Send,
{
    if let Some(channel) = &spec.channel {
        let port = channel.port;
        if let Err(e) = engine.set_channel(channel.clone(), random_u64()) {
            eprintln!("migratory: core {index}: cannot listen on the channel port {port}: {e}");
            spec.stop.store(true, Ordering::Release);
            return EXIT_USAGE;
        }
        for (peer, name, link) in &spec.shm {
            let lanes = link.lanes(
                &channel.name,
                name,
                index,
                usize::from(spec.cores),
                random_u64(),
            );
            match lanes {
                Ok(lanes) => {
                    for lane in lanes {
                        engine.add_lane(*peer, Box::new(lane));
                    }
                }
                Err(e) => {
                    eprintln!("migratory: core {index}: --peer-shm {name}: {e}");
                    spec.stop.store(true, Ordering::Release);
                    return EXIT_USAGE;
                }
            }
        }
    }
    let port_no = spec.factory.port();
    if let Err(e) = engine.with_ctx(clock.now(), |app, cx| app.start(cx, port_no)) {
        eprintln!("migratory: core {index}: cannot listen on port {port_no}: {e}");
        spec.stop.store(true, Ordering::Release);
        return EXIT_USAGE;
    }
    let board = &spec.board;
    let pool = spec.pool;
    let publish = |e: &Engine<P, AnyApp, MeshSteer<P::Frame>>| {
        board.publish(index, |snap| {
            snap.lcore = lcore;
            snap.counters.clone_from(e.counters());
            snap.extra = stack_figures(e);
            snap.extra.push(("mbufs_in_use", u64::from(pool.in_use())));
            // The poll loop's time, and the part of it in polls that did work.
            snap.extra.push(("poll_busy_ns", e.busy().busy_ns()));
            snap.extra.push(("poll_loop_ns", e.busy().total_ns()));
            snap.latency.clone_from(e.migration_latency());
            snap.extra.extend(e.channel_figures());
            snap.peers = e.peer_status(clock.now());
        })
    };
    engine.run_with(clock, &spec.stop, spec.idle, STATS_EVERY, publish);
    // A clean stop: peers learn at once that their connections are gone.
    engine.shutdown(clock.now());
    publish(&engine);
    0
}

/// The line that says whom the channel links to.
fn spec_channel_line(args: &ServeArgs) -> Option<String> {
    let listen = args.channel?;
    let peers: Vec<String> = args
        .peers
        .iter()
        .map(|(n, a)| match args.peer_shm.iter().find(|(m, _)| m == n) {
            Some((_, path)) => format!("{n}={a} (shared memory {})", path.display()),
            None => format!("{n}={a}"),
        })
        .collect();
    Some(format!(
        "migratory: engine {} state channel on {listen}, peers {}",
        args.name,
        peers.join(" ")
    ))
}

/// TCP counters, connections by state and steering figures, as named values.
fn stack_figures<P: engine::port::Port, A: App, S: engine::steer::Steer<P::Frame>>(
    e: &Engine<P, A, S>,
) -> Vec<(&'static str, u64)> {
    let stack = e.stack();
    let mut v: Vec<(&'static str, u64)> = stack.tcp_counters().iter().collect();
    v.extend(stack.listener_figures());
    v.push(("connections", stack.connection_count() as u64));
    v.push(("connections_half_open", stack.half_open_count() as u64));
    let memory = stack.memory();
    v.push(("memory_state_bytes", memory.state_bytes as u64));
    v.push(("memory_buffer_bytes", memory.buffer_bytes as u64));
    v.push((
        "memory_spare_buffer_bytes",
        memory.spare_buffer_bytes as u64,
    ));
    for (state, n) in stack.connections_by_state() {
        v.push((state_figure(state), n as u64));
    }
    v.push(("steered_out", e.steered_out));
    v.push(("steered_in", e.steered_in));
    v.extend(stack.migration_counters().iter());
    v.push(("migrations_in_flight", e.migrations_in_flight() as u64));
    v.push(("migrations_lost", e.migrations_lost()));
    // Addresses of drained peers this core answers ARP for.
    let announced = stack.iface().adopted_addresses().iter().filter(|a| a.1);
    v.push(("addresses_taken_over", announced.count() as u64));
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

/// 64 bits from the operating system's random source (hash keys and ISN secrets).
fn random_u64() -> u64 {
    use std::io::Read;
    let mut b = [0u8; 8];
    match std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)) {
        Ok(()) => u64::from_le_bytes(b),
        Err(e) => {
            eprintln!("migratory: /dev/urandom unreadable ({e}); hash keys seeded from the clock");
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        }
    }
}
