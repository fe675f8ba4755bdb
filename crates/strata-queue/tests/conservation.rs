//! Conservation under contention: every value pushed comes out exactly once (no loss,
//! no duplicate), every value is dropped exactly once (no leak, no double drop), and a
//! FIFO container hands each producer's values to any one consumer in push order.
//!
//! [`Queue`] (LPRQ, at ring sizes 2, 16 and the default), [`MsQueue`] and
//! [`TreiberStack`] run over every reclamation scheme (the default
//! epoch domain, the default hazard domain, and an explicit domain of each kind), and
//! [`ArrayQueue`] at capacities 1, 2, 4 and 64, each at 1, 2, 4 and 8 threads. Every
//! thread pushes its own tagged values and pops in between, in blocks: a block of
//! pushes only (the container grows), then a block that pops two per push (it drains,
//! so empty pops and, in the queue, a lagging tail are exercised). After the threads
//! are joined the main thread drains what is left.
//!
//! The values own heap memory (a boxed payload derived from the tag, checked when the
//! value is taken out, so reading a freed or overwritten value shows) and count their
//! creations and drops in a per-test [`Tracker`]. Before the drain, exactly the values
//! the threads popped must have been dropped: a container or a scheme that drops a
//! value it still holds shows there. At that point the container's own view (`len`,
//! `is_empty`, `is_full`) must agree with the count of values it holds.
//!
//! A bounded queue that is full hands the value back; the thread then pops one value
//! (so that the threads cannot all wait for a pop none of them makes) and retries with
//! the value it got back. A separate test runs `ArrayQueue::force_push`: there every
//! value must be popped, or returned by a `force_push` that evicted it, exactly once,
//! and the evictions count as removals from the front for the order checks.
//!
//! For FIFO containers, two order checks: within one consumer's log (and within the
//! drain), each producer's sequence numbers increase; and the drain of each producer is
//! a suffix of its pushes (everything the threads popped from a producer precedes
//! everything left in the queue from it).
//!
//! Under miri the sizes shrink to 1 and 2 threads and 50 values per thread.

use std::iter;
use std::sync::Barrier;
use std::thread;

use strata_queue::{ArrayQueue, MsQueue, Queue, TreiberStack};
use strata_reclaim::{Reclaim, epoch, hazard};

mod common;
use common::{Item, Tracker, producer, seq};

const THREADS: &[usize] = if cfg!(miri) { &[1, 2] } else { &[1, 2, 4, 8] };
/// Values pushed per thread.
const OPS: usize = if cfg!(miri) { 50 } else { 20_000 };
/// Length of a push-only block and of the draining block after it.
const BLOCK: usize = if cfg!(miri) { 8 } else { 32 };

/// What the harness needs of a container.
trait Container: Sync {
    /// `true` if the container is FIFO, so that the order checks apply.
    const FIFO: bool;
    /// Pushes `v`, or gives it back if the container is full.
    fn push(&self, v: Item) -> Result<(), Item>;
    fn pop(&self) -> Option<Item>;
    /// With no operation in flight, checks what the container reports about its size
    /// against `n`, the number of values it holds.
    fn check_size(&self, what: &str, n: usize);
}

impl<R: Reclaim> Container for Queue<Item, R> {
    const FIFO: bool = true;
    fn push(&self, v: Item) -> Result<(), Item> {
        Queue::push(self, v);
        Ok(())
    }
    fn pop(&self) -> Option<Item> {
        Queue::pop(self)
    }
    /// `len` is an upper bound at rest (a ticket a push lost to a race counts until a
    /// pop passes it), exact once a pop has returned `None`.
    fn check_size(&self, what: &str, n: usize) {
        let len = self.len();
        assert!(len >= n, "{what}: len {len} with {n} values queued");
        if n > 0 {
            assert!(!self.is_empty(), "{what}: is_empty with {n} values queued");
        }
        if what.ends_with("drained") {
            assert_eq!(len, 0, "{what}: len after a pop returned None");
            assert!(
                self.is_empty(),
                "{what}: not empty after a pop returned None"
            );
        }
    }
}

impl<R: Reclaim> Container for MsQueue<Item, R> {
    const FIFO: bool = true;
    fn push(&self, v: Item) -> Result<(), Item> {
        MsQueue::push(self, v);
        Ok(())
    }
    fn pop(&self) -> Option<Item> {
        MsQueue::pop(self)
    }
    fn check_size(&self, what: &str, n: usize) {
        assert_eq!(
            self.is_empty(),
            n == 0,
            "{what}: is_empty with {n} values queued"
        );
    }
}

impl<R: Reclaim> Container for TreiberStack<Item, R> {
    const FIFO: bool = false;
    fn push(&self, v: Item) -> Result<(), Item> {
        TreiberStack::push(self, v);
        Ok(())
    }
    fn pop(&self) -> Option<Item> {
        TreiberStack::pop(self)
    }
    fn check_size(&self, what: &str, n: usize) {
        assert_eq!(
            self.is_empty(),
            n == 0,
            "{what}: is_empty with {n} values stacked"
        );
    }
}

impl Container for ArrayQueue<Item> {
    const FIFO: bool = true;
    fn push(&self, v: Item) -> Result<(), Item> {
        ArrayQueue::push(self, v)
    }
    fn pop(&self) -> Option<Item> {
        ArrayQueue::pop(self)
    }
    fn check_size(&self, what: &str, n: usize) {
        assert_eq!(self.len(), n, "{what}: len");
        assert!(
            n <= self.capacity(),
            "{what}: {n} values in a queue of capacity {}",
            self.capacity()
        );
        assert_eq!(
            self.is_empty(),
            n == 0,
            "{what}: is_empty with {n} values queued"
        );
        assert_eq!(
            self.is_full(),
            n == self.capacity(),
            "{what}: is_full with {n} values in a queue of capacity {}",
            self.capacity()
        );
    }
}

/// One thread's part: push `OPS` values, popping in between; returns the tags popped,
/// in the order this thread popped them.
fn worker<C: Container>(c: &C, tracker: &'static Tracker, t: usize, start: &Barrier) -> Vec<u64> {
    let mut log = Vec::with_capacity(OPS);
    start.wait();
    for i in 0..OPS {
        let mut v = Item::new(tracker, t, i);
        // A bounded container may be full: make room by popping (otherwise every thread
        // could be waiting for a pop that none of them makes), then retry with the value
        // it gave back. No yield here: with more threads than cores and other load on
        // the machine, a yield per retry made a round take up to 80 s instead of 0.1 s.
        while let Err(back) = c.push(v) {
            v = back;
            if let Some(p) = c.pop() {
                log.push(p.consume());
            }
        }
        if (i / BLOCK) % 2 == 1 {
            for _ in 0..2 {
                if let Some(p) = c.pop() {
                    log.push(p.consume());
                }
            }
        }
    }
    log
}

/// Checks that the logs and the drain hold every value of `threads` producers exactly
/// once and, if `fifo`, the order checks of the module docs.
#[track_caller]
fn check(what: &str, threads: usize, logs: &[Vec<u64>], drained: &[u64], fifo: bool) {
    let mut seen = vec![0u32; threads * OPS];
    for &tag in logs.iter().flatten().chain(drained) {
        let (p, s) = (producer(tag), seq(tag));
        assert!(
            p < threads && s < OPS,
            "{what}: a value that was never pushed: {tag:#x}"
        );
        seen[p * OPS + s] += 1;
    }
    let lost = seen.iter().filter(|&&n| n == 0).count();
    let dup = seen.iter().filter(|&&n| n > 1).count();
    if lost + dup > 0 {
        let first = seen.iter().position(|&n| n != 1).unwrap();
        panic!(
            "{what}: {lost} values lost, {dup} popped more than once (first: producer {}, \
             value {}, popped {} times)",
            first / OPS,
            first % OPS,
            seen[first]
        );
    }
    if !fifo {
        return;
    }
    for (who, log) in logs
        .iter()
        .enumerate()
        .map(|(i, l)| (format!("consumer {i}"), l.as_slice()))
        .chain(iter::once(("the drain".to_string(), drained)))
    {
        let mut last: Vec<Option<usize>> = vec![None; threads];
        for &tag in log {
            let (p, s) = (producer(tag), seq(tag));
            if let Some(prev) = last[p] {
                assert!(
                    prev < s,
                    "{what}: {who} popped value {s} of producer {p} after its value {prev}: \
                     not FIFO"
                );
            }
            last[p] = Some(s);
        }
    }
    // The drain of each producer is a suffix of its pushes.
    let mut max_popped: Vec<Option<usize>> = vec![None; threads];
    for &tag in logs.iter().flatten() {
        let m = &mut max_popped[producer(tag)];
        *m = Some(m.map_or(seq(tag), |m| m.max(seq(tag))));
    }
    for &tag in drained {
        if let Some(m) = max_popped[producer(tag)] {
            assert!(
                seq(tag) > m,
                "{what}: value {} of producer {} was still queued after its value {m} was \
                 popped: not FIFO",
                seq(tag),
                producer(tag)
            );
        }
    }
}

/// Runs one round per thread count on a fresh container from `make`.
fn run<C: Container>(name: &str, tracker: &'static Tracker, make: impl Fn() -> C) {
    for &threads in THREADS {
        let what = format!("{name}, {threads} threads");
        tracker.reset();
        let c = make();
        let start = Barrier::new(threads);
        let logs: Vec<Vec<u64>> = thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let (c, start) = (&c, &start);
                    s.spawn(move || worker(c, tracker, t, start))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let popped: usize = logs.iter().map(Vec::len).sum();
        assert_eq!(
            tracker.dropped(),
            popped,
            "{what}: values were dropped while still in the container (or never)"
        );
        c.check_size(&what, threads * OPS - popped);
        let drained: Vec<u64> = iter::from_fn(|| c.pop()).map(Item::consume).collect();
        assert!(
            c.pop().is_none(),
            "{what}: a value appeared after the drain"
        );
        c.check_size(&format!("{what}, drained"), 0);
        check(&what, threads, &logs, &drained, C::FIFO);
        tracker.assert_balanced(&what, threads * OPS);
        // Dropping the (empty) container drops no value again.
        drop(c);
        tracker.assert_balanced(
            &format!("{what}, after dropping the container"),
            threads * OPS,
        );
    }
}

#[test]
fn lprq_epoch_conserves_values() {
    static T: Tracker = Tracker::new();
    run("Queue<Epoch>", &T, || Queue::with_reclaim(epoch::Epoch));
}

#[test]
fn lprq_small_rings_conserve_values() {
    static T: Tracker = Tracker::new();
    run("Queue<Epoch>, rings of 2", &T, || {
        Queue::with_reclaim_and_ring_size(epoch::Epoch, 2)
    });
    run("Queue<Epoch>, rings of 16", &T, || {
        Queue::with_reclaim_and_ring_size(epoch::Epoch, 16)
    });
}

#[test]
fn lprq_hazard_conserves_values() {
    static T: Tracker = Tracker::new();
    run("Queue<Hazard>, rings of 4", &T, || {
        Queue::with_reclaim_and_ring_size(hazard::Hazard, 4)
    });
}

#[test]
fn lprq_domains_conserve_values() {
    static T: Tracker = Tracker::new();
    run("Queue<epoch::Domain>, rings of 8", &T, || {
        Queue::with_reclaim_and_ring_size(epoch::Domain::new(), 8)
    });
    run("Queue<hazard::Domain>, rings of 8", &T, || {
        Queue::with_reclaim_and_ring_size(hazard::Domain::new(), 8)
    });
}

#[test]
fn ms_queue_epoch_conserves_values() {
    static T: Tracker = Tracker::new();
    run("MsQueue<Epoch>", &T, || MsQueue::with_reclaim(epoch::Epoch));
}

#[test]
fn ms_queue_hazard_conserves_values() {
    static T: Tracker = Tracker::new();
    run("MsQueue<Hazard>", &T, || {
        MsQueue::with_reclaim(hazard::Hazard)
    });
}

#[test]
fn ms_queue_epoch_domain_conserves_values() {
    static T: Tracker = Tracker::new();
    run("MsQueue<epoch::Domain>", &T, || {
        MsQueue::with_reclaim(epoch::Domain::new())
    });
}

#[test]
fn ms_queue_hazard_domain_conserves_values() {
    static T: Tracker = Tracker::new();
    run("MsQueue<hazard::Domain>", &T, || {
        MsQueue::with_reclaim(hazard::Domain::new())
    });
}

#[test]
fn treiber_epoch_conserves_values() {
    static T: Tracker = Tracker::new();
    run("TreiberStack<Epoch>", &T, || {
        TreiberStack::with_reclaim(epoch::Epoch)
    });
}

#[test]
fn treiber_hazard_conserves_values() {
    static T: Tracker = Tracker::new();
    run("TreiberStack<Hazard>", &T, || {
        TreiberStack::with_reclaim(hazard::Hazard)
    });
}

#[test]
fn treiber_epoch_domain_conserves_values() {
    static T: Tracker = Tracker::new();
    run("TreiberStack<epoch::Domain>", &T, || {
        TreiberStack::with_reclaim(epoch::Domain::new())
    });
}

#[test]
fn treiber_hazard_domain_conserves_values() {
    static T: Tracker = Tracker::new();
    run("TreiberStack<hazard::Domain>", &T, || {
        TreiberStack::with_reclaim(hazard::Domain::new())
    });
}

#[test]
fn array_queue_capacity_1_conserves_values() {
    static T: Tracker = Tracker::new();
    run("ArrayQueue(1)", &T, || ArrayQueue::new(1));
}

#[test]
fn array_queue_capacity_2_conserves_values() {
    static T: Tracker = Tracker::new();
    run("ArrayQueue(2)", &T, || ArrayQueue::new(2));
}

#[test]
fn array_queue_capacity_4_conserves_values() {
    static T: Tracker = Tracker::new();
    run("ArrayQueue(4)", &T, || ArrayQueue::new(4));
}

#[test]
fn array_queue_capacity_64_conserves_values() {
    static T: Tracker = Tracker::new();
    run("ArrayQueue(64)", &T, || ArrayQueue::new(64));
}

/// One thread's part of the `force_push` test: `OPS` values force-pushed, popping in
/// between as [`worker`] does; returns the tags this thread removed (popped, or got
/// back from a `force_push` that evicted them) in the order it removed them, and how
/// many of them were evictions.
fn force_worker(
    q: &ArrayQueue<Item>,
    tracker: &'static Tracker,
    t: usize,
    start: &Barrier,
) -> (Vec<u64>, usize) {
    let mut log = Vec::with_capacity(OPS);
    let mut evicted = 0;
    start.wait();
    for i in 0..OPS {
        if let Some(old) = q.force_push(Item::new(tracker, t, i)) {
            log.push(old.consume());
            evicted += 1;
        }
        if (i / BLOCK) % 2 == 1 {
            for _ in 0..2 {
                if let Some(p) = q.pop() {
                    log.push(p.consume());
                }
            }
        }
    }
    (log, evicted)
}

/// `force_push` in place of `push`: a value leaves the queue either popped or evicted
/// by a `force_push`, exactly once, and from the front (FIFO per producer).
#[test]
fn array_queue_force_push_conserves_values() {
    static T: Tracker = Tracker::new();
    for cap in [1, 2, 4, 64] {
        for &threads in THREADS {
            let what = format!("ArrayQueue({cap}) force_push, {threads} threads");
            T.reset();
            let q = ArrayQueue::new(cap);
            let start = Barrier::new(threads);
            let results: Vec<(Vec<u64>, usize)> = thread::scope(|s| {
                let handles: Vec<_> = (0..threads)
                    .map(|t| {
                        let (q, start) = (&q, &start);
                        s.spawn(move || force_worker(q, &T, t, start))
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let evicted: usize = results.iter().map(|r| r.1).sum();
            let logs: Vec<Vec<u64>> = results.into_iter().map(|r| r.0).collect();
            let removed: usize = logs.iter().map(Vec::len).sum();
            if cap < BLOCK {
                // Every push-only block overflows the queue.
                assert!(evicted > 0, "{what}: no force_push evicted anything");
            }
            assert_eq!(
                T.dropped(),
                removed,
                "{what}: values were dropped while still in the queue (or never)"
            );
            q.check_size(&what, threads * OPS - removed);
            let drained: Vec<u64> = iter::from_fn(|| q.pop()).map(Item::consume).collect();
            q.check_size(&format!("{what}, drained"), 0);
            check(&what, threads, &logs, &drained, true);
            T.assert_balanced(&what, threads * OPS);
            drop(q);
            T.assert_balanced(&format!("{what}, after dropping the queue"), threads * OPS);
        }
    }
}

/// A queue dropped while it holds values, after its positions have moved on by every
/// offset and a few laps, drops each of them once (and none of the popped ones again).
#[test]
fn array_queue_drop_drops_held_values() {
    static T: Tracker = Tracker::new();
    let caps: &[usize] = if cfg!(miri) {
        &[1, 2, 3, 7]
    } else {
        &[1, 2, 3, 4, 7, 64]
    };
    for &cap in caps {
        for skew in 0..cap.min(8) {
            for held in [1, cap / 2 + 1, cap] {
                let what = format!("ArrayQueue({cap}), skew {skew}, {held} held");
                T.reset();
                let q = ArrayQueue::new(cap);
                let cycled = 3 * cap + skew;
                for i in 0..cycled {
                    assert!(q.push(Item::new(&T, 0, i)).is_ok(), "{what}: full");
                    q.pop().expect("just pushed").consume();
                }
                for i in 0..held {
                    assert!(q.push(Item::new(&T, 1, i)).is_ok(), "{what}: full");
                }
                q.check_size(&what, held);
                assert_eq!(T.dropped(), cycled, "{what}");
                drop(q);
                T.assert_balanced(&what, cycled + held);
            }
        }
    }
}

/// The harness can fail: a stack run as if it were FIFO breaks the order checks.
#[test]
fn the_order_check_catches_a_stack() {
    static T: Tracker = Tracker::new();
    struct AsFifo(TreiberStack<Item>);
    impl Container for AsFifo {
        const FIFO: bool = true;
        fn push(&self, v: Item) -> Result<(), Item> {
            self.0.push(v);
            Ok(())
        }
        fn pop(&self) -> Option<Item> {
            self.0.pop()
        }
        fn check_size(&self, what: &str, n: usize) {
            self.0.check_size(what, n)
        }
    }
    let caught = std::panic::catch_unwind(|| {
        run("TreiberStack as FIFO", &T, || AsFifo(TreiberStack::new()))
    });
    let msg = caught.expect_err("a LIFO container passed the FIFO checks");
    let msg = msg
        .downcast_ref::<String>()
        .map(String::as_str)
        .unwrap_or_default();
    assert!(msg.contains("not FIFO"), "failed for another reason: {msg}");
}
