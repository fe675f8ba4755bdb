//! The containers give back their memory, counted with the counting global allocator:
//!
//! * after a fill-and-drain cycle (boxed values pushed and popped on one thread, then
//!   pushed and popped by two threads at once) and a flush of the reclamation scheme,
//!   live allocations return to the level they had before the cycle (within 10%, and
//!   within [`SLACK`] allocations);
//! * a container dropped while it holds values frees them, and its nodes.
//!
//! The baseline is taken after one warm-up round of the same workload (as in
//! `strata-reclaim/tests/leak.rs`): the first round allocates per-thread records,
//! hazard slots, scan buffers and std's thread bookkeeping, which stay. The counter is
//! process-wide, so the tests of this file take a lock and run one at a time; what the
//! test harness allocates meanwhile (reporting the previous test) is transient, so the
//! final count is read again, after flushing again, until it settles (up to a second).
//!
//! Under miri the sizes shrink (the checks are the same).

use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use strata_primitives::alloc::{CountingAlloc, live_allocations, live_bytes};
use strata_queue::{ArrayQueue, MsQueue, Queue, TreiberStack};
use strata_reclaim::{Reclaim, epoch, hazard};

#[global_allocator]
static A: CountingAlloc = CountingAlloc;

/// Values per fill.
const N: usize = if cfg!(miri) { 64 } else { 100_000 };

/// Serializes the tests of this file: they all read the process-wide counter.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A reclamation scheme, with a way to free everything retired into it that nobody
/// protects any more.
trait Scheme: Reclaim {
    fn flush_all(&self);
}

impl Scheme for epoch::Epoch {
    fn flush_all(&self) {
        // Seal this thread's bag, wait for a grace period (two epoch steps), then
        // collect: every bag sealed before (ours, and those exited threads handed over)
        // has expired.
        epoch::flush();
        epoch::synchronize().expect("not pinned here");
        epoch::flush();
    }
}

impl Scheme for hazard::Hazard {
    fn flush_all(&self) {
        hazard::default_domain().eager_reclaim();
    }
}

impl Scheme for epoch::Domain {
    fn flush_all(&self) {
        self.pin().flush();
        self.register().synchronize().expect("not pinned here");
        self.pin().flush();
    }
}

impl Scheme for hazard::Domain {
    fn flush_all(&self) {
        self.eager_reclaim();
    }
}

/// Flushes both default domains (the only ones a thread's exit leaves garbage in that
/// outlives the thread and its containers).
fn flush_defaults() {
    epoch::Epoch.flush_all();
    hazard::Hazard.flush_all();
}

/// What the tests need of a container.
trait Fill: Sync {
    fn push(&self, v: Box<u64>);
    fn pop(&self) -> Option<Box<u64>>;
    /// Frees what the container's reclamation scheme holds and nobody protects.
    fn flush(&self);
}

impl<R: Scheme> Fill for Queue<Box<u64>, R> {
    fn push(&self, v: Box<u64>) {
        Queue::push(self, v)
    }
    fn pop(&self) -> Option<Box<u64>> {
        Queue::pop(self)
    }
    fn flush(&self) {
        self.reclaim().flush_all()
    }
}

impl<R: Scheme> Fill for MsQueue<Box<u64>, R> {
    fn push(&self, v: Box<u64>) {
        MsQueue::push(self, v)
    }
    fn pop(&self) -> Option<Box<u64>> {
        MsQueue::pop(self)
    }
    fn flush(&self) {
        self.reclaim().flush_all()
    }
}

impl<R: Scheme> Fill for TreiberStack<Box<u64>, R> {
    fn push(&self, v: Box<u64>) {
        TreiberStack::push(self, v)
    }
    fn pop(&self) -> Option<Box<u64>> {
        TreiberStack::pop(self)
    }
    fn flush(&self) {
        self.reclaim().flush_all()
    }
}

/// Made with a capacity of at least `N`, which the workloads never exceed.
impl Fill for ArrayQueue<Box<u64>> {
    fn push(&self, v: Box<u64>) {
        ArrayQueue::push(self, v).expect("the workloads push at most N values")
    }
    fn pop(&self) -> Option<Box<u64>> {
        ArrayQueue::pop(self)
    }
    /// No reclamation scheme: the ring is one allocation, made by `new`.
    fn flush(&self) {}
}

/// Reads the live allocations, flushing first, until they are at most `limit` (or a
/// second has passed); returns the last reading.
fn settle(limit: usize, flush: impl Fn()) -> usize {
    let mut now = usize::MAX;
    for _ in 0..100 {
        flush();
        now = live_allocations();
        if now <= limit {
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    now
}

/// How many live allocations more than the baseline a test accepts once it has
/// flushed: 10% of the baseline, and at most [`SLACK`].
fn limit(start: usize) -> usize {
    start + (start / 10).min(SLACK)
}

/// The absolute cap on the allowance. The baseline is about 430 allocations (mostly the
/// test harness's), so 10% alone would be about 43, more than what the schemes keep
/// when nobody flushes (measured: 19 to 32 over the explicit hazard domain and the
/// default epoch domain, from the partial bag and the retired list below the scan
/// threshold); a broken flush would pass. Measured with the flush: 0 or 1 more (the
/// harness recording the previous test's result).
const SLACK: usize = 8;

/// One fill-and-drain cycle: `N` values pushed then popped on this thread, then `N`
/// more pushed and popped by two threads at once. Returns the live allocations seen
/// when the container was full.
fn cycle<C: Fill>(c: &C) -> usize {
    for i in 0..N {
        c.push(Box::new(i as u64));
    }
    let full = live_allocations();
    let mut sum = 0;
    while let Some(v) = c.pop() {
        sum += *v;
    }
    assert_eq!(
        sum,
        (N as u64 - 1) * N as u64 / 2,
        "the drain lost or duplicated values"
    );
    let popped: usize = thread::scope(|s| {
        let ts: Vec<_> = (0..2)
            .map(|t| {
                s.spawn(move || {
                    let mut popped = 0;
                    for i in 0..N / 2 {
                        c.push(Box::new((t * N + i) as u64));
                        if i % 2 == 1 {
                            popped += c.pop().map_or(0, |_| 1);
                            popped += c.pop().map_or(0, |_| 1);
                        }
                    }
                    popped
                })
            })
            .collect();
        ts.into_iter().map(|t| t.join().unwrap()).sum()
    });
    let rest = std::iter::from_fn(|| c.pop()).count();
    assert_eq!(
        popped + rest,
        N / 2 * 2,
        "the concurrent round lost or duplicated values"
    );
    full
}

fn fill_and_drain_returns_memory<C: Fill>(name: &str, c: C) {
    let _serial = serial();
    // Warm-up: see the module docs.
    cycle(&c);
    c.flush();
    flush_defaults();
    let start = live_allocations();
    let full = cycle(&c);
    assert!(
        full >= start + N,
        "{name}: {N} boxed values in the container, but only {} live allocations more \
         (is the counting allocator installed?)",
        full.saturating_sub(start)
    );
    let after = settle(limit(start), || {
        c.flush();
        flush_defaults();
    });
    eprintln!("{name}: live allocations {start} before, {full} when full, {after} after");
    assert!(
        after <= limit(start),
        "{name}: {after} live allocations after a fill-and-drain cycle and a flush, \
         against {start} before ({} more)",
        after - start
    );
    // The container still works.
    c.push(Box::new(7));
    assert_eq!(c.pop().as_deref(), Some(&7));
}

/// On a fresh thread (whose exit drops its cached handles and registrations, and with
/// them the last references to a custom domain): fill a new container, pop a quarter
/// (so some nodes are retired too), drop it. Returns the live allocations before the
/// drop.
fn fill_and_drop<C: Fill>(make: &(impl Fn() -> C + Sync)) -> usize {
    thread::scope(|s| {
        s.spawn(|| {
            let c = make();
            for i in 0..N {
                c.push(Box::new(i as u64));
            }
            for _ in 0..N / 4 {
                assert!(c.pop().is_some());
            }
            let full = live_allocations();
            drop(c);
            full
        })
        .join()
        .unwrap()
    })
}

fn drop_frees_held_values<C: Fill>(name: &str, make: impl Fn() -> C + Sync) {
    let _serial = serial();
    fill_and_drop(&make);
    flush_defaults();
    let start = live_allocations();
    let full = fill_and_drop(&make);
    assert!(
        full >= start + N * 3 / 4,
        "{name}: {} values held, but only {} live allocations more",
        N * 3 / 4,
        full.saturating_sub(start)
    );
    let after = settle(limit(start), flush_defaults);
    eprintln!("{name}: live allocations {start} before, {full} when full, {after} after drop");
    assert!(
        after <= limit(start),
        "{name}: {after} live allocations after dropping a container that held values, \
         against {start} before ({} more)",
        after - start
    );
}

#[test]
fn lprq_epoch_returns_memory() {
    fill_and_drain_returns_memory("Queue<Epoch>", Queue::with_reclaim(epoch::Epoch));
}

#[test]
fn lprq_hazard_returns_memory() {
    fill_and_drain_returns_memory("Queue<Hazard>", Queue::with_reclaim(hazard::Hazard));
}

#[test]
fn lprq_small_rings_return_memory() {
    fill_and_drain_returns_memory(
        "Queue<epoch::Domain>, rings of 16",
        Queue::with_reclaim_and_ring_size(epoch::Domain::new(), 16),
    );
}

#[test]
fn lprq_drop_frees_held_values() {
    drop_frees_held_values("Queue<Epoch>", || Queue::with_reclaim(epoch::Epoch));
    drop_frees_held_values("Queue<Hazard>", || Queue::with_reclaim(hazard::Hazard));
}

/// Bytes per queued `u64` in `Queue` and in crossbeam's `SegQueue`, measured as the
/// growth of live heap bytes while one thread holds `N` values (printed with
/// `--nocapture`; the README quotes it). Checks only what the module docs promise: a
/// cell is the value plus 16 bytes, so `Queue` needs at most 24 bytes per `u64` plus
/// ring headers (and a ring's unused cells, under one ring in all).
#[test]
fn bytes_per_queued_u64_beside_segqueue() {
    let _serial = serial();
    fn per_item(fill: impl FnOnce(usize) -> Box<dyn std::any::Any>) -> f64 {
        let before = live_bytes();
        let held = fill(N);
        let grew = live_bytes().saturating_sub(before);
        drop(held);
        grew as f64 / N as f64
    }
    let ours = per_item(|n| {
        let q = Queue::<u64>::new();
        for i in 0..n as u64 {
            q.push(i);
        }
        Box::new(q)
    });
    let peer = per_item(|n| {
        let q = crossbeam_queue::SegQueue::<u64>::new();
        for i in 0..n as u64 {
            q.push(i);
        }
        Box::new(q)
    });
    eprintln!("bytes per queued u64: strata Queue {ours:.2}, crossbeam SegQueue {peer:.2}");
    let ring_bytes = (Queue::<u64>::new().ring_size() * 24 + 1024) as f64;
    assert!(
        ours <= 24.0 + ring_bytes / N as f64 + 1.0,
        "Queue holds {ours:.2} bytes per u64"
    );
    assert!(
        peer > 8.0,
        "SegQueue measured at {peer:.2} bytes per u64: not measured"
    );
}

#[test]
fn ms_queue_epoch_returns_memory() {
    fill_and_drain_returns_memory("MsQueue<Epoch>", MsQueue::with_reclaim(epoch::Epoch));
}

#[test]
fn ms_queue_hazard_returns_memory() {
    fill_and_drain_returns_memory("MsQueue<Hazard>", MsQueue::with_reclaim(hazard::Hazard));
}

#[test]
fn ms_queue_epoch_domain_returns_memory() {
    fill_and_drain_returns_memory(
        "MsQueue<epoch::Domain>",
        MsQueue::with_reclaim(epoch::Domain::new()),
    );
}

#[test]
fn ms_queue_hazard_domain_returns_memory() {
    fill_and_drain_returns_memory(
        "MsQueue<hazard::Domain>",
        MsQueue::with_reclaim(hazard::Domain::new()),
    );
}

#[test]
fn treiber_epoch_returns_memory() {
    fill_and_drain_returns_memory(
        "TreiberStack<Epoch>",
        TreiberStack::with_reclaim(epoch::Epoch),
    );
}

#[test]
fn treiber_hazard_returns_memory() {
    fill_and_drain_returns_memory(
        "TreiberStack<Hazard>",
        TreiberStack::with_reclaim(hazard::Hazard),
    );
}

#[test]
fn treiber_epoch_domain_returns_memory() {
    fill_and_drain_returns_memory(
        "TreiberStack<epoch::Domain>",
        TreiberStack::with_reclaim(epoch::Domain::new()),
    );
}

#[test]
fn treiber_hazard_domain_returns_memory() {
    fill_and_drain_returns_memory(
        "TreiberStack<hazard::Domain>",
        TreiberStack::with_reclaim(hazard::Domain::new()),
    );
}

#[test]
fn array_queue_returns_memory() {
    fill_and_drain_returns_memory("ArrayQueue", ArrayQueue::new(N));
}

#[test]
fn ms_queue_drop_frees_held_values() {
    drop_frees_held_values("MsQueue<Epoch>", || MsQueue::with_reclaim(epoch::Epoch));
    drop_frees_held_values("MsQueue<Hazard>", || MsQueue::with_reclaim(hazard::Hazard));
    drop_frees_held_values("MsQueue<epoch::Domain>", || {
        MsQueue::with_reclaim(epoch::Domain::new())
    });
    drop_frees_held_values("MsQueue<hazard::Domain>", || {
        MsQueue::with_reclaim(hazard::Domain::new())
    });
}

#[test]
fn treiber_drop_frees_held_values() {
    drop_frees_held_values("TreiberStack<Epoch>", || {
        TreiberStack::with_reclaim(epoch::Epoch)
    });
    drop_frees_held_values("TreiberStack<Hazard>", || {
        TreiberStack::with_reclaim(hazard::Hazard)
    });
    drop_frees_held_values("TreiberStack<epoch::Domain>", || {
        TreiberStack::with_reclaim(epoch::Domain::new())
    });
    drop_frees_held_values("TreiberStack<hazard::Domain>", || {
        TreiberStack::with_reclaim(hazard::Domain::new())
    });
}

#[test]
fn array_queue_drop_frees_held_values() {
    // Capacity `N`: filling it moves the tail into the next lap, and popping a quarter
    // moves the head off index 0, so the drop walks from the middle of the ring across
    // a lap boundary. (`conservation.rs` drops rings at every offset, with small
    // capacities.)
    drop_frees_held_values("ArrayQueue", || ArrayQueue::new(N));
}
