//! The connection table: lookup order, exclusivity of connection and TIME_WAIT, limits,
//! TIME_WAIT expiry, seeded hashing, a million entries, and a model test.
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use engine::flow::FourTuple;
use engine::table::{
    ConnTable, EntryKind, FlowHashKey, Lookup, Refused, TableError, TableLimits, TimeWait,
};
use engine::time::Instant;
use proptest::prelude::*;

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

fn key() -> FlowHashKey {
    FlowHashKey::from_words(0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210)
}

fn tuple(i: u32) -> FourTuple {
    let remote = Ipv4Addr::from(0x0a01_0000 + (i >> 16));
    FourTuple::new(
        SocketAddrV4::new(SERVER, 80),
        SocketAddrV4::new(remote, (i & 0xffff) as u16),
    )
}

fn table() -> ConnTable<u32, &'static str> {
    ConnTable::new(key(), TableLimits::default())
}

fn tw(n: u32) -> TimeWait {
    TimeWait {
        snd_nxt: n,
        rcv_nxt: n + 1,
        ..TimeWait::default()
    }
}

#[test]
fn lookup_order_connection_timewait_exact_listener_wildcard() {
    let mut t = table();
    let flow = tuple(1);
    assert_eq!(t.lookup(&flow), Lookup::NotFound);

    t.insert_listener(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80), "wildcard")
        .unwrap();
    let wildcard = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80);
    assert_eq!(
        t.lookup(&flow),
        Lookup::Listener {
            local: wildcard,
            listener: &"wildcard"
        }
    );

    t.insert_listener(flow.local, "exact").unwrap();
    assert_eq!(
        t.lookup(&flow),
        Lookup::Listener {
            local: flow.local,
            listener: &"exact"
        }
    );
    // Another local address on the same port still gets the wildcard.
    let other = FourTuple::new(
        SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 9), 80),
        flow.remote,
    );
    assert_eq!(t.lookup(&other).kind(), Some(EntryKind::Listener));
    assert_eq!(t.listener_for(other.local), Some((wildcard, &"wildcard")));
    // A different port: nothing.
    let port81 = FourTuple::new(SocketAddrV4::new(SERVER, 81), flow.remote);
    assert_eq!(t.lookup(&port81), Lookup::NotFound);

    t.insert_time_wait(flow, tw(5), Instant::from_millis(60_000))
        .unwrap();
    match t.lookup(&flow) {
        Lookup::TimeWait(entry) => assert_eq!(entry.state.snd_nxt, 5),
        other => panic!("expected TIME_WAIT, got {other:?}"),
    }
    t.remove_time_wait(&flow).unwrap();

    t.insert_connection(flow, 7).unwrap();
    assert_eq!(t.lookup(&flow), Lookup::Connection(&7));
    if let Lookup::Connection(v) = t.lookup_mut(&flow) {
        *v = 8;
    }
    assert_eq!(t.connection(&flow), Some(&8));
    // The reversed tuple is a different flow.
    assert_eq!(t.lookup(&flow.reversed()), Lookup::NotFound);
}

#[test]
fn lookup_mut_reaches_listener_and_time_wait() {
    let mut t = table();
    let flow = tuple(2);
    t.insert_listener(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80), "a")
        .unwrap();
    match t.lookup_mut(&flow) {
        Lookup::Listener { listener, .. } => *listener = "b",
        other => panic!("{other:?}"),
    }
    assert_eq!(
        t.listener(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80)),
        Some(&"b")
    );
    t.insert_time_wait(flow, tw(1), Instant::from_millis(1))
        .unwrap();
    match t.lookup_mut(&flow) {
        Lookup::TimeWait(entry) => entry.state.rcv_wnd = 99,
        other => panic!("{other:?}"),
    }
    assert_eq!(t.time_wait(&flow).unwrap().state.rcv_wnd, 99);
    *t.time_wait_state_mut(&flow).unwrap() = tw(40);
    assert_eq!(t.time_wait(&flow).unwrap().state.snd_nxt, 40);
}

#[test]
fn a_tuple_is_a_connection_or_a_time_wait_never_both() {
    let mut t = table();
    let flow = tuple(3);
    t.insert_connection(flow, 1).unwrap();
    assert_eq!(
        t.insert_connection(flow, 2),
        Err(Refused {
            error: TableError::Occupied(EntryKind::Connection),
            value: 2
        })
    );
    let refused = t.insert_time_wait(flow, tw(1), Instant::ZERO).unwrap_err();
    assert_eq!(refused.error, TableError::Occupied(EntryKind::Connection));
    assert_eq!(refused.value, tw(1));

    assert_eq!(
        t.move_to_time_wait(&flow, tw(1), Instant::from_millis(10)),
        Ok(1)
    );
    assert_eq!(t.len(EntryKind::Connection), 0);
    assert_eq!(t.len(EntryKind::TimeWait), 1);
    assert_eq!(
        t.insert_connection(flow, 3),
        Err(Refused {
            error: TableError::Occupied(EntryKind::TimeWait),
            value: 3
        })
    );
    let refused = t
        .move_to_time_wait(&tuple(4), tw(2), Instant::ZERO)
        .unwrap_err();
    assert_eq!(refused.error, TableError::NotFound);
    // A new incarnation: the TCP module drops the record, then installs the connection.
    assert!(t.remove_time_wait(&flow).is_some());
    t.insert_connection(flow, 3).unwrap();
}

#[test]
fn limits_refuse_with_the_value_back() {
    let limits = TableLimits {
        connections: 2,
        time_wait: 1,
        listeners: 1,
        redirects: 1,
    };
    let mut t: ConnTable<String, u8> = ConnTable::new(key(), limits);
    t.insert_connection(tuple(1), "one".into()).unwrap();
    t.insert_connection(tuple(2), "two".into()).unwrap();
    let refused = t.insert_connection(tuple(3), "three".into()).unwrap_err();
    assert_eq!(
        refused.error,
        TableError::Full {
            kind: EntryKind::Connection,
            limit: 2
        }
    );
    assert_eq!(refused.value, "three");
    assert_eq!(refused.to_string(), "Connection table full (2 entries)");

    t.insert_time_wait(tuple(9), tw(0), Instant::ZERO).unwrap();
    // TIME_WAIT full: the connection stays where it was.
    let refused = t
        .move_to_time_wait(&tuple(1), tw(1), Instant::ZERO)
        .unwrap_err();
    assert_eq!(
        refused.error,
        TableError::Full {
            kind: EntryKind::TimeWait,
            limit: 1
        }
    );
    assert_eq!(t.connection(&tuple(1)).map(String::as_str), Some("one"));

    t.insert_listener(SocketAddrV4::new(SERVER, 80), 1).unwrap();
    let refused = t
        .insert_listener(SocketAddrV4::new(SERVER, 81), 2)
        .unwrap_err();
    assert_eq!(
        refused.error,
        TableError::Full {
            kind: EntryKind::Listener,
            limit: 1
        }
    );
    let refused = t
        .insert_listener(SocketAddrV4::new(SERVER, 80), 3)
        .unwrap_err();
    assert_eq!(refused.error, TableError::Occupied(EntryKind::Listener));

    assert_eq!(t.remove_connection(&tuple(2)).as_deref(), Some("two"));
    t.insert_connection(tuple(3), "three".into()).unwrap();
    assert_eq!(t.remove_listener(&SocketAddrV4::new(SERVER, 80)), Some(1));
    assert_eq!(t.listeners().count(), 0);
}

#[test]
fn time_wait_expires_in_order_and_restarts() {
    let mut t = table();
    for i in 0..10u32 {
        t.insert_time_wait(
            tuple(i),
            tw(i),
            Instant::from_millis(1_000 + u64::from(i) * 10),
        )
        .unwrap();
    }
    assert_eq!(t.next_time_wait_expiry(), Some(Instant::from_millis(1_000)));
    // A retransmitted FIN restarts tuple(0); tuple(1) is removed by hand.
    assert!(t.restart_time_wait(&tuple(0), Instant::from_millis(5_000)));
    assert!(!t.restart_time_wait(&tuple(99), Instant::from_millis(5_000)));
    assert!(t.remove_time_wait(&tuple(1)).is_some());

    let mut gone = Vec::new();
    let n = t.expire_time_wait(Instant::from_millis(1_050), |tuple, e| {
        gone.push((tuple, e))
    });
    assert_eq!(n, 4);
    let expect: Vec<FourTuple> = (2..=5).map(tuple).collect();
    assert_eq!(gone.iter().map(|(t, _)| *t).collect::<Vec<_>>(), expect);
    assert!(gone
        .iter()
        .all(|(_, e)| e.expiry <= Instant::from_millis(1_050)));
    assert_eq!(gone[0].1.state, tw(2));

    assert_eq!(t.len(EntryKind::TimeWait), 5);
    assert_eq!(
        t.expire_time_wait(Instant::from_millis(4_999), |_, _| {}),
        4
    );
    assert_eq!(t.next_time_wait_expiry(), Some(Instant::from_millis(5_000)));
    assert_eq!(
        t.expire_time_wait(Instant::from_millis(5_000), |_, _| {}),
        1
    );
    assert_eq!(t.next_time_wait_expiry(), None);
    assert!(t.is_empty());
}

#[test]
fn restarting_many_times_does_not_grow_without_bound() {
    let mut t = table();
    t.insert_time_wait(tuple(0), tw(0), Instant::ZERO).unwrap();
    for i in 1..100_000u64 {
        t.restart_time_wait(&tuple(0), Instant::from_millis(i));
    }
    // Only the latest expiry counts.
    assert_eq!(
        t.expire_time_wait(Instant::from_millis(99_998), |_, _| {}),
        0
    );
    assert_eq!(
        t.expire_time_wait(Instant::from_millis(99_999), |_, _| {}),
        1
    );
}

#[test]
fn different_keys_hash_differently() {
    let a: ConnTable<u32> = ConnTable::new(FlowHashKey::new([1; 16]), TableLimits::default());
    let b: ConnTable<u32> = ConnTable::new(FlowHashKey::new([2; 16]), TableLimits::default());
    let a2: ConnTable<u32> = ConnTable::new(FlowHashKey::new([1; 16]), TableLimits::default());
    let tuples: Vec<FourTuple> = (0..1000).map(tuple).collect();
    let same_key = tuples
        .iter()
        .filter(|t| a.flow_hash(t) == a2.flow_hash(t))
        .count();
    assert_eq!(same_key, 1000);
    let differ = tuples
        .iter()
        .filter(|t| a.flow_hash(t) != b.flow_hash(t))
        .count();
    assert_eq!(differ, 1000);
    // The low bits (which pick the bucket) differ too, not just somewhere in 64 bits.
    let low_differ = tuples
        .iter()
        .filter(|t| a.flow_hash(t) & 0xffff != b.flow_hash(t) & 0xffff)
        .count();
    assert!(low_differ > 990, "{low_differ}");
    // Sequential ports spread over buckets: 1000 tuples, 1024 buckets, few collisions.
    let mut buckets = std::collections::HashSet::new();
    for t in &tuples {
        buckets.insert(a.flow_hash(t) & 1023);
    }
    assert!(buckets.len() > 550, "{} distinct buckets", buckets.len());
}

#[test]
fn a_million_connections_insert_find_remove() {
    const N: u32 = 1_000_000;
    let mut t: ConnTable<u32> = ConnTable::new(key(), TableLimits::default());
    t.reserve(EntryKind::Connection, N as usize);
    for i in 0..N {
        t.insert_connection(tuple(i), i).unwrap();
    }
    assert_eq!(t.len(EntryKind::Connection), N as usize);
    assert_eq!(t.connections().count(), N as usize);
    for i in (0..N).step_by(1009) {
        assert_eq!(t.connection(&tuple(i)), Some(&i));
    }
    for (_, v) in t.connections_mut() {
        *v += 1;
    }
    t.retain_connections(|_, v| *v % 2 == 0);
    assert_eq!(t.len(EntryKind::Connection), N as usize / 2);
    for i in (1..N).step_by(2) {
        assert_eq!(t.remove_connection(&tuple(i)), Some(i + 1));
    }
    assert!(t.is_empty());
    assert_eq!(t.remove_connection(&tuple(1)), None);
}

#[derive(Debug, Clone)]
enum Op {
    InsertConn(u32),
    RemoveConn(u32),
    InsertTw(u32, u64),
    MoveToTw(u32, u64),
    RemoveTw(u32),
    Restart(u32, u64),
    Expire(u64),
    InsertListener(bool, u16),
    RemoveListener(bool, u16),
    Lookup(u32, u16),
}

fn op() -> impl Strategy<Value = Op> {
    let id = 0u32..12;
    let at = 0u64..100;
    prop_oneof![
        id.clone().prop_map(Op::InsertConn),
        id.clone().prop_map(Op::RemoveConn),
        (id.clone(), at.clone()).prop_map(|(i, t)| Op::InsertTw(i, t)),
        (id.clone(), at.clone()).prop_map(|(i, t)| Op::MoveToTw(i, t)),
        id.clone().prop_map(Op::RemoveTw),
        (id.clone(), at.clone()).prop_map(|(i, t)| Op::Restart(i, t)),
        at.prop_map(Op::Expire),
        (any::<bool>(), 80u16..83).prop_map(|(w, p)| Op::InsertListener(w, p)),
        (any::<bool>(), 80u16..83).prop_map(|(w, p)| Op::RemoveListener(w, p)),
        (id, 80u16..83).prop_map(|(i, p)| Op::Lookup(i, p)),
    ]
}

fn listen_addr(wildcard: bool, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(
        if wildcard {
            Ipv4Addr::UNSPECIFIED
        } else {
            SERVER
        },
        port,
    )
}

proptest! {
    #[test]
    fn table_matches_model(ops in prop::collection::vec(op(), 1..150)) {
        let limits = TableLimits { connections: 6, time_wait: 5, listeners: 4, redirects: 4 };
        let mut t: ConnTable<u32, u16> = ConnTable::new(key(), limits);
        let mut conns: BTreeMap<u32, u32> = BTreeMap::new();
        let mut tws: BTreeMap<u32, u64> = BTreeMap::new();
        let mut lis: BTreeMap<SocketAddrV4, u16> = BTreeMap::new();
        for op in ops {
            match op {
                Op::InsertConn(i) => {
                    let ok = !conns.contains_key(&i) && !tws.contains_key(&i) && conns.len() < 6;
                    prop_assert_eq!(t.insert_connection(tuple(i), i).is_ok(), ok);
                    if ok { conns.insert(i, i); }
                }
                Op::RemoveConn(i) => prop_assert_eq!(t.remove_connection(&tuple(i)), conns.remove(&i)),
                Op::InsertTw(i, at) => {
                    let ok = !conns.contains_key(&i) && !tws.contains_key(&i) && tws.len() < 5;
                    let r = t.insert_time_wait(tuple(i), tw(i), Instant::from_millis(at));
                    prop_assert_eq!(r.is_ok(), ok);
                    if ok { tws.insert(i, at); }
                }
                Op::MoveToTw(i, at) => {
                    let ok = conns.contains_key(&i) && !tws.contains_key(&i) && tws.len() < 5;
                    let r = t.move_to_time_wait(&tuple(i), tw(i), Instant::from_millis(at));
                    prop_assert_eq!(r.ok(), if ok { conns.remove(&i) } else { None });
                    if ok { tws.insert(i, at); }
                }
                Op::RemoveTw(i) => {
                    let got = t.remove_time_wait(&tuple(i)).map(|e| e.expiry);
                    prop_assert_eq!(got, tws.remove(&i).map(Instant::from_millis));
                }
                Op::Restart(i, at) => {
                    let known = tws.get_mut(&i).map(|e| *e = at).is_some();
                    prop_assert_eq!(t.restart_time_wait(&tuple(i), Instant::from_millis(at)), known);
                }
                Op::Expire(now) => {
                    let mut gone = Vec::new();
                    t.expire_time_wait(Instant::from_millis(now), |tuple, e| gone.push((tuple, e.expiry)));
                    // Earliest first.
                    prop_assert!(gone.windows(2).all(|w| w[0].1 <= w[1].1));
                    let mut got: Vec<FourTuple> = gone.iter().map(|g| g.0).collect();
                    got.sort();
                    let mut want: Vec<FourTuple> =
                        tws.iter().filter(|(_, &at)| at <= now).map(|(&i, _)| tuple(i)).collect();
                    want.sort();
                    prop_assert_eq!(got, want);
                    tws.retain(|_, at| *at > now);
                }
                Op::InsertListener(w, p) => {
                    let a = listen_addr(w, p);
                    let ok = !lis.contains_key(&a) && lis.len() < 4;
                    prop_assert_eq!(t.insert_listener(a, p).is_ok(), ok);
                    if ok { lis.insert(a, p); }
                }
                Op::RemoveListener(w, p) => {
                    let a = listen_addr(w, p);
                    prop_assert_eq!(t.remove_listener(&a), lis.remove(&a));
                }
                Op::Lookup(i, p) => {
                    let flow = if p == 80 { tuple(i) } else {
                        FourTuple::new(SocketAddrV4::new(SERVER, p), tuple(i).remote)
                    };
                    let kind = t.lookup(&flow).kind();
                    let want = if p == 80 && conns.contains_key(&i) {
                        Some(EntryKind::Connection)
                    } else if p == 80 && tws.contains_key(&i) {
                        Some(EntryKind::TimeWait)
                    } else if lis.contains_key(&listen_addr(false, p)) || lis.contains_key(&listen_addr(true, p)) {
                        Some(EntryKind::Listener)
                    } else {
                        None
                    };
                    prop_assert_eq!(kind, want);
                    if let Lookup::Listener { local, .. } = t.lookup(&flow) {
                        let exact = listen_addr(false, p);
                        prop_assert_eq!(local, if lis.contains_key(&exact) { exact } else { listen_addr(true, p) });
                    }
                }
            }
            prop_assert_eq!(t.len(EntryKind::Connection), conns.len());
            prop_assert_eq!(t.len(EntryKind::TimeWait), tws.len());
            prop_assert_eq!(t.len(EntryKind::Listener), lis.len());
            prop_assert_eq!(t.next_time_wait_expiry().is_some(), !tws.is_empty());
            if let (Some(next), Some(min)) = (t.next_time_wait_expiry(), tws.values().min()) {
                prop_assert!(next <= Instant::from_millis(*min));
            }
        }
    }
}
