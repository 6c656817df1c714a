//! The model test of migration (issue 9): a two-core engine serves many connections with
//! an application whose output depends on its per-connection state; a client drives
//! random operations (write sizes, pauses, reads, who closes first); connections are moved
//! between the cores at random instants, through the core-to-core path (the mesh) and
//! through an encoded record, under loss, reordering and duplication. Every byte the
//! client receives must be what the model predicts, exactly as in a run with no moves,
//! and moves must have been tried in every state a server connection goes through.
//! Runs on the simulated wire: no DPDK, deterministic per seed.
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddrV4;
use std::rc::Rc;

use engine::migrate::{codec, Migration, Owner};
use engine::sim::cores::CoreGroup;
use engine::sim::endpoint::{endpoint_ip, endpoint_mac, engine_host, EngineHost};
use engine::sim::{Faults, Host, Network};
use engine::stack::{App, ConnId, Ctx, Event, MigrateError, Refusal, StackConfig};
use engine::tcp::{State, TcpConfig};
use engine::time::{Duration, Instant};
use engine::wire::ipv4::Ipv4Cidr;

const CLIENT: u8 = 1;
const SERVER: u8 = 2;
const PORT: u16 = 4000;
/// In server-first mode the server echoes this many bytes, then closes its side.
const SERVER_FIRST_ECHO: usize = 3000;

/// The server's per-connection transform: each byte is XORed with the top byte of a
/// running FNV-1a state over the bytes consumed so far. A lost or stale state corrupts
/// everything after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Transform {
    key: u32,
    consumed: u64,
}

impl Transform {
    fn new() -> Self {
        Transform {
            key: 0x811c_9dc5,
            consumed: 0,
        }
    }
    fn apply(&mut self, b: u8) -> u8 {
        let out = b ^ (self.key >> 24) as u8;
        self.key = (self.key ^ u32::from(b)).wrapping_mul(16_777_619);
        self.consumed += 1;
        out
    }
}

/// The model of what the client must receive for what it sent.
fn expected(sent: &[u8]) -> Vec<u8> {
    let server_first = sent.first().is_some_and(|b| b & 1 == 1);
    let n = if server_first {
        sent.len().min(SERVER_FIRST_ECHO)
    } else {
        sent.len()
    };
    let mut t = Transform::new();
    sent[..n].iter().map(|&b| t.apply(b)).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ServerConn {
    t: Transform,
    server_first: Option<bool>,
    /// Our side is closed (after the echo, or in server-first mode after its part).
    closed: bool,
}

/// The server application: the transform echo with back-pressure; moves its state.
#[derive(Debug, Default)]
struct Server {
    conns: BTreeMap<ConnId, ServerConn>,
}

impl Server {
    fn pump(&mut self, cx: &mut Ctx<'_>, id: ConnId) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let mut buf = [0u8; 2048];
        loop {
            let echoing = match c.server_first {
                Some(true) => c.t.consumed < SERVER_FIRST_ECHO as u64,
                _ => true,
            };
            let room = if echoing {
                let limit = match c.server_first {
                    Some(true) => SERVER_FIRST_ECHO as u64 - c.t.consumed,
                    _ => u64::MAX,
                };
                cx.send_capacity(id).min(buf.len()).min(limit as usize)
            } else {
                buf.len()
            };
            if echoing && room == 0 && !c.closed {
                break; // Writable follows
            }
            let n = cx.recv(id, &mut buf[..room.max(1)]).unwrap_or(0);
            if n == 0 {
                break;
            }
            if c.server_first.is_none() {
                c.server_first = Some(buf[0] & 1 == 1);
            }
            if echoing {
                let out: Vec<u8> = buf[..n].iter().map(|&b| c.t.apply(b)).collect();
                let sent = cx.send(id, &out).unwrap_or(0);
                assert_eq!(sent, out.len(), "send_capacity promised room");
            }
            // Bytes past the echo in server-first mode are read and dropped.
        }
        let done_echoing = c.server_first == Some(true) && c.t.consumed >= SERVER_FIRST_ECHO as u64;
        let peer_done = cx.peer_closed(id) && cx.recv_queue(id) == 0;
        if !c.closed && (done_echoing || peer_done) {
            c.closed = true;
            let _ = cx.close(id);
        }
    }
}

impl App for Server {
    fn on_event(&mut self, cx: &mut Ctx<'_>, id: ConnId, event: Event) {
        match event {
            Event::Accepted { .. } => {
                self.conns.insert(
                    id,
                    ServerConn {
                        t: Transform::new(),
                        server_first: None,
                        closed: false,
                    },
                );
            }
            Event::Readable | Event::Writable | Event::PeerClosed | Event::Adopted { .. } => {
                self.pump(cx, id)
            }
            Event::Closed { .. } => {
                self.conns.remove(&id);
            }
            Event::Connected => {}
        }
    }

    fn export(&mut self, _: &mut Ctx<'_>, id: ConnId, out: &mut Vec<u8>) -> Result<(), Refusal> {
        let c = self.conns.remove(&id).ok_or(Refusal::BadSnapshot)?;
        out.extend_from_slice(&c.t.key.to_le_bytes());
        out.extend_from_slice(&c.t.consumed.to_le_bytes());
        out.push(match c.server_first {
            None => 0,
            Some(false) => 1,
            Some(true) => 2,
        });
        out.push(u8::from(c.closed));
        Ok(())
    }

    fn import(&mut self, _: &mut Ctx<'_>, id: ConnId, s: &[u8]) -> Result<(), Refusal> {
        if s.len() != 14 {
            return Err(Refusal::BadSnapshot);
        }
        let key = u32::from_le_bytes(s[0..4].try_into().unwrap());
        let consumed = u64::from_le_bytes(s[4..12].try_into().unwrap());
        let server_first = match s[12] {
            0 => None,
            1 => Some(false),
            2 => Some(true),
            _ => return Err(Refusal::BadSnapshot),
        };
        self.conns.insert(
            id,
            ServerConn {
                t: Transform { key, consumed },
                server_first,
                closed: s[13] == 1,
            },
        );
        Ok(())
    }
}

/// One client connection's script and what happened.
#[derive(Debug, Clone, Default)]
struct Script {
    /// What to send, and how far it got.
    data: Vec<u8>,
    sent: usize,
    /// Largest write at a time.
    chunk: usize,
    received: Vec<u8>,
    closed: bool,
    /// `Closed` came (with this error, if any).
    finished: bool,
    error: Option<engine::tcp::TcpError>,
}

/// The client: opens the connections, writes in random pieces with pauses, reads
/// everything, closes when done.
struct Client {
    scripts: Rc<RefCell<Vec<Script>>>,
    ids: BTreeMap<ConnId, usize>,
    started: bool,
    rng: u64,
}

impl Client {
    fn next(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn push(&mut self, cx: &mut Ctx<'_>, id: ConnId) {
        let Some(&i) = self.ids.get(&id) else { return };
        let r = self.next();
        let mut scripts = self.scripts.borrow_mut();
        let s = &mut scripts[i];
        // A pause now and then: nothing written this time.
        if !r.is_multiple_of(5) && s.sent < s.data.len() {
            let n = ((r >> 8) as usize % s.chunk + 1).min(s.data.len() - s.sent);
            s.sent += cx.send(id, &s.data[s.sent..s.sent + n]).unwrap_or(0);
        }
        // (A close in SYN-SENT would delete the connection and its queued data, RFC 9293
        // §3.10.4: only once established.)
        let established = cx.state(id).is_some_and(|st| st.is_synchronized());
        if s.sent == s.data.len() && !s.closed && established {
            let server_first = s.data[0] & 1 == 1;
            // In server-first mode the client closes once the server did.
            if !server_first || cx.peer_closed(id) {
                s.closed = true;
                let _ = cx.close(id);
            }
        }
    }

    fn read(&mut self, cx: &mut Ctx<'_>, id: ConnId) {
        let Some(&i) = self.ids.get(&id) else { return };
        let mut scripts = self.scripts.borrow_mut();
        let s = &mut scripts[i];
        let _ = cx.recv_with(id, |b| {
            s.received.extend_from_slice(b);
            b.len()
        });
    }
}

impl Client {
    /// A connection of ours came back under a new id.
    fn renamed(&mut self, old: ConnId, new: ConnId) {
        if let Some(i) = self.ids.remove(&old) {
            self.ids.insert(new, i);
        }
    }
}

impl App for Client {
    fn on_event(&mut self, cx: &mut Ctx<'_>, id: ConnId, event: Event) {
        match event {
            Event::Connected | Event::Writable => self.push(cx, id),
            Event::Readable | Event::PeerClosed => {
                self.read(cx, id);
                self.push(cx, id);
            }
            Event::Closed { error } => {
                if let Some(i) = self.ids.remove(&id) {
                    let mut scripts = self.scripts.borrow_mut();
                    scripts[i].error = error;
                    scripts[i].finished = true;
                }
            }
            _ => {}
        }
    }

    // The client's state is keyed by id and kept across its own round trips (see
    // `renamed`): nothing to carry.
    fn export(&mut self, _: &mut Ctx<'_>, _: ConnId, _: &mut Vec<u8>) -> Result<(), Refusal> {
        Ok(())
    }

    fn import(&mut self, _: &mut Ctx<'_>, _: ConnId, _: &[u8]) -> Result<(), Refusal> {
        Ok(())
    }

    fn on_poll(&mut self, cx: &mut Ctx<'_>) {
        if !self.started {
            self.started = true;
            let server = SocketAddrV4::new(endpoint_ip(SERVER), PORT);
            let n = self.scripts.borrow().len();
            for i in 0..n {
                let id = cx.connect(server).expect("connect");
                self.ids.insert(id, i);
            }
        }
        // Writers with pauses: keep pushing on every poll.
        let ids: Vec<ConnId> = self.ids.keys().copied().collect();
        for id in ids {
            self.push(cx, id);
        }
    }
}

enum Node {
    Client(Box<EngineHost<Client>>),
    Server(Box<CoreGroup<Server>>),
}

impl Host for Node {
    fn mac(&self) -> [u8; 6] {
        match self {
            Node::Client(h) => h.mac(),
            Node::Server(h) => h.mac(),
        }
    }
    fn receive(&mut self, now: Instant, frame: &[u8]) {
        match self {
            Node::Client(h) => h.receive(now, frame),
            Node::Server(h) => h.receive(now, frame),
        }
    }
    fn transmit(&mut self, now: Instant, out: &mut dyn FnMut(&[u8])) {
        match self {
            Node::Client(h) => h.transmit(now, out),
            Node::Server(h) => h.transmit(now, out),
        }
    }
    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Node::Client(h) => h.poll_timeout(),
            Node::Server(h) => h.poll_timeout(),
        }
    }
    fn handle_timeout(&mut self, now: Instant) {
        match self {
            Node::Client(h) => h.handle_timeout(now),
            Node::Server(h) => h.handle_timeout(now),
        }
    }
}

/// What a run did.
struct Outcome {
    scripts: Vec<Script>,
    /// Move attempts by the state the connection was in, and how they ended.
    tried: BTreeMap<String, (u32, u32)>,
    moved: u32,
    through_record: u32,
}

fn scripts(seed: u64, n: usize) -> Vec<Script> {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|_| {
            let len = 2_000 + (next() % 120_000) as usize;
            let mut data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Server-first mode (odd first byte) needs more than the server echoes first.
            if len <= SERVER_FIRST_ECHO {
                data[0] &= !1;
            }
            Script {
                data,
                chunk: 200 + (next() % 6000) as usize,
                ..Script::default()
            }
        })
        .collect()
}

/// Runs `n` connections under `faults`; every `move_every` of virtual time one random
/// server connection is moved to the other core (half the time through an encoded
/// record).
fn run(seed: u64, faults: Faults, n: usize, move_every: Option<Duration>) -> Outcome {
    let results = Rc::new(RefCell::new(scripts(seed, n)));
    let client_app = Client {
        scripts: Rc::clone(&results),
        ids: BTreeMap::new(),
        started: false,
        rng: seed.wrapping_mul(0x9e37) | 1,
    };
    let config = StackConfig {
        tcp: TcpConfig {
            send_buffer: 32 * 1024,
            recv_buffer: 32 * 1024,
            ..TcpConfig::default()
        },
        ..StackConfig::default()
    };
    let client = engine_host(CLIENT, config.clone(), seed + 7, client_app, &[SERVER]);
    let cidr = Ipv4Cidr::new(endpoint_ip(SERVER), 24).unwrap();
    let mut server = CoreGroup::new(
        endpoint_mac(SERVER),
        cidr,
        &config,
        seed + 11,
        vec![Server::default(), Server::default()],
        &[(endpoint_ip(CLIENT), endpoint_mac(CLIENT))],
    );
    for core in server.cores_mut() {
        core.with_ctx(Instant::ZERO, |_, cx| cx.listen(PORT))
            .unwrap();
    }
    let mut net: Network<Node> = Network::new(seed);
    let cid = net.add_host(Node::Client(Box::new(client))).unwrap();
    let sid = net.add_host(Node::Server(Box::new(server))).unwrap();
    net.set_faults(faults).unwrap();
    let mut outcome = Outcome {
        scripts: vec![],
        tried: BTreeMap::new(),
        moved: 0,
        through_record: 0,
    };
    let mut rng = seed.wrapping_mul(31) | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let step = move_every.unwrap_or(Duration::from_millis(50));
    let deadline = Instant::ZERO + Duration::from_secs(600);
    while net.now() < deadline {
        net.run_for(step).expect("the simulation runs");
        if results.borrow().iter().all(|s| s.finished) {
            break;
        }
        if move_every.is_none() {
            continue;
        }
        let now = net.now();
        if next().is_multiple_of(4) {
            // The client's side too (its connections move through a record and come back
            // to it): every state of an active open, SYN-SENT among them.
            let Some(Node::Client(host)) = net.host_mut(cid) else {
                unreachable!()
            };
            let engine = host.driver_mut();
            let ids = engine.stack().connection_ids();
            if !ids.is_empty() {
                let id = ids[(next() % ids.len() as u64) as usize];
                let state = engine
                    .stack()
                    .connection(id)
                    .map(|c| c.state())
                    .expect("listed");
                let entry = outcome.tried.entry(format!("client {state}")).or_default();
                entry.0 += 1;
                match engine.export_connection(now, id, Owner::Core(1)) {
                    Ok(m) => {
                        let mut bytes = Vec::new();
                        codec::encode(&m, &mut bytes);
                        let back = codec::decode(&bytes).expect("a record decodes");
                        let id2 = engine.import_connection(now, back).expect("adopted back");
                        // The client application keys its scripts by connection id.
                        engine.app_mut().renamed(id, id2);
                        entry.1 += 1;
                    }
                    Err(e) => assert_refused_rightly(state, e),
                }
            }
        }
        let Some(Node::Server(group)) = net.host_mut(sid) else {
            unreachable!()
        };
        let from = (next() % 2) as usize;
        let ids = group.cores()[from].stack().connection_ids();
        if ids.is_empty() {
            continue;
        }
        let id = ids[(next() % ids.len() as u64) as usize];
        let state = group.cores()[from]
            .stack()
            .connection(id)
            .map(|c| c.state())
            .expect("listed");
        let entry = outcome.tried.entry(state.to_string()).or_default();
        entry.0 += 1;
        let to = 1 - from;
        if next().is_multiple_of(2) {
            // The core-to-core path: the engine sends it over the mesh; the outcome is
            // known once the destination answers (counted from the stack counters).
            match group.cores_mut()[from].migrate_to_core(now, id, to as u16) {
                Ok(_) => {
                    entry.1 += 1;
                    outcome.moved += 1;
                }
                Err(e) => assert_refused_rightly(state, e),
            }
        } else {
            // Through the encoded record, as a move to another engine would be.
            match group.cores_mut()[from].export_connection(now, id, Owner::Core(to as u16)) {
                Ok(m) => {
                    let mut bytes = Vec::new();
                    codec::encode(&m, &mut bytes);
                    let back: Migration = codec::decode(&bytes).expect("a record decodes");
                    assert_eq!(back, m, "the record round-trips");
                    let cores = group.cores_mut();
                    cores[to]
                        .import_connection(now, back)
                        .expect("the destination adopts");
                    entry.1 += 1;
                    outcome.moved += 1;
                    outcome.through_record += 1;
                }
                Err(e) => assert_refused_rightly(state, e),
            }
        }
    }
    let Some(Node::Server(group)) = net.host(sid) else {
        unreachable!()
    };
    let lost: u64 = group.cores().iter().map(|c| c.migrations_lost()).sum();
    assert_eq!(lost, 0, "no connection lost");
    outcome.scripts = results.borrow().clone();
    outcome
}

fn assert_refused_rightly(state: State, e: MigrateError) {
    assert!(
        matches!(e, MigrateError::NotMovable(s) if s == state && matches!(s, State::TimeWait | State::SynSent | State::SynReceived | State::Closed)),
        "a move in {state} was refused: {e}"
    );
}

fn check(o: &Outcome, what: &str) {
    for (i, s) in o.scripts.iter().enumerate() {
        assert!(
            s.finished,
            "{what}: connection {i} never closed ({} of {} bytes sent, {} received)",
            s.sent,
            s.data.len(),
            s.received.len()
        );
        assert_eq!(s.error, None, "{what}: connection {i} ended with an error");
        let want = expected(&s.data);
        assert!(
            s.received == want,
            "{what}: connection {i} received {} bytes, the model says {} (first difference at {:?})",
            s.received.len(),
            want.len(),
            s.received.iter().zip(&want).position(|(a, b)| a != b)
        );
    }
}

#[test]
fn moved_connections_agree_with_the_model_and_with_a_run_that_never_moves() {
    let faults = Faults::none()
        .with_loss(0.02)
        .with_reorder(0.05, Duration::from_millis(3))
        .with_duplicate(0.01)
        .with_delay(Duration::from_millis(2), Duration::ZERO)
        .with_bandwidth(20_000_000);
    let still = run(5, faults.clone(), 24, None);
    check(&still, "no moves");
    let moving = run(5, faults, 24, Some(Duration::from_millis(2)));
    check(&moving, "with moves");
    for (i, (a, b)) in still.scripts.iter().zip(&moving.scripts).enumerate() {
        assert!(
            a.received == b.received,
            "connection {i} differs between the runs"
        );
    }
    println!(
        "moves: {} ({} through the encoded record); tried by state: {:?}",
        moving.moved, moving.through_record, moving.tried
    );
    assert!(moving.moved >= 50, "{} moves", moving.moved);
    assert!(moving.through_record >= 20);
    // The states a server connection goes through, each tried (TIME-WAIT ones are
    // refused: they stay as records).
    let tried: BTreeSet<&str> = moving.tried.keys().map(String::as_str).collect();
    for state in [
        "ESTABLISHED",
        "FIN-WAIT-1",
        "FIN-WAIT-2",
        "CLOSE-WAIT",
        "LAST-ACK",
        "client SYN-SENT",
        "client ESTABLISHED",
        "client FIN-WAIT-2",
    ] {
        assert!(tried.contains(state), "no move tried in {state}: {tried:?}");
    }
    // Refused only where the rule says (SYN-SENT: no handshake yet).
    assert_eq!(moving.tried["client SYN-SENT"].1, 0);
}
