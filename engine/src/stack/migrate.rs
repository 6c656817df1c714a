//! Moving connections out of and into one stack (DESIGN.md §4): [`Stack::migrate_out`]
//! freezes a connection, takes the application's snapshot and leaves a redirect behind;
//! [`Stack::migrate_in`] checks a [`Migration`], installs the connection, gives the
//! application its snapshot and the [`Event::Adopted`] event. Either succeeds whole or
//! changes nothing: a refused migration is handed back to the caller, who returns it to
//! its origin, so a connection always has exactly one owner.
//!
//! With several cores, a flow's home core (the one steering sends its segments to) keeps a
//! redirect to the core that owns the connection: cores tell the home when a connection
//! of its arrives or leaves ([`OwnerUpdate`], drained with [`Stack::take_owner_updates`]).
//! A core that moved a connection away keeps a short-lived redirect of its own, for the
//! segments already on their way to it.
//!
//! May not: send anything (the caller carries migrations and updates), read a clock, or
//! deliver events other than [`Event::Adopted`] (the rest wait for `dispatch`).
use super::{App, ConnId, Ctx, Entry, Event, Stack};
use crate::flow::FourTuple;
use crate::migrate::{FlowId, Migration, Owner, MAX_APP_SNAPSHOT};
use crate::tcp::record::is_movable_state;
use crate::tcp::{Connection, RestoreError, State};
use crate::time::{Duration, Instant};

/// How long a core that moved a connection away hands on the segments that still reach
/// it (the home core learns of the new owner within one poll of each core involved).
pub const REDIRECT_LINGER: Duration = Duration::from_secs(2);

/// Why a connection did not move. The connection is where it was and keeps serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MigrateError {
    #[error("no such connection")]
    NoConnection,
    #[error("a connection in state {0} is not moved (only synchronized connections with a handshake completed move; TIME-WAIT ones stay as records)")]
    NotMovable(State),
    #[error("the connection is being reset")]
    Resetting,
    #[error("the application refused: {0}")]
    Refused(#[from] Refusal),
    #[error("the application's snapshot is larger than {MAX_APP_SNAPSHOT} bytes")]
    SnapshotTooLarge,
    #[error("the connection's 4-tuple is already in use here")]
    Occupied,
    #[error("the connection table is full")]
    TableFull,
    #[error("invalid record: {0}")]
    Invalid(#[from] RestoreError),
    #[error("the destination is this core")]
    SameCore,
    #[error("the destination's queue is full (busy)")]
    DestinationBusy,
    #[error("no channel link to the peer is up")]
    PeerUnavailable,
    #[error("the peer refused the connection (no room, already held there, or a record it would not take)")]
    PeerRefused,
    #[error("the peer did not answer in time")]
    PeerTimeout,
    #[error("the peer went away during the move")]
    PeerLost,
    #[error("the record does not decode")]
    BadRecord,
}

impl MigrateError {
    /// A short stable name, for counters and scripts.
    pub fn name(self) -> &'static str {
        match self {
            MigrateError::NoConnection => "no_connection",
            MigrateError::NotMovable(_) => "not_movable",
            MigrateError::Resetting => "resetting",
            MigrateError::Refused(_) => "app_refused",
            MigrateError::SnapshotTooLarge => "snapshot_too_large",
            MigrateError::Occupied => "occupied",
            MigrateError::TableFull => "table_full",
            MigrateError::Invalid(_) => "invalid_record",
            MigrateError::SameCore => "same_core",
            MigrateError::DestinationBusy => "destination_busy",
            MigrateError::PeerUnavailable => "peer_unavailable",
            MigrateError::PeerRefused => "peer_refused",
            MigrateError::PeerTimeout => "peer_timeout",
            MigrateError::PeerLost => "peer_lost",
            MigrateError::BadRecord => "bad_record",
        }
    }
}

/// Why an application will not move one of its connections (export), or take one in
/// (import). The connection stays where it was, untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this application does not move connections")]
    Unsupported,
    #[error("{0}")]
    NotNow(&'static str),
    #[error("the snapshot is not one this application wrote")]
    BadSnapshot,
}

/// A core tells a flow's home core who owns the flow now (`None`: nobody here any more).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnerUpdate {
    pub home: u16,
    pub from: u16,
    pub tuple: FourTuple,
    pub owner: Option<Owner>,
}

/// What a stack counted about migrations. Names are stable: scripts read them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MigrationCounters {
    pub out: u64,
    pub in_: u64,
    /// Refused at the origin (state, application), by [`MigrateError::name`].
    pub refused_not_movable: u64,
    pub refused_app: u64,
    pub refused_other: u64,
    /// Failed at the destination (invalid record, table, application import).
    pub failed_invalid: u64,
    pub failed_table: u64,
    pub failed_app: u64,
    /// Segments handed on to a connection's new owner through a redirect.
    pub redirected: u64,
    /// Owner updates applied at this (home) core.
    pub owner_updates: u64,
    /// Connections moved out and then installed here again because the destination did
    /// not take them (refused, timed out, gone): not counted in `out` (nor `in_`).
    pub taken_back: u64,
}

impl MigrationCounters {
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> {
        let MigrationCounters {
            out,
            in_,
            refused_not_movable,
            refused_app,
            refused_other,
            failed_invalid,
            failed_table,
            failed_app,
            redirected,
            owner_updates,
            taken_back,
        } = *self;
        [
            ("migrations_out", out),
            ("migrations_in", in_),
            ("migrations_refused_not_movable", refused_not_movable),
            ("migrations_refused_app", refused_app),
            ("migrations_refused_other", refused_other),
            ("migrations_failed_invalid", failed_invalid),
            ("migrations_failed_table", failed_table),
            ("migrations_failed_app", failed_app),
            ("migrations_redirected_segments", redirected),
            ("migrations_owner_updates", owner_updates),
            ("migrations_taken_back", taken_back),
        ]
        .into_iter()
    }

    fn refused(&mut self, e: MigrateError) {
        match e {
            MigrateError::NotMovable(_) => self.refused_not_movable += 1,
            MigrateError::Refused(_) | MigrateError::SnapshotTooLarge => self.refused_app += 1,
            _ => self.refused_other += 1,
        }
    }

    fn failed(&mut self, e: MigrateError) {
        match e {
            MigrateError::Refused(_) | MigrateError::SnapshotTooLarge => self.failed_app += 1,
            MigrateError::Occupied | MigrateError::TableFull => self.failed_table += 1,
            _ => self.failed_invalid += 1,
        }
    }
}

impl Stack {
    /// Whether `id` may move now, without touching it.
    pub fn check_movable(&self, id: ConnId) -> Result<(), MigrateError> {
        let conn = self.conn(id).ok_or(MigrateError::NoConnection)?;
        if conn.has_pending_reset() {
            return Err(MigrateError::Resetting);
        }
        if !is_movable_state(conn.state()) || conn.state() == State::TimeWait {
            return Err(MigrateError::NotMovable(conn.state()));
        }
        Ok(())
    }

    /// Moves connection `id` out to `to`: checks that it may move, asks the application
    /// for its snapshot ([`App::export`]; the application forgets the connection when it
    /// agrees), captures the connection and removes it, leaving a redirect to `to` for the
    /// segments that still arrive. On error nothing changed and the connection keeps
    /// serving here.
    pub fn migrate_out<A: App + ?Sized>(
        &mut self,
        now: Instant,
        id: ConnId,
        to: Owner,
        app: &mut A,
    ) -> Result<Migration, MigrateError> {
        let result = self.migrate_out_inner(now, id, to, app);
        match result {
            Ok(_) => self.migration.out += 1,
            Err(e) => self.migration.refused(e),
        }
        result
    }

    fn migrate_out_inner<A: App + ?Sized>(
        &mut self,
        now: Instant,
        id: ConnId,
        to: Owner,
        app: &mut A,
    ) -> Result<Migration, MigrateError> {
        if self.core() == Some(to) {
            return Err(MigrateError::SameCore);
        }
        self.check_movable(id)?;
        let mut snapshot = Vec::new();
        {
            let mut cx = Ctx { stack: self, now };
            app.export(&mut cx, id, &mut snapshot)?;
        }
        if snapshot.len() > MAX_APP_SNAPSHOT {
            // The application already let go: it takes its own snapshot back.
            let mut cx = Ctx { stack: self, now };
            let _ = app.import(&mut cx, id, &snapshot);
            return Err(MigrateError::SnapshotTooLarge);
        }
        // Nothing can fail from here on.
        let Some(entry) = self.slab.remove(id) else {
            return Err(MigrateError::NoConnection);
        };
        if let Some(h) = entry.timer {
            self.timers.cancel(h);
        }
        let tuple = entry.conn.tuple();
        // The home keeps a redirect for as long as the connection lives elsewhere; any
        // other core only for the segments already on their way.
        let expiry = (!self.is_home(&tuple)).then_some(now + REDIRECT_LINGER);
        self.table.connection_to_redirect(&tuple, to, expiry);
        if matches!(to, Owner::Peer(_)) {
            // The home hands the flow's segments to the peer from now on (a core's own
            // moves are announced by the destination core).
            self.note_owner(tuple, Some(to));
        }
        let neighbour =
            super::egress::next_hop(&self.iface, self.config.gateway, tuple.remote_ip())
                .and_then(|hop| self.iface.arp_lookup(hop, now));
        Ok(Migration {
            flow: FlowId::of(&tuple),
            listener_port: entry.listener_port(),
            neighbour,
            conn: entry.conn.capture(now),
            app: snapshot,
        })
    }

    /// Installs again the connection of `m`, which [`Stack::migrate_out`] moved out of
    /// here and its destination did not take: as [`Stack::migrate_in`], but counted as
    /// taken back, and no longer as moved out.
    pub fn take_back<A: App + ?Sized>(
        &mut self,
        now: Instant,
        m: Migration,
        app: &mut A,
    ) -> Result<ConnId, (Box<Migration>, MigrateError)> {
        let result = self.migrate_in(now, m, app);
        if result.is_ok() {
            let c = &mut self.migration;
            c.in_ = c.in_.saturating_sub(1);
            c.out = c.out.saturating_sub(1);
            c.taken_back += 1;
        }
        result
    }

    /// Installs the connection of `m` here and hands its snapshot to the application
    /// ([`App::import`]), then tells it with [`Event::Adopted`]. On error nothing changed
    /// here and the migration comes back with the reason, for its origin to take back.
    pub fn migrate_in<A: App + ?Sized>(
        &mut self,
        now: Instant,
        m: Migration,
        app: &mut A,
    ) -> Result<ConnId, (Box<Migration>, MigrateError)> {
        match self.migrate_in_inner(now, &m, app) {
            Ok(id) => {
                self.migration.in_ += 1;
                Ok(id)
            }
            Err(e) => {
                self.migration.failed(e);
                Err((Box::new(m), e))
            }
        }
    }

    fn migrate_in_inner<A: App + ?Sized>(
        &mut self,
        now: Instant,
        m: &Migration,
        app: &mut A,
    ) -> Result<ConnId, MigrateError> {
        if m.app.len() > MAX_APP_SNAPSHOT {
            return Err(MigrateError::SnapshotTooLarge);
        }
        let conn = Connection::restore(&m.conn, now)?;
        let tuple = conn.tuple();
        // The redirect (if any) gives way to the connection; it is put back if the
        // application refuses.
        let id = self.slab.insert(Entry::new(conn, m.listener_port));
        self.flow_cache.grown_to(self.slab.len());
        let redirect = match self.table.replace_redirect(tuple, id) {
            Ok(r) => r,
            Err(refused) => {
                self.slab.remove(id);
                return Err(match refused.error {
                    crate::table::TableError::Full { .. } => MigrateError::TableFull,
                    _ => MigrateError::Occupied,
                });
            }
        };
        let imported = {
            let mut cx = Ctx { stack: self, now };
            app.import(&mut cx, id, &m.app)
        };
        if let Err(refusal) = imported {
            // Undone without a trace: the connection never sent anything here.
            self.slab.remove(id);
            self.table.remove_connection(&tuple);
            if let Some(r) = redirect {
                let _ = self.table.insert_redirect(tuple, r.owner, r.expiry);
            }
            return Err(MigrateError::Refused(refusal));
        }
        if let Some(mac) = m.neighbour {
            if let Some(hop) =
                super::egress::next_hop(&self.iface, self.config.gateway, tuple.remote_ip())
            {
                if self.iface.arp_lookup(hop, now).is_none() {
                    self.iface.learn_neighbour(hop, mac, now);
                }
            }
        }
        if let Some(core) = self.core() {
            self.note_owner(tuple, Some(core));
        }
        self.touch(id);
        let mut cx = Ctx { stack: self, now };
        app.on_event(
            &mut cx,
            id,
            Event::Adopted {
                local_port: m.listener_port,
            },
        );
        Ok(id)
    }

    /// Counts a migration that failed here, the destination, before reaching the stack
    /// (a record that does not decode).
    pub fn count_failed(&mut self, e: MigrateError) {
        self.migration.failed(e);
    }

    /// After a drain: hands segments of every flow this core does not hold to `to` (new
    /// connections included), but those to the local ports in `except` (the channel's
    /// own). `None` stops it.
    pub fn set_forward_unknown(&mut self, to: Option<Owner>, except: Vec<u16>) {
        self.forward_unknown = to.map(|o| (o, except));
    }

    /// Where segments of unknown flows go, after a drain.
    pub fn forwards_unknown_to(&self) -> Option<Owner> {
        self.forward_unknown.as_ref().map(|(o, _)| *o)
    }

    /// Whether this core holds anything for `tuple`: the connection, its TIME-WAIT
    /// record, or a redirect to where it lives.
    pub fn holds_tuple(&self, tuple: &FourTuple) -> bool {
        !matches!(
            self.table.lookup(tuple),
            crate::table::Lookup::NotFound | crate::table::Lookup::Listener { .. }
        )
    }

    /// The peer engine `peer` said the connection of `tuple` (moved there from here)
    /// ended: its redirect goes, here and at the home core.
    pub fn end_peer_redirect(&mut self, tuple: FourTuple, peer: u16) {
        if self
            .table
            .redirect(&tuple)
            .is_some_and(|r| r.owner == Owner::Peer(peer))
        {
            self.table.remove_redirect(&tuple);
        }
        self.note_released(tuple);
    }

    /// Applies an owner update from another core to this (home) core's redirects.
    pub fn apply_owner_update(&mut self, tuple: FourTuple, owner: Option<Owner>, from: Owner) {
        self.migration.owner_updates += 1;
        match owner {
            Some(o) if Some(o) == self.core() => {
                // It came back here: the connection itself answers (migrate_in removed the
                // redirect already).
            }
            Some(o) => {
                let _ = self.table.insert_redirect(tuple, o, None);
            }
            None => {
                // Only the owner it names may withdraw a redirect: a newer one stays. A
                // redirect to a peer engine is withdrawn by the core that moved the flow
                // there, once the peer said the connection ended.
                if self
                    .table
                    .redirect(&tuple)
                    .is_some_and(|r| r.owner == from || matches!(r.owner, Owner::Peer(_)))
                {
                    self.table.remove_redirect(&tuple);
                }
            }
        }
    }

    /// The owner updates to send to home cores since the last call.
    pub fn take_owner_updates(&mut self) -> Vec<OwnerUpdate> {
        core::mem::take(&mut self.owner_updates)
    }

    /// Whether owner updates wait to be sent.
    pub fn has_owner_updates(&self) -> bool {
        !self.owner_updates.is_empty()
    }

    /// Counts a move refused before it reached [`Stack::migrate_out`] (a TIME-WAIT record
    /// named by the operator, a move to the core the connection is on).
    pub fn count_refused(&mut self, e: MigrateError) {
        self.migration.refused(e);
    }

    /// The migration counters.
    pub fn migration_counters(&self) -> MigrationCounters {
        self.migration
    }

    /// Remembers that `id` moved here, frozen at `frozen_at`: the first segment it sends
    /// is reported by [`Stack::take_first_sends`] (the move's latency as the peer sees it).
    pub fn mark_moved(&mut self, id: ConnId, frozen_at: Instant) {
        if let Some(e) = self.slab.get_mut(id) {
            e.moved_at = Some(frozen_at);
        }
    }

    /// Whether moved connections sent their first segments since the last call.
    pub fn has_first_sends(&self) -> bool {
        !self.first_sends.is_empty()
    }

    /// When the connections that sent their first segment after a move were frozen.
    pub fn take_first_sends(&mut self) -> Vec<Instant> {
        core::mem::take(&mut self.first_sends)
    }

    /// A destination refused `tuple`'s connection and sends it back to `origin`: the
    /// segments that reach it meanwhile follow it there.
    pub fn redirect_while_returning(&mut self, now: Instant, tuple: FourTuple, origin: Owner) {
        if matches!(
            self.table.lookup(&tuple),
            crate::table::Lookup::NotFound
                | crate::table::Lookup::Listener { .. }
                | crate::table::Lookup::Redirect(_)
        ) {
            let expiry = (!self.is_home(&tuple)).then_some(now + REDIRECT_LINGER);
            let _ = self.table.insert_redirect(tuple, origin, expiry);
        }
    }

    /// The last resort for a connection no core could take: its peer gets a RST now
    /// rather than silence.
    pub fn reset_record(&mut self, now: Instant, record: &crate::tcp::ConnectionRecord) {
        if let Ok(mut conn) = Connection::restore(record, now) {
            conn.abort();
            if let Some(reply) = super::egress::conn_reset(&conn) {
                self.queue_reply(reply);
            }
        }
        self.note_released(record.tuple);
    }

    /// The number of cores of the engine, when there are several.
    pub fn core_count(&self) -> Option<u16> {
        self.owner.map(|(steer, _)| steer.cores())
    }

    /// A connection, read-only.
    pub fn connection(&self, id: ConnId) -> Option<&Connection> {
        self.conn(id)
    }

    /// The id of the live connection `flow`, if it is here.
    pub fn find_flow(&self, flow: FlowId) -> Option<ConnId> {
        self.slab
            .iter()
            .find(|(_, e)| FlowId::of(&e.conn.tuple()) == flow)
            .map(|(id, _)| id)
    }

    /// The 4-tuples of the TIME-WAIT records here (connections that ended and wait out
    /// 2 MSL as records: they do not move).
    pub fn time_wait_tuples(&self) -> Vec<FourTuple> {
        self.table.time_waits().map(|(t, _)| *t).collect()
    }

    /// Whether `flow` is a TIME-WAIT record here.
    pub fn holds_time_wait(&self, flow: FlowId) -> bool {
        self.table.time_waits().any(|(t, _)| FlowId::of(t) == flow)
    }

    /// The ids of every connection here (any state).
    pub fn connection_ids(&self) -> Vec<ConnId> {
        self.slab.ids()
    }

    /// This core, when the stack is one of several.
    pub fn this_core(&self) -> Option<Owner> {
        self.core()
    }

    fn core(&self) -> Option<Owner> {
        self.owner.map(|(_, core)| Owner::Core(core))
    }

    /// Whether steering sends `tuple`'s segments to this core first (always, alone).
    pub(super) fn is_home(&self, tuple: &FourTuple) -> bool {
        self.owns(tuple)
    }

    /// Queues an owner update for `tuple`'s home core, if that is another core.
    pub(super) fn note_owner(&mut self, tuple: FourTuple, owner: Option<Owner>) {
        if let Some((steer, core)) = self.owner {
            let home = steer.home(&tuple);
            if home != core {
                self.owner_updates.push(OwnerUpdate {
                    home,
                    from: core,
                    tuple,
                    owner,
                });
            }
        }
    }

    /// `tuple` no longer has anything here (closed, or its TIME-WAIT record ended): the
    /// home core's redirect to this core can go.
    pub(super) fn note_released(&mut self, tuple: FourTuple) {
        if !self.is_home(&tuple) {
            self.note_owner(tuple, None);
        }
    }
}
