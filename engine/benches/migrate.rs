//! The cost of moving one established connection between two cores' stacks, with a
//! baseline in the same run.
//!
//! `cargo bench -p migratory-engine --bench migrate`
//!
//! - `move/state_N`: `Stack::migrate_out` on one core (freeze: the application's export,
//!   capture, table entry turned into a redirect) then `Stack::migrate_in` on the other
//!   (restore with every check, table insert, the application's import and its `Adopted`
//!   event), for a connection with an application snapshot of N bytes, among 1,000
//!   connections per core. Both halves run on one thread: this is the CPU a move costs
//!   (the origin's and the destination's share together), not the hand-off between
//!   threads, which the mesh adds (`perf/run`'s `migrate` workload measures it live).
//! - `handoff/round_trip_two_threads`: a move to another thread (core) and straight back,
//!   each side adopting it, over the engine's mesh: half of it is a move's latency from
//!   freeze to adopted, hand-off between cores included.
//! - `baseline/clone_connection`: cloning the connection value (what moving it as a plain
//!   value, with no checks and no tables, would cost).
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use engine::migrate::Owner;
use engine::stack::{App, ConnId, Ctx, Event, Refusal, Stack, StackConfig};
use engine::steer::FlowSteer;
use engine::table::FlowHashKey;
use engine::time::Instant;

#[path = "../tests/stack_support/mod.rs"]
mod stack_support;
use stack_support::{deliver, flush, stack, Pair, Recorder, CLIENT, SERVER, SERVER_PORT};

/// Connections per core.
const CONNECTIONS: usize = 1000;

/// An application whose per-connection state is `state` bytes, moved whole.
#[derive(Default)]
struct Ballast {
    state: usize,
    held: std::collections::HashMap<ConnId, Vec<u8>>,
}

impl App for Ballast {
    fn on_event(&mut self, _: &mut Ctx<'_>, conn: ConnId, event: Event) {
        if let Event::Accepted { .. } = event {
            self.held.insert(conn, vec![7u8; self.state]);
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

struct Bench {
    cores: [Stack; 2],
    apps: [Ballast; 2],
    now: Instant,
}

fn setup(state: usize) -> Bench {
    let steer = FlowSteer::new(2, FlowHashKey::from_words(1, 2)).unwrap();
    let mut cores = [0u16, 1].map(|i| {
        let mut s = stack(SERVER, CLIENT, StackConfig::default(), Default::default());
        s.set_steering(steer, i);
        s.listen(SERVER_PORT).unwrap();
        s
    });
    let mut apps = [0, 1].map(|_| Ballast {
        state,
        ..Ballast::default()
    });
    let mut client = stack(CLIENT, SERVER, StackConfig::default(), Default::default());
    let mut client_app = Recorder::new(true, false);
    let now = Instant::ZERO;
    // Open connections until each core holds CONNECTIONS.
    while cores.iter().any(|c| c.connection_count() < CONNECTIONS) {
        for _ in 0..64 {
            client.connect(now, Pair::server_addr()).unwrap();
        }
        for _ in 0..4 {
            let frames = flush(&mut client, &mut client_app, now);
            for f in frames {
                // Each frame to its home core (the NIC's queue being the home here).
                for core in cores.iter_mut() {
                    let mut f2 = f.clone();
                    if !matches!(
                        core.receive(now, &mut f2),
                        engine::stack::Received::NotOurs(_)
                    ) {
                        break;
                    }
                }
            }
            for i in 0..2 {
                let out = flush(&mut cores[i], &mut apps[i], now);
                deliver(&mut client, now, &out);
            }
        }
    }
    Bench { cores, apps, now }
}

impl Bench {
    /// Moves one connection from `from` to the other core and returns its new id there.
    fn move_one(&mut self, from: usize, id: ConnId) -> ConnId {
        let to = 1 - from;
        let (a, b) = self.cores.split_at_mut(1);
        let (x, y) = self.apps.split_at_mut(1);
        let (src, dst, app_src, app_dst) = if from == 0 {
            (&mut a[0], &mut b[0], &mut x[0], &mut y[0])
        } else {
            (&mut b[0], &mut a[0], &mut y[0], &mut x[0])
        };
        let m = src
            .migrate_out(self.now, id, Owner::Core(to as u16), app_src)
            .expect("movable");
        dst.migrate_in(self.now, m, app_dst).expect("adopted")
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("move");
    for state in [0usize, 4096, 65536] {
        let mut b = setup(state);
        // One connection goes back and forth; the other 1,999 fill the tables.
        let mut at = 0usize;
        let mut id = b.cores[0].connection_ids()[0];
        group.bench_function(BenchmarkId::new("state", state), |bencher| {
            bencher.iter(|| {
                id = b.move_one(at, id);
                at = 1 - at;
                black_box(id)
            })
        });
    }
    group.finish();
    let b = setup(0);
    let id = b.cores[0].connection_ids()[0];
    let conn = b.cores[0].connection(id).unwrap();
    c.bench_function("baseline/clone_connection", |bencher| {
        bencher.iter(|| black_box(conn.clone()))
    });
}

/// One round trip between two threads (two cores): this thread moves the connection out
/// and hands it over the mesh; the other adopts it, moves it straight back and hands it
/// back; this one adopts it again. Half of a round trip is one move from freeze to
/// adopted, hand-off included, as it happens between two engine cores (without the rest
/// of a poll around it).
fn handoff(c: &mut Criterion) {
    use engine::steer::{CoreMessage, Mesh, MeshSteer, Steer};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let b = setup(0);
    let Bench {
        cores: [mut here, mut there],
        apps: [mut app_here, mut app_there],
        now,
    } = b;
    let mut endpoints = Mesh::<CoreMessage<()>>::new(2, 64).unwrap().into_iter();
    let mut near = MeshSteer::new(endpoints.next().unwrap());
    let mut far = MeshSteer::new(endpoints.next().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let worker = std::thread::spawn(move || {
        let mut inbox = Vec::new();
        while !stop2.load(Ordering::Relaxed) {
            if far.receive(&mut inbox, 8) == 0 {
                core::hint::spin_loop();
                continue;
            }
            for msg in inbox.drain(..) {
                if let CoreMessage::Migrate(t) = msg {
                    let id = there
                        .migrate_in(now, t.migration, &mut app_there)
                        .expect("adopted there");
                    let m = there
                        .migrate_out(now, id, Owner::Core(0), &mut app_there)
                        .expect("movable");
                    let back = Box::new(engine::migrate::Transfer { migration: m, ..*t });
                    let mut msg = CoreMessage::Migrate(back);
                    while let Err(m) = far.send(Owner::Core(0), msg) {
                        msg = m;
                    }
                }
            }
        }
    });
    let mut id = here.connection_ids()[0];
    let mut inbox = Vec::new();
    c.bench_function("handoff/round_trip_two_threads", |bencher| {
        bencher.iter(|| {
            let m = here
                .migrate_out(now, id, Owner::Core(1), &mut app_here)
                .expect("movable");
            let t = Box::new(engine::migrate::Transfer {
                migration: m,
                frozen_at: now,
                origin: 0,
                ticket: engine::migrate::Ticket(0),
            });
            let mut msg = CoreMessage::Migrate(t);
            while let Err(m) = near.send(Owner::Core(1), msg) {
                msg = m;
            }
            loop {
                if near.receive(&mut inbox, 8) > 0 {
                    break;
                }
                core::hint::spin_loop();
            }
            for msg in inbox.drain(..) {
                if let CoreMessage::Migrate(t) = msg {
                    id = here
                        .migrate_in(now, t.migration, &mut app_here)
                        .expect("adopted back");
                }
            }
            black_box(id)
        })
    });
    stop.store(true, Ordering::Relaxed);
    let _ = worker.join();
}

criterion_group!(benches, bench, handoff);
criterion_main!(benches);
