//! Bringing up EAL and one port for a measuring process: private prefixes, a hugepage
//! check before DPDK prints pages of errors, and a start that retries until a memif peer
//! is there and the link is up.
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dpdk_sys::{Eal, EalArgs, Mempool, Port, PortConfig};

/// Mbufs per pool: rx and tx rings of 1024 plus bursts in flight and per-lcore caches.
pub const POOL_MBUFS: u32 = 8191;
/// The per-lcore mempool cache.
pub const POOL_CACHE: u32 = 256;

/// The EAL arguments with a private prefix added when the user gave none: `--in-memory`
/// with hugepages, `--file-prefix=NAME-PID` with `--no-huge` (EAL rejects the two together).
pub fn eal_args(bin: &str, given: &[String]) -> EalArgs {
    let parsed = EalArgs::new(given.iter().cloned());
    let mut args = given.to_vec();
    if !parsed.has_private_prefix() {
        if parsed.needs_hugepages() {
            args.push("--in-memory".to_owned());
        } else {
            args.push(format!("--file-prefix={bin}-{}", std::process::id()));
        }
    }
    EalArgs::new(args)
}

/// Free 2 MiB hugepages on this machine, from /proc/meminfo (`None` if unreadable).
pub fn free_hugepages() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("HugePages_Free:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Refuses, in one line, what would make EAL fail with a wall of text: no hugepages when
/// EAL wants them, no `-l`/`-c` core list (the process would not be pinned).
pub fn preflight(args: &EalArgs) -> Result<(), String> {
    if !args.has("-l") && !args.has("-c") && !args.has("--lcores") {
        return Err("give the EAL core to pin to after `--`, e.g. `-- -l 1 ...`".to_owned());
    }
    if args.needs_hugepages() && free_hugepages() == Some(0) {
        return Err(
            "no free hugepages: run `echo 512 > /proc/sys/vm/nr_hugepages` as root (ci/setup does), or pass --no-huge after `--`"
                .to_owned(),
        );
    }
    Ok(())
}

/// Initialises EAL, turning a failure into one line.
pub fn init_eal(args: &EalArgs) -> Result<Eal, String> {
    Eal::init(args).map_err(|e| format!("DPDK EAL init failed: {e} (see the EAL messages above)"))
}

/// The port to use: the one named `device`, else the first available. `args` only
/// shape the error message.
pub fn port_id(device: Option<&str>, args: &EalArgs) -> Result<u16, String> {
    match device {
        Some(name) => Port::by_name(name).map_err(|e| e.to_string()),
        None => Port::ids().first().copied().ok_or_else(|| {
            if args.has("--vdev") || args.has("-a") {
                "no DPDK port came up: the device given to EAL failed to probe (see the driver's messages above; for memif: a socket path still in use by another process, or left behind by one that crashed)".to_owned()
            } else {
                "no DPDK port found: give one after `--` with --vdev=net_memif0,... (or -a PCI for a NIC)".to_owned()
            }
        }),
    }
}

/// A started port and the pool its receive queue draws from.
#[derive(Debug)]
pub struct OpenPort {
    pub port: Port,
    pub pool: Mempool,
    pub mac: [u8; 6],
    pub driver: String,
    pub name: String,
    /// Queue pairs configured.
    pub queues: u16,
}

/// Configures and starts port `id` with `queues` queue pairs. `rte_eth_dev_start` is retried
/// until `timeout` (a memif client fails to start until its server listens); with
/// `wait_link` the link is then awaited for what is left of `timeout`. `stop` aborts.
pub fn open_port(
    eal: &Eal,
    id: u16,
    timeout: Duration,
    wait_link: bool,
    stop: &AtomicBool,
    queues: u16,
) -> Result<OpenPort, String> {
    let pool = Mempool::new(
        &format!("perf_pool_{id}"),
        POOL_MBUFS,
        POOL_CACHE,
        Mempool::DEFAULT_DATA_ROOM,
        eal.socket_id(),
    )
    .map_err(|e| format!("cannot create the mbuf pool: {e}"))?;
    let queues = queues.max(1);
    let conf = PortConfig {
        promiscuous: true,
        rx_queues: queues,
        tx_queues: queues,
        ..PortConfig::default()
    };
    let plain = PortConfig {
        rx_queues: queues,
        tx_queues: queues,
        ..PortConfig::default()
    };
    let mut port = match Port::configure(id, &conf, &pool) {
        Ok(p) => p,
        // Some virtual devices have no promiscuous mode to set; they take every frame anyway.
        Err(_) => Port::configure(id, &plain, &pool)
            .map_err(|e| format!("cannot configure port {id} with {queues} queue pair(s): {e}"))?,
    };
    let deadline = Instant::now() + timeout;
    loop {
        match port.start() {
            Ok(()) => break,
            Err(e) => {
                if Instant::now() >= deadline || stop.load(Ordering::Relaxed) {
                    return Err(format!(
                        "cannot start port {id} within {:.0} s: {e} (for a memif client: is the server side running on the same socket path?)",
                        timeout.as_secs_f64()
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    if wait_link {
        wait_for_link(&port, id, deadline, timeout, stop)?;
    }
    let mac = port
        .mac()
        .map_err(|e| format!("cannot read the MAC of port {id}: {e}"))?;
    let info = port
        .info()
        .map_err(|e| format!("cannot read port {id}'s info: {e}"))?;
    Ok(OpenPort {
        port,
        pool,
        mac,
        driver: info.driver,
        name: info.name,
        queues,
    })
}

fn wait_for_link(
    port: &Port,
    id: u16,
    deadline: Instant,
    timeout: Duration,
    stop: &AtomicBool,
) -> Result<(), String> {
    loop {
        match port.link() {
            Ok(l) if l.up => return Ok(()),
            _ => {
                if Instant::now() >= deadline || stop.load(Ordering::Relaxed) {
                    return Err(format!(
                        "port {id} started but its link did not come up within {:.0} s (memif: no peer connected on that socket)",
                        timeout.as_secs_f64()
                    ));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Formats a MAC address as `aa:bb:cc:dd:ee:ff`.
pub fn mac_string(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(format!(
            "bad MAC address {s:?}: want six hex bytes like 02:00:00:00:00:01"
        ));
    }
    let mut mac = [0u8; 6];
    for (out, p) in mac.iter_mut().zip(parts) {
        *out = u8::from_str_radix(p, 16)
            .ok()
            .filter(|_| p.len() == 2)
            .ok_or_else(|| format!("bad MAC address {s:?}: {p:?} is not a hex byte"))?;
    }
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_a_private_prefix() {
        let a = eal_args("x", &["-l".into(), "0".into()]);
        assert!(a.has("--in-memory"));
        let b = eal_args("x", &["-l".into(), "0".into(), "--no-huge".into()]);
        assert!(b.has("--file-prefix") && !b.has("--in-memory"));
        let c = eal_args("x", &["--file-prefix=p".into()]);
        assert_eq!(c.values("--file-prefix"), vec!["p"]);
        assert!(!c.has("--in-memory"));
    }

    #[test]
    fn macs_round_trip() {
        let m = parse_mac("02:00:0a:ff:00:01").unwrap();
        assert_eq!(m, [2, 0, 0x0a, 0xff, 0, 1]);
        assert_eq!(mac_string(&m), "02:00:0a:ff:00:01");
        assert!(parse_mac("02:00:0a:ff:00").is_err());
        assert!(parse_mac("02:00:0a:ff:00:1").is_err());
        assert!(parse_mac("02:00:0a:ff:00:zz").is_err());
    }

    #[test]
    fn preflight_wants_a_core() {
        assert!(preflight(&EalArgs::new(["--no-huge"])).is_err());
        assert!(preflight(&EalArgs::new(["-l", "0", "--no-huge"])).is_ok());
    }
}
