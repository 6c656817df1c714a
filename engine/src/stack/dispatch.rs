//! Delivering connections' events to the application: after input and timers, each
//! touched connection's events go to [`App::on_event`] in a fixed order, then
//! [`App::on_poll`] runs, then what the application's own calls raised is delivered too.
//!
//! Owns the order and the rules of delivery (nothing but [`Event::Closed`] once a
//! connection is closed; every closed connection gets exactly one). May not: send, or
//! remove connections (that is `transmit`'s, once the events are out).
use super::{App, ConnId, Ctx, Event, Stack};
use crate::tcp::{Connection, Events, State};
use crate::time::Instant;

impl Stack {
    /// Delivers the events of every touched connection to `app`, then calls its
    /// `on_poll`, then delivers what the application's own calls raised (a connection it
    /// aborted gets its [`Event::Closed`] here, in the same dispatch).
    pub fn dispatch<A: App + ?Sized>(&mut self, now: Instant, app: &mut A) {
        // Connections that went to TIME-WAIT records: gone, cleanly.
        let mut gone = core::mem::take(&mut self.closed_to_time_wait);
        for &id in &gone {
            let mut cx = Ctx { stack: self, now };
            app.on_event(&mut cx, id, Event::Closed { error: None });
        }
        gone.clear();
        if self.closed_to_time_wait.is_empty() {
            self.closed_to_time_wait = gone; // keep the allocation
        }
        self.deliver_touched(now, app);
        let mut cx = Ctx { stack: self, now };
        app.on_poll(&mut cx);
        self.deliver_touched(now, app);
    }

    /// Delivers the pending events of every touched connection. Applications may touch
    /// more connections (connect, or write to another): the list grows while we walk it.
    fn deliver_touched<A: App + ?Sized>(&mut self, now: Instant, app: &mut A) {
        let mut i = 0;
        while i < self.touched.len() {
            let id = self.touched[i];
            i += 1;
            self.deliver_events(now, app, id);
        }
    }

    /// Delivers `id`'s events in their order (established, readable, peer closed,
    /// writable, closed), again while the application's calls raise new ones (a bounded
    /// number of rounds; what is left waits for the next dispatch). Once the connection
    /// is closed, nothing but [`Event::Closed`] reaches the application.
    fn deliver_events<A: App + ?Sized>(&mut self, now: Instant, app: &mut A, id: ConnId) {
        const ROUNDS: usize = 4;
        for _ in 0..ROUNDS {
            let Some(e) = self.entry_mut(id) else { return };
            let events = e.conn.take_events();
            if events.is_empty() {
                return;
            }
            let listener_port = e.listener_port();
            let ordered = [
                Events::ESTABLISHED,
                Events::READABLE,
                Events::PEER_CLOSED,
                Events::WRITABLE,
            ];
            for kind in ordered {
                if !events.contains(kind)
                    || self.conn(id).is_none_or(|c| c.state() == State::Closed)
                {
                    continue;
                }
                let ev = if kind == Events::ESTABLISHED {
                    match listener_port {
                        Some(local_port) => Event::Accepted { local_port },
                        None => Event::Connected,
                    }
                } else if kind == Events::READABLE {
                    Event::Readable
                } else if kind == Events::PEER_CLOSED {
                    Event::PeerClosed
                } else {
                    Event::Writable
                };
                let mut cx = Ctx { stack: self, now };
                app.on_event(&mut cx, id, ev);
            }
            if events.contains(Events::CLOSED) {
                let error = self.conn(id).and_then(Connection::error);
                if error.is_some() {
                    self.tcp.errors += 1;
                }
                let mut cx = Ctx { stack: self, now };
                app.on_event(&mut cx, id, Event::Closed { error });
                return;
            }
        }
    }
}
