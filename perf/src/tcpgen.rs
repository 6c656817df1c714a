//! The stateful TCP workloads of `migratory-gen`: an [`engine::stack::App`] that drives
//! many connections through the engine's own TCP (so the generator speaks real TCP at
//! DPDK speed), plus the stateless `syn-flood`.
//!
//! - `rpc`: C connections, each keeping `depth` requests of S bytes in flight; a request
//!   completes when S bytes of response have come back. Latency is per request.
//! - `cps`: C concurrent slots; each connects, sends one request, reads the response,
//!   closes (FIN or RST), and starts again. Latency is connect-to-response.
//! - `bulk`: C streams sending as fast as the window allows to a discard server.
//!
//! Time comes from the engine (`Ctx::now`), so the application does not read a clock.
use engine::stack::{App, ConnId, Ctx, Event};
use engine::time::Instant;
use serde::Serialize;
use std::collections::VecDeque;
use std::net::SocketAddrV4;

use crate::latency::Latency;

/// Which workload, with its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    Rpc { connections: usize, size: usize, depth: usize },
    Cps { concurrency: usize, size: usize, reset: bool },
    Bulk { streams: usize },
}

impl Workload {
    pub fn name(&self) -> &'static str {
        match self {
            Workload::Rpc { .. } => "rpc",
            Workload::Cps { .. } => "cps",
            Workload::Bulk { .. } => "bulk",
        }
    }
}

/// Connections opened per poll at most, so that the server sees a ramp, not a SYN flood.
const OPENS_PER_POLL: usize = 64;
/// Bulk write size.
const BULK_CHUNK: usize = 64 * 1024;

#[derive(Debug, Default)]
struct Conn {
    /// Send instants of requests in flight (rpc), or the connect instant (cps).
    sent_at: VecDeque<Instant>,
    /// Response bytes received towards the current request.
    got: usize,
    /// Request bytes still to write (a request that did not fit at once).
    pending: usize,
    /// Bytes the send buffer took (bulk).
    sent_bytes: u64,
}

/// Counters of a run (reset when the measurement window opens).
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct GenCounters {
    pub completed: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub connects: u64,
    pub connect_errors: u64,
    pub closed_with_error: u64,
}

/// The generator application.
#[derive(Debug)]
pub struct GenApp {
    workload: Workload,
    target: SocketAddrV4,
    conns: Vec<Option<(ConnId, Conn)>>,
    /// Connections wanted and not yet opened.
    to_open: usize,
    request: Vec<u8>,
    scratch: Vec<u8>,
    pub latency: Latency,
    pub counters: GenCounters,
    /// Stop opening connections and requests (the run is over).
    pub stopping: bool,
    /// Open connections (established or connecting).
    pub open: usize,
}

impl GenApp {
    pub fn new(workload: Workload, target: SocketAddrV4) -> GenApp {
        let (to_open, size) = match workload {
            Workload::Rpc { connections, size, .. } => (connections, size),
            Workload::Cps { concurrency, size, .. } => (concurrency, size),
            Workload::Bulk { streams } => (streams, BULK_CHUNK),
        };
        GenApp {
            workload,
            target,
            conns: Vec::new(),
            to_open,
            request: (0..size).map(|i| (i % 251) as u8).collect(),
            scratch: vec![0; 64 * 1024],
            latency: Latency::new(),
            counters: GenCounters::default(),
            stopping: false,
            open: 0,
        }
    }

    /// Starts the measurement window: counters and histogram from zero.
    pub fn reset_measurement(&mut self) {
        self.counters = GenCounters::default();
        self.latency.reset();
    }

    fn slot(&mut self, id: ConnId) -> Option<&mut Conn> {
        match self.conns.get_mut(id.index()) {
            Some(Some((owner, c))) if *owner == id => Some(c),
            _ => None,
        }
    }

    fn insert(&mut self, id: ConnId, c: Conn) {
        let i = id.index();
        if self.conns.len() <= i {
            self.conns.resize_with(i + 1, || None);
        }
        self.conns[i] = Some((id, c));
    }

    fn remove(&mut self, id: ConnId) {
        if let Some(slot) = self.conns.get_mut(id.index()) {
            if slot.as_ref().is_some_and(|(o, _)| *o == id) {
                *slot = None;
            }
        }
    }

    fn open_some(&mut self, cx: &mut Ctx<'_>) {
        let n = self.to_open.min(OPENS_PER_POLL);
        for _ in 0..n {
            match cx.connect(self.target) {
                Ok(id) => {
                    let mut c = Conn::default();
                    c.sent_at.push_back(cx.now());
                    self.insert(id, c);
                    self.open += 1;
                    self.counters.connects += 1;
                    self.to_open -= 1;
                }
                Err(_) => {
                    self.counters.connect_errors += 1;
                    break;
                }
            }
        }
    }

    /// Writes as much of the pending request bytes as fit.
    fn write_pending(&mut self, cx: &mut Ctx<'_>, id: ConnId) {
        let size = self.request.len();
        let Some(c) = self.slot(id) else { return };
        let mut pending = c.pending;
        let mut written = 0u64;
        while pending > 0 {
            let offset = (size - pending % size) % size;
            let chunk = (size - offset).min(pending);
            let n = cx.send(id, &self.request[offset..offset + chunk]).unwrap_or(0);
            written += n as u64;
            pending -= n;
            if n < chunk {
                break;
            }
        }
        if let Some(c) = self.slot(id) {
            c.pending = pending;
        }
        self.counters.bytes_sent += written;
    }

    /// Issues requests until `depth` are in flight (rpc).
    fn fill(&mut self, cx: &mut Ctx<'_>, id: ConnId, depth: usize) {
        if self.stopping {
            return;
        }
        let size = self.request.len();
        let now = cx.now();
        if let Some(c) = self.slot(id) {
            while c.sent_at.len() < depth {
                c.sent_at.push_back(now);
                c.pending += size;
            }
        }
        self.write_pending(cx, id);
    }

    fn on_readable(&mut self, cx: &mut Ctx<'_>, id: ConnId) {
        let size = self.request.len();
        let mut scratch = std::mem::take(&mut self.scratch);
        loop {
            let n = cx.recv(id, &mut scratch).unwrap_or(0);
            if n == 0 {
                break;
            }
            self.counters.bytes_received += n as u64;
            if matches!(self.workload, Workload::Bulk { .. }) {
                continue;
            }
            let now = cx.now();
            let mut done = 0;
            if let Some(c) = self.slot(id) {
                c.got += n;
                while c.got >= size {
                    c.got -= size;
                    if let Some(t) = c.sent_at.pop_front() {
                        self.latency.record_ns((now - t).as_nanos() as u64);
                    }
                    done += 1;
                }
            }
            self.counters.completed += done;
            match self.workload {
                Workload::Rpc { depth, .. } if done > 0 => self.fill(cx, id, depth),
                Workload::Cps { reset, .. } if done > 0 => {
                    if reset {
                        let _ = cx.abort(id);
                    } else {
                        let _ = cx.close(id);
                    }
                }
                _ => {}
            }
        }
        self.scratch = scratch;
    }
}

impl App for GenApp {
    fn on_event(&mut self, cx: &mut Ctx<'_>, id: ConnId, event: Event) {
        match event {
            Event::Connected => match self.workload {
                Workload::Rpc { depth, .. } => {
                    if let Some(c) = self.slot(id) {
                        c.sent_at.clear();
                    }
                    self.fill(cx, id, depth);
                }
                Workload::Cps { .. } => {
                    if let Some(c) = self.slot(id) {
                        c.pending = self.request.len();
                    }
                    self.write_pending(cx, id);
                }
                Workload::Bulk { .. } => self.on_writable(cx, id),
            },
            Event::Writable => match self.workload {
                Workload::Bulk { .. } => self.on_writable(cx, id),
                _ => self.write_pending(cx, id),
            },
            Event::Readable => self.on_readable(cx, id),
            Event::PeerClosed => {
                let _ = cx.close(id);
            }
            Event::Closed { error } => {
                if error.is_some() && !matches!(self.workload, Workload::Cps { reset: true, .. }) {
                    self.counters.closed_with_error += 1;
                }
                self.remove(id);
                self.open = self.open.saturating_sub(1);
                // cps: a finished connection makes room for the next one.
                if matches!(self.workload, Workload::Cps { .. }) && !self.stopping {
                    self.to_open += 1;
                }
            }
            Event::Accepted { .. } => {}
        }
    }

    fn on_poll(&mut self, cx: &mut Ctx<'_>) {
        if !self.stopping && self.to_open > 0 {
            self.open_some(cx);
        }
    }
}

impl GenApp {
    fn on_writable(&mut self, cx: &mut Ctx<'_>, id: ConnId) {
        if self.stopping {
            return;
        }
        loop {
            let n = cx.send(id, &self.request).unwrap_or(0);
            if n == 0 {
                break;
            }
            self.counters.bytes_sent += n as u64;
            if let Some(c) = self.slot(id) {
                c.sent_bytes += n as u64;
            }
            if n < self.request.len() {
                break;
            }
        }
    }
}
