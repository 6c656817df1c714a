//! The applications `migratory serve --app NAME` runs, one instance per core.
//!
//! Each is an [`engine::stack::App`]: event-driven, non-blocking, inline on the core that
//! owns the connection. [`AnyApp`] dispatches to the one chosen on the command line.
use engine::stack::{App, ConnId, Ctx, Event, StackError};

pub mod discard;
pub mod echo;

pub use discard::Discard;
pub use echo::Echo;

/// Per-connection state of an application, kept in a `Vec` indexed by
/// [`ConnId::index`] (dense, reused after [`Event::Closed`]).
#[derive(Debug)]
pub struct PerConn<T> {
    slots: Vec<Option<(ConnId, T)>>,
}

impl<T> Default for PerConn<T> {
    fn default() -> Self {
        PerConn { slots: Vec::new() }
    }
}

impl<T> PerConn<T> {
    pub fn insert(&mut self, id: ConnId, value: T) {
        let i = id.index();
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, || None);
        }
        self.slots[i] = Some((id, value));
    }

    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut T> {
        match self.slots.get_mut(id.index()) {
            Some(Some((owner, v))) if *owner == id => Some(v),
            _ => None,
        }
    }

    pub fn remove(&mut self, id: ConnId) -> Option<T> {
        match self.slots.get_mut(id.index()) {
            Some(slot @ Some(_)) if slot.as_ref().is_some_and(|(o, _)| *o == id) => slot.take().map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The application chosen on the command line.
#[derive(Debug)]
pub enum AnyApp {
    Echo(Echo),
    Discard(Discard),
}

impl AnyApp {
    /// Starts listening on `port`.
    pub fn start(&mut self, cx: &mut Ctx<'_>, port: u16) -> Result<(), StackError> {
        cx.listen(port)
    }
}

impl App for AnyApp {
    fn on_event(&mut self, cx: &mut Ctx<'_>, conn: ConnId, event: Event) {
        match self {
            AnyApp::Echo(a) => a.on_event(cx, conn, event),
            AnyApp::Discard(a) => a.on_event(cx, conn, event),
        }
    }

    fn on_poll(&mut self, cx: &mut Ctx<'_>) {
        match self {
            AnyApp::Echo(a) => a.on_poll(cx),
            AnyApp::Discard(a) => a.on_poll(cx),
        }
    }
}
