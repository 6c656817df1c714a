//! The listener (RFC 9293 §3.10.7.2 LISTEN): backlog, accept, SYN cookies when full,
//! resets for stray ACKs, handshake retransmission and timeout.
mod tcp_support;

use engine::flow::FourTuple;
use engine::tcp::{
    Connection, ListenOutcome, Listener, ListenerConfig, SeqNumber, SipKey, State, TcpConfig,
};
use engine::time::{Duration, Instant};
use engine::wire::tcp::{Control, TcpRepr};
use tcp_support::*;

fn listener(limits: ListenerConfig, config: TcpConfig) -> Listener {
    Listener::new(B_ADDR, config, limits, SipKey([3; 16]), SipKey([4; 16]))
}

/// Delivers everything the client sends to the listener and everything the listener
/// sends to the client, at `now`, until both are quiet. Returns the listener outcomes.
fn exchange(now: Instant, client: &mut Connection, l: &mut Listener) -> Vec<ListenOutcome> {
    let mut outcomes = vec![];
    for _ in 0..20 {
        let mut moved = false;
        while let Some(t) = client.poll_transmit(now) {
            let bytes = to_bytes(&t);
            let repr = parse(&bytes, *A_ADDR.ip(), *B_ADDR.ip());
            outcomes.push(l.handle_segment(now, a_tuple().reversed(), &repr));
            moved = true;
        }
        while let Some(t) = l.poll_transmit(now) {
            assert_eq!(t.tuple, a_tuple().reversed());
            let bytes = to_bytes(&t);
            let repr = parse(&bytes, *B_ADDR.ip(), *A_ADDR.ip());
            client.handle_segment(now, &repr);
            moved = true;
        }
        if !moved {
            break;
        }
    }
    outcomes
}

/// Moves data both ways between two established connections until both are quiet.
fn pump(now: &mut Instant, a: &mut Connection, b: &mut Connection, rounds: usize) {
    for _ in 0..rounds {
        let mut moved = false;
        while let Some(t) = a.poll_transmit(*now) {
            let bytes = to_bytes(&t);
            b.handle_segment(*now, &parse(&bytes, *A_ADDR.ip(), *B_ADDR.ip()));
            moved = true;
        }
        while let Some(t) = b.poll_transmit(*now) {
            let bytes = to_bytes(&t);
            a.handle_segment(*now, &parse(&bytes, *B_ADDR.ip(), *A_ADDR.ip()));
            moved = true;
        }
        if !moved {
            // Let delayed ACKs fire.
            let next = [a.poll_timeout(), b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t - *now < Duration::from_millis(100) => {
                    *now = t;
                    a.handle_timeout(*now);
                    b.handle_timeout(*now);
                }
                _ => break,
            }
        }
    }
}

fn send_all_and_check(now: &mut Instant, a: &mut Connection, b: &mut Connection, len: usize) {
    let data = pattern(len, 42);
    let mut sent = 0;
    let mut got = vec![];
    let mut buf = vec![0u8; 65536];
    for _ in 0..1000 {
        if sent < data.len() {
            sent += a.send(&data[sent..]).unwrap();
        }
        pump(now, a, b, 50);
        while let Ok(n) = b.recv(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        if got.len() == data.len() {
            break;
        }
    }
    assert!(got == data, "received {} of {}", got.len(), data.len());
}

#[test]
fn passive_open_and_accept() {
    let config = TcpConfig::default();
    let mut l = listener(ListenerConfig::default(), config);
    let now = Instant::from_millis(10);
    let mut client = Connection::connect(now, a_tuple(), seed(77), &config);
    let outcomes = exchange(now, &mut client, &mut l);
    assert_eq!(outcomes[0], ListenOutcome::HalfOpen);
    assert!(matches!(outcomes[1], ListenOutcome::Connection(_)));
    assert_eq!(client.state(), State::Established);
    assert_eq!(l.pending_accept(), 1);
    assert_eq!(l.half_open(), 0);
    let mut server = l.accept().expect("accepted");
    assert!(l.accept().is_none());
    assert_eq!(server.state(), State::Established);
    assert!(server.is_passive());
    assert_eq!(server.tuple(), a_tuple().reversed());
    assert!(server.sack_enabled() && server.timestamps_enabled());
    let mut now = now;
    send_all_and_check(&mut now, &mut client, &mut server, 200_000);
    send_all_and_check(&mut now, &mut server, &mut client, 50_000);
}

#[test]
fn syn_cookies_when_backlog_full_carry_options_in_timestamps() {
    let config = TcpConfig::default();
    let limits = ListenerConfig {
        backlog: 0,
        ..ListenerConfig::default()
    };
    let mut l = listener(limits, config);
    let now = Instant::from_millis(100_000);
    let mut client = Connection::connect(now, a_tuple(), seed(5), &config);
    let outcomes = exchange(now, &mut client, &mut l);
    assert_eq!(outcomes[0], ListenOutcome::CookieSent);
    assert_eq!(outcomes[1], ListenOutcome::CookieAccepted);
    assert_eq!(l.stats().cookies_accepted, 1);
    let mut server = l.accept().expect("cookie connection");
    assert_eq!(server.state(), State::Established);
    assert!(server.sack_enabled(), "SACK carried in TSval");
    assert_eq!(
        server.window_scaling(),
        Some((config.window_scale(), config.window_scale()))
    );
    assert_eq!(server.smss(), client.smss());
    let mut now = now;
    send_all_and_check(&mut now, &mut client, &mut server, 300_000);
    send_all_and_check(&mut now, &mut server, &mut client, 300_000);
}

#[test]
fn syn_cookies_without_timestamps_lose_window_scale_and_sack() {
    let config = TcpConfig {
        timestamps: false,
        ..TcpConfig::default()
    };
    let limits = ListenerConfig {
        backlog: 0,
        ..ListenerConfig::default()
    };
    let mut l = listener(limits, TcpConfig::default());
    let now = Instant::from_millis(1);
    let mut client = Connection::connect(now, a_tuple(), seed(5), &config);
    exchange(now, &mut client, &mut l);
    let mut server = l.accept().expect("cookie connection");
    assert!(!server.sack_enabled() && !client.sack_enabled());
    assert_eq!(server.window_scaling(), None);
    assert_eq!(client.window_scaling(), None);
    let mut now = now;
    send_all_and_check(&mut now, &mut client, &mut server, 100_000);
}

#[test]
fn forged_cookie_ack_gets_reset() {
    let config = TcpConfig::default();
    let mut l = listener(
        ListenerConfig {
            backlog: 0,
            ..ListenerConfig::default()
        },
        config,
    );
    let ack = TcpRepr {
        src_port: A_ADDR.port(),
        dst_port: B_ADDR.port(),
        seq_number: SeqNumber(1000),
        ack_number: Some(SeqNumber(0xdead_beef)),
        window_len: 100,
        ..TcpRepr::default()
    };
    let now = Instant::from_millis(1);
    assert_eq!(
        l.handle_segment(now, a_tuple().reversed(), &ack),
        ListenOutcome::Reset
    );
    // No cookie was sent, so none is checked (like Linux): nothing to guess at.
    assert_eq!(l.stats().cookies_rejected, 0);
    // RFC 9293 §3.10.7.2: <SEQ=SEG.ACK><CTL=RST>.
    let t = l.poll_transmit(now).expect("RST");
    assert_eq!(t.repr.control, Control::Rst);
    assert_eq!(t.repr.seq_number, SeqNumber(0xdead_beef));
    assert_eq!(t.repr.ack_number, None);
    assert!(l.poll_transmit(now).is_none());
    assert!(l.accept().is_none());
}

#[test]
fn forged_cookie_ack_is_dropped_while_cookies_are_in_use() {
    let config = TcpConfig::default();
    let mut l = listener(
        ListenerConfig {
            backlog: 0,
            ..ListenerConfig::default()
        },
        config,
    );
    let now = Instant::from_millis(1);
    let syn = TcpRepr {
        src_port: A_ADDR.port(),
        dst_port: B_ADDR.port(),
        control: Control::Syn,
        seq_number: SeqNumber(999),
        window_len: 100,
        ..TcpRepr::default()
    };
    assert_eq!(
        l.handle_segment(now, a_tuple().reversed(), &syn),
        ListenOutcome::CookieSent
    );
    let cookie = l
        .poll_transmit(now)
        .expect("cookie SYN-ACK")
        .repr
        .seq_number;
    let forged = TcpRepr {
        src_port: A_ADDR.port(),
        dst_port: B_ADDR.port(),
        seq_number: SeqNumber(1000),
        ack_number: Some(cookie + 2),
        window_len: 100,
        ..TcpRepr::default()
    };
    // Checked, failed, dropped without a RST (it may belong to a cookie handshake whose
    // first ACK was lost), and no connection made.
    assert_eq!(
        l.handle_segment(now, a_tuple().reversed(), &forged),
        ListenOutcome::Ignored
    );
    assert_eq!(l.stats().cookies_rejected, 1);
    assert_eq!(l.stats().resets_sent, 0);
    assert!(l.poll_transmit(now).is_none());
    assert!(l.accept().is_none());
    // The right ACK still completes the handshake.
    let good = TcpRepr {
        ack_number: Some(cookie + 1),
        ..forged
    };
    assert_eq!(
        l.handle_segment(now, a_tuple().reversed(), &good),
        ListenOutcome::CookieAccepted
    );
    assert!(l.accept().is_some());
}

#[test]
fn rst_and_bare_segments_in_listen_are_ignored() {
    let config = TcpConfig::default();
    let mut l = listener(ListenerConfig::default(), config);
    let now = Instant::from_millis(1);
    let rst = TcpRepr {
        src_port: A_ADDR.port(),
        dst_port: B_ADDR.port(),
        control: Control::Rst,
        seq_number: SeqNumber(5),
        ..TcpRepr::default()
    };
    assert_eq!(
        l.handle_segment(now, a_tuple().reversed(), &rst),
        ListenOutcome::Ignored
    );
    let bare = TcpRepr {
        control: Control::None,
        payload: b"data",
        ..rst
    };
    assert_eq!(
        l.handle_segment(now, a_tuple().reversed(), &bare),
        ListenOutcome::Ignored
    );
    let other_port = TcpRepr {
        control: Control::Syn,
        dst_port: 81,
        ..rst
    };
    assert_eq!(
        l.handle_segment(now, a_tuple().reversed(), &other_port),
        ListenOutcome::Ignored
    );
    assert!(l.poll_transmit(now).is_none());
}

#[test]
fn half_open_retransmits_syn_ack_then_times_out() {
    let config = TcpConfig {
        max_syn_retries: 2,
        ..TcpConfig::default()
    };
    let mut l = listener(ListenerConfig::default(), config);
    let mut now = Instant::from_millis(1);
    let mut client = Connection::connect(now, a_tuple(), seed(5), &config);
    let syn_t = client.poll_transmit(now).unwrap();
    let syn_bytes = to_bytes(&syn_t);
    let syn = parse(&syn_bytes, *A_ADDR.ip(), *B_ADDR.ip());
    assert_eq!(
        l.handle_segment(now, a_tuple().reversed(), &syn),
        ListenOutcome::HalfOpen
    );
    let mut syn_acks = 0;
    for _ in 0..10 {
        while let Some(t) = l.poll_transmit(now) {
            assert_eq!(t.repr.control, Control::Syn);
            syn_acks += 1;
        }
        let Some(next) = l.poll_timeout() else { break };
        now = next;
        l.handle_timeout(now);
    }
    // One SYN-ACK and two retransmissions, then the half-open connection is dropped.
    assert_eq!(syn_acks, 3);
    assert_eq!(l.half_open(), 0);
    assert_eq!(l.stats().handshake_timeouts, 1);
}

#[test]
fn retransmitted_syn_gets_syn_ack_again_and_rst_returns_to_listen() {
    let config = TcpConfig::default();
    let mut l = listener(ListenerConfig::default(), config);
    let now = Instant::from_millis(1);
    let mut client = Connection::connect(now, a_tuple(), seed(5), &config);
    let syn_bytes = to_bytes(&client.poll_transmit(now).unwrap());
    let syn = parse(&syn_bytes, *A_ADDR.ip(), *B_ADDR.ip());
    l.handle_segment(now, a_tuple().reversed(), &syn);
    let first = l.poll_transmit(now).unwrap().repr.seq_number;
    assert!(l.poll_transmit(now).is_none());
    // The same SYN again: the SYN-ACK is repeated with the same ISN.
    l.handle_segment(now, a_tuple().reversed(), &syn);
    let (second, control) = l
        .poll_transmit(now)
        .map(|t| (t.repr.seq_number, t.repr.control))
        .unwrap();
    assert_eq!(second, first);
    assert_eq!(control, Control::Syn);
    // RFC 9293 §3.10.7.4 second check: a RST at RCV.NXT in SYN-RECEIVED from a passive
    // open returns to LISTEN: the half-open connection is gone, the listener stays.
    let rst = TcpRepr {
        src_port: A_ADDR.port(),
        dst_port: B_ADDR.port(),
        control: Control::Rst,
        seq_number: syn.seq_number + 1,
        timestamp: syn.timestamp,
        ..TcpRepr::default()
    };
    l.handle_segment(now, a_tuple().reversed(), &rst);
    assert_eq!(l.half_open(), 0);
    assert!(l.accept().is_none());
}

#[test]
fn unspecified_listener_address_accepts_any_destination() {
    let config = TcpConfig::default();
    let any = std::net::SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, B_ADDR.port());
    let mut l = Listener::new(
        any,
        config,
        ListenerConfig::default(),
        SipKey([1; 16]),
        SipKey([2; 16]),
    );
    let now = Instant::ZERO;
    let mut client = Connection::connect(now, a_tuple(), seed(9), &config);
    exchange(now, &mut client, &mut l);
    assert_eq!(client.state(), State::Established);
    assert_eq!(
        l.accept().map(|c| c.tuple()),
        Some(FourTuple::new(B_ADDR, A_ADDR))
    );
}
