//! `migratory-gen`: migratory's load generator on DPDK.
//!
//! One subcommand per workload. `l2` blasts raw Ethernet probe frames (no IP, no UDP)
//! through a port and counts the ones that come back, with their round-trip time from a
//! TSC stamp in each frame: against `migratory-reflector` this is the wire ceiling. The TCP
//! workloads (`rpc`, `cps`, `bulk`, `syn-flood`) join when the engine's TCP does.
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use dpdk_sys::{Mbuf, MAX_BURST};
use migratory_perf::latency::{Latency, Percentiles};
use migratory_perf::{cli, dpdk, frame, pacing};
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
    };
    std::process::exit(code);
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
