//! The command path into the cores: an operator's request (from `migratory ctl`, through
//! the control thread) reaches each core's poll loop through a bounded lock-free queue,
//! and the core answers on the request's own channel once the work is done.
//!
//! Owns the request and reply types ([`Request`], [`Command`], [`Reply`]) and the
//! per-core queue ([`ControlInbox`], [`ControlSender`]). May not: block a core (a core
//! only ever pops its queue and sends on an unbounded reply channel), or carry anything
//! but values (no references into a core's state).
use core::net::SocketAddrV4;
use std::sync::Arc;

use crossbeam::channel::Sender;
use crossbeam::queue::ArrayQueue;

use crate::migrate::{FlowId, Owner};
use crate::stack::MigrateError;
use crate::tcp::State;
use crate::time::Duration;

/// Requests one core may have waiting.
pub const INBOX_DEPTH: usize = 64;

/// Which connections a move names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    One(FlowId),
    All,
}

/// What an operator asks of a core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// List the core's connections.
    Connections,
    /// Move the named connections of this core to `to`: another core of this engine
    /// ([`Owner::Core`]) or a peer engine ([`Owner::Peer`], numbered as in the channel
    /// configuration).
    Migrate { which: Which, to: Owner },
    /// Drain towards peer `to`: from now on segments of flows this core does not hold
    /// (new connections too) go to the peer, and every connection moves there.
    Drain { to: u16 },
    /// The drain towards peer `to` is over on every core: stop answering ARP for our
    /// address, and tell the peer to announce it.
    HandOver { to: u16 },
}

/// A command with where its answer goes.
#[derive(Debug)]
pub struct Request {
    pub command: Command,
    pub reply: Sender<Reply>,
    /// After this the asker no longer waits: a core that takes the request later answers
    /// [`CommandError::Expired`] and does nothing (a move must not happen after the
    /// operator was told it did not).
    pub deadline: Option<std::time::Instant>,
}

/// One connection as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    pub flow: FlowId,
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
    pub state: State,
    pub core: u16,
    /// Bytes queued to send (unacknowledged and unsent), and received but unread.
    pub send_queue: usize,
    pub recv_queue: usize,
    pub srtt: Option<Duration>,
    pub cwnd: u32,
    pub retransmits: u32,
}

/// How one move ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MoveResult {
    pub flow: FlowId,
    pub from: u16,
    pub to: Owner,
    /// Freeze to adopted, or why the connection stayed (where it was, serving).
    pub outcome: Result<Duration, MigrateError>,
}

/// A core's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Connections {
        core: u16,
        list: Vec<ConnectionInfo>,
    },
    /// Every move the command started on this core, once all ended (none: the core held
    /// no connection the command named).
    Moves { core: u16, results: Vec<MoveResult> },
    /// The command cannot run on this core (a destination that is not a core, say).
    Error { core: u16, error: CommandError },
    /// The command was carried out and there is nothing more to say.
    Done { core: u16 },
}

/// Why a command was not carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("core {0} does not exist (cores are 0..{1})")]
    NoSuchCore(u16, u16),
    #[error("this engine runs one core: there is no other core to move to")]
    SingleCore,
    #[error("the request reached this core after its asker stopped waiting; nothing done")]
    Expired,
    #[error("this engine has no state channel (serve it with --channel and --peer)")]
    NoChannel,
    #[error("peer {0} does not exist (peers are 0..{1})")]
    NoSuchPeer(u16, u16),
    #[error("no channel link to peer {0} is up")]
    NoLink(u16),
}

/// The control thread's end of one core's queue.
#[derive(Debug, Clone)]
pub struct ControlSender {
    queue: Arc<ArrayQueue<Request>>,
}

/// The core's end: it pops requests between polls.
#[derive(Debug)]
pub struct ControlInbox {
    queue: Arc<ArrayQueue<Request>>,
}

/// A queue for one core: the sender for the control thread, the inbox for the core.
pub fn control_queue() -> (ControlSender, ControlInbox) {
    let queue = Arc::new(ArrayQueue::new(INBOX_DEPTH));
    (
        ControlSender {
            queue: Arc::clone(&queue),
        },
        ControlInbox { queue },
    )
}

impl ControlSender {
    /// Queues `request`; gives it back if the core has [`INBOX_DEPTH`] waiting (busy).
    pub fn send(&self, request: Request) -> Result<(), Request> {
        self.queue.push(request)
    }
}

impl ControlInbox {
    /// The next request, if any (one atomic load when there is none).
    pub fn pop(&self) -> Option<Request> {
        self.queue.pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_cross_and_answers_come_back() {
        let (tx, rx) = control_queue();
        let (reply_tx, reply_rx) = crossbeam::channel::unbounded();
        tx.send(Request {
            command: Command::Connections,
            reply: reply_tx.clone(),
            deadline: None,
        })
        .unwrap();
        let req = rx.pop().expect("queued");
        assert_eq!(req.command, Command::Connections);
        req.reply
            .send(Reply::Connections {
                core: 0,
                list: vec![],
            })
            .unwrap();
        assert_eq!(
            reply_rx.recv().unwrap(),
            Reply::Connections {
                core: 0,
                list: vec![]
            }
        );
        assert!(rx.pop().is_none());
        // A full queue hands the request back.
        for _ in 0..INBOX_DEPTH {
            tx.send(Request {
                command: Command::Connections,
                reply: reply_tx.clone(),
                deadline: None,
            })
            .unwrap();
        }
        assert!(tx
            .send(Request {
                command: Command::Connections,
                reply: reply_tx,
                deadline: None,
            })
            .is_err());
    }
}
