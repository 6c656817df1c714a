//! Running one stateful TCP workload of `migratory-gen` (`rpc`, `cps`, `bulk`, `conns`): the
//! engine's poll loop (`engine::poll::Engine`) over a DPDK queue ([`DpdkQueue`]) with
//! [`GenApp`] as its application, driven through its phases: ARP for the server, open the
//! connections, warm up, measure, stop. The report carries the rate, the latency
//! percentiles, the errors, and the generator stack's retransmissions and packet rates
//! over the measured window.
//!
//! This module reads the clock and prints the progress line; the protocol work is the
//! engine's and the workload's ([`crate::tcpgen`]).
use std::io::Write;
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, Ordering};

use engine::iface::{IfaceConfig, Interface};
use engine::poll::{BusyMeter, Engine, IdleStrategy};
use engine::port::Port;
use engine::stack::{Stack, StackConfig, StackKeys, TcpCounters};
use engine::steer::NoSteer;
use engine::time::{Clock, Duration, Instant, MonotonicClock};
use engine::wire::ipv4::Ipv4Cidr;
use engine::wire::EthernetAddress;
use ports::dpdk::{DpdkQueue, MultiQueue};
use serde::Serialize;

use crate::cli;
use crate::dpdk::OpenPort;
use crate::latency::Percentiles;
use crate::tcpgen::{CloseMode, GenApp, Workload};

/// How often an unanswered ARP request for the server is repeated.
const ARP_EVERY: Duration = Duration::from_millis(100);
/// After the measured window: how long RSTs for our connections are given to leave.
const SHUTDOWN_FLUSH: Duration = Duration::from_millis(20);
/// Empty polls before `--idle sleep` sleeps.
const EMPTY_POLLS_BEFORE_SLEEP: u32 = 64;

/// What a TCP run needs besides the workload.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The generator's address and subnet.
    pub ip: Ipv4Cidr,
    pub server: SocketAddrV4,
    /// Seconds measured, after the warm-up.
    pub duration: f64,
    pub warmup: f64,
    pub idle: IdleStrategy,
    /// TIME-WAIT of the generator's connections (it closes first in `cps`).
    pub time_wait: Duration,
    /// How long the server may take to answer ARP and to accept every connection.
    pub connect_timeout: Duration,
    /// Draw the live progress line.
    pub progress: bool,
    /// Seed of the stack's hash keys and ISNs.
    pub seed: u64,
}

/// The result of a TCP run, in the shape `perf/run` reads (`linux-load`'s, plus the
/// generator stack's figures).
#[derive(Debug, Serialize, Default)]
pub struct TcpReport {
    pub workload: &'static str,
    pub server: String,
    pub device: String,
    pub driver: String,
    pub duration_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub streams: Option<usize>,
    /// `conns`: the connections issuing requests (the rest are open and idle).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<usize>,
    /// `conns`: connections opened per second while they were being opened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_per_s: Option<f64>,
    /// `conns`: the local addresses the connections came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addresses: Option<usize>,
    pub size: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub close: Option<CloseMode>,
    /// Requests (rpc), connections (cps) or bytes (bulk) completed in the window.
    pub completed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gbps: Option<f64>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Percentiles>,
    /// Connections refused at once by our stack plus connections cut short.
    pub errors: u64,
    pub connect_errors: u64,
    pub closed_early: u64,
    /// Active opens in the window.
    pub connects: u64,
    /// The generator stack's TCP figures over the window.
    pub retransmits: u64,
    pub rto_expiries: u64,
    pub fast_recoveries: u64,
    /// Frames through the generator's port per second (its tx is the server's rx).
    pub tx_pps: f64,
    pub rx_pps: f64,
    /// Frames the generator's engine dropped in the window (all reasons).
    pub dropped: u64,
    /// Seconds from the first connect to the last connection up (rpc, bulk).
    pub ramp_s: f64,
    /// CPU time the generator got over the window, per second of it: below 1.0 the
    /// spinning generator shared its core with other processes.
    pub cpu_share: Option<f64>,
    /// The share of the generator's poll loop, over the window, spent in polls that
    /// received frames (the rest found nothing): near 1.0 the generator, not the server,
    /// may be what limits the figures.
    pub busy_share: Option<f64>,
}

/// Snapshot of the counters that are reported as differences over the window.
#[derive(Debug, Clone, Copy)]
struct Mark {
    at: std::time::Instant,
    tcp: TcpCounters,
    rx_packets: u64,
    tx_packets: u64,
    dropped: u64,
    cpu_s: Option<f64>,
    busy: (u64, u64),
}

fn mark<P: Port>(e: &Engine<P, GenApp, NoSteer>, busy: &BusyMeter) -> Mark {
    let c = e.counters();
    Mark {
        at: std::time::Instant::now(),
        tcp: e.stack().tcp_counters(),
        rx_packets: c.rx_packets,
        tx_packets: c.tx_packets,
        dropped: c.total_dropped(),
        cpu_s: cli::process_cpu_seconds(),
        busy: busy.reading(),
    }
}

/// Runs `workload` on `open` (a started port) until the window ends or `stop` is set.
/// `Err` is one line for the user.
pub fn run(
    open: &OpenPort,
    workload: Workload,
    cfg: &RunConfig,
    stop: &AtomicBool,
) -> Result<TcpReport, String> {
    if !cfg.ip.contains_addr(cfg.server.ip()) {
        return Err(format!(
            "the server {} is not on the generator's network {}: give --ip an address on the server's subnet",
            cfg.server.ip(),
            cfg.ip
        ));
    }
    if cfg.ip.address() == *cfg.server.ip() {
        return Err(format!("--ip {} is the server's own address", cfg.ip));
    }
    let queues = (0..open.queues)
        .map(|q| {
            DpdkQueue::new(&open.port, q, open.pool, false)
                .map_err(|e| format!("cannot use queue {q} of port {}: {e}", open.name))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let queue = MultiQueue::new(queues).ok_or("the port has no queue")?;
    let mtu = queue.mtu();
    let mut iface = Interface::new(IfaceConfig::new(EthernetAddress(open.mac), cfg.ip));
    let sources = source_addresses(cfg, workload)?;
    for &ip in &sources {
        // Ours in full: ARP for it is answered, so the server can reach it.
        iface.adopt_address(ip, true);
    }
    let mut config = StackConfig::default();
    config.max_connections = config.max_connections.max(workload.connections() + 1024);
    config.tcp.mtu = u16::try_from(mtu).unwrap_or(1500);
    // Requests leave at once (TCP_NODELAY, as linux-load sets).
    config.tcp.nagle = false;
    config.tcp.time_wait = cfg.time_wait;
    config.ephemeral_ports = 1024..=65535;
    let stack = Stack::new(iface, config, StackKeys::from_seed(cfg.seed));
    let app = GenApp::new(workload, cfg.server).with_sources(sources);
    let mut engine = Engine::with_app(queue, stack, app, NoSteer);
    let clock = MonotonicClock::new();
    let server_ip = *cfg.server.ip();

    // 1. The server's MAC address: proves it is up before anything is timed.
    engine.app_mut().stopping = true; // no connection before the server answers
    let deadline = clock.now() + cfg.connect_timeout;
    let mut next_arp = Instant::ZERO;
    loop {
        let now = clock.now();
        if engine.iface().arp_lookup(server_ip, now).is_some() {
            break;
        }
        if now >= deadline || stop.load(Ordering::Relaxed) {
            return Err(format!(
                "no ARP reply from {server_ip} within {:.0} s: is the server running on the other end of {} with that address?",
                cfg.connect_timeout.as_secs_f64(),
                open.name
            ));
        }
        if now >= next_arp {
            engine.send_arp_request(server_ip);
            next_arp = now + ARP_EVERY;
        }
        engine.poll_once(now);
    }

    // 2. Connections up (rpc and bulk wait for all of them, as linux-load does).
    engine.app_mut().stopping = false;
    let want = match workload {
        Workload::Cps { .. } => 0,
        w => w.connections(),
    };
    let ramp_start = std::time::Instant::now();
    let deadline = clock.now() + cfg.connect_timeout;
    let mut idle = Idler::new(cfg.idle);
    let mut ramp_tick = ramp_start;
    while engine.app().established < want {
        let now = clock.now();
        if cfg.progress && ramp_tick.elapsed() >= std::time::Duration::from_secs(1) {
            ramp_tick = std::time::Instant::now();
            print!(
                "\rmigratory-gen: {} of {want} connections up      ",
                engine.app().established
            );
            let _ = std::io::stdout().flush();
        }
        if now >= deadline || stop.load(Ordering::Relaxed) {
            let a = engine.app();
            return Err(format!(
                "only {} of {want} connections to {} came up within {:.0} s ({} errors)",
                a.established,
                cfg.server,
                cfg.connect_timeout.as_secs_f64(),
                a.counters.errors()
            ));
        }
        idle.after(engine.poll_once(now));
    }
    let ramp_s = ramp_start.elapsed().as_secs_f64();

    // 3. Warm-up, then the measured window.
    let mut progress = Progress::new(cfg.progress, workload);
    let start = std::time::Instant::now();
    let warm_end = start + std::time::Duration::from_secs_f64(cfg.warmup);
    let mut first: Option<Mark> = None;
    let mut end_at = warm_end + std::time::Duration::from_secs_f64(cfg.duration);
    let mut iter = 0u32;
    let mut busy = BusyMeter::new();
    loop {
        let now = clock.now();
        let received = engine.poll_once(now);
        busy.record(now, received > 0);
        idle.after(received);
        iter = iter.wrapping_add(1);
        if iter & 63 != 0 {
            continue;
        }
        let wall = std::time::Instant::now();
        if first.is_none() && wall >= warm_end {
            engine.app_mut().reset_measurement();
            let m = mark(&engine, &busy);
            end_at = m.at + std::time::Duration::from_secs_f64(cfg.duration);
            first = Some(m);
            progress.restart(wall);
            // The window starts: a runner samples the server's counters on this line.
            eprintln!("migratory-gen: measuring");
        }
        if wall >= end_at || stop.load(Ordering::Relaxed) {
            break;
        }
        progress.update(wall, start, engine.app(), first.is_some());
    }
    let last = mark(&engine, &busy);
    engine.app_mut().stopping = true;
    progress.finish();
    let first = first.unwrap_or(last);

    // 4. Stop: reset our connections so that the server frees them, and let the RSTs out.
    engine.shutdown(clock.now());
    let flush_end = clock.now() + SHUTDOWN_FLUSH;
    while clock.now() < flush_end {
        engine.poll_once(clock.now());
    }
    Ok(report(
        open,
        workload,
        cfg,
        engine.app(),
        &first,
        &last,
        ramp_s,
    ))
}

/// The local addresses `workload` needs beyond one address's ports: `--ip` and the
/// addresses after it, all on its subnet and none the server's (empty when `--ip` alone
/// will do).
fn source_addresses(
    cfg: &RunConfig,
    workload: Workload,
) -> Result<Vec<std::net::Ipv4Addr>, String> {
    let n = GenApp::addresses_needed(workload.connections());
    if n <= 1 {
        return Ok(Vec::new());
    }
    let first = u32::from(cfg.ip.address());
    let out: Vec<std::net::Ipv4Addr> = (0..n as u32)
        .map(|i| std::net::Ipv4Addr::from(first.wrapping_add(i)))
        .collect();
    let broadcast = cfg.ip.broadcast();
    if let Some(bad) = out
        .iter()
        .find(|ip| !cfg.ip.contains_addr(ip) || **ip == *cfg.server.ip() || Some(**ip) == broadcast)
    {
        return Err(format!(
            "{} connections need {n} local addresses ({} each): --ip {} and the {} after it, on its subnet and not the server's; {bad} is not usable",
            workload.connections(),
            crate::tcpgen::CONNECTIONS_PER_ADDRESS,
            cfg.ip,
            n - 1
        ));
    }
    Ok(out)
}

fn report(
    open: &OpenPort,
    workload: Workload,
    cfg: &RunConfig,
    app: &GenApp,
    first: &Mark,
    last: &Mark,
    ramp_s: f64,
) -> TcpReport {
    let secs = last.at.duration_since(first.at).as_secs_f64().max(1e-9);
    let c = app.counters;
    let per_s = |n: u64| n as f64 / secs;
    let mut r = TcpReport {
        workload: workload.name(),
        server: cfg.server.to_string(),
        device: open.name.clone(),
        driver: open.driver.clone(),
        duration_s: secs,
        completed: c.completed,
        errors: c.errors(),
        connect_errors: c.connect_errors,
        closed_early: c.closed_early,
        connects: c.connects,
        retransmits: last.tcp.retransmits.saturating_sub(first.tcp.retransmits),
        rto_expiries: last.tcp.rto_expiries.saturating_sub(first.tcp.rto_expiries),
        fast_recoveries: last
            .tcp
            .fast_recoveries
            .saturating_sub(first.tcp.fast_recoveries),
        tx_pps: per_s(last.tx_packets.saturating_sub(first.tx_packets)),
        rx_pps: per_s(last.rx_packets.saturating_sub(first.rx_packets)),
        dropped: last.dropped.saturating_sub(first.dropped),
        ramp_s,
        cpu_share: last.cpu_s.zip(first.cpu_s).map(|(b, a)| (b - a) / secs),
        busy_share: BusyMeter::share_between(first.busy, last.busy),
        ..TcpReport::default()
    };
    match workload {
        Workload::Rpc {
            connections,
            size,
            depth,
        } => {
            r.connections = Some(connections);
            r.size = size;
            r.pipeline = Some(depth);
            r.rps = Some(per_s(c.completed));
            r.latency = Some(app.latency.percentiles());
        }
        Workload::Cps {
            concurrency,
            size,
            close,
        } => {
            r.concurrency = Some(concurrency);
            r.size = size;
            r.close = Some(close);
            r.cps = Some(per_s(c.completed));
            r.latency = Some(app.latency.percentiles());
        }
        Workload::Conns {
            total,
            active,
            size,
            depth,
        } => {
            r.connections = Some(total);
            r.active = Some(active);
            r.size = size;
            r.pipeline = Some(depth);
            r.rps = Some(per_s(c.completed));
            r.latency = Some(app.latency.percentiles());
            r.open_per_s = Some(total as f64 / ramp_s.max(1e-9));
            r.addresses = Some(GenApp::addresses_needed(total));
        }
        Workload::Bulk { streams } => {
            r.streams = Some(streams);
            r.size = crate::tcpgen::BULK_CHUNK;
            // Bytes the send buffers took: at most one buffer per stream more than what
            // was acknowledged, against gigabytes over a window.
            r.completed = c.bytes_sent;
            r.gbps = Some(c.bytes_sent as f64 * 8.0 / secs / 1e9);
        }
    }
    r
}

/// `--idle sleep`: short sleeps after a run of empty polls; `spin` never sleeps.
struct Idler {
    sleep: bool,
    empty: u32,
}

impl Idler {
    fn new(idle: IdleStrategy) -> Idler {
        Idler {
            sleep: idle != IdleStrategy::Spin,
            empty: 0,
        }
    }

    #[inline]
    fn after(&mut self, received: usize) {
        if received > 0 {
            self.empty = 0;
            return;
        }
        self.empty = self.empty.saturating_add(1);
        if self.sleep && self.empty >= EMPTY_POLLS_BEFORE_SLEEP {
            std::thread::sleep(std::time::Duration::from_micros(20));
        } else {
            core::hint::spin_loop();
        }
    }
}

/// The live line on a terminal, once a second.
struct Progress {
    on: bool,
    unit: &'static str,
    tick: std::time::Instant,
    last: u64,
}

impl Progress {
    fn new(on: bool, workload: Workload) -> Progress {
        let unit = match workload {
            Workload::Rpc { .. } | Workload::Conns { .. } => "requests/s",
            Workload::Cps { .. } => "connections/s",
            Workload::Bulk { .. } => "bit/s",
        };
        Progress {
            on,
            unit,
            tick: std::time::Instant::now(),
            last: 0,
        }
    }

    fn restart(&mut self, now: std::time::Instant) {
        self.tick = now;
        self.last = 0;
    }

    fn update(
        &mut self,
        now: std::time::Instant,
        start: std::time::Instant,
        app: &GenApp,
        measuring: bool,
    ) {
        if !self.on || now.duration_since(self.tick) < std::time::Duration::from_secs(1) {
            return;
        }
        let (count, scale) = match app.workload() {
            Workload::Bulk { .. } => (app.counters.bytes_sent, 8.0),
            _ => (app.counters.completed, 1.0),
        };
        let dt = now.duration_since(self.tick).as_secs_f64();
        let rate = count.saturating_sub(self.last) as f64 * scale / dt;
        let lat = if app.latency.is_empty() {
            String::new()
        } else {
            let p = app.latency.percentiles();
            format!("  p50 {:.1} us  p99 {:.1} us", p.p50_us, p.p99_us)
        };
        print!(
            "\rmigratory-gen: {:>5.1} s  {}{}{lat}  errors {}{}      ",
            now.duration_since(start).as_secs_f64(),
            cli::si(rate),
            self.unit,
            app.counters.errors(),
            if measuring { "" } else { " (warm-up)" }
        );
        let _ = std::io::stdout().flush();
        self.tick = now;
        self.last = count;
    }

    fn finish(&self) {
        if self.on {
            println!();
        }
    }
}
