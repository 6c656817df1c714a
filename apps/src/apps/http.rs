//! `http`: a static-file HTTP/1.1 server (RFC 9110, RFC 9112) for `--app http --root DIR`.
//!
//! Owns: loading the files under the root into memory once ([`Site`], shared read-only
//! by every core through an `Arc`), the request parser ([`parse_request`],
//! [`normalize_path`]), and the per-connection state machine that answers GET and HEAD
//! with keep-alive, pipelining in order and back-pressure.
//!
//! May not: touch the file system after start-up, read a clock (time comes from
//! [`Ctx::now`]), block, or panic on anything a client sends. Every malformed request gets
//! a status (400, 431, 501, 505) and the connection is closed after it.
//!
//! Back-pressure: a response is a head (in a per-connection byte buffer) and a body (a
//! shared file and a cursor into it). The connection writes what the send buffer takes
//! and continues on [`Event::Writable`]; a 64 MiB file never sits in more than the TCP
//! send buffer at once. A connection stops reading while [`MAX_PIPELINE`] responses wait,
//! so a client that pipelines without reading is throttled by its own receive window.
//!
//! Connections move (live migration) in the middle of a response body and with pipelined
//! requests queued: the snapshot holds the unparsed input, the request body still to
//! discard, the unsent part of the response heads, and each queued response body as its
//! file's name in the site and a position ([`Http::export`] documents the format). The
//! destination must serve the same files (the same `--root` content); a file it lacks
//! makes it refuse, and the connection stays where it was.
use std::collections::{HashMap, VecDeque};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use engine::stack::{App, ConnId, Ctx, Event, Refusal};
use engine::tcp::Shutdown;
use engine::time::{Duration, Instant};

use super::PerConn;

/// Most bytes of a request's head (request line and header fields, with the blank line).
/// Beyond it the answer is 431 and the connection is closed.
pub const MAX_HEADER: usize = 8 * 1024;
/// Responses queued on a connection before it stops reading more requests.
pub const MAX_PIPELINE: usize = 16;
/// A keep-alive connection with no activity for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often idle connections are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// Per-connection input buffer: one maximal head plus what follows it in the same read.
const INPUT_BUF: usize = 2 * MAX_HEADER;
/// Spare per-connection states kept for reuse (their buffers stay allocated).
const SPARE_CONNS: usize = 256;
/// The `Server` field of every response.
const SERVER: &str = "migratory";

// ---------------------------------------------------------------------------------------
// The site: every file under the root, in memory.
// ---------------------------------------------------------------------------------------

/// One file of the site.
#[derive(Debug, Clone)]
pub struct File {
    pub data: Arc<[u8]>,
    pub content_type: &'static str,
    /// Its key in the site: how a moving connection names the file it is sending.
    pub name: Arc<str>,
}

/// Why the site could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error("--root {0}: no such directory")]
    Missing(PathBuf),
    #[error("--root {0}: not a directory")]
    NotADirectory(PathBuf),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: file names under --root must be UTF-8")]
    NotUtf8(PathBuf),
}

/// The files under the root, keyed by their path relative to it with `/` separators
/// (`index.html`, `img/logo.png`). Read-only once loaded.
#[derive(Debug, Default)]
pub struct Site {
    /// Keyed by what we loaded (not by what peers send): the std hasher is fine.
    files: HashMap<Box<str>, File>,
    bytes: u64,
}

impl Site {
    /// Loads every regular file under `root` (following symbolic links to files, not to
    /// directories, so a link cycle cannot make loading loop).
    pub fn load(root: &Path) -> Result<Site, SiteError> {
        let meta = match std::fs::metadata(root) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(SiteError::Missing(root.to_path_buf()))
            }
            Err(source) => {
                return Err(SiteError::Io {
                    path: root.to_path_buf(),
                    source,
                })
            }
        };
        if !meta.is_dir() {
            return Err(SiteError::NotADirectory(root.to_path_buf()));
        }
        let mut site = Site::default();
        let mut dirs = vec![(root.to_path_buf(), String::new())];
        while let Some((dir, prefix)) = dirs.pop() {
            let io = |source| SiteError::Io {
                path: dir.clone(),
                source,
            };
            for entry in std::fs::read_dir(&dir).map_err(io)? {
                let entry = entry.map_err(io)?;
                let path = entry.path();
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    return Err(SiteError::NotUtf8(path));
                };
                let key = if prefix.is_empty() {
                    name
                } else {
                    format!("{prefix}/{name}")
                };
                let kind = entry.file_type().map_err(io)?;
                if kind.is_dir() {
                    dirs.push((path, key));
                    continue;
                }
                // A symbolic link counts if it leads to a regular file.
                let is_file = kind.is_file()
                    || (kind.is_symlink() && std::fs::metadata(&path).is_ok_and(|m| m.is_file()));
                if !is_file {
                    continue;
                }
                let data = std::fs::read(&path).map_err(|source| SiteError::Io {
                    path: path.clone(),
                    source,
                })?;
                site.insert(&key, data);
            }
        }
        Ok(site)
    }

    /// A site from `(path, bytes)` pairs (tests and embedders). Paths are relative, with
    /// `/` separators.
    pub fn from_files<'a>(files: impl IntoIterator<Item = (&'a str, Vec<u8>)>) -> Site {
        let mut site = Site::default();
        for (path, data) in files {
            site.insert(path, data);
        }
        site
    }

    fn insert(&mut self, key: &str, data: Vec<u8>) {
        self.bytes += data.len() as u64;
        let file = File {
            content_type: content_type(key),
            data: Arc::from(data),
            name: Arc::from(key),
        };
        if let Some(old) = self.files.insert(key.into(), file) {
            self.bytes -= old.data.len() as u64;
        }
    }

    /// The file at `key` (a normalised path, see [`normalize_path`]).
    pub fn file(&self, key: &str) -> Option<&File> {
        self.files.get(key)
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Total size of the files, in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The file a normalised request path names: the path itself, or its `index.html`
    /// when it names a directory (`dir` set: the target ended in `/`). `scratch` holds
    /// the path on entry and may be extended.
    fn resolve(&self, scratch: &mut Vec<u8>, dir: bool) -> Option<&File> {
        if !dir && !scratch.is_empty() {
            if let Some(f) = std::str::from_utf8(scratch).ok().and_then(|k| self.file(k)) {
                return Some(f);
            }
        }
        if !scratch.is_empty() {
            scratch.push(b'/');
        }
        scratch.extend_from_slice(b"index.html");
        std::str::from_utf8(scratch).ok().and_then(|k| self.file(k))
    }
}

/// The media type for a file name, by extension.
fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
    match ext.to_ascii_lowercase().as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        "css" => "text/css",
        "js" => "text/javascript",
        "json" => "application/json",
        "xml" => "application/xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "pdf" => "application/pdf",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

// ---------------------------------------------------------------------------------------
// The request parser (RFC 9112 §2-§6): sans-IO, allocation-free.
// ---------------------------------------------------------------------------------------

/// The request method (RFC 9110 §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    /// A method RFC 9110 defines that this server does not allow (405).
    NotAllowed,
    /// Any other token (501).
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// A parsed request head. `target` borrows the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: Method,
    pub target: &'a [u8],
    pub version: Version,
    /// The connection stays open after the response (RFC 9112 §9.3).
    pub keep_alive: bool,
    /// Content-Length of the request body (0 without one); the body follows the head.
    pub body_len: u64,
}

/// What [`parse_request`] found at the start of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// The head is not complete yet: read more.
    Partial,
    /// A request whose head took the first `len` bytes.
    Complete { request: Request<'a>, len: usize },
}

/// A request the server refuses. Each maps to a status; the connection closes after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("request head larger than {MAX_HEADER} bytes")]
    HeaderTooLarge,
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    #[error("HTTP version not supported")]
    Version,
    #[error("transfer codings in requests are not implemented")]
    TransferEncoding,
}

impl RequestError {
    pub fn status(self) -> Status {
        match self {
            RequestError::HeaderTooLarge => Status::HeaderTooLarge,
            RequestError::Malformed(_) => Status::BadRequest,
            RequestError::Version => Status::VersionNotSupported,
            RequestError::TransferEncoding => Status::NotImplemented,
        }
    }
}

/// Parses the request head at the start of `buf`.
///
/// Accepts CRLF and bare LF line ends (RFC 9112 §2.2) and skips empty lines before the
/// request line. Rejects: a head over [`MAX_HEADER`] bytes, a bare CR, whitespace between a
/// field name and its colon (§5.1), obsolete line folding (§5.2), control characters in
/// the target or in field values, a missing or repeated `Host` in HTTP/1.1 (§3.2),
/// conflicting `Content-Length`s (§6.3), and any `Transfer-Encoding` (501).
pub fn parse_request(buf: &[u8]) -> Result<Parsed<'_>, RequestError> {
    // Empty lines before the request line are ignored (RFC 9112 §2.2).
    let mut start = 0;
    while start < buf.len() && (buf[start] == b'\n' || buf[start] == b'\r') {
        if buf[start] == b'\r' && buf.get(start + 1).is_some_and(|&b| b != b'\n') {
            return Err(RequestError::Malformed("bare CR"));
        }
        start += 1;
        if start > MAX_HEADER {
            return Err(RequestError::HeaderTooLarge);
        }
    }
    let Some(end) = head_end(&buf[start..]) else {
        return if buf.len() - start >= MAX_HEADER {
            Err(RequestError::HeaderTooLarge)
        } else {
            Ok(Parsed::Partial)
        };
    };
    if end > MAX_HEADER {
        return Err(RequestError::HeaderTooLarge);
    }
    let head = &buf[start..start + end];
    let mut lines = Lines { rest: head };

    let line = lines.next_line()?.unwrap_or(&[]);
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(RequestError::Malformed("request line"));
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(RequestError::Malformed("method"));
    }
    if target.is_empty() || !target.iter().all(|&b| (0x21..=0x7e).contains(&b)) {
        return Err(RequestError::Malformed("request target"));
    }
    let version = match version {
        b"HTTP/1.1" => Version::Http11,
        b"HTTP/1.0" => Version::Http10,
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            return Err(RequestError::Version)
        }
        _ => return Err(RequestError::Malformed("HTTP version")),
    };
    let method = match method {
        b"GET" => Method::Get,
        b"HEAD" => Method::Head,
        b"POST" | b"PUT" | b"DELETE" | b"CONNECT" | b"OPTIONS" | b"TRACE" | b"PATCH" => {
            Method::NotAllowed
        }
        _ => Method::Unknown,
    };

    let mut hosts = 0u32;
    let mut close = false;
    let mut keep_alive_token = false;
    let mut content_length: Option<u64> = None;
    while let Some(line) = lines.next_line()? {
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return Err(RequestError::Malformed("obsolete line folding"));
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(RequestError::Malformed("header field without a colon"));
        };
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(RequestError::Malformed("header field name"));
        }
        let value = trim_ows(&line[colon + 1..]);
        if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(RequestError::Malformed(
                "control character in a header field",
            ));
        }
        if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|&b| b == b',').map(trim_ows) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive_token = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let n = parse_content_length(value)?;
            if content_length.is_some_and(|old| old != n) {
                return Err(RequestError::Malformed("conflicting Content-Length"));
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Err(RequestError::TransferEncoding);
        }
    }
    if version == Version::Http11 && hosts != 1 {
        return Err(RequestError::Malformed("HTTP/1.1 needs exactly one Host"));
    }
    let keep_alive = match version {
        Version::Http11 => !close,
        Version::Http10 => keep_alive_token && !close,
    };
    Ok(Parsed::Complete {
        request: Request {
            method,
            target,
            version,
            keep_alive,
            body_len: content_length.unwrap_or(0),
        },
        len: start + end,
    })
}

/// Length of the head (through its blank line), if `buf` holds a whole one.
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(nl) = buf[i..].iter().position(|&b| b == b'\n') {
        let next = i + nl + 1;
        match buf.get(next) {
            Some(b'\n') => return Some(next + 1),
            Some(b'\r') if buf.get(next + 1) == Some(&b'\n') => return Some(next + 2),
            _ => i = next,
        }
        if i >= buf.len() {
            break;
        }
    }
    None
}

/// Lines of a head, without their CRLF or LF.
struct Lines<'a> {
    rest: &'a [u8],
}

impl<'a> Lines<'a> {
    fn next_line(&mut self) -> Result<Option<&'a [u8]>, RequestError> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let nl = self
            .rest
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(self.rest.len());
        let mut line = &self.rest[..nl];
        self.rest = self.rest.get(nl + 1..).unwrap_or(&[]);
        if let [head @ .., b'\r'] = line {
            line = head;
        }
        if line.contains(&b'\r') {
            return Err(RequestError::Malformed("bare CR"));
        }
        Ok(Some(line))
    }
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn parse_content_length(value: &[u8]) -> Result<u64, RequestError> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(RequestError::Malformed("Content-Length"));
    }
    value.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
            .ok_or(RequestError::Malformed("Content-Length overflows"))
    })
}

/// Normalises a request target into a site key in `out` (cleared first): the path only
/// (query and fragment dropped), percent-decoded, with empty and `.` segments removed and
/// `..` removing the previous segment (never above the root). Returns whether the target
/// names a directory (ends in `/`, or is the root). The absolute form
/// (`http://host/path`) is accepted (RFC 9112 §3.2.2).
pub fn normalize_path(target: &[u8], out: &mut Vec<u8>) -> Result<bool, RequestError> {
    out.clear();
    let mut path = target;
    if let Some(i) = path.windows(3).position(|w| w == b"://") {
        let scheme = &path[..i];
        if !scheme.eq_ignore_ascii_case(b"http") && !scheme.eq_ignore_ascii_case(b"https") {
            return Err(RequestError::Malformed("request target scheme"));
        }
        let after = &path[i + 3..];
        path = match after
            .iter()
            .position(|&b| b == b'/' || b == b'?' || b == b'#')
        {
            Some(j) if after[j] == b'/' => &after[j..],
            _ => b"/",
        };
    }
    if path.first() != Some(&b'/') {
        return Err(RequestError::Malformed("request target is not a path"));
    }
    if let Some(q) = path.iter().position(|&b| b == b'?' || b == b'#') {
        path = &path[..q];
    }
    let mut dir = true;
    for raw in path.split(|&b| b == b'/').skip(1) {
        let mark = out.len();
        if mark > 0 {
            out.push(b'/');
        }
        let seg_start = out.len();
        percent_decode(raw, out)?;
        let seg = &out[seg_start..];
        if seg.contains(&b'/') || seg.contains(&0) || seg.contains(&b'\\') {
            return Err(RequestError::Malformed(
                "encoded separator or NUL in the path",
            ));
        }
        dir = seg.is_empty() || seg == b"." || seg == b"..";
        if seg.is_empty() || seg == b"." {
            out.truncate(mark);
        } else if seg == b".." {
            out.truncate(mark);
            let parent = out.iter().rposition(|&b| b == b'/').unwrap_or(0);
            out.truncate(parent);
        }
    }
    Ok(dir)
}

fn percent_decode(raw: &[u8], out: &mut Vec<u8>) -> Result<(), RequestError> {
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let hex = |b: Option<&u8>| b.and_then(|&b| (b as char).to_digit(16));
            let (Some(hi), Some(lo)) = (hex(raw.get(i + 1)), hex(raw.get(i + 2))) else {
                return Err(RequestError::Malformed("bad percent-encoding"));
            };
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Responses.
// ---------------------------------------------------------------------------------------

/// The statuses this server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    HeaderTooLarge,
    NotImplemented,
    VersionNotSupported,
}

impl Status {
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::BadRequest => 400,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::HeaderTooLarge => 431,
            Status::NotImplemented => 501,
            Status::VersionNotSupported => 505,
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::BadRequest => "Bad Request",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::HeaderTooLarge => "Request Header Fields Too Large",
            Status::NotImplemented => "Not Implemented",
            Status::VersionNotSupported => "HTTP Version Not Supported",
        }
    }

    /// The small text body of an error status.
    fn error_body(self) -> &'static [u8] {
        match self {
            Status::Ok => b"",
            Status::BadRequest => b"400 Bad Request\n",
            Status::NotFound => b"404 Not Found\n",
            Status::MethodNotAllowed => b"405 Method Not Allowed\n",
            Status::HeaderTooLarge => b"431 Request Header Fields Too Large\n",
            Status::NotImplemented => b"501 Not Implemented\n",
            Status::VersionNotSupported => b"505 HTTP Version Not Supported\n",
        }
    }
}

/// Appends a response head to `out`. `keep_alive` is what the connection does next;
/// `http10` asks for an explicit `Connection: keep-alive`.
fn write_head(
    out: &mut Vec<u8>,
    status: Status,
    content_type: &str,
    content_length: u64,
    keep_alive: bool,
    http10: bool,
) {
    // Writes into a Vec cannot fail.
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\nServer: {SERVER}\r\nContent-Type: {content_type}\r\nContent-Length: {content_length}\r\n",
        status.code(),
        status.reason()
    );
    if status == Status::MethodNotAllowed {
        out.extend_from_slice(b"Allow: GET, HEAD\r\n");
    }
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

// ---------------------------------------------------------------------------------------
// The application.
// ---------------------------------------------------------------------------------------

/// A piece of output waiting for send-buffer room, in order.
#[derive(Debug)]
enum Chunk {
    /// The next `len` bytes of the connection's head buffer.
    Head(usize),
    /// A file body from `pos` on.
    Body { file: File, pos: usize },
}

/// Responses waiting for send-buffer room.
#[derive(Debug, Default)]
struct Output {
    /// Response heads (and error bodies) to send; `head_pos` is what was sent.
    head: Vec<u8>,
    head_pos: usize,
    queue: VecDeque<Chunk>,
    /// Queued responses (heads in `queue`).
    responses: usize,
}

/// One connection's state.
#[derive(Debug, Default)]
struct Conn {
    /// Received bytes not parsed yet.
    input: Vec<u8>,
    /// Bytes of a request body still to discard.
    skip: u64,
    out: Output,
    /// No more requests are read: close once the queue is sent.
    closing: bool,
    /// Our direction is closed; only `Closed` is awaited.
    done: bool,
    last_active: Instant,
}

impl Conn {
    fn reset(&mut self, now: Instant) {
        self.input.clear();
        self.skip = 0;
        self.out.head.clear();
        self.out.head_pos = 0;
        self.out.queue.clear();
        self.out.responses = 0;
        self.closing = false;
        self.done = false;
        self.last_active = now;
    }
}

/// Counters of one core's HTTP server.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HttpStats {
    pub connections: u64,
    pub requests: u64,
    /// Responses by class: 2xx, 4xx, 5xx.
    pub ok: u64,
    pub client_errors: u64,
    pub server_errors: u64,
    /// Body bytes handed to TCP.
    pub body_bytes: u64,
    pub idle_closed: u64,
}

/// The HTTP server of one core.
#[derive(Debug)]
pub struct Http {
    site: Arc<Site>,
    conns: PerConn<Conn>,
    spare: Vec<Conn>,
    /// Scratch for normalised paths.
    path: Vec<u8>,
    last_sweep: Instant,
    pub stats: HttpStats,
}

impl Http {
    pub fn new(site: Arc<Site>) -> Http {
        Http {
            site,
            conns: PerConn::default(),
            spare: Vec::new(),
            path: Vec::with_capacity(256),
            last_sweep: Instant::ZERO,
            stats: HttpStats::default(),
        }
    }

    pub fn site(&self) -> &Arc<Site> {
        &self.site
    }

    /// Reads, answers and writes as far as the buffers allow.
    fn drive(&mut self, cx: &mut Ctx<'_>, id: ConnId) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        conn.last_active = cx.now();
        if conn.done {
            return;
        }
        loop {
            if flush(cx, id, &mut conn.out, &mut self.stats).is_err() {
                return; // the connection failed; Closed follows
            }
            if conn.closing {
                if conn.out.queue.is_empty() {
                    // Everything is in the send buffer: FIN after it, and discard
                    // whatever else the client sends.
                    let _ = cx.shutdown(id, Shutdown::Both);
                    conn.done = true;
                }
                return;
            }
            if conn.out.responses >= MAX_PIPELINE {
                return; // Writable follows
            }
            if answer_one(&self.site, &mut self.path, conn, &mut self.stats) {
                continue;
            }
            // Nothing complete buffered: read more.
            let room = INPUT_BUF.saturating_sub(conn.input.len());
            if room == 0 {
                // Unreachable: a partial head is shorter than the buffer. Refuse rather
                // than stall if that ever changes.
                queue_error(
                    &mut conn.out,
                    Status::HeaderTooLarge,
                    false,
                    false,
                    &mut self.stats,
                );
                conn.input.clear();
                conn.closing = true;
                continue;
            }
            let skip = &mut conn.skip;
            let input = &mut conn.input;
            let read = cx.recv_with(id, |data| {
                if *skip > 0 {
                    let n = data.len().min(usize::try_from(*skip).unwrap_or(usize::MAX));
                    *skip -= n as u64;
                    return n;
                }
                let n = data.len().min(room);
                input.extend_from_slice(&data[..n]);
                n
            });
            match read {
                Ok(n) if n > 0 => {}
                _ => {
                    // Nothing more now. At the end of the stream, answer what is
                    // complete (done above) and close.
                    if cx.peer_closed(id) && cx.recv_queue(id) == 0 {
                        conn.closing = true;
                        continue;
                    }
                    return;
                }
            }
        }
    }

    /// Closes keep-alive connections idle for [`IDLE_TIMEOUT`].
    fn sweep(&mut self, cx: &mut Ctx<'_>) {
        let now = cx.now();
        if now.saturating_duration_since(self.last_sweep) < SWEEP_EVERY {
            return;
        }
        self.last_sweep = now;
        for (id, conn) in self.conns.iter_mut() {
            let idle = now.saturating_duration_since(conn.last_active) >= IDLE_TIMEOUT;
            if idle && !conn.done {
                if conn.out.queue.is_empty() {
                    let _ = cx.shutdown(id, Shutdown::Both);
                } else {
                    // Output waiting and no progress for the whole timeout: the client
                    // stopped reading.
                    let _ = cx.abort(id);
                }
                conn.done = true;
                self.stats.idle_closed += 1;
            }
        }
    }
}

/// Writes queued output while the send buffer takes it.
fn flush(
    cx: &mut Ctx<'_>,
    id: ConnId,
    conn: &mut Output,
    stats: &mut HttpStats,
) -> Result<(), engine::stack::StackError> {
    while let Some(chunk) = conn.queue.front_mut() {
        match chunk {
            Chunk::Head(len) => {
                let n = cx.send(id, &conn.head[conn.head_pos..conn.head_pos + *len])?;
                conn.head_pos += n;
                *len -= n;
                if *len > 0 {
                    return Ok(());
                }
                conn.responses = conn.responses.saturating_sub(1);
            }
            Chunk::Body { file, pos } => {
                let n = cx.send(id, &file.data[*pos..])?;
                *pos += n;
                stats.body_bytes += n as u64;
                if *pos < file.data.len() {
                    return Ok(());
                }
            }
        }
        conn.queue.pop_front();
        if conn.head_pos == conn.head.len() {
            conn.head.clear();
            conn.head_pos = 0;
        }
    }
    Ok(())
}

/// Parses one request from the connection's input and queues its response. False when
/// no complete request is buffered.
fn answer_one(site: &Site, path: &mut Vec<u8>, conn: &mut Conn, stats: &mut HttpStats) -> bool {
    // A body still arriving is discarded from the buffer first.
    if conn.skip > 0 && !conn.input.is_empty() {
        let n = conn
            .input
            .len()
            .min(usize::try_from(conn.skip).unwrap_or(usize::MAX));
        conn.input.drain(..n);
        conn.skip -= n as u64;
    }
    if conn.skip > 0 || conn.input.is_empty() {
        return false;
    }
    let (request, len) = match parse_request(&conn.input) {
        Ok(Parsed::Partial) => return false,
        Ok(Parsed::Complete { request, len }) => (request, len),
        Err(e) => {
            stats.requests += 1;
            queue_error(&mut conn.out, e.status(), false, false, stats);
            conn.input.clear();
            conn.closing = true;
            return true;
        }
    };
    stats.requests += 1;
    let keep_alive = request.keep_alive;
    let http10 = request.version == Version::Http10;
    let head_only = request.method == Method::Head;
    match request.method {
        Method::Get | Method::Head => match normalize_path(request.target, path) {
            Err(e) => {
                queue_error(&mut conn.out, e.status(), false, head_only, stats);
                conn.closing = true;
            }
            Ok(dir) => match site.resolve(path, dir) {
                Some(file) => {
                    let out = &mut conn.out;
                    let start = out.head.len();
                    write_head(
                        &mut out.head,
                        Status::Ok,
                        file.content_type,
                        file.data.len() as u64,
                        keep_alive,
                        http10,
                    );
                    out.queue.push_back(Chunk::Head(out.head.len() - start));
                    if !head_only && !file.data.is_empty() {
                        out.queue.push_back(Chunk::Body {
                            file: file.clone(),
                            pos: 0,
                        });
                    }
                    out.responses += 1;
                    stats.ok += 1;
                }
                None => queue_error(
                    &mut conn.out,
                    Status::NotFound,
                    keep_alive,
                    head_only,
                    stats,
                ),
            },
        },
        Method::NotAllowed => queue_error(
            &mut conn.out,
            Status::MethodNotAllowed,
            keep_alive,
            false,
            stats,
        ),
        Method::Unknown => queue_error(
            &mut conn.out,
            Status::NotImplemented,
            keep_alive,
            false,
            stats,
        ),
    }
    let body_len = request.body_len;
    conn.input.drain(..len);
    conn.skip = body_len;
    if !keep_alive {
        conn.closing = true;
    }
    true
}

fn queue_error(
    conn: &mut Output,
    status: Status,
    keep_alive: bool,
    head_only: bool,
    stats: &mut HttpStats,
) {
    let body = status.error_body();
    let start = conn.head.len();
    write_head(
        &mut conn.head,
        status,
        "text/plain; charset=utf-8",
        body.len() as u64,
        keep_alive,
        false,
    );
    if !head_only {
        conn.head.extend_from_slice(body);
    }
    conn.queue.push_back(Chunk::Head(conn.head.len() - start));
    conn.responses += 1;
    if status.code() >= 500 {
        stats.server_errors += 1;
    } else {
        stats.client_errors += 1;
    }
}

impl App for Http {
    fn on_event(&mut self, cx: &mut Ctx<'_>, conn: ConnId, event: Event) {
        match event {
            Event::Accepted { .. } => {
                let mut state = self.spare.pop().unwrap_or_default();
                state.reset(cx.now());
                self.conns.insert(conn, state);
                self.stats.connections += 1;
            }
            Event::Readable | Event::Writable | Event::PeerClosed => self.drive(cx, conn),
            Event::Closed { .. } => {
                if let Some(state) = self.conns.remove(conn) {
                    if self.spare.len() < SPARE_CONNS && state.input.capacity() <= INPUT_BUF {
                        self.spare.push(state);
                    }
                }
            }
            Event::Connected => {
                // The server opens no connections.
                let _ = cx.abort(conn);
            }
            Event::Adopted { .. } => self.drive(cx, conn),
        }
    }

    fn on_poll(&mut self, cx: &mut Ctx<'_>) {
        self.sweep(cx);
    }

    /// The snapshot of one connection, format 1, little-endian:
    ///
    /// | field | bytes |
    /// |---|---|
    /// | format (1) | 1 |
    /// | flags: bit 0 closing, bit 1 done | 1 |
    /// | request body bytes still to discard | 8 |
    /// | unparsed input: length, bytes | 4 + n (n <= 16 KiB) |
    /// | unsent response heads: length, bytes | 4 + n |
    /// | queued responses (heads not fully sent) | 4 |
    /// | queued chunks: count, then each: 0 + head length (4), or 1 + name length (2) + name + position (8) | 4 + ... |
    fn export(&mut self, _: &mut Ctx<'_>, conn: ConnId, out: &mut Vec<u8>) -> Result<(), Refusal> {
        let Some(state) = self.conns.get_mut(conn) else {
            return Err(Refusal::NotNow("no HTTP state for this connection"));
        };
        write_snapshot(state, out);
        if let Some(state) = self.conns.remove(conn) {
            if self.spare.len() < SPARE_CONNS && state.input.capacity() <= INPUT_BUF {
                self.spare.push(state);
            }
        }
        Ok(())
    }

    fn import(&mut self, cx: &mut Ctx<'_>, conn: ConnId, snapshot: &[u8]) -> Result<(), Refusal> {
        let mut state = self.spare.pop().unwrap_or_default();
        state.reset(cx.now());
        match read_snapshot(&self.site, snapshot, &mut state) {
            Ok(()) => {
                self.conns.insert(conn, state);
                Ok(())
            }
            Err(refusal) => {
                self.spare.push(state);
                Err(refusal)
            }
        }
    }
}

/// The snapshot format [`Http::export`] writes.
const SNAPSHOT_V1: u8 = 1;

fn write_snapshot(state: &Conn, out: &mut Vec<u8>) {
    out.push(SNAPSHOT_V1);
    out.push(u8::from(state.closing) | (u8::from(state.done) << 1));
    out.extend_from_slice(&state.skip.to_le_bytes());
    out.extend_from_slice(&(state.input.len() as u32).to_le_bytes());
    out.extend_from_slice(&state.input);
    let head = &state.out.head[state.out.head_pos..];
    out.extend_from_slice(&(head.len() as u32).to_le_bytes());
    out.extend_from_slice(head);
    out.extend_from_slice(&(state.out.responses as u32).to_le_bytes());
    out.extend_from_slice(&(state.out.queue.len() as u32).to_le_bytes());
    for chunk in &state.out.queue {
        match chunk {
            Chunk::Head(len) => {
                out.push(0);
                out.extend_from_slice(&(*len as u32).to_le_bytes());
            }
            Chunk::Body { file, pos } => {
                out.push(1);
                out.extend_from_slice(&(file.name.len() as u16).to_le_bytes());
                out.extend_from_slice(file.name.as_bytes());
                out.extend_from_slice(&(*pos as u64).to_le_bytes());
            }
        }
    }
}

/// Why a snapshot naming a file is refused when this site does not serve that file (or
/// serves a shorter one under its name): the connection must stay where its file is.
const FILE_NOT_HERE: &str = "a file the connection is sending is not served here";

/// Reads a snapshot into `state` (reset). Refused as [`Refusal::BadSnapshot`] if it is
/// malformed or inconsistent (head chunks longer than the heads, more than a pipeline's
/// worth of responses), and with [`FILE_NOT_HERE`] if it names a file this site does not
/// have or a body position past the end of this site's file of that name.
fn read_snapshot(site: &Site, bytes: &[u8], state: &mut Conn) -> Result<(), Refusal> {
    let mut not_here = false;
    match parse_snapshot(site, bytes, state, &mut not_here) {
        Some(()) => Ok(()),
        None if not_here => Err(Refusal::NotNow(FILE_NOT_HERE)),
        None => Err(Refusal::BadSnapshot),
    }
}

/// [`read_snapshot`]'s parser: `None` on any refusal, with `not_here` set when the reason
/// is this site's files.
fn parse_snapshot(site: &Site, bytes: &[u8], state: &mut Conn, not_here: &mut bool) -> Option<()> {
    let mut r = bytes;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (a, b) = r.split_at_checked(n)?;
        r = b;
        Some(a)
    };
    if take(1)? != [SNAPSHOT_V1] {
        return None;
    }
    let flags = take(1)?[0];
    if flags & !3 != 0 {
        return None;
    }
    state.closing = flags & 1 != 0;
    state.done = flags & 2 != 0;
    state.skip = u64::from_le_bytes(take(8)?.try_into().ok()?);
    let len = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
    if len > INPUT_BUF {
        return None;
    }
    state.input.extend_from_slice(take(len)?);
    let len = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
    // Heads of at most a pipeline's worth of responses (error bodies included).
    if len > MAX_PIPELINE * 4096 {
        return None;
    }
    state.out.head.extend_from_slice(take(len)?);
    state.out.responses = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
    let chunks = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
    if state.out.responses > MAX_PIPELINE || chunks > 2 * MAX_PIPELINE {
        return None;
    }
    let mut heads = 0usize;
    for _ in 0..chunks {
        match take(1)?[0] {
            0 => {
                let len = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
                heads = heads.checked_add(len)?;
                state.out.queue.push_back(Chunk::Head(len));
            }
            1 => {
                let n = u16::from_le_bytes(take(2)?.try_into().ok()?) as usize;
                let name = std::str::from_utf8(take(n)?).ok()?;
                let pos = usize::try_from(u64::from_le_bytes(take(8)?.try_into().ok()?)).ok()?;
                let Some(file) = site.file(name).filter(|f| pos <= f.data.len()) else {
                    *not_here = true;
                    return None;
                };
                let file = file.clone();
                state.out.queue.push_back(Chunk::Body { file, pos });
            }
            _ => return None,
        }
    }
    (r.is_empty() && heads == state.out.head.len()).then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(buf: &[u8]) -> (Request<'_>, usize) {
        match parse_request(buf) {
            Ok(Parsed::Complete { request, len }) => (request, len),
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(buf)),
        }
    }

    fn error(buf: &[u8]) -> RequestError {
        match parse_request(buf) {
            Err(e) => e,
            other => panic!("{:?} should fail: {other:?}", String::from_utf8_lossy(buf)),
        }
    }

    #[test]
    fn parses_a_simple_get() {
        let buf = b"GET /index.html HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\n";
        let (r, len) = complete(buf);
        assert_eq!(len, buf.len());
        assert_eq!(r.method, Method::Get);
        assert_eq!(r.target, b"/index.html");
        assert_eq!(r.version, Version::Http11);
        assert!(r.keep_alive);
        assert_eq!(r.body_len, 0);
    }

    #[test]
    fn keep_alive_rules() {
        let ka = |buf: &[u8]| complete(buf).0.keep_alive;
        assert!(ka(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(!ka(
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        ));
        assert!(!ka(
            b"GET / HTTP/1.1\r\nHost: x\r\nconnection: Upgrade, CLOSE\r\n\r\n"
        ));
        assert!(!ka(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(ka(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        assert!(!ka(
            b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"
        ));
    }

    #[test]
    fn methods() {
        let m = |buf: &[u8]| complete(buf).0.method;
        assert_eq!(m(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"), Method::Head);
        assert_eq!(m(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n"), Method::NotAllowed);
        assert_eq!(
            m(b"DELETE / HTTP/1.1\r\nHost: x\r\n\r\n"),
            Method::NotAllowed
        );
        assert_eq!(m(b"BREW / HTTP/1.1\r\nHost: x\r\n\r\n"), Method::Unknown);
        // Methods are case-sensitive (RFC 9110 §9.1).
        assert_eq!(m(b"get / HTTP/1.1\r\nHost: x\r\n\r\n"), Method::Unknown);
    }

    #[test]
    fn every_split_point_is_partial_until_complete() {
        let buf = b"GET /a/b?q=1 HTTP/1.1\r\nHost: example\r\nAccept: */*\r\n\r\n";
        for cut in 0..buf.len() {
            assert_eq!(
                parse_request(&buf[..cut]),
                Ok(Parsed::Partial),
                "cut at {cut}"
            );
        }
        let (r, len) = complete(buf);
        assert_eq!(len, buf.len());
        assert_eq!(r.target, b"/a/b?q=1");
    }

    #[test]
    fn pipelined_requests_parse_one_after_another() {
        let buf = b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nHEAD /2 HTTP/1.1\r\nHost: x\r\n\r\nGET /3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /4";
        let mut rest = &buf[..];
        let mut seen = Vec::new();
        while let Ok(Parsed::Complete { request, len }) = parse_request(rest) {
            seen.push((request.method, request.target.to_vec(), request.keep_alive));
            rest = &rest[len..];
        }
        assert_eq!(
            seen,
            vec![
                (Method::Get, b"/1".to_vec(), true),
                (Method::Head, b"/2".to_vec(), true),
                (Method::Get, b"/3".to_vec(), false),
            ]
        );
        assert_eq!(rest, b"GET /4");
    }

    #[test]
    fn bare_lf_and_leading_empty_lines_are_accepted() {
        let buf = b"\r\n\nGET / HTTP/1.1\nHost: x\n\n";
        let (r, len) = complete(buf);
        assert_eq!(len, buf.len());
        assert_eq!(r.target, b"/");
    }

    #[test]
    fn content_length_is_reported_and_checked() {
        let (r, _) = complete(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n");
        assert_eq!(r.body_len, 12);
        let (r, _) = complete(
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\n",
        );
        assert_eq!(r.body_len, 3);
        for bad in [
            &b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        ] {
            assert_eq!(
                error(bad).status(),
                Status::BadRequest,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            error(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"),
            RequestError::TransferEncoding
        );
    }

    #[test]
    fn malformed_requests_are_400() {
        for bad in [
            &b"GET / HTTP/1.1\r\n\r\n"[..], // no Host
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET /  HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET / HTTP/1.1 \r\nHost: x\r\n\r\n",
            b" GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET\r\n\r\n",
            b"GET /\r\n\r\n",
            b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n: empty\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\rY: z\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\x01\r\n\r\n",
            b"GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET / HTTP/x.y\r\nHost: x\r\n\r\n",
            b"GET / http/1.1\r\nHost: x\r\n\r\n",
            b"\rGET / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"\x00\x01\x02\x03\r\n\r\n",
        ] {
            assert_eq!(
                error(bad).status(),
                Status::BadRequest,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            error(b"GET / HTTP/2.0\r\nHost: x\r\n\r\n"),
            RequestError::Version
        );
        assert_eq!(error(b"GET / HTTP/0.9\r\n\r\n"), RequestError::Version);
    }

    #[test]
    fn oversized_heads_are_431_as_soon_as_they_pass_the_limit() {
        let mut buf = b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: ".to_vec();
        while buf.len() < MAX_HEADER - 1 {
            buf.push(b'a');
        }
        assert_eq!(parse_request(&buf), Ok(Parsed::Partial));
        buf.push(b'a');
        assert_eq!(error(&buf), RequestError::HeaderTooLarge);
        buf.extend_from_slice(b"\r\n\r\n");
        assert_eq!(error(&buf), RequestError::HeaderTooLarge);
        // Just under the limit is fine.
        let mut ok = b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: ".to_vec();
        while ok.len() < MAX_HEADER - 4 {
            ok.push(b'a');
        }
        ok.extend_from_slice(b"\r\n\r\n");
        assert_eq!(complete(&ok).1, MAX_HEADER);
        // Endless empty lines are bounded too.
        assert_eq!(
            error(&vec![b'\n'; MAX_HEADER + 2]),
            RequestError::HeaderTooLarge
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A deterministic sweep of short random inputs and of mutations of a good request.
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let good = b"GET /a/../b/%41?x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
        let mut out = Vec::new();
        for _ in 0..20_000 {
            let mut buf = good.to_vec();
            for _ in 0..(next() % 4) {
                let i = (next() as usize) % buf.len();
                buf[i] = next() as u8;
            }
            let cut = (next() as usize) % (buf.len() + 1);
            if let Ok(Parsed::Complete { request, len }) = parse_request(&buf[..cut]) {
                assert!(len <= cut);
                let _ = normalize_path(request.target, &mut out);
            }
            let random: Vec<u8> = (0..(next() % 64)).map(|_| next() as u8).collect();
            let _ = parse_request(&random);
            let _ = normalize_path(&random, &mut out);
        }
    }

    fn norm(target: &str) -> Result<(String, bool), RequestError> {
        let mut out = Vec::new();
        let dir = normalize_path(target.as_bytes(), &mut out)?;
        Ok((String::from_utf8(out).unwrap(), dir))
    }

    #[test]
    fn paths_are_normalised_and_never_escape_the_root() {
        let ok = |t: &str, p: &str, d: bool| assert_eq!(norm(t), Ok((p.to_owned(), d)), "{t}");
        ok("/", "", true);
        ok("/index.html", "index.html", false);
        ok("/a/b/c.txt?x=1#frag", "a/b/c.txt", false);
        ok("/a//b/./c", "a/b/c", false);
        ok("/a/b/", "a/b", true);
        ok("/a/b/../c", "a/c", false);
        ok("/../../etc/passwd", "etc/passwd", false);
        ok("/a/%2e%2e/%2E%2E/x", "x", false);
        ok("/..", "", true);
        ok("/a/..", "", true);
        ok("/hello%20world.txt", "hello world.txt", false);
        ok("http://example.com/a/b", "a/b", false);
        ok("http://example.com", "", true);
        ok("HTTP://example.com?x", "", true);
        for bad in [
            "*",
            "example.com:80",
            "a/b",
            "/a%2fb",
            "/a%00",
            "/%zz",
            "/%4",
            "/a%5cb",
            "ftp://x/a",
        ] {
            assert!(norm(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn site_resolves_files_and_index() {
        let site = Site::from_files([
            ("index.html", b"root".to_vec()),
            ("sub/index.html", b"sub".to_vec()),
            ("sub/a.txt", b"a".to_vec()),
        ]);
        let get = |t: &str| {
            let mut p = Vec::new();
            let dir = normalize_path(t.as_bytes(), &mut p).unwrap();
            site.resolve(&mut p, dir).map(|f| f.data.to_vec())
        };
        assert_eq!(get("/"), Some(b"root".to_vec()));
        assert_eq!(get("/index.html"), Some(b"root".to_vec()));
        assert_eq!(get("/sub/"), Some(b"sub".to_vec()));
        assert_eq!(get("/sub"), Some(b"sub".to_vec()));
        assert_eq!(get("/sub/a.txt"), Some(b"a".to_vec()));
        assert_eq!(get("/sub/../sub/a.txt"), Some(b"a".to_vec()));
        assert_eq!(get("/sub/a.txt/"), None);
        assert_eq!(get("/missing"), None);
        assert_eq!(site.bytes(), 8);
        assert_eq!(
            site.file("sub/a.txt").map(|f| f.content_type),
            Some("text/plain; charset=utf-8")
        );
    }

    #[test]
    fn site_loads_a_directory_and_reports_a_missing_one() {
        let dir = std::env::temp_dir().join(format!("mg-http-site-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        std::fs::write(dir.join("index.html"), b"hi").unwrap();
        std::fs::write(dir.join("a/b/c.bin"), vec![7u8; 1000]).unwrap();
        let site = Site::load(&dir).unwrap();
        assert_eq!(site.len(), 2);
        assert_eq!(site.bytes(), 1002);
        assert_eq!(site.file("a/b/c.bin").map(|f| f.data.len()), Some(1000));
        let err = Site::load(&dir.join("nope")).unwrap_err();
        assert!(matches!(err, SiteError::Missing(_)), "{err}");
        assert!(err.to_string().contains("no such directory"), "{err}");
        let err = Site::load(&dir.join("index.html")).unwrap_err();
        assert!(matches!(err, SiteError::NotADirectory(_)), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn heads_are_well_formed() {
        let mut out = Vec::new();
        write_head(&mut out, Status::Ok, "text/plain", 5, true, false);
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nServer: migratory\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n"
        );
        out.clear();
        write_head(
            &mut out,
            Status::MethodNotAllowed,
            "text/plain",
            0,
            false,
            false,
        );
        let s = String::from_utf8(out.clone()).unwrap();
        assert!(s.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(s.contains("Allow: GET, HEAD\r\n") && s.contains("Connection: close\r\n"));
        out.clear();
        write_head(&mut out, Status::Ok, "text/plain", 0, true, true);
        assert!(String::from_utf8(out)
            .unwrap()
            .contains("Connection: keep-alive\r\n"));
    }
}

/// Two stacks joined back to back, with a virtual clock: application tests over the
/// engine's real TCP, no DPDK, deterministic. (Here because `http` was its first user;
/// `iperf3`'s tests use it too.)
#[cfg(test)]
pub(crate) mod loopback {
    use core::net::{Ipv4Addr, SocketAddrV4};

    use engine::iface::{IfaceConfig, Interface};
    use engine::port::{Frame, VecFrame};
    use engine::stack::{App, Stack, StackConfig, StackKeys};
    use engine::tcp::TcpConfig;
    use engine::time::{Duration, Instant};
    use engine::wire::EthernetAddress;

    pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
    pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);
    const SERVER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
    const CLIENT_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x02]);
    /// One-way delay of every frame.
    const HOP: Duration = Duration::from_micros(50);

    pub struct Loop<S: App, C: App> {
        pub server: Stack,
        pub client: Stack,
        pub sapp: S,
        pub capp: C,
        pub now: Instant,
    }

    fn stack(ip: Ipv4Addr, mac: EthernetAddress, tcp: TcpConfig, seed: u64) -> Stack {
        let cidr = format!("{ip}/24").parse().expect("a valid CIDR");
        let config = StackConfig {
            tcp,
            ..StackConfig::default()
        };
        Stack::new(
            Interface::new(IfaceConfig::new(mac, cidr)),
            config,
            StackKeys::from_seed(seed),
        )
    }

    impl<S: App, C: App> Loop<S, C> {
        /// The server app listens on `port`; both stacks use `tcp`.
        pub fn new(sapp: S, capp: C, port: u16, tcp: TcpConfig) -> Self {
            let mut server = stack(SERVER_IP, SERVER_MAC, tcp, 1);
            server.listen(port).expect("listen");
            let client = stack(CLIENT_IP, CLIENT_MAC, tcp, 2);
            Loop {
                server,
                client,
                sapp,
                capp,
                now: Instant::from_millis(1),
            }
        }

        pub fn server_addr(port: u16) -> SocketAddrV4 {
            SocketAddrV4::new(SERVER_IP, port)
        }

        /// One round: timers, events, output, delivery. True if a frame moved.
        fn step(&mut self) -> bool {
            let now = self.now;
            // Neighbours stay known however long a test idles.
            self.server
                .iface_mut()
                .learn_neighbour(CLIENT_IP, CLIENT_MAC, now);
            self.client
                .iface_mut()
                .learn_neighbour(SERVER_IP, SERVER_MAC, now);
            self.server.handle_timers(now);
            self.client.handle_timers(now);
            self.server.dispatch(now, &mut self.sapp);
            self.client.dispatch(now, &mut self.capp);
            let mut to_client: Vec<VecFrame> = Vec::new();
            let mut to_server: Vec<VecFrame> = Vec::new();
            self.server
                .transmit(now, &mut |len| Some(VecFrame::new(len)), &mut to_client);
            self.client
                .transmit(now, &mut |len| Some(VecFrame::new(len)), &mut to_server);
            let moved = !to_client.is_empty() || !to_server.is_empty();
            for mut f in to_client {
                self.client.receive(now, f.data_mut());
            }
            for mut f in to_server {
                self.server.receive(now, f.data_mut());
            }
            moved
        }

        /// Runs until `done` or `limit` of virtual time; returns whether `done` held.
        pub fn run_until(
            &mut self,
            limit: Duration,
            mut done: impl FnMut(&mut Self) -> bool,
        ) -> bool {
            let end = self.now + limit;
            while self.now < end {
                let moved = self.step();
                if done(self) {
                    return true;
                }
                let next = if moved {
                    self.now + HOP
                } else {
                    // Idle: jump to the next timer, but wake at least every 10 ms for
                    // applications that act in `on_poll`.
                    let soonest = [self.server.poll_timeout(), self.client.poll_timeout()]
                        .into_iter()
                        .flatten()
                        .min()
                        .unwrap_or(end);
                    soonest.clamp(self.now + HOP, self.now + Duration::from_millis(10))
                };
                self.now = next;
            }
            false
        }
    }
}

#[cfg(test)]
mod app_tests {
    use super::loopback::Loop;
    use super::*;
    use engine::stack::StackError;
    use engine::tcp::TcpConfig;

    /// A client that connects, sends `chunks` (one per poll), reads at most `budget` bytes
    /// per poll, and half-closes after the last chunk if `finish`.
    #[derive(Default)]
    struct Client {
        chunks: VecDeque<Vec<u8>>,
        budget: usize,
        finish: bool,
        conn: Option<ConnId>,
        connected: bool,
        received: Vec<u8>,
        peer_closed: bool,
        closed: bool,
    }

    impl Client {
        fn new(chunks: Vec<Vec<u8>>, budget: usize, finish: bool) -> Client {
            Client {
                chunks: chunks.into(),
                budget,
                finish,
                ..Client::default()
            }
        }

        fn read(&mut self, cx: &mut Ctx<'_>, id: ConnId) {
            let mut buf = vec![0u8; self.budget.min(64 * 1024)];
            let mut left = self.budget;
            while left > 0 {
                let want = left.min(buf.len());
                match cx.recv(id, &mut buf[..want]) {
                    Ok(n) if n > 0 => {
                        self.received.extend_from_slice(&buf[..n]);
                        left -= n;
                    }
                    _ => break,
                }
            }
        }
    }

    impl App for Client {
        fn on_event(&mut self, cx: &mut Ctx<'_>, id: ConnId, event: Event) {
            match event {
                Event::Connected => self.connected = true,
                Event::PeerClosed => self.peer_closed = true,
                Event::Closed { .. } => self.closed = true,
                _ => {}
            }
            let _ = cx;
            let _ = id;
        }

        fn on_poll(&mut self, cx: &mut Ctx<'_>) {
            let Some(id) = self.conn else {
                self.conn = Some(
                    cx.connect(Loop::<Http, Client>::server_addr(80))
                        .expect("connect"),
                );
                return;
            };
            if !self.connected || self.closed {
                return;
            }
            if let Some(chunk) = self.chunks.front_mut() {
                let n: Result<usize, StackError> = cx.send(id, chunk);
                let n = n.unwrap_or(0);
                chunk.drain(..n);
                if chunk.is_empty() {
                    self.chunks.pop_front();
                    if self.chunks.is_empty() && self.finish {
                        let _ = cx.close(id);
                    }
                }
            }
            self.read(cx, id);
        }
    }

    fn tcp(buffer: u32) -> TcpConfig {
        TcpConfig {
            send_buffer: buffer,
            recv_buffer: buffer,
            ..TcpConfig::default()
        }
    }

    fn random(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn site() -> Arc<Site> {
        Arc::new(Site::from_files([
            ("index.html", b"<p>home\n".to_vec()),
            ("a.txt", b"alpha\n".to_vec()),
            ("big.bin", random(300_000, 7)),
        ]))
    }

    fn head(status: Status, ctype: &str, len: usize, keep_alive: bool) -> Vec<u8> {
        let mut v = Vec::new();
        write_head(&mut v, status, ctype, len as u64, keep_alive, false);
        v
    }

    fn error_response(status: Status, keep_alive: bool) -> Vec<u8> {
        let mut v = head(
            status,
            "text/plain; charset=utf-8",
            status.error_body().len(),
            keep_alive,
        );
        v.extend_from_slice(status.error_body());
        v
    }

    #[test]
    fn pipelined_requests_are_answered_in_order_through_a_small_send_buffer() {
        let site = site();
        let big = site.file("big.bin").unwrap().data.to_vec();
        let requests = b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n\
            GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n\
            HEAD /big.bin HTTP/1.1\r\nHost: t\r\n\r\n\
            GET /missing HTTP/1.1\r\nHost: t\r\n\r\n\
            GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n\
            GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n"
            .to_vec();
        let mut want = head(Status::Ok, "text/plain; charset=utf-8", 6, true);
        want.extend_from_slice(b"alpha\n");
        want.extend(head(
            Status::Ok,
            "application/octet-stream",
            big.len(),
            true,
        ));
        want.extend_from_slice(&big);
        want.extend(head(
            Status::Ok,
            "application/octet-stream",
            big.len(),
            true,
        ));
        want.extend(error_response(Status::NotFound, true));
        want.extend(head(Status::Ok, "text/html; charset=utf-8", 8, false));
        want.extend_from_slice(b"<p>home\n");

        let client = Client::new(vec![requests], usize::MAX, false);
        let mut net = Loop::new(Http::new(Arc::clone(&site)), client, 80, tcp(16 * 1024));
        assert!(net.run_until(Duration::from_secs(30), |n| n.capp.peer_closed));
        assert_eq!(net.capp.received.len(), want.len());
        assert!(
            net.capp.received == want,
            "responses differ from the expected bytes"
        );
        assert_eq!(
            net.sapp.stats.requests, 5,
            "nothing answered after Connection: close"
        );
        assert_eq!(net.sapp.stats.body_bytes, 6 + big.len() as u64 + 8);
    }

    #[test]
    fn a_slow_reader_gets_the_whole_file_with_back_pressure() {
        let site = Arc::new(Site::from_files([("f", random(1 << 20, 3))]));
        let body = site.file("f").unwrap().data.to_vec();
        let req = b"GET /f HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".to_vec();
        // 4 KiB per 10 ms at most: about 10 s of virtual time for 1 MiB.
        let client = Client::new(vec![req], 4096, false);
        let mut net = Loop::new(Http::new(site), client, 80, tcp(32 * 1024));
        let mut want = head(Status::Ok, "application/octet-stream", body.len(), false);
        want.extend_from_slice(&body);
        let len = want.len();
        assert!(
            net.run_until(Duration::from_secs(120), |n| n.capp.peer_closed
                && n.capp.received.len() >= len)
        );
        assert_eq!(net.capp.received.len(), want.len());
        assert!(net.capp.received == want);
    }

    #[test]
    fn a_snapshot_naming_a_file_this_site_lacks_is_refused_as_not_here() {
        let site = site();
        let mut state = Conn::default();
        let file = site.file("big.bin").unwrap().clone();
        state.out.queue.push_back(Chunk::Body { file, pos: 1000 });
        let mut snapshot = Vec::new();
        write_snapshot(&state, &mut snapshot);
        // The same site takes it back.
        let mut back = Conn::default();
        assert_eq!(read_snapshot(&site, &snapshot, &mut back), Ok(()));
        assert_eq!(back.out.queue.len(), 1);
        // A site without the file, or with a shorter file of that name, refuses it.
        let other = Site::from_files([("index.html", b"x".to_vec())]);
        let shorter = Site::from_files([("big.bin", vec![0; 999])]);
        for s in [&other, &shorter] {
            assert_eq!(
                read_snapshot(s, &snapshot, &mut Conn::default()),
                Err(Refusal::NotNow(FILE_NOT_HERE))
            );
        }
        // A snapshot cut short is malformed, not a missing file.
        assert_eq!(
            read_snapshot(&site, &snapshot[..snapshot.len() - 3], &mut Conn::default()),
            Err(Refusal::BadSnapshot)
        );
    }

    #[test]
    fn a_request_arriving_byte_by_byte_is_answered() {
        let req = b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n";
        let chunks = req.iter().map(|&b| vec![b]).collect();
        let client = Client::new(chunks, usize::MAX, false);
        let mut net = Loop::new(Http::new(site()), client, 80, tcp(64 * 1024));
        let mut want = head(Status::Ok, "text/plain; charset=utf-8", 6, true);
        want.extend_from_slice(b"alpha\n");
        let len = want.len();
        assert!(net.run_until(Duration::from_secs(10), |n| n.capp.received.len() >= len));
        assert_eq!(net.capp.received, want);
        assert!(!net.capp.peer_closed, "keep-alive connection closed");
    }

    #[test]
    fn malformed_requests_get_a_status_and_the_connection_closes() {
        for (req, status) in [
            (&b"GARBAGE\r\n\r\n"[..], Status::BadRequest),
            (b"GET / HTTP/1.1\r\n\r\n", Status::BadRequest),
            (
                b"GET / HTTP/3.0\r\nHost: t\r\n\r\n",
                Status::VersionNotSupported,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
                Status::NotImplemented,
            ),
        ] {
            let client = Client::new(vec![req.to_vec()], usize::MAX, false);
            let mut net = Loop::new(Http::new(site()), client, 80, tcp(64 * 1024));
            assert!(net.run_until(Duration::from_secs(10), |n| n.capp.peer_closed));
            assert_eq!(
                net.capp.received,
                error_response(status, false),
                "{:?}",
                String::from_utf8_lossy(req)
            );
        }
        let mut huge = b"GET / HTTP/1.1\r\nHost: t\r\nX: ".to_vec();
        huge.resize(3 * MAX_HEADER, b'a');
        let client = Client::new(vec![huge], usize::MAX, false);
        let mut net = Loop::new(Http::new(site()), client, 80, tcp(64 * 1024));
        assert!(net.run_until(Duration::from_secs(10), |n| n.capp.peer_closed));
        assert_eq!(
            net.capp.received,
            error_response(Status::HeaderTooLarge, false)
        );
    }

    #[test]
    fn an_idle_keep_alive_connection_is_closed_after_the_timeout() {
        let req = b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n".to_vec();
        let client = Client::new(vec![req], usize::MAX, false);
        let mut net = Loop::new(Http::new(site()), client, 80, tcp(64 * 1024));
        assert!(net.run_until(Duration::from_secs(5), |n| !n.capp.received.is_empty()));
        let answered = net.now;
        assert!(!net.run_until(IDLE_TIMEOUT - Duration::from_secs(2), |n| n
            .capp
            .peer_closed));
        assert!(net.run_until(Duration::from_secs(5), |n| n.capp.peer_closed));
        let waited = net.now.saturating_duration_since(answered);
        assert!(
            waited >= IDLE_TIMEOUT && waited <= IDLE_TIMEOUT + Duration::from_secs(2),
            "{waited:?}"
        );
        assert_eq!(net.sapp.stats.idle_closed, 1);
    }

    #[test]
    fn a_half_closed_client_gets_its_answers_then_a_close() {
        let reqs =
            b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /a.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /a.t"
                .to_vec();
        let client = Client::new(vec![reqs], usize::MAX, true);
        let mut net = Loop::new(Http::new(site()), client, 80, tcp(64 * 1024));
        assert!(net.run_until(Duration::from_secs(10), |n| n.capp.closed));
        let mut one = head(Status::Ok, "text/plain; charset=utf-8", 6, true);
        one.extend_from_slice(b"alpha\n");
        assert_eq!(net.capp.received, [one.clone(), one].concat());
    }
}
