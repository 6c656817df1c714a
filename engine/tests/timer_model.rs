//! The timer wheel against a `BTreeMap` model: random arm / cancel / rearm / advance
//! sequences must fire exactly the timers the model says are due, never early, and at most
//! one tick late; plus a million-timer run.
use std::collections::BTreeMap;

use engine::time::{Duration, Instant};
use engine::timer::{TimerError, TimerHandle, TimerWheel};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// Arm a timer this many nanoseconds after the current time.
    Arm(u64),
    /// Cancel the n-th handle ever issued (possibly stale).
    Cancel(usize),
    /// Move the n-th handle ever issued (possibly stale) to now + delta.
    Rearm(usize, u64),
    /// Advance the clock by this many nanoseconds.
    Advance(u64),
}

/// Delays on every scale, including past the wheel's 2^36-tick range and near `u64::MAX`.
fn delay() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0u64..2_000,
        4 => 0u64..5_000_000,
        2 => 0u64..20_000_000_000,
        1 => 0u64..(1u64 << 50),
        1 => (u64::MAX - 1_000)..=u64::MAX,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => delay().prop_map(Op::Arm),
        2 => (0usize..64).prop_map(Op::Cancel),
        2 => ((0usize..64), delay()).prop_map(|(i, d)| Op::Rearm(i, d)),
        4 => delay().prop_map(Op::Advance),
    ]
}

fn tick() -> impl Strategy<Value = u64> {
    prop_oneof![Just(1u64), Just(7), Just(1_000), Just(1_000_000)]
}

/// The model: live timers keyed by (due tick, id) and by id.
#[derive(Default)]
struct Model {
    by_due: BTreeMap<(u64, u32), Instant>,
    due_of: BTreeMap<u32, u64>,
}

fn due_tick(deadline: Instant, tick: u64) -> u64 {
    deadline.as_nanos().div_ceil(tick)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn wheel_matches_model(tick in tick(), ops in prop::collection::vec(op(), 1..200)) {
        let mut wheel = TimerWheel::new(Duration::from_nanos(tick));
        let mut model = Model::default();
        let mut handles: Vec<TimerHandle> = Vec::new();
        let mut now = Instant::ZERO;
        let mut fired = Vec::new();
        for op in ops {
            match op {
                Op::Arm(d) => {
                    let id = handles.len() as u32;
                    let deadline = now + Duration::from_nanos(d);
                    handles.push(wheel.arm(deadline, id).unwrap());
                    let due = due_tick(deadline, tick);
                    model.by_due.insert((due, id), deadline);
                    model.due_of.insert(id, due);
                }
                Op::Cancel(i) => {
                    let Some(&h) = handles.get(i) else { continue };
                    let id = i as u32;
                    let expected = model.due_of.remove(&id);
                    if let Some(due) = expected {
                        model.by_due.remove(&(due, id));
                    }
                    prop_assert_eq!(wheel.cancel(h), expected.map(|_| id));
                }
                Op::Rearm(i, d) => {
                    let Some(&h) = handles.get(i) else { continue };
                    let id = i as u32;
                    let deadline = now + Duration::from_nanos(d);
                    match model.due_of.get_mut(&id) {
                        Some(due) => {
                            model.by_due.remove(&(*due, id));
                            *due = due_tick(deadline, tick);
                            model.by_due.insert((*due, id), deadline);
                            prop_assert_eq!(wheel.rearm(h, deadline), Ok(()));
                            prop_assert_eq!(wheel.deadline(h),
                                Some(Instant::from_nanos(due.saturating_mul(tick))));
                        }
                        None => prop_assert_eq!(wheel.rearm(h, deadline), Err(TimerError::Stale)),
                    }
                }
                Op::Advance(d) => {
                    now += Duration::from_nanos(d);
                    // Every advance's `next_deadline` is a lower bound of the earliest fire.
                    if let (Some(next), Some((&(due, _), _))) =
                        (wheel.next_deadline(), model.by_due.first_key_value())
                    {
                        prop_assert!(next.as_nanos() <= due.saturating_mul(tick));
                    }
                    fired.clear();
                    let count = wheel.expire(now, &mut fired);
                    prop_assert_eq!(count, fired.len());
                    let now_tick = now.as_nanos() / tick;
                    let mut expected = Vec::new();
                    while let Some((&(due, id), &deadline)) = model.by_due.first_key_value() {
                        if due > now_tick {
                            break;
                        }
                        // The model's own statement of the contract.
                        prop_assert!(deadline <= now, "would fire early");
                        model.by_due.remove(&(due, id));
                        model.due_of.remove(&id);
                        expected.push((due, id));
                    }
                    // Whatever did not fire is not yet one tick late.
                    for &deadline in model.by_due.values() {
                        prop_assert!(deadline.as_nanos() > now.as_nanos().saturating_sub(tick));
                    }
                    // Fired in non-decreasing due order; same set as the model.
                    let dues: Vec<u64> = fired.iter().map(|id| model_due(&expected, *id)).collect();
                    prop_assert!(dues.windows(2).all(|w| w[0] <= w[1]), "fire order {:?}", dues);
                    let mut got = fired.clone();
                    got.sort_unstable();
                    let mut want: Vec<u32> = expected.iter().map(|&(_, id)| id).collect();
                    want.sort_unstable();
                    prop_assert_eq!(got, want);
                }
            }
            prop_assert_eq!(wheel.len(), model.due_of.len());
            if model.due_of.is_empty() {
                prop_assert_eq!(wheel.next_deadline(), None);
            } else {
                prop_assert!(wheel.next_deadline().is_some());
            }
        }
        // Draining to the end of time fires what is left, exactly once, except deadlines in
        // the last partial tick of the clock's range, which no instant reaches.
        fired.clear();
        wheel.expire(Instant::from_nanos(u64::MAX), &mut fired);
        let reachable = model.due_of.values().filter(|&&due| due <= u64::MAX / tick).count();
        prop_assert_eq!(fired.len(), reachable);
        prop_assert_eq!(wheel.len(), model.due_of.len() - reachable);
    }
}

fn model_due(expected: &[(u64, u32)], id: u32) -> u64 {
    expected
        .iter()
        .find(|&&(_, i)| i == id)
        .map_or(u64::MAX, |&(due, _)| due)
}

#[test]
fn a_million_timers_arm_cancel_and_expire() {
    const N: u32 = 1_000_000;
    let mut wheel = TimerWheel::new(Duration::from_millis(1));
    wheel.reserve(N as usize);
    // RTO-like spread: 200 ms to about 70 s, scattered.
    let mut handles = Vec::with_capacity(N as usize);
    for i in 0..N {
        let ms = 200 + (u64::from(i) * 7919) % 70_000;
        handles.push(wheel.arm(Instant::from_millis(ms), i).unwrap());
    }
    assert_eq!(wheel.len(), N as usize);
    // Cancel every odd one.
    for (i, &h) in handles.iter().enumerate().filter(|(i, _)| i % 2 == 1) {
        assert_eq!(wheel.cancel(h), Some(i as u32));
    }
    assert_eq!(wheel.len(), N as usize / 2);
    // Walk the clock the way a poll loop would, by next deadline, and check no early fire.
    let mut fired = 0u32;
    let mut out = Vec::new();
    let mut wakeups = 0u32;
    while let Some(next) = wheel.next_deadline() {
        out.clear();
        wheel.expire(next, &mut out);
        for &i in &out {
            assert_eq!(i % 2, 0, "a cancelled timer fired");
            let ms = 200 + (u64::from(i) * 7919) % 70_000;
            assert_eq!(next, Instant::from_millis(ms), "fired off its tick");
        }
        fired += out.len() as u32;
        wakeups += 1;
    }
    assert_eq!(fired, N / 2);
    assert!(wheel.is_empty());
    // 69,800 distinct deadlines, plus a few cascade-only wake-ups per higher slot.
    assert!(wakeups < 69_800 + 2_000, "{wakeups} wake-ups");
    // Stale handles are all refused.
    assert!(handles
        .iter()
        .take(1000)
        .all(|&h| wheel.cancel(h).is_none()));
}

#[test]
fn rearm_keeps_handle_and_value() {
    let mut wheel = TimerWheel::new(Duration::from_millis(1));
    let h = wheel.arm(Instant::from_millis(100), 42u64).unwrap();
    wheel.rearm(h, Instant::from_millis(5_000)).unwrap();
    let mut out = Vec::new();
    wheel.expire(Instant::from_millis(4_999), &mut out);
    assert!(out.is_empty());
    assert_eq!(wheel.value(h), Some(&42));
    wheel.rearm(h, Instant::from_millis(4_000)).unwrap();
    wheel.expire(Instant::from_millis(5_000), &mut out);
    assert_eq!(out, vec![42]);
}

#[test]
fn advance_callback_sees_every_value() {
    let mut wheel = TimerWheel::new(Duration::from_millis(1));
    for i in 0..100u32 {
        wheel
            .arm(Instant::from_millis(u64::from(i) * 37), i)
            .unwrap();
    }
    let mut sum = 0u32;
    assert_eq!(
        wheel.advance(Instant::from_millis(10_000), |v| sum += v),
        100
    );
    assert_eq!(sum, (0..100).sum());
}
