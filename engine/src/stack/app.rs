//! The application API: event-driven, per core, inline on the core that owns the
//! connection.
//!
//! An [`App`] is called with an [`Event`] for a connection and a [`Ctx`] through which it
//! reads, writes, closes, opens and listens. Nothing blocks: a write takes what the send
//! buffer has room for and [`Event::Writable`] says when more fits; a read takes what has
//! arrived. Each core runs its own instance of the application (see `poll::Engine`).
//!
//! ```
//! use engine::stack::{App, ConnId, Ctx, Event};
//!
//! /// Echoes every byte back, and closes when the peer does.
//! #[derive(Default)]
//! struct Echo;
//!
//! impl App for Echo {
//!     fn on_event(&mut self, cx: &mut Ctx<'_>, conn: ConnId, event: Event) {
//!         match event {
//!             Event::Readable | Event::Writable => {
//!                 // Read only what the send buffer can take: back-pressure.
//!                 let room = cx.send_capacity(conn);
//!                 let mut buf = [0u8; 4096];
//!                 let n = cx.recv(conn, &mut buf[..room.min(4096)]).unwrap_or(0);
//!                 let _ = cx.send(conn, &buf[..n]);
//!             }
//!             Event::PeerClosed => {
//!                 let _ = cx.close(conn);
//!             }
//!             _ => {}
//!         }
//!     }
//! }
//! ```
use core::net::SocketAddrV4;

use super::{ConnId, Refusal, Stack, StackError};
use crate::tcp::{Connection, Shutdown, State, TcpError};
use crate::time::Instant;

/// Something that happened to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A passive open completed on the listener of this local port.
    Accepted { local_port: u16 },
    /// An active open ([`Ctx::connect`]) completed.
    Connected,
    /// Data (or the end of the stream) can be read.
    Readable,
    /// Send buffer space opened up after a write did not fit.
    Writable,
    /// The peer closed its direction: no data follows what is buffered.
    PeerClosed,
    /// The connection is gone (closed normally, reset, or timed out). Its id is invalid
    /// after this event; the application frees whatever it kept for it.
    Closed { error: Option<TcpError> },
    /// The connection moved here from another core or engine, and [`App::import`] took
    /// its state: it is live, carry on serving it (`local_port`: the listener that first
    /// accepted it, for passive opens).
    Adopted { local_port: Option<u16> },
}

/// An application running on the engine.
pub trait App {
    /// Called for each event of each connection of this core, in arrival order.
    fn on_event(&mut self, cx: &mut Ctx<'_>, conn: ConnId, event: Event);

    /// Called once per poll after events, with the current time (for applications that
    /// run their own timers). Optional.
    fn on_poll(&mut self, cx: &mut Ctx<'_>) {
        let _ = cx;
    }

    /// The connection is about to move to another core or engine (live migration): write
    /// its state into `out` (at most [`crate::migrate::MAX_APP_SNAPSHOT`] bytes, in a
    /// format of the application's own; name resources by what identifies them
    /// everywhere, a file by its path, never by a pointer or an index) and forget the
    /// connection: after `Ok` no other event comes for `conn` here, and it is
    /// [`App::import`]ed where it goes. Or refuse with the reason, and nothing changes:
    /// the connection stays and keeps working.
    ///
    /// The snapshot must be consistent with the byte stream: it describes the state after
    /// every byte the application has read and before every byte it has not (those stay
    /// in the connection and are read at the destination), with what it wrote already in
    /// the connection's send buffer. Between snapshots the application must be
    /// deterministic in what it reads (DESIGN.md §4.3).
    ///
    /// The default refuses ([`Refusal::Unsupported`]): an application moves connections
    /// only if it says it can.
    fn export(&mut self, cx: &mut Ctx<'_>, conn: ConnId, out: &mut Vec<u8>) -> Result<(), Refusal> {
        let _ = (cx, conn, out);
        Err(Refusal::Unsupported)
    }

    /// A connection moved here: `snapshot` is what [`App::export`] wrote where it came
    /// from (by this application's code, or by another version of it). Take it up under
    /// the new id `conn`; [`Event::Adopted`] follows. A refusal sends the connection back
    /// where it came from, untouched.
    fn import(&mut self, cx: &mut Ctx<'_>, conn: ConnId, snapshot: &[u8]) -> Result<(), Refusal> {
        let _ = (cx, conn, snapshot);
        Err(Refusal::Unsupported)
    }
}

impl<A: App + ?Sized> App for Box<A> {
    fn on_event(&mut self, cx: &mut Ctx<'_>, conn: ConnId, event: Event) {
        (**self).on_event(cx, conn, event);
    }

    fn on_poll(&mut self, cx: &mut Ctx<'_>) {
        (**self).on_poll(cx);
    }

    fn export(&mut self, cx: &mut Ctx<'_>, conn: ConnId, out: &mut Vec<u8>) -> Result<(), Refusal> {
        (**self).export(cx, conn, out)
    }

    fn import(&mut self, cx: &mut Ctx<'_>, conn: ConnId, snapshot: &[u8]) -> Result<(), Refusal> {
        (**self).import(cx, conn, snapshot)
    }
}

/// The application that serves nothing (the engine then answers ARP and ping only).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoApp;

impl App for NoApp {
    fn on_event(&mut self, _: &mut Ctx<'_>, _: ConnId, _: Event) {}
}

/// What an application may do, during a callback.
#[derive(Debug)]
pub struct Ctx<'a> {
    pub(super) stack: &'a mut Stack,
    pub(super) now: Instant,
}

impl<'a> Ctx<'a> {
    /// A context over `stack` at `now`, for drivers that call applications themselves.
    pub fn new(stack: &'a mut Stack, now: Instant) -> Ctx<'a> {
        Ctx { stack, now }
    }

    pub fn now(&self) -> Instant {
        self.now
    }

    /// Listens on `port` of the stack's address.
    pub fn listen(&mut self, port: u16) -> Result<(), StackError> {
        self.stack.listen(port)
    }

    /// Opens a connection to `remote`; [`Event::Connected`] follows, or
    /// [`Event::Closed`] with an error.
    pub fn connect(&mut self, remote: SocketAddrV4) -> Result<ConnId, StackError> {
        self.stack.connect(self.now, remote)
    }

    /// [`Ctx::connect`] from `local_ip`, one of the interface's addresses held in full
    /// (see [`Stack::connect_from`]).
    pub fn connect_from(
        &mut self,
        local_ip: core::net::Ipv4Addr,
        remote: SocketAddrV4,
    ) -> Result<ConnId, StackError> {
        self.stack.connect_from(self.now, local_ip, remote)
    }

    /// Reads into `buf`; Ok(0) when nothing is buffered (or the stream ended).
    pub fn recv(&mut self, conn: ConnId, buf: &mut [u8]) -> Result<usize, StackError> {
        self.stack
            .with_conn(conn, |c| c.recv(buf).map_err(StackError::Tcp))
    }

    /// Reads without copying: `f` sees contiguous buffered bytes and returns how many it
    /// consumed.
    pub fn recv_with(
        &mut self,
        conn: ConnId,
        f: impl FnOnce(&[u8]) -> usize,
    ) -> Result<usize, StackError> {
        self.stack
            .with_conn(conn, |c| c.recv_with(f).map_err(StackError::Tcp))
    }

    /// Queues as much of `data` as fits; returns the count. When it is less than
    /// `data.len()`, [`Event::Writable`] comes once room opens up.
    pub fn send(&mut self, conn: ConnId, data: &[u8]) -> Result<usize, StackError> {
        self.stack
            .with_conn(conn, |c| c.send(data).map_err(StackError::Tcp))
    }

    /// Bytes [`Ctx::send`] would take now.
    pub fn send_capacity(&self, conn: ConnId) -> usize {
        self.stack.conn(conn).map_or(0, Connection::send_capacity)
    }

    /// The connection itself, read-only: its state and figures (retransmissions, RTT,
    /// congestion window, queues), as `TCP_INFO` gives them on Linux.
    pub fn connection(&self, conn: ConnId) -> Option<&Connection> {
        self.stack.conn(conn)
    }

    /// Bytes buffered for reading.
    pub fn recv_queue(&self, conn: ConnId) -> usize {
        self.stack.conn(conn).map_or(0, |c| c.recv_queue())
    }

    /// Whether the peer has closed its direction.
    pub fn peer_closed(&self, conn: ConnId) -> bool {
        self.stack.conn(conn).is_some_and(|c| c.peer_closed())
    }

    pub fn state(&self, conn: ConnId) -> Option<State> {
        self.stack.conn(conn).map(|c| c.state())
    }

    /// The connection's remote endpoint.
    pub fn remote(&self, conn: ConnId) -> Option<SocketAddrV4> {
        self.stack.conn(conn).map(|c| c.remote())
    }

    /// Closes our direction after the queued data (FIN); reading goes on until the peer
    /// closes too.
    pub fn close(&mut self, conn: ConnId) -> Result<(), StackError> {
        self.stack
            .with_conn(conn, |c| c.close().map_err(StackError::Tcp))
    }

    /// Half-closes: see [`Shutdown`].
    pub fn shutdown(&mut self, conn: ConnId, how: Shutdown) -> Result<(), StackError> {
        let now = self.now;
        self.stack
            .with_conn(conn, |c| c.shutdown(how, now).map_err(StackError::Tcp))
    }

    /// Resets the connection at once (RST), discarding buffered data.
    pub fn abort(&mut self, conn: ConnId) -> Result<(), StackError> {
        self.stack.with_conn(conn, |c| {
            c.abort();
            Ok(())
        })
    }

    /// TCP_NODELAY: with `true`, small writes leave at once instead of waiting, while
    /// data is in flight, for an acknowledgment (Nagle's algorithm, on by default).
    pub fn set_nodelay(&mut self, conn: ConnId, nodelay: bool) -> Result<(), StackError> {
        self.stack.with_conn(conn, |c| {
            c.set_nagle(!nodelay);
            Ok(())
        })
    }

    /// Raises an established connection's congestion window to at least `bytes` (see
    /// `Connection::raise_congestion_window`); `InvalidState` before the handshake.
    pub fn raise_congestion_window(&mut self, conn: ConnId, bytes: u32) -> Result<(), StackError> {
        self.stack.with_conn(conn, |c| {
            if c.raise_congestion_window(bytes) {
                Ok(())
            } else {
                Err(StackError::Tcp(crate::tcp::TcpError::InvalidState(
                    c.state(),
                )))
            }
        })
    }

    /// The application's word for this connection (0 until set).
    pub fn user_data(&self, conn: ConnId) -> u64 {
        self.stack.user_data(conn)
    }

    pub fn set_user_data(&mut self, conn: ConnId, value: u64) {
        self.stack.set_user_data(conn, value);
    }
}
