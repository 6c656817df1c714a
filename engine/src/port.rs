//! The port trait: how the engine meets a device.
//!
//! One value of a type implementing [`Port`] is one receive/transmit queue pair, owned by
//! one core. The DPDK ethdev implementation lives in `migratory-apps` (the engine has no
//! `unsafe`); the simulated wire implements it for tests.
//!
//! Frames are owned buffers ([`Frame`]): a received frame may be rewritten in place and
//! sent back (ARP and ICMP replies do that, with no copy and no allocation), or dropped,
//! which returns it to its pool.
use crate::time::Duration;
use crate::wire::EthernetAddress;

/// An owned, contiguous frame buffer.
pub trait Frame {
    /// The frame's bytes, from the Ethernet header on.
    fn data(&self) -> &[u8];
    /// The frame's bytes, writable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Sets the frame's length. Returns false, leaving the frame unchanged, if `len`
    /// exceeds the buffer's room.
    fn set_len(&mut self, len: usize) -> bool;
    /// The largest length [`Frame::set_len`] accepts.
    fn capacity(&self) -> usize;
}

/// What a port can offer to make an idle loop cheap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleSupport {
    /// The port can block until a frame arrives (receive interrupts).
    Interrupt,
    /// The port can only be polled.
    PollOnly,
}

/// One receive/transmit queue pair of a device.
pub trait Port {
    type Frame: Frame;

    /// Appends up to `max` received frames to `out`; returns how many were appended.
    fn recv_burst(&mut self, out: &mut Vec<Self::Frame>, max: usize) -> usize;

    /// Sends frames from the front of `frames`, removing those the device took. Frames
    /// left in `frames` were not sent: the caller retries or drops (frees) them.
    fn send_burst(&mut self, frames: &mut Vec<Self::Frame>) -> usize;

    /// A fresh frame of length `len`, or `None` when the pool is exhausted.
    fn alloc(&mut self, len: usize) -> Option<Self::Frame>;

    /// The device's MAC address.
    fn mac(&self) -> EthernetAddress;

    /// The device's MTU (IP packet size, without the Ethernet header).
    fn mtu(&self) -> usize;

    /// Whether the buffer pool is running low: the engine then refuses new connections
    /// (SYNs are dropped and counted) until it recovers, so that established ones keep
    /// the buffers they need. Checked about once a millisecond.
    fn buffers_low(&self) -> bool {
        false
    }

    /// Whether [`Port::wait_rx`] can block on receive interrupts.
    fn idle_support(&self) -> IdleSupport {
        IdleSupport::PollOnly
    }

    /// Blocks until a frame may be ready or `timeout` passes. Only called when
    /// [`Port::idle_support`] is `Interrupt`. Returns false if waiting failed, in which
    /// case the caller falls back to sleeping.
    fn wait_rx(&mut self, timeout: Duration) -> bool {
        let _ = timeout;
        false
    }
}

/// A heap-backed frame, for the simulator and for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VecFrame {
    buf: Vec<u8>,
    len: usize,
}

impl VecFrame {
    /// Room of a standard Ethernet frame plus headroom for VLAN tags.
    pub const DEFAULT_CAPACITY: usize = 2048;

    pub fn new(len: usize) -> VecFrame {
        VecFrame {
            buf: vec![0; len.max(Self::DEFAULT_CAPACITY)],
            len,
        }
    }

    pub fn from_bytes(bytes: &[u8]) -> VecFrame {
        let mut f = VecFrame::new(bytes.len());
        f.buf[..bytes.len()].copy_from_slice(bytes);
        f
    }
}

impl Frame for VecFrame {
    fn data(&self) -> &[u8] {
        &self.buf[..self.len]
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }
    fn set_len(&mut self, len: usize) -> bool {
        if len > self.buf.len() {
            return false;
        }
        self.len = len;
        true
    }
    fn capacity(&self) -> usize {
        self.buf.len()
    }
}
