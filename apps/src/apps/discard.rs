//! `discard` (RFC 863 over TCP): reads and drops everything; closes when the peer does.
//! Its connections move with no state of their own (an empty snapshot).
use engine::stack::{App, ConnId, Ctx, Event, Refusal};

#[derive(Debug, Default)]
pub struct Discard {
    /// Bytes discarded, for statistics.
    pub bytes: u64,
}

impl App for Discard {
    fn on_event(&mut self, cx: &mut Ctx<'_>, conn: ConnId, event: Event) {
        match event {
            Event::Readable | Event::Adopted { .. } => {
                while let Ok(n) = cx.recv_with(conn, |data| data.len()) {
                    if n == 0 {
                        break;
                    }
                    self.bytes += n as u64;
                }
            }
            Event::PeerClosed => {
                let _ = cx.recv_with(conn, |data| data.len());
                let _ = cx.close(conn);
            }
            _ => {}
        }
        if matches!(event, Event::Adopted { .. }) {
            // The peer may have closed before the move: close as PeerClosed would.
            if cx.peer_closed(conn) {
                let _ = cx.close(conn);
            }
        }
    }

    fn export(&mut self, _: &mut Ctx<'_>, _: ConnId, _: &mut Vec<u8>) -> Result<(), Refusal> {
        Ok(())
    }

    fn import(&mut self, _: &mut Ctx<'_>, _: ConnId, snapshot: &[u8]) -> Result<(), Refusal> {
        if snapshot.is_empty() {
            Ok(())
        } else {
            Err(Refusal::BadSnapshot)
        }
    }
}
