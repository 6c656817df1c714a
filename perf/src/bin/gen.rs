//! `migratory-gen`: migratory's load generator on DPDK.
//!
//! One subcommand per workload, each a DPDK client on the one lcore EAL pins it to:
//!
//! - `l2` blasts raw Ethernet probe frames (no IP, no UDP) through a port and counts the
//!   ones that come back, with their round-trip time from a TSC stamp in each frame:
//!   against `migratory-reflector` this is the wire ceiling.
//! - `rpc`, `cps`, `bulk`, `conns` run the engine's own TCP (`engine::poll::Engine` with the
//!   `migratory_perf::tcpgen` application) against a TCP server (the engine's `migratory
//!   serve --app echo|discard`, `smoltcp-echo`, anything on the link).
//! - `syn-flood` sends stateless SYNs and counts the SYN-ACKs (`migratory_perf::synflood`).
//!
//! Every subcommand prints one line (or one JSON object with `--json`) and a live progress
//! line on a terminal. Exit codes: 0 done, 1 failed while running, 2 bad arguments or
//! set-up.
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use dpdk_sys::{Eal, Mbuf, MAX_BURST};
use engine::poll::IdleStrategy;
use engine::wire::ipv4::Ipv4Cidr;
use migratory_perf::latency::{Latency, Percentiles};
use migratory_perf::tcpgen::{CloseMode, Workload as TcpWorkload};
use migratory_perf::{cli, dpdk, frame, pacing, synflood, tcprun};
use serde::Serialize;

const BIN: &str = "migratory-gen";

/// Stateful load generator on DPDK.
#[derive(Debug, Parser)]
#[command(name = BIN, version)]
struct Args {
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Debug, Subcommand)]
enum Workload {
    /// Raw Ethernet frames to a reflector; reports the packets per second that come back.
    L2(L2Args),
    /// C connections, each with DEPTH requests of S bytes in flight to an echo server;
    /// reports requests per second and per-request latency.
    Rpc(RpcArgs),
    /// Connect, one S-byte request and response, close (FIN or RST), repeated with
    /// CONCURRENCY in flight; reports connections per second and connect-to-response time.
    Cps(CpsArgs),
    /// Streams sending as fast as the window allows to a discard server; reports Gbit/s.
    Bulk(BulkArgs),
    /// TOTAL connections opened and held to an echo server (from --ip and the addresses
    /// after it, 60,000 each, when one address has too few ports); ACTIVE of them run rpc,
    /// the rest stay idle. Reports the time to open them and requests per second.
    Conns(ConnsArgs),
    /// Stateless SYNs at --rate to the server's port; counts the SYN-ACKs that come back.
    SynFlood(FloodArgs),
}

/// How the TCP workloads' poll loop idles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum IdleArg {
    /// Keep polling: lowest latency, one whole core (benchmarks).
    Spin,
    /// Sleep briefly after a run of empty polls (shared cores).
    Sleep,
}

/// What every subcommand that talks IP takes.
#[derive(Debug, clap::Args)]
struct Endpoint {
    /// The generator's IPv4 address and prefix, on the server's subnet, e.g. 10.77.0.1/24.
    #[arg(long, value_name = "ADDR/PREFIX", value_parser = parse_cidr)]
    ip: Ipv4Cidr,
    /// The server, e.g. 10.77.0.2:7.
    #[arg(long, value_name = "IP:PORT")]
    server: SocketAddrV4,
    /// The DPDK port to use (e.g. net_memif0); default: the first port.
    #[arg(long)]
    device: Option<String>,
    /// Seconds to wait for the port to start (a memif client waits for its server), the
    /// server's ARP reply and the connections to come up.
    #[arg(long, default_value_t = 30)]
    connect_timeout: u64,
    /// After the run, wait up to this many seconds for the peer to close the link before
    /// closing ours (prints `drained` on stderr first): a memif server whose client
    /// disconnects while it polls can crash in DPDK, so perf/run stops the server first.
    #[arg(long, default_value_t = 0.0)]
    wait_peer_close: f64,
    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Queue pairs to open on the port, all polled by the one lcore (TCP workloads): as
    /// many as the server uses over net_memif (`migratory serve --cores N` answers each
    /// flow from its owner's queue).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    queues: u16,
    /// EAL arguments, after `--` (e.g. -l 0 --vdev=net_memif0,role=client,...).
    #[arg(last = true)]
    eal: Vec<String>,
}

/// What the TCP workloads share.
#[derive(Debug, clap::Args)]
struct TcpCommon {
    #[command(flatten)]
    endpoint: Endpoint,
    /// Seconds to measure for (after the warm-up).
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds to run before measuring (after every connection is up).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// How the poll loop idles.
    #[arg(long, value_enum, default_value_t = IdleArg::Spin)]
    idle: IdleArg,
    /// TIME-WAIT of the generator's connections in milliseconds (it closes first in cps;
    /// like Linux's tcp_tw_reuse, a load generator does not need 2 MSL).
    #[arg(long, default_value_t = 10)]
    time_wait_ms: u64,
}

#[derive(Debug, clap::Args)]
struct RpcArgs {
    #[command(flatten)]
    common: TcpCommon,
    /// Connections.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Request and response size in bytes.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 1)]
    depth: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CloseArg {
    Fin,
    Rst,
}

#[derive(Debug, clap::Args)]
struct CpsArgs {
    #[command(flatten)]
    common: TcpCommon,
    /// Connections in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Request and response size in bytes.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// How each connection ends once its response is in.
    #[arg(long, value_enum, default_value_t = CloseArg::Fin)]
    close: CloseArg,
}

#[derive(Debug, clap::Args)]
struct ConnsArgs {
    #[command(flatten)]
    common: TcpCommon,
    /// Connections opened and held.
    #[arg(long, default_value_t = 1_000_000)]
    total: usize,
    /// Of those, the connections issuing requests.
    #[arg(long, default_value_t = 10_000)]
    active: usize,
    /// Request and response size in bytes.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Requests in flight per active connection.
    #[arg(long, default_value_t = 1)]
    depth: usize,
}

#[derive(Debug, clap::Args)]
struct BulkArgs {
    #[command(flatten)]
    common: TcpCommon,
    /// Parallel streams.
    #[arg(long, default_value_t = 1)]
    streams: usize,
}

#[derive(Debug, clap::Args)]
struct FloodArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// SYNs per second: `max`, or a figure such as 2M or 500k.
    #[arg(long, default_value = "1M", value_parser = pacing::parse_rate)]
    rate: pacing::Rate,
    /// Seconds to send for.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Draw source addresses from the whole subnet of --ip (not only --ip itself).
    #[arg(long)]
    random_src_ip: bool,
    /// Transmit burst size (1..=64).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=64))]
    burst: u16,
}

fn parse_cidr(s: &str) -> Result<Ipv4Cidr, String> {
    s.parse::<Ipv4Cidr>().map_err(|e| e.to_string())
}

#[derive(Debug, clap::Args)]
struct L2Args {
    /// Packets per second to offer: `max`, or a figure such as 2M or 500k.
    #[arg(long, default_value = "max", value_parser = pacing::parse_rate)]
    rate: pacing::Rate,
    /// Frame size on the wire, FCS included (64..=1518).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Seconds to send for.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Transmit burst size (1..=64).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=64))]
    burst: u16,
    /// Destination MAC of the probes (the reflector's, on a real NIC); default broadcast.
    #[arg(long, default_value = "ff:ff:ff:ff:ff:ff")]
    dst_mac: String,
    /// The DPDK port to use (e.g. net_memif0); default: the first port.
    #[arg(long)]
    device: Option<String>,
    /// Seconds to keep retrying the port's start until the peer is up (memif client).
    #[arg(long, default_value_t = 30)]
    connect_timeout: u64,
    /// After the run, wait up to this many seconds for the peer to close the link before
    /// closing ours (prints `drained` on stderr first). A memif server whose client
    /// disconnects while it polls can crash in DPDK (the rings are unmapped under it), so
    /// perf/run stops the reflector first.
    #[arg(long, default_value_t = 0.0)]
    wait_peer_close: f64,
    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// EAL arguments, after `--` (e.g. -l 0 --vdev=net_memif0,role=client,...).
    #[arg(last = true)]
    eal: Vec<String>,
}

/// The result of an `l2` run.
#[derive(Debug, Serialize)]
struct L2Report {
    workload: &'static str,
    device: String,
    driver: String,
    size: usize,
    offered_rate: Option<f64>,
    duration_s: f64,
    tx_packets: u64,
    rx_packets: u64,
    /// Transmit attempts the device refused (ring full); those frames were offered again.
    tx_refused: u64,
    /// Sent and never returned (lost by the device or the reflector, or still in flight
    /// after the drain).
    lost: u64,
    /// Returned frames that were not our probes.
    foreign: u64,
    tx_pps: f64,
    /// Probes returned per second: the wire ceiling.
    pps: f64,
    gbps: f64,
    #[serde(flatten)]
    rtt: Percentiles,
    tsc_hz: f64,
}

fn main() {
    let args: Args = cli::parse_or_exit(BIN);
    let code = match &args.workload {
        Workload::L2(a) => l2(a),
        Workload::Rpc(a) => {
            let w = TcpWorkload::Rpc {
                connections: a.connections,
                size: a.size,
                depth: a.depth,
            };
            let limits = [
                ("--connections", a.connections, 60_000),
                ("--size", a.size, MAX_MESSAGE),
                ("--depth", a.depth, 1024),
            ];
            tcp(&a.common, w, &limits)
        }
        Workload::Cps(a) => {
            let close = match a.close {
                CloseArg::Fin => CloseMode::Fin,
                CloseArg::Rst => CloseMode::Rst,
            };
            let w = TcpWorkload::Cps {
                concurrency: a.concurrency,
                size: a.size,
                close,
            };
            let limits = [
                ("--concurrency", a.concurrency, 10_000),
                ("--size", a.size, MAX_MESSAGE),
            ];
            tcp(&a.common, w, &limits)
        }
        Workload::Conns(a) => {
            let w = TcpWorkload::Conns {
                total: a.total,
                active: a.active.min(a.total),
                size: a.size,
                depth: a.depth,
            };
            let limits = [
                ("--total", a.total, 16_000_000),
                ("--active", a.active, 1_000_000),
                ("--size", a.size, MAX_MESSAGE),
                ("--depth", a.depth, 1024),
            ];
            tcp(&a.common, w, &limits)
        }
        Workload::Bulk(a) => {
            let w = TcpWorkload::Bulk { streams: a.streams };
            tcp(&a.common, w, &[("--streams", a.streams, 1024)])
        }
        Workload::SynFlood(a) => syn_flood(a),
    };
    std::process::exit(code);
}

/// Largest rpc/cps request accepted (bytes).
const MAX_MESSAGE: usize = 1 << 20;

/// EAL, a started port and the stop flag, or the exit code of a failure (already reported).
struct Session {
    open: dpdk::OpenPort,
    eal: Eal,
    stop: Arc<AtomicBool>,
}

impl Session {
    fn start(ep: &Endpoint) -> Result<Session, i32> {
        if !(ep.wait_peer_close.is_finite() && (0.0..=3600.0).contains(&ep.wait_peer_close)) {
            return Err(cli::usage_error(
                BIN,
                "--wait-peer-close must be in [0, 3600] seconds",
            ));
        }
        if !ep.ip.contains_addr(ep.server.ip()) {
            return Err(cli::usage_error(
                BIN,
                format_args!(
                    "the server {} is not on --ip's network {}",
                    ep.server.ip(),
                    ep.ip
                ),
            ));
        }
        if ep.ip.address() == *ep.server.ip() || ep.server.port() == 0 {
            return Err(cli::usage_error(
                BIN,
                "--server must be another address than --ip, with a port other than 0",
            ));
        }
        let eal_args = dpdk::eal_args(BIN, &ep.eal);
        if let Err(e) = dpdk::preflight(&eal_args) {
            return Err(cli::usage_error(BIN, e));
        }
        let stop = cli::stop_flag()
            .map_err(|e| cli::failure(BIN, format_args!("cannot install a signal handler: {e}")))?;
        let eal = dpdk::init_eal(&eal_args).map_err(|e| cli::usage_error(BIN, e))?;
        let id =
            dpdk::port_id(ep.device.as_deref(), &eal_args).map_err(|e| cli::usage_error(BIN, e))?;
        let open = dpdk::open_port(
            &eal,
            id,
            Duration::from_secs(ep.connect_timeout),
            true,
            &stop,
            ep.queues,
        )
        .map_err(|e| cli::usage_error(BIN, e))?;
        Ok(Session { open, eal, stop })
    }

    /// Waits for the peer to close the link if asked, closes the port, and checks that
    /// every mbuf came back. Returns a failure's exit code.
    fn finish(self, ep: &Endpoint) -> Result<(), i32> {
        if ep.wait_peer_close > 0.0 {
            eprintln!(
                "{BIN}: drained; waiting up to {} s for the peer to close the link",
                ep.wait_peer_close
            );
            let end = Instant::now() + Duration::from_secs_f64(ep.wait_peer_close);
            while Instant::now() < end && !self.stop.load(Ordering::Relaxed) {
                if matches!(self.open.port.link(), Ok(l) if !l.up) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let Session { open, eal, .. } = self;
        let pool = open.pool;
        drop(open);
        let leaked = pool.in_use();
        drop(eal);
        if leaked != 0 {
            return Err(cli::failure(
                BIN,
                format_args!("{leaked} mbufs were not returned to the pool"),
            ));
        }
        Ok(())
    }
}

/// A seed for hash keys, ISNs and source ports, from the OS.
fn random_seed() -> u64 {
    use std::io::Read;
    let mut b = [0u8; 8];
    match std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)) {
        Ok(()) => u64::from_le_bytes(b),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    }
}

fn print_json(v: &impl Serialize) -> Result<(), i32> {
    match serde_json::to_string(v) {
        Ok(s) => {
            println!("{s}");
            use std::io::Write;
            let _ = std::io::stdout().flush();
            Ok(())
        }
        Err(e) => Err(cli::failure(BIN, format_args!("cannot write JSON: {e}"))),
    }
}

fn tcp(common: &TcpCommon, workload: TcpWorkload, limits: &[(&str, usize, usize)]) -> i32 {
    for &(name, v, max) in limits {
        if v == 0 || v > max {
            return cli::usage_error(BIN, format_args!("{name} {v} must be between 1 and {max}"));
        }
    }
    if !(common.duration.is_finite() && common.duration > 0.0 && common.duration <= 86_400.0) {
        return cli::usage_error(BIN, "--duration must be in (0, 86400] seconds");
    }
    if !(common.warmup.is_finite() && (0.0..=3600.0).contains(&common.warmup)) {
        return cli::usage_error(BIN, "--warmup must be in [0, 3600] seconds");
    }
    if common.time_wait_ms > 240_000 {
        return cli::usage_error(BIN, "--time-wait-ms must be at most 240000 (2 MSL)");
    }
    let ep = &common.endpoint;
    let session = match Session::start(ep) {
        Ok(s) => s,
        Err(code) => return code,
    };
    if !ep.json {
        println!(
            "{BIN}: {} on port {} ({}) mac {} ip {} -> {}, lcores {:?}",
            workload.name(),
            session.open.name,
            session.open.driver,
            dpdk::mac_string(&session.open.mac),
            ep.ip,
            ep.server,
            session.eal.lcores()
        );
    }
    let cfg = tcprun::RunConfig {
        ip: ep.ip,
        server: ep.server,
        duration: common.duration,
        warmup: common.warmup,
        idle: match common.idle {
            IdleArg::Spin => IdleStrategy::Spin,
            IdleArg::Sleep => IdleStrategy::Sleep,
        },
        time_wait: Duration::from_millis(common.time_wait_ms),
        connect_timeout: Duration::from_secs(ep.connect_timeout),
        progress: cli::stdout_is_tty() && !ep.json,
        seed: random_seed(),
    };
    let result = tcprun::run(&session.open, workload, &cfg, &session.stop);
    // The figures go out before the port closes: a fault in the teardown (the memif
    // peer's exit races it) must not cost what was measured.
    if let (true, Ok(report)) = (ep.json, &result) {
        if let Err(code) = print_json(report) {
            return code;
        }
    }
    if let Err(code) = session.finish(ep) {
        return code;
    }
    let report = match result {
        Ok(r) => r,
        Err(e) => return cli::failure(BIN, e),
    };
    if !ep.json {
        let rate = match (report.rps, report.cps, report.gbps) {
            (Some(v), _, _) => format!("{}requests/s", cli::si(v)),
            (_, Some(v), _) => format!("{}connections/s", cli::si(v)),
            (_, _, Some(v)) => format!("{v:.2} Gbit/s"),
            _ => String::new(),
        };
        let lat = report.latency.map_or(String::new(), |l| {
            format!(
                "; latency p50 {:.1} us p99 {:.1} us p99.9 {:.1} us",
                l.p50_us, l.p99_us, l.p999_us
            )
        });
        println!(
            "{BIN}: {} to {} over {:.2} s: {rate}{lat}; errors {}; retransmits {}; {}pps out, {}pps in",
            report.workload,
            report.server,
            report.duration_s,
            report.errors,
            report.retransmits,
            cli::si(report.tx_pps),
            cli::si(report.rx_pps)
        );
        if let (Some(n), Some(rate)) = (report.connections, report.open_per_s) {
            println!(
                "{BIN}: {n} connections opened in {:.2} s ({}connections/s) from {} address(es); {} of them active",
                report.ramp_s,
                cli::si(rate),
                report.addresses.unwrap_or(1),
                report.active.unwrap_or(n)
            );
        }
    }
    if report.completed == 0 {
        return cli::failure(
            BIN,
            "nothing completed: is the server running and in the right mode (echo for rpc/cps, discard for bulk)?",
        );
    }
    0
}

fn syn_flood(args: &FloodArgs) -> i32 {
    if !(args.duration.is_finite() && args.duration > 0.0 && args.duration <= 86_400.0) {
        return cli::usage_error(BIN, "--duration must be in (0, 86400] seconds");
    }
    let ep = &args.endpoint;
    if args.random_src_ip && ep.ip.prefix_len() >= 31 {
        return cli::usage_error(
            BIN,
            format_args!(
                "--random-src-ip needs a subnet with room for other hosts, not /{}",
                ep.ip.prefix_len()
            ),
        );
    }
    let session = match Session::start(ep) {
        Ok(s) => s,
        Err(code) => return code,
    };
    if !ep.json {
        println!(
            "{BIN}: syn-flood on port {} ({}) from {}{} -> {}, rate {}, {} s",
            session.open.name,
            session.open.driver,
            ep.ip,
            if args.random_src_ip {
                " (random sources in the subnet)"
            } else {
                ""
            },
            ep.server,
            args.rate
                .0
                .map_or("max".to_owned(), |r| format!("{}SYN/s", cli::si(r))),
            args.duration
        );
    }
    let cfg = synflood::FloodConfig {
        ip: ep.ip,
        server: ep.server,
        rate: args.rate.0,
        duration: args.duration,
        random_src_ip: args.random_src_ip,
        burst: usize::from(args.burst),
        connect_timeout: Duration::from_secs(ep.connect_timeout),
        progress: cli::stdout_is_tty() && !ep.json,
        seed: random_seed(),
    };
    let result = synflood::run(&session.open, &cfg, &session.stop);
    // The figures go out before the port closes: a fault in the teardown (the memif
    // peer's exit races it) must not cost what was measured.
    if let (true, Ok(report)) = (ep.json, &result) {
        if let Err(code) = print_json(report) {
            return code;
        }
    }
    if let Err(code) = session.finish(ep) {
        return code;
    }
    let report = match result {
        Ok(r) => r,
        Err(e) => return cli::failure(BIN, e),
    };
    if !ep.json {
        println!(
            "{BIN}: syn-flood to {}: sent {} SYNs ({}SYN/s, refused by tx {}), {} SYN-ACKs back ({}pps, {:.1}% answered), {} RSTs; SYN to SYN-ACK p50 {:.1} us p99 {:.1} us",
            report.server,
            report.syns_sent,
            cli::si(report.tx_pps),
            report.tx_refused,
            report.synacks,
            cli::si(report.pps),
            report.answered * 100.0,
            report.rsts,
            report.latency.p50_us,
            report.latency.p99_us
        );
    }
    if report.synacks == 0 {
        return cli::failure(
            BIN,
            "no SYN-ACK came back: is a server listening on that port?",
        );
    }
    0
}

fn l2(args: &L2Args) -> i32 {
    let len = match frame::data_len(args.size) {
        Ok(l) => l,
        Err(e) => return cli::usage_error(BIN, e),
    };
    if !(args.wait_peer_close.is_finite() && (0.0..=3600.0).contains(&args.wait_peer_close)) {
        return cli::usage_error(BIN, "--wait-peer-close must be in [0, 3600] seconds");
    }
    if !(args.duration.is_finite() && args.duration > 0.0 && args.duration <= 86_400.0) {
        return cli::usage_error(
            BIN,
            format_args!("--duration {} must be in (0, 86400] seconds", args.duration),
        );
    }
    let dst = match dpdk::parse_mac(&args.dst_mac) {
        Ok(m) => m,
        Err(e) => return cli::usage_error(BIN, e),
    };
    let eal_args = dpdk::eal_args(BIN, &args.eal);
    if let Err(e) = dpdk::preflight(&eal_args) {
        return cli::usage_error(BIN, e);
    }
    let stop = match cli::stop_flag() {
        Ok(s) => s,
        Err(e) => return cli::failure(BIN, format_args!("cannot install a signal handler: {e}")),
    };
    let eal = match dpdk::init_eal(&eal_args) {
        Ok(e) => e,
        Err(e) => return cli::usage_error(BIN, e),
    };
    let id = match dpdk::port_id(args.device.as_deref(), &eal_args) {
        Ok(id) => id,
        Err(e) => return cli::usage_error(BIN, e),
    };
    let open = match dpdk::open_port(
        &eal,
        id,
        Duration::from_secs(args.connect_timeout),
        true,
        &stop,
        1,
    ) {
        Ok(p) => p,
        Err(e) => return cli::usage_error(BIN, e),
    };
    if !args.json {
        println!(
            "{BIN}: l2 on port {id} ({}, {}) mac {} -> {}, {} B frames, rate {}, {} s, lcores {:?}",
            open.name,
            open.driver,
            dpdk::mac_string(&open.mac),
            args.dst_mac,
            args.size,
            args.rate
                .0
                .map_or("max".to_owned(), |r| format!("{}pps", cli::si(r))),
            args.duration,
            eal.lcores()
        );
    }
    let template = frame::probe_template(dst, open.mac, len);
    let report = blast(&open, args, &template, &stop);
    if args.wait_peer_close > 0.0 {
        eprintln!(
            "{BIN}: drained; waiting up to {} s for the peer to close the link",
            args.wait_peer_close
        );
        let end = Instant::now() + Duration::from_secs_f64(args.wait_peer_close);
        while Instant::now() < end && !stop.load(Ordering::Relaxed) {
            if matches!(open.port.link(), Ok(l) if !l.up) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let pool = open.pool;
    drop(open);
    let leaked = pool.in_use();
    drop(eal);
    if args.json {
        match serde_json::to_string(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => return cli::failure(BIN, format_args!("cannot write JSON: {e}")),
        }
    } else {
        println!(
            "{BIN}: sent {} ({}pps), received {} ({}pps, {:.2} Gbit/s), lost {}, refused by tx {}; rtt p50 {:.1} us p99 {:.1} us p99.9 {:.1} us",
            report.tx_packets,
            cli::si(report.tx_pps),
            report.rx_packets,
            cli::si(report.pps),
            report.gbps,
            report.lost,
            report.tx_refused,
            report.rtt.p50_us,
            report.rtt.p99_us,
            report.rtt.p999_us
        );
    }
    if leaked != 0 {
        return cli::failure(
            BIN,
            format_args!("{leaked} mbufs were not returned to the pool"),
        );
    }
    if report.rx_packets == 0 {
        return cli::failure(
            BIN,
            "no probe came back: is a reflector running on the other end?",
        );
    }
    0
}

/// Counters of the receive side.
#[derive(Debug, Default)]
struct Rx {
    packets: u64,
    foreign: u64,
    rtt: Latency,
}

impl Rx {
    #[inline]
    fn poll(&mut self, open: &dpdk::OpenPort, bufs: &mut Vec<Mbuf>) {
        let n = open.port.rx_burst(0, bufs, MAX_BURST);
        if n == 0 {
            return;
        }
        let now = dpdk_sys::rdtsc();
        for m in bufs.drain(..) {
            match frame::parse_probe(m.data()) {
                Some((_, sent)) => {
                    self.packets += 1;
                    self.rtt.record_ns(now.wrapping_sub(sent));
                }
                None => self.foreign += 1,
            }
        }
    }
}

fn blast(open: &dpdk::OpenPort, args: &L2Args, template: &[u8], stop: &AtomicBool) -> L2Report {
    let burst = usize::from(args.burst);
    let mut pacer = pacing::Pacer::new(args.rate.0, u32::from(args.burst));
    let mut tx_bufs: Vec<Mbuf> = Vec::with_capacity(MAX_BURST);
    let mut rx_bufs: Vec<Mbuf> = Vec::with_capacity(MAX_BURST);
    let mut rx = Rx::default();
    let (mut seq, mut tx_packets, mut refused) = (0u64, 0u64, 0u64);
    let progress = cli::stdout_is_tty() && !args.json;

    let start = Instant::now();
    let tsc0 = dpdk_sys::rdtsc();
    let mut now = start;
    let mut elapsed = 0.0;
    let mut tick = start;
    let mut last_rx = 0u64;
    let mut iter = 0u32;
    while elapsed < args.duration && !stop.load(Ordering::Relaxed) {
        let want = (pacer.allowance(elapsed) as usize).min(burst);
        while tx_bufs.len() < want {
            let Some(mut m) = open.pool.alloc() else {
                break;
            };
            if !m.set_len(template.len()) {
                break;
            }
            m.data_mut().copy_from_slice(template);
            tx_bufs.push(m);
        }
        if !tx_bufs.is_empty() {
            // Frames the device refused last time are offered again (re-stamped) rather
            // than freed and rebuilt; sequence numbers follow the order of departure.
            let tsc = dpdk_sys::rdtsc();
            for (k, m) in tx_bufs.iter_mut().enumerate() {
                frame::stamp(m.data_mut(), seq + k as u64, tsc);
            }
            let sent = open.port.tx_burst(0, &mut tx_bufs);
            seq += sent as u64;
            tx_packets += sent as u64;
            pacer.sent(sent as u32);
            refused += tx_bufs.len() as u64;
        }
        rx.poll(open, &mut rx_bufs);
        iter = iter.wrapping_add(1);
        if args.rate.0.is_some() || iter & 15 == 0 {
            now = Instant::now();
            elapsed = now.duration_since(start).as_secs_f64();
            if progress && now.duration_since(tick) >= Duration::from_secs(1) {
                let dt = now.duration_since(tick).as_secs_f64();
                print!(
                    "\r{BIN}: {:.0} s  {}pps back   ",
                    elapsed,
                    cli::si((rx.packets - last_rx) as f64 / dt)
                );
                use std::io::Write;
                let _ = std::io::stdout().flush();
                tick = now;
                last_rx = rx.packets;
            }
        }
    }
    let send_secs = now.duration_since(start).as_secs_f64();
    tx_bufs.clear(); // never sent: back to the pool
                     // Drain: what is still in flight comes back within a few hundred microseconds.
    let drain_end = Instant::now() + Duration::from_millis(200);
    while Instant::now() < drain_end {
        rx.poll(open, &mut rx_bufs);
    }
    if progress {
        println!();
    }
    let tsc_hz = (dpdk_sys::rdtsc() - tsc0) as f64 / start.elapsed().as_secs_f64();
    let ns_per_tick = 1e9 / tsc_hz;
    let per_s = |n: u64| {
        if send_secs > 0.0 {
            n as f64 / send_secs
        } else {
            0.0
        }
    };
    let pps = per_s(rx.packets);
    L2Report {
        workload: "l2",
        device: open.name.clone(),
        driver: open.driver.clone(),
        size: args.size,
        offered_rate: args.rate.0,
        duration_s: send_secs,
        tx_packets,
        rx_packets: rx.packets,
        tx_refused: refused,
        lost: tx_packets.saturating_sub(rx.packets),
        foreign: rx.foreign,
        tx_pps: per_s(tx_packets),
        pps,
        // On the wire each frame also takes 8 bytes of preamble and 12 of gap.
        gbps: pps * (args.size as f64 + 20.0) * 8.0 / 1e9,
        rtt: rx.rtt.percentiles_scaled(ns_per_tick),
        tsc_hz,
    }
}
