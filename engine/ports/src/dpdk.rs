//! The engine's [`Port`] trait over a DPDK ethdev queue pair.
use dpdk_sys::{Mbuf, MbufOwner, Mempool, Port as EthPort};
use engine::port::{Frame, IdleSupport, Port};
use engine::time::Duration;
use engine::wire::EthernetAddress;

/// An mbuf seen as an engine frame. A newtype, so moving it costs a pointer copy.
#[derive(Debug)]
pub struct MbufFrame(pub Mbuf);

impl From<Mbuf> for MbufFrame {
    #[inline]
    fn from(m: Mbuf) -> Self {
        MbufFrame(m)
    }
}

impl MbufOwner for MbufFrame {
    #[inline]
    fn mbuf(&self) -> &Mbuf {
        &self.0
    }
    #[inline]
    fn into_mbuf(self) -> Mbuf {
        self.0
    }
}

impl Frame for MbufFrame {
    #[inline]
    fn data(&self) -> &[u8] {
        self.0.data()
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        self.0.data_mut()
    }
    #[inline]
    fn set_len(&mut self, len: usize) -> bool {
        self.0.set_len(len)
    }
    #[inline]
    fn capacity(&self) -> usize {
        self.0.capacity()
    }
}

/// One rx/tx queue pair of a started DPDK port, used by one lcore.
#[derive(Debug)]
pub struct DpdkQueue<'p> {
    port: &'p EthPort,
    queue: u16,
    pool: Mempool,
    mac: EthernetAddress,
    mtu: usize,
    interrupts: bool,
    /// Below this many free mbufs in the pool, new connections are refused.
    low_water: u32,
}

impl<'p> DpdkQueue<'p> {
    /// Wraps queue pair `queue` of `port`. With `interrupts`, registers the receive
    /// interrupt with the calling thread: construct it on the lcore that polls it.
    pub fn new(
        port: &'p EthPort,
        queue: u16,
        pool: Mempool,
        interrupts: bool,
    ) -> dpdk_sys::Result<Self> {
        let mac = EthernetAddress(port.mac()?);
        let mtu = usize::from(port.mtu()?);
        if interrupts {
            port.rx_intr_register(queue)?;
        }
        // An eighth of what the pool held at start-up (the rx rings already took theirs).
        let low_water = pool.available() / 8;
        Ok(DpdkQueue {
            port,
            queue,
            pool,
            mac,
            mtu,
            interrupts,
            low_water,
        })
    }
}

impl Port for DpdkQueue<'_> {
    type Frame = MbufFrame;

    #[inline]
    fn recv_burst(&mut self, out: &mut Vec<MbufFrame>, max: usize) -> usize {
        self.port.rx_burst(self.queue, out, max)
    }

    #[inline]
    fn send_burst(&mut self, frames: &mut Vec<MbufFrame>) -> usize {
        self.port.tx_burst(self.queue, frames)
    }

    #[inline]
    fn alloc(&mut self, len: usize) -> Option<MbufFrame> {
        let mut m = self.pool.alloc()?;
        if !m.set_len(len) {
            return None;
        }
        Some(MbufFrame(m))
    }

    fn mac(&self) -> EthernetAddress {
        self.mac
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn buffers_low(&self) -> bool {
        self.pool.available() < self.low_water
    }

    fn idle_support(&self) -> IdleSupport {
        if self.interrupts {
            IdleSupport::Interrupt
        } else {
            IdleSupport::PollOnly
        }
    }

    fn wait_rx(&mut self, timeout: Duration) -> bool {
        let ms = i32::try_from(timeout.as_millis())
            .unwrap_or(i32::MAX)
            .max(1);
        self.port.rx_intr_wait(self.queue, ms).is_ok()
    }
}

/// Several queue pairs of one port polled by one lcore, as one engine port: frames are
/// taken from every receive queue in turn and sent on the first transmit queue. What a
/// client needs to talk to a server that spreads its flows over several queues (a
/// multi-core engine over net_memif answers each flow from its owner core's queue).
#[derive(Debug)]
pub struct MultiQueue<'p> {
    queues: Vec<DpdkQueue<'p>>,
    next: usize,
}

impl<'p> MultiQueue<'p> {
    /// `queues` must not be empty.
    pub fn new(queues: Vec<DpdkQueue<'p>>) -> Option<Self> {
        (!queues.is_empty()).then_some(MultiQueue { queues, next: 0 })
    }
}

impl Port for MultiQueue<'_> {
    type Frame = MbufFrame;

    fn recv_burst(&mut self, out: &mut Vec<MbufFrame>, max: usize) -> usize {
        let n = self.queues.len();
        let mut got = 0;
        for i in 0..n {
            if got >= max {
                break;
            }
            let q = (self.next + i) % n;
            got += self.queues[q].recv_burst(out, max - got);
        }
        self.next = (self.next + 1) % n;
        got
    }

    fn send_burst(&mut self, frames: &mut Vec<MbufFrame>) -> usize {
        self.queues[0].send_burst(frames)
    }

    fn alloc(&mut self, len: usize) -> Option<MbufFrame> {
        self.queues[0].alloc(len)
    }

    fn mac(&self) -> EthernetAddress {
        self.queues[0].mac()
    }

    fn mtu(&self) -> usize {
        self.queues[0].mtu()
    }

    fn buffers_low(&self) -> bool {
        self.queues[0].buffers_low()
    }
}
