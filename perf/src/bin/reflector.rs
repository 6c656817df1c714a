//! `migratory-reflector`: an L2 reflector on DPDK. Receives bursts on one port, swaps the
//! source and destination MAC addresses and sends them back, on the core EAL pins it to.
//! It prints packets per second once a second and a total at exit (SIGINT/SIGTERM).
//!
//! Against `migratory-gen l2` over net_memif it measures the wire ceiling: the most
//! packets per second the link and one core at each end can move, with no TCP at all.
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use dpdk_sys::{Mbuf, MAX_BURST};
use migratory_perf::cli;
use migratory_perf::{dpdk, frame};

const BIN: &str = "migratory-reflector";

/// L2 reflector (MAC swap) on a DPDK port.
#[derive(Debug, Parser)]
#[command(name = BIN, version)]
struct Args {
    /// The DPDK port to use (e.g. net_memif0); default: the first port.
    #[arg(long)]
    device: Option<String>,
    /// Receive burst size (1..=64).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=64))]
    burst: u16,
    /// Seconds to keep retrying the port's start.
    #[arg(long, default_value_t = 30)]
    connect_timeout: u64,
    /// Sleep briefly when idle instead of spinning (for shared cores; lowers the ceiling).
    #[arg(long)]
    idle_sleep: bool,
    /// Print nothing once a second, only the total at exit.
    #[arg(long)]
    quiet: bool,
    /// EAL arguments, after `--` (e.g. -l 1 --vdev=net_memif0,role=server,...).
    #[arg(last = true)]
    eal: Vec<String>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    rx: u64,
    tx: u64,
    dropped: u64,
}

fn main() {
    let args: Args = cli::parse_or_exit(BIN);
    std::process::exit(run(&args));
}

fn run(args: &Args) -> i32 {
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
        false,
        &stop,
        1,
    ) {
        Ok(p) => p,
        Err(e) => return cli::usage_error(BIN, e),
    };
    println!(
        "{BIN}: reflecting on port {id} ({}, {}) mac {} lcores {:?}",
        open.name,
        open.driver,
        dpdk::mac_string(&open.mac),
        eal.lcores()
    );
    reflect(&open, args, &stop);
    // Closing the port frees the mbufs its rings hold; only then is in_use a leak count.
    let pool = open.pool;
    drop(open);
    let leaked = pool.in_use();
    drop(eal);
    if leaked != 0 {
        return cli::failure(
            BIN,
            format_args!("{leaked} mbufs were not returned to the pool"),
        );
    }
    0
}

fn reflect(open: &dpdk::OpenPort, args: &Args, stop: &AtomicBool) {
    let port = &open.port;
    let burst = usize::from(args.burst);
    let mut bufs: Vec<Mbuf> = Vec::with_capacity(MAX_BURST);
    let mut t = Totals::default();
    let mut last = t;
    let start = Instant::now();
    // Time of the first packet: the rate at exit is over the time traffic flowed.
    let mut first: Option<Instant> = None;
    let mut last_rx = start;
    let mut tick = start;
    let mut idle_polls = 0u32;
    let mut iter = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let n = port.rx_burst(0, &mut bufs, burst);
        if n > 0 {
            idle_polls = 0;
            t.rx += n as u64;
            for m in bufs.iter_mut() {
                frame::swap_macs(m.data_mut());
            }
            let sent = port.tx_burst(0, &mut bufs);
            t.tx += sent as u64;
            t.dropped += bufs.len() as u64;
            bufs.clear();
        } else {
            idle_polls = idle_polls.saturating_add(1);
            if args.idle_sleep && idle_polls > 1000 {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
        iter = iter.wrapping_add(1);
        if n > 0 || iter & 1023 == 0 {
            let now = Instant::now();
            if n > 0 {
                first.get_or_insert(now);
                last_rx = now;
            }
            let dt = now.duration_since(tick).as_secs_f64();
            if dt >= 1.0 {
                if !args.quiet && t.rx != last.rx {
                    println!(
                        "{BIN}: {}pps rx, {}pps tx, {} dropped",
                        cli::si((t.rx - last.rx) as f64 / dt),
                        cli::si((t.tx - last.tx) as f64 / dt),
                        t.dropped - last.dropped
                    );
                }
                last = t;
                tick = now;
            }
        }
    }
    let secs = first
        .map(|f| last_rx.duration_since(f).as_secs_f64())
        .unwrap_or(0.0);
    let pps = if secs > 0.0 { t.tx as f64 / secs } else { 0.0 };
    println!(
        "{BIN}: done rx_packets={} tx_packets={} dropped={} active_seconds={secs:.3} pps={pps:.0}",
        t.rx, t.tx, t.dropped
    );
}
