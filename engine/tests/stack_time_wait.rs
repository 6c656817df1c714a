//! TIME-WAIT in the stack: the connection is replaced by a compact record once it reaches
//! TIME-WAIT, and the record answers its 4-tuple (RFC 9293 §3.10.7.4, RFC 5961, RFC 6191)
//! until 2 MSL have passed. Two stacks back to back, frames moved and crafted by hand.
mod stack_support;

use std::net::SocketAddrV4;

use engine::stack::{ConnId, Ctx, Event, StackConfig};
use engine::tcp::{SeqNumber, State};
use engine::time::Duration;
use engine::wire::tcp::{Control, TcpRepr};
use stack_support::{deliver, flush, seg, segment_frame, Pair, Seg};

const MSL2: Duration = Duration::from_secs(60);

/// The client closes first and ends in TIME-WAIT; the server (LAST-ACK) closes when the
/// client does. Returns the pair, the client's 4-tuple ends and the server's FIN frame.
fn client_in_time_wait() -> (Pair, ConnId, SocketAddrV4, Vec<u8>) {
    let mut p = Pair::new(StackConfig::default());
    let (client, _) = p.connect();
    let local = p
        .last(true, |_| true)
        .map(|(s, _)| s.src)
        .expect("client sent something");
    p.now += Duration::from_millis(5);
    Ctx::new(&mut p.client, p.now).close(client).expect("close");
    p.exchange();
    let (_, fin) = p
        .last(false, |s| s.control == Control::Fin)
        .expect("server FIN");
    (p, client, local, fin)
}

#[test]
fn the_active_closer_keeps_a_record_not_the_connection() {
    let (p, client, _, _) = client_in_time_wait();
    assert_eq!(p.client.connection_count(), 0, "the connection is gone");
    assert_eq!(p.client.time_wait_count(), 1, "a record holds the 4-tuple");
    assert_eq!(p.client.connections_by_state(), vec![(State::TimeWait, 1)]);
    assert_eq!(
        p.client_app.closed(client),
        Some(Event::Closed { error: None }),
        "the application is told at once, not after 2 MSL"
    );
    assert_eq!(p.server.connection_count(), 0, "LAST-ACK got its ACK");
    assert_eq!(p.server.time_wait_count(), 0);
    // The stack wakes up for the record's expiry: 2 MSL after it entered TIME-WAIT.
    assert_eq!(p.client.poll_timeout(), Some(p.now + MSL2));
}

#[test]
fn a_retransmitted_fin_gets_an_ack_and_restarts_2msl() {
    let (mut p, _, local, fin) = client_in_time_wait();
    let entered = p.now;
    p.now += Duration::from_secs(10);
    deliver(&mut p.client, p.now, std::slice::from_ref(&fin));
    let out = flush(&mut p.client, &mut p.client_app, p.now);
    assert_eq!(out.len(), 1, "one ACK");
    let fin = seg(&fin).expect("FIN");
    let ack = seg(&out[0]).expect("ACK");
    assert!(ack.is_bare_ack());
    assert_eq!(ack.src, local);
    assert_eq!(ack.ack, Some(fin.end()), "acknowledges the FIN");
    assert_eq!(Some(ack.seq), fin.ack, "at SND.NXT, after our FIN");
    let (tsval, tsecr) = ack.timestamp.expect("timestamps in use");
    assert_eq!(
        tsecr,
        fin.timestamp.expect("TS").0,
        "echoes the FIN's TSval"
    );
    assert!(
        tsval >= fin.timestamp.expect("TS").1 + 10_000,
        "our clock went on"
    );
    let restarted = p.now + MSL2;
    // The old expiry passes (the stack may wake up for it: its deadline is a lower
    // bound): the record stays, and the next deadline is the restarted one.
    p.now = entered + MSL2;
    p.client.handle_timers(p.now);
    assert_eq!(p.client.time_wait_count(), 1, "restarted");
    assert_eq!(p.client.poll_timeout(), Some(restarted));
    p.client.handle_timers(restarted);
    assert_eq!(p.client.time_wait_count(), 0);
}

#[test]
fn no_rst_removes_the_record() {
    // RFC 1337 F1. The case met in practice: a stale segment of the peer's (here an old
    // ACK from before its FIN, as a reordering path delivers it) draws our ACK; the
    // peer, already closed, answers that with a RST exactly at RCV.NXT.
    let (mut p, _, local, fin_frame) = client_in_time_wait();
    let fin = seg(&fin_frame).expect("FIN");
    let server = Pair::server_addr();
    let frame = |control: Control, seq: SeqNumber, ack: Option<SeqNumber>| {
        segment_frame(
            server,
            local,
            &TcpRepr {
                src_port: server.port(),
                dst_port: local.port(),
                control,
                seq_number: seq,
                ack_number: ack,
                timestamp: fin.timestamp,
                window_len: 1000,
                ..TcpRepr::default()
            },
        )
    };
    let before = p.client.tcp_counters().time_wait_rsts_ignored;
    deliver(
        &mut p.client,
        p.now,
        &[frame(Control::None, fin.seq - 1, fin.ack)],
    );
    let out = flush(&mut p.client, &mut p.client_app, p.now);
    assert_eq!(
        out.len(),
        1,
        "a stale segment gets an ACK (RFC 9293 §3.10.7.4)"
    );
    assert!(seg(&out[0]).expect("ACK").is_bare_ack());
    for (seq, what) in [
        (fin.end(), "at RCV.NXT"),
        (fin.end() + 100, "in the window"),
        (fin.seq - 1000, "before the window"),
    ] {
        deliver(&mut p.client, p.now, &[frame(Control::Rst, seq, None)]);
        assert!(
            flush(&mut p.client, &mut p.client_app, p.now).is_empty(),
            "{what}: no answer (a challenge ACK would draw another RST)"
        );
        assert_eq!(p.client.time_wait_count(), 1, "{what}: the record stays");
    }
    assert_eq!(p.client.tcp_counters().time_wait_rsts_ignored, before + 3);
    // Still guarding the 4-tuple: the peer's FIN, retransmitted, is acknowledged.
    deliver(&mut p.client, p.now, &[fin_frame]);
    let out = flush(&mut p.client, &mut p.client_app, p.now);
    assert_eq!(out.len(), 1);
    assert_eq!(seg(&out[0]).expect("ACK").ack, Some(fin.end()));
}

#[test]
fn other_segments_get_an_ack_bare_acks_do_not() {
    let (mut p, _, local, fin) = client_in_time_wait();
    let fin = seg(&fin).expect("FIN");
    let server = Pair::server_addr();
    let ts = fin.timestamp.expect("TS").0 + 1;
    let segment = |payload: &'static [u8], seq: SeqNumber| {
        segment_frame(
            server,
            local,
            &TcpRepr {
                src_port: server.port(),
                dst_port: local.port(),
                seq_number: seq,
                ack_number: fin.ack,
                window_len: 1000,
                timestamp: Some((ts, 0)),
                payload,
                ..TcpRepr::default()
            },
        )
    };
    // A bare ACK at RCV.NXT: nothing to say (two TIME-WAIT ends would ping-pong).
    deliver(&mut p.client, p.now, &[segment(b"", fin.end())]);
    assert!(flush(&mut p.client, &mut p.client_app, p.now).is_empty());
    // Data after the FIN: acknowledged (not accepted).
    deliver(&mut p.client, p.now, &[segment(b"late", fin.end())]);
    let out = flush(&mut p.client, &mut p.client_app, p.now);
    assert_eq!(out.len(), 1);
    let ack = seg(&out[0]).expect("ACK");
    assert!(ack.is_bare_ack());
    assert_eq!(ack.ack, Some(fin.end()), "RCV.NXT did not move");
    // An old duplicate, out of the window: acknowledged too.
    deliver(&mut p.client, p.now, &[segment(b"old", fin.seq - 3)]);
    assert_eq!(flush(&mut p.client, &mut p.client_app, p.now).len(), 1);
    assert_eq!(p.client.time_wait_count(), 1);
    assert_eq!(
        p.client_app.received, b"",
        "no data reached the application"
    );
}

#[test]
fn records_expire_after_2msl() {
    let (mut p, _, local, fin) = client_in_time_wait();
    let expiry = p.client.poll_timeout().expect("expiry");
    p.client.handle_timers(expiry - Duration::from_millis(1));
    assert_eq!(p.client.time_wait_count(), 1);
    p.now = expiry;
    p.client.handle_timers(p.now);
    assert_eq!(p.client.time_wait_count(), 0);
    assert_eq!(p.client.poll_timeout(), None);
    // The 4-tuple is now unknown: a late FIN gets a RST.
    deliver(&mut p.client, p.now, &[fin]);
    let out = flush(&mut p.client, &mut p.client_app, p.now);
    let rst = seg(&out[0]).expect("RST");
    assert_eq!((rst.control, rst.dst), (Control::Rst, Pair::server_addr()));
    assert_eq!(rst.src, local);
}

/// The server closes first and keeps the record; the client's port is then reused.
fn server_in_time_wait() -> (Pair, SocketAddrV4, Seg) {
    let mut p = Pair::new(StackConfig::default());
    let (_, server) = p.connect();
    let client = p.last(true, |_| true).map(|(s, _)| s.src).expect("client");
    p.now += Duration::from_millis(5);
    Ctx::new(&mut p.server, p.now).close(server).expect("close");
    p.exchange();
    assert_eq!(p.server.time_wait_count(), 1);
    assert_eq!(p.server.connection_count(), 0);
    let (fin, _) = p
        .last(true, |s| s.control == Control::Fin)
        .expect("client FIN");
    (p, client, fin)
}

fn syn(from: SocketAddrV4, seq: SeqNumber, tsval: Option<u32>) -> Vec<u8> {
    let server = Pair::server_addr();
    segment_frame(
        from,
        server,
        &TcpRepr {
            src_port: from.port(),
            dst_port: server.port(),
            control: Control::Syn,
            seq_number: seq,
            window_len: 65_535,
            max_seg_size: Some(1460),
            sack_permitted: true,
            window_scale: Some(7),
            timestamp: tsval.map(|v| (v, 0)),
            ..TcpRepr::default()
        },
    )
}

#[test]
fn a_newer_syn_reopens_through_the_listener() {
    let (mut p, client, fin) = server_in_time_wait();
    p.now += Duration::from_secs(1);
    let recent = fin.timestamp.expect("TS").0;
    // RFC 6191: a higher timestamp makes the SYN acceptable even with an old sequence.
    deliver(
        &mut p.server,
        p.now,
        &[syn(client, fin.seq - 5, Some(recent + 1))],
    );
    assert_eq!(p.server.time_wait_count(), 0, "the record made way");
    let out = flush(&mut p.server, &mut p.server_app, p.now);
    assert_eq!(out.len(), 1);
    let syn_ack = seg(&out[0]).expect("SYN-ACK");
    assert_eq!(syn_ack.control, Control::Syn);
    assert_eq!(syn_ack.ack, Some(fin.seq - 4));
    assert_eq!(syn_ack.dst, client);
    // The handshake completes: a new connection on the old 4-tuple.
    let ack = segment_frame(
        client,
        Pair::server_addr(),
        &TcpRepr {
            src_port: client.port(),
            dst_port: Pair::server_addr().port(),
            seq_number: fin.seq - 4,
            ack_number: Some(syn_ack.seq + 1),
            window_len: 512,
            timestamp: Some((recent + 2, syn_ack.timestamp.expect("TS").0)),
            ..TcpRepr::default()
        },
    );
    let accepted_before = p.server_app.conns.len();
    deliver(&mut p.server, p.now, &[ack]);
    flush(&mut p.server, &mut p.server_app, p.now);
    assert_eq!(p.server_app.conns.len(), accepted_before + 1, "Accepted");
    assert_eq!(
        p.server.connections_by_state(),
        vec![(State::Established, 1)]
    );
}

#[test]
fn without_timestamps_a_higher_sequence_reopens() {
    let mut config = StackConfig::default();
    config.tcp.timestamps = false;
    let mut p = Pair::new(config);
    let (_, server) = p.connect();
    let client = p.last(true, |_| true).map(|(s, _)| s.src).expect("client");
    Ctx::new(&mut p.server, p.now).close(server).expect("close");
    p.exchange();
    assert_eq!(p.server.time_wait_count(), 1);
    let (fin, _) = p.last(true, |s| s.control == Control::Fin).expect("FIN");
    // Not beyond RCV.NXT: refused with an ACK.
    deliver(&mut p.server, p.now, &[syn(client, fin.end(), None)]);
    let out = flush(&mut p.server, &mut p.server_app, p.now);
    assert_eq!(out.len(), 1);
    assert!(seg(&out[0]).expect("ACK").is_bare_ack());
    assert_eq!(p.server.time_wait_count(), 1);
    // Beyond: reopened.
    deliver(
        &mut p.server,
        p.now,
        &[syn(client, fin.end() + 100_000, None)],
    );
    let out = flush(&mut p.server, &mut p.server_app, p.now);
    assert_eq!(seg(&out[0]).expect("SYN-ACK").control, Control::Syn);
    assert_eq!(p.server.time_wait_count(), 0);
}

#[test]
fn an_older_syn_gets_a_challenge_ack_and_the_record_stays() {
    let (mut p, client, fin) = server_in_time_wait();
    let recent = fin.timestamp.expect("TS").0;
    deliver(
        &mut p.server,
        p.now,
        &[syn(client, fin.end() + 1000, Some(recent - 1))],
    );
    let out = flush(&mut p.server, &mut p.server_app, p.now);
    assert_eq!(out.len(), 1);
    let ack = seg(&out[0]).expect("ACK");
    assert!(ack.is_bare_ack());
    assert_eq!(ack.ack, Some(fin.end()));
    assert_eq!(p.server.time_wait_count(), 1);
    assert_eq!(p.server.connection_count(), 0);
}

#[test]
fn unread_data_keeps_the_connection_whole_until_read() {
    let mut p = Pair::new(StackConfig::default());
    p.client_app.read = false;
    let (client, server) = p.connect();
    Ctx::new(&mut p.server, p.now)
        .send(server, b"unread")
        .expect("send");
    p.exchange();
    Ctx::new(&mut p.client, p.now).close(client).expect("close");
    p.exchange();
    assert_eq!(p.client.time_wait_count(), 0);
    assert_eq!(p.client.connections_by_state(), vec![(State::TimeWait, 1)]);
    assert_eq!(p.client_app.closed(client), None);
    // The application reads: the connection becomes a record.
    let mut buf = [0u8; 16];
    let n = Ctx::new(&mut p.client, p.now)
        .recv(client, &mut buf)
        .expect("recv");
    assert_eq!(&buf[..n], b"unread");
    flush(&mut p.client, &mut p.client_app, p.now);
    flush(&mut p.client, &mut p.client_app, p.now);
    assert_eq!(p.client.time_wait_count(), 1);
    assert_eq!(p.client.connection_count(), 0);
    assert_eq!(
        p.client_app.closed(client),
        Some(Event::Closed { error: None })
    );
}
