//! Queue workloads: Strata's LPRQ queue (`strata_queue::Queue`), its Michael–Scott queue
//! (over epochs and over hazard pointers)
//! and its bounded array queue beside crossbeam-queue, concurrent-queue and a
//! `Mutex<VecDeque>`.
//!
//! * `queue/pairs-unbounded`, `queue/pairs-bounded`: every thread loops push then pop on
//!   one shared queue, pre-filled with `PAIRS_PREFILL` (8) items per thread, so a pop
//!   always finds an item (every thread pushes before it pops).
//! * `queue/prodcons-unbounded`, `queue/prodcons-bounded`: half the threads push, half
//!   pop. Thread `i` is a producer if `i` is even, a consumer if odd, so an odd thread
//!   count has one producer more than consumers (3 threads: 2 producers, 1 consumer).
//!   The queue starts empty.
//!
//! The bounded workloads run the same two bodies over queues of capacity `CAPACITY`
//! (1024).
//!
//! # Counting
//!
//! An op is a successful push or a pop that returned an item: a push into a full queue
//! and a pop from an empty one count nothing. In the pairs workloads that makes two ops
//! per iteration (a push can fail only in the bounded ones, and only past 113 threads,
//! when the prefill and one in-flight item per thread exceed the capacity; the body
//! then goes on to the pop).
//!
//! # The producer–consumer backlog
//!
//! So that producers cannot run away from consumers (an unbounded queue would grow
//! without limit, and the figure would measure the allocator), producers and consumers
//! share one cache-padded backlog counter, updated amortized: a producer adds `CHUNK`
//! (64) after every `CHUNK` successful pushes, a consumer subtracts `CHUNK` after every
//! `CHUNK` successful pops, so it costs one read-modify-write per 64 ops. Between two
//! batches of `BATCH` (64) push attempts a producer reads it and, while it is above
//! `BACKLOG_LIMIT` (4096), calls [`std::thread::yield_now`] instead of pushing (and
//! counts nothing). The queue length therefore stays below about
//! `BACKLOG_LIMIT + 2 * CHUNK * threads`. The bounded queues (capacity 1024 < 4096)
//! are held back by being full before the counter ever is.
//!
//! A consumer that finds the queue empty tries again after a [`std::hint::spin_loop`],
//! and so does a producer that finds it full; after a whole batch of such failures the
//! thread calls `yield_now`, so that a thread spinning on an empty (or full) queue does
//! not keep the other role off a core. A producer makes its first batch of attempts
//! before it first looks at the stop flag (see `produce`), so a short run on a loaded
//! machine never ends with no operations at all.
//!
//! # Single-thread paths
//!
//! Every implementation has a fixed-iteration path for `--callgrind`; one iteration is
//! one push plus one pop (two ops). Pairs: push then pop on a queue holding
//! `PAIRS_PREFILL` items. Producer–consumer: bursts of `CHUNK` pushes followed by as
//! many pops, so the queue goes from empty to 64 deep and back.
//!
//! All the queues run the same workload code through one small trait, `Queue`.

use std::collections::VecDeque;
use std::hint::{black_box, spin_loop};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use concurrent_queue::ConcurrentQueue;
use crossbeam_queue::SegQueue;
use strata_primitives::CachePadded;
use strata_queue::MsQueue;
use strata_reclaim::Reclaim;
use strata_reclaim::hazard::Hazard;

use crate::harness::{BATCH, Impl, Kind, Sample, Workload, repeat_until, timed_threads};

/// The capacity of every bounded queue.
const CAPACITY: usize = 1024;

/// Items pushed per thread before the clock starts, in the pairs workloads.
const PAIRS_PREFILL: u64 = 8;

/// Granularity of the backlog counter: one read-modify-write per this many ops.
const CHUNK: u64 = 64;

/// The backlog above which a producer yields instead of pushing.
const BACKLOG_LIMIT: isize = 4096;

/// Registers `queue/pairs-unbounded`, `queue/prodcons-unbounded`,
/// `queue/pairs-bounded` and `queue/prodcons-bounded`.
pub fn register(v: &mut Vec<Workload>) {
    v.push(Workload {
        name: "queue/pairs-unbounded",
        help: "An unbounded MPMC queue of u64 shared by all threads, pre-filled with 8 items per thread; every thread loops push then pop (two ops per iteration).",
        unit: "ops/s",
        min_threads: 1,
        max_threads: None,
        spread: false,
        impls: unbounded(Shape::Pairs),
    });
    v.push(Workload {
        name: "queue/prodcons-unbounded",
        help: "An unbounded MPMC queue of u64, initially empty: even-numbered threads push and odd-numbered threads pop (an odd count has one producer more); producers yield while a shared backlog counter (updated every 64 ops) is above 4096; ops = successful pushes + pops that returned an item.",
        unit: "ops/s",
        min_threads: 2,
        max_threads: None,
        spread: false,
        impls: unbounded(Shape::ProdCons),
    });
    v.push(Workload {
        name: "queue/pairs-bounded",
        help: "A bounded MPMC queue of u64 (capacity 1024) shared by all threads, pre-filled with 8 items per thread; every thread loops push then pop (ops = successful pushes + pops that returned an item).",
        unit: "ops/s",
        min_threads: 1,
        max_threads: None,
        spread: false,
        impls: bounded(Shape::Pairs),
    });
    v.push(Workload {
        name: "queue/prodcons-bounded",
        help: "A bounded MPMC queue of u64 (capacity 1024), initially empty: even-numbered threads push and odd-numbered threads pop (an odd count has one producer more), retrying when full or empty; ops = successful pushes + pops that returned an item.",
        unit: "ops/s",
        min_threads: 2,
        max_threads: None,
        spread: false,
        impls: bounded(Shape::ProdCons),
    });
}

/// The unbounded queues, running `shape`.
fn unbounded(shape: Shape) -> Vec<Impl> {
    vec![
        imp("strata-lprq", Kind::Strata, shape, strata_queue::Queue::<u64>::new),
        imp("strata-ms-epoch", Kind::Strata, shape, MsQueue::<u64>::new),
        imp("strata-ms-hazard", Kind::Strata, shape, || {
            MsQueue::<u64, Hazard>::with_reclaim(Hazard)
        }),
        imp(
            "crossbeam-segqueue",
            Kind::Peer,
            shape,
            SegQueue::<u64>::new,
        ),
        imp(
            "concurrent-queue",
            Kind::Peer,
            shape,
            ConcurrentQueue::<u64>::unbounded,
        ),
        imp("mutex-vecdeque", Kind::Peer, shape, MutexQueue::unbounded),
    ]
}

/// The bounded queues, of capacity `CAPACITY`, running `shape`.
fn bounded(shape: Shape) -> Vec<Impl> {
    vec![
        imp("strata-array", Kind::Strata, shape, || {
            strata_queue::ArrayQueue::<u64>::new(CAPACITY)
        }),
        imp("crossbeam-arrayqueue", Kind::Peer, shape, || {
            crossbeam_queue::ArrayQueue::<u64>::new(CAPACITY)
        }),
        imp("concurrent-queue", Kind::Peer, shape, || {
            ConcurrentQueue::<u64>::bounded(CAPACITY)
        }),
        imp("mutex-vecdeque", Kind::Peer, shape, || {
            MutexQueue::bounded(CAPACITY)
        }),
    ]
}

/// One implementation of a queue workload: a fresh queue from `make` for every timed
/// run and every fixed run.
fn imp<Q: Queue + 'static>(name: &'static str, kind: Kind, shape: Shape, make: fn() -> Q) -> Impl {
    Impl::new(name, kind, move |threads, duration| {
        shape.timed(&make(), threads, duration)
    })
    .with_fixed(move |iters| shape.fixed(&make(), iters))
}

// ---------------------------------------------------------------------------------
// The workloads, shared by every queue.

/// What the queue workloads need of a queue.
trait Queue: Sync {
    /// Appends `value`; `false` if the queue is full (only bounded queues are).
    fn push(&self, value: u64) -> bool;
    /// Takes the oldest value, if any.
    fn pop(&self) -> Option<u64>;
}

/// Which of the two workload bodies to run.
#[derive(Clone, Copy, Debug)]
enum Shape {
    /// Every thread loops push then pop.
    Pairs,
    /// Even threads push, odd threads pop.
    ProdCons,
}

impl Shape {
    fn timed(self, q: &impl Queue, threads: usize, duration: Duration) -> Sample {
        match self {
            Shape::Pairs => pairs_timed(q, threads, duration),
            Shape::ProdCons => prodcons_timed(q, threads, duration),
        }
    }

    fn fixed(self, q: &impl Queue, iters: u64) {
        match self {
            Shape::Pairs => pairs_fixed(q, iters),
            Shape::ProdCons => prodcons_fixed(q, iters),
        }
    }
}

fn prefill(q: &impl Queue, items: u64) {
    for v in 0..items {
        black_box(q.push(v));
    }
}

/// One pairs iteration: a push then a pop. Returns the ops done (successful push,
/// pop that returned an item). Each thread pushes its own distinct values.
#[inline]
fn pair_op(q: &impl Queue, next: &mut u64) -> u64 {
    let pushed = q.push(*next);
    *next = next.wrapping_add(1);
    let popped = q.pop();
    let ops = u64::from(pushed) + u64::from(popped.is_some());
    black_box(popped);
    ops
}

fn pairs_timed(q: &impl Queue, threads: usize, duration: Duration) -> Sample {
    prefill(q, threads as u64 * PAIRS_PREFILL);
    timed_threads(threads, duration, |i, stop| {
        let mut next = (i as u64 + 1) << 40;
        let mut ops = 0u64;
        repeat_until(stop, BATCH, || ops += pair_op(q, &mut next));
        ops
    })
}

fn pairs_fixed(q: &impl Queue, iters: u64) {
    prefill(q, PAIRS_PREFILL);
    let mut next = 1u64 << 40;
    for _ in 0..iters {
        black_box(pair_op(q, &mut next));
    }
}

/// Whether thread `thread` of a producer–consumer run is a producer (even) or a
/// consumer (odd).
fn is_producer(thread: usize) -> bool {
    thread.is_multiple_of(2)
}

fn prodcons_timed(q: &impl Queue, threads: usize, duration: Duration) -> Sample {
    let backlog = CachePadded::new(AtomicIsize::new(0));
    timed_threads(threads, duration, |i, stop| {
        if is_producer(i) {
            produce(q, &backlog, i, stop)
        } else {
            consume(q, &backlog, stop)
        }
    })
}

/// A producer: batches of [`BATCH`] push attempts; a yield after a batch that found the
/// queue full every time; between batches, a look at the stop flag and then yields
/// while the backlog is above [`BACKLOG_LIMIT`]. Returns the successful pushes.
///
/// The first batch runs before the first look at the stop flag: a run whose producers
/// the scheduler kept off the cores until the stop (a short run on a loaded machine)
/// then still counts the items they pushed (inside the timed window, which ends at the
/// last join) instead of doing no operations at all, which the runner would report as
/// a failure.
fn produce(q: &impl Queue, backlog: &AtomicIsize, index: usize, stop: &AtomicBool) -> u64 {
    let mut next = (index as u64 + 1) << 40;
    let mut pushed = 0u64;
    loop {
        let before = pushed;
        for _ in 0..BATCH {
            if q.push(next) {
                next = next.wrapping_add(1);
                pushed += 1;
                if pushed.is_multiple_of(CHUNK) {
                    backlog.fetch_add(CHUNK as isize, Ordering::Relaxed);
                }
            } else {
                spin_loop();
            }
        }
        if pushed == before {
            // A whole batch found the queue full: let a consumer have the core.
            thread::yield_now();
        }
        loop {
            if stop.load(Ordering::Relaxed) {
                return pushed;
            }
            if backlog.load(Ordering::Relaxed) <= BACKLOG_LIMIT {
                break;
            }
            thread::yield_now();
        }
    }
}

/// A consumer: batches of [`BATCH`] pops, a yield after a batch that found the queue
/// empty every time. Returns the pops that returned an item.
fn consume(q: &impl Queue, backlog: &AtomicIsize, stop: &AtomicBool) -> u64 {
    let mut popped = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let before = popped;
        for _ in 0..BATCH {
            match q.pop() {
                Some(v) => {
                    black_box(v);
                    popped += 1;
                    if popped.is_multiple_of(CHUNK) {
                        backlog.fetch_sub(CHUNK as isize, Ordering::Relaxed);
                    }
                }
                None => spin_loop(),
            }
        }
        if popped == before {
            // A whole batch found the queue empty: let a producer have the core.
            thread::yield_now();
        }
    }
    popped
}

/// `iters` pushes and `iters` pops on one thread, in bursts of [`CHUNK`].
fn prodcons_fixed(q: &impl Queue, iters: u64) {
    let mut next = 1u64 << 40;
    let mut left = iters;
    while left > 0 {
        let n = left.min(CHUNK);
        for _ in 0..n {
            black_box(q.push(next));
            next = next.wrapping_add(1);
        }
        for _ in 0..n {
            black_box(q.pop());
        }
        left -= n;
    }
}

// ---------------------------------------------------------------------------------
// The queues.

impl<R: Reclaim> Queue for strata_queue::Queue<u64, R> {
    #[inline]
    fn push(&self, value: u64) -> bool {
        strata_queue::Queue::push(self, value);
        true
    }

    #[inline]
    fn pop(&self) -> Option<u64> {
        strata_queue::Queue::pop(self)
    }
}

impl<R: Reclaim> Queue for MsQueue<u64, R> {
    #[inline]
    fn push(&self, value: u64) -> bool {
        MsQueue::push(self, value);
        true
    }

    #[inline]
    fn pop(&self) -> Option<u64> {
        MsQueue::pop(self)
    }
}

impl Queue for strata_queue::ArrayQueue<u64> {
    #[inline]
    fn push(&self, value: u64) -> bool {
        strata_queue::ArrayQueue::push(self, value).is_ok()
    }

    #[inline]
    fn pop(&self) -> Option<u64> {
        strata_queue::ArrayQueue::pop(self)
    }
}

impl Queue for SegQueue<u64> {
    #[inline]
    fn push(&self, value: u64) -> bool {
        SegQueue::push(self, value);
        true
    }

    #[inline]
    fn pop(&self) -> Option<u64> {
        SegQueue::pop(self)
    }
}

impl Queue for crossbeam_queue::ArrayQueue<u64> {
    #[inline]
    fn push(&self, value: u64) -> bool {
        crossbeam_queue::ArrayQueue::push(self, value).is_ok()
    }

    #[inline]
    fn pop(&self) -> Option<u64> {
        crossbeam_queue::ArrayQueue::pop(self)
    }
}

/// Both flavours: `push` fails only when a bounded queue is full (the queue is never
/// closed).
impl Queue for ConcurrentQueue<u64> {
    #[inline]
    fn push(&self, value: u64) -> bool {
        ConcurrentQueue::push(self, value).is_ok()
    }

    #[inline]
    fn pop(&self) -> Option<u64> {
        ConcurrentQueue::pop(self).ok()
    }
}

/// The lock-based baseline: a `VecDeque` behind a `std::sync::Mutex`, cache-padded
/// like the lock-free queues' ends, with a capacity check for the bounded workloads.
struct MutexQueue {
    deque: CachePadded<Mutex<VecDeque<u64>>>,
    cap: usize,
}

impl MutexQueue {
    fn unbounded() -> Self {
        MutexQueue {
            deque: CachePadded::new(Mutex::new(VecDeque::new())),
            cap: usize::MAX,
        }
    }

    fn bounded(cap: usize) -> Self {
        MutexQueue {
            deque: CachePadded::new(Mutex::new(VecDeque::with_capacity(cap))),
            cap,
        }
    }
}

impl Queue for MutexQueue {
    #[inline]
    fn push(&self, value: u64) -> bool {
        // Nothing panics while holding the lock, so poisoning cannot happen; if it did,
        // the deque would still be consistent.
        let mut d = self.deque.lock().unwrap_or_else(PoisonError::into_inner);
        if d.len() >= self.cap {
            return false;
        }
        d.push_back(value);
        true
    }

    #[inline]
    fn pop(&self) -> Option<u64> {
        self.deque
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    fn fifo(q: impl Queue) {
        assert_eq!(q.pop(), None);
        for v in 1..=100 {
            assert!(q.push(v));
        }
        for v in 1..=100 {
            assert_eq!(q.pop(), Some(v));
        }
        assert_eq!(q.pop(), None);
        assert!(q.push(7));
        assert!(q.push(8));
        assert_eq!(q.pop(), Some(7));
        assert!(q.push(9));
        assert_eq!(q.pop(), Some(8));
        assert_eq!(q.pop(), Some(9));
        assert_eq!(q.pop(), None);
        // Leaves items behind for Drop to free.
        for v in 0..10 {
            assert!(q.push(v));
        }
    }

    /// A bounded queue holds exactly [`CAPACITY`] items, refuses the next, and stays
    /// FIFO across the wrap-around.
    fn full(q: impl Queue) {
        let cap = CAPACITY as u64;
        for v in 0..cap {
            assert!(q.push(v), "push {v} of {cap}");
        }
        assert!(!q.push(u64::MAX), "push into a full queue succeeded");
        assert_eq!(q.pop(), Some(0));
        assert!(q.push(cap));
        assert!(!q.push(u64::MAX), "push into a full queue succeeded");
        for v in 1..=cap {
            assert_eq!(q.pop(), Some(v));
        }
        assert_eq!(q.pop(), None);
    }

    /// 2 producers push distinct values (retrying while full) and 2 consumers pop until
    /// every value is out: every value is popped exactly once, and each consumer sees
    /// each producer's values in the order they were pushed.
    fn conserves(q: impl Queue) {
        const PRODUCERS: u64 = 2;
        const CONSUMERS: usize = 2;
        const PER_PRODUCER: u64 = if cfg!(miri) { 200 } else { 20_000 };
        const TOTAL: u64 = PRODUCERS * PER_PRODUCER;
        let taken = AtomicU64::new(0);
        let got: Vec<Vec<u64>> = thread::scope(|s| {
            let (q, taken) = (&q, &taken);
            for p in 0..PRODUCERS {
                s.spawn(move || {
                    for k in 0..PER_PRODUCER {
                        while !q.push(p * PER_PRODUCER + k) {
                            thread::yield_now();
                        }
                    }
                });
            }
            let consumers: Vec<_> = (0..CONSUMERS)
                .map(|_| {
                    s.spawn(move || {
                        let mut got = Vec::new();
                        while taken.load(Ordering::Relaxed) < TOTAL {
                            match q.pop() {
                                Some(v) => {
                                    got.push(v);
                                    taken.fetch_add(1, Ordering::Relaxed);
                                }
                                None => thread::yield_now(),
                            }
                        }
                        got
                    })
                })
                .collect();
            consumers
                .into_iter()
                .map(|h| h.join().expect("consumer panicked"))
                .collect()
        });
        assert_eq!(q.pop(), None, "an item left over");
        for seen in &got {
            for p in 0..PRODUCERS {
                let from_p = seen.iter().filter(|&&v| v / PER_PRODUCER == p);
                assert!(
                    from_p.clone().zip(from_p.skip(1)).all(|(a, b)| a < b),
                    "producer {p}'s values popped out of order"
                );
            }
        }
        let mut all: Vec<u64> = got.into_iter().flatten().collect();
        assert_eq!(all.iter().sum::<u64>(), TOTAL * (TOTAL - 1) / 2);
        all.sort_unstable();
        let expected: Vec<u64> = (0..TOTAL).collect();
        assert_eq!(all.len(), expected.len());
        assert!(all == expected, "values lost or duplicated");
    }

    #[test]
    fn strata_ms_epoch() {
        fifo(MsQueue::<u64>::new());
        conserves(MsQueue::<u64>::new());
    }

    #[test]
    fn strata_ms_hazard() {
        fifo(MsQueue::<u64, Hazard>::with_reclaim(Hazard));
        conserves(MsQueue::<u64, Hazard>::with_reclaim(Hazard));
    }

    #[test]
    fn strata_array() {
        fifo(strata_queue::ArrayQueue::<u64>::new(CAPACITY));
        full(strata_queue::ArrayQueue::<u64>::new(CAPACITY));
        conserves(strata_queue::ArrayQueue::<u64>::new(CAPACITY));
    }

    #[test]
    fn crossbeam_segqueue() {
        fifo(SegQueue::<u64>::new());
        conserves(SegQueue::<u64>::new());
    }

    #[test]
    fn crossbeam_arrayqueue() {
        fifo(crossbeam_queue::ArrayQueue::<u64>::new(CAPACITY));
        full(crossbeam_queue::ArrayQueue::<u64>::new(CAPACITY));
        conserves(crossbeam_queue::ArrayQueue::<u64>::new(CAPACITY));
    }

    #[test]
    fn concurrent_queue_unbounded() {
        fifo(ConcurrentQueue::<u64>::unbounded());
        conserves(ConcurrentQueue::<u64>::unbounded());
    }

    #[test]
    fn concurrent_queue_bounded() {
        fifo(ConcurrentQueue::<u64>::bounded(CAPACITY));
        full(ConcurrentQueue::<u64>::bounded(CAPACITY));
        conserves(ConcurrentQueue::<u64>::bounded(CAPACITY));
    }

    #[test]
    fn mutex_vecdeque() {
        fifo(MutexQueue::unbounded());
        conserves(MutexQueue::unbounded());
        fifo(MutexQueue::bounded(CAPACITY));
        full(MutexQueue::bounded(CAPACITY));
        conserves(MutexQueue::bounded(CAPACITY));
    }

    #[test]
    fn roles_split_with_the_extra_thread_a_producer() {
        let producers = |t: usize| (0..t).filter(|&i| is_producer(i)).count();
        assert_eq!((producers(2), producers(3), producers(4)), (1, 2, 2));
    }

    /// The backlog counter keeps the queue short: after a run with more producers than
    /// consumers, what is left is at most the limit plus the counter's slack.
    #[test]
    fn prodcons_backlog_is_bounded() {
        let threads = 3;
        let bound = BACKLOG_LIMIT as u64 + 2 * CHUNK * threads as u64;
        let q = MsQueue::<u64>::new();
        let s = prodcons_timed(&q, threads, Duration::from_millis(20));
        assert!(s.ops > 0);
        let left = std::iter::from_fn(|| q.pop()).count() as u64;
        assert!(left <= bound, "{left} items left, bound {bound}");
    }

    #[test]
    fn help_matches_the_constants() {
        let mut v = Vec::new();
        register(&mut v);
        for w in &v {
            if w.name.starts_with("queue/pairs") {
                assert!(
                    w.help
                        .contains(&format!("{PAIRS_PREFILL} items per thread"))
                );
            } else {
                assert!(w.help.contains("even-numbered threads push"));
            }
            if w.name.ends_with("-bounded") && !w.name.ends_with("-unbounded") {
                assert!(
                    w.help.contains(&format!("capacity {CAPACITY}")),
                    "{}",
                    w.name
                );
            }
            if w.name == "queue/prodcons-unbounded" {
                assert!(w.help.contains(&format!("every {CHUNK} ops")));
                assert!(w.help.contains(&format!("above {BACKLOG_LIMIT}")));
            }
        }
    }

    #[test]
    fn timed_paths_run() {
        let mut v = Vec::new();
        register(&mut v);
        for w in &v {
            for threads in [w.min_threads.max(2), 3] {
                for i in &w.impls {
                    let s = (i.timed)(threads, Duration::from_millis(2));
                    assert!(s.ops > 0, "{} / {} at {threads}", w.name, i.name);
                }
            }
        }
    }
}
