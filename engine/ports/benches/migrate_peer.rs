//! The cost of moving established connections between two engines joined by a
//! shared-memory link (`ports::shm` lanes), with the channel's whole protocol: prepare,
//! ready, freeze, the record sealed with HMAC-SHA256, restore, adopted.
//!
//! `cargo bench -p migratory-ports --bench migrate_peer`
//!
//! Engines A and B (simulated ports; each move goes over a real lane in `/dev/shm`) hold
//! connections from a client, established before measuring. One thread polls A and B in
//! turn until the operator's request is answered, so the time is the CPU both engines
//! spend on the moves plus the lane hand-offs, with no idle waits: what two spinning
//! engines on two cores would take, less the cross-core cache traffic and the overlap.
//!
//! - `peer_move/one/state_N`: one connection (an application snapshot of N bytes) from A
//!   to B and back; the time per move, from the request to the answer (freeze to
//!   adopted and the prepare round trip before it).
//! - `peer_move/all_1000/state_N`: 1,000 connections moved A -> B then B -> A with one
//!   request each; throughput in moves per second of one core.
//! - `baseline/lane_round_trip`: a 64-byte message A -> B -> A over the same kind of lane,
//!   with no protocol: the floor a move's messages stand on.
use std::collections::HashMap;
use std::hint::black_box;
use std::net::SocketAddrV4;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use engine::channel::ClusterKey;
use engine::control::{control_queue, Command, ControlSender, Reply, Request, Which};
use engine::migrate::Owner;
use engine::poll::{ChannelConfig, Lane, LaneState, PeerAddr};
use engine::sim::endpoint::{endpoint_ip, engine_host, EngineHost};
use engine::sim::Network;
use engine::stack::{App, ConnId, Ctx, Event, Refusal, StackConfig};
use engine::time::{Duration, Instant};
use ports::shm::ShmLink;

const CLIENT: u8 = 1;
const A: u8 = 2;
const B: u8 = 3;
const PORT: u16 = 7;
const CHANNEL: u16 = 7000;
const KEY: &[u8; 32] = b"0123456789abcdef0123456789abcdef";

/// Server: holds each connection with `state` bytes of application state, moved whole.
/// Client: opens `connect` connections to A.
#[derive(Default)]
struct Held {
    state: usize,
    connect: usize,
    held: HashMap<ConnId, Vec<u8>>,
    established: usize,
}

impl App for Held {
    fn on_event(&mut self, _: &mut Ctx<'_>, conn: ConnId, event: Event) {
        match event {
            Event::Accepted { .. } => {
                self.held.insert(conn, vec![7u8; self.state]);
            }
            Event::Connected => self.established += 1,
            _ => {}
        }
    }

    fn export(&mut self, _: &mut Ctx<'_>, conn: ConnId, out: &mut Vec<u8>) -> Result<(), Refusal> {
        let state = self.held.remove(&conn).ok_or(Refusal::BadSnapshot)?;
        out.extend_from_slice(&state);
        Ok(())
    }

    fn import(&mut self, _: &mut Ctx<'_>, conn: ConnId, snapshot: &[u8]) -> Result<(), Refusal> {
        self.held.insert(conn, snapshot.to_vec());
        Ok(())
    }
}

type Host = EngineHost<Held>;

struct Pair {
    net: Network<Host>,
    ids: [engine::sim::HostId; 2],
    control: [ControlSender; 2],
    now: Instant,
    _file: TempLink,
}

struct TempLink(std::path::PathBuf);
impl Drop for TempLink {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn channel(name: &str, peer: &str, host: u8) -> ChannelConfig {
    ChannelConfig {
        name: name.into(),
        port: CHANNEL,
        peers: vec![PeerAddr {
            name: peer.into(),
            addr: SocketAddrV4::new(endpoint_ip(host), CHANNEL),
        }],
        key: ClusterKey::new(KEY).expect("a 32-byte key"),
    }
}

fn link_file(tag: &str) -> TempLink {
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let p = dir.join(format!("migratory-bench-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    TempLink(p)
}

/// A and B joined by lanes, with `conns` connections from the client established on A.
fn setup(conns: usize, state: usize) -> Pair {
    let mut net: Network<Host> = Network::new(1);
    let all = [CLIENT, A, B];
    let add = |net: &mut Network<Host>, n: u8, app: Held| {
        let neighbours: Vec<u8> = all.iter().copied().filter(|&m| m != n).collect();
        let config = StackConfig {
            max_connections: conns.max(1024) * 2,
            ..StackConfig::default()
        };
        net.add_host(engine_host(n, config, 10 + u64::from(n), app, &neighbours))
            .expect("host")
    };
    let server = || Held {
        state,
        ..Held::default()
    };
    let a = add(&mut net, A, server());
    let b = add(&mut net, B, server());
    let c = add(
        &mut net,
        CLIENT,
        Held {
            connect: conns,
            ..Held::default()
        },
    );
    let file = link_file(&format!("{conns}-{state}"));
    let link = ShmLink::open(&file.0).expect("link file");
    let mut control = Vec::new();
    for (id, me, peer, host) in [(a, "a", "b", B), (b, "b", "a", A)] {
        let e = net.host_mut(id).expect("host").driver_mut();
        e.set_channel(channel(me, peer, host), u64::from(host))
            .expect("channel");
        for lane in link.lanes(me, peer, 0, 1, u64::from(host)).expect("lanes") {
            e.add_lane(0, Box::new(lane));
        }
        let (tx, rx) = control_queue();
        e.set_control(rx);
        control.push(tx);
        e.with_ctx(Instant::ZERO, |_, cx| cx.listen(PORT))
            .expect("listen");
    }
    let server_addr = SocketAddrV4::new(endpoint_ip(A), PORT);
    net.host_mut(c)
        .expect("client")
        .driver_mut()
        .with_ctx(Instant::ZERO, |app, cx| {
            for _ in 0..app.connect {
                cx.connect(server_addr)?;
            }
            Ok::<(), engine::stack::StackError>(())
        })
        .expect("connect");
    let established = |net: &mut Network<Host>| {
        let up = |id| {
            let e = net.host(id).expect("host").driver();
            e.peers().is_some_and(|p| p.is_up(0))
        };
        up(a) && up(b) && net.host(c).expect("client").driver().app().established == conns
    };
    for _ in 0..2000 {
        if established(&mut net) {
            break;
        }
        net.run_for(Duration::from_millis(1)).expect("sim");
    }
    assert!(established(&mut net), "connections and lanes up");
    let now = net.now();
    let [ca, cb]: [ControlSender; 2] = control.try_into().expect("two engines");
    Pair {
        net,
        ids: [a, b],
        control: [ca, cb],
        now,
        _file: file,
    }
}

impl Pair {
    /// Moves every connection of engine `from` (0: A, 1: B) to the other, polling both
    /// until the request is answered; returns how many moved.
    fn move_all(&mut self, from: usize) -> usize {
        let (tx, rx) = crossbeam::channel::unbounded();
        self.control[from]
            .send(Request {
                command: Command::Migrate {
                    which: Which::All,
                    to: Owner::Peer(0),
                },
                reply: tx,
                deadline: None,
            })
            .expect("control");
        loop {
            self.now += Duration::from_nanos(100);
            for id in self.ids {
                let e = self.net.host_mut(id).expect("host").driver_mut();
                e.poll_once(self.now);
                // Nothing reaches the (silent) client in this bench: drop what is sent.
                e.port_mut().drain_tx(&mut |_| {});
            }
            if let Ok(reply) = rx.try_recv() {
                return match reply {
                    Reply::Moves { results, .. } => {
                        results.iter().filter(|r| r.outcome.is_ok()).count()
                    }
                    other => panic!("unexpected answer {other:?}"),
                };
            }
        }
    }
}

fn bench_moves(c: &mut Criterion) {
    for state in [0usize, 4096] {
        let mut one = setup(1, state);
        let mut g = c.benchmark_group("peer_move/one");
        g.throughput(Throughput::Elements(2));
        g.bench_function(BenchmarkId::new("state", state), |b| {
            b.iter(|| {
                assert_eq!(one.move_all(0), 1);
                assert_eq!(one.move_all(1), 1);
            })
        });
        g.finish();
        let mut many = setup(1000, state);
        let mut g = c.benchmark_group("peer_move/all_1000");
        g.throughput(Throughput::Elements(2000));
        g.sample_size(20);
        g.bench_function(BenchmarkId::new("state", state), |b| {
            b.iter(|| {
                assert_eq!(many.move_all(0), 1000);
                assert_eq!(many.move_all(1), 1000);
            })
        });
        g.finish();
    }
}

fn bench_lane(c: &mut Criterion) {
    let file = link_file("baseline");
    let la = ShmLink::open(&file.0).expect("link");
    let lb = ShmLink::open(&file.0).expect("link");
    let mut a = la.lanes("a", "b", 0, 1, 1).expect("lanes").remove(0);
    let mut b = lb.lanes("b", "a", 0, 1, 2).expect("lanes").remove(1);
    // Poll both ends every round: the opener is up only once the acceptor has joined.
    loop {
        let (x, y) = (a.poll(), b.poll());
        if matches!((x, y), (LaneState::Up(_), LaneState::Up(_))) {
            break;
        }
    }
    let msg = [5u8; 64];
    let mut buf = Vec::with_capacity(128);
    c.bench_function("baseline/lane_round_trip", |bench| {
        bench.iter(|| {
            a.poll();
            assert_eq!(a.write(black_box(&msg)), 64);
            b.poll();
            buf.clear();
            b.read(&mut buf, 128);
            assert_eq!(b.write(&buf), 64);
            buf.clear();
            a.read(&mut buf, 128);
            black_box(&buf);
        })
    });
}

criterion_group!(benches, bench_moves, bench_lane);
criterion_main!(benches);
