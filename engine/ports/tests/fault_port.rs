//! `FaultyPort` over an in-memory port: each fault does what it says, nothing is lost or
//! freed twice, the decisions are seeded, and held frames are bounded and freed on drop.
use std::cell::Cell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;

use engine::port::{Frame, IdleSupport, Port, VecFrame};
use engine::rng::SeededRng;
use engine::time::{Clock, Duration, Instant};
use engine::wire::EthernetAddress;
use ports::fault::{FaultConfig, FaultCounters, FaultDirection, FaultyPort};

/// A virtual clock the test moves by hand.
#[derive(Clone, Default)]
struct TestClock(Rc<Cell<Instant>>);

impl TestClock {
    fn set(&self, t: Instant) {
        self.0.set(t);
    }
    fn advance(&self, d: Duration) {
        self.0.set(self.0.get() + d);
    }
}

impl Clock for TestClock {
    fn now(&self) -> Instant {
        self.0.get()
    }
}

/// A frame that holds a reference to a shared token, so a test can count live frames.
#[derive(Debug)]
struct TokenFrame {
    frame: VecFrame,
    _token: Arc<()>,
}

impl Frame for TokenFrame {
    fn data(&self) -> &[u8] {
        self.frame.data()
    }
    fn data_mut(&mut self) -> &mut [u8] {
        self.frame.data_mut()
    }
    fn set_len(&mut self, len: usize) -> bool {
        self.frame.set_len(len)
    }
    fn capacity(&self) -> usize {
        self.frame.capacity()
    }
}

/// An in-memory port: queues of frames, a bounded pool for `alloc`, a device that takes at
/// most `tx_room` frames per `send_burst`.
struct MemPort<F> {
    rx: VecDeque<F>,
    tx: Vec<F>,
    tx_room: usize,
    alloc_budget: usize,
    make: Box<dyn FnMut(usize) -> F>,
    waited: Option<Duration>,
}

impl<F> MemPort<F> {
    fn new(make: impl FnMut(usize) -> F + 'static) -> Self {
        MemPort {
            rx: VecDeque::new(),
            tx: Vec::new(),
            tx_room: usize::MAX,
            alloc_budget: usize::MAX,
            make: Box::new(make),
            waited: None,
        }
    }
}

impl<F: Frame> Port for MemPort<F> {
    type Frame = F;

    fn recv_burst(&mut self, out: &mut Vec<F>, max: usize) -> usize {
        let n = max.min(self.rx.len());
        out.extend(self.rx.drain(..n));
        n
    }

    fn send_burst(&mut self, frames: &mut Vec<F>) -> usize {
        let n = self.tx_room.min(frames.len());
        self.tx.extend(frames.drain(..n));
        n
    }

    fn alloc(&mut self, len: usize) -> Option<F> {
        if self.alloc_budget == 0 {
            return None;
        }
        self.alloc_budget -= 1;
        Some((self.make)(len))
    }

    fn mac(&self) -> EthernetAddress {
        EthernetAddress([2, 0, 0, 0, 0, 1])
    }

    fn mtu(&self) -> usize {
        1500
    }

    fn idle_support(&self) -> IdleSupport {
        IdleSupport::Interrupt
    }

    fn wait_rx(&mut self, timeout: Duration) -> bool {
        self.waited = Some(timeout);
        true
    }
}

fn vec_port() -> MemPort<VecFrame> {
    MemPort::new(VecFrame::new)
}

/// Frame `id`: 60 to 123 bytes, the id in the first 8, the rest derived from it.
fn frame(id: u64) -> VecFrame {
    let len = 60 + (id % 64) as usize;
    let mut bytes = vec![0u8; len];
    bytes[..8].copy_from_slice(&id.to_be_bytes());
    for (i, b) in bytes.iter_mut().enumerate().skip(8) {
        *b = (id as u8).wrapping_mul(31).wrapping_add(i as u8);
    }
    VecFrame::from_bytes(&bytes)
}

fn id_of(f: &impl Frame) -> u64 {
    let mut id = [0u8; 8];
    id.copy_from_slice(&f.data()[..8]);
    u64::from_be_bytes(id)
}

fn faulty(config: &str) -> (FaultyPort<MemPort<VecFrame>, TestClock>, TestClock) {
    let clock = TestClock::default();
    let port = FaultyPort::new(vec_port(), clock.clone(), config.parse().unwrap()).unwrap();
    (port, clock)
}

/// Pushes frames `ids` into the inner port and receives everything ready, in bursts of 32.
fn push_and_recv<C: Clock>(
    port: &mut FaultyPort<MemPort<VecFrame>, C>,
    ids: impl IntoIterator<Item = u64>,
) -> Vec<VecFrame> {
    port.inner_mut().rx.extend(ids.into_iter().map(frame));
    recv_all(port)
}

fn recv_all<C: Clock>(port: &mut FaultyPort<MemPort<VecFrame>, C>) -> Vec<VecFrame> {
    let mut out = Vec::new();
    loop {
        let before = out.len();
        let n = port.recv_burst(&mut out, 32);
        assert!(n <= 32 && out.len() == before + n);
        if n == 0 && port.inner().rx.is_empty() {
            return out;
        }
    }
}

#[test]
fn no_fault_passes_everything_in_order() {
    let (mut port, _clock) = faulty("dir=both");
    let out = push_and_recv(&mut port, 0..1000);
    assert_eq!(out, (0..1000).map(frame).collect::<Vec<_>>());
    let mut tx: Vec<VecFrame> = (0..100).map(frame).collect();
    assert_eq!(port.send_burst(&mut tx), 100);
    assert!(tx.is_empty());
    assert_eq!(port.inner().tx, (0..100).map(frame).collect::<Vec<_>>());
    assert_eq!(port.rx_counters().passed, 1000);
    assert_eq!(port.tx_counters().passed, 100);
    assert_eq!(port.rx_held() + port.tx_held(), 0);
}

#[test]
fn five_percent_drop_over_20k_frames_is_within_five_sigma() {
    // Binomial(20000, 0.05): mean 1000, sigma 30.8.
    for seed in 1..=5 {
        let (mut port, _clock) = faulty(&format!("drop=0.05,seed={seed}"));
        let out = push_and_recv(&mut port, 0..20_000);
        let c = port.rx_counters();
        assert!((846..=1154).contains(&c.dropped), "seed {seed}: {c:?}");
        assert_eq!(c.dropped + c.passed, 20_000);
        assert_eq!(out.len() as u64, c.passed);
        // Only drops: the survivors keep their order and bytes.
        let ids: Vec<u64> = out.iter().map(id_of).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert!(out.iter().all(|f| *f == frame(id_of(f))));
    }
}

#[test]
fn duplicates_are_byte_identical_and_follow_their_original() {
    let (mut port, _clock) = faulty("dup=0.2,seed=3");
    let out = push_and_recv(&mut port, 0..5000);
    let c = port.rx_counters();
    assert!(c.duplicated > 800 && c.duplicated < 1200, "{c:?}");
    assert_eq!(c.dup_no_buffer, 0);
    assert_eq!(out.len() as u64, 5000 + c.duplicated);
    let mut expected = 0;
    let mut copies = 0;
    let mut i = 0;
    while i < out.len() {
        assert_eq!(out[i], frame(expected));
        if out.get(i + 1).is_some_and(|f| id_of(f) == expected) {
            assert_eq!(out[i + 1].data(), out[i].data());
            copies += 1;
            i += 1;
        }
        expected += 1;
        i += 1;
    }
    assert_eq!(expected, 5000);
    assert_eq!(copies, c.duplicated);
}

#[test]
fn duplication_without_a_free_buffer_is_skipped_and_counted() {
    let (mut port, _clock) = faulty("dup=1");
    port.inner_mut().alloc_budget = 10;
    let out = push_and_recv(&mut port, 0..100);
    let c = port.rx_counters();
    assert_eq!((c.duplicated, c.dup_no_buffer, c.passed), (10, 90, 100));
    assert_eq!(out.len(), 110);
}

#[test]
fn reordering_changes_the_order_but_loses_nothing() {
    let (mut port, clock) = faulty("reorder=0.1,reorder_after=3,reorder_timeout=1s,seed=11");
    let mut out = push_and_recv(&mut port, 0..10_000);
    let c = port.rx_counters();
    assert!(c.reordered > 800 && c.reordered < 1200, "{c:?}");
    assert_eq!(c.reordered + c.passed, 10_000);
    // Whatever is still held comes out once its timeout passes.
    clock.advance(Duration::from_secs(1));
    out.extend(recv_all(&mut port));
    assert_eq!(port.rx_held(), 0);
    let ids: Vec<u64> = out.iter().map(id_of).collect();
    assert_ne!(ids, (0..10_000).collect::<Vec<_>>());
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..10_000).collect::<Vec<_>>());
    assert!(out.iter().all(|f| *f == frame(id_of(f))));
}

#[test]
fn a_reordered_frame_waits_for_exactly_reorder_after_later_frames() {
    let (mut port, _clock) = faulty("reorder=1,reorder_after=2,hold=1,reorder_timeout=1s");
    // Frame 0 is held; the hold is full, so 1 and 2 pass (counted as hold_full), and 0
    // follows them. Then 3 is held in its turn, waiting for two more frames.
    let out = push_and_recv(&mut port, 0..4);
    let ids: Vec<u64> = out.iter().map(id_of).collect();
    assert_eq!(ids, vec![1, 2, 0]);
    let c = port.rx_counters();
    assert_eq!((c.reordered, c.hold_full, c.passed), (2, 2, 2));
    assert_eq!(port.rx_held(), 1);
}

#[test]
fn reordered_frames_with_no_followers_come_out_after_the_timeout() {
    let (mut port, clock) = faulty("reorder=1,reorder_timeout=500us");
    assert!(push_and_recv(&mut port, 0..5).is_empty());
    assert_eq!(port.rx_held(), 5);
    assert_eq!(port.next_release(), Some(Instant::from_micros(500)));
    clock.set(Instant::from_micros(499));
    assert!(recv_all(&mut port).is_empty());
    clock.set(Instant::from_micros(500));
    let ids: Vec<u64> = recv_all(&mut port).iter().map(id_of).collect();
    assert_eq!(ids, vec![0, 1, 2, 3, 4]);
    assert_eq!(port.next_release(), None);
}

#[test]
fn delay_releases_nothing_early_and_everything_on_time_in_order() {
    let delay = Duration::from_micros(200);
    let step = Duration::from_micros(10);
    let (mut port, clock) = faulty("delay=200us");
    let mut rng = SeededRng::new(5);
    let mut arrival = Vec::new();
    let mut delivered = Vec::new();
    let mut next_id = 0u64;
    for _ in 0..3000 {
        let now = clock.now();
        for _ in 0..rng.below(4) {
            port.inner_mut().rx.push_back(frame(next_id));
            arrival.push(now);
            next_id += 1;
        }
        let mut out = Vec::new();
        port.recv_burst(&mut out, 32);
        delivered.extend(out.iter().map(|f| (id_of(f), now)));
        clock.advance(step);
    }
    for _ in 0..30 {
        let now = clock.now();
        let mut out = Vec::new();
        port.recv_burst(&mut out, 32);
        delivered.extend(out.iter().map(|f| (id_of(f), now)));
        clock.advance(step);
    }
    assert_eq!(delivered.len() as u64, next_id);
    assert_eq!(port.rx_counters().delayed, next_id);
    for (i, &(id, at)) in delivered.iter().enumerate() {
        assert_eq!(id, i as u64, "a fixed delay keeps the order");
        let due = arrival[id as usize] + delay;
        assert!(at >= due, "frame {id} released early: {at:?} < {due:?}");
        assert!(
            at < due + step,
            "frame {id} not released at the first poll after due"
        );
    }
}

#[test]
fn a_delayed_frame_is_due_at_exactly_now_plus_delay() {
    let (mut port, clock) = faulty("delay=200us");
    clock.set(Instant::from_micros(1000));
    assert!(push_and_recv(&mut port, 0..1).is_empty());
    assert_eq!(port.next_release(), Some(Instant::from_micros(1200)));
    clock.set(Instant::from_nanos(1_199_999));
    assert!(recv_all(&mut port).is_empty());
    clock.set(Instant::from_micros(1200));
    assert_eq!(recv_all(&mut port), vec![frame(0)]);
}

#[test]
fn held_frames_are_bounded_and_the_overflow_passes_counted() {
    let (mut port, clock) = faulty("delay=1ms,hold=10");
    let out = push_and_recv(&mut port, 0..50);
    let ids: Vec<u64> = out.iter().map(id_of).collect();
    assert_eq!(ids, (10..50).collect::<Vec<_>>());
    let c = port.rx_counters();
    assert_eq!((c.delayed, c.hold_full, c.passed), (10, 40, 40));
    assert_eq!(port.rx_held(), 10);
    clock.advance(Duration::from_millis(1));
    let ids: Vec<u64> = recv_all(&mut port).iter().map(id_of).collect();
    assert_eq!(ids, (0..10).collect::<Vec<_>>());
}

/// Every fault at once, `n` frames in, everything out.
fn run_mix(seed: u64) -> (Vec<VecFrame>, FaultCounters) {
    let (mut port, clock) = faulty(&format!(
        "drop=0.05,dup=0.05,reorder=0.05,delay=100us,delay_p=0.3,seed={seed},hold=64"
    ));
    let mut out = Vec::new();
    for chunk in 0..200u64 {
        out.extend(push_and_recv(&mut port, chunk * 50..(chunk + 1) * 50));
        clock.advance(Duration::from_micros(20));
    }
    clock.advance(Duration::from_secs(1));
    out.extend(recv_all(&mut port));
    assert_eq!(port.rx_held(), 0);
    (out, port.rx_counters())
}

#[test]
fn same_seed_same_decisions_other_seed_other_decisions() {
    let (a, ca) = run_mix(42);
    let (b, cb) = run_mix(42);
    let (c, cc) = run_mix(43);
    assert_eq!(a, b);
    assert_eq!(ca, cb);
    assert_ne!(a, c);
    assert_ne!(ca, cc);
    for (out, counters) in [(&a, ca), (&c, cc)] {
        assert_eq!(counters.frames(), 10_000);
        assert!(counters.dropped > 0 && counters.reordered > 0 && counters.delayed > 0);
        assert_eq!(
            out.len() as u64,
            10_000 - counters.dropped + counters.duplicated,
            "{counters:?}"
        );
        assert!(out.iter().all(|f| *f == frame(id_of(f))));
    }
}

#[test]
fn tx_faults_leave_rx_alone() {
    let (mut port, _clock) = faulty("drop=0.5,dir=tx,seed=9");
    let mut tx: Vec<VecFrame> = (0..1000).map(frame).collect();
    assert_eq!(port.send_burst(&mut tx), 1000);
    let c = port.tx_counters();
    assert!(c.dropped > 400 && c.dropped < 600, "{c:?}");
    assert_eq!(port.inner().tx.len() as u64, c.passed);
    let rx = push_and_recv(&mut port, 0..1000);
    assert_eq!(rx.len(), 1000);
    assert_eq!(port.rx_counters().dropped, 0);
}

#[test]
fn delayed_tx_frames_go_out_on_a_later_poll() {
    let (mut port, clock) = faulty("delay=100us,dir=tx");
    let mut tx: Vec<VecFrame> = (0..5).map(frame).collect();
    assert_eq!(port.send_burst(&mut tx), 5);
    assert!(port.inner().tx.is_empty());
    assert_eq!(port.tx_held(), 5);
    clock.advance(Duration::from_nanos(99_999));
    assert_eq!(port.recv_burst(&mut Vec::new(), 32), 0);
    assert!(port.inner().tx.is_empty());
    clock.advance(Duration::from_nanos(1));
    // The poll loop calls recv_burst on every iteration: that is enough to release them.
    port.recv_burst(&mut Vec::new(), 32);
    assert_eq!(port.inner().tx, (0..5).map(frame).collect::<Vec<_>>());
    assert_eq!(port.tx_held(), 0);
}

#[test]
fn tx_backlog_passes_the_devices_back_pressure_on() {
    let (mut port, _clock) = faulty("dup=1,dir=tx");
    port.inner_mut().tx_room = 3;
    let mut tx: Vec<VecFrame> = (0..4).map(frame).collect();
    // All 4 are taken; 8 frames with their copies, the device takes 3.
    assert_eq!(port.send_burst(&mut tx), 4);
    assert_eq!(port.tx_held(), 5);
    // The backlog goes first and new frames are refused while it lasts.
    tx.push(frame(4));
    assert_eq!(port.send_burst(&mut tx), 0);
    assert_eq!(tx.len(), 1);
    assert_eq!(port.tx_held(), 2);
    port.inner_mut().tx_room = usize::MAX;
    assert_eq!(port.send_burst(&mut tx), 1);
    let ids: Vec<u64> = port.inner().tx.iter().map(id_of).collect();
    assert_eq!(ids, vec![0, 0, 1, 1, 2, 2, 3, 3, 4, 4]);
}

#[test]
fn dropping_the_port_frees_held_frames() {
    let token = Arc::new(());
    let make = {
        let token = token.clone();
        move |len| TokenFrame {
            frame: VecFrame::new(len),
            _token: token.clone(),
        }
    };
    let clock = TestClock::default();
    let config: FaultConfig = "delay=1ms,dup=0.5,dir=both".parse().unwrap();
    let mut port = FaultyPort::new(MemPort::new(make), clock.clone(), config).unwrap();
    for _ in 0..20 {
        let f = port.alloc(64).unwrap();
        port.inner_mut().rx.push_back(f);
    }
    let mut tx: Vec<TokenFrame> = (0..20).map(|_| port.alloc(64).unwrap()).collect();
    assert_eq!(port.send_burst(&mut tx), 20);
    assert!(port.recv_burst(&mut Vec::new(), 32) == 0);
    assert!(port.rx_held() >= 20 && port.tx_held() >= 20);
    assert_eq!(port.rx_counters().delayed + port.tx_counters().delayed, 40);
    let live = Arc::strong_count(&token);
    // The held frames, the factory's token, and ours.
    assert_eq!(live, port.rx_held() + port.tx_held() + 2);
    let inner = port.into_inner();
    assert_eq!(Arc::strong_count(&token), 2);
    drop(inner);
    assert_eq!(Arc::strong_count(&token), 1);
}

#[test]
fn wait_rx_does_not_sleep_past_the_next_release() {
    let (mut port, clock) = faulty("delay=200us");
    assert_eq!(port.idle_support(), IdleSupport::Interrupt);
    assert!(port.wait_rx(Duration::from_millis(100)));
    assert_eq!(port.inner().waited, Some(Duration::from_millis(100)));
    push_and_recv(&mut port, 0..1);
    clock.advance(Duration::from_micros(50));
    port.inner_mut().waited = None;
    assert!(port.wait_rx(Duration::from_millis(100)));
    assert_eq!(port.inner().waited, Some(Duration::from_micros(150)));
    clock.advance(Duration::from_micros(150));
    port.inner_mut().waited = None;
    assert!(port.wait_rx(Duration::from_millis(100)));
    assert_eq!(port.inner().waited, None, "a due frame returns at once");
}

#[test]
fn faulty_port_of_a_send_port_is_send() {
    fn is_send<T: Send>() {}
    is_send::<FaultyPort<engine::sim::SimPort, engine::time::MonotonicClock>>();
    assert_eq!(FaultDirection::default(), FaultDirection::Rx);
}
