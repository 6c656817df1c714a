//! Many parallel downloads from one engine whose receive queue is short and whose core
//! is busy while it writes a burst: the peer answers each segment as it arrives, the
//! answers pile up in the queue until the engine reads again, and those to the end of
//! every burst are dropped. Only ACKs are lost (the downloads send nothing else), as in
//! the lab, where the kernel side of a tap holds a bounded number of frames for the
//! engine and the kernel acknowledges each segment while the engine is still writing.
//!
//! Cumulative ACKs make most of those losses harmless. A connection whose whole flight
//! was at the end of a burst hears nothing and sends a tail loss probe (RFC 8985 §7.3);
//! if that probe is again at the end of a burst, behind the new data the other
//! connections' ACKs released, its answer is dropped too, and only the retransmission
//! timeout is left (RFC 8985 §7.3 allows one probe): 200 ms or more for data that all
//! arrived. The stack sends what timers caused first, so the probe's answer gets through.
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddrV4;

use engine::iface::{IfaceConfig, Interface};
use engine::poll::Engine;
use engine::sim::endpoint::{endpoint_ip, endpoint_mac, EngineHost, Pattern};
use engine::sim::{Faults, Host, Network, PortHost, SimPort};
use engine::stack::{App, ConnId, Ctx, Event, Stack, StackConfig, StackKeys, TcpCounters};
use engine::steer::NoSteer;
use engine::time::{Duration, Instant};
use engine::wire::ipv4::Ipv4Cidr;

const PORT: u16 = 80;
const SEED: u64 = 0xd0;

/// The server's side: every accepted connection gets `size` bytes of the pattern, then
/// a FIN. The client's side: opens `count` connections and reads each to its end.
#[derive(Debug, Default)]
struct Downloads {
    serve: bool,
    size: u64,
    count: usize,
    /// Bytes sent (server) or read and checked (client), per connection.
    progress: HashMap<ConnId, u64>,
    complete: usize,
    mismatches: usize,
    errors: usize,
}

impl Downloads {
    fn server(size: u64) -> Self {
        Downloads {
            serve: true,
            size,
            ..Downloads::default()
        }
    }

    fn client(count: usize, size: u64) -> Self {
        Downloads {
            size,
            count,
            ..Downloads::default()
        }
    }

    fn start(&mut self, cx: &mut Ctx<'_>) {
        if self.serve {
            cx.listen(PORT).expect("listen");
        } else {
            for _ in 0..self.count {
                let id = cx
                    .connect(SocketAddrV4::new(endpoint_ip(1), PORT))
                    .expect("connect");
                self.progress.insert(id, 0);
            }
        }
    }

    fn pump(&mut self, cx: &mut Ctx<'_>, conn: ConnId) {
        let Some(sent) = self.progress.get_mut(&conn) else {
            return;
        };
        let mut chunk = [0u8; 16 * 1024];
        while *sent < self.size {
            let n = (cx.send_capacity(conn) as u64)
                .min(self.size - *sent)
                .min(chunk.len() as u64) as usize;
            if n == 0 {
                return;
            }
            Pattern::new(SEED).fill(*sent, &mut chunk[..n]);
            match cx.send(conn, &chunk[..n]) {
                Ok(taken) => *sent += taken as u64,
                Err(_) => {
                    self.errors += 1;
                    return;
                }
            }
        }
        if cx.close(conn).is_err() {
            self.errors += 1;
        }
        self.progress.remove(&conn);
    }

    fn read(&mut self, cx: &mut Ctx<'_>, conn: ConnId) {
        let Some(got) = self.progress.get_mut(&conn) else {
            return;
        };
        let mut buf = [0u8; 16 * 1024];
        loop {
            match cx.recv(conn, &mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    if Pattern::new(SEED).mismatch(*got, &buf[..n]).is_some() {
                        self.mismatches += 1;
                    }
                    *got += n as u64;
                }
                Err(_) => break,
            }
        }
        // The end of the stream.
        if *got == self.size {
            self.complete += 1;
        } else {
            self.errors += 1;
        }
        self.progress.remove(&conn);
        if cx.close(conn).is_err() {
            self.errors += 1;
        }
    }
}

impl App for Downloads {
    fn on_event(&mut self, cx: &mut Ctx<'_>, conn: ConnId, event: Event) {
        match event {
            Event::Accepted { .. } if self.serve => {
                self.progress.insert(conn, 0);
                self.pump(cx, conn);
            }
            Event::Writable if self.serve => self.pump(cx, conn),
            Event::Readable | Event::PeerClosed if !self.serve => self.read(cx, conn),
            Event::Closed { error: Some(_) } => self.errors += 1,
            _ => {}
        }
    }
}

/// Endpoint `n` with a receive queue of `rx_depth` frames.
fn host(
    n: u8,
    peer: u8,
    app: Downloads,
    rx_depth: usize,
    config: StackConfig,
) -> EngineHost<Downloads> {
    let cidr = Ipv4Cidr::new(endpoint_ip(n), 24).expect("cidr");
    let mut iface = Interface::new(IfaceConfig::new(endpoint_mac(n), cidr));
    iface.learn_neighbour(endpoint_ip(peer), endpoint_mac(peer), Instant::ZERO);
    let stack = Stack::new(iface, config, StackKeys::from_seed(u64::from(n)));
    // A transmit queue deep enough for any burst: only the server's receive queue drops.
    let port = SimPort::new(endpoint_mac(n), 1500).with_depths(rx_depth, 1 << 20);
    PortHost::new(Engine::with_app(port, stack, app, NoSteer))
}

/// An engine as a host with a cost: every poll keeps it busy for `per_frame` per frame
/// it took in or sent, and frames that arrive meanwhile wait in its port's receive queue
/// (dropped when it is full), as they do for an engine whose core is still writing its
/// last burst. With `one_at_a_time`, frames are handed to the engine one per poll, so it
/// answers segment by segment as a kernel does (an ACK for every second segment), not
/// once per burst.
struct Busy {
    inner: EngineHost<Downloads>,
    per_frame: Duration,
    busy_until: Instant,
    one_at_a_time: bool,
    backlog: VecDeque<Vec<u8>>,
}

impl Host for Busy {
    fn mac(&self) -> [u8; 6] {
        self.inner.mac()
    }
    fn receive(&mut self, now: Instant, frame: &[u8]) {
        if self.one_at_a_time {
            self.backlog.push_back(frame.to_vec());
        } else {
            self.inner.receive(now, frame)
        }
    }
    fn transmit(&mut self, now: Instant, out: &mut dyn FnMut(&[u8])) {
        if now < self.busy_until {
            return;
        }
        if let Some(frame) = self.backlog.pop_front() {
            self.inner.receive(now, &frame);
        }
        let pending = self.inner.port().rx_pending();
        let mut sent = 0u32;
        self.inner.transmit(now, &mut |frame| {
            sent += 1;
            out(frame)
        });
        let taken = pending.saturating_sub(self.inner.port().rx_pending()) as u32;
        self.busy_until = now + self.per_frame * (sent + taken);
    }
    fn poll_timeout(&self) -> Option<Instant> {
        if !self.backlog.is_empty() {
            return Some(self.busy_until);
        }
        self.inner.poll_timeout().map(|t| t.max(self.busy_until))
    }
    fn handle_timeout(&mut self, now: Instant) {
        if now >= self.busy_until {
            self.inner.handle_timeout(now)
        }
    }
}

/// The downloading end answers every segment at once, as Linux does after a pause
/// (quick ACKs): a tail loss probe is answered at once, not after a delayed-ACK timeout.
fn client_config() -> StackConfig {
    let mut config = StackConfig::default();
    config.tcp.delayed_ack = None;
    config
}

#[derive(Debug)]
struct Outcome {
    server: TcpCounters,
    /// ACKs the server's full receive queue dropped.
    acks_dropped: u64,
    done_at: Instant,
}

/// `count` downloads of `size` bytes at once over links of `delay` one way; the server's receive queue holds `rx_depth` frames and each frame
/// costs it `per_frame`.
fn downloads(
    count: usize,
    size: u64,
    rx_depth: usize,
    per_frame: Duration,
    delay: Duration,
) -> Outcome {
    let mut net: Network<Busy> = Network::new(1);
    net.set_faults(Faults::none().with_delay(delay, Duration::ZERO))
        .expect("faults");
    let busy = |inner, per_frame, one_at_a_time| Busy {
        inner,
        per_frame,
        busy_until: Instant::ZERO,
        one_at_a_time,
        backlog: VecDeque::new(),
    };
    let server = net
        .add_host(busy(
            host(
                1,
                2,
                Downloads::server(size),
                rx_depth,
                StackConfig::default(),
            ),
            per_frame,
            false,
        ))
        .expect("server");
    let client = net
        .add_host(busy(
            host(
                2,
                1,
                Downloads::client(count, size),
                1 << 20,
                client_config(),
            ),
            Duration::ZERO,
            true,
        ))
        .expect("client");
    for id in [server, client] {
        net.host_mut(id)
            .expect("host")
            .inner
            .driver_mut()
            .with_ctx(Instant::ZERO, |app, cx| app.start(cx));
    }
    let finished = |n: &Network<Busy>| {
        let c = client_app(n, client);
        c.complete + c.errors >= count
    };
    net.run_until(finished, Instant::from_millis(60_000))
        .expect("the downloads finish");
    let c = client_app(&net, client);
    assert_eq!(c.errors, 0, "no download failed");
    assert_eq!(c.mismatches, 0, "every byte as sent");
    assert_eq!(c.complete, count);
    let s = &net.host(server).expect("server").inner;
    Outcome {
        server: s.driver().stack().tcp_counters(),
        acks_dropped: s.port().stats().rx_dropped,
        done_at: net.now(),
    }
}

fn client_app(net: &Network<Busy>, id: engine::sim::HostId) -> &Downloads {
    net.host(id).expect("host").inner.driver().app()
}

/// Server receive queue depth, per-frame cost of the server, number of downloads: the
/// shapes checked. Before the stack sent timer output first, each of these timed out
/// (1 to 31 RTOs, finishing in 0.22 to 1.4 s of virtual time instead of 0.04 to 0.12 s).
const SHAPES: [(usize, u64, usize); 4] = [(128, 4, 16), (512, 2, 16), (128, 4, 32), (256, 2, 32)];

#[test]
fn acks_lost_at_the_end_of_every_burst_cost_no_timeout() {
    for (depth, per_frame_us, count) in SHAPES {
        let o = downloads(
            count,
            1 << 20,
            depth,
            Duration::from_micros(per_frame_us),
            Duration::ZERO,
        );
        let shape = format!("{count} downloads, queue {depth}, {per_frame_us} us/frame: {o:?}");
        // Only ACKs were lost, many of them, and all the downloads' data arrived.
        assert!(o.acks_dropped > 1000, "{shape}");
        assert_eq!(o.server.fast_recoveries, 0, "{shape}");
        // A connection all of whose ACKs were dropped sent a tail loss probe (RFC 8985
        // §7.3) first in its next burst, and its answer got through: no timeout.
        assert!(o.server.loss_probes > 0, "{shape}");
        assert_eq!(o.server.rto_expiries, 0, "{shape}");
        // The only retransmissions are probes (of the last segment, once the data ran out).
        assert!(o.server.retransmits <= o.server.loss_probes, "{shape}");
        assert!(o.done_at < Instant::from_millis(200), "{shape}");
    }
}
