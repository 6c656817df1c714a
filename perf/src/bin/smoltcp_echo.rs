//! `smoltcp-echo`: the smoltcp baseline. An echo (or discard) TCP server on smoltcp over a
//! DPDK port through `dpdk-sys` (smoltcp's `phy::Device` implemented with our `Mbuf`s,
//! see `migratory_perf::smol`), on the core EAL pins it to, with its IP and MAC from the
//! command line. smoltcp answers ARP and ping by itself.
//!
//! Each of `--sockets` smoltcp sockets listens on the port and serves one connection at
//! a time; when its connection ends it listens again. Stops on SIGINT/SIGTERM and prints
//! its counters.
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use migratory_perf::smol::DpdkDevice;
use migratory_perf::{cli, dpdk};
use smoltcp::iface::{Config, Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr};

const BIN: &str = "smoltcp-echo";

/// TCP echo/discard server on smoltcp over a DPDK port.
#[derive(Debug, Parser)]
#[command(name = BIN, version)]
struct Args {
    /// The server's IPv4 address and prefix, e.g. 10.77.0.2/24.
    #[arg(long, value_parser = parse_cidr)]
    ip: (Ipv4Addr, u8),
    /// The server's MAC address; default: the port's.
    #[arg(long)]
    mac: Option<String>,
    /// Default gateway (optional).
    #[arg(long)]
    gateway: Option<Ipv4Addr>,
    /// TCP port to serve.
    #[arg(long, default_value_t = 7)]
    port: u16,
    /// What to do with what arrives.
    #[arg(long, value_enum, default_value_t = Mode::Echo)]
    mode: Mode,
    /// Listening sockets, i.e. the most connections served at once (1..=65535).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=65535))]
    sockets: u32,
    /// Receive and send buffer of each socket, in bytes (64..=16777216).
    #[arg(long, default_value_t = 16384, value_parser = clap::value_parser!(u32).range(64..=16_777_216))]
    buffer: u32,
    /// IP MTU of the link.
    #[arg(long, default_value_t = 1500, value_parser = clap::value_parser!(u16).range(576..=9000))]
    mtu: u16,
    /// Sleep briefly when idle instead of spinning (for shared cores and tap devices).
    #[arg(long)]
    idle_sleep: bool,
    /// The DPDK port to use; default: the first port.
    #[arg(long)]
    device: Option<String>,
    /// Seconds to keep retrying the port's start (a memif client waits for its server).
    #[arg(long, default_value_t = 30)]
    connect_timeout: u64,
    /// EAL arguments, after `--`.
    #[arg(last = true)]
    eal: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Echo,
    Discard,
}

fn parse_cidr(s: &str) -> Result<(Ipv4Addr, u8), String> {
    let bad = || format!("bad address {s:?}: want IPv4/PREFIX such as 10.77.0.2/24");
    let (ip, prefix) = s.split_once('/').ok_or_else(bad)?;
    let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| (1..=32).contains(p))
        .ok_or_else(bad)?;
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
        return Err(format!("{ip} cannot be a host address"));
    }
    Ok((ip, prefix))
}

#[derive(Debug, Default)]
struct Stats {
    connections: u64,
    bytes_in: u64,
    bytes_out: u64,
}

fn main() {
    let args: Args = cli::parse_or_exit(BIN);
    std::process::exit(run(&args));
}

fn run(args: &Args) -> i32 {
    let mac_arg = match args.mac.as_deref().map(dpdk::parse_mac).transpose() {
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
        false,
        &stop,
        1,
    ) {
        Ok(p) => p,
        Err(e) => return cli::usage_error(BIN, e),
    };
    let mac = mac_arg.unwrap_or(open.mac);
    println!(
        "{BIN}: {:?} on {}/{} port {} mac {} (port {id}: {}, {}) sockets {} lcores {:?}",
        args.mode,
        args.ip.0,
        args.ip.1,
        args.port,
        dpdk::mac_string(&mac),
        open.name,
        open.driver,
        args.sockets,
        eal.lcores()
    );
    {
        let mut device = DpdkDevice::new(&open.port, 0, open.pool, usize::from(args.mtu));
        let stats = serve(args, mac, &mut device, &stop);
        let c = device.counters();
        println!(
            "{BIN}: done connections={} bytes_in={} bytes_out={} rx_frames={} tx_frames={} tx_refused={} tx_no_mbuf={}",
            stats.connections, stats.bytes_in, stats.bytes_out, c.rx_frames, c.tx_frames, c.tx_refused, c.tx_no_mbuf
        );
    }
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

fn serve(args: &Args, mac: [u8; 6], device: &mut DpdkDevice<'_>, stop: &AtomicBool) -> Stats {
    let epoch = Instant::now();
    let now = || smoltcp::time::Instant::from_micros(epoch.elapsed().as_micros() as i64);
    let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
    config.random_seed = u64::from(std::process::id()) ^ epoch.elapsed().as_nanos() as u64;
    let mut iface = Interface::new(config, device, now());
    iface.update_ip_addrs(|addrs| {
        // One address on a fresh interface: the list has room for it.
        let _ = addrs.push(IpCidr::new(args.ip.0.into(), args.ip.1));
    });
    if let Some(gw) = args.gateway {
        let _ = iface.routes_mut().add_default_ipv4_route(gw);
    }
    let mut sockets = SocketSet::new(Vec::new());
    let handles: Vec<SocketHandle> = (0..args.sockets)
        .map(|_| {
            let buf = args.buffer as usize;
            let mut s = tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0u8; buf]),
                tcp::SocketBuffer::new(vec![0u8; buf]),
            );
            s.set_nagle_enabled(false);
            let _ = s.listen(args.port);
            sockets.add(s)
        })
        .collect();
    // Whether each socket's current connection has been counted.
    let mut counted = vec![false; handles.len()];
    let mut tmp = vec![0u8; args.buffer as usize];
    let mut stats = Stats::default();
    let mut idle_polls = 0u32;

    while !stop.load(Ordering::Relaxed) {
        let t = now();
        let activity = iface.poll(t, device, &mut sockets) == PollResult::SocketStateChanged;
        for (k, &h) in handles.iter().enumerate() {
            let s = sockets.get_mut::<tcp::Socket>(h);
            if !s.is_open() {
                // Closed or TIME-WAIT: serve the next connection.
                counted[k] = false;
                let _ = s.listen(args.port);
                continue;
            }
            if s.is_active() && !counted[k] {
                counted[k] = true;
                stats.connections += 1;
            }
            while s.can_recv() {
                let n = match args.mode {
                    Mode::Echo => {
                        let room = s.send_capacity() - s.send_queue();
                        if room == 0 {
                            break;
                        }
                        let want = room.min(tmp.len());
                        let n = s.recv_slice(&mut tmp[..want]).unwrap_or(0);
                        let sent = s.send_slice(&tmp[..n]).unwrap_or(0);
                        stats.bytes_out += sent as u64;
                        n
                    }
                    Mode::Discard => s.recv(|b| (b.len(), b.len())).unwrap_or(0),
                };
                if n == 0 {
                    break;
                }
                stats.bytes_in += n as u64;
            }
            // The peer closed its side and everything was echoed: close ours.
            if !s.may_recv() && s.may_send() && s.send_queue() == 0 {
                s.close();
            }
        }
        // Send what the sockets queued now rather than on the next turn.
        iface.poll(now(), device, &mut sockets);
        device.flush();
        if activity || device.has_rx() {
            idle_polls = 0;
        } else {
            idle_polls = idle_polls.saturating_add(1);
            if args.idle_sleep && idle_polls > 100 {
                let d = iface
                    .poll_delay(now(), &sockets)
                    .map_or(Duration::from_millis(1), |d| {
                        Duration::from_micros(d.total_micros()).min(Duration::from_millis(1))
                    });
                std::thread::sleep(d.max(Duration::from_micros(20)));
            }
        }
    }
    stats
}
