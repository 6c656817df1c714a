//! `discard` (RFC 863 over TCP): reads and drops everything; closes when the peer does.
use engine::stack::{App, ConnId, Ctx, Event};

#[derive(Debug, Default)]
pub struct Discard {
    /// Bytes discarded, for statistics.
    pub bytes: u64,
}

impl App for Discard {
    fn on_event(&mut self, cx: &mut Ctx<'_>, conn: ConnId, event: Event) {
        match event {
            Event::Readable => {
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
    }
}
