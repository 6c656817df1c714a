//! Moving connections between the stacks of two cores (`Stack::migrate_out` and
//! `migrate_in`), driven by hand: the connection keeps its bytes and its peer sees nothing;
//! segments that reach the old owner are handed on; the flow's home learns the new owner;
//! refusals (state, application) and bad records change nothing and are counted.
mod stack_support;

use engine::migrate::{FlowId, Migration, Owner};
use engine::stack::{App, ConnId, Ctx, Event, MigrateError, Received, Refusal, Stack, StackConfig};
use engine::steer::FlowSteer;
use engine::table::FlowHashKey;
use engine::tcp::{RestoreError, State};
use engine::time::{Duration, Instant};
use stack_support::*;

/// An application that counts what it read per connection and moves that count with the
/// connection (its whole state): a lost or wrong snapshot shows in the total.
#[derive(Debug, Default)]
struct Counting {
    read: std::collections::HashMap<ConnId, u64>,
    /// Every byte read, shared by the cores' applications: the stream in order.
    bytes: std::rc::Rc<std::cell::RefCell<Vec<u8>>>,
    refuse_export: bool,
    refuse_import: bool,
    adopted: Vec<(ConnId, Option<u16>)>,
    closed: Vec<ConnId>,
}

impl Counting {
    fn drain(&mut self, cx: &mut Ctx<'_>, conn: ConnId) {
        let mut buf = [0u8; 4096];
        while let Ok(n) = cx.recv(conn, &mut buf) {
            if n == 0 {
                break;
            }
            *self.read.entry(conn).or_default() += n as u64;
            self.bytes.borrow_mut().extend_from_slice(&buf[..n]);
        }
    }
}

impl App for Counting {
    fn on_event(&mut self, cx: &mut Ctx<'_>, conn: ConnId, event: Event) {
        match event {
            Event::Accepted { .. } => {
                self.read.insert(conn, 0);
            }
            Event::Readable | Event::PeerClosed => self.drain(cx, conn),
            Event::Adopted { local_port } => {
                self.adopted.push((conn, local_port));
                self.drain(cx, conn);
            }
            Event::Closed { .. } => self.closed.push(conn),
            _ => {}
        }
    }

    fn export(&mut self, _: &mut Ctx<'_>, conn: ConnId, out: &mut Vec<u8>) -> Result<(), Refusal> {
        if self.refuse_export {
            return Err(Refusal::NotNow("test refuses"));
        }
        let n = self.read.remove(&conn).ok_or(Refusal::BadSnapshot)?;
        out.extend_from_slice(&n.to_le_bytes());
        Ok(())
    }

    fn import(&mut self, _: &mut Ctx<'_>, conn: ConnId, snapshot: &[u8]) -> Result<(), Refusal> {
        if self.refuse_import {
            return Err(Refusal::NotNow("test refuses"));
        }
        let n = u64::from_le_bytes(snapshot.try_into().map_err(|_| Refusal::BadSnapshot)?);
        self.read.insert(conn, n);
        Ok(())
    }
}

/// Two cores of one engine serving `SERVER` (same address and MAC), steered by `steer`,
/// and a client.
struct Cores {
    cores: [Stack; 2],
    apps: [Counting; 2],
    client: Stack,
    client_app: Recorder,
    steer: FlowSteer,
    now: Instant,
}

impl Cores {
    fn new() -> Cores {
        let steer = FlowSteer::new(2, FlowHashKey::from_words(11, 12)).unwrap();
        let cores = [0, 1].map(|i| {
            let mut s = stack(SERVER, CLIENT, StackConfig::default(), Default::default());
            s.set_steering(steer, i);
            s.listen(SERVER_PORT).unwrap();
            s
        });
        let apps: [Counting; 2] = Default::default();
        let shared = std::rc::Rc::clone(&apps[0].bytes);
        let mut apps = apps;
        apps[1].bytes = shared;
        Cores {
            cores,
            apps,
            client: stack(CLIENT, SERVER, StackConfig::default(), Default::default()),
            client_app: Recorder::new(true, false),
            steer,
            now: Instant::ZERO,
        }
    }

    /// Delivers a frame to the core that receives it (`rx_core`, as a NIC queue would)
    /// and follows it through hand-overs. Returns the cores it went through.
    fn deliver_to_server(&mut self, frame: &[u8], rx_core: usize) -> Vec<usize> {
        let mut path = vec![rx_core];
        let mut core = rx_core;
        for _ in 0..4 {
            let mut f = frame.to_vec();
            match self.cores[core].receive(self.now, &mut f) {
                Received::NotOurs(Owner::Core(next)) => {
                    core = usize::from(next);
                    path.push(core);
                }
                _ => return path,
            }
        }
        panic!("frame went around: {path:?}");
    }

    /// Moves frames until quiet; client frames reach the server on core `rx_core`.
    fn exchange(&mut self, rx_core: usize) {
        for _ in 0..10_000 {
            let to_server = flush(&mut self.client, &mut self.client_app, self.now);
            for f in &to_server {
                self.deliver_to_server(f, rx_core);
            }
            let mut to_client = Vec::new();
            for i in 0..2 {
                to_client.extend(flush(&mut self.cores[i], &mut self.apps[i], self.now));
                // Owner updates go to the home core at once.
                for u in self.cores[i].take_owner_updates() {
                    self.cores[usize::from(u.home)].apply_owner_update(
                        u.tuple,
                        u.owner,
                        Owner::Core(u.from),
                    );
                }
            }
            deliver(&mut self.client, self.now, &to_client);
            if to_server.is_empty() && to_client.is_empty() {
                return;
            }
        }
        panic!("never quiet");
    }

    fn server_conn(&self, core: usize) -> Option<ConnId> {
        self.cores[core].connection_ids().first().copied()
    }

    fn move_conn(&mut self, from: usize, to: usize) -> Result<ConnId, MigrateError> {
        let id = self.server_conn(from).expect("a connection");
        let (a, b) = self.cores.split_at_mut(1);
        let (src, dst) = if from == 0 {
            (&mut a[0], &mut b[0])
        } else {
            (&mut b[0], &mut a[0])
        };
        let (app_src, app_dst) = {
            let (x, y) = self.apps.split_at_mut(1);
            if from == 0 {
                (&mut x[0], &mut y[0])
            } else {
                (&mut y[0], &mut x[0])
            }
        };
        let m = src.migrate_out(self.now, id, Owner::Core(to as u16), app_src)?;
        dst.migrate_in(self.now, m, app_dst).map_err(|(_, e)| e)
    }
}

fn connect(c: &mut Cores) -> (ConnId, usize) {
    let client = c.client.connect(c.now, Pair::server_addr()).unwrap();
    c.exchange(0);
    let tuple = c.client.connection(client).unwrap().tuple().reversed();
    let home = usize::from(c.steer.home(&tuple));
    assert!(c.server_conn(home).is_some(), "accepted on its home core");
    (client, home)
}

#[test]
fn a_connection_moves_and_back_with_its_bytes_and_state() {
    let mut c = Cores::new();
    let (client, home) = connect(&mut c);
    let other = 1 - home;
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let mut sent = 0;
    for round in 0..6 {
        // Data in flight and unread when each move happens.
        sent += Ctx::new(&mut c.client, c.now)
            .send(client, &data[sent..(sent + 30_000).min(data.len())])
            .unwrap();
        let frames = flush(&mut c.client, &mut c.client_app, c.now);
        for f in &frames[..frames.len() / 2] {
            c.deliver_to_server(f, home);
        }
        let (from, to) = if round % 2 == 0 {
            (home, other)
        } else {
            (other, home)
        };
        let new_id = c.move_conn(from, to).expect("moved");
        assert!(c.cores[from].connection_ids().is_empty());
        assert_eq!(
            c.apps[to].adopted.last(),
            Some(&(new_id, Some(SERVER_PORT)))
        );
        // The rest arrive at the old owner's queue: handed on.
        for f in &frames[frames.len() / 2..] {
            let path = c.deliver_to_server(f, from);
            assert_eq!(path.last(), Some(&to), "{path:?}");
        }
        c.now += Duration::from_millis(1);
        c.exchange(home);
    }
    c.exchange(other);
    let total: u64 = c.apps.iter().flat_map(|a| a.read.values()).sum();
    assert_eq!(total as usize, sent, "the count moved with the connection");
    assert!(
        *c.apps[0].bytes.borrow() == data[..sent],
        "the stream across the moves is byte-exact"
    );
    assert_eq!(
        c.cores[0].migration_counters().out + c.cores[1].migration_counters().out,
        6
    );
    assert_eq!(
        c.cores[0].migration_counters().in_ + c.cores[1].migration_counters().in_,
        6
    );
    // The peer saw no reset and no error.
    assert!(c.client_app.closed(client).is_none());
    assert_eq!(
        c.client.connection(client).map(|x| x.state()),
        Some(State::Established)
    );
}

#[test]
fn segments_follow_the_connection_from_any_core() {
    let mut c = Cores::new();
    let (client, home) = connect(&mut c);
    let other = 1 - home;
    c.move_conn(home, other).expect("moved");
    // The home core learned nothing yet from an update (the origin was the home): it has
    // its own redirect. A segment arriving on either core ends on the owner.
    Ctx::new(&mut c.client, c.now)
        .send(client, b"ping")
        .unwrap();
    let frames = flush(&mut c.client, &mut c.client_app, c.now);
    for rx in [home, other] {
        for f in &frames {
            assert_eq!(c.deliver_to_server(f, rx).last(), Some(&other));
        }
    }
    // Moved on from a core that is not the home: the home follows the owner update.
    c.exchange(other);
    let back = c.move_conn(other, home).expect("moved back");
    assert!(c.cores[home].connection(back).is_some());
    assert!(
        c.cores[0].migration_counters().redirected + c.cores[1].migration_counters().redirected
            >= 1
    );
}

#[test]
fn refused_moves_change_nothing() {
    let mut c = Cores::new();
    let (client, home) = connect(&mut c);
    let other = 1 - home;
    // The application refuses: the connection stays and keeps working.
    c.apps[home].refuse_export = true;
    assert_eq!(
        c.move_conn(home, other),
        Err(MigrateError::Refused(Refusal::NotNow("test refuses")))
    );
    assert_eq!(c.cores[home].migration_counters().refused_app, 1);
    Ctx::new(&mut c.client, c.now)
        .send(client, b"still here")
        .unwrap();
    c.exchange(home);
    assert_eq!(*c.apps[home].bytes.borrow(), b"still here");
    c.apps[home].refuse_export = false;
    // To the same core: refused.
    let id = c.server_conn(home).unwrap();
    assert_eq!(
        c.cores[home]
            .migrate_out(c.now, id, Owner::Core(home as u16), &mut c.apps[home])
            .err(),
        Some(MigrateError::SameCore)
    );
    // The destination refuses to import: the migration comes back whole and the origin
    // takes it back.
    c.apps[other].refuse_import = true;
    let m = c.cores[home]
        .migrate_out(c.now, id, Owner::Core(other as u16), &mut c.apps[home])
        .unwrap();
    let (m, e) = c.cores[other]
        .migrate_in(c.now, m, &mut c.apps[other])
        .unwrap_err();
    assert_eq!(e, MigrateError::Refused(Refusal::NotNow("test refuses")));
    assert!(c.cores[other].connection_ids().is_empty());
    assert_eq!(c.cores[other].migration_counters().failed_app, 1);
    let back = c.cores[home]
        .migrate_in(c.now, *m, &mut c.apps[home])
        .expect("taken back");
    Ctx::new(&mut c.client, c.now).send(client, b"!").unwrap();
    c.exchange(other);
    assert!(c.cores[home].connection(back).is_some());
    assert_eq!(*c.apps[home].bytes.borrow(), b"still here!");
}

#[test]
fn only_synchronized_connections_move() {
    let mut c = Cores::new();
    // A client connection in SYN-SENT.
    let id = c.client.connect(c.now, Pair::server_addr()).unwrap();
    let mut app = Counting::default();
    assert_eq!(
        c.client.check_movable(id),
        Err(MigrateError::NotMovable(State::SynSent))
    );
    // (The client stack is alone: a move has nowhere to go; its state refuses first.)
    assert!(c
        .client
        .migrate_out(c.now, id, Owner::Core(1), &mut app)
        .is_err());
}

#[test]
fn bad_records_are_refused_and_counted() {
    let mut c = Cores::new();
    let (_, home) = connect(&mut c);
    let other = 1 - home;
    let id = c.server_conn(home).unwrap();
    let m = c.cores[home]
        .migrate_out(c.now, id, Owner::Core(other as u16), &mut c.apps[home])
        .unwrap();
    let tuple = m.conn.tuple;
    for (what, mutate, expect) in [
        (
            "unacked beyond SND.NXT",
            Box::new(|m: &mut Migration| m.conn.snd_una = m.conn.snd_nxt + 10)
                as Box<dyn Fn(&mut Migration)>,
            MigrateError::Invalid(RestoreError::SendSequence),
        ),
        (
            "window scale 40",
            Box::new(|m: &mut Migration| m.conn.rcv_wscale = 40),
            MigrateError::Invalid(RestoreError::Options),
        ),
        (
            "snapshot too large",
            Box::new(|m: &mut Migration| m.app = vec![0; engine::migrate::MAX_APP_SNAPSHOT + 1]),
            MigrateError::SnapshotTooLarge,
        ),
    ] {
        let mut bad = m.clone();
        mutate(&mut bad);
        let (back, e) = c.cores[other]
            .migrate_in(c.now, bad, &mut c.apps[other])
            .unwrap_err();
        assert_eq!(e, expect, "{what}");
        assert_eq!(back.flow, FlowId::of(&tuple));
        assert!(c.cores[other].connection_ids().is_empty(), "{what}");
    }
    assert_eq!(c.cores[other].migration_counters().failed_invalid, 2);
    // The good one still goes in.
    c.cores[other]
        .migrate_in(c.now, m, &mut c.apps[other])
        .expect("valid");
    // And the same 4-tuple twice is refused.
    let id = c.server_conn(other).unwrap();
    let again = c.cores[other]
        .migrate_out(c.now, id, Owner::Core(home as u16), &mut c.apps[other])
        .unwrap();
    let mut copy = again.clone();
    copy.app = 7u64.to_le_bytes().to_vec();
    c.cores[home]
        .migrate_in(c.now, again, &mut c.apps[home])
        .expect("in");
    assert_eq!(
        c.cores[home]
            .migrate_in(c.now, copy, &mut c.apps[home])
            .unwrap_err()
            .1,
        MigrateError::Occupied
    );
}
