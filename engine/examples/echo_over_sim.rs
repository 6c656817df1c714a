//! The application API, end to end, with no DPDK, root or network: an echo server and a
//! client, each an `App` on a real engine (stack + poll loop), talking over the
//! simulated wire with 2% loss. Run it with
//!
//! ```text
//! cargo run -p migratory-engine --example echo_over_sim
//! ```
use core::net::SocketAddrV4;

use engine::sim::endpoint::{endpoint_ip, engine_host, EngineHost};
use engine::sim::{Faults, Network};
use engine::stack::{App, ConnId, Ctx, Event, StackConfig};
use engine::time::{Duration, Instant};

/// Echoes what it reads, reading only what the send buffer can take (back-pressure), and
/// closes when the peer has closed and everything is echoed.
#[derive(Default)]
struct Echo {
    buf: Vec<u8>,
}

impl App for Echo {
    fn on_event(&mut self, cx: &mut Ctx<'_>, conn: ConnId, event: Event) {
        match event {
            Event::Readable | Event::Writable | Event::PeerClosed => {
                self.buf.resize(16 * 1024, 0);
                loop {
                    let room = cx.send_capacity(conn).min(self.buf.len());
                    let n = cx.recv(conn, &mut self.buf[..room]).unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    let _ = cx.send(conn, &self.buf[..n]);
                }
                if cx.peer_closed(conn) && cx.recv_queue(conn) == 0 {
                    let _ = cx.close(conn);
                }
            }
            Event::Accepted { local_port } => println!("server: accepted on port {local_port}"),
            // This example does not move connections (see `App::export`).
            Event::Connected | Event::Adopted { .. } => {}
            Event::Closed { error } => println!("server: connection closed ({error:?})"),
        }
    }
}

/// Sends a message in pieces as the window allows, reads the echo back, then closes.
struct Client {
    message: Vec<u8>,
    sent: usize,
    echoed: Vec<u8>,
    /// Close has been called.
    closed: bool,
}

impl Client {
    fn push(&mut self, cx: &mut Ctx<'_>, conn: ConnId) {
        if self.sent < self.message.len() {
            self.sent += cx.send(conn, &self.message[self.sent..]).unwrap_or(0);
        }
    }
}

impl App for Client {
    fn on_event(&mut self, cx: &mut Ctx<'_>, conn: ConnId, event: Event) {
        match event {
            Event::Connected => {
                println!("client: connected to {:?}", cx.remote(conn));
                self.push(cx, conn);
            }
            Event::Writable => self.push(cx, conn),
            Event::Readable => {
                let _ = cx.recv_with(conn, |bytes| {
                    self.echoed.extend_from_slice(bytes);
                    bytes.len()
                });
                if self.echoed.len() >= self.message.len() && !self.closed {
                    self.closed = true;
                    assert!(
                        self.echoed == self.message,
                        "the echo differs from what was sent"
                    );
                    println!("client: the echo is byte-exact; closing");
                    let _ = cx.close(conn);
                }
            }
            Event::Closed { error } => println!("client: closed ({error:?})"),
            Event::Accepted { .. } | Event::PeerClosed | Event::Adopted { .. } => {}
        }
    }
}

fn main() {
    let message: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut net: Network<EngineHost<Box<dyn App>>> = Network::new(42);
    net.set_faults(
        Faults::none()
            .with_delay(Duration::from_micros(200), Duration::ZERO)
            .with_loss(0.02),
    )
    .expect("valid faults");
    let server = net
        .add_host(engine_host(
            1,
            StackConfig::default(),
            1,
            Box::new(Echo::default()) as Box<dyn App>,
            &[2],
        ))
        .expect("server host");
    let client_app = Client {
        message: message.clone(),
        sent: 0,
        echoed: Vec::new(),
        closed: false,
    };
    let client = net
        .add_host(engine_host(
            2,
            StackConfig::default(),
            2,
            Box::new(client_app) as Box<dyn App>,
            &[1],
        ))
        .expect("client host");

    let t0 = Instant::ZERO;
    net.host_mut(server)
        .expect("server")
        .driver_mut()
        .with_ctx(t0, |_, cx| cx.listen(7))
        .expect("listen");
    net.host_mut(client)
        .expect("client")
        .driver_mut()
        .with_ctx(t0, |_, cx| cx.connect(SocketAddrV4::new(endpoint_ip(1), 7)))
        .expect("connect");

    let stats = net
        .run_until(
            |n| {
                n.hosts()
                    .all(|(_, h)| h.driver().stack().connection_count() == 0)
            },
            Instant::from_millis(60_000),
        )
        .expect("the exchange finishes within 60 virtual seconds");
    let lost = stats.links.lost;
    println!(
        "echoed {} bytes over a lossy simulated wire in {:?} of virtual time ({} frames lost)",
        message.len(),
        net.now() - t0,
        lost
    );
}
