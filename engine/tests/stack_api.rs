//! The application API's edges, driven through whole stacks: what `Ctx` reports, which
//! events an application gets when it ends a connection itself, the figures that survive
//! a stop, and a transmit path that never commits a segment it has no buffer for.
mod stack_support;

use engine::port::VecFrame;
use engine::stack::{App, ConnId, Ctx, Event, StackConfig};
use engine::tcp::{TcpConfig, TcpError};
use engine::time::{Duration, Instant};
use engine::wire::tcp::Control;
use stack_support::*;

fn config() -> StackConfig {
    StackConfig {
        tcp: TcpConfig {
            send_buffer: 16 * 1024,
            ..TcpConfig::default()
        },
        ..StackConfig::default()
    }
}

#[test]
fn send_capacity_is_the_room_left_in_the_send_buffer() {
    let mut pair = Pair::new(config());
    let (client, _) = pair.connect();
    let now = pair.now;
    let mut cx = Ctx::new(&mut pair.client, now);
    assert_eq!(cx.send_capacity(client), 16 * 1024);
    assert_eq!(cx.send(client, &[1u8; 1000]), Ok(1000));
    assert_eq!(cx.send_capacity(client), 16 * 1024 - 1000);
    // What it reports is what send takes.
    let room = cx.send_capacity(client);
    assert_eq!(cx.send(client, &vec![2u8; room + 10]), Ok(room));
    assert_eq!(cx.send_capacity(client), 0);
}

/// Aborts every connection as soon as it is accepted, from inside the callback, or from
/// `on_poll`; records every event.
#[derive(Default)]
struct Aborter {
    in_poll: bool,
    pending: Vec<ConnId>,
    events: Vec<(ConnId, Event)>,
}

impl App for Aborter {
    fn on_event(&mut self, cx: &mut Ctx<'_>, conn: ConnId, event: Event) {
        self.events.push((conn, event));
        if let Event::Accepted { .. } = event {
            if self.in_poll {
                self.pending.push(conn);
            } else {
                cx.abort(conn).expect("abort");
            }
        }
    }

    fn on_poll(&mut self, cx: &mut Ctx<'_>) {
        for conn in self.pending.drain(..) {
            cx.abort(conn).expect("abort");
        }
    }
}

fn abort_gets_closed(in_poll: bool) {
    let mut server = stack(SERVER, CLIENT, config(), Default::default());
    server.listen(SERVER_PORT).unwrap();
    let mut client = stack(CLIENT, SERVER, config(), Default::default());
    let mut app = Aborter {
        in_poll,
        ..Aborter::default()
    };
    let mut client_app = Recorder::new(true, false);
    let now = Instant::ZERO;
    client.connect(now, Pair::server_addr()).unwrap();
    for _ in 0..4 {
        let frames = flush(&mut client, &mut client_app, now);
        deliver(&mut server, now, &frames);
        let frames = flush(&mut server, &mut app, now);
        deliver(&mut client, now, &frames);
    }
    let accepted: Vec<ConnId> = app
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::Accepted { .. }))
        .map(|&(c, _)| c)
        .collect();
    assert_eq!(accepted.len(), 1);
    let closed: Vec<Event> = app
        .events
        .iter()
        .filter(|(c, e)| *c == accepted[0] && matches!(e, Event::Closed { .. }))
        .map(|&(_, e)| e)
        .collect();
    assert_eq!(
        closed,
        [Event::Closed {
            error: Some(TcpError::Aborted)
        }],
        "events: {:?}",
        app.events
    );
    assert_eq!(server.connection_count(), 0);
    // The client saw the RST.
    assert!(client_app.events.iter().any(|(_, e)| *e
        == Event::Closed {
            error: Some(TcpError::Reset)
        }));
}

#[test]
fn an_abort_inside_the_callback_is_followed_by_closed() {
    abort_gets_closed(false);
}

#[test]
fn an_abort_from_on_poll_is_followed_by_closed() {
    abort_gets_closed(true);
}

#[test]
fn listener_figures_survive_abort_all() {
    let mut pair = Pair::new(config());
    pair.connect();
    let before = pair.server.listener_figures();
    let syns = before.iter().find(|(n, _)| *n == "listen_syns").unwrap().1;
    assert_eq!(syns, 1);
    pair.server.abort_all();
    let now = pair.now;
    flush(&mut pair.server, &mut pair.server_app, now);
    assert_eq!(pair.server.listener_figures(), before);
}

#[test]
fn a_pool_miss_commits_nothing_to_the_sequence_space() {
    // A segment is committed only once it has a buffer: after a failed allocation the
    // same segment goes out at the next transmit, not one retransmission timeout later.
    let mut pair = Pair::new(config());
    let (client, _) = pair.connect();
    let now = pair.now;
    Ctx::new(&mut pair.client, now)
        .send(client, b"hello")
        .unwrap();
    pair.client.dispatch(now, &mut pair.client_app);
    let mut out: Vec<VecFrame> = Vec::new();
    pair.client.transmit(now, &mut |_| None, &mut out);
    assert!(out.is_empty());
    pair.client
        .transmit(now, &mut |len| Some(VecFrame::new(len)), &mut out);
    let segs: Vec<Seg> = out
        .iter()
        .filter_map(|f| seg(engine::port::Frame::data(f)))
        .collect();
    assert_eq!(segs.len(), 1, "{segs:?}");
    assert_eq!(segs[0].payload_len, 5);
    // And so does a listener's SYN-ACK.
    let mut server = stack(SERVER, CLIENT, config(), Default::default());
    server.listen(SERVER_PORT).unwrap();
    let mut client_stack = stack(CLIENT, SERVER, config(), Default::default());
    let mut client_app = Recorder::new(true, false);
    let mut server_app = Recorder::new(true, false);
    client_stack.connect(now, Pair::server_addr()).unwrap();
    let syn = flush(&mut client_stack, &mut client_app, now);
    deliver(&mut server, now, &syn);
    server.dispatch(now, &mut server_app);
    let mut out: Vec<VecFrame> = Vec::new();
    server.transmit(now, &mut |_| None, &mut out);
    assert!(out.is_empty());
    let later = now + Duration::from_millis(1);
    server.transmit(later, &mut |len| Some(VecFrame::new(len)), &mut out);
    let segs: Vec<Seg> = out
        .iter()
        .filter_map(|f| seg(engine::port::Frame::data(f)))
        .collect();
    assert_eq!(segs.len(), 1, "{segs:?}");
    assert_eq!(segs[0].control, Control::Syn);
}

#[test]
fn connection_figures_are_reachable_from_ctx() {
    let mut pair = Pair::new(config());
    let (client, _) = pair.connect();
    let now = pair.now;
    let cx = Ctx::new(&mut pair.client, now);
    let conn = cx.connection(client).expect("a live connection");
    assert_eq!(conn.stats().retransmits, 0);
    assert!(conn.cwnd() > 0);
    assert_eq!(conn.remote(), Pair::server_addr());
}

/// The stack's running figures (connections by state, buffer bytes) against a walk over
/// its connections.
fn assert_counts_match_a_walk(stack: &engine::stack::Stack, at: &str) {
    let mut walked: Vec<(engine::tcp::State, usize)> = Vec::new();
    let mut buffers = 0;
    for id in stack.connection_ids() {
        let c = stack.connection(id).expect("listed");
        buffers += c.buffer_bytes();
        match walked.iter_mut().find(|(s, _)| *s == c.state()) {
            Some((_, n)) => *n += 1,
            None => walked.push((c.state(), 1)),
        }
    }
    let mut counted = stack.connections_by_state();
    counted.retain(|&(s, _)| s != engine::tcp::State::TimeWait || walked.iter().any(|w| w.0 == s));
    let key = |v: &mut Vec<(engine::tcp::State, usize)>| v.sort_by_key(|&(s, _)| s as usize);
    key(&mut walked);
    key(&mut counted);
    // TIME-WAIT records (no connection any more) are reported too: compare the rest.
    let tw_records = stack.time_wait_count();
    for (s, n) in counted.iter_mut() {
        if *s == engine::tcp::State::TimeWait {
            *n -= tw_records;
        }
    }
    counted.retain(|&(_, n)| n > 0);
    assert_eq!(counted, walked, "{at}: by state");
    assert_eq!(stack.memory().buffer_bytes, buffers, "{at}: buffer bytes");
    assert_eq!(stack.memory().connections, stack.connection_count(), "{at}");
}

#[test]
fn running_counts_follow_connections_through_their_lives() {
    let mut pair = Pair::new(config());
    // The server keeps what it receives unread, so its buffers fill.
    pair.server_app = Recorder::new(false, false);
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(pair.connect().0);
    }
    for s in [&pair.server, &pair.client] {
        assert_counts_match_a_walk(s, "after the handshakes");
    }
    let now = pair.now;
    let mut cx = Ctx::new(&mut pair.client, now);
    assert_eq!(cx.send(clients[0], &[7u8; 5000]), Ok(5000));
    pair.exchange();
    assert!(
        pair.server.memory().buffer_bytes >= 5000,
        "unread data is buffered"
    );
    for s in [&pair.server, &pair.client] {
        assert_counts_match_a_walk(s, "with data held");
    }
    // One closes, one aborts; the third stays.
    let now = pair.now;
    let mut cx = Ctx::new(&mut pair.client, now);
    cx.close(clients[1]).expect("close");
    cx.abort(clients[2]).expect("abort");
    pair.exchange();
    for s in [&pair.server, &pair.client] {
        assert_counts_match_a_walk(s, "after a close and an abort");
    }
    assert!(
        pair.server
            .connections_by_state()
            .contains(&(engine::tcp::State::CloseWait, 1)),
        "{:?}",
        pair.server.connections_by_state()
    );
    pair.now += Duration::from_secs(300);
    pair.server.handle_timers(pair.now);
    pair.client.handle_timers(pair.now);
    pair.exchange();
    for s in [&pair.server, &pair.client] {
        assert_counts_match_a_walk(s, "after the timers");
    }
}

/// Past 16,384 connections the stack looks connections up in its flow cache first (a hint
/// it checks against the slab). Segments still reach exactly their own connection, also
/// for connections opened after others closed and their slots (and cache slots) were
/// reused, and a segment of a closed connection does not reach the connection now in its
/// slot.
#[test]
fn past_the_flow_cache_threshold_segments_reach_their_own_connections() {
    const OPEN: usize = 17_000;
    let mut pair = Pair::new(config());
    pair.server_app = Recorder::new(false, false);
    pair.client_app = Recorder::new(false, false);
    for batch in 0..OPEN / 1000 {
        for _ in 0..1000 {
            pair.client
                .connect(pair.now, Pair::server_addr())
                .expect("connect");
        }
        pair.exchange();
        assert_eq!(pair.server.connection_count(), (batch + 1) * 1000);
    }
    // Close a thousand (their slots are freed), then open probes that reuse slots.
    let now = pair.now;
    let closing: Vec<ConnId> = pair.client_app.conns[..1000].to_vec();
    let closed_tuples: Vec<_> = closing
        .iter()
        .map(|&c| pair.client.connection(c).expect("open").tuple())
        .collect();
    for &c in &closing {
        Ctx::new(&mut pair.client, now).abort(c).expect("abort");
    }
    pair.exchange();
    assert_eq!(pair.server.connection_count(), OPEN - 1000);
    let hits_before = pair.server.tcp_counters().flow_cache_hits;
    let mut probes = Vec::new();
    for i in 0..4u8 {
        let (c, s) = pair.connect();
        // Three segments: the later ones find the connection in the cache.
        let payload = vec![i + 1; 3000 + usize::from(i)];
        let now = pair.now;
        assert_eq!(
            Ctx::new(&mut pair.client, now).send(c, &payload),
            Ok(payload.len())
        );
        pair.exchange();
        probes.push((s, payload));
    }
    // Stray segments of the closed connections (whose slots, and cached slots, the probes
    // took): none reaches a probe; each gets the listener's RST.
    let strays: Vec<Vec<u8>> = closed_tuples
        .iter()
        .map(|t| {
            let repr = engine::wire::tcp::TcpRepr {
                src_port: t.local.port(),
                dst_port: t.remote.port(),
                control: Control::None,
                seq_number: engine::tcp::SeqNumber(1),
                ack_number: Some(engine::tcp::SeqNumber(1)),
                window_len: 1000,
                payload: b"stray",
                ..engine::wire::tcp::TcpRepr::default()
            };
            segment_frame(t.local, t.remote, &repr)
        })
        .collect();
    let segments_before = pair.server.tcp_counters().segments_in;
    let mut resets = 0;
    // In batches: a poll sends at most 256 stateless replies.
    for batch in strays.chunks(200) {
        deliver(&mut pair.server, pair.now, batch);
        let replies = flush(&mut pair.server, &mut pair.server_app, pair.now);
        resets += replies
            .iter()
            .filter_map(|f| seg(f))
            .filter(|s| s.control == Control::Rst)
            .count();
    }
    assert_eq!(
        pair.server.tcp_counters().segments_in - segments_before,
        strays.len() as u64
    );
    assert_eq!(resets, strays.len(), "every stray segment is reset");
    // Data on a connection from the first batch too (its cache slot may be anyone's).
    let (old_client, old_server) = (pair.client_app.conns[1500], pair.server_app.conns[1500]);
    let now = pair.now;
    assert_eq!(
        Ctx::new(&mut pair.client, now).send(old_client, b"old"),
        Ok(3)
    );
    pair.exchange();
    probes.push((old_server, b"old".to_vec()));
    for (s, payload) in probes {
        let now = pair.now;
        let mut cx = Ctx::new(&mut pair.server, now);
        let mut got = Vec::new();
        let mut buf = vec![0u8; 1024];
        while let Ok(n @ 1..) = cx.recv(s, &mut buf) {
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(
            got, payload,
            "connection {s:?} got its own bytes and nothing else"
        );
    }
    assert!(
        pair.server.tcp_counters().flow_cache_hits > hits_before,
        "segments found through the cache"
    );
    // The reads above change the buffers: the running counts follow at the next flush.
    pair.exchange();
    assert_counts_match_a_walk(&pair.server, "past the cache threshold");
}
