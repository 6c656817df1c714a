//! The control socket: `migratory ctl --name NAME stats|conns|migrate` reads a running
//! engine's counters, lists its connections and moves them between its cores. The engine
//! serves a Unix socket at `<dir>/NAME.sock` from a thread of its own; each core publishes
//! a snapshot of its counters into a [`StatsBoard`] every few milliseconds (never blocking
//! the data path: a busy slot is skipped until next time), and takes requests for its
//! connections from its control queue between polls ([`engine::control`]).
//!
//! Protocol: the client writes one command line, the server answers with one JSON
//! document and closes. Commands: `stats`; `conns`; `migrate ID|all CORE` (ID: a
//! connection id as `conns` shows it); `migrate-peer ID|all PEER`; `drain PEER`. A JSON
//! answer with an `error` field reports a command that could not run.
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use engine::control::{Command, ConnectionInfo, ControlSender, MoveResult, Reply, Request, Which};
use engine::migrate::{FlowId, Owner};
use engine::poll::{MigrationLatency, PeerStatus};
use engine::stats::{Counters, LatencyHistogram};

/// How long the control thread waits for the cores to answer a request.
const CORE_ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Where control sockets live (created if missing).
pub const DEFAULT_DIR: &str = "/run/migratory";

/// The control socket of engine `name` under `dir`.
pub fn socket_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.sock"))
}

/// One core's published figures.
#[derive(Debug, Clone, Default)]
pub struct CoreSnapshot {
    pub lcore: u32,
    pub counters: Counters,
    /// Extra named figures (connections by state, mbufs in use, ...).
    pub extra: Vec<(&'static str, u64)>,
    /// Migration latencies (moves that started or ended on this core).
    pub latency: MigrationLatency,
    /// The peer engines as this core sees them (empty without a channel).
    pub peers: Vec<PeerStatus>,
}

/// The latest snapshot of every core.
#[derive(Debug)]
pub struct StatsBoard {
    name: String,
    cores: Vec<Mutex<CoreSnapshot>>,
}

impl StatsBoard {
    pub fn new(name: &str, cores: usize) -> Arc<StatsBoard> {
        Arc::new(StatsBoard {
            name: name.to_owned(),
            cores: (0..cores)
                .map(|_| Mutex::new(CoreSnapshot::default()))
                .collect(),
        })
    }

    /// Publishes core `index`'s snapshot, unless a reader holds the slot right now (the
    /// core must never wait: it will publish again in a few milliseconds).
    pub fn publish(&self, index: usize, fill: impl FnOnce(&mut CoreSnapshot)) {
        if let Some(slot) = self.cores.get(index) {
            if let Ok(mut s) = slot.try_lock() {
                fill(&mut s);
            }
        }
    }

    /// Every figure summed over the cores, counters first.
    pub fn totals(&self) -> Vec<(&'static str, u64)> {
        let mut total = Counters::default();
        let mut extra: Vec<(&'static str, u64)> = Vec::new();
        for slot in &self.cores {
            let s = match slot.lock() {
                Ok(s) => s.clone(),
                Err(poisoned) => poisoned.into_inner().clone(),
            };
            total.add(&s.counters);
            for &(k, v) in &s.extra {
                match extra.iter_mut().find(|(n, _)| *n == k) {
                    Some((_, t)) => *t += v,
                    None => extra.push((k, v)),
                }
            }
        }
        total.iter().chain(extra).collect()
    }

    /// The peers over every core: links summed, alive if any core hears the peer, the
    /// last time any core heard it, figures summed.
    pub fn peers(&self) -> Vec<PeerStatus> {
        let mut merged: Vec<PeerStatus> = Vec::new();
        for slot in &self.cores {
            let s = match slot.lock() {
                Ok(s) => s.peers.clone(),
                Err(poisoned) => poisoned.into_inner().peers.clone(),
            };
            for p in s {
                match merged.iter_mut().find(|m| m.name == p.name) {
                    None => merged.push(p),
                    Some(m) => {
                        m.links_up += p.links_up;
                        m.alive |= p.alive;
                        m.last_heard = match (m.last_heard, p.last_heard) {
                            (Some(a), Some(b)) => Some(a.min(b)),
                            (a, b) => a.or(b),
                        };
                        m.moved_out += p.moved_out;
                        m.failed_out += p.failed_out;
                        m.moved_in += p.moved_in;
                        m.refused_in += p.refused_in;
                        m.latency.merge(&p.latency);
                    }
                }
            }
        }
        merged
    }

    /// Every core's snapshot and their sum, as one JSON document.
    pub fn to_json(&self) -> String {
        let mut total = Counters::default();
        let mut extra_total: Vec<(&'static str, u64)> = Vec::new();
        let mut latency = MigrationLatency::default();
        let mut cores = Vec::new();
        for slot in &self.cores {
            let s = match slot.lock() {
                Ok(s) => s.clone(),
                Err(poisoned) => poisoned.into_inner().clone(),
            };
            total.add(&s.counters);
            for &(k, v) in &s.extra {
                match extra_total.iter_mut().find(|(n, _)| *n == k) {
                    Some((_, t)) => *t += v,
                    None => extra_total.push((k, v)),
                }
            }
            latency.adopted.merge(&s.latency.adopted);
            latency.first_segment.merge(&s.latency.first_segment);
            cores.push(snapshot_json(
                &s.counters,
                &s.extra,
                &s.latency,
                Some(s.lcore),
            ));
        }
        format!(
            "{{\"engine\":{},\"cores\":[{}],\"total\":{},\"peers\":{}}}",
            serde_json::Value::String(self.name.clone()),
            cores.join(","),
            snapshot_json(&total, &extra_total, &latency, None),
            peers_json(&self.peers())
        )
    }
}

/// The peers as JSON: name, channel endpoint, links up, liveness and migration figures.
fn peers_json(peers: &[PeerStatus]) -> serde_json::Value {
    serde_json::Value::Array(
        peers
            .iter()
            .map(|p| {
                serde_json::json!({
                    "name": p.name,
                    "addr": p.addr.map(|a| a.to_string()),
                    "links_up": p.links_up,
                    "alive": p.alive,
                    "last_heard_ms": p.last_heard.map(|d| d.as_millis() as u64),
                    "moved_out": p.moved_out,
                    "failed_out": p.failed_out,
                    "moved_in": p.moved_in,
                    "refused_in": p.refused_in,
                    "migration_adopted_count": p.latency.count(),
                    "migration_adopted_p50_ns": p.latency.percentile(50.0).as_nanos() as u64,
                    "migration_adopted_p99_ns": p.latency.percentile(99.0).as_nanos() as u64,
                    "migration_adopted_max_ns": p.latency.max().as_nanos() as u64,
                })
            })
            .collect(),
    )
}

fn snapshot_json(
    c: &Counters,
    extra: &[(&'static str, u64)],
    latency: &MigrationLatency,
    lcore: Option<u32>,
) -> String {
    let mut s = String::from("{");
    if let Some(l) = lcore {
        s.push_str(&format!("\"lcore\":{l},"));
    }
    for (k, v) in c.iter().chain(extra.iter().copied()) {
        s.push_str(&format!("\"{k}\":{v},"));
    }
    for (name, h) in [
        ("migration_adopted", &latency.adopted),
        ("migration_first_segment", &latency.first_segment),
    ] {
        s.push_str(&histogram_json(name, h));
    }
    s.push_str(&format!("\"drops_total\":{}}}", c.total_dropped()));
    s
}

/// `NAME_count`, `NAME_p50_ns`, `NAME_p99_ns` and `NAME_max_ns`, each followed by a comma.
fn histogram_json(name: &str, h: &LatencyHistogram) -> String {
    format!(
        "\"{name}_count\":{},\"{name}_p50_ns\":{},\"{name}_p99_ns\":{},\"{name}_max_ns\":{},",
        h.count(),
        h.percentile(50.0).as_nanos(),
        h.percentile(99.0).as_nanos(),
        h.max().as_nanos()
    )
}

/// Errors of the control plane, each one line.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("engine {0:?} is already running (its control socket {1} answers)")]
    AlreadyRunning(String, String),
    #[error("cannot create the control socket {0}: {1}")]
    Bind(String, std::io::Error),
    #[error("no engine named {0:?} is running (no control socket at {1})")]
    NotRunning(String, String),
    #[error("control socket {0}: {1}")]
    Io(String, std::io::Error),
    #[error("engine answered with something that is not JSON: {0}")]
    BadAnswer(String),
}

/// The serving side, owned by `migratory serve`. Dropping it stops the thread and
/// removes the socket file.
#[derive(Debug)]
pub struct ControlServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// What the control thread serves: the counters, and the cores' request queues.
#[derive(Debug)]
struct Served {
    board: Arc<StatsBoard>,
    cores: Vec<ControlSender>,
    /// The peer engines' names, in the order the cores number them.
    peers: Vec<String>,
}

impl ControlServer {
    /// Binds `<dir>/NAME.sock` and serves `board` from a new thread. Call it before EAL
    /// starts, so the thread does not inherit the main lcore's CPU pinning.
    pub fn start(
        dir: &Path,
        board: Arc<StatsBoard>,
        cores: Vec<ControlSender>,
        peers: Vec<String>,
    ) -> Result<ControlServer, CtlError> {
        let path = socket_path(dir, &board.name);
        let shown = path.display().to_string();
        std::fs::create_dir_all(dir).map_err(|e| CtlError::Bind(shown.clone(), e))?;
        if path.exists() {
            if UnixStream::connect(&path).is_ok() {
                return Err(CtlError::AlreadyRunning(board.name.clone(), shown));
            }
            // A stale socket of an engine that died: take its place.
            let _ = std::fs::remove_file(&path);
        }
        let listener = UnixListener::bind(&path).map_err(|e| CtlError::Bind(shown.clone(), e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| CtlError::Bind(shown.clone(), e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("migratory-ctl".into())
            .spawn(move || {
                serve_loop(
                    listener,
                    Served {
                        board,
                        cores,
                        peers,
                    },
                    thread_stop,
                )
            })
            .map_err(|e| CtlError::Bind(shown, e))?;
        Ok(ControlServer {
            path,
            stop,
            thread: Some(thread),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve_loop(listener: UnixListener, served: Served, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = answer(stream, &served);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn answer(stream: UnixStream, served: &Served) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut line = String::new();
    BufReader::new((&stream).take(256)).read_line(&mut line)?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let reply = match words.as_slice() {
        ["stats"] => served.board.to_json(),
        ["conns"] => conns_json(served),
        ["migrate", which, to] => migrate_json(served, which, to),
        ["migrate-peer", which, to] => migrate_peer_json(served, which, to),
        ["drain", to] => drain_json(served, to),
        _ => error_json(&format!(
            "unknown command {:?}; try: stats, conns, migrate ID|all CORE, migrate-peer ID|all PEER, drain PEER",
            line.trim()
        )),
    };
    let mut w = &stream;
    w.write_all(reply.as_bytes())?;
    w.write_all(b"\n")
}

fn error_json(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

/// An answer for a request that is wrong in itself (not a core, not an id): `usage` tells
/// the command line to exit 2.
fn usage_json(message: &str) -> String {
    serde_json::json!({ "error": message, "usage": true }).to_string()
}

/// Sends `command` to every core (or only to core `only`) and collects their answers (a
/// core that does not take or answer the request in time is reported as busy; it will
/// not act on it later).
fn ask_cores(served: &Served, command: Command, only: Option<usize>) -> (Vec<Reply>, Vec<String>) {
    let (tx, rx) = crossbeam::channel::unbounded();
    let mut asked = 0;
    let mut problems = Vec::new();
    let deadline = std::time::Instant::now() + CORE_ANSWER_TIMEOUT;
    for (core, sender) in served.cores.iter().enumerate() {
        if only.is_some_and(|o| o != core) {
            continue;
        }
        let request = Request {
            command,
            reply: tx.clone(),
            deadline: Some(deadline),
        };
        match sender.send(request) {
            Ok(()) => asked += 1,
            Err(_) => problems.push(format!("core {core} is busy (its request queue is full)")),
        }
    }
    drop(tx);
    let mut replies = Vec::new();
    while replies.len() < asked {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(r) => replies.push(r),
            Err(_) => {
                problems.push(format!(
                    "{} core(s) did not answer within {} s (busy)",
                    asked - replies.len(),
                    CORE_ANSWER_TIMEOUT.as_secs()
                ));
                break;
            }
        }
    }
    (replies, problems)
}

fn connection_json(c: &ConnectionInfo) -> serde_json::Value {
    serde_json::json!({
        "id": c.flow.to_string(),
        "local": c.local.to_string(),
        "remote": c.remote.to_string(),
        "state": c.state.to_string(),
        "core": c.core,
        "send_queue": c.send_queue,
        "recv_queue": c.recv_queue,
        "srtt_us": c.srtt.map(|d| d.as_micros() as u64),
        "cwnd": c.cwnd,
        "retransmits": c.retransmits,
    })
}

fn conns_json(served: &Served) -> String {
    let (replies, problems) = ask_cores(served, Command::Connections, None);
    let mut list: Vec<&ConnectionInfo> = replies
        .iter()
        .flat_map(|r| match r {
            Reply::Connections { list, .. } => list.as_slice(),
            _ => &[],
        })
        .collect();
    list.sort_by_key(|c| (c.core, c.flow));
    serde_json::json!({
        "engine": served.board.name,
        "connections": list.iter().map(|c| connection_json(c)).collect::<Vec<_>>(),
        "peers": peers_json(&served.board.peers()),
        "problems": problems,
    })
    .to_string()
}

fn move_json(m: &MoveResult, peers: &[String]) -> serde_json::Value {
    // `to`: the core's number, or the peer engine's name.
    let (to, dest) = match m.to {
        Owner::Core(c) => (serde_json::json!(c), format!("core {c}")),
        Owner::Peer(p) => {
            let name = peers
                .get(usize::from(p))
                .cloned()
                .unwrap_or_else(|| format!("peer {p}"));
            (serde_json::json!(name), format!("engine {name}"))
        }
    };
    match m.outcome {
        Ok(latency) => serde_json::json!({
            "id": m.flow.to_string(), "from": m.from, "to": to, "dest": dest, "moved": true,
            "latency_ns": latency.as_nanos() as u64,
        }),
        Err(e) => serde_json::json!({
            "id": m.flow.to_string(), "from": m.from, "to": to, "dest": dest, "moved": false,
            "reason": e.name(), "error": e.to_string(),
        }),
    }
}

/// The moves and errors of the cores' answers.
fn collect_moves(
    served: &Served,
    replies: &[Reply],
    errors: &mut Vec<String>,
) -> Vec<serde_json::Value> {
    let mut moves = Vec::new();
    for r in replies {
        match r {
            Reply::Moves { results, .. } => {
                moves.extend(results.iter().map(|m| move_json(m, &served.peers)))
            }
            Reply::Error { core, error } => errors.push(format!("core {core}: {error}")),
            Reply::Connections { .. } | Reply::Done { .. } => {}
        }
    }
    moves
}

/// The number of peer `name`, or the answer that says there is none.
fn peer_number(served: &Served, name: &str) -> Result<u16, String> {
    if served.peers.is_empty() {
        return Err(usage_json(
            "this engine has no state channel (serve it with --channel, --peer and --cluster-key-file)",
        ));
    }
    served
        .peers
        .iter()
        .position(|p| p == name)
        .map(|i| i as u16)
        .ok_or_else(|| {
            usage_json(&format!(
                "no peer named {name:?} (peers: {})",
                served.peers.join(", ")
            ))
        })
}

fn migrate_peer_json(served: &Served, which: &str, to: &str) -> String {
    let which = match which {
        "all" => Which::All,
        id => match id.parse::<FlowId>() {
            Ok(flow) => Which::One(flow),
            Err(e) => return usage_json(&format!("{id:?}: {e}")),
        },
    };
    let peer = match peer_number(served, to) {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    let (replies, problems) = ask_cores(
        served,
        Command::Migrate {
            which,
            to: Owner::Peer(peer),
        },
        None,
    );
    let mut errors = problems;
    let moves = collect_moves(served, &replies, &mut errors);
    if let (Which::One(flow), true) = (which, moves.is_empty()) {
        if errors.is_empty() {
            errors.push(format!(
                "no connection with id {flow} (see `migratory ctl --name {} conns`)",
                served.board.name
            ));
        }
    }
    let mut v = serde_json::json!({
        "engine": served.board.name,
        "to_peer": to,
        "moves": moves,
    });
    if !errors.is_empty() {
        v["error"] = serde_json::Value::String(errors.join("; "));
    }
    v.to_string()
}

/// Drain: every core forwards what it does not hold to the peer and moves all its
/// connections there; once all moved, the address is handed over.
fn drain_json(served: &Served, to: &str) -> String {
    let peer = match peer_number(served, to) {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    let (replies, problems) = ask_cores(served, Command::Drain { to: peer }, None);
    let mut errors = problems;
    let moves = collect_moves(served, &replies, &mut errors);
    let all_moved = errors.is_empty() && moves.iter().all(|m| m["moved"] == true);
    let mut handed_over = false;
    if all_moved {
        let (replies, problems) = ask_cores(served, Command::HandOver { to: peer }, None);
        errors.extend(problems);
        let before = errors.len();
        collect_moves(served, &replies, &mut errors);
        handed_over = errors.len() == before
            && replies.len() == served.cores.len()
            && replies.iter().all(|r| matches!(r, Reply::Done { .. }));
    } else {
        errors.push(format!(
            "not every connection moved: the address stays with {} (run drain again)",
            served.board.name
        ));
    }
    let mut v = serde_json::json!({
        "engine": served.board.name,
        "to_peer": to,
        "moves": moves,
        "handed_over": handed_over,
    });
    if !errors.is_empty() {
        v["error"] = serde_json::Value::String(errors.join("; "));
    }
    v.to_string()
}

fn migrate_json(served: &Served, which: &str, to: &str) -> String {
    let which = match which {
        "all" => Which::All,
        id => match id.parse::<FlowId>() {
            Ok(flow) => Which::One(flow),
            Err(e) => return usage_json(&format!("{id:?}: {e}")),
        },
    };
    let Ok(to) = to.parse::<u16>() else {
        return usage_json(&format!("{to:?} is not a core number"));
    };
    let cores = served.cores.len();
    if cores < 2 {
        return usage_json("this engine runs one core: there is no other core to move to");
    }
    if usize::from(to) >= cores {
        return usage_json(&format!("core {to} does not exist (cores are 0..{cores})"));
    }
    // One connection: ask only the core that holds it (found with a listing), so that a
    // connection already on the destination is told as such.
    let mut errors: Vec<String> = Vec::new();
    let only = match which {
        Which::All => None,
        Which::One(flow) => {
            let (replies, problems) = ask_cores(served, Command::Connections, None);
            errors.extend(problems);
            let here = replies.iter().find_map(|r| match r {
                Reply::Connections { list, .. } => list.iter().find(|c| c.flow == flow),
                _ => None,
            });
            match here {
                None if errors.is_empty() => {
                    return error_json(&format!(
                        "no connection with id {flow} (see `migratory ctl --name {} conns`)",
                        served.board.name
                    ))
                }
                None => None,
                Some(c) if c.core == to && c.state != engine::tcp::State::TimeWait => {
                    return error_json(&format!("connection {flow} is already on core {to}"))
                }
                Some(c) => Some(usize::from(c.core)),
            }
        }
    };
    let (replies, problems) = ask_cores(
        served,
        Command::Migrate {
            which,
            to: Owner::Core(to),
        },
        only,
    );
    errors.extend(problems);
    let moves = collect_moves(served, &replies, &mut errors);
    if let (Which::One(flow), true) = (which, moves.is_empty()) {
        if errors.is_empty() {
            errors.push(format!(
                "no connection with id {flow} (see `migratory ctl --name {} conns`)",
                served.board.name
            ));
        }
    }
    let mut v = serde_json::json!({
        "engine": served.board.name,
        "to_core": to,
        "moves": moves,
    });
    if !errors.is_empty() {
        v["error"] = serde_json::Value::String(errors.join("; "));
    }
    v.to_string()
}

/// The client side: sends `command` to engine `name` and returns its JSON answer.
pub fn request(dir: &Path, name: &str, command: &str) -> Result<serde_json::Value, CtlError> {
    let path = socket_path(dir, name);
    let shown = path.display().to_string();
    let mut stream = UnixStream::connect(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            CtlError::NotRunning(name.to_owned(), shown.clone())
        }
        _ => CtlError::Io(shown.clone(), e),
    })?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| CtlError::Io(shown.clone(), e))?;
    stream
        .write_all(format!("{command}\n").as_bytes())
        .map_err(|e| CtlError::Io(shown.clone(), e))?;
    let mut text = String::new();
    stream
        .read_to_string(&mut text)
        .map_err(|e| CtlError::Io(shown.clone(), e))?;
    serde_json::from_str(text.trim())
        .map_err(|_| CtlError::BadAnswer(text.trim().chars().take(200).collect()))
}

/// Renders a `stats` answer for people: one line per non-zero total counter, then the
/// per-core figures that differ between cores.
pub fn render_stats(v: &serde_json::Value) -> String {
    let mut out = String::new();
    let name = v.get("engine").and_then(|n| n.as_str()).unwrap_or("?");
    let cores = v
        .get("cores")
        .and_then(|c| c.as_array())
        .map_or(0, Vec::len);
    out.push_str(&format!("engine {name}: {cores} core(s)\n"));
    if let Some(total) = v.get("total").and_then(|t| t.as_object()) {
        for (k, val) in total {
            if val.as_u64().unwrap_or(0) != 0 {
                out.push_str(&format!("  {k:<32} {val}\n"));
            }
        }
    }
    out.push_str(&render_peers(v));
    out
}

/// The peers section of a `stats` or `conns` answer: one line per peer.
fn render_peers(v: &serde_json::Value) -> String {
    let mut out = String::new();
    for p in v
        .get("peers")
        .and_then(|p| p.as_array())
        .into_iter()
        .flatten()
    {
        let heard = match p["last_heard_ms"].as_u64() {
            Some(ms) => format!("heard {ms} ms ago"),
            None => "never heard".to_string(),
        };
        out.push_str(&format!(
            "peer {} at {}: {}, {} link(s) up, {heard}; moved out {} (failed {}), in {} (refused {}), adopted p50 {:.1} us\n",
            p["name"].as_str().unwrap_or("?"),
            p["addr"].as_str().unwrap_or("?"),
            if p["alive"] == true { "up" } else { "down" },
            p["links_up"],
            p["moved_out"],
            p["failed_out"],
            p["moved_in"],
            p["refused_in"],
            p["migration_adopted_p50_ns"].as_u64().unwrap_or(0) as f64 / 1000.0,
        ));
    }
    out
}

/// Renders a `conns` answer: one line per connection.
pub fn render_conns(v: &serde_json::Value) -> String {
    let mut out = String::new();
    let list = v
        .get("connections")
        .and_then(|c| c.as_array())
        .cloned()
        .unwrap_or_default();
    out.push_str(&format!(
        "{:<16} {:<21} {:<21} {:<12} {:>4} {:>10} {:>10}\n",
        "ID", "LOCAL", "REMOTE", "STATE", "CORE", "SEND-Q", "RECV-Q"
    ));
    for c in &list {
        out.push_str(&format!(
            "{:<16} {:<21} {:<21} {:<12} {:>4} {:>10} {:>10}\n",
            c["id"].as_str().unwrap_or("?"),
            c["local"].as_str().unwrap_or("?"),
            c["remote"].as_str().unwrap_or("?"),
            c["state"].as_str().unwrap_or("?"),
            c["core"],
            c["send_queue"],
            c["recv_queue"],
        ));
    }
    out.push_str(&render_peers(v));
    for p in v
        .get("problems")
        .and_then(|p| p.as_array())
        .into_iter()
        .flatten()
    {
        out.push_str(&format!("warning: {}\n", p.as_str().unwrap_or("?")));
    }
    out
}

/// Renders a `migrate` answer: one line per move.
pub fn render_moves(v: &serde_json::Value) -> String {
    let mut out = String::new();
    let moves = v
        .get("moves")
        .and_then(|m| m.as_array())
        .cloned()
        .unwrap_or_default();
    let moved = moves.iter().filter(|m| m["moved"] == true).count();
    for m in &moves {
        if m["moved"] == true {
            out.push_str(&format!(
                "moved {} from core {} to {} in {:.1} us\n",
                m["id"].as_str().unwrap_or("?"),
                m["from"],
                m["dest"].as_str().unwrap_or("?"),
                m["latency_ns"].as_u64().unwrap_or(0) as f64 / 1000.0
            ));
        } else {
            out.push_str(&format!(
                "not moved {} (stays on core {}): {}\n",
                m["id"].as_str().unwrap_or("?"),
                m["from"],
                m["error"].as_str().unwrap_or("?")
            ));
        }
    }
    out.push_str(&format!("{moved} of {} moved\n", moves.len()));
    match v.get("handed_over").and_then(|h| h.as_bool()) {
        Some(true) => out.push_str(&format!(
            "address handed over to {}: the engine can be stopped\n",
            v["to_peer"].as_str().unwrap_or("?")
        )),
        Some(false) => out.push_str("address not handed over\n"),
        None => {}
    }
    out
}

/// The exit status for an answer: 0 when it carries no error, else 1 (the command ran
/// but did not do all it was asked: a refused move, a busy core, an unknown id).
pub fn exit_code(v: &serde_json::Value) -> i32 {
    let refused = v
        .get("moves")
        .and_then(|m| m.as_array())
        .is_some_and(|m| m.iter().any(|m| m["moved"] != true));
    if v.get("error").is_some() || refused {
        1
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_stats_over_the_socket() {
        let dir = std::env::temp_dir().join(format!("mg-ctl-{}", std::process::id()));
        let board = StatsBoard::new("t1", 2);
        board.publish(0, |s| {
            s.lcore = 3;
            s.counters.rx_packets = 5;
            s.extra = vec![("connections_established", 2)];
        });
        board.publish(1, |s| {
            s.lcore = 4;
            s.counters.rx_packets = 7;
            s.extra = vec![("connections_established", 1)];
        });
        let server = ControlServer::start(&dir, Arc::clone(&board), vec![], vec![]).unwrap();
        // A second engine of the same name is refused while the first runs.
        assert!(matches!(
            ControlServer::start(&dir, StatsBoard::new("t1", 1), vec![], vec![]),
            Err(CtlError::AlreadyRunning(..))
        ));
        let v = request(&dir, "t1", "stats").unwrap();
        assert_eq!(v["total"]["rx_packets"], 12);
        assert_eq!(v["total"]["connections_established"], 3);
        assert_eq!(v["cores"][1]["lcore"], 4);
        assert!(render_stats(&v).contains("rx_packets"));
        let bad = request(&dir, "t1", "explode").unwrap();
        assert!(bad["error"].as_str().unwrap().contains("unknown command"));
        drop(server);
        assert!(!socket_path(&dir, "t1").exists());
        assert!(matches!(
            request(&dir, "t1", "stats"),
            Err(CtlError::NotRunning(..))
        ));
        let _ = std::fs::remove_dir_all(dir);
    }
}
