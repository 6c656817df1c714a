//! `Port`: an ethdev port, its queues, link, statistics and receive interrupts.
use std::ffi::{CStr, CString};
use std::mem::MaybeUninit;
use std::ptr::{self, NonNull};

use crate::error::{check, DpdkError, Result};
use crate::ffi;
use crate::mbuf::{Mbuf, Mempool};

/// The largest burst [`Port::rx_burst`] and [`Port::tx_burst`] move in one call.
pub const MAX_BURST: usize = 64;

/// A value that owns exactly one mbuf: lets the burst calls move the engine's own frame
/// wrappers without copying them into a `Vec<Mbuf>` first.
pub trait MbufOwner: Sized {
    fn mbuf(&self) -> &Mbuf;
    fn into_mbuf(self) -> Mbuf;
}

impl MbufOwner for Mbuf {
    #[inline]
    fn mbuf(&self) -> &Mbuf {
        self
    }
    #[inline]
    fn into_mbuf(self) -> Mbuf {
        self
    }
}

/// A Toeplitz key made of one repeated 16-bit pattern: the hash of (src, dst) then equals
/// the hash of (dst, src), so both directions of a flow reach the same queue (Woo and
/// Park, "Scalable TCP session monitoring with symmetric receive-side scaling", 2012).
pub const SYMMETRIC_RSS_KEY: [u8; 40] = symmetric_key();

const fn symmetric_key() -> [u8; 40] {
    let mut k = [0u8; 40];
    let mut i = 0;
    while i < 40 {
        k[i] = if i % 2 == 0 { 0x6d } else { 0x5a };
        i += 1;
    }
    k
}

/// How to set a port up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rx_desc: u16,
    pub tx_desc: u16,
    /// Enable per-queue receive interrupts (`intr_conf.rxq`), for an idle loop that sleeps.
    pub rx_interrupts: bool,
    /// Set this MTU after configuring; `None` keeps the device's.
    pub mtu: Option<u16>,
    pub promiscuous: bool,
    /// With several receive queues, spread flows by RSS over TCP/IPv4 with a symmetric
    /// key (both directions of a flow land on one queue), where the device has RSS.
    pub rss: bool,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            rx_interrupts: false,
            mtu: None,
            promiscuous: false,
            rss: true,
        }
    }
}

/// What the driver says about a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    pub driver: String,
    pub name: String,
    pub max_rx_queues: u16,
    pub max_tx_queues: u16,
    pub rx_offload_capa: u64,
    pub tx_offload_capa: u64,
    pub flow_type_rss_offloads: u64,
    pub min_mtu: u16,
    pub max_mtu: u16,
}

/// Link state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkStatus {
    pub up: bool,
    pub speed_mbps: u32,
    pub full_duplex: bool,
}

/// Basic port counters (`rte_eth_stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortStats {
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    pub rx_nombuf: u64,
}

/// One ethdev port. Control calls take `&self`; the fast-path calls take a queue id and
/// are safe to make from several threads as long as each queue has one user, which the
/// engine guarantees by giving each lcore its own queue pair.
#[derive(Debug)]
pub struct Port {
    id: u16,
    started: bool,
}

impl Port {
    /// The port named `name` (for a vdev, the name given to `--vdev`, e.g. `net_tap0`).
    pub fn by_name(name: &str) -> Result<u16> {
        let cname = CString::new(name).map_err(|_| DpdkError::BadArgument(name.to_owned()))?;
        let mut id = 0u16;
        // SAFETY: valid C string and out-pointer for the call's duration.
        let ret = unsafe { ffi::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        if ret < 0 {
            return Err(DpdkError::NoSuchPort(name.to_owned()));
        }
        Ok(id)
    }

    /// The ids of every available port.
    pub fn ids() -> Vec<u16> {
        let mut out = Vec::new();
        let max = u64::from(ffi::RTE_MAX_ETHPORTS);
        // SAFETY: iterates DPDK's port table; no pointers are kept.
        let mut id = unsafe { ffi::rte_eth_find_next_owned_by(0, 0) };
        while id < max {
            out.push(id as u16);
            // SAFETY: as above; id + 1 <= RTE_MAX_ETHPORTS fits in u16.
            id = unsafe { ffi::rte_eth_find_next_owned_by(id as u16 + 1, 0) };
        }
        out
    }

    /// Configures port `id`: queues, descriptors, interrupts, MTU; every receive queue
    /// takes its buffers from `pool`. The port is not started.
    pub fn configure(id: u16, config: &PortConfig, pool: &Mempool) -> Result<Port> {
        let info = Self::raw_info(id)?;
        let mut conf = ffi::rte_eth_conf::default();
        if config.rx_interrupts {
            conf.intr_conf.set_rxq(1);
        }
        // SAFETY: a pure function of compile-time constants.
        let rss_hf = unsafe { ffi::mgr_rss_tcp_ipv4() } & info.flow_type_rss_offloads;
        let mut key = SYMMETRIC_RSS_KEY;
        if config.rss && config.rx_queues > 1 && rss_hf != 0 {
            conf.rxmode.mq_mode = ffi::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_key = key.as_mut_ptr();
            conf.rx_adv_conf.rss_conf.rss_key_len = key.len() as u8;
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
        }
        // SAFETY: conf is a valid, zero-initialised configuration that outlives the call.
        let ret =
            unsafe { ffi::rte_eth_dev_configure(id, config.rx_queues, config.tx_queues, &conf) };
        check("rte_eth_dev_configure", ret)?;
        // SAFETY: the port is valid (configure succeeded).
        let socket = unsafe { ffi::rte_eth_dev_socket_id(id) };
        let socket = if socket < 0 { 0 } else { socket as u32 };
        for q in 0..config.rx_queues {
            let mut rxconf = info.default_rxconf;
            rxconf.offloads = 0;
            // SAFETY: pool is a valid mempool that lives until EAL cleanup; rxconf is valid.
            let ret = unsafe {
                ffi::rte_eth_rx_queue_setup(id, q, config.rx_desc, socket, &rxconf, pool.as_ptr())
            };
            check("rte_eth_rx_queue_setup", ret)?;
        }
        for q in 0..config.tx_queues {
            let mut txconf = info.default_txconf;
            txconf.offloads = 0;
            // SAFETY: valid port, queue index within the configured count, valid txconf.
            let ret =
                unsafe { ffi::rte_eth_tx_queue_setup(id, q, config.tx_desc, socket, &txconf) };
            check("rte_eth_tx_queue_setup", ret)?;
        }
        if let Some(mtu) = config.mtu {
            // SAFETY: valid, configured port.
            let ret = unsafe { ffi::rte_eth_dev_set_mtu(id, mtu) };
            check("rte_eth_dev_set_mtu", ret)?;
        }
        let port = Port { id, started: false };
        if config.promiscuous {
            // SAFETY: valid port.
            let ret = unsafe { ffi::rte_eth_promiscuous_enable(id) };
            check("rte_eth_promiscuous_enable", ret)?;
        }
        Ok(port)
    }

    fn raw_info(id: u16) -> Result<ffi::rte_eth_dev_info> {
        let mut info = MaybeUninit::<ffi::rte_eth_dev_info>::zeroed();
        // SAFETY: info is writable storage of the right type; DPDK fills it.
        let ret = unsafe { ffi::rte_eth_dev_info_get(id, info.as_mut_ptr()) };
        check("rte_eth_dev_info_get", ret)?;
        // SAFETY: zeroed is a valid bit pattern for this plain C struct, and DPDK filled it.
        Ok(unsafe { info.assume_init() })
    }

    pub fn id(&self) -> u16 {
        self.id
    }

    /// The driver's description of the port.
    pub fn info(&self) -> Result<PortInfo> {
        let i = Self::raw_info(self.id)?;
        let driver = if i.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: driver_name points at the driver's static name string.
            unsafe { CStr::from_ptr(i.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        Ok(PortInfo {
            driver,
            name: self.name().unwrap_or_default(),
            max_rx_queues: i.max_rx_queues,
            max_tx_queues: i.max_tx_queues,
            rx_offload_capa: i.rx_offload_capa,
            tx_offload_capa: i.tx_offload_capa,
            flow_type_rss_offloads: i.flow_type_rss_offloads,
            min_mtu: i.min_mtu,
            max_mtu: i.max_mtu,
        })
    }

    /// The port's device name.
    pub fn name(&self) -> Result<String> {
        let mut buf = [0 as std::os::raw::c_char; 64];
        // SAFETY: buf is writable and at least RTE_ETH_NAME_MAX_LEN (64) bytes.
        let ret = unsafe { ffi::rte_eth_dev_get_name_by_port(self.id, buf.as_mut_ptr()) };
        check("rte_eth_dev_get_name_by_port", ret)?;
        // SAFETY: DPDK wrote a NUL-terminated string into buf.
        Ok(unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned())
    }

    pub fn start(&mut self) -> Result<()> {
        // SAFETY: valid, configured port.
        let ret = unsafe { ffi::rte_eth_dev_start(self.id) };
        check("rte_eth_dev_start", ret)?;
        self.started = true;
        Ok(())
    }

    pub fn stop(&mut self) -> Result<()> {
        if !self.started {
            return Ok(());
        }
        // SAFETY: valid, started port; callers stop polling before stopping the port.
        let ret = unsafe { ffi::rte_eth_dev_stop(self.id) };
        self.started = false;
        check("rte_eth_dev_stop", ret).map(drop)
    }

    /// The port's MAC address.
    pub fn mac(&self) -> Result<[u8; 6]> {
        let mut addr = ffi::rte_ether_addr::default();
        // SAFETY: addr is valid writable storage.
        let ret = unsafe { ffi::rte_eth_macaddr_get(self.id, &mut addr) };
        check("rte_eth_macaddr_get", ret)?;
        Ok(addr.addr_bytes)
    }

    /// The port's MTU.
    pub fn mtu(&self) -> Result<u16> {
        let mut mtu = 0u16;
        // SAFETY: valid out-pointer.
        let ret = unsafe { ffi::rte_eth_dev_get_mtu(self.id, &mut mtu) };
        check("rte_eth_dev_get_mtu", ret)?;
        Ok(mtu)
    }

    /// The link state, without waiting.
    pub fn link(&self) -> Result<LinkStatus> {
        let mut link = ffi::rte_eth_link::default();
        // SAFETY: link is valid writable storage.
        let ret = unsafe { ffi::rte_eth_link_get_nowait(self.id, &mut link) };
        check("rte_eth_link_get_nowait", ret)?;
        Ok(LinkStatus {
            up: link.link_status() != 0,
            speed_mbps: link.link_speed,
            full_duplex: link.link_duplex() != 0,
        })
    }

    /// The port's basic counters.
    pub fn stats(&self) -> Result<PortStats> {
        let mut s = ffi::rte_eth_stats::default();
        // SAFETY: s is valid writable storage.
        let ret = unsafe { ffi::rte_eth_stats_get(self.id, &mut s) };
        check("rte_eth_stats_get", ret)?;
        Ok(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// Receives up to `max` (at most [`MAX_BURST`]) packets from `queue` into `out`.
    #[inline]
    pub fn rx_burst<T: From<Mbuf>>(&self, queue: u16, out: &mut Vec<T>, max: usize) -> usize {
        let mut raw = [ptr::null_mut::<ffi::rte_mbuf>(); MAX_BURST];
        let want = max.min(MAX_BURST) as u16;
        // SAFETY: raw has room for `want` pointers; the queue belongs to the caller's
        // lcore (one user per queue, the engine's ownership rule).
        let n = unsafe { ffi::mgr_eth_rx_burst(self.id, queue, raw.as_mut_ptr(), want) };
        out.reserve(usize::from(n));
        for &p in &raw[..usize::from(n)] {
            if let Some(p) = NonNull::new(p) {
                // SAFETY: the driver handed us ownership of each returned mbuf.
                out.push(T::from(unsafe { Mbuf::from_raw(p) }));
            }
        }
        usize::from(n)
    }

    /// Transmits packets from the front of `pkts` on `queue`, removing the ones the
    /// device took (they are now the driver's to free). The rest stay in `pkts`.
    #[inline]
    pub fn tx_burst<T: MbufOwner>(&self, queue: u16, pkts: &mut Vec<T>) -> usize {
        let mut sent_total = 0;
        while !pkts.is_empty() {
            let chunk = pkts.len().min(MAX_BURST);
            let mut raw = [ptr::null_mut::<ffi::rte_mbuf>(); MAX_BURST];
            for (slot, m) in raw.iter_mut().zip(pkts.iter()) {
                *slot = m.mbuf().as_ptr();
            }
            // SAFETY: raw holds `chunk` valid mbufs we own; the queue has one user.
            let n = usize::from(unsafe {
                ffi::mgr_eth_tx_burst(self.id, queue, raw.as_mut_ptr(), chunk as u16)
            });
            for m in pkts.drain(..n) {
                let _ = m.into_mbuf().into_raw(); // the driver owns it now
            }
            sent_total += n;
            if n < chunk {
                break;
            }
        }
        sent_total
    }

    /// Registers `queue`'s receive interrupt with the calling thread's epoll instance.
    /// Call once, from the thread that will wait.
    pub fn rx_intr_register(&self, queue: u16) -> Result<()> {
        // SAFETY: valid port and queue; per-thread epoll fd is created by EAL on demand.
        let ret = unsafe {
            ffi::rte_eth_dev_rx_intr_ctl_q(
                self.id,
                queue,
                ffi::mgr_epoll_per_thread(),
                ffi::RTE_INTR_EVENT_ADD as i32,
                ptr::null_mut(),
            )
        };
        check("rte_eth_dev_rx_intr_ctl_q", ret).map(drop)
    }

    /// Waits up to `timeout_ms` for `queue`'s receive interrupt. Returns Ok(true) if an
    /// event arrived, Ok(false) on timeout or signal.
    pub fn rx_intr_wait(&self, queue: u16, timeout_ms: i32) -> Result<bool> {
        // SAFETY: valid port and queue (an -ENOTSUP here is fine: waiting still works
        // for drivers whose interrupt is always armed, such as net_tap).
        unsafe { ffi::rte_eth_dev_rx_intr_enable(self.id, queue) };
        let mut ev = MaybeUninit::<ffi::rte_epoll_event>::zeroed();
        // SAFETY: ev is writable room for one event; the per-thread epoll instance exists
        // once rx_intr_register ran on this thread (otherwise DPDK returns an error).
        let n = unsafe {
            ffi::rte_epoll_wait(ffi::mgr_epoll_per_thread(), ev.as_mut_ptr(), 1, timeout_ms)
        };
        // SAFETY: as for enable.
        unsafe { ffi::rte_eth_dev_rx_intr_disable(self.id, queue) };
        if n < 0 {
            let errno = crate::error::rte_errno();
            if errno == libc::EINTR || errno == 0 {
                return Ok(false);
            }
            return Err(DpdkError::Call {
                op: "rte_epoll_wait",
                errno,
            });
        }
        Ok(n > 0)
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        let _ = self.stop();
        // SAFETY: the port is stopped and no queue is in use any more.
        unsafe { ffi::rte_eth_dev_close(self.id) };
    }
}
