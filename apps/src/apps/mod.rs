//! The applications `migratory serve --app NAME` runs, one instance per core.
//!
//! Each is an [`engine::stack::App`]: event-driven, non-blocking, inline on the core that
//! owns the connection. [`AnyApp`] dispatches to the one chosen on the command line.
use engine::stack::{App, ConnId, Ctx, Event, StackError};

use crate::cli::AppName;

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

/// The application chosen on the command line, one instance per core.
#[derive(Debug)]
pub enum AnyApp {
    /// No application: the engine answers ARP and ping, and resets TCP connections.
    Nothing,
    Echo(Echo),
    Discard(Discard),
}

impl AnyApp {
    /// Starts listening on `port` (nothing for [`AnyApp::Nothing`]).
    pub fn start(&mut self, cx: &mut Ctx<'_>, port: u16) -> Result<(), StackError> {
        match self {
            AnyApp::Nothing => Ok(()),
            _ => cx.listen(port),
        }
    }
}

/// Makes the per-core instances of the chosen application; whatever they share (files
/// to serve, say) is loaded once, here.
#[derive(Debug, Clone)]
pub struct AppFactory {
    name: Option<AppName>,
    port: u16,
}

impl AppFactory {
    /// Prepares `name` to listen on `port` (its well-known port if `None`).
    pub fn new(name: Option<AppName>, port: Option<u16>) -> Result<AppFactory, String> {
        let port = port.or(name.map(AppName::default_port)).unwrap_or(0);
        match name {
            None | Some(AppName::Echo | AppName::Discard) => Ok(AppFactory { name, port }),
            Some(other) => Err(format!("--app {other:?} is not available in this build yet (echo and discard are)")),
        }
    }

    /// The TCP port the application listens on (0: none).
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn make(&self) -> AnyApp {
        match self.name {
            None => AnyApp::Nothing,
            Some(AppName::Echo) => AnyApp::Echo(Echo::default()),
            Some(AppName::Discard) => AnyApp::Discard(Discard::default()),
            Some(AppName::Http | AppName::Iperf3) => AnyApp::Nothing,
        }
    }
}

impl App for AnyApp {
    fn on_event(&mut self, cx: &mut Ctx<'_>, conn: ConnId, event: Event) {
        match self {
            AnyApp::Nothing => {}
            AnyApp::Echo(a) => a.on_event(cx, conn, event),
            AnyApp::Discard(a) => a.on_event(cx, conn, event),
        }
    }

    fn on_poll(&mut self, cx: &mut Ctx<'_>) {
        match self {
            AnyApp::Nothing => {}
            AnyApp::Echo(a) => a.on_poll(cx),
            AnyApp::Discard(a) => a.on_poll(cx),
        }
    }
}
