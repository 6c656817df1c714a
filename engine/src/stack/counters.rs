//! What one stack counts and reports: [`TcpCounters`] (TCP-level events, with stable
//! names that scripts read), the listeners' figures, and connections by state.
//!
//! Owns the counter types and the reporting views over the stack. May not: change any
//! state (reporting is read-only).
use super::Stack;
use crate::table::EntryKind;
use crate::tcp::{Connection, ConnectionStats, State};

/// What one core's connections take in memory ([`Stack::memory`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryUse {
    /// Connections held (any state; half-open ones live in the listeners).
    pub connections: usize,
    /// Control state: the connection slots (the TCP state and the stack's bookkeeping),
    /// the table's entries, the flow cache and the timers.
    pub state_bytes: usize,
    /// Send and receive buffers and out-of-order ranges.
    pub buffer_bytes: usize,
    /// Released buffer storage kept by this thread (the core) for the next connection that
    /// needs some, at most [`crate::tcp::SPARE_RINGS`] rings.
    pub spare_buffer_bytes: usize,
}

/// TCP-level counters of one core. Names are stable: scripts read them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpCounters {
    pub segments_in: u64,
    pub segments_out: u64,
    pub resets_sent_no_connection: u64,
    pub accepted: u64,
    pub opened: u64,
    pub closed: u64,
    pub errors: u64,
    pub table_full: u64,
    pub no_buffers: u64,
    pub no_route: u64,
    /// SYNs dropped because buffers ran low.
    pub syn_dropped_low_buffers: u64,
    /// Sums over closed connections (live ones are added when reporting).
    pub retransmits: u64,
    pub fast_recoveries: u64,
    pub rto_expiries: u64,
    pub sack_retransmits: u64,
    /// Tail loss probes sent (RFC 8985 §7).
    pub loss_probes: u64,
    /// Segments of no connection here to an address held for another engine's moved
    /// connections: dropped, not reset.
    pub segments_to_held_address: u64,
    /// Segments whose connection the flow cache knew (no table lookup).
    pub flow_cache_hits: u64,
    /// RSTs to connections in TIME-WAIT (whole or as records), ignored (RFC 1337).
    pub time_wait_rsts_ignored: u64,
}

impl TcpCounters {
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> {
        let TcpCounters {
            segments_in,
            segments_out,
            resets_sent_no_connection,
            accepted,
            opened,
            closed,
            errors,
            table_full,
            no_buffers,
            no_route,
            syn_dropped_low_buffers,
            retransmits,
            fast_recoveries,
            rto_expiries,
            sack_retransmits,
            loss_probes,
            segments_to_held_address,
            flow_cache_hits,
            time_wait_rsts_ignored,
        } = *self;
        [
            ("tcp_segments_in", segments_in),
            ("tcp_segments_out", segments_out),
            ("tcp_resets_sent_no_connection", resets_sent_no_connection),
            ("tcp_accepted", accepted),
            ("tcp_opened", opened),
            ("tcp_closed", closed),
            ("tcp_errors", errors),
            ("tcp_drop_table_full", table_full),
            ("tcp_no_buffers", no_buffers),
            ("tcp_no_route", no_route),
            ("tcp_syn_dropped_low_buffers", syn_dropped_low_buffers),
            ("tcp_retransmits", retransmits),
            ("tcp_fast_recoveries", fast_recoveries),
            ("tcp_rto_expiries", rto_expiries),
            ("tcp_sack_retransmits", sack_retransmits),
            ("tcp_loss_probes", loss_probes),
            ("tcp_segments_to_held_address", segments_to_held_address),
            ("tcp_flow_cache_hits", flow_cache_hits),
            ("tcp_time_wait_rsts_ignored", time_wait_rsts_ignored),
        ]
        .into_iter()
    }

    pub(super) fn add_connection(&mut self, c: &Connection) {
        self.add_stats(&c.stats());
    }

    /// Adds a connection's retransmission figures.
    pub(super) fn add_stats(&mut self, s: &ConnectionStats) {
        self.retransmits += u64::from(s.retransmits);
        self.fast_recoveries += u64::from(s.fast_recoveries);
        self.rto_expiries += u64::from(s.timeouts);
        self.sack_retransmits += u64::from(s.sack_retransmits);
        self.loss_probes += u64::from(s.loss_probes);
    }

    /// Takes back what [`TcpCounters::add_stats`] added for `s`.
    pub(super) fn remove_stats(&mut self, s: &ConnectionStats) {
        self.retransmits = self.retransmits.saturating_sub(u64::from(s.retransmits));
        self.fast_recoveries = self
            .fast_recoveries
            .saturating_sub(u64::from(s.fast_recoveries));
        self.rto_expiries = self.rto_expiries.saturating_sub(u64::from(s.timeouts));
        self.sack_retransmits = self
            .sack_retransmits
            .saturating_sub(u64::from(s.sack_retransmits));
        self.loss_probes = self.loss_probes.saturating_sub(u64::from(s.loss_probes));
    }

    /// Adds the retransmission figures of `live` (the slab's running sums).
    fn add_figures(&mut self, live: &TcpCounters) {
        self.retransmits += live.retransmits;
        self.fast_recoveries += live.fast_recoveries;
        self.rto_expiries += live.rto_expiries;
        self.sack_retransmits += live.sack_retransmits;
        self.loss_probes += live.loss_probes;
    }
}

impl Stack {
    /// TCP counters, with the retransmission figures of live connections included.
    /// (Live connections as counted when each last sent or was touched: no walk.)
    pub fn tcp_counters(&self) -> TcpCounters {
        let mut c = self.tcp;
        c.add_figures(self.slab.live_figures());
        c
    }

    /// The listeners' counters, summed, as named figures.
    pub fn listener_figures(&self) -> [(&'static str, u64); 7] {
        let mut t = self.retired_listeners;
        for l in &self.listeners {
            t.add(&l.stats());
        }
        [
            ("listen_syns", t.syns),
            ("listen_cookies_sent", t.cookies_sent),
            ("listen_cookies_accepted", t.cookies_accepted),
            ("listen_cookies_rejected", t.cookies_rejected),
            ("listen_syns_dropped", t.syns_dropped),
            ("listen_resets_sent", t.resets_sent),
            ("listen_handshake_timeouts", t.handshake_timeouts),
        ]
    }

    /// Connections held, by state (listeners' half-open ones excluded), as counted when
    /// each last sent or was touched: no walk over the connections.
    pub fn connections_by_state(&self) -> Vec<(State, usize)> {
        let mut out: Vec<(State, usize)> = State::ALL
            .iter()
            .map(|&s| (s, self.slab.count_in(s)))
            .filter(|&(_, n)| n > 0)
            .collect();
        let time_wait = self.time_wait_count();
        if time_wait > 0 {
            match out.iter_mut().find(|(s, _)| *s == State::TimeWait) {
                Some((_, n)) => *n += time_wait,
                None => out.push((State::TimeWait, time_wait)),
            }
        }
        out
    }

    /// Compact TIME-WAIT records held (connections in TIME-WAIT that were dropped).
    pub fn time_wait_count(&self) -> usize {
        self.table.len(EntryKind::TimeWait)
    }

    /// Connections held (any state).
    pub fn connection_count(&self) -> usize {
        self.slab.len()
    }

    /// What the connections of this core take in memory, as allocated (a table sized for
    /// more than it holds counts in full); buffers as counted when each connection last
    /// sent or was touched. No walk over the connections.
    pub fn memory(&self) -> MemoryUse {
        MemoryUse {
            connections: self.slab.len(),
            state_bytes: self.slab.allocation_bytes()
                + self.table.connection_bytes()
                + self.flow_cache.bytes()
                + self.timers.allocation_bytes(),
            buffer_bytes: self.slab.buffer_bytes(),
            spare_buffer_bytes: crate::tcp::spare_ring_bytes(),
        }
    }

    /// Half-open connections held by listeners.
    pub fn half_open_count(&self) -> usize {
        self.listeners
            .iter()
            .map(|l| l.half_open() + l.pending_accept())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_names_are_unique_and_prefixed() {
        let c = TcpCounters {
            segments_in: 1,
            sack_retransmits: 15,
            ..TcpCounters::default()
        };
        let names: Vec<&str> = c.iter().map(|(n, _)| n).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "duplicate names: {names:?}");
        assert!(names.iter().all(|n| n.starts_with("tcp_")));
        assert_eq!(c.iter().next(), Some(("tcp_segments_in", 1)));
        assert_eq!(c.iter().last(), Some(("tcp_time_wait_rsts_ignored", 0)));
    }
}
