//! The stateful TCP workloads of `migratory-gen`: [`GenApp`], an [`engine::stack::App`]
//! that drives many connections through the engine's own TCP (so the generator speaks
//! real TCP at DPDK speed).
//!
//! - `rpc`: C connections, each keeping `depth` requests of S bytes in flight; a request
//!   completes when S bytes of response have come back. Latency is per request, from
//!   queueing it to its last response byte.
//! - `cps`: C concurrent slots; each connects, sends one request, reads the response,
//!   closes (FIN or RST), and the slot starts again at once (as `linux-load cps` does, the
//!   slot does not wait for the close handshake). Latency is connect-to-response.
//! - `bulk`: C streams sending as fast as the window allows to a discard server.
//! - `conns`: N connections opened and held (from several client addresses when one
//!   address has too few ports); A of them run `rpc`, the rest stay idle. What a server
//!   with a million mostly idle connections does for the few that talk.
//!
//! A connection that ends before it should (refused, reset, timed out, closed by the
//! server) counts as an error, and its slot opens a new connection. Time comes from the
//! engine (`Ctx::now`): the application reads no clock and does no I/O.
use std::collections::VecDeque;
use std::net::SocketAddrV4;

use engine::stack::{App, ConnId, Ctx, Event};
use engine::time::Instant;
use serde::Serialize;

use crate::latency::Latency;

/// How a `cps` connection ends once its response is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CloseMode {
    /// An orderly close (FIN), as `close()` on a socket.
    Fin,
    /// An abort (RST): no TIME-WAIT anywhere.
    Rst,
}

/// Which workload, with its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    Rpc {
        connections: usize,
        size: usize,
        depth: usize,
    },
    Cps {
        concurrency: usize,
        size: usize,
        close: CloseMode,
    },
    Bulk {
        streams: usize,
    },
    Conns {
        total: usize,
        active: usize,
        size: usize,
        depth: usize,
    },
}

impl Workload {
    pub fn name(&self) -> &'static str {
        match self {
            Workload::Rpc { .. } => "rpc",
            Workload::Cps { .. } => "cps",
            Workload::Bulk { .. } => "bulk",
            Workload::Conns { .. } => "conns",
        }
    }

    /// Connections open at once when the workload runs.
    pub fn connections(&self) -> usize {
        match *self {
            Workload::Rpc { connections, .. } => connections,
            Workload::Cps { concurrency, .. } => concurrency,
            Workload::Bulk { streams } => streams,
            Workload::Conns { total, .. } => total,
        }
    }
}

/// Connections opened per poll at most, so that the server sees a ramp, not a SYN flood.
pub const OPENS_PER_POLL: usize = 64;
/// Handshakes in flight at most: polls come microseconds apart, so without this a
/// hundred thousand SYNs left at once, overflowing the link's ring and the server's SYN
/// backlog, and the ramp waited on one-second SYN retransmissions.
pub const MAX_CONNECTING: usize = 1024;
/// Bulk write size.
pub const BULK_CHUNK: usize = 64 * 1024;
/// Connections opened from one local address before the next is used: fewer than the
/// 64,512 ephemeral ports of `1024..=65535`, so a port is always found at once.
pub const CONNECTIONS_PER_ADDRESS: usize = 60_000;

#[derive(Debug, Default)]
struct Conn {
    /// Queueing instants of requests in flight (rpc), or the connect instant (cps).
    sent_at: VecDeque<Instant>,
    /// Response bytes received towards the oldest request in flight.
    got: usize,
    /// Request bytes queued by the workload and not yet taken by the send buffer.
    pending: usize,
    /// Established (counted in [`GenApp::established`]).
    up: bool,
    /// Issues requests (`conns`: one of the active ones).
    active: bool,
}

/// Counters of a run (reset when the measurement window opens).
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct GenCounters {
    /// Requests (rpc) or connections (cps) completed.
    pub completed: u64,
    /// Bytes the send buffers took.
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Active opens started.
    pub connects: u64,
    /// Active opens the stack refused at once (no local port, table full).
    pub connect_errors: u64,
    /// Connections that ended before they should (refused, reset, timed out, closed by
    /// the server).
    pub closed_early: u64,
}

impl GenCounters {
    /// Everything that went wrong.
    pub fn errors(&self) -> u64 {
        self.connect_errors + self.closed_early
    }
}

/// The generator application.
#[derive(Debug)]
pub struct GenApp {
    workload: Workload,
    target: SocketAddrV4,
    /// Our connections, by [`ConnId::index`]; a connection leaves when it is done.
    conns: Vec<Option<(ConnId, Conn)>>,
    /// Connections wanted and not yet opened.
    to_open: usize,
    request: Vec<u8>,
    scratch: Vec<u8>,
    pub latency: Latency,
    pub counters: GenCounters,
    /// Stop issuing requests and opening connections (the run is over).
    pub stopping: bool,
    /// Our connections (connecting or established).
    pub open: usize,
    /// Our connections that are established.
    pub established: usize,
    /// Local addresses to connect from, [`CONNECTIONS_PER_ADDRESS`] each in turn (empty:
    /// the interface's own).
    sources: Vec<std::net::Ipv4Addr>,
    /// Active opens so far (picks the source address).
    opened: usize,
    /// Connections issuing requests (`conns`).
    active: usize,
}

impl GenApp {
    pub fn new(workload: Workload, target: SocketAddrV4) -> GenApp {
        let size = match workload {
            Workload::Rpc { size, .. }
            | Workload::Cps { size, .. }
            | Workload::Conns { size, .. } => size,
            Workload::Bulk { .. } => BULK_CHUNK,
        };
        GenApp {
            workload,
            target,
            conns: Vec::new(),
            to_open: workload.connections(),
            request: (0..size).map(|i| (i % 251) as u8).collect(),
            scratch: vec![0; 64 * 1024],
            latency: Latency::new(),
            counters: GenCounters::default(),
            stopping: false,
            open: 0,
            established: 0,
            sources: Vec::new(),
            opened: 0,
            active: 0,
        }
    }

    /// Connects from `sources` ([`CONNECTIONS_PER_ADDRESS`] from each, in order) instead
    /// of the interface's address; each must be one the interface holds.
    pub fn with_sources(mut self, sources: Vec<std::net::Ipv4Addr>) -> GenApp {
        self.sources = sources;
        self
    }

    /// Local addresses needed for `connections` connections to one server port.
    pub fn addresses_needed(connections: usize) -> usize {
        connections.div_ceil(CONNECTIONS_PER_ADDRESS).max(1)
    }

    pub fn workload(&self) -> Workload {
        self.workload
    }

    /// Starts the measurement window: counters and histogram from zero.
    pub fn reset_measurement(&mut self) {
        self.counters = GenCounters::default();
        self.latency.reset();
    }

    fn slot(&mut self, id: ConnId) -> Option<&mut Conn> {
        slot_in(&mut self.conns, id)
    }

    fn insert(&mut self, id: ConnId, c: Conn) {
        let i = id.index();
        if self.conns.len() <= i {
            self.conns.resize_with(i + 1, || None);
        }
        self.conns[i] = Some((id, c));
    }

    /// Forgets connection `id` (if it is ours) and returns its state; its slot opens a
    /// new connection unless the run is over.
    fn finish(&mut self, id: ConnId) -> Option<Conn> {
        let slot = self.conns.get_mut(id.index())?;
        if slot.as_ref().is_none_or(|(o, _)| *o != id) {
            return None;
        }
        let (_, c) = slot.take()?;
        self.open = self.open.saturating_sub(1);
        if c.up {
            self.established = self.established.saturating_sub(1);
        }
        if c.active {
            self.active = self.active.saturating_sub(1);
        }
        if !self.stopping {
            self.to_open += 1;
        }
        Some(c)
    }

    fn open_some(&mut self, cx: &mut Ctx<'_>) {
        let connecting = self.open.saturating_sub(self.established);
        let n = self
            .to_open
            .min(OPENS_PER_POLL)
            .min(MAX_CONNECTING.saturating_sub(connecting));
        for _ in 0..n {
            let opened = if self.sources.len() > 1 {
                let source =
                    self.sources[(self.opened / CONNECTIONS_PER_ADDRESS) % self.sources.len()];
                cx.connect_from(source, self.target)
            } else {
                cx.connect(self.target)
            };
            match opened {
                Ok(id) => {
                    let mut c = Conn::default();
                    if matches!(self.workload, Workload::Cps { .. }) {
                        c.sent_at.push_back(cx.now());
                    }
                    self.insert(id, c);
                    self.opened += 1;
                    self.open += 1;
                    self.counters.connects += 1;
                    self.to_open -= 1;
                }
                Err(_) => {
                    // Tried again next poll.
                    self.counters.connect_errors += 1;
                    break;
                }
            }
        }
    }

    /// Writes as much of the pending request bytes as the send buffer takes.
    fn write_pending(&mut self, cx: &mut Ctx<'_>, id: ConnId) {
        let size = self.request.len();
        let Some(c) = self.slot(id) else { return };
        let mut pending = c.pending;
        let mut written = 0u64;
        while pending > 0 {
            // The tail of the current request first, then whole requests.
            let offset = (size - pending % size) % size;
            let chunk = (size - offset).min(pending);
            let n = cx
                .send(id, &self.request[offset..offset + chunk])
                .unwrap_or(0);
            written += n as u64;
            pending -= n;
            if n < chunk {
                break; // Writable follows
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

    /// Makes established idle connections active until `active` are (`conns`).
    fn start_active(&mut self, cx: &mut Ctx<'_>, active: usize, depth: usize) {
        let mut ids = Vec::new();
        for (id, c) in self.conns.iter_mut().flatten() {
            if self.active + ids.len() >= active {
                break;
            }
            if c.up && !c.active {
                c.active = true;
                ids.push(*id);
            }
        }
        self.active += ids.len();
        for id in ids {
            self.fill(cx, id, depth);
        }
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
            let Some(c) = slot_in(&mut self.conns, id) else {
                break;
            };
            c.got += n;
            while c.got >= size {
                // More bytes than requested: not an echo server; counted, not timed.
                let Some(t) = c.sent_at.pop_front() else {
                    break;
                };
                c.got -= size;
                self.latency.record_ns((now - t).as_nanos() as u64);
                done += 1;
            }
            self.counters.completed += done;
            match self.workload {
                Workload::Rpc { depth, .. } | Workload::Conns { depth, .. } if done > 0 => {
                    self.fill(cx, id, depth)
                }
                Workload::Cps { close, .. } if done > 0 => {
                    // Done: the slot starts a new connection at once; what is left of
                    // this one (the close handshake) is the stack's business.
                    self.finish(id);
                    let _ = match close {
                        CloseMode::Rst => cx.abort(id),
                        CloseMode::Fin => cx.close(id),
                    };
                    break;
                }
                _ => {}
            }
        }
        self.scratch = scratch;
    }

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
            if n < self.request.len() {
                break;
            }
        }
    }
}

/// Connection `id` in `conns`, if it is still ours.
fn slot_in(conns: &mut [Option<(ConnId, Conn)>], id: ConnId) -> Option<&mut Conn> {
    match conns.get_mut(id.index()) {
        Some(Some((owner, c))) if *owner == id => Some(c),
        _ => None,
    }
}

impl App for GenApp {
    fn on_event(&mut self, cx: &mut Ctx<'_>, id: ConnId, event: Event) {
        match event {
            Event::Connected => {
                let Some(c) = self.slot(id) else { return };
                c.up = true;
                self.established += 1;
                match self.workload {
                    Workload::Rpc { depth, .. } => self.fill(cx, id, depth),
                    Workload::Cps { .. } => {
                        let size = self.request.len();
                        if let Some(c) = self.slot(id) {
                            c.pending = size;
                        }
                        self.write_pending(cx, id);
                    }
                    Workload::Bulk { .. } => self.on_writable(cx, id),
                    // Requests start once every connection is up (`on_poll`): the time
                    // to open them is measured alone.
                    Workload::Conns { .. } => {}
                }
            }
            Event::Writable => match self.workload {
                Workload::Bulk { .. } => self.on_writable(cx, id),
                _ => self.write_pending(cx, id),
            },
            Event::Readable => self.on_readable(cx, id),
            Event::PeerClosed => {
                // The server closed first: for every workload here that is early.
                let _ = cx.close(id);
            }
            Event::Closed { .. } => {
                // Only connections still ours were cut short; finished cps connections
                // left the table when their response came in.
                if self.finish(id).is_some() && !self.stopping {
                    self.counters.closed_early += 1;
                }
            }
            // The generator neither listens nor moves its connections.
            Event::Accepted { .. } | Event::Adopted { .. } => {}
        }
    }

    fn on_poll(&mut self, cx: &mut Ctx<'_>) {
        if !self.stopping && self.to_open > 0 {
            self.open_some(cx);
        }
        if let Workload::Conns {
            total,
            active,
            depth,
            ..
        } = self.workload
        {
            // Every connection up: as many as are missing of the active ones start
            // (again after one ended early), from the lowest slots.
            if !self.stopping && self.active < active && self.established >= total {
                self.start_active(cx, active, depth);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::sim::endpoint::{endpoint_ip, engine_host, EngineHost};
    use engine::sim::{Faults, Host, Network};
    use engine::stack::StackConfig;
    use engine::time::Duration;
    use migratory_apps::apps::Echo;

    /// The two kinds of host of these tests.
    enum Node {
        Server(Box<EngineHost<Echo>>),
        Gen(Box<EngineHost<GenApp>>),
    }

    impl Node {
        fn host(&mut self) -> &mut dyn Host {
            match self {
                Node::Server(h) => h,
                Node::Gen(h) => h,
            }
        }
        fn host_ref(&self) -> &dyn Host {
            match self {
                Node::Server(h) => h,
                Node::Gen(h) => h,
            }
        }
    }

    impl Host for Node {
        fn mac(&self) -> [u8; 6] {
            self.host_ref().mac()
        }
        fn receive(&mut self, now: Instant, frame: &[u8]) {
            self.host().receive(now, frame)
        }
        fn transmit(&mut self, now: Instant, out: &mut dyn FnMut(&[u8])) {
            self.host().transmit(now, out)
        }
        fn poll_timeout(&self) -> Option<Instant> {
            self.host_ref().poll_timeout()
        }
        fn handle_timeout(&mut self, now: Instant) {
            self.host().handle_timeout(now)
        }
    }

    /// An echo server (endpoint 1, port 7) and the generator (endpoint 2) on a wire with
    /// 10 us of delay, run for `ms` of virtual time; returns the generator.
    fn run(workload: Workload, ms: u64) -> GenApp {
        let mut net: Network<Node> = Network::new(3);
        net.set_faults(Faults::none().with_delay(Duration::from_micros(10), Duration::ZERO))
            .unwrap();
        let mut server = engine_host(1, StackConfig::default(), 1, Echo::default(), &[2]);
        server
            .driver_mut()
            .with_ctx(Instant::ZERO, |_, cx| cx.listen(7))
            .unwrap();
        let mut config = StackConfig::default();
        config.tcp.time_wait = Duration::from_millis(1);
        let app = GenApp::new(workload, SocketAddrV4::new(endpoint_ip(1), 7));
        let mut client = engine_host(2, config, 2, app, &[1]);
        // Opens the first connections.
        client
            .driver_mut()
            .with_ctx(Instant::ZERO, |app, cx| app.on_poll(cx));
        net.add_host(Node::Server(Box::new(server))).unwrap();
        let gen = net.add_host(Node::Gen(Box::new(client))).unwrap();
        net.run_for(Duration::from_millis(ms)).unwrap();
        match net.host_mut(gen) {
            Some(Node::Gen(h)) => {
                let idle = GenApp::new(
                    Workload::Bulk { streams: 0 },
                    SocketAddrV4::new(endpoint_ip(1), 7),
                );
                std::mem::replace(h.driver_mut().app_mut(), idle)
            }
            _ => unreachable!("host 1 is the generator"),
        }
    }

    #[test]
    fn rpc_completes_requests_on_every_connection() {
        let app = run(
            Workload::Rpc {
                connections: 100,
                size: 64,
                depth: 2,
            },
            50,
        );
        assert_eq!(app.open, 100);
        assert_eq!(app.established, 100);
        assert_eq!(app.counters.errors(), 0, "{:?}", app.counters);
        assert!(app.counters.completed > 1000, "{:?}", app.counters);
        assert_eq!(app.latency.len(), app.counters.completed);
    }

    #[test]
    fn cps_with_fin_and_rst_keeps_its_slots() {
        for close in [CloseMode::Fin, CloseMode::Rst] {
            let app = run(
                Workload::Cps {
                    concurrency: 16,
                    size: 64,
                    close,
                },
                50,
            );
            assert_eq!(app.counters.errors(), 0, "{close:?}: {:?}", app.counters);
            assert!(
                app.counters.completed > 500,
                "{close:?}: {:?}",
                app.counters
            );
            assert_eq!(app.open, 16, "{close:?}");
            assert!(app.counters.connects >= app.counters.completed);
        }
    }

    #[test]
    fn bulk_streams() {
        let app = run(Workload::Bulk { streams: 2 }, 2);
        assert_eq!(app.counters.errors(), 0, "{:?}", app.counters);
        assert!(app.counters.bytes_sent > 1 << 20, "{:?}", app.counters);
    }
}
