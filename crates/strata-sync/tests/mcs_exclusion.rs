//! Mutual exclusion of `McsLock` with real threads: a plain (non-atomic) counter in
//! the lock, incremented with a separate read and write (with a yield in between now
//! and then, to widen any window), through `lock`, `try_lock` and `with`, must come out
//! exact; and an "inside" flag that every holder sets and clears must never be found
//! set by another holder. Runs under ThreadSanitizer too.

use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};

use strata_sync::mcs::McsLock;

const ITERS: u64 = if cfg!(miri) { 50 } else { 20_000 };

/// Increments per thread at `threads` threads: fewer when threads outnumber the cores,
/// where every hand-off to a preempted waiter waits for the scheduler (the documented
/// weakness of a queue spinlock), so that the test stays short.
fn iters(threads: u64) -> u64 {
    ITERS * 2 / (threads * threads / 2).max(2)
}

fn run(threads: u64) {
    let iters = iters(threads);
    let lock = McsLock::new(0u64);
    let inside = AtomicBool::new(false);
    let start = Barrier::new(threads as usize);
    let enter = || assert!(!inside.swap(true, Ordering::Relaxed), "two holders at once");
    let leave = || inside.store(false, Ordering::Relaxed);
    std::thread::scope(|s| {
        for t in 0..threads {
            let (lock, start) = (&lock, &start);
            s.spawn(move || {
                start.wait();
                let mut done = 0;
                let mut i = 0u64;
                while done < iters {
                    i += 1;
                    match i % 3 {
                        0 => {
                            let mut g = lock.lock();
                            enter();
                            let v = *g;
                            if i % 64 == t {
                                std::thread::yield_now();
                            }
                            *g = v + 1;
                            leave();
                            done += 1;
                        }
                        1 => {
                            if let Some(mut g) = lock.try_lock() {
                                enter();
                                let v = *g;
                                *g = v + 1;
                                leave();
                                done += 1;
                            }
                        }
                        _ => {
                            lock.with(|c| {
                                enter();
                                let v = *c;
                                *c = v + 1;
                                leave();
                            });
                            done += 1;
                        }
                    }
                }
            });
        }
    });
    assert!(!lock.is_locked());
    assert_eq!(lock.into_inner(), threads * iters);
}

#[test]
fn exclusion_2_threads() {
    run(2);
}

#[test]
fn exclusion_4_threads() {
    run(4);
}

#[test]
fn exclusion_8_threads() {
    run(8);
}

/// Each thread holds several MCS locks at once (more than its thread-local nodes, so
/// some guards use heap nodes) and releases them in a different order than it took
/// them; the locks are always taken in one global order, so nothing deadlocks.
#[test]
fn nested_locks_many_threads() {
    let locks: Vec<McsLock<u64>> = (0..6).map(|_| McsLock::new(0)).collect();
    let per_thread = ITERS / 10;
    std::thread::scope(|s| {
        for _ in 0..4 {
            let locks = &locks;
            s.spawn(move || {
                for i in 0..per_thread {
                    let mut guards: Vec<_> = locks.iter().map(|l| Some(l.lock())).collect();
                    for g in guards.iter_mut() {
                        **g.as_mut().unwrap() += 1;
                    }
                    let k = (i as usize) % guards.len();
                    drop(guards[k].take());
                    guards.reverse();
                }
            });
        }
    });
    for l in &locks {
        assert_eq!(*l.lock(), 4 * per_thread);
    }
}
