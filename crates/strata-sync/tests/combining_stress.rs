//! Stress tests of flat combining: many threads, exact conservation, records of exited
//! threads reused, panicking operations that hang nobody. Short enough for
//! ThreadSanitizer; sizes shrink under miri.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Barrier;

use strata_sync::combining::{CombiningCounter, FlatCombining, Sequential};

const THREADS: usize = if cfg!(miri) { 3 } else { 8 };
const PER_THREAD: u64 = if cfg!(miri) { 30 } else { 5_000 };

/// Every increment returns a distinct previous value: together exactly
/// `0..THREADS * PER_THREAD`, and the counter ends at the total.
#[test]
fn counter_increments_are_conserved() {
    let c = CombiningCounter::new(0);
    let start = Barrier::new(THREADS);
    let mut seen: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (c, start) = (&c, &start);
                s.spawn(move || {
                    start.wait();
                    let mut mine = Vec::with_capacity(PER_THREAD as usize);
                    for _ in 0..PER_THREAD {
                        mine.push(c.increment());
                    }
                    assert!(mine.windows(2).all(|w| w[0] < w[1]), "program order");
                    mine
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let total = THREADS as u64 * PER_THREAD;
    seen.sort_unstable();
    assert!(seen.iter().copied().eq(0..total), "every previous value exactly once");
    assert_eq!(c.get(), total);
    let stats = c.stats();
    assert_eq!(stats.ops, total + 1);
    assert!(stats.passes >= 1 && stats.passes <= stats.ops);
}

/// Producers push distinct values, consumers pop until they have seen them all: every
/// value comes out exactly once, each producer's values in order.
#[test]
fn queue_values_are_conserved_in_fifo_order() {
    let q = FlatCombining::new(VecDeque::<u64>::new());
    let producers = THREADS / 2;
    let total = producers as u64 * PER_THREAD;
    let popped = std::sync::atomic::AtomicU64::new(0);
    let got: Vec<Vec<u64>> = std::thread::scope(|s| {
        for p in 0..producers as u64 {
            let q = &q;
            s.spawn(move || {
                for i in 0..PER_THREAD {
                    q.push_back(p * 1_000_000 + i);
                }
            });
        }
        let consumers: Vec<_> = (0..THREADS - producers)
            .map(|_| {
                let (q, popped) = (&q, &popped);
                s.spawn(move || {
                    let mut mine = Vec::new();
                    while popped.load(std::sync::atomic::Ordering::Relaxed) < total {
                        match q.pop_front() {
                            Some(v) => {
                                mine.push(v);
                                popped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                            None => std::thread::yield_now(),
                        }
                    }
                    mine
                })
            })
            .collect();
        consumers.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for mine in &got {
        for p in 0..producers as u64 {
            let of_p: Vec<u64> = mine.iter().copied().filter(|v| v / 1_000_000 == p).collect();
            assert!(of_p.windows(2).all(|w| w[0] < w[1]), "producer {p} out of order");
        }
    }
    let mut all: Vec<u64> = got.concat();
    all.sort_unstable();
    let mut expected: Vec<u64> = (0..producers as u64)
        .flat_map(|p| (0..PER_THREAD).map(move |i| p * 1_000_000 + i))
        .collect();
    expected.sort_unstable();
    assert_eq!(all, expected);
    assert!(q.is_empty());
}

/// Rounds of short-lived threads, through handles and through the thread cache: the
/// records of exited threads (and dropped handles) are reused, so their number stays
/// bounded by the threads alive at one time, not by the threads that ever ran.
#[test]
fn records_of_exited_threads_are_reused() {
    let c = FlatCombining::new(VecDeque::<u64>::new());
    let rounds = if cfg!(miri) { 3 } else { 20 };
    for round in 0..rounds {
        std::thread::scope(|s| {
            for t in 0..THREADS as u64 {
                let c = &c;
                s.spawn(move || {
                    if t % 2 == 0 {
                        let mut h = c.handle();
                        for i in 0..50 {
                            h.apply(strata_sync::combining::DequeOp::PushBack(
                                round * 1000 + t * 100 + i,
                            ));
                        }
                    } else {
                        for i in 0..50 {
                            c.push_back(round * 1000 + t * 100 + i);
                        }
                    }
                });
            }
        });
        assert!(
            c.records() <= THREADS,
            "round {round}: {} records for {THREADS} threads",
            c.records()
        );
    }
    assert_eq!(c.len() as u64, rounds * THREADS as u64 * 50);
}

/// A structure whose op panics on request.
struct Fragile(u64);

impl Sequential for Fragile {
    type Op = Option<u64>;
    type Output = u64;

    fn apply(&mut self, op: Option<u64>) -> u64 {
        match op {
            Some(n) => {
                let prev = self.0;
                self.0 += n;
                prev
            }
            None => panic!("requested panic"),
        }
    }
}

/// Threads interleave adds with ops that panic: every panic reaches the thread that
/// submitted the op (whoever applied it), nobody hangs, and exactly the adds count.
#[test]
fn panicking_ops_hang_nobody() {
    // The default hook would print every requested panic.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let fc = FlatCombining::new(Fragile(0));
    let per_thread = if cfg!(miri) { 20 } else { 2_000 };
    let panics: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let fc = &fc;
                s.spawn(move || {
                    let mut panics = 0;
                    for i in 0..per_thread {
                        if (i + t) % 7 == 0 {
                            let r = catch_unwind(AssertUnwindSafe(|| fc.apply(None)));
                            let payload = r.expect_err("the op panicked");
                            assert_eq!(payload.downcast_ref::<&str>(), Some(&"requested panic"));
                            panics += 1;
                        } else {
                            fc.apply(Some(1));
                        }
                    }
                    panics
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    std::panic::set_hook(hook);
    let adds = THREADS as u64 * per_thread as u64 - panics;
    assert_eq!(fc.apply(Some(0)), adds);
    assert_eq!(fc.stats().ops, THREADS as u64 * per_thread as u64 + 1);
}

/// A counter whose additions take a while (a few hundred spin hints), so that threads
/// find the lock busy long enough to publish and be served by the combiner: the
/// combining path, not only the fast path, is what this stresses.
struct SlowCounter(u64);

impl Sequential for SlowCounter {
    type Op = u64;
    type Output = u64;

    fn apply(&mut self, n: u64) -> u64 {
        for _ in 0..300 {
            std::hint::spin_loop();
        }
        let prev = self.0;
        self.0 += n;
        prev
    }
}

/// Slow additions from many threads, half through handles and half through the
/// thread cache: every previous value is seen exactly once.
#[test]
fn slow_additions_are_conserved() {
    let fc = FlatCombining::new(SlowCounter(0));
    let per_thread = if cfg!(miri) { 20 } else { 2_000 };
    let mut seen: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let fc = &fc;
                s.spawn(move || {
                    let mut h = (t % 2 == 0).then(|| fc.handle());
                    (0..per_thread)
                        .map(|_| match h.as_mut() {
                            Some(h) => h.apply(1),
                            None => fc.apply(1),
                        })
                        .collect::<Vec<u64>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let total = THREADS as u64 * per_thread;
    seen.sort_unstable();
    assert!(seen.iter().copied().eq(0..total));
    assert_eq!(fc.apply(0), total);
    assert!(fc.records() <= THREADS);
}
