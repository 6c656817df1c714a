//! `Mesh`: values move between cores with no loss and in order per pair, full queues hand
//! values back, the receive side is fair, and dropping the mesh drops what it holds.
use core::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use engine::flow::FourTuple;
use engine::migrate::Owner;
use engine::steer::{CoreMessage, MeshSteer, NoSteer, Steer};

use engine::steer::{Mesh, MeshEndpoint, MeshSendError, PeerCounters, SteerError, MAX_MESH_SLOTS};

/// A value tagged with its sender and its sequence number in the (sender, receiver) pair.
type Tagged = (u16, u32);

/// Every core sends `per_pair` values to every other core, receiving as it goes; each
/// receiver checks that each sender's values arrive complete and in order.
fn move_values(cores: u16, per_pair: u32, capacity: usize) {
    let endpoints = Mesh::<Tagged>::new(cores, capacity).unwrap();
    let threads: Vec<_> = endpoints
        .into_iter()
        .map(|mut ep| {
            std::thread::spawn(move || {
                let me = ep.core();
                let n = usize::from(cores);
                let mut next_to_send = vec![0u32; n];
                let mut next_expected = vec![0u32; n];
                let expected_total = u64::from(per_pair) * u64::from(cores - 1);
                let mut received = 0u64;
                let mut burst = Vec::with_capacity(32);
                let mut inbox = Vec::with_capacity(64);
                loop {
                    let mut progress = false;
                    for to in (0..cores).filter(|&to| to != me) {
                        let seq = &mut next_to_send[usize::from(to)];
                        burst.clear();
                        burst.extend((*seq..per_pair.min(*seq + 32)).map(|s| (me, s)));
                        let sent = ep.send_burst(to, &mut burst).unwrap();
                        assert_eq!(
                            burst.len(),
                            per_pair.min(*seq + 32) as usize - *seq as usize - sent
                        );
                        if let Some(&(_, first_unsent)) = burst.first() {
                            assert_eq!(first_unsent, *seq + sent as u32);
                        }
                        *seq += sent as u32;
                        progress |= sent > 0;
                    }
                    inbox.clear();
                    let got = ep.recv_burst(&mut inbox, 64);
                    assert_eq!(got, inbox.len());
                    for &(from, seq) in &inbox {
                        assert_ne!(from, me);
                        let expected = &mut next_expected[usize::from(from)];
                        assert_eq!(seq, *expected, "core {me}: from {from} out of order");
                        *expected += 1;
                    }
                    received += got as u64;
                    progress |= got > 0;
                    let all_sent = (0..cores)
                        .filter(|&to| to != me)
                        .all(|to| next_to_send[usize::from(to)] == per_pair);
                    if all_sent && received == expected_total {
                        break;
                    }
                    if !progress {
                        std::thread::yield_now();
                    }
                }
                (me, ep.counters().to_vec(), next_expected)
            })
        })
        .collect();
    let mut counters: Vec<Vec<PeerCounters>> = vec![Vec::new(); usize::from(cores)];
    let mut moved = 0u64;
    for t in threads {
        let (me, c, next_expected) = t.join().unwrap();
        for (from, &n) in next_expected.iter().enumerate() {
            let want = if from == usize::from(me) { 0 } else { per_pair };
            assert_eq!(n, want);
            moved += u64::from(n);
        }
        counters[usize::from(me)] = c;
    }
    assert!(moved >= 1_000_000);
    for (a, sent_by_a) in counters.iter().enumerate() {
        for (b, to_b) in sent_by_a.iter().enumerate() {
            let want = if a == b { 0 } else { u64::from(per_pair) };
            assert_eq!(to_b.sent, want);
            assert_eq!(counters[b][a].received, want);
        }
    }
}

#[test]
fn two_cores_move_a_million_values_in_order() {
    move_values(2, 500_000, 256);
}

#[test]
fn four_cores_move_a_million_values_in_order() {
    // 12 pairs; small queues so that they fill up and senders retry.
    move_values(4, 83_334, 64);
}

#[test]
fn a_full_queue_hands_the_value_back() {
    let mut eps = Mesh::<String>::new(2, 4).unwrap();
    let mut b = eps.pop().unwrap();
    let mut a = eps.pop().unwrap();
    assert_eq!((a.core(), b.core(), a.cores()), (0, 1, 2));
    for i in 0..4 {
        a.send(1, i.to_string()).unwrap();
    }
    assert_eq!(a.queued_to(1), 4);
    assert_eq!(
        a.send(1, "x".into()),
        Err(MeshSendError::Full("x".to_owned()))
    );
    assert_eq!(
        a.counters()[1],
        PeerCounters {
            sent: 4,
            received: 0,
            full: 1
        }
    );
    let mut out = Vec::new();
    assert_eq!(b.recv_burst(&mut out, 1), 1);
    assert_eq!(out, vec!["0"]);
    a.send(1, "4".into()).unwrap();
    // send_burst takes what fits and leaves the rest in order.
    assert_eq!(b.recv_burst(&mut out, 2), 2);
    let mut burst: Vec<String> = (5..10).map(|i| i.to_string()).collect();
    assert_eq!(a.send_burst(1, &mut burst), Ok(2));
    assert_eq!(burst, vec!["7", "8", "9"]);
    assert_eq!(
        a.counters()[1],
        PeerCounters {
            sent: 7,
            received: 0,
            full: 4
        }
    );
    assert_eq!(b.recv_burst(&mut out, 100), 4);
    assert_eq!(out, vec!["0", "1", "2", "3", "4", "5", "6"]);
    assert_eq!(b.counters()[0].received, 7);
    assert_eq!(b.counters()[1], PeerCounters::default());
}

#[test]
fn sending_to_a_non_peer_hands_the_value_back() {
    let mut eps = Mesh::<u32>::new(3, 4).unwrap();
    let a = &mut eps[1];
    assert_eq!(a.send(1, 7), Err(MeshSendError::NotAPeer(7)));
    assert_eq!(a.send(3, 8).map_err(MeshSendError::into_inner), Err(8));
    let mut burst = vec![1, 2];
    assert_eq!(
        a.send_burst(1, &mut burst),
        Err(SteerError::NotAPeer {
            core: 1,
            to: 1,
            cores: 3
        })
    );
    assert_eq!(burst, vec![1, 2]);
    assert_eq!(a.queued_to(9), 0);
    assert!(a.counters().iter().all(|c| *c == PeerCounters::default()));
    // One core: a mesh with no queues.
    let mut single = Mesh::<u32>::new(1, 4).unwrap();
    assert_eq!(single.len(), 1);
    assert_eq!(single[0].send(0, 1), Err(MeshSendError::NotAPeer(1)));
    assert_eq!(single[0].recv_burst(&mut Vec::new(), 32), 0);
}

#[test]
fn bad_shapes_are_refused() {
    assert_eq!(Mesh::<u8>::new(0, 4).unwrap_err(), SteerError::NoCores);
    assert_eq!(Mesh::<u8>::new(2, 0).unwrap_err(), SteerError::ZeroCapacity);
    assert_eq!(
        Mesh::<u8>::new(u16::MAX, 1).unwrap_err(),
        SteerError::TooLarge {
            cores: u16::MAX,
            capacity: 1
        }
    );
    assert_eq!(
        Mesh::<u8>::new(2, usize::MAX).unwrap_err(),
        SteerError::TooLarge {
            cores: 2,
            capacity: usize::MAX
        }
    );
    assert_eq!(
        Mesh::<u8>::new(2, MAX_MESH_SLOTS / 2 + 1).unwrap_err(),
        SteerError::TooLarge {
            cores: 2,
            capacity: MAX_MESH_SLOTS / 2 + 1
        }
    );
    assert_eq!(Mesh::<u8>::new(64, 1024).unwrap().len(), 64);
}

#[test]
fn recv_burst_takes_from_peers_in_turn() {
    let mut eps = Mesh::<u16>::new(4, 128).unwrap();
    for from in 1..4 {
        for _ in 0..100 {
            eps[usize::from(from)].send(0, from).unwrap();
        }
    }
    let mut out = Vec::new();
    assert_eq!(eps[0].recv_burst(&mut out, 30), 30);
    for from in 1..4 {
        assert_eq!(out.iter().filter(|&&f| f == from).count(), 10);
    }
    // The next burst continues with the peer after the last one served.
    out.clear();
    assert_eq!(eps[0].recv_burst(&mut out, 4), 4);
    assert_eq!(out, vec![1, 2, 3, 1]);
    // A peer with nothing does not stop the others.
    out.clear();
    while eps[0].recv_burst(&mut out, 1000) > 0 {}
    assert_eq!(out.len(), 300 - 34);
    eps[2].send(0, 2).unwrap();
    assert_eq!(eps[0].recv_burst(&mut out, 1000), 1);
}

#[test]
fn dropping_the_mesh_drops_queued_values() {
    let token = Arc::new(());
    let mut eps = Mesh::<Arc<()>>::new(3, 16).unwrap();
    for from in 0..3u16 {
        for to in (0..3).filter(|&to| to != from) {
            for _ in 0..10 {
                eps[usize::from(from)].send(to, Arc::clone(&token)).unwrap();
            }
        }
    }
    assert_eq!(Arc::strong_count(&token), 61);
    // Received values belong to the receiver.
    let mut out = Vec::new();
    assert_eq!(eps[0].recv_burst(&mut out, 5), 5);
    assert_eq!(Arc::strong_count(&token), 61);
    drop(out);
    assert_eq!(Arc::strong_count(&token), 56);
    // The queues live as long as any endpoint does.
    let last = eps.pop().unwrap();
    drop(eps);
    assert_eq!(Arc::strong_count(&token), 56);
    drop(last);
    assert_eq!(Arc::strong_count(&token), 1);
}

#[test]
fn endpoints_can_move_to_other_threads() {
    fn is_send<T: Send>() {}
    is_send::<MeshEndpoint<Vec<u8>>>();
}

#[test]
fn mesh_steer_carries_frames_and_control_in_order_to_cores_only() {
    let mut cores: Vec<MeshSteer<u32>> = Mesh::new(3, 8)
        .unwrap()
        .into_iter()
        .map(MeshSteer::new)
        .collect();
    let local = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80);
    let tuple = FourTuple::new(local, SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 4000));
    // Frames and a control message from core 0 to core 2 arrive in the order sent.
    for (i, msg) in [
        CoreMessage::Frame { frame: 1, hops: 1 },
        CoreMessage::Owner {
            tuple,
            owner: Some(Owner::Core(0)),
            from: 0,
        },
        CoreMessage::Frame { frame: 2, hops: 1 },
    ]
    .into_iter()
    .enumerate()
    {
        assert!(cores[0].send(Owner::Core(2), msg).is_ok(), "message {i}");
    }
    let mut out = Vec::new();
    assert_eq!(cores[2].receive(&mut out, 32), 3);
    assert!(matches!(out[0], CoreMessage::Frame { frame: 1, hops: 1 }));
    assert!(matches!(
        out[1],
        CoreMessage::Owner {
            owner: Some(Owner::Core(0)),
            from: 0,
            ..
        }
    ));
    assert!(matches!(out[2], CoreMessage::Frame { frame: 2, .. }));
    // Not to itself, not to a core that does not exist, not to a peer engine: handed back.
    for to in [Owner::Core(0), Owner::Core(3), Owner::Peer(0)] {
        match cores[0].send(to, CoreMessage::Frame { frame: 9, hops: 0 }) {
            Err(CoreMessage::Frame { frame: 9, .. }) => {}
            other => panic!("{to:?}: {other:?}"),
        }
    }
    // A full queue hands the message back too.
    for _ in 0..8 {
        assert!(cores[1]
            .send(Owner::Core(0), CoreMessage::Frame { frame: 5, hops: 0 })
            .is_ok());
    }
    assert!(cores[1]
        .send(Owner::Core(0), CoreMessage::Frame { frame: 6, hops: 0 })
        .is_err());
    let mut none: Vec<CoreMessage<u32>> = Vec::new();
    assert_eq!(NoSteer.receive(&mut none, 8), 0);
    assert!(Steer::<u32>::send(
        &mut NoSteer,
        Owner::Core(1),
        CoreMessage::Frame { frame: 1, hops: 0 }
    )
    .is_err());
}
