//! `iperf3`: a server for the stock `iperf3` client (protocol of iperf 3.x, checked
//! against 3.12), TCP only, forward (the client sends) and reverse (`-R`, we send).
//!
//! Owns: the control-connection state machine, the data streams of the one test that may
//! run at a time, the counts and the results JSON the client expects.
//!
//! The protocol, as iperf3 speaks it. Every connection starts with the client's 37-byte
//! cookie (36 characters and a NUL). The first connection of a test is the control
//! connection; on it the server sends one-byte states and both sides exchange
//! length-prefixed JSON (a 4-byte big-endian length, then the text):
//!
//! ```text
//! client                                   server
//! cookie ---------------------------------->
//!        <------------------------------------ PARAM_EXCHANGE (9)
//! len + {"tcp":true,"time":5,"parallel":1,"reverse":..,"len":131072,...} -->
//!        <------------------------------------ CREATE_STREAMS (10)
//! (each data stream connects, sends the cookie)
//!        <------------------------------------ TEST_START (1), TEST_RUNNING (2)
//! (data flows for `time` seconds: client to server, or server to client with -R)
//! TEST_END (4) ------------------------------>  (server closes the data streams)
//!        <------------------------------------ EXCHANGE_RESULTS (13)
//! len + client results --------------------->
//!        <------------------------------------ len + server results, DISPLAY_RESULTS (14)
//! IPERF_DONE (16) --------------------------->  (both close)
//! ```
//!
//! A second client while a test runs gets ACCESS_DENIED (0xff) and is closed; a request the
//! server cannot serve (UDP, SCTP, bidirectional) gets SERVER_ERROR (0xfe) with iperf3's
//! error number, which the client prints. Data streams get ids 1, 3, 4, ... in the order
//! they connect, as the client numbers them.
//!
//! May not: read a clock (time is [`Ctx::now`]), block, or panic on what a client sends.
//! One instance per core: a test's control and data connections must reach the same core
//! (true with one core; with several, the steering must keep a client's flows together).
use engine::stack::{App, ConnId, Ctx, Event};
use engine::tcp::Shutdown;
use engine::time::{Duration, Instant};
use serde_json::{json, Value};

use super::PerConn;

/// The client's cookie: 36 characters and a NUL.
pub const COOKIE_LEN: usize = 37;

/// Control states (iperf3's `iperf_api.h`), as the byte on the wire.
pub mod state {
    pub const TEST_START: u8 = 1;
    pub const TEST_RUNNING: u8 = 2;
    pub const TEST_END: u8 = 4;
    pub const PARAM_EXCHANGE: u8 = 9;
    pub const CREATE_STREAMS: u8 = 10;
    pub const SERVER_TERMINATE: u8 = 11;
    pub const CLIENT_TERMINATE: u8 = 12;
    pub const EXCHANGE_RESULTS: u8 = 13;
    pub const DISPLAY_RESULTS: u8 = 14;
    pub const IPERF_DONE: u8 = 16;
    /// -1 as a signed byte.
    pub const ACCESS_DENIED: u8 = 0xff;
    /// -2 as a signed byte; followed by two 4-byte big-endian numbers (iperf3's error
    /// number and errno).
    pub const SERVER_ERROR: u8 = 0xfe;
}

/// iperf3's error numbers (`i_errno`) this server reports.
pub mod ierr {
    /// "number of parallel streams too large".
    pub const NUM_STREAMS: u32 = 6;
    /// "an option you are trying to set is not implemented yet".
    pub const UNIMPLEMENTED: u32 = 13;
    /// "received an unknown control message".
    pub const MESSAGE: u32 = 116;
}

/// Most parallel streams a test may ask for (iperf3's own limit).
pub const MAX_STREAMS: u32 = 128;
/// Largest JSON message accepted from a client.
pub const MAX_JSON: usize = 1 << 20;
/// Bytes per send in reverse mode.
const PATTERN_LEN: usize = 128 * 1024;
/// How long the set-up and the results exchange may take before the test is dropped.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// Grace after the announced duration before a running test is dropped.
const RUN_GRACE: Duration = Duration::from_secs(30);

/// What the client asked for in PARAM_EXCHANGE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// The server sends (`-R`).
    pub reverse: bool,
    pub parallel: u32,
    /// Seconds; 0 when the test is bounded by bytes or blocks.
    pub time: u64,
    /// Seconds at the start not counted (`-O`).
    pub omit: u64,
    /// Bytes to send in all (`-n`), or 0.
    pub bytes: u64,
    /// Blocks of `len` bytes to send in all (`-k`), or 0.
    pub blocks: u64,
    /// Block length (`-l`).
    pub len: u64,
    /// The client wants the server's report (`--get-server-output`).
    pub server_output: bool,
}

/// Why a client's parameters are refused: iperf3's error number, and a word for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub ierr: u32,
    pub what: &'static str,
}

impl Params {
    /// Reads the parameters JSON. Anything but a TCP test in one direction is refused.
    pub fn parse(text: &[u8]) -> Result<Params, Refusal> {
        let malformed = Refusal {
            ierr: ierr::MESSAGE,
            what: "malformed parameters",
        };
        let v: Value = serde_json::from_slice(text).map_err(|_| malformed)?;
        let obj = v.as_object().ok_or(malformed)?;
        let flag = |k: &str| {
            obj.get(k)
                .is_some_and(|v| v.as_bool() == Some(true) || v.as_i64().is_some_and(|n| n != 0))
        };
        let num = |k: &str| obj.get(k).and_then(Value::as_u64).unwrap_or(0);
        for (key, what) in [
            ("udp", "UDP"),
            ("sctp", "SCTP"),
            ("bidirectional", "bidirectional mode"),
        ] {
            if flag(key) {
                return Err(Refusal {
                    ierr: ierr::UNIMPLEMENTED,
                    what,
                });
            }
        }
        let parallel = u32::try_from(num("parallel")).unwrap_or(u32::MAX).max(1);
        if parallel > MAX_STREAMS {
            return Err(Refusal {
                ierr: ierr::NUM_STREAMS,
                what: "too many parallel streams",
            });
        }
        Ok(Params {
            reverse: flag("reverse"),
            parallel,
            time: num("time"),
            omit: num("omit"),
            bytes: num("num"),
            blocks: num("blockcount"),
            len: num("len"),
            server_output: flag("get_server_output"),
        })
    }

    /// Bytes the server sends in all in reverse mode, if bounded.
    fn send_limit(&self) -> Option<u64> {
        if self.bytes > 0 {
            Some(self.bytes)
        } else if self.blocks > 0 {
            Some(self.blocks.saturating_mul(self.len.max(1)))
        } else {
            None
        }
    }
}

/// Where the test is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// PARAM_EXCHANGE sent; waiting for the parameters.
    Params,
    /// CREATE_STREAMS sent; waiting for the data streams.
    Streams,
    /// TEST_RUNNING sent; waiting for TEST_END.
    Running,
    /// EXCHANGE_RESULTS sent; waiting for the client's results.
    Results,
    /// DISPLAY_RESULTS sent; waiting for IPERF_DONE.
    Display,
}

#[derive(Debug)]
struct Stream {
    conn: ConnId,
    id: u32,
    /// Bytes received (forward) or sent (reverse), after the omitted seconds.
    bytes: u64,
    /// Segments the engine retransmitted on this stream (read when the test ends).
    retransmits: u64,
}

#[derive(Debug)]
struct Test {
    control: ConnId,
    cookie: [u8; COOKIE_LEN],
    phase: Phase,
    /// When the current phase began (for the watchdog).
    since: Instant,
    params: Option<Params>,
    streams: Vec<Stream>,
    /// TEST_START; counting begins `omit` seconds later.
    start: Instant,
    counting_from: Instant,
    end: Instant,
    /// Bytes sent in reverse mode (for `-n` / `-k`), including the omitted ones.
    sent_total: u64,
    /// Control bytes received and not yet used.
    input: Vec<u8>,
    /// Control bytes to send.
    output: Vec<u8>,
}

/// What a connection is to the server.
#[derive(Debug)]
enum Role {
    /// Reading the cookie.
    Cookie {
        buf: [u8; COOKIE_LEN],
        have: usize,
    },
    Control,
    Stream,
    /// Refused or finished: waiting for `Closed`.
    Gone,
}

/// The figures of the last finished test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub reverse: bool,
    pub streams: u32,
    pub bytes: u64,
    pub seconds: f64,
}

impl Summary {
    pub fn bits_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.bytes as f64 * 8.0 / self.seconds
        } else {
            0.0
        }
    }
}

/// Counters of one core's iperf3 server.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Iperf3Stats {
    pub tests_started: u64,
    pub tests_completed: u64,
    pub tests_aborted: u64,
    pub denied: u64,
    pub refused: u64,
    pub last: Option<Summary>,
}

/// The iperf3 server of one core.
#[derive(Debug)]
pub struct Iperf3 {
    conns: PerConn<Role>,
    test: Option<Test>,
    /// What reverse mode sends (pseudo-random, like iperf3's buffer).
    pattern: Box<[u8]>,
    /// Print a line per finished test.
    pub verbose: bool,
    pub stats: Iperf3Stats,
}

impl Default for Iperf3 {
    fn default() -> Self {
        Iperf3::new()
    }
}

impl Iperf3 {
    pub fn new() -> Iperf3 {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let pattern = (0..PATTERN_LEN)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        Iperf3 {
            conns: PerConn::default(),
            test: None,
            pattern,
            verbose: false,
            stats: Iperf3Stats::default(),
        }
    }

    /// Reads a new connection's cookie and decides what the connection is.
    fn read_cookie(&mut self, cx: &mut Ctx<'_>, conn: ConnId) {
        let Some(Role::Cookie { buf, have }) = self.conns.get_mut(conn) else {
            return;
        };
        while *have < COOKIE_LEN {
            match cx.recv(conn, &mut buf[*have..]) {
                Ok(n) if n > 0 => *have += n,
                _ => break,
            }
        }
        if *have < COOKIE_LEN {
            if cx.peer_closed(conn) {
                let _ = cx.close(conn);
                self.conns.insert(conn, Role::Gone);
            }
            return;
        }
        let cookie = *buf;
        self.expire(cx);
        let now = cx.now();
        match &mut self.test {
            None => {
                self.conns.insert(conn, Role::Control);
                self.test = Some(Test {
                    control: conn,
                    cookie,
                    phase: Phase::Params,
                    since: now,
                    params: None,
                    streams: Vec::new(),
                    start: now,
                    counting_from: now,
                    end: now,
                    sent_total: 0,
                    input: Vec::new(),
                    output: Vec::new(),
                });
                self.stats.tests_started += 1;
                self.control_send(cx, &[state::PARAM_EXCHANGE]);
                // Parameters may have come with the cookie.
                self.control_input(cx);
            }
            Some(test) if test.cookie == cookie && test.phase == Phase::Streams => {
                let wanted = test.params.as_ref().map_or(0, |p| p.parallel as usize);
                if test.streams.len() >= wanted {
                    self.deny(cx, conn);
                    return;
                }
                // Ids as the client numbers its streams: 1, then 3, 4, ...
                let id = match test.streams.len() {
                    0 => 1,
                    n => n as u32 + 2,
                };
                test.streams.push(Stream {
                    conn,
                    id,
                    bytes: 0,
                    retransmits: 0,
                });
                self.conns.insert(conn, Role::Stream);
                if test.streams.len() == wanted {
                    test.phase = Phase::Running;
                    test.since = now;
                    test.start = now;
                    let omit = test.params.as_ref().map_or(0, |p| p.omit);
                    test.counting_from = now + Duration::from_secs(omit);
                    self.control_send(cx, &[state::TEST_START, state::TEST_RUNNING]);
                    self.pump_all(cx);
                } else {
                    // Data may have followed the cookie already.
                    self.stream_event(cx, conn);
                }
            }
            // Another client while a test runs, or a stream with a wrong cookie.
            Some(_) => self.deny(cx, conn),
        }
    }

    /// Answers ACCESS_DENIED and closes.
    fn deny(&mut self, cx: &mut Ctx<'_>, conn: ConnId) {
        self.stats.denied += 1;
        let _ = cx.send(conn, &[state::ACCESS_DENIED]);
        let _ = cx.shutdown(conn, Shutdown::Both);
        self.conns.insert(conn, Role::Gone);
    }

    /// Queues control output and sends what fits.
    fn control_send(&mut self, cx: &mut Ctx<'_>, bytes: &[u8]) {
        if let Some(test) = &mut self.test {
            test.output.extend_from_slice(bytes);
            flush_control(cx, test);
        }
    }

    /// Reads and acts on control input.
    fn control_input(&mut self, cx: &mut Ctx<'_>) {
        let Some(test) = &mut self.test else { return };
        let control = test.control;
        // Read everything available (bounded: a message is at most MAX_JSON + 4).
        loop {
            let room = (MAX_JSON + 4).saturating_sub(test.input.len());
            if room == 0 {
                break;
            }
            let input = &mut test.input;
            match cx.recv_with(control, |data| {
                let n = data.len().min(room);
                input.extend_from_slice(&data[..n]);
                n
            }) {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
        while self.control_step(cx) {}
        if let Some(test) = &self.test {
            if cx.peer_closed(test.control) && test.input.is_empty() {
                // The client went away before IPERF_DONE.
                self.finish(cx, false);
            }
        }
    }

    /// Handles one control message if it is complete. False when waiting for more.
    fn control_step(&mut self, cx: &mut Ctx<'_>) -> bool {
        let Some(test) = &mut self.test else {
            return false;
        };
        match test.phase {
            Phase::Params | Phase::Results => {
                let Some(msg) = take_json(&mut test.input) else {
                    if test.input.len() >= 4 && json_len(&test.input) > MAX_JSON {
                        self.server_error(cx, ierr::MESSAGE, "oversized JSON message");
                    }
                    return false;
                };
                if test.phase == Phase::Params {
                    match Params::parse(&msg) {
                        Ok(p) => {
                            test.params = Some(p);
                            test.phase = Phase::Streams;
                            test.since = cx.now();
                            self.control_send(cx, &[state::CREATE_STREAMS]);
                        }
                        Err(r) => {
                            self.stats.refused += 1;
                            self.server_error(cx, r.ierr, r.what);
                            return false;
                        }
                    }
                } else {
                    // The client's own results: not needed for ours.
                    let results = self.results();
                    let mut out = Vec::with_capacity(results.len() + 5);
                    out.extend_from_slice(&(results.len() as u32).to_be_bytes());
                    out.extend_from_slice(&results);
                    out.push(state::DISPLAY_RESULTS);
                    if let Some(test) = &mut self.test {
                        test.phase = Phase::Display;
                        test.since = cx.now();
                    }
                    self.control_send(cx, &out);
                }
                true
            }
            Phase::Streams | Phase::Running | Phase::Display => {
                let Some(&byte) = test.input.first() else {
                    return false;
                };
                test.input.remove(0);
                match (test.phase, byte) {
                    (Phase::Running, state::TEST_END) => {
                        self.end_streams(cx);
                        if let Some(test) = &mut self.test {
                            test.phase = Phase::Results;
                            test.since = cx.now();
                        }
                        self.control_send(cx, &[state::EXCHANGE_RESULTS]);
                        true
                    }
                    (Phase::Display, state::IPERF_DONE) => {
                        self.finish(cx, true);
                        false
                    }
                    (_, state::CLIENT_TERMINATE) => {
                        self.finish(cx, false);
                        false
                    }
                    _ => {
                        self.server_error(cx, ierr::MESSAGE, "unexpected control message");
                        false
                    }
                }
            }
        }
    }

    /// Stops the data streams at TEST_END: counts what is buffered, then closes them.
    fn end_streams(&mut self, cx: &mut Ctx<'_>) {
        let Some(test) = &mut self.test else { return };
        let now = cx.now();
        test.end = now;
        let counting = now >= test.counting_from;
        let reverse = test.params.as_ref().is_some_and(|p| p.reverse);
        for s in &mut test.streams {
            if !reverse {
                let n = drain(cx, s.conn);
                if counting {
                    s.bytes += n;
                }
            }
            if let Some(c) = cx.connection(s.conn) {
                s.retransmits = u64::from(c.stats().retransmits);
            }
            let _ = cx.shutdown(s.conn, Shutdown::Both);
        }
    }

    /// The server's results JSON.
    fn results(&self) -> Vec<u8> {
        let Some(test) = &self.test else {
            return Vec::new();
        };
        let seconds = test
            .end
            .saturating_duration_since(test.counting_from)
            .as_secs_f64();
        let reverse = test.params.as_ref().is_some_and(|p| p.reverse);
        let streams: Vec<Value> = test
            .streams
            .iter()
            .map(|s| {
                json!({
                    "id": s.id,
                    "bytes": s.bytes,
                    // The sender's figure (iperf3 shows the sender's retransmissions).
                    "retransmits": if reverse { s.retransmits as i64 } else { -1 },
                    "jitter": 0,
                    "errors": 0,
                    "packets": 0,
                    "start_time": 0,
                    "end_time": seconds,
                })
            })
            .collect();
        let mut v = json!({
            // The engine does not measure its CPU use per test.
            "cpu_util_total": 0,
            "cpu_util_user": 0,
            "cpu_util_system": 0,
            // 1: this side sent and counted its retransmissions; -1: it only received.
            "sender_has_retransmits": if reverse { 1 } else { -1 },
            "streams": streams,
        });
        if test.params.as_ref().is_some_and(|p| p.server_output) {
            let mut text = String::from("migratory iperf3 server (engine TCP)\n");
            for s in &test.streams {
                let rate = if seconds > 0.0 {
                    s.bytes as f64 * 8.0 / seconds / 1e6
                } else {
                    0.0
                };
                text.push_str(&format!(
                    "stream {}: {} {} bytes in {seconds:.2} s = {rate:.1} Mbit/s\n",
                    s.id,
                    if reverse { "sent" } else { "received" },
                    s.bytes
                ));
            }
            v["server_output_text"] = Value::String(text);
        }
        serde_json::to_vec(&v).unwrap_or_default()
    }

    /// Sends SERVER_ERROR and ends the test.
    fn server_error(&mut self, cx: &mut Ctx<'_>, ierr: u32, what: &'static str) {
        let mut msg = [0u8; 9];
        msg[0] = state::SERVER_ERROR;
        msg[1..5].copy_from_slice(&ierr.to_be_bytes());
        self.control_send(cx, &msg);
        if self.verbose {
            println!("iperf3: refused a test: {what} (iperf3 error {ierr})");
        }
        self.finish(cx, false);
    }

    /// Ends the test: closes the control connection (after its queued output) and the
    /// streams, and records the figures.
    fn finish(&mut self, cx: &mut Ctx<'_>, completed: bool) {
        let Some(test) = self.test.take() else { return };
        let _ = cx.shutdown(test.control, Shutdown::Both);
        self.conns.insert(test.control, Role::Gone);
        for s in &test.streams {
            if completed {
                let _ = cx.shutdown(s.conn, Shutdown::Both);
            } else {
                let _ = cx.abort(s.conn);
            }
            self.conns.insert(s.conn, Role::Gone);
        }
        if !completed {
            self.stats.tests_aborted += 1;
            return;
        }
        self.stats.tests_completed += 1;
        let summary = Summary {
            reverse: test.params.as_ref().is_some_and(|p| p.reverse),
            streams: test.streams.len() as u32,
            bytes: test.streams.iter().map(|s| s.bytes).sum(),
            seconds: test
                .end
                .saturating_duration_since(test.counting_from)
                .as_secs_f64(),
        };
        self.stats.last = Some(summary);
        if self.verbose {
            let remote = cx
                .remote(test.control)
                .map_or_else(|| "?".to_owned(), |r| r.to_string());
            println!(
                "iperf3: test from {remote}: {} {} stream(s), {} bytes in {:.2} s = {:.3} Gbit/s",
                if summary.reverse {
                    "reverse (sent)"
                } else {
                    "forward (received)"
                },
                summary.streams,
                summary.bytes,
                summary.seconds,
                summary.bits_per_second() / 1e9,
            );
        }
    }

    /// Drops a test stuck in one phase (a client that vanished without closing).
    fn expire(&mut self, cx: &mut Ctx<'_>) {
        let Some(test) = &self.test else { return };
        let elapsed = cx.now().saturating_duration_since(test.since);
        let limit = match test.phase {
            Phase::Running => match test.params.as_ref().map(|p| p.time + p.omit) {
                Some(secs) if secs > 0 => Duration::from_secs(secs) + RUN_GRACE,
                _ => return, // bounded by bytes: the client ends it
            },
            _ => STEP_TIMEOUT,
        };
        if elapsed > limit {
            self.finish(cx, false);
        }
    }

    /// A data stream's event: count (forward) or send (reverse).
    fn stream_event(&mut self, cx: &mut Ctx<'_>, conn: ConnId) {
        let Some(test) = &mut self.test else { return };
        let Some(index) = test.streams.iter().position(|s| s.conn == conn) else {
            return;
        };
        let reverse = test.params.as_ref().is_some_and(|p| p.reverse);
        // Anything the client sends is read (and in forward mode counted).
        let n = drain(cx, conn);
        if !reverse && test.phase == Phase::Running && cx.now() >= test.counting_from {
            test.streams[index].bytes += n;
        }
        if reverse && test.phase == Phase::Running {
            pump(cx, test, index, &self.pattern);
        }
    }

    /// Sends on every stream (reverse mode, at TEST_RUNNING).
    fn pump_all(&mut self, cx: &mut Ctx<'_>) {
        let Some(test) = &mut self.test else { return };
        if !test.params.as_ref().is_some_and(|p| p.reverse) {
            return;
        }
        for index in 0..test.streams.len() {
            pump(cx, test, index, &self.pattern);
        }
    }
}

/// Sends on stream `index` while the send buffer and the test's byte limit allow.
fn pump(cx: &mut Ctx<'_>, test: &mut Test, index: usize, pattern: &[u8]) {
    let limit = test.params.as_ref().and_then(Params::send_limit);
    let conn = test.streams[index].conn;
    let counting = cx.now() >= test.counting_from;
    loop {
        let mut want = cx.send_capacity(conn).min(pattern.len());
        if let Some(limit) = limit {
            want = want
                .min(usize::try_from(limit.saturating_sub(test.sent_total)).unwrap_or(usize::MAX));
        }
        if want == 0 {
            return;
        }
        let n = cx.send(conn, &pattern[..want]).unwrap_or(0);
        if n == 0 {
            return;
        }
        test.sent_total += n as u64;
        if counting {
            test.streams[index].bytes += n as u64;
        }
    }
}

/// Reads and drops everything buffered on `conn`; returns the count.
fn drain(cx: &mut Ctx<'_>, conn: ConnId) -> u64 {
    let mut total = 0;
    while let Ok(n) = cx.recv_with(conn, |data| data.len()) {
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    total
}

/// Sends queued control output.
fn flush_control(cx: &mut Ctx<'_>, test: &mut Test) {
    if test.output.is_empty() {
        return;
    }
    let n = cx.send(test.control, &test.output).unwrap_or(0);
    test.output.drain(..n);
}

/// The length a 4-byte prefix announces.
fn json_len(buf: &[u8]) -> usize {
    u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize
}

/// Takes one length-prefixed JSON message from the front of `buf`, if complete.
fn take_json(buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    if buf.len() < 4 {
        return None;
    }
    let len = json_len(buf);
    if len > MAX_JSON || buf.len() < 4 + len {
        return None;
    }
    let msg = buf[4..4 + len].to_vec();
    buf.drain(..4 + len);
    Some(msg)
}

impl App for Iperf3 {
    fn on_event(&mut self, cx: &mut Ctx<'_>, conn: ConnId, event: Event) {
        match event {
            Event::Accepted { .. } => self.conns.insert(
                conn,
                Role::Cookie {
                    buf: [0; COOKIE_LEN],
                    have: 0,
                },
            ),
            Event::Readable | Event::Writable | Event::PeerClosed => match self.conns.get_mut(conn)
            {
                Some(Role::Cookie { .. }) => self.read_cookie(cx, conn),
                Some(Role::Control) => {
                    if let Some(test) = &mut self.test {
                        flush_control(cx, test);
                    }
                    self.control_input(cx);
                }
                Some(Role::Stream) => {
                    self.stream_event(cx, conn);
                    if event == Event::PeerClosed
                        && self.test.as_ref().is_none_or(|t| t.phase != Phase::Running)
                    {
                        let _ = cx.close(conn);
                    }
                }
                Some(Role::Gone) => {
                    drain(cx, conn);
                }
                None => {}
            },
            Event::Closed { .. } => {
                let was_control = matches!(self.conns.remove(conn), Some(Role::Control));
                if was_control && self.test.as_ref().is_some_and(|t| t.control == conn) {
                    self.finish(cx, false);
                }
            }
            Event::Connected => {
                let _ = cx.abort(conn);
            }
            // `import` refuses every connection: none is ever adopted here.
            Event::Adopted { .. } => {}
        }
    }

    fn on_poll(&mut self, cx: &mut Ctx<'_>) {
        self.expire(cx);
    }

    fn export(
        &mut self,
        _: &mut Ctx<'_>,
        _: ConnId,
        _: &mut Vec<u8>,
    ) -> Result<(), engine::stack::Refusal> {
        Err(engine::stack::Refusal::NotNow(
            "iperf3 keeps a test's control and data connections together on one core: they do not move",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::http::loopback::Loop;
    use engine::tcp::TcpConfig;

    /// A scripted iperf3 client: control connection, `parallel` data streams, `bytes` per
    /// stream sent (forward) or awaited (reverse), then the results exchange. With
    /// `intrude`, a second client connects while the test runs and must be denied.
    #[derive(Default)]
    struct Client {
        params: Vec<u8>,
        reverse: bool,
        parallel: usize,
        bytes: u64,
        intrude: bool,
        control: Option<ConnId>,
        connected: Vec<ConnId>,
        streams: Vec<ConnId>,
        input: Vec<u8>,
        running: bool,
        ended: bool,
        sent: Vec<u64>,
        received: Vec<u64>,
        results: Option<Value>,
        states: Vec<u8>,
        intruder: Option<ConnId>,
        intruder_got: Vec<u8>,
        finished: bool,
    }

    const COOKIE: &[u8; COOKIE_LEN] = b"abcdefghijklmnopqrstuvwxyz0123456789\0";

    impl Client {
        fn new(params: &str, parallel: usize, bytes: u64) -> Client {
            let v: Value = serde_json::from_str(params).unwrap();
            Client {
                params: params.as_bytes().to_vec(),
                reverse: v.get("reverse").is_some_and(|r| r == &json!(true)),
                parallel,
                bytes,
                sent: vec![0; parallel],
                received: vec![0; parallel],
                ..Client::default()
            }
        }

        fn control_step(&mut self, cx: &mut Ctx<'_>) {
            let Some(ctl) = self.control else { return };
            let mut buf = [0u8; 4096];
            while let Ok(n) = cx.recv(ctl, &mut buf) {
                if n == 0 {
                    break;
                }
                self.input.extend_from_slice(&buf[..n]);
            }
            loop {
                let Some(&b) = self.input.first() else { return };
                if self.ended
                    && self.results.is_none()
                    && self.states.last() == Some(&state::EXCHANGE_RESULTS)
                {
                    // The server's results (length-prefixed), then DISPLAY_RESULTS.
                    let Some(msg) = take_json(&mut self.input) else {
                        return;
                    };
                    self.results =
                        Some(serde_json::from_slice(&msg).expect("server results are JSON"));
                    continue;
                }
                self.input.remove(0);
                self.states.push(b);
                match b {
                    state::PARAM_EXCHANGE => {
                        let mut m = (self.params.len() as u32).to_be_bytes().to_vec();
                        m.extend_from_slice(&self.params);
                        cx.send(ctl, &m).unwrap();
                    }
                    state::CREATE_STREAMS => {
                        for _ in 0..self.parallel {
                            self.streams.push(
                                cx.connect(Loop::<Iperf3, Client>::server_addr(5201))
                                    .unwrap(),
                            );
                        }
                    }
                    state::TEST_RUNNING => self.running = true,
                    state::EXCHANGE_RESULTS => {
                        let mine = br#"{"cpu_util_total":1,"cpu_util_user":0,"cpu_util_system":1,"sender_has_retransmits":0,"streams":[]}"#;
                        let mut m = (mine.len() as u32).to_be_bytes().to_vec();
                        m.extend_from_slice(mine);
                        cx.send(ctl, &m).unwrap();
                    }
                    state::DISPLAY_RESULTS => {
                        cx.send(ctl, &[state::IPERF_DONE]).unwrap();
                        cx.close(ctl).unwrap();
                        self.finished = true;
                    }
                    _ => {}
                }
            }
        }
    }

    impl App for Client {
        fn on_event(&mut self, cx: &mut Ctx<'_>, conn: ConnId, event: Event) {
            if event == Event::Connected {
                self.connected.push(conn);
                cx.send(conn, COOKIE).unwrap();
            }
        }

        fn on_poll(&mut self, cx: &mut Ctx<'_>) {
            let Some(_) = self.control else {
                self.control = Some(
                    cx.connect(Loop::<Iperf3, Client>::server_addr(5201))
                        .unwrap(),
                );
                return;
            };
            self.control_step(cx);
            if !self.running || self.ended {
                return;
            }
            if self.intrude && self.intruder.is_none() {
                let id = cx
                    .connect(Loop::<Iperf3, Client>::server_addr(5201))
                    .unwrap();
                self.intruder = Some(id);
            }
            if let Some(id) = self.intruder {
                let mut b = [0u8; 16];
                if let Ok(n) = cx.recv(id, &mut b) {
                    self.intruder_got.extend_from_slice(&b[..n]);
                }
            }
            let chunk = [0x5au8; 8192];
            let mut buf = [0u8; 8192];
            for (i, &s) in self.streams.iter().enumerate() {
                if self.reverse {
                    while let Ok(n) = cx.recv(s, &mut buf) {
                        if n == 0 {
                            break;
                        }
                        self.received[i] += n as u64;
                    }
                } else {
                    while self.sent[i] < self.bytes {
                        let want = (self.bytes - self.sent[i]).min(chunk.len() as u64) as usize;
                        let n = cx.send(s, &chunk[..want]).unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        self.sent[i] += n as u64;
                    }
                }
            }
            let done = if self.reverse {
                self.received.iter().all(|&r| r >= self.bytes)
            } else {
                // Everything sent and acknowledged.
                self.sent.iter().all(|&s| s >= self.bytes)
                    && self
                        .streams
                        .iter()
                        .all(|&s| cx.send_capacity(s) == 256 * 1024)
            };
            if done && (!self.intrude || !self.intruder_got.is_empty()) {
                self.ended = true;
                cx.send(self.control.unwrap(), &[state::TEST_END]).unwrap();
            }
        }
    }

    fn run(client: Client) -> Loop<Iperf3, Client> {
        let mut net = Loop::new(Iperf3::new(), client, 5201, TcpConfig::default());
        assert!(
            net.run_until(Duration::from_secs(60), |n| n.capp.finished
                || n.capp.states.contains(&state::SERVER_ERROR)),
            "test did not finish; client saw states {:?}",
            net.capp.states
        );
        // Let the closes complete.
        net.run_until(Duration::from_secs(1), |_| false);
        net
    }

    fn stream_figures(results: &Value) -> Vec<(u64, u64)> {
        results["streams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["id"].as_u64().unwrap(), s["bytes"].as_u64().unwrap()))
            .collect()
    }

    #[test]
    fn a_forward_test_with_two_streams_counts_every_byte() {
        let client = Client::new(
            r#"{"tcp":true,"omit":0,"time":1,"parallel":2,"len":131072}"#,
            2,
            300_000,
        );
        let net = run(client);
        let c = &net.capp;
        assert_eq!(
            c.states,
            [
                state::PARAM_EXCHANGE,
                state::CREATE_STREAMS,
                state::TEST_START,
                state::TEST_RUNNING,
                state::EXCHANGE_RESULTS,
                state::DISPLAY_RESULTS
            ]
        );
        let results = c.results.as_ref().unwrap();
        assert_eq!(stream_figures(results), [(1, 300_000), (3, 300_000)]);
        for key in [
            "cpu_util_total",
            "cpu_util_user",
            "cpu_util_system",
            "sender_has_retransmits",
        ] {
            assert!(results.get(key).is_some(), "{key} missing");
        }
        let s = &results["streams"][0];
        for key in [
            "retransmits",
            "jitter",
            "errors",
            "packets",
            "start_time",
            "end_time",
        ] {
            assert!(s.get(key).is_some(), "stream {key} missing");
        }
        assert_eq!(net.sapp.stats.tests_completed, 1);
        assert_eq!(net.sapp.stats.last.map(|l| l.bytes), Some(600_000));
        assert!(
            net.sapp.test.is_none(),
            "the server is free for the next test"
        );
    }

    #[test]
    fn a_reverse_test_sends_exactly_the_bytes_asked_for() {
        let client = Client::new(
            r#"{"tcp":true,"time":0,"num":500000,"parallel":1,"reverse":true,"len":131072}"#,
            1,
            500_000,
        );
        let net = run(client);
        assert_eq!(net.capp.received, [500_000]);
        assert_eq!(
            stream_figures(net.capp.results.as_ref().unwrap()),
            [(1, 500_000)]
        );
        assert_eq!(
            net.sapp.stats.last.map(|l| (l.reverse, l.bytes)),
            Some((true, 500_000))
        );
        // The server sent: it reports its retransmissions per stream (none on this
        // clean link), and says so.
        let results = net.capp.results.as_ref().unwrap();
        assert_eq!(results["sender_has_retransmits"], 1);
        assert_eq!(results["streams"][0]["retransmits"], 0);
    }

    #[test]
    fn a_second_client_is_denied_while_a_test_runs() {
        let mut client = Client::new(
            r#"{"tcp":true,"time":1,"parallel":1,"len":131072}"#,
            1,
            100_000,
        );
        client.intrude = true;
        let net = run(client);
        assert_eq!(net.capp.intruder_got, [state::ACCESS_DENIED]);
        assert_eq!(net.sapp.stats.denied, 1);
        assert_eq!(net.sapp.stats.tests_completed, 1);
    }

    #[test]
    fn udp_is_refused_with_server_error() {
        let client = Client::new(r#"{"udp":true,"time":1,"parallel":1,"len":1460}"#, 1, 0);
        let net = run(client);
        assert_eq!(
            net.capp.states[..2],
            [state::PARAM_EXCHANGE, state::SERVER_ERROR]
        );
        let mut err = ierr::UNIMPLEMENTED.to_be_bytes().to_vec();
        err.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(net.capp.states[2..], err[..], "i_errno and errno follow");
        assert_eq!(net.sapp.stats.refused, 1);
        assert!(net.sapp.test.is_none());
    }

    #[test]
    fn parameters_of_a_forward_and_a_reverse_test() {
        let p = Params::parse(br#"{"tcp":true,"omit":0,"time":5,"num":0,"blockcount":0,"parallel":2,"len":131072,"pacing_timer":1000,"client_version":"3.12"}"#).unwrap();
        assert_eq!(
            p,
            Params {
                reverse: false,
                parallel: 2,
                time: 5,
                omit: 0,
                bytes: 0,
                blocks: 0,
                len: 131072,
                server_output: false,
            }
        );
        assert_eq!(p.send_limit(), None);
        let p = Params::parse(
            br#"{"tcp":true,"time":2,"parallel":1,"reverse":true,"len":131072,"num":1000000}"#,
        )
        .unwrap();
        assert!(p.reverse);
        assert_eq!(p.send_limit(), Some(1_000_000));
        let p = Params::parse(br#"{"tcp":true,"blockcount":3,"len":10}"#).unwrap();
        assert_eq!((p.parallel, p.send_limit()), (1, Some(30)));
    }

    #[test]
    fn unsupported_or_malformed_parameters_are_refused() {
        for (text, ierr) in [
            (&br#"{"udp":true,"time":5}"#[..], ierr::UNIMPLEMENTED),
            (br#"{"tcp":true,"bidirectional":true}"#, ierr::UNIMPLEMENTED),
            (br#"{"tcp":true,"parallel":129}"#, ierr::NUM_STREAMS),
            (br#"{"tcp":true,"#, ierr::MESSAGE),
            (br#"[1,2]"#, ierr::MESSAGE),
            (b"\xff\xfe", ierr::MESSAGE),
        ] {
            assert_eq!(
                Params::parse(text).map_err(|r| r.ierr),
                Err(ierr),
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn length_prefixed_json_is_taken_whole_or_not_at_all() {
        let mut buf = vec![0, 0, 0, 3, b'{', b'}'];
        assert_eq!(take_json(&mut buf), None);
        buf.extend_from_slice(b" \x10");
        assert_eq!(take_json(&mut buf), Some(b"{} ".to_vec()));
        assert_eq!(buf, vec![0x10]);
        let mut huge = vec![0xff, 0xff, 0xff, 0xff, b'{'];
        assert_eq!(take_json(&mut huge), None);
        assert!(json_len(&huge) > MAX_JSON);
    }

    #[test]
    fn summary_rate() {
        let s = Summary {
            reverse: false,
            streams: 1,
            bytes: 125_000_000,
            seconds: 1.0,
        };
        assert_eq!(s.bits_per_second(), 1e9);
    }
}
