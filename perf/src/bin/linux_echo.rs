//! `linux-echo`: the Linux-socket baseline server. One thread pinned to one core runs an
//! epoll loop (mio) over non-blocking sockets and serves every connection in one of three
//! modes: `echo` (send back what arrives), `discard` (read and drop) or `source` (send an
//! endless stream, for bulk transfers towards the client). Stops on SIGINT/SIGTERM with a
//! one-line summary.
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use migratory_perf::cli;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const BIN: &str = "linux-echo";
const LISTENER: Token = Token(usize::MAX);

/// Epoll echo/discard/source server on Linux sockets, single-threaded and pinned.
#[derive(Debug, Parser)]
#[command(name = BIN, version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7007")]
    listen: SocketAddr,
    /// What to do with each connection.
    #[arg(long, value_enum, default_value_t = Mode::Echo)]
    mode: Mode,
    /// CPU core to pin the server to.
    #[arg(long, default_value_t = 1)]
    core: usize,
    /// Read/write buffer size in bytes.
    #[arg(long, default_value_t = 65536)]
    buffer: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Echo,
    Discard,
    Source,
}

/// One client connection.
#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    /// Echo bytes read but not yet written back, from `pos`.
    pending: Vec<u8>,
    pos: usize,
}

#[derive(Debug, Default)]
struct Stats {
    accepted: u64,
    closed: u64,
    bytes_in: u64,
    bytes_out: u64,
    errors: u64,
}

fn main() {
    let args: Args = cli::parse_or_exit(BIN);
    std::process::exit(run(&args));
}

fn run(args: &Args) -> i32 {
    if !(1..=(64 << 20)).contains(&args.buffer) {
        return cli::usage_error(BIN, "--buffer must be between 1 and 67108864 bytes");
    }
    if let Err(e) = cli::pin_to_core(args.core) {
        return cli::usage_error(BIN, e);
    }
    let stop = match cli::stop_flag() {
        Ok(s) => s,
        Err(e) => return cli::failure(BIN, format_args!("cannot install a signal handler: {e}")),
    };
    let mut listener = match TcpListener::bind(args.listen) {
        Ok(l) => l,
        Err(e) => {
            return cli::usage_error(BIN, format_args!("cannot listen on {}: {e}", args.listen))
        }
    };
    let mut poll = match Poll::new() {
        Ok(p) => p,
        Err(e) => return cli::failure(BIN, format_args!("epoll: {e}")),
    };
    if let Err(e) = poll
        .registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
    {
        return cli::failure(BIN, format_args!("epoll register: {e}"));
    }
    println!(
        "{BIN}: {:?} on {} (core {})",
        args.mode,
        listener
            .local_addr()
            .map_or(args.listen.to_string(), |a| a.to_string()),
        args.core
    );
    let source = vec![0x5au8; args.buffer];
    let mut buf = vec![0u8; args.buffer];
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut stats = Stats::default();
    let mut events = Events::with_capacity(1024);

    while !stop.load(Ordering::Relaxed) {
        if let Err(e) = poll.poll(&mut events, Some(Duration::from_millis(100))) {
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return cli::failure(BIN, format_args!("epoll wait: {e}"));
        }
        for ev in events.iter() {
            if ev.token() == LISTENER {
                accept_all(&listener, &poll, &mut conns, &mut free, &mut stats);
                continue;
            }
            let i = ev.token().0;
            let Some(Some(conn)) = conns.get_mut(i) else {
                continue;
            };
            let open = match args.mode {
                Mode::Echo => serve_echo(conn, &mut buf, &mut stats),
                Mode::Discard => serve_discard(conn, &mut buf, &mut stats),
                Mode::Source => serve_source(conn, &source, &mut buf, &mut stats),
            };
            if !open {
                if let Some(mut c) = conns[i].take() {
                    let _ = poll.registry().deregister(&mut c.stream);
                }
                free.push(i);
                stats.closed += 1;
            }
        }
    }
    println!(
        "{BIN}: done accepted={} closed={} bytes_in={} bytes_out={} errors={}",
        stats.accepted, stats.closed, stats.bytes_in, stats.bytes_out, stats.errors
    );
    0
}

fn accept_all(
    listener: &TcpListener,
    poll: &Poll,
    conns: &mut Vec<Option<Conn>>,
    free: &mut Vec<usize>,
    stats: &mut Stats,
) {
    loop {
        match listener.accept() {
            Ok((mut stream, _)) => {
                let _ = stream.set_nodelay(true);
                let i = free.pop().unwrap_or_else(|| {
                    conns.push(None);
                    conns.len() - 1
                });
                if poll
                    .registry()
                    .register(
                        &mut stream,
                        Token(i),
                        Interest::READABLE | Interest::WRITABLE,
                    )
                    .is_err()
                {
                    stats.errors += 1;
                    free.push(i);
                    continue;
                }
                conns[i] = Some(Conn {
                    stream,
                    pending: Vec::new(),
                    pos: 0,
                });
                stats.accepted += 1;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => {
                // EMFILE, ECONNABORTED, ...: count it and let the next event retry.
                stats.errors += 1;
                return;
            }
        }
    }
}

/// Whether an I/O error is the peer going away (a close, not a fault).
fn peer_gone(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted
    )
}

/// Writes `data` until done or the socket is full; returns the bytes written, or `None`
/// when the connection failed.
fn write_some(stream: &mut TcpStream, data: &[u8], stats: &mut Stats) -> Option<usize> {
    let mut done = 0;
    while done < data.len() {
        match stream.write(&data[done..]) {
            Ok(0) => return None,
            Ok(n) => done += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                stats.errors += u64::from(!peer_gone(&e));
                return None;
            }
        }
    }
    stats.bytes_out += done as u64;
    Some(done)
}

/// Echo: flush what is pending, then read and write back until the socket would block
/// (edge-triggered: every path ends on WouldBlock or a close). Returns false to close.
fn serve_echo(conn: &mut Conn, buf: &mut [u8], stats: &mut Stats) -> bool {
    loop {
        if conn.pos < conn.pending.len() {
            let Some(n) = write_some(&mut conn.stream, &conn.pending[conn.pos..], stats) else {
                return false;
            };
            conn.pos += n;
            if conn.pos < conn.pending.len() {
                return true; // wait for the writable edge before reading more
            }
            conn.pending.clear();
            conn.pos = 0;
        }
        match conn.stream.read(buf) {
            Ok(0) => return false,
            Ok(n) => {
                stats.bytes_in += n as u64;
                let Some(w) = write_some(&mut conn.stream, &buf[..n], stats) else {
                    return false;
                };
                if w < n {
                    conn.pending.extend_from_slice(&buf[w..n]);
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                stats.errors += u64::from(!peer_gone(&e));
                return false;
            }
        }
    }
}

/// Discard: read until the socket would block. Returns false to close.
fn serve_discard(conn: &mut Conn, buf: &mut [u8], stats: &mut Stats) -> bool {
    loop {
        match conn.stream.read(buf) {
            Ok(0) => return false,
            Ok(n) => stats.bytes_in += n as u64,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                stats.errors += u64::from(!peer_gone(&e));
                return false;
            }
        }
    }
}

/// Source: drop whatever arrives (noticing the close), and fill the socket.
fn serve_source(conn: &mut Conn, source: &[u8], buf: &mut [u8], stats: &mut Stats) -> bool {
    if !serve_discard(conn, buf, stats) {
        return false;
    }
    loop {
        match write_some(&mut conn.stream, source, stats) {
            None => return false,
            Some(n) if n < source.len() => return true,
            Some(_) => {}
        }
    }
}
