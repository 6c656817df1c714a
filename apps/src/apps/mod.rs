//! The applications `migratory serve --app NAME` runs, one instance per core.
//!
//! Each is an [`engine::stack::App`]: event-driven, non-blocking, inline on the core that
//! owns the connection. [`AnyApp`] dispatches to the one chosen on the command line.
use std::path::Path;
use std::sync::Arc;

use engine::stack::{App, ConnId, Ctx, Event, Refusal, StackError};

use crate::args::AppName;

pub mod discard;
pub mod echo;
pub mod http;
pub mod iperf3;

pub use discard::Discard;
pub use echo::Echo;
pub use http::Http;
pub use iperf3::Iperf3;

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
            Some(slot @ Some(_)) if slot.as_ref().is_some_and(|(o, _)| *o == id) => {
                slot.take().map(|(_, v)| v)
            }
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    /// Every entry, with its connection.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (ConnId, &mut T)> {
        self.slots
            .iter_mut()
            .filter_map(|s| s.as_mut().map(|(id, v)| (*id, v)))
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
    Http(Http),
    Iperf3(Iperf3),
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
    /// The files `http` serves, loaded from `--root`.
    site: Option<Arc<http::Site>>,
    /// Per-connection state `echo` carries (measurements of migration).
    state_bytes: usize,
}

impl AppFactory {
    /// Prepares `name` to listen on `port` (its well-known port if `None`); `http` loads
    /// the files under `root` now.
    pub fn new(
        name: Option<AppName>,
        port: Option<u16>,
        root: Option<&Path>,
    ) -> Result<AppFactory, String> {
        let port = port.or(name.map(AppName::default_port)).unwrap_or(0);
        let site = match (name, root) {
            (Some(AppName::Http), Some(root)) => {
                Some(Arc::new(http::Site::load(root).map_err(|e| e.to_string())?))
            }
            (Some(AppName::Http), None) => {
                return Err("--app http needs --root DIR (the files to serve)".into())
            }
            (_, Some(_)) => return Err("--root is for --app http only".into()),
            _ => None,
        };
        Ok(AppFactory {
            name,
            port,
            site,
            state_bytes: 0,
        })
    }

    /// Gives every `echo` connection `bytes` of state that moves with it.
    pub fn with_state_bytes(mut self, bytes: usize) -> Self {
        self.state_bytes = bytes;
        self
    }

    /// The loaded site of `--app http`.
    pub fn site(&self) -> Option<&Arc<http::Site>> {
        self.site.as_ref()
    }

    /// The TCP port the application listens on (0: none).
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn make(&self) -> AnyApp {
        match self.name {
            None => AnyApp::Nothing,
            Some(AppName::Echo) => AnyApp::Echo(Echo::with_state_bytes(self.state_bytes)),
            Some(AppName::Discard) => AnyApp::Discard(Discard::default()),
            Some(AppName::Http) => match &self.site {
                Some(site) => AnyApp::Http(Http::new(Arc::clone(site))),
                None => AnyApp::Nothing, // `new` refuses http without a site
            },
            Some(AppName::Iperf3) => {
                let mut app = Iperf3::new();
                app.verbose = true;
                AnyApp::Iperf3(app)
            }
        }
    }
}

impl App for AnyApp {
    fn on_event(&mut self, cx: &mut Ctx<'_>, conn: ConnId, event: Event) {
        match self {
            AnyApp::Nothing => {}
            AnyApp::Echo(a) => a.on_event(cx, conn, event),
            AnyApp::Discard(a) => a.on_event(cx, conn, event),
            AnyApp::Http(a) => a.on_event(cx, conn, event),
            AnyApp::Iperf3(a) => a.on_event(cx, conn, event),
        }
    }

    fn on_poll(&mut self, cx: &mut Ctx<'_>) {
        match self {
            AnyApp::Nothing => {}
            AnyApp::Echo(a) => a.on_poll(cx),
            AnyApp::Discard(a) => a.on_poll(cx),
            AnyApp::Http(a) => a.on_poll(cx),
            AnyApp::Iperf3(a) => a.on_poll(cx),
        }
    }

    fn export(&mut self, cx: &mut Ctx<'_>, conn: ConnId, out: &mut Vec<u8>) -> Result<(), Refusal> {
        match self {
            // No application: connections are reset at once, there is nothing to move.
            AnyApp::Nothing => Err(Refusal::Unsupported),
            AnyApp::Echo(a) => a.export(cx, conn, out),
            AnyApp::Discard(a) => a.export(cx, conn, out),
            AnyApp::Http(a) => a.export(cx, conn, out),
            AnyApp::Iperf3(a) => a.export(cx, conn, out),
        }
    }

    fn import(&mut self, cx: &mut Ctx<'_>, conn: ConnId, snapshot: &[u8]) -> Result<(), Refusal> {
        match self {
            AnyApp::Nothing => Err(Refusal::Unsupported),
            AnyApp::Echo(a) => a.import(cx, conn, snapshot),
            AnyApp::Discard(a) => a.import(cx, conn, snapshot),
            AnyApp::Http(a) => a.import(cx, conn, snapshot),
            AnyApp::Iperf3(a) => a.import(cx, conn, snapshot),
        }
    }
}
