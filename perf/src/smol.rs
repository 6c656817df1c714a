//! smoltcp's `phy::Device` over a DPDK port of `dpdk-sys`, for the smoltcp baseline.
//!
//! Received mbufs are handed to smoltcp one by one (a burst is fetched when the local
//! queue is empty); frames smoltcp transmits are written into fresh mbufs from the pool
//! and sent in bursts by [`DpdkDevice::flush`] (or when a burst is full). Frames the
//! device refuses, and frames with no mbuf to go in, are counted and freed.
use dpdk_sys::{Mbuf, Mempool, Port, MAX_BURST};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// Counters of the device, for the server's exit report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceCounters {
    pub rx_frames: u64,
    pub tx_frames: u64,
    /// Frames the port did not take (tx ring full).
    pub tx_refused: u64,
    /// Frames smoltcp emitted while the pool had no free mbuf.
    pub tx_no_mbuf: u64,
}

/// A smoltcp device over queue 0 of a started port.
#[derive(Debug)]
pub struct DpdkDevice<'p> {
    port: &'p Port,
    queue: u16,
    pool: Mempool,
    mtu: usize,
    /// Received, not yet consumed, in reverse order (pop takes the oldest).
    rx: Vec<Mbuf>,
    burst: Vec<Mbuf>,
    tx: Vec<Mbuf>,
    counters: DeviceCounters,
}

impl<'p> DpdkDevice<'p> {
    /// `mtu` is the IP MTU (1500 on a standard link).
    pub fn new(port: &'p Port, queue: u16, pool: Mempool, mtu: usize) -> DpdkDevice<'p> {
        DpdkDevice {
            port,
            queue,
            pool,
            mtu,
            rx: Vec::with_capacity(MAX_BURST),
            burst: Vec::with_capacity(MAX_BURST),
            tx: Vec::with_capacity(MAX_BURST),
            counters: DeviceCounters::default(),
        }
    }

    /// Sends every queued frame; the ones the device refuses are freed and counted.
    pub fn flush(&mut self) {
        flush(self.port, self.queue, &mut self.tx, &mut self.counters);
    }

    pub fn counters(&self) -> DeviceCounters {
        self.counters
    }

    /// Whether received frames are waiting for smoltcp.
    pub fn has_rx(&self) -> bool {
        !self.rx.is_empty()
    }
}

fn flush(port: &Port, queue: u16, tx: &mut Vec<Mbuf>, counters: &mut DeviceCounters) {
    if tx.is_empty() {
        return;
    }
    let sent = port.tx_burst(queue, tx);
    counters.tx_frames += sent as u64;
    counters.tx_refused += tx.len() as u64;
    tx.clear(); // frees what the device did not take
}

impl Drop for DpdkDevice<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// A received frame.
#[derive(Debug)]
pub struct RxToken {
    mbuf: Mbuf,
}

impl phy::RxToken for RxToken {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.mbuf.data())
    }
}

/// Room for one frame to transmit.
#[derive(Debug)]
pub struct TxToken<'a> {
    port: &'a Port,
    queue: u16,
    pool: Mempool,
    tx: &'a mut Vec<Mbuf>,
    counters: &'a mut DeviceCounters,
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let mut mbuf = match self
            .pool
            .alloc()
            .and_then(|mut m| m.set_len(len).then_some(m))
        {
            Some(m) => m,
            None => {
                // No buffer: smoltcp still needs somewhere to write; the frame is lost
                // like any other drop, and TCP retransmits.
                self.counters.tx_no_mbuf += 1;
                let mut scratch = vec![0u8; len];
                return f(&mut scratch);
            }
        };
        let r = f(mbuf.data_mut());
        self.tx.push(mbuf);
        if self.tx.len() >= MAX_BURST {
            flush(self.port, self.queue, self.tx, self.counters);
        }
        r
    }
}

impl phy::Device for DpdkDevice<'_> {
    type RxToken<'a>
        = RxToken
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a>
    where
        Self: 'a;

    fn receive(&mut self, _now: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        if self.rx.is_empty() {
            let n = self.port.rx_burst(self.queue, &mut self.burst, MAX_BURST);
            if n == 0 {
                return None;
            }
            self.counters.rx_frames += n as u64;
            self.rx.extend(self.burst.drain(..).rev());
        }
        let mbuf = self.rx.pop()?;
        Some((
            RxToken { mbuf },
            TxToken {
                port: self.port,
                queue: self.queue,
                pool: self.pool,
                tx: &mut self.tx,
                counters: &mut self.counters,
            },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<Self::TxToken<'_>> {
        Some(TxToken {
            port: self.port,
            queue: self.queue,
            pool: self.pool,
            tx: &mut self.tx,
            counters: &mut self.counters,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.mtu + 14;
        caps.max_burst_size = Some(MAX_BURST);
        caps
    }
}
