//! Moves between engines on the simulated wire (issue 10): two engines A and B joined by
//! the state channel (carried on their own TCP), a client downloading from A, the
//! connection moved to B (and back) while the client keeps reading, under loss and delay;
//! B refusing a move (its application, or no room); B dying at each step of a move;
//! forged, replayed and truncated channel input. The invariant throughout: a connection
//! has exactly one owner, and a client whose connection's owner lives gets every byte, in
//! order.
use std::collections::BTreeMap;
use std::net::SocketAddrV4;

use crossbeam::channel::Receiver;
use engine::channel::{ClusterKey, Message, Role as ChannelRole, Session};
use engine::control::{control_queue, Command, ControlSender, Reply, Request, Which};
use engine::migrate::{FlowId, Owner};
use engine::poll::{ChannelConfig, MemoryLane, PeerAddr, PeerStatus};
use engine::sim::endpoint::{endpoint_ip, endpoint_mac, engine_host, BulkApp, EngineHost, Pattern};
use engine::sim::{Faults, Host, Network};
use engine::stack::{App, ConnId, Ctx, Event, MigrateError, Refusal, StackConfig};
use engine::time::{Duration, Instant};

const CLIENT: u8 = 1;
const A: u8 = 2;
const B: u8 = 3;
const MALLORY: u8 = 4;
const HTTP: u16 = 80;
const CHANNEL: u16 = 7000;
const DOWNLOAD_SEED: u64 = 0xd0d0;
const KEY: &[u8; 32] = b"0123456789abcdef0123456789abcdef";

/// Serves each connection `len` bytes of a [`Pattern`], then closes; moves its state (the
/// offset reached) with the connection. With `refuse_imports`, it takes no connection in
/// (its import says no, as an application without room or of another version would).
#[derive(Debug, Default)]
struct Source {
    len: u64,
    conns: BTreeMap<ConnId, (u64, bool)>,
    scratch: Vec<u8>,
    refuse_imports: bool,
}

impl Source {
    fn pump(&mut self, cx: &mut Ctx<'_>, id: ConnId) {
        let Some(&(mut off, mut closed)) = self.conns.get(&id) else {
            return;
        };
        while off < self.len {
            let n = cx
                .send_capacity(id)
                .min(16 * 1024)
                .min((self.len - off) as usize);
            if n == 0 {
                break;
            }
            self.scratch.resize(n, 0);
            Pattern::new(DOWNLOAD_SEED).fill(off, &mut self.scratch);
            let sent = cx.send(id, &self.scratch).unwrap_or(0);
            off += sent as u64;
            if sent < n {
                break;
            }
        }
        if off == self.len && !closed {
            closed = cx.close(id).is_ok();
        }
        self.conns.insert(id, (off, closed));
    }
}

impl App for Source {
    fn on_event(&mut self, cx: &mut Ctx<'_>, conn: ConnId, event: Event) {
        match event {
            Event::Accepted { .. } => {
                self.conns.insert(conn, (0, false));
                self.pump(cx, conn);
            }
            Event::Writable | Event::Adopted { .. } => self.pump(cx, conn),
            Event::Readable => {
                let mut buf = [0u8; 512];
                while cx.recv(conn, &mut buf).unwrap_or(0) > 0 {}
            }
            Event::Closed { .. } => {
                self.conns.remove(&conn);
            }
            _ => {}
        }
    }

    fn export(&mut self, _: &mut Ctx<'_>, conn: ConnId, out: &mut Vec<u8>) -> Result<(), Refusal> {
        let (off, closed) = self.conns.remove(&conn).ok_or(Refusal::BadSnapshot)?;
        out.extend_from_slice(&off.to_le_bytes());
        out.push(u8::from(closed));
        Ok(())
    }

    fn import(&mut self, _: &mut Ctx<'_>, conn: ConnId, snapshot: &[u8]) -> Result<(), Refusal> {
        if self.refuse_imports {
            return Err(Refusal::NotNow("takes no connection in"));
        }
        if snapshot.len() != 9 {
            return Err(Refusal::BadSnapshot);
        }
        let off = u64::from_le_bytes(snapshot[..8].try_into().map_err(|_| Refusal::BadSnapshot)?);
        self.conns.insert(conn, (off, snapshot[8] == 1));
        Ok(())
    }
}

/// A member of the cluster gone bad (it holds the key): opens links to B and sends what
/// a broken or hostile engine would. Each attempt is a connection of its own.
#[derive(Debug)]
struct Mallory {
    attempts: Vec<Attempt>,
    current: Option<(ConnId, Session, Vec<u8>)>,
    /// Answers B sent (after its hello), per attempt.
    answers: Vec<Vec<Message>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    /// A hello sealed with another key.
    WrongKey,
    /// A proper handshake, then one heartbeat sent twice.
    Replay,
    /// A proper handshake, then a record cut short (authentic, but not a record).
    TruncatedRecord,
}

impl Mallory {
    fn next(&mut self, cx: &mut Ctx<'_>) {
        if self.attempts.is_empty() {
            return;
        }
        let attempt = self.attempts[0];
        let key = match attempt {
            Attempt::WrongKey => ClusterKey::new(&[7u8; 32]).unwrap(),
            _ => ClusterKey::new(KEY).unwrap(),
        };
        let conn = cx
            .connect(SocketAddrV4::new(endpoint_ip(B), CHANNEL))
            .unwrap();
        self.answers.push(Vec::new());
        self.current = Some((
            conn,
            Session::new(ChannelRole::Initiator, key, "m", [9; 16]),
            Vec::new(),
        ));
    }
}

impl App for Mallory {
    fn on_event(&mut self, cx: &mut Ctx<'_>, conn: ConnId, event: Event) {
        let Some((id, session, rx)) = self.current.as_mut() else {
            return;
        };
        if *id != conn {
            return;
        }
        match event {
            Event::Connected => {
                let mut hello = Vec::new();
                session.hello(&mut hello);
                cx.send(conn, &hello).unwrap();
            }
            Event::Readable => {
                let mut buf = [0u8; 4096];
                loop {
                    let n = cx.recv(conn, &mut buf).unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    rx.extend_from_slice(&buf[..n]);
                }
                while let Ok((msg, used)) = session.open(rx) {
                    rx.drain(..used);
                    if let Message::Hello { .. } = msg {
                        let mut out = Vec::new();
                        match self.attempts[0] {
                            Attempt::WrongKey => {}
                            Attempt::Replay => {
                                session
                                    .seal(&Message::Heartbeat { now_ms: 1 }, &mut out)
                                    .unwrap();
                                let again = out.clone();
                                out.extend_from_slice(&again);
                            }
                            Attempt::TruncatedRecord => {
                                session
                                    .seal(
                                        &Message::Record {
                                            ticket: 77,
                                            record: vec![0x4d, 0x47, 0x52, 1, 0, 0],
                                        },
                                        &mut out,
                                    )
                                    .unwrap();
                            }
                        }
                        cx.send(conn, &out).unwrap();
                    } else if !matches!(msg, Message::Heartbeat { .. }) {
                        self.answers.last_mut().unwrap().push(msg);
                    }
                }
                if self.attempts[0] == Attempt::TruncatedRecord
                    && !self.answers.last().unwrap().is_empty()
                {
                    let _ = cx.close(conn);
                }
            }
            Event::Closed { .. } => {
                self.current = None;
                self.attempts.remove(0);
                self.next(cx);
            }
            _ => {}
        }
    }
}

#[derive(Debug)]
enum TestApp {
    Client(BulkApp),
    Server(Source),
    Mallory(Mallory),
}

impl App for TestApp {
    fn on_event(&mut self, cx: &mut Ctx<'_>, conn: ConnId, event: Event) {
        match self {
            TestApp::Client(a) => a.on_event(cx, conn, event),
            TestApp::Server(a) => a.on_event(cx, conn, event),
            TestApp::Mallory(a) => a.on_event(cx, conn, event),
        }
    }
    fn export(&mut self, cx: &mut Ctx<'_>, conn: ConnId, out: &mut Vec<u8>) -> Result<(), Refusal> {
        match self {
            TestApp::Server(a) => a.export(cx, conn, out),
            _ => Err(Refusal::Unsupported),
        }
    }
    fn import(&mut self, cx: &mut Ctx<'_>, conn: ConnId, snapshot: &[u8]) -> Result<(), Refusal> {
        match self {
            TestApp::Server(a) => a.import(cx, conn, snapshot),
            _ => Err(Refusal::Unsupported),
        }
    }
}

/// A host that can be killed: from then on it neither hears nor says anything (a process
/// gone with SIGKILL). With `pinned`, every IPv4 frame it sends goes to that MAC address,
/// whoever answered: a Linux client, whose neighbour entry for the server's address names
/// the origin engine until ARP says otherwise (so moved flows reach the destination only
/// through the origin's forwarding).
struct Killable {
    host: EngineHost<TestApp>,
    dead: bool,
    pinned: Option<[u8; 6]>,
}

impl Host for Killable {
    fn mac(&self) -> [u8; 6] {
        self.host.mac()
    }
    fn receive(&mut self, now: Instant, frame: &[u8]) {
        if !self.dead {
            self.host.receive(now, frame);
        }
    }
    fn transmit(&mut self, now: Instant, out: &mut dyn FnMut(&[u8])) {
        if self.dead {
            return;
        }
        match self.pinned {
            None => self.host.transmit(now, out),
            Some(mac) => self.host.transmit(now, &mut |frame| {
                let mut f = frame.to_vec();
                if f.len() >= 14 && f[12..14] == [0x08, 0x00] {
                    f[..6].copy_from_slice(&mac);
                }
                out(&f)
            }),
        }
    }
    fn poll_timeout(&self) -> Option<Instant> {
        if self.dead {
            None
        } else {
            self.host.poll_timeout()
        }
    }
    fn handle_timeout(&mut self, now: Instant) {
        if !self.dead {
            self.host.handle_timeout(now);
        }
    }
}

type Engine = engine::poll::Engine<engine::sim::SimPort, TestApp, engine::steer::NoSteer>;

fn channel(name: &str, peers: &[(&str, u8)]) -> ChannelConfig {
    ChannelConfig {
        name: name.into(),
        port: CHANNEL,
        peers: peers
            .iter()
            .map(|&(n, host)| PeerAddr {
                name: n.into(),
                addr: SocketAddrV4::new(endpoint_ip(host), CHANNEL),
            })
            .collect(),
        key: ClusterKey::new(KEY).unwrap(),
    }
}

struct Lab {
    net: Network<Killable>,
    hosts: BTreeMap<u8, engine::sim::HostId>,
    control: BTreeMap<u8, ControlSender>,
}

impl Lab {
    /// A client downloading `len` bytes from A; A and B in one cluster (and Mallory, a
    /// member B knows, when `mallory` is given).
    fn new(seed: u64, len: u64, faults: Faults, mallory: Option<Vec<Attempt>>) -> Lab {
        Lab::with_b_config(seed, len, faults, mallory, StackConfig::default())
    }

    /// [`Lab::new`], B's stack configured with `b_config`.
    fn with_b_config(
        seed: u64,
        len: u64,
        faults: Faults,
        mallory: Option<Vec<Attempt>>,
        b_config: StackConfig,
    ) -> Lab {
        let mut net: Network<Killable> = Network::new(seed);
        net.set_faults(faults).unwrap();
        let all = [CLIENT, A, B, MALLORY];
        let mut hosts = BTreeMap::new();
        let mut control = BTreeMap::new();
        let mut add = |net: &mut Network<Killable>, n: u8, app: TestApp| {
            let neighbours: Vec<u8> = all.iter().copied().filter(|&m| m != n).collect();
            let config = if n == B {
                b_config.clone()
            } else {
                StackConfig::default()
            };
            let host = engine_host(n, config, seed + u64::from(n), app, &neighbours);
            let pinned = (n == CLIENT).then(|| endpoint_mac(A).0);
            let id = net
                .add_host(Killable {
                    host,
                    dead: false,
                    pinned,
                })
                .unwrap();
            hosts.insert(n, id);
        };
        let client = BulkApp::connect(
            SocketAddrV4::new(endpoint_ip(A), HTTP),
            1,
            0,
            DOWNLOAD_SEED,
            len,
        );
        add(
            &mut net,
            A,
            TestApp::Server(Source {
                len,
                ..Source::default()
            }),
        );
        add(
            &mut net,
            B,
            TestApp::Server(Source {
                len,
                ..Source::default()
            }),
        );
        add(&mut net, CLIENT, TestApp::Client(client));
        if let Some(attempts) = &mallory {
            add(
                &mut net,
                MALLORY,
                TestApp::Mallory(Mallory {
                    attempts: attempts.clone(),
                    current: None,
                    answers: Vec::new(),
                }),
            );
        }
        let mut lab = Lab {
            net,
            hosts,
            control: BTreeMap::new(),
        };
        let b_peers: Vec<(&str, u8)> = if mallory.is_some() {
            vec![("a", A), ("m", MALLORY)]
        } else {
            vec![("a", A)]
        };
        for (n, name, peers) in [(A, "a", vec![("b", B)]), (B, "b", b_peers)] {
            let e = lab.engine(n);
            e.set_channel(channel(name, &peers), u64::from(n) * 1000)
                .unwrap();
            let (tx, rx) = control_queue();
            e.set_control(rx);
            control.insert(n, tx);
            e.with_ctx(Instant::ZERO, |_, cx| cx.listen(HTTP)).unwrap();
        }
        lab.control = control;
        lab.engine(CLIENT)
            .with_ctx(Instant::ZERO, |app, cx| match app {
                TestApp::Client(c) => c.start(cx),
                _ => unreachable!(),
            })
            .unwrap();
        lab
    }

    /// Joins A and B by same-host lanes (in-process ones), before their first poll: they
    /// open no TCP link to each other.
    fn join_by_lanes(&mut self) {
        let (a_opens, b_accepts) = MemoryLane::pair(1 << 20);
        let (b_opens, a_accepts) = MemoryLane::pair(1 << 20);
        self.engine(A).add_lane(0, Box::new(a_opens));
        self.engine(A).add_lane(0, Box::new(a_accepts));
        self.engine(B).add_lane(0, Box::new(b_opens));
        self.engine(B).add_lane(0, Box::new(b_accepts));
    }

    fn engine(&mut self, n: u8) -> &mut Engine {
        let id = self.hosts[&n];
        self.net.host_mut(id).unwrap().host.driver_mut()
    }

    fn engine_ref(&self, n: u8) -> &Engine {
        self.net.host(self.hosts[&n]).unwrap().host.driver()
    }

    fn kill(&mut self, n: u8) {
        let id = self.hosts[&n];
        self.net.host_mut(id).unwrap().dead = true;
    }

    fn client(&self) -> engine::sim::endpoint::BulkStats {
        match self.engine_ref(CLIENT).app() {
            TestApp::Client(c) => c.stats(),
            _ => unreachable!(),
        }
    }

    /// Runs until `done` holds or `limit` of virtual time passed; returns whether it held.
    fn run_until(&mut self, limit: Duration, done: impl Fn(&Lab) -> bool) -> bool {
        let until = self.net.now() + limit;
        while self.net.now() < until {
            if done(self) {
                return true;
            }
            let step =
                Duration::from_micros(100).min(until.saturating_duration_since(self.net.now()));
            self.net.run_for(step).unwrap();
        }
        done(self)
    }

    fn links_up(&self) -> bool {
        self.engine_ref(A).peers().unwrap().is_up(0) && self.engine_ref(B).peers().unwrap().is_up(0)
    }

    /// Asks engine `from` to move all its connections to its peer 0 (`to_peer`).
    fn migrate_all(&mut self, from: u8) -> Receiver<Reply> {
        let (tx, rx) = crossbeam::channel::unbounded();
        self.control[&from]
            .send(Request {
                command: Command::Migrate {
                    which: Which::All,
                    to: Owner::Peer(0),
                },
                reply: tx,
                deadline: None,
            })
            .unwrap();
        rx
    }

    /// Connections of the application (not the channel's links) held by engine `n`.
    fn user_connections(&self, n: u8) -> usize {
        match self.engine_ref(n).app() {
            TestApp::Server(s) => s.conns.len(),
            _ => 0,
        }
    }

    /// Makes engine `n`'s application refuse (or take again) the connections moved to it.
    fn refuse_imports(&mut self, n: u8, refuse: bool) {
        match self.engine(n).app_mut() {
            TestApp::Server(s) => s.refuse_imports = refuse,
            _ => unreachable!(),
        }
    }

    /// Engine `n`'s figures for its peer 0 (A's is B, B's is A).
    fn peer_figures(&self, n: u8) -> PeerStatus {
        self.engine_ref(n).peer_status(self.net.now()).remove(0)
    }

    fn figure(&self, n: u8, name: &str) -> u64 {
        let e = self.engine_ref(n);
        e.channel_figures()
            .into_iter()
            .chain(e.stack().migration_counters().iter())
            .chain(e.stack().listener_figures())
            .find(|(k, _)| *k == name)
            .map_or(0, |(_, v)| v)
    }
}

/// Waits for the answer to a move request while the network runs.
fn await_moves(lab: &mut Lab, rx: &Receiver<Reply>) -> Vec<engine::control::MoveResult> {
    let mut got = None;
    lab.run_until(Duration::from_secs(10), |_| !rx.is_empty());
    if let Ok(Reply::Moves { results, .. }) = rx.try_recv() {
        got = Some(results);
    }
    got.expect("the move request was answered")
}

#[test]
fn a_download_moves_to_a_peer_and_completes() {
    let len = 3 << 20;
    let faults = Faults::none().with_delay(Duration::from_micros(50), Duration::ZERO);
    let mut lab = Lab::new(1, len, faults, None);
    assert!(
        lab.run_until(Duration::from_secs(3), Lab::links_up),
        "links come up"
    );
    assert!(lab.run_until(Duration::from_secs(10), |l| l.client().received > len / 3));
    let rx = lab.migrate_all(A);
    let results = await_moves(&mut lab, &rx);
    assert_eq!(results.len(), 1, "{results:?}");
    assert!(results[0].outcome.is_ok(), "{results:?}");
    assert_eq!(results[0].to, Owner::Peer(0));
    assert_eq!((lab.user_connections(A), lab.user_connections(B)), (0, 1));
    assert!(lab.run_until(Duration::from_secs(30), |l| l.client().complete()));
    let c = lab.client();
    assert_eq!((c.received, c.mismatch_at, c.error), (len, None, None));
    assert_eq!(lab.figure(A, "migrations_out"), 1);
    assert_eq!(lab.figure(B, "migrations_in"), 1);
    // The client kept sending to A's MAC address: A forwarded, B took the frames in.
    assert!(lab.figure(A, "channel_frames_forwarded") > 0);
    // Once the connection ended on B, A heard of it and dropped its redirect.
    assert!(lab.run_until(Duration::from_secs(5), |l| l
        .figure(A, "peer_flows_forwarded")
        == 0
        && l.figure(B, "peer_flows_adopted") == 0));
    assert_eq!(
        lab.figure(B, "channel_frames_received"),
        lab.figure(A, "channel_frames_forwarded")
    );
}

#[test]
fn a_download_moves_over_a_same_host_lane_and_completes() {
    let len = 3 << 20;
    let faults = Faults::none().with_delay(Duration::from_micros(50), Duration::ZERO);
    let mut lab = Lab::new(5, len, faults, None);
    lab.join_by_lanes();
    assert!(
        lab.run_until(Duration::from_secs(3), Lab::links_up),
        "lanes come up"
    );
    let mut latencies = Vec::new();
    for (i, from) in [A, B, A].into_iter().enumerate() {
        let at = len * (i as u64 + 1) / 4;
        assert!(lab.run_until(Duration::from_secs(10), |l| l.client().received > at));
        let rx = lab.migrate_all(from);
        let results = await_moves(&mut lab, &rx);
        assert_eq!(results.len(), 1, "{results:?}");
        latencies.push(results[0].outcome.expect("moved"));
    }
    assert_eq!((lab.user_connections(A), lab.user_connections(B)), (0, 1));
    assert!(lab.run_until(Duration::from_secs(30), |l| l.client().complete()));
    let c = lab.client();
    assert_eq!((c.received, c.mismatch_at, c.error), (len, None, None));
    // The channel ran on the lanes alone: neither engine opened or accepted a link over
    // TCP (the stack's own counters), and the lanes carried the moves and the frames.
    for n in [A, B] {
        let tcp = lab.engine_ref(n).stack().tcp_counters();
        let opened = tcp.iter().find(|(k, _)| *k == "tcp_opened").map(|(_, v)| v);
        assert_eq!(opened, Some(0), "engine {n} opened a TCP connection");
    }
    assert!(lab.figure(A, "channel_frames_forwarded") > 0);
    // A move over a lane costs no network round trip: each message waits at most for
    // the peer's next look at its lanes.
    for l in &latencies {
        assert!(*l < Duration::from_millis(2), "freeze to adopted {l:?}");
    }
}

/// B's application refuses the connection A moves to it (its import says no): B undoes
/// the adoption and answers the record with a refusal, A takes its frozen copy back and
/// serves on. The connection has one owner throughout (A), the refusal is counted on both
/// sides, and once B's application takes connections again the same connection moves
/// there and the download ends byte-exact.
#[test]
fn a_move_the_destination_application_refuses_stays_with_the_origin() {
    let len = 4 << 20;
    let faults = Faults::none().with_delay(Duration::from_micros(50), Duration::ZERO);
    let mut lab = Lab::new(6, len, faults, None);
    lab.refuse_imports(B, true);
    assert!(lab.run_until(Duration::from_secs(3), Lab::links_up));
    assert!(lab.run_until(Duration::from_secs(10), |l| l.client().received > len / 4));
    let rx = lab.migrate_all(A);
    let results = await_moves(&mut lab, &rx);
    assert_eq!(results.len(), 1, "{results:?}");
    // Refused at the record, by the application: A had frozen the connection and sent
    // it, then took it back (a refusal at the prepare would take nothing back); it never
    // left, so it is not counted as moved out.
    assert_eq!(results[0].outcome, Err(MigrateError::PeerRefused));
    assert_eq!(results[0].to, Owner::Peer(0));
    let flow = results[0].flow;
    assert_eq!(lab.figure(A, "migrations_taken_back"), 1);
    assert_eq!(lab.figure(A, "migrations_out"), 0);
    assert_eq!(lab.figure(A, "migrations_in"), 0);
    // B counted an application refusal, and a refusal from A; it adopted nothing.
    assert_eq!(lab.figure(B, "migrations_failed_app"), 1);
    assert_eq!(lab.figure(B, "migrations_in"), 0);
    let b = lab.peer_figures(B);
    assert_eq!((b.moved_in, b.refused_in), (0, 1), "{b:?}");
    // A counted a failed move to B, and took its copy back in.
    let a = lab.peer_figures(A);
    assert_eq!((a.moved_out, a.failed_out), (0, 1), "{a:?}");
    assert_eq!(lab.engine_ref(A).migrations_lost(), 0);
    // Between its freeze and the refusal A forwarded the client's segments to B.
    let forwarded = lab.figure(A, "channel_frames_forwarded");
    assert!(forwarded > 0);
    // One owner: A holds the connection (stack and application), B nothing of it; A
    // forwards nothing to B any more.
    assert!(lab.engine_ref(A).stack().find_flow(flow).is_some());
    assert!(lab.engine_ref(B).stack().find_flow(flow).is_none());
    assert_eq!((lab.user_connections(A), lab.user_connections(B)), (1, 0));
    assert_eq!(lab.figure(A, "peer_flows_forwarded"), 0);
    assert_eq!(lab.figure(B, "peer_flows_adopted"), 0);
    // A serves on, alone: the client gets more, correct, and nothing reached B since.
    let received = lab.client().received;
    assert!(
        lab.run_until(Duration::from_secs(10), |l| l.client().received > len / 2),
        "{:?}",
        lab.client()
    );
    assert!(lab.client().received > received);
    assert_eq!(lab.figure(A, "channel_frames_forwarded"), forwarded);
    let c = lab.client();
    assert_eq!((c.mismatch_at, c.error), (None, None), "{c:?}");
    // B dropped what A forwarded (A's connection's segments, not B's to answer): none
    // was injected, and B's listener, which takes A's address too, reset nothing.
    assert_eq!(lab.figure(B, "channel_stale_messages"), forwarded);
    assert_eq!(lab.figure(B, "channel_frames_received"), 0);
    assert_eq!(lab.figure(B, "listen_resets_sent"), 0);
    assert!(lab.engine_ref(A).stack().find_flow(flow).is_some());
    assert!(lab.engine_ref(B).stack().find_flow(flow).is_none());
    // B's application takes connections again: the same connection moves there.
    lab.refuse_imports(B, false);
    let rx = lab.migrate_all(A);
    let results = await_moves(&mut lab, &rx);
    assert_eq!(results.len(), 1, "{results:?}");
    assert!(results[0].outcome.is_ok(), "{results:?}");
    assert_eq!(results[0].flow, flow);
    assert!(lab.engine_ref(A).stack().find_flow(flow).is_none());
    assert!(lab.engine_ref(B).stack().find_flow(flow).is_some());
    assert_eq!((lab.user_connections(A), lab.user_connections(B)), (0, 1));
    let b = lab.peer_figures(B);
    assert_eq!((b.moved_in, b.refused_in), (1, 1), "{b:?}");
    let a = lab.peer_figures(A);
    assert_eq!((a.moved_out, a.failed_out), (1, 1), "{a:?}");
    assert_eq!(lab.figure(B, "migrations_in"), 1);
    assert!(lab.run_until(Duration::from_secs(30), |l| l.client().complete()));
    let c = lab.client();
    assert_eq!((c.received, c.mismatch_at, c.error), (len, None, None));
}

/// B has no room (its connection limit reached by the channel's two links): it refuses
/// at the prepare, before A froze anything. A never stopped serving the connection, only
/// counts the failure, and the download ends byte-exact.
#[test]
fn a_move_the_destination_has_no_room_for_is_refused_before_the_freeze() {
    let len = 3 << 20;
    let faults = Faults::none().with_delay(Duration::from_micros(50), Duration::ZERO);
    let b_config = StackConfig {
        max_connections: 2,
        ..StackConfig::default()
    };
    let mut lab = Lab::with_b_config(7, len, faults, None, b_config);
    assert!(lab.run_until(Duration::from_secs(3), Lab::links_up));
    assert_eq!(lab.engine_ref(B).stack().connection_count(), 2);
    assert!(lab.run_until(Duration::from_secs(10), |l| l.client().received > len / 3));
    let rx = lab.migrate_all(A);
    let results = await_moves(&mut lab, &rx);
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0].outcome, Err(MigrateError::PeerRefused));
    let flow = results[0].flow;
    // Nothing was frozen, sent, forwarded or taken back; B's stack saw no record.
    for name in [
        "migrations_out",
        "migrations_in",
        "migrations_taken_back",
        "channel_frames_forwarded",
    ] {
        assert_eq!(lab.figure(A, name), 0, "{name}");
    }
    for name in [
        "migrations_failed_app",
        "migrations_failed_invalid",
        "migrations_failed_table",
    ] {
        assert_eq!(lab.figure(B, name), 0, "{name}");
    }
    let (a, b) = (lab.peer_figures(A), lab.peer_figures(B));
    assert_eq!((a.moved_out, a.failed_out), (0, 1), "{a:?}");
    assert_eq!((b.moved_in, b.refused_in), (0, 1), "{b:?}");
    assert!(lab.engine_ref(A).stack().find_flow(flow).is_some());
    assert!(lab.engine_ref(B).stack().find_flow(flow).is_none());
    assert_eq!((lab.user_connections(A), lab.user_connections(B)), (1, 0));
    assert!(lab.run_until(Duration::from_secs(30), |l| l.client().complete()));
    let c = lab.client();
    assert_eq!((c.received, c.mismatch_at, c.error), (len, None, None));
}

#[test]
fn moves_back_and_forth_under_loss_lose_nothing() {
    let len = 8 << 20;
    let faults = Faults::none()
        .with_delay(Duration::from_micros(100), Duration::from_micros(50))
        .with_bandwidth(50_000_000)
        .with_loss(0.02);
    let mut lab = Lab::new(2, len, faults, None);
    assert!(lab.run_until(Duration::from_secs(5), Lab::links_up));
    let mut at = A;
    for k in 1..=3u64 {
        assert!(
            lab.run_until(Duration::from_secs(60), |l| l.client().received
                > len * k / 5)
        );
        let rx = lab.migrate_all(at);
        let results = await_moves(&mut lab, &rx);
        assert!(
            results.len() == 1 && results[0].outcome.is_ok(),
            "move {k}: {results:?} client {:?} at {:?}",
            lab.client(),
            lab.net.now()
        );
        at = if at == A { B } else { A };
        assert_eq!(lab.user_connections(at), 1);
    }
    assert!(lab.run_until(Duration::from_secs(120), |l| l.client().complete()));
    let c = lab.client();
    assert_eq!((c.received, c.mismatch_at, c.error), (len, None, None));
}

#[test]
fn a_peer_dying_at_any_step_leaves_one_owner() {
    let len = 2 << 20;
    // B dies this long after the move was asked for: before the prepare arrives, between
    // ready and record, after adoption.
    let mut outcomes = Vec::new();
    for (i, kill_after_us) in [
        0u64, 100, 200, 400, 1_000, 5_000, 20_000, 60_000, 150_000, 300_000,
    ]
    .into_iter()
    .enumerate()
    {
        let faults = Faults::none()
            .with_delay(Duration::from_micros(50), Duration::ZERO)
            .with_bandwidth(50_000_000);
        let mut lab = Lab::new(10 + i as u64, len, faults, None);
        assert!(lab.run_until(Duration::from_secs(3), Lab::links_up));
        assert!(lab.run_until(Duration::from_secs(10), |l| l.client().received > len / 4));
        let rx = lab.migrate_all(A);
        let kill_at = lab.net.now() + Duration::from_micros(kill_after_us);
        lab.run_until(Duration::from_secs(1), |l| l.net.now() >= kill_at);
        let b_adopted = lab.figure(B, "migrations_in") == 1;
        let done_before = lab.client().complete();
        lab.kill(B);
        let results = await_moves(&mut lab, &rx);
        assert_eq!(results.len(), 1);
        if b_adopted && results[0].outcome.is_err() {
            // B adopted, then died before its answer reached A: A took its copy back and
            // is the only live owner (what B may have sent meanwhile is lost with B).
            assert_eq!(lab.user_connections(A), 1, "{kill_after_us} us");
        } else if b_adopted {
            // B held it when it died: A gave it up for good (it must not come back to
            // life beside a copy that may have sent data), and the download dies with B.
            assert!(
                results[0].outcome.is_ok(),
                "{kill_after_us} us: {results:?}"
            );
            assert_eq!(lab.user_connections(A), 0, "{kill_after_us} us");
            lab.run_until(Duration::from_secs(5), |_| false);
            assert_eq!(lab.user_connections(A), 0, "{kill_after_us} us");
            // (unless B had finished it before it died).
            assert_eq!(lab.client().complete(), done_before, "{kill_after_us} us");
        } else {
            // The move failed: the connection stayed with A (or came back to it), which
            // serves it to the end.
            assert!(
                results[0].outcome.is_err(),
                "{kill_after_us} us: {results:?}"
            );
            assert!(
                lab.run_until(Duration::from_secs(30), |l| l.client().complete()),
                "{kill_after_us} us: {:?}",
                lab.client()
            );
            assert_eq!(lab.client().error, None);
        }
        outcomes.push(b_adopted);
    }
    // Both sides of the line were crossed: moves that failed and moves that completed.
    assert!(
        outcomes.contains(&true) && outcomes.contains(&false),
        "{outcomes:?}"
    );
}

#[test]
fn forged_replayed_and_truncated_channel_input_changes_nothing() {
    let len = 2 << 20;
    let faults = Faults::none().with_delay(Duration::from_micros(50), Duration::ZERO);
    let attempts = vec![Attempt::WrongKey, Attempt::Replay, Attempt::TruncatedRecord];
    let mut lab = Lab::new(3, len, faults, Some(attempts));
    assert!(lab.run_until(Duration::from_secs(3), Lab::links_up));
    let now = lab.net.now();
    lab.engine(MALLORY).with_ctx(now, |app, cx| match app {
        TestApp::Mallory(m) => m.next(cx),
        _ => unreachable!(),
    });
    let done = |l: &Lab| match l.engine_ref(MALLORY).app() {
        TestApp::Mallory(m) => m.attempts.is_empty(),
        _ => false,
    };
    assert!(lab.run_until(Duration::from_secs(10), done));
    assert_eq!(lab.figure(B, "channel_rejected_bad_mac"), 1);
    assert_eq!(lab.figure(B, "channel_rejected_replay"), 1);
    assert_eq!(lab.figure(B, "channel_records_malformed"), 1);
    assert_eq!(lab.figure(B, "migrations_failed_invalid"), 1);
    let TestApp::Mallory(m) = lab.engine_ref(MALLORY).app() else {
        unreachable!()
    };
    // The truncated record was answered with a refusal, nothing adopted.
    assert!(matches!(
        m.answers[2].as_slice(),
        [Message::Abort { ticket: 77, .. }]
    ));
    assert_eq!(lab.figure(B, "migrations_in"), 0);
    assert_eq!(lab.user_connections(B), 0);
    // The real cluster did not notice: the links between A and B stayed up, and a move
    // still works.
    assert!(lab.links_up());
    assert_eq!(lab.figure(A, "channel_links_lost"), 0);
    let rx = lab.migrate_all(A);
    let results = await_moves(&mut lab, &rx);
    assert!(
        results.len() == 1 && results[0].outcome.is_ok(),
        "{results:?}"
    );
    assert!(lab.run_until(Duration::from_secs(30), |l| l.client().complete()));
    let _ = FlowId(0);
}
