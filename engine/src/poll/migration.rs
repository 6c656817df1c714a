//! The poll loop's part of moving connections between cores (DESIGN.md §4): the origin
//! freezes a connection and sends its [`Transfer`] over the mesh; the destination adopts
//! it and answers [`CoreMessage::Adopted`], or sends it back ([`CoreMessage::Returned`])
//! and the origin takes it back; home cores learn of new owners. Also the operator's
//! requests ([`crate::control`]) and the latency figures.
//!
//! Exactly one owner, always: a connection is in one stack, or in exactly one transfer on
//! its way (a message the mesh does not take is kept and sent again, never dropped; a
//! transfer the destination cannot send back is taken back by the stack that holds it).
//!
//! Owns the bookkeeping of moves in flight. May not: look into connections (the stack
//! does), or block.
use std::collections::VecDeque;

use super::Engine;
use crate::control::{Command, CommandError, ConnectionInfo, MoveResult, Reply, Request, Which};
use crate::migrate::{FlowId, Migration, Owner, Ticket, Transfer};
use crate::port::Port;
use crate::stack::{App, ConnId, MigrateError};
use crate::stats::LatencyHistogram;
use crate::steer::{CoreMessage, Steer};
use crate::time::{Duration, Instant};
use crossbeam::channel::Sender;

/// Migration latencies of one core.
#[derive(Debug, Clone, Default)]
pub struct MigrationLatency {
    /// Freeze at the origin to adopted at the destination (recorded at the origin).
    pub adopted: LatencyHistogram,
    /// Freeze at the origin to the first segment the new owner sent (recorded at the
    /// destination).
    pub first_segment: LatencyHistogram,
}

/// A move this core started and has not heard back about.
#[derive(Debug)]
struct InFlight {
    ticket: Ticket,
    flow: FlowId,
    to: Owner,
    frozen_at: Instant,
    /// The operator's request it belongs to (an index into `requests`).
    request: Option<usize>,
}

/// An operator's move request waiting for its moves to end.
#[derive(Debug)]
struct PendingMoves {
    reply: Sender<Reply>,
    outstanding: usize,
    results: Vec<MoveResult>,
}

/// The poll loop's migration state.
#[derive(Debug)]
pub(super) struct MigrationState<F> {
    pub(super) next_ticket: u64,
    in_flight: Vec<InFlight>,
    requests: Vec<Option<PendingMoves>>,
    /// Control messages the mesh did not take yet, to send again (never dropped).
    outbox: VecDeque<(Owner, CoreMessage<F>)>,
    pub latency: MigrationLatency,
    /// Connections lost because neither the destination nor the origin could take them
    /// (a table full on both sides): reset, so that the peer learns at once.
    pub lost: u64,
}

impl<F> Default for MigrationState<F> {
    fn default() -> Self {
        MigrationState {
            next_ticket: 1,
            in_flight: Vec::new(),
            requests: Vec::new(),
            outbox: VecDeque::new(),
            latency: MigrationLatency::default(),
            lost: 0,
        }
    }
}

impl<P: Port, A: App, S: Steer<P::Frame>> Engine<P, A, S> {
    /// The latency figures of moves that started or ended here.
    pub fn migration_latency(&self) -> &MigrationLatency {
        &self.migration.latency
    }

    /// Whether other cores have work from this one: messages in their queues, or control
    /// messages this core still has to send.
    pub fn has_work_for_siblings(&self) -> bool {
        self.steer.has_queued() || !self.migration.outbox.is_empty()
    }

    /// Moves that started here and have not ended.
    pub fn migrations_in_flight(&self) -> usize {
        self.migration.in_flight.len()
    }

    /// Connections lost because no core could hold them (reset).
    pub fn migrations_lost(&self) -> u64 {
        self.migration.lost
    }

    pub(super) fn stamp(&self, now: Instant) -> Instant {
        use crate::time::Clock;
        self.stamp.map_or(now, |c| c.now())
    }

    pub(super) fn this_core(&self) -> Option<u16> {
        match self.stack.this_core() {
            Some(Owner::Core(c)) => Some(c),
            _ => None,
        }
    }

    /// Freezes connection `id` for a move to `to` and hands back its [`Migration`], for
    /// the caller to carry (encoded, to another engine): [`crate::stack::Stack::migrate_out`]
    /// with this engine's application.
    pub fn export_connection(
        &mut self,
        now: Instant,
        id: ConnId,
        to: Owner,
    ) -> Result<Migration, MigrateError> {
        self.stack.migrate_out(now, id, to, &mut self.app)
    }

    /// Adopts the connection of `m` here: [`crate::stack::Stack::migrate_in`] with this
    /// engine's application. A refused migration comes back with the reason.
    pub fn import_connection(
        &mut self,
        now: Instant,
        m: Migration,
    ) -> Result<ConnId, (Box<Migration>, MigrateError)> {
        self.stack.migrate_in(now, m, &mut self.app)
    }

    /// Moves connection `id` to core `to` of this engine. Returns the move's ticket; the
    /// outcome arrives later (the connection is adopted there, or comes back here). On
    /// error the connection did not move and keeps serving here.
    pub fn migrate_to_core(
        &mut self,
        now: Instant,
        id: ConnId,
        to: u16,
    ) -> Result<Ticket, MigrateError> {
        self.start_move(now, id, to, None)
    }

    fn start_move(
        &mut self,
        now: Instant,
        id: ConnId,
        to: u16,
        request: Option<usize>,
    ) -> Result<Ticket, MigrateError> {
        let Some(origin) = self.this_core() else {
            return Err(MigrateError::SameCore);
        };
        if to == origin {
            return Err(MigrateError::SameCore);
        }
        let frozen_at = self.stamp(now);
        let migration = self
            .stack
            .migrate_out(now, id, Owner::Core(to), &mut self.app)?;
        let ticket = Ticket(self.migration.next_ticket);
        self.migration.next_ticket += 1;
        let flow = migration.flow;
        let transfer = Box::new(Transfer {
            migration,
            frozen_at,
            origin,
            ticket,
        });
        match self
            .steer
            .send(Owner::Core(to), CoreMessage::Migrate(transfer))
        {
            Ok(()) => {
                self.migration.in_flight.push(InFlight {
                    ticket,
                    flow,
                    to: Owner::Core(to),
                    frozen_at,
                    request,
                });
                Ok(ticket)
            }
            Err(CoreMessage::Migrate(transfer)) => {
                // The queue to the destination is full: the connection stays here.
                self.take_back(now, *transfer);
                Err(MigrateError::DestinationBusy)
            }
            Err(_) => Err(MigrateError::DestinationBusy),
        }
    }

    /// Installs a transfer that did not go through, or came back, here again.
    fn take_back(&mut self, now: Instant, transfer: Transfer) {
        self.take_back_migration(now, transfer.migration);
    }

    /// Installs a migration that did not go through here again.
    pub(super) fn take_back_migration(&mut self, now: Instant, migration: Migration) {
        if let Err((m, _)) = self.stack.take_back(now, migration, &mut self.app) {
            // Nobody can hold it: tell the peer rather than leave it hanging.
            self.stack.reset_record(now, &m.conn);
            self.migration.lost += 1;
        }
    }

    /// A message from another core that is not a frame.
    pub(super) fn handle_core_message(&mut self, now: Instant, msg: CoreMessage<P::Frame>) {
        match msg {
            CoreMessage::Frame { .. } => {}
            CoreMessage::Migrate(transfer) => self.adopt(now, *transfer),
            CoreMessage::Adopted { ticket, adopted_at } => {
                if let Some(f) = self.finish(ticket) {
                    let latency = adopted_at.saturating_duration_since(f.frozen_at);
                    self.migration.latency.adopted.record(latency);
                    self.resolve(f, Ok(latency));
                }
            }
            CoreMessage::Returned { transfer, error } => {
                let ticket = transfer.ticket;
                self.take_back(now, *transfer);
                if let Some(f) = self.finish(ticket) {
                    self.resolve(f, Err(error));
                }
            }
            CoreMessage::Address { ip } => self.stack.iface_mut().adopt_address(ip, true),
            CoreMessage::Owner { tuple, owner, from } => {
                self.stack
                    .apply_owner_update(tuple, owner, Owner::Core(from));
            }
        }
    }

    /// The destination's side: adopt, and say so; or send the transfer back.
    fn adopt(&mut self, now: Instant, transfer: Transfer) {
        let Transfer {
            migration,
            frozen_at,
            origin,
            ticket,
        } = transfer;
        let tuple = migration.conn.tuple;
        match self.stack.migrate_in(now, migration, &mut self.app) {
            Ok(id) => {
                self.stack.mark_moved(id, frozen_at);
                let adopted_at = self.stamp(now);
                self.send_control(
                    Owner::Core(origin),
                    CoreMessage::Adopted { ticket, adopted_at },
                );
            }
            Err((m, error)) => {
                // Segments that reach this core meanwhile go back to the origin.
                self.stack
                    .redirect_while_returning(now, tuple, Owner::Core(origin));
                let transfer = Box::new(Transfer {
                    migration: *m,
                    frozen_at,
                    origin,
                    ticket,
                });
                self.send_control(
                    Owner::Core(origin),
                    CoreMessage::Returned { transfer, error },
                );
            }
        }
    }

    fn finish(&mut self, ticket: Ticket) -> Option<InFlight> {
        let i = self
            .migration
            .in_flight
            .iter()
            .position(|f| f.ticket == ticket)?;
        Some(self.migration.in_flight.swap_remove(i))
    }

    /// Records the outcome of a move for the request it belongs to, and answers the
    /// request once its last move ended.
    fn resolve(&mut self, f: InFlight, outcome: Result<Duration, MigrateError>) {
        let from = self.this_core().unwrap_or(0);
        self.resolve_result(
            f.request,
            MoveResult {
                flow: f.flow,
                from,
                to: f.to,
                outcome,
            },
        );
    }

    /// Adds `result` to the request it belongs to, and answers the request once its last
    /// move ended.
    pub(super) fn resolve_result(&mut self, request: Option<usize>, result: MoveResult) {
        let Some(index) = request else { return };
        let from = self.this_core().unwrap_or(0);
        let Some(Some(pending)) = self.migration.requests.get_mut(index) else {
            return;
        };
        pending.results.push(result);
        pending.outstanding = pending.outstanding.saturating_sub(1);
        if pending.outstanding == 0 {
            if let Some(done) = self.migration.requests[index].take() {
                let _ = done.reply.send(Reply::Moves {
                    core: from,
                    results: done.results,
                });
            }
        }
    }

    /// Sends a control message, or keeps it to send again.
    pub(super) fn send_control(&mut self, to: Owner, msg: CoreMessage<P::Frame>) {
        if !self.migration.outbox.is_empty() {
            // Keep the order: behind what waits already.
            self.migration.outbox.push_back((to, msg));
            return;
        }
        if let Err(msg) = self.steer.send(to, msg) {
            self.migration.outbox.push_back((to, msg));
        }
    }

    /// After each poll's transmit: send what waits (kept control messages, owner updates
    /// for home cores), record first-segment latencies, take the operator's requests.
    pub(super) fn after_transmit(&mut self, now: Instant) {
        while let Some((to, msg)) = self.migration.outbox.pop_front() {
            if let Err(msg) = self.steer.send(to, msg) {
                self.migration.outbox.push_front((to, msg));
                break;
            }
        }
        if self.stack.has_owner_updates() {
            for u in self.stack.take_owner_updates() {
                self.send_control(
                    Owner::Core(u.home),
                    CoreMessage::Owner {
                        tuple: u.tuple,
                        owner: u.owner,
                        from: u.from,
                    },
                );
            }
        }
        if self.stack.has_first_sends() {
            let sent_at = self.stamp(now);
            for frozen_at in self.stack.take_first_sends() {
                self.migration
                    .latency
                    .first_segment
                    .record(sent_at.saturating_duration_since(frozen_at));
            }
        }
        if let Some(request) = self.control.as_ref().and_then(|c| c.pop()) {
            self.handle_request(now, request);
        }
    }

    fn handle_request(&mut self, now: Instant, request: Request) {
        let core = self.this_core().unwrap_or(0);
        // The operator's process keeps the time; reading it here is the poll loop's part.
        if request
            .deadline
            .is_some_and(|d| std::time::Instant::now() > d)
        {
            let _ = request.reply.send(Reply::Error {
                core,
                error: CommandError::Expired,
            });
            return;
        }
        let refuse = |reply: Sender<Reply>, error: CommandError| {
            let _ = reply.send(Reply::Error { core, error });
        };
        match request.command {
            Command::Connections => {
                let list = self.connection_infos(core);
                let _ = request.reply.send(Reply::Connections { core, list });
            }
            Command::Migrate {
                which,
                to: Owner::Core(to),
            } => {
                let Some(cores) = self.stack.core_count() else {
                    return refuse(request.reply, CommandError::SingleCore);
                };
                if to >= cores {
                    return refuse(request.reply, CommandError::NoSuchCore(to, cores));
                }
                self.start_moves(now, which, Owner::Core(to), request.reply);
            }
            Command::Migrate {
                which,
                to: Owner::Peer(peer),
            } => {
                if let Err(e) = self.check_peer(peer) {
                    return refuse(request.reply, e);
                }
                self.start_moves(now, which, Owner::Peer(peer), request.reply);
            }
            Command::Drain { to } => {
                if let Err(e) = self.check_peer(to) {
                    return refuse(request.reply, e);
                }
                self.start_drain(to);
                self.start_moves(now, Which::All, Owner::Peer(to), request.reply);
            }
            Command::HandOver { to } => {
                if let Err(e) = self.check_peer(to) {
                    return refuse(request.reply, e);
                }
                let reply = if self.hand_over(now, to) {
                    Reply::Done { core }
                } else {
                    Reply::Error {
                        core,
                        error: CommandError::NoLink(to),
                    }
                };
                let _ = request.reply.send(reply);
            }
        }
    }

    fn check_peer(&self, peer: u16) -> Result<(), CommandError> {
        let Some(peers) = self.peers.as_ref() else {
            return Err(CommandError::NoChannel);
        };
        if peer >= peers.peer_count() {
            return Err(CommandError::NoSuchPeer(peer, peers.peer_count()));
        }
        Ok(())
    }

    /// Starts moving the connections `which` names to `to`, and answers `reply` once
    /// every move ended.
    fn start_moves(&mut self, now: Instant, which: Which, to: Owner, reply: Sender<Reply>) {
        let core = self.this_core().unwrap_or(0);
        let here = Owner::Core(core);
        let is_link = |e: &Self, id: ConnId| e.peers.as_ref().is_some_and(|p| p.is_link(id));
        let mut refused = Vec::new();
        let ids: Vec<ConnId> = match which {
            // The destination itself moves nothing with `All`; links never move.
            Which::All if to == here => Vec::new(),
            Which::All => self
                .stack
                .connection_ids()
                .into_iter()
                .filter(|&id| !is_link(self, id))
                .collect(),
            Which::One(flow) => match self.stack.find_flow(flow) {
                Some(_) if to == here => {
                    refused.push((flow, MigrateError::SameCore));
                    Vec::new()
                }
                Some(id) if is_link(self, id) => Vec::new(),
                Some(id) => vec![id],
                None if self.stack.holds_time_wait(flow) => {
                    refused.push((flow, MigrateError::NotMovable(crate::tcp::State::TimeWait)));
                    Vec::new()
                }
                None => Vec::new(),
            },
        };
        let index = self.migration.requests.len();
        self.migration.requests.push(Some(PendingMoves {
            reply,
            outstanding: 1, // held until every move has started
            results: refused
                .into_iter()
                .inspect(|&(_, error)| self.stack.count_refused(error))
                .map(|(flow, error)| MoveResult {
                    flow,
                    from: core,
                    to,
                    outcome: Err(error),
                })
                .collect(),
        }));
        for id in ids {
            let flow = self
                .stack
                .connection(id)
                .map_or(FlowId(0), |c| FlowId::of(&c.tuple()));
            let started = match to {
                Owner::Core(c) => self.start_move(now, id, c, Some(index)),
                Owner::Peer(p) => self.start_peer_move(now, id, p, Some(index)),
            };
            match started {
                Ok(_) => {
                    if let Some(Some(p)) = self.migration.requests.get_mut(index) {
                        p.outstanding += 1;
                    }
                }
                // Reported like any refusal (with `All`: connections in TIME-WAIT or
                // being reset, applications that refuse).
                Err(error) => {
                    if let Some(Some(p)) = self.migration.requests.get_mut(index) {
                        p.results.push(MoveResult {
                            flow,
                            from: core,
                            to,
                            outcome: Err(error),
                        });
                    }
                }
            }
        }
        // Release the hold; answers at once if nothing is in flight.
        let hold = InFlight {
            ticket: Ticket(0),
            flow: FlowId(0),
            to,
            frozen_at: now,
            request: Some(index),
        };
        self.release_hold(hold);
        // Forget finished request slots at the end of the list.
        while matches!(self.migration.requests.last(), Some(None)) {
            self.migration.requests.pop();
        }
    }

    fn release_hold(&mut self, hold: InFlight) {
        let Some(index) = hold.request else { return };
        let core = self.this_core().unwrap_or(0);
        let Some(Some(pending)) = self.migration.requests.get_mut(index) else {
            return;
        };
        pending.outstanding -= 1;
        if pending.outstanding == 0 {
            if let Some(done) = self.migration.requests[index].take() {
                let _ = done.reply.send(Reply::Moves {
                    core,
                    results: done.results,
                });
            }
        }
    }

    fn connection_infos(&self, core: u16) -> Vec<ConnectionInfo> {
        let time_wait = self
            .stack
            .time_wait_tuples()
            .into_iter()
            .map(|t| ConnectionInfo {
                flow: FlowId::of(&t),
                local: t.local,
                remote: t.remote,
                state: crate::tcp::State::TimeWait,
                core,
                send_queue: 0,
                recv_queue: 0,
                srtt: None,
                cwnd: 0,
                retransmits: 0,
            });
        self.stack
            .connection_ids()
            .into_iter()
            // The channel's links are the engine's own, not the operator's to move.
            .filter(|&id| !self.peers.as_ref().is_some_and(|p| p.is_link(id)))
            .filter_map(|id| {
                let c = self.stack.connection(id)?;
                Some(ConnectionInfo {
                    flow: FlowId::of(&c.tuple()),
                    local: c.local(),
                    remote: c.remote(),
                    state: c.state(),
                    core,
                    send_queue: c.send_queue(),
                    recv_queue: c.recv_queue(),
                    srtt: c.srtt(),
                    cwnd: c.cwnd(),
                    retransmits: c.stats().retransmits,
                })
            })
            .chain(time_wait)
            .collect()
    }
}
