//! The control socket: `migratory ctl --name NAME stats` reads a running engine's
//! counters. The engine serves a Unix socket at `<dir>/NAME.sock` from a thread of its
//! own; each core publishes a snapshot of its counters into a [`StatsBoard`] every few
//! milliseconds (never blocking the data path: a busy slot is skipped until next time).
//!
//! Protocol: the client writes one command line (`stats`), the server answers with one
//! JSON document and closes.
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use engine::stats::Counters;

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

    /// Every core's snapshot and their sum, as one JSON document.
    pub fn to_json(&self) -> String {
        let mut total = Counters::default();
        let mut extra_total: Vec<(&'static str, u64)> = Vec::new();
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
            cores.push(snapshot_json(&s.counters, &s.extra, Some(s.lcore)));
        }
        format!(
            "{{\"engine\":{},\"cores\":[{}],\"total\":{}}}",
            serde_json::Value::String(self.name.clone()),
            cores.join(","),
            snapshot_json(&total, &extra_total, None)
        )
    }
}

fn snapshot_json(c: &Counters, extra: &[(&'static str, u64)], lcore: Option<u32>) -> String {
    let mut s = String::from("{");
    if let Some(l) = lcore {
        s.push_str(&format!("\"lcore\":{l},"));
    }
    for (k, v) in c.iter().chain(extra.iter().copied()) {
        s.push_str(&format!("\"{k}\":{v},"));
    }
    s.push_str(&format!("\"drops_total\":{}}}", c.total_dropped()));
    s
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

impl ControlServer {
    /// Binds `<dir>/NAME.sock` and serves `board` from a new thread. Call it before EAL
    /// starts, so the thread does not inherit the main lcore's CPU pinning.
    pub fn start(dir: &Path, board: Arc<StatsBoard>) -> Result<ControlServer, CtlError> {
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
            .spawn(move || serve_loop(listener, board, thread_stop))
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

fn serve_loop(listener: UnixListener, board: Arc<StatsBoard>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = answer(stream, &board);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn answer(stream: UnixStream, board: &StatsBoard) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut line = String::new();
    BufReader::new((&stream).take(256)).read_line(&mut line)?;
    let reply = match line.trim() {
        "stats" => board.to_json(),
        other => format!(
            "{{\"error\":{}}}",
            serde_json::Value::String(format!("unknown command {other:?}; try: stats"))
        ),
    };
    let mut w = &stream;
    w.write_all(reply.as_bytes())?;
    w.write_all(b"\n")
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
    out
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
        let server = ControlServer::start(&dir, Arc::clone(&board)).unwrap();
        // A second engine of the same name is refused while the first runs.
        assert!(matches!(
            ControlServer::start(&dir, StatsBoard::new("t1", 1)),
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
