//! `linux-load`: the Linux-socket baseline client, the counterpart of `linux-echo`. One
//! thread pinned to one core drives many non-blocking sockets through epoll (mio):
//!
//! - `rpc`: C connections, each sending S-byte requests and waiting for S-byte responses
//!   (with up to `--pipeline` requests outstanding); rate in requests per second;
//! - `cps`: connect, one S-byte request and response, close, with `--concurrency`
//!   attempts in flight; rate in connections per second;
//! - `bulk`: streams to a discard server (`--direction tx`) or from a source server
//!   (`--direction rx`); rate in Gbit/s.
//!
//! Latency is the time from queueing a request (rpc) or starting the connect (cps) to the
//! last byte of its response, in a HdrHistogram: p50, p99 and p99.9. A live progress line
//! is drawn when stdout is a terminal; `--json` prints one JSON object at the end.
use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use migratory_perf::cli;
use migratory_perf::latency::{Latency, Percentiles};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use serde::Serialize;

const BIN: &str = "linux-load";
/// Largest request or response size accepted (bytes).
const MAX_MESSAGE: usize = 16 << 20;

/// Linux-socket load client (rpc, cps, bulk), single-threaded and pinned.
#[derive(Debug, Parser)]
#[command(name = BIN, version)]
struct Args {
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Debug, clap::Args)]
struct Common {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:7007")]
    connect: SocketAddr,
    /// Seconds to measure for (after the warm-up).
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds to run before measuring.
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    /// CPU core to pin the client to.
    #[arg(long, default_value_t = 0)]
    core: usize,
    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Workload {
    /// C connections, request/response of S bytes, optional pipelining.
    Rpc {
        #[command(flatten)]
        common: Common,
        /// Connections.
        #[arg(long, default_value_t = 1000)]
        connections: usize,
        /// Request and response size in bytes.
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// Requests outstanding per connection.
        #[arg(long, default_value_t = 1)]
        pipeline: usize,
    },
    /// Connect, one request/response of S bytes, close; repeated.
    Cps {
        #[command(flatten)]
        common: Common,
        /// Connection attempts in flight.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Request and response size in bytes.
        #[arg(long, default_value_t = 64)]
        size: usize,
    },
    /// Long streams to a discard server (tx) or from a source server (rx).
    Bulk {
        #[command(flatten)]
        common: Common,
        /// Parallel streams.
        #[arg(long, default_value_t = 1)]
        streams: usize,
        /// Bytes per read/write call.
        #[arg(long, default_value_t = 65536)]
        size: usize,
        /// tx: the client sends (to `linux-echo --mode discard`); rx: it receives (from
        /// `--mode source`).
        #[arg(long, value_enum, default_value_t = Direction::Tx)]
        direction: Direction,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Direction {
    Tx,
    Rx,
}

/// The result of a run, in the shape `perf/run` reads.
#[derive(Debug, Serialize, Default)]
struct Report {
    workload: &'static str,
    server: String,
    duration_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    connections: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    concurrency: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    streams: Option<usize>,
    size: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pipeline: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    direction: Option<Direction>,
    /// Completed requests (rpc), connections (cps), or bytes moved (bulk).
    completed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    rps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gbps: Option<f64>,
    /// Latency percentiles (absent for bulk, where no request has a response).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    latency: Option<Percentiles>,
    errors: u64,
}

fn main() {
    let args: Args = cli::parse_or_exit(BIN);
    std::process::exit(run(&args));
}

fn run(args: &Args) -> i32 {
    let common = match &args.workload {
        Workload::Rpc { common, .. }
        | Workload::Cps { common, .. }
        | Workload::Bulk { common, .. } => common,
    };
    if !(common.duration.is_finite() && common.duration > 0.0 && common.duration <= 86_400.0) {
        return cli::usage_error(BIN, "--duration must be in (0, 86400] seconds");
    }
    if !(common.warmup.is_finite() && (0.0..=3600.0).contains(&common.warmup)) {
        return cli::usage_error(BIN, "--warmup must be in [0, 3600] seconds");
    }
    let checks: &[(&str, usize, usize)] = match &args.workload {
        Workload::Rpc {
            connections,
            size,
            pipeline,
            ..
        } => &[
            ("--connections", *connections, 60_000),
            ("--size", *size, MAX_MESSAGE),
            ("--pipeline", *pipeline, 1024),
        ],
        Workload::Cps {
            concurrency, size, ..
        } => &[
            ("--concurrency", *concurrency, 10_000),
            ("--size", *size, MAX_MESSAGE),
        ],
        Workload::Bulk { streams, size, .. } => &[
            ("--streams", *streams, 1024),
            ("--size", *size, MAX_MESSAGE),
        ],
    };
    for &(name, v, max) in checks {
        if v == 0 || v > max {
            return cli::usage_error(BIN, format_args!("{name} {v} must be between 1 and {max}"));
        }
    }
    if let Err(e) = cli::pin_to_core(common.core) {
        return cli::usage_error(BIN, e);
    }
    let stop = match cli::stop_flag() {
        Ok(s) => s,
        Err(e) => return cli::failure(BIN, format_args!("cannot install a signal handler: {e}")),
    };
    let mut poll = match Poll::new() {
        Ok(p) => p,
        Err(e) => return cli::failure(BIN, format_args!("epoll: {e}")),
    };
    let result = match &args.workload {
        Workload::Rpc {
            common,
            connections,
            size,
            pipeline,
        } => rpc(&mut poll, common, *connections, *size, *pipeline, &stop),
        Workload::Cps {
            common,
            concurrency,
            size,
        } => cps(&mut poll, common, *concurrency, *size, &stop),
        Workload::Bulk {
            common,
            streams,
            size,
            direction,
        } => bulk(&mut poll, common, *streams, *size, *direction, &stop),
    };
    let report = match result {
        Ok(r) => r,
        Err(e) => return cli::failure(BIN, e),
    };
    if common.json {
        match serde_json::to_string(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => return cli::failure(BIN, format_args!("cannot write JSON: {e}")),
        }
    } else {
        print_report(&report);
    }
    if report.completed == 0 {
        return cli::failure(
            BIN,
            "nothing completed: is the server running and in the right mode?",
        );
    }
    0
}

fn print_report(r: &Report) {
    let rate = match (r.rps, r.cps, r.gbps) {
        (Some(v), _, _) => format!("{}requests/s", cli::si(v)),
        (_, Some(v), _) => format!("{}connections/s", cli::si(v)),
        (_, _, Some(v)) => format!("{v:.2} Gbit/s"),
        _ => String::new(),
    };
    let lat = r.latency.map_or(String::new(), |l| {
        format!(
            "; latency p50 {:.1} us p99 {:.1} us p99.9 {:.1} us",
            l.p50_us, l.p99_us, l.p999_us
        )
    });
    println!(
        "{BIN}: {} to {} over {:.2} s: {rate}{lat}; errors {}",
        r.workload, r.server, r.duration_s, r.errors
    );
}

/// The measuring window: warm-up, then `duration`; draws the progress line.
struct Clock {
    start: Instant,
    measure_from: Instant,
    end: Instant,
    progress: bool,
    tick: Instant,
    last_count: u64,
    unit: &'static str,
}

impl Clock {
    fn new(common: &Common, unit: &'static str) -> Clock {
        let start = Instant::now();
        let measure_from = start + Duration::from_secs_f64(common.warmup);
        Clock {
            start,
            measure_from,
            end: measure_from + Duration::from_secs_f64(common.duration),
            progress: cli::stdout_is_tty() && !common.json,
            tick: start,
            last_count: 0,
            unit,
        }
    }

    fn measuring(&self, now: Instant) -> bool {
        now >= self.measure_from
    }

    fn done(&self, now: Instant) -> bool {
        now >= self.end
    }

    /// The measured time: to the end of the window, or to now if stopped early.
    fn seconds(&self) -> f64 {
        let end = Instant::now().min(self.end);
        end.saturating_duration_since(self.measure_from)
            .as_secs_f64()
            .max(1e-9)
    }

    /// Redraws the live line once a second (terminal only); `count` is the running total.
    fn progress(&mut self, now: Instant, count: u64, scale: f64, lat: &Latency) {
        if !self.progress || now.duration_since(self.tick) < Duration::from_secs(1) {
            return;
        }
        let dt = now.duration_since(self.tick).as_secs_f64();
        let rate = count.saturating_sub(self.last_count) as f64 * scale / dt;
        let p = lat.percentiles();
        let lat = if lat.is_empty() {
            String::new()
        } else {
            format!("  p50 {:.1} us  p99 {:.1} us", p.p50_us, p.p99_us)
        };
        let phase = if self.measuring(now) {
            ""
        } else {
            " (warm-up)"
        };
        print!(
            "\r{BIN}: {:>5.1} s  {}{}{lat}{phase}      ",
            now.duration_since(self.start).as_secs_f64(),
            cli::si(rate),
            self.unit
        );
        let _ = std::io::stdout().flush();
        self.tick = now;
        self.last_count = count;
    }

    fn finish(&self) {
        if self.progress {
            println!();
        }
    }
}

fn poll_once(poll: &mut Poll, events: &mut Events, timeout: Duration) -> Result<(), String> {
    match poll.poll(events, Some(timeout)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::Interrupted => Ok(()),
        Err(e) => Err(format!("epoll wait: {e}")),
    }
}

/// Whether a non-blocking connect has completed: `Ok(true)` connected, `Ok(false)` not
/// yet, `Err` failed.
fn connected(stream: &TcpStream) -> std::io::Result<bool> {
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    match stream.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotConnected => Ok(false),
        Err(e) => Err(e),
    }
}

/// Writes up to `want` bytes of `fill` (repeated) until the socket would block. Returns
/// the bytes written, or `Err` when the connection failed.
fn write_fill(stream: &mut TcpStream, fill: &[u8], mut want: usize) -> std::io::Result<usize> {
    let mut done = 0;
    while want > 0 {
        match stream.write(&fill[..want.min(fill.len())]) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => {
                done += n;
                want -= n;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Reads until the socket would block. Returns bytes read and whether the peer closed.
fn read_all(stream: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<(usize, bool)> {
    let mut total = 0;
    loop {
        match stream.read(buf) {
            Ok(0) => return Ok((total, true)),
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok((total, false)),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// One rpc connection.
struct RpcConn {
    stream: TcpStream,
    up: bool,
    /// Request bytes queued and not yet written.
    to_write: usize,
    /// Response bytes received towards the oldest outstanding request.
    got: usize,
    /// Queueing time of each outstanding request, oldest first.
    sent_at: VecDeque<Instant>,
}

fn rpc(
    poll: &mut Poll,
    common: &Common,
    connections: usize,
    size: usize,
    pipeline: usize,
    stop: &AtomicBool,
) -> Result<Report, String> {
    let fill = vec![0x61u8; size.min(65536)];
    let mut buf = vec![0u8; 65536];
    let mut conns = Vec::with_capacity(connections);
    for i in 0..connections {
        let mut stream = TcpStream::connect(common.connect)
            .map_err(|e| format!("connect to {} (connection {i}): {e}", common.connect))?;
        poll.registry()
            .register(
                &mut stream,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| format!("epoll register: {e}"))?;
        conns.push(RpcConn {
            stream,
            up: false,
            to_write: 0,
            got: 0,
            sent_at: VecDeque::with_capacity(pipeline),
        });
    }
    // Every connection up before the clock starts: set-up is what `cps` measures.
    let mut events = Events::with_capacity(4096);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut up = 0;
    while up < connections {
        if Instant::now() > deadline || stop.load(Ordering::Relaxed) {
            return Err(format!(
                "only {up} of {connections} connections to {} came up within 10 s",
                common.connect
            ));
        }
        poll_once(poll, &mut events, Duration::from_millis(100))?;
        for ev in events.iter() {
            let c = &mut conns[ev.token().0];
            if !c.up {
                match connected(&c.stream) {
                    Ok(true) => {
                        c.up = true;
                        up += 1;
                        let _ = c.stream.set_nodelay(true);
                    }
                    Ok(false) => {}
                    Err(e) => return Err(format!("connect to {}: {e}", common.connect)),
                }
            }
        }
    }

    let mut clock = Clock::new(common, "requests/s");
    let mut lat = Latency::new();
    let (mut completed, mut errors) = (0u64, 0u64);
    let mut measuring = common.warmup == 0.0;
    let now = Instant::now();
    for c in conns.iter_mut() {
        for _ in 0..pipeline {
            c.sent_at.push_back(now);
        }
        c.to_write = size * pipeline;
        match write_fill(&mut c.stream, &fill, c.to_write) {
            Ok(n) => c.to_write -= n,
            Err(_) => errors += 1,
        }
    }
    let mut open = connections;
    while open > 0 && !stop.load(Ordering::Relaxed) {
        poll_once(poll, &mut events, Duration::from_millis(10))?;
        let now = Instant::now();
        if clock.done(now) {
            break;
        }
        if !measuring && clock.measuring(now) {
            measuring = true;
            clock.last_count = 0;
            lat.reset();
            completed = 0;
        }
        for ev in events.iter() {
            let c = &mut conns[ev.token().0];
            if !c.up {
                continue;
            }
            let (n, closed) = read_all(&mut c.stream, &mut buf).unwrap_or((0, true));
            c.got += n;
            let mut again = 0;
            while c.got >= size {
                let Some(t) = c.sent_at.pop_front() else {
                    break; // more bytes than asked for: not an echo server
                };
                c.got -= size;
                lat.record_ns(now.duration_since(t).as_nanos() as u64);
                completed += 1;
                again += 1;
            }
            for _ in 0..again {
                c.sent_at.push_back(now);
            }
            c.to_write += again * size;
            if closed {
                c.up = false;
                open -= 1;
                errors += 1;
                continue;
            }
            if c.to_write > 0 {
                match write_fill(&mut c.stream, &fill, c.to_write) {
                    Ok(w) => c.to_write -= w,
                    Err(_) => {
                        c.up = false;
                        open -= 1;
                        errors += 1;
                    }
                }
            }
        }
        clock.progress(now, completed, 1.0, &lat);
    }
    clock.finish();
    if open == 0 {
        return Err(format!(
            "the server at {} closed every connection",
            common.connect
        ));
    }
    let secs = clock.seconds();
    Ok(Report {
        workload: "rpc",
        server: common.connect.to_string(),
        duration_s: secs,
        connections: Some(connections),
        size,
        pipeline: Some(pipeline),
        completed,
        rps: Some(completed as f64 / secs),
        latency: Some(lat.percentiles()),
        errors,
        ..Report::default()
    })
}

/// One cps slot: a connection in progress.
struct CpsConn {
    stream: TcpStream,
    started: Instant,
    up: bool,
    to_write: usize,
    got: usize,
}

fn cps(
    poll: &mut Poll,
    common: &Common,
    concurrency: usize,
    size: usize,
    stop: &AtomicBool,
) -> Result<Report, String> {
    let fill = vec![0x62u8; size.min(65536)];
    let mut buf = vec![0u8; 65536];
    let open_slot = |poll: &mut Poll, i: usize| -> std::io::Result<CpsConn> {
        let mut stream = TcpStream::connect(common.connect)?;
        poll.registry().register(
            &mut stream,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        Ok(CpsConn {
            stream,
            started: Instant::now(),
            up: false,
            to_write: size,
            got: 0,
        })
    };
    let mut slots: Vec<Option<CpsConn>> = Vec::with_capacity(concurrency);
    for i in 0..concurrency {
        slots.push(Some(
            open_slot(poll, i).map_err(|e| format!("connect to {}: {e}", common.connect))?,
        ));
    }
    let mut events = Events::with_capacity(4096);
    let mut clock = Clock::new(common, "connections/s");
    let mut lat = Latency::new();
    let (mut completed, mut errors, mut consecutive_errors) = (0u64, 0u64, 0u64);
    let mut measuring = common.warmup == 0.0;
    // Slots whose connect failed synchronously (e.g. no ephemeral port): retried each turn.
    let mut idle: Vec<usize> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        poll_once(poll, &mut events, Duration::from_millis(10))?;
        let now = Instant::now();
        if clock.done(now) {
            break;
        }
        if !measuring && clock.measuring(now) {
            measuring = true;
            clock.last_count = 0;
            lat.reset();
            completed = 0;
            errors = 0;
        }
        let mut finished: Vec<(usize, bool)> = Vec::new();
        for ev in events.iter() {
            let i = ev.token().0;
            let Some(Some(c)) = slots.get_mut(i) else {
                continue;
            };
            if !c.up {
                match connected(&c.stream) {
                    Ok(true) => c.up = true,
                    Ok(false) => continue,
                    Err(_) => {
                        finished.push((i, false));
                        continue;
                    }
                }
            }
            if c.to_write > 0 {
                match write_fill(&mut c.stream, &fill, c.to_write) {
                    Ok(w) => c.to_write -= w,
                    Err(_) => {
                        finished.push((i, false));
                        continue;
                    }
                }
            }
            match read_all(&mut c.stream, &mut buf) {
                Ok((n, closed)) => {
                    c.got += n;
                    if c.got >= size {
                        finished.push((i, true));
                    } else if closed {
                        finished.push((i, false));
                    }
                }
                Err(_) => finished.push((i, false)),
            }
        }
        for (i, ok) in finished {
            // The same slot may appear twice if it had two events; only the first counts.
            let Some(c) = slots[i].take() else { continue };
            if ok {
                lat.record_ns(now.duration_since(c.started).as_nanos() as u64);
                completed += 1;
                consecutive_errors = 0;
            } else {
                errors += 1;
                consecutive_errors += 1;
            }
            drop(c); // close: the client ends the connection
            idle.push(i);
        }
        if consecutive_errors > 100_000 {
            return Err(format!(
                "100000 connections in a row to {} failed",
                common.connect
            ));
        }
        let mut retry = Vec::new();
        for i in idle.drain(..) {
            match open_slot(poll, i) {
                Ok(c) => slots[i] = Some(c),
                Err(_) => {
                    errors += 1;
                    consecutive_errors += 1;
                    retry.push(i);
                }
            }
        }
        idle = retry;
        clock.progress(now, completed, 1.0, &lat);
    }
    clock.finish();
    let secs = clock.seconds();
    Ok(Report {
        workload: "cps",
        server: common.connect.to_string(),
        duration_s: secs,
        concurrency: Some(concurrency),
        size,
        completed,
        cps: Some(completed as f64 / secs),
        latency: Some(lat.percentiles()),
        errors,
        ..Report::default()
    })
}

fn bulk(
    poll: &mut Poll,
    common: &Common,
    streams: usize,
    size: usize,
    direction: Direction,
    stop: &AtomicBool,
) -> Result<Report, String> {
    let fill = vec![0x63u8; size];
    let mut buf = vec![0u8; size];
    let mut conns = Vec::with_capacity(streams);
    for i in 0..streams {
        let mut stream = TcpStream::connect(common.connect)
            .map_err(|e| format!("connect to {}: {e}", common.connect))?;
        poll.registry()
            .register(
                &mut stream,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| format!("epoll register: {e}"))?;
        conns.push(Some(stream));
    }
    let mut events = Events::with_capacity(1024);
    let mut clock = Clock::new(common, "bit/s");
    let none = Latency::new();
    let (mut bytes, mut errors) = (0u64, 0u64);
    let mut measuring = common.warmup == 0.0;
    let mut open = streams;
    while open > 0 && !stop.load(Ordering::Relaxed) {
        poll_once(poll, &mut events, Duration::from_millis(10))?;
        let now = Instant::now();
        if clock.done(now) {
            break;
        }
        if !measuring && clock.measuring(now) {
            measuring = true;
            clock.last_count = 0;
            bytes = 0;
        }
        for ev in events.iter() {
            let i = ev.token().0;
            let Some(Some(s)) = conns.get_mut(i) else {
                continue;
            };
            let step = match direction {
                Direction::Tx => write_fill(s, &fill, usize::MAX).map(|n| (n, false)),
                Direction::Rx => read_all(s, &mut buf),
            };
            match step {
                Ok((n, closed)) => {
                    bytes += n as u64;
                    if closed {
                        conns[i] = None;
                        open -= 1;
                        errors += 1;
                    }
                }
                Err(_) => {
                    conns[i] = None;
                    open -= 1;
                    errors += 1;
                }
            }
        }
        clock.progress(now, bytes, 8.0, &none);
    }
    clock.finish();
    if open == 0 {
        return Err(format!(
            "the server at {} closed every stream",
            common.connect
        ));
    }
    let secs = clock.seconds();
    Ok(Report {
        workload: "bulk",
        server: common.connect.to_string(),
        duration_s: secs,
        streams: Some(streams),
        size,
        direction: Some(direction),
        completed: bytes,
        gbps: Some(bytes as f64 * 8.0 / secs / 1e9),
        errors,
        ..Report::default()
    })
}
