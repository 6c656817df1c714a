//! `echo` (RFC 862 over TCP): sends back every byte received, with back-pressure: it
//! reads only what the send buffer can take, so a client that does not read stops being
//! read from. When the peer closes, the echo closes after the last byte is sent back.
//!
//! Connections move (live migration) with a one-byte state: whether the peer closed. The
//! bytes read and not yet echoed are in the send buffer, and what was not read is in the
//! receive buffer: both travel with the connection.
use engine::stack::{App, ConnId, Ctx, Event, Refusal};

use super::PerConn;

/// Bytes moved per read-write step.
const CHUNK: usize = 16 * 1024;

#[derive(Debug)]
pub struct Echo {
    buf: Box<[u8]>,
    /// Connections whose peer closed: close once everything is echoed.
    closing: PerConn<()>,
    /// Per-connection state of `state_bytes` bytes, for measuring migration with
    /// application state (`--app-state-bytes`); moved with the connection.
    state: PerConn<Vec<u8>>,
    state_bytes: usize,
    /// Bytes echoed, for statistics.
    pub bytes: u64,
}

impl Default for Echo {
    fn default() -> Self {
        Echo {
            buf: vec![0; CHUNK].into_boxed_slice(),
            closing: PerConn::default(),
            state: PerConn::default(),
            state_bytes: 0,
            bytes: 0,
        }
    }
}

impl Echo {
    /// An echo whose connections each carry `bytes` of state (a measurement knob).
    pub fn with_state_bytes(bytes: usize) -> Echo {
        Echo {
            state_bytes: bytes,
            ..Echo::default()
        }
    }
}

impl Echo {
    fn pump(&mut self, cx: &mut Ctx<'_>, conn: ConnId) {
        loop {
            let room = cx.send_capacity(conn).min(self.buf.len());
            if room == 0 {
                return; // Writable follows
            }
            let n = cx.recv(conn, &mut self.buf[..room]).unwrap_or(0);
            if n == 0 {
                break;
            }
            let sent = cx.send(conn, &self.buf[..n]).unwrap_or(0);
            self.bytes += sent as u64;
            debug_assert_eq!(sent, n, "send_capacity promised room");
        }
        if cx.peer_closed(conn) && cx.recv_queue(conn) == 0 && self.closing.remove(conn).is_some() {
            let _ = cx.close(conn);
        }
    }
}

impl App for Echo {
    fn on_event(&mut self, cx: &mut Ctx<'_>, conn: ConnId, event: Event) {
        match event {
            Event::Readable | Event::Writable => self.pump(cx, conn),
            Event::PeerClosed => {
                self.closing.insert(conn, ());
                self.pump(cx, conn);
            }
            Event::Closed { .. } => {
                self.closing.remove(conn);
                self.state.remove(conn);
            }
            Event::Adopted { .. } => self.pump(cx, conn),
            Event::Accepted { .. } if self.state_bytes > 0 => {
                self.state.insert(conn, vec![0x5a; self.state_bytes]);
            }
            Event::Accepted { .. } | Event::Connected => {}
        }
    }

    fn export(&mut self, _: &mut Ctx<'_>, conn: ConnId, out: &mut Vec<u8>) -> Result<(), Refusal> {
        let closing = self.closing.remove(conn).is_some();
        out.extend_from_slice(&[SNAPSHOT_V1, u8::from(closing)]);
        if let Some(state) = self.state.remove(conn) {
            out.extend_from_slice(&state);
        }
        Ok(())
    }

    fn import(&mut self, _: &mut Ctx<'_>, conn: ConnId, snapshot: &[u8]) -> Result<(), Refusal> {
        match snapshot {
            [SNAPSHOT_V1, closing @ (0 | 1), state @ ..] => {
                if *closing == 1 {
                    self.closing.insert(conn, ());
                }
                if !state.is_empty() {
                    self.state.insert(conn, state.to_vec());
                }
                Ok(())
            }
            _ => Err(Refusal::BadSnapshot),
        }
    }
}

/// The format of an echo connection's snapshot: this byte, then 1 if the peer closed,
/// then the connection's state bytes (`--app-state-bytes`), if any.
const SNAPSHOT_V1: u8 = 1;
