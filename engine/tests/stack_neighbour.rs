//! The neighbour entries the stack sends through, over time: a connection idle for longer
//! than an entry stays reachable sends at once to the address it knows (the entry is stale,
//! not gone), and the peer's segments confirm its entry so that a busy connection never
//! has to check it. Two stacks back to back, frames moved by hand.
mod stack_support;

use engine::iface::{IfaceConfig, NeighbourState, ARP_DELAY_FIRST_PROBE};
use engine::stack::{Ctx, StackConfig};
use engine::time::Duration;
use stack_support::{deliver, flush, ip, seg, Pair, CLIENT, SERVER};

const TTL: Duration = IfaceConfig::DEFAULT_ARP_ENTRY_TTL;

#[test]
fn a_segment_to_a_stale_neighbour_leaves_at_once() {
    let mut p = Pair::new(StackConfig::default());
    let (_, server_conn) = p.connect();
    // Idle past the reachable time, then the server writes.
    p.now += TTL + Duration::from_secs(30);
    assert_eq!(
        p.server.iface().neighbour_state(ip(CLIENT), p.now),
        Some(NeighbourState::Stale)
    );
    let used = p.now;
    Ctx::new(&mut p.server, p.now)
        .send(server_conn, b"late news")
        .expect("send");
    let out = flush(&mut p.server, &mut p.server_app, p.now);
    // No ARP round trip first: the data goes to the address the server knows.
    let data: Vec<_> = out.iter().filter_map(|f| seg(f)).collect();
    assert_eq!(data.len(), 1, "one data segment, sent now");
    assert_eq!(data[0].payload_len, 9);
    assert!(p.server.unresolved(p.now).is_empty());
    assert_eq!(
        p.server.iface().neighbour_state(ip(CLIENT), p.now),
        Some(NeighbourState::Delay),
        "in use: waiting for traffic to confirm it"
    );
    // The client's (delayed) ACK confirms the entry before any probe is due.
    p.now += Duration::from_millis(1);
    deliver(&mut p.client, p.now, &out);
    let mut acks = flush(&mut p.client, &mut p.client_app, p.now);
    p.now += Duration::from_millis(200);
    p.client.handle_timers(p.now);
    acks.extend(flush(&mut p.client, &mut p.client_app, p.now));
    assert_eq!(acks.len(), 1, "the ACK");
    p.now += Duration::from_millis(1);
    deliver(&mut p.server, p.now, &acks);
    assert!(p.now < used + ARP_DELAY_FIRST_PROBE);
    assert_eq!(
        p.server.iface().neighbour_state(ip(CLIENT), p.now),
        Some(NeighbourState::Reachable)
    );
    assert_eq!(p.client_app.received, b"late news");
}

#[test]
fn the_peers_segments_keep_its_entry_reachable() {
    let mut p = Pair::new(StackConfig::default());
    let (client_conn, _) = p.connect();
    // Half a reachable time later the client writes; the server hears it (and the client
    // hears the server's ACK).
    p.now += TTL / 2;
    Ctx::new(&mut p.client, p.now)
        .send(client_conn, b"still here")
        .expect("send");
    p.exchange();
    assert_eq!(p.server_app.received, b"still here");
    // A whole reachable time after the handshake, both entries are still reachable: the
    // segments confirmed them although the addresses did not change.
    p.now += TTL / 2 + Duration::from_secs(1);
    for (stack, peer) in [(&p.server, CLIENT), (&p.client, SERVER)] {
        assert_eq!(
            stack.iface().neighbour_state(ip(peer), p.now),
            Some(NeighbourState::Reachable),
            "entry for host {peer}"
        );
    }
}
